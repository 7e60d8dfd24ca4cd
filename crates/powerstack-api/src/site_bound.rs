//! The site power bound: the bound in force and where it comes from (`GET`/`PUT
//! /v1/site/bound`), the control loop's recorded decisions (`GET /v1/site/bound/decisions`) and
//! the admission answer for schedulers (`POST /v1/site/admit`). All figures in watts.

use serde::{Deserialize, Serialize};

/// `PUT /v1/site/bound`: sets the bound (until cleared), or clears it (`watts: null`), and
/// optionally the reserve and the policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteBoundSetV1 {
    /// The site bound, W (finite, above 0); `null` clears the bound set here (the configuration's
    /// schedule or bound applies again).
    #[schema(exclusive_minimum = 0, maximum = 1e12)]
    pub watts: Option<f64>,
    /// What cannot be capped, W (finite, at least 0); the configuration's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1e12)]
    pub reserve_watts: Option<f64>,
    /// `uniform`, `slurm`, `priority` or `dynamic`; the configuration's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^(uniform|slurm|priority|dynamic)$")]
    pub policy: Option<String>,
}

/// `GET /v1/site/bound`: the bound in force now, where it comes from, and the last decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SiteBoundV1 {
    /// Always `powerstack.site-bound.v1`.
    pub schema: String,
    /// The bound in force, W; `null`: no bound (nodes are not capped by the site).
    pub watts: Option<f64>,
    /// What cannot be capped, W.
    pub reserve_watts: f64,
    /// The policy that splits the bound.
    pub policy: String,
    /// Where the bound comes from: `set` (`powerstack site bound`), `schedule`, `config`, or `none`.
    pub source: String,
    /// Who set it and when, for `set`.
    pub set_by: Option<String>,
    /// When it was set, µs since the Unix epoch, for `set`.
    pub set_unix_us: Option<u64>,
    /// The control period, s.
    pub period_s: f64,
    /// The newest recorded decision, if any.
    pub last_decision: Option<BoundDecisionV1>,
}

/// One node's cap in a decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeCapV1 {
    /// The node.
    pub node: String,
    /// Its cap, W (for a node that did not answer: what it counts for).
    pub cap_watts: f64,
    /// How it is capped: `agent` or `bmc`.
    pub via: String,
    /// What became of it this period: `kept`, `lowered`, `raised`, `not-raised` (a lower was not
    /// confirmed), `failed` (with `error`), or `unresponsive` (counted, not written).
    pub outcome: String,
    /// Why a write failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One job's bound in a decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobBoundV1 {
    /// The job.
    pub job: String,
    /// Its bound: the sum of its nodes' caps, W.
    pub bound_watts: f64,
    /// What it asked for, W.
    pub request_watts: Option<f64>,
    /// Its priority.
    pub priority: i32,
}

/// One control period's decision, as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BoundDecisionV1 {
    /// Its number (increasing).
    pub id: u64,
    /// When it was made, µs since the Unix epoch.
    pub unix_us: u64,
    /// The bound, W; `null` for the period that released the caps of a cleared bound.
    pub bound_watts: Option<f64>,
    /// The reserve, W.
    pub reserve_watts: f64,
    /// The policy.
    pub policy: String,
    /// Why, in one line (the policy's, then the plan's and the writes' notes).
    pub why: String,
    /// The sum of the caps in force after the period plus the reserve, W (never above the bound
    /// unless `shortfall_watts` says the bound cannot be met).
    pub accounted_watts: f64,
    /// Set when even every node at its minimum plus the reserve is above the bound: what the
    /// cluster needs at the least, W.
    pub shortfall_watts: Option<f64>,
    /// The measured power of nodes the site cannot cap (no agent control, no BMC limit), W;
    /// it must fit in the reserve.
    pub uncontrolled_watts: f64,
    /// Caps lowered, raised, and writes that failed this period.
    pub lowered: u64,
    /// Caps raised.
    pub raised: u64,
    /// Writes that failed.
    pub failed: u64,
    /// Each node's cap.
    pub nodes: Vec<NodeCapV1>,
    /// Each running job's bound.
    pub jobs: Vec<JobBoundV1>,
}

/// `GET /v1/site/bound/decisions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BoundDecisionsV1 {
    /// Always `powerstack.bound-decisions.v1`.
    pub schema: String,
    /// The decisions, newest first.
    pub decisions: Vec<BoundDecisionV1>,
}

/// `POST /v1/site/admit`: would a job of `nodes` nodes asking for `power_watts` fit now?
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdmitRequestV1 {
    /// How many nodes the job needs (at least 1).
    #[schema(minimum = 1, maximum = 100_000)]
    #[serde(deserialize_with = "crate::int::u64")]
    pub nodes: u64,
    /// The power it asks for, all its nodes together, W (finite, above 0); none: it takes what
    /// the policy gives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0, maximum = 1e12)]
    pub power_watts: Option<f64>,
    /// Its priority (default 0).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt_i32"
    )]
    #[schema(minimum = -2_147_483_648_i64, maximum = 2_147_483_647)]
    pub priority: Option<i32>,
}

/// The admission answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdmitV1 {
    /// Always `powerstack.admit.v1`.
    pub schema: String,
    /// Whether the job fits now: it would get its request (or, without one, at least its nodes'
    /// minimum caps) without taking running jobs below theirs.
    pub fits: bool,
    /// The bound it would get now, W.
    pub bound_watts: f64,
    /// Each of its nodes' cap, W (the lowest of them).
    pub node_cap_watts: f64,
    /// The bound in force, W (`null`: no bound, every job fits).
    pub site_bound_watts: Option<f64>,
    /// The policy that answered.
    pub policy: String,
    /// Why, in one line.
    pub why: String,
}
