//! The async HTTP client of one BMC: HTTP/1.1 over hyper-util's pooled client, basic auth, a
//! timeout per request and a bound on requests in flight.
//!
//! Transport seam: [`Bmc`] sends through a `Client<C, _>` whose connector `C` is
//! `HttpConnector` today; TLS (a site CA, or an explicit insecure option) comes in as another
//! connector behind the same `get_json`, with `https://` accepted by [`BmcConfig`].

use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::discover::{self, Fetch};
use crate::error::Error;
use crate::readings::Readings;

/// Requests in flight to one BMC at most, by default (HPE PCS uses 4).
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 4;
/// Timeout of one request, by default.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// How to reach one BMC.
#[derive(Debug, Clone)]
pub struct BmcConfig {
    /// `http://HOST[:PORT]` (https is not built yet).
    pub url: String,
    /// Basic-auth user and password.
    pub credentials: Option<(String, String)>,
    /// Timeout of each request, from sending it to the end of its answer.
    pub timeout_ms: u64,
    /// Requests in flight at most.
    pub max_concurrent_requests: usize,
}

impl BmcConfig {
    /// The defaults for `url`: no credentials, [`DEFAULT_TIMEOUT_MS`],
    /// [`DEFAULT_MAX_CONCURRENT_REQUESTS`].
    pub fn new(url: impl Into<String>) -> BmcConfig {
        BmcConfig {
            url: url.into(),
            credentials: None,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
        }
    }
}

/// One BMC.
pub struct Bmc {
    base: String,
    client: Client<HttpConnector, Empty<Bytes>>,
    authorization: Option<HeaderValue>,
    timeout_ms: u64,
    permits: Semaphore,
}

impl Bmc {
    /// A client of the BMC at `config.url`; nothing is sent yet.
    pub fn new(config: &BmcConfig) -> Result<Bmc, Error> {
        let url = config.url.trim_end_matches('/');
        let bad = |reason: &str| Error::Url { url: config.url.clone(), reason: reason.into() };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(bad("https is not supported yet")),
            _ => return Err(bad("the scheme must be http")),
        }
        if uri.authority().is_none() || !uri.path().trim_matches('/').is_empty() {
            return Err(bad("give the host and port only, no path"));
        }
        let authorization = match &config.credentials {
            None => None,
            Some((user, password)) => {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                let value = HeaderValue::from_str(&format!("Basic {token}"))
                    .map_err(|_| bad("the credentials cannot be sent in a header"))?;
                Some(value)
            }
        };
        Ok(Bmc {
            base: url.to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            authorization,
            timeout_ms: config.timeout_ms,
            permits: Semaphore::new(config.max_concurrent_requests.max(1)),
        })
    }

    /// Everything the BMC says of power, energy and limits, from its service root down.
    pub async fn readings(&self) -> Result<Readings, Error> {
        discover::read(self).await
    }

    /// GETs the JSON document at `uri` (a path, `/redfish/v1/...`); `Ok(None)` on 404.
    pub async fn get_json(&self, uri: &str) -> Result<Option<Value>, Error> {
        let transport = |reason: String| Error::Transport { uri: uri.to_string(), reason };
        let target: Uri = format!("{}{uri}", self.base).parse().map_err(|_| Error::Url {
            url: format!("{}{uri}", self.base),
            reason: "not a URL".into(),
        })?;
        let mut request = Request::get(target).header(header::ACCEPT, "application/json");
        if let Some(auth) = &self.authorization {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        let request = request.body(Empty::new()).map_err(|e| transport(e.to_string()))?;
        let _permit = self.permits.acquire().await.map_err(|e| transport(e.to_string()))?;
        let exchange = async {
            let response =
                self.client.request(request).await.map_err(|e| transport(e.to_string()))?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(|e| transport(e.to_string()))?.to_bytes();
            Ok::<_, Error>((parts, body))
        };
        let (parts, body) = tokio::time::timeout(Duration::from_millis(self.timeout_ms), exchange)
            .await
            .map_err(|_| Error::Timeout { uri: uri.to_string(), timeout_ms: self.timeout_ms })??;
        match parts.status {
            StatusCode::OK => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| Error::Malformed { uri: uri.to_string(), reason: e.to_string() }),
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::UNAUTHORIZED => Err(Error::Unauthorized { uri: uri.to_string() }),
            status => Err(Error::Status {
                uri: uri.to_string(),
                status: status.as_u16(),
                retry_after_s: parts
                    .headers
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok()),
            }),
        }
    }
}

impl Fetch for Bmc {
    async fn get(&self, uri: &str) -> Result<Option<Value>, Error> {
        self.get_json(uri).await
    }
}

/// A blocking wrapper for the CLI: the async client on a current-thread runtime of its own.
pub struct BlockingBmc {
    runtime: tokio::runtime::Runtime,
    bmc: Bmc,
}

impl BlockingBmc {
    /// A blocking client of the BMC at `config.url`.
    pub fn new(config: &BmcConfig) -> Result<BlockingBmc, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Transport { uri: String::new(), reason: e.to_string() })?;
        let bmc = {
            let _entered = runtime.enter();
            Bmc::new(config)?
        };
        Ok(BlockingBmc { runtime, bmc })
    }

    /// [`Bmc::readings`], blocking.
    pub fn readings(&self) -> Result<Readings, Error> {
        self.runtime.block_on(self.bmc.readings())
    }
}
