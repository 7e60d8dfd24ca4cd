//! Helpers of the end-to-end tests that run agents on simulated nodes: the binary, a simulated
//! node animated by `sim run`, agents started on it, and requests over their socket.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

/// The `powerstack` binary, without the environment that would change what it opens.
pub fn bin() -> Command {
    let mut c = Command::cargo_bin("powerstack").unwrap();
    c.env_remove("POWERSTACK_ROOT")
        .env_remove("POWERSTACK_SIMULATE")
        .env_remove("POWERSTACK_STATE_DIR")
        .env_remove("POWERSTACK_AGENT");
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
        let sim = bin()
            .args(["sim", "run", "--tick", "5ms", root.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let node = Node { dir, _sim: Proc(sim) };
        node.wait_until_animated();
        node
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
