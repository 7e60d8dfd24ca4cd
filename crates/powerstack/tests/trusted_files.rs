//! Files the agent and the CLI trust (the token, the configuration, the state directory and its
//! files) are refused, at start and with one line naming the file, its owner and the fix, when
//! someone other than the process's user or root owns or could write them.
//!
//! The tests run as root (here and in CI): the files are given to uid 65534 (`nobody`) to stand
//! for another user.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use common::{bin, ps, sim_create, start_agent};

/// uid 65534, or `None` (and the test says why it is skipped) when this process may not give
/// files away.
fn nobody() -> Option<u32> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: giving a file to another user needs root");
        return None;
    }
    Some(65534)
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A simulated root and the agent's arguments on it (no socket, loopback TCP).
fn node(dir: &Path) -> Vec<String> {
    let root = dir.join("root");
    sim_create("intel-2s", &root);
    ["--root", root.to_str().unwrap(), "--socket", "", "--listen", "127.0.0.1:0"]
        .iter()
        .map(|s| s.to_string())
        .chain(["--state-dir".into(), dir.join("state").display().to_string()])
        .collect()
}

fn refused(args: &[String], extra: &[&str]) -> String {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend_from_slice(extra);
    let out = match start_agent(bin(), &all) {
        Ok(agent) => {
            drop(agent);
            panic!("the agent started with {extra:?}");
        }
        Err(out) => out,
    };
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    out.stderr
}

#[test]
fn a_token_file_another_user_owns_or_could_replace_is_refused_at_start() {
    let Some(other) = nobody() else { return };
    let dir = tempfile::tempdir().unwrap();
    let args = node(dir.path());
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    chmod(&keys, 0o700);
    let token = keys.join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    chmod(&token, 0o600);
    let t = token.to_str().unwrap();

    // Mode 600, owned by nobody: nobody could set caps over TCP with it.
    chown(&token, other);
    let e = refused(&args, &["--token-file", t]);
    assert!(e.contains(&format!("token file {t} is owned by uid 65534")), "{e}");
    assert!(e.contains(&format!("chown root: {t} && chmod 600 {t}")), "{e}");
    chown(&token, 0);

    // In a directory another user owns, or anyone may write (even sticky, like /tmp).
    chown(&keys, other);
    let e = refused(&args, &["--token-file", t]);
    assert!(
        e.contains(&format!("token file {t}: its directory")) && e.contains("uid 65534"),
        "{e}"
    );
    chown(&keys, 0);
    chmod(&keys, 0o1777);
    let e = refused(&args, &["--token-file", t]);
    assert!(e.contains("writable by group or others (mode 1777)"), "{e}");
    chmod(&keys, 0o700);

    // Root's own token in root's own directory is taken.
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend(["--token-file", t]);
    let agent = start_agent(bin(), &all).unwrap_or_else(|o| panic!("{}", o.stderr));
    assert!(agent.stop().success());
}

#[test]
fn a_configuration_file_another_user_could_change_is_refused_at_start() {
    let Some(other) = nobody() else { return };
    let dir = tempfile::tempdir().unwrap();
    let args = node(dir.path());
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "allow_users = [\"nobody\"]\n").unwrap();
    chmod(&config, 0o644);
    let c = config.to_str().unwrap();
    chown(&config, other);
    let e = refused(&args, &["--config", c]);
    assert!(e.contains(&format!("configuration file {c} is owned by uid 65534")), "{e}");
    assert!(e.contains(&format!("chown root: {c} && chmod go-w {c}")), "{e}");
    chown(&config, 0);
    chmod(&config, 0o666);
    let e = refused(&args, &["--config", c]);
    assert!(e.contains("writable by group or others (mode 0666)"), "{e}");
}

#[test]
fn a_state_directory_or_file_another_user_could_change_is_refused_by_the_agent_and_the_cli() {
    let Some(other) = nobody() else { return };
    let dir = tempfile::tempdir().unwrap();
    let args = node(dir.path());
    let state = dir.path().join("state");
    let root = dir.path().join("root");
    // A first run makes the directory and its files, as root.
    let agent = start_agent(bin(), &args.iter().map(String::as_str).collect::<Vec<_>>())
        .unwrap_or_else(|o| panic!("{}", o.stderr));
    assert!(agent.stop().success());
    let cap = |sub: &str| {
        ps(&["cap", sub, "--root", root.to_str().unwrap(), "--state-dir", state.to_str().unwrap()])
    };
    let shown = cap("show");
    assert_eq!(shown.code, Some(0), "{}", shown.stderr);

    for (path, fix) in [(state.clone(), "chmod go-w"), (state.join("lock"), "chmod go-w")] {
        chown(&path, other);
        let e = refused(&args, &[]);
        let shown = path.display().to_string();
        assert!(e.contains(&format!("{shown} is owned by uid 65534")), "{e}");
        assert!(e.contains(&format!("chown root: {shown} && {fix} {shown}")), "{e}");
        let out = cap("reset");
        assert_ne!(out.code, Some(0), "cap reset took {shown}");
        assert!(out.stderr.contains(&format!("{shown} is owned by uid 65534")), "{}", out.stderr);
        chown(&path, 0);
    }
    chmod(&state, 0o777);
    let e = refused(&args, &[]);
    assert!(e.contains("state directory") && e.contains("(mode 0777)"), "{e}");
    // Showing the limits goes on, without the journal it cannot trust.
    let out = cap("show");
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("who set the limits is unknown: state directory"), "{said}");
    assert_ne!(cap("reset").code, Some(0));
}

#[test]
fn a_fifo_or_a_path_that_cannot_be_used_is_refused_at_once_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let args = node(dir.path());
    chmod(dir.path(), 0o700);
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let f = fifo.to_str().unwrap();
    // Opening a FIFO for reading waits for a writer: each of these would hang without one.
    for (flag, what) in [("--token-file", "token file"), ("--config", "configuration file")] {
        let e = refused(&args, &[flag, f]);
        assert!(e.contains(&format!("{what} {f} is not a regular file")), "{e}");
    }
    let root = dir.path().join("root");
    let state = dir.path().join("state");
    let (r, s) = (root.to_str().unwrap(), state.to_str().unwrap());
    let out = ps(&["pools", "apply", f, "--root", r, "--state-dir", s]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(
        out.stderr,
        format!(
            "error: pools file {f} is a FIFO, not a regular file: give the path of a regular file\n"
        )
    );
    let out = ps(&["site", "serve", "--config", f, "--state-dir", s]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("configuration file {f} is a FIFO")), "{}", out.stderr);

    // A socket or a state directory that cannot be made: the path and what failed.
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let sock = file.join("agent.sock");
    let mut with_socket: Vec<&str> = args.iter().map(String::as_str).collect();
    let at = with_socket.iter().position(|a| *a == "--socket").unwrap();
    with_socket[at + 1] = sock.to_str().unwrap();
    let out = start_agent(bin(), &with_socket).map(drop).unwrap_err();
    let e = out.stderr.lines().last().unwrap_or_default();
    assert!(e.starts_with(&format!("error: socket {}: cannot ", sock.display())), "{e}");
    assert!(e.ends_with("Not a directory (os error 20)"), "{e}");
    let out = ps(&["cap", "socket", "100", "--root", r, "--state-dir", file.to_str().unwrap()]);
    assert_eq!(
        out.stderr,
        format!(
            "error: state directory {}: exists and is not a directory: give the path of a directory\n",
            file.display()
        )
    );
}
