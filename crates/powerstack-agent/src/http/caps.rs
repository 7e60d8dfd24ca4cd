//! `GET /v1/caps`, `POST /v1/caps`, `POST /v1/caps/reset`: power limits through `powerstack-cap`
//! (validate, journal, write, read back, roll back), on a blocking thread.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use powerstack_api::cap::{CAP_SCHEMA, CapResultV1, CapsV1};
use powerstack_cap::{Capper, Policy, Request};
use powerstack_hw::Platform;
use powerstack_model::{DomainInfo, DomainKind, LimitWrite};
use serde::Deserialize;

use super::power::report_for;
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

enum Change {
    Domain {
        kind: DomainKind,
        index: Option<u32>,
        die: Option<u32>,
        constraint: Option<String>,
        limit_watts: f64,
        time_window_s: Option<f64>,
        clamp: bool,
    },
    Node {
        watts: f64,
        policy: Policy,
        clamp: bool,
    },
}

fn parse(body: &CapBody) -> Result<Change, ApiError> {
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
        return Ok(Change::Node { watts, policy, clamp: body.clamp.unwrap_or(false) });
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
    Ok(Change::Domain {
        kind,
        index: body.index,
        die: body.die,
        constraint: body.constraint.clone(),
        limit_watts,
        time_window_s: body.time_window_s,
        clamp: body.clamp.unwrap_or(false),
    })
}

/// Node-cap details of the answer.
#[derive(Default)]
struct NodeCap {
    policy: Option<String>,
    cap_watts: Option<f64>,
    uncappable_watts: Option<f64>,
    clamped: bool,
}

/// The command name of a change, as `powerstack cap` names it.
fn command_of(change: &Change) -> String {
    match change {
        Change::Node { .. } => "node".into(),
        Change::Domain { kind: DomainKind::Package, .. } => "socket".into(),
        Change::Domain { kind: DomainKind::Memory, .. } => "mem".into(),
        Change::Domain { kind, .. } => kind.to_string(),
    }
}

fn write(constraint: &str, limit_watts: f64, time_window_s: Option<f64>) -> LimitWrite {
    // As `powerstack cap`: a long-term limit written is also enabled.
    let enabled = (constraint == "long_term").then_some(true);
    LimitWrite { constraint: constraint.to_string(), limit_watts, time_window_s, enabled }
}

/// The requests a change makes on `platform`'s catalog.
fn build(
    shared: &Shared,
    platform: &Platform,
    change: &Change,
) -> Result<(Vec<Request>, NodeCap), ApiError> {
    let catalog = platform.catalog();
    match change {
        Change::Domain { kind, index, die, constraint, limit_watts, time_window_s, clamp } => {
            let of_kind: Vec<usize> =
                (0..catalog.len()).filter(|&i| catalog[i].id.kind == *kind).collect();
            if of_kind.is_empty() {
                return Err(ApiError::Unprocessable(format!(
                    "this node has no {kind} domain that powerstack can see"
                )));
            }
            let chosen: Vec<usize> = of_kind
                .iter()
                .copied()
                .filter(|&i| index.is_none_or(|n| catalog[i].id.index == n))
                .filter(|&i| die.is_none_or(|d| catalog[i].id.die == Some(d)))
                .collect();
            if chosen.is_empty() {
                let names: Vec<String> =
                    of_kind.iter().map(|&i| catalog[i].id.to_string()).collect();
                let mut asked = format!("{kind}-{}", index.map_or("*".into(), |n| n.to_string()));
                if let Some(d) = die {
                    asked.push_str(&format!("-die-{d}"));
                }
                return Err(ApiError::Unprocessable(format!(
                    "{asked} does not exist on this node; it has {}",
                    names.join(", ")
                )));
            }
            let constraint = match constraint.as_deref() {
                Some(c) => c.to_string(),
                None => match powerstack_cap::node_cap_constraint(*kind) {
                    Some(c) => c.to_string(),
                    // Which limits a domain has is the node's business, not the request's
                    // shape: 422, like a domain the node does not have.
                    None => {
                        return Err(ApiError::Unprocessable(format!(
                            "missing field `constraint`: {kind} domains have no default limit; name one of {}",
                            limit_names(catalog, &chosen)
                        )));
                    }
                },
            };
            let mut requests: Vec<Request> = chosen
                .into_iter()
                .map(|i| Request {
                    index: i,
                    write: write(&constraint, *limit_watts, *time_window_s),
                })
                .collect();
            let clamped = *clamp && powerstack_cap::clamp_to_lowest(catalog, &mut requests);
            Ok((requests, NodeCap { clamped, ..NodeCap::default() }))
        }
        Change::Node { watts, policy, clamp } => {
            let report = report_for(shared, catalog)?;
            let plan = powerstack_cap::plan_node_cap(catalog, &report, *watts, *policy, *clamp)
                .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
            Ok((
                plan.requests,
                NodeCap {
                    policy: Some(policy.as_str().to_string()),
                    cap_watts: Some(*watts),
                    uncappable_watts: Some(plan.allocation.uncappable_watts),
                    clamped: plan.allocation.clamped,
                },
            ))
        }
    }
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

fn result_doc(shared: &Shared, command: String, dry_run: bool, cap: NodeCap) -> CapResultV1 {
    CapResultV1 {
        schema: CAP_SCHEMA.to_string(),
        hostname: shared.hostname.clone(),
        simulated: shared.simulated.is_some(),
        simulated_profile: shared.simulated.clone(),
        command,
        dry_run,
        policy: cap.policy,
        node_cap_watts: cap.cap_watts,
        uncappable_watts: cap.uncappable_watts,
        clamped: cap.clamped,
        writes: Vec::new(),
        recovered: Vec::new(),
        warnings: Vec::new(),
    }
}

use powerstack_node::cap_report::{recovered_lines, restored_writes, write_doc};

fn via(who: &str) -> String {
    format!("{VIA_PREFIX}, {who})")
}

fn apply_change(
    shared: &Shared,
    controls: &Controls,
    change: &Change,
    dry_run: bool,
    who: &str,
) -> Result<CapResultV1, ApiError> {
    let mut platform = lock(&controls.platform);
    if dry_run {
        let warnings: Vec<String> =
            platform.refresh_limits().iter().map(ToString::to_string).collect();
        let (requests, cap) = build(shared, &platform, change)?;
        let plan = powerstack_cap::plan(platform.catalog(), &requests)?;
        let mut doc = result_doc(shared, command_of(change), true, cap);
        doc.writes = plan.iter().filter_map(|p| write_doc(platform.catalog(), p, None)).collect();
        doc.warnings = warnings;
        return Ok(doc);
    }
    let via = via(who);
    let (done, recovered, cap, warnings) = {
        let (mut capper, recovered) =
            Capper::open(&mut platform, &controls.root, &controls.state, &via)?;
        // Limits may have changed outside the agent since it last looked: plan against the
        // hardware's values (they are the originals the journal records).
        let warnings: Vec<String> =
            capper.platform().refresh_limits().iter().map(ToString::to_string).collect();
        let (requests, cap) = build(shared, capper.platform(), change)?;
        let plan = capper.plan(&requests)?;
        let done = capper.apply(&plan)?;
        (done, recovered, cap, warnings)
    };
    controls.note_changed(done.iter().map(|d| d.planned.key.clone()));
    let mut doc = result_doc(shared, command_of(change), false, cap);
    doc.writes = done
        .iter()
        .filter_map(|d| write_doc(platform.catalog(), &d.planned, d.read_back_watts))
        .collect();
    if let Some(r) = &recovered {
        doc.recovered = recovered_lines(r);
    }
    doc.warnings = warnings;
    Ok(doc)
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
    let mut platform = lock(&controls.platform);
    let via = via(who);
    let (restored, recovered) = {
        let (mut capper, recovered) =
            Capper::open(&mut platform, &controls.root, &controls.state, &via)?;
        (capper.reset()?, recovered)
    };
    controls.note_restored(&restored.restored);
    if let Some(r) = &recovered {
        controls.note_restored(&r.restored);
    }
    let mut doc = result_doc(shared, "reset".into(), false, NodeCap::default());
    if let Some(r) = &recovered {
        doc.recovered = recovered_lines(r);
    }
    let restored_keys =
        restored.restored.iter().chain(recovered.iter().flat_map(|r| r.restored.iter()));
    doc.writes.extend(restored_writes(platform.catalog(), restored_keys));
    if !restored.failed.is_empty() {
        let lines: Vec<String> =
            restored.failed.iter().map(|(k, why)| format!("{k}: {why}")).collect();
        return Err(ApiError::Unprocessable(format!(
            "{} limit(s) could not be restored ({}); they stay in the journal for the next reset",
            restored.failed.len(),
            lines.join("; ")
        )));
    }
    Ok(doc)
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

fn caps_doc(shared: &Shared, controls: &Controls) -> Result<CapsV1, ApiError> {
    let mut platform = lock(&controls.platform);
    let warnings: Vec<String> = platform.refresh_limits().iter().map(ToString::to_string).collect();
    let origin = powerstack_api::Origin {
        hostname: shared.hostname.clone(),
        simulated: shared.simulated.clone(),
    };
    Ok(powerstack_node::cap_report::caps_document(
        &origin,
        platform.catalog(),
        &controls.state,
        warnings,
    ))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    Reader(tier): Reader,
) -> Result<Json<CapsV1>, ApiError> {
    let controls = state.controls()?;
    let shared = Arc::clone(&state.shared);
    let mut doc = tokio::task::spawn_blocking(move || caps_doc(&shared, &controls)).await??;
    if !tier.is_privileged() {
        crate::coarse::caps(&mut doc);
    }
    Ok(Json(doc))
}
