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
pub mod report;
mod restore;
pub mod state;

use powerstack_hw::{HwError, Platform};
use powerstack_model::{DomainId, DomainInfo, DomainKind, LimitWrite, PowerLimit, PowerReport};

pub use allocate::{AllocError, Allocation, Cappable, Policy, allocate};
pub use journal::{ControlKey, Entry, FileEntry, FileWritten, Journal, Setting, Written};
pub use restore::recover;
use restore::{restore_limits, restore_write, setting};
pub use state::{DEFAULT_STATE_DIR, Holder, NodeId, StateDir, StateLock, state_dir_for};

/// When the hardware reports no minimum for a limit, node-cap policies never go below this share
/// of the domain's maximum (single-domain caps accept any positive value in that case).
pub const ASSUMED_MIN_SHARE: f64 = 0.25;

/// Largest difference accepted between a limit written and the value read back: hardware rounds
/// (RAPL to its power unit, amdgpu to whole watts).
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
    #[error("{what}: {value} W is outside the allowed range {range}")]
    OutOfRange {
        /// The control.
        what: String,
        /// The value.
        value: f64,
        /// The allowed range.
        range: String,
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
        "node cap {watts} W is above the most this node can draw with every limit at its maximum ({most_watts:.1} W); allowed [{least_watts:.1} W .. {most_watts:.1} W], or reset the caps to lift them"
    )]
    AboveNodeMaximum {
        /// The cap asked for.
        watts: f64,
        /// The most the node can draw.
        most_watts: f64,
        /// The least it can be held to.
        least_watts: f64,
    },
    /// The state directory or journal could not be used.
    #[error("state directory {path}: {detail}")]
    State {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What went wrong.
        detail: String,
    },
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

/// The allowed range of a limit, as text.
pub fn range_text(limit: &PowerLimit) -> String {
    let min = limit
        .min_watts
        .filter(|m| *m > 0.0)
        .map(|m| format!("{m} W"))
        .unwrap_or_else(|| "above 0 W".into());
    let max = limit
        .max_watts
        .filter(|m| *m > 0.0)
        .map(|m| format!("{m} W"))
        .unwrap_or_else(|| "no known maximum".into());
    format!("[{min} .. {max}]")
}

/// Checks a write against the domain's limit: a finite positive value, at least the known minimum,
/// at most the known maximum; the limit exists and is not locked. Returns the current limit.
pub fn validate(info: &DomainInfo, write: &LimitWrite) -> Result<PowerLimit, CapError> {
    let what = format!("{} {}", info.id, write.constraint);
    let Some(limit) = info.limit(&write.constraint) else {
        let names: Vec<&str> = info.limits.iter().map(|l| l.name.as_str()).collect();
        return Err(CapError::NoSuchControl {
            what,
            available: if names.is_empty() {
                "it has no power limit".into()
            } else {
                format!("its limits are {}", names.join(", "))
            },
        });
    };
    let range = range_text(limit);
    let w = write.limit_watts;
    if !w.is_finite() || w <= 0.0 {
        return Err(CapError::Invalid { what, value: format!("{w}"), range });
    }
    if limit.locked {
        return Err(CapError::Locked { what });
    }
    let below = limit.min_watts.is_some_and(|m| m > 0.0 && w < m - 1e-9);
    let above = limit.max_watts.is_some_and(|m| m > 0.0 && w > m + 1e-9);
    if below || above {
        return Err(CapError::OutOfRange { what, value: w, range });
    }
    if let Some(t) = write.time_window_s
        && !(t.is_finite() && t > 0.0)
    {
        return Err(CapError::Invalid {
            what: format!("{what} time window"),
            value: format!("{t} s"),
            range: "above 0 s".into(),
        });
    }
    Ok(limit.clone())
}

/// The journal key of a control.
pub fn key_of(info: &DomainInfo, constraint: &str) -> ControlKey {
    ControlKey {
        provider: info.provider.to_string(),
        domain: info.id.to_string(),
        constraint: constraint.to_string(),
    }
}

/// The limit a node cap sets on a domain of this kind: the package and memory long-term limit, the
/// GPU cap.
pub fn node_cap_constraint(kind: DomainKind) -> Option<&'static str> {
    match kind {
        DomainKind::Package | DomainKind::Memory => Some("long_term"),
        DomainKind::Gpu => Some("cap"),
        _ => None,
    }
}

/// The domains a node cap can be spread over (catalog index and bounds), and the measured power of
/// what cannot be capped, from a recent power report.
pub fn node_cap_inputs(
    catalog: &[DomainInfo],
    report: &PowerReport,
) -> (Vec<(usize, Cappable)>, f64) {
    let mut cappable = Vec::new();
    let mut capped_watts = 0.0;
    let mut uncapped_components = 0.0;
    for (i, info) in catalog.iter().enumerate() {
        let measured = report.domains.get(i).and_then(|d| d.power_watts);
        let limit =
            node_cap_constraint(info.id.kind).and_then(|c| info.limit(c)).filter(|l| !l.locked);
        match limit {
            Some(l) => {
                let max = l.max_watts.filter(|m| *m > 0.0).or(l.limit_watts).unwrap_or(0.0);
                if max <= 0.0 {
                    uncapped_components += measured.unwrap_or(0.0);
                    continue;
                }
                let min =
                    l.min_watts.filter(|m| *m > 0.0).unwrap_or(ASSUMED_MIN_SHARE * max).min(max);
                cappable.push((i, Cappable { id: info.id, min_watts: min, max_watts: max }));
                capped_watts += measured.unwrap_or(0.0);
            }
            None if matches!(
                info.id.kind,
                DomainKind::Package | DomainKind::Memory | DomainKind::Gpu
            ) =>
            {
                uncapped_components += measured.unwrap_or(0.0);
            }
            None => {}
        }
    }
    // With a direct node measurement, everything outside the cappable domains is uncappable
    // (fans, board, NICs, uncapped memory); otherwise only the uncapped components are known.
    // A node figure that contains a direct measure (a node meter, or psys) covers what the
    // components do not: the difference is uncappable.
    let direct = |i: &usize| catalog.get(*i).is_some_and(|d| d.id.kind.is_node_level());
    let uncappable = match &report.node {
        Some(n) => match &n.source {
            powerstack_model::NodeSource::Direct(_) => (n.watts - capped_watts).max(0.0),
            powerstack_model::NodeSource::Sum(parts) if parts.iter().any(direct) => {
                (n.watts - capped_watts).max(0.0)
            }
            powerstack_model::NodeSource::Sum(_) => uncapped_components,
        },
        None => uncapped_components,
    };
    (cappable, uncappable)
}

/// Validates every request against `catalog`; writes nothing. The whole list is checked before
/// anything can be applied, so a bad value never leaves a change half-made.
pub fn plan(catalog: &[DomainInfo], requests: &[Request]) -> Result<Vec<Planned>, CapError> {
    requests
        .iter()
        .map(|r| {
            let info = catalog.get(r.index).ok_or_else(|| CapError::NoSuchControl {
                what: format!("domain #{}", r.index),
                available: format!("the node has {} domains", catalog.len()),
            })?;
            let previous = validate(info, &r.write)?;
            Ok(Planned {
                index: r.index,
                id: info.id,
                key: key_of(info, &r.write.constraint),
                source: info.source.clone(),
                write: r.write.clone(),
                previous,
            })
        })
        .collect()
}

/// A node cap, planned: the requests to make and the split behind them.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeCapPlan {
    /// One request per cappable domain (long-term limits enabled, GPU caps).
    pub requests: Vec<Request>,
    /// How the cap was split.
    pub allocation: Allocation,
}

/// Splits a node cap of `watts` over `catalog`'s cappable domains with `policy`, from a recent
/// power `report` (for the power that cannot be capped). Refuses a cap that is not a positive
/// number of watts, one above what the node can draw (except with the Variorum policy, which
/// ignores everything but the packages), and one below what it can reach unless `clamp`.
pub fn plan_node_cap(
    catalog: &[DomainInfo],
    report: &PowerReport,
    watts: f64,
    policy: Policy,
    clamp: bool,
) -> Result<NodeCapPlan, CapError> {
    if !watts.is_finite() || watts <= 0.0 {
        return Err(CapError::Invalid {
            what: "node cap".into(),
            value: format!("{watts}"),
            range: "a positive number of watts".into(),
        });
    }
    let (cappable, uncappable) = node_cap_inputs(catalog, report);
    let domains: Vec<Cappable> = cappable.iter().map(|(_, c)| c.clone()).collect();
    if policy != Policy::Variorum {
        let most_watts = uncappable + domains.iter().map(|c| c.max_watts).sum::<f64>();
        let least_watts = uncappable + domains.iter().map(|c| c.min_watts).sum::<f64>();
        if watts > most_watts {
            return Err(CapError::AboveNodeMaximum { watts, most_watts, least_watts });
        }
    }
    let allocation = allocate(policy, watts, &domains, uncappable, clamp)?;
    let requests = allocation
        .shares
        .iter()
        .filter_map(|(id, share)| {
            let (i, _) = cappable.iter().find(|(_, c)| c.id == *id)?;
            let constraint = node_cap_constraint(id.kind)?;
            // Round to a milliwatt: hardware rounds further, and the read-back allows for it.
            let share = (share * 1000.0).round() / 1000.0;
            let enabled = (constraint == "long_term").then_some(true);
            Some(Request {
                index: *i,
                write: LimitWrite {
                    constraint: constraint.to_string(),
                    limit_watts: share,
                    time_window_s: None,
                    enabled,
                },
            })
        })
        .collect();
    Ok(NodeCapPlan { requests, allocation })
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
        let originals =
            plan.iter().map(|p| (p.key.clone(), p.source.clone(), setting(&p.previous))).collect();
        self.journal.begin(originals, &self.via)?;
        let mut done: Vec<Done> = Vec::new();
        for p in plan {
            match self.write_and_check(p) {
                Ok(read_back_watts) => done.push(Done { planned: p.clone(), read_back_watts }),
                Err(cause) => {
                    let rollback = self.roll_back(&done);
                    // The session is over either way; what was restored is as before.
                    let _ = self.journal.finish();
                    return Err(CapError::RolledBack { cause: Box::new(cause), rollback });
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
        restore_limits(&mut self.journal, self.platform, |_| true)
    }

    /// Restores the journaled power limits whose last write `via` starts with `prefix` (what one
    /// caller, such as the agent, changed) and forgets them; other entries stay.
    pub fn reset_written_by(&mut self, prefix: &str) -> Result<Restored, CapError> {
        restore_limits(&mut self.journal, self.platform, |e| {
            e.last_written.as_ref().is_some_and(|w| w.via.starts_with(prefix))
        })
    }

    fn write_and_check(&mut self, p: &Planned) -> Result<Option<f64>, CapError> {
        let what = format!("{} {}", p.id, p.write.constraint);
        self.platform
            .write_limit(p.index, &p.write)
            .map_err(|source| CapError::Hardware { what: what.clone(), source })?;
        read_back(self.platform, p.index, &p.write, Some(p.write.limit_watts))
    }

    fn roll_back(&mut self, done: &[Done]) -> String {
        if done.is_empty() {
            return "nothing had been written".to_string();
        }
        let mut failed = Vec::new();
        for d in done.iter().rev() {
            let back = restore_write(&d.planned.write.constraint, &setting(&d.planned.previous));
            if let Err(e) = self.platform.write_limit(d.planned.index, &back) {
                failed.push(format!("{}: {e}", d.planned.key));
            }
        }
        if failed.is_empty() {
            format!("restored the {} limit(s) already written", done.len())
        } else {
            format!(
                "could not restore {} limit(s): {}; run `powerstack cap reset`",
                failed.len(),
                failed.join("; ")
            )
        }
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
