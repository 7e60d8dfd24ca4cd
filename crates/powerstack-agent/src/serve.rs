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

use std::future::Future;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, header};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use axum::response::IntoResponse;
use powerstack_api::agent::{ErrorBodyV1, ErrorV1};

use crate::access::{Access, Peer};
use crate::http::ApiError;

mod gate;
pub use gate::{
    Admission, ConnectionLimits, Gate, MAX_CONNECTIONS, MIN_CONNECTIONS, OTHER_OPEN_FILES,
    PER_PEER_CONNECTIONS, RESERVED_SHARE, Slot, open_files_limit, raise_open_files_limit,
};

/// How long a request's head may take to arrive, counted from the connection's opening or from
/// the previous answer on it: also how long an idle keep-alive connection is kept.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request's body may take to arrive, counted from its head (408 after it).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long requests in flight may run on once the agent stops; then their connections are
/// dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// How long the accept loop waits when the process is out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

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
    let body =
        ErrorV1 { error: ErrorBodyV1 { status: 503, message: reason.to_string(), result: None } };
    let body = serde_json::to_string(&body).unwrap_or_default();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

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
    let mut answer = ApiError::RequestTimeout(BodyTimeout.to_string()).into_response();
    answer.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
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
    // Every error names the socket and what failed.
    let failed = |action: String| {
        move |e: io::Error| {
            io::Error::new(e.kind(), format!("socket {}: {action}: {e}", path.display()))
        }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(failed(format!("cannot create its directory {}", dir.display())))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{}: another agent is listening on this socket", path.display()),
                ));
            }
            std::fs::remove_file(path)
                .map_err(failed("cannot remove the stale socket file".into()))?;
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
        Err(e) => return Err(failed("cannot check it".into())(e)),
    }
    let listener = UnixListener::bind(path).map_err(failed("cannot create it".into()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(failed("cannot make it mode 666".into()))?;
    Ok(listener)
}
