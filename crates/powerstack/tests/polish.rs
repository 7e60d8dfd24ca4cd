//! What a person reads: the help's summary names every part, a simulated root is said to be
//! simulated in every format (and on stderr, as `--simulate` says it), a source is not named
//! twice, Prometheus values carry no arithmetic noise, and `up` redraws its table in place on a
//! terminal.

mod common;

use std::path::Path;
use std::process::Command;

use common::{bin, run};

fn sim_root(dir: &Path, profile: &str) -> String {
    let root = dir.join(profile);
    let (code, _, err) = run(&["sim", "create", "--profile", profile, root.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    root.to_str().unwrap().to_string()
}

#[test]
fn the_help_summary_names_every_part_of_the_tool() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    let summary = out.split("\n\n").next().unwrap().replace('\n', " ");
    for part in ["power", "energy", "caps", "pools", "job", "agent", "site", "Redfish", "simulated"]
    {
        assert!(summary.contains(part), "{part} not in {summary:?}");
    }
}

#[test]
fn a_simulated_root_is_said_to_be_simulated_by_energy_in_prometheus_and_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let root = sim_root(dir.path(), "intel-2s");
    let (code, out, err) = run(&["energy", "--root", &root, "--format", "prometheus"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("powerstack_simulated{profile=\"intel-2s\"} 1"), "{out}");
    assert!(err.starts_with("SIMULATED: ") && err.contains("simulated intel-2s node"), "{err}");
    let (_, _, err) = run(&["power", "--root", &root, "--interval", "50ms"]);
    assert!(err.starts_with("SIMULATED: "), "{err}");
    // A command refused after opening the node says its error alone.
    let (code, _, err) = run(&["domains", "--root", &root, "--format", "prometheus"]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn prometheus_values_carry_no_arithmetic_noise() {
    let (code, out, err) =
        run(&["power", "--simulate", "cray-ex", "--interval", "100ms", "--format", "prometheus"]);
    assert_eq!(code, 0, "{err}");
    let mut values = 0;
    for line in out.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        let decimals = value.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(decimals <= 6, "{line}");
        assert!(value.parse::<f64>().is_ok(), "{line}");
        values += 1;
    }
    assert!(values > 10, "{out}");
}

#[test]
fn a_source_that_names_its_provider_is_printed_once() {
    let (code, out, err) =
        run(&["power", "--simulate", "cray-ex", "--interval", "50ms", "--format", "table"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("  pm_counters energy\n"), "{out}");
    assert!(!out.contains("pm_counters pm_counters"), "{out}");
}

#[test]
fn up_redraws_its_table_in_place_on_a_terminal_and_not_when_piped() {
    let Ok(script) = which("script") else {
        eprintln!("SKIPPED: no `script` (util-linux) to give `up` a terminal");
        return;
    };
    let exe = env!("CARGO_BIN_EXE_powerstack");
    let up = format!("{exe} up --simulate intel-2s --no-site --listen '' --duration 3500ms");
    // `script` runs it on a pseudo-terminal and copies what it wrote.
    let out = Command::new(script).args(["-qec", &up, "/dev/null"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let redraws = text.matches("F\x1b[JPower over ").count();
    assert!(redraws >= 1, "no table redrawn in place:\n{text}");
    // Piped: plain tables, one after the other.
    let out = bin()
        .args(["up", "--simulate", "intel-2s", "--no-site", "--listen", "", "--duration", "2500ms"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains('\x1b'), "{text}");
    assert!(text.matches("Power over ").count() >= 2, "{text}");
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()).ok_or(())
}

#[test]
fn job_query_rows_come_in_the_order_of_the_command_line() {
    // Nobody answers (port 1; a name that does not resolve): the rows still come, in order.
    let csv = |args: &[&str]| {
        let base = ["job", "query", "-j", "x", "--port", "1", "--timeout", "1s", "--format", "csv"];
        let (_, out, err) = run(&[&base[..], args].concat());
        let hosts: Vec<String> =
            out.lines().skip(1).map(|l| l.split(',').next().unwrap().to_string()).collect();
        assert!(!hosts.is_empty(), "{err}");
        hosts
    };
    let order = csv(&["--agents", "127.0.0.1:1", "--nodes", "nohost-b,nohost-a"]);
    assert_eq!(order, ["127.0.0.1", "nohost-b", "nohost-a", "TOTAL"]);
    let order = csv(&["--nodes", "nohost-b,nohost-a", "--agents", "127.0.0.1:1"]);
    assert_eq!(order, ["nohost-b", "nohost-a", "127.0.0.1", "TOTAL"]);
    // One node: its total says so in words that fit.
    let (_, out, _) =
        run(&["job", "query", "-j", "x", "--agents", "127.0.0.1:1", "--format", "csv"]);
    assert!(out.lines().last().unwrap().ends_with(",results from 0 of 1 node"), "{out}");
}

#[test]
fn sim_create_help_lists_every_profile_and_a_directory_in_use_is_refused() {
    let (code, profiles, _) = run(&["sim", "profiles"]);
    assert_eq!(code, 0);
    let (_, help, _) = run(&["sim", "create", "--help"]);
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let names: Vec<&str> = profiles.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(names.len() >= 9, "{profiles}");
    for name in names {
        assert!(help.contains(name), "{name} not in `sim create --help`: {help}");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let (code, _, err) = run(&["sim", "create", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("is not empty") && err.lines().count() == 1, "{err}");
    assert_eq!(std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(), "mine");
}
