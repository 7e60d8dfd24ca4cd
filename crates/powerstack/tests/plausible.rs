//! Numbers that cannot be absurd, end to end: on one broken simulated root (written by `sim
//! create`, then spoiled, not animated), `powerstack power` and the agent's `/v1/power` agree:
//! a value outside its domain's physical range or a file the kernel never writes is a read
//! failure with a warning naming the file, a domain never read has no figure (not 0 W), and the
//! node figure falls back the same way in both.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Proc, bin, ps, sim_create, unix_post, unix_request};
use serde_json::Value;

/// A simulated root of `profile` in a temporary directory, not animated.
struct Broken {
    dir: tempfile::TempDir,
}

impl Broken {
    fn new(profile: &str) -> Broken {
        let dir = tempfile::tempdir().unwrap();
        sim_create(profile, &dir.path().join("root"));
        Broken { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn write(&self, rel: &str, content: &str) {
        std::fs::write(self.root().join(rel), content).unwrap();
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root().join(rel)).unwrap()
    }

    /// `powerstack power --format json` on the root: exit status, the document, stderr.
    fn cli_power(&self) -> (Option<i32>, Value, String) {
        let out = ps(&["power", "--root", self.root().to_str().unwrap(), "--format", "json"]);
        let doc = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null);
        (out.code, doc, out.stderr)
    }

    fn agent_args(&self) -> Vec<String> {
        let d = self.dir.path();
        let root = self.root().display().to_string();
        ["agent", "--root", &root, "--rate-hz", "50", "--listen", "127.0.0.1:0", "--socket"]
            .iter()
            .map(ToString::to_string)
            .chain([
                d.join("agent.sock").display().to_string(),
                "--state-dir".into(),
                d.join("state").display().to_string(),
            ])
            .collect()
    }

    /// Starts the agent on the root; it once it serves, with what it says on stderr (kept
    /// growing by a thread).
    fn agent(&self) -> (Proc, Arc<Mutex<String>>) {
        let mut child = bin()
            .args(self.agent_args())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let said = Arc::new(Mutex::new(String::new()));
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (tx, rx) = std::sync::mpsc::channel();
        let keep = said.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let ready = line.starts_with("powerstack agent on ");
                keep.lock().unwrap().push_str(&format!("{line}\n"));
                if ready {
                    let _ = tx.send(());
                }
            }
        });
        let ready = rx.recv_timeout(Duration::from_secs(30));
        assert!(ready.is_ok(), "the agent did not start: {}", said.lock().unwrap());
        (Proc(child), said)
    }

    /// The agent's `/v1/power` once its window spans about a second.
    fn agent_power(&self) -> Value {
        let socket = self.dir.path().join("agent.sock");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = unix_request(&socket, "GET", "/v1/power", "");
            if status == 200 {
                let doc: Value = serde_json::from_str(&body).unwrap();
                if doc["interval_s"].as_f64().unwrap_or(0.0) >= 0.9 {
                    return doc;
                }
            }
            assert!(Instant::now() < deadline, "no power within 30 s: {status} {body}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }
}

fn domain<'a>(doc: &'a Value, kind: &str, index: u64) -> &'a Value {
    doc["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["domain"] == kind && d["index"] == index)
        .unwrap_or_else(|| panic!("no {kind}-{index} in {doc}"))
}

fn warnings(doc: &Value) -> String {
    doc["warnings"].as_array().map(|w| format!("{w:?}")).unwrap_or_default()
}

/// Waits until the agent's stderr holds `needle`.
fn agent_said(said: &Mutex<String>, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if said.lock().unwrap().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn near(v: &Value, watts: f64) -> bool {
    v.as_f64().is_some_and(|w| (w - watts).abs() < 1.0)
}

#[test]
fn hwmon_power_above_the_ceiling_is_a_failure_in_the_cli_and_the_agent() {
    let node = Broken::new("hwmon-node");
    let meter = "sys/class/hwmon/hwmon0/power1_average";
    node.write(meter, "18446744073709551615\n");
    let (code, cli, stderr) = node.cli_power();
    assert_eq!(code, Some(3), "a partial reading: {stderr}");
    assert_eq!(domain(&cli, "node", 0)["power_watts"], Value::Null, "{cli}");
    // The node falls back to the sum of its parts: the GPU's 170 W.
    assert_eq!(cli["node_source"], "sum", "{cli}");
    assert!(near(&cli["node_power_watts"], 170.0), "{cli}");
    let w = warnings(&cli);
    assert!(w.contains("power1_average") && w.contains("ceiling"), "{w}");

    let (_agent, said) = node.agent();
    let doc = node.agent_power();
    assert_eq!(domain(&doc, "node", 0)["power_watts"], Value::Null, "{doc}");
    assert_eq!(doc["node_source"], "sum", "{doc}");
    assert!(near(&doc["node_power_watts"], 170.0), "{doc}");
    assert!(
        agent_said(&said, "power1_average reads 18446744073709.55 W"),
        "{}",
        said.lock().unwrap()
    );
}

#[test]
fn a_counter_beyond_its_range_or_all_ones_is_a_failure_in_the_cli_and_the_agent() {
    let node = Broken::new("intel-2s");
    let zone = "sys/class/powercap/intel-rapl:0";
    let range: u64 = node.read(&format!("{zone}/max_energy_range_uj")).trim().parse().unwrap();
    node.write(&format!("{zone}/energy_uj"), &format!("{}\n", range + 1));
    let file = node.root().join(zone).join("energy_uj").display().to_string();
    let (_, cli, _) = node.cli_power();
    assert_eq!(domain(&cli, "package", 0)["power_watts"], Value::Null, "{cli}");
    assert_eq!(domain(&cli, "package", 0)["energy_joules"], Value::Null, "{cli}");
    let w = warnings(&cli);
    assert!(w.contains(&file) && w.contains("max_energy_range_uj"), "{w}");

    let (_agent, said) = node.agent();
    let doc = node.agent_power();
    assert_eq!(domain(&doc, "package", 0)["power_watts"], Value::Null, "{doc}");
    assert_eq!(domain(&doc, "package", 0)["energy_joules"], Value::Null, "{doc}");
    assert!(agent_said(&said, "max_energy_range_uj"), "{}", said.lock().unwrap());
}

#[test]
fn an_nvml_energy_sentinel_is_no_energy_in_the_cli_and_the_agent() {
    let node = Broken::new("nvidia-4gpu");
    // The mock's GPUs are in NVML index order; gpu-0 (first in PCI order) starts at 3.6e9 mJ.
    let file = (0..4)
        .map(|n| format!("var/lib/powerstack-sim/nvml/gpu{n}/energy_mj"))
        .find(|f| node.read(f).trim() == "3600000000")
        .unwrap();
    node.write(&file, &format!("{}\n", u64::MAX));
    let (_, cli, _) = node.cli_power();
    assert_eq!(domain(&cli, "gpu", 0)["energy_joules"], Value::Null, "{cli}");
    assert_eq!(domain(&cli, "gpu", 0)["power_watts"], Value::Null, "{cli}");
    assert!(warnings(&cli).contains("gpu-0"), "{cli}");

    let (_agent, said) = node.agent();
    let doc = node.agent_power();
    assert_eq!(domain(&doc, "gpu", 0)["energy_joules"], Value::Null, "{doc}");
    assert_eq!(domain(&doc, "gpu", 0)["power_watts"], Value::Null, "{doc}");
    assert!(agent_said(&said, "not a count"), "{}", said.lock().unwrap());
}

/// Begins job `j` on the agent, waits `for_s`, and returns its result.
fn job(socket: &Path, for_s: f64) -> Value {
    let (status, body) = unix_post(socket, "/v1/jobs/j/begin", "");
    assert_eq!(status, 201, "{body}");
    std::thread::sleep(Duration::from_secs_f64(for_s));
    let (status, body) = unix_request(socket, "GET", "/v1/jobs/j", "");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn a_node_meter_never_read_falls_back_to_its_parts_in_the_cli_and_the_agent() {
    let node = Broken::new("hwmon-node");
    node.write("sys/class/hwmon/hwmon0/power1_average", "garbage\n");
    let (_, cli, _) = node.cli_power();
    assert_eq!(cli["node_source"], "sum", "{cli}");
    assert!(near(&cli["node_power_watts"], 170.0), "{cli}");

    let (_agent, _) = node.agent();
    let doc = node.agent_power();
    assert_eq!(doc["node_source"], "sum", "{doc}");
    assert!(near(&doc["node_power_watts"], 170.0), "{doc}");
    let result = job(&node.socket(), 1.5);
    assert!(near(&result["node_power"], 170.0), "the node is its parts, not 0 W: {result}");
    assert!(near(&result["gpu_power_0"], 170.0), "{result}");
}

#[test]
fn pm_counters_never_read_give_no_figure_in_the_cli_or_the_agent() {
    let node = Broken::new("cray-ex");
    node.write("sys/cray/pm_counters/freshness", "abc\n");
    let (code, cli, _) = node.cli_power();
    assert_eq!(code, Some(3), "{cli}");
    assert_eq!(cli["node_power_watts"], Value::Null, "{cli}");

    let (_agent, _) = node.agent();
    let doc = node.agent_power();
    assert_eq!(doc["node_power_watts"], Value::Null, "{doc}");
    let domains = doc["domains"].as_array().unwrap();
    assert_eq!(domains.len(), 7, "{doc}");
    assert!(domains.iter().all(|d| d["power_watts"].is_null()), "{doc}");
    // A job's figures: unmeasured (-1 in the job format), never 0 W.
    let result = job(&node.socket(), 1.0);
    assert_eq!(result["node_power"], -1.0, "{result}");
    for key in ["cpu_power_0", "mem_power_0", "gpu_power_0", "gpu_power_3"] {
        assert_eq!(result[key], -1.0, "{key}: {result}");
    }
}

#[test]
fn an_energy_file_with_two_lines_is_a_failure_in_the_cli_and_the_agent() {
    let node = Broken::new("intel-2s");
    let rel = "sys/class/powercap/intel-rapl:0/energy_uj";
    let value: u64 = node.read(rel).trim().parse().unwrap();
    node.write(rel, &format!("{value}\n{}\n", value + 1000));
    let file = node.root().join(rel).display().to_string();
    // The zone cannot be used: no package-0 figure (the first line is not taken), a warning
    // naming the file.
    let no_figure =
        |doc: &Value| {
            doc["domains"].as_array().unwrap().iter().all(|d| {
                !(d["domain"] == "package" && d["index"] == 0) || d["energy_joules"].is_null()
            })
        };
    let (code, cli, _) = node.cli_power();
    assert_eq!(code, Some(3), "{cli}");
    assert!(no_figure(&cli), "{cli}");
    let w = warnings(&cli);
    assert!(w.contains(&file) && w.contains("more than one line"), "{w}");

    let (_agent, said) = node.agent();
    let doc = node.agent_power();
    assert!(no_figure(&doc), "{doc}");
    assert!(agent_said(&said, "more than one line"), "{}", said.lock().unwrap());
}

#[test]
fn a_pm_counters_version_never_written_is_refused_by_the_cli_and_the_agent() {
    for version in ["99\n", "abc\n"] {
        let node = Broken::new("cray-ex");
        node.write("sys/cray/pm_counters/version", version);
        let file = node.root().join("sys/cray/pm_counters/version").display().to_string();
        let (code, _, stderr) = node.cli_power();
        assert_ne!(code, Some(0), "{stderr}");
        assert!(stderr.contains(&file) && stderr.contains("1 to 3"), "{stderr}");

        let out = ps(&node.agent_args().iter().map(String::as_str).collect::<Vec<_>>());
        assert_ne!(out.code, Some(0), "{}", out.stderr);
        assert!(out.stderr.contains(&file) && out.stderr.contains("1 to 3"), "{}", out.stderr);
    }
}
