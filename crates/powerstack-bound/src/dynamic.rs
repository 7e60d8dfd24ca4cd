//! `dynamic`: slack moves from nodes drawing under their cap to nodes held at it.
//!
//! Each node has a ceiling: its maximum, or, for a job that asked for power, its even share of the
//! request (so a job's nodes together never get more than it asked). A node that starts running
//! gets the share an even split would give it; when the caps no longer fit the budget (the bound
//! was lowered, a node stopped answering) the highest caps are lowered first until they fit.
//! Then, every period:
//! - a node drawing at or over [`Config::held_above`] of its cap and under its ceiling is *held*;
//! - a node drawing under [`Config::donor_below`] of its cap is a *donor*: its cap would go to its
//!   draw plus [`Config::headroom`] (not under its minimum), if that frees at least
//!   [`Config::min_step`] of its range;
//! - only when some node is held do donors give: the budget they free, with any the caps leave
//!   unused, is shared over the held nodes at one level from their caps up (the lowest first).
//!
//! The gap between the two thresholds, the headroom (a donor's draw ends at about 91% of its new
//! cap) and the smallest step are the hysteresis: a node that settles between the thresholds keeps
//! its cap, and a donor whose draw rises again is held and gets slack back. Without measured
//! power a node keeps its cap. Idle nodes are at their minimum. Learning each node's sensitivity to
//! its cap (how much its draw follows the cap) is not done yet.

use crate::fill::fill;
use crate::{Decision, Input, NodeState, Policy, idle_caps, job_bounds};
use std::collections::BTreeMap;

/// The thresholds of the dynamic policy, as shares of a node's cap or range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// A node drawing under this share of its cap gives slack.
    pub donor_below: f64,
    /// A node drawing at or over this share of its cap is held at it and takes slack.
    pub held_above: f64,
    /// A donor's new cap is its draw times one plus this.
    pub headroom: f64,
    /// A donor gives only when this share of its range or more is freed.
    pub min_step: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self { donor_below: 0.85, held_above: 0.95, headroom: 0.10, min_step: 0.05 }
    }
}

/// The dynamic policy; remembers the caps it gave.
#[derive(Clone, Debug, Default)]
pub struct Dynamic {
    /// Its thresholds.
    pub config: Config,
    caps: BTreeMap<String, f64>,
}

/// Each running node's ceiling: its maximum, or its share of its job's request.
fn ceilings(input: &Input, running: &[&NodeState]) -> Vec<f64> {
    let mut ceiling: BTreeMap<&str, f64> =
        running.iter().map(|n| (n.node.as_str(), n.max_cap_watts)).collect();
    for job in &input.jobs {
        let Some(request) = job.request_watts.filter(|r| r.is_finite()) else {
            continue;
        };
        let nodes: Vec<&&NodeState> =
            running.iter().filter(|n| n.job.as_deref() == Some(job.id.as_str())).collect();
        let ranges: Vec<_> = nodes.iter().map(|n| (n.min_cap_watts, n.max_cap_watts)).collect();
        for (n, share) in nodes.iter().zip(fill(request, &ranges)) {
            ceiling.insert(n.node.as_str(), share);
        }
    }
    running
        .iter()
        .map(|n| ceiling.get(n.node.as_str()).copied().unwrap_or(n.min_cap_watts))
        .collect()
}

impl Dynamic {
    /// Caps for this period before slack moves: remembered, or an even share for a starting node,
    /// within each node's range and ceiling, and lowered from the top to fit the budget.
    fn start(&self, running: &[&NodeState], ceilings: &[f64], budget_watts: f64) -> Vec<f64> {
        let ranges: Vec<_> =
            running.iter().zip(ceilings).map(|(n, c)| (n.min_cap_watts, *c)).collect();
        let even = fill(budget_watts, &ranges);
        let caps: Vec<f64> = running
            .iter()
            .zip(&ranges)
            .zip(even)
            .map(|((n, &(lo, hi)), share)| {
                self.caps.get(&n.node).map_or(share, |c| c.clamp(lo, hi.max(lo)))
            })
            .collect();
        if caps.iter().sum::<f64>() <= budget_watts {
            return caps;
        }
        let from_top: Vec<_> =
            running.iter().zip(&caps).map(|(n, c)| (n.min_cap_watts, *c)).collect();
        fill(budget_watts, &from_top)
    }

    /// Moves slack from donors to held nodes; returns the number of each.
    fn balance(
        &self,
        running: &[&NodeState],
        ceilings: &[f64],
        caps: &mut [f64],
        budget_watts: f64,
    ) -> (usize, usize) {
        let c = self.config;
        let held: Vec<usize> = (0..running.len())
            .filter(|&i| caps[i] < ceilings[i])
            .filter(|&i| running[i].power_watts.is_some_and(|p| p >= c.held_above * caps[i]))
            .collect();
        if held.is_empty() {
            return (0, 0);
        }
        let mut donors = 0;
        for (i, n) in running.iter().enumerate() {
            let Some(power) = n.power_watts.filter(|p| *p < c.donor_below * caps[i]) else {
                continue;
            };
            let target = (power * (1.0 + c.headroom)).max(n.min_cap_watts);
            if caps[i] - target >= c.min_step * n.range_watts() {
                caps[i] = target;
                donors += 1;
            }
        }
        let pool = budget_watts - caps.iter().sum::<f64>();
        let ranges: Vec<_> = held.iter().map(|&i| (caps[i], ceilings[i])).collect();
        let floors: f64 = ranges.iter().map(|r| r.0).sum();
        for (&i, cap) in held.iter().zip(fill(floors + pool.max(0.0), &ranges)) {
            caps[i] = cap;
        }
        (donors, held.len())
    }
}

impl Policy for Dynamic {
    fn decide(&mut self, input: &Input) -> Decision {
        let running: Vec<&NodeState> = input.nodes.iter().filter(|n| n.is_running()).collect();
        let budget_watts = input.running_budget_watts();
        let ceilings = ceilings(input, &running);
        let mut caps = self.start(&running, &ceilings, budget_watts);
        let (donors, held) = self.balance(&running, &ceilings, &mut caps, budget_watts);
        self.caps = running.iter().map(|n| n.node.clone()).zip(caps.iter().copied()).collect();
        let mut all = idle_caps(input);
        all.extend(self.caps.iter().map(|(n, w)| (n.clone(), *w)));
        Decision {
            job_bounds: job_bounds(input, &all),
            why: format!("dynamic: {donors} nodes gave slack to {held} held at their cap"),
            caps: all,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Dynamic;
    use crate::uniform::tests::{job, node};
    use crate::{Bound, Decision, Input, Policy};

    fn input(powers: &[Option<f64>], request: Option<f64>) -> Input {
        let names = ["a", "b", "c"];
        Input {
            bound: Bound { watts: 900.0, reserve_watts: 0.0 },
            nodes: powers.iter().zip(names).map(|(p, n)| node(n, Some("j"), *p)).collect(),
            jobs: vec![job("j", 0, request, &names[..powers.len()])],
        }
    }

    fn cap(decision: &Decision, name: &str) -> f64 {
        decision.caps.iter().find(|c| c.0 == name).map(|c| c.1).unwrap()
    }

    #[test]
    fn slack_moves_from_a_quiet_node_to_one_held_at_its_cap() {
        let mut dynamic = Dynamic::default();
        let first = dynamic.decide(&input(&[None, None, None], None));
        assert!((cap(&first, "a") - 300.0).abs() < 1e-6);
        let second = dynamic.decide(&input(&[Some(150.0), Some(299.0), Some(270.0)], None));
        // a gives down to 165 W; b, held, takes the 135 W; c, between the thresholds, keeps 300 W.
        assert!((cap(&second, "a") - 165.0).abs() < 1e-6);
        assert!((cap(&second, "b") - 435.0).abs() < 1e-6);
        assert!((cap(&second, "c") - 300.0).abs() < 1e-6);
    }

    #[test]
    fn nothing_moves_when_no_node_is_held() {
        let mut dynamic = Dynamic::default();
        dynamic.decide(&input(&[None, None, None], None));
        let second = dynamic.decide(&input(&[Some(150.0), Some(200.0), Some(270.0)], None));
        for name in ["a", "b", "c"] {
            assert!((cap(&second, name) - 300.0).abs() < 1e-6);
        }
    }

    #[test]
    fn a_request_bounds_the_job() {
        let mut dynamic = Dynamic::default();
        dynamic.decide(&input(&[None, None], Some(500.0)));
        let second = dynamic.decide(&input(&[Some(249.0), Some(249.0)], Some(500.0)));
        assert!(second.job_bounds[0].1 <= 500.0 + 1e-9, "{second:?}");
    }

    #[test]
    fn a_lowered_bound_lowers_the_highest_caps_first() {
        let mut dynamic = Dynamic::default();
        dynamic.decide(&input(&[None, None, None], None));
        dynamic.decide(&input(&[Some(150.0), Some(299.0), Some(270.0)], None));
        let mut lowered = input(&[Some(150.0), Some(400.0), Some(270.0)], None);
        lowered.bound.watts = 700.0;
        let third = dynamic.decide(&lowered);
        assert!(third.caps.iter().map(|c| c.1).sum::<f64>() <= 700.0 + 1e-9);
        assert!((cap(&third, "a") - 165.0).abs() < 1e-6);
    }
}
