//! Native JSON, version 1, of the capping commands: `powerstack.cap.v1` (what a change did) and
//! `powerstack.caps.v1` (the limits in force and who set them).

use serde::{Deserialize, Serialize};

/// Schema name of [`CapResultV1`].
pub const CAP_SCHEMA: &str = "powerstack.cap.v1";
/// Schema name of [`CapsV1`].
pub const CAPS_SCHEMA: &str = "powerstack.caps.v1";

/// What `powerstack cap socket|mem|gpu|node|reset` did (or, with `--dry-run`, would do).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CapResultV1 {
    /// Always [`CAP_SCHEMA`].
    pub schema: String,
    /// The node.
    pub hostname: String,
    /// Whether the hardware is simulated.
    pub simulated: bool,
    /// The simulator profile.
    pub simulated_profile: Option<String>,
    /// `socket`, `mem`, `gpu`, `node` or `reset`.
    pub command: String,
    /// Nothing was written: the writes below are the plan.
    pub dry_run: bool,
    /// Node caps: the policy.
    pub policy: Option<String>,
    /// Node caps: the cap asked for, watts.
    pub node_cap_watts: Option<f64>,
    /// Node caps: measured power that cannot be capped, charged first, watts.
    pub uncappable_watts: Option<f64>,
    /// Node caps: the cap was below reach and the minimum was applied (`--clamp`).
    pub clamped: bool,
    /// The writes, in order.
    pub writes: Vec<CapWriteV1>,
    /// Limits restored because a previous run had died part way through writing.
    pub recovered: Vec<String>,
    /// Anything else worth knowing.
    pub warnings: Vec<String>,
}

/// One write in [`CapResultV1`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CapWriteV1 {
    /// Domain kind.
    pub domain: String,
    /// Index.
    pub index: u32,
    /// Constraint (`long_term`, `short_term`, `cap`).
    pub constraint: String,
    /// Before, watts (`null`: uncapped).
    pub previous_watts: Option<f64>,
    /// Asked for, watts.
    pub requested_watts: f64,
    /// Read back after writing, watts (`null` on a dry run).
    pub read_back_watts: Option<f64>,
    /// New averaging window, seconds, when one was written.
    pub time_window_s: Option<f64>,
    /// Provider.
    pub provider: String,
    /// Source.
    pub source: String,
}

/// `powerstack cap show`: every power limit, its range, and who set it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CapsV1 {
    /// Always [`CAPS_SCHEMA`].
    pub schema: String,
    /// The node.
    pub hostname: String,
    /// Whether the hardware is simulated.
    pub simulated: bool,
    /// The simulator profile.
    pub simulated_profile: Option<String>,
    /// Every limit of every domain.
    pub controls: Vec<CapControlV1>,
    /// Anything worth knowing (an unreadable journal, ...).
    pub warnings: Vec<String>,
}

/// One limit in [`CapsV1`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CapControlV1 {
    /// Domain kind.
    pub domain: String,
    /// Index.
    pub index: u32,
    /// Constraint.
    pub constraint: String,
    /// In force, watts.
    pub limit_watts: Option<f64>,
    /// Smallest accepted, watts.
    pub min_watts: Option<f64>,
    /// Largest accepted, watts.
    pub max_watts: Option<f64>,
    /// Factory default, watts.
    pub default_watts: Option<f64>,
    /// Window, seconds.
    pub time_window_s: Option<f64>,
    /// Enabled.
    pub enabled: Option<bool>,
    /// Locked.
    pub locked: bool,
    /// Provider.
    pub provider: String,
    /// Source.
    pub source: String,
    /// `powerstack` (its last write is in force), `outside powerstack` (changed since powerstack
    /// wrote it), or `not powerstack` (never written by powerstack).
    pub set_by: String,
    /// Who and how, when powerstack wrote it (`root (uid 0) via powerstack cap node 800`).
    pub set_detail: Option<String>,
    /// When powerstack last wrote it, µs since the Unix epoch.
    pub set_at_unix_us: Option<i64>,
    /// The value `cap reset` restores, watts, when powerstack has written the limit.
    pub original_watts: Option<f64>,
}
