//! The state directory through the built binary: one lock held by whoever may write (the agent
//! for its life), nothing created by a command that fails, and a journal bound to its node.

mod common;

use std::path::{Path, PathBuf};

use common::{bin, controls, ps, sim_create, start_agent, unix_post};

const PKG0: &str = "sys/class/powercap/intel-rapl:0/constraint_0_power_limit_uw";

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A simulated root, and a state directory path next to it (not created).
struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new(profile: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        sim_create(profile, &dir.path().join("root"));
        Node { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `powerstack ARGS --root ROOT --state-dir STATE --format json`.
    fn ps(&self, args: &[&str]) -> common::Out {
        let root = self.root();
        let state = self.state();
        let mut all = args.to_vec();
        all.extend_from_slice(&["--root", s(&root), "--state-dir", s(&state), "--format", "json"]);
        ps(&all)
    }

    /// The agent's arguments on this node, with its own socket.
    fn agent_args(&self, name: &str) -> Vec<String> {
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        [
            "--root",
            s(&self.root()),
            "--state-dir",
            s(&self.state()),
            "--socket",
            s(&self.dir.path().join(name)),
            "--listen",
            "127.0.0.1:0",
            "--allow-user",
            &uid.to_string(),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    }

    fn agent(&self, name: &str) -> Result<common::Agent, common::Out> {
        let args = self.agent_args(name);
        start_agent(bin(), &args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

#[test]
fn a_second_agent_on_the_same_state_dir_is_refused_before_it_touches_anything() {
    let n = Node::new("intel-2s");
    let a = n.agent("a.sock").unwrap_or_else(|o| panic!("agent A: {}", o.stderr));
    let cap = r#"{"domain":"package","index":0,"constraint":"long_term","limit_watts":95}"#;
    let (status, body) = unix_post(&n.dir.path().join("a.sock"), "/v1/caps", cap);
    assert_eq!(status, 200, "{body}");
    assert_eq!(read(&n.root().join(PKG0)), "95000000");
    let journal = std::fs::read(n.state().join("journal.json")).unwrap();

    // Another socket and port, the same state directory: refused, naming the holder.
    let b = n.agent("b.sock");
    let out = match b {
        Ok(_) => panic!("a second agent started on the same state directory"),
        Err(out) => out,
    };
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains(&format!("held by the powerstack agent (pid {})", a.pid())));
    assert_eq!(read(&n.root().join(PKG0)), "95000000", "B restored nothing");
    assert_eq!(std::fs::read(n.state().join("journal.json")).unwrap(), journal);

    // A command is refused at once too, and told where the agent takes caps.
    for args in [&["cap", "socket", "100"][..], &["cap", "reset"], &["pools", "reset"]] {
        let out = n.ps(args);
        assert_eq!(out.code, Some(1), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.contains("/v1/caps"), "{}", out.stderr);
        assert!(out.stderr.contains(s(&n.dir.path().join("a.sock"))), "{}", out.stderr);
    }
    assert_eq!(read(&n.root().join(PKG0)), "95000000");
    assert_eq!(std::fs::read(n.state().join("journal.json")).unwrap(), journal);
    // Reading needs no lock.
    assert_eq!(n.ps(&["cap", "show"]).code, Some(0));
    assert_eq!(n.ps(&["pools", "show"]).code, Some(0));

    assert!(a.stop().success());
    assert_eq!(read(&n.root().join(PKG0)), "150000000", "A restored its cap at exit");
}

#[test]
fn a_command_that_fails_or_has_nothing_to_do_creates_no_state_directory() {
    let n = Node::new("intel-2s");
    let before = controls(&n.root());
    let bad_pools = n.dir.path().join("bad.toml");
    std::fs::write(&bad_pools, "[[exclusive]]\nname = \"x\"\ncpus = \"99\"\n").unwrap();
    for args in [
        &["cap", "socket", "9999"][..],
        &["cap", "node", "1", "--interval", "10ms"],
        &["pools", "apply", s(&bad_pools)],
    ] {
        let out = n.ps(args);
        assert_eq!(out.code, Some(1), "{args:?}: {}", out.stderr);
        assert!(!n.state().exists(), "{args:?} created {}", n.state().display());
    }
    for args in [&["cap", "reset"][..], &["pools", "reset"], &["cap", "reset", "--dry-run"]] {
        let out = n.ps(args);
        assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
        assert!(!n.state().exists(), "{args:?} created {}", n.state().display());
    }
    // An agent with no power source under its root.
    let empty = tempfile::tempdir().unwrap();
    let out = ps(&[
        "agent",
        "--root",
        s(empty.path()),
        "--state-dir",
        s(&n.state()),
        "--socket",
        "",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("no readable power source"), "{}", out.stderr);
    assert!(!n.state().exists(), "the failed agent created {}", n.state().display());
    assert_eq!(controls(&n.root()), before);
}

#[test]
fn a_journal_written_on_another_node_is_not_restored_here() {
    // The journal of a simulated intel-offline node, whose packages' original is 350 W...
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out =
        ps(&["cap", "socket", "300", "--simulate", "intel-offline", "--state-dir", s(&state)]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // ... is not put onto an intel-2s node (150 W at most).
    let n = Node::new("intel-2s");
    let before = controls(&n.root());
    let journal = std::fs::read(state.join("journal.json")).unwrap();
    let out = ps(&["cap", "reset", "--root", s(&n.root()), "--state-dir", s(&state)]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("belongs to another node"), "{}", out.stderr);
    assert!(out.stderr.contains("SIMULATED intel-offline"), "{}", out.stderr);
    assert!(out.stderr.contains("no longer exists"), "{}", out.stderr);
    assert_eq!(controls(&n.root()), before, "nothing written");
    assert_eq!(std::fs::read(state.join("journal.json")).unwrap(), journal);
    let dry = ps(&["cap", "reset", "--dry-run", "--root", s(&n.root()), "--state-dir", s(&state)]);
    assert_eq!(dry.code, Some(1), "{}", dry.stdout);

    // A root that still exists is named, and restoring there works.
    let other = Node::new("intel-2s");
    assert_eq!(other.ps(&["cap", "socket", "90"]).code, Some(0));
    let out =
        ps(&["cap", "socket", "100", "--root", s(&n.root()), "--state-dir", s(&other.state())]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let there = other.root().canonicalize().unwrap();
    assert!(out.stderr.contains(&format!("--root {}", there.display())), "{}", out.stderr);
    assert_eq!(controls(&n.root()), before);
    assert_eq!(other.ps(&["cap", "reset"]).code, Some(0));
    assert_eq!(read(&other.root().join(PKG0)), "150000000");
}

#[test]
fn a_simulated_node_keeps_its_journal_under_its_own_root() {
    let n = Node::new("intel-2s");
    let root = n.root();
    let out = ps(&["cap", "socket", "120", "--root", s(&root), "--format", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let journal = root.join("var/lib/powerstack/journal.json");
    assert!(journal.is_file(), "no journal at {}", journal.display());
    let out = ps(&["cap", "reset", "--root", s(&root), "--format", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(read(&root.join(PKG0)), "150000000");
}
