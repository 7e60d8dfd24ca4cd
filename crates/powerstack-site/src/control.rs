//! The seam between the site's control tasks and whatever reaches a node out of band: the
//! [`NodeControl`] trait the task runner drives (a BMC's power limits, power state and reset),
//! its own types, and [`controller_for`], which builds the site's controller: Redfish, through
//! `powerstack-redfish` ([`redfish`]). Tests and embeddings may drive the runner through their own.

pub(crate) mod redfish;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::BmcEntry;
use crate::error::StoreError;
/// A request to a node's BMC: Redfish's power transitions, one `ResetType` each.
pub use powerstack_redfish::Transition;

/// A boxed future, so that the trait stays object-safe (`Arc<dyn NodeControl>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One power limit a node holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LimitControl {
    /// Its name at the BMC.
    pub name: String,
    /// The limit in force, W (`None`: no limit).
    pub limit_watts: Option<f64>,
    /// The lowest limit it takes, W.
    pub min_watts: Option<f64>,
    /// The highest limit it takes, W.
    pub max_watts: Option<f64>,
}

/// A node's power limits and their ranges, its own limit first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeLimits {
    /// The limits, the node's own first.
    pub controls: Vec<LimitControl>,
}

impl NodeLimits {
    /// The node's own limit, W (`None`: none, or no control at all).
    pub fn own_limit_watts(&self) -> Option<f64> {
        self.controls.first().and_then(|c| c.limit_watts)
    }
}

/// What setting a limit did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LimitResult {
    /// The node's own limit read back, W (`None`: no limit).
    pub limit_watts: Option<f64>,
    /// Whether it takes effect only after the node's next reset.
    pub pending_reset: bool,
}

/// A node's power state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerState {
    /// On.
    On,
    /// Off.
    Off,
    /// Turning on.
    PoweringOn,
    /// Turning off.
    PoweringOff,
    /// Anything else the BMC says.
    Unknown,
}

impl PowerState {
    /// Its name in results and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            PowerState::On => "on",
            PowerState::Off => "off",
            PowerState::PoweringOn => "powering-on",
            PowerState::PoweringOff => "powering-off",
            PowerState::Unknown => "unknown",
        }
    }
}

/// Why a node could not be controlled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The request went out and its answer was lost: it may or may not have been done.
    #[error("the answer was lost: {0}")]
    OutcomeUnknown(String),
    /// The BMC does not do this (a reset type it does not allow, a limit it does not have):
    /// refused before anything was sent, so the runner records the request as never sent. A
    /// controller returns it only when nothing went out.
    #[error("not supported by the node's BMC: {0}")]
    Unsupported(String),
    /// The BMC refused or could not be reached.
    #[error("{0}")]
    Failed(String),
}

/// What the task runner drives: one node's BMC at a time. A call is one request; the runner
/// never retries one that may have been done ([`ControlError::OutcomeUnknown`]), it reads the
/// state back instead.
pub trait NodeControl: Send + Sync + 'static {
    /// The node's power limits and their ranges (a snapshot), its own limit first.
    fn read_limits<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<NodeLimits, ControlError>>;
    /// Sets the node's own power limit (`None`: off); what was read back.
    fn set_limit<'a>(
        &'a self,
        node: &'a str,
        watts: Option<f64>,
    ) -> BoxFuture<'a, Result<LimitResult, ControlError>>;
    /// The node's power state.
    fn power_state<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<PowerState, ControlError>>;
    /// Sends one transition request; its name as the BMC got it (Redfish: the `ResetType`).
    fn send_transition<'a>(
        &'a self,
        node: &'a str,
        t: Transition,
    ) -> BoxFuture<'a, Result<String, ControlError>>;
    /// Ends what it holds open at the BMCs (their sessions) when the service stops; best effort,
    /// and briefly. By default, nothing.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// The controller of the site's BMCs (`[[bmc]]`): Redfish, one client per node's BMC. Reads each
/// entry's password file.
pub fn controller_for(bmcs: &[BmcEntry]) -> Result<Arc<dyn NodeControl>, StoreError> {
    Ok(Arc::new(redfish::RedfishControl::new(bmcs)?))
}
