//! `slurm`: the reference baseline, after Slurm's `power/cray_aries` plugin (removed in Slurm
//! 24.05), which rebalanced every 30 s. Every period, for each running node:
//! - drawing under 90% of its cap: the cap is cut by 50% of the node's range, or by half the
//!   unused part of the cap when that is less (not under the minimum);
//! - drawing between 90% and 95%: the cap is kept;
//! - drawing over 95%, or starting a job (a node whose job changed since the last period), or
//!   without a cap or a reading yet: the node waits for a share.
//!
//! When the kept and cut caps leave less than the waiting nodes' minimums (or exceed the budget,
//! after a lowered bound), each kept or cut cap is lowered by the same amount (not under its
//! minimum). What is left is then shared over the waiting nodes in turn, at an even share of what
//! remains: a starting node gets the share (its maximum when the budget allows), a busy node its
//! cap plus 20% of its range, at most the share; every cap within its node's range. Idle nodes are
//! at their minimum.

use crate::{Decision, Input, NodeState, Policy, idle_caps, job_bounds};
use std::collections::BTreeMap;

/// Below this share of its cap a node's cap is cut.
pub const LOWER_THRESHOLD: f64 = 0.90;
/// Above this share of its cap a node's cap is raised.
pub const UPPER_THRESHOLD: f64 = 0.95;
/// The largest cut, as a share of the node's range.
pub const DECREASE_RATE: f64 = 0.50;
/// A raise, as a share of the node's range.
pub const INCREASE_RATE: f64 = 0.20;

/// The `power/cray_aries` rebalancer; remembers each node's cap and job.
#[derive(Clone, Debug, Default)]
pub struct Slurm {
    seen: BTreeMap<String, (f64, Option<String>)>,
}

/// A running node's first pass: its cap kept or cut, or `None` when it waits for a share (with
/// its remembered cap when raised, `None` when starting).
fn first_pass(n: &NodeState, seen: Option<&(f64, Option<String>)>) -> Result<f64, Option<f64>> {
    let cap = match seen {
        Some((cap, job)) if *job == n.job => *cap,
        _ => return Err(None),
    };
    match n.power_watts {
        Some(p) if p < LOWER_THRESHOLD * cap => {
            let cut = (DECREASE_RATE * n.range_watts()).min((cap - p) / 2.0);
            Ok((cap - cut).max(n.min_cap_watts))
        }
        Some(p) if p <= UPPER_THRESHOLD * cap => Ok(cap.max(n.min_cap_watts)),
        Some(_) => Err(Some(cap)),
        None => Err(None),
    }
}

impl Policy for Slurm {
    fn decide(&mut self, input: &Input) -> Decision {
        let running: Vec<&NodeState> = input.nodes.iter().filter(|n| n.is_running()).collect();
        let budget_watts = input.running_budget_watts();
        let passes: Vec<_> =
            running.iter().map(|n| first_pass(n, self.seen.get(&n.node))).collect();
        let mut caps: Vec<Option<f64>> = passes.iter().map(|p| p.ok()).collect();
        let waiting: Vec<usize> = (0..running.len()).filter(|&i| caps[i].is_none()).collect();
        let needed: f64 = waiting.iter().map(|&i| running[i].min_cap_watts).sum();
        let allocated: f64 = caps.iter().flatten().sum();
        let short = (allocated - budget_watts).max(needed - (budget_watts - allocated).max(0.0));
        let settled = running.len() - waiting.len();
        if short > 0.0 && settled > 0 {
            let each = short / settled as f64;
            for (cap, n) in caps.iter_mut().zip(&running) {
                if let Some(c) = cap {
                    *c = (*c - each).max(n.min_cap_watts);
                }
            }
        }
        let mut available = (budget_watts - caps.iter().flatten().sum::<f64>()).max(0.0);
        for (k, &i) in waiting.iter().enumerate() {
            let n = running[i];
            let share = available / (waiting.len() - k) as f64;
            let new = match passes[i] {
                Err(Some(cap)) => (cap + INCREASE_RATE * n.range_watts()).min(share),
                _ => share,
            };
            let new = new.clamp(n.min_cap_watts, n.max_cap_watts);
            available = (available - new).max(0.0);
            caps[i] = Some(new);
        }
        self.seen = running
            .iter()
            .zip(&caps)
            .filter_map(|(n, c)| c.map(|c| (n.node.clone(), (c, n.job.clone()))))
            .collect();
        let mut all = idle_caps(input);
        all.extend(running.iter().zip(&caps).filter_map(|(n, c)| c.map(|c| (n.node.clone(), c))));
        Decision {
            job_bounds: job_bounds(input, &all),
            why: format!(
                "slurm: {} of {} running nodes kept or cut, {} shared {:.0} W",
                settled,
                running.len(),
                waiting.len(),
                budget_watts
            ),
            caps: all,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Slurm;
    use crate::uniform::tests::{job, node};
    use crate::{Bound, Input, Policy};

    fn input(powers: &[Option<f64>], bound_watts: f64) -> Input {
        let names = ["a", "b", "c", "d"];
        Input {
            bound: Bound { watts: bound_watts, reserve_watts: 0.0 },
            nodes: powers.iter().zip(names).map(|(p, n)| node(n, Some("j"), *p)).collect(),
            jobs: vec![job("j", 0, None, &names[..powers.len()])],
        }
    }

    fn cap(decision: &crate::Decision, name: &str) -> f64 {
        decision.caps.iter().find(|c| c.0 == name).map(|c| c.1).unwrap()
    }

    #[test]
    fn even_split_then_a_quiet_node_is_cut_and_a_busy_one_raised() {
        let mut slurm = Slurm::default();
        let first = slurm.decide(&input(&[None, None], 600.0));
        assert!((cap(&first, "a") - 300.0).abs() < 1e-6);
        // a draws 100 W of a 300 W cap: cut by half the unused 200 W (less than 50% of its 400 W
        // range), to 200 W; b draws 295 W: raised by 80 W (20% of 400), within the 400 W left.
        let second = slurm.decide(&input(&[Some(100.0), Some(295.0)], 600.0));
        assert!((cap(&second, "a") - 200.0).abs() < 1e-6);
        assert!((cap(&second, "b") - 380.0).abs() < 1e-6);
    }

    #[test]
    fn raises_share_what_the_budget_leaves() {
        let mut slurm = Slurm::default();
        slurm.decide(&input(&[None, None], 600.0));
        let second = slurm.decide(&input(&[Some(299.0), Some(299.0)], 600.0));
        assert!((cap(&second, "a") - 300.0).abs() < 1e-6);
        assert!(second.caps.iter().map(|c| c.1).sum::<f64>() <= 600.0 + 1e-9);
    }

    #[test]
    fn a_starting_job_is_lifted_to_the_maximum_when_the_budget_allows() {
        let mut slurm = Slurm::default();
        slurm.decide(&input(&[None, None], 1200.0));
        slurm.decide(&input(&[Some(100.0), Some(100.0)], 1200.0));
        let mut later = input(&[Some(100.0), Some(100.0), None], 1200.0);
        later.nodes[2].job = Some("k".into());
        later.jobs.push(job("k", 0, None, &["c"]));
        let third = slurm.decide(&later);
        assert!((cap(&third, "c") - 500.0).abs() < 1e-6, "{third:?}");
    }

    #[test]
    fn a_lowered_bound_lowers_every_cap_by_the_same_amount() {
        let mut slurm = Slurm::default();
        slurm.decide(&input(&[None, None], 1000.0));
        let lowered = slurm.decide(&input(&[Some(400.0), Some(400.0)], 400.0));
        assert!((cap(&lowered, "a") - 200.0).abs() < 1e-6);
    }
}
