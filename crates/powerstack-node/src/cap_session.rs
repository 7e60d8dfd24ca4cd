//! One cap session, shared by `powerstack cap` and the agent's `/v1/caps`: what a change asks
//! for ([`CapChange`]), the domains it names, the limits it writes, its validation before anything
//! is locked ([`CapSession::prepare`]), its write under the journal ([`CapSession::commit`]), the
//! reset ([`CapSession::reset`]), the limits in force ([`CapSession::show`]), and one mapping of
//! its errors to a status ([`SessionError::status`]).

use std::ops::RangeInclusive;
use std::time::Duration;

use powerstack_api::Origin;
use powerstack_api::cap::{CAP_SCHEMA, CapResultV1, CapsV1, NodeCapRangeV1};
use powerstack_api::v1::HeaderV1;
use powerstack_cap::{CapError, Capper, ControlKey, Policy, Request, StateDir};
use powerstack_hw::{Platform, Root};
use powerstack_model::{DomainInfo, DomainKind, LimitWrite, PowerReport};

use crate::cap_report::{
    caps_document, planned_reset_writes, recovered_lines, restored_writes, write_doc,
};

/// The domains a change names: every domain of a kind, or those of one index, or of one die.
#[derive(Clone, Debug, PartialEq)]
pub struct DomainTarget {
    /// The kind of domain (`package`, `memory`, `gpu`, ...).
    pub kind: DomainKind,
    /// Only the domains with this index (a socket, a GPU); every one when `None`.
    pub index: Option<u32>,
    /// Only this die of a multi-die package; every die when `None`.
    pub die: Option<u32>,
}

/// One limit to write on each domain a change names.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitChange {
    /// The limit (`long_term`, `short_term`, `cap`); the one a node cap uses for the kind when
    /// `None`.
    pub constraint: Option<String>,
    /// The new limit, watts.
    pub limit_watts: f64,
    /// The new averaging window, seconds; unchanged when `None`.
    pub time_window_s: Option<f64>,
}

/// What a cap change asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum CapChange {
    /// Limits on the domains of one kind.
    Domain {
        /// Which domains.
        target: DomainTarget,
        /// The limits written on each, in order.
        limits: Vec<LimitChange>,
        /// Apply a domain's lowest allowed limit when one asked is below it.
        clamp: bool,
    },
    /// A node cap, split over the cappable domains by a policy from a measurement of the node.
    Node {
        /// The node cap, watts (above 0).
        node_watts: f64,
        /// How it is split.
        policy: Policy,
        /// Apply the lowest cap the node can reach when the one asked is below it.
        clamp: bool,
    },
}

impl CapChange {
    /// The command that names this change, as `powerstack cap` does (`socket`, `mem`, `gpu`,
    /// `node`, or the domain kind).
    pub fn command(&self) -> String {
        match self {
            CapChange::Node { .. } => "node".into(),
            CapChange::Domain { target, .. } => match target.kind {
                DomainKind::Package => "socket".into(),
                DomainKind::Memory => "mem".into(),
                kind => kind.to_string(),
            },
        }
    }
}

/// What a node cap was split from: the node measured over a window, and what could not be read.
pub struct Measurement {
    /// Power of every domain over the window.
    pub report: PowerReport,
    /// Domains the measurement could not read (a failed read, a counter that stood still).
    pub warnings: Vec<String>,
}

impl Measurement {
    /// Measures `platform` for a node cap: power over `wait` (the caller's wait, one a stop
    /// signal may end), and what could not be read (a failed read, a counter that stood still:
    /// its power is then unknown to the split).
    pub fn take(platform: &mut Platform, wait: impl FnOnce()) -> Measurement {
        let report = platform.measure_with(wait);
        let warnings = platform.take_warnings().iter().map(ToString::to_string).collect();
        Measurement { report, warnings }
    }
}

/// How long a node cap may measure the node before splitting it: 10 ms to 60 s.
pub const NODE_MEASURE: RangeInclusive<Duration> =
    Duration::from_millis(10)..=Duration::from_secs(60);

/// The file in the state directory where an agent keeps a node cap standing (split again as what
/// cannot be capped moves, and applied again by the next agent).
pub const STANDING_CAP_FILE: &str = "node-cap.json";

/// Ends the node cap an agent on `state_dir` keeps standing (its [`STANDING_CAP_FILE`]), as a
/// reset does, so that the next agent does not cap the node again.
pub fn end_standing_cap(state_dir: &std::path::Path) -> Result<(), String> {
    let path = state_dir.join(STANDING_CAP_FILE);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("removing the standing node cap {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

/// How long `cap show` measures the node for the node cap range's uncappable power: 200 ms.
pub const SHOW_MEASURE: Duration = Duration::from_millis(200);

/// How long a node cap measures the node when not told: 500 ms.
pub const NODE_MEASURE_DEFAULT: Duration = Duration::from_millis(500);

impl CapChange {
    /// A node cap of `node_watts` split by `policy`: refused unless the watts are positive and
    /// finite.
    pub fn node(node_watts: f64, policy: Policy, clamp: bool) -> Result<CapChange, String> {
        if !node_watts.is_finite() || node_watts <= 0.0 {
            return Err(format!(
                "node cap {} W is not a valid power limit: give a positive number of watts",
                powerstack_cap::watts_text(node_watts)
            ));
        }
        Ok(CapChange::Node { node_watts, policy, clamp })
    }
}

/// Why a cap session did not do what it was asked. [`SessionError::status`] is the one mapping of
/// these to an HTTP status; the CLI exits 1 on each (128 + the signal on [`CapError::Stopped`]).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The change names what this node does not have, or a limit it cannot take.
    #[error("{0}")]
    NotOnNode(String),
    /// A node cap without a measurement of the node, or the measurement could not be made.
    #[error("{0}")]
    Unmeasured(String),
    /// Capping refused or failed (validation, the journal, the lock, a write).
    #[error(transparent)]
    Cap(#[from] CapError),
    /// A reset put back what it could, but not every limit: `doc` says what it did.
    #[error(
        "{} limit(s) could not be restored ({}); they stay in the journal for the next reset",
        .failed.len(), .failed.join("; ")
    )]
    NotRestored {
        /// `KEY: why`, one per limit not put back.
        failed: Vec<String>,
        /// What the reset did (the limits it put back, and a warning for each failure).
        doc: Box<CapResultV1>,
    },
}

impl SessionError {
    /// The HTTP status of the error: 503 when the state directory or a measurement is not
    /// available now, 422 when the node cannot do what was asked.
    pub fn status(&self) -> u16 {
        match self {
            SessionError::Cap(CapError::State { .. } | CapError::File(_))
            | SessionError::Unmeasured(_) => 503,
            SessionError::NotOnNode(_)
            | SessionError::Cap(_)
            | SessionError::NotRestored { .. } => 422,
        }
    }
}

/// A change validated against the node: what it writes, and what a dry run answers.
pub struct Prepared {
    requests: Vec<Request>,
    /// The document of the change as planned (`dry_run` true, no read-back values).
    pub doc: CapResultV1,
    /// Warnings of the measurement, carried into the committed document.
    measured: Vec<String>,
}

/// A change written.
pub struct Committed {
    /// What was written, read back.
    pub doc: CapResultV1,
    /// The controls written (the agent keeps them in its restore-on-exit set).
    pub changed: Vec<ControlKey>,
}

/// A reset done, or planned on a dry run.
pub struct ResetDone {
    /// What was put back.
    pub doc: CapResultV1,
    /// The controls put back (by the reset, and by a recovery before it).
    pub restored: Vec<ControlKey>,
    failed: Vec<String>,
}

impl ResetDone {
    /// The document when every limit was put back, else [`SessionError::NotRestored`] with it.
    pub fn into_result(self) -> Result<CapResultV1, SessionError> {
        if self.failed.is_empty() {
            Ok(self.doc)
        } else {
            Err(SessionError::NotRestored { failed: self.failed, doc: Box::new(self.doc) })
        }
    }
}

/// Capping on one node: its platform, its root, its state directory and who it is.
pub struct CapSession<'a> {
    /// The node's platform (limits are refreshed from the hardware before each step).
    pub platform: &'a mut Platform,
    /// The node's root (for the recovery of interrupted frequency writes).
    pub root: &'a Root,
    /// The state directory holding the journal.
    pub state: &'a StateDir,
    /// The node the documents speak of.
    pub origin: &'a Origin,
}

impl CapSession<'_> {
    /// Validates `change` against the node's limits as they are now: nothing is locked, created
    /// or written. A node cap needs `measurement`.
    pub fn prepare(
        &mut self,
        change: &CapChange,
        measurement: Option<Measurement>,
    ) -> Result<Prepared, SessionError> {
        let warnings: Vec<String> =
            self.platform.refresh_limits().iter().map(ToString::to_string).collect();
        let catalog = self.platform.catalog();
        let (requests, mut doc, measured) = match change {
            CapChange::Domain { target, limits, clamp } => {
                let mut requests = domain_requests(catalog, target, limits)?;
                let clamped = *clamp && powerstack_cap::clamp_to_lowest(catalog, &mut requests);
                let mut doc = result_doc(self.origin, change.command(), true);
                doc.clamped = clamped;
                (requests, doc, Vec::new())
            }
            CapChange::Node { node_watts, policy, clamp } => {
                let Some(m) = measurement else {
                    return Err(SessionError::Unmeasured(
                        "a node cap needs a measurement of the node".into(),
                    ));
                };
                let plan =
                    powerstack_cap::plan_node_cap(catalog, &m.report, *node_watts, *policy, *clamp)
                        .map_err(|e| SessionError::NotOnNode(e.to_string()))?;
                let mut doc = result_doc(self.origin, change.command(), true);
                doc.policy = Some(policy.as_str().to_string());
                doc.node_cap_watts = Some(*node_watts);
                doc.uncappable_watts = Some(plan.allocation.uncappable_watts);
                doc.clamped = plan.allocation.clamped;
                (plan.requests, doc, m.warnings)
            }
        };
        let plan = powerstack_cap::plan(catalog, &requests)
            .map_err(|e| powerstack_cap::unreadable_limits(e, &warnings))?;
        doc.writes = plan.iter().filter_map(|p| write_doc(catalog, p, None)).collect();
        doc.warnings = measured.iter().cloned().chain(warnings).collect();
        Ok(Prepared { requests, doc, measured })
    }

    /// Writes a prepared change under the state directory's lock: the journal first (after
    /// recovering an interrupted run), the limits planned again against the hardware's values,
    /// each write read back, everything rolled back on the first failure or when `stop` says so
    /// before a write. `via` is the journal's "who set it".
    pub fn commit(
        &mut self,
        prepared: Prepared,
        via: &str,
        stop: &mut dyn FnMut() -> bool,
    ) -> Result<Committed, SessionError> {
        let Prepared { requests, doc: planned, measured } = prepared;
        let (done, recovered, warnings) = {
            let (mut capper, recovered) = Capper::open(self.platform, self.root, self.state, via)?;
            // Limits may have changed before the lock was had (a recovery, another writer):
            // plan again against the hardware's values, which the journal records as originals.
            let refreshed = capper.platform().refresh_limits();
            let plan = capper.plan(&requests)?;
            let done = capper.apply_until(&plan, stop)?;
            let warnings: Vec<String> = measured
                .into_iter()
                .chain(refreshed.iter().map(ToString::to_string))
                .chain(capper.notes().iter().cloned())
                .collect();
            (done, recovered, warnings)
        };
        let catalog = self.platform.catalog();
        let mut doc = CapResultV1 { dry_run: false, ..planned };
        doc.writes =
            done.iter().filter_map(|d| write_doc(catalog, &d.planned, d.read_back_watts)).collect();
        if let Some(uncappable) = doc.uncappable_watts {
            let read_back: Vec<(usize, f64)> =
                done.iter().filter_map(|d| Some((d.planned.index, d.read_back_watts?))).collect();
            doc.node_read_back_watts =
                powerstack_cap::node_read_back_watts(catalog, uncappable, &read_back);
        }
        doc.recovered = recovered.as_ref().map(recovered_lines).unwrap_or_default();
        doc.warnings = warnings;
        Ok(Committed { doc, changed: done.into_iter().map(|d| d.planned.key).collect() })
    }

    /// Puts back every limit in the journal (on a dry run, or with nothing journaled, only says
    /// what it would put back: nothing is locked or created). A journal of another node is
    /// refused. Limits that could not be put back are in [`ResetDone::into_result`].
    pub fn reset(
        &mut self,
        dry_run: bool,
        via: &str,
        stop: &mut dyn FnMut() -> bool,
    ) -> Result<ResetDone, SessionError> {
        let journal = self.state.read()?;
        if let Some(j) = &journal {
            j.check_node(self.state.node())?;
        }
        let mut doc = result_doc(self.origin, "reset".into(), dry_run);
        if dry_run || journal.is_none() {
            // Without a journal there is nothing to restore: nothing is locked or created.
            if let Some(journal) = &journal {
                doc.writes = planned_reset_writes(self.platform.catalog(), journal);
            }
            return Ok(ResetDone { doc, restored: Vec::new(), failed: Vec::new() });
        }
        let (restored, recovered, notes) = {
            let (mut capper, recovered) = Capper::open(self.platform, self.root, self.state, via)?;
            let restored = capper.reset_until(stop)?;
            (restored, recovered, capper.notes().to_vec())
        };
        let keys: Vec<ControlKey> = restored
            .restored
            .iter()
            .chain(recovered.iter().flat_map(|r| r.restored.iter()))
            .cloned()
            .collect();
        doc.recovered = recovered.as_ref().map(recovered_lines).unwrap_or_default();
        doc.writes = restored_writes(self.platform.catalog(), &keys);
        doc.warnings = notes;
        doc.warnings
            .extend(restored.failed.iter().map(|(k, why)| format!("could not restore {k}: {why}")));
        let failed = restored.failed.iter().map(|(k, why)| format!("{k}: {why}")).collect();
        Ok(ResetDone { doc, restored: keys, failed })
    }

    /// Every limit of the node as the hardware has it now, with its range and who set it, and
    /// the node cap range from a recent power `report` (without one, nothing counts as
    /// uncappable).
    pub fn show(&mut self, report: Option<&PowerReport>) -> CapsV1 {
        let warnings: Vec<String> =
            self.platform.refresh_limits().iter().map(ToString::to_string).collect();
        let catalog = self.platform.catalog();
        let mut doc = caps_document(self.origin, catalog, self.state, warnings);
        let unmeasured =
            PowerReport { interval_s: 0.0, unix_us: 0, domains: Vec::new(), node: None };
        doc.node =
            powerstack_cap::node_cap_range(catalog, report.unwrap_or(&unmeasured)).map(|r| {
                NodeCapRangeV1 {
                    min_watts: r.min_watts,
                    max_watts: r.max_watts,
                    uncappable_watts: r.uncappable_watts,
                    cap_in_force_watts: r.cap_in_force_watts,
                    standing_watts: None,
                }
            });
        doc
    }
}

impl crate::open::OpenNode {
    /// A cap session on this node with the state directory `state` ([`OpenNode::state`]).
    ///
    /// [`OpenNode::state`]: crate::open::OpenNode::state
    pub fn cap_session<'a>(&'a mut self, state: &'a StateDir) -> CapSession<'a> {
        CapSession {
            platform: &mut self.discovery.platform,
            root: &self.root,
            state,
            origin: &self.origin,
        }
    }
}

/// How a domain kind is named in messages.
fn noun(kind: DomainKind) -> String {
    match kind {
        DomainKind::Package => "CPU package".into(),
        DomainKind::Gpu => "GPU".into(),
        kind => kind.to_string(),
    }
}

/// Catalog indices of the domains `target` names.
pub fn select(catalog: &[DomainInfo], target: &DomainTarget) -> Result<Vec<usize>, SessionError> {
    let DomainTarget { kind, index, die } = *target;
    let of_kind: Vec<usize> = (0..catalog.len()).filter(|&i| catalog[i].id.kind == kind).collect();
    if of_kind.is_empty() {
        return Err(SessionError::NotOnNode(format!(
            "this node has no {} domain that powerstack can see",
            noun(kind)
        )));
    }
    let chosen: Vec<usize> = of_kind
        .iter()
        .copied()
        .filter(|&i| index.is_none_or(|n| catalog[i].id.index == n))
        .filter(|&i| die.is_none_or(|d| catalog[i].id.die == Some(d)))
        .collect();
    if chosen.is_empty() {
        let names: Vec<String> = of_kind.iter().map(|&i| catalog[i].id.to_string()).collect();
        let mut asked = format!("{kind}-{}", index.map_or("*".into(), |n| n.to_string()));
        if let Some(d) = die {
            asked.push_str(&format!("-die-{d}"));
        }
        return Err(SessionError::NotOnNode(format!(
            "{asked} does not exist on this node; it has {}",
            names.join(", ")
        )));
    }
    Ok(chosen)
}

/// The write of one limit: a long-term limit written is also enabled.
pub fn limit_write(constraint: &str, limit_watts: f64, time_window_s: Option<f64>) -> LimitWrite {
    let enabled = (constraint == "long_term").then_some(true);
    LimitWrite { constraint: constraint.to_string(), limit_watts, time_window_s, enabled }
}

/// The requests of a domain change: each limit on each chosen domain, in order.
fn domain_requests(
    catalog: &[DomainInfo],
    target: &DomainTarget,
    limits: &[LimitChange],
) -> Result<Vec<Request>, SessionError> {
    let chosen = select(catalog, target)?;
    let mut requests = Vec::new();
    for &index in &chosen {
        for l in limits {
            let constraint = match l.constraint.as_deref() {
                Some(c) => c,
                // Which limits a domain has is the node's business, not the request's shape.
                None => powerstack_cap::node_cap_constraint(target.kind).ok_or_else(|| {
                    SessionError::NotOnNode(format!(
                        "missing field `constraint`: {} domains have no default limit; name one of {}",
                        target.kind,
                        limit_names(catalog, &chosen)
                    ))
                })?,
            };
            requests.push(Request {
                index,
                write: limit_write(constraint, l.limit_watts, l.time_window_s),
            });
        }
    }
    Ok(requests)
}

fn limit_names(catalog: &[DomainInfo], chosen: &[usize]) -> String {
    let mut names: Vec<&str> = chosen
        .iter()
        .filter_map(|&i| catalog.get(i))
        .flat_map(|d| d.limits.iter().map(|l| l.name.as_str()))
        .collect();
    names.dedup();
    if names.is_empty() { "(none: it cannot be capped)".into() } else { names.join(", ") }
}

fn result_doc(origin: &Origin, command: String, dry_run: bool) -> CapResultV1 {
    CapResultV1 {
        header: HeaderV1::new(CAP_SCHEMA, origin),
        command,
        dry_run,
        policy: None,
        node_cap_watts: None,
        uncappable_watts: None,
        clamped: false,
        node_read_back_watts: None,
        writes: Vec::new(),
        recovered: Vec::new(),
        warnings: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
