//! The scheduler hooks of `deploy/` (Slurm's PrologSlurmctld/EpilogSlurmctld, Flux's
//! job-manager prolog/epilog), through their shell tests in `deploy/tests`: a fake `powerstack`
//! (and `flux`) first in PATH records what each hook runs.

use std::path::PathBuf;
use std::process::Command;

fn run_shell_test(name: &str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("deploy/tests").join(name);
    let out = Command::new("bash").arg(&script).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name} failed:\n{stdout}{stderr}");
    let last = stdout.lines().last().unwrap_or("");
    assert!(last.ends_with(" passed, 0 failed"), "{name}: {stdout}{stderr}");
    assert!(!last.starts_with("0 passed"), "{name} ran no check");
}

#[test]
fn slurm_hooks() {
    run_shell_test("test-slurm-hooks.sh");
}

#[test]
fn flux_hooks() {
    run_shell_test("test-flux-hooks.sh");
}
