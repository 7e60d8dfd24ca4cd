//! The site's tables and CSV, pinned on a two-node job and a listing.

use super::*;
use crate::job::{DataPresence, JobGapV1, JobQueryNodeV1, JobTotalV1};
use crate::site::BmcNodeV1;
use crate::site_csv::{JOBS_CSV_HEADER, job_report_csv, jobs_csv};

/// 2026-11-21 10:00:00 UTC.
const BEGIN: u64 = 1_795_255_200_000_000;
const HOUR: u64 = 3_600_000_000;

/// A stand-in for the client's hostlist compressor.
fn compress(nodes: &[String]) -> String {
    match nodes {
        [a, b] if a == "node01" && b == "node02" => "node[01-02]".into(),
        _ => nodes.join(","),
    }
}

fn node(host: &str, watts: f64, start: u64, end: u64) -> JobResultV1 {
    let mut r = JobResultV1::unanswered(host, "42");
    r.node_power = watts;
    r.energy_joules = watts * (end - start) as f64 / 1e6;
    r.peak_node_power = watts + 50.0;
    r.peak_window_s = 1.0;
    r.domain_power = [("cpu_power_0".to_string(), watts / 2.0), ("mem_power_0".to_string(), 20.0)]
        .into_iter()
        .collect();
    r.result_start_time = start;
    r.result_end_time = end;
    r.samples = 3600;
    r.data_presence = DataPresence::Complete;
    r
}

fn report() -> SiteJobReportV1 {
    let a = node("node01", 400.0, BEGIN, BEGIN + HOUR);
    let mut b = node("node02", 300.0, BEGIN, BEGIN + HOUR);
    // node02's agent was away for the last quarter of an hour.
    b.gaps = vec![JobGapV1 {
        start_unix_us: BEGIN + 3 * HOUR / 4,
        end_unix_us: BEGIN + HOUR,
        cause: "agent restarted".into(),
    }];
    b.data_presence = DataPresence::Partial;
    b.energy_joules = 300.0 * 2700.0;
    let total = JobTotalV1::of(&[Some(&a), Some(&b)]);
    let energy = total.energy_joules;
    let nodes = [a, b]
        .into_iter()
        .map(|result| JobQueryNodeV1 { result, agent: String::new(), status: "ok".into() })
        .collect();
    SiteJobReportV1 {
        schema: "powerstack.site-job.v1".into(),
        job: SiteJobV1 {
            id: "42".into(),
            user: Some("alice".into()),
            account: Some("proj1".into()),
            app: Some("lammps\nrun".into()),
            nodes: vec!["node01".into(), "node02".into()],
            begin_unix_us: BEGIN,
            end_unix_us: Some(BEGIN + HOUR),
            energy_joules: Some(energy),
            mean_power_watts: Some(700.0),
            peak_power_watts: Some(800.0),
            data_presence: Some(DataPresence::Partial),
            settled: true,
            power_watts: Some(1500.0),
            priority: Some(7),
        },
        shared: Vec::new(),
        bmc: Vec::new(),
        report: JobQueryV1 { job_id: "42".into(), nodes, total },
    }
}

#[test]
fn coverage_is_the_window_less_the_gaps() {
    let r = report();
    let w = job_window(&r.job, &r.report);
    assert_eq!(w, Some((BEGIN, BEGIN + HOUR)));
    assert_eq!(covered_percent(w, &r.report.nodes[0].result), Some(100.0));
    assert_eq!(covered_percent(w, &r.report.nodes[1].result), Some(75.0));
    assert_eq!(total_covered_percent(w, &r.report), Some(87.5));
    // A node with no data covers nothing; no window, no percentage.
    assert_eq!(covered_percent(w, &JobResultV1::unanswered("x", "42")), Some(0.0));
    assert_eq!(covered_percent(None, &r.report.nodes[0].result), None);
}

#[test]
fn a_running_job_is_covered_to_the_newest_data() {
    let mut r = report();
    r.job.end_unix_us = None;
    assert_eq!(job_window(&r.job, &r.report), Some((BEGIN, BEGIN + HOUR)));
    r.report.total.result_end_time = 0;
    assert_eq!(job_window(&r.job, &r.report), None);
}

#[test]
fn durations_read_as_people_say_them() {
    assert_eq!(fmt_duration_s(42), "42s");
    assert_eq!(fmt_duration_s(723), "12m 03s");
    assert_eq!(fmt_duration_s(3600), "1h 00m 00s");
    assert_eq!(fmt_duration_s(2 * 86_400 + 3 * 3600 + 4 * 60 + 5), "2d 03h 04m");
}

#[test]
fn the_report_table() {
    let text = job_report(&report(), compress);
    let expected = "\
job      42
user     alice
account  proj1
app      lammps?run
nodes    node[01-02] (2)
begin    2026-11-21 10:00:00 UTC
end      2026-11-21 11:00:00 UTC
duration 1h 00m 00s
energy   0.625 kWh (2250000.0 J)
power    mean 700.00 W, peak at most 800.00 W (the sum of the nodes' peaks)
request  1500.0 W, priority 7 (for the site's power bound)
data     Partial, 87.5% of the window covered

HOST    DATA      COVERED   ENERGY (J)  POWER (W)  PEAK (W)  CPU (W)  MEM (W)  GPU (W)  SAMPLES  TIME (s)  STATUS
node01  Complete   100.0%  1440000.000     400.00    450.00   200.00    20.00        -     3600    3600.0  ok
node02  Partial     75.0%   810000.000     300.00    350.00   150.00    20.00        -     3600    3600.0  ok
TOTAL   Partial     87.5%  2250000.000     700.00         -   350.00    40.00        -     7200    3600.0  results from all 2 nodes
";
    assert_eq!(text, expected, "\n{text}");
    // Nodes read through their BMC are named, with how.
    let mut r = report();
    r.bmc = vec![BmcNodeV1 { node: "node02".into(), providers: vec!["redfish-integrated".into()] }];
    let text = job_report(&r, compress);
    let line = "bmc      node02 redfish-integrated (read through the BMC, no agent)\n\nHOST";
    assert!(text.contains(line), "{text}");
}

#[test]
fn the_report_csv_has_the_job_query_columns_then_the_coverage() {
    let csv = job_report_csv(&report());
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "hostname,node_power,result_start_time,result_end_time,data_presence,cpu_power_0,mem_power_0,energy_joules,peak_node_power,peak_window_s,samples,status,covered_percent"
    );
    assert_eq!(
        lines[2],
        format!("node02,300,{BEGIN},{},Partial,150,20,810000,350,1,3600,ok,75", BEGIN + HOUR)
    );
    assert!(lines[3].starts_with("TOTAL,700,"), "{}", lines[3]);
    assert!(lines[3].ends_with(",results from all 2 nodes,87.5"), "{}", lines[3]);
    assert_eq!(lines.len(), 4);
}

fn listing() -> SiteJobsV1 {
    let r = report();
    let mut running = r.job.clone();
    running.id = "43".into();
    running.user = None;
    running.account = Some("a,b".into());
    running.app = None;
    running.nodes = vec!["node03".into()];
    running.begin_unix_us = BEGIN + 2 * HOUR;
    running.end_unix_us = None;
    running.energy_joules = None;
    running.mean_power_watts = None;
    running.peak_power_watts = None;
    running.data_presence = None;
    running.settled = false;
    let mut unsettled = r.job.clone();
    unsettled.id = "41".into();
    unsettled.settled = false;
    SiteJobsV1 {
        schema: "powerstack.site-jobs.v1".into(),
        jobs: vec![running, r.job, unsettled],
        truncated: true,
    }
}

#[test]
fn the_jobs_table() {
    let now = BEGIN + 2 * HOUR + 90_000_000;
    let text = jobs(&listing(), now, compress);
    let expected = "\
JOBID  USER   ACCOUNT  APP         NODES        BEGIN (UTC)          END (UTC)              DURATION  ENERGY (kWh)  ENERGY (J)  MEAN (W)  PEAK (W)  DATA
43     -      a,b      -           node03       2026-11-21 12:00:00  running                  1m 30s             -           -         -         -  -
42     alice  proj1    lammps?run  node[01-02]  2026-11-21 10:00:00  2026-11-21 11:00:00  1h 00m 00s         0.625     2250000     700.0     800.0  Partial
41     alice  proj1    lammps?run  node[01-02]  2026-11-21 10:00:00  2026-11-21 11:00:00  1h 00m 00s         0.625     2250000     700.0     800.0  Partial*
* not final: the job's nodes are still sending data
(more jobs matched than shown: raise --limit)
";
    assert_eq!(text, expected, "\n{text}");
    let empty = SiteJobsV1 { schema: String::new(), jobs: Vec::new(), truncated: false };
    assert!(jobs(&empty, now, compress).ends_with("DATA\n(no job matched)\n"));
}

#[test]
fn the_jobs_csv() {
    let now = BEGIN + 2 * HOUR + 90_000_000;
    let csv = jobs_csv(&listing(), now, compress);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], JOBS_CSV_HEADER);
    assert_eq!(
        lines[1],
        format!(
            "43,,\"a,b\",,node03,1,{},,2026-11-21 12:00:00,running,90,-1,-1,-1,-1,,false",
            BEGIN + 2 * HOUR
        )
    );
    assert_eq!(
        lines[2],
        format!(
            "42,alice,proj1,\"lammps\nrun\",node[01-02],2,{BEGIN},{},2026-11-21 10:00:00,2026-11-21 11:00:00,3600,0.625,2250000,700,800,Partial,true",
            BEGIN + HOUR
        )
        .lines()
        .next()
        .unwrap()
    );
    assert_eq!(csv.matches('\n').count(), 6, "a header, three rows, two quoted line breaks");
}
