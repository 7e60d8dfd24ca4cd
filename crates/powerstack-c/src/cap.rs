//! Capping a node: socket, memory, GPU and node caps, the reset, and the limits in force, with
//! the CLI's validation and journal (`powerstack_node::cap_session`). Each answers the native
//! cap document (`powerstack.cap.v1`, `powerstack.caps.v1`).

use std::ffi::{c_char, c_int};
use std::path::PathBuf;
use std::time::Duration;

use powerstack_cap::{CapError, Policy};
use powerstack_model::DomainKind;
use powerstack_node::cap_session::{
    CapChange, DomainTarget, LimitChange, Measurement, NODE_MEASURE, NODE_MEASURE_DEFAULT,
    SHOW_MEASURE, SessionError, end_standing_cap,
};
use powerstack_node::open::OpenNode;

use crate::ffi::{Failure, PsStatus, guard, opt_str, out_string};
use crate::node::{PsNode, to_json};

/// A cap session's error as a status: the session's own mapping ([`SessionError::status`]:
/// 503, the state directory or a measurement not available now, is `PS_ERR_IO`), made finer
/// for C: what the node does not have is `PS_ERR_UNAVAILABLE`, a failed write `PS_ERR_IO`, any
/// other refusal `PS_ERR_REFUSED`.
pub fn session_failure(e: SessionError) -> Failure {
    let status = match &e {
        e if e.status() == 503 => PsStatus::PS_ERR_IO,
        SessionError::NotOnNode(_) | SessionError::Cap(CapError::NoSuchControl { .. }) => {
            PsStatus::PS_ERR_UNAVAILABLE
        }
        SessionError::Cap(CapError::Hardware { .. } | CapError::ReadBack { .. })
        | SessionError::NotRestored { .. } => PsStatus::PS_ERR_IO,
        _ => PsStatus::PS_ERR_REFUSED,
    };
    Failure::new(status, e.to_string())
}

/// The state directory: `given`, else `POWERSTACK_STATE_DIR`, else the CLI's default (which a
/// simulated node keeps under its own root).
fn state_dir(given: Option<String>) -> PathBuf {
    given
        .or_else(|| std::env::var("POWERSTACK_STATE_DIR").ok().filter(|v| !v.is_empty()))
        .map_or_else(|| PathBuf::from(powerstack_cap::DEFAULT_STATE_DIR), PathBuf::from)
}

/// The journal's "who set it".
fn via(function: &str) -> String {
    format!("libpowerstack {function} (pid {})", std::process::id())
}

/// A domain index from C: -1 is every domain, another negative is refused.
fn index(value: i32, what: &str) -> Result<Option<u32>, Failure> {
    match value {
        -1 => Ok(None),
        v if v < 0 => Err(Failure::invalid(format!("{what} {v}: give an index, or -1 for all"))),
        v => Ok(Some(v as u32)),
    }
}

/// Validates `change` (a node cap measures the node over `measure` first) and, unless
/// `dry_run`, writes it under the journal; the result document.
fn apply(
    node: &mut OpenNode,
    state_dir: PathBuf,
    change: &CapChange,
    measure: Option<Duration>,
    dry_run: bool,
    function: &str,
) -> Result<String, Failure> {
    let state = node.state(&state_dir);
    let measured = measure.map(|interval| {
        Measurement::take(&mut node.discovery.platform, || std::thread::sleep(interval))
    });
    let mut session = node.cap_session(&state);
    let prepared = session.prepare(change, measured).map_err(session_failure)?;
    if dry_run {
        return to_json(&prepared.doc);
    }
    let committed =
        session.commit(prepared, &via(function), &mut || false).map_err(session_failure)?;
    to_json(&committed.doc)
}

/// The body every cap call shares: the handle, the state directory, the change, and the
/// result document into `result_json` when it is not NULL.
///
/// # Safety
/// `node` NULL or a live handle; `state_dir` NULL or NUL-terminated; `result_json` NULL or
/// writable.
unsafe fn cap_call(
    node: *const PsNode,
    state_dir: *const c_char,
    result_json: *mut *mut c_char,
    function: &str,
    change: impl FnOnce() -> Result<(CapChange, Option<Duration>, bool), Failure>,
) -> c_int {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let (node, given) = unsafe { (PsNode::from_ptr(node)?, opt_str(state_dir, "state_dir")?) };
        let (change, measure, dry_run) = change()?;
        let dir = self::state_dir(given);
        let doc = node.with(|n| apply(n, dir, &change, measure, dry_run, function))?;
        if result_json.is_null() {
            return Ok(());
        }
        // SAFETY: not null, and the caller guarantees it is writable.
        unsafe { out_string(doc, result_json) }
    })
}

fn domain_change(
    kind: DomainKind,
    index: Option<u32>,
    constraint: &str,
    watts: f64,
    time_window_s: Option<f64>,
) -> CapChange {
    let limit =
        LimitChange { constraint: Some(constraint.into()), limit_watts: watts, time_window_s };
    CapChange::Domain {
        target: DomainTarget { kind, index, die: None },
        limits: vec![limit],
        clamp: false,
    }
}

/// Sets the long-term limit of one CPU socket (`socket` >= 0) or of every one (-1) to `watts`,
/// and its averaging window to `time_window_s` seconds (0: unchanged). Validated as `powerstack
/// cap socket` validates it (a value out of the socket's range, NaN or a locked limit is refused
/// and nothing is written), written under the journal in `state_dir` (NULL:
/// `POWERSTACK_STATE_DIR`, else `/var/lib/powerstack`, which a simulated node keeps under its
/// own root), each write read back. With `dry_run` nonzero nothing is written. The
/// `powerstack.cap.v1` result goes into `*result_json` (free with `ps_string_free`) unless
/// `result_json` is NULL.
///
/// # Safety
/// `node` NULL or a live handle; `state_dir` NULL or NUL-terminated; `result_json` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ps_cap_socket(
    node: *const PsNode,
    socket: i32,
    watts: f64,
    time_window_s: f64,
    state_dir: *const c_char,
    dry_run: c_int,
    result_json: *mut *mut c_char,
) -> c_int {
    let change = || {
        let socket = index(socket, "socket")?;
        let window = (time_window_s != 0.0).then_some(time_window_s);
        let change = domain_change(DomainKind::Package, socket, "long_term", watts, window);
        Ok((change, None, dry_run != 0))
    };
    // SAFETY: forwarded from the caller.
    unsafe { cap_call(node, state_dir, result_json, "ps_cap_socket", change) }
}

/// Sets the long-term limit of the memory of one socket (or every one: -1) to `watts`; as
/// `ps_cap_socket` otherwise.
///
/// # Safety
/// As `ps_cap_socket`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ps_cap_memory(
    node: *const PsNode,
    socket: i32,
    watts: f64,
    state_dir: *const c_char,
    dry_run: c_int,
    result_json: *mut *mut c_char,
) -> c_int {
    let change = || {
        let change =
            domain_change(DomainKind::Memory, index(socket, "socket")?, "long_term", watts, None);
        Ok((change, None, dry_run != 0))
    };
    // SAFETY: forwarded from the caller.
    unsafe { cap_call(node, state_dir, result_json, "ps_cap_memory", change) }
}

/// Sets the power cap of one GPU (or every one: -1) to `watts`; as `ps_cap_socket` otherwise.
///
/// # Safety
/// As `ps_cap_socket`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ps_cap_gpu(
    node: *const PsNode,
    gpu: i32,
    watts: f64,
    state_dir: *const c_char,
    dry_run: c_int,
    result_json: *mut *mut c_char,
) -> c_int {
    let change = || {
        let change = domain_change(DomainKind::Gpu, index(gpu, "gpu")?, "cap", watts, None);
        Ok((change, None, dry_run != 0))
    };
    // SAFETY: forwarded from the caller.
    unsafe { cap_call(node, state_dir, result_json, "ps_cap_gpu", change) }
}

/// Caps the node at `watts`, split over its cappable domains by `policy` (`proportional`,
/// `uniform` or `variorum`; NULL: `proportional`) from a measurement of the node over
/// `measure_ms` (10 ms to 60 s; 0: 500 ms), as `powerstack cap node` does; as `ps_cap_socket`
/// otherwise.
///
/// # Safety
/// As `ps_cap_socket`; `policy` NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ps_cap_node(
    node: *const PsNode,
    watts: f64,
    policy: *const c_char,
    measure_ms: u32,
    state_dir: *const c_char,
    dry_run: c_int,
    result_json: *mut *mut c_char,
) -> c_int {
    let change = || {
        // SAFETY: the caller guarantees NULL or a NUL-terminated string.
        let policy = unsafe { opt_str(policy, "policy") }?;
        let policy: Policy = match policy {
            None => Policy::Proportional,
            Some(p) => p.parse().map_err(|e: String| Failure::invalid(format!("policy: {e}")))?,
        };
        let change = CapChange::node(watts, policy, false).map_err(Failure::invalid)?;
        let measure = match measure_ms {
            0 => NODE_MEASURE_DEFAULT,
            ms => Duration::from_millis(u64::from(ms)),
        };
        if !NODE_MEASURE.contains(&measure) {
            let why = format!("measure_ms {measure_ms}: must be between 10 ms and 60 s, or 0");
            return Err(Failure::invalid(why));
        }
        Ok((change, Some(measure), dry_run != 0))
    };
    // SAFETY: forwarded from the caller.
    unsafe { cap_call(node, state_dir, result_json, "ps_cap_node", change) }
}

/// Puts back every limit the journal in `state_dir` holds and ends the node cap an agent on it
/// keeps standing (as `powerstack cap reset`); with `dry_run` nonzero only says what it would
/// put back. A limit that could not be put back is
/// `PS_ERR_IO` and stays in the journal. The result goes into `*result_json` unless NULL.
///
/// # Safety
/// As `ps_cap_socket`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ps_cap_reset(
    node: *const PsNode,
    state_dir: *const c_char,
    dry_run: c_int,
    result_json: *mut *mut c_char,
) -> c_int {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let (node, given) = unsafe { (PsNode::from_ptr(node)?, opt_str(state_dir, "state_dir")?) };
        let dir = self::state_dir(given);
        let doc = node.with(|n| {
            let state = n.state(&dir);
            let done =
                n.cap_session(&state).reset(dry_run != 0, &via("ps_cap_reset"), &mut || false);
            let doc = done.and_then(|d| d.into_result()).map_err(session_failure)?;
            if dry_run == 0 {
                end_standing_cap(state.path()).map_err(|e| Failure::new(PsStatus::PS_ERR_IO, e))?;
            }
            Ok::<_, Failure>(doc)
        })?;
        if result_json.is_null() {
            return Ok(());
        }
        // SAFETY: not null, and the caller guarantees it is writable.
        unsafe { out_string(to_json(&doc)?, result_json) }
    })
}

/// Every limit of the node in force, its range and who set it (the `powerstack.caps.v1`
/// document, as `powerstack cap show --format json` prints it, after measuring the node for
/// 200 ms) into `*json`, to be freed with `ps_string_free`.
///
/// # Safety
/// `node` NULL or a live handle; `state_dir` NULL or NUL-terminated; `json` NULL (refused) or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ps_caps_json(
    node: *const PsNode,
    state_dir: *const c_char,
    json: *mut *mut c_char,
) -> c_int {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let (node, given) = unsafe { (PsNode::from_ptr(node)?, opt_str(state_dir, "state_dir")?) };
        if json.is_null() {
            return Err(Failure::invalid("the output pointer is null"));
        }
        let dir = self::state_dir(given);
        let doc = node.with(|n| {
            let state = n.state(&dir);
            let report = n.discovery.platform.measure(SHOW_MEASURE);
            let _ = n.discovery.platform.take_warnings();
            n.cap_session(&state).show(Some(&report))
        });
        // SAFETY: `json` is not null and the caller guarantees it is writable.
        unsafe { out_string(to_json(&doc)?, json) }
    })
}
