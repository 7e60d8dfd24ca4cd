//! End to end: job windows kept in the state directory across agent restarts (a clean stop and a
//! SIGKILL), and the job file never replaced.

mod common;

use std::time::Duration;

use common::{Node, Proc, run};
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
    measured_past(&n, "long", long_begin + 500_000);

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
    measured_past(&n, "long", resumed + 300_000);
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
    // simulator's psys (287 W).
    let covered_s = ((g0.0 - long_begin) + (us(&long["result_end_time"]) - g1.1)) as f64 / 1e6;
    let (energy, power) =
        (long["energy_joules"].as_f64().unwrap(), long["node_power"].as_f64().unwrap());
    assert!((power - 287.0).abs() < 0.01 * 287.0, "{long}");
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
