//! Job queries: a job asked of its nodes' agents at once (`powerstack_client::fanout`, as
//! `powerstack job query`), and the site's job listing and job reports (`powerstack_client::site`,
//! as `powerstack jobs` and `powerstack job report`). Each answers the JSON document and the
//! CLI's CSV, whose columns are the rows the Python layer returns.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use powerstack_api::job_csv::job_query_csv;
use powerstack_api::site::{SiteJobsQueryV1, is_job_id};
use powerstack_api::site_csv::{job_report_csv, jobs_csv};
use powerstack_client::fanout::{ask_all, query_document, targets};
use powerstack_client::hostlist;
use powerstack_client::site::Site;
use pyo3::prelude::*;

use crate::errors::{Failure, json};
use crate::seconds;

/// A job id as the agents and the site take it.
fn job_id(id: &str) -> Result<&str, Failure> {
    if is_job_id(id) {
        Ok(id)
    } else {
        Err(Failure::invalid(format!("job id {id:?}: 1 to 128 characters of A-Z a-z 0-9 . _ : -")))
    }
}

/// Asks the agents of `nodes` (a hostlist, each agent at `port`) and at `agents` (`host:port`
/// or a socket path) for job `job_id`, all at once: the query document (`JobQueryV1`, as `job
/// query --format json` prints it) as JSON, and `job query`'s CSV. A node that does not answer
/// is a row saying so.
#[pyfunction]
#[pyo3(signature = (job_id, agents=Vec::new(), nodes=None, port=9464, timeout_s=2.0, token=None, peak_window_s=None))]
#[allow(clippy::too_many_arguments)] // Python's keyword arguments
pub fn job_query(
    py: Python<'_>,
    job_id: &str,
    agents: Vec<String>,
    nodes: Option<String>,
    port: u16,
    timeout_s: f64,
    token: Option<String>,
    peak_window_s: Option<f64>,
) -> PyResult<(String, String)> {
    let id = self::job_id(job_id)?;
    let timeout = seconds(timeout_s, "timeout_s")?;
    let window = peak_window_s.map(|w| seconds(w, "peak_window_s")).transpose()?;
    let targets = targets(nodes.as_deref(), port, &agents).map_err(Failure::from)?;
    let path = match window {
        Some(w) => format!("/v1/jobs/{id}?peak_window={}us", w.as_micros()),
        None => format!("/v1/jobs/{id}"),
    };
    let rows = py.detach(|| ask_all(targets, &path, token.as_deref(), timeout));
    let doc = query_document(id, &rows);
    Ok((json(&doc)?, job_query_csv(&doc)))
}

/// The site at `url` with `token` and the CA bundle `ca_file`.
fn site(
    url: &str,
    token: Option<String>,
    ca_file: Option<PathBuf>,
    timeout_s: f64,
) -> Result<Site, Failure> {
    let timeout = seconds(timeout_s, "timeout_s")?;
    Ok(Site::new(url, token, timeout)?.with_ca_file(ca_file.as_deref())?)
}

fn now_unix_us() -> Result<u64, Failure> {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Failure::invalid("the system clock is before 1970: set the clock"))?;
    Ok(u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX))
}

/// The jobs recorded at the site (`user`, `since`/`until` as `powerstack jobs` takes them:
/// `7d`, `2026-11-21`, `@SECONDS`, and `limit`): the `powerstack.site-jobs.v1` document as JSON
/// and `jobs`' CSV.
#[pyfunction]
#[pyo3(signature = (url, token=None, ca_file=None, timeout_s=10.0, user=None, since=None, until=None, limit=None))]
#[allow(clippy::too_many_arguments)] // Python's keyword arguments
pub fn site_jobs(
    py: Python<'_>,
    url: &str,
    token: Option<String>,
    ca_file: Option<PathBuf>,
    timeout_s: f64,
    user: Option<&str>,
    since: Option<&str>,
    until: Option<&str>,
    limit: Option<usize>,
) -> PyResult<(String, String)> {
    let now = now_unix_us()?;
    let names = ["since", "until", "limit"];
    let q = SiteJobsQueryV1::from_text(user, since, until, limit, now, names)
        .map_err(Failure::invalid)?;
    let site = site(url, token, ca_file, timeout_s)?;
    let doc = py.detach(|| site.jobs(&q)).map_err(Failure::from)?;
    Ok((json(&doc)?, jobs_csv(&doc, now, hostlist::compress::<String>)))
}

/// Job `job_id`'s record and figures from the site: the `powerstack.site-job.v1` document as
/// JSON and `job report`'s CSV.
#[pyfunction]
#[pyo3(signature = (url, job_id, token=None, ca_file=None, timeout_s=10.0))]
pub fn site_job_report(
    py: Python<'_>,
    url: &str,
    job_id: &str,
    token: Option<String>,
    ca_file: Option<PathBuf>,
    timeout_s: f64,
) -> PyResult<(String, String)> {
    let id = self::job_id(job_id)?;
    let site = site(url, token, ca_file, timeout_s)?;
    let report = py.detach(|| site.job_report(id)).map_err(Failure::from)?;
    Ok((json(&report)?, job_report_csv(&report)))
}
