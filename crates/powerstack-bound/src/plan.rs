//! The invariant, enforced in one place after every policy: the caps in force plus the reserve
//! never exceed the bound. [`plan`] clamps each cap to its node's range, scales down what is above
//! the minimums when the decision asks for more than the bound allows, and splits the change into
//! two phases: [`Plan::lower`] (written first, then read back) and [`Plan::raise`] (written only
//! once every lower is confirmed, see [`Plan::raises_allowed`]). A node that does not answer is not
//! written and counts at its last known cap, or its maximum when unknown; a responsive node whose
//! cap is unknown counts at its maximum until written. When even every minimum plus the reserve
//! is above the bound, the plan says so ([`Plan::shortfall`]), lowers every node to its minimum
//! and raises nothing.

use crate::{Decision, Input, NodeState};
use std::collections::{BTreeMap, BTreeSet};

/// Why a plan cannot be made: the input itself is wrong (nothing is to be written).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The bound or reserve is negative or not a number.
    #[error(
        "the bound ({watts} W) and reserve ({reserve_watts} W) must be finite and non-negative"
    )]
    Bound {
        /// The bound, in watts.
        watts: f64,
        /// The reserve, in watts.
        reserve_watts: f64,
    },
    /// A node's range or cap is wrong.
    #[error("node {node}: {why}")]
    Node {
        /// The node's name.
        node: String,
        /// What is wrong, in a few words.
        why: String,
    },
}

/// The bound cannot be met: every node at its minimum plus the reserve is above it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shortfall {
    /// What the cluster counts for at the least: the minimums, unresponsive nodes and the reserve.
    pub need_watts: f64,
    /// The bound, in watts.
    pub bound_watts: f64,
}

/// The caps to write, in two phases.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Caps to write first, each to be read back (nodes whose cap goes down or is unknown).
    pub lower: Vec<(String, f64)>,
    /// Caps to write only once every lower is confirmed.
    pub raise: Vec<(String, f64)>,
    /// Set when the bound cannot be met; the plan then lowers every node to its minimum.
    pub shortfall: Option<Shortfall>,
    /// Whether the decision asked for more than the bound allows and was scaled down.
    pub scaled: bool,
    /// How far a cap read back may be from its target and count as it ([`plan_within`]), W.
    pub tolerance_watts: f64,
}

impl Plan {
    /// The raises that may be written, given the caps read back after the lower phase: all of them
    /// when every lowered node reads back at or under its new cap, none otherwise.
    pub fn raises_allowed(&self, read_back: &[(String, f64)]) -> &[(String, f64)] {
        let confirmed = self.lower.iter().all(|(node, target)| {
            read_back.iter().any(|(n, watts)| n == node && *watts <= *target + self.tolerance_watts)
        });
        if confirmed { &self.raise } else { &[] }
    }
}

fn check(input: &Input) -> Result<(), PlanError> {
    let bound = input.bound;
    let ok = |w: f64| w.is_finite() && w >= 0.0;
    if !ok(bound.watts) || !ok(bound.reserve_watts) {
        return Err(PlanError::Bound { watts: bound.watts, reserve_watts: bound.reserve_watts });
    }
    let mut seen = BTreeSet::new();
    for n in &input.nodes {
        let bad = |why: &str| Err(PlanError::Node { node: n.node.clone(), why: why.to_string() });
        if !seen.insert(n.node.as_str()) {
            return bad("listed twice");
        }
        if !ok(n.min_cap_watts) || !ok(n.max_cap_watts) || n.min_cap_watts > n.max_cap_watts {
            return bad("its caps must be finite, non-negative and minimum <= maximum");
        }
        if n.cap_in_force_watts.is_some_and(|w| !ok(w)) {
            return bad("its cap in force must be finite and non-negative");
        }
    }
    Ok(())
}

/// Scales what is above the minimums so that the targets add up to at most `available_watts`.
fn scale_down(nodes: &[&NodeState], targets: &mut [f64], available_watts: f64) {
    let floors: f64 = nodes.iter().map(|n| n.min_cap_watts).sum();
    let extra: f64 = nodes.iter().zip(targets.iter()).map(|(n, t)| t - n.min_cap_watts).sum();
    let mut factor = ((available_watts - floors) / extra).clamp(0.0, 1.0);
    let at = |factor: f64| -> Vec<f64> {
        nodes
            .iter()
            .zip(targets.iter())
            .map(|(n, t)| n.min_cap_watts + (t - n.min_cap_watts) * factor)
            .collect()
    };
    // Rounding may leave the sum a hair above: shrink until it is not (minimums fit, so it ends).
    let mut scaled = at(factor);
    while scaled.iter().sum::<f64>() > available_watts && factor > 0.0 {
        factor = if factor < 1e-9 { 0.0 } else { factor * (1.0 - 1e-9) };
        scaled = at(factor);
    }
    targets.copy_from_slice(&scaled);
}

/// Turns a policy's decision into the caps to write, keeping the caps in force plus the reserve
/// within the bound after each phase (see the module's comment).
pub fn plan(input: &Input, decision: &Decision) -> Result<Plan, PlanError> {
    plan_within(input, decision, 0.0)
}

/// [`plan`] for hardware that rounds: a cap read back within `tolerance_watts` of its target
/// counts as it (a lower is confirmed, [`Plan::raises_allowed`]), a cap in force within it of its
/// target is not written again (no writes chasing rounding every period), and the budget is
/// reduced by the tolerance for every responsive node, so that the caps in force plus the reserve
/// stay within the bound all the same.
pub fn plan_within(
    input: &Input,
    decision: &Decision,
    tolerance_watts: f64,
) -> Result<Plan, PlanError> {
    check(input)?;
    let tol = if tolerance_watts.is_finite() { tolerance_watts.max(0.0) } else { 0.0 };
    let asked: BTreeMap<&str, f64> = decision.caps.iter().map(|(n, w)| (n.as_str(), *w)).collect();
    let responsive: Vec<&NodeState> = input.nodes.iter().filter(|n| n.responsive).collect();
    let mut targets: Vec<f64> = responsive
        .iter()
        .map(|n| match asked.get(n.node.as_str()) {
            Some(w) if !w.is_nan() => w.clamp(n.min_cap_watts, n.max_cap_watts),
            _ => n.min_cap_watts,
        })
        .collect();
    let available_watts = input.budget_watts() - tol * responsive.len() as f64;
    let floors: f64 = responsive.iter().map(|n| n.min_cap_watts).sum();
    let mut result = Plan { tolerance_watts: tol, ..Plan::default() };
    if floors > available_watts {
        result.shortfall = Some(Shortfall {
            need_watts: input.bound.watts - available_watts + floors,
            bound_watts: input.bound.watts,
        });
        for (n, t) in responsive.iter().zip(targets.iter_mut()) {
            *t = n.min_cap_watts;
        }
    } else if targets.iter().sum::<f64>() > available_watts {
        result.scaled = true;
        scale_down(&responsive, &mut targets, available_watts);
    }
    for (n, target) in responsive.iter().zip(targets) {
        let write = (n.node.clone(), target);
        match n.cap_in_force_watts {
            Some(now) if (target - now).abs() <= tol && tol > 0.0 => {}
            Some(now) if target > now && result.shortfall.is_none() => result.raise.push(write),
            Some(now) if target >= now => {}
            _ => result.lower.push(write),
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::{PlanError, plan};
    use crate::uniform::tests::node;
    use crate::{Bound, Decision, Input};

    fn input(watts: f64, reserve_watts: f64) -> Input {
        Input {
            bound: Bound { watts, reserve_watts },
            nodes: vec![node("a", Some("j"), None), node("b", Some("j"), None)],
            jobs: vec![],
        }
    }

    fn decision(a: f64, b: f64) -> Decision {
        Decision { caps: vec![("a".into(), a), ("b".into(), b)], ..Decision::default() }
    }

    #[test]
    fn lowers_come_before_raises() {
        let plan = plan(&input(1000.0, 0.0), &decision(200.0, 400.0)).unwrap();
        assert_eq!(plan.lower, vec![("a".to_string(), 200.0)]);
        assert_eq!(plan.raise, vec![("b".to_string(), 400.0)]);
        assert!(!plan.scaled && plan.shortfall.is_none());
    }

    #[test]
    fn too_much_is_scaled_down_above_the_minimums() {
        let plan = plan(&input(700.0, 100.0), &decision(500.0, 300.0)).unwrap();
        assert!(plan.scaled);
        let sum: f64 = plan.lower.iter().chain(&plan.raise).map(|c| c.1).sum();
        assert!(sum <= 600.0 && sum > 599.9, "{sum}");
    }

    #[test]
    fn an_infeasible_bound_is_said_and_every_node_goes_to_its_minimum() {
        let plan = plan(&input(250.0, 100.0), &decision(500.0, 500.0)).unwrap();
        let shortfall = plan.shortfall.unwrap();
        assert_eq!(shortfall.need_watts, 300.0);
        assert_eq!(plan.lower, vec![("a".to_string(), 100.0), ("b".to_string(), 100.0)]);
        assert!(plan.raise.is_empty());
    }

    #[test]
    fn an_unknown_cap_is_always_written_in_the_lower_phase() {
        let mut input = input(1000.0, 0.0);
        input.nodes[0].cap_in_force_watts = None;
        let plan = plan(&input, &decision(500.0, 300.0)).unwrap();
        assert_eq!(plan.lower, vec![("a".to_string(), 500.0)]);
        assert!(plan.raise.is_empty());
    }

    #[test]
    fn an_unresponsive_node_is_not_written_and_counts_at_its_maximum_when_unknown() {
        let mut input = input(900.0, 0.0);
        input.nodes[1].responsive = false;
        input.nodes[1].cap_in_force_watts = None;
        // b counts at its 500 W maximum, so a may have 400 W of the 500 W asked.
        let plan = plan(&input, &decision(500.0, 100.0)).unwrap();
        assert!(plan.lower.is_empty() && plan.scaled);
        assert_eq!(plan.raise.len(), 1);
        assert_eq!(plan.raise[0].0, "a");
        assert!((plan.raise[0].1 - 400.0).abs() < 1e-6);
    }

    #[test]
    fn raises_wait_for_every_lower_to_read_back() {
        let plan = plan(&input(1000.0, 0.0), &decision(200.0, 400.0)).unwrap();
        assert!(plan.raises_allowed(&[("a".into(), 250.0)]).is_empty());
        assert!(plan.raises_allowed(&[]).is_empty());
        assert_eq!(plan.raises_allowed(&[("a".into(), 200.0)]).len(), 1);
    }

    #[test]
    fn within_the_tolerance_nothing_is_rewritten_and_a_rounded_lower_is_confirmed() {
        use super::plan_within;
        // a at 300.2 for a 300 target, b at 199.9 for 200: both kept; the budget less 2 x 0.5 W.
        let mut input = input(1001.0, 0.0);
        input.nodes[0].cap_in_force_watts = Some(300.2);
        input.nodes[1].cap_in_force_watts = Some(199.9);
        let plan = plan_within(&input, &decision(300.0, 200.0), 0.5).unwrap();
        assert!(plan.lower.is_empty() && plan.raise.is_empty(), "{plan:?}");
        // A lower that reads back 0.3 W over its target is confirmed within 0.5 W.
        let plan = plan_within(&input, &decision(250.0, 400.0), 0.5).unwrap();
        assert_eq!(plan.lower, vec![("a".to_string(), 250.0)]);
        assert_eq!(plan.raises_allowed(&[("a".into(), 250.3)]).len(), 1);
        assert!(plan.raises_allowed(&[("a".into(), 250.6)]).is_empty());
        // The caps asked are scaled into the budget less the tolerance of each node.
        input.bound.watts = 901.0;
        let plan = plan_within(&input, &decision(500.0, 500.0), 0.5).unwrap();
        let sum: f64 = plan.lower.iter().chain(&plan.raise).map(|c| c.1).sum();
        assert!(sum <= 900.0 + 1e-9 && sum > 899.0 && plan.scaled, "{sum}");
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(matches!(
            plan(&input(f64::NAN, 0.0), &decision(1.0, 1.0)),
            Err(PlanError::Bound { .. })
        ));
        let mut twice = input(1000.0, 0.0);
        twice.nodes[1].node = "a".into();
        assert!(matches!(plan(&twice, &decision(1.0, 1.0)), Err(PlanError::Node { .. })));
    }
}
