//! A fake controller of nodes for the control tasks' tests: each node's power state and limit,
//! how it misbehaves (ignores graceful requests, loses answers, refuses, holds a request or a
//! read until released), and a log of every request sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use powerstack_site::control::{
    BoxFuture, ControlError, LimitControl, LimitResult, NodeControl, NodeLimits, PowerState,
    Transition,
};
use tokio::sync::watch;

/// One fake node: its power state and limit, and how it misbehaves.
#[derive(Clone, Debug)]
pub struct FakeNode {
    pub power: PowerState,
    pub limit: Option<f64>,
    /// Ignores graceful requests.
    pub stubborn: bool,
    /// Requests are done but their answer is lost.
    pub lose: bool,
    /// Requests are refused.
    pub refuse: bool,
    /// Requests wait for [`Fake::release`] (after being recorded).
    pub block: bool,
    /// Power-state reads wait for [`Fake::release`].
    pub hold_reads: bool,
}

impl FakeNode {
    pub fn on() -> FakeNode {
        FakeNode {
            power: PowerState::On,
            limit: None,
            stubborn: false,
            lose: false,
            refuse: false,
            block: false,
            hold_reads: false,
        }
    }
    pub fn off() -> FakeNode {
        FakeNode { power: PowerState::Off, ..FakeNode::on() }
    }
}

/// A controller of fake nodes that records each request sent (reads are not recorded).
pub struct Fake {
    pub nodes: Mutex<HashMap<String, FakeNode>>,
    pub sent: Mutex<Vec<(String, String)>>,
    pub released: watch::Sender<bool>,
}

impl Fake {
    pub fn new(nodes: impl IntoIterator<Item = (String, FakeNode)>) -> Arc<Fake> {
        Arc::new(Fake {
            nodes: Mutex::new(nodes.into_iter().collect()),
            sent: Mutex::new(Vec::new()),
            released: watch::channel(false).0,
        })
    }
    pub fn node(&self, n: &str) -> FakeNode {
        self.nodes.lock().unwrap().get(n).cloned().unwrap()
    }
    pub fn set(&self, n: &str, f: impl FnOnce(&mut FakeNode)) {
        f(self.nodes.lock().unwrap().get_mut(n).unwrap());
    }
    pub fn sent_to(&self, n: &str) -> Vec<String> {
        self.sent.lock().unwrap().iter().filter(|(m, _)| m == n).map(|(_, r)| r.clone()).collect()
    }
    pub fn release(&self) {
        self.released.send_replace(true);
    }
    /// Records a request to `node`; waits while it is blocked; its answer.
    async fn request(&self, node: &str, what: String) -> Result<FakeNode, ControlError> {
        self.sent.lock().unwrap().push((node.to_string(), what));
        let n = self.node(node);
        if n.block {
            let mut rx = self.released.subscribe();
            let _ = rx.wait_for(|r| *r).await;
        }
        if n.refuse {
            return Err(ControlError::Failed("the BMC answered 400: ResetType refused".into()));
        }
        Ok(n)
    }
}

impl NodeControl for Fake {
    fn read_limits<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<NodeLimits, ControlError>> {
        Box::pin(async move {
            let n = self.node(node);
            let own = LimitControl {
                name: "Node Power Limit".into(),
                limit_watts: n.limit,
                min_watts: Some(200.0),
                max_watts: Some(900.0),
            };
            let gpu = LimitControl {
                name: "Accelerator0 Power Limit".into(),
                limit_watts: None,
                min_watts: Some(100.0),
                max_watts: Some(560.0),
            };
            Ok(NodeLimits { controls: vec![own, gpu] })
        })
    }
    fn set_limit<'a>(
        &'a self,
        node: &'a str,
        watts: Option<f64>,
    ) -> BoxFuture<'a, Result<LimitResult, ControlError>> {
        Box::pin(async move {
            let n = self.request(node, format!("limit {watts:?}")).await?;
            self.set(node, |f| f.limit = watts);
            if n.lose {
                return Err(ControlError::OutcomeUnknown("connection reset".into()));
            }
            Ok(LimitResult { limit_watts: watts, pending_reset: false })
        })
    }
    fn power_state<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<PowerState, ControlError>> {
        Box::pin(async move {
            if self.node(node).hold_reads {
                let _ = self.released.subscribe().wait_for(|r| *r).await;
            }
            Ok(self.node(node).power)
        })
    }
    fn send_transition<'a>(
        &'a self,
        node: &'a str,
        t: Transition,
    ) -> BoxFuture<'a, Result<String, ControlError>> {
        Box::pin(async move {
            let n = self.request(node, format!("{t:?}")).await?;
            let to = match t {
                Transition::GracefulShutdown if n.stubborn => n.power,
                Transition::GracefulShutdown | Transition::ForceOff => PowerState::Off,
                Transition::GracefulRestart if n.stubborn => n.power,
                _ => PowerState::On,
            };
            self.set(node, |f| f.power = to);
            if n.lose {
                return Err(ControlError::OutcomeUnknown("timed out reading the answer".into()));
            }
            Ok(format!("{t:?}"))
        })
    }
}
