//! Agents' pushes: a stream's registration and its batches.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use powerstack_api::agent::ErrorV1;
use powerstack_api::site::{
    BatchStoredV1, BatchV1, StreamRegisterV1, StreamRegisteredV1, control_url_problem,
    is_node_name, is_stream_id,
};

use super::{ApiError, App, caller, count_error, json_body, now_us};
use crate::store::BatchIn;

/// The node and stream of a push's path, checked, and the caller allowed to push for the node.
fn pusher(state: &App, headers: &HeaderMap, node: &str, stream: &str) -> Result<(), ApiError> {
    if !is_node_name(node) {
        return Err(ApiError::bad_request(format!(
            "node name {node:?}: 1 to 64 characters of A-Z a-z 0-9 . _ -"
        )));
    }
    if !is_stream_id(stream) {
        return Err(ApiError::bad_request(format!(
            "stream id {stream:?}: 16 lowercase hex digits"
        )));
    }
    let who = caller(state, headers)?;
    if !who.may_push(node) {
        return Err(ApiError::forbidden(format!(
            "this token may not push samples of node {node}: an agent pushes only its own node's"
        )));
    }
    Ok(())
}

/// `PUT /v1/nodes/{node}/streams/{stream}`.
#[utoipa::path(put, path = "/v1/nodes/{node}/streams/{stream}", operation_id = "registerStream",
    summary = "Registers a run of a node's agent: the node, and the columns of its batches.",
    params(("node" = String, Path, description = "The node's name at the site.", pattern = r"^[A-Za-z0-9._-]{1,64}$"),
           ("stream" = String, Path, description = "The run's stream id.", pattern = r"^[0-9a-f]{16}$")),
    request_body = StreamRegisterV1, security(("bearer" = [])),
    responses(
        (status = 200, description = "Registered (or registered before, with the same columns): where the stream stands.", body = StreamRegisteredV1),
        (status = 400, description = "A malformed path or body, or a `control_url` that is not an http:// or https:// URL.", body = ErrorV1),
        (status = 401, description = "No or an unknown token.", body = ErrorV1),
        (status = 403, description = "The token may not push this node's samples.", body = ErrorV1),
        (status = 409, description = "The stream is registered with other columns or for another node.", body = ErrorV1),
        (status = 422, description = "The columns cannot be stored.", body = ErrorV1),
        (status = 503, description = "The database is away: spool and try later.", body = ErrorV1),
    ))]
pub(crate) async fn register(
    State(state): State<App>,
    Path((node, stream)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<StreamRegisteredV1>, ApiError> {
    pusher(&state, &headers, &node, &stream)?;
    let reg: StreamRegisterV1 = json_body(&body)?;
    if let Some(why) = reg.control_url.as_deref().and_then(control_url_problem) {
        return Err(ApiError::bad_request(why));
    }
    let answer = state
        .store
        .register(&node, &stream, &reg, now_us())
        .await
        .inspect_err(|e| count_error(&state, e))?;
    Ok(Json(answer))
}

/// `POST /v1/nodes/{node}/streams/{stream}/batches`.
#[utoipa::path(post, path = "/v1/nodes/{node}/streams/{stream}/batches", operation_id = "pushBatch",
    summary = "Stores a batch of a stream's samples; a resend (a seq already stored) is answered and not stored again.",
    params(("node" = String, Path, description = "The node's name at the site.", pattern = r"^[A-Za-z0-9._-]{1,64}$"),
           ("stream" = String, Path, description = "The run's stream id.", pattern = r"^[0-9a-f]{16}$")),
    request_body = BatchV1, security(("bearer" = [])),
    responses(
        (status = 200, description = "Stored, or a resend of a stored batch.", body = BatchStoredV1),
        (status = 400, description = "A malformed path or body.", body = ErrorV1),
        (status = 401, description = "No or an unknown token.", body = ErrorV1),
        (status = 403, description = "The token may not push this node's samples.", body = ErrorV1),
        (status = 404, description = "The stream is not registered.", body = ErrorV1),
        (status = 409, description = "Samples not after the stream's stored ones (a clock that went back), or a stream of another node.", body = ErrorV1),
        (status = 413, description = "The body is larger than 16 MiB.", body = ErrorV1),
        (status = 422, description = "Samples that cannot be true: wrong width, counters going back or faster than the domain can draw, times ahead of the site's clock, too many samples.", body = ErrorV1),
        (status = 503, description = "The database is away: spool and try later.", body = ErrorV1),
    ))]
pub(crate) async fn batch(
    State(state): State<App>,
    Path((node, stream)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<BatchStoredV1>, ApiError> {
    pusher(&state, &headers, &node, &stream)?;
    let batch: BatchV1 = json_body(&body).inspect_err(|_| {
        state.counters.batches_rejected.fetch_add(1, Ordering::Relaxed);
    })?;
    let batch = BatchIn { node, stream, batch, now_us: now_us() };
    match state.ingester.submit(batch).await {
        Ok(answer) => {
            let c = &state.counters;
            if answer.duplicate {
                c.batches_duplicate.fetch_add(1, Ordering::Relaxed);
            } else {
                c.batches_stored.fetch_add(1, Ordering::Relaxed);
                c.samples_stored.fetch_add(answer.stored, Ordering::Relaxed);
            }
            Ok(Json(answer))
        }
        Err(e) => {
            count_error(&state, &e);
            if e.status() < 500 {
                state.counters.batches_rejected.fetch_add(1, Ordering::Relaxed);
            }
            Err(e.into())
        }
    }
}
