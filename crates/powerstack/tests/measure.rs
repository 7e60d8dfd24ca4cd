//! `powerstack measure -- COMMAND`: a command run on a simulated node, its energy and mean and
//! peak power, its exit status passed on, signals passed on to it, every output format.

mod common;

use std::io::Read;
use std::process::Stdio;

use common::{Node, Proc, bin, promtool_passes, ps, stderr_until};
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// The psys counter of an animated root, joules.
fn psys_joules(node: &Node) -> f64 {
    let path = node.root().join("sys/class/powercap/intel-rapl:2/energy_uj");
    std::fs::read_to_string(path).unwrap().trim().parse::<f64>().unwrap() / 1e6
}

#[test]
fn sleep_1_energy_from_the_counters_mean_times_duration_and_peaks_above_the_mean() {
    let node = Node::new("intel-2s");
    let root = node.root();
    let before = psys_joules(&node);
    let out =
        ps(&["measure", "--root", root.to_str().unwrap(), "--format", "json", "--", "sleep", "1"]);
    let after = psys_joules(&node);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let doc = json(&out.stdout);
    assert_eq!(doc["schema"], "powerstack.measure.v1");
    assert_eq!(doc["command"], serde_json::json!(["sleep", "1"]));
    assert_eq!((doc["exit_code"].as_i64(), doc["signal"].as_i64()), (Some(0), None));
    let (energy, mean, peak) =
        (f(&doc, "node_energy_joules"), f(&doc, "node_mean_watts"), f(&doc, "node_peak_watts"));
    let duration = f(&doc, "duration_s");
    assert!(duration >= 1.0, "{duration}");
    assert!(doc["samples"].as_u64().unwrap() >= 3, "sampled in between: {doc}");
    assert!(
        (energy - mean * duration).abs() <= 0.02 * energy,
        "{energy} J vs {mean} W × {duration} s"
    );
    assert!(peak >= mean * (1.0 - 1e-9), "peak {peak} < mean {mean}");
    // The node is psys here: its energy is the counter's own, inside what it counted around the
    // whole run (which also holds powerstack's start and end).
    assert_eq!(doc["node_source"], "psys");
    assert!(
        energy <= after - before + 1e-6 && energy >= 0.5 * (after - before),
        "{energy} J of {before}..{after}"
    );
    for d in doc["domains"].as_array().unwrap() {
        let (e, m, p) = (f(d, "energy_joules"), f(d, "mean_watts"), f(d, "peak_watts"));
        assert!(e > 0.0 && (e - m * duration).abs() <= 0.02 * e, "{d}");
        assert!(p >= m * (1.0 - 1e-9), "{d}");
    }
}

#[test]
fn the_exit_status_is_passed_on_and_the_reading_still_printed() {
    let out =
        ps(&["measure", "--simulate", "intel-2s", "--format", "csv", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.code, Some(7), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "domain,energy_joules,mean_watts,peak_watts,duration_s,exit_code");
    let node = lines.last().unwrap();
    assert!(node.starts_with("NODE,") && node.ends_with(",7"), "{}", out.stdout);
    assert!(!node.contains(",-1,"), "a short run is still measured: {node}");
    assert!(out.stderr.contains("SIMULATED:"), "{}", out.stderr);
}

#[test]
fn a_missing_command_is_a_clear_error_and_exit_127() {
    let out = ps(&["measure", "--simulate", "intel-2s", "--", "powerstack-no-such-command", "x"]);
    assert_eq!(out.code, Some(127), "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "cannot run `powerstack-no-such-command`: command not found; check its name and PATH"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "");
    let out = ps(&["measure", "--simulate", "intel-2s", "--", "/dev/null"]);
    assert_eq!(out.code, Some(126), "{}", out.stderr);
    assert!(out.stderr.contains("cannot run `/dev/null`: permission denied"), "{}", out.stderr);
}

/// Starts `measure ... -- sh -c 'echo started >&2; exec sleep 30'` and waits until the command
/// runs; sends it `signal`; returns its exit status and what it printed.
fn stopped_by(signal: i32) -> (Option<i32>, Value) {
    let mut child = bin()
        .args(["measure", "--simulate", "intel-2s", "--format", "json", "--"])
        .args(["sh", "-c", "echo started >&2; exec sleep 30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    stderr_until(&mut child, "started");
    let mut proc = Proc(child);
    proc.signal(signal);
    let mut stdout = String::new();
    proc.0.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    let status = proc.0.wait().unwrap();
    (status.code(), json(&stdout))
}

#[test]
fn sigint_and_sigterm_sent_to_powerstack_are_passed_on_to_the_command() {
    let (code, doc) = stopped_by(libc::SIGINT);
    assert_eq!(code, Some(130), "128 + SIGINT, as a shell reports the command: {doc}");
    assert_eq!((doc["exit_code"].as_i64(), doc["signal"].as_i64()), (None, Some(2)));
    assert!(f(&doc, "node_energy_joules") > 0.0, "{doc}");
    let (code, doc) = stopped_by(libc::SIGTERM);
    assert_eq!(code, Some(143), "{doc}");
    assert_eq!(doc["signal"].as_i64(), Some(15));
}

#[test]
fn table_prometheus_and_variorum_formats() {
    let run = |format: &str| {
        let out = ps(&["measure", "--simulate", "intel-2s", "--format", format, "--", "true"]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        out.stdout
    };
    let table = run("table");
    assert!(table.starts_with("Energy of `true` on "), "{table}");
    assert!(table.contains("exit status 0, "), "{table}");
    assert!(table.lines().any(|l| l.starts_with("NODE") && l.ends_with("psys")), "{table}");
    let prom = run("prometheus");
    for family in ["energy_joules", "mean_power_watts", "peak_power_watts", "duration_seconds"] {
        assert!(prom.contains(&format!("# TYPE powerstack_measure_{family} gauge")), "{prom}");
    }
    assert!(prom.contains("powerstack_measure_energy_joules{domain=\"NODE\",index=\"0\"} "));
    assert!(prom.contains("powerstack_simulated{profile=\"intel-2s\"} 1"), "{prom}");
    promtool_passes(&prom);
    let variorum = json(&run("variorum"));
    let host = variorum.as_object().unwrap().values().next().unwrap();
    assert!(host["power_node_watts"].as_f64().unwrap() > 0.0, "{variorum}");
    assert!(host["socket_0"]["power_cpu_watts"].as_f64().unwrap() > 0.0, "{variorum}");
}

#[test]
fn output_file_interval_and_usage() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.json");
    let out = ps(&[
        "measure",
        "--simulate",
        "intel-2s",
        "-o",
        file.to_str().unwrap(),
        "--",
        "echo",
        "hi",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "hi\n", "the command's output alone on stdout");
    let doc = json(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(doc["command"], serde_json::json!(["echo", "hi"]));
    let out = ps(&["measure", "--simulate", "intel-2s", "--interval", "1ms", "--", "true"]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("--interval 1ms: must be between 10ms and 1h"), "{}", out.stderr);
    let out = ps(&["measure", "--simulate", "intel-2s"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("powerstack measure [OPTIONS] -- COMMAND [ARGS]"),
        "{}",
        out.stderr
    );
}

#[test]
fn gpu_counters_published_in_steps_give_peaks_near_the_mean() {
    // NVML's energy moves about every 100 ms, sampled every 100 ms: read between its steps, no
    // interval holds two steps' energy (or none), and the GPUs' draw is steady in the simulator.
    let out = ps(&["measure", "--simulate", "nvidia-4gpu", "--format", "json", "--", "sleep", "1"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let doc = json(&out.stdout);
    let duration = f(&doc, "duration_s");
    let (energy, mean) = (f(&doc, "node_energy_joules"), f(&doc, "node_mean_watts"));
    assert!(
        (energy - mean * duration).abs() <= 0.03 * energy,
        "{energy} J vs {mean} W × {duration} s"
    );
    assert!(f(&doc, "node_peak_watts") >= mean, "{doc}");
    let gpus: Vec<&Value> =
        doc["domains"].as_array().unwrap().iter().filter(|d| d["domain"] == "gpu").collect();
    assert_eq!(gpus.len(), 4, "{doc}");
    for g in gpus {
        let (m, p) = (f(g, "mean_watts"), f(g, "peak_watts"));
        assert!(m > 0.0 && p >= m && p < 1.5 * m, "{g}");
    }
}
