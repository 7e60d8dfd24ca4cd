//! The node handle (`ps_node`): opening and closing a node, whether it is simulated, and its
//! domains as structs and as the native `powerstack.domains.v1` document.
//!
//! Thread safety: a handle holds its node behind a mutex, so any calls on one handle may run
//! from several threads at once (they take turns); calls on different handles run in parallel.
//! Only `ps_node_close` must not run while another call uses the same handle.

use std::ffi::{c_char, c_int};
use std::sync::{Mutex, PoisonError};

use powerstack_model::{DomainInfo, DomainKind, PowerLimit};
use powerstack_node::open::{OpenError, OpenNode};

use crate::ffi::{Failure, PsStatus, guard, node_options, opt_str, out_string};

/// An opened node; opaque to C. Any calls on one handle may run from several threads at once
/// (they take turns on its lock); calls on different handles run in parallel. Only
/// `ps_node_close` must not overlap another call on the same handle.
pub struct PsNode {
    node: Mutex<OpenNode>,
}

// A handle is shared between threads by C callers: its node must be `Send` behind the mutex.
const _: fn() = || {
    fn sync<T: Sync + Send>() {}
    sync::<PsNode>();
};

impl PsNode {
    /// Opens the node: each argument when given, else the environment, else the CLI's default.
    pub fn open(
        root: Option<String>,
        source: Option<String>,
        simulate: Option<String>,
    ) -> Result<PsNode, Failure> {
        let options = node_options(root, source, simulate)?;
        let node = powerstack_node::open::open(&options).map_err(|e| {
            let status = match e {
                OpenError::Invalid(_) => PsStatus::PS_ERR_INVALID,
                OpenError::NothingReadable { .. } => PsStatus::PS_ERR_UNAVAILABLE,
                OpenError::Simulator(_) => PsStatus::PS_ERR_IO,
            };
            Failure::new(status, e.to_string())
        })?;
        Ok(PsNode { node: Mutex::new(node) })
    }

    /// Runs `f` on the node, holding its lock (a call that panicked before leaves the node as
    /// it was: the lock is taken back).
    pub fn with<R>(&self, f: impl FnOnce(&mut OpenNode) -> R) -> R {
        let mut node = self.node.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut node)
    }

    /// The handle behind a pointer from C.
    ///
    /// # Safety
    /// `p` is null (refused) or a handle from `ps_node_open` not yet closed.
    pub unsafe fn from_ptr<'a>(p: *const PsNode) -> Result<&'a PsNode, Failure> {
        // SAFETY: the caller guarantees a live handle when not null.
        unsafe { p.as_ref() }.ok_or_else(|| Failure::invalid("the node handle is null"))
    }
}

/// Opens a node and stores its handle in `*out` (close it with `ps_node_close`).
///
/// `root` is the directory standing for `/`, `sources` `auto` or a list (`powercap,nvml`),
/// `simulate` `off`, `auto` or a simulator profile (`intel-2s`, `nvidia-4gpu`, ...). Each may be
/// NULL: then `POWERSTACK_ROOT`, `POWERSTACK_SOURCE`, `POWERSTACK_SIMULATE` are read, else `/`,
/// `auto`, `off`. A simulated node runs in a temporary directory until closed.
///
/// # Safety
/// Each string is NULL or NUL-terminated; `out` is NULL (refused) or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ps_node_open(
    root: *const c_char,
    sources: *const c_char,
    simulate: *const c_char,
    out: *mut *mut PsNode,
) -> c_int {
    guard(|| {
        if out.is_null() {
            return Err(Failure::invalid("ps_node_open: the output pointer is null"));
        }
        // SAFETY: the caller guarantees NULL or NUL-terminated strings.
        let (root, sources, simulate) = unsafe {
            (opt_str(root, "root")?, opt_str(sources, "sources")?, opt_str(simulate, "simulate")?)
        };
        let node = PsNode::open(root, sources, simulate)?;
        // SAFETY: `out` is not null and the caller guarantees it is writable.
        unsafe { *out = Box::into_raw(Box::new(node)) };
        Ok(())
    })
}

/// Closes a node opened by `ps_node_open` (a simulated one is stopped and removed); NULL is
/// ignored. No other call may use the handle during or after this one.
///
/// # Safety
/// `node` is NULL or a handle from `ps_node_open` not yet closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ps_node_close(node: *mut PsNode) {
    if !node.is_null() {
        let _ = guard(|| {
            // SAFETY: it came from `Box::into_raw` in `ps_node_open` and is closed once.
            drop(unsafe { Box::from_raw(node) });
            Ok(())
        });
    }
}

/// 1 when the node is simulated (a simulator profile, started here or by `powerstack sim
/// create`), 0 when it is real hardware, `PS_ERR_INVALID` for a NULL handle.
///
/// # Safety
/// `node` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ps_node_is_simulated(node: *const PsNode) -> c_int {
    let mut simulated = false;
    let rc = guard(|| {
        // SAFETY: the caller guarantees NULL or a live handle.
        let node = unsafe { PsNode::from_ptr(node) }?;
        simulated = node.with(|n| n.origin.simulated.is_some());
        Ok(())
    });
    if rc == 0 { c_int::from(simulated) } else { rc }
}

/// The kind of a domain.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)] // the names C programs use, as the generated header has them
pub enum PsKind {
    /// The whole node, measured directly.
    PS_KIND_NODE = 0,
    /// The RAPL platform domain (psys).
    PS_KIND_PLATFORM = 1,
    /// A CPU socket (package).
    PS_KIND_PACKAGE = 2,
    /// The cores of one socket.
    PS_KIND_CORE = 3,
    /// The uncore of one socket.
    PS_KIND_UNCORE = 4,
    /// Memory attached to one socket.
    PS_KIND_MEMORY = 5,
    /// An accelerator (GPU).
    PS_KIND_GPU = 6,
}

impl From<DomainKind> for PsKind {
    fn from(kind: DomainKind) -> PsKind {
        match kind {
            DomainKind::Node => PsKind::PS_KIND_NODE,
            DomainKind::Platform => PsKind::PS_KIND_PLATFORM,
            DomainKind::Package => PsKind::PS_KIND_PACKAGE,
            DomainKind::Core => PsKind::PS_KIND_CORE,
            DomainKind::Uncore => PsKind::PS_KIND_UNCORE,
            DomainKind::Memory => PsKind::PS_KIND_MEMORY,
            DomainKind::Gpu => PsKind::PS_KIND_GPU,
        }
    }
}

/// One domain of the node and the limit a cap of its kind sets (package and memory: the
/// long-term limit; GPU: the cap). Unknown numbers are NaN.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PsDomain {
    /// What the domain is.
    pub kind: PsKind,
    /// Socket number (package, core, uncore, memory), GPU number, or 0 (node, platform).
    pub index: u32,
    /// The die of a multi-die package, or -1.
    pub die: i32,
    /// The socket the domain is attached to, or -1 when unknown.
    pub socket: i32,
    /// 1 when the domain has a limit that can be read (then the fields below are about it).
    pub has_limit: c_int,
    /// 1 when that limit is locked (cannot be changed).
    pub locked: c_int,
    /// The limit in force, watts (NaN when none is set).
    pub limit_watts: f64,
    /// The smallest limit the hardware accepts, watts.
    pub min_watts: f64,
    /// The largest limit the hardware accepts, watts.
    pub max_watts: f64,
    /// The limit's averaging window, seconds (NaN when it has none).
    pub time_window_s: f64,
}

/// The limit a cap of the domain's kind sets, else its first limit.
fn main_limit(info: &DomainInfo) -> Option<&PowerLimit> {
    let name = powerstack_cap::node_cap_constraint(info.id.kind);
    info.limits.iter().find(|l| Some(l.name.as_str()) == name).or(info.limits.first())
}

impl From<&DomainInfo> for PsDomain {
    fn from(info: &DomainInfo) -> PsDomain {
        let limit = main_limit(info);
        let number = |f: fn(&PowerLimit) -> Option<f64>| limit.and_then(f).unwrap_or(f64::NAN);
        PsDomain {
            kind: info.id.kind.into(),
            index: info.id.index,
            die: info.id.die.map_or(-1, |d| d as i32),
            socket: info.socket.map_or(-1, |s| s as i32),
            has_limit: c_int::from(limit.is_some()),
            locked: c_int::from(limit.is_some_and(|l| l.locked)),
            limit_watts: number(|l| l.limit_watts),
            min_watts: number(|l| l.min_watts),
            max_watts: number(|l| l.max_watts),
            time_window_s: number(|l| l.time_window_s),
        }
    }
}

/// Copies `items` into the caller's array `out` of `capacity` entries; `*count` gets how many
/// there are (more than `capacity` when the array is too short: only `capacity` are written).
///
/// # Safety
/// `out` is NULL or holds `capacity` writable entries; `count` is NULL (refused) or writable.
pub unsafe fn fill<T: Copy>(
    items: &[T],
    out: *mut T,
    capacity: usize,
    count: *mut usize,
) -> Result<(), Failure> {
    if count.is_null() {
        return Err(Failure::invalid("the count pointer is null"));
    }
    if out.is_null() && capacity > 0 {
        return Err(Failure::invalid("the array is null but its capacity is not 0"));
    }
    let n = items.len().min(capacity);
    // SAFETY: `out` holds `capacity` >= `n` entries (the caller's guarantee); `count` is writable.
    unsafe {
        if n > 0 {
            std::ptr::copy_nonoverlapping(items.as_ptr(), out, n);
        }
        *count = items.len();
    }
    Ok(())
}

/// The node's domains, their limits read again first: up to `capacity` into `out`, and how
/// many there are into `*count`. `out` may be NULL with `capacity` 0 to ask for the count.
///
/// # Safety
/// `node` is NULL or a live handle; `out` NULL or `capacity` entries; `count` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ps_domains(
    node: *const PsNode,
    out: *mut PsDomain,
    capacity: usize,
    count: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: the caller guarantees NULL or a live handle.
        let node = unsafe { PsNode::from_ptr(node) }?;
        let domains: Vec<PsDomain> = node.with(|n| {
            let _ = n.discovery.platform.refresh_limits();
            n.discovery.platform.catalog().iter().map(PsDomain::from).collect()
        });
        // SAFETY: forwarded from the caller.
        unsafe { fill(&domains, out, capacity, count) }
    })
}

/// The `powerstack.domains.v1` document (as `powerstack domains --format json` prints it) into
/// `*json`, to be freed with `ps_string_free`.
///
/// # Safety
/// `node` is NULL or a live handle; `json` is NULL (refused) or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ps_domains_json(node: *const PsNode, json: *mut *mut c_char) -> c_int {
    guard(|| {
        // SAFETY: the caller guarantees NULL or a live handle.
        let node = unsafe { PsNode::from_ptr(node) }?;
        let doc = node.with(|n| n.domains());
        // SAFETY: the caller guarantees `json` is NULL or writable.
        unsafe { out_string(to_json(&doc)?, json) }
    })
}

/// A document as one line of JSON.
pub fn to_json<T: serde::Serialize>(doc: &T) -> Result<String, Failure> {
    serde_json::to_string(doc)
        .map_err(|e| Failure::new(PsStatus::PS_ERR_INTERNAL, format!("encoding JSON: {e}")))
}
