//! The capping documents (`powerstack.cap.v1`, `powerstack.caps.v1`) built from a catalog and the
//! journal, shared by `powerstack cap` and the agent's `/v1/caps`.

use powerstack_api::Origin;
use powerstack_api::cap::{CAPS_SCHEMA, CapControlV1, CapWriteV1, CapsV1};
use powerstack_api::v1::{HeaderV1, LimitV1};
use powerstack_model::DomainInfo;

use powerstack_cap::{ControlKey, Journal, Planned, Restored, StateDir, key_of};

/// One write of a plan, as reported (`read_back` is `None` on a dry run).
pub fn write_doc(
    catalog: &[DomainInfo],
    p: &Planned,
    read_back: Option<f64>,
) -> Option<CapWriteV1> {
    let info = catalog.get(p.index)?;
    Some(CapWriteV1 {
        domain: info.id.kind.to_string(),
        index: info.id.index,
        constraint: p.write.constraint.clone(),
        previous_watts: p.previous.limit_watts,
        requested_watts: p.write.limit_watts,
        read_back_watts: read_back,
        time_window_s: p.write.time_window_s,
        provider: info.provider.to_string(),
        source: info.source.clone(),
    })
}

/// The limits a reset (and a recovery before it) put back, as reported: each one's value now,
/// read from `catalog` (which must have been read after the restore).
pub fn restored_writes<'a>(
    catalog: &[DomainInfo],
    restored: impl IntoIterator<Item = &'a ControlKey>,
) -> Vec<CapWriteV1> {
    let mut out = Vec::new();
    for key in restored {
        let Some(info) = catalog.iter().find(|d| key.matches(d)) else {
            continue;
        };
        let now = info.limit(&key.constraint);
        out.push(CapWriteV1 {
            domain: info.id.kind.to_string(),
            index: info.id.index,
            constraint: key.constraint.clone(),
            previous_watts: None,
            requested_watts: now.and_then(|l| l.limit_watts).unwrap_or(0.0),
            read_back_watts: now.and_then(|l| l.limit_watts),
            time_window_s: now.and_then(|l| l.time_window_s),
            provider: info.provider.to_string(),
            source: info.source.clone(),
        });
    }
    out
}

/// What `reset` would put back, without doing it: every journaled limit at its original, named
/// as the node's catalog names it (a journaled domain no longer on the node keeps its journaled
/// name, index 0).
pub fn planned_reset_writes(catalog: &[DomainInfo], journal: &Journal) -> Vec<CapWriteV1> {
    journal
        .entries()
        .iter()
        .map(|e| {
            let info = catalog.iter().find(|d| e.key.matches(d));
            CapWriteV1 {
                domain: info.map_or_else(|| e.key.domain.clone(), |i| i.id.kind.to_string()),
                index: info.map_or(0, |i| i.id.index),
                constraint: e.key.constraint.clone(),
                previous_watts: e.last_written.as_ref().map(|w| w.limit_watts),
                requested_watts: e.original.limit_watts.unwrap_or(0.0),
                read_back_watts: None,
                time_window_s: e.original.time_window_s,
                provider: e.key.provider.clone(),
                source: e.source.clone(),
            }
        })
        .collect()
}

/// Lines saying what a recovery after an interrupted run did.
pub fn recovered_lines(r: &Restored) -> Vec<String> {
    let mut lines: Vec<String> = r
        .restored
        .iter()
        .map(|k| format!("a previous run was interrupted while writing; restored {k}"))
        .collect();
    lines.extend(r.failed.iter().map(|(k, why)| format!("could not restore {k}: {why}")));
    lines.extend(
        r.files_restored
            .iter()
            .map(|p| format!("a previous run was interrupted while writing; restored {p}")),
    );
    lines.extend(r.files_failed.iter().map(|(p, why)| format!("could not restore {p}: {why}")));
    lines
}

/// Every limit of `catalog` with its range and who set it (from the journal in `state`, when
/// there is one and it belongs to this node: a missing journal means powerstack never wrote a
/// limit here).
pub fn caps_document(
    origin: &Origin,
    catalog: &[DomainInfo],
    state: &StateDir,
    mut warnings: Vec<String>,
) -> CapsV1 {
    let journal = state
        .read()
        .and_then(|j| match j {
            Some(j) => j.check_node(state.node()).map(|()| Some(j)),
            None => Ok(None),
        })
        .unwrap_or_else(|e| {
            warnings.push(format!("who set the limits is unknown: {e}"));
            None
        });
    if let Some(p) = journal.as_ref().and_then(|j| j.in_progress()) {
        warnings.push(format!(
            "a previous run (pid {}, {}) was interrupted while writing limits; the next cap change restores the originals",
            p.pid, p.via
        ));
    }
    let mut controls = Vec::new();
    for info in catalog {
        for l in &info.limits {
            let entry = journal.as_ref().and_then(|j| j.entry(&key_of(info, &l.name)));
            let (set_by, detail, at, original) = match entry {
                Some(e) => {
                    let last = e.last_written.as_ref();
                    let in_force = match (last, l.limit_watts) {
                        (Some(w), Some(now)) => (w.limit_watts - now).abs() <= 0.5,
                        _ => false,
                    };
                    let by = if in_force { "powerstack" } else { "outside powerstack" };
                    (
                        by.to_string(),
                        last.map(|w| format!("{} via {}", w.by, w.via)),
                        last.map(|w| w.at_unix_us),
                        e.original.limit_watts,
                    )
                }
                None => ("not powerstack".to_string(), None, None, None),
            };
            controls.push(CapControlV1 {
                domain: info.id.kind.to_string(),
                index: info.id.index,
                constraint: l.name.clone(),
                limit: LimitV1::from(l),
                provider: info.provider.to_string(),
                source: info.source.clone(),
                set_by,
                set_detail: detail,
                set_at_unix_us: at,
                original_watts: original,
            });
        }
    }
    CapsV1 { header: HeaderV1::new(CAPS_SCHEMA, origin), controls, node: None, warnings }
}
