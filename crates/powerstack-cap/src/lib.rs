//! Power capping: validated limits, node-cap policies, a restore journal, and writes that are read
//! back and rolled back on failure.
//!
//! A [`Capper`] holds the node's [`Platform`] and its [`Journal`], under the lock of the node's
//! [`StateDir`] (one writer at a time). Opening it first puts originals back if a previous run died
//! part way through a write session; a journal of another node is refused.
//! Every change goes through [`Capper::plan`] (validate everything, write nothing) and
//! [`Capper::apply`] (record originals, write, read back, and restore what was already written if
//! any step fails). [`Capper::reset`] restores every control to what it was before powerstack
//! first wrote it.
//!
//! [`allocate`] splits a node cap over the cappable domains, without I/O.

pub mod allocate;
pub mod journal;
pub mod plan;
pub mod range;
mod restore;
pub mod state;
pub mod trust;

use powerstack_hw::{HwError, Platform};
use powerstack_model::{DomainId, DomainInfo, LimitWrite, PowerLimit};

pub use allocate::{AllocError, Allocation, Cappable, Policy, allocate};
pub use journal::{ControlKey, Entry, FileEntry, FileWritten, Journal, Setting, Written};
pub use plan::{
    ASSUMED_MIN_SHARE, LEAST_LIMIT_WATTS, NodeCapPlan, clamp_to_lowest, lowest_watts,
    node_cap_constraint, node_cap_inputs, plan, plan_node_cap, range_text, validate,
};
pub use range::{
    DEFAULT_RESPLIT_WATTS, MIN_RESPLIT_INTERVAL_S, NodeCapRange, RESPLIT_FRACTION, node_cap_range,
    node_read_back_watts, resplit_threshold_watts,
};
pub use restore::recover;
use restore::{restore_limits, restore_write, setting};
pub use state::{DEFAULT_STATE_DIR, Holder, NodeId, StateDir, StateLock, state_dir_for};

/// Largest difference accepted between a limit written and the value read back: hardware rounds
/// (RAPL to its power unit, amdgpu to whole watts).
/// Watts as a person reads them in a message: as typed for a plausible value (`87.5`), in
/// exponent form from a megawatt up and below a microwatt (`1e308`, not 309 digits).
pub fn watts_text(watts: f64) -> String {
    let implausible = watts.abs() >= 1e6 || (watts != 0.0 && watts.abs() < 1e-6);
    if watts.is_finite() && implausible { format!("{watts:e}") } else { format!("{watts}") }
}

/// A [`CapError::NoSuchControl`] of a domain whose limits could not be read (the providers'
/// `warnings`, as `powercap: package-0: limits not reported: malformed content in FILE: ...`)
/// becomes [`CapError::Unreadable`], naming the file; any other error is as it is.
pub fn unreadable_limits(e: CapError, warnings: &[String]) -> CapError {
    let CapError::NoSuchControl { what, available } = e else { return e };
    let domain = what.split(' ').next().unwrap_or_default();
    let why = warnings.iter().find_map(|w| {
        let (_, after) = w.split_once(&format!("{domain}: limits not "))?;
        Some(after.split_once(": ").map_or(after, |(_, why)| why).to_string())
    });
    match why {
        Some(why) => CapError::Unreadable { what, why },
        None => CapError::NoSuchControl { what, available },
    }
}

/// `state file` for one of the state directory's files ([`trust::STATE_FILES`]), else `state
/// directory`: how a [`CapError::State`] names its path.
fn state_kind(path: &std::path::Path) -> &'static str {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if trust::STATE_FILES.contains(&name) { "state file" } else { "state directory" }
}

fn readback_tolerance(watts: f64) -> f64 {
    (0.01 * watts).max(1.0)
}

/// An error of a capping operation. Messages are one line, name the domain and, for values, the
/// allowed range.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CapError {
    /// The value is not a power (NaN, infinite, zero or negative).
    #[error("{what}: {value} is not a valid power limit; allowed {range}")]
    Invalid {
        /// The control.
        what: String,
        /// The value given.
        value: String,
        /// The allowed range.
        range: String,
    },
    /// The value is outside the control's range.
    #[error("{what}: {} W is outside the allowed range {range}", watts_text(*value))]
    OutOfRange {
        /// The control.
        what: String,
        /// The value.
        value: f64,
        /// The allowed range.
        range: String,
    },
    /// The value is below the lowest limit the control may be given.
    #[error(
        "{what}: {} W is below the allowed range {range} (the minimum is {why}); give at least {lowest_watts} W, or clamp to apply that minimum (`--clamp`; `clamp: true` through the agent)",
        watts_text(*value)
    )]
    BelowMinimum {
        /// The control.
        what: String,
        /// The value.
        value: f64,
        /// The allowed range.
        range: String,
        /// The lowest limit.
        lowest_watts: f64,
        /// Where that minimum comes from.
        why: String,
    },
    /// The time window cannot be held by the control.
    #[error("{what}: a time window of {value} {detail}")]
    TimeWindow {
        /// The control.
        what: String,
        /// The window asked for, as text.
        value: String,
        /// Why not, with the windows allowed.
        detail: String,
    },
    /// A short-term limit below the long-term limit of the same domain.
    #[error(
        "{domain}: short_term limit {short_watts} W ({short_from}) is below the long_term limit {long_watts} W ({long_from}); a short-term limit must be at least the long-term one: raise the short-term limit or lower the long-term one"
    )]
    ShortBelowLong {
        /// The domain.
        domain: String,
        /// The short-term limit.
        short_watts: f64,
        /// Whether it was asked for or is in force.
        short_from: &'static str,
        /// The long-term limit.
        long_watts: f64,
        /// Whether it was asked for or is in force.
        long_from: &'static str,
    },
    /// A stop was asked (SIGINT, SIGTERM) during a write session; what had been written was
    /// restored (or could not be).
    #[error("stopped before the next write; {rollback}")]
    Stopped {
        /// What the rollback did.
        rollback: String,
    },
    /// The control is locked.
    #[error("{what} is locked and cannot be changed")]
    Locked {
        /// The control.
        what: String,
    },
    /// No such domain or control on this node.
    #[error("{what} does not exist on this node; {available}")]
    NoSuchControl {
        /// What was asked.
        what: String,
        /// What exists.
        available: String,
    },
    /// The limits of the domain could not be read (a malformed or unreadable limit file).
    #[error("{what} cannot be changed: its limits cannot be read: {why}")]
    Unreadable {
        /// The control.
        what: String,
        /// Why, naming the file.
        why: String,
    },
    /// The hardware refused a write.
    #[error("{what}: {source}")]
    Hardware {
        /// The control.
        what: String,
        /// The error.
        #[source]
        source: HwError,
    },
    /// The value read back is not the value written.
    #[error("{what}: wrote {requested} W but read back {read_back}")]
    ReadBack {
        /// The control.
        what: String,
        /// Written.
        requested: f64,
        /// Read back.
        read_back: String,
    },
    /// A write failed part way; what had been written was restored (or could not be).
    #[error("{cause}; {rollback}")]
    RolledBack {
        /// The failure.
        cause: Box<CapError>,
        /// What the rollback did.
        rollback: String,
    },
    /// The node cap could not be split.
    #[error(transparent)]
    Allocation(#[from] AllocError),
    /// A node cap above what the node can draw with every limit at its maximum.
    #[error(
        "node cap {} W is above the most this node can draw with every limit at its maximum ({most_watts:.1} W); allowed [{least_watts:.1} W .. {most_watts:.1} W], or reset the caps to lift them",
        watts_text(*watts)
    )]
    AboveNodeMaximum {
        /// The cap asked for.
        watts: f64,
        /// The most the node can draw.
        most_watts: f64,
        /// The least it can be held to.
        least_watts: f64,
    },
    /// A state file that could not be read (the message names it and what failed).
    #[error("{0}")]
    File(String),
    /// The state directory or journal could not be used.
    #[error("{} {}: {detail}", state_kind(path), path.display())]
    State {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A state file or directory someone other than this process's user or root could have
    /// written.
    #[error(transparent)]
    Untrusted(#[from] trust::Untrusted),
}

/// One requested change.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Catalog index of the domain.
    pub index: usize,
    /// The change.
    pub write: LimitWrite,
}

/// One validated change, ready to apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    /// Catalog index.
    pub index: usize,
    /// The domain.
    pub id: DomainId,
    /// The journal key of the control.
    pub key: ControlKey,
    /// Where it lives.
    pub source: String,
    /// The change.
    pub write: LimitWrite,
    /// The limit before the change.
    pub previous: PowerLimit,
}

/// One applied change.
#[derive(Clone, Debug, PartialEq)]
pub struct Done {
    /// The change as planned.
    pub planned: Planned,
    /// The limit read back after writing, watts.
    pub read_back_watts: Option<f64>,
}

/// What a restore did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Restored {
    /// Controls put back.
    pub restored: Vec<ControlKey>,
    /// Controls that could not be put back, with the reason (they stay in the journal).
    pub failed: Vec<(ControlKey, String)>,
    /// Sysfs attributes (frequency settings) put back, relative to the root.
    pub files_restored: Vec<String>,
    /// Sysfs attributes that could not be put back, with the reason.
    pub files_failed: Vec<(String, String)>,
}

/// The journal key of a control.
pub fn key_of(info: &DomainInfo, constraint: &str) -> ControlKey {
    ControlKey {
        provider: info.provider.to_string(),
        domain: info.id.to_string(),
        constraint: constraint.to_string(),
    }
}

/// Capping on one node: its platform and its journal.
pub struct Capper<'a> {
    platform: &'a mut Platform,
    journal: Journal,
    via: String,
}

impl<'a> Capper<'a> {
    /// Opens the journal of `state` (under its lock: see [`StateDir::journal`]). If a previous
    /// run died while writing, the originals of every journaled control and sysfs attribute
    /// (under `root`) are put back first, and what that did is returned. `via` names the caller in
    /// the journal (`powerstack cap node 800`).
    pub fn open(
        platform: &'a mut Platform,
        root: &powerstack_hw::Root,
        state: &StateDir,
        via: &str,
    ) -> Result<(Capper<'a>, Option<Restored>), CapError> {
        let mut journal = state.journal(via)?;
        let recovered = recover(&mut journal, platform, root)?;
        Ok((Capper { platform, journal, via: via.to_string() }, recovered))
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The platform.
    pub fn platform(&mut self) -> &mut Platform {
        self.platform
    }

    /// Validates every request against the current limits; writes nothing (see [`plan`]).
    pub fn plan(&self, requests: &[Request]) -> Result<Vec<Planned>, CapError> {
        plan(self.platform.catalog(), requests)
    }

    /// Applies a plan: records the originals, writes each change, reads it back, and on the first
    /// failure restores what this call had already written, in reverse order.
    pub fn apply(&mut self, plan: &[Planned]) -> Result<Vec<Done>, CapError> {
        self.apply_until(plan, &mut || false)
    }

    /// [`Capper::apply`], asking `stop` before each write whether to go on: when it says stop
    /// (the caller's SIGINT or SIGTERM), nothing more is written, what this call had written is
    /// restored, in reverse order, and the answer is [`CapError::Stopped`].
    pub fn apply_until(
        &mut self,
        plan: &[Planned],
        stop: &mut dyn FnMut() -> bool,
    ) -> Result<Vec<Done>, CapError> {
        let originals =
            plan.iter().map(|p| (p.key.clone(), p.source.clone(), setting(&p.previous))).collect();
        self.journal.begin(originals, &self.via)?;
        let mut done: Vec<Done> = Vec::new();
        for p in plan {
            let outcome = if stop() { Err(None) } else { self.write_and_check(p).map_err(Some) };
            match outcome {
                Ok(read_back_watts) => done.push(Done { planned: p.clone(), read_back_watts }),
                Err(cause) => {
                    let rollback = self.roll_back(&done);
                    // The session is over either way; what was restored is as before.
                    let _ = self.journal.finish();
                    return Err(match cause {
                        Some(cause) => CapError::RolledBack { cause: Box::new(cause), rollback },
                        None => CapError::Stopped { rollback },
                    });
                }
            }
        }
        let by = journal::current_user();
        let at = journal::now_unix_us();
        for d in &done {
            let written = Written {
                limit_watts: d.read_back_watts.unwrap_or(d.planned.write.limit_watts),
                at_unix_us: at,
                by: by.clone(),
                via: self.via.clone(),
            };
            self.journal.record_write(&d.planned.key, written);
        }
        self.journal.finish()?;
        Ok(done)
    }

    /// What opening the journal had to say (see [`Journal::notes`]).
    pub fn notes(&self) -> &[String] {
        self.journal.notes()
    }

    /// Restores every journaled power limit to its original setting (each checked against the
    /// domain's range like any write, and read back) and forgets the ones restored; the others
    /// stay, with the reason. Frequency settings are restored by `powerstack pools reset`.
    pub fn reset(&mut self) -> Result<Restored, CapError> {
        self.reset_until(&mut || false)
    }

    /// [`Capper::reset`], asking `stop` before each write whether to go on: when it says stop,
    /// the limits already put back get the values they had before this call, the journal keeps
    /// every entry, and the answer is [`CapError::Stopped`].
    pub fn reset_until(&mut self, stop: &mut dyn FnMut() -> bool) -> Result<Restored, CapError> {
        restore_limits(&mut self.journal, self.platform, |_| true, stop)
    }

    /// Restores the journaled power limits whose last write `via` starts with `prefix` (what one
    /// caller, such as the agent, changed) and forgets them; other entries stay.
    pub fn reset_written_by(&mut self, prefix: &str) -> Result<Restored, CapError> {
        let by = |e: &Entry| e.last_written.as_ref().is_some_and(|w| w.via.starts_with(prefix));
        restore_limits(&mut self.journal, self.platform, by, &mut || false)
    }

    fn write_and_check(&mut self, p: &Planned) -> Result<Option<f64>, CapError> {
        let what = format!("{} {}", p.id, p.write.constraint);
        self.platform
            .write_limit(p.index, &p.write)
            .map_err(|source| CapError::Hardware { what: what.clone(), source })?;
        read_back(self.platform, p.index, &p.write, Some(p.write.limit_watts))
    }

    fn roll_back(&mut self, done: &[Done]) -> String {
        let writes: Vec<(usize, String, LimitWrite)> = done
            .iter()
            .map(|d| {
                let back =
                    restore_write(&d.planned.write.constraint, &setting(&d.planned.previous));
                (d.planned.index, d.planned.key.to_string(), back)
            })
            .collect();
        put_back(self.platform, &writes, "already written")
    }
}

/// Writes `writes` in reverse order (putting back what a session changed) and says what it did:
/// `restored the N limit(s) WHAT`, or which could not be restored.
fn put_back(platform: &mut Platform, writes: &[(usize, String, LimitWrite)], what: &str) -> String {
    if writes.is_empty() {
        return "nothing had been written".to_string();
    }
    let failed: Vec<String> = writes
        .iter()
        .rev()
        .filter_map(|(i, name, w)| {
            platform.write_limit(*i, w).err().map(|e| format!("{name}: {e}"))
        })
        .collect();
    if failed.is_empty() {
        format!("restored the {} limit(s) {what}", writes.len())
    } else {
        format!(
            "could not restore {} limit(s): {}; run `powerstack cap reset`",
            failed.len(),
            failed.join("; ")
        )
    }
}

/// Checks the limit read back after writing `write` to catalog entry `index`: `expected` watts
/// within what hardware rounds (or, for `None`, no limit or 0: "uncapped"), and a requested enable
/// that took. Returns the value read back.
fn read_back(
    platform: &Platform,
    index: usize,
    write: &LimitWrite,
    expected: Option<f64>,
) -> Result<Option<f64>, CapError> {
    let what = platform
        .catalog()
        .get(index)
        .map_or_else(|| format!("domain #{index}"), |d| d.id.to_string());
    let what = format!("{what} {}", write.constraint);
    let now = platform.catalog().get(index).and_then(|d| d.limit(&write.constraint)).cloned();
    let read = now.as_ref().and_then(|l| l.limit_watts);
    let matches = match (read, expected) {
        (Some(r), Some(e)) => (r - e).abs() <= readback_tolerance(e),
        (None, None) => true,
        (Some(r), None) => r.abs() <= readback_tolerance(0.0),
        (None, Some(_)) => false,
    };
    if !matches {
        return Err(CapError::ReadBack {
            what,
            requested: write.limit_watts,
            read_back: read.map(|w| format!("{w} W")).unwrap_or_else(|| "nothing".into()),
        });
    }
    if write.enabled == Some(true) && now.as_ref().and_then(|l| l.enabled) == Some(false) {
        return Err(CapError::ReadBack {
            what: format!("{what} enable"),
            requested: write.limit_watts,
            read_back: "the limit still disabled (locked by the firmware?)".into(),
        });
    }
    Ok(read)
}

#[cfg(test)]
mod tests;
