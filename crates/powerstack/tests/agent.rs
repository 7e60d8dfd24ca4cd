//! End to end: agents on simulated nodes, a job across two of them, the multi-node query,
//! `/metrics` through promtool, access control, and limits restored on exit and after a crash.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Node, bin, http_get, run, unix_post};
use serde_json::Value;

#[test]
fn a_job_across_two_agents_is_queried_with_correct_numbers_and_flags() {
    let a = Node::new("intel-2s");
    let b = Node::new("cray-ex");
    let (_agent_a, addr_a) = a.agent();
    let (_agent_b, _) = b.agent();
    for n in [&a, &b] {
        let (code, _, err) = run(&[
            "job",
            "begin",
            "job42",
            "--agent",
            n.socket().to_str().unwrap(),
            "--user",
            "alice",
        ]);
        assert_eq!(code, 0, "{err}");
    }
    std::thread::sleep(Duration::from_secs(3));
    for n in [&a, &b] {
        let (code, out, err) =
            run(&["job", "end", "job42", "--agent", n.socket().to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        // The answer to `end` already covers the whole window.
        assert!(out.contains("\"data_presence\":\"Complete\""), "{out}");
    }
    // Over the sockets, as root: full detail (over TCP without the token, labels are null and
    // figures coarse; see docs/agent.md).
    let agents = format!("{},{}", a.socket().display(), b.socket().display());
    let (code, out, err) =
        run(&["job", "query", "-j", "job42", "--agents", &agents, "--format", "json"]);
    assert_eq!(code, 0, "every node Complete: {err}\n{out}");
    let doc: Value = serde_json::from_str(out.trim()).unwrap();
    let nodes = doc["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    for n in nodes {
        assert_eq!(n["data_presence"], "Complete", "{n}");
        assert_eq!(n["user"], "alice");
        assert!(n["samples"].as_u64().unwrap() >= 250, "{n}");
    }
    // The simulators' models: intel-2s psys 287 W; cray-ex board 1675 W.
    let power = |i: usize| nodes[i]["node_power"].as_f64().unwrap();
    assert!((power(0) - 287.0).abs() < 0.01 * 287.0, "{}", power(0));
    assert!((power(1) - 1675.0).abs() < 0.01 * 1675.0, "{}", power(1));
    let energy = |i: usize| nodes[i]["energy_joules"].as_f64().unwrap();
    let total = &doc["total"];
    assert!((total["energy_joules"].as_f64().unwrap() - energy(0) - energy(1)).abs() < 1e-6);
    assert!((total["node_power"].as_f64().unwrap() - power(0) - power(1)).abs() < 1e-6);
    assert_eq!(total["data_presence"], "Complete");
    // Energy is power over the window: consistent with the reported start and end.
    let secs = (nodes[0]["result_end_time"].as_u64().unwrap()
        - nodes[0]["result_start_time"].as_u64().unwrap()) as f64
        / 1e6;
    assert!((energy(0) / secs - power(0)).abs() < 1e-6 * power(0));

    // A node that does not answer is a row that says so, not a failed query (exit 3: partial).
    let agents = format!("{addr_a},127.0.0.1:1");
    let (code, out, _) =
        run(&["job", "query", "-j", "job42", "--agents", &agents, "--format", "csv"]);
    assert_eq!(code, 3);
    assert!(out.lines().any(|l| l.contains("unreachable")), "{out}");

    // /metrics passes promtool.
    let metrics = http_get(&addr_a, "/metrics");
    assert!(metrics.contains("powerstack_sampler_samples_total"), "{metrics}");
    if let Ok(mut p) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        p.stdin.take().unwrap().write_all(metrics.as_bytes()).unwrap();
        let out = p.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        assert!(std::env::var_os("POWERSTACK_REQUIRE_PROMTOOL").is_none(), "promtool required");
    }
}

#[test]
fn a_user_not_allowed_cannot_mark_jobs_or_set_caps() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: skipping");
        return;
    }
    let n = Node::new("intel-2s");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(n.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (_agent, _) = n.agent();
    let bin = assert_cmd::cargo::cargo_bin("powerstack");
    let probe = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .arg("--version")
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("cannot run as nobody here: skipping");
        return;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["job", "begin", "sneaky", "--agent", n.socket().to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("403"), "{err}");
    // Reads stay open to everyone.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args([
            "job",
            "query",
            "-j",
            "sneaky",
            "--agents",
            n.socket().to_str().unwrap(),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no such job"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn limits_set_through_the_agent_are_restored_on_sigterm_and_after_a_crash() {
    let n = Node::new("intel-2s");
    let before = n.limit_uw();
    let cap = r#"{"domain":"package","index":0,"constraint":"long_term","limit_watts":90}"#;

    // SIGTERM: the agent puts the limit back before it exits.
    let (mut agent, _) = n.agent();
    let (status, body) = unix_post(&n.socket(), "/v1/caps", cap);
    assert_eq!(status, 200, "{body}");
    assert_eq!(n.limit_uw(), "90000000");
    // SAFETY: kill with a valid pid of our own child and a valid signal.
    unsafe {
        libc::kill(agent.0.id() as i32, libc::SIGTERM);
    }
    let status = agent.0.wait().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(n.limit_uw(), before, "restored at exit");

    // A crash (SIGKILL) leaves the limit; the next agent start restores it.
    let (agent, _) = n.agent();
    let (status, body) = unix_post(&n.socket(), "/v1/caps", cap);
    assert_eq!(status, 200, "{body}");
    let mut agent = agent;
    agent.0.kill().unwrap();
    agent.0.wait().unwrap();
    assert_eq!(n.limit_uw(), "90000000", "a killed agent cannot restore");
    let (_again, _) = n.agent();
    assert_eq!(n.limit_uw(), before, "restored at the next start");
}

/// Waits until `cond` holds on the agent's `GET path` answer, for at most 30 s (a bound against
/// hanging, not a measured duration); returns the last answer.
fn wait_for_answer(addr: &str, path: &str, cond: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = http_get(addr, path);
        if cond(&body) || Instant::now() > deadline {
            return body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_node_whose_counters_stop_or_are_replaced_is_missing_never_zero_watts() {
    let mut n = Node::new("intel-2s");
    let (_agent, addr) = n.agent();
    let root = n.root();
    let node_watts = |body: &str| -> Option<f64> {
        serde_json::from_str::<Value>(body).ok()?["node_power_watts"].as_f64()
    };
    let live = wait_for_answer(&addr, "/v1/power", |b| node_watts(b).is_some_and(|w| w > 250.0));
    assert!(node_watts(&live).is_some_and(|w| w > 250.0), "{live}");

    // Writing a new tree over the live root is refused, and touches nothing.
    let (code, _, err) = run(&["sim", "create", "--profile", "cray-ex", root.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("sim run") && err.contains("animates"), "{err}");
    assert!(root.join("sys/class/powercap").exists() && !root.join("sys/cray").exists());

    // The simulator dies: every counter stops. Missing, counted, never 0 W.
    n.kill_sim();
    let all_missing = |b: &str| {
        let doc: Value = serde_json::from_str(b).unwrap_or_default();
        doc["domains"]
            .as_array()
            .is_some_and(|d| !d.is_empty() && d.iter().all(|d| d["power_watts"].is_null()))
    };
    let dead = wait_for_answer(&addr, "/v1/power", all_missing);
    assert!(all_missing(&dead), "{dead}");
    assert!(node_watts(&dead).is_none(), "{dead}");
    let metrics = http_get(&addr, "/metrics");
    let metric = |name: &str| -> f64 {
        let line =
            metrics.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(metric("powerstack_sampler_missing_domains "), 5.0, "{metrics}");
    assert!(metric("powerstack_sampler_read_failures_total ") > 0.0, "{metrics}");
    let (code, out, err) = run(&["power", "--root", root.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 3, "{out}{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert!(doc["node_power_watts"].is_null(), "{doc}");
    assert!(doc["warnings"].to_string().contains("has not moved"), "{doc}");

    // The tree is removed and written again, and animated: the agent, which keeps the old files
    // open, reopens the new ones and reports their power.
    std::fs::remove_dir_all(&root).unwrap();
    let (code, _, err) = run(&["sim", "create", "--profile", "intel-2s", root.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    n.animate();
    let back = wait_for_answer(&addr, "/v1/power", |b| {
        node_watts(b).is_some_and(|w| (w - 287.0).abs() < 3.0)
    });
    assert!(node_watts(&back).is_some_and(|w| (w - 287.0).abs() < 3.0), "{back}");
    let metrics = http_get(&addr, "/metrics");
    assert!(metrics.contains("powerstack_sampler_missing_domains 0"), "{metrics}");
}

#[test]
fn an_agent_started_with_sigint_ignored_still_stops_on_sigint_and_restores() {
    // A shell starts background commands with SIGINT ignored (`powerstack agent &`); the agent
    // must still stop on it, as on Ctrl-C in a terminal.
    let n = Node::new("intel-2s");
    let before = n.limit_uw();
    let (mut agent, _) = n.agent_with(|c| {
        use std::os::unix::process::CommandExt;
        // SAFETY: between fork and exec only the async-signal-safe `signal` is called.
        unsafe {
            c.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                Ok(())
            });
        }
    });
    let cap = r#"{"domain":"package","index":0,"constraint":"long_term","limit_watts":90}"#;
    let (status, body) = unix_post(&n.socket(), "/v1/caps", cap);
    assert_eq!(status, 200, "{body}");
    // SAFETY: kill with a valid pid of our own child and a valid signal.
    unsafe {
        libc::kill(agent.0.id() as i32, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = agent.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the agent did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert_eq!(n.limit_uw(), before, "restored at exit");
}

#[test]
fn up_starts_an_agent_and_shows_live_power() {
    // This test machine has no readable power source: `up` says so and uses the simulated node.
    let empty = tempfile::tempdir().unwrap();
    let out = bin()
        .args([
            "up",
            "--duration",
            "4500ms",
            "--listen",
            "127.0.0.1:0",
            "--no-site",
            "--root",
            empty.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SIMULATED"), "{stderr}");
    assert!(stderr.contains("API http://127.0.0.1:") && stderr.contains("/metrics"), "{stderr}");
    assert!(stdout.contains("[SIMULATED hardware: profile intel-2s]"), "{stdout}");
    // One NODE line a second, each over the last second. The simulated node runs on a thread of
    // this machine: when the test machine is overloaded and that thread is not scheduled for tens
    // of milliseconds, the counters read at that moment are stale, which makes the window ending
    // there low and the one starting there high by as much. The median of the windows is the
    // node's power whatever one stall does.
    let mut nodes: Vec<f64> = stdout
        .lines()
        .filter(|l| l.starts_with("NODE"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    assert!(nodes.len() >= 3, "fewer than 3 NODE lines: {stdout}");
    nodes.sort_by(f64::total_cmp);
    let node = nodes[nodes.len() / 2];
    assert!((node - 287.0).abs() < 0.01 * 287.0, "median {node} of {nodes:?}");
}

#[test]
fn up_on_a_root_made_by_sim_create_is_labelled_simulated() {
    let n = Node::new("cray-ex");
    let out = bin()
        .args(["up", "--duration", "1500ms", "--listen", "127.0.0.1:0", "--no-site", "--root"])
        .arg(n.root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("[SIMULATED hardware: profile cray-ex]"), "{stdout}");
}

#[test]
fn bad_agent_settings_are_one_line() {
    for args in [
        &["agent", "--rate-hz", "5000", "--socket", "", "--listen", "127.0.0.1:0"][..],
        &["agent", "--rate-hz", "0.01", "--socket", "", "--listen", "127.0.0.1:0"][..],
        &["agent", "--buffer-samples", "1", "--socket", "", "--listen", "127.0.0.1:0"][..],
        &["agent", "--socket", "", "--listen", ""][..],
        &["agent", "--config", "/nonexistent/agent.toml"][..],
    ] {
        let (code, _, err) = run(args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{err}");
    }
    let base = ["agent", "--socket", "", "--listen", "127.0.0.1:0"];
    let site = "http://127.0.0.1:9";
    for (extra, names) in [
        (&["--site", site, "--push-interval", "10ms"][..], "push_interval_ms"),
        (&["--site", site, "--push-interval", "2m"][..], "push_interval_ms"),
        (&["--site", site, "--push-interval", "soon"][..], "--push-interval"),
        (&["--site", site, "--node-name", "no spaces"][..], "node_name"),
        (&["--site", "https:///run/site.sock"][..], "https:// needs HOST:PORT"),
        (&["--site", "https://site:9465", "--site-ca", "/nonexistent/ca.pem"][..], "site_ca_file"),
        (&["--site", site, "--site-token-file", "/nonexistent/site.token"][..], "site_token_file"),
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let (code, _, err) = run(&args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: ") && err.contains(names), "{args:?}: {err}");
    }
}

#[test]
fn a_cap_below_the_floor_over_http_is_refused_and_writes_nothing() {
    // The simulated packages report no minimum: the floor is a quarter of the 150 W maximum, as
    // for `powerstack cap socket`.
    let n = Node::new("intel-2s");
    let (_agent, _) = n.agent();
    let before = n.limit_uw();
    for watts in ["0.0000004", "0.5", "37.4"] {
        let body = format!(r#"{{"domain":"package","index":0,"limit_watts":{watts}}}"#);
        let (status, answer) = unix_post(&n.socket(), "/v1/caps", &body);
        assert_eq!(status, 422, "{watts} W: {answer}");
        assert!(answer.contains("give at least 37.5 W"), "{answer}");
        assert!(answer.contains("a quarter of the 150 W maximum"), "{answer}");
        assert_eq!(n.limit_uw(), before, "{watts} W reached the limit file");
    }
    let body = r#"{"domain":"package","index":0,"limit_watts":0.0000004,"clamp":true}"#;
    let (status, answer) = unix_post(&n.socket(), "/v1/caps", body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(n.limit_uw(), "37500000", "clamped to the floor, never to 0");
}

/// A GET over the agent's socket as uid 65534 (`setpriv` and `curl`); `None` when this machine
/// cannot run it (the test then says why it is skipped).
fn get_as_nobody(socket: &std::path::Path, path: &str) -> Option<Value> {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "curl", "-sS", "--unix-socket"])
        .arg(socket)
        .arg(format!("http://agent{path}"))
        .output();
    match out {
        Ok(o) if o.status.success() => Some(serde_json::from_slice(&o.stdout).unwrap()),
        Ok(o) => {
            eprintln!("skipped: setpriv curl failed: {}", String::from_utf8_lossy(&o.stderr));
            None
        }
        Err(e) => {
            eprintln!("skipped: cannot run setpriv curl: {e}");
            None
        }
    }
}

#[test]
fn another_user_reads_coarse_figures_and_only_its_own_jobs_labels() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: not root, so no other user to read as");
        return;
    }
    let n = Node::new("intel-2s");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(n.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (_agent, addr) = n.agent();
    for (id, user) in [("theirs", "alice"), ("mine", "nobody")] {
        let body = format!(r#"{{"user":"{user}","app":"app-{id}"}}"#);
        let (status, answer) = unix_post(&n.socket(), &format!("/v1/jobs/{id}/begin"), &body);
        assert_eq!(status, 201, "{answer}");
    }
    let body = r#"{"domain":"package","index":0,"limit_watts":120}"#;
    assert_eq!(unix_post(&n.socket(), "/v1/caps", body).0, 200);
    // Two whole seconds of samples for the coarse figures.
    std::thread::sleep(Duration::from_millis(2100));

    let Some(jobs) = get_as_nobody(&n.socket(), "/v1/jobs") else { return };
    let labels = |doc: &Value, id: &str| {
        let j = doc["jobs"].as_array().unwrap().iter().find(|j| j["id"] == id).unwrap().clone();
        (j["user"].as_str().map(str::to_string), j["app"].as_str().map(str::to_string))
    };
    assert_eq!(labels(&jobs, "theirs"), (None, None), "{jobs}");
    assert_eq!(labels(&jobs, "mine"), (Some("nobody".into()), Some("app-mine".into())), "{jobs}");
    let samples = get_as_nobody(&n.socket(), "/v1/samples").unwrap();
    assert!(samples["domains"].as_array().unwrap().iter().all(|d| d["joules_per_tick"] == 1.0));
    let rows = samples["samples"].as_array().unwrap();
    assert!(!rows.is_empty(), "{samples}");
    assert!(rows.iter().all(|r| r[0].as_u64().unwrap() % 1_000_000 == 0), "{samples}");
    let caps = get_as_nobody(&n.socket(), "/v1/caps").unwrap().to_string();
    assert!(caps.contains(r#""set_detail":"powerstack agent""#), "{caps}");
    assert!(!caps.contains("uid 0") && !caps.contains("pid "), "{caps}");

    // TCP without the token: no labels at all.
    let jobs: Value = serde_json::from_str(&http_get(&addr, "/v1/jobs")).unwrap();
    assert_eq!(labels(&jobs, "mine"), (None, None), "{jobs}");
    // Root on the socket: everything.
    let (_, text) = common::unix_request(&n.socket(), "GET", "/v1/jobs", "");
    let jobs: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(labels(&jobs, "theirs"), (Some("alice".into()), Some("app-theirs".into())));
    let (_, text) = common::unix_request(&n.socket(), "GET", "/v1/caps", "");
    assert!(text.contains("uid 0"), "{text}");
}
