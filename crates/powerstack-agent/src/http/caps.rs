//! `GET /v1/caps`, `POST /v1/caps`, `POST /v1/caps/reset`: power limits through `powerstack-cap`
//! (validate, journal, write, read back, roll back), on a blocking thread.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use powerstack_api::agent::ErrorV1;
use powerstack_api::cap::{CapRequestV1, CapResultV1, CapsV1};
use powerstack_cap::Policy;
use powerstack_model::DomainKind;
use powerstack_node::cap_session::{CapChange, CapSession, DomainTarget, LimitChange, Measurement};

use super::described::{BadRequest, WriteErrors};
use super::power::{origin, report_for};
use super::{ApiError, AppJson, AppState, Controls, Reader, VIA_PREFIX, Writer, lock};
use crate::standing::StandingCap;
use crate::state::Shared;

/// What a cap request asks for, in the node's terms; 400 for what no node could do.
fn parse(request: CapRequestV1) -> Result<(CapChange, bool), ApiError> {
    match request {
        CapRequestV1::Node(n) => {
            if !(n.node_watts.is_finite() && n.node_watts > 0.0) {
                return Err(ApiError::BadRequest(format!(
                    "node_watts {} is not a power: give a node cap above 0 W",
                    n.node_watts
                )));
            }
            let policy = match n.policy.as_deref() {
                None => Policy::Proportional,
                Some(p) => {
                    p.parse().map_err(|e: String| ApiError::BadRequest(format!("policy: {e}")))?
                }
            };
            let change = CapChange::Node {
                node_watts: n.node_watts,
                policy,
                clamp: n.clamp.unwrap_or(false),
            };
            Ok((change, n.dry_run.unwrap_or(false)))
        }
        CapRequestV1::Domain(d) => {
            let kind: DomainKind =
                d.domain.parse().map_err(|e| ApiError::BadRequest(format!("domain: {e}")))?;
            let change = CapChange::Domain {
                target: DomainTarget { kind, index: d.index, die: d.die },
                limits: vec![LimitChange {
                    constraint: d.constraint,
                    limit_watts: d.limit_watts,
                    time_window_s: d.time_window_s,
                }],
                clamp: d.clamp.unwrap_or(false),
            };
            Ok((change, d.dry_run.unwrap_or(false)))
        }
    }
}

fn via(who: &str) -> String {
    format!("{VIA_PREFIX}, {who})")
}

/// Runs `f` on a cap session over the agent's controls (the platform locked meanwhile).
fn with_session<T>(
    shared: &Shared,
    controls: &Controls,
    f: impl FnOnce(&mut CapSession<'_>) -> T,
) -> T {
    let mut platform = lock(&controls.platform);
    let origin = origin(shared);
    f(&mut CapSession {
        platform: &mut platform,
        root: &controls.root,
        state: &controls.state,
        origin: &origin,
    })
}

fn apply_change(
    shared: &Shared,
    controls: &Controls,
    change: &CapChange,
    dry_run: bool,
    who: &str,
) -> Result<CapResultV1, ApiError> {
    with_session(shared, controls, |session| {
        let measurement = match change {
            CapChange::Node { .. } => Some(Measurement {
                report: report_for(shared, session.platform.catalog())?,
                warnings: Vec::new(),
            }),
            CapChange::Domain { .. } => None,
        };
        let prepared = session.prepare(change, measurement)?;
        if dry_run {
            return Ok(prepared.doc);
        }
        let committed = session.commit(prepared, &via(who), &mut || false)?;
        controls.note_changed(committed.changed.iter().cloned());
        let mut doc = committed.doc;
        // Under the platform's lock, as the checker re-splits: no re-split of the cap this
        // write replaced or ended can come after it.
        let kept = match change {
            CapChange::Node { node_watts, policy, .. } => {
                let cap = StandingCap {
                    node_watts: *node_watts,
                    policy: policy.as_str().to_string(),
                    set_by: via(who),
                };
                controls.standing.set(controls.state.path(), cap, doc.uncappable_watts)
            }
            CapChange::Domain { .. } => controls.standing.end(controls.state.path()),
        };
        if let Err(e) = kept {
            doc.warnings.push(format!("{e} (the node cap stands until this agent stops)"));
        }
        Ok(doc)
    })
}

/// Splits the standing node cap again when it is due ([`crate::standing::Standing::due`]): the
/// same cap (never above what was asked nor above what the node can draw now), with `clamp`,
/// through the same validation, journal and read-back as a write.
pub(crate) fn resplit_standing(
    shared: &Shared,
    controls: &Controls,
) -> Result<Option<CapResultV1>, ApiError> {
    if controls.standing.cap().is_none() {
        return Ok(None);
    }
    with_session(shared, controls, |session| {
        let catalog = session.platform.catalog();
        // Too few samples yet, or nothing cappable: nothing to split.
        let Ok(report) = report_for(shared, catalog) else { return Ok(None) };
        let Some(range) = powerstack_cap::node_cap_range(catalog, &report) else {
            return Ok(None);
        };
        let now_us = report.unix_us.max(0) as u64;
        let Some(cap) = controls.standing.due(range.uncappable_watts, now_us) else {
            return Ok(None);
        };
        let policy: Policy = cap.policy.parse().unwrap_or(Policy::Proportional);
        let node_watts = match policy {
            Policy::Variorum => cap.node_watts,
            _ => cap.node_watts.min(range.max_watts),
        };
        let change = CapChange::Node { node_watts, policy, clamp: true };
        let measurement = Measurement { report, warnings: Vec::new() };
        let done = session.prepare(&change, Some(measurement)).and_then(|prepared| {
            session.commit(prepared, &via("standing node cap"), &mut || false)
        });
        match done {
            Ok(committed) => {
                controls.note_changed(committed.changed.iter().cloned());
                let charged = committed.doc.uncappable_watts.unwrap_or(range.uncappable_watts);
                controls.standing.resplit(now_us, Some(charged));
                Ok(Some(committed.doc))
            }
            Err(e) => {
                controls.standing.resplit(now_us, None);
                Err(e.into())
            }
        }
    })
}

/// `POST /v1/caps`: one domain's limit, or a node cap; answers what was written.
#[utoipa::path(post, path = "/v1/caps", operation_id = "setCap",
    summary = "Sets one domain's limit, or a node cap; validated, journaled, read back, rolled back on failure.",
    request_body = CapRequestV1, security(("bearer" = [])),
    responses(
        (status = 200, description = "What was written (or, with dry_run, would be).", body = CapResultV1),
        BadRequest,
        (status = 413, description = "The body is larger than 64 KiB.", body = ErrorV1),
        (status = 422, description = "The node or its hardware cannot do it (out of range, locked, no such domain, refused by the hardware; all rolled back).", body = ErrorV1),
        (status = 503, description = "Capping is not configured, or too few samples for a node cap.", body = ErrorV1),
        WriteErrors,
    ))]
pub(crate) async fn set(
    State(state): State<AppState>,
    writer: Writer,
    AppJson(request): AppJson<CapRequestV1>,
) -> Result<Json<CapResultV1>, ApiError> {
    let (change, dry_run) = parse(request)?;
    let controls = state.controls()?;
    let shared = Arc::clone(&state.shared);
    let doc = tokio::task::spawn_blocking(move || {
        apply_change(&shared, &controls, &change, dry_run, &writer.who)
    })
    .await??;
    Ok(Json(doc))
}

fn reset_all(shared: &Shared, controls: &Controls, who: &str) -> Result<CapResultV1, ApiError> {
    let done = with_session(shared, controls, |s| {
        // A reset ends the standing node cap (under the platform's lock: no re-split after it).
        let ended = controls.standing.end(controls.state.path());
        let mut done = s.reset(false, &via(who), &mut || false)?;
        if let Err(e) = ended {
            done.doc.warnings.push(e.to_string());
        }
        Ok::<_, powerstack_node::cap_session::SessionError>(done)
    })?;
    controls.note_restored(&done.restored);
    Ok(done.into_result()?)
}

/// `POST /v1/caps/reset`: restores every control in the journal to its original setting.
#[utoipa::path(post, path = "/v1/caps/reset", operation_id = "resetCaps",
    summary = "Restores every journaled limit to what it was before powerstack first wrote it.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What was restored.", body = CapResultV1),
        (status = 422, description = "Some limits could not be restored (they stay in the journal); `error.result` is what was.", body = ErrorV1),
        (status = 503, description = "Capping is not configured on this agent.", body = ErrorV1),
        WriteErrors,
    ))]
pub(crate) async fn reset(
    State(state): State<AppState>,
    writer: Writer,
) -> Result<Json<CapResultV1>, ApiError> {
    let controls = state.controls()?;
    let shared = Arc::clone(&state.shared);
    let doc =
        tokio::task::spawn_blocking(move || reset_all(&shared, &controls, &writer.who)).await??;
    Ok(Json(doc))
}

/// The caps document, with the node cap range from the agent's newest samples (nothing counted
/// as uncappable before it has two).
fn caps_doc(shared: &Shared, controls: &Controls) -> CapsV1 {
    with_session(shared, controls, |s| {
        let report = report_for(shared, s.platform.catalog()).ok();
        let mut doc = s.show(report.as_ref());
        if let Some(node) = &mut doc.node {
            node.standing_watts = controls.standing.cap().map(|c| c.node_watts);
        }
        doc
    })
}

/// `GET /v1/caps`: every limit with its range and who set it.
#[utoipa::path(get, path = "/v1/caps", operation_id = "getCaps",
    summary = "Every power limit, read from the hardware now, its range, and who set it.",
    responses(
        (status = 200, description = "The limits (powerstack.caps.v1).", body = CapsV1),
        (status = 503, description = "Capping is not configured on this agent.", body = ErrorV1),
    ))]
pub(crate) async fn show(
    State(state): State<AppState>,
    Reader(tier): Reader,
) -> Result<Json<CapsV1>, ApiError> {
    let controls = state.controls()?;
    let shared = Arc::clone(&state.shared);
    let mut doc = tokio::task::spawn_blocking(move || caps_doc(&shared, &controls)).await?;
    if !tier.is_privileged() {
        crate::coarse::caps(&mut doc);
    }
    Ok(Json(doc))
}
