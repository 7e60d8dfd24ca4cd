//! The site's HTTP API (axum): one router ([`app`]), one error type ([`ApiError`], answered as
//! `powerstack_api::agent::ErrorV1`), the caller's [`Principal`] from its bearer token, and one
//! module per resource. Every route and answer is in the OpenAPI document ([`openapi`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use powerstack_api::agent::{ErrorBodyV1, ErrorV1};
use serde::de::DeserializeOwned;

use crate::access::{Principal, Tokens};
use crate::report::ReportSettings;
use crate::store::{Ingester, Store, StoreError};

mod bound;
mod ingest;
mod jobs;
pub mod metrics;
mod nodes;
pub mod openapi;
mod tasks;

/// The largest request body, bytes.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// Counters of what this replica did (each replica counts its own; Prometheus sums them).
#[derive(Debug, Default)]
pub struct Counters {
    /// Samples stored.
    pub samples_stored: AtomicU64,
    /// Batches stored.
    pub batches_stored: AtomicU64,
    /// Batches answered as resends.
    pub batches_duplicate: AtomicU64,
    /// Batches refused (4xx).
    pub batches_rejected: AtomicU64,
    /// Requests that failed for the database (503).
    pub database_errors: AtomicU64,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: AtomicU64,
}

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// The tokens; `None`: every caller is an administrator.
    pub tokens: Option<Tokens>,
    /// The queue batches are stored through (group commit).
    pub ingester: Ingester,
    /// How reports are computed.
    pub report: ReportSettings,
    /// How old a node's newest sample may be and still count, µs.
    pub stale_after_us: u64,
    /// What this replica did.
    pub counters: Counters,
    /// The control tasks' settings.
    pub tasks: TaskApi,
    /// BMC telemetry reads this replica made, by outcome.
    pub bmc_reads: Arc<crate::telemetry::ReadCounters>,
    /// The site power bound: its settings, cap path and loop status.
    pub bound: Arc<crate::bound::BoundShared>,
}

/// What the control tasks' routes need.
#[derive(Debug)]
pub struct TaskApi {
    /// The nodes with a BMC.
    pub bmc_nodes: std::collections::HashSet<String>,
    /// How many tasks are kept and how long.
    pub bounds: crate::store::TaskBounds,
    /// A transition's deadline when the request gives none, s.
    pub default_deadline_s: u64,
    /// Wakes the runner when a task is created.
    pub wake: Arc<tokio::sync::Notify>,
    /// Node operations this replica finished, by outcome.
    pub ops: Arc<crate::tasks::OpCounters>,
}

/// The shared state.
pub type App = Arc<AppState>;

/// An error answer: a status and one line.
#[derive(Debug)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// What went wrong and what to do.
    pub message: String,
}

impl ApiError {
    /// An error answer.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorV1 {
            error: ErrorBodyV1 {
                status: self.status.as_u16(),
                message: self.message,
                result: None,
            },
        };
        let mut r = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// The caller: the holder of the request's bearer token, or, without tokens, an administrator.
pub fn caller(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let Some(tokens) = &state.tokens else { return Ok(Principal::open()) };
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, m);
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        unauthorized("this site needs a bearer token: send Authorization: Bearer <token>")
    })?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| unauthorized("the Authorization header must be Bearer <token>"))?;
    tokens.who(token).cloned().ok_or_else(|| unauthorized("unknown token"))
}

/// A JSON body as `T`, or a 400 naming the field that is wrong. Every body of this API is a JSON
/// object: anything else (an array serde would take for a struct's fields in order) is refused.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| *b != b'{') {
        return Err(ApiError::bad_request("invalid JSON body: expected a JSON object"));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::bad_request(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid JSON body at {path}: {inner}"))
        }
    })
}

pub use crate::clock::now_us;

/// Counts a failed store call by its kind.
pub fn count_error(state: &AppState, e: &StoreError) {
    if matches!(e, StoreError::Unavailable(_)) {
        state.counters.database_errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// `GET /v1/health`.
#[utoipa::path(get, path = "/v1/health", operation_id = "health",
    summary = "Whether the service answers and its database does.",
    responses(
        (status = 200, description = "The service and its database answer.", body = serde_json::Value),
        (status = 503, description = "The database does not answer.", body = ErrorV1),
    ))]
pub(crate) async fn health(
    axum::extract::State(state): axum::extract::State<App>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.store.ping().await.inspect_err(|e| count_error(&state, e))?;
    Ok(Json(
        serde_json::json!({"status": "ok", "database": if state.store.db().is_postgres() { "postgres" } else { "sqlite" }}),
    ))
}

/// A body announced larger than [`MAX_BODY_BYTES`] is refused at once, before it is sent.
async fn refuse_announced_oversize(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than {} MiB: send fewer samples a batch",
                MAX_BODY_BYTES >> 20
            ),
        )
        .into_response();
    }
    next.run(req).await
}

/// The router.
pub fn app(state: App) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/openapi.json", get(openapi::handler))
        .route("/metrics", get(metrics::handler))
        .route("/v1/nodes", get(nodes::list))
        .route("/v1/site/power", get(nodes::site_power))
        .route("/v1/site/power/history", get(nodes::site_power_history))
        .route("/v1/site/bound", get(bound::get).put(bound::put))
        .route("/v1/site/bound/decisions", get(bound::decisions))
        .route("/v1/site/admit", post(bound::admit))
        .route("/v1/nodes/{node}/streams/{stream}", put(ingest::register))
        .route("/v1/nodes/{node}/streams/{stream}/batches", post(ingest::batch))
        .route("/v1/jobs", get(jobs::list).post(jobs::begin))
        .route("/v1/jobs/{id}", get(jobs::get))
        .route("/v1/jobs/{id}/end", post(jobs::end))
        .route("/v1/jobs/{id}/timeseries", get(jobs::timeseries))
        .route("/v1/transitions", get(tasks::list_transitions).post(tasks::create_transition))
        .route("/v1/transitions/{id}", get(tasks::get_transition).delete(tasks::abort_transition))
        .route("/v1/power-cap", get(tasks::list_power_caps).post(tasks::create_power_cap))
        .route("/v1/power-cap/snapshot", post(tasks::create_snapshot))
        .route("/v1/power-cap/{id}", get(tasks::get_power_cap).delete(tasks::abort_power_cap))
        .merge(powerstack_dashboard::routes(powerstack_dashboard::Page::Site))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "no such route: see /v1/openapi.json")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(refuse_announced_oversize))
        .with_state(state)
}
