//! Serving the API on the Unix socket and on TCP: an accept loop that no caller can lock the
//! others out of.
//!
//! - **Timeouts.** A request's head must be complete within [`HEADER_READ_TIMEOUT`] of the
//!   connection opening or of the previous answer on it, so a connection that trickles its header
//!   and an idle keep-alive connection are both closed after it (hyper's header-read timer starts
//!   as soon as a connection waits for a request head). A request's body must be complete within
//!   [`BODY_READ_TIMEOUT`] of its head: a slower one is answered 408 and the connection closed.
//! - **Connection limits** ([`ConnectionLimits`], counted by [`Gate`]): at most
//!   [`PER_PEER_CONNECTIONS`] per caller (a uid on the socket, an address on TCP), a total derived
//!   from the process's open-file limit, of which a reserve only privileged callers may use (uid 0
//!   and the users and groups allowed to write, on the socket). A connection over a limit is
//!   answered 503 with one line, when the socket takes it at once, and closed: it never reaches
//!   the router.
//! - **Stop.** Once the shutdown future completes, nothing more is accepted (the socket file is
//!   removed at once); requests in flight get [`SHUTDOWN_GRACE`] to finish, idle connections are
//!   closed, and whatever is left is dropped.
//!
//! Every request carries the caller's [`Peer`] as `ConnectInfo<Peer>` (`SO_PEERCRED` on the
//! socket, the address on TCP).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::access::{Access, Peer};

/// How long a request's head may take to arrive, counted from the connection's opening or from
/// the previous answer on it: also how long an idle keep-alive connection is kept.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request's body may take to arrive, counted from its head (408 after it).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long requests in flight may run on once the agent stops; then their connections are
/// dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The most connections one caller (a uid on the socket, an address on TCP) may hold, unless it
/// is privileged.
pub const PER_PEER_CONNECTIONS: usize = 64;

/// Open files kept for the agent's own use (hardware files, the state directory, the runtime)
/// below the open-file limit; the rest may be connections.
pub const OTHER_OPEN_FILES: u64 = 256;

/// The fewest connections the agent serves, whatever the open-file limit.
pub const MIN_CONNECTIONS: usize = 32;

/// The most connections the agent serves, whatever the open-file limit (each costs a task and
/// its buffers).
pub const MAX_CONNECTIONS: usize = 4096;

/// The share of the connections kept for privileged callers: one in this many.
pub const RESERVED_SHARE: usize = 8;

/// How long the accept loop waits when the process is out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How many connections may be served at once, and by whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// All connections, privileged or not.
    pub total: usize,
    /// Of `total`, how many only privileged callers may use.
    pub reserved: usize,
    /// The most one unprivileged caller may hold.
    pub per_peer: usize,
}

impl ConnectionLimits {
    /// The limits for a process allowed `open_files` open files: all but [`OTHER_OPEN_FILES`]
    /// (within [`MIN_CONNECTIONS`] and [`MAX_CONNECTIONS`]), one in [`RESERVED_SHARE`] of them
    /// reserved, [`PER_PEER_CONNECTIONS`] per caller.
    pub fn for_open_files(open_files: u64) -> ConnectionLimits {
        let usable =
            usize::try_from(open_files.saturating_sub(OTHER_OPEN_FILES)).unwrap_or(MAX_CONNECTIONS);
        let total = usable.clamp(MIN_CONNECTIONS, MAX_CONNECTIONS);
        ConnectionLimits {
            total,
            reserved: total / RESERVED_SHARE,
            per_peer: PER_PEER_CONNECTIONS.min(total - total / RESERVED_SHARE),
        }
    }
}

/// The open-file limit (soft, hard) of this process.
pub fn open_files_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Raises the soft open-file limit to the hard one (at most 2^20 when the hard one is
/// unlimited); returns the soft limit before and after. A limit that cannot be raised is kept.
pub fn raise_open_files_limit() -> io::Result<(u64, u64)> {
    let (soft, hard) = open_files_limit()?;
    let wanted = if hard == libc::RLIM_INFINITY { 1 << 20 } else { hard };
    if wanted <= soft {
        return Ok((soft, soft));
    }
    let lim = libc::rlimit { rlim_cur: wanted, rlim_max: hard };
    // SAFETY: `lim` is a valid rlimit; raising the soft limit up to the hard one is allowed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Ok((soft, soft));
    }
    Ok((soft, wanted))
}

/// Who a connection is counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum PeerKey {
    Uid(u32),
    Ip(std::net::IpAddr),
    Unknown,
}

fn key(peer: &Peer) -> PeerKey {
    match peer {
        Peer::Unix { uid, .. } => PeerKey::Uid(*uid),
        Peer::Tcp { addr } => PeerKey::Ip(addr.ip()),
        Peer::Unknown => PeerKey::Unknown,
    }
}

/// What [`Gate::admit`] decided.
#[derive(Debug)]
pub enum Admission {
    /// Served; the slot is given back when dropped.
    Admitted(Slot),
    /// Over an unprivileged limit, and the connection may still use the reserve: ask whether the
    /// caller is privileged, and ask again.
    AskPrivilege,
    /// Refused, with the one-line reason.
    Refused(String),
}

/// Counts the connections being served, in all and per caller.
#[derive(Debug)]
pub struct Gate {
    limits: ConnectionLimits,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_peer: HashMap<PeerKey, usize>,
}

impl Gate {
    /// A gate with no connection yet.
    pub fn new(limits: ConnectionLimits) -> Arc<Gate> {
        Arc::new(Gate { limits, counts: Mutex::new(Counts::default()) })
    }

    /// The limits it keeps.
    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// The connections being served.
    pub fn open(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Decides on a new connection of `peer`; `privileged` is whether it may use the reserve and
    /// go past the per-caller limit, when known.
    pub fn admit(self: &Arc<Gate>, peer: &Peer, privileged: Option<bool>) -> Admission {
        let limits = self.limits;
        let k = key(peer);
        let mut counts = self.lock();
        let mine = counts.per_peer.get(&k).copied().unwrap_or(0);
        let shared_room = counts.total < limits.total - limits.reserved;
        let admitted = if mine < limits.per_peer && shared_room {
            true
        } else if counts.total >= limits.total {
            false
        } else {
            match privileged {
                Some(p) => p,
                None => return Admission::AskPrivilege,
            }
        };
        if !admitted {
            let reason = if counts.total >= limits.total {
                format!("the agent serves {} connections, its limit: try again later", limits.total)
            } else if mine >= limits.per_peer {
                let who = match &k {
                    PeerKey::Uid(uid) => format!("uid {uid}"),
                    PeerKey::Ip(ip) => ip.to_string(),
                    PeerKey::Unknown => "an unidentified caller".to_string(),
                };
                format!(
                    "{who} holds {mine} connections, the limit per caller: close some and try again"
                )
            } else {
                format!(
                    "the agent serves {} connections; the last {} are kept for root and the users allowed to write: try again later",
                    counts.total, limits.reserved
                )
            };
            return Admission::Refused(reason);
        }
        counts.total += 1;
        *counts.per_peer.entry(k.clone()).or_insert(0) += 1;
        Admission::Admitted(Slot { gate: self.clone(), key: k })
    }
}

/// One admitted connection; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    gate: Arc<Gate>,
    key: PeerKey,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.gate.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_peer.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_peer.remove(&self.key);
            }
        }
    }
}

/// Serves one router on the agent's listeners, under one [`Gate`].
#[derive(Clone, Debug)]
pub struct Server {
    app: Router,
    access: Access,
    gate: Arc<Gate>,
}

impl Server {
    /// Serves `app`; `access` says who is privileged (may use the reserve).
    pub fn new(app: Router, access: Access, limits: ConnectionLimits) -> Server {
        Server { app, access, gate: Gate::new(limits) }
    }

    /// The gate its connections pass.
    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// Serves on `listener` (made by [`bind_unix`] for `path`) until `shutdown` completes; then
    /// removes the socket file (when it is still the one bound here) before the last requests
    /// end. Callers are identified by `SO_PEERCRED`.
    pub async fn serve_unix(
        self,
        listener: UnixListener,
        path: PathBuf,
        shutdown: impl Future<Output = ()> + Send,
    ) -> io::Result<()> {
        let inode = std::fs::metadata(&path).map(|m| (m.dev(), m.ino())).ok();
        let accept = || async {
            let (stream, _) = listener.accept().await?;
            let peer = match stream.peer_cred() {
                Ok(c) => Peer::Unix { uid: c.uid(), gid: c.gid(), pid: c.pid() },
                Err(_) => Peer::Unknown,
            };
            Ok((stream, peer))
        };
        let connections = self.accept_until(accept, shutdown).await;
        drop(listener);
        if inode.is_some() && std::fs::metadata(&path).map(|m| (m.dev(), m.ino())).ok() == inode {
            let _ = std::fs::remove_file(&path);
        }
        connections.finish().await;
        Ok(())
    }

    /// Serves on a bound TCP listener until `shutdown` completes. Callers are identified by
    /// their address. The caller chooses the address; the agent's default is loopback only.
    pub async fn serve_tcp(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> io::Result<()> {
        let accept = || async {
            let (stream, addr) = listener.accept().await?;
            Ok((stream, Peer::Tcp { addr }))
        };
        let connections = self.accept_until(accept, shutdown).await;
        drop(listener);
        connections.finish().await;
        Ok(())
    }

    /// Accepts connections until `shutdown` completes; the connections still open then.
    async fn accept_until<S, F, Fut>(
        &self,
        mut accept: F,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Connections
    where
        S: Stream,
        F: FnMut() -> Fut,
        Fut: Future<Output = io::Result<(S, Peer)>>,
    {
        let (closing, closed) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                accepted = accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors (or a connection reset before it was taken):
                        // whatever is open goes on; try again shortly.
                        if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                            tokio::time::sleep(ACCEPT_BACKOFF).await;
                        }
                        continue;
                    }
                },
            };
            let Some(slot) = self.admit(&stream, &peer).await else { continue };
            let (app, closed) = (self.app.clone(), closed.clone());
            tasks.spawn(connection(stream, peer, app, closed, slot));
        }
        Connections { closing, tasks }
    }

    /// A slot for a new connection, or `None` when it was refused (and answered so).
    async fn admit<S: Stream>(&self, stream: &S, peer: &Peer) -> Option<Slot> {
        let privileged = match peer {
            Peer::Unix { uid: 0, .. } => Some(true),
            Peer::Unix { .. } => None,
            Peer::Tcp { .. } | Peer::Unknown => Some(false),
        };
        let mut decision = self.gate.admit(peer, privileged);
        if let Admission::AskPrivilege = decision {
            // Names are resolved through /etc/passwd and /etc/group: off the async threads.
            let (access, p) = (self.access.clone(), peer.clone());
            let privileged = tokio::task::spawn_blocking(move || access.check_write(&p, None))
                .await
                .is_ok_and(|r| r.is_ok());
            decision = self.gate.admit(peer, Some(privileged));
        }
        let reason = match decision {
            Admission::Admitted(slot) => return Some(slot),
            Admission::Refused(reason) => reason,
            // Not given again once the privilege is known.
            Admission::AskPrivilege => "connection refused".to_string(),
        };
        refuse(stream, &reason);
        None
    }
}

/// Answers 503 with `reason` if the socket takes it at once (it never waits), before the
/// connection is dropped.
fn refuse<S: Stream>(stream: &S, reason: &str) {
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reason}\n",
        reason.len() + 1
    );
    let _ = stream.try_write(answer.as_bytes());
}

/// A connected socket the server can serve.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Writes what the socket takes now, without waiting.
    fn try_write(&self, bytes: &[u8]) -> io::Result<usize>;
}

impl Stream for tokio::net::UnixStream {
    fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        tokio::net::UnixStream::try_write(self, bytes)
    }
}

impl Stream for tokio::net::TcpStream {
    fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        tokio::net::TcpStream::try_write(self, bytes)
    }
}

/// The connections of one listener.
struct Connections {
    closing: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Connections {
    /// Asks every connection to close once its request in flight is answered (idle ones close at
    /// once), waits [`SHUTDOWN_GRACE`] for them, and drops the rest.
    async fn finish(mut self) {
        self.closing.send_replace(true);
        let drained = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
    }
}

/// Serves one connection until it ends, or until `closed` says to stop taking requests.
async fn connection<S: Stream>(
    stream: S,
    peer: Peer,
    app: Router,
    mut closed: watch::Receiver<bool>,
    slot: Slot,
) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        handle(app.clone(), peer.clone(), req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let closing = async move {
        // The sender lives until every connection has ended.
        let _ = closed.wait_for(|c| *c).await;
    };
    let finished = tokio::select! {
        _ = conn.as_mut() => true,
        () = closing => false,
    };
    if !finished {
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
    drop(slot);
}

/// One request: the caller attached, the body under [`BODY_READ_TIMEOUT`].
async fn handle(
    app: Router,
    peer: Peer,
    req: Request<Incoming>,
) -> Result<Response<axum::body::Body>, std::convert::Infallible> {
    let late = Arc::new(AtomicBool::new(false));
    let mut req = req.map(|body| axum::body::Body::new(Deadline::new(body, late.clone())));
    req.extensions_mut().insert(ConnectInfo(peer));
    let Ok(answer) = app.oneshot(req).await;
    if !late.load(Ordering::Acquire) {
        return Ok(answer);
    }
    let text = format!(
        "{{\"error\":\"the request body did not arrive within {} s\"}}",
        BODY_READ_TIMEOUT.as_secs()
    );
    let mut answer = Response::new(axum::body::Body::from(text));
    *answer.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let headers = answer.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(answer)
}

/// A request body that fails once [`BODY_READ_TIMEOUT`] has passed since the request's head
/// without its last byte, and says so in `late`.
struct Deadline {
    body: Incoming,
    timer: Pin<Box<tokio::time::Sleep>>,
    late: Arc<AtomicBool>,
}

impl Deadline {
    fn new(body: Incoming, late: Arc<AtomicBool>) -> Deadline {
        Deadline { body, timer: Box::pin(tokio::time::sleep(BODY_READ_TIMEOUT)), late }
    }
}

/// A request body that did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", BODY_READ_TIMEOUT.as_secs())]
struct BodyTimeout;

impl Body for Deadline {
    type Data = hyper::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                if self.timer.as_mut().poll(cx).is_ready() {
                    self.late.store(true, Ordering::Release);
                    return Poll::Ready(Some(Err(BodyTimeout.into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Binds the Unix socket at `path`: creates its directory if needed (mode 0755), removes a stale
/// socket left by a previous run (refusing when an agent still answers on it, or when the path is
/// not a socket), binds, and makes it connectable by everyone (0666: permission is checked per
/// request).
pub fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{}: another agent is listening on this socket", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; remove it or choose another path",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uid: u32) -> Peer {
        Peer::Unix { uid, gid: uid, pid: None }
    }

    #[test]
    fn limits_follow_the_open_file_limit() {
        let at_1024 = ConnectionLimits::for_open_files(1024);
        assert_eq!(at_1024, ConnectionLimits { total: 768, reserved: 96, per_peer: 64 });
        assert_eq!(ConnectionLimits::for_open_files(100).total, MIN_CONNECTIONS);
        assert_eq!(ConnectionLimits::for_open_files(u64::MAX).total, MAX_CONNECTIONS);
        let low = ConnectionLimits::for_open_files(0);
        assert!(low.per_peer <= low.total - low.reserved && low.per_peer > 0);
    }

    #[test]
    fn the_reserve_is_for_privileged_callers_and_slots_come_back() {
        let gate = Gate::new(ConnectionLimits { total: 10, reserved: 3, per_peer: 4 });
        let admitted = |a: Admission| match a {
            Admission::Admitted(slot) => slot,
            other => panic!("refused: {other:?}"),
        };
        // One caller: up to its own limit; then it may only go on if privileged.
        let mut held: Vec<Slot> =
            (0..4).map(|_| admitted(gate.admit(&user(1000), Some(false)))).collect();
        assert!(matches!(gate.admit(&user(1000), None), Admission::AskPrivilege));
        let Admission::Refused(why) = gate.admit(&user(1000), Some(false)) else { panic!() };
        assert!(why.contains("uid 1000 holds 4 connections"), "{why}");
        // Others fill the shared part (7 = 10 - 3).
        held.extend((0..3).map(|_| admitted(gate.admit(&user(1001), Some(false)))));
        let tcp = Peer::Tcp { addr: "127.0.0.1:1".parse().unwrap() };
        let Admission::Refused(why) = gate.admit(&tcp, Some(false)) else { panic!() };
        assert!(why.contains("kept for root"), "{why}");
        // Root takes the reserve, past any per-caller limit, up to the total.
        held.extend((0..3).map(|_| admitted(gate.admit(&user(0), Some(true)))));
        assert_eq!(gate.open(), 10);
        let Admission::Refused(why) = gate.admit(&user(0), Some(true)) else { panic!() };
        assert!(why.contains("its limit"), "{why}");
        // Slots come back when their connections end.
        held.truncate(5);
        assert_eq!(gate.open(), 5);
        drop(admitted(gate.admit(&tcp, Some(false))));
        drop(held);
        assert_eq!(gate.open(), 0);
        assert!(gate.counts.lock().unwrap().per_peer.is_empty());
    }
}
