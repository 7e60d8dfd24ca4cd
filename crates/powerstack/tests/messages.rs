//! Error messages name what failed as one types or reads it: the `--format` value as typed, watts
//! as a person writes them, the limit file that could not be read, the time window refused.

mod common;

use common::{ps, sim_create};

/// A simulated intel-2s root and a state directory beside it: `(dir, root, state)`.
fn node() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    sim_create("intel-2s", &root);
    let state = dir.path().join("state").display().to_string();
    (dir, root.display().to_string(), state)
}

/// The one error line of `powerstack ARGS`, which must fail with status 1.
fn error(args: &[&str]) -> String {
    let out = ps(args);
    assert_eq!(out.code, Some(1), "{args:?}: {}", out.stderr);
    out.stderr.lines().last().unwrap_or_default().to_string()
}

#[test]
fn a_format_a_command_cannot_print_is_named_as_typed() {
    let (_dir, root, state) = node();
    let r = root.as_str();
    for (args, format) in [
        (vec!["domains", "--root", r], "prometheus"),
        (vec!["topology", "--root", r], "variorum-flat"),
        (vec!["cap", "show", "--root", r, "--state-dir", &state], "prometheus"),
    ] {
        let mut all = args.clone();
        all.extend(["--format", format]);
        let e = error(&all);
        assert!(e.starts_with(&format!("error: --format {format} is not available for")), "{e}");
    }
}

#[test]
fn watts_and_time_windows_are_said_as_a_person_writes_them() {
    let (_dir, root, state) = node();
    let at = ["--root", root.as_str(), "--state-dir", state.as_str()];
    let cap = |args: &[&str]| error(&[&["cap"], args, &at].concat());
    let e = cap(&["node", "1e308"]);
    assert!(e.starts_with("error: node cap 1e308 W is above the most this node can draw"), "{e}");
    let e = cap(&["socket", "1e308"]);
    assert!(e.contains(": 1e308 W is outside the allowed range"), "{e}");
    let e = cap(&["socket", "100", "--time-window", "0s"]);
    assert!(
        e.ends_with(
            "a time window of 0 s is not positive: give a positive duration (`1s`, `28ms`)"
        ),
        "{e}"
    );
    assert!(!e.contains("power limit"), "{e}");
}

#[test]
fn a_limit_file_that_cannot_be_read_is_named() {
    let (_dir, root, state) = node();
    let file = format!("{root}/sys/class/powercap/intel-rapl:0/constraint_0_power_limit_uw");
    std::fs::write(&file, "garbage\n").unwrap();
    let e = error(&["cap", "socket", "100", "--root", &root, "--state-dir", &state]);
    assert!(
        e.starts_with(&format!(
            "error: package-0 long_term cannot be changed: its limits cannot be read: malformed content in {file}"
        )),
        "{e}"
    );
}

#[test]
fn an_io_error_is_said_once_with_the_path_and_the_action() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let under = file.join("root");
    let e = error(&["sim", "create", "--profile", "intel-2s", under.to_str().unwrap()]);
    assert!(e.contains(&format!("cannot access {}", under.display())), "{e}");
    assert_eq!(e.matches("Not a directory (os error 20)").count(), 1, "{e}");
}
