//! The site's side of the command (`job begin/end --site`, `job report`, `jobs`) through the
//! built binary, against a fake site and fake agents: std threads on 127.0.0.1 ports answering
//! canned documents and recording every request.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::{Value, json};

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

fn run_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::cargo_bin("powerstack").unwrap();
    for var in [
        "POWERSTACK_AGENT",
        "POWERSTACK_TOKEN_FILE",
        "POWERSTACK_SITE",
        "POWERSTACK_SITE_TOKEN_FILE",
        "POWERSTACK_SITE_CA",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.args(args).output().unwrap();
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run(args: &[&str]) -> Run {
    run_env(args, &[])
}

/// A request as the fake server saw it: its request line and its body.
#[derive(Clone, Debug)]
struct Seen {
    line: String,
    head: String,
    body: String,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// One canned answer: `METHOD /path` (matching that path, with or without a query), the status
/// and the body.
fn route(request: &str, status: u16, body: Value) -> (String, u16, String) {
    (request.to_string(), status, body.to_string())
}

fn read_request(s: &mut impl Read) -> Seen {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    let _ = s.read_exact(&mut body);
    let line = head.lines().next().unwrap_or("").to_string();
    Seen { line, head, body: String::from_utf8_lossy(&body).into_owned() }
}

/// A fake server on 127.0.0.1: answers each connection from `routes` (404 otherwise, in the
/// site's error shape), records every request. Runs until the test process ends.
fn serve(routes: Vec<(String, u16, String)>) -> (String, u16, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Log = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let req = read_request(&mut s);
            let found = routes.iter().find(|(r, _, _)| {
                req.line
                    .strip_prefix(r.as_str())
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('?'))
            });
            let (status, body) = match found {
                Some((_, status, body)) => (*status, body.clone()),
                None => {
                    (404, json!({"error": {"status": 404, "message": "no such route"}}).to_string())
                }
            };
            log.lock().unwrap().push(req);
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes());
        }
    });
    (format!("http://{addr}"), addr.port(), seen)
}

/// An address nobody listens on.
fn dead_site() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

fn requests(log: &Log) -> Vec<Seen> {
    log.lock().unwrap().clone()
}

/// 2026-11-21 10:00:00 UTC.
const BEGIN: u64 = 1_795_255_200_000_000;
const HOUR: u64 = 3_600_000_000;

fn job_record(nodes: &[&str], end: Option<u64>) -> Value {
    json!({
        "id": "42", "user": "alice", "account": "proj1", "app": "lammps", "nodes": nodes,
        "begin_unix_us": BEGIN, "end_unix_us": end,
        "energy_joules": end.map(|_| 2_520_000.0), "mean_power_watts": end.map(|_| 700.0),
        "peak_power_watts": end.map(|_| 800.0),
        "data_presence": end.map(|_| "Complete"), "settled": end.is_some()
    })
}

fn node_row(host: &str, watts: f64, presence: &str) -> Value {
    json!({
        "hostname": host, "job_id": "42", "user": "alice", "app": "lammps", "running": false,
        "node_power": watts, "energy_joules": watts * 3600.0,
        "cpu_power_0": watts / 2.0, "mem_power_0": 20.0,
        "peak_node_power": watts + 50.0, "peak_window_s": 1.0,
        "result_start_time": BEGIN, "result_end_time": BEGIN + HOUR,
        "samples": 3600, "data_presence": presence, "agent": "", "status": "ok"
    })
}

fn report(presence_b: &str) -> Value {
    let total_presence = if presence_b == "Complete" { "Complete" } else { "Partial" };
    json!({
        "schema": "powerstack.site-job.v1",
        "job": job_record(&["node01", "node02"], Some(BEGIN + HOUR)),
        "job_id": "42",
        "nodes": [node_row("node01", 400.0, "Complete"), node_row("node02", 300.0, presence_b)],
        "total": {
            "hostname": "TOTAL", "node_power": 700.0, "energy_joules": 2_520_000.0,
            "cpu_power_0": 350.0, "mem_power_0": 40.0,
            "result_start_time": BEGIN, "result_end_time": BEGIN + HOUR, "samples": 7200,
            "data_presence": total_presence, "nodes": 2, "nodes_answered": 2
        }
    })
}

fn timeseries(nodes: usize) -> Value {
    let series: Vec<Value> = (0..nodes)
        .map(|n| {
            let watts: Vec<Value> =
                (0..60)
                    .map(|i| {
                        if i == 30 {
                            Value::Null
                        } else {
                            json!(300.0 + n as f64 * 10.0 + i as f64)
                        }
                    })
                    .collect();
            json!({"node": format!("node{:02}", n + 1), "watts": watts})
        })
        .collect();
    json!({
        "schema": "powerstack.site-timeseries.v1", "job_id": "42",
        "start_unix_us": BEGIN, "step_s": 60.0, "nodes": series
    })
}

fn one_line(stderr: &str) {
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(stderr.starts_with("error: "), "{stderr:?}");
}

#[test]
fn begin_records_the_job_at_the_site_and_marks_each_agent() {
    let (site, _, site_log) =
        serve(vec![route("POST /v1/jobs", 201, job_record(&["127.0.0.1", "127.0.0.2"], None))]);
    // The agent listens on 127.0.0.1 only: 127.0.0.2 at the same port refuses.
    let (_, port, agent_log) =
        serve(vec![route("POST /v1/jobs/42/begin", 200, json!({"id": "42"}))]);
    let port = port.to_string();
    let r = run(&[
        "job",
        "begin",
        "42",
        "--site",
        &site,
        "--nodes",
        "127.0.0.[1-2]",
        "--port",
        &port,
        "--user",
        "alice",
        "--account",
        "proj 1",
        "--app",
        "my app, v2",
        "--timeout",
        "2s",
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    // The site's answer, as received.
    let answer: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(answer["nodes"], json!(["127.0.0.1", "127.0.0.2"]));
    // The node that could not be reached is a warning, not a failure.
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with(&format!("warning: job begin 42 on 127.0.0.2:{port}: connection refused")),
        "{}",
        r.stderr
    );
    let seen = requests(&site_log);
    assert_eq!(seen.len(), 1);
    assert!(seen[0].line.starts_with("POST /v1/jobs HTTP/1.1"), "{}", seen[0].line);
    assert_eq!(
        seen[0].json(),
        json!({"id": "42", "nodes": ["127.0.0.1", "127.0.0.2"], "user": "alice",
               "account": "proj 1", "app": "my app, v2"})
    );
    let marks = requests(&agent_log);
    assert_eq!(marks.len(), 1);
    assert!(marks[0].line.starts_with("POST /v1/jobs/42/begin HTTP/1.1"), "{}", marks[0].line);
    assert_eq!(marks[0].json(), json!({"user": "alice", "app": "my app, v2"}));
}

#[test]
fn begin_without_agents_takes_the_callers_name_and_the_site_from_the_environment() {
    let (site, _, site_log) =
        serve(vec![route("POST /v1/jobs", 201, job_record(&["node01"], None))]);
    let token = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token.path(), "s3cret\n").unwrap();
    let token_path = token.path().to_str().unwrap();
    let r = run_env(
        &[
            "job",
            "begin",
            "42",
            "--nodes",
            "node[01-03]",
            "--no-agents",
            "--power-watts",
            "4000.5",
            "--priority",
            "-2",
        ],
        &[("POWERSTACK_SITE", &site), ("POWERSTACK_SITE_TOKEN_FILE", token_path), ("USER", "bob")],
    );
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "");
    let seen = requests(&site_log);
    assert_eq!(seen.len(), 1);
    assert!(seen[0].head.contains("Authorization: Bearer s3cret\r\n"), "{}", seen[0].head);
    assert_eq!(
        seen[0].json(),
        json!({"id": "42", "nodes": ["node01", "node02", "node03"], "user": "bob",
               "account": null, "app": null, "power_watts": 4000.5, "priority": -2})
    );
    // A power that is none is refused before the site is asked.
    let r = run_env(
        &["job", "begin", "43", "--nodes", "node01", "--no-agents", "--power-watts", "0"],
        &[("POWERSTACK_SITE", &site)],
    );
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("--power-watts: power_watts 0"), "{}", r.stderr);
    assert_eq!(requests(&site_log).len(), 1);
}

#[test]
fn site_options_without_a_site_are_refused() {
    let r =
        run(&["job", "begin", "42", "--nodes", "node[01-02]", "--agent", "/nonexistent/x.sock"]);
    assert_eq!(r.status, 1);
    one_line(&r.stderr);
    assert!(r.stderr.contains("--nodes needs --site"), "{}", r.stderr);
    let r = run(&["job", "begin", "42", "--priority", "3", "--agent", "/nonexistent/x.sock"]);
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("--priority needs --site"), "{}", r.stderr);
    let (site, _, _) = serve(Vec::new());
    let r = run(&["job", "begin", "42", "--site", &site]);
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("needs --nodes"), "{}", r.stderr);
    let r = run(&["job", "report", "-j", "42"]);
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("pass --site URL or set POWERSTACK_SITE"), "{}", r.stderr);
}

#[test]
fn end_marks_the_nodes_the_site_answers() {
    let (site, _, site_log) = serve(vec![route(
        "POST /v1/jobs/42/end",
        200,
        job_record(&["127.0.0.1"], Some(BEGIN + HOUR)),
    )]);
    let (_, port, agent_log) = serve(vec![route("POST /v1/jobs/42/end", 200, json!({}))]);
    let port = port.to_string();
    let r = run(&["job", "end", "42", "--site", &site, "--port", &port]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "");
    assert_eq!(
        serde_json::from_str::<Value>(r.stdout.trim()).unwrap()["end_unix_us"],
        json!(BEGIN + HOUR)
    );
    assert!(requests(&site_log)[0].line.starts_with("POST /v1/jobs/42/end HTTP/1.1"));
    let marks = requests(&agent_log);
    assert_eq!(marks.len(), 1);
    assert!(marks[0].line.starts_with("POST /v1/jobs/42/end HTTP/1.1"), "{}", marks[0].line);
}

#[test]
fn end_with_the_site_down_still_marks_the_nodes_given_and_fails_in_one_line() {
    let (_, port, agent_log) = serve(vec![route("POST /v1/jobs/42/end", 200, json!({}))]);
    let port = port.to_string();
    let site = dead_site();
    let r = run(&["job", "end", "42", "--site", &site, "--nodes", "127.0.0.1", "--port", &port]);
    assert_eq!(r.status, 1);
    one_line(&r.stderr);
    assert!(
        r.stderr.contains(&format!("job end 42: site {site} unreachable: connection refused")),
        "{}",
        r.stderr
    );
    assert_eq!(requests(&agent_log).len(), 1);
}

#[test]
fn report_table_csv_and_json() {
    let doc = report("Complete");
    let (site, _, log) = serve(vec![route("GET /v1/jobs/42", 200, doc.clone())]);
    let r = run(&["job", "report", "-j", "42", "--site", &site, "--format", "table"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    for line in [
        "job      42",
        "user     alice",
        "account  proj1",
        "app      lammps",
        "nodes    node[01-02] (2)",
        "begin    2026-11-21 10:00:00 UTC",
        "end      2026-11-21 11:00:00 UTC",
        "duration 1h 00m 00s",
        "energy   0.700 kWh (2520000.0 J)",
        "data     Complete, 100.0% of the window covered",
    ] {
        assert!(r.stdout.contains(&format!("{line}\n")), "{line:?} missing:\n{}", r.stdout);
    }
    let rows: Vec<&str> = r.stdout.lines().skip_while(|l| !l.starts_with("HOST")).collect();
    assert_eq!(rows.len(), 4, "{}", r.stdout);
    assert!(
        rows[1].starts_with("node01  Complete   100.0%  1440000.000     400.00"),
        "{}",
        rows[1]
    );
    assert!(
        rows[3].starts_with("TOTAL   Complete   100.0%  2520000.000     700.00"),
        "{}",
        rows[3]
    );
    assert!(rows[3].ends_with("results from all 2 nodes"), "{}", rows[3]);

    let r = run(&["job", "report", "-j", "42", "--site", &site, "--format", "csv"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "hostname,node_power,result_start_time,result_end_time,data_presence,cpu_power_0,mem_power_0,energy_joules,peak_node_power,peak_window_s,samples,status,covered_percent"
    );
    assert_eq!(
        lines[1],
        format!("node01,400,{BEGIN},{},Complete,200,20,1440000,450,1,3600,ok,100", BEGIN + HOUR)
    );
    assert_eq!(lines.len(), 4);

    // JSON: the site's document as received (without --format, since stdout is not a terminal).
    let r = run(&["job", "report", "-j", "42", "--site", &site]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(serde_json::from_str::<Value>(r.stdout.trim()).unwrap(), doc);
    let seen = requests(&log);
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s.line.starts_with("GET /v1/jobs/42 HTTP/1.1")));
}

#[test]
fn report_of_partial_data_exits_3() {
    let (site, _, _) = serve(vec![route("GET /v1/jobs/42", 200, report("Partial"))]);
    let r = run(&["job", "report", "-j", "42", "--site", &site, "--format", "csv"]);
    assert_eq!(r.status, 3, "{}", r.stderr);
    assert!(r.stdout.lines().last().unwrap().starts_with("TOTAL,700,"), "{}", r.stdout);
}

#[test]
fn report_plots_an_svg_and_a_png() {
    let (site, _, log) = serve(vec![
        route("GET /v1/jobs/42", 200, report("Complete")),
        route("GET /v1/jobs/42/timeseries", 200, timeseries(3)),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("job.svg");
    let r = run(&[
        "job",
        "report",
        "-j",
        "42",
        "--site",
        &site,
        "--format",
        "table",
        "--plot",
        svg.to_str().unwrap(),
        "--step",
        "1m",
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.contains("TOTAL"), "the report is printed too:\n{}", r.stdout);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    for label in [
        "node01",
        "node03",
        "node power (W)",
        "time since the job began (min)",
        "Job 42 (alice, lammps)",
    ] {
        assert!(text.contains(label), "{label:?} missing from the SVG");
    }
    let seen = requests(&log);
    assert!(
        seen[1].line.starts_with("GET /v1/jobs/42/timeseries?step=1m HTTP/1.1"),
        "{}",
        seen[1].line
    );

    let png_path = dir.path().join("job.PNG");
    let r =
        run(&["job", "report", "-j", "42", "--site", &site, "--plot", png_path.to_str().unwrap()]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let bytes = std::fs::read(&png_path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let mut reader = png::Decoder::new(std::io::Cursor::new(&bytes)).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1200, 600));
    assert!(buf.chunks(3).any(|p| p != [255, 255, 255]), "a blank picture");
    // Without a step the site chooses: no query.
    assert!(requests(&log).last().unwrap().line.starts_with("GET /v1/jobs/42/timeseries HTTP/1.1"));

    let r = run(&["job", "report", "-j", "42", "--site", &site, "--plot", "job.pdf"]);
    assert_eq!(r.status, 1);
    one_line(&r.stderr);
    assert!(r.stderr.contains("must end in .svg or .png"), "{}", r.stderr);
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

fn jobs_doc() -> Value {
    json!({
        "schema": "powerstack.site-jobs.v1",
        "jobs": [job_record(&["node01", "node02"], Some(BEGIN + HOUR))],
        "truncated": false
    })
}

#[test]
fn jobs_since_7d_asks_for_seven_days_back() {
    let (site, _, log) = serve(vec![route("GET /v1/jobs", 200, jobs_doc())]);
    const WEEK: u64 = 7 * 86_400_000_000;
    let before = now_us() - WEEK;
    let r = run(&[
        "jobs", "--since", "7d", "--user", "alice&co", "--limit", "5", "--site", &site, "--format",
        "table",
    ]);
    let after = now_us() - WEEK;
    assert_eq!(r.status, 0, "{}", r.stderr);
    let seen = requests(&log);
    let line = &seen[0].line;
    let query = line.strip_prefix("GET /v1/jobs?").unwrap().split(' ').next().unwrap();
    let params: Vec<(&str, &str)> = query.split('&').filter_map(|p| p.split_once('=')).collect();
    assert_eq!(params[0], ("user", "alice%26co"));
    let since: u64 = params[1].1.parse().unwrap();
    assert_eq!(params[1].0, "since");
    assert!((before..=after).contains(&since), "{before} <= {since} <= {after}");
    assert_eq!(params[2], ("limit", "5"));
    assert_eq!(params.len(), 3);
    let rows: Vec<&str> = r.stdout.lines().collect();
    assert!(
        rows[0].starts_with("JOBID  USER   ACCOUNT  APP     NODES        BEGIN (UTC)"),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].starts_with("42     alice  proj1    lammps  node[01-02]  2026-11-21 10:00:00  2026-11-21 11:00:00  1h 00m 00s         0.700     2520000"),
        "{}",
        rows[1]
    );
}

#[test]
fn jobs_dates_and_formats() {
    let (site, _, log) = serve(vec![route("GET /v1/jobs", 200, jobs_doc())]);
    let r = run(&[
        "jobs",
        "--since",
        "2026-11-21",
        "--until",
        "@1795300000",
        "--site",
        &site,
        "--format",
        "csv",
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(
        requests(&log)[0]
            .line
            .starts_with("GET /v1/jobs?since=1795219200000000&until=1795300000000000 HTTP/1.1"),
        "{}",
        requests(&log)[0].line
    );
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].starts_with("job_id,user,account,app,nodes,node_count,begin_unix_us,end_unix_us,")
    );
    assert_eq!(
        lines[1],
        format!(
            "42,alice,proj1,lammps,node[01-02],2,{BEGIN},{},2026-11-21 10:00:00,2026-11-21 11:00:00,3600,0.7,2520000,700,800,Complete,true",
            BEGIN + HOUR
        )
    );
    let r = run(&["jobs", "--site", &site]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(serde_json::from_str::<Value>(r.stdout.trim()).unwrap(), jobs_doc());
    assert!(requests(&log)[1].line.starts_with("GET /v1/jobs HTTP/1.1"));
}

#[test]
fn bad_times_are_one_line_errors_and_nothing_is_asked() {
    let (site, _, log) = serve(vec![route("GET /v1/jobs", 200, jobs_doc())]);
    for (flag, bad) in
        [("--since", "yesterday"), ("--since", "2026-02-30"), ("--until", "@x"), ("--since", "7")]
    {
        let r = run(&["jobs", flag, bad, "--site", &site]);
        assert_eq!(r.status, 1, "{bad}");
        one_line(&r.stderr);
        assert!(r.stderr.contains(&format!("{flag}: invalid time {bad:?}")), "{}", r.stderr);
    }
    let r = run(&["jobs", "--since", "1d", "--until", "2d", "--site", &site]);
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("--since is after --until"), "{}", r.stderr);
    assert!(requests(&log).is_empty());
}

#[test]
fn an_unreachable_site_is_one_line_and_exit_1() {
    let site = dead_site();
    for args in [
        vec!["jobs", "--site", site.as_str()],
        vec!["job", "report", "-j", "42", "--site", site.as_str()],
        vec!["job", "begin", "42", "--site", site.as_str(), "--nodes", "n1", "--no-agents"],
    ] {
        let r = run(&args);
        assert_eq!(r.status, 1, "{args:?}");
        one_line(&r.stderr);
        assert!(
            r.stderr.contains(&format!("site {site} unreachable: connection refused: is `powerstack site serve` running there?")),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains("powerstack agent"), "{}", r.stderr);
    }
}

#[test]
fn a_refusal_by_the_site_prints_its_message() {
    let msg = "user bob may not read job 42 of alice";
    let (site, _, _) = serve(vec![route(
        "GET /v1/jobs/42",
        403,
        json!({"error": {"status": 403, "message": msg}}),
    )]);
    let r = run(&["job", "report", "-j", "42", "--site", &site]);
    assert_eq!(r.status, 1);
    one_line(&r.stderr);
    assert!(r.stderr.contains(&format!("answered 403: {msg}")), "{}", r.stderr);
    assert_eq!(r.stdout, "");
}
