/*
 * variorum_topology.h: Variorum 0.8's topology calls, served by powerstack's libvariorum.so.
 * Counts come from the kernel's CPU topology (sysfs), not hwloc: this header does not include
 * hwloc.h and declares no hwloc topology object.
 */
#ifndef VARIORUM_TOPOLOGY_H_INCLUDE
#define VARIORUM_TOPOLOGY_H_INCLUDE

#ifdef __cplusplus
extern "C" {
#endif

/* 0 when the node's topology could be read, otherwise -1. */
int variorum_init_topology(void);
/* The number of sockets, cores (all sockets) and hardware threads (online CPUs), or -1. */
int variorum_get_num_sockets(void);
int variorum_get_num_cores(void);
int variorum_get_num_threads(void);

#ifdef __cplusplus
}
#endif

#endif
