//! Sockets, cores and threads (`variorum_topology.h`), from the CPU topology powerstack
//! discovers (sysfs), and the print calls built on them. Counts are of online CPUs.

use std::ffi::c_int;

use powerstack_hw::CpuTopology;

use crate::node::{call, with_node};

/// The node's sockets, cores and threads (online).
struct Counts {
    sockets: usize,
    cores: usize,
    threads: usize,
}

fn counts(topo: &CpuTopology) -> Counts {
    let packages = topo.packages();
    Counts {
        sockets: packages.len(),
        cores: packages.iter().map(|&p| topo.cores_of(p)).sum(),
        threads: topo.cpus.iter().filter(|c| c.online).count(),
    }
}

/// A count for C: the number, or -1 when the node's topology is unknown (no CPU found).
fn count_of(func: &str, pick: fn(&Counts) -> usize) -> c_int {
    let mut n = 0;
    let rc = call(func, || {
        with_node(|s| {
            n = pick(&counts(&s.node.discovery.topology));
            if n == 0 {
                return Err(crate::node::not_available("no online CPU found in the topology"));
            }
            Ok(())
        })
    });
    if rc == 0 { c_int::try_from(n).unwrap_or(c_int::MAX) } else { -1 }
}

/// `variorum_init_topology`: opens the node (and its topology); 0, or -1 with the reason.
#[unsafe(no_mangle)]
pub extern "C" fn variorum_init_topology() -> c_int {
    call("variorum_init_topology", || with_node(|_| Ok(())))
}

/// `variorum_get_num_sockets`: the number of sockets, or -1.
#[unsafe(no_mangle)]
pub extern "C" fn variorum_get_num_sockets() -> c_int {
    count_of("variorum_get_num_sockets", |c| c.sockets)
}

/// `variorum_get_num_cores`: the number of cores of all sockets, or -1.
#[unsafe(no_mangle)]
pub extern "C" fn variorum_get_num_cores() -> c_int {
    count_of("variorum_get_num_cores", |c| c.cores)
}

/// `variorum_get_num_threads`: the number of hardware threads (online CPUs), or -1.
#[unsafe(no_mangle)]
pub extern "C" fn variorum_get_num_threads() -> c_int {
    count_of("variorum_get_num_threads", |c| c.threads)
}

/// Variorum's topology print: the counts, then one line per hardware thread.
fn topology_text(host: &str, topo: &CpuTopology) -> String {
    let c = counts(topo);
    let per_socket = c.cores.checked_div(c.sockets).unwrap_or(0);
    let per_core = c.threads.checked_div(c.cores).unwrap_or(0);
    let mut out = String::from("=================\nPlatform Topology\n=================\n");
    out.push_str(&format!("  Hostname            : {host}\n"));
    out.push_str(&format!("  Num Sockets         : {}\n", c.sockets));
    out.push_str(&format!("  Num Cores per Socket: {per_socket}\n"));
    out.push_str(&format!("  Num Threads per Core: {per_core}\n\n"));
    out.push_str("  Layout:\n  -------\n  Thread HWThread Core Socket\n");
    for cpu in topo.cpus.iter().filter(|c| c.online) {
        let hw_thread = cpu.siblings.iter().position(|&s| s == cpu.id).unwrap_or(0);
        let core = cpu.core.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
        let socket = cpu.counted_package().map(|x| x.to_string()).unwrap_or_else(|| "-".into());
        out.push_str(&format!("  {:<6} {:<8} {:<4} {socket}\n", cpu.id, hw_thread, core));
    }
    out
}

/// `variorum_print_topology`: the node's sockets, cores and threads and where each hardware
/// thread sits. Prints the reason on stderr when the node cannot be opened.
#[unsafe(no_mangle)]
pub extern "C" fn variorum_print_topology() {
    call("variorum_print_topology", || {
        with_node(|s| {
            crate::print::emit(&topology_text(&s.node.origin.hostname, &s.node.discovery.topology));
            Ok(())
        })
    });
}

/// `variorum_print_hyperthreading`: whether more than one hardware thread runs on a core.
#[unsafe(no_mangle)]
pub extern "C" fn variorum_print_hyperthreading() -> c_int {
    call("variorum_print_hyperthreading", || {
        with_node(|s| {
            let c = counts(&s.node.discovery.topology);
            let per_core = c.threads.checked_div(c.cores).unwrap_or(0);
            if per_core == 0 {
                return Err(crate::node::not_available("no online CPU found in the topology"));
            }
            let state = if per_core > 1 { "Enabled" } else { "Disabled" };
            crate::print::emit(&format!(
                "  Hyperthreading:       {state}\n  Num Thread Per Core:  {per_core}\n"
            ));
            Ok(())
        })
    })
}
