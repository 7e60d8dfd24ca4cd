//! The HTTP side: one axum fallback handler that answers from the tree, with faults; writes
//! (`write`), resets (`power`) and sessions (`sessions`) have modules of their own.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use base64::Engine as _;
use serde_json::Value;

use crate::MockError;
use crate::state::{
    Faults, Hang, Options, Recorded, Shared, error, is_error_only, json_response, lock, respond,
};
use crate::tree::{Tree, normalize};

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

    /// Forgets the recorded requests (a long run's memory stays flat; call it with no request in
    /// flight).
    pub fn clear_recorded(&self) {
        lock(&self.shared.recorded).clear();
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

fn basic_ok(options: &Options, headers: &HeaderMap) -> bool {
    let Some((user, password)) = &options.credentials else { return true };
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .is_some_and(|given| given == expected)
}

/// What a service shall serve without authentication (DSP0266, "Authentication"): the
/// `/redfish` version document, the service root, the OData service document and `$metadata`.
const PUBLIC: [&str; 4] = ["/redfish", "/redfish/v1", "/redfish/v1/odata", "/redfish/v1/$metadata"];

/// A GET of a public resource carrying no credentials at all: served without authentication
/// (credentials that are given are checked, as on any other resource).
fn public(method: &Method, path: &str, headers: &HeaderMap) -> bool {
    *method == Method::GET
        && PUBLIC.contains(&path)
        && !headers.contains_key(header::AUTHORIZATION)
        && !headers.contains_key("x-auth-token")
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    if basic_ok(&shared.options, headers) {
        return true;
    }
    let token = headers.get("x-auth-token").and_then(|v| v.to_str().ok());
    token.is_some_and(|t| lock(&shared.sessions).admit(t, shared.options.session_max_requests))
}

/// Records a request; its index in the record.
fn record(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> usize {
    let doc = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
    };
    let if_match = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string);
    let entry = Recorded {
        method: method.to_string(),
        path: path.to_string(),
        body: doc,
        if_match,
        status: None,
    };
    let mut recorded = lock(&shared.recorded);
    recorded.push(entry);
    recorded.len() - 1
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
    let write = method != Method::GET;
    let index = write.then(|| record(&shared, &method, &path, &headers, &body));
    let delay_ms = shared.faults.delay_ms.load(Ordering::Relaxed);
    if delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
    }
    let hang = shared.faults.hang.load(Ordering::Relaxed);
    if hang == Hang::Everything as u8 || (write && hang == Hang::WritesUnprocessed as u8) {
        std::future::pending::<()>().await;
    }
    let response = route(&shared, &method, &path, &headers, &body);
    if write && hang == Hang::Writes as u8 {
        std::future::pending::<()>().await;
    }
    if let Some(i) = index
        && let Some(entry) = lock(&shared.recorded).get_mut(i)
    {
        entry.status = Some(response.status().as_u16());
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
    if !public(method, path, headers) && !authorized(shared, headers) {
        let mut response =
            error(StatusCode::UNAUTHORIZED, "Base.1.0.NoValidSession", "authentication required");
        let realm = header::HeaderValue::from_static("Basic realm=\"mock BMC\"");
        response.headers_mut().insert(header::WWW_AUTHENTICATE, realm);
        return response;
    }
    let write = *method != Method::GET;
    if Faults::take_count(&shared.faults.unavailable)
        || (write && Faults::take_count(&shared.faults.unavailable_writes))
    {
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
            let response = crate::power::reset(shared, path, body);
            if response.status() != StatusCode::NO_CONTENT {
                return response;
            }
            crate::write::apply_after_reset(shared);
            match shared.options.reset_task_polls {
                Some(polls) => crate::write::start_task(shared, polls, None),
                None => response,
            }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::state::etag;

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

    #[test]
    fn the_service_root_is_public_to_requests_without_credentials() {
        let none = HeaderMap::new();
        assert!(public(&Method::GET, "/redfish/v1", &none));
        assert!(public(&Method::GET, "/redfish", &none));
        assert!(!public(&Method::GET, "/redfish/v1/Chassis", &none));
        assert!(!public(&Method::POST, "/redfish/v1", &none));
        let mut basic = HeaderMap::new();
        basic.insert(header::AUTHORIZATION, "Basic cm9vdDp4".parse().unwrap());
        assert!(!public(&Method::GET, "/redfish/v1", &basic), "given credentials are checked");
        let mut token = HeaderMap::new();
        token.insert("x-auth-token", "expired".parse().unwrap());
        assert!(!public(&Method::GET, "/redfish/v1", &token));
    }
}
