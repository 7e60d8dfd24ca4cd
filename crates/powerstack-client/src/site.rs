//! The blocking client of the site service (`powerstack site serve`), for the agent's pusher, the
//! CLI and the scheduler hooks: one typed call per route, over [`crate::request`], in TLS for an
//! `https://` site (trusting the site's CA bundle given with [`Site::with_ca_file`], else the
//! system's trust store).

use std::path::Path;
use std::time::Duration;

use powerstack_api::agent::ErrorV1;
use powerstack_api::site::{
    BatchStoredV1, BatchV1, SiteJobBeginV1, SiteJobReportV1, SiteJobV1, SiteJobsQueryV1,
    SiteJobsV1, SiteNodesV1, SitePowerV1, SiteTimeseriesV1, StreamRegisterV1, StreamRegisteredV1,
};
use powerstack_api::site_bound::{
    AdmitRequestV1, AdmitV1, BoundDecisionsV1, SiteBoundSetV1, SiteBoundV1,
};
use powerstack_api::site_tasks::{
    PowerCapRequestV1, PowerCapSnapshotRequestV1, TaskKindV1, TaskV1, TasksV1, TransitionRequestV1,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::addr::Addr;
use crate::error::ClientError;
use crate::http::send;
use crate::tls::Trust;

/// Why a call to the site failed, in one line naming the site.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// The site's address could not be used.
    #[error("invalid site address {url:?}: {why}")]
    InvalidUrl {
        /// The address as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// Nothing answered (refused, timed out, reset): the site is away.
    #[error("site {url} unreachable: {why}")]
    Unreachable {
        /// The site.
        url: String,
        /// What the transport saw, in the site's words.
        why: String,
    },
    /// TLS failed (the certificate, its name, the CA file, a peer that does not speak TLS, or
    /// an `http://` site that does): the settings must change, trying again will not help.
    #[error("site {url}: {why}")]
    Tls {
        /// The site.
        url: String,
        /// What failed and what to do.
        why: String,
    },
    /// The site answered with an error status.
    #[error("site {url} answered {status}: {message}")]
    Status {
        /// The site.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The error's message.
        message: String,
    },
    /// The site answered something that is not the expected document.
    #[error("site {url} sent an invalid answer: {why}")]
    Invalid {
        /// The site.
        url: String,
        /// What is wrong with it.
        why: String,
    },
}

impl SiteError {
    /// The HTTP status of an error answer (`None`: no answer at all).
    pub fn status(&self) -> Option<u16> {
        match self {
            SiteError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: no answer, or a 5xx, 408 or 429 answer. A 4xx is
    /// the request's fault and will fail again.
    pub fn is_transient(&self) -> bool {
        match self {
            SiteError::Unreachable { .. } | SiteError::Invalid { .. } => true,
            SiteError::Status { status, .. } => *status >= 500 || matches!(status, 408 | 429),
            SiteError::InvalidUrl { .. } | SiteError::Tls { .. } => false,
        }
    }
}

/// A site service: its address, the bearer token to send, how long each call may take, and, for
/// an `https://` site, whom to trust.
#[derive(Clone, Debug)]
pub struct Site {
    url: String,
    addr: Addr,
    token: Option<String>,
    timeout: Duration,
    https: bool,
    /// The site CA's certificates; `None`: the system's trust store.
    ca: Option<Trust>,
}

impl Site {
    /// The site at `url`: `https://HOST:PORT` (TLS), `http://HOST:PORT`, `HOST:PORT`, or a Unix
    /// socket path (containing '/', or after `unix:`; always plain). An `https://` site is
    /// trusted through the system's trust store unless [`Site::with_ca_file`] gives its CA.
    pub fn new(url: &str, token: Option<String>, timeout: Duration) -> Result<Site, SiteError> {
        let bad = |why: &str| SiteError::InvalidUrl { url: url.to_string(), why: why.to_string() };
        let t = url.trim();
        let (rest, https) = if let Some(r) = t.strip_prefix("http://") {
            (r.trim_end_matches('/'), false)
        } else if let Some(r) = t.strip_prefix("https://") {
            (r.trim_end_matches('/'), true)
        } else {
            (t, false)
        };
        let addr = Addr::parse(rest).map_err(|e| bad(&e.to_string()))?;
        if https && matches!(addr, Addr::Unix(_)) {
            return Err(bad("https:// needs HOST:PORT; a Unix socket is spoken to in plain HTTP"));
        }
        Ok(Site { url: t.to_string(), addr, token, timeout, https, ca: None })
    }

    /// Trusts the CA certificates of the PEM bundle at `path` (`None`: the system's trust
    /// store) for an `https://` site. The file is read now: a missing or invalid one is an error
    /// naming it, whatever the site's scheme.
    pub fn with_ca_file(mut self, path: Option<&Path>) -> Result<Site, SiteError> {
        self.ca = match path {
            Some(p) => Some(
                Trust::ca_file(p).map_err(|why| SiteError::Tls { url: self.url.clone(), why })?,
            ),
            None => None,
        };
        Ok(self)
    }

    /// The same site, each call taking at most `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Site {
        self.timeout = timeout;
        self
    }

    /// Whether calls go in TLS.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The site's address as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends `method path` with `body` as JSON and reads a `T` from a 2xx answer.
    pub fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, SiteError> {
        let invalid = |why: String| SiteError::Invalid { url: self.url.clone(), why };
        let text = match body {
            Some(b) => Some(serde_json::to_string(b).map_err(|e| invalid(e.to_string()))?),
            None => None,
        };
        let system;
        let tls = match (self.https, &self.ca) {
            (false, _) => None,
            (true, Some(ca)) => Some(ca),
            (true, None) => {
                system =
                    Trust::system().map_err(|why| SiteError::Tls { url: self.url.clone(), why })?;
                Some(&system)
            }
        };
        let token = self.token.as_deref();
        let r = send(&self.addr, tls, method, path, text.as_deref(), token, self.timeout)
            .map_err(|source| self.failure(source))?;
        if !r.is_success() {
            let message = serde_json::from_str::<ErrorV1>(&r.body)
                .map(|e| e.error.message)
                .unwrap_or_else(|_| r.message());
            return Err(SiteError::Status { url: self.url.clone(), status: r.status, message });
        }
        serde_json::from_str(&r.body).map_err(|e| invalid(e.to_string()))
    }

    fn failure(&self, source: ClientError) -> SiteError {
        let url = self.url.clone();
        match source {
            ClientError::InvalidRequest { why, .. } | ClientError::InvalidAddr { why, .. } => {
                SiteError::InvalidUrl { url, why }
            }
            ClientError::Tls { why, .. } => SiteError::Tls { url, why },
            // A TLS server closes on a plain request, or answers what is not HTTP.
            ClientError::Protocol { why, .. }
                if !self.https && matches!(self.addr, Addr::Tcp(_)) =>
            {
                SiteError::Unreachable {
                    url,
                    why: format!(
                        "invalid HTTP answer: {why}: is it serving https (then use https://)?"
                    ),
                }
            }
            source => SiteError::Unreachable { url, why: unreachable(&source) },
        }
    }

    /// Registers stream `stream` of node `node`.
    pub fn register(
        &self,
        node: &str,
        stream: &str,
        body: &StreamRegisterV1,
    ) -> Result<StreamRegisteredV1, SiteError> {
        self.call("PUT", &format!("/v1/nodes/{node}/streams/{stream}"), Some(body))
    }

    /// Pushes a batch of stream `stream` of node `node`.
    pub fn push(
        &self,
        node: &str,
        stream: &str,
        batch: &BatchV1,
    ) -> Result<BatchStoredV1, SiteError> {
        self.call("POST", &format!("/v1/nodes/{node}/streams/{stream}/batches"), Some(batch))
    }

    /// Records a job's beginning.
    pub fn begin_job(&self, job: &SiteJobBeginV1) -> Result<SiteJobV1, SiteError> {
        self.call("POST", "/v1/jobs", Some(job))
    }

    /// Records job `id`'s end.
    pub fn end_job(&self, id: &str) -> Result<SiteJobV1, SiteError> {
        self.call("POST", &format!("/v1/jobs/{}/end", encode(id)), None::<&()>)
    }

    /// Job `id`'s report.
    pub fn job_report(&self, id: &str) -> Result<SiteJobReportV1, SiteError> {
        self.call("GET", &format!("/v1/jobs/{}", encode(id)), None::<&()>)
    }

    /// Job `id`'s node power over time, `step` a duration (`None`: the site chooses).
    pub fn job_timeseries(
        &self,
        id: &str,
        step: Option<&str>,
    ) -> Result<SiteTimeseriesV1, SiteError> {
        let query = step.map(|s| format!("?step={}", encode(s))).unwrap_or_default();
        self.call("GET", &format!("/v1/jobs/{}/timeseries{query}", encode(id)), None::<&()>)
    }

    /// Jobs matching `q`, newest first.
    pub fn jobs(&self, q: &SiteJobsQueryV1) -> Result<SiteJobsV1, SiteError> {
        let mut parts = Vec::new();
        if let Some(u) = &q.user {
            parts.push(format!("user={}", encode(u)));
        }
        if let Some(s) = q.since {
            parts.push(format!("since={s}"));
        }
        if let Some(u) = q.until {
            parts.push(format!("until={u}"));
        }
        if let Some(l) = q.limit {
            parts.push(format!("limit={l}"));
        }
        let query = if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) };
        self.call("GET", &format!("/v1/jobs{query}"), None::<&()>)
    }

    /// The nodes known to the site.
    pub fn nodes(&self) -> Result<SiteNodesV1, SiteError> {
        self.call("GET", "/v1/nodes", None::<&()>)
    }

    /// The site's power now.
    pub fn power(&self) -> Result<SitePowerV1, SiteError> {
        self.call("GET", "/v1/site/power", None::<&()>)
    }

    /// Starts a power transition task.
    pub fn transition(&self, r: &TransitionRequestV1) -> Result<TaskV1, SiteError> {
        self.call("POST", "/v1/transitions", Some(r))
    }

    /// Starts a power-cap task.
    pub fn power_cap(&self, r: &PowerCapRequestV1) -> Result<TaskV1, SiteError> {
        self.call("POST", "/v1/power-cap", Some(r))
    }

    /// Starts a power-cap snapshot task.
    pub fn power_cap_snapshot(&self, r: &PowerCapSnapshotRequestV1) -> Result<TaskV1, SiteError> {
        self.call("POST", "/v1/power-cap/snapshot", Some(r))
    }

    /// Task `id` of `kind`, with its nodes.
    pub fn task(&self, kind: TaskKindV1, id: &str) -> Result<TaskV1, SiteError> {
        self.call("GET", &task_path(kind, id), None::<&()>)
    }

    /// Task `id` of whatever kind (a transition, else a power-cap task), with its nodes.
    pub fn find_task(&self, id: &str) -> Result<TaskV1, SiteError> {
        match self.task(TaskKindV1::Transition, id) {
            Err(e) if e.status() == Some(404) => self.task(TaskKindV1::PowerCap, id),
            other => other,
        }
    }

    /// Aborts task `id` of `kind`: its pending nodes are aborted.
    pub fn abort_task(&self, kind: TaskKindV1, id: &str) -> Result<TaskV1, SiteError> {
        self.call("DELETE", &task_path(kind, id), None::<&()>)
    }

    /// The tasks of `kind` (power-cap tasks and snapshots together), newest first.
    pub fn tasks(&self, kind: TaskKindV1) -> Result<TasksV1, SiteError> {
        let path = match kind {
            TaskKindV1::Transition => "/v1/transitions",
            TaskKindV1::PowerCap | TaskKindV1::PowerCapSnapshot => "/v1/power-cap",
        };
        self.call("GET", path, None::<&()>)
    }

    /// The site bound in force.
    pub fn bound(&self) -> Result<SiteBoundV1, SiteError> {
        self.call("GET", "/v1/site/bound", None::<&()>)
    }

    /// Sets (or, with `watts: None`, clears) the site bound.
    pub fn set_bound(&self, set: &SiteBoundSetV1) -> Result<SiteBoundV1, SiteError> {
        self.call("PUT", "/v1/site/bound", Some(set))
    }

    /// The newest `limit` decisions of the bound's control loop.
    pub fn bound_decisions(&self, limit: u64) -> Result<BoundDecisionsV1, SiteError> {
        self.call("GET", &format!("/v1/site/bound/decisions?limit={limit}"), None::<&()>)
    }

    /// Whether a job fits under the bound now.
    pub fn admit(&self, request: &AdmitRequestV1) -> Result<AdmitV1, SiteError> {
        self.call("POST", "/v1/site/admit", Some(request))
    }
}

/// Where task `id` of `kind` is.
fn task_path(kind: TaskKindV1, id: &str) -> String {
    match kind {
        TaskKindV1::Transition => format!("/v1/transitions/{}", encode(id)),
        TaskKindV1::PowerCap | TaskKindV1::PowerCapSnapshot => {
            format!("/v1/power-cap/{}", encode(id))
        }
    }
}

/// Why the site did not answer, without the agent's wording of the client's errors.
fn unreachable(e: &ClientError) -> String {
    match e {
        ClientError::Refused { .. } => {
            "connection refused: is `powerstack site serve` running there?".into()
        }
        ClientError::NoSocket { .. } => {
            "the socket does not exist: is `powerstack site serve` running?".into()
        }
        ClientError::Timeout { after, .. } => {
            format!("no answer within {}", crate::fmt_duration(*after))
        }
        ClientError::Permission { .. } => "permission denied on the socket".into(),
        other => other.to_string(),
    }
}

/// `text` percent-encoded for a path segment or a query value (everything but `A-Z a-z 0-9 - . _ ~`).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_addresses_are_http_urls_host_ports_or_sockets() {
        let t = Duration::from_secs(1);
        assert!(Site::new("http://127.0.0.1:9465/", None, t).is_ok());
        assert!(Site::new("site.example:9465", None, t).is_ok());
        assert!(Site::new("/run/powerstack/site.sock", None, t).is_ok());
        let s = Site::new("https://site.example:9465/", None, t).unwrap();
        assert!(s.is_https() && !Site::new("site:1", None, t).unwrap().is_https());
        let e = Site::new("https:///run/site.sock", None, t).unwrap_err().to_string();
        assert!(e.contains("needs HOST:PORT"), "{e}");
        let e = s.with_ca_file(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(!e.is_transient() && e.to_string().contains("CA file /nonexistent/ca.pem"), "{e}");
        assert!(Site::new("http://", None, t).is_err());
        assert_eq!(encode("a b/c:1"), "a%20b%2Fc%3A1");
    }
}
