//! A fault hook for tests: the process kills itself (SIGKILL) at a chosen step of a write session.
//!
//! With `POWERSTACK_TEST_KILL_AT_STEP=K` in the environment, the K-th step of this process (1 for
//! the first) raises SIGKILL, as a power cut or `kill -9` would at that point. A step is each
//! attribute written through [`crate::file::write_attr`] (a power limit's window, limit and enable
//! are three) and each save of the restore journal. Tests draw K to kill `powerstack cap`,
//! `powerstack pools` and the agent's start-up at every point of their writes and check that the
//! next command restores the originals. Without the variable (always, outside tests) a step costs
//! one atomic load.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming the step to die at.
pub const KILL_AT_STEP_ENV: &str = "POWERSTACK_TEST_KILL_AT_STEP";

static KILL_AT: OnceLock<Option<u64>> = OnceLock::new();
static STEPS: AtomicU64 = AtomicU64::new(0);

/// Counts one step of a write session; dies by SIGKILL if it is the one asked for.
pub fn step() {
    let at = *KILL_AT.get_or_init(|| {
        std::env::var(KILL_AT_STEP_ENV).ok().and_then(|v| v.trim().parse::<u64>().ok())
    });
    let Some(at) = at else { return };
    if STEPS.fetch_add(1, Ordering::SeqCst) + 1 == at {
        // SAFETY: raise has no preconditions; SIGKILL ends the process here.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}
