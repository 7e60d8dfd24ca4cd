//! `uniform`: the bound less the reserve split evenly over the running nodes, each clamped to its
//! range (what Variorum and Flux do today); what a clamped node cannot take goes to the others.
//! Idle nodes are held at their minimum.

use crate::fill::fill;
use crate::{Decision, Input, Policy, idle_caps, job_bounds};

/// The even split; keeps no state.
#[derive(Clone, Debug, Default)]
pub struct Uniform;

impl Policy for Uniform {
    fn decide(&mut self, input: &Input) -> Decision {
        let running: Vec<_> = input.nodes.iter().filter(|n| n.is_running()).collect();
        let ranges: Vec<(f64, f64)> =
            running.iter().map(|n| (n.min_cap_watts, n.max_cap_watts)).collect();
        let budget_watts = input.running_budget_watts();
        let shares = fill(budget_watts, &ranges);
        let mut caps = idle_caps(input);
        caps.extend(running.iter().map(|n| n.node.clone()).zip(shares));
        Decision {
            job_bounds: job_bounds(input, &caps),
            why: format!("uniform: {budget_watts:.0} W over {} running nodes", running.len()),
            caps,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::Uniform;
    use crate::{Bound, Input, JobState, NodeState, Policy};

    pub(crate) fn node(name: &str, job: Option<&str>, power_watts: Option<f64>) -> NodeState {
        NodeState {
            node: name.to_string(),
            job: job.map(str::to_string),
            min_cap_watts: 100.0,
            max_cap_watts: 500.0,
            cap_in_force_watts: Some(300.0),
            power_watts,
            responsive: true,
        }
    }

    pub(crate) fn job(id: &str, priority: i32, request: Option<f64>, nodes: &[&str]) -> JobState {
        JobState {
            id: id.to_string(),
            priority,
            request_watts: request,
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn the_bound_less_reserve_and_idle_minimums_is_shared_evenly() {
        let input = Input {
            bound: Bound { watts: 1000.0, reserve_watts: 100.0 },
            nodes: vec![
                node("a", Some("j"), None),
                node("b", Some("j"), None),
                node("c", None, None),
            ],
            jobs: vec![job("j", 0, None, &["a", "b"])],
        };
        let decision = Uniform.decide(&input);
        let cap = |n: &str| decision.caps.iter().find(|c| c.0 == n).map(|c| c.1);
        assert_eq!(cap("c"), Some(100.0));
        assert!((cap("a").unwrap() - 400.0).abs() < 1e-6);
        assert!((cap("b").unwrap() - 400.0).abs() < 1e-6);
        assert!((decision.job_bounds[0].1 - 800.0).abs() < 1e-6);
    }

    #[test]
    fn an_unresponsive_node_counts_at_its_last_cap() {
        let mut lost = node("c", Some("j"), None);
        lost.responsive = false;
        let input = Input {
            bound: Bound { watts: 1000.0, reserve_watts: 0.0 },
            nodes: vec![node("a", Some("j"), None), node("b", Some("j"), None), lost],
            jobs: vec![job("j", 0, None, &["a", "b", "c"])],
        };
        let decision = Uniform.decide(&input);
        assert_eq!(decision.caps.len(), 2);
        assert!((decision.caps[0].1 - 350.0).abs() < 1e-6);
    }
}
