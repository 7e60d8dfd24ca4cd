//! Standing node caps: a node cap (`POST /v1/caps {"node_watts": W}`) is split over the cappable
//! domains with what cannot be capped charged at what it draws then; when that uncappable draw
//! moves (a job's memory phase), the split no longer adds up to the cap. The agent keeps the node
//! cap standing: a thread of its own checks the ring (`crate::resplit`, every [`CHECK_INTERVAL`]) and
//! splits the same cap again when the uncappable power measured has moved by more than
//! [`threshold_watts`], at most once a second of samples ([`MIN_RESPLIT_INTERVAL_US`]), through the
//! same validation, journal and read-back as a write, with `clamp` semantics: never above the cap
//! asked, its lowest when the cap is out of reach.
//!
//! The cap is kept in the state directory ([`FILE`]) before the write is answered, so that the
//! next agent applies it again once it has samples; a domain write or a reset ends it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Locks `m`, through a poisoned lock (what it guards stays consistent).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The standing node cap's file in the state directory.
pub const FILE: &str = powerstack_node::cap_session::STANDING_CAP_FILE;
pub use powerstack_cap::{DEFAULT_RESPLIT_WATTS, RESPLIT_FRACTION};
/// The shortest time between two re-splits, µs of sample time
/// ([`powerstack_cap::MIN_RESPLIT_INTERVAL_S`]).
pub const MIN_RESPLIT_INTERVAL_US: u64 = (powerstack_cap::MIN_RESPLIT_INTERVAL_S * 1e6) as u64;
/// How often the checking thread looks at the ring.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// The largest standing cap file read (it holds three fields).
const MAX_FILE_BYTES: u64 = 64 << 10;

/// A node cap kept standing, as kept in [`FILE`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandingCap {
    /// The node cap asked, W.
    pub node_watts: f64,
    /// The split policy (`proportional`, ...).
    pub policy: String,
    /// Who wrote it (the journal's `via`).
    pub set_by: String,
}

/// The uncappable move, W, past which a node cap of `node_watts` is split again
/// ([`powerstack_cap::resplit_threshold_watts`]).
pub fn threshold_watts(node_watts: f64, resplit_watts: f64) -> f64 {
    powerstack_cap::resplit_threshold_watts(node_watts, resplit_watts)
}

/// An error keeping a standing cap in the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StandingError {
    /// The file could not be read.
    #[error(transparent)]
    Read(powerstack_file::FileError),
    /// The file could not be written or removed.
    #[error("standing node cap {path}: cannot {action} it: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed: `write`, `remove`.
        action: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a standing cap.
    #[error("standing node cap {path}: not a node cap: {why}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// What the checker knows of the cap in force.
#[derive(Debug, Default)]
struct Held {
    cap: Option<StandingCap>,
    /// The uncappable power the last split charged, W (`None`: not split by this agent yet).
    split_uncappable_watts: Option<f64>,
    /// The newest sample's time at the last re-split (tried), µs.
    last_resplit_us: Option<u64>,
}

/// The standing node cap of an agent ([`Controls::standing`]), its threshold and its counters.
#[derive(Debug)]
pub struct Standing {
    held: Mutex<Held>,
    resplit_watts: f64,
    /// Re-splits written.
    pub resplits: AtomicU64,
    /// Re-splits that failed (refused or rolled back; tried again a second later).
    pub resplit_failures: AtomicU64,
}

impl Standing {
    /// No standing cap; moves of more than `resplit_watts` (or [`RESPLIT_FRACTION`] of the cap)
    /// split it again.
    pub fn new(resplit_watts: f64) -> Standing {
        Standing {
            held: Mutex::new(Held::default()),
            resplit_watts,
            resplits: AtomicU64::new(0),
            resplit_failures: AtomicU64::new(0),
        }
    }

    /// The cap kept standing now.
    pub fn cap(&self) -> Option<StandingCap> {
        lock(&self.held).cap.clone()
    }

    /// The node cap of `state_dir`'s [`FILE`], taken as standing and not split yet (the next
    /// check splits it); `None` when there is no file.
    pub fn load(&self, state_dir: &Path) -> Result<Option<StandingCap>, StandingError> {
        let path = state_dir.join(FILE);
        let text = powerstack_file::read_if_exists(&path, "standing node cap", MAX_FILE_BYTES)
            .map_err(StandingError::Read)?;
        let Some(text) = text else { return Ok(None) };
        let cap: StandingCap = serde_json::from_str(&text)
            .map_err(|e| StandingError::Malformed { path: path.clone(), why: e.to_string() })?;
        if !(cap.node_watts.is_finite() && cap.node_watts > 0.0) {
            let why = format!("node_watts {} is not a power", cap.node_watts);
            return Err(StandingError::Malformed { path, why });
        }
        *lock(&self.held) = Held { cap: Some(cap.clone()), ..Held::default() };
        Ok(Some(cap))
    }

    /// Keeps `cap`, split with `uncappable_watts` charged, in force: in `state_dir` first, then
    /// here (kept here even when the file cannot be written: the error says so).
    pub(crate) fn set(
        &self,
        state_dir: &Path,
        cap: StandingCap,
        uncappable_watts: Option<f64>,
    ) -> Result<(), StandingError> {
        let path = state_dir.join(FILE);
        let saved = serde_json::to_vec_pretty(&cap)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|bytes| powerstack_cap::state::write_atomically(&path, &bytes, 0o644))
            .map_err(|source| StandingError::Io { path, action: "write", source });
        let mut held = lock(&self.held);
        held.cap = Some(cap);
        held.split_uncappable_watts = uncappable_watts;
        saved
    }

    /// Ends the standing cap (a domain write, a reset): here, and its file.
    pub(crate) fn end(&self, state_dir: &Path) -> Result<(), StandingError> {
        *lock(&self.held) = Held::default();
        let path = state_dir.join(FILE);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StandingError::Io { path, action: "remove", source: e })
            }
            _ => Ok(()),
        }
    }

    /// Whether a standing cap should be split again now: one is in force, the uncappable power
    /// (`uncappable_watts`, from samples up to `now_us`) has moved past the threshold since its
    /// last split (or it was never split by this agent), and no re-split was tried in the last
    /// second. A `variorum` cap, whose split leaves uncappable power out, is only split when
    /// this agent has not split it yet (after a restart). Returns the cap.
    pub(crate) fn due(&self, uncappable_watts: f64, now_us: u64) -> Option<StandingCap> {
        let held = lock(&self.held);
        let cap = held.cap.clone()?;
        if cap.policy == powerstack_cap::Policy::Variorum.as_str()
            && held.split_uncappable_watts.is_some()
        {
            return None;
        }
        let threshold = threshold_watts(cap.node_watts, self.resplit_watts);
        let moved = held
            .split_uncappable_watts
            .is_none_or(|split| (uncappable_watts - split).abs() > threshold);
        let rested = held
            .last_resplit_us
            .is_none_or(|t| now_us >= t.saturating_add(MIN_RESPLIT_INTERVAL_US));
        (moved && rested).then_some(cap)
    }

    /// Records a re-split tried at `now_us`: its uncappable charge when it was written.
    pub(crate) fn resplit(&self, now_us: u64, uncappable_watts: Option<f64>) {
        let mut held = lock(&self.held);
        held.last_resplit_us = Some(now_us);
        match uncappable_watts {
            Some(w) => {
                held.split_uncappable_watts = Some(w);
                self.resplits.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                self.resplit_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(node_watts: f64) -> StandingCap {
        StandingCap { node_watts, policy: "proportional".into(), set_by: "test".into() }
    }

    #[test]
    fn a_cap_is_due_when_its_uncappable_power_moves_past_the_threshold_once_a_second() {
        assert_eq!(threshold_watts(300.0, 2.0), 2.0);
        assert_eq!(DEFAULT_RESPLIT_WATTS, 2.0);
        assert_eq!(threshold_watts(1000.0, 2.0), 5.0);
        let dir = tempfile::tempdir().unwrap();
        let s = Standing::new(2.0);
        assert_eq!(s.due(50.0, 0), None, "nothing standing");
        s.set(dir.path(), cap(1000.0), Some(20.0)).unwrap();
        assert_eq!(s.due(24.9, 0), None, "under 0.5% of 1000 W");
        assert_eq!(s.due(25.1, 0), Some(cap(1000.0)));
        s.resplit(10_000_000, Some(25.1));
        assert_eq!(s.due(40.0, 10_999_999), None, "within a second of the last");
        assert_eq!(s.due(40.0, 11_000_000), Some(cap(1000.0)));
        s.resplit(11_000_000, None);
        assert_eq!(s.resplit_failures.load(Ordering::Relaxed), 1);
        assert_eq!(s.resplits.load(Ordering::Relaxed), 1);

        // Variorum's split leaves uncappable power out: not split again.
        let variorum = StandingCap { policy: "variorum".into(), ..cap(1000.0) };
        let v = Standing::new(2.0);
        let other = tempfile::tempdir().unwrap();
        v.set(other.path(), variorum, Some(20.0)).unwrap();
        assert_eq!(v.due(80.0, 0), None);

        // Kept across a restart: due at once (never split by the new agent).
        let again = Standing::new(2.0);
        assert_eq!(again.load(dir.path()).unwrap(), Some(cap(1000.0)));
        assert_eq!(again.due(25.1, 0), Some(cap(1000.0)));
        again.end(dir.path()).unwrap();
        assert_eq!(again.cap(), None);
        assert_eq!(Standing::new(2.0).load(dir.path()).unwrap(), None, "the file is gone");
        std::fs::write(
            dir.path().join(FILE),
            "{\"node_watts\": -1, \"policy\": \"x\", \"set_by\": \"y\"}",
        )
        .unwrap();
        let e = Standing::new(2.0).load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a power"), "{e}");
    }
}
