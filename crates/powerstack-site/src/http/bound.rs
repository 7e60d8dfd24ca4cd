//! The site power bound's routes: the bound in force (`GET`) and setting or clearing it (`PUT`,
//! administrators), the recorded decisions, and the admission answer for schedulers.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use powerstack_api::agent::ErrorV1;
use powerstack_api::site_bound::{
    AdmitRequestV1, AdmitV1, BoundDecisionsV1, SiteBoundSetV1, SiteBoundV1,
};
use serde::Deserialize;

use super::{ApiError, App, caller, count_error, json_body, now_us};
use crate::access::{Principal, Role};
use crate::bound::{admit::admit as admit_job, in_force};
use crate::store::SetBound;

/// The most decisions a listing answers.
const MAX_DECISIONS: u64 = 1000;

fn admin(state: &App, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let who = caller(state, headers)?;
    if who.role != Role::Admin {
        return Err(ApiError::forbidden(
            "setting the site bound is for administrators: use an admin token",
        ));
    }
    Ok(who)
}

fn scheduler(state: &App, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let who = caller(state, headers)?;
    if !who.may_write_jobs() {
        return Err(ApiError::forbidden(
            "the bound's decisions and admission are for administrators and schedulers: use such a token",
        ));
    }
    Ok(who)
}

async fn document(state: &App) -> Result<SiteBoundV1, ApiError> {
    let config = &state.bound.settings.config;
    let now = now_us();
    let b = in_force(&state.store, config, now).await.inspect_err(|e| count_error(state, e))?;
    let last = state.store.decisions(None, 1).await.inspect_err(|e| count_error(state, e))?;
    Ok(SiteBoundV1 {
        schema: "powerstack.site-bound.v1".into(),
        watts: b.watts,
        reserve_watts: b.reserve_watts,
        policy: b.policy,
        source: b.source.into(),
        set_by: b.set_by,
        set_unix_us: b.set_us,
        period_s: config.period_s,
        last_decision: last.into_iter().next(),
    })
}

/// `GET /v1/site/bound`.
#[utoipa::path(get, path = "/v1/site/bound", operation_id = "siteBound",
    summary = "The site bound in force, where it comes from, and the newest decision.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The bound.", body = SiteBoundV1),
        (status = 401, description = "No or an unknown token.", body = ErrorV1),
        (status = 503, description = "The database is away.", body = ErrorV1),
    ))]
pub(crate) async fn get(
    State(state): State<App>,
    headers: HeaderMap,
) -> Result<Json<SiteBoundV1>, ApiError> {
    caller(&state, &headers)?;
    Ok(Json(document(&state).await?))
}

/// `PUT /v1/site/bound`.
#[utoipa::path(put, path = "/v1/site/bound", operation_id = "setSiteBound",
    summary = "Sets the site bound (until cleared), its reserve and policy; `watts: null` clears it.",
    request_body = SiteBoundSetV1, security(("bearer" = [])),
    responses(
        (status = 200, description = "The bound now in force.", body = SiteBoundV1),
        (status = 400, description = "A value out of range or an unknown policy.", body = ErrorV1),
        (status = 401, description = "No or an unknown token.", body = ErrorV1),
        (status = 403, description = "Not an administrator.", body = ErrorV1),
        (status = 503, description = "The database is away.", body = ErrorV1),
    ))]
pub(crate) async fn put(
    State(state): State<App>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<SiteBoundV1>, ApiError> {
    let who = admin(&state, &headers)?;
    let set: SiteBoundSetV1 = json_body(&body)?;
    let watts_ok = |w: f64| w.is_finite() && w > 0.0 && w <= 1e12;
    if let Some(w) = set.watts.filter(|w| !watts_ok(*w)) {
        return Err(ApiError::bad_request(format!(
            "watts: {w} is not a bound: give a positive number of watts, or null to clear it"
        )));
    }
    if let Some(r) = set.reserve_watts.filter(|r| !(r.is_finite() && (0.0..=1e12).contains(r))) {
        return Err(ApiError::bad_request(format!("reserve_watts: {r}: give 0 or more watts")));
    }
    if let Some(p) = &set.policy {
        powerstack_bound::policy_by_name(p)
            .map_err(|e| ApiError::bad_request(format!("policy: {e}")))?;
    }
    let row = set.watts.map(|watts| SetBound {
        watts,
        reserve_watts: set.reserve_watts,
        policy: set.policy.clone(),
        set_by: who.user.clone().unwrap_or_else(|| "admin".to_string()),
        set_us: now_us(),
    });
    state.store.put_bound(row.as_ref()).await.inspect_err(|e| count_error(&state, e))?;
    state.bound.wake.notify_one();
    Ok(Json(document(&state).await?))
}

/// The query of `GET /v1/site/bound/decisions`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DecisionsQuery {
    /// The most decisions to answer (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
    /// Only decisions made at or before this time, µs since the Unix epoch.
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    until_unix_us: Option<u64>,
}

/// `GET /v1/site/bound/decisions`.
#[utoipa::path(get, path = "/v1/site/bound/decisions", operation_id = "boundDecisions",
    summary = "The control loop's recorded decisions, newest first: bound, per-job and per-node caps, why.",
    params(DecisionsQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The decisions.", body = BoundDecisionsV1),
        (status = 400, description = "A bad query.", body = ErrorV1),
        (status = 401, description = "No or an unknown token.", body = ErrorV1),
        (status = 403, description = "Neither an administrator nor a scheduler.", body = ErrorV1),
        (status = 503, description = "The database is away.", body = ErrorV1),
    ))]
pub(crate) async fn decisions(
    State(state): State<App>,
    headers: HeaderMap,
    query: Result<Query<DecisionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<BoundDecisionsV1>, ApiError> {
    scheduler(&state, &headers)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))?;
    if let Some(t) = q.until_unix_us.filter(|t| i64::try_from(*t).is_err()) {
        return Err(ApiError::bad_request(format!(
            "until_unix_us: {t} is beyond any time this site stores (at most {})",
            i64::MAX
        )));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_DECISIONS).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit: {limit}: give 1 to {MAX_DECISIONS}")));
    }
    let decisions = state
        .store
        .decisions(q.until_unix_us, limit)
        .await
        .inspect_err(|e| count_error(&state, e))?;
    Ok(Json(BoundDecisionsV1 { schema: "powerstack.bound-decisions.v1".into(), decisions }))
}

/// `POST /v1/site/admit`.
#[utoipa::path(post, path = "/v1/site/admit", operation_id = "admitJob",
    summary = "Whether a job of N nodes asking for W watts fits under the bound now, and the bound it would get.",
    request_body = AdmitRequestV1, security(("bearer" = [])),
    responses(
        (status = 200, description = "The answer.", body = AdmitV1),
        (status = 400, description = "A bad request.", body = ErrorV1),
        (status = 401, description = "No or an unknown token.", body = ErrorV1),
        (status = 403, description = "Neither an administrator nor a scheduler.", body = ErrorV1),
        (status = 409, description = "The site caps no node yet.", body = ErrorV1),
        (status = 503, description = "The database is away.", body = ErrorV1),
    ))]
pub(crate) async fn admit(
    State(state): State<App>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<AdmitV1>, ApiError> {
    scheduler(&state, &headers)?;
    let request: AdmitRequestV1 = json_body(&body)?;
    if !(1..=100_000).contains(&request.nodes) {
        return Err(ApiError::bad_request("nodes: give 1 to 100000 nodes"));
    }
    if let Some(w) = request.power_watts.filter(|w| !(w.is_finite() && *w > 0.0 && *w <= 1e12)) {
        return Err(ApiError::bad_request(format!(
            "power_watts: {w}: give a positive number of watts"
        )));
    }
    let now = now_us();
    let config = &state.bound.settings.config;
    let b = in_force(&state.store, config, now).await.inspect_err(|e| count_error(&state, e))?;
    let trial = powerstack_bound::Bound {
        watts: b.watts.unwrap_or(f64::MAX),
        reserve_watts: b.reserve_watts,
    };
    let g = state
        .bound
        .gather(&state.store, &[], trial, now)
        .await
        .inspect_err(|e| count_error(&state, e))?;
    admit_job(&b, &g, &request, config.tolerance_watts)
        .map(Json)
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, e.to_string()))
}
