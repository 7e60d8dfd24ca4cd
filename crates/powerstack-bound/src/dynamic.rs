//! `dynamic`: slack moves from nodes drawing under their cap to nodes held at it, except from
//! nodes whose draw has been seen to follow their cap.
//!
//! Each node has a ceiling: its maximum, or, for a job that asked for power, its even share of the
//! request (so a job's nodes together never get more than it asked). A node that starts running
//! gets the share an even split would give it; when the caps no longer fit the budget (the bound
//! was lowered, a node stopped answering) the highest caps are lowered first until they fit.
//! Then, every period:
//! - each running node's *uptake* is learned: when its cap moved by 1% of its range or more since
//!   the last period, and it runs the same job, Δdraw/Δcap (within 0 to 1) enters a weighted mean
//!   ([`Config::uptake_weight`]); a node that starts a job, or whose draw crosses from under its
//!   cap to at it or back (its job changed phase), starts again unknown;
//! - a node drawing at or over [`Config::held_above`] of its cap and under its ceiling is *held*,
//!   and so is one whose uptake is at least [`Config::follows_above`]: some domain of it is at its
//!   limit even though the node draws under its cap (a node cap split over CPUs and GPUs in
//!   proportion to their maximum leaves a CPU-bound node's GPU share unused), so cutting its cap
//!   would slow it;
//! - a node drawing under [`Config::donor_below`] of its cap, and not seen to follow it, is a
//!   *donor*: its cap would go to its draw plus [`Config::headroom`] (not under its minimum), if
//!   that frees at least [`Config::min_step`] of its range;
//! - only when some node is held do donors give: the budget they free, with any the caps leave
//!   unused, is shared over the held nodes at one level from their caps up (the lowest first).
//!
//! The gap between the two thresholds, the headroom (a donor's draw ends at about 91% of its new
//! cap) and the smallest step are the hysteresis: a node that settles between the thresholds keeps
//! its cap, and a donor whose draw rises again is held and gets slack back. Without measured
//! power a node keeps its cap. Idle nodes are at their minimum.

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
    /// The weight of a new sample in a node's learned uptake (an exponentially weighted mean).
    pub uptake_weight: f64,
    /// A node whose draw followed its cap by at least this share (its learned uptake) is held
    /// by some domain at its limit even when it draws under its cap: it gives nothing.
    pub follows_above: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            donor_below: 0.85,
            held_above: 0.95,
            headroom: 0.10,
            min_step: 0.05,
            uptake_weight: 0.5,
            follows_above: 0.10,
        }
    }
}

/// What the policy learned of one node while it runs one job.
#[derive(Clone, Debug, PartialEq)]
struct Learned {
    job: Option<String>,
    cap_watts: f64,
    power_watts: f64,
    /// How much of a change of its cap its draw follows, Δdraw/Δcap within 0 to 1, as a
    /// weighted mean; `None` until its cap has moved while it runs this job.
    uptake: Option<f64>,
}

/// The dynamic policy; remembers the caps it gave.
#[derive(Clone, Debug, Default)]
pub struct Dynamic {
    /// Its thresholds.
    pub config: Config,
    caps: BTreeMap<String, f64>,
    learned: BTreeMap<String, Learned>,
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

    /// Learns each running node's uptake from its cap in force and draw now against last
    /// period's, while it runs the same job: Δdraw/Δcap, within 0 to 1, when the cap moved by 1%
    /// of the range or more. A node that starts a job, or whose draw jumps from under its cap to
    /// at it (its job changed phase), starts again unknown. Returns the uptakes.
    fn learn(&mut self, running: &[&NodeState]) -> Vec<Option<f64>> {
        let c = self.config;
        let mut next = BTreeMap::new();
        let mut uptakes = Vec::with_capacity(running.len());
        for n in running {
            let prev = self.learned.get(&n.node).filter(|l| l.job == n.job);
            let (Some(cap), Some(power)) = (n.cap_in_force_watts, n.power_watts) else {
                uptakes.push(prev.and_then(|l| l.uptake));
                if let Some(l) = prev {
                    next.insert(n.node.clone(), l.clone());
                }
                continue;
            };
            let mut uptake = prev.and_then(|l| l.uptake);
            if let Some(l) = prev {
                let under = |p: f64, cap: f64| p < c.donor_below * cap;
                let at = |p: f64, cap: f64| p >= c.held_above * cap;
                let changed = (under(l.power_watts, l.cap_watts) && at(power, cap))
                    || (at(l.power_watts, l.cap_watts) && under(power, cap));
                let moved = cap - l.cap_watts;
                if changed {
                    uptake = None;
                } else if moved.abs() >= 0.01 * n.range_watts().max(1.0) {
                    let sample = ((power - l.power_watts) / moved).clamp(0.0, 1.0);
                    let w = c.uptake_weight;
                    uptake = Some(uptake.map_or(sample, |u| (1.0 - w) * u + w * sample));
                }
            }
            let learned =
                Learned { job: n.job.clone(), cap_watts: cap, power_watts: power, uptake };
            next.insert(n.node.clone(), learned);
            uptakes.push(uptake);
        }
        self.learned = next;
        uptakes
    }

    /// Moves slack from donors to held nodes; returns the number of each.
    fn balance(
        &self,
        running: &[&NodeState],
        ceilings: &[f64],
        uptakes: &[Option<f64>],
        caps: &mut [f64],
        budget_watts: f64,
    ) -> (usize, usize) {
        let c = self.config;
        let follows = |i: usize| uptakes[i].is_some_and(|u| u >= c.follows_above);
        let held: Vec<usize> = (0..running.len())
            .filter(|&i| caps[i] < ceilings[i])
            .filter(|&i| {
                running[i].power_watts.is_some_and(|p| p >= c.held_above * caps[i]) || follows(i)
            })
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
            if !follows(i) && caps[i] - target >= c.min_step * n.range_watts() {
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
        let uptakes = self.learn(&running);
        let mut caps = self.start(&running, &ceilings, budget_watts);
        let (donors, held) = self.balance(&running, &ceilings, &uptakes, &mut caps, budget_watts);
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
    fn the_uptake_is_how_much_of_a_cap_change_the_draw_followed() {
        let mut dynamic = Dynamic::default();
        let mut first = input(&[Some(150.0), Some(150.0), Some(299.0)], None);
        dynamic.decide(&first);
        // a's draw followed its cap down by 30 W of 135 W; b's did not move.
        first.nodes[0].cap_in_force_watts = Some(165.0);
        first.nodes[0].power_watts = Some(120.0);
        first.nodes[1].cap_in_force_watts = Some(165.0);
        let running: Vec<_> = first.nodes.iter().collect();
        let uptakes = dynamic.learn(&running);
        assert!((uptakes[0].unwrap() - 30.0 / 135.0).abs() < 1e-9, "{uptakes:?}");
        assert_eq!(uptakes[1], Some(0.0));
        assert_eq!(uptakes[2], None, "its cap did not move");
        // c's draw falls from at its cap to well under it: a new phase, learned afresh.
        first.nodes[2].power_watts = Some(100.0);
        first.nodes[2].cap_in_force_watts = Some(250.0);
        assert_eq!(dynamic.learn(&running_of(&first))[2], None);
    }

    fn running_of(input: &Input) -> Vec<&crate::NodeState> {
        input.nodes.iter().collect()
    }

    #[test]
    fn a_node_whose_draw_follows_its_cap_is_not_cut_again() {
        let mut dynamic = Dynamic::default();
        dynamic.decide(&input(&[None, None, None], None));
        let second = dynamic.decide(&input(&[Some(150.0), Some(299.0), Some(270.0)], None));
        assert!((cap(&second, "a") - 165.0).abs() < 1e-6);
        // a's draw fell with its cap (120 W at 165 W): a domain of it is at its limit. Under 85%
        // of its cap, it would be cut to 132 W were its uptake not learned; it is held instead.
        let mut third_input = input(&[Some(120.0), Some(299.0), Some(270.0)], None);
        third_input.nodes[0].cap_in_force_watts = Some(165.0);
        third_input.nodes[1].cap_in_force_watts = Some(435.0);
        let third = dynamic.decide(&third_input);
        assert!(cap(&third, "a") >= 165.0 - 1e-6, "{third:?}");
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
