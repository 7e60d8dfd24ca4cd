//! The async HTTP client of one BMC: HTTP/1.1 over hyper-util's pooled client, plain or TLS
//! (`transport`), basic auth or a Redfish session (`session`), a timeout per request, a bound
//! on requests in flight, and retries that never resend a change whose answer was lost.
//!
//! Retry rules: a request the BMC certainly did not process (the connection was refused, a 503
//! or 429) is retried for every method; a GET is also retried on a timeout, a lost answer and
//! 500/502/504. Waits double from `backoff_ms`, capped at [`MAX_BACKOFF_MS`]; a `Retry-After`
//! in seconds is honoured up to [`MAX_RETRY_AFTER_S`]. A POST, PATCH or DELETE sent and not
//! answered is [`Error::OutcomeUnknown`], never resent.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};

use crate::discover::{self, Fetch};
use crate::error::Error;
use crate::readings::Readings;
use crate::session::{SESSIONS, Session, path_of};
use crate::transport::{Connector, tls_config};

/// Requests in flight to one BMC at most, by default (HPE PCS uses 4).
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 4;
/// Timeout of one request, by default.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Retries of a request that may be retried, by default.
pub const DEFAULT_RETRIES: u32 = 3;
/// The first wait before a retry, by default; it doubles with each retry.
pub const DEFAULT_BACKOFF_MS: u64 = 250;
/// The longest wait between two tries of a request.
pub const MAX_BACKOFF_MS: u64 = 10_000;
/// The longest `Retry-After` honoured, seconds.
pub const MAX_RETRY_AFTER_S: u64 = 30;
/// How often a task monitor is polled, by default.
pub const DEFAULT_TASK_POLL_INTERVAL_MS: u64 = 1_000;
/// How long a task is followed at most, by default.
pub const DEFAULT_TASK_DEADLINE_MS: u64 = 120_000;

/// How requests are authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// HTTP basic auth on every request.
    Basic {
        /// User.
        user: String,
        /// Password.
        password: String,
    },
    /// A Redfish session: one login (`POST /redfish/v1/SessionService/Sessions`), then its
    /// `X-Auth-Token` on every request; a 401 logs in again once; [`Bmc::close`] ends it.
    Session {
        /// User.
        user: String,
        /// Password.
        password: String,
    },
}

/// How to reach one BMC.
#[derive(Debug, Clone)]
pub struct BmcConfig {
    /// `http://HOST[:PORT]` or `https://HOST[:PORT]`.
    pub url: String,
    /// Credentials.
    pub auth: Auth,
    /// For https: the PEM file of the CA(s) that sign the BMC's certificate.
    pub ca_file: Option<PathBuf>,
    /// For https: accept any certificate (no verification; the operator's explicit choice).
    pub insecure: bool,
    /// Timeout of each request, from sending it to the end of its answer.
    pub timeout_ms: u64,
    /// Requests in flight at most.
    pub max_concurrent_requests: usize,
    /// Retries of a request that may be retried (see the module's rules).
    pub retries: u32,
    /// The first wait before a retry; it doubles with each retry.
    pub backoff_ms: u64,
    /// How often a task monitor (a `202` answer's `Location`) is polled.
    pub task_poll_interval_ms: u64,
    /// How long a task is followed at most.
    pub task_deadline_ms: u64,
}

impl BmcConfig {
    /// The defaults for `url`: no credentials, no CA, the `DEFAULT_*` constants.
    pub fn new(url: impl Into<String>) -> BmcConfig {
        BmcConfig {
            url: url.into(),
            auth: Auth::None,
            ca_file: None,
            insecure: false,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            retries: DEFAULT_RETRIES,
            backoff_ms: DEFAULT_BACKOFF_MS,
            task_poll_interval_ms: DEFAULT_TASK_POLL_INTERVAL_MS,
            task_deadline_ms: DEFAULT_TASK_DEADLINE_MS,
        }
    }
}

/// An answer: status, headers, body.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON (an empty body is `null`).
    pub fn json(&self, uri: &str) -> Result<Value, Error> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::Malformed { uri: uri.to_string(), reason: e.to_string() })
    }

    fn retry_after_s(&self) -> Option<u64> {
        self.header(header::RETRY_AFTER).and_then(|v| v.trim().parse().ok())
    }

    /// The error status as an [`Error`], with the Redfish error's message when there is one.
    pub fn into_error(self, uri: &str) -> Error {
        if self.status == StatusCode::UNAUTHORIZED {
            return Error::Unauthorized { uri: uri.to_string() };
        }
        if self.status == StatusCode::NOT_FOUND {
            return Error::NotFound { uri: uri.to_string() };
        }
        let message = serde_json::from_slice::<Value>(&self.body).ok().and_then(|doc| {
            let error = doc.get("error")?;
            let info = error.get("@Message.ExtendedInfo").and_then(|i| i.get(0));
            let text = info.and_then(|i| i.get("Message")).or_else(|| error.get("message"));
            text.and_then(Value::as_str).map(str::to_string)
        });
        Error::Status {
            uri: uri.to_string(),
            status: self.status.as_u16(),
            retry_after_s: self.retry_after_s(),
            message,
        }
    }
}

/// How one exchange ended.
enum Once {
    Answer(Answer),
    /// Certainly not processed: the connection could not be made.
    NotSent(String),
    /// Perhaps processed: sent, and no (whole) answer.
    Lost(String),
    TimedOut,
}

/// One BMC.
pub struct Bmc {
    base: String,
    client: Client<Connector, Full<Bytes>>,
    auth: Auth,
    basic: Option<HeaderValue>,
    pub(crate) session: Mutex<Option<Session>>,
    timeout_ms: u64,
    retries: u32,
    backoff_ms: u64,
    pub(crate) task_poll_interval_ms: u64,
    pub(crate) task_deadline_ms: u64,
    permits: Semaphore,
    /// The URI of each system found by its id (`""`: the first), remembered: a system is read
    /// directly after the first walk, and looked for again when its URI answers 404.
    pub(crate) systems_found: std::sync::Mutex<HashMap<String, String>>,
    /// Where each chassis's limits were found by the last whole walk ([`Bmc::limit_readings`]).
    limits_found: std::sync::Mutex<Option<Vec<discover::LimitSources>>>,
}

impl Bmc {
    /// A client of the BMC at `config.url`; nothing is sent yet.
    pub fn new(config: &BmcConfig) -> Result<Bmc, Error> {
        let url = config.url.trim_end_matches('/');
        let bad = |reason: &str| Error::Url { url: config.url.clone(), reason: reason.into() };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL; give http(s)://HOST[:PORT]"))?;
        let tls = match uri.scheme_str() {
            Some("http") => None,
            Some("https") => {
                Some(tls_config(config.ca_file.as_deref(), config.insecure).map_err(|e| bad(&e))?)
            }
            _ => return Err(bad("the scheme must be http or https")),
        };
        if uri.authority().is_none() || !uri.path().trim_matches('/').is_empty() {
            return Err(bad("give the scheme, host and port only, no path"));
        }
        let basic = match &config.auth {
            Auth::Basic { user, password } => Some(
                crate::session::basic(user, password)
                    .ok_or_else(|| bad("the credentials cannot be sent in a header"))?,
            ),
            Auth::None | Auth::Session { .. } => None,
        };
        let connector = Connector::new(tls, config.timeout_ms);
        Ok(Bmc {
            base: url.to_string(),
            client: Client::builder(TokioExecutor::new()).build(connector),
            auth: config.auth.clone(),
            basic,
            session: Mutex::new(None),
            timeout_ms: config.timeout_ms,
            retries: config.retries,
            backoff_ms: config.backoff_ms,
            task_poll_interval_ms: config.task_poll_interval_ms,
            task_deadline_ms: config.task_deadline_ms,
            permits: Semaphore::new(config.max_concurrent_requests.max(1)),
            systems_found: std::sync::Mutex::default(),
            limits_found: std::sync::Mutex::default(),
        })
    }

    /// Everything the BMC says of power, energy and limits, from its service root down.
    pub async fn readings(&self) -> Result<Readings, Error> {
        discover::read(self).await
    }

    /// The BMC's power limits and their ranges, read with fewer requests than [`Bmc::readings`]
    /// (each chassis's `Controls` and `Power`, not its sensors); see `discover::read_limits`.
    /// Where the limits were found is remembered after a walk that read everything: later calls
    /// read those resources alone (one request per limit's resource), and walk again when one
    /// of them is gone (404) or changed.
    pub async fn limit_readings(&self) -> Result<Readings, Error> {
        let known = self.limits_found.lock().ok().and_then(|k| k.clone());
        if let Some(sources) = known
            && let Some(readings) = discover::read_limits_again(self, &sources).await?
        {
            return Ok(readings);
        }
        let (readings, sources) = discover::read_limits_at(self).await?;
        if let Ok(mut known) = self.limits_found.lock() {
            *known = sources;
        }
        Ok(readings)
    }

    /// GETs the JSON document at `uri` (a path, `/redfish/v1/...`); `Ok(None)` on 404.
    pub async fn get_json(&self, uri: &str) -> Result<Option<Value>, Error> {
        let answer = self.send(Method::GET, uri, None, &[]).await?;
        match answer.status {
            StatusCode::OK => answer.json(uri).map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(answer.into_error(uri)),
        }
    }

    /// Ends the session, if one was opened (best effort: a failure is ignored).
    pub async fn close(&self) {
        let Some(session) = self.session.lock().await.take() else { return };
        let Some(location) = session.location else { return };
        let headers = [(HeaderName::from_static("x-auth-token"), session.token)];
        let _ = self.once(&Method::DELETE, &location, Bytes::new(), &headers).await;
    }

    /// Sends a request with the configured credentials: with a session, a 401 logs in again
    /// once and resends (a 401 was not processed). Error statuses are answers here.
    pub(crate) async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<&Value>,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<Answer, Error> {
        let body = match body {
            Some(doc) => Bytes::from(serde_json::to_vec(doc).unwrap_or_default()),
            None => Bytes::new(),
        };
        let mut relogged = false;
        loop {
            let mut headers = extra.to_vec();
            let token = match &self.auth {
                Auth::None => None,
                Auth::Basic { .. } => {
                    headers.extend(self.basic.clone().map(|b| (header::AUTHORIZATION, b)));
                    None
                }
                Auth::Session { user, password } => {
                    let token = self.session_token(user, password, None).await?;
                    headers.push((HeaderName::from_static("x-auth-token"), token.clone()));
                    Some(token)
                }
            };
            let answer = self.exchange(&method, uri, body.clone(), &headers).await?;
            if answer.status != StatusCode::UNAUTHORIZED {
                return Ok(answer);
            }
            match (&self.auth, token) {
                (Auth::Session { user, password }, Some(used)) if !relogged => {
                    relogged = true;
                    self.session_token(user, password, Some(&used)).await?;
                }
                _ => return Err(Error::Unauthorized { uri: uri.to_string() }),
            }
        }
    }

    /// One request with its retries (no credentials added here).
    pub(crate) async fn exchange(
        &self,
        method: &Method,
        uri: &str,
        body: Bytes,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<Answer, Error> {
        let idempotent = *method == Method::GET;
        let mut attempt = 0;
        loop {
            let retry = attempt < self.retries;
            let retry_after_s = match self.once(method, uri, body.clone(), headers).await {
                Once::Answer(answer) => {
                    let status = answer.status.as_u16();
                    let unprocessed = matches!(status, 429 | 503);
                    let flaky = idempotent && matches!(status, 500 | 502 | 504);
                    if !(retry && (unprocessed || flaky)) {
                        return Ok(answer);
                    }
                    answer.retry_after_s()
                }
                Once::NotSent(reason) if !retry => {
                    return Err(Error::Transport { uri: uri.to_string(), reason });
                }
                Once::NotSent(_) => None,
                Once::TimedOut if !idempotent => {
                    return Err(self.unknown(
                        method,
                        uri,
                        format!("no answer within {} ms", self.timeout_ms),
                    ));
                }
                Once::Lost(reason) if !idempotent => {
                    return Err(self.unknown(method, uri, reason));
                }
                Once::Lost(reason) if !retry => {
                    return Err(Error::Transport { uri: uri.to_string(), reason });
                }
                Once::TimedOut if !retry => {
                    return Err(Error::Timeout {
                        uri: uri.to_string(),
                        timeout_ms: self.timeout_ms,
                    });
                }
                Once::Lost(_) | Once::TimedOut => None,
            };
            let wait_ms = retry_wait_ms(self.backoff_ms, attempt, retry_after_s);
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            attempt += 1;
        }
    }

    fn unknown(&self, method: &Method, uri: &str, reason: String) -> Error {
        Error::OutcomeUnknown { method: method.to_string(), uri: uri.to_string(), reason }
    }

    /// One exchange, bounded by the timeout and the permits.
    async fn once(
        &self,
        method: &Method,
        uri: &str,
        body: Bytes,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Once {
        let target = format!("{}{uri}", self.base);
        let mut request = Request::builder()
            .method(method.clone())
            .uri(target.as_str())
            .header(header::ACCEPT, "application/json");
        if !body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = match request.body(Full::new(body)) {
            Ok(request) => request,
            Err(e) => return Once::NotSent(format!("{target} is not a valid request: {e}")),
        };
        let Ok(_permit) = self.permits.acquire().await else {
            return Once::NotSent("the client is closed".into());
        };
        let exchange = async {
            let response = match self.client.request(request).await {
                Ok(response) => response,
                Err(e) if e.is_connect() => return Once::NotSent(chain(&e)),
                Err(e) => return Once::Lost(chain(&e)),
            };
            let (parts, body) = response.into_parts();
            match body.collect().await {
                Ok(body) => Once::Answer(Answer {
                    status: parts.status,
                    headers: parts.headers,
                    body: body.to_bytes(),
                }),
                Err(e) => Once::Lost(chain(&e)),
            }
        };
        tokio::time::timeout(Duration::from_millis(self.timeout_ms), exchange)
            .await
            .unwrap_or(Once::TimedOut)
    }
}

/// The wait before retry number `attempt + 1`: the BMC's `Retry-After` (capped at
/// [`MAX_RETRY_AFTER_S`]), else `backoff_ms` doubled `attempt` times (capped at
/// [`MAX_BACKOFF_MS`]).
pub fn retry_wait_ms(backoff_ms: u64, attempt: u32, retry_after_s: Option<u64>) -> u64 {
    match retry_after_s {
        Some(s) => s.min(MAX_RETRY_AFTER_S) * 1000,
        None => backoff_ms.saturating_mul(1 << attempt.min(16)).min(MAX_BACKOFF_MS),
    }
}

/// An error and its sources, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

impl Fetch for Bmc {
    async fn get(&self, uri: &str) -> Result<Option<Value>, Error> {
        self.get_json(uri).await
    }
}

/// Sessions: login and renewal.
impl Bmc {
    /// The session's token, logging in when there is none or when the one there is `stale`
    /// (refused with a 401); concurrent callers wait for one login.
    pub(crate) async fn session_token(
        &self,
        user: &str,
        password: &str,
        stale: Option<&HeaderValue>,
    ) -> Result<HeaderValue, Error> {
        let mut current = self.session.lock().await;
        if let Some(session) = current.as_ref()
            && stale.is_none_or(|used| *used != session.token)
        {
            return Ok(session.token.clone());
        }
        let body = json!({"UserName": user, "Password": password});
        let body = Bytes::from(body.to_string());
        let answer = self.exchange(&Method::POST, SESSIONS, body, &[]).await?;
        if !answer.status.is_success() {
            return Err(answer.into_error(SESSIONS));
        }
        let token =
            answer.headers.get("x-auth-token").cloned().ok_or_else(|| Error::Malformed {
                uri: SESSIONS.into(),
                reason: "the login's answer has no X-Auth-Token header".into(),
            })?;
        let location = answer.header(header::LOCATION).map(path_of).or_else(|| {
            let doc = answer.json(SESSIONS).ok()?;
            doc.get("@odata.id").and_then(|v| v.as_str()).map(str::to_string)
        });
        *current = Some(Session { token: token.clone(), location });
        Ok(token)
    }
}
