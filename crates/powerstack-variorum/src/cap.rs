//! The caps, through powerstack's cap session as `powerstack cap socket|gpu|node` makes them:
//! the same validation against the hardware's range (a limit out of range is refused, never
//! clamped silently), the same journal in the same state directory (`POWERSTACK_STATE_DIR`, else
//! `/var/lib/powerstack`; a simulated node's under its root), so `powerstack cap reset` puts
//! the original limits back; each write read back.

use std::ffi::c_int;
use std::path::PathBuf;
use std::time::Duration;

use powerstack::ffi::{Failure, PsStatus};
use powerstack_cap::{DEFAULT_STATE_DIR, Policy};
use powerstack_model::DomainKind;
use powerstack_node::cap_session::{
    CapChange, CapSession, DomainTarget, LimitChange, Measurement, SessionError,
};

use crate::node::{call, warn, with_node};

/// How long the node is measured before a node cap is planned (the plan reports the node's
/// uncappable power; Variorum's split does not use it).
const NODE_CAP_MEASURE: Duration = Duration::from_millis(100);

/// The state directory as the CLI picks it: `POWERSTACK_STATE_DIR`, else the default.
fn state_dir() -> PathBuf {
    std::env::var_os("POWERSTACK_STATE_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

fn refused(e: SessionError) -> Failure {
    let status = match e {
        SessionError::NotOnNode(_) => PsStatus::PS_ERR_UNAVAILABLE,
        SessionError::Cap(
            powerstack_cap::CapError::State { .. } | powerstack_cap::CapError::File(_),
        ) => PsStatus::PS_ERR_IO,
        _ => PsStatus::PS_ERR_REFUSED,
    };
    Failure::new(status, e.to_string())
}

/// Validates and writes `change` on the process's node; a node cap measures the node over
/// `measure_for` first. The journal records `via` as who set it.
fn apply(change: &CapChange, measure_for: Option<Duration>, via: &str) -> Result<(), Failure> {
    with_node(|s| {
        let node = &mut s.node;
        let state = node.state(&state_dir());
        let platform = &mut node.discovery.platform;
        let measurement = measure_for.map(|window| {
            let report = platform.measure(window);
            let warnings = platform.take_warnings().iter().map(ToString::to_string).collect();
            Measurement { report, warnings }
        });
        let mut session =
            CapSession { platform, root: &node.root, state: &state, origin: &node.origin };
        let prepared = session.prepare(change, measurement).map_err(refused)?;
        let committed = session.commit(prepared, via, &mut || false).map_err(refused)?;
        warn(committed.doc.warnings);
        Ok(())
    })
}

/// Who set a limit, for the journal: the call and the program that made it.
fn via(func: &str, watts: c_int) -> String {
    let program = std::env::args().next().unwrap_or_else(|| "a program".into());
    format!("{func}({watts}) in {program} (libvariorum)")
}

/// A change of the limit `constraint` of every domain of `kind` to `watts`.
fn each(kind: DomainKind, constraint: &str, watts: c_int) -> CapChange {
    CapChange::Domain {
        target: DomainTarget { kind, index: None, die: None },
        limits: vec![LimitChange {
            constraint: Some(constraint.into()),
            limit_watts: f64::from(watts),
            time_window_s: None,
        }],
        clamp: false,
    }
}

/// `variorum_cap_each_socket_power_limit`: the long-term (PL1) limit of every socket, as
/// `powerstack cap socket WATTS`. The time window is left as it is (Variorum sets 1 s).
#[unsafe(no_mangle)]
pub extern "C" fn variorum_cap_each_socket_power_limit(socket_power_limit: c_int) -> c_int {
    let func = "variorum_cap_each_socket_power_limit";
    call(func, || {
        let change = each(DomainKind::Package, "long_term", socket_power_limit);
        apply(&change, None, &via(func, socket_power_limit))
    })
}

/// `variorum_cap_each_gpu_power_limit`: the power cap of every GPU, as `powerstack cap gpu
/// WATTS`.
#[unsafe(no_mangle)]
pub extern "C" fn variorum_cap_each_gpu_power_limit(gpu_power_limit: c_int) -> c_int {
    let func = "variorum_cap_each_gpu_power_limit";
    call(func, || {
        let change = each(DomainKind::Gpu, "cap", gpu_power_limit);
        apply(&change, None, &via(func, gpu_power_limit))
    })
}

/// `variorum_cap_best_effort_node_power_limit`: a node cap, as `powerstack cap node WATTS
/// --policy variorum`: the cap, rounded down to a multiple of the socket count, split evenly over
/// the sockets' long-term limits (memory and GPUs are not capped), as Variorum splits it; each
/// socket's share checked against its range before anything is written.
#[unsafe(no_mangle)]
pub extern "C" fn variorum_cap_best_effort_node_power_limit(node_power_limit: c_int) -> c_int {
    let func = "variorum_cap_best_effort_node_power_limit";
    call(func, || {
        let watts = f64::from(node_power_limit);
        if watts <= 0.0 {
            return Err(Failure::invalid(format!(
                "node cap {node_power_limit} W is not a valid power limit: give a positive number of watts"
            )));
        }
        let change = CapChange::Node { node_watts: watts, policy: Policy::Variorum, clamp: false };
        apply(&change, Some(NODE_CAP_MEASURE), &via(func, node_power_limit))
    })
}
