//! `powerstack pools ...` through the built binary on a simulated intel-2s node.

use std::path::PathBuf;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

struct Node {
    root: tempfile::TempDir,
    state: tempfile::TempDir,
}

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/pools.toml")
}

impl Node {
    fn new(profile: &str) -> Node {
        let root = tempfile::tempdir().unwrap();
        let out = Command::cargo_bin("powerstack")
            .unwrap()
            .args(["sim", "create", "--profile", profile, root.path().to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success());
        Node { root, state: tempfile::tempdir().unwrap() }
    }

    fn pools(&self, args: &[&str]) -> Run {
        let mut all = vec!["pools"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[
            "--root",
            self.root.path().to_str().unwrap(),
            "--state-dir",
            self.state.path().to_str().unwrap(),
            "--format",
            "json",
        ]);
        let out = Command::cargo_bin("powerstack")
            .unwrap()
            .env_remove("POWERSTACK_ROOT")
            .env_remove("POWERSTACK_STATE_DIR")
            .args(&all)
            .output()
            .unwrap();
        Run {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.path().join(rel)).unwrap().trim().to_string()
    }

    fn policy(&self, n: u32, attr: &str) -> String {
        self.read(&format!("sys/devices/system/cpu/cpufreq/policy{n}/{attr}"))
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn the_example_applies_shows_drifts_reapplies_and_resets() {
    let n = Node::new("intel-2s");
    let file = example();
    let file = file.to_str().unwrap();
    let boot_max6 = n.policy(6, "scaling_max_freq");

    // Dry run: the plan, nothing written.
    let r = n.pools(&["apply", file, "--dry-run"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let plan = json(&r.stdout);
    assert_eq!(plan["dry_run"], true);
    assert!(!plan["writes"].as_array().unwrap().is_empty());
    assert_eq!(n.policy(6, "scaling_max_freq"), boot_max6);

    let r = n.pools(&["apply", file]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let doc = json(&r.stdout);
    assert_eq!(doc["schema"], "powerstack.pools-change.v1");
    let pools: Vec<(String, String)> = doc["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["cpus"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        pools,
        vec![
            ("reserved".into(), "0,8".into()),
            ("shared".into(), "6-7,14-15".into()),
            ("fast".into(), "1-3,9-11".into()),
            ("latency".into(), "4-5,12-13".into())
        ]
    );
    assert_eq!(n.policy(6, "scaling_max_freq"), "2000000");

    // Show: the values in sysfs and no drift.
    let show = json(&n.pools(&["show"]).stdout);
    assert_eq!(show["configured"], true);
    assert!(show["drift"].as_array().unwrap().is_empty());
    let p1 = show["policies"].as_array().unwrap().iter().find(|p| p["policy"] == 1).unwrap();
    assert_eq!(p1["pool"], "fast");
    assert_eq!(p1["governor"], "performance");
    assert_eq!(p1["disabled_cstates"], serde_json::json!(["C6"]));

    // Again: nothing to write.
    assert!(json(&n.pools(&["apply", file]).stdout)["writes"].as_array().unwrap().is_empty());

    // Drift, shown, then re-applied.
    std::fs::write(
        n.root.path().join("sys/devices/system/cpu/cpufreq/policy6/scaling_max_freq"),
        "3000000\n",
    )
    .unwrap();
    let show = json(&n.pools(&["show"]).stdout);
    let drift = show["drift"].as_array().unwrap();
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0]["what"], "policy6 scaling_max_freq");
    assert_eq!(
        (drift[0]["actual"].as_str(), drift[0]["expected"].as_str()),
        (Some("3000000"), Some("2000000"))
    );
    assert_eq!(json(&n.pools(&["apply", file]).stdout)["writes"].as_array().unwrap().len(), 1);

    // Reset: boot values back, no configuration in force.
    let r = n.pools(&["reset"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(n.policy(6, "scaling_max_freq"), boot_max6);
    assert_eq!(n.policy(1, "scaling_governor"), "powersave");
    assert_eq!(json(&n.pools(&["show"]).stdout)["configured"], false);
}

#[test]
fn imperative_commands_follow_the_pool_rules() {
    let n = Node::new("intel-2s");
    let ok = |r: Run| {
        assert_eq!(r.status, 0, "{}", r.stderr);
        json(&r.stdout)
    };
    ok(n.pools(&["move", "0,8", "--to", "reserved"]));
    ok(n.pools(&["create", "batch", "--cpus", "4-7"]));
    ok(n.pools(&[
        "set-profile",
        "batch",
        "--max-khz",
        "2000000",
        "--epp",
        "power",
        "--cstate",
        "C6=off",
    ]));
    assert_eq!(n.policy(5, "scaling_max_freq"), "2000000");
    assert_eq!(n.read("sys/devices/system/cpu/cpu5/cpuidle/state3/disable"), "1");
    // Reserved -> exclusive directly is refused; through shared it works.
    let r = n.pools(&["move", "8", "--to", "batch"]);
    assert_eq!(r.status, 1);
    assert!(
        r.stderr.contains("cpu 8 cannot move from pool reserved to pool batch directly"),
        "{}",
        r.stderr
    );
    ok(n.pools(&["move", "8", "--to", "shared"]));
    ok(n.pools(&["move", "8", "--to", "batch"]));
    assert_eq!(n.policy(8, "scaling_max_freq"), "2000000");
    // Deleting the pool returns its CPUs to the shared pool (boot settings: no shared profile).
    let doc = ok(n.pools(&["delete", "batch"]));
    assert_eq!(doc["pools"][1]["cpus"], "1-15");
    assert_eq!(n.policy(5, "scaling_max_freq"), "3700000");
    assert_eq!(n.read("sys/devices/system/cpu/cpu5/cpuidle/state3/disable"), "0");
}

#[test]
fn bad_input_is_one_line_and_writes_nothing() {
    let n = Node::new("intel-2s");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[reserved\ncpus = \"0\"\n").unwrap();
    let before = n.policy(1, "scaling_max_freq");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["apply".into(), bad.display().to_string()], "bad.toml: pools file:"),
        (
            vec!["apply".into(), "/nonexistent/pools.toml".into()],
            "pools file /nonexistent/pools.toml cannot be opened: No such file",
        ),
        (vec!["move".into(), "3".into(), "--to".into(), "nope".into()], "no pool nope"),
        (vec!["move".into(), "3-1".into(), "--to".into(), "shared".into()], "invalid CPU list"),
        (
            vec!["set-profile".into(), "shared".into(), "--min-khz".into(), "9000000".into()],
            "outside the hardware range",
        ),
        (
            vec!["set-profile".into(), "shared".into(), "--epp".into(), "turbo".into()],
            "\"turbo\" is not one this CPU lists",
        ),
        (
            vec!["set-profile".into(), "reserved".into(), "--max-khz".into(), "2000000".into()],
            "reserved pool is never tuned",
        ),
        (vec!["delete".into(), "shared".into()], "cannot be deleted"),
        (vec!["create".into(), "x".into(), "--cpus".into(), "99".into()], "cpu 99 does not exist"),
    ];
    for (args, expect) in cases {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = n.pools(&refs);
        assert_eq!(r.status, 1, "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(expect), "{args:?}: {}", r.stderr);
    }
    assert_eq!(n.policy(1, "scaling_max_freq"), before);
}

#[test]
fn capabilities_report_the_drivers_and_features() {
    let n = Node::new("intel-2s");
    let r = n.pools(&["capabilities"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let doc = json(&r.stdout);
    let caps = doc["capabilities"].as_array().unwrap();
    let text = serde_json::to_string(caps).unwrap();
    assert!(text.contains("intel_pstate"), "{text}");
    assert!(text.contains("intel_idle"), "{text}");
    assert!(text.contains("balance_performance"), "{text}");
}
