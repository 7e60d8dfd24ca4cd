//! Helpers of the end-to-end tests: the binary; simulated nodes animated by `sim run`, agents
//! started on them, and requests over their socket; for the state-directory and fault-injection
//! tests, roots written by `sim create` and not animated (nothing moves but what the commands
//! write), agents, and every control file of a root.

#![allow(dead_code)]

pub mod relay;
pub mod site;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

/// The `powerstack` binary, without the environment that would change what it opens.
pub fn bin() -> Command {
    let mut c = Command::cargo_bin("powerstack").unwrap();
    c.env_remove("POWERSTACK_ROOT")
        .env_remove("POWERSTACK_SIMULATE")
        .env_remove("POWERSTACK_STATE_DIR")
        .env_remove("POWERSTACK_AGENT")
        .env_remove("POWERSTACK_SITE")
        .env_remove("POWERSTACK_SITE_CA")
        .env_remove("POWERSTACK_TEST_KILL_AT_STEP");
    c
}

/// A child process killed (if still running) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill with the pid of our own child and a valid signal.
        unsafe {
            libc::kill(self.0.id() as i32, signal);
        }
    }
}

/// Runs the binary with `args`: exit status, stdout, stderr.
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = bin().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Reads `child`'s stderr until a line contains `marker`; returns the lines read, and keeps
/// draining the rest so the child never blocks on a full pipe.
pub fn stderr_until(child: &mut Child, marker: &str) -> Vec<String> {
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "no {marker:?} within 30 s: {seen:?}");
        let Some(Ok(line)) = lines.next() else {
            panic!("the process exited before {marker:?}: {seen:?}")
        };
        let done = line.contains(marker);
        seen.push(line);
        if done {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines.by_ref() {});
    seen
}

/// `powerstack sim run --tick 5ms ROOT`, killed when dropped.
pub fn sim_run(root: &Path) -> Proc {
    let sim = bin()
        .args(["sim", "run", "--tick", "5ms", root.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Proc(sim)
}

/// A simulated node in a temporary directory, animated by `sim run` for the node's life.
pub struct Node {
    pub dir: tempfile::TempDir,
    _sim: Proc,
}

impl Node {
    pub fn new(profile: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let out = bin()
            .args(["sim", "create", "--profile", profile, root.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let node = Node { dir, _sim: sim_run(&root) };
        node.wait_until_animated();
        node
    }

    /// The simulator dies (SIGKILL): the counters stop.
    pub fn kill_sim(&mut self) {
        let _ = self._sim.0.kill();
        let _ = self._sim.0.wait();
    }

    /// Animates the root again.
    pub fn animate(&mut self) {
        self._sim = sim_run(&self.root());
        self.wait_until_animated();
    }

    /// Waits until the simulator process runs (a counter file changes), so that nothing written
    /// to the tree races the simulator's start.
    fn wait_until_animated(&self) {
        let probe = ["sys/class/powercap/intel-rapl:0/energy_uj", "sys/cray/pm_counters/freshness"]
            .iter()
            .map(|p| self.root().join(p))
            .find(|p| p.exists())
            .expect("a counter to watch");
        let first = std::fs::read_to_string(&probe).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::read_to_string(&probe).unwrap_or_default() == first {
            assert!(Instant::now() < deadline, "the simulator did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The `powerstack agent` command on this node (socket, state directory, loopback TCP).
    pub fn agent_command(&self) -> Command {
        let mut cmd = bin();
        cmd.args([
            "agent",
            "--root",
            self.root().to_str().unwrap(),
            "--rate-hz",
            "100",
            "--buffer-samples",
            "100000",
            "--socket",
            self.socket().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            self.state().to_str().unwrap(),
        ]);
        cmd
    }

    /// Starts `powerstack agent` on this node and waits until it serves; returns it and its
    /// TCP address, read from its "ready" line.
    pub fn agent(&self) -> (Proc, String) {
        self.agent_with(|_| {})
    }

    /// [`Node::agent`], with `setup` applied to the command first.
    pub fn agent_with(&self, setup: impl FnOnce(&mut Command)) -> (Proc, String) {
        let mut cmd = self.agent_command();
        setup(&mut cmd);
        let mut agent = Proc(cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap());
        let lines = stderr_until(&mut agent.0, "API http://");
        let ready = lines.last().unwrap();
        let addr =
            ready.split("API http://").nth(1).unwrap().split('/').next().unwrap().to_string();
        (agent, addr)
    }

    /// Starts `powerstack agent` on this node expecting it to fail before it serves; returns its
    /// exit status and stderr (it is killed, and the test fails, if it gets ready instead).
    pub fn agent_failing(&self) -> (Option<i32>, String) {
        let mut agent = Proc(
            self.agent_command().stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap(),
        );
        let mut err = String::new();
        for line in BufReader::new(agent.0.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            assert!(!line.contains("API http://"), "the agent started: {err}{line}");
            err.push_str(&line);
            err.push('\n');
        }
        (agent.0.wait().unwrap().code(), err)
    }

    /// The long-term limit of package 0, µW, as the file holds it.
    pub fn limit_uw(&self) -> String {
        std::fs::read_to_string(
            self.root().join("sys/class/powercap/intel-rapl:0/constraint_0_power_limit_uw"),
        )
        .unwrap()
        .trim()
        .to_string()
    }
}

/// One HTTP/1.1 request over a Unix socket (as this test's user): status and body.
pub fn unix_request(socket: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// POST over the agent's Unix socket (as this test's user): status and body.
pub fn unix_post(socket: &Path, path: &str, body: &str) -> (u16, String) {
    unix_request(socket, "POST", path, body)
}

/// GET over TCP: the body.
pub fn http_get(addr: &str, path: &str) -> String {
    tcp_request(addr, "GET", path).1
}

/// One HTTP/1.1 request over TCP: status and body.
pub fn tcp_request(addr: &str, method: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
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

pub fn outcome(cmd: &mut Command) -> Out {
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
    outcome(bin().args(args))
}

/// Writes a simulated root of `profile` into `dir`.
pub fn sim_create(profile: &str, dir: &Path) {
    let out = ps(&["sim", "create", "--profile", profile, dir.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

/// Every control file under the root's `sys` (a file with a write bit: every limit and attribute
/// a command can write) with its content. Counters (read-only) are left out: they may move.
pub fn controls(root: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        use std::os::unix::fs::PermissionsExt;
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            let writable = e.metadata().is_ok_and(|m| m.permissions().mode() & 0o222 != 0);
            if ft.is_dir() {
                walk(&e.path(), out);
            } else if ft.is_file() && writable {
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

/// `promtool check metrics` accepts `text`, when promtool is installed (unless
/// POWERSTACK_REQUIRE_PROMTOOL is set, as in CI).
pub fn promtool_passes(text: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(std::env::var_os("POWERSTACK_REQUIRE_PROMTOOL").is_none(), "promtool required");
        return;
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
}
