//! The thread that keeps a node cap standing ([`crate::standing`]): every
//! [`CHECK_INTERVAL`](crate::standing::CHECK_INTERVAL) it asks the cap path to split the standing
//! cap again when it is due.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::http::Controls;
use crate::standing::CHECK_INTERVAL;
use crate::state::Shared;

/// Checks the standing cap once: splits it again when [`Standing::due`]. Returns what was
/// written (`Ok(None)`: nothing to do, or too few samples yet); an error is a re-split refused or
/// rolled back (counted; tried again a second later).
pub fn check(
    shared: &Shared,
    controls: &Controls,
) -> Result<Option<powerstack_api::cap::CapResultV1>, crate::http::ApiError> {
    crate::http::resplit_standing(shared, controls)
}

/// Starts the thread that checks the standing cap every [`CHECK_INTERVAL`] until `done`.
pub fn start(
    shared: Arc<Shared>,
    controls: Arc<Controls>,
    done: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("powerstack-standing".into()).spawn(move || {
        while !done.load(Ordering::Relaxed) {
            match check(&shared, &controls) {
                Ok(Some(doc)) if doc.clamped => eprintln!(
                    "powerstack agent: warning: the standing node cap is out of reach now: split again at the node's lowest ({} W uncappable)",
                    doc.uncappable_watts.unwrap_or(0.0)
                ),
                Ok(_) => {}
                Err(e) => eprintln!(
                    "powerstack agent: warning: splitting the standing node cap again failed (tried again in a second): {e}"
                ),
            }
            std::thread::sleep(CHECK_INTERVAL);
        }
    })
}
