//! SIGKILL at every point of the writes of `cap node`, `pools apply` and the agent's start-up:
//! whatever was written, the next command puts back exactly the originals.
//!
//! The kill comes from the product's test hook (`POWERSTACK_TEST_KILL_AT_STEP=K`: the process
//! raises SIGKILL at its K-th step, each attribute written and each journal save being one), with
//! K drawn from a seeded generator, so every run kills at the same points and any point a run
//! reaches is a point the assertion must hold at.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{Out, bin, changed, controls, outcome, sim_create, start_agent, unix_post};

/// Kills per command.
const KILLS: usize = 50;

/// xorshift64*: the kill points, the same at every run.
struct Rng(u64);

impl Rng {
    /// A step from 1 to `max`.
    fn step(&mut self, max: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % max + 1
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A simulated intel-2s root and its state directory (not created).
struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Node {
        let dir = tempfile::tempdir().unwrap();
        sim_create("intel-2s", &dir.path().join("root"));
        Node { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `powerstack ARGS` on this node, killed at step `kill_at` when given.
    fn ps(&self, args: &[&str], kill_at: Option<u64>) -> Out {
        let mut cmd = bin();
        if let Some(k) = kill_at {
            cmd.env("POWERSTACK_TEST_KILL_AT_STEP", k.to_string());
        }
        let (root, state) = (self.root(), self.state());
        cmd.args(args).args(["--root", s(&root), "--state-dir", s(&state), "--format", "json"]);
        outcome(&mut cmd)
    }

    fn journal_entries(&self) -> usize {
        let Ok(text) = std::fs::read_to_string(self.state().join("journal.json")) else {
            return 0;
        };
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        doc["entries"].as_array().map_or(0, Vec::len) + doc["files"].as_array().map_or(0, Vec::len)
    }
}

/// Checks how a killed command ended: by the kill, or (a step past its last) normally.
fn killed_or_done(out: &Out, what: &str) -> bool {
    match (out.signal, out.code) {
        (Some(libc::SIGKILL), _) => true,
        (None, Some(0)) => false,
        _ => panic!("{what}: {:?} {:?}: {}", out.signal, out.code, out.stderr),
    }
}

/// Runs `kill` (the command under test, killed at a step) and then `undo` (killed at another
/// step, or not), then `undo` to the end, `KILLS` times: the controls are the originals after each.
fn kill_and_undo(n: &Node, max_step: u64, seed: u64, kill: &[&str], undo: &[&str]) {
    let before = controls(&n.root());
    let mut rng = Rng(seed);
    let mut killed = 0;
    for i in 0..KILLS {
        let k = rng.step(max_step);
        let out = n.ps(kill, Some(k));
        killed += usize::from(killed_or_done(&out, &format!("{kill:?} at step {k}")));
        // Half the time the undoing command is killed part way too.
        let k2 = rng.step(2 * max_step);
        if k2 <= max_step {
            killed_or_done(&n.ps(undo, Some(k2)), &format!("{undo:?} at step {k2}"));
        }
        let out = n.ps(undo, None);
        assert_eq!(out.code, Some(0), "#{i} ({kill:?} at step {k}): {}", out.stderr);
        let diff = changed(&before, &controls(&n.root()));
        assert!(diff.is_empty(), "#{i} ({kill:?} at {k}, {undo:?} at {k2}): {diff:#?}");
        assert_eq!(n.journal_entries(), 0, "#{i}: the journal is empty again");
    }
    assert!(killed >= KILLS / 4, "only {killed} of {KILLS} runs were killed: raise max_step");
}

/// Moves the root's RAPL energy counters (25 W each) every 2 ms until dropped, as the hardware
/// would, so that `cap node` measures at once instead of waiting for a counter that stands still
/// (which it reports missing after a second). Only the read-only counters are written, never a
/// control: the test plays the hardware's counters, and nothing races the commands' writes.
struct Counters {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Counters {
    fn start(root: &Path) -> Counters {
        use std::os::unix::fs::FileExt;
        use std::sync::atomic::Ordering;
        // Each counter goes on from the value the simulator wrote.
        let mut files: Vec<(std::fs::File, u64)> =
            std::fs::read_dir(root.join("sys/class/powercap"))
                .unwrap()
                .flatten()
                .map(|e| e.path().join("energy_uj"))
                .filter(|p| p.exists())
                .map(|p| {
                    let uj = std::fs::read_to_string(&p).unwrap().trim().parse().unwrap();
                    (std::fs::OpenOptions::new().write(true).open(p).unwrap(), uj)
                })
                .collect();
        assert!(!files.is_empty(), "no RAPL counters under {}", root.display());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                // The same width at every write: one in-place write a reader sees whole.
                for (f, uj) in &mut files {
                    *uj += 50_000;
                    f.write_all_at(format!("{uj:020}\n").as_bytes(), 0).unwrap();
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        Counters { stop, thread: Some(thread) }
    }
}

impl Drop for Counters {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn cap_node_killed_at_any_step_is_undone_by_the_next_cap_reset() {
    // A node cap on intel-2s: the journal's begin, three files (window, limit, enable) for each
    // of 4 domains, the journal's finish.
    let n = Node::new();
    let _counters = Counters::start(&n.root());
    kill_and_undo(
        &n,
        16,
        0x5eed_0001,
        &["cap", "node", "250", "--interval", "10ms"],
        &["cap", "reset"],
    );
}

#[test]
fn pools_apply_killed_at_any_step_is_undone_by_the_next_pools_reset() {
    let n = Node::new();
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/pools.toml");
    let dry = n.ps(&["pools", "apply", s(&example), "--dry-run"], None);
    let doc: serde_json::Value = serde_json::from_str(dry.stdout.trim()).unwrap();
    let writes = doc["writes"].as_array().unwrap().len() as u64;
    assert!(writes > 10, "{writes}");
    // The journal's begin, each write, the journal's finish, the configuration stored.
    kill_and_undo(
        &n,
        writes + 3,
        0x5eed_0002,
        &["pools", "apply", s(&example)],
        &["pools", "reset"],
    );
}

#[test]
fn an_agent_killed_at_any_step_of_its_start_is_undone_by_the_next_start() {
    let n = Node::new();
    let before = controls(&n.root());
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() }.to_string();
    let socket = n.dir.path().join("agent.sock");
    let (root, state) = (n.root(), n.state());
    let args = [
        "--root",
        s(&root),
        "--state-dir",
        s(&state),
        "--socket",
        s(&socket),
        "--listen",
        "",
        "--allow-user",
        &uid,
        // Ready at its first samples, a millisecond apart.
        "--rate-hz",
        "1000",
        "--buffer-samples",
        "1000",
    ];

    // An agent that capped the packages and the memory and died without restoring them.
    let agent = start_agent(bin(), &args).unwrap_or_else(|o| panic!("{}", o.stderr));
    for cap in
        [r#"{"domain":"package","limit_watts":100}"#, r#"{"domain":"memory","limit_watts":30}"#]
    {
        let (status, body) = unix_post(&socket, "/v1/caps", cap);
        assert_eq!(status, 200, "{body}");
    }
    drop(agent);
    let crashed = controls(&root);
    let journal = std::fs::read(state.join("journal.json")).unwrap();
    assert!(!changed(&before, &crashed).is_empty());

    let mut rng = Rng(0x5eed_0003);
    let mut killed = 0;
    for i in 0..KILLS {
        put_back(&crashed, &state, &journal);
        // Its start-up restore: three files for each of 4 limits, the journal's save.
        let k = rng.step(16);
        let mut cmd = bin();
        cmd.env("POWERSTACK_TEST_KILL_AT_STEP", k.to_string());
        match start_agent(cmd, &args) {
            Ok(agent) => assert!(agent.stop().success(), "#{i}: step {k}"),
            Err(out) => {
                assert_eq!(out.signal, Some(libc::SIGKILL), "#{i}: step {k}: {}", out.stderr);
                killed += 1;
            }
        }
        let agent = start_agent(bin(), &args).unwrap_or_else(|o| panic!("#{i}: {}", o.stderr));
        let diff = changed(&before, &controls(&root));
        assert!(diff.is_empty(), "#{i} (killed at step {k}): {diff:#?}");
        assert!(agent.stop().success());
        assert_eq!(n.journal_entries(), 0, "#{i}");
    }
    assert!(killed >= KILLS / 4, "only {killed} of {KILLS} starts were killed");
}

/// Puts the node back as the crashed agent left it: its files and its journal.
fn put_back(files: &BTreeMap<String, String>, state: &Path, journal: &[u8]) {
    for (path, text) in files {
        if std::fs::read_to_string(path).ok().as_ref() != Some(text) {
            std::fs::write(path, text).unwrap();
        }
    }
    std::fs::write(state.join("journal.json"), journal).unwrap();
}
