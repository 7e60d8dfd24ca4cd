//! The agent's HTTP API (axum): power, raw samples, job windows, caps, Prometheus metrics and an
//! OpenAPI document. `docs/api.md` describes every route.
//!
//! [`app`] builds the router and binds nothing (tests drive it with `tower::ServiceExt::oneshot`;
//! [`crate::serve::Server`] serves it). Every read comes from
//! the buffers in [`Shared`] (the ring, the job table, the sampler statistics), never from sysfs;
//! only the capping routes touch hardware, through [`Controls`] and `powerstack-cap`, on a
//! blocking thread. Every write is checked by [`crate::access`] before its body is read.
//!
//! Errors are [`ApiError`]s: a status and `{"error":{"status":..,"message":".."}}`.

mod caps;
mod described;
mod error;
mod jobs;
pub mod metrics;
mod openapi;
mod power;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{Method, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Json, Router};
use powerstack_cap::{ControlKey, StateDir};
use powerstack_hw::{Platform, Root};

use crate::access::{Access, Peer, Tier};
use crate::standing::Standing;
use crate::state::Shared;

pub(crate) use caps::resplit_standing;
pub use error::{ApiError, AppJson, AppPath, AppQuery, OptionalJson};
pub use openapi::openapi;
pub(crate) use power::origin;
pub use power::{
    DEFAULT_SAMPLES, MAX_SAMPLES, POWER_WINDOW_US, coarse_window, recent_window, window_for,
};

/// The largest request body accepted, bytes (larger: 413).
pub const BODY_LIMIT: usize = 64 * 1024;

/// How long one request may take before the agent answers 503 (a cap waiting on another writer's
/// journal lock, say).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The journal `via` of every write made through the API starts with this, followed by the caller:
/// `powerstack agent (HTTP, alice (uid 1000), pid 4242)`.
pub const VIA_PREFIX: &str = "powerstack agent (HTTP";

/// The capping side of the agent: a second platform opened for writes (the sampler owns its
/// own), the hardware root, the node's state directory (its lock held for the agent's life when
/// the agent runs), and what this agent changed.
pub struct Controls {
    /// The platform limits are written through (and read from for `GET /v1/caps`).
    pub platform: Mutex<Platform>,
    /// The hardware root.
    pub root: Root,
    /// The journal's directory (shared with `powerstack cap` and `powerstack pools`) and the node
    /// it belongs to.
    pub state: StateDir,
    /// The controls this agent has written, so that its shutdown can restore them (the journal
    /// knows them too: their last write's `via` starts with [`VIA_PREFIX`]).
    pub changed: Mutex<Vec<ControlKey>>,
    /// The node cap kept standing ([`crate::standing`]).
    pub standing: Standing,
}

impl std::fmt::Debug for Controls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controls")
            .field("root", &self.root)
            .field("state_dir", &self.state.path())
            .field("changed", &self.changed)
            .finish_non_exhaustive()
    }
}

impl Controls {
    /// Controls over `platform`, with the journal in `state`, no node cap standing, and the
    /// default re-split threshold ([`crate::standing::DEFAULT_RESPLIT_WATTS`]).
    pub fn new(platform: Platform, root: Root, state: StateDir) -> Controls {
        Controls {
            platform: Mutex::new(platform),
            root,
            state,
            changed: Mutex::new(Vec::new()),
            standing: Standing::new(crate::standing::DEFAULT_RESPLIT_WATTS),
        }
    }

    /// These controls with standing node caps split again on moves of more than
    /// `resplit_watts` (`node_cap_resplit_watts`).
    pub fn with_resplit_watts(mut self, resplit_watts: f64) -> Controls {
        self.standing = Standing::new(resplit_watts);
        self
    }

    /// The controls written through this agent and not reset since.
    pub fn changed(&self) -> Vec<ControlKey> {
        lock(&self.changed).clone()
    }

    fn note_changed(&self, keys: impl IntoIterator<Item = ControlKey>) {
        let mut changed = lock(&self.changed);
        for k in keys {
            if !changed.contains(&k) {
                changed.push(k);
            }
        }
    }

    fn note_restored(&self, keys: &[ControlKey]) {
        lock(&self.changed).retain(|k| !keys.contains(k));
    }
}

/// Locks a mutex, going on with the data when a thread panicked while holding it (the ring, the
/// job table and the platform stay consistent between statements).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What every handler sees.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) shared: Arc<Shared>,
    pub(crate) controls: Option<Arc<Controls>>,
    pub(crate) access: Access,
}

impl AppState {
    /// The controls, or 503 when the agent was started without capping.
    pub(crate) fn controls(&self) -> Result<Arc<Controls>, ApiError> {
        self.controls
            .clone()
            .ok_or_else(|| ApiError::Unavailable("capping is not configured on this agent".into()))
    }
}

/// A caller allowed to write, checked before the handler runs (and before its body is read):
/// 403 on the Unix socket when not allowed, 401 over TCP without the right token.
pub(crate) struct Writer {
    /// How the caller is named in the journal and in messages.
    pub(crate) who: String,
    /// Who the caller is, stably across its connections: `uid N` on the socket, `token` over
    /// TCP (whoever holds the token), `unknown` otherwise. Quotas count per key.
    pub(crate) key: String,
}

impl Writer {
    fn key(peer: &Peer) -> String {
        match peer {
            Peer::Unix { uid, .. } => format!("uid {uid}"),
            Peer::Tcp { .. } => "token".to_string(),
            Peer::Unknown => "unknown".to_string(),
        }
    }
}

/// The caller of a request and its `Authorization` header.
async fn caller(parts: &mut Parts, state: &AppState) -> (Peer, Option<String>) {
    let peer = match ConnectInfo::<Peer>::from_request_parts(parts, state).await {
        Ok(ConnectInfo(p)) => p,
        Err(_) => Peer::Unknown,
    };
    let authorization =
        parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    (peer, authorization)
}

impl FromRequestParts<AppState> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (peer, authorization) = caller(parts, state).await;
        let access = state.access.clone();
        // Name lookups read /etc/passwd and /etc/group: off the async threads.
        tokio::task::spawn_blocking(move || {
            access.check_write(&peer, authorization.as_deref())?;
            Ok(Writer { who: access.describe(&peer), key: Writer::key(&peer) })
        })
        .await?
    }
}

/// What the caller of a read may see ([`Access::tier`]): full detail, or coarse figures and
/// only its own details.
pub(crate) struct Reader(pub(crate) Tier);

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (peer, authorization) = caller(parts, state).await;
        let access = state.access.clone();
        // Name lookups read /etc/passwd and /etc/group: off the async threads.
        let tier =
            tokio::task::spawn_blocking(move || access.tier(&peer, authorization.as_deref()))
                .await?;
        Ok(Reader(tier))
    }
}

/// An HTTP method of a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// GET.
    Get,
    /// POST.
    Post,
}

impl Verb {
    /// The method's name, upper case.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
        }
    }
}

struct Endpoint {
    verb: Verb,
    path: &'static str,
    handler: MethodRouter<AppState>,
}

fn endpoint<H, T>(verb: Verb, path: &'static str, handler: H) -> Endpoint
where
    H: Handler<T, AppState>,
    T: 'static,
{
    Endpoint { verb, path, handler: on(verb.filter(), handler) }
}

/// Every route, the one list the router is built from (the OpenAPI document is checked against
/// it).
fn endpoints() -> Vec<Endpoint> {
    use Verb::{Get, Post};
    vec![
        endpoint(Get, "/healthz", healthz),
        endpoint(Get, "/metrics", metrics::handler),
        endpoint(Get, "/v1/openapi.json", openapi_handler),
        endpoint(Get, "/v1/power", power::power),
        endpoint(Get, "/v1/samples", power::samples),
        endpoint(Get, "/v1/jobs", jobs::list),
        endpoint(Get, "/v1/jobs/{id}", jobs::get),
        endpoint(Post, "/v1/jobs/{id}/begin", jobs::begin),
        endpoint(Post, "/v1/jobs/{id}/end", jobs::end),
        endpoint(Get, "/v1/caps", caps::show),
        endpoint(Post, "/v1/caps", caps::set),
        endpoint(Post, "/v1/caps/reset", caps::reset),
    ]
}

/// Every route of [`app`]: method and path (axum syntax, `{id}` for a parameter).
pub fn routes() -> Vec<(Verb, &'static str)> {
    endpoints().iter().map(|e| (e.verb, e.path)).collect()
}

/// The agent's router. `controls` is `None` when the agent does not cap (the capping routes then
/// answer 503). `access` decides who may write: an [`crate::access::AccessPolicy`] (names
/// resolved through the system's `/etc/passwd` and `/etc/group`) or an [`Access`].
///
/// Requests carry the caller as `ConnectInfo<Peer>` when served by the helpers of
/// [`crate::access`]; without it a caller is [`Peer::Unknown`] and may only read.
pub fn app(
    shared: Arc<Shared>,
    controls: Option<Arc<Controls>>,
    access: impl Into<Access>,
) -> Router {
    let state = AppState { shared, controls, access: access.into() };
    let mut router: Router<AppState> = Router::new();
    for e in endpoints() {
        router = router.route(e.path, e.handler);
    }
    router
        .merge(powerstack_dashboard::routes(powerstack_dashboard::Page::Node))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(timeout))
        .with_state(state)
}

async fn timeout(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable(format!(
            "the request took longer than {} s (is another process holding the capping journal?)",
            REQUEST_TIMEOUT.as_secs()
        ))
        .into_response(),
    }
}

/// The message of a 404 for a path the router does not know.
pub const NO_ROUTE: &str = "no such route";

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("{NO_ROUTE}: {method} {}; see GET /v1/openapi.json", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    let allowed: Vec<&str> = routes()
        .into_iter()
        .filter(|(_, p)| path_matches(p, uri.path()))
        .map(|(v, _)| v.as_str())
        .collect();
    ApiError::MethodNotAllowed(format!(
        "{method} is not allowed on {}; use {}",
        uri.path(),
        allowed.join(" or ")
    ))
}

/// Whether a concrete path matches a route pattern with `{param}` segments.
fn path_matches(pattern: &str, path: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    a.len() == b.len() && a.iter().zip(&b).all(|(p, s)| p.starts_with('{') || p == s)
}

#[utoipa::path(get, path = "/healthz", operation_id = "healthz",
    summary = "Liveness, and how many samples the ring holds.",
    responses((status = 200, description = "The agent is up.", body = powerstack_api::agent::HealthV1)))]
async fn healthz(State(state): State<AppState>) -> Json<powerstack_api::agent::HealthV1> {
    let samples = lock(&state.shared.ring).len();
    Json(powerstack_api::agent::HealthV1 { status: "ok".into(), samples: samples as u64 })
}

#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "openapi",
    summary = "This document.",
    responses((status = 200, description = "OpenAPI 3.1.", body = Object)))]
async fn openapi_handler() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_patterns_match_paths() {
        assert!(path_matches("/v1/jobs/{id}", "/v1/jobs/42"));
        assert!(!path_matches("/v1/jobs/{id}", "/v1/jobs/42/end"));
        assert!(path_matches("/healthz", "/healthz"));
    }
}
