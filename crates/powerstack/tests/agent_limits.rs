//! Connections that cannot lock anyone out, and a stop that cannot be held up: slow headers, idle
//! connections and slow bodies are cut; one user holding a thousand connections leaves root its
//! way in; SIGTERM ends the agent within a bounded time whatever its connections do.
//!
//! The waits here are bounds against hanging (the agent's timeouts are 10 s; nothing is measured).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Node, Proc, unix_post};

/// How long a connection the agent must close may stay open here: its timeouts are 10 s.
const CLOSED_WITHIN: Duration = Duration::from_secs(30);

/// Reads from `s` until the agent closes it (or `CLOSED_WITHIN` passes, or `trickle` fails to
/// write, which also means closed), writing one byte of `trickle` every 2 s meanwhile; returns
/// what was read, or `None` if it was still open at the end.
fn read_until_closed<S: Read + Write>(
    s: &mut S,
    set_timeout: impl Fn(&S, Duration),
    trickle: bool,
) -> Option<String> {
    let deadline = Instant::now() + CLOSED_WITHIN;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if trickle && s.write_all(b"X").is_err() {
            return Some(String::from_utf8_lossy(&got).into_owned());
        }
        set_timeout(s, Duration::from_secs(2));
        match s.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // Reset by the agent: closed.
            Err(_) => return Some(String::from_utf8_lossy(&got).into_owned()),
        }
    }
    None
}

fn tcp_closed(mut s: TcpStream, trickle: bool) -> Option<String> {
    read_until_closed(&mut s, |s, t| s.set_read_timeout(Some(t)).unwrap(), trickle)
}

fn unix_closed(mut s: UnixStream, trickle: bool) -> Option<String> {
    read_until_closed(&mut s, |s, t| s.set_read_timeout(Some(t)).unwrap(), trickle)
}

#[test]
fn slow_headers_idle_connections_and_slow_bodies_are_cut() {
    let n = Node::new("intel-2s");
    let (_agent, addr) = n.agent();
    // Idle after one answer (keep-alive).
    let mut idle = TcpStream::connect(&addr).unwrap();
    write!(idle, "GET /healthz HTTP/1.1\r\nHost: agent\r\n\r\n").unwrap();
    let mut first = [0u8; 512];
    assert!(idle.read(&mut first).unwrap() > 0);
    // Never says anything.
    let silent = TcpStream::connect(&addr).unwrap();
    // A header trickled one byte every 2 s.
    let mut slow_header = TcpStream::connect(&addr).unwrap();
    write!(slow_header, "GET /healthz HTTP/1.1\r\nX-Slow: ").unwrap();
    // A body trickled one byte every 2 s, from a caller allowed to write (root, on the socket).
    let mut slow_body = UnixStream::connect(n.socket()).unwrap();
    write!(slow_body, "POST /v1/jobs/slow/begin HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{").unwrap();

    let idle = std::thread::spawn(move || tcp_closed(idle, false));
    let silent = std::thread::spawn(move || tcp_closed(silent, false));
    let slow_header = std::thread::spawn(move || tcp_closed(slow_header, true));
    let slow_body = std::thread::spawn(move || unix_closed(slow_body, true));
    assert!(idle.join().unwrap().is_some(), "an idle keep-alive connection stayed open");
    assert!(silent.join().unwrap().is_some(), "a connection that sent nothing stayed open");
    assert!(slow_header.join().unwrap().is_some(), "a trickled header kept its connection");
    let body = slow_body.join().unwrap().expect("a trickled body kept its connection");
    assert!(body.starts_with("HTTP/1.1 408 "), "{body}");
    assert!(body.contains("the request body did not arrive within 10 s"), "{body}");
    // The agent still answers.
    assert_eq!(common::tcp_request(&addr, "GET", "/healthz").0, 200);
}

/// Raises this process's soft open-file limit to `wanted` (at most the hard limit); whether it
/// is now at least `wanted`.
fn allow_open_files(wanted: u64) -> bool {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid, writable rlimit.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if lim.rlim_cur >= wanted {
        return true;
    }
    lim.rlim_cur = wanted.min(lim.rlim_max);
    // SAFETY: a valid rlimit, the soft limit within the hard one.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    lim.rlim_cur >= wanted
}

#[test]
fn a_thousand_idle_connections_are_closed() {
    if !allow_open_files(2048) {
        eprintln!("the hard open-file limit is below 2048: skipping the idle-connections test");
        return;
    }
    let n = Node::new("intel-2s");
    let (_agent, _) = n.agent();
    // Root's, on the socket: no per-caller limit applies, so each is served, and left idle.
    let conns: Vec<UnixStream> =
        (0..1000).map(|_| UnixStream::connect(n.socket()).unwrap()).collect();
    let deadline = Instant::now() + CLOSED_WITHIN;
    for (i, mut c) in conns.into_iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        c.set_read_timeout(Some(left)).unwrap();
        let mut buf = [0u8; 64];
        match c.read(&mut buf) {
            Ok(0) | Err(_) if Instant::now() < deadline => {}
            other => panic!("connection {i} still open after {CLOSED_WITHIN:?}: {other:?}"),
        }
    }
}

/// A Python client that opens `N` connections to the socket, then prints how many are held by
/// the agent (still silent) and the first refusal it got, and waits for its stdin to close. (The
/// agent's idle timeout closes the held ones 10 s after they opened.)
const FLOOD: &str = r#"
import resource, select, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
conns = []
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    conns.append(s)
p = select.poll()
for s in conns:
    p.register(s, select.POLLIN | select.POLLHUP)
# Until the agent has dealt with every connection: the same count twice, 1 s apart (at most 30 s).
ready, last = set(), -1
for _ in range(30):
    time.sleep(1)
    ready = {fd for fd, _ in p.poll(0)}
    if len(ready) == last:
        break
    last = len(ready)
held = [s for s in conns if s.fileno() not in ready]
refusal = ""
for s in conns:
    if s.fileno() in ready:
        refusal = s.recv(4096).decode(errors="replace").replace("\r\n", " | ")
        break
print("held %d refused %d %s" % (len(held), len(conns) - len(held), refusal), flush=True)
sys.stdin.read()
"#;

/// A system Python (readable by user nobody), when there is one and `setpriv` works.
fn python_for_nobody() -> Option<PathBuf> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let setpriv = Command::new("setpriv").arg("--version").output();
    if !setpriv.is_ok_and(|o| o.status.success()) {
        return None;
    }
    ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// One request over TCP that gives up after 10 s: status (0 when none came).
fn tcp_status(addr: &str, path: &str) -> u16 {
    let Ok(mut s) = TcpStream::connect(addr) else { return 0 };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// One POST over the socket (as root) that gives up after 10 s: status (0 when none came).
fn unix_status(socket: &Path, path: &str) -> u16 {
    let Ok(mut s) = UnixStream::connect(socket) else { return 0 };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: agent\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[test]
fn nobody_holding_1100_connections_locks_out_neither_root_over_tcp_nor_over_the_socket() {
    let Some(python) = python_for_nobody() else {
        eprintln!("not root, or no setpriv or system python3: skipping the connection-flood test");
        return;
    };
    let n = Node::new("intel-2s");
    // User nobody must reach the socket.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(n.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The systemd default: 1024 open files, soft and hard.
    let (_agent, addr) = n.agent_with(|cmd| {
        // SAFETY: setrlimit is async-signal-safe; the rlimit is valid.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit { rlim_cur: 1024, rlim_max: 1024 };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let mut flood = Proc(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&python)
            .args(["-c", FLOOD])
            .arg(n.socket())
            .arg("1100")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut said = String::new();
    let mut out = std::io::BufReader::new(flood.0.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut out, &mut said).unwrap();
    eprintln!("the flood: {said}");
    // While nobody holds them, root gets through on both transports.
    assert_eq!(tcp_status(&addr, "/healthz"), 200, "root's GET /healthz over TCP");
    assert_eq!(unix_status(&n.socket(), "/v1/caps/reset"), 200, "root's POST /v1/caps/reset");
    let (status, body) = unix_post(&n.socket(), "/v1/jobs/after-flood/begin", "");
    assert_eq!(status, 201, "{body}");
    let fields: Vec<&str> = said.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&"held"), "{said}");
    let held: usize = fields[1].parse().unwrap();
    let refused: usize = fields[3].parse().unwrap();
    assert_eq!(held + refused, 1100, "{said}");
    assert!(held <= 64, "one caller held {held} connections: {said}");
    assert!(said.contains("503 Service Unavailable"), "{said}");
    assert!(said.contains("uid 65534") && said.contains("the limit per caller"), "{said}");

    drop(flood.0.stdin.take());
    drop(out);
}

/// `try_wait` until the process ends or `within` passes: its status, if it ended.
fn wait_within(p: &mut Proc, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = p.0.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn sigterm_ends_an_agent_with_open_connections_and_restores_its_limits() {
    let n = Node::new("intel-2s");
    let before = n.limit_uw();
    let (mut agent, addr) = n.agent();
    let cap = r#"{"domain":"package","index":0,"constraint":"long_term","limit_watts":90}"#;
    let (status, body) = unix_post(&n.socket(), "/v1/caps", cap);
    assert_eq!(status, 200, "{body}");
    assert_eq!(n.limit_uw(), "90000000");

    let mut open = Vec::new();
    for _ in 0..20 {
        let mut idle = TcpStream::connect(&addr).unwrap();
        write!(idle, "GET /healthz HTTP/1.1\r\nHost: agent\r\n\r\n").unwrap();
        let mut buf = [0u8; 512];
        assert!(idle.read(&mut buf).unwrap() > 0);
        open.push(idle);
    }
    let silent = TcpStream::connect(&addr).unwrap();
    let mut slow_header = TcpStream::connect(&addr).unwrap();
    write!(slow_header, "GET /healthz HTTP/1.1\r\nX-Slow: ").unwrap();
    // A request in flight: its handler waits for the rest of its body.
    let mut in_flight = UnixStream::connect(n.socket()).unwrap();
    write!(in_flight, "POST /v1/jobs/waiting/begin HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{").unwrap();
    let silent_unix = UnixStream::connect(n.socket()).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    agent.signal(libc::SIGTERM);
    let status = wait_within(&mut agent, Duration::from_secs(10))
        .expect("the agent did not exit within 10 s of SIGTERM");
    assert!(status.success(), "{status}");
    assert_eq!(n.limit_uw(), before, "restored at exit");
    assert!(!n.socket().exists(), "the socket is removed");
    drop((open, silent, slow_header, in_flight, silent_unix));
}

#[test]
fn sigterm_does_not_wait_for_the_next_sample_at_a_low_rate() {
    let n = Node::new("intel-2s");
    // One sample every 10 s: the sampler sleeps most of the time.
    let mut cmd = common::bin();
    cmd.args(["agent", "--rate-hz", "0.1", "--listen", "", "--socket"])
        .arg(n.socket())
        .arg("--root")
        .arg(n.root())
        .arg("--state-dir")
        .arg(n.state());
    let mut agent = Proc(cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap());
    common::stderr_until(&mut agent.0, "powerstack agent on ");
    std::thread::sleep(Duration::from_millis(500));
    agent.signal(libc::SIGTERM);
    let status = wait_within(&mut agent, Duration::from_secs(5))
        .expect("the agent did not exit within 5 s of SIGTERM (its samples are 10 s apart)");
    assert!(status.success(), "{status}");
}
