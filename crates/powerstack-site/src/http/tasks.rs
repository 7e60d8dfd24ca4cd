//! Control tasks over HTTP: `POST /v1/transitions`, `POST /v1/power-cap` and
//! `POST /v1/power-cap/snapshot` answer `202` with the task at once; `GET` lists them or gives
//! one with its nodes; `DELETE` aborts one. Administrators only.

use std::collections::HashSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use powerstack_api::agent::ErrorV1;
use powerstack_api::site_tasks::{
    MAX_DEADLINE_S, MAX_TASK_NODES, PowerCapRequestV1, PowerCapSnapshotRequestV1, TaskKindV1,
    TaskV1, TasksV1, TransitionRequestV1,
};
use powerstack_client::hostlist;
use utoipa::{IntoParams, IntoResponses};

use super::{ApiError, App, caller, count_error, json_body, now_us};
use crate::access::{Principal, Role};
use crate::store::{NewTask, TaskParams};
use crate::tasks::new_id;

/// The answers a task's creation may get besides its own.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only a description of answers: ApiError builds them.
enum CreateErrors {
    /// A malformed body, an unknown node (no BMC configured), a node named twice.
    #[response(status = 400)]
    BadRequest(ErrorV1),
    /// No or an unknown token.
    #[response(status = 401)]
    Unauthorized(ErrorV1),
    /// Not an administrator's token.
    #[response(status = 403)]
    Forbidden(ErrorV1),
    /// A node is reserved by a running transition (the message names both).
    #[response(status = 409)]
    Reserved(ErrorV1),
    /// As many tasks are kept as the site keeps (`tasks_max`).
    #[response(status = 429)]
    TooMany(ErrorV1),
    /// The database is away.
    #[response(status = 503)]
    Unavailable(ErrorV1),
}

/// The answers a listing may get besides its own.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only a description of answers: ApiError builds them.
enum ReadErrors {
    /// No or an unknown token.
    #[response(status = 401)]
    Unauthorized(ErrorV1),
    /// Not an administrator's token.
    #[response(status = 403)]
    Forbidden(ErrorV1),
    /// The database is away.
    #[response(status = 503)]
    Unavailable(ErrorV1),
}

/// The answers a route of one task may get besides its own.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only a description of answers: ApiError builds them.
enum OneErrors {
    /// A malformed id.
    #[response(status = 400)]
    BadRequest(ErrorV1),
    /// No or an unknown token.
    #[response(status = 401)]
    Unauthorized(ErrorV1),
    /// Not an administrator's token.
    #[response(status = 403)]
    Forbidden(ErrorV1),
    /// No such task of this kind (or it expired).
    #[response(status = 404)]
    NotFound(ErrorV1),
    /// The database is away.
    #[response(status = 503)]
    Unavailable(ErrorV1),
}

/// The `{id}` of a task's routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Only a description of the path: `Path<String>` reads it.
struct TaskId {
    /// The task's id, a UUID.
    #[param(
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    id: String,
}

/// The most tasks a listing answers.
const MAX_LIST: u64 = 1000;
const TRANSITIONS: &[TaskKindV1] = &[TaskKindV1::Transition];
const CAPS: &[TaskKindV1] = &[TaskKindV1::PowerCap, TaskKindV1::PowerCapSnapshot];

fn admin(state: &App, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let who = caller(state, headers)?;
    if who.role != Role::Admin {
        return Err(ApiError::forbidden(
            "control tasks are for administrators: use an admin token",
        ));
    }
    Ok(who)
}

/// The nodes of a request: each item a name or a hostlist, each node once, each with a BMC.
fn expand_nodes(state: &App, items: &[String]) -> Result<Vec<String>, ApiError> {
    let mut nodes = Vec::new();
    for item in items {
        let expanded =
            hostlist::expand(item).map_err(|e| ApiError::bad_request(format!("nodes: {e}")))?;
        nodes.extend(expanded);
        if nodes.len() > MAX_TASK_NODES {
            return Err(ApiError::bad_request(format!(
                "nodes: more than {MAX_TASK_NODES} nodes; split the task"
            )));
        }
    }
    if nodes.is_empty() {
        return Err(ApiError::bad_request("nodes: name at least one node"));
    }
    let mut seen = HashSet::new();
    for n in &nodes {
        if !seen.insert(n.as_str()) {
            return Err(ApiError::bad_request(format!("node {n} is named twice: name it once")));
        }
        if !state.tasks.bmc_nodes.contains(n) {
            return Err(ApiError::bad_request(format!(
                "node {n} has no BMC in the site's configuration: add a [[bmc]] entry for it, or leave it out"
            )));
        }
    }
    Ok(nodes)
}

fn check_id(id: &str) -> Result<(), ApiError> {
    let ok = id.len() == 36
        && id.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_hexdigit() }
        });
    if ok { Ok(()) } else { Err(ApiError::bad_request(format!("task id {id:?}: a UUID"))) }
}

async fn create(
    state: &App,
    who: &Principal,
    kind: TaskKindV1,
    params: TaskParams,
    nodes: Vec<String>,
) -> Result<(StatusCode, Json<TaskV1>), ApiError> {
    let requested_by = who.user.clone().unwrap_or_else(|| "admin".to_string());
    let task = NewTask { id: new_id(), kind, params, nodes, requested_by };
    let t = state
        .store
        .create_task(&task, now_us(), state.tasks.bounds)
        .await
        .inspect_err(|e| count_error(state, e))?;
    state.tasks.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(t)))
}

/// `POST /v1/transitions`.
#[utoipa::path(post, path = "/v1/transitions", operation_id = "createTransition",
    summary = "Starts a power transition on nodes through their BMCs; answers the task at once.",
    request_body = TransitionRequestV1, security(("bearer" = [])),
    responses(
        (status = 202, description = "The task, every node pending.", body = TaskV1),
        CreateErrors,
    ))]
pub(crate) async fn create_transition(
    State(state): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<TaskV1>), ApiError> {
    let who = admin(&state, &headers)?;
    let r: TransitionRequestV1 = json_body(&body)?;
    let deadline_s = r.deadline_s.unwrap_or(state.tasks.default_deadline_s);
    if !(1..=MAX_DEADLINE_S).contains(&deadline_s) {
        return Err(ApiError::bad_request(format!(
            "deadline_s {deadline_s}: 1 to {MAX_DEADLINE_S}"
        )));
    }
    let nodes = expand_nodes(&state, &r.nodes)?;
    let params = TaskParams {
        operation: Some(r.operation),
        deadline_s: Some(deadline_s),
        escalate: Some(r.escalate.unwrap_or(false)),
        limit_watts: None,
    };
    create(&state, &who, TaskKindV1::Transition, params, nodes).await
}

/// `POST /v1/power-cap`.
#[utoipa::path(post, path = "/v1/power-cap", operation_id = "createPowerCap",
    summary = "Sets (or turns off) nodes' own power limits through their BMCs; answers the task at once.",
    request_body = PowerCapRequestV1, security(("bearer" = [])),
    responses(
        (status = 202, description = "The task, every node pending.", body = TaskV1),
        CreateErrors,
    ))]
pub(crate) async fn create_power_cap(
    State(state): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<TaskV1>), ApiError> {
    let who = admin(&state, &headers)?;
    let r: PowerCapRequestV1 = json_body(&body)?;
    if let Some(w) = r.limit_watts
        && !(w.is_finite() && (1.0..=1e6).contains(&w))
    {
        return Err(ApiError::bad_request(format!(
            "limit_watts {w}: 1 to 1000000 W, or null to turn capping off"
        )));
    }
    let nodes = expand_nodes(&state, &r.nodes)?;
    let params = TaskParams { limit_watts: Some(r.limit_watts), ..TaskParams::default() };
    create(&state, &who, TaskKindV1::PowerCap, params, nodes).await
}

/// `POST /v1/power-cap/snapshot`.
#[utoipa::path(post, path = "/v1/power-cap/snapshot", operation_id = "createPowerCapSnapshot",
    summary = "Reads nodes' power limits and their ranges through their BMCs; answers the task at once.",
    request_body = PowerCapSnapshotRequestV1, security(("bearer" = [])),
    responses(
        (status = 202, description = "The task, every node pending.", body = TaskV1),
        CreateErrors,
    ))]
pub(crate) async fn create_snapshot(
    State(state): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<TaskV1>), ApiError> {
    let who = admin(&state, &headers)?;
    let r: PowerCapSnapshotRequestV1 = json_body(&body)?;
    let nodes = expand_nodes(&state, &r.nodes)?;
    create(&state, &who, TaskKindV1::PowerCapSnapshot, TaskParams::default(), nodes).await
}

async fn list(
    state: &App,
    headers: &HeaderMap,
    kinds: &[TaskKindV1],
) -> Result<Json<TasksV1>, ApiError> {
    admin(state, headers)?;
    let tasks = state.store.tasks(kinds, MAX_LIST).await.inspect_err(|e| count_error(state, e))?;
    Ok(Json(TasksV1 { schema: "powerstack.site-tasks.v1".into(), tasks }))
}

async fn one(
    state: &App,
    headers: &HeaderMap,
    id: &str,
    kinds: &[TaskKindV1],
    abort: bool,
) -> Result<Json<TaskV1>, ApiError> {
    admin(state, headers)?;
    check_id(id)?;
    let t = if abort {
        state.store.abort_task(id, kinds, now_us()).await
    } else {
        state.store.task(id, kinds).await
    };
    Ok(Json(t.inspect_err(|e| count_error(state, e))?))
}

/// `GET /v1/transitions`.
#[utoipa::path(get, path = "/v1/transitions", operation_id = "listTransitions",
    summary = "Transition tasks, newest first (at most 1000), with their counts.",
    security(("bearer" = [])),
    responses((status = 200, description = "The tasks.", body = TasksV1), ReadErrors))]
pub(crate) async fn list_transitions(
    State(state): State<App>,
    headers: HeaderMap,
) -> Result<Json<TasksV1>, ApiError> {
    list(&state, &headers, TRANSITIONS).await
}

/// `GET /v1/power-cap`.
#[utoipa::path(get, path = "/v1/power-cap", operation_id = "listPowerCaps",
    summary = "Power-cap and snapshot tasks, newest first (at most 1000), with their counts.",
    security(("bearer" = [])),
    responses((status = 200, description = "The tasks.", body = TasksV1), ReadErrors))]
pub(crate) async fn list_power_caps(
    State(state): State<App>,
    headers: HeaderMap,
) -> Result<Json<TasksV1>, ApiError> {
    list(&state, &headers, CAPS).await
}

/// `GET /v1/transitions/{id}`.
#[utoipa::path(get, path = "/v1/transitions/{id}", operation_id = "getTransition",
    summary = "A transition task and each node's state.",
    params(TaskId),
    security(("bearer" = [])),
    responses((status = 200, description = "The task.", body = TaskV1), OneErrors))]
pub(crate) async fn get_transition(
    State(state): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<TaskV1>, ApiError> {
    one(&state, &headers, &id, TRANSITIONS, false).await
}

/// `GET /v1/power-cap/{id}`.
#[utoipa::path(get, path = "/v1/power-cap/{id}", operation_id = "getPowerCap",
    summary = "A power-cap or snapshot task and each node's state and limits read.",
    params(TaskId),
    security(("bearer" = [])),
    responses((status = 200, description = "The task.", body = TaskV1), OneErrors))]
pub(crate) async fn get_power_cap(
    State(state): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<TaskV1>, ApiError> {
    one(&state, &headers, &id, CAPS, false).await
}

/// `DELETE /v1/transitions/{id}`.
#[utoipa::path(delete, path = "/v1/transitions/{id}", operation_id = "abortTransition",
    summary = "Aborts a transition: its pending nodes become aborted; those in flight finish and are recorded.",
    params(TaskId),
    security(("bearer" = [])),
    responses((status = 200, description = "The task, aborted.", body = TaskV1), OneErrors))]
pub(crate) async fn abort_transition(
    State(state): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<TaskV1>, ApiError> {
    one(&state, &headers, &id, TRANSITIONS, true).await
}

/// `DELETE /v1/power-cap/{id}`.
#[utoipa::path(delete, path = "/v1/power-cap/{id}", operation_id = "abortPowerCap",
    summary = "Aborts a power-cap or snapshot task: its pending nodes become aborted; those in flight finish and are recorded.",
    params(TaskId),
    security(("bearer" = [])),
    responses((status = 200, description = "The task, aborted.", body = TaskV1), OneErrors))]
pub(crate) async fn abort_power_cap(
    State(state): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<TaskV1>, ApiError> {
    one(&state, &headers, &id, CAPS, true).await
}
