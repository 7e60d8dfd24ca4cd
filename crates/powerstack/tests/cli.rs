//! The `powerstack` command, run as a built binary against simulated roots.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use powerstack_model::{DomainId, DomainKind};
use powerstack_sim::{Profile, SimNode};
use serde_json::Value;

fn bin() -> Command {
    let mut c = Command::cargo_bin("powerstack").expect("the powerstack binary is built");
    c.env_remove("POWERSTACK_ROOT").env_remove("POWERSTACK_SIMULATE");
    c
}

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let out = bin().args(args).output().expect("runs");
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `powerstack power --root ROOT --interval INTERVAL --format FORMAT`.
fn power(root: &Path, interval: &str, format: &str) -> Run {
    run(&["power", "--root", root.to_str().unwrap(), "--interval", interval, "--format", format])
}

fn create(dir: &Path, profile: &str, extra: &[&str]) {
    let d = dir.to_str().unwrap();
    let mut args = vec!["sim", "create", "--profile", profile];
    args.extend_from_slice(extra);
    args.push(d);
    let r = run(&args);
    assert_eq!(r.status, 0, "sim create failed: {}", r.stderr);
}

/// `powerstack sim run DIR` in the background, killed when dropped.
struct Animated(Child);

impl Drop for Animated {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn animate(dir: &Path) -> Animated {
    let child = bin()
        .args(["sim", "run", "--tick", "2ms", dir.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sim run starts");
    // Let the animator take its first step.
    std::thread::sleep(Duration::from_millis(300));
    Animated(child)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn kind(name: &str) -> DomainKind {
    name.parse().expect("known domain kind")
}

/// The headline check: on every profile, each domain's power over a 1 s interval is within 1% of the
/// simulator's model (pm_counters: within its 1 J resolution when that is coarser than 1%).
#[test]
fn every_profile_reports_each_domain_within_one_percent_of_the_model() {
    // Three measurements of 1 s, and each domain's median of them: the simulator runs as a process
    // of this machine, and when an overloaded machine does not schedule it for tens of
    // milliseconds, the counters read at that moment are stale and one measurement is off by as
    // much (seen once: 1.5% on a GPU while four builds ran on two cores). One stall spoils one
    // measurement, not the median.
    const RUNS: usize = 3;
    for profile in Profile::ALL {
        let dir = tempfile::tempdir().unwrap();
        create(dir.path(), profile.as_str(), &[]);
        let _sim = animate(dir.path());
        let model = SimNode::open(dir.path()).unwrap();
        let mut measured: Vec<(DomainId, String, f64, Vec<f64>)> = Vec::new();
        for run in 0..RUNS {
            let r = power(dir.path(), "1s", "json");
            assert_eq!(r.status, 0, "{}: {}", profile.as_str(), r.stderr);
            let doc = json(&r.stdout);
            assert_eq!(doc["schema"], "powerstack.power.v1");
            assert_eq!(doc["simulated"], true, "a simulated root is labelled");
            assert_eq!(doc["simulated_profile"], profile.as_str());
            let interval_s = doc["interval_s"].as_f64().unwrap();
            let domains = doc["domains"].as_array().unwrap();
            assert!(!domains.is_empty(), "{}: no domains", profile.as_str());
            for (i, d) in domains.iter().enumerate() {
                let id = DomainId::new(
                    kind(d["domain"].as_str().unwrap()),
                    d["index"].as_u64().unwrap() as u32,
                );
                let watts = d["power_watts"]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{}: {id} has no power", profile.as_str()));
                if run == 0 {
                    let provider = d["provider"].as_str().unwrap_or_default().to_string();
                    measured.push((id, provider, interval_s, Vec::new()));
                }
                assert_eq!(measured[i].0, id, "{}: the same domains each run", profile.as_str());
                measured[i].3.push(watts);
            }
            assert!(doc["node_power_watts"].as_f64().unwrap() > 0.0);
        }
        for (id, provider, interval_s, mut runs) in measured {
            runs.sort_by(f64::total_cmp);
            let median = runs[RUNS / 2];
            let expected =
                model.expected_steady_power_watts(id).unwrap_or_else(|| panic!("model lacks {id}"));
            let resolution_w = if provider == "pm_counters" { 1.0 / interval_s } else { 0.0 };
            let tolerance = (0.01 * expected).max(resolution_w * 1.05);
            assert!(
                (median - expected).abs() <= tolerance,
                "{}: {id} measured {median:.3} W (median of {runs:?}), model {expected:.3} W \
                 (tolerance {tolerance:.3} W)",
                profile.as_str()
            );
        }
    }
}

#[test]
fn node_source_is_said_for_each_kind_of_node() {
    for (profile, source) in [
        ("intel-2s", "psys"),
        ("amd-2s", "sum"),
        ("cray-ex", "pm_counters"),
        ("hwmon-node", "power_meter"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        create(dir.path(), profile, &[]);
        let _sim = animate(dir.path());
        let r = power(dir.path(), "50ms", "json");
        assert_eq!(r.status, 0, "{profile}: {}", r.stderr);
        assert_eq!(json(&r.stdout)["node_source"], source, "{profile}");
    }
}

#[test]
fn count_prints_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), "intel-2s", &[]);
    let _sim = animate(dir.path());
    let r = run(&[
        "power",
        "--root",
        dir.path().to_str().unwrap(),
        "--interval",
        "20ms",
        "--count",
        "3",
        "--format",
        "json",
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3);
    for l in lines {
        assert_eq!(json(l)["schema"], "powerstack.power.v1");
    }
}

#[test]
fn variorum_formats_have_variorums_keys() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), "intel-2s", &[]);
    let _sim = animate(dir.path());
    let root = dir.path().to_str().unwrap();
    let r = power(dir.path(), "20ms", "variorum");
    assert_eq!(r.status, 0, "{}", r.stderr);
    let doc = json(&r.stdout);
    let host = doc.as_object().unwrap().values().next().unwrap();
    assert!(host["timestamp"].is_i64());
    assert!(host["socket_0"]["power_cpu_watts"].is_f64());
    assert!(host["socket_1"]["power_mem_watts"].is_f64());
    assert!(host["power_node_watts"].is_f64());
    assert!(r.stdout.contains("\n    \""), "indented by four spaces like Variorum");

    let r = power(dir.path(), "20ms", "variorum-flat");
    let doc = json(&r.stdout);
    for k in [
        "hostname",
        "timestamp",
        "power_node_watts",
        "power_cpu_watts_socket_1",
        "power_mem_watts_socket_0",
        "power_gpu_watts_socket_0",
    ] {
        assert!(doc.get(k).is_some(), "flat JSON lacks {k}");
    }
    assert_eq!(doc["power_gpu_watts_socket_0"], -1.0);

    let r = run(&["energy", "--root", root, "--format", "variorum"]);
    let doc = json(&r.stdout);
    let host = doc.as_object().unwrap().values().next().unwrap();
    assert!(host["socket_0"]["energy_cpu_joules"].as_f64().unwrap() > 0.0);
    assert!(host["energy_node_joules"].as_f64().unwrap() > 0.0);

    let r = run(&["domains", "--root", root, "--format", "variorum"]);
    let doc = json(&r.stdout);
    let host = doc.as_object().unwrap().values().next().unwrap();
    assert_eq!(host["control"]["power_cpu"]["max"], 150.0);
    assert_eq!(host["control"]["power_cpu"]["units"], "Watts");
    assert!(host["measurement"]["power_mem"].is_object());
}

#[test]
fn prometheus_output_passes_promtool_when_it_is_installed() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), "cray-ex", &[]);
    let _sim = animate(dir.path());
    let r = power(dir.path(), "20ms", "prometheus");
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.contains("powerstack_power_watts{domain=\"gpu\",index=\"3\"}"));
    assert!(r.stdout.contains("powerstack_simulated{profile=\"cray-ex\"} 1"));
    common::promtool_passes(&r.stdout);
}

#[test]
fn table_is_labelled_simulated_and_domains_and_topology_work() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), "hwmon-node", &[]);
    let root = dir.path().to_str().unwrap();
    let r = power(dir.path(), "20ms", "table");
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.contains("SIMULATED"), "{}", r.stdout);
    assert!(r.stdout.contains("gpu-0"));
    let r = run(&["domains", "--root", root, "--format", "json"]);
    let doc = json(&r.stdout);
    let gpu = doc["domains"].as_array().unwrap().iter().find(|d| d["domain"] == "gpu").unwrap();
    assert_eq!(gpu["controls"][0]["name"], "cap");
    let r = run(&["topology", "--root", root, "--format", "json"]);
    let doc = json(&r.stdout);
    assert_eq!(doc["packages"].as_array().unwrap().len(), 1);
    assert_eq!(doc["gpus"][0]["socket"], 0);
}

#[test]
fn simulate_auto_falls_back_to_the_simulated_node_and_says_so() {
    let empty = tempfile::tempdir().unwrap();
    let r = run(&[
        "power",
        "--root",
        empty.path().to_str().unwrap(),
        "--simulate",
        "auto",
        "--interval",
        "100ms",
        "--format",
        "json",
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stderr.contains("SIMULATED"), "{}", r.stderr);
    let doc = json(&r.stdout);
    assert_eq!(doc["simulated_profile"], "intel-2s");
    // The in-process simulator animates the node: power is real, not a first-call zero.
    assert!(doc["node_power_watts"].as_f64().unwrap() > 100.0, "{}", r.stdout);
}

#[test]
fn no_source_is_one_clear_line_and_a_failure() {
    let empty = tempfile::tempdir().unwrap();
    let r = run(&["power", "--root", empty.path().to_str().unwrap()]);
    assert_eq!(r.status, 1);
    assert!(r.stdout.is_empty());
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("no readable power source"), "{}", r.stderr);
    assert!(r.stderr.contains("--simulate auto"), "{}", r.stderr);
    // Nothing measures the node: each absent source says why.
    assert!(r.stderr.contains("msr: no msr device under"), "{}", r.stderr);
    assert!(r.stderr.contains("powercap: no RAPL zone under"), "{}", r.stderr);
}

/// A GPU-only node like an H200 VM: the nvidia-4gpu profile without its powercap zones and MSR
/// devices, so that NVML is its only source.
fn gpu_only(dir: &Path) {
    create(dir, "nvidia-4gpu", &[]);
    std::fs::remove_dir_all(dir.join("sys/class/powercap")).unwrap();
    std::fs::remove_dir_all(dir.join("dev/cpu")).unwrap();
}

#[test]
fn on_a_gpu_only_node_no_msr_warning_but_domains_lists_the_absent_sources() {
    let dir = tempfile::tempdir().unwrap();
    gpu_only(dir.path());
    let _sim = animate(dir.path());
    let root = dir.path().to_str().unwrap();
    // Prometheus has no place for warnings: they would go to stderr.
    let r = power(dir.path(), "20ms", "prometheus");
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("msr"), "{}", r.stderr);
    let r = power(dir.path(), "20ms", "json");
    assert_eq!(r.status, 0, "{}", r.stderr);
    let doc = json(&r.stdout);
    assert_eq!(doc["node_source"], "sum", "{doc}");
    assert_eq!(doc["warnings"].as_array().unwrap().len(), 0, "{doc}");

    let r = run(&["domains", "--root", root, "--format", "json"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let doc = json(&r.stdout);
    let source = |name: &str| {
        doc["sources"].as_array().unwrap().iter().find(|s| s["source"] == name).unwrap().clone()
    };
    assert_eq!(source("msr")["status"], "absent", "{doc}");
    assert!(source("msr")["detail"].as_str().unwrap().contains("no msr device"), "{doc}");
    assert_eq!(source("powercap")["status"], "absent", "{doc}");
    assert_eq!(source("nvml")["status"], "found", "{doc}");
    assert_eq!(source("nvml")["domains"], 4, "{doc}");
    assert_eq!(doc["warnings"].as_array().unwrap().len(), 0, "{doc}");
    let r = run(&["domains", "--root", root, "--format", "table"]);
    let msr = r.stdout.lines().find(|l| l.starts_with("msr ")).unwrap_or_default();
    assert!(msr.contains("absent") && msr.contains("no msr device"), "{}", r.stdout);
    assert!(!r.stdout.contains("warning"), "{}", r.stdout);

    // -v says it on stderr, for any command that reads the node.
    let r = run(&["-v", "power", "--root", root, "--interval", "20ms", "--format", "json"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stderr.contains("note: source msr: absent: no msr device"), "{}", r.stderr);
    assert!(r.stderr.contains("note: source nvml: found: 4 domains"), "{}", r.stderr);
}

#[test]
fn bad_arguments_are_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), "intel-2s", &[]);
    let root = dir.path().to_str().unwrap();
    let cases: &[&[&str]] = &[
        &["power", "--root", "/nonexistent/powerstack"],
        &["power", "--root", root, "--interval", "0s"],
        &["power", "--root", root, "--interval", "fast"],
        &["power", "--root", root, "--simulate", "cray-xx"],
        &["power", "--root", root, "--source", "rapl"],
        &["power", "--root", root, "--count", "0"],
        &["sim", "create", "--profile", "intel-9s", "/tmp/never-created-powerstack"],
        &[
            "sim",
            "create",
            "--profile",
            "intel-2s",
            "--load",
            "nan",
            "/tmp/never-created-powerstack",
        ],
        &["domains", "--root", root, "--format", "prometheus"],
    ];
    for args in cases {
        let r = run(args);
        assert_eq!(r.status, 1, "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.starts_with("error: "), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"));
    }
    assert!(!Path::new("/tmp/never-created-powerstack").exists());
    // Unknown formats are refused by the argument parser (usage error, status 2).
    assert_eq!(run(&["power", "--root", root, "--format", "xml"]).status, 2);
}

#[test]
fn a_malformed_counter_is_a_warning_and_a_partial_status_never_a_number() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), "intel-2s", &[]);
    let zone = dir.path().join("sys/class/powercap/intel-rapl:1/energy_uj");
    std::fs::write(&zone, "12x4\n").unwrap();
    let r = power(dir.path(), "20ms", "json");
    assert_eq!(r.status, 3, "partial readings exit with 3: {}", r.stderr);
    let doc = json(&r.stdout);
    let pkg1 = doc["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["domain"] == "package" && d["index"] == 1);
    // Either skipped at discovery (with a warning) or present without a number.
    if let Some(d) = pkg1 {
        assert!(d["power_watts"].is_null(), "{d}");
    }
    let warnings = doc["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("intel-rapl:1")), "{warnings:?}");
}

#[test]
fn msr_source_reads_the_simulated_register_image() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), "intel-2s", &[]);
    let _sim = animate(dir.path());
    let r = run(&[
        "power",
        "--root",
        dir.path().to_str().unwrap(),
        "--source",
        "msr",
        "--interval",
        "1s",
        "--format",
        "json",
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let doc = json(&r.stdout);
    let model = SimNode::open(dir.path()).unwrap();
    for d in doc["domains"].as_array().unwrap() {
        assert_eq!(d["provider"], "msr");
        let id =
            DomainId::new(kind(d["domain"].as_str().unwrap()), d["index"].as_u64().unwrap() as u32);
        let expected = model.expected_steady_power_watts(id).unwrap();
        let measured = d["power_watts"].as_f64().unwrap();
        assert!((measured - expected).abs() <= 0.01 * expected, "{id}: {measured} vs {expected}");
    }
    // Overlapping limit registers in a file image are not read, and the output says why.
    assert!(
        doc["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("regular file"))
    );
}

#[test]
fn piping_into_a_closed_reader_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), "intel-2s", &[]);
    let mut child = bin()
        .args([
            "power",
            "--root",
            dir.path().to_str().unwrap(),
            "--interval",
            "10ms",
            "--watch",
            "--format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    use std::io::Read;
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

/// Runs the binary as user `nobody` through `setpriv`, when this test runs as root and that works
/// here (the binary must be reachable by `nobody`); `None` when it cannot.
fn run_as_nobody(args: &[&str]) -> Option<Run> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let bin = assert_cmd::cargo::cargo_bin("powerstack");
    let nobody = |extra: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(extra)
            .env_remove("POWERSTACK_ROOT")
            .output()
            .ok()
    };
    let probe = nobody(&["--version"])?;
    if !probe.status.success() {
        return None;
    }
    let out = nobody(args)?;
    Some(Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

#[test]
fn permission_denied_tells_an_unprivileged_user_what_to_do() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), "intel-2s", &[]);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Like a kernel with the PLATYPUS fix: energy_uj readable by root only.
    for zone in std::fs::read_dir(dir.path().join("sys/class/powercap")).unwrap() {
        let f = zone.unwrap().path().join("energy_uj");
        if f.exists() {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o400)).unwrap();
        }
    }
    let root = dir.path().to_str().unwrap();
    let Some(r) = run_as_nobody(&["power", "--root", root, "--source", "powercap"]) else {
        eprintln!("cannot run as an unprivileged user here: skipping");
        return;
    };
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("permission denied reading"), "{}", r.stderr);
    assert!(r.stderr.contains("energy_uj"), "{}", r.stderr);
    assert!(r.stderr.contains("run as root, or grant read access"), "{}", r.stderr);
    // One zone readable: its reading is printed, the others are reported, the status says partial.
    let psys = dir.path().join("sys/class/powercap/intel-rapl:2/energy_uj");
    std::fs::set_permissions(&psys, std::fs::Permissions::from_mode(0o444)).unwrap();
    let r = run_as_nobody(&["power", "--root", root, "--source", "powercap", "--format", "json"])
        .unwrap();
    assert_eq!(r.status, 3, "{}", r.stderr);
    let doc = json(&r.stdout);
    assert_eq!(doc["domains"].as_array().unwrap().len(), 1);
    assert!(
        doc["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("permission denied"))
    );
}

#[test]
fn sim_create_keeps_pm_faults_and_nvml_options_in_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("ex");
    let faults = ["--pm-fault", "torn", "--pm-fault", "late=150ms", "--pm-fault", "drift=-20ppm"];
    create(&ex, "cray-ex", &faults);
    let opts = SimNode::open(&ex).unwrap().options().clone();
    assert!(opts.pm_faults.torn && !opts.pm_faults.freshness_mid_update);
    assert_eq!(opts.pm_faults.late, Duration::from_millis(150));
    assert_eq!(opts.pm_faults.drift_ppm, -20.0);
    let r = run(&["sim", "run", "--duration", "100ms", ex.to_str().unwrap()]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stderr.contains("pm_counters faults torn, late=150ms, drift=-20ppm"), "{}", r.stderr);
    let nv = dir.path().join("nv");
    create(&nv, "nvidia-8gpu", &["--nvml-latency", "off", "--nvml-update-ms", "0"]);
    let opts = SimNode::open(&nv).unwrap().options().clone();
    assert_eq!(opts.nvml_latency, powerstack_sim::NvmlLatency::NONE);
    assert_eq!(opts.nvml_update_ms, 0);
    for bad in [["--pm-fault", "drift=5"], ["--nvml-latency", "fast"]] {
        let mut args = vec!["sim", "create"];
        args.extend_from_slice(&bad);
        let bad_dir = dir.path().join("bad");
        args.push(bad_dir.to_str().unwrap());
        let r = run(&args);
        assert_eq!(r.status, 1, "{bad:?}");
        assert!(r.stderr.starts_with(&format!("error: {}", bad[0])), "{}", r.stderr);
        assert!(!bad_dir.exists(), "nothing written for {bad:?}");
    }
}
