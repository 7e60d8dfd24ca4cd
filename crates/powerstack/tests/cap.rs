//! `powerstack cap ...` through the built binary on simulated nodes.

use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let out = Command::cargo_bin("powerstack")
        .unwrap()
        .env_remove("POWERSTACK_ROOT")
        .env_remove("POWERSTACK_SIMULATE")
        .env_remove("POWERSTACK_STATE_DIR")
        .args(args)
        .output()
        .unwrap();
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

struct Node {
    root: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl Node {
    fn new(profile: &str) -> Node {
        let root = tempfile::tempdir().unwrap();
        let r = run(&["sim", "create", "--profile", profile, root.path().to_str().unwrap()]);
        assert_eq!(r.status, 0, "{}", r.stderr);
        Node { root, state: tempfile::tempdir().unwrap() }
    }

    /// `powerstack cap ARGS --root R --state-dir S --format json`.
    fn cap(&self, args: &[&str]) -> Run {
        let mut all = vec!["cap"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[
            "--root",
            self.root.path().to_str().unwrap(),
            "--state-dir",
            self.state.path().to_str().unwrap(),
            "--format",
            "json",
        ]);
        run(&all)
    }

    fn file(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.path().join(rel)).unwrap().trim().to_string()
    }

    /// Every file under the root with its content, to show nothing changed.
    fn snapshot(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        walk(self.root.path(), &mut out);
        out.sort();
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            walk(&p, out);
        } else if ft.is_file()
            && (p.to_string_lossy().contains("constraint_")
                || p.ends_with("enabled")
                || p.to_string_lossy().contains("_cap"))
        {
            out.push((p.display().to_string(), std::fs::read_to_string(&p).unwrap_or_default()));
        }
    }
}

/// `powerstack sim run` on a root, stopped when dropped.
struct Animated(std::process::Child);

impl Drop for Animated {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn animate(root: &Path) -> Animated {
    let child = Command::cargo_bin("powerstack")
        .unwrap()
        .args(["sim", "run", "--tick", "2ms", root.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    Animated(child)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

const PKG0: &str = "sys/class/powercap/intel-rapl:0/constraint_0_power_limit_uw";
const PKG1: &str = "sys/class/powercap/intel-rapl:1/constraint_0_power_limit_uw";

#[test]
fn cap_socket_sets_every_socket_or_one_and_reset_puts_them_back() {
    let n = Node::new("intel-2s");
    let r = n.cap(&["socket", "120"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let doc = json(&r.stdout);
    assert_eq!(doc["schema"], "powerstack.cap.v1");
    assert_eq!(doc["writes"].as_array().unwrap().len(), 2);
    assert_eq!(doc["writes"][0]["read_back_watts"], 120.0);
    assert_eq!(doc["writes"][0]["previous_watts"], 150.0);
    assert_eq!((n.file(PKG0).as_str(), n.file(PKG1).as_str()), ("120000000", "120000000"));

    let r =
        n.cap(&["socket", "100", "--socket", "1", "--short-term", "140", "--time-window", "2s"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(n.file(PKG0), "120000000");
    assert_eq!(n.file(PKG1), "100000000");
    assert_eq!(n.file("sys/class/powercap/intel-rapl:1/constraint_1_power_limit_uw"), "140000000");
    assert_eq!(n.file("sys/class/powercap/intel-rapl:1/constraint_0_time_window_us"), "2000000");

    let show = json(&n.cap(&["show"]).stdout);
    let pkg1 = show["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["domain"] == "package" && c["index"] == 1 && c["constraint"] == "long_term")
        .unwrap();
    assert_eq!(pkg1["set_by"], "powerstack");
    assert_eq!(pkg1["original_watts"], 150.0);
    assert!(pkg1["set_detail"].as_str().unwrap().contains("cap socket 100"), "{pkg1}");
    let psys =
        show["controls"].as_array().unwrap().iter().find(|c| c["domain"] == "platform").unwrap();
    assert_eq!(psys["set_by"], "not powerstack");

    let r = n.cap(&["reset"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!((n.file(PKG0).as_str(), n.file(PKG1).as_str()), ("150000000", "150000000"));
    let writes = json(&r.stdout)["writes"].as_array().unwrap().clone();
    let put_back: Vec<(String, u64, f64)> = writes
        .iter()
        .filter(|w| w["domain"] == "package" && w["constraint"] == "long_term")
        .map(|w| {
            assert!(w["previous_watts"].is_null(), "{w}");
            let i = w["index"].as_u64().unwrap();
            (w["provider"].as_str().unwrap().to_string(), i, w["read_back_watts"].as_f64().unwrap())
        })
        .collect();
    assert_eq!(
        put_back,
        [("powercap".to_string(), 0, 150.0), ("powercap".to_string(), 1, 150.0)],
        "{writes:?}"
    );
    assert_eq!(n.file("sys/class/powercap/intel-rapl:1/constraint_1_power_limit_uw"), "180000000");
    assert_eq!(n.file("sys/class/powercap/intel-rapl:1/constraint_0_time_window_us"), "999424");
    // A second reset has nothing left to do.
    let r = n.cap(&["reset"]);
    assert_eq!(r.status, 0);
    assert!(json(&r.stdout)["writes"].as_array().unwrap().is_empty());
}

#[test]
fn cap_mem_enables_and_sets_the_dram_limit() {
    let n = Node::new("intel-2s");
    let r = n.cap(&["mem", "30", "--socket", "0"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(
        n.file("sys/class/powercap/intel-rapl:0/intel-rapl:0:0/constraint_0_power_limit_uw"),
        "30000000"
    );
    assert_eq!(n.file("sys/class/powercap/intel-rapl:0/intel-rapl:0:0/enabled"), "1");
    n.cap(&["reset"]);
    assert_eq!(
        n.file("sys/class/powercap/intel-rapl:0/intel-rapl:0:0/enabled"),
        "0",
        "the enable is restored too"
    );
}

#[test]
fn cap_node_prints_the_allocation_and_refuses_what_the_node_cannot_reach() {
    let n = Node::new("intel-2s");
    let r = n.cap(&["node", "250", "--interval", "50ms"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let doc = json(&r.stdout);
    assert_eq!(doc["policy"], "proportional");
    assert_eq!(doc["node_cap_watts"], 250.0);
    let writes = doc["writes"].as_array().unwrap();
    assert_eq!(writes.len(), 4, "two packages and two DRAM limits: {writes:?}");
    let total: f64 = writes.iter().map(|w| w["requested_watts"].as_f64().unwrap()).sum();
    let uncappable = doc["uncappable_watts"].as_f64().unwrap();
    assert!((total + uncappable - 250.0).abs() < 0.01, "{total} + {uncappable}");
    // The limits read back make the cap asked for (RAPL rounds to its power unit).
    let read_back = doc["node_read_back_watts"].as_f64().unwrap();
    assert!((read_back - 250.0).abs() < 1.0, "{read_back}");
    // cap show: the cap in force within the node's range.
    let node = json(&n.cap(&["show"]).stdout)["node"].clone();
    let (min, max) = (node["min_watts"].as_f64().unwrap(), node["max_watts"].as_f64().unwrap());
    let in_force = node["cap_in_force_watts"].as_f64().unwrap();
    assert!(min < in_force && in_force < max, "{node}");

    let before = n.snapshot();
    // Below reach: refused with the minimum, nothing changed.
    let r = n.cap(&["node", "50", "--interval", "50ms"]);
    assert_eq!(r.status, 1);
    assert!(
        r.stderr.contains("below the lowest this node can reach") && r.stderr.contains("--clamp"),
        "{}",
        r.stderr
    );
    assert_eq!(n.snapshot(), before);
    // --clamp applies the minimum instead.
    let r = n.cap(&["node", "50", "--clamp", "--interval", "50ms"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(json(&r.stdout)["clamped"], true);
}

#[test]
fn cap_node_names_what_it_could_not_measure() {
    let n = Node::new("intel-2s");
    // Nobody animates the root: every counter stands still, so the split is made without the
    // measured power, and the document says which domains were not measured.
    let r = n.cap(&["node", "250", "--interval", "50ms", "--dry-run"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let warnings = json(&r.stdout)["warnings"].to_string();
    for d in ["package-0", "package-1", "memory-0", "memory-1"] {
        assert!(warnings.contains(&format!("{d}: the energy counter")), "{d}: {warnings}");
    }
    assert!(warnings.contains("has not moved"), "{warnings}");
    // Animated, the node is measured and nothing is said.
    let _sim = animate(n.root.path());
    let r = n.cap(&["node", "250", "--interval", "50ms", "--dry-run"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(json(&r.stdout)["warnings"], serde_json::json!([]), "{}", r.stdout);
}

#[test]
fn cap_node_variorum_splits_evenly_over_sockets() {
    let n = Node::new("intel-2s");
    let r = n.cap(&["node", "201", "--policy", "variorum", "--interval", "50ms"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let doc = json(&r.stdout);
    let writes: Vec<f64> = doc["writes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["requested_watts"].as_f64().unwrap())
        .collect();
    assert_eq!(writes, vec![100.0, 100.0]);
}

#[test]
fn dry_run_prints_the_writes_and_changes_nothing() {
    let n = Node::new("intel-2s");
    let before = n.snapshot();
    let r = n.cap(&["node", "250", "--dry-run", "--interval", "50ms"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let doc = json(&r.stdout);
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["writes"].as_array().unwrap().len(), 4);
    assert!(doc["writes"][0]["read_back_watts"].is_null());
    assert_eq!(n.snapshot(), before);
    assert!(!n.state.path().join("journal.json").exists(), "a dry run records nothing");
}

#[test]
fn reset_dry_run_names_what_it_would_restore_and_a_bad_format_changes_nothing() {
    let n = Node::new("intel-2s");
    let r = n.cap(&["socket", "100", "--socket", "1"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let journal = std::fs::read_to_string(n.state.path().join("journal.json")).unwrap();

    let r = n.cap(&["reset", "--dry-run"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let doc = json(&r.stdout);
    let writes = doc["writes"].as_array().unwrap();
    assert!(!writes.is_empty());
    let long = writes.iter().find(|w| w["constraint"] == "long_term").unwrap();
    assert_eq!((long["domain"].as_str(), long["index"].as_u64()), (Some("package"), Some(1)));
    assert_eq!(long["previous_watts"], 100.0);
    assert_eq!(long["requested_watts"], 150.0);
    assert_eq!(n.file(PKG1), "100000000", "a dry run writes nothing");

    // A format that cannot describe the change is refused before anything is restored.
    let root = n.root.path().to_str().unwrap();
    let state = n.state.path().to_str().unwrap();
    for args in [["cap", "reset"], ["cap", "show"]] {
        let mut all = args.to_vec();
        all.extend(["--root", root, "--state-dir", state, "--format", "prometheus"]);
        let r = run(&all);
        assert_eq!(r.status, 1, "{args:?}");
        assert!(r.stderr.contains("use table or json"), "{}", r.stderr);
    }
    assert_eq!(n.file(PKG1), "100000000");
    assert_eq!(std::fs::read_to_string(n.state.path().join("journal.json")).unwrap(), journal);

    // Neither a dry run nor `show` creates a state directory.
    let missing = n.state.path().join("not-yet");
    for args in [&["cap", "reset", "--dry-run"][..], &["cap", "show", "--format", "json"]] {
        let mut all = args.to_vec();
        all.extend(["--root", root, "--state-dir", missing.to_str().unwrap()]);
        let r = run(&all);
        assert_eq!(r.status, 0, "{args:?}: {}", r.stderr);
    }
    assert!(!missing.exists());
}

#[test]
fn bad_input_is_one_line_naming_the_domain_and_range_and_nothing_changes() {
    let n = Node::new("intel-2s");
    let before = n.snapshot();
    let cases: &[(&[&str], &str)] = &[
        (&["node", "-5"], "not a valid power limit"),
        (&["node", "nan"], "not a valid power limit"),
        (&["node", "1e12", "--interval", "50ms"], "above the most this node can draw"),
        (
            &["socket", "-5"],
            "package-0 long_term: -5 is not a valid power limit; allowed [37.5 W .. 150 W]",
        ),
        (&["socket", "1e12"], "package-0 long_term: 1e12 W is outside the allowed range"),
        (&["socket", "abc"], "invalid power \"abc\""),
        (
            &["socket", "100", "--socket", "7"],
            "package-7 does not exist on this node; it has package-0, package-1",
        ),
        (&["gpu", "300"], "no GPU domain"),
        (&["node", "300", "--policy", "greedy"], "unknown policy"),
        // What no hardware should get: below the minimum (a quarter of the maximum when the
        // hardware reports none), a window RAPL cannot hold, a short-term limit under the
        // long-term one.
        (
            &["socket", "0.0001"],
            "package-0 long_term: 0.0001 W is below the allowed range [37.5 W .. 150 W] (the minimum is a quarter of the 150 W maximum, as the hardware reports none); give at least 37.5 W, or clamp to apply that minimum (`--clamp`",
        ),
        (&["mem", "5"], "memory-0 long_term: 5 W is below the allowed range [10 W .. 40 W]"),
        (
            &["socket", "100", "--time-window", "100h"],
            "package-0 long_term: a time window of 100 h cannot be held: the hardware would set 90.97 h",
        ),
        (
            &["socket", "100", "--time-window", "10000h"],
            "a time window of 10000 h is outside what the hardware can hold, [976 µs .. 509.4 h]",
        ),
        (
            &["socket", "100", "--short-term", "90"],
            "package-0: short_term limit 90 W (asked) is below the long_term limit 100 W (asked)",
        ),
        (&["socket", "100", "--short-term", "50"], "short_term: 50 W is below the allowed range"),
    ];
    for (args, expect) in cases {
        let r = n.cap(args);
        assert_eq!(r.status, 1, "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(expect), "{args:?}: {}", r.stderr);
    }
    assert_eq!(n.snapshot(), before);
}

#[test]
fn clamp_applies_the_lowest_limit_instead_of_refusing() {
    let n = Node::new("intel-2s");
    let r = n.cap(&["socket", "0.0001", "--socket", "1", "--clamp"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let doc = json(&r.stdout);
    assert_eq!(doc["clamped"], true);
    assert_eq!(doc["writes"][0]["requested_watts"], 37.5);
    assert_eq!((n.file(PKG0).as_str(), n.file(PKG1).as_str()), ("150000000", "37500000"));
    // Within the range, --clamp changes nothing.
    let r = n.cap(&["socket", "120", "--socket", "1", "--clamp"]);
    assert_eq!(json(&r.stdout)["clamped"], false, "{}", r.stderr);
    assert_eq!(n.file(PKG1), "120000000");
}

#[test]
fn a_node_cap_where_nothing_can_be_capped_says_so_and_no_range() {
    for profile in ["amd-2s", "cray-ex"] {
        let n = Node::new(profile);
        for policy in ["proportional", "uniform", "variorum"] {
            let r = n.cap(&["node", "1000", "--policy", policy, "--interval", "50ms"]);
            assert_eq!(r.status, 1, "{profile} {policy}: {}", r.stderr);
            assert!(
                r.stderr.starts_with("error: nothing on this node can be capped"),
                "{profile} {policy}: {}",
                r.stderr
            );
        }
        assert!(json(&n.cap(&["show"]).stdout)["node"].is_null(), "{profile}");
    }
}

#[test]
fn a_read_only_constraint_is_refused_and_a_later_write_rolls_back() {
    use std::os::unix::fs::PermissionsExt;
    let n = Node::new("intel-2s");
    // package-1's long-term limit is read-only (locked by the firmware).
    std::fs::set_permissions(n.root.path().join(PKG1), std::fs::Permissions::from_mode(0o444))
        .unwrap();
    let r = n.cap(&["socket", "110"]);
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("package-1 long_term is locked"), "{}", r.stderr);
    assert_eq!(n.file(PKG0), "150000000", "validation runs before any write");
}

#[test]
fn a_crash_left_in_the_journal_is_repaired_at_the_next_start() {
    let n = Node::new("intel-2s");
    // A run that recorded the original, wrote, and died before finishing.
    let journal = serde_json::json!({
        "version": 1,
        "in_progress": {"started_unix_us": 1, "pid": 999999, "via": "powerstack cap socket 60"},
        "entries": [{
            "key": {"provider": "powercap", "domain": "package-0", "constraint": "long_term"},
            "source": "intel-rapl:0",
            "original": {"limit_watts": 150.0, "time_window_s": 0.999424, "enabled": true},
            "last_written": null
        }]
    });
    std::fs::write(n.state.path().join("journal.json"), journal.to_string()).unwrap();
    std::fs::write(n.root.path().join(PKG0), "60000000\n").unwrap();
    let show = json(&n.cap(&["show"]).stdout);
    assert!(
        show["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("interrupted"))
    );
    let r = n.cap(&["socket", "130", "--socket", "1"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let doc = json(&r.stdout);
    assert!(doc["recovered"][0].as_str().unwrap().contains("package-0 long_term"), "{doc}");
    assert_eq!(n.file(PKG0), "150000000");
    assert_eq!(n.file(PKG1), "130000000");
}

#[test]
fn the_sim_honours_a_cap_written_by_the_cli() {
    let n = Node::new("intel-2s");
    let root = n.root.path().to_str().unwrap();
    let r = n.cap(&["socket", "80", "--socket", "0"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let sim = animate(Path::new(root));
    let r = run(&["power", "--root", root, "--interval", "1s", "--format", "json"]);
    drop(sim);
    let doc = json(&r.stdout);
    let pkg0 = doc["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["domain"] == "package" && d["index"] == 0)
        .unwrap();
    let w = pkg0["power_watts"].as_f64().unwrap();
    assert!(w <= 80.0 * 1.01 && w > 70.0, "package-0 draws {w} W under an 80 W cap");
}

#[test]
fn a_limit_the_hardware_rounds_is_accepted_and_shown_rounded_at_once() {
    use std::io::BufRead;
    let n = Node::new("intel-2s");
    // Ticks ten seconds apart: only the simulator's watch on the limit files can answer at once.
    let mut child = Command::cargo_bin("powerstack")
        .unwrap()
        .args(["sim", "run", "--tick", "10s", n.root.path().to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    let stderr = child.stderr.take().unwrap();
    std::io::BufReader::new(stderr).read_line(&mut said).unwrap();
    let _sim = Animated(child);
    assert!(said.contains("animating"), "{said}");
    // 90.06 W is no whole number of RAPL's 1/8 W power units: the register holds 90 W. The
    // read-back may come before the simulator's answer or after: either is the value written,
    // within what the hardware rounds.
    let r = n.cap(&["socket", "90.06", "--socket", "0"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let back = json(&r.stdout)["writes"][0]["read_back_watts"].as_f64().unwrap();
    assert!(back == 90.0 || back == 90.06, "read back {back} W");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    while n.file(PKG0) != "90000000" && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(n.file(PKG0), "90000000", "not answered before the next tick");
}

fn gpu_cap_of(doc: &Value, index: u64) -> f64 {
    doc["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["domain"] == "gpu" && c["index"] == index)
        .unwrap()["limit_watts"]
        .as_f64()
        .unwrap()
}

#[test]
fn cap_gpu_on_nvidia_goes_through_nvml_and_is_honoured_and_reset() {
    let n = Node::new("nvidia-4gpu");
    let r = n.cap(&["gpu", "300", "--gpu", "1"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let doc = json(&r.stdout);
    assert_eq!(doc["writes"].as_array().unwrap().len(), 1);
    assert_eq!(doc["writes"][0]["provider"], "nvml");
    assert_eq!(doc["writes"][0]["read_back_watts"], 300.0);
    assert_eq!(doc["writes"][0]["previous_watts"], 700.0);
    // gpu-1 is the second GPU in PCI order (0000:31:00.0), whatever NVML's own index is.
    assert!(doc["writes"][0]["source"].as_str().unwrap().starts_with("0000:31:00.0"), "{doc}");
    let show = json(&n.cap(&["show"]).stdout);
    assert_eq!(gpu_cap_of(&show, 1), 300.0);
    assert_eq!(gpu_cap_of(&show, 0), 700.0);

    // The simulated GPU draws under its cap.
    let root = n.root.path().to_str().unwrap();
    let sim = animate(Path::new(root));
    let p = run(&["power", "--root", root, "--interval", "1s", "--format", "json"]);
    drop(sim);
    let doc = json(&p.stdout);
    let gpu = |i: u64| {
        doc["domains"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["domain"] == "gpu" && d["index"] == i)
            .unwrap()["power_watts"]
            .as_f64()
            .unwrap()
    };
    assert!(gpu(1) <= 300.0 * 1.01, "gpu-1 draws {} W under a 300 W cap", gpu(1));
    assert!(gpu(0) > 350.0, "gpu-0 is uncapped: {}", gpu(0));

    let r = n.cap(&["reset"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(gpu_cap_of(&json(&n.cap(&["show"]).stdout), 1), 700.0);
}

#[test]
fn gpu_bad_input_names_the_gpu_and_range_and_changes_nothing() {
    let n = Node::new("nvidia-4gpu");
    let nvml = "var/lib/powerstack-sim/nvml";
    let limits =
        || (0..4).map(|g| n.file(&format!("{nvml}/gpu{g}/power_limit_mw"))).collect::<Vec<_>>();
    let before = limits();
    let cases: &[(&[&str], &str)] = &[
        (
            &["gpu", "300", "--gpu", "9"],
            "gpu-9 does not exist on this node; it has gpu-0, gpu-1, gpu-2, gpu-3",
        ),
        (&["gpu", "100"], "gpu-0 cap: 100 W is below the allowed range [200 W .. 700 W]"),
        (
            &["gpu", "5000", "--gpu", "2"],
            "gpu-2 cap: 5000 W is outside the allowed range [200 W .. 700 W]",
        ),
        (&["gpu", "nan"], "gpu-0 cap: NaN is not a valid power limit"),
        (&["gpu", "-5"], "gpu-0 cap: -5 is not a valid power limit"),
    ];
    for (args, expect) in cases {
        let r = n.cap(args);
        assert_eq!(r.status, 1, "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(expect), "{args:?}: {}", r.stderr);
    }
    assert_eq!(limits(), before);
}

#[test]
fn a_node_cap_on_nvidia_4gpu_includes_the_gpus() {
    let n = Node::new("nvidia-4gpu");
    let r = n.cap(&["node", "1500", "--interval", "50ms"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let doc = json(&r.stdout);
    let writes = doc["writes"].as_array().unwrap();
    let gpus: Vec<&Value> = writes.iter().filter(|w| w["domain"] == "gpu").collect();
    assert_eq!(gpus.len(), 4, "{writes:?}");
    assert!(gpus.iter().all(|w| w["provider"] == "nvml"));
    let total: f64 = writes.iter().map(|w| w["requested_watts"].as_f64().unwrap()).sum();
    let uncappable = doc["uncappable_watts"].as_f64().unwrap();
    assert!((total + uncappable - 1500.0).abs() < 0.05, "{total} + {uncappable}");
    // Proportional to the maxima: every GPU (700 W max) gets 700/150 of a package's share.
    let pkg = writes.iter().find(|w| w["domain"] == "package").unwrap()["requested_watts"]
        .as_f64()
        .unwrap();
    let g = gpus[0]["requested_watts"].as_f64().unwrap();
    assert!((g / pkg - 700.0 / 150.0).abs() < 0.01, "{g} / {pkg}");
}

#[test]
fn amd_mi250x_caps_its_eight_gcds_through_hwmon() {
    let n = Node::new("amd-mi250x");
    let r = n.cap(&["gpu", "250", "--gpu", "5"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let doc = json(&r.stdout);
    assert_eq!(doc["writes"][0]["provider"], "hwmon");
    assert_eq!(doc["writes"][0]["read_back_watts"], 250.0);
    let show = json(&n.cap(&["show"]).stdout);
    let gpus = show["controls"].as_array().unwrap().iter().filter(|c| c["domain"] == "gpu").count();
    assert_eq!(gpus, 8, "per-GCD caps, not the four modules");
    assert_eq!(gpu_cap_of(&show, 5), 250.0);
    // A node cap: the CPU has no writable limit here, so the GCDs carry the cut after the
    // uncappable power (board, memory, CPU) is charged.
    let sim = animate(n.root.path());
    let r = n.cap(&["node", "2000", "--interval", "300ms"]);
    drop(sim);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let doc = json(&r.stdout);
    let writes = doc["writes"].as_array().unwrap();
    assert_eq!(writes.len(), 8);
    // pm_counters' node figure minus the GCDs: CPU (185 W), memory (40 W) and 150 W of board.
    let uncappable = doc["uncappable_watts"].as_f64().unwrap();
    assert!((uncappable - 375.0).abs() < 15.0, "{uncappable}");
    let total: f64 = writes.iter().map(|w| w["requested_watts"].as_f64().unwrap()).sum();
    assert!((total + uncappable - 2000.0).abs() < 0.05, "{total} + {uncappable}");
    let r = n.cap(&["reset"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let show = json(&n.cap(&["show"]).stdout);
    assert!((0..8).all(|g| gpu_cap_of(&show, g) == 560.0));
}

#[test]
fn reset_ends_a_standing_node_cap_left_by_an_agent_and_a_dry_run_does_not() {
    let n = Node::new("intel-2s");
    assert_eq!(n.cap(&["socket", "100", "--socket", "1"]).status, 0);
    let standing = n.state.path().join("node-cap.json");
    std::fs::write(&standing, "{}").unwrap();
    let r = n.cap(&["reset", "--dry-run"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(standing.exists(), "a dry run removes nothing");
    let r = n.cap(&["reset"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(!standing.exists(), "the next agent would cap the node again");
}
