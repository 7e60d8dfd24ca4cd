//! The mock's state and its plain helpers: options, faults, the shared state of one mock
//! (tree, machines, sessions, tasks, recorder), ETags and Redfish error answers. The handlers
//! (`serve`, `write`, `power`, `sessions`) use it; it uses none of them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::tree::{Tree, normalize};

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
    /// A reset is answered 202 with a task monitor that answers 202 this many times, then
    /// completes (the reset itself starts at once).
    pub reset_task_polls: Option<u32>,
    /// A graceful shutdown or restart is accepted and never happens.
    pub graceful_never_finishes: bool,
    /// A session expires after this many requests (its login not counted).
    pub session_max_requests: Option<u32>,
}

/// Faults to inject, changeable while the server runs.
#[derive(Debug, Default)]
pub struct Faults {
    pub(crate) delay_ms: AtomicU64,
    pub(crate) unavailable: AtomicU32,
    pub(crate) unavailable_writes: AtomicU32,
    pub(crate) retry_after_s: AtomicU32,
    pub(crate) server_errors: AtomicU32,
    pub(crate) hang: AtomicU8,
    pub(crate) malformed: Mutex<BTreeSet<String>>,
    pub(crate) stale_etag: Mutex<BTreeSet<String>>,
    pub(crate) no_etag: Mutex<BTreeMap<String, u32>>,
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
    /// POST, PATCH and DELETE: recorded, never processed and never answered (a request held
    /// on the wire until the client gives up).
    WritesUnprocessed = 3,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn take(set: &Mutex<BTreeSet<String>>, uri: &str) -> bool {
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

    /// The next `count` POST, PATCH or DELETE requests are answered 503 with
    /// `Retry-After: retry_after_s`, unprocessed (GETs are answered as usual).
    pub fn set_unavailable_writes(&self, count: u32, retry_after_s: u32) {
        self.retry_after_s.store(retry_after_s, Ordering::Relaxed);
        self.unavailable_writes.store(count, Ordering::Relaxed);
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

    pub(crate) fn take_no_etag(&self, uri: &str) -> bool {
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

    pub(crate) fn take_count(counter: &AtomicU32) -> bool {
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
    /// The status it was answered with (`None`: not answered, or not yet).
    pub status: Option<u16>,
}

pub(crate) struct Shared {
    pub tree: Mutex<Tree>,
    pub options: Options,
    pub faults: Faults,
    pub(crate) requests: AtomicU64,
    pub(crate) recorded: Mutex<Vec<Recorded>>,
    pub generations: Mutex<BTreeMap<String, u64>>,
    pub machines: Mutex<BTreeMap<String, Machine>>,
    pub tasks: Mutex<Vec<Task>>,
    pub after_reset: Mutex<Vec<(String, Value)>>,
    pub sessions: Mutex<Sessions>,
}

#[derive(Debug)]
pub(crate) struct Step {
    pub state: &'static str,
    pub until: Instant,
    pub reads_left: u32,
}

/// A system's power: the steps under way, and where they end.
#[derive(Debug)]
pub(crate) struct Machine {
    pub steps: VecDeque<Step>,
    pub settled: String,
}

#[derive(Debug)]
pub(crate) struct Live {
    pub id: u32,
    pub requests: u32,
}

/// The open sessions, by token.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    pub created: u32,
    pub live: BTreeMap<String, Live>,
}

/// A task: a PATCH waiting to be made (the resource and its new document), or a reset.
#[derive(Debug)]
pub(crate) struct Task {
    pub remaining_polls: u32,
    pub change: Option<(String, Value)>,
    pub done: bool,
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
pub(crate) fn etag(body: &[u8], generation: u64) -> String {
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

/// A captured error answer: an object whose only key is `error`.
pub(crate) fn is_error_only(doc: &Value) -> bool {
    doc.as_object().is_some_and(|o| o.len() == 1 && o.contains_key("error"))
}
