//! `powerstack sim cluster`: the shipped mixed trace on a small cluster, as JSON and a plot, and a
//! bad trace refused in one line.

use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

fn bin() -> Command {
    Command::cargo_bin("powerstack").expect("the powerstack binary is built")
}

fn mixed() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/traces/mixed.toml")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn every_policy_runs_as_json_and_is_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("power.svg");
    let out = bin()
        .args(["sim", "cluster", "--nodes", "16", "--trace", &mixed(), "--duration-s", "300"])
        .args(["--bound-schedule", "150:0.6", "--format", "json", "--plot"])
        .arg(&plot)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["nodes"], 16);
    assert_eq!(doc["bound_watts"].as_array().unwrap().len(), 2);
    let policies = doc["policies"].as_array().unwrap();
    let names: Vec<&str> = policies.iter().map(|p| p["policy"].as_str().unwrap()).collect();
    assert_eq!(names, ["uniform", "slurm", "priority", "dynamic"]);
    for p in policies {
        assert_eq!(p["cap_violations"], 0, "{p}");
        assert_eq!(p["cap_checks"], 3000, "{p}");
        assert!(p["work_done_s"].as_f64().unwrap() > 0.0);
        assert!(p.get("power_1s_watts").is_none());
    }
    assert_eq!(policies[0]["work_vs_uniform_percent"], 0.0);
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.contains("<svg") && svg.contains("dynamic") && svg.contains("bound"));
}

#[test]
fn one_policy_as_a_table() {
    let out = bin()
        .args(["sim", "cluster", "--nodes", "8", "--trace", &mixed(), "--duration-s", "60"])
        .args(["--policy", "dynamic", "--bound-watts", "4000", "--format", "table"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bound 4000 W") && text.contains("\ndynamic "), "{text}");
    assert!(!text.contains("\nuniform "));
}

#[test]
fn a_bad_trace_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(mixed()).unwrap().replacen("work_s = 120", "work_s = 0", 1);
    std::fs::write(&bad, text).unwrap();
    let out = bin().args(["sim", "cluster", "--trace"]).arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml: jobs[") && err.contains("work_s: must be a positive"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
