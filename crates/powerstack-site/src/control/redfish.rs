//! The Redfish controller of the site's control tasks: [`NodeControl`] over
//! `powerstack-redfish`, one client per node's BMC, kept between calls (its connection pool, its
//! session and its bound of 4 requests in flight), its session ended when the service stops.
//! Password files are read once, when the controller is built at start-up; async code reads no
//! other file.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use powerstack_redfish as redfish;
use redfish::{Auth, Bmc, BmcConfig, LimitRequest, ResetType, SetPoint};
use tokio::sync::OnceCell;

use crate::config::BmcEntry;
use crate::control::{
    BoxFuture, ControlError, LimitControl, LimitResult, NodeControl, NodeLimits, PowerState,
    Transition,
};
use crate::error::StoreError;

/// Timeout of one request to a BMC, by default (the task runner bounds a whole call apart).
const REQUEST_TIMEOUT_MS: u64 = 10_000;
/// How long ending the sessions may hold up a stop.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// The site's BMCs, by node.
pub struct RedfishControl {
    nodes: HashMap<String, Node>,
}

struct Node {
    config: BmcConfig,
    system: String,
    chassis: Option<String>,
    bmc: OnceCell<Arc<Bmc>>,
}

impl RedfishControl {
    /// The controller of `entries`; reads each password file (first line).
    pub fn new(entries: &[BmcEntry]) -> Result<RedfishControl, StoreError> {
        let mut nodes = HashMap::new();
        for entry in entries {
            nodes.insert(entry.node.clone(), Node::new(entry)?);
        }
        Ok(RedfishControl { nodes })
    }

    async fn node(&self, node: &str) -> Result<(&Node, &Bmc), ControlError> {
        let n = self
            .nodes
            .get(node)
            .ok_or_else(|| ControlError::Failed(format!("node {node} has no BMC configured")))?;
        let bmc = n
            .bmc
            .get_or_try_init(|| async { Bmc::new(&n.config).map(Arc::new) })
            .await
            .map_err(|e| ControlError::Failed(e.to_string()))?;
        Ok((n, bmc.as_ref()))
    }
}

impl Node {
    fn new(entry: &BmcEntry) -> Result<Node, StoreError> {
        Ok(Node {
            config: bmc_config(entry)?,
            system: entry.system.clone().unwrap_or_default(),
            chassis: entry.chassis.clone(),
            bmc: OnceCell::new(),
        })
    }
}

/// How to reach `entry`'s BMC (its password file read).
pub(crate) fn bmc_config(entry: &BmcEntry) -> Result<BmcConfig, StoreError> {
    let auth = match &entry.user {
        None => Auth::None,
        Some(user) => {
            let password = read_password(entry)?;
            if entry.session == Some(true) {
                Auth::Session { user: user.clone(), password }
            } else {
                Auth::Basic { user: user.clone(), password }
            }
        }
    };
    let mut config = BmcConfig::new(entry.url.clone());
    config.auth = auth;
    config.ca_file = entry.ca_file.clone();
    config.insecure = entry.insecure;
    config.timeout_ms = REQUEST_TIMEOUT_MS;
    Ok(config)
}

fn read_password(entry: &BmcEntry) -> Result<String, StoreError> {
    let Some(path) = &entry.password_file else {
        return Err(StoreError::Config(format!(
            "[[bmc]] node {}: user {:?} needs a password_file",
            entry.node,
            entry.user.as_deref().unwrap_or_default()
        )));
    };
    let text = powerstack_file::read_to_string(path, "password_file", 64 << 10)
        .map_err(|e| StoreError::Config(format!("[[bmc]] node {}: {e}", entry.node)))?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

fn control_error(e: redfish::Error) -> ControlError {
    match e {
        redfish::Error::OutcomeUnknown { .. } => ControlError::OutcomeUnknown(e.to_string()),
        redfish::Error::Refused(reason) => ControlError::Unsupported(reason),
        other => ControlError::Failed(other.to_string()),
    }
}

fn watts(limit: &redfish::Limit) -> Option<f64> {
    match limit.set_point {
        Some(SetPoint::Watts(w)) if limit.enforced() => Some(w),
        _ => None,
    }
}

fn control(limit: &redfish::Limit) -> LimitControl {
    LimitControl {
        name: limit.name.clone(),
        limit_watts: watts(limit),
        min_watts: limit.min_watts,
        max_watts: limit.max_watts,
    }
}

fn state(state: redfish::PowerState) -> PowerState {
    match state {
        redfish::PowerState::On => PowerState::On,
        redfish::PowerState::Off => PowerState::Off,
        redfish::PowerState::PoweringOn => PowerState::PoweringOn,
        redfish::PowerState::PoweringOff => PowerState::PoweringOff,
        _ => PowerState::Unknown,
    }
}

/// The reset `t` sends to a system that allows `allowed` (empty: it does not say): its own,
/// except a graceful shutdown where `GracefulShutdown` is not allowed and `Off` is (HPE Cray EX
/// lists `On`, `ForceOff` and `Off`), which sends `Off`, as HPE PCS does for its off.
fn reset_for(t: Transition, allowed: &[ResetType]) -> ResetType {
    let own = t.reset_type();
    let off = ResetType::Other("Off".into());
    let missing = !allowed.is_empty() && !allowed.contains(&own);
    if t == Transition::GracefulShutdown && missing && allowed.contains(&off) { off } else { own }
}

impl NodeControl for RedfishControl {
    fn read_limits<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<NodeLimits, ControlError>> {
        Box::pin(async move {
            let (n, bmc) = self.node(node).await?;
            let readings = bmc.limit_readings().await.map_err(control_error)?;
            let request =
                LimitRequest { chassis_id: n.chassis.clone(), control: None, watts: None };
            let own = redfish::limits::select(&readings, &request).ok();
            let mut controls: Vec<LimitControl> = own.into_iter().map(control).collect();
            for chassis in &readings.chassis {
                if n.chassis.as_ref().is_some_and(|id| *id != chassis.id) {
                    continue;
                }
                for limit in &chassis.limits {
                    if own.is_none_or(|o| o != limit) {
                        controls.push(control(limit));
                    }
                }
            }
            Ok(NodeLimits { controls })
        })
    }

    fn set_limit<'a>(
        &'a self,
        node: &'a str,
        limit_watts: Option<f64>,
    ) -> BoxFuture<'a, Result<LimitResult, ControlError>> {
        Box::pin(async move {
            let (n, bmc) = self.node(node).await?;
            let request =
                LimitRequest { chassis_id: n.chassis.clone(), control: None, watts: limit_watts };
            let applied = bmc.set_power_limit(&request).await.map_err(control_error)?;
            Ok(LimitResult {
                limit_watts: watts(&applied.limit),
                pending_reset: applied.takes_effect_after_reset,
            })
        })
    }

    fn power_state<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<PowerState, ControlError>> {
        Box::pin(async move {
            let (n, bmc) = self.node(node).await?;
            bmc.power_state(&n.system).await.map(state).map_err(control_error)
        })
    }

    fn send_transition<'a>(
        &'a self,
        node: &'a str,
        t: Transition,
    ) -> BoxFuture<'a, Result<String, ControlError>> {
        Box::pin(async move {
            let (n, bmc) = self.node(node).await?;
            let chosen = bmc.send_reset_chosen(&n.system, |s| reset_for(t, &s.allowed_resets));
            Ok(chosen.await.map_err(control_error)?.as_str().to_string())
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut closing = tokio::task::JoinSet::new();
            for bmc in self.nodes.values().filter_map(|n| n.bmc.get()) {
                let bmc = Arc::clone(bmc);
                closing.spawn(async move { bmc.close().await });
            }
            let all = async { while closing.join_next().await.is_some() {} };
            // What is not closed by then is dropped with the set (the BMC expires it).
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, all).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_graceful_shutdown_is_off_where_only_off_is_allowed() {
        let hpe = [ResetType::On, ResetType::ForceOff, ResetType::Other("Off".into())];
        assert_eq!(reset_for(Transition::GracefulShutdown, &hpe).as_str(), "Off");
        assert_eq!(reset_for(Transition::ForceOff, &hpe), ResetType::ForceOff);
        assert_eq!(reset_for(Transition::GracefulRestart, &hpe), ResetType::GracefulRestart);
        let both = [ResetType::GracefulShutdown, ResetType::Other("Off".into())];
        assert_eq!(reset_for(Transition::GracefulShutdown, &both), ResetType::GracefulShutdown);
        assert_eq!(reset_for(Transition::GracefulShutdown, &[]), ResetType::GracefulShutdown);
    }
}
