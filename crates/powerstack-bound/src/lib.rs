//! The site power bound, pure: no I/O, no clock.
//!
//! Every control period the site service gives a [`Policy`] an [`Input`] (the bound, the nodes and
//! the jobs as last seen) and gets a [`Decision`] (node caps, job bounds, why). [`plan::plan`] is
//! the one place the invariant is enforced, whatever the policy said: it turns a decision into two
//! phases, caps to lower (written and read back first) and caps to raise (written only once every
//! lower is confirmed), so that at every instant the caps in force plus the reserve stay within
//! the bound, or it says explicitly that the bound cannot be met. All figures are in SI units.
//!
//! Policies: [`uniform`] (an even split), [`slurm`] (Slurm's removed `power/cray_aries`),
//! [`priority`] (jobs by priority, fair within one), [`dynamic`] (slack moves to nodes held at
//! their cap). docs/budget.md describes them.

pub mod control;
pub mod dynamic;
pub mod fill;
pub mod plan;
pub mod priority;
pub mod slurm;
pub mod uniform;

pub use control::{Controller, POLICY_NAMES, Step, UnknownPolicy, policy_by_name};
pub use plan::{Plan, PlanError, Shortfall, plan, plan_within};

/// A job's identifier, as the scheduler gives it.
pub type JobId = String;

/// The site bound: what the cluster may draw, and the part of it kept for what cannot be capped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bound {
    /// The site bound, in watts.
    pub watts: f64,
    /// What cannot be capped (switches, storage, nodes without a control), in watts.
    pub reserve_watts: f64,
}

/// A node as last seen by the site service.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeState {
    /// The node's name.
    pub node: String,
    /// The job running on it, if any.
    pub job: Option<JobId>,
    /// The lowest cap the node accepts, in watts.
    pub min_cap_watts: f64,
    /// The highest cap the node accepts (its uncapped draw), in watts.
    pub max_cap_watts: f64,
    /// The cap last read back from the node; `None` when unknown.
    pub cap_in_force_watts: Option<f64>,
    /// The node's measured power (a recent mean); `None` when not measured.
    pub power_watts: Option<f64>,
    /// Whether the node answered in the last period.
    pub responsive: bool,
}

impl NodeState {
    /// What the node counts for in the bound now: its cap in force, or its maximum when unknown.
    pub fn accounted_watts(&self) -> f64 {
        self.cap_in_force_watts.unwrap_or(self.max_cap_watts)
    }

    /// The node's range of caps, in watts.
    pub fn range_watts(&self) -> f64 {
        self.max_cap_watts - self.min_cap_watts
    }

    /// Whether a policy may give this node a cap: it answers and runs a job.
    pub fn is_running(&self) -> bool {
        self.responsive && self.job.is_some()
    }
}

/// A running job.
#[derive(Clone, Debug, PartialEq)]
pub struct JobState {
    /// The job's identifier.
    pub id: JobId,
    /// The job's priority; higher goes first.
    pub priority: i32,
    /// The power the job asked for (all its nodes together), in watts.
    pub request_watts: Option<f64>,
    /// The job's nodes.
    pub nodes: Vec<String>,
}

/// What a policy decides from.
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    /// The site bound.
    pub bound: Bound,
    /// Every node under the bound.
    pub nodes: Vec<NodeState>,
    /// The running jobs.
    pub jobs: Vec<JobState>,
}

impl Input {
    /// The watts the policy may give responsive nodes: the bound less the reserve less what
    /// unresponsive nodes count for (may be negative when the bound is infeasible).
    pub fn budget_watts(&self) -> f64 {
        let unresponsive: f64 =
            self.nodes.iter().filter(|n| !n.responsive).map(NodeState::accounted_watts).sum();
        self.bound.watts - self.bound.reserve_watts - unresponsive
    }

    /// The budget left for running nodes once every responsive idle node is at its minimum.
    pub fn running_budget_watts(&self) -> f64 {
        let idle: f64 = self
            .nodes
            .iter()
            .filter(|n| n.responsive && n.job.is_none())
            .map(|n| n.min_cap_watts)
            .sum();
        self.budget_watts() - idle
    }
}

/// One period's decision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// The cap of each node, in watts; a responsive node left out goes to its minimum.
    pub caps: Vec<(String, f64)>,
    /// Each job's bound (the sum of its nodes' caps), in watts.
    pub job_bounds: Vec<(JobId, f64)>,
    /// Why, in one line, for the record.
    pub why: String,
}

/// A policy: turns the bound, nodes and jobs into caps once per period (it may keep state).
pub trait Policy {
    /// Decides this period's caps.
    fn decide(&mut self, input: &Input) -> Decision;
}

/// Each job's bound: the sum of the caps of its nodes in `caps`.
pub fn job_bounds(input: &Input, caps: &[(String, f64)]) -> Vec<(JobId, f64)> {
    input
        .jobs
        .iter()
        .map(|job| {
            let watts =
                caps.iter().filter(|(node, _)| job.nodes.contains(node)).map(|(_, w)| w).sum();
            (job.id.clone(), watts)
        })
        .collect()
}

/// Idle responsive nodes at their minimum (what every policy gives them).
pub fn idle_caps(input: &Input) -> Vec<(String, f64)> {
    input
        .nodes
        .iter()
        .filter(|n| n.responsive && n.job.is_none())
        .map(|n| (n.node.clone(), n.min_cap_watts))
        .collect()
}
