//! The control loop's cap path: a node's cap range and its node cap, through its agent
//! (`GET`/`POST /v1/caps`, the same node-cap code as `powerstack cap node`) or, for a node
//! without one, its BMC's own power limit ([`NodeControl`]). A write that went out and whose
//! answer was lost is [`WriteError::Unknown`]: the loop then counts the node at the higher of its
//! old and new caps.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, header};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use powerstack_api::cap::{CapResultV1, CapsV1};
use powerstack_redfish::transport::{Connector, tls_config};

use crate::config::bound::BoundConfig;
use crate::control::{ControlError, NodeControl};
use crate::error::StoreError;

/// How a node is capped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// Through its agent at this URL.
    Agent(String),
    /// Through its BMC (`[[bmc]]`).
    Bmc,
}

impl Via {
    /// Its name in decisions: `agent` or `bmc`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Via::Agent(_) => "agent",
            Via::Bmc => "bmc",
        }
    }
}

/// A node's cap range and the cap in force, W.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    /// The lowest node cap it takes.
    pub min_watts: f64,
    /// The highest.
    pub max_watts: f64,
    /// The cap in force (its maximum when uncapped).
    pub in_force_watts: f64,
}

/// Why a write did not confirm.
#[derive(Clone, Debug, PartialEq)]
pub enum WriteError {
    /// Refused or never sent: the cap in force is unchanged.
    NotApplied(String),
    /// Sent and its answer lost: it may be in force.
    Unknown(String),
}

impl WriteError {
    /// What happened, in one line.
    pub fn message(&self) -> &str {
        match self {
            WriteError::NotApplied(m) | WriteError::Unknown(m) => m,
        }
    }
}

/// Reaches agents and BMCs.
pub struct CapPath {
    client: Client<Connector, Full<Bytes>>,
    token: Option<String>,
    timeout: Duration,
    bmc: Arc<dyn NodeControl>,
}

impl std::fmt::Debug for CapPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapPath").field("timeout", &self.timeout).finish()
    }
}

/// One exchange's outcome.
enum Once {
    Answer(hyper::StatusCode, Bytes),
    NotSent(String),
    Lost(String),
}

impl CapPath {
    /// A cap path with `config`'s token, CA and timeout, and the site's BMC controller.
    pub fn new(config: &BoundConfig, bmc: Arc<dyn NodeControl>) -> Result<CapPath, StoreError> {
        let token = match &config.agent_token_file {
            Some(path) => Some(read_token(path)?),
            None => None,
        };
        let tls = match &config.agent_ca_file {
            Some(path) => Some(
                tls_config(Some(path), false)
                    .map_err(|e| StoreError::Config(format!("[bound] agent_ca_file: {e}")))?,
            ),
            None => None,
        };
        let connector = Connector::new(tls, config.call_timeout_ms);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(CapPath { client, token, timeout: Duration::from_millis(config.call_timeout_ms), bmc })
    }

    async fn exchange(&self, method: Method, url: &str, body: Vec<u8>) -> Once {
        let mut request =
            Request::builder().method(method).uri(url).header(header::ACCEPT, "application/json");
        if !body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(t) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let request = match request.body(Full::new(Bytes::from(body))) {
            Ok(r) => r,
            Err(e) => return Once::NotSent(format!("{url} is not a valid request: {e}")),
        };
        let exchange = async {
            let response = match self.client.request(request).await {
                Ok(r) => r,
                Err(e) if e.is_connect() => return Once::NotSent(format!("{url}: {e}")),
                Err(e) => return Once::Lost(format!("{url}: {e}")),
            };
            let status = response.status();
            match response.into_body().collect().await {
                Ok(body) => Once::Answer(status, body.to_bytes()),
                Err(e) => Once::Lost(format!("{url}: {e}")),
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| Once::Lost(format!("{url}: no answer in {:?}", self.timeout)))
    }

    /// The node's cap range and cap in force.
    pub async fn range(&self, node: &str, via: &Via) -> Result<Range, String> {
        match via {
            Via::Agent(base) => {
                let url = format!("{}/v1/caps", base.trim_end_matches('/'));
                let body = match self.exchange(Method::GET, &url, Vec::new()).await {
                    Once::Answer(s, body) if s.is_success() => body,
                    Once::Answer(s, body) => return Err(refusal(&url, s, &body)),
                    Once::NotSent(m) | Once::Lost(m) => return Err(m),
                };
                let caps: CapsV1 = serde_json::from_slice(&body)
                    .map_err(|e| format!("{url}: not a powerstack.caps.v1 answer: {e}"))?;
                let n = caps.node.ok_or_else(|| {
                    format!("{url}: the agent's node has nothing the node cap can limit")
                })?;
                Ok(Range {
                    min_watts: n.min_watts,
                    max_watts: n.max_watts,
                    in_force_watts: n.cap_in_force_watts,
                })
            }
            Via::Bmc => {
                let limits = self.bmc.read_limits(node).await.map_err(|e| e.to_string())?;
                let own = limits.controls.first().ok_or("the BMC has no power limit")?;
                let (Some(min), Some(max)) = (own.min_watts, own.max_watts) else {
                    return Err("the BMC's power limit has no range (AllowableMin/Max)".into());
                };
                Ok(Range {
                    min_watts: min,
                    max_watts: max,
                    in_force_watts: own.limit_watts.unwrap_or(max),
                })
            }
        }
    }

    /// Writes the node's cap; the cap read back, W.
    pub async fn write(&self, node: &str, via: &Via, watts: f64) -> Result<f64, WriteError> {
        match via {
            Via::Agent(base) => {
                let url = format!("{}/v1/caps", base.trim_end_matches('/'));
                let body = serde_json::json!({ "node_watts": watts, "clamp": true }).to_string();
                let answer = match self.exchange(Method::POST, &url, body.into_bytes()).await {
                    Once::Answer(s, body) if s.is_success() => body,
                    Once::Answer(s, body) if s.is_server_error() => {
                        return Err(WriteError::Unknown(refusal(&url, s, &body)));
                    }
                    Once::Answer(s, body) => {
                        return Err(WriteError::NotApplied(refusal(&url, s, &body)));
                    }
                    Once::NotSent(m) => return Err(WriteError::NotApplied(m)),
                    Once::Lost(m) => return Err(WriteError::Unknown(m)),
                };
                let result: CapResultV1 = serde_json::from_slice(&answer).map_err(|e| {
                    WriteError::Unknown(format!("{url}: not a powerstack.cap.v1 answer: {e}"))
                })?;
                result.node_read_back_watts.ok_or_else(|| {
                    WriteError::Unknown(format!("{url}: the answer has no node read-back"))
                })
            }
            Via::Bmc => match self.bmc.set_limit(node, Some(watts)).await {
                Ok(r) => r
                    .limit_watts
                    .ok_or_else(|| WriteError::Unknown("the BMC reads back no limit".to_string())),
                Err(ControlError::OutcomeUnknown(m)) => Err(WriteError::Unknown(m)),
                Err(e) => Err(WriteError::NotApplied(e.to_string())),
            },
        }
    }
}

fn refusal(url: &str, status: hyper::StatusCode, body: &[u8]) -> String {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    format!("{url}: {status}: {message}")
}

fn read_token(path: &std::path::Path) -> Result<String, StoreError> {
    let fail = |why: String| {
        StoreError::Config(format!("[bound] agent_token_file {}: {why}", path.display()))
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() || meta.len() > 4096 {
        return Err(fail("must be a regular file of at most 4 KiB holding one token".into()));
    }
    if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0 {
        return Err(fail("must be readable by its owner only: chmod 600 it".into()));
    }
    let text = powerstack_file::read_to_string(path, "[bound] agent_token_file", 4096)
        .map_err(|e| StoreError::Config(e.to_string()))?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(fail("must hold one token on one line".into()));
    }
    Ok(token.to_string())
}
