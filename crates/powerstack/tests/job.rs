//! `powerstack job ...` through the built binary against tiny fake agents (std threads serving
//! canned answers on 127.0.0.1 ports).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;

use assert_cmd::cargo::CommandCargoExt;
use serde_json::{Value, json};

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

fn run_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::cargo_bin("powerstack").unwrap();
    cmd.env_remove("POWERSTACK_AGENT").env_remove("POWERSTACK_TOKEN_FILE");
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

/// One canned answer: method and path, status, body; `chunked` sends it in chunked coding.
struct Route {
    request: &'static str,
    status: u16,
    body: String,
    chunked: bool,
}

fn route(request: &'static str, status: u16, body: Value) -> Route {
    Route { request, status, body: body.to_string(), chunked: false }
}

/// Reads a request's head (through the blank line, or what came before the connection ended).
fn read_head(s: &mut impl Read) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A fake agent: answers every connection from `routes` (404 otherwise), records every request
/// (head and body) it receives. Runs until the test process ends.
fn fake_agent(routes: Vec<Route>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let head = read_head(&mut s);
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            let _ = s.read_exact(&mut body);
            let request = head.clone() + &String::from_utf8_lossy(&body);
            log.lock().unwrap().push(request);
            let line = head.lines().next().unwrap_or("").to_string();
            let r = routes.iter().find(|r| line.starts_with(&format!("{} ", r.request)));
            let (status, body, chunked) = match r {
                Some(r) => (r.status, r.body.clone(), r.chunked),
                None => (
                    404,
                    json!({"error": {"status": 404, "message": "no job here"}}).to_string(),
                    false,
                ),
            };
            let reply = if chunked {
                let (a, b) = body.split_at(body.len() / 2);
                format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                    a.len(),
                    b.len()
                )
            } else {
                format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            };
            let _ = s.write_all(reply.as_bytes());
        }
    });
    (addr, seen)
}

/// An address nobody listens on.
fn dead_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

const START: u64 = 1_795_000_000_000_000;
const END: u64 = 1_795_000_010_000_000;

fn node_a() -> Value {
    json!({
        "hostname": "nodeA", "job_id": "42", "user": "alice", "app": null, "running": false,
        "node_power": 400.0, "energy_joules": 4000.0,
        "cpu_power_0": 150.0, "cpu_power_1": 140.0, "mem_power_0": 20.0, "mem_power_1": -1.0,
        "gpu_power_0": 50.0, "gpu_power_1": 25.0,
        "peak_node_power": 500.0, "peak_window_s": 1.0, "result_start_time": START, "result_end_time": END,
        "samples": 1001, "data_presence": "Complete"
    })
}

fn node_b() -> Value {
    json!({
        "hostname": "nodeB", "job_id": "42", "user": "alice", "app": null, "running": false,
        "node_power": 300.5, "energy_joules": 3005.0,
        "cpu_power_0": 100.0, "cpu_power_1": 90.0, "mem_power_0": 10.0, "mem_power_1": 12.0,
        "peak_node_power": 350.0, "peak_window_s": 1.0, "result_start_time": START + 1000, "result_end_time": END + 2000,
        "samples": 1000, "data_presence": "Complete"
    })
}

fn two_agents() -> (String, String, Arc<Mutex<Vec<String>>>) {
    let (a, seen_a) = fake_agent(vec![route("GET /v1/jobs/42", 200, node_a())]);
    let mut rb = route("GET /v1/jobs/42", 200, node_b());
    rb.chunked = true;
    let (b, _) = fake_agent(vec![rb]);
    (a, b, seen_a)
}

const CSV_HEADER: &str = "hostname,node_power,result_start_time,result_end_time,data_presence,cpu_power_0,cpu_power_1,gpu_power_0,gpu_power_1,mem_power_0,mem_power_1,energy_joules,peak_node_power,peak_window_s,samples,status";

#[test]
fn query_csv_rows_total_and_an_unreachable_node_exit_3() {
    let (a, b, seen_a) = two_agents();
    let dead = dead_addr();
    let agents = format!("{a},{b},{dead}");
    let r = run(&["job", "query", "-j", "42", "--agents", &agents, "--format", "csv"]);
    assert_eq!(r.status, 3, "{}", r.stderr);
    assert_eq!(r.stderr, "");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", r.stdout);
    // Flux's columns in Flux's order, one per device any node has; -1 where a node has no such
    // device (nodeB's GPUs) or could not measure it (nodeA's memory-1), never 0.
    assert_eq!(lines[0], CSV_HEADER);
    assert_eq!(
        lines[1],
        format!("nodeA,400,{START},{END},Complete,150,140,50,25,20,-1,4000,500,1,1001,ok")
    );
    assert_eq!(
        lines[2],
        format!(
            "nodeB,300.5,{},{},Complete,100,90,-1,-1,10,12,3005,350,1,1000,ok",
            START + 1000,
            END + 2000
        )
    );
    assert!(
        lines[3].starts_with(&format!(
            "127.0.0.1,-1,0,0,None,-1,-1,-1,-1,-1,-1,-1,-1,-1,0,unreachable: connection refused by {dead}"
        )),
        "{}",
        lines[3]
    );
    assert_eq!(
        lines[4],
        format!(
            "TOTAL,700.5,{START},{},Partial,250,230,50,25,30,12,7005,-1,-1,2001,results from 2 of 3 nodes",
            END + 2000
        )
    );
    let seen = seen_a.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].starts_with("GET /v1/jobs/42 HTTP/1.1\r\n"), "{}", seen[0]);
}

#[test]
fn query_json_all_complete_exits_0() {
    let (a, b, _) = two_agents();
    let r =
        run(&["job", "query", "--job", "42", "--agents", &a, "--agents", &b, "--format", "json"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let doc: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["job_id"], "42");
    let nodes = doc["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["hostname"], "nodeA");
    assert_eq!(nodes[0]["agent"], a.as_str());
    assert_eq!(nodes[0]["status"], "ok");
    assert_eq!(nodes[0]["gpu_power_1"], 25.0);
    assert_eq!(nodes[1]["hostname"], "nodeB");
    let t = &doc["total"];
    assert_eq!(t["hostname"], "TOTAL");
    assert_eq!(t["energy_joules"], 7005.0);
    assert_eq!(t["node_power"], 700.5);
    assert_eq!(t["cpu_power_0"], 250.0);
    assert_eq!(t["mem_power_1"], 12.0);
    assert_eq!(t["samples"], 2001);
    assert_eq!(t["data_presence"], "Complete");
    assert_eq!(t["nodes"], 2);
    assert_eq!(t["nodes_answered"], 2);
}

#[test]
fn query_table_shows_unknown_job_and_unreachable_rows() {
    let (a, _, _) = two_agents();
    let (unknown, _) = fake_agent(vec![]);
    let dead = dead_addr();
    let agents = format!("{a},{unknown},{dead}");
    let r = run(&["job", "query", "-j", "42", "--agents", &agents, "--format", "table"]);
    assert_eq!(r.status, 3, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("Job 42 on 3 node(s)"), "{}", r.stdout);
    assert!(lines[1].starts_with("HOST"));
    assert!(lines[2].starts_with("nodeA") && lines[2].contains("Complete"), "{}", lines[2]);
    assert!(lines[2].contains("4000.000") && lines[2].ends_with("  ok"), "{}", lines[2]);
    assert!(lines[3].ends_with("  no such job"), "{}", lines[3]);
    assert!(lines[4].contains("unreachable: connection refused"), "{}", lines[4]);
    assert!(lines[5].starts_with("TOTAL") && lines[5].contains("Partial"), "{}", lines[5]);
}

#[test]
fn query_nodes_hostlist_and_port() {
    let (a, _, seen) = two_agents();
    let port = a.rsplit_once(':').unwrap().1;
    let r = run(&[
        "job",
        "query",
        "-j",
        "42",
        "--nodes",
        "127.0.0.[1]",
        "--port",
        port,
        "--format",
        "csv",
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], CSV_HEADER);
    assert!(lines[1].starts_with("nodeA,400,"), "{}", lines[1]);
    assert!(lines[2].starts_with("TOTAL,400,"), "{}", lines[2]);
    assert_eq!(seen.lock().unwrap().len(), 1);

    // --nodes and --agents together: the nodes first, then the agents.
    let dead = dead_addr();
    let r = run(&[
        "job",
        "query",
        "-j",
        "42",
        "--nodes",
        "127.0.0.[1]",
        "--port",
        port,
        "--agents",
        &dead,
        "--format",
        "csv",
    ]);
    assert_eq!(r.status, 3, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", r.stdout);
    assert!(lines[1].starts_with("nodeA,"), "{}", lines[1]);
    assert!(lines[2].contains("unreachable"), "{}", lines[2]);
}

/// Agents that each answer only once all of them hold a request: asked one at a time, the first
/// would wait for the others and give up (closing without an answer) after `give_up`.
fn agents_that_answer_together(n: usize, give_up: std::time::Duration) -> Vec<String> {
    let gate = Arc::new((Mutex::new(0usize), std::sync::Condvar::new()));
    let mut addrs = Vec::new();
    for i in 0..n {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        addrs.push(l.local_addr().unwrap().to_string());
        let gate = gate.clone();
        thread::spawn(move || {
            let Ok((mut s, _)) = l.accept() else { return };
            if !read_head(&mut s).ends_with("\r\n\r\n") {
                return;
            }
            let (count, all_here) = &*gate;
            let mut c = count.lock().unwrap();
            *c += 1;
            all_here.notify_all();
            let (c, _) = all_here.wait_timeout_while(c, give_up, |c| *c < n).unwrap();
            if *c < n {
                return;
            }
            drop(c);
            let mut doc = node_a();
            doc["hostname"] = json!(format!("node{i}"));
            let body = doc.to_string();
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        });
    }
    addrs
}

#[test]
fn query_asks_agents_in_parallel() {
    let agents = agents_that_answer_together(5, std::time::Duration::from_secs(5));
    let r = run(&[
        "job",
        "query",
        "-j",
        "42",
        "--agents",
        &agents.join(","),
        "--timeout",
        "10s",
        "--format",
        "csv",
    ]);
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    for i in 0..5 {
        assert!(r.stdout.contains(&format!("\nnode{i},400,")), "{}", r.stdout);
    }
    assert!(r.stdout.contains("results from all 5 nodes"), "{}", r.stdout);
}

#[test]
fn query_json_rows_of_nodes_without_a_result() {
    let (a, _, _) = two_agents();
    let dead = dead_addr();
    let r =
        run(&["job", "query", "-j", "42", "--agents", &format!("{a},{dead}"), "--format", "json"]);
    assert_eq!(r.status, 3, "{}", r.stderr);
    let doc: Value = serde_json::from_str(&r.stdout).unwrap();
    let gone = &doc["nodes"][1];
    assert_eq!(gone["hostname"], "127.0.0.1");
    assert_eq!(gone["job_id"], "42");
    assert_eq!(gone["agent"], dead.as_str());
    assert_eq!(gone["node_power"], -1.0);
    assert_eq!(gone["energy_joules"], -1.0);
    assert_eq!(gone["samples"], 0);
    assert_eq!(gone["data_presence"], "None");
    assert!(gone["status"].as_str().unwrap().starts_with("unreachable: "), "{gone}");
    let t = &doc["total"];
    assert_eq!(t["energy_joules"], 4000.0);
    assert_eq!(t["gpu_power_1"], 25.0);
    assert_eq!(t["data_presence"], "Partial");
    assert_eq!((t["nodes"].as_u64(), t["nodes_answered"].as_u64()), (Some(2), Some(1)));
}

#[test]
fn malformed_hostlist_is_one_line_exit_1() {
    let r = run(&["job", "query", "-j", "42", "--nodes", "node[1-", "--port", "9464"]);
    assert_eq!(r.status, 1);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("error: invalid hostlist \"node[1-\""), "{}", r.stderr);
    let r = run(&["job", "query", "-j", "42", "--nodes", "node[3-1]"]);
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("goes backwards"), "{}", r.stderr);
}

#[test]
fn bad_agent_address_is_one_line_exit_1() {
    let r = run(&["job", "query", "-j", "42", "--agents", "node03"]);
    assert_eq!(r.status, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("error: invalid agent address \"node03\""), "{}", r.stderr);
}

#[test]
fn begin_and_end_post_to_the_agent() {
    let (agent, seen) = fake_agent(vec![
        route("POST /v1/jobs/42/begin", 201, json!({"id": "42", "user": "alice", "app": "lammps"})),
        route("POST /v1/jobs/42/end", 200, json!({"id": "42", "end_unix_us": END})),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let r = run(&[
        "job",
        "begin",
        "42",
        "--user",
        "alice",
        "--app",
        "lammps",
        "--agent",
        &agent,
        "--token-file",
        token.to_str().unwrap(),
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let answer: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(answer["user"], "alice");
    let r = run_env(&["job", "end", "42", "--agent", &agent], &[]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.contains("end_unix_us"));

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    let begin = &seen[0];
    assert!(begin.starts_with("POST /v1/jobs/42/begin HTTP/1.1\r\n"), "{begin}");
    assert!(begin.contains("Authorization: Bearer s3cret\r\n"), "{begin}");
    let body: Value = serde_json::from_str(begin.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body, json!({"user": "alice", "app": "lammps"}));
    assert!(seen[1].starts_with("POST /v1/jobs/42/end HTTP/1.1\r\n"), "{}", seen[1]);
    assert!(!seen[1].contains("Authorization"));
}

#[test]
fn begin_defaults_the_user_to_the_login_name() {
    let (agent, seen) = fake_agent(vec![route("POST /v1/jobs/7/begin", 201, json!({"id": "7"}))]);
    let r = run_env(&["job", "begin", "7"], &[("USER", "bob"), ("POWERSTACK_AGENT", &agent)]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let seen = seen.lock().unwrap();
    let body: Value = serde_json::from_str(seen[0].split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body, json!({"user": "bob", "app": null}));
}

#[test]
fn refused_begin_is_the_agents_message_exit_1() {
    let (agent, _) = fake_agent(vec![route(
        "POST /v1/jobs/42/begin",
        409,
        json!({"error": {"status": 409, "message": "job 42 has already begun"}}),
    )]);
    let r = run(&["job", "begin", "42", "--agent", &agent]);
    assert_eq!(r.status, 1);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        format!("error: job begin 42 on {agent}: job 42 has already begun (HTTP 409)\n")
    );
    let r = run(&["job", "end", "43", "--agent", &agent]);
    assert_eq!(r.status, 1);
    assert_eq!(r.stderr, format!("error: job end 43 on {agent}: no job here (HTTP 404)\n"));
}

#[test]
fn no_agent_is_one_line_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let r = run(&["job", "begin", "42", "--agent", sock.to_str().unwrap()]);
    assert_eq!(r.status, 1);
    assert_eq!(
        r.stderr,
        format!("error: {} does not exist: is `powerstack agent` running?\n", sock.display())
    );
    let dead = dead_addr();
    let r = run(&["job", "end", "42", "--agent", &dead]);
    assert_eq!(r.status, 1);
    assert_eq!(
        r.stderr,
        format!("error: connection refused by {dead}: is `powerstack agent` running there?\n")
    );
}

#[test]
fn bad_job_id_and_timeout_are_refused_before_asking() {
    let r = run(&["job", "begin", "a/b", "--agent", "127.0.0.1:1"]);
    assert_eq!(r.status, 1);
    assert!(r.stderr.starts_with("error: bad job id"), "{}", r.stderr);
    let r = run(&["job", "query", "-j", "42", "--agents", "127.0.0.1:1", "--timeout", "soon"]);
    assert_eq!(r.status, 1);
    assert!(r.stderr.starts_with("error: --timeout"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1);
}

#[test]
fn query_passes_the_peak_window_on_and_refuses_a_bad_one_before_asking() {
    let (a, seen) = fake_agent(vec![route("GET /v1/jobs/42?peak_window=2500000us", 200, node_a())]);
    let r = run(&[
        "job",
        "query",
        "-j",
        "42",
        "--agents",
        &a,
        "--peak-window",
        "2.5s",
        "--format",
        "json",
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let seen = seen.lock().unwrap();
    assert!(
        seen[0].starts_with("GET /v1/jobs/42?peak_window=2500000us HTTP/1.1\r\n"),
        "{}",
        seen[0]
    );
    for bad in ["0s", "2h", "fast"] {
        let r = run(&["job", "query", "-j", "42", "--agents", "127.0.0.1:1", "--peak-window", bad]);
        assert_eq!(r.status, 1, "{bad}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains("--peak-window"), "{}", r.stderr);
    }
}
