//! One job asked of many node agents at once (`powerstack job query`).
//!
//! [`ask_all`] asks every agent in parallel, at most [`MAX_PARALLEL`] at a time; a node that does
//! not answer, or answers an error, is a [`NodeAnswer`] saying so, never a failed query.
//! [`send_all`] sends any one request to many agents the same way (`job begin --site` marks the
//! job on every node's agent).
//! [`query_document`] makes the answers the query's document, with its total.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use powerstack_api::job::{JobQueryNodeV1, JobQueryV1, JobResultV1, JobTotalV1};

use crate::{Addr, ClientError, Response, request};

/// The most agents asked at the same time.
pub const MAX_PARALLEL: usize = 64;

/// One agent to ask: the name it is shown under until it answers, and its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The name the node is shown under when it gives no hostname (the host asked for).
    pub label: String,
    /// Where its agent listens.
    pub addr: Addr,
}

/// Why the agents of a query could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum TargetsError {
    /// The node list is not a hostlist expression.
    #[error(transparent)]
    Hostlist(#[from] crate::hostlist::HostlistError),
    /// A node whose agent's address cannot be made (a bad name).
    #[error("node {host:?}: {error}")]
    Node {
        /// The node as given.
        host: String,
        /// Why its agent cannot be asked.
        error: ClientError,
    },
    /// An address that is not an agent's address (the error names it).
    #[error(transparent)]
    Addr(ClientError),
    /// An empty address in the list of agents.
    #[error("empty agent address in the list")]
    Empty,
    /// Neither nodes nor agents.
    #[error("no agent to ask: give agents' addresses or nodes")]
    None,
}

/// The agent of node `host` at `host:port` (an IPv6 address is put in brackets).
pub fn node_target(host: &str, port: u16) -> Result<Target, TargetsError> {
    let hp = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let addr =
        Addr::parse(&hp).map_err(|error| TargetsError::Node { host: host.to_string(), error })?;
    Ok(Target { label: host.to_string(), addr })
}

/// The agents a query asks: those of the nodes of a hostlist expression (`node[01-04]`) at
/// `port`, then those at `agents`' addresses (`host:port`, `unix:/path`), each shown under its
/// host until it answers.
pub fn targets(
    nodes: Option<&str>,
    port: u16,
    agents: &[String],
) -> Result<Vec<Target>, TargetsError> {
    let mut out = Vec::new();
    if let Some(expr) = nodes {
        for host in crate::hostlist::expand(expr)? {
            out.push(node_target(&host, port)?);
        }
    }
    for text in agents {
        if text.trim().is_empty() {
            return Err(TargetsError::Empty);
        }
        let addr = Addr::parse(text).map_err(TargetsError::Addr)?;
        out.push(Target { label: addr.host(), addr });
    }
    if out.is_empty() {
        return Err(TargetsError::None);
    }
    Ok(out)
}

/// What came of asking one node.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A result document.
    Answer(Box<JobResultV1>),
    /// Anything else: the status text (`unreachable: ...`, `no such job`, `error 403: ...`,
    /// `invalid answer: ...`).
    Failed(String),
}

/// One node asked, and what came of it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeAnswer {
    /// The node asked.
    pub target: Target,
    /// What it answered.
    pub outcome: Outcome,
}

impl NodeAnswer {
    /// The node's name: the hostname it answered with, else the name it was asked by.
    pub fn hostname(&self) -> &str {
        match &self.outcome {
            Outcome::Answer(a) if !a.hostname.is_empty() => &a.hostname,
            _ => &self.target.label,
        }
    }

    /// Its result, when it gave one.
    pub fn result(&self) -> Option<&JobResultV1> {
        match &self.outcome {
            Outcome::Answer(a) => Some(a),
            Outcome::Failed(_) => None,
        }
    }

    /// `ok`, `ok (running)`, or why there is no result.
    pub fn status(&self) -> String {
        match &self.outcome {
            Outcome::Answer(a) if a.running => "ok (running)".into(),
            Outcome::Answer(_) => "ok".into(),
            Outcome::Failed(s) => s.clone(),
        }
    }
}

/// Asks one agent for a job: `GET path` (`/v1/jobs/{id}`, with its query).
pub fn ask(addr: &Addr, path: &str, token: Option<&str>, timeout: Duration) -> Outcome {
    let r = match request(addr, "GET", path, None, token, timeout) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("unreachable: {e}")),
    };
    if r.status == 404 {
        return Outcome::Failed("no such job".into());
    }
    if !r.is_success() {
        return Outcome::Failed(format!("error {}: {}", r.status, r.message()));
    }
    match serde_json::from_str::<JobResultV1>(&r.body) {
        Ok(doc) => Outcome::Answer(Box::new(doc)),
        Err(e) => Outcome::Failed(format!("invalid answer: {e}")),
    }
}

/// Asks every target ([`ask`]), at most [`MAX_PARALLEL`] at a time, each within `timeout`;
/// answers in target order.
pub fn ask_all(
    targets: Vec<Target>,
    path: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Vec<NodeAnswer> {
    let outcomes = parallel(&targets, |t| ask(&t.addr, path, token, timeout));
    targets
        .into_iter()
        .zip(outcomes)
        .map(|(target, o)| NodeAnswer {
            target,
            outcome: o.unwrap_or_else(|| Outcome::Failed("unreachable: not asked".into())),
        })
        .collect()
}

/// Sends one request (`method path`, with `body` as JSON) to every target, at most
/// [`MAX_PARALLEL`] at a time, each within `timeout`: each agent's answer, or why there is none,
/// in target order.
pub fn send_all(
    targets: &[Target],
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
    timeout: Duration,
) -> Vec<Result<Response, ClientError>> {
    parallel(targets, |t| request(&t.addr, method, path, body, token, timeout))
        .into_iter()
        .zip(targets)
        .map(|(r, t)| {
            r.unwrap_or_else(|| {
                Err(ClientError::InvalidRequest {
                    addr: t.addr.to_string(),
                    why: "not sent".into(),
                })
            })
        })
        .collect()
}

/// `work` done for every target on at most [`MAX_PARALLEL`] threads; the results in target
/// order (`None` only where a thread could not report, which does not happen).
fn parallel<T: Send>(targets: &[Target], work: impl Fn(&Target) -> T + Sync) -> Vec<Option<T>> {
    let n = targets.len();
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, T)>();
    std::thread::scope(|s| {
        for _ in 0..n.min(MAX_PARALLEL) {
            let tx = tx.clone();
            let (next, work) = (&next, &work);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(t) = targets.get(i) else { break };
                    if tx.send((i, work(t))).is_err() {
                        break;
                    }
                }
            });
        }
    });
    drop(tx);
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    for (i, r) in rx {
        out[i] = Some(r);
    }
    out
}

/// The query's document: every node asked (one without a result as
/// [`JobResultV1::unanswered`], one that answered without a hostname under the name it was asked
/// by) and the total.
pub fn query_document(job: &str, answers: &[NodeAnswer]) -> JobQueryV1 {
    let results: Vec<Option<&JobResultV1>> = answers.iter().map(NodeAnswer::result).collect();
    let total = JobTotalV1::of(&results);
    let nodes = answers
        .iter()
        .map(|row| JobQueryNodeV1 {
            result: match &row.outcome {
                Outcome::Answer(a) => {
                    JobResultV1 { hostname: row.hostname().into(), ..(**a).clone() }
                }
                Outcome::Failed(_) => JobResultV1::unanswered(row.hostname(), job),
            },
            agent: row.target.addr.to_string(),
            status: row.status(),
        })
        .collect();
    JobQueryV1 { job_id: job.to_string(), nodes, total }
}
