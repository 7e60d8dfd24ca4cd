//! Many fake agents behind one loopback HTTP server, for the site bound's tests and benchmark:
//! node `n` answers under `/n/{n}`: `GET /v1/caps` (its node cap range and cap in force) and
//! `POST /v1/caps {node_watts, clamp}` (the cap clamped to its range, in force at once, read back),
//! each after a fixed delay. Every write is logged with its time and the sum of every node's cap
//! in force right after it, so that a test can check the bound at every instant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// One fake agent's node.
#[derive(Clone, Debug)]
pub struct AgentNode {
    pub min_watts: f64,
    pub max_watts: f64,
    pub cap_watts: f64,
    /// Writes are refused (409, nothing changed).
    pub refuse: bool,
    /// Nothing is answered (the connection is dropped after the delay).
    pub down: bool,
}

/// One write as the fleet saw it.
#[derive(Clone, Debug)]
pub struct Write {
    pub at: Instant,
    pub node: String,
    pub watts: f64,
    /// The sum of every node's cap in force right after it.
    pub sum_after_watts: f64,
}

#[derive(Default)]
pub struct FleetState {
    pub nodes: Mutex<HashMap<String, AgentNode>>,
    pub writes: Mutex<Vec<Write>>,
    pub delay: Duration,
}

pub struct Fleet {
    pub url: String,
    pub state: Arc<FleetState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn caps_doc(node: &str, n: &AgentNode) -> Value {
    json!({
        "schema": "powerstack.caps.v1", "hostname": node, "simulated": true,
        "simulated_profile": "fleet", "controls": [], "warnings": [],
        "node": {"min_watts": n.min_watts, "max_watts": n.max_watts, "uncappable_watts": 0.0,
                 "cap_in_force_watts": n.cap_watts}
    })
}

async fn show(State(s): State<Arc<FleetState>>, Path(node): Path<String>) -> Response {
    tokio::time::sleep(s.delay).await;
    let n = s.nodes.lock().unwrap().get(&node).cloned();
    match n {
        Some(n) if !n.down => Json(caps_doc(&node, &n)).into_response(),
        Some(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn set(
    State(s): State<Arc<FleetState>>,
    Path(node): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    tokio::time::sleep(s.delay).await;
    let Some(watts) = body["node_watts"].as_f64() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut nodes = s.nodes.lock().unwrap();
    let Some(n) = nodes.get_mut(&node) else { return StatusCode::NOT_FOUND.into_response() };
    if n.down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if n.refuse {
        let e = json!({"error": {"status": 409, "message": "refused by the fake agent", "result": null}});
        return (StatusCode::CONFLICT, Json(e)).into_response();
    }
    n.cap_watts = watts.clamp(n.min_watts, n.max_watts);
    let read_back = n.cap_watts;
    let sum_after_watts = nodes.values().map(|n| n.cap_watts).sum();
    drop(nodes);
    s.writes.lock().unwrap().push(Write {
        at: Instant::now(),
        node: node.clone(),
        watts: read_back,
        sum_after_watts,
    });
    Json(json!({
        "schema": "powerstack.cap.v1", "hostname": node, "simulated": true,
        "simulated_profile": "fleet", "command": "node", "dry_run": false, "policy": "proportional",
        "node_cap_watts": watts, "uncappable_watts": 0.0, "clamped": false, "writes": [],
        "recovered": [], "warnings": [], "node_read_back_watts": read_back
    }))
    .into_response()
}

impl Fleet {
    /// A fleet of `nodes`, each with caps from `min_watts` to `max_watts`, uncapped at first,
    /// answering after `delay`.
    pub fn start(nodes: &[String], min_watts: f64, max_watts: f64, delay: Duration) -> Fleet {
        let node =
            AgentNode { min_watts, max_watts, cap_watts: max_watts, refuse: false, down: false };
        let state = Arc::new(FleetState {
            nodes: Mutex::new(nodes.iter().map(|n| (n.clone(), node.clone())).collect()),
            writes: Mutex::default(),
            delay,
        });
        let app = axum::Router::new()
            .route("/n/{node}/v1/caps", get(show).post(set))
            .with_state(state.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        let addr = rx.recv().unwrap();
        Fleet { url: format!("http://{addr}"), state, stop: Some(stop), thread: Some(thread) }
    }

    /// Node `node`'s control address.
    pub fn control_url(&self, node: &str) -> String {
        format!("{}/n/{node}", self.url)
    }

    /// Changes node `node`.
    pub fn set(&self, node: &str, f: impl FnOnce(&mut AgentNode)) {
        f(self.state.nodes.lock().unwrap().get_mut(node).unwrap());
    }

    /// Node `node`'s cap in force.
    pub fn cap(&self, node: &str) -> f64 {
        self.state.nodes.lock().unwrap()[node].cap_watts
    }

    /// Every write so far.
    pub fn writes(&self) -> Vec<Write> {
        self.state.writes.lock().unwrap().clone()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
