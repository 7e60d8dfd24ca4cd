//! `POST /v1/jobs/{id}/begin`, `POST /v1/jobs/{id}/end`, `GET /v1/jobs`, `GET /v1/jobs/{id}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use powerstack_api::agent::{JobBeganV1, JobBeginV1, JobsV1};
use powerstack_api::job::{JobResultV1, JobV1};

use serde::Deserialize;

use super::{ApiError, AppPath, AppQuery, AppState, OptionalJson, Writer, lock};
use crate::job::{JobError, job_result};

/// `?peak_window=2s`: the window a job's peak is taken over.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobQuery {
    peak_window: Option<String>,
}

impl JobQuery {
    /// The window asked for, µs (`None`: the agent's default).
    fn peak_window_us(&self) -> Result<Option<u64>, ApiError> {
        self.peak_window
            .as_deref()
            .map(crate::job::parse_peak_window_us)
            .transpose()
            .map_err(|e| ApiError::BadRequest(format!("peak_window: {e}")))
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        let message = e.to_string();
        match e {
            JobError::BadId { .. } | JobError::BadLabel { .. } => ApiError::BadRequest(message),
            JobError::Unknown { .. } => ApiError::NotFound(message),
            JobError::AlreadyBegun { .. }
            | JobError::AlreadyEnded { .. }
            | JobError::EndBeforeBegin { .. }
            | JobError::TooMany { .. } => ApiError::Conflict(message),
        }
    }
}

/// `POST /v1/jobs/{id}/begin`: marks the beginning now (the agent's clock). 201 with the job.
pub(crate) async fn begin(
    State(state): State<AppState>,
    _writer: Writer,
    AppPath(id): AppPath<String>,
    OptionalJson(body): OptionalJson<JobBeginV1>,
) -> Result<(StatusCode, Json<JobBeganV1>), ApiError> {
    let body = body.unwrap_or_default();
    let shared = &state.shared;
    let job = {
        let mut jobs = lock(&shared.jobs);
        JobV1::from(jobs.begin(&id, body.user, body.app, shared.clock.now_unix_us())?)
    };
    let capacity = lock(&shared.ring).capacity();
    let warnings = vec![crate::job::buffer_span_warning(capacity, shared.rate_hz)];
    Ok((StatusCode::CREATED, Json(JobBeganV1 { job, warnings })))
}

/// How long `end` waits for the readings that close a window (a slow source's come up to a few
/// hundred ms late).
const END_WAIT_US: u64 = 2_000_000;

/// `POST /v1/jobs/{id}/end`: marks the end now; answers the job's result.
pub(crate) async fn end(
    State(state): State<AppState>,
    _writer: Writer,
    AppPath(id): AppPath<String>,
) -> Result<Json<JobResultV1>, ApiError> {
    let now = state.shared.clock.now_unix_us();
    let window = lock(&state.shared.jobs).end(&id, now)?.clone();
    let shared = &state.shared;
    // The window ends now; the sample that closes it comes within one period, and the readings
    // of slow sources for that moment (placed at the time they refer to) a little later. Wait for
    // every column to be settled past the end (never more than 2 s) so the answer covers the
    // whole window with final figures.
    let wait_until = std::time::Instant::now() + std::time::Duration::from_micros(END_WAIT_US);
    loop {
        let settled = shared.settled_us.load(std::sync::atomic::Ordering::Relaxed) >= now;
        if settled || std::time::Instant::now() >= wait_until {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let peak_window_us = shared.peak_window_us(None);
    let ring = lock(&shared.ring);
    Ok(Json(job_result(
        &ring,
        &shared.domains,
        &window,
        shared.clock.now_unix_us(),
        &shared.hostname,
        peak_window_us,
    )))
}

/// `GET /v1/jobs`: every job window kept, by begin time.
pub(crate) async fn list(State(state): State<AppState>) -> Json<JobsV1> {
    let jobs = lock(&state.shared.jobs).list().into_iter().map(JobV1::from).collect();
    Json(JobsV1 { hostname: state.shared.hostname.clone(), jobs })
}

/// `GET /v1/jobs/{id}[?peak_window=2s]`: the job's power and energy on this node.
pub(crate) async fn get(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    AppQuery(q): AppQuery<JobQuery>,
) -> Result<Json<JobResultV1>, ApiError> {
    crate::job::check_id(&id)?;
    let shared = &state.shared;
    let peak_window_us = shared.peak_window_us(q.peak_window_us()?);
    let window = lock(&shared.jobs)
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("no job {id} on this node")))?;
    let ring = lock(&shared.ring);
    Ok(Json(job_result(
        &ring,
        &shared.domains,
        &window,
        shared.clock.now_unix_us(),
        &shared.hostname,
        peak_window_us,
    )))
}
