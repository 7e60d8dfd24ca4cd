//! The JSON calls: the documents `powerstack power|energy|domains --format variorum` write (the
//! same functions of `powerstack_api::variorum`), indented by four spaces, in memory from
//! `malloc` that the caller frees with `free()`. A document the node has no data for fails (-1),
//! as Variorum's JSON calls do when a feature is missing, and `*out` is left as it was.

use std::ffi::{c_char, c_int};

use powerstack::ffi::{Failure, out_malloc_string};
use powerstack_api::variorum;
use powerstack_hw::clock::unix_us;

use crate::node::{call, not_available, with_node};

/// Hands `doc`, indented, to the caller through `out`.
///
/// # Safety
/// `out` is null (refused) or points to writable storage for a pointer.
unsafe fn give(doc: &serde_json::Value, out: *mut *mut c_char) -> Result<(), Failure> {
    // SAFETY: the caller's guarantee on `out`.
    unsafe { out_malloc_string(&variorum::to_pretty(doc), out) }
}

/// `variorum_get_power_json`: node, socket (CPU, memory) and GPU power, as
/// `powerstack power --format variorum`. The first call measures over a short window (0.2 s, the
/// CLI's default interval); each later one reports the power since the previous power reading of
/// the process.
///
/// # Safety
/// `out` is null (refused with -1) or points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn variorum_get_power_json(out: *mut *mut c_char) -> c_int {
    call("variorum_get_power_json", || {
        with_node(|s| {
            let report = s.power();
            let doc = variorum::power(
                &s.node.origin.hostname,
                s.node.discovery.platform.catalog(),
                &report,
            );
            // SAFETY: the caller's guarantee on `out`.
            unsafe { give(&doc, out) }
        })
    })
}

/// `variorum_get_energy_json`: the energy counters (wrap-extended, joules), as
/// `powerstack energy --format variorum`.
///
/// # Safety
/// `out` is null (refused with -1) or points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn variorum_get_energy_json(out: *mut *mut c_char) -> c_int {
    call("variorum_get_energy_json", || {
        with_node(|s| {
            let platform = &mut s.node.discovery.platform;
            let snap = platform.sample();
            crate::node::warn(platform.take_warnings().iter().map(ToString::to_string));
            let doc = variorum::energy(
                &s.node.origin.hostname,
                platform.catalog(),
                &snap.joules(),
                snap.unix_us,
            );
            // SAFETY: the caller's guarantee on `out`.
            unsafe { give(&doc, out) }
        })
    })
}

/// `variorum_get_node_power_domain_info_json`: the measurable and controllable domains with
/// their ranges, as `powerstack domains --format variorum`.
///
/// # Safety
/// `out` is null (refused with -1) or points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn variorum_get_node_power_domain_info_json(out: *mut *mut c_char) -> c_int {
    call("variorum_get_node_power_domain_info_json", || {
        with_node(|s| {
            // The limits in force, read again, as `powerstack domains` reads them.
            let refreshed = s.node.discovery.platform.refresh_limits();
            crate::node::warn(refreshed.iter().map(ToString::to_string));
            let doc = s.node.variorum_domain_info(unix_us());
            // SAFETY: the caller's guarantee on `out`.
            unsafe { give(&doc, out) }
        })
    })
}

/// `variorum_get_thermals_json`: powerstack reads no temperatures; fails (-1).
///
/// # Safety
/// `out` is not used.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn variorum_get_thermals_json(out: *mut *mut c_char) -> c_int {
    let _ = out;
    call("variorum_get_thermals_json", || {
        Err(not_available("powerstack reads no temperatures on this node"))
    })
}

/// `variorum_get_frequency_json`: powerstack measures no operating frequencies; fails (-1).
///
/// # Safety
/// `out` is not used.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn variorum_get_frequency_json(out: *mut *mut c_char) -> c_int {
    let _ = out;
    call("variorum_get_frequency_json", || {
        Err(not_available(
            "powerstack measures no operating frequencies (APERF/MPERF, GPU clocks) on this node",
        ))
    })
}

/// `variorum_get_utilization_json`: powerstack reads no CPU, memory or GPU utilization; fails
/// (-1).
///
/// # Safety
/// `out` is not used.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn variorum_get_utilization_json(out: *mut *mut c_char) -> c_int {
    let _ = out;
    call("variorum_get_utilization_json", || {
        Err(not_available("powerstack reads no CPU, memory or GPU utilization on this node"))
    })
}
