//! One control period, the same for the site service and the simulated cluster: a policy chosen
//! by name decides, [`plan`](crate::plan::plan) keeps the invariant, and the caller writes the
//! plan's two phases through its own cap path (the agents and Redfish at the site, simulated nodes
//! in `powerstack sim cluster`).

use crate::plan::{Plan, PlanError, plan_within};
use crate::{
    Decision, Input, Policy, dynamic::Dynamic, priority::Priority, slurm::Slurm, uniform::Uniform,
};

/// The policies, by the names the configuration and the command line take.
pub const POLICY_NAMES: [&str; 4] = ["uniform", "slurm", "priority", "dynamic"];

/// A policy name that is not one of [`POLICY_NAMES`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown policy `{0}`: use one of uniform, slurm, priority, dynamic")]
pub struct UnknownPolicy(pub String);

/// A new policy by its name.
pub fn policy_by_name(name: &str) -> Result<Box<dyn Policy + Send>, UnknownPolicy> {
    Ok(match name {
        "uniform" => Box::new(Uniform),
        "slurm" => Box::new(Slurm::default()),
        "priority" => Box::new(Priority),
        "dynamic" => Box::new(Dynamic::default()),
        other => return Err(UnknownPolicy(other.to_string())),
    })
}

/// One period's outcome: what the policy decided and the plan that carries it out.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The policy's decision (caps as asked, job bounds, why).
    pub decision: Decision,
    /// The caps to write, in two phases, within the bound.
    pub plan: Plan,
}

/// A named policy run period after period (it keeps the policy's state between periods).
pub struct Controller {
    name: String,
    policy: Box<dyn Policy + Send>,
    tolerance_watts: f64,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").field("policy", &self.name).finish()
    }
}

impl Controller {
    /// A controller running the policy called `name`.
    pub fn new(name: &str) -> Result<Controller, UnknownPolicy> {
        Ok(Controller {
            name: name.to_string(),
            policy: policy_by_name(name)?,
            tolerance_watts: 0.0,
        })
    }

    /// A controller running a policy given by the caller (a policy with its own settings).
    pub fn with_policy(name: &str, policy: Box<dyn Policy + Send>) -> Controller {
        Controller { name: name.to_string(), policy, tolerance_watts: 0.0 }
    }

    /// This controller, planning with a rounding tolerance ([`crate::plan::plan_within`]): what
    /// hardware that rounds its limits needs, so that no period chases a fraction of a watt.
    pub fn with_tolerance(mut self, tolerance_watts: f64) -> Controller {
        self.tolerance_watts = tolerance_watts;
        self
    }

    /// The policy's name.
    pub fn policy_name(&self) -> &str {
        &self.name
    }

    /// Decides this period and plans it. The job bounds of the decision are recomputed from the
    /// plan's caps, so that what is recorded is what is written.
    pub fn step(&mut self, input: &Input) -> Result<Step, PlanError> {
        let mut decision = self.policy.decide(input);
        let plan = plan_within(input, &decision, self.tolerance_watts)?;
        let mut caps: Vec<(String, f64)> = input
            .nodes
            .iter()
            .filter(|n| !n.responsive)
            .map(|n| (n.node.clone(), n.accounted_watts()))
            .collect();
        caps.extend(plan.lower.iter().chain(&plan.raise).cloned());
        for n in input.nodes.iter().filter(|n| n.responsive) {
            if !caps.iter().any(|(node, _)| *node == n.node) {
                // Kept: the node's cap in force is already its target.
                caps.push((n.node.clone(), n.accounted_watts()));
            }
        }
        decision.job_bounds = crate::job_bounds(input, &caps);
        decision.caps = caps;
        Ok(Step { decision, plan })
    }
}

#[cfg(test)]
mod tests {
    use super::{Controller, POLICY_NAMES};
    use crate::uniform::tests::node;
    use crate::{Bound, Input, JobState};

    #[test]
    fn every_named_policy_steps_within_the_bound() {
        let input = Input {
            bound: Bound { watts: 900.0, reserve_watts: 100.0 },
            nodes: vec![node("a", Some("j"), Some(500.0)), node("b", Some("j"), Some(500.0))],
            jobs: vec![JobState {
                id: "j".into(),
                priority: 0,
                request_watts: None,
                nodes: vec!["a".into(), "b".into()],
            }],
        };
        for name in POLICY_NAMES {
            let mut c = Controller::new(name).unwrap();
            let step = c.step(&input).unwrap();
            let sum: f64 = step.decision.caps.iter().map(|c| c.1).sum();
            assert!(sum <= 800.0 + 1e-6, "{name}: {sum}");
            assert_eq!(step.decision.job_bounds.len(), 1);
            assert!((step.decision.job_bounds[0].1 - sum).abs() < 1e-6);
        }
        assert!(Controller::new("even").is_err());
    }
}
