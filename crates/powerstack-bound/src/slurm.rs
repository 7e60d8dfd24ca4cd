//! `slurm`: the reference baseline, after Slurm's `power/cray_aries` plugin (removed in Slurm
//! 24.05). The first period, or whenever the running nodes change or their caps no longer fit the
//! budget, the budget is split evenly (as [`crate::uniform`]). Then every period a node drawing
//! under 90% of its cap is cut by 50% of its range, one drawing over 95% is raised by 20% of its
//! range (clamped to the range); cuts come first, and raises share what the budget leaves in
//! proportion to what each asked. A starting job's nodes are lifted to their maximum when what the
//! budget leaves allows it, else they share what is left evenly. Idle nodes are at their minimum.

use crate::fill::fill;
use crate::{Decision, Input, NodeState, Policy, idle_caps, job_bounds};
use std::collections::BTreeMap;

/// Below this share of its cap a node's cap is cut.
pub const LOWER_THRESHOLD: f64 = 0.90;
/// Above this share of its cap a node's cap is raised.
pub const UPPER_THRESHOLD: f64 = 0.95;
/// A cut, as a share of the node's range.
pub const DECREASE_RATE: f64 = 0.50;
/// A raise, as a share of the node's range.
pub const INCREASE_RATE: f64 = 0.20;

/// The `power/cray_aries` rebalancer; remembers the caps it gave and the jobs it has seen.
#[derive(Clone, Debug, Default)]
pub struct Slurm {
    caps: BTreeMap<String, f64>,
}

impl Slurm {
    /// The even split, for the first period or after the running nodes changed.
    fn reset(&mut self, running: &[&NodeState], budget_watts: f64) -> String {
        let ranges: Vec<_> = running.iter().map(|n| (n.min_cap_watts, n.max_cap_watts)).collect();
        let shares = fill(budget_watts, &ranges);
        self.caps = running.iter().map(|n| n.node.clone()).zip(shares).collect();
        format!("slurm: even split of {budget_watts:.0} W over {} nodes", running.len())
    }

    /// One rebalance: cuts, then raises within what the budget leaves, then starting jobs' nodes.
    fn rebalance(&mut self, running: &[&NodeState], budget_watts: f64) -> String {
        let (mut cut, mut asked) = (0, Vec::new());
        let mut known = Vec::new();
        for n in running {
            let Some(&cap) = self.caps.get(&n.node) else {
                continue;
            };
            let range = n.range_watts();
            let new = match n.power_watts {
                Some(p) if p < LOWER_THRESHOLD * cap => {
                    cut += 1;
                    (cap - DECREASE_RATE * range).max(n.min_cap_watts)
                }
                Some(p) if p > UPPER_THRESHOLD * cap => {
                    asked.push((
                        n.node.clone(),
                        (cap + INCREASE_RATE * range).min(n.max_cap_watts) - cap,
                    ));
                    cap
                }
                _ => cap,
            };
            known.push(n.node.clone());
            self.caps.insert(n.node.clone(), new);
        }
        let new: Vec<&&NodeState> =
            running.iter().filter(|n| !self.caps.contains_key(&n.node)).collect();
        let new_floors: f64 = new.iter().map(|n| n.min_cap_watts).sum();
        let held: f64 = known.iter().filter_map(|n| self.caps.get(n)).sum();
        let free = (budget_watts - held - new_floors).max(0.0);
        let wanted: f64 = asked.iter().map(|a| a.1).sum();
        let granted = if wanted > 0.0 { (free / wanted).min(1.0) } else { 0.0 };
        for (node, watts) in &asked {
            if let Some(cap) = self.caps.get_mut(node) {
                *cap += watts * granted;
            }
        }
        let left = budget_watts - self.caps.values().sum::<f64>();
        let ranges: Vec<_> = new.iter().map(|n| (n.min_cap_watts, n.max_cap_watts)).collect();
        for (n, share) in new.iter().zip(fill(left, &ranges)) {
            self.caps.insert(n.node.clone(), share);
        }
        format!(
            "slurm: {cut} cut, {} raised by {:.0}% of what they asked, {} starting",
            asked.len(),
            granted * 100.0,
            new.len()
        )
    }
}

impl Policy for Slurm {
    fn decide(&mut self, input: &Input) -> Decision {
        let running: Vec<&NodeState> = input.nodes.iter().filter(|n| n.is_running()).collect();
        let budget_watts = input.running_budget_watts();
        self.caps.retain(|node, _| running.iter().any(|n| &n.node == node));
        let fits = self.caps.values().sum::<f64>() <= budget_watts;
        let why = if self.caps.is_empty() || !fits {
            self.reset(&running, budget_watts)
        } else {
            self.rebalance(&running, budget_watts)
        };
        let mut caps = idle_caps(input);
        caps.extend(
            running.iter().filter_map(|n| self.caps.get(&n.node).map(|&w| (n.node.clone(), w))),
        );
        Decision { job_bounds: job_bounds(input, &caps), why, caps }
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
        // a draws 100 W of a 300 W cap: cut by 200 W (50% of 400), to 100 W; b draws 295 W: raised
        // by 80 W (20% of 400), which the budget leaves.
        let second = slurm.decide(&input(&[Some(100.0), Some(295.0)], 600.0));
        assert!((cap(&second, "a") - 100.0).abs() < 1e-6);
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
    fn a_lowered_bound_resets_to_an_even_split() {
        let mut slurm = Slurm::default();
        slurm.decide(&input(&[None, None], 1000.0));
        let lowered = slurm.decide(&input(&[Some(400.0), Some(400.0)], 400.0));
        assert!((cap(&lowered, "a") - 200.0).abs() < 1e-6);
    }
}
