//! Human tables of the site service's documents: a job's report (`powerstack job report`) and a
//! listing of jobs (`powerstack jobs`), with the figures they show beyond the documents: how
//! much of a job's window has data, energy in kWh, durations, UTC dates.
//!
//! Node lists are shown as hostlists (`node[01-04,07]`); the caller passes the compressor
//! (`powerstack_client::hostlist::compress`), since hostlists are the client's.

use std::fmt::Write as _;

use powerstack_model::civil::format_utc;

use crate::job::{DeviceClass, JobQueryV1, JobResultV1, known};
use crate::site::{SiteJobReportV1, SiteJobV1, SiteJobsV1};

/// Compresses a list of node names into a hostlist (`node[01-04,07]`).
pub type Compress = fn(&[String]) -> String;

/// Joules in a kilowatt-hour.
pub const JOULES_PER_KWH: f64 = 3.6e6;

/// The job's window as the report covers it, µs since the Unix epoch: from its beginning to its
/// end, or, while it runs, to the newest data of any node. `None` when it has no length yet.
pub fn job_window(job: &SiteJobV1, report: &JobQueryV1) -> Option<(u64, u64)> {
    let end = job.end_unix_us.unwrap_or(report.total.result_end_time);
    (end > job.begin_unix_us).then_some((job.begin_unix_us, end))
}

/// How much of `window` a node's figures cover, %: its covered part, less its gaps, clipped to
/// the window. `None` when there is no window.
pub fn covered_percent(window: Option<(u64, u64)>, r: &JobResultV1) -> Option<f64> {
    let (begin, end) = window?;
    Some(covered_us(begin, end, r) as f64 * 100.0 / (end - begin) as f64)
}

fn covered_us(begin: u64, end: u64, r: &JobResultV1) -> u64 {
    let clip = |a: u64, b: u64| b.min(end).saturating_sub(a.max(begin));
    if r.result_end_time == 0 {
        return 0;
    }
    let gaps: u64 = r.gaps.iter().map(|g| clip(g.start_unix_us, g.end_unix_us)).sum();
    clip(r.result_start_time, r.result_end_time).saturating_sub(gaps)
}

/// How much of the window the nodes' figures cover on average, %.
pub fn total_covered_percent(window: Option<(u64, u64)>, report: &JobQueryV1) -> Option<f64> {
    let (begin, end) = window?;
    if report.nodes.is_empty() {
        return None;
    }
    let covered: u64 = report.nodes.iter().map(|n| covered_us(begin, end, &n.result)).sum();
    Some(covered as f64 * 100.0 / ((end - begin) as f64 * report.nodes.len() as f64))
}

/// A duration in whole seconds as `42s`, `12m 03s`, `3h 02m 01s` or `2d 03h 04m`.
pub fn fmt_duration_s(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h:02}h {m:02}m")
    } else if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// A figure with `digits` decimals, `-` when missing.
fn cell(x: Option<f64>, digits: usize) -> String {
    x.filter(|v| v.is_finite()).map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

/// Text for a table: control characters (a job name's line break) shown as `?`, `-` when empty.
pub(crate) fn text(s: Option<&str>) -> String {
    match s {
        Some(s) if !s.is_empty() => {
            s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
        }
        _ => "-".into(),
    }
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// Columns padded to their widest cell; the last column unpadded, no trailing spaces.
pub(crate) fn render(out: &mut String, head: &[(&str, Align)], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = head.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let header: Vec<String> = head.iter().map(|(h, _)| (*h).to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (c, ((_, align), w))) in row.iter().zip(head.iter().zip(&widths)).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let last = i + 1 == head.len();
            match align {
                Align::Right => {
                    let _ = write!(line, "{c:>w$}");
                }
                Align::Left if last => line.push_str(c),
                Align::Left => {
                    let _ = write!(line, "{c:<w$}");
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// `job report`: the job's record (user, account, app, nodes, begin, end, energy, power, its
/// power request and priority when given, data),
/// then one row per node and the `TOTAL` row.
pub fn job_report(r: &SiteJobReportV1, compress: Compress) -> String {
    let job = &r.job;
    let window = job_window(job, &r.report);
    let mut out = String::new();
    let mut kv = |key: &str, value: String| {
        let _ = writeln!(out, "{key:<9}{value}");
    };
    kv("job", text(Some(&job.id)));
    kv("user", text(job.user.as_deref()));
    kv("account", text(job.account.as_deref()));
    kv("app", text(job.app.as_deref()));
    kv("nodes", format!("{} ({})", text(Some(&compress(&job.nodes))), job.nodes.len()));
    kv("begin", format!("{} UTC", format_utc(job.begin_unix_us)));
    match (job.end_unix_us, window) {
        (Some(end), _) => kv("end", format!("{} UTC", format_utc(end))),
        (None, Some((_, to))) => kv("end", format!("running (data to {} UTC)", format_utc(to))),
        (None, None) => kv("end", "running".into()),
    }
    let secs = window.map(|(b, e)| (e - b) / 1_000_000);
    let running = if job.end_unix_us.is_none() { " so far" } else { "" };
    kv("duration", secs.map_or_else(|| "-".into(), |s| format!("{}{running}", fmt_duration_s(s))));
    let total = &r.report.total;
    let joules = job.energy_joules.or(known(total.energy_joules));
    kv(
        "energy",
        joules.map_or_else(|| "-".into(), |j| format!("{:.3} kWh ({j:.1} J)", j / JOULES_PER_KWH)),
    );
    let mean = job.mean_power_watts.or(known(total.node_power));
    let peak = job.peak_power_watts.map_or_else(String::new, |p| {
        format!(", peak at most {p:.2} W (the sum of the nodes' peaks)")
    });
    kv("power", format!("mean {} W{peak}", cell(mean, 2)));
    if job.power_watts.is_some() || job.priority.is_some() {
        let asked = job.power_watts.map_or_else(|| "no power".into(), |w| format!("{w:.1} W"));
        let priority = job.priority.map_or_else(|| "none".into(), |p| p.to_string());
        kv("request", format!("{asked}, priority {priority} (for the site's power bound)"));
    }
    let presence = job.data_presence.unwrap_or(total.data_presence).as_str();
    let settled = if job.settled { "" } else { "; not final: nodes are still sending data" };
    let pct = cell(total_covered_percent(window, &r.report), 1);
    kv("data", format!("{presence}, {pct}% of the window covered{settled}"));
    if !r.shared.is_empty() {
        let with: Vec<String> =
            r.shared.iter().map(|s| format!("{} with {}", s.node, s.jobs.join(" "))).collect();
        let note = "its part of their energy; peaks estimated";
        kv("shared", format!("{} ({note})", text(Some(&with.join(", ")))));
    }
    if !r.bmc.is_empty() {
        let how: Vec<String> =
            r.bmc.iter().map(|b| format!("{} {}", b.node, b.providers.join(" "))).collect();
        kv("bmc", format!("{} (read through the BMC, no agent)", text(Some(&how.join(", ")))));
    }
    out.push('\n');
    node_rows(&mut out, r, window);
    out
}

/// The per-node table of a report and its `TOTAL` row.
fn node_rows(out: &mut String, r: &SiteJobReportV1, window: Option<(u64, u64)>) {
    use Align::{Left, Right};
    let head = [
        ("HOST", Left),
        ("DATA", Left),
        ("COVERED", Right),
        ("ENERGY (J)", Right),
        ("POWER (W)", Right),
        ("PEAK (W)", Right),
        ("CPU (W)", Right),
        ("MEM (W)", Right),
        ("GPU (W)", Right),
        ("SAMPLES", Right),
        ("TIME (s)", Right),
        ("STATUS", Left),
    ];
    let secs = |start: u64, end: u64| {
        if end > start { format!("{:.1}", (end - start) as f64 / 1e6) } else { "-".into() }
    };
    let pct = |p: Option<f64>| p.map_or_else(|| "-".into(), |p| format!("{p:.1}%"));
    let mut rows: Vec<Vec<String>> = r
        .report
        .nodes
        .iter()
        .map(|n| {
            let x = &n.result;
            vec![
                text(Some(&x.hostname)),
                x.data_presence.as_str().into(),
                pct(covered_percent(window, x)),
                cell(known(x.energy_joules), 3),
                cell(known(x.node_power), 2),
                cell(known(x.peak_node_power), 2),
                cell(x.class_watts(DeviceClass::Cpu), 2),
                cell(x.class_watts(DeviceClass::Mem), 2),
                cell(x.class_watts(DeviceClass::Gpu), 2),
                x.samples.to_string(),
                secs(x.result_start_time, x.result_end_time),
                text(Some(&n.status)),
            ]
        })
        .collect();
    let t = &r.report.total;
    rows.push(vec![
        "TOTAL".into(),
        t.data_presence.as_str().into(),
        pct(total_covered_percent(window, &r.report)),
        cell(known(t.energy_joules), 3),
        cell(known(t.node_power), 2),
        "-".into(),
        cell(t.class_watts(DeviceClass::Cpu), 2),
        cell(t.class_watts(DeviceClass::Mem), 2),
        cell(t.class_watts(DeviceClass::Gpu), 2),
        t.samples.to_string(),
        secs(t.result_start_time, t.result_end_time),
        t.status(),
    ]);
    render(out, &head, &rows);
}

/// The length of a job, s: to its end, or to `now_unix_us` while it runs.
pub fn job_duration_s(job: &SiteJobV1, now_unix_us: u64) -> u64 {
    job.end_unix_us.unwrap_or(now_unix_us).saturating_sub(job.begin_unix_us) / 1_000_000
}

/// `jobs`: one row per job, newest first as the site sends them; durations of running jobs run
/// to `now_unix_us`.
pub fn jobs(doc: &SiteJobsV1, now_unix_us: u64, compress: Compress) -> String {
    use Align::{Left, Right};
    let head = [
        ("JOBID", Left),
        ("USER", Left),
        ("ACCOUNT", Left),
        ("APP", Left),
        ("NODES", Left),
        ("BEGIN (UTC)", Left),
        ("END (UTC)", Left),
        ("DURATION", Right),
        ("ENERGY (kWh)", Right),
        ("ENERGY (J)", Right),
        ("MEAN (W)", Right),
        ("PEAK (W)", Right),
        ("DATA", Left),
    ];
    let mut unsettled = false;
    let rows: Vec<Vec<String>> = doc
        .jobs
        .iter()
        .map(|j| {
            let pending = j.end_unix_us.is_some() && !j.settled;
            unsettled |= pending;
            let presence = j.data_presence.map_or("-", |p| p.as_str());
            vec![
                text(Some(&j.id)),
                text(j.user.as_deref()),
                text(j.account.as_deref()),
                text(j.app.as_deref()),
                text(Some(&compress(&j.nodes))),
                format_utc(j.begin_unix_us),
                j.end_unix_us.map_or_else(|| "running".into(), format_utc),
                fmt_duration_s(job_duration_s(j, now_unix_us)),
                cell(j.energy_joules.map(|e| e / JOULES_PER_KWH), 3),
                cell(j.energy_joules, 0),
                cell(j.mean_power_watts, 1),
                cell(j.peak_power_watts, 1),
                format!("{presence}{}", if pending { "*" } else { "" }),
            ]
        })
        .collect();
    let mut out = String::new();
    render(&mut out, &head, &rows);
    if doc.jobs.is_empty() {
        out.push_str("(no job matched)\n");
    }
    if unsettled {
        out.push_str("* not final: the job's nodes are still sending data\n");
    }
    if doc.truncated {
        out.push_str("(more jobs matched than shown: raise --limit)\n");
    }
    out
}

#[cfg(test)]
mod tests;
