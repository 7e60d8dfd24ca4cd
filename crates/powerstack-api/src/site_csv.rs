//! CSV of the site service's documents.
//!
//! - [`job_report_csv`] (`powerstack job report --format csv`): the columns of `job query`'s CSV
//!   ([`crate::job_csv`]), so its readers read both, then `covered_percent`: how much of the
//!   job's window the row's figures cover (the `TOTAL` row: the mean over the nodes).
//! - [`jobs_csv`] (`powerstack jobs --format csv`): one row per job.
//!
//! As in `job query`'s CSV, a figure that cannot be given is `-1`, never 0, and text fields are
//! quoted when they hold a comma, a quote or a line break.

use std::fmt::Write as _;

use powerstack_model::civil::format_utc;

use crate::job_csv::{field, job_query_csv_with, num, num_digits};
use crate::site::{SiteJobReportV1, SiteJobsV1};
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
