//! Job records: begun and ended by the scheduler, listed and reported to their users.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use powerstack_api::agent::ErrorV1;
use powerstack_api::site::{
    DocumentFormatV1, JobReportQueryV1, MAX_JOB_NODES, SiteJobBeginV1, SiteJobReportV1, SiteJobV1,
    SiteJobsQueryV1, SiteJobsV1, SiteTimeseriesV1, TimeseriesQueryV1, is_job_id, is_node_name,
};
use powerstack_api::site_csv::{job_report_csv, timeseries_csv};
use powerstack_model::duration::parse_duration;

use super::{ApiError, App, caller, count_error, json_body, now_us};
use crate::access::Principal;
use crate::report;
use crate::store::JobsFilter;

/// The most jobs a listing answers.
pub const MAX_LIST: usize = 100_000;
/// How many nodes of running jobs a listing computes figures so far for (the newest running
/// jobs that fit); the others show none until they end (their report computes them).
pub const MAX_LIVE_NODES: usize = 256;
/// The most characters of a user, account or application label.
pub const MAX_LABEL: usize = 256;

fn check_id(id: &str) -> Result<(), ApiError> {
    if is_job_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "job id {id:?}: 1 to 128 characters of A-Z a-z 0-9 . _ : -"
        )))
    }
}

fn check_label(what: &str, v: Option<&str>) -> Result<(), ApiError> {
    match v {
        Some(s) if s.chars().count() > MAX_LABEL || s.chars().any(char::is_control) => {
            Err(ApiError::bad_request(format!(
                "{what}: at most {MAX_LABEL} characters, no control character"
            )))
        }
        _ => Ok(()),
    }
}

/// The job, if `who` may read it (else a 404 for a user, so that ids of others' jobs are not
/// revealed, and a 403 for an agent).
async fn readable(state: &App, who: &Principal, id: &str) -> Result<SiteJobV1, ApiError> {
    check_id(id)?;
    let job = state.store.job(id).await.inspect_err(|e| count_error(state, e))?;
    if !who.may_read_jobs_of(job.user.as_deref()) {
        return Err(if who.user.is_some() {
            ApiError::new(StatusCode::NOT_FOUND, format!("no job {id} at the site"))
        } else {
            ApiError::forbidden("this token may not read job records")
        });
    }
    Ok(job)
}

/// `POST /v1/jobs`.
#[utoipa::path(post, path = "/v1/jobs", operation_id = "beginSiteJob",
    summary = "Records a job's beginning now (the site's clock), with its nodes and labels.",
    request_body = SiteJobBeginV1, security(("bearer" = [])),
    responses(
        (status = 201, description = "The job is recorded.", body = SiteJobV1),
        (status = 400, description = "A malformed body, id, node name, label or allocation (one naming a node not of the job, or a node twice), or a `power_watts` that is not a finite number above 0.", body = ErrorV1),
        (status = 401, description = "No or an unknown token.", body = ErrorV1),
        (status = 403, description = "The token may not write job records.", body = ErrorV1),
        (status = 409, description = "A job with this id is recorded already.", body = ErrorV1),
        (status = 503, description = "The database is away.", body = ErrorV1),
    ))]
pub(crate) async fn begin(
    State(state): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<SiteJobV1>), ApiError> {
    let who = caller(&state, &headers)?;
    if !who.may_write_jobs() {
        return Err(ApiError::forbidden(
            "this token may not write job records: the scheduler's hooks do",
        ));
    }
    let job: SiteJobBeginV1 = json_body(&body)?;
    check_id(&job.id)?;
    if job.nodes.is_empty() || job.nodes.len() > MAX_JOB_NODES {
        return Err(ApiError::bad_request(format!("nodes: 1 to {MAX_JOB_NODES} node names")));
    }
    if let Some(bad) = job.nodes.iter().find(|n| !is_node_name(n)) {
        return Err(ApiError::bad_request(format!(
            "node name {bad:?}: 1 to 64 characters of A-Z a-z 0-9 . _ -"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = job.nodes.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(ApiError::bad_request(format!("node {dup} is named twice")));
    }
    check_label("user", job.user.as_deref())?;
    check_label("account", job.account.as_deref())?;
    check_label("app", job.app.as_deref())?;
    if let Some(why) = job.allocation_problem().or_else(|| job.power_problem()) {
        return Err(ApiError::bad_request(why));
    }
    let row =
        state.store.begin_job(&job, now_us()).await.inspect_err(|e| count_error(&state, e))?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// `POST /v1/jobs/{id}/end`.
#[utoipa::path(post, path = "/v1/jobs/{id}/end", operation_id = "endSiteJob",
    summary = "Records a job's end now (ending an ended job answers it as it is); its figures settle as its nodes' samples arrive.",
    params(("id" = String, Path, description = "The job's id.", pattern = r"^[A-Za-z0-9._:-]{1,128}$")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job record.", body = SiteJobV1),
        (status = 400, description = "A malformed id.", body = ErrorV1),
        (status = 401, description = "No or an unknown token.", body = ErrorV1),
        (status = 403, description = "The token may not write job records.", body = ErrorV1),
        (status = 404, description = "No such job.", body = ErrorV1),
        (status = 503, description = "The database is away.", body = ErrorV1),
    ))]
pub(crate) async fn end(
    State(state): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<SiteJobV1>, ApiError> {
    let who = caller(&state, &headers)?;
    if !who.may_write_jobs() {
        return Err(ApiError::forbidden(
            "this token may not write job records: the scheduler's hooks do",
        ));
    }
    check_id(&id)?;
    let now = now_us();
    state.store.end_job(&id, now).await.inspect_err(|e| count_error(&state, e))?;
    // Settle what can be settled now; the rest settles as samples arrive.
    let r = report::job_report(&state.store, &id, now, &state.report)
        .await
        .inspect_err(|e| count_error(&state, e))?;
    Ok(Json(r.job))
}

/// `GET /v1/jobs/{id}`.
#[utoipa::path(get, path = "/v1/jobs/{id}", operation_id = "siteJobReport",
    summary = "A job's report: per node (figures from the stored counters) and in total.",
    params(("id" = String, Path, description = "The job's id.", pattern = r"^[A-Za-z0-9._:-]{1,128}$"), JobReportQueryV1),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job and its report; with `format=csv`, the CSV of `powerstack job report --format csv`.",
            content((SiteJobReportV1 = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A malformed id or format.", body = ErrorV1),
        (status = 401, description = "No or an unknown token.", body = ErrorV1),
        (status = 403, description = "The token may not read job records.", body = ErrorV1),
        (status = 404, description = "No such job (or not the caller's).", body = ErrorV1),
        (status = 503, description = "The database is away.", body = ErrorV1),
    ))]
pub(crate) async fn get(
    State(state): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<JobReportQueryV1>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let who = caller(&state, &headers)?;
    readable(&state, &who, &id).await?;
    let r = report::job_report(&state.store, &id, now_us(), &state.report)
        .await
        .inspect_err(|e| count_error(&state, e))?;
    Ok(match q.format.unwrap_or_default() {
        DocumentFormatV1::Json => Json(r).into_response(),
        DocumentFormatV1::Csv => csv(job_report_csv(&r)),
    })
}

/// A CSV answer.
fn csv(text: String) -> Response {
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], text).into_response()
}

/// `GET /v1/jobs/{id}/timeseries`.
#[utoipa::path(get, path = "/v1/jobs/{id}/timeseries", operation_id = "siteJobTimeseries",
    summary = "A job's node power over time: per node, the mean power over each step.",
    params(("id" = String, Path, description = "The job's id.", pattern = r"^[A-Za-z0-9._:-]{1,128}$"), TimeseriesQueryV1),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The series; with `format=csv`, one row per node and step.",
            content((SiteTimeseriesV1 = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A malformed id, step or format.", body = ErrorV1),
        (status = 401, description = "No or an unknown token.", body = ErrorV1),
        (status = 403, description = "The token may not read job records.", body = ErrorV1),
        (status = 404, description = "No such job (or not the caller's).", body = ErrorV1),
        (status = 422, description = "Too many steps: ask for a longer one.", body = ErrorV1),
        (status = 503, description = "The database is away.", body = ErrorV1),
    ))]
pub(crate) async fn timeseries(
    State(state): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<TimeseriesQueryV1>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let who = caller(&state, &headers)?;
    readable(&state, &who, &id).await?;
    let step_us = match q.step.as_deref() {
        None => None,
        Some(s) => {
            let d =
                parse_duration(s).map_err(|e| ApiError::bad_request(format!("step {s:?}: {e}")))?;
            if d.as_micros() < 1000 || d.as_secs() > 86_400 {
                return Err(ApiError::bad_request(format!("step {s:?}: 1ms to 24h")));
            }
            Some(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        }
    };
    let t = report::timeseries(&state.store, &id, step_us, now_us())
        .await
        .inspect_err(|e| count_error(&state, e))?;
    Ok(match q.format.unwrap_or_default() {
        DocumentFormatV1::Json => Json(t).into_response(),
        DocumentFormatV1::Csv => csv(timeseries_csv(&t)),
    })
}

/// `GET /v1/jobs`.
#[utoipa::path(get, path = "/v1/jobs", operation_id = "listSiteJobs",
    summary = "Jobs, newest first: a user sees their own. Ended jobs carry their figures once settled, running jobs their figures so far (the newest, up to 256 nodes in all).",
    params(SiteJobsQueryV1), security(("bearer" = [])),
    responses(
        (status = 200, description = "The jobs.", body = SiteJobsV1),
        (status = 400, description = "A malformed query.", body = ErrorV1),
        (status = 401, description = "No or an unknown token.", body = ErrorV1),
        (status = 403, description = "The token may not read these jobs.", body = ErrorV1),
        (status = 503, description = "The database is away.", body = ErrorV1),
    ))]
pub(crate) async fn list(
    State(state): State<App>,
    headers: HeaderMap,
    query: Result<Query<SiteJobsQueryV1>, QueryRejection>,
) -> Result<Json<SiteJobsV1>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let who = caller(&state, &headers)?;
    let user = match (&who.user, q.user) {
        (Some(me), None) => Some(me.clone()),
        (_, asked) => asked,
    };
    if !who.may_read_jobs_of(user.as_deref()) {
        return Err(ApiError::forbidden("this token may read only its own user's jobs"));
    }
    check_label("user", user.as_deref())?;
    for (what, t) in [("since", q.since), ("until", q.until)] {
        if t.is_some_and(|t| i64::try_from(t).is_err()) {
            return Err(ApiError::bad_request(format!(
                "{what}: µs since the Unix epoch, at most {}",
                i64::MAX
            )));
        }
    }
    let limit = q.limit.unwrap_or(1000);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit {limit}: 1 to {MAX_LIST}")));
    }
    let filter = JobsFilter { user, since_us: q.since, until_us: q.until, limit };
    let (mut jobs, truncated) =
        state.store.jobs(&filter).await.inspect_err(|e| count_error(&state, e))?;
    // The newest running jobs' figures so far, as their report computes them now, within a
    // budget of nodes (a node's figures read its samples).
    let now = now_us();
    let mut budget = MAX_LIVE_NODES;
    for job in jobs.iter_mut().filter(|j| j.end_unix_us.is_none()) {
        if job.nodes.len() > budget {
            continue;
        }
        budget -= job.nodes.len();
        let r = report::job_report(&state.store, &job.id, now, &state.report)
            .await
            .inspect_err(|e| count_error(&state, e))?;
        *job = r.job;
    }
    Ok(Json(SiteJobsV1 { schema: "powerstack.site-jobs.v1".into(), jobs, truncated }))
}
