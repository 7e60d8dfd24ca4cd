//! The HTTP side: one axum fallback handler that answers from the tree, with faults.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::MockError;
use crate::tree::{Tree, normalize};

/// How the mock BMC is set up.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Basic-auth user and password every request must carry; `None` accepts any request.
    pub credentials: Option<(String, String)>,
}

/// Faults to inject, changeable while the server runs.
#[derive(Debug, Default)]
pub struct Faults {
    delay_ms: AtomicU64,
    unavailable: AtomicU32,
    retry_after_s: AtomicU32,
    malformed: Mutex<BTreeSet<String>>,
}

impl Faults {
    /// Every request waits `delay_ms` before it is answered.
    pub fn set_delay_ms(&self, delay_ms: u64) {
        self.delay_ms.store(delay_ms, Ordering::Relaxed);
    }

    /// The next `count` requests are answered 503 with `Retry-After: retry_after_s`.
    pub fn set_unavailable(&self, count: u32, retry_after_s: u32) {
        self.retry_after_s.store(retry_after_s, Ordering::Relaxed);
        self.unavailable.store(count, Ordering::Relaxed);
    }

    /// `uri` is answered 200 with a body that is not JSON.
    pub fn set_malformed(&self, uri: &str) {
        self.malformed.lock().unwrap_or_else(PoisonError::into_inner).insert(normalize(uri).into());
    }

    fn take_unavailable(&self) -> bool {
        self.unavailable
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    fn is_malformed(&self, uri: &str) -> bool {
        self.malformed.lock().unwrap_or_else(PoisonError::into_inner).contains(uri)
    }
}

struct Shared {
    tree: Mutex<Tree>,
    options: Options,
    faults: Faults,
    requests: AtomicU64,
}

/// A running mock BMC; stops when dropped.
pub struct MockBmc {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl MockBmc {
    /// Serves `tree` on `127.0.0.1` at a port of the system's choosing, on the current tokio
    /// runtime.
    pub async fn start(tree: Tree, options: Options) -> Result<MockBmc, MockError> {
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(MockError::Listen)?;
        let addr = listener.local_addr().map_err(MockError::Listen)?;
        let shared = Arc::new(Shared {
            tree: Mutex::new(tree),
            options,
            faults: Faults::default(),
            requests: AtomicU64::new(0),
        });
        let app = axum::Router::new().fallback(answer).with_state(Arc::clone(&shared));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                eprintln!("mock BMC on {addr} stopped: {e}");
            }
        });
        Ok(MockBmc { addr, shared, stop: Some(stop) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The fault knobs.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// How many requests it has received.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Changes the tree while it runs (e.g. removes a resource).
    pub fn edit_tree(&self, edit: impl FnOnce(&mut Tree)) {
        edit(&mut self.shared.tree.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

impl Drop for MockBmc {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A weak ETag from a 64-bit FNV-1a hash of the body.
fn etag(body: &[u8]) -> String {
    let hash = body
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("W/\"{hash:016x}\"")
}

fn error_body(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "@Message.ExtendedInfo": []}})
}

fn respond(status: StatusCode, body: Vec<u8>) -> Response {
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header("OData-Version", "4.0");
    if status == StatusCode::OK {
        builder = builder.header(header::ETAG, etag(&body));
    }
    builder.body(Body::from(body)).unwrap_or_else(|_| Response::new(Body::empty()))
}

fn json_response(status: StatusCode, doc: &Value) -> Response {
    respond(status, serde_json::to_vec(doc).unwrap_or_default())
}

fn authorized(options: &Options, headers: &HeaderMap) -> bool {
    let Some((user, password)) = &options.credentials else { return true };
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .is_some_and(|given| given == expected)
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let delay_ms = shared.faults.delay_ms.load(Ordering::Relaxed);
    if delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
    }
    if !authorized(&shared.options, &headers) {
        let mut response = json_response(
            StatusCode::UNAUTHORIZED,
            &error_body("Base.1.0.NoValidSession", "basic auth required"),
        );
        let realm = header::HeaderValue::from_static("Basic realm=\"mock BMC\"");
        response.headers_mut().insert(header::WWW_AUTHENTICATE, realm);
        return response;
    }
    if shared.faults.take_unavailable() {
        let retry_after = shared.faults.retry_after_s.load(Ordering::Relaxed);
        let mut response = json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &error_body("Base.1.0.ServiceTemporarilyUnavailable", "try again later"),
        );
        response.headers_mut().insert(header::RETRY_AFTER, retry_after.into());
        return response;
    }
    if method != Method::GET {
        let doc = error_body("Base.1.0.ActionNotSupported", "only GET is served so far");
        return json_response(StatusCode::METHOD_NOT_ALLOWED, &doc);
    }
    let path = normalize(uri.path());
    if shared.faults.is_malformed(path) {
        return respond(StatusCode::OK, b"{\"Id\": \"truncated".to_vec());
    }
    let doc = shared.tree.lock().unwrap_or_else(PoisonError::into_inner).get(path).cloned();
    match doc {
        Some(doc) if is_error_only(&doc) => json_response(StatusCode::NOT_FOUND, &doc),
        Some(doc) => json_response(StatusCode::OK, &doc),
        None => json_response(
            StatusCode::NOT_FOUND,
            &error_body("Base.1.0.ResourceMissingAtURI", &format!("no resource at {path}")),
        ),
    }
}

/// A captured error answer: an object whose only key is `error`.
fn is_error_only(doc: &Value) -> bool {
    doc.as_object().is_some_and(|o| o.len() == 1 && o.contains_key("error"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_differ_with_the_body() {
        assert_eq!(etag(b"{}"), etag(b"{}"));
        assert_ne!(etag(b"{}"), etag(b"{ }"));
        assert!(etag(b"x").starts_with("W/\""));
    }

    #[test]
    fn an_error_only_document_is_recognised() {
        assert!(is_error_only(&error_body("c", "m")));
        assert!(!is_error_only(&json!({"error": {}, "Id": "x"})));
    }

    #[test]
    fn basic_auth_is_checked() {
        let options = Options { credentials: Some(("root".into(), "pw".into())) };
        let mut headers = HeaderMap::new();
        assert!(!authorized(&options, &headers));
        headers.insert(header::AUTHORIZATION, "Basic cm9vdDpwdw==".parse().unwrap());
        assert!(authorized(&options, &headers));
        headers.insert(header::AUTHORIZATION, "Basic cm9vdDp4".parse().unwrap());
        assert!(!authorized(&options, &headers));
        assert!(authorized(&Options::default(), &HeaderMap::new()));
    }
}
