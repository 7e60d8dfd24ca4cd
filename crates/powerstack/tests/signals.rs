//! SIGINT and SIGTERM mean the same for every command that writes: stop before the next write,
//! roll back what was written, exit with 128 + the signal and one line. The signal is sent at a
//! known point: while `cap node` measures (`-v` says when it starts), or at a test-only pause
//! before the N-th write (`POWERSTACK_TEST_PAUSE_BEFORE_WRITE=N`). Nothing here is timed.
//! A reading stopped before it was printed (`power --interval 60s`) fails the same way.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use assert_cmd::cargo::CommandCargoExt;

/// How the command gets its signal.
#[derive(Clone, Copy, Debug)]
enum Sig {
    Int,
    /// SIGINT to a command started with SIGINT ignored, as a shell starts `powerstack ... &`.
    IntIgnored,
    Term,
}

impl Sig {
    const ALL: [Sig; 3] = [Sig::Int, Sig::IntIgnored, Sig::Term];

    fn number(self) -> i32 {
        match self {
            Sig::Int | Sig::IntIgnored => libc::SIGINT,
            Sig::Term => libc::SIGTERM,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Sig::Int | Sig::IntIgnored => "SIGINT",
            Sig::Term => "SIGTERM",
        }
    }
}

struct Node {
    root: tempfile::TempDir,
    state: tempfile::TempDir,
}

struct Outcome {
    status: Option<i32>,
    stderr: String,
}

impl Node {
    fn new() -> Node {
        let root = tempfile::tempdir().unwrap();
        let out = powerstack()
            .args(["sim", "create", "--profile", "intel-2s", root.path().to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success());
        Node { root, state: tempfile::tempdir().unwrap() }
    }

    /// `powerstack ARGS --root R --state-dir S --format json`, to completion.
    fn run(&self, args: &[&str]) -> Outcome {
        let out = powerstack().args(self.args(args)).output().unwrap();
        Outcome {
            status: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn args(&self, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(ToString::to_string).collect();
        for (k, v) in [("--root", self.root.path()), ("--state-dir", self.state.path())] {
            all.extend([k.to_string(), v.to_str().unwrap().to_string()]);
        }
        all.extend(["--format".to_string(), "json".to_string()]);
        all
    }

    /// Runs `args` (pausing before write `pause`, if given), sends `sig` once stderr has said
    /// `when`, and waits for the end.
    fn interrupt(&self, args: &[&str], pause: Option<usize>, when: &str, sig: Sig) -> Outcome {
        self.interrupt_exactly(&self.args(args), pause, when, sig)
    }

    /// [`Node::interrupt`] with `args` as given (no root, state directory or format added).
    fn interrupt_exactly(
        &self,
        args: &[String],
        pause: Option<usize>,
        when: &str,
        sig: Sig,
    ) -> Outcome {
        let mut cmd = powerstack();
        cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
        if let Some(n) = pause {
            cmd.env("POWERSTACK_TEST_PAUSE_BEFORE_WRITE", n.to_string());
        }
        if matches!(sig, Sig::IntIgnored) {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec only the async-signal-safe `signal` is called.
            unsafe {
                cmd.pre_exec(|| {
                    libc::signal(libc::SIGINT, libc::SIG_IGN);
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        while !seen.contains(when) {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                panic!("{args:?} ended before saying {when:?}: {seen}");
            }
            seen.push_str(&line);
        }
        // SAFETY: kill with the pid of our own child, still running (it waits for the signal).
        unsafe {
            libc::kill(child.id() as i32, sig.number());
        }
        stderr.read_to_string(&mut seen).unwrap();
        let status = child.wait().unwrap();
        Outcome { status: status.code(), stderr: seen }
    }

    /// Every power limit and sysfs setting under the root (trimmed), to show nothing changed.
    fn settings(&self) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        walk(&self.root.path().join("sys"), &mut out);
        out.sort();
        out
    }
}

fn powerstack() -> Command {
    let mut c = Command::cargo_bin("powerstack").unwrap();
    for v in ["POWERSTACK_ROOT", "POWERSTACK_SIMULATE", "POWERSTACK_STATE_DIR"] {
        c.env_remove(v);
    }
    c.env_remove("POWERSTACK_TEST_PAUSE_BEFORE_WRITE");
    c
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let (p, ft) = (e.path(), e.file_type().unwrap());
        if ft.is_dir() {
            walk(&p, out);
        } else if ft.is_file()
            && let Ok(text) = std::fs::read_to_string(&p)
        {
            out.push((p, text.trim().to_string()));
        }
    }
}

/// The last line of stderr: the command's one error line.
fn last_line(o: &Outcome) -> &str {
    o.stderr.lines().last().unwrap_or("")
}

#[test]
fn a_signal_before_the_first_write_or_between_writes_leaves_every_limit_as_it_was() {
    let n = Node::new();
    let before = n.settings();
    // `cap socket 100` writes package-0, then package-1.
    for sig in Sig::ALL {
        for (pause, did) in
            [(1, "nothing had been written"), (2, "restored the 1 limit(s) already written")]
        {
            let what = format!("{sig:?} before write {pause}");
            let o = n.interrupt(&["cap", "socket", "100"], Some(pause), "test pause", sig);
            assert_eq!(o.status, Some(128 + sig.number()), "{what}: {}", o.stderr);
            assert_eq!(
                last_line(&o),
                format!(
                    "error: interrupted by {}: stopped before the next write; {did}",
                    sig.name()
                ),
                "{what}"
            );
            assert_eq!(n.settings(), before, "{what}");
        }
    }
    // The session was closed: the next command finds no interrupted run to recover.
    let o = n.run(&["cap", "socket", "120"]);
    assert_eq!(o.status, Some(0), "{}", o.stderr);
    assert!(!o.stderr.contains("recover"), "{}", o.stderr);
}

#[test]
fn a_signal_while_cap_node_measures_writes_nothing() {
    let n = Node::new();
    let before = n.settings();
    for sig in Sig::ALL {
        let args = ["cap", "node", "250", "--interval", "60s", "-v"];
        let o = n.interrupt(&args, None, "note: measuring the node", sig);
        assert_eq!(o.status, Some(128 + sig.number()), "{sig:?}: {}", o.stderr);
        assert_eq!(
            last_line(&o),
            format!("error: interrupted by {}: nothing was written", sig.name())
        );
        assert_eq!(n.settings(), before, "{sig:?}");
    }
}

#[test]
fn a_signal_part_way_through_cap_reset_keeps_the_caps_and_the_journal() {
    let n = Node::new();
    let before = n.settings();
    assert_eq!(n.run(&["cap", "socket", "100"]).status, Some(0));
    let capped = n.settings();
    let o = n.interrupt(&["cap", "reset"], Some(2), "test pause", Sig::Term);
    assert_eq!(o.status, Some(143), "{}", o.stderr);
    assert!(last_line(&o).starts_with("error: interrupted by SIGTERM: stopped before"), "{o:?}");
    assert!(
        last_line(&o).contains("restored the 1 limit(s) this reset had put back"),
        "{}",
        o.stderr
    );
    assert_eq!(n.settings(), capped, "the reset was undone");
    // The journal still has both: a plain reset restores the originals.
    assert_eq!(n.run(&["cap", "reset"]).status, Some(0));
    assert_eq!(n.settings(), before);
}

#[test]
fn a_signal_part_way_through_pools_apply_restores_every_setting() {
    let n = Node::new();
    let before = n.settings();
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/pools.toml");
    let apply = ["pools", "apply", file.to_str().unwrap()];
    for sig in Sig::ALL {
        let o = n.interrupt(&apply, Some(3), "test pause", sig);
        assert_eq!(o.status, Some(128 + sig.number()), "{sig:?}: {}", o.stderr);
        assert!(
            last_line(&o).contains("stopped before the next write; restored the 2 setting(s)"),
            "{sig:?}: {}",
            o.stderr
        );
        assert_eq!(n.settings(), before, "{sig:?}");
        assert!(!n.state.path().join("pools.toml").exists(), "no configuration in force");
    }
    // Not stopped, it applies.
    assert_eq!(n.run(&apply).status, Some(0));
    assert_ne!(n.settings(), before);
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "status {:?}: {}", self.status, self.stderr)
    }
}

#[test]
fn a_reading_stopped_before_it_is_printed_says_so_and_fails() {
    let n = Node::new();
    let root = n.root.path().to_str().unwrap().to_string();
    let sources = "note: source hwmon";
    for sig in Sig::ALL {
        // One reading over a minute: `-v` says when the node is open and the wait begins.
        let args: Vec<String> = ["power", "--interval", "60s", "-v", "--format", "json", "--root"]
            .iter()
            .map(ToString::to_string)
            .chain([root.clone()])
            .collect();
        let o = n.interrupt_exactly(&args, None, sources, sig);
        assert_eq!(o.status, Some(128 + sig.number()), "{sig:?}: {}", o.stderr);
        assert_eq!(
            last_line(&o),
            format!(
                "error: interrupted by {}: the reading was not finished; nothing was printed",
                sig.name()
            )
        );
    }
    // `--watch` is ended by a signal: that is its normal end.
    let args: Vec<String> = ["power", "--watch", "--interval", "60s", "-v", "--root", &root]
        .iter()
        .map(ToString::to_string)
        .collect();
    let o = n.interrupt_exactly(&args, None, sources, Sig::Int);
    assert_eq!(o.status, Some(0), "{}", o.stderr);
}

/// Starts `cap socket 100` on `n`, paused before its first write: it holds the state directory's
/// lock until it gets a signal.
fn lock_holder(n: &Node) -> std::process::Child {
    let mut holder = powerstack()
        .args(n.args(&["cap", "socket", "100"]))
        .env("POWERSTACK_TEST_PAUSE_BEFORE_WRITE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = BufReader::new(holder.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("test pause") {
        line.clear();
        assert_ne!(said.read_line(&mut line).unwrap(), 0, "the first command ended");
    }
    // Keep reading: its last line must not fail on a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut said, &mut std::io::sink()));
    holder
}

/// Waits until `child` has the state directory's lock file open: it is then waiting for the lock
/// (it opens the file just before trying it).
fn waiting_for_the_lock(n: &Node, child: &mut std::process::Child) {
    let lock = n.state.path().join("lock");
    let fds = PathBuf::from(format!("/proc/{}/fd", child.id()));
    while !std::fs::read_dir(&fds)
        .unwrap()
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|to| to == lock))
    {
        assert!(child.try_wait().unwrap().is_none(), "the second command ended");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Runs `args`, sends `sig` once the command waits for the state directory's lock; its exit
/// status and stderr.
fn stopped_while_waiting(n: &Node, args: &[String], sig: Sig) -> (Option<i32>, String) {
    let mut child =
        powerstack().args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    waiting_for_the_lock(n, &mut child);
    kill(&child, sig.number());
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn kill(child: &std::process::Child, sig: i32) {
    // SAFETY: kill with the pid of our own child, still running (it waits).
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

#[test]
fn a_signal_while_waiting_for_the_state_directorys_lock_ends_the_wait() {
    let n = Node::new();
    let before = n.settings();
    let mut holder = lock_holder(&n);
    // A second command waits for the first (up to 30 s).
    let (status, stderr) = stopped_while_waiting(&n, &n.args(&["cap", "socket", "120"]), Sig::Term);
    assert_eq!(status, Some(143), "{stderr}");
    let expect = format!(
        "error: interrupted by SIGTERM: stopped before the next write; nothing was written (it was waiting for the lock of {}, held by `powerstack cap socket 100",
        n.state.path().display()
    );
    assert!(stderr.trim_end().starts_with(&expect), "{stderr}");
    // An agent starting on the same state directory waits too; a signal ends its start.
    let root = n.root.path().to_str().unwrap();
    let state = n.state.path().to_str().unwrap();
    let args =
        ["agent", "--root", root, "--state-dir", state, "--socket", "", "--listen", "127.0.0.1:0"];
    let args: Vec<String> = args.iter().map(ToString::to_string).collect();
    let (status, stderr) = stopped_while_waiting(&n, &args, Sig::Int);
    assert_eq!(status, Some(0), "{stderr}");
    assert!(
        stderr.ends_with("powerstack agent: stopped by SIGINT during start-up, before serving\n"),
        "{stderr}"
    );
    kill(&holder, libc::SIGTERM);
    assert_eq!(holder.wait().unwrap().code(), Some(143));
    assert_eq!(n.settings(), before);
}
