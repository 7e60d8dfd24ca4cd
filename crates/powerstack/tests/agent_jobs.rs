//! End to end: job windows kept in the state directory across agent restarts (a clean stop and a
//! SIGKILL), the job file never replaced, and `powerstack up` usable for jobs and caps through
//! the socket it prints.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{Node, Proc, bin, run, stderr_until, tcp_request, unix_request};
use serde_json::Value;

/// `powerstack job VERB ID --agent SOCKET`, which must succeed; its JSON answer.
fn mark(n: &Node, verb: &str, id: &str) -> Value {
    let (code, out, err) = run(&["job", verb, id, "--agent", n.socket().to_str().unwrap()]);
    assert_eq!(code, 0, "job {verb} {id}: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `powerstack job query` of `id` on the node's agent: its row (`status` and the result).
fn query(n: &Node, id: &str) -> Value {
    let (_, out, err) = run(&[
        "job",
        "query",
        "-j",
        id,
        "--agents",
        n.socket().to_str().unwrap(),
        "--format",
        "json",
    ]);
    let doc: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {err}"));
    doc["nodes"][0].clone()
}

/// Queries running job `id` until its figures reach past `t_us` (µs since the epoch): this run
/// of the agent has measured it beyond that.
fn measured_past(n: &Node, id: &str, t_us: u64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let row = query(n, id);
        if row["result_end_time"].as_u64().is_some_and(|t| t > t_us) {
            return row;
        }
        assert!(std::time::Instant::now() < deadline, "{id} is not measured past {t_us}: {row}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The figures of a result that must not change once the job has ended.
fn figures(v: &Value) -> Vec<Value> {
    ["energy_joules", "node_power", "peak_node_power", "result_start_time", "result_end_time"]
        .iter()
        .chain(&["samples", "data_presence", "gaps", "cpu_power_0", "mem_power_1"])
        .map(|k| v[*k].clone())
        .collect()
}

fn stop(agent: Proc, signal: i32) {
    let mut agent = agent;
    agent.signal(signal);
    let status = agent.0.wait().unwrap();
    if signal == libc::SIGTERM {
        assert!(status.success(), "{status}");
    }
}

fn us(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a time: {v}"))
}

#[test]
fn a_job_running_across_restarts_ends_with_the_gaps_where_no_agent_measured() {
    let n = Node::new("intel-2s");
    let (agent, _) = n.agent();
    mark(&n, "begin", "done");
    std::thread::sleep(Duration::from_millis(300));
    let done = mark(&n, "end", "done");
    assert_eq!(done["data_presence"], "Complete", "{done}");
    let long_begin = us(&mark(&n, "begin", "long")["begin_unix_us"]);
    measured_past(&n, "long", long_begin + 1_500_000);

    // A clean stop: what was measured of "long" is kept, and the next agent knows both jobs.
    stop(agent, libc::SIGTERM);
    let (agent, _) = n.agent();
    let row = query(&n, "done");
    assert_eq!(row["status"], "ok", "{row}");
    assert_eq!(figures(&row), figures(&done), "the result answered at the end, after a restart");
    let crash_begin = us(&mark(&n, "begin", "crash")["begin_unix_us"]);

    // A crash: nothing is saved at the stop, yet no begun job is forgotten.
    stop(agent, libc::SIGKILL);
    let (_agent, _) = n.agent();
    let running = query(&n, "long");
    let resumed = us(&running["gaps"][1]["end_unix_us"]);
    measured_past(&n, "long", resumed + 1_500_000);
    let long = mark(&n, "end", "long");
    let crash = mark(&n, "end", "crash");

    // "long": measured from its beginning to the clean stop, then from the last start; the
    // restart and the run that was killed are its gaps.
    assert_eq!(long["data_presence"], "Partial", "{long}");
    let gaps = long["gaps"].as_array().unwrap_or_else(|| panic!("no gaps: {long}"));
    assert_eq!(gaps.len(), 2, "{long}");
    assert_eq!(
        (gaps[0]["cause"].as_str(), gaps[1]["cause"].as_str()),
        (Some("agent restarted"), Some("agent killed or crashed"))
    );
    let (g0, g1) = (
        (us(&gaps[0]["start_unix_us"]), us(&gaps[0]["end_unix_us"])),
        (us(&gaps[1]["start_unix_us"]), us(&gaps[1]["end_unix_us"])),
    );
    assert!(long_begin < g0.0 && g0.0 < g0.1, "{long}");
    assert_eq!(g1.0, g0.1, "the killed run's measurements are lost with it: {long}");
    assert!(g1.0 < g1.1 && g1.1 < us(&long["result_end_time"]), "{long}");
    assert_eq!(us(&long["result_start_time"]), long_begin);
    // The figures cover the measured parts: energy over their time is the mean power, the
    // simulator's psys (287 W). Each part is at least 1.5 s long, so that the simulator's 5 ms
    // steps (later ones on a busy machine) at its ends stay well inside the 2%.
    let covered_s = ((g0.0 - long_begin) + (us(&long["result_end_time"]) - g1.1)) as f64 / 1e6;
    let (energy, power) =
        (long["energy_joules"].as_f64().unwrap(), long["node_power"].as_f64().unwrap());
    assert!((power - 287.0).abs() < 0.02 * 287.0, "{long}");
    assert!((energy / covered_s - power).abs() < 1e-6 * power, "{long}");

    // "crash" began in the run that was killed: its gap runs from its beginning.
    assert_eq!(crash["data_presence"], "Partial", "{crash}");
    assert_eq!(crash["gaps"][0]["start_unix_us"], crash_begin, "{crash}");
    assert_eq!(crash["gaps"][0]["end_unix_us"], crash["result_start_time"], "{crash}");

    // A query after the end answers what the end answered, even after another restart.
    assert_eq!(figures(&query(&n, "long")), figures(&long));
}

#[test]
fn the_job_file_is_never_replaced_and_a_mark_that_cannot_be_kept_changes_nothing() {
    let n = Node::new("intel-2s");
    let file = n.state().join("jobs.json");
    std::fs::create_dir_all(n.state()).unwrap();
    std::fs::write(&file, "{\"format\": ").unwrap();
    let (code, err) = n.agent_failing();
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("jobs.json: malformed job windows") && err.contains("move it away"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "{\"format\": ");

    std::fs::remove_file(&file).unwrap();
    let (agent, _) = n.agent();
    // The temporary file the agent writes is taken (by a directory): the begin is refused and
    // the agent knows nothing of the job.
    let blocker = n.state().join(format!(".jobs.json.{}.tmp", agent.0.id()));
    std::fs::create_dir(&blocker).unwrap();
    let (code, _, err) = run(&["job", "begin", "x", "--agent", n.socket().to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot save the job windows") && err.contains("nothing was changed"),
        "{err}"
    );
    assert!(err.contains("(HTTP 503)"), "{err}");
    assert_eq!(query(&n, "x")["status"], "no such job");
    std::fs::remove_dir(&blocker).unwrap();
    mark(&n, "begin", "x");
    assert!(std::fs::read_to_string(&file).unwrap().contains("\"id\":\"x\""));
}

/// Starts `powerstack up` on `n`'s root (with `setup` applied to the command); returns it, the
/// socket it printed and its TCP address.
fn up(n: &Node, setup: impl FnOnce(&mut std::process::Command)) -> (Proc, PathBuf, String) {
    let mut cmd = bin();
    setup(&mut cmd);
    cmd.args(["up", "--listen", "127.0.0.1:0", "--no-site", "--root"]).arg(n.root());
    let mut up = Proc(cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap());
    let lines = stderr_until(&mut up.0, "Ctrl-C to stop");
    let find = |marker: &str| {
        let line = lines.iter().find(|l| l.contains(marker)).unwrap_or_else(|| panic!("{lines:?}"));
        line.split(marker).nth(1).unwrap().split([' ', '/']).next().unwrap().to_string()
    };
    let socket = lines
        .iter()
        .find_map(|l| l.split("POWERSTACK_AGENT=").nth(1))
        .map(|rest| PathBuf::from(rest.split(' ').next().unwrap()))
        .unwrap_or_else(|| panic!("no socket printed: {lines:?}"));
    (up, socket, find("API http://"))
}

#[test]
fn up_prints_a_socket_through_which_its_caller_marks_jobs_and_sets_caps() {
    use std::os::unix::fs::PermissionsExt;
    let n = Node::new("intel-2s");
    let before = n.limit_uw();
    let (up, socket, addr) = up(&n, |_| {});
    let dir_mode = std::fs::metadata(socket.parent().unwrap()).unwrap().permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700, "the socket's directory is the caller's only");

    let agent = socket.to_str().unwrap();
    let (code, _, err) = run(&["job", "begin", "j1", "--agent", agent]);
    assert_eq!(code, 0, "{err}");
    // As printed: through the environment.
    let out = bin().env("POWERSTACK_AGENT", agent).args(["job", "end", "j1"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"data_presence\":\"Complete\""));

    let cap = r#"{"domain":"package","index":0,"constraint":"long_term","limit_watts":90}"#;
    let (status, body) = unix_request(&socket, "POST", "/v1/caps", cap);
    assert_eq!(status, 200, "{body}");
    assert_eq!(n.limit_uw(), "90000000");

    // A write over TCP is refused, pointing at the socket, which exists.
    let (status, body) = tcp_request(&addr, "POST", "/v1/jobs/t/begin");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains(&format!("use its Unix socket: --agent {agent}")), "{body}");

    stop(up, libc::SIGTERM);
    assert_eq!(n.limit_uw(), before, "restored when up stops");
    assert!(!socket.exists());
}

#[test]
fn up_run_by_an_unprivileged_user_lets_that_user_mark_jobs() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: skipping");
        return;
    }
    let as_nobody = |c: &mut std::process::Command| {
        let program = c.get_program().to_owned();
        let args: Vec<_> = c.get_args().map(|a| a.to_owned()).collect();
        *c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(program).args(args);
    };
    let mut probe = bin();
    probe.arg("--version");
    as_nobody(&mut probe);
    if !probe.output().is_ok_and(|o| o.status.success()) {
        eprintln!("cannot run as nobody here: skipping");
        return;
    }
    let n = Node::new("intel-2s");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(n.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (up, socket, _) = up(&n, as_nobody);
    let status = std::fs::read_to_string(format!("/proc/{}/status", up.0.id())).unwrap();
    assert!(status.lines().any(|l| l.starts_with("Uid:\t65534")), "{status}");
    let mut begin = bin();
    begin.args(["job", "begin", "mine", "--agent", socket.to_str().unwrap()]);
    as_nobody(&mut begin);
    let out = begin.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
