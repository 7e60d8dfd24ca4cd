//! CSV of the site service's documents.
//!
//! - [`job_report_csv`] (`powerstack job report --format csv`): the columns of `job query`'s CSV
//!   ([`crate::job_csv`]), so its readers read both, then `covered_percent`: how much of the
//!   job's window the row's figures cover (the `TOTAL` row: the mean over the nodes).
//! - [`jobs_csv`] (`powerstack jobs --format csv`): one row per job.
//! - [`timeseries_csv`] (`GET /v1/jobs/{id}/timeseries?format=csv`): one row per node and step.
//!
//! As in `job query`'s CSV, a figure that cannot be given is `-1`, never 0, and text fields are
//! quoted when they hold a comma, a quote or a line break.

use std::fmt::Write as _;

use powerstack_model::civil::format_utc;

use crate::job_csv::{field, job_query_csv_with, num, num_digits};
use crate::site::{SiteJobReportV1, SiteJobsV1, SiteTimeseriesV1};
use crate::site_table::{
    Compress, JOULES_PER_KWH, covered_percent, job_duration_s, job_window, total_covered_percent,
};

/// A job report as CSV: `job query`'s columns, then `covered_percent`.
pub fn job_report_csv(r: &SiteJobReportV1) -> String {
    let window = job_window(&r.job, &r.report);
    let pct = |p: Option<f64>| num_digits(p.unwrap_or(-1.0), 1);
    job_query_csv_with(&r.report, &["covered_percent"], &|node| match node {
        Some(n) => vec![pct(covered_percent(window, &n.result))],
        None => vec![pct(total_covered_percent(window, &r.report))],
    })
}

/// The columns of [`jobs_csv`], in order.
pub const JOBS_CSV_HEADER: &str = "job_id,user,account,app,nodes,node_count,begin_unix_us,end_unix_us,begin_utc,end_utc,duration_s,energy_kwh,energy_joules,mean_power_watts,peak_power_watts,data_presence,settled";

/// Jobs as CSV, one row per job: `end_unix_us` empty and `end_utc` `running` while a job runs
/// (its `duration_s` then runs to `now_unix_us`); `energy_kwh` with six decimals.
pub fn jobs_csv(doc: &SiteJobsV1, now_unix_us: u64, compress: Compress) -> String {
    let mut out = format!("{JOBS_CSV_HEADER}\n");
    let opt = |x: Option<f64>, digits: usize| num_digits(x.unwrap_or(-1.0), digits);
    for j in &doc.jobs {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            field(&j.id),
            field(j.user.as_deref().unwrap_or("")),
            field(j.account.as_deref().unwrap_or("")),
            field(j.app.as_deref().unwrap_or("")),
            field(&compress(&j.nodes)),
            j.nodes.len(),
            j.begin_unix_us,
            j.end_unix_us.map_or_else(String::new, |e| e.to_string()),
            format_utc(j.begin_unix_us),
            j.end_unix_us.map_or_else(|| "running".into(), format_utc),
            job_duration_s(j, now_unix_us),
            opt(j.energy_joules.map(|e| e / JOULES_PER_KWH), 6),
            num(j.energy_joules.unwrap_or(-1.0)),
            opt(j.mean_power_watts, 3),
            opt(j.peak_power_watts, 3),
            j.data_presence.map_or("", |p| p.as_str()),
            j.settled,
        );
    }
    out
}

/// The columns of [`timeseries_csv`], in order.
pub const TIMESERIES_CSV_HEADER: &str =
    "node,step_start_unix_us,step_start_utc,step_s,node_watts,cpu_watts,memory_watts,gpu_watts";

/// A job's time series as CSV, one row per node and step, in the order of the document: the mean
/// power of the node and of each kind of its domains over the step, `-1` where the step has no
/// data or the node no such domain.
pub fn timeseries_csv(t: &SiteTimeseriesV1) -> String {
    let mut out = format!("{TIMESERIES_CSV_HEADER}\n");
    let at = |v: &[Option<f64>], k: usize| num(v.get(k).copied().flatten().unwrap_or(-1.0));
    for n in &t.nodes {
        for k in 0..n.watts.len() {
            let start = t.start_unix_us.saturating_add((k as f64 * t.step_s * 1e6).round() as u64);
            let _ = writeln!(
                out,
                "{},{start},{},{},{},{},{},{}",
                field(&n.node),
                format_utc(start),
                num(t.step_s),
                at(&n.watts, k),
                at(&n.cpu_watts, k),
                at(&n.memory_watts, k),
                at(&n.gpu_watts, k),
            );
        }
    }
    out
}
