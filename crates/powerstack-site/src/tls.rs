//! TLS of the site service (rustls on the ring provider): the server certificate and key read
//! and checked at start ([`server_config`]), and the accept loop that serves the router over TLS
//! ([`serve`]): each connection's handshake bounded by [`HANDSHAKE_TIMEOUT`] in a task of its
//! own, so a silent client holds nothing but its socket; failed handshakes counted, and said at
//! most once a [`FAILURE_LOG_EVERY`]; at stop no new connection, the requests in flight
//! finished (as the plain HTTP path does).

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use powerstack_client::tls::{ALPN_HTTP11, provider, read_certificates, read_pem};
use rustls::ServerConfig;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::error::StoreError;
use crate::http::App;

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Failed handshakes are said at most once in this long (they are all counted in `/metrics`).
pub const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// The server's TLS settings from the PEM files `cert` (the certificate chain, leaf first) and
/// `key` (its private key: PKCS#8, PKCS#1 or SEC1; readable by its owner only). Every failure is
/// one line naming the file.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, StoreError> {
    let cert_fail =
        |why: String| StoreError::Config(format!("TLS certificate file {}: {why}", cert.display()));
    let key_fail =
        |why: String| StoreError::Config(format!("TLS key file {}: {why}", key.display()));
    let chain = read_certificates(cert).map_err(cert_fail)?;
    let meta = std::fs::metadata(key).map_err(|e| key_fail(e.to_string()))?;
    if meta.mode() & 0o077 != 0 {
        return Err(key_fail(format!(
            "mode {:o} lets group or others use the private key: chmod 600 {}",
            meta.mode() & 0o777,
            key.display()
        )));
    }
    let pem = read_pem(key).map_err(key_fail)?;
    let private = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        key_fail(match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no private key in it (expected a PKCS#8, PKCS#1 or SEC1 PEM key)".into()
            }
            e => format!("invalid PEM: {e}"),
        })
    })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => key_fail(format!(
                "the key does not match the certificate of {}: give the certificate's own key",
                cert.display()
            )),
            rustls::Error::InvalidCertificate(c) => {
                cert_fail(format!("invalid certificate: {c:?}"))
            }
            e => key_fail(e.to_string()),
        })?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// Failed handshakes since the last line said about them.
#[derive(Default)]
struct FailureLog {
    said_at: Option<Instant>,
    unsaid: u64,
}

impl FailureLog {
    /// Counts a failure, and says it unless one was said less than [`FAILURE_LOG_EVERY`] ago.
    fn failed(log: &Mutex<FailureLog>, state: &App, peer: SocketAddr, why: &str) {
        state.counters.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
        let Ok(mut l) = log.lock() else { return };
        let now = Instant::now();
        if l.said_at.is_some_and(|t| now.duration_since(t) < FAILURE_LOG_EVERY) {
            l.unsaid += 1;
            return;
        }
        let more = match std::mem::take(&mut l.unsaid) {
            0 => String::new(),
            n => format!(" ({n} more since the last such line)"),
        };
        l.said_at = Some(now);
        eprintln!(
            "warning: site: TLS handshake with {peer} failed: {why}{more}; all are counted in powerstack_site_tls_handshake_failures_total, at most one said a minute"
        );
    }
}

/// Serves `router` over TLS on `listener` until `stop` turns true: then no new connection is
/// taken, and each open one finishes the request it is in before it closes.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    router: Router,
    state: App,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(config);
    let log = Arc::new(Mutex::new(FailureLog::default()));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = stopped(&mut stop) => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            // Out of descriptors, or a connection gone before it was taken: wait a little.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, router, state, log, stop) =
            (acceptor.clone(), router.clone(), state.clone(), log.clone(), stop.clone());
        connections.spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
            let mut stop_handshake = stop.clone();
            let tls = tokio::select! {
                () = stopped(&mut stop_handshake) => return,
                r = handshake => match r {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => return FailureLog::failed(&log, &state, peer, &e.to_string()),
                    Err(_) => {
                        let why = format!("no handshake within {} s", HANDSHAKE_TIMEOUT.as_secs());
                        return FailureLog::failed(&log, &state, peer, &why);
                    }
                },
            };
            connection(tls, router, stop).await;
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// One TLS connection's HTTP/1.1 requests, until the client closes it or `stop` turns true (then
/// the request in flight is finished first).
async fn connection(
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(router));
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.as_mut().await;
        }
    }
}
