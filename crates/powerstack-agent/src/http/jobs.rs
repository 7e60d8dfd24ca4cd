//! `POST /v1/jobs/{id}/begin`, `POST /v1/jobs/{id}/end`, `GET /v1/jobs`, `GET /v1/jobs/{id}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use powerstack_api::agent::{ErrorV1, JobBeganV1, JobBeginV1, JobResultQueryV1, JobsV1};
use powerstack_api::job::{JobResultV1, JobV1};

use super::described::{BadRequest, JobId, JobsNotSaved, WriteErrors};
use super::{ApiError, AppPath, AppQuery, AppState, OptionalJson, Reader, Writer, lock};
use crate::coarse;
use crate::job::{JobError, JobHistory, JobWindow, Jobs, carry};
use crate::state::Shared;

/// The peak window `?peak_window=2s` asks for, µs (`None`: the agent's default).
fn peak_window_us(q: &JobResultQueryV1) -> Result<Option<u64>, ApiError> {
    q.peak_window
        .as_deref()
        .map(crate::job::parse_peak_window_us)
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("peak_window: {e}")))
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
            | JobError::TooMany { .. }
            | JobError::CallerQuota { .. } => ApiError::Conflict(message),
        }
    }
}

/// Saves `jobs` (just changed, under its lock) in the state directory; when that fails, puts
/// back `before` and refuses the request: a mark is answered only once it is kept.
fn commit(shared: &Shared, jobs: &mut Jobs, before: Jobs) -> Result<(), ApiError> {
    shared.save_jobs(jobs).map_err(|e| {
        *jobs = before;
        ApiError::Unavailable(format!("{e}; nothing was changed"))
    })
}

/// Runs `f` on a blocking thread (it locks the job table and writes the state directory).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("job table task: {e}")))?
}

/// `POST /v1/jobs/{id}/begin`: marks the beginning now (the agent's clock), kept in the state
/// directory before the answer, with who began it. 201 with the job; 409 when the caller has
/// its quota of running jobs (`max_running_jobs_per_caller`).
#[utoipa::path(post, path = "/v1/jobs/{id}/begin", operation_id = "beginJob",
    summary = "Marks the beginning of a job now (the agent's clock).",
    params(JobId), request_body(content = JobBeginV1, description = "Who the job belongs to and what it runs; may be left out."),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The job has begun.", body = JobBeganV1),
        BadRequest,
        (status = 409, description = "A job with this id is known already, the table is full, or the caller has its quota of running jobs.", body = ErrorV1),
        (status = 413, description = "The body is larger than 64 KiB.", body = ErrorV1),
        JobsNotSaved,
        WriteErrors,
    ))]
pub(crate) async fn begin(
    State(state): State<AppState>,
    writer: Writer,
    AppPath(id): AppPath<String>,
    OptionalJson(body): OptionalJson<JobBeginV1>,
) -> Result<(StatusCode, Json<JobBeganV1>), ApiError> {
    let body = body.unwrap_or_default();
    let shared = state.shared.clone();
    let job = blocking(move || {
        let mut jobs = lock(&shared.jobs);
        let before = jobs.clone();
        let now = shared.clock.now_unix_us();
        let job = JobV1::from(jobs.begin_by(&id, body.user, body.app, Some(&writer.key), now)?);
        commit(&shared, &mut jobs, before)?;
        Ok(job)
    })
    .await?;
    let shared = &state.shared;
    let capacity = lock(&shared.ring).capacity();
    let warnings = vec![crate::job::buffer_span_warning(capacity, shared.rate_hz)];
    Ok((StatusCode::CREATED, Json(JobBeganV1 { job, warnings })))
}

/// How long `end` waits for the readings that close a window (a slow source's come up to a few
/// hundred ms late).
const END_WAIT_US: u64 = 2_000_000;

/// `POST /v1/jobs/{id}/end`: marks the end now (kept in the state directory before anything
/// else); answers the job's result, which is kept with it.
#[utoipa::path(post, path = "/v1/jobs/{id}/end", operation_id = "endJob",
    summary = "Marks the end of a job now; answers its result.",
    params(JobId), security(("bearer" = [])),
    responses(
        (status = 200, description = "The job has ended; its result on this node.", body = JobResultV1),
        BadRequest,
        (status = 404, description = "No job with this id on this node.", body = ErrorV1),
        (status = 409, description = "The job has already ended.", body = ErrorV1),
        JobsNotSaved,
        WriteErrors,
    ))]
pub(crate) async fn end(
    State(state): State<AppState>,
    _writer: Writer,
    AppPath(id): AppPath<String>,
) -> Result<Json<JobResultV1>, ApiError> {
    let now = state.shared.clock.now_unix_us();
    let (shared, job) = (state.shared.clone(), id.clone());
    blocking(move || {
        let mut jobs = lock(&shared.jobs);
        let before = jobs.clone();
        jobs.end(&job, now)?;
        commit(&shared, &mut jobs, before)
    })
    .await?;
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
    let (window, history) = known_job(shared, &id)?;
    let (result, settled) = {
        let ring = lock(&shared.ring);
        let settled = shared.settled_us.load(std::sync::atomic::Ordering::Relaxed) >= now;
        let peak_window_us = shared.peak_window_us(None);
        (
            carry::answer(&shared.job_view(), &ring, &window, &history, peak_window_us, false),
            settled,
        )
    };
    // The end is kept already. A final result (every column settled past the end) is kept with
    // it now; one that is not yet is computed again when asked, and kept at the agent's stop.
    if settled {
        let (shared, kept) = (state.shared.clone(), result.clone());
        blocking(move || {
            let mut jobs = lock(&shared.jobs);
            if jobs.set_result(&id, kept)
                && let Err(e) = shared.save_jobs(&jobs)
            {
                eprintln!("powerstack agent: warning: job {id}: its result is not kept yet: {e}");
            }
            Ok(())
        })
        .await?;
    }
    Ok(Json(result))
}

/// The window and history of job `id`, or 404.
fn known_job(shared: &Shared, id: &str) -> Result<(JobWindow, JobHistory), ApiError> {
    let jobs = lock(&shared.jobs);
    match (jobs.get(id), jobs.history(id)) {
        (Some(w), Some(h)) => Ok((w.clone(), h.clone())),
        _ => Err(ApiError::NotFound(format!("no job {id} on this node"))),
    }
}

/// `GET /v1/jobs`: every job window kept, by begin time; an unprivileged caller sees the labels
/// of its own jobs only.
#[utoipa::path(get, path = "/v1/jobs", operation_id = "listJobs",
    summary = "Every job window kept on this node, by begin time.",
    responses((status = 200, description = "The jobs.", body = JobsV1)))]
pub(crate) async fn list(State(state): State<AppState>, Reader(tier): Reader) -> Json<JobsV1> {
    let jobs = lock(&state.shared.jobs)
        .list()
        .into_iter()
        .map(JobV1::from)
        .map(|mut j| {
            if !tier.sees_labels_of(j.user.as_deref()) {
                (j.user, j.app) = (None, None);
            }
            j
        })
        .collect();
    Json(JobsV1 { hostname: state.shared.hostname.clone(), jobs })
}

/// `GET /v1/jobs/{id}[?peak_window=2s]`: the job's power and energy on this node (the result
/// kept at its end, for an ended job). An unprivileged caller gets it as of the last whole second,
/// its peak over at least a second, rounded, and labels of its own jobs only
/// ([`crate::coarse`]).
#[utoipa::path(get, path = "/v1/jobs/{id}", operation_id = "getJob",
    summary = "A job's power and energy on this node.",
    params(JobId, JobResultQueryV1),
    responses(
        (status = 200, description = "The job's result.", body = JobResultV1),
        BadRequest,
        (status = 404, description = "No job with this id on this node.", body = ErrorV1),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Reader(tier): Reader,
    AppPath(id): AppPath<String>,
    AppQuery(q): AppQuery<JobResultQueryV1>,
) -> Result<Json<JobResultV1>, ApiError> {
    crate::job::check_id(&id)?;
    let shared = &state.shared;
    let asked = peak_window_us(&q)?;
    let coarse = !tier.is_privileged();
    let asked = match asked {
        Some(w) if coarse => Some(w.max(coarse::COARSE_INTERVAL_US)),
        None if coarse => Some(shared.peak_window_us(None).max(coarse::COARSE_INTERVAL_US)),
        other => other,
    };
    let peak_window_us = shared.peak_window_us(asked);
    let (mut window, history) = known_job(shared, &id)?;
    let running = window.end_unix_us.is_none();
    if coarse && running {
        // As of the last whole second: a running job is measured up to it.
        let as_of = coarse::as_of_us(shared.clock.now_unix_us()).max(window.begin_unix_us);
        window.end_unix_us = Some(as_of);
    }
    let ring = lock(&shared.ring);
    let mut result = carry::answer(
        &shared.job_view(),
        &ring,
        &window,
        &history,
        peak_window_us,
        asked.is_some(),
    );
    if coarse {
        result.running = running;
        let labels = tier.sees_labels_of(result.user.as_deref());
        coarse::job(&mut result, labels);
    }
    Ok(Json(result))
}
