//! The nodes known to the site, and the site's power now and over the past minutes.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use powerstack_api::agent::ErrorV1;
use powerstack_api::site::{SiteNodesV1, SitePowerV1};
use powerstack_api::site_history::{
    MAX_HISTORY_MINUTES, SitePowerHistoryQueryV1, SitePowerHistoryV1,
};

use super::{ApiError, App, caller, count_error, now_us};
use crate::store::node_document;

/// `GET /v1/nodes`.
#[utoipa::path(get, path = "/v1/nodes", operation_id = "listNodes",
    summary = "Every node known to the site, with its newest stream, power and staleness.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The nodes, by name.", body = SiteNodesV1),
        (status = 401, description = "No or an unknown token.", body = ErrorV1),
        (status = 503, description = "The database is away.", body = ErrorV1),
    ))]
pub(crate) async fn list(
    State(state): State<App>,
    headers: HeaderMap,
) -> Result<Json<SiteNodesV1>, ApiError> {
    caller(&state, &headers)?;
    let now = now_us();
    let nodes = state.store.nodes(now).await.inspect_err(|e| count_error(&state, e))?;
    Ok(Json(SiteNodesV1 {
        schema: "powerstack.site-nodes.v1".into(),
        nodes: nodes
            .iter()
            .map(|(n, s)| node_document(n, s.as_ref(), now, state.stale_after_us))
            .collect(),
    }))
}

/// `GET /v1/site/power`.
#[utoipa::path(get, path = "/v1/site/power", operation_id = "sitePower",
    summary = "The site's power now: the sum over nodes whose newest sample is fresh, and how many are stale.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The site's power.", body = SitePowerV1),
        (status = 401, description = "No or an unknown token.", body = ErrorV1),
        (status = 503, description = "The database is away.", body = ErrorV1),
    ))]
pub(crate) async fn site_power(
    State(state): State<App>,
    headers: HeaderMap,
) -> Result<Json<SitePowerV1>, ApiError> {
    caller(&state, &headers)?;
    Ok(Json(power_now(&state).await?))
}

/// The site's power at this moment.
pub(crate) async fn power_now(state: &App) -> Result<SitePowerV1, ApiError> {
    let now = now_us();
    let nodes = state.store.nodes(now).await.inspect_err(|e| count_error(state, e))?;
    let docs: Vec<_> = nodes
        .iter()
        .map(|(n, s)| node_document(n, s.as_ref(), now, state.stale_after_us))
        .collect();
    let fresh: Vec<f64> = docs.iter().filter(|d| !d.stale).filter_map(|d| d.power_watts).collect();
    Ok(SitePowerV1 {
        schema: "powerstack.site-power.v1".into(),
        unix_us: now,
        power_watts: fresh.iter().sum(),
        nodes_fresh: fresh.len(),
        nodes_stale: docs.iter().filter(|d| d.stale).count(),
        stale_after_s: state.stale_after_us as f64 / 1e6,
    })
}

/// `GET /v1/site/power/history`.
#[utoipa::path(get, path = "/v1/site/power/history", operation_id = "sitePowerHistory",
    summary = "The site's power minute by minute over the past minutes (default 60, at most 1440), from the per-minute rollups: the last two or three minutes are not rolled up yet.",
    params(SitePowerHistoryQueryV1),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The site's power, a point per minute.", body = SitePowerHistoryV1),
        (status = 400, description = "A malformed query, or minutes out of 1 to 1440.", body = ErrorV1),
        (status = 401, description = "No or an unknown token.", body = ErrorV1),
        (status = 503, description = "The database is away.", body = ErrorV1),
    ))]
pub(crate) async fn site_power_history(
    State(state): State<App>,
    headers: HeaderMap,
    query: Result<Query<SitePowerHistoryQueryV1>, QueryRejection>,
) -> Result<Json<SitePowerHistoryV1>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    caller(&state, &headers)?;
    let minutes = q.minutes.unwrap_or(60);
    if !(1..=MAX_HISTORY_MINUTES).contains(&minutes) {
        return Err(ApiError::bad_request(format!(
            "minutes {minutes}: give 1 to {MAX_HISTORY_MINUTES}"
        )));
    }
    let h = crate::history::site_power_history(&state.store, minutes, now_us())
        .await
        .inspect_err(|e| count_error(&state, e))?;
    Ok(Json(h))
}
