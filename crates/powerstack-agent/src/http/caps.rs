//! `GET /v1/caps`, `POST /v1/caps`, `POST /v1/caps/reset`: power limits through `powerstack-cap`
//! (validate, journal, write, read back, roll back), on a blocking thread.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use powerstack_api::cap::{CapResultV1, CapsV1};
use powerstack_cap::Policy;
use powerstack_model::DomainKind;
use powerstack_node::cap_session::{CapChange, CapSession, DomainTarget, LimitChange, Measurement};
use serde::Deserialize;

use super::power::{origin, report_for};
use super::{ApiError, AppJson, AppState, Controls, Reader, VIA_PREFIX, Writer, lock};
use crate::state::Shared;

/// The body of `POST /v1/caps`: one domain's limit, or a node cap.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CapBody {
    /// Domain kind (`package`, `memory`, `gpu`, ...).
    domain: Option<String>,
    /// Its index; every domain of the kind when absent.
    index: Option<u32>,
    /// The die of a multi-die package; every die when absent.
    die: Option<u32>,
    /// The limit (`long_term`, `short_term`, `cap`); the node-cap one of the kind when absent.
    constraint: Option<String>,
    /// The new limit, watts.
    limit_watts: Option<f64>,
    /// The new averaging window, seconds.
    time_window_s: Option<f64>,
    /// A node cap, watts.
    node_watts: Option<f64>,
    /// The node-cap policy (`proportional`, `uniform`, `variorum`).
    policy: Option<String>,
    /// Apply the lowest allowed value (the node's, or the domain's) when the cap is below it.
    clamp: Option<bool>,
    /// Plan only: validate and answer the writes, write nothing.
    dry_run: Option<bool>,
}

fn parse(body: &CapBody) -> Result<CapChange, ApiError> {
    if let Some(watts) = body.node_watts {
        if !(watts.is_finite() && watts > 0.0) {
            return Err(ApiError::BadRequest(format!(
                "node_watts {watts} is not a power: give a node cap above 0 W"
            )));
        }
        let extra = [
            ("domain", body.domain.is_some()),
            ("index", body.index.is_some()),
            ("die", body.die.is_some()),
            ("constraint", body.constraint.is_some()),
            ("limit_watts", body.limit_watts.is_some()),
            ("time_window_s", body.time_window_s.is_some()),
        ];
        if let Some((field, _)) = extra.iter().find(|(_, set)| *set) {
            return Err(ApiError::BadRequest(format!(
                "field `{field}` cannot go with `node_watts`: give either a node cap or one domain's limit"
            )));
        }
        let policy = match body.policy.as_deref() {
            None => Policy::Proportional,
            Some(p) => {
                p.parse().map_err(|e: String| ApiError::BadRequest(format!("policy: {e}")))?
            }
        };
        return Ok(CapChange::Node {
            node_watts: watts,
            policy,
            clamp: body.clamp.unwrap_or(false),
        });
    }
    if body.policy.is_some() {
        return Err(ApiError::BadRequest("field `policy` goes with `node_watts` only".into()));
    }
    let Some(domain) = body.domain.as_deref() else {
        return Err(ApiError::BadRequest(
            "missing field `domain` (or `node_watts` for a node cap)".into(),
        ));
    };
    let kind: DomainKind =
        domain.parse().map_err(|e| ApiError::BadRequest(format!("domain: {e}")))?;
    let Some(limit_watts) = body.limit_watts else {
        return Err(ApiError::BadRequest("missing field `limit_watts`".into()));
    };
    Ok(CapChange::Domain {
        target: DomainTarget { kind, index: body.index, die: body.die },
        limits: vec![LimitChange {
            constraint: body.constraint.clone(),
            limit_watts,
            time_window_s: body.time_window_s,
        }],
        clamp: body.clamp.unwrap_or(false),
    })
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
    let committed = with_session(shared, controls, |session| {
        let measurement = match change {
            CapChange::Node { .. } => Some(Measurement {
                report: report_for(shared, session.platform.catalog())?,
                warnings: Vec::new(),
            }),
            CapChange::Domain { .. } => None,
        };
        let prepared = session.prepare(change, measurement)?;
        if dry_run {
            return Ok::<_, ApiError>(Err(prepared.doc));
        }
        Ok(Ok(session.commit(prepared, &via(who), &mut || false)?))
    })?;
    match committed {
        Err(planned) => Ok(planned),
        Ok(committed) => {
            controls.note_changed(committed.changed.iter().cloned());
            Ok(committed.doc)
        }
    }
}

/// `POST /v1/caps`: one domain's limit, or a node cap; answers what was written.
pub(crate) async fn set(
    State(state): State<AppState>,
    writer: Writer,
    AppJson(body): AppJson<CapBody>,
) -> Result<Json<CapResultV1>, ApiError> {
    let change = parse(&body)?;
    let controls = state.controls()?;
    let shared = Arc::clone(&state.shared);
    let dry_run = body.dry_run.unwrap_or(false);
    let doc = tokio::task::spawn_blocking(move || {
        apply_change(&shared, &controls, &change, dry_run, &writer.who)
    })
    .await??;
    Ok(Json(doc))
}

fn reset_all(shared: &Shared, controls: &Controls, who: &str) -> Result<CapResultV1, ApiError> {
    let done = with_session(shared, controls, |s| s.reset(false, &via(who), &mut || false))?;
    controls.note_restored(&done.restored);
    Ok(done.into_result()?)
}

/// `POST /v1/caps/reset`: restores every control in the journal to its original setting.
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

fn caps_doc(shared: &Shared, controls: &Controls) -> CapsV1 {
    with_session(shared, controls, |s| s.show())
}

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
