//! The HTTP side: one axum fallback handler that answers from the tree, with faults; writes
//! (`write`), resets (`power`) and sessions (`sessions`) have modules of their own.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::MockError;
use crate::power::Machine;
use crate::sessions::Sessions;
use crate::tree::{Tree, normalize};
use crate::write::Task;

/// When a PATCHed limit takes effect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LimitTiming {
    /// At once.
    #[default]
    Immediate,
    /// At the next `ComputerSystem.Reset`; the answer carries a `ResetRequired` message.
    AfterResetAnnounced,
    /// At the next `ComputerSystem.Reset`; the answer says nothing of it.
    AfterResetSilent,
}

/// How the mock BMC is set up.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// User and password: basic auth on every request, or a session created with them;
    /// `None` accepts any request.
    pub credentials: Option<(String, String)>,
    /// A PATCH without `If-Match` is answered 428.
    pub require_if_match: bool,
    /// A PATCH is answered 202 with a task monitor that answers 202 this many times, then
    /// completes (and only then is the change made).
    pub patch_task_polls: Option<u32>,
    /// When a PATCHed limit takes effect.
    pub limit_timing: LimitTiming,
    /// How long a system stays `PoweringOn`/`PoweringOff`, ms ...
    pub transition_ms: u64,
    /// ... and for at least how many reads of the system's document.
    pub transition_reads: u32,
    /// A graceful shutdown or restart is accepted and never happens.
    pub graceful_never_finishes: bool,
    /// A session expires after this many requests (its login not counted).
    pub session_max_requests: Option<u32>,
}

/// Faults to inject, changeable while the server runs.
#[derive(Debug, Default)]
pub struct Faults {
    delay_ms: AtomicU64,
    unavailable: AtomicU32,
    retry_after_s: AtomicU32,
    server_errors: AtomicU32,
    hang: AtomicU8,
    malformed: Mutex<BTreeSet<String>>,
    stale_etag: Mutex<BTreeSet<String>>,
    no_etag: Mutex<BTreeMap<String, u32>>,
}

/// Which requests the BMC accepts and never answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hang {
    /// None: every request is answered.
    Nothing = 0,
    /// Every request: the BMC accepts connections and never answers.
    Everything = 1,
    /// POST, PATCH and DELETE: processed, and the answer never sent (an answer lost).
    Writes = 2,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn take(set: &Mutex<BTreeSet<String>>, uri: &str) -> bool {
    lock(set).remove(uri)
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

    /// The next `count` requests are answered 500.
    pub fn set_server_errors(&self, count: u32) {
        self.server_errors.store(count, Ordering::Relaxed);
    }

    /// Which requests are never answered.
    pub fn set_hang(&self, hang: Hang) {
        self.hang.store(hang as u8, Ordering::Relaxed);
    }

    /// `uri` is answered 200 with a body that is not JSON.
    pub fn set_malformed(&self, uri: &str) {
        lock(&self.malformed).insert(normalize(uri).into());
    }

    /// The resource at `uri` changes its ETag just before the next PATCH of it is checked (as
    /// if someone else had written it between the client's read and its PATCH).
    pub fn set_stale_etag_once(&self, uri: &str) {
        lock(&self.stale_etag).insert(normalize(uri).into());
    }

    /// The next `count` GETs of `uri` carry no ETag.
    pub fn set_no_etag(&self, uri: &str, count: u32) {
        lock(&self.no_etag).insert(normalize(uri).into(), count);
    }

    fn take_no_etag(&self, uri: &str) -> bool {
        let mut map = lock(&self.no_etag);
        let Some(left) = map.get_mut(uri) else { return false };
        *left -= 1;
        if *left == 0 {
            map.remove(uri);
        }
        true
    }

    pub(crate) fn take_stale_etag(&self, uri: &str) -> bool {
        take(&self.stale_etag, uri)
    }

    fn take_count(counter: &AtomicU32) -> bool {
        counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
    }
}

/// A request other than GET, as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `POST`, `PATCH`, `DELETE`...
    pub method: String,
    /// The URI path.
    pub path: String,
    /// The body: JSON, or a string when it is not JSON, null when empty.
    pub body: Value,
    /// Its `If-Match` header.
    pub if_match: Option<String>,
}

pub(crate) struct Shared {
    pub tree: Mutex<Tree>,
    pub options: Options,
    pub faults: Faults,
    requests: AtomicU64,
    recorded: Mutex<Vec<Recorded>>,
    pub generations: Mutex<BTreeMap<String, u64>>,
    pub machines: Mutex<BTreeMap<String, Machine>>,
    pub tasks: Mutex<Vec<Task>>,
    pub after_reset: Mutex<Vec<(String, Value)>>,
    pub sessions: Mutex<Sessions>,
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
            recorded: Mutex::default(),
            generations: Mutex::default(),
            machines: Mutex::default(),
            tasks: Mutex::default(),
            after_reset: Mutex::default(),
            sessions: Mutex::default(),
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

    /// Every request other than GET it has received, in order.
    pub fn recorded(&self) -> Vec<Recorded> {
        lock(&self.shared.recorded).clone()
    }

    /// The recorded requests with `method` (`"PATCH"`) whose path ends with `suffix`.
    pub fn recorded_matching(&self, method: &str, suffix: &str) -> Vec<Recorded> {
        let recorded = lock(&self.shared.recorded);
        recorded
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .cloned()
            .collect()
    }

    /// Expires every session now: their next request is a 401.
    pub fn expire_sessions(&self) {
        lock(&self.shared.sessions).expire_all();
    }

    /// How many sessions are open.
    pub fn open_sessions(&self) -> usize {
        lock(&self.shared.sessions).open()
    }

    /// Changes the tree while it runs (e.g. removes a resource).
    pub fn edit_tree(&self, edit: impl FnOnce(&mut Tree)) {
        edit(&mut lock(&self.shared.tree));
    }

    /// The document at `uri` now (with a system's power state as it is now).
    pub fn document(&self, uri: &str) -> Option<Value> {
        self.shared.document(normalize(uri), false)
    }
}

impl Drop for MockBmc {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Shared {
    /// The document at `path` as served now: a system's `PowerState` from its machine (a
    /// `read` counts towards the end of a transition).
    pub(crate) fn document(&self, path: &str, read: bool) -> Option<Value> {
        let mut doc = lock(&self.tree).get(path).cloned()?;
        if let Some(machine) = lock(&self.machines).get_mut(path) {
            doc["PowerState"] = json!(machine.state(&self.options, read));
        }
        Some(doc)
    }

    /// The ETag of `body` as served at `path`: a hash of the body and of the resource's
    /// generation (bumped to simulate another writer).
    pub(crate) fn etag(&self, path: &str, body: &[u8]) -> String {
        let generation = lock(&self.generations).get(path).copied().unwrap_or(0);
        etag(body, generation)
    }

    pub(crate) fn bump_generation(&self, path: &str) {
        *lock(&self.generations).entry(path.to_string()).or_insert(0) += 1;
    }
}

/// A weak ETag from a 64-bit FNV-1a hash of the body and a generation.
fn etag(body: &[u8], generation: u64) -> String {
    let hash = body
        .iter()
        .chain(&generation.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("W/\"{hash:016x}\"")
}

/// A Redfish error body.
pub(crate) fn error_body(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message,
        "@Message.ExtendedInfo": [{"MessageId": code, "Message": message}]}})
}

pub(crate) fn respond(status: StatusCode, body: Vec<u8>) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header("OData-Version", "4.0")
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

pub(crate) fn json_response(status: StatusCode, doc: &Value) -> Response {
    respond(status, serde_json::to_vec(doc).unwrap_or_default())
}

pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(status, &error_body(code, message))
}

fn basic_ok(options: &Options, headers: &HeaderMap) -> bool {
    let Some((user, password)) = &options.credentials else { return true };
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .is_some_and(|given| given == expected)
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    if basic_ok(&shared.options, headers) {
        return true;
    }
    let token = headers.get("x-auth-token").and_then(|v| v.to_str().ok());
    token.is_some_and(|t| lock(&shared.sessions).admit(t, shared.options.session_max_requests))
}

fn record(shared: &Shared, method: &Method, path: &str, headers: &HeaderMap, body: &Bytes) {
    let doc = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
    };
    let if_match = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string);
    let entry =
        Recorded { method: method.to_string(), path: path.to_string(), body: doc, if_match };
    lock(&shared.recorded).push(entry);
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let path = normalize(uri.path()).to_string();
    if method != Method::GET {
        record(&shared, &method, &path, &headers, &body);
    }
    let delay_ms = shared.faults.delay_ms.load(Ordering::Relaxed);
    if delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
    }
    let hang = shared.faults.hang.load(Ordering::Relaxed);
    if hang == Hang::Everything as u8 {
        std::future::pending::<()>().await;
    }
    let response = route(&shared, &method, &path, &headers, &body);
    if hang == Hang::Writes as u8 && method != Method::GET {
        std::future::pending::<()>().await;
    }
    response
}

fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    if *method == Method::POST && path == crate::sessions::SESSIONS {
        return crate::sessions::login(shared, body);
    }
    if !authorized(shared, headers) {
        let mut response =
            error(StatusCode::UNAUTHORIZED, "Base.1.0.NoValidSession", "authentication required");
        let realm = header::HeaderValue::from_static("Basic realm=\"mock BMC\"");
        response.headers_mut().insert(header::WWW_AUTHENTICATE, realm);
        return response;
    }
    if Faults::take_count(&shared.faults.unavailable) {
        let retry_after = shared.faults.retry_after_s.load(Ordering::Relaxed);
        let mut response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Base.1.0.ServiceTemporarilyUnavailable",
            "try again later",
        );
        response.headers_mut().insert(header::RETRY_AFTER, retry_after.into());
        return response;
    }
    if Faults::take_count(&shared.faults.server_errors) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "Base.1.0.InternalError", "injected");
    }
    match *method {
        Method::GET => get(shared, path),
        Method::PATCH => crate::write::patch(shared, path, headers, body),
        Method::POST if path.ends_with(crate::power::RESET_SUFFIX) => {
            crate::power::reset(shared, path, body)
        }
        Method::DELETE if path.starts_with(crate::sessions::SESSIONS) => {
            crate::sessions::logout(shared, path)
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Base.1.0.ActionNotSupported",
            &format!("{method} {path} is not served"),
        ),
    }
}

fn get(shared: &Shared, path: &str) -> Response {
    if lock(&shared.faults.malformed).contains(path) {
        return respond(StatusCode::OK, b"{\"Id\": \"truncated".to_vec());
    }
    if let Some(response) = crate::write::task_monitor(shared, path) {
        return response;
    }
    match shared.document(path, true) {
        Some(doc) if is_error_only(&doc) => json_response(StatusCode::NOT_FOUND, &doc),
        Some(doc) => {
            let body = serde_json::to_vec(&doc).unwrap_or_default();
            let tag = shared.etag(path, &body);
            let mut response = respond(StatusCode::OK, body);
            if !shared.faults.take_no_etag(path)
                && let Ok(tag) = header::HeaderValue::from_str(&tag)
            {
                response.headers_mut().insert(header::ETAG, tag);
            }
            response
        }
        None => error(
            StatusCode::NOT_FOUND,
            "Base.1.0.ResourceMissingAtURI",
            &format!("no resource at {path}"),
        ),
    }
}

/// A captured error answer: an object whose only key is `error`.
pub(crate) fn is_error_only(doc: &Value) -> bool {
    doc.as_object().is_some_and(|o| o.len() == 1 && o.contains_key("error"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_differ_with_the_body_and_the_generation() {
        assert_eq!(etag(b"{}", 0), etag(b"{}", 0));
        assert_ne!(etag(b"{}", 0), etag(b"{ }", 0));
        assert_ne!(etag(b"{}", 0), etag(b"{}", 1));
        assert!(etag(b"x", 0).starts_with("W/\""));
    }

    #[test]
    fn an_error_only_document_is_recognised() {
        assert!(is_error_only(&json!({"error": {"code": "c"}})));
        assert!(!is_error_only(&json!({"error": {}, "Id": "x"})));
    }

    #[test]
    fn basic_auth_is_checked() {
        let options =
            Options { credentials: Some(("root".into(), "pw".into())), ..Options::default() };
        let mut headers = HeaderMap::new();
        assert!(!basic_ok(&options, &headers));
        headers.insert(header::AUTHORIZATION, "Basic cm9vdDpwdw==".parse().unwrap());
        assert!(basic_ok(&options, &headers));
        headers.insert(header::AUTHORIZATION, "Basic cm9vdDp4".parse().unwrap());
        assert!(!basic_ok(&options, &headers));
        assert!(basic_ok(&Options::default(), &HeaderMap::new()));
    }
}
