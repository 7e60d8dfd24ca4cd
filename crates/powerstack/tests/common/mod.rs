//! Helpers of the state-directory and fault-injection tests: the built binary on simulated roots
//! (written by `sim create`, not animated: nothing moves but what the commands write), agents,
//! and every control file of a root.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

use assert_cmd::cargo::CommandCargoExt;

/// The built `powerstack`, without the environment that would change what it opens.
pub fn bin() -> Command {
    let mut c = Command::cargo_bin("powerstack").unwrap();
    for v in [
        "POWERSTACK_ROOT",
        "POWERSTACK_SIMULATE",
        "POWERSTACK_STATE_DIR",
        "POWERSTACK_TEST_KILL_AT_STEP",
    ] {
        c.env_remove(v);
    }
    c
}

/// How a command ended and what it said.
pub struct Out {
    /// The exit status; `None` when a signal ended it.
    pub code: Option<i32>,
    /// The signal that ended it.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Out {
    use std::os::unix::process::ExitStatusExt;
    let out = cmd.output().unwrap();
    Out {
        code: out.status.code(),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `powerstack ARGS`.
pub fn ps(args: &[&str]) -> Out {
    run(bin().args(args))
}

/// Writes a simulated root of `profile` into `dir`.
pub fn sim_create(profile: &str, dir: &Path) {
    let out = ps(&["sim", "create", "--profile", profile, dir.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

/// Every file under the root's `sys` with its content: every limit and attribute a command can
/// write (the counters do not move on a root nobody animates).
pub fn controls(root: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(&e.path(), out);
            } else if ft.is_file() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                out.insert(e.path().display().to_string(), text);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&root.join("sys"), &mut out);
    out
}

/// The files of `now` that differ from `then`, for messages.
pub fn changed(then: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> Vec<String> {
    now.iter()
        .filter(|(k, v)| then.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: {:?} -> {v:?}", then.get(k)))
        .collect()
}

/// A running agent, killed (if still running) when dropped.
pub struct Agent {
    pub child: Child,
}

impl Agent {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, and its exit status.
    pub fn stop(mut self) -> ExitStatus {
        // SAFETY: kill with the pid of our own child and a valid signal.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.child.wait().unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `powerstack agent` with `args`; the agent once it is ready (its "powerstack agent on"
/// line), or how it ended when it stopped before that.
pub fn start_agent(mut cmd: Command, args: &[&str]) -> Result<Agent, Out> {
    use std::os::unix::process::ExitStatusExt;
    let mut child =
        cmd.arg("agent").args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut said = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap_or_default();
        if line.starts_with("powerstack agent on ") {
            // Keep draining stderr so the agent never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines.by_ref() {});
            return Ok(Agent { child });
        }
        said.push_str(&line);
        said.push('\n');
    }
    let status = child.wait().unwrap();
    Err(Out { code: status.code(), signal: status.signal(), stdout: String::new(), stderr: said })
}

/// POST over an agent's Unix socket (as this test's user).
pub fn unix_post(socket: &Path, path: &str, body: &str) -> (u16, String) {
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}
