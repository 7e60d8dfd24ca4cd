//! `priority`: jobs by priority. Every running node first gets its minimum; then, from the highest
//! priority down, each job asks for its request (all its nodes together, clamped to what they can
//! take) or, without one, its nodes' maximum. A priority whose jobs all fit gets what they ask;
//! the first that does not shares what is left fairly, every node of that priority at the same
//! level up to what its job asked per node, and lower priorities keep their minimums. So a request
//! bounds what a job gets, and within a priority no job is favoured: a job that asked for less is
//! served in full first, the others share the rest evenly per node.

use crate::fill::fill;
use crate::{Decision, Input, JobState, NodeState, Policy, idle_caps, job_bounds};

/// Jobs by priority, fair within one; keeps no state.
#[derive(Clone, Debug, Default)]
pub struct Priority;

/// A job's running nodes and the cap it asks for on each of them.
fn asks<'a>(input: &'a Input, job: &JobState) -> Vec<(&'a NodeState, f64)> {
    let nodes: Vec<&NodeState> = input
        .nodes
        .iter()
        .filter(|n| n.is_running() && n.job.as_deref() == Some(job.id.as_str()))
        .collect();
    let floors: f64 = nodes.iter().map(|n| n.min_cap_watts).sum();
    let ceilings: f64 = nodes.iter().map(|n| n.max_cap_watts).sum();
    match job.request_watts {
        // A request is shared over the job's nodes as an even split would.
        Some(request) if request.is_finite() => {
            let ranges: Vec<_> = nodes.iter().map(|n| (n.min_cap_watts, n.max_cap_watts)).collect();
            let shares = fill(request.clamp(floors, ceilings), &ranges);
            nodes.into_iter().zip(shares).collect()
        }
        _ => nodes.into_iter().map(|n| (n, n.max_cap_watts)).collect(),
    }
}

impl Policy for Priority {
    fn decide(&mut self, input: &Input) -> Decision {
        let mut jobs: Vec<&JobState> = input.jobs.iter().collect();
        jobs.sort_by_key(|j| std::cmp::Reverse(j.priority));
        let running: Vec<&NodeState> = input.nodes.iter().filter(|n| n.is_running()).collect();
        let mut left =
            input.running_budget_watts() - running.iter().map(|n| n.min_cap_watts).sum::<f64>();
        let mut caps = idle_caps(input);
        let mut served = 0;
        let mut why = String::from("priority: every job its ask");
        for level in jobs.chunk_by(|a, b| a.priority == b.priority) {
            let asked: Vec<(&NodeState, f64)> = level.iter().flat_map(|j| asks(input, j)).collect();
            let extra: f64 = asked.iter().map(|(n, w)| w - n.min_cap_watts).sum();
            let grant = if left <= 0.0 {
                asked.iter().map(|(n, _)| n.min_cap_watts).collect()
            } else if extra <= left {
                asked.iter().map(|a| a.1).collect()
            } else {
                let ranges: Vec<_> = asked.iter().map(|(n, w)| (n.min_cap_watts, *w)).collect();
                let floors: f64 = ranges.iter().map(|r| r.0).sum();
                why =
                    format!("priority: jobs of priority {} share what is left", level[0].priority);
                fill(left + floors, &ranges)
            };
            left -= asked.iter().zip(&grant).map(|((n, _), g)| g - n.min_cap_watts).sum::<f64>();
            served += asked.len();
            caps.extend(asked.iter().map(|(n, _)| n.node.clone()).zip(grant));
        }
        // Running nodes no job lists keep their minimum.
        if served < running.len() {
            let missing: Vec<_> = running
                .iter()
                .filter(|n| !caps.iter().any(|c| c.0 == n.node))
                .map(|n| (n.node.clone(), n.min_cap_watts))
                .collect();
            caps.extend(missing);
        }
        Decision { job_bounds: job_bounds(input, &caps), why, caps }
    }
}

#[cfg(test)]
mod tests {
    use super::Priority;
    use crate::uniform::tests::{job, node};
    use crate::{Bound, Input, Policy};

    fn input(bound_watts: f64, jobs: Vec<crate::JobState>) -> Input {
        let nodes = jobs
            .iter()
            .flat_map(|j| j.nodes.iter().map(|n| node(n, Some(&j.id), None)).collect::<Vec<_>>())
            .collect();
        Input { bound: Bound { watts: bound_watts, reserve_watts: 0.0 }, nodes, jobs }
    }

    fn bound_of(decision: &crate::Decision, id: &str) -> f64 {
        decision.job_bounds.iter().find(|b| b.0 == id).map(|b| b.1).unwrap()
    }

    #[test]
    fn the_higher_priority_is_served_first() {
        let jobs = vec![job("low", 0, None, &["a"]), job("high", 5, None, &["b"])];
        let decision = Priority.decide(&input(700.0, jobs));
        assert!((bound_of(&decision, "high") - 500.0).abs() < 1e-6);
        assert!((bound_of(&decision, "low") - 200.0).abs() < 1e-6);
    }

    #[test]
    fn a_request_is_respected_and_the_rest_goes_down_the_line() {
        let jobs = vec![job("low", 0, None, &["a"]), job("high", 5, Some(300.0), &["b"])];
        let decision = Priority.decide(&input(1000.0, jobs));
        assert!((bound_of(&decision, "high") - 300.0).abs() < 1e-6);
        assert!((bound_of(&decision, "low") - 500.0).abs() < 1e-6);
    }

    #[test]
    fn within_a_priority_nodes_share_fairly() {
        let jobs = vec![job("x", 1, None, &["a", "b"]), job("y", 1, None, &["c"])];
        let decision = Priority.decide(&input(900.0, jobs));
        assert!((bound_of(&decision, "x") - 600.0).abs() < 1e-6);
        assert!((bound_of(&decision, "y") - 300.0).abs() < 1e-6);
    }
}
