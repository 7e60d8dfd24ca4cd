/*
 * variorum.h: LLNL Variorum 0.8's C API, served by powerstack's libvariorum.so
 * (crate powerstack-variorum). Written from Variorum's documented signatures; a program
 * written against Variorum 0.8 compiles against this header unchanged.
 *
 * Return values, as Variorum documents them: 0 on success, -1 on failure, with the reason
 * on stderr. Where Variorum returns 0 for a feature the node lacks, this library returns -1
 * and says why: see docs/bindings.md, "Variorum drop-in".
 *
 * The JSON calls allocate the string with malloc(); the caller frees it with free().
 */
#ifndef VARIORUM_H_INCLUDE
#define VARIORUM_H_INCLUDE

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Monitoring to a stream (not available in powerstack's library: -1). */
int variorum_poll_power(FILE *output);
int variorum_monitoring(FILE *output);

/* Caps: through powerstack's cap session (checked against the hardware's range, journaled). */
int variorum_cap_each_socket_power_limit(int socket_power_limit);
int variorum_cap_best_effort_node_power_limit(int node_power_limit);
int variorum_cap_gpu_power_ratio(int gpu_power_ratio);
int variorum_cap_each_core_frequency_limit(int cpu_freq_mhz);
int variorum_cap_socket_frequency_limit(int socketid, int socket_freq_mhz);
int variorum_cap_each_gpu_power_limit(int gpu_power_limit);

/* Print calls: to stdout. */
int variorum_print_verbose_power_limit(void);
int variorum_print_power_limit(void);
int variorum_print_verbose_thermals(void);
int variorum_print_thermals(void);
int variorum_print_verbose_counters(void);
int variorum_print_counters(void);
int variorum_print_verbose_power(void);
int variorum_print_power(void);
int variorum_print_verbose_frequency(void);
int variorum_print_frequency(void);
int variorum_print_hyperthreading(void);
void variorum_print_topology(void);
int variorum_print_features(void);
int variorum_print_turbo(void);
int variorum_print_verbose_gpu_utilization(void);
int variorum_print_gpu_utilization(void);
int variorum_print_available_frequencies(void);
int variorum_print_energy(void);
int variorum_print_verbose_energy(void);

/* Turbo (not available in powerstack's library: -1). */
int variorum_enable_turbo(void);
int variorum_disable_turbo(void);

/* JSON: *out is set to a malloc()ed string the caller free()s; -1 when the node lacks the data. */
int variorum_get_power_json(char **get_power_obj_str);
int variorum_get_utilization_json(char **get_util_obj_str);
int variorum_get_node_power_domain_info_json(char **get_domain_obj_str);
int variorum_get_thermals_json(char **get_thermal_obj_str);
int variorum_get_frequency_json(char **get_frequency_obj_str);
int variorum_get_energy_json(char **get_energy_obj_str);

/* "0.8.0": a static string, not to be freed or changed. */
char *variorum_get_current_version(void);

/* Opens the node and returns 0 (Variorum's leak test entry point). */
int variorum_tester(void);

#ifdef __cplusplus
}
#endif

#endif
