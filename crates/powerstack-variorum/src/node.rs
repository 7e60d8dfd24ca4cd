//! The one process-wide node and the boundary of every entry point.
//!
//! The node is opened on the first call, from the environment as the CLI opens it
//! (`powerstack::ffi::node_options`), and kept (behind a mutex) until the process exits, when
//! a simulated node's thread is stopped and its temporary root removed. Power is measured from
//! the energy counters between two readings: the first call measures over [`POWER_WINDOW`],
//! each later one since the previous reading (at least [`POWER_WINDOW`]).

use std::ffi::{CStr, c_int};
use std::io::Write;
use std::sync::{Mutex, Once, PoisonError};
use std::time::Duration;

use powerstack::ffi::{self, Failure, PsStatus};
use powerstack_hw::clock::mono_ns;
use powerstack_hw::platform::STEP_WAIT;
use powerstack_model::{PowerReport, Snapshot};
use powerstack_node::open::{OpenNode, hostname, open};

/// The shortest interval power is measured over: the first call's window, and the least a later
/// call waits since the previous reading (the CLI's default `--interval`).
pub const POWER_WINDOW: Duration = Duration::from_millis(200);

/// The opened node and the last reading power is measured from.
pub struct Session {
    /// The node.
    pub node: OpenNode,
    last: Option<Snapshot>,
    first_mono_ns: Option<u64>,
}

impl Session {
    /// Power since the previous reading of this process (at least [`POWER_WINDOW`] ago), or over
    /// [`POWER_WINDOW`] on the first call: never a first-call 0 W. Warnings of the reading go to
    /// stderr, as `--format variorum` does.
    pub fn power(&mut self) -> PowerReport {
        let platform = &mut self.node.discovery.platform;
        let prev = match self.last.take() {
            Some(s) => s,
            None => platform.sample_at_steps(STEP_WAIT),
        };
        let window_ns = POWER_WINDOW.as_nanos() as u64;
        let elapsed_ns = mono_ns().saturating_sub(prev.mono_ns);
        if elapsed_ns < window_ns {
            std::thread::sleep(Duration::from_nanos(window_ns - elapsed_ns));
        }
        let cur = platform.sample_at_steps(STEP_WAIT);
        let cur = platform.until_moved(&prev, cur);
        let report = PowerReport::between(platform.catalog(), &prev, &cur);
        warn(platform.take_warnings().iter().map(ToString::to_string));
        self.first_mono_ns.get_or_insert(prev.mono_ns);
        self.last = Some(cur);
        report
    }

    /// Seconds from the start of this process's first power reading to the end of the last one
    /// (the `Timestamp_sec` column Variorum prints).
    pub fn since_first_s(&self) -> f64 {
        let end = self.last.as_ref().map(|s| s.mono_ns).unwrap_or(0);
        let start = self.first_mono_ns.unwrap_or(end);
        end.saturating_sub(start) as f64 / 1e9
    }
}

static NODE: Mutex<Option<Session>> = Mutex::new(None);
static AT_EXIT: Once = Once::new();

/// Stops a simulated node's thread and removes its root when the process exits (a static is
/// never dropped). A call still running on another thread keeps the node: it is left as it is.
extern "C" fn close_at_exit() {
    if let Ok(mut guard) = NODE.try_lock() {
        drop(guard.take());
    }
}

/// Runs `f` on the process's node, opening it first on the first call.
pub fn with_node<T>(f: impl FnOnce(&mut Session) -> Result<T, Failure>) -> Result<T, Failure> {
    let mut guard = NODE.lock().unwrap_or_else(PoisonError::into_inner);
    let session = match guard.take() {
        Some(s) => s,
        None => {
            let options = ffi::node_options(None, None, None)?;
            let node =
                open(&options).map_err(|e| Failure::new(PsStatus::PS_ERR_IO, e.to_string()))?;
            if let Some(note) = node.simulated_note() {
                eprintln!("{note}");
            }
            warn(node.warnings.iter().cloned());
            AT_EXIT.call_once(|| {
                // SAFETY: registers a plain function without arguments; failing to register only
                // leaves a simulated root behind.
                unsafe { libc::atexit(close_at_exit) };
            });
            Session { node, last: None, first_mono_ns: None }
        }
    };
    let session = guard.insert(session);
    f(session)
}

/// Prints each warning on stderr, as `powerstack ... --format variorum` does.
pub fn warn(lines: impl IntoIterator<Item = String>) {
    let mut err = std::io::stderr().lock();
    for w in lines {
        // A closed or broken stderr loses the warning; it never panics at the boundary.
        let _ = writeln!(err, "warning: {w}");
    }
}

/// A call whose data or control this node does not have (Variorum's
/// `VARIORUM_ERROR_FEATURE_NOT_AVAILABLE`).
pub fn not_available(why: &str) -> Failure {
    Failure::new(PsStatus::PS_ERR_UNAVAILABLE, format!("Feature not available: {why}"))
}

/// The boundary of an entry point: 0 when `body` succeeds; else -1, Variorum's failure code,
/// with `host:libvariorum(powerstack):func(): why` on stderr, as Variorum reports its errors.
/// A panic is caught, never unwound into C.
pub fn call(func: &str, body: impl FnOnce() -> Result<(), Failure>) -> c_int {
    if ffi::guard(body) == 0 {
        return 0;
    }
    // SAFETY: `ps_last_error` returns a NUL-terminated string valid until the next failing
    // call on this thread; it is copied at once.
    let why = unsafe { CStr::from_ptr(ffi::ps_last_error()) }.to_string_lossy().into_owned();
    // Outside the guard: a closed or broken stderr loses the message, never panics into C.
    let _ = writeln!(std::io::stderr(), "{}:libvariorum(powerstack):{func}(): {why}", hostname());
    -1
}
