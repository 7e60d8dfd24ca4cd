//! The invariant, by property: for random clusters, bounds, reserves, jobs arriving and leaving,
//! nodes that stop answering and cap writes that fail, after every policy and at every instant
//! (after the lower phase, after the raise phase) the caps in force (unresponsive nodes at their
//! last known cap, unknown caps at the maximum) plus the reserve never exceed the bound, unless the
//! plan said the bound is infeasible.

use powerstack_bound::dynamic::Dynamic;
use powerstack_bound::priority::Priority;
use powerstack_bound::slurm::Slurm;
use powerstack_bound::uniform::Uniform;
use powerstack_bound::{Bound, Decision, Input, JobState, NodeState, Policy, plan_within};
use proptest::prelude::*;

/// Rounding allowance, in watts.
const TOLERANCE_WATTS: f64 = 1e-6;

#[derive(Clone, Debug)]
struct Node {
    min_watts: f64,
    max_watts: f64,
    /// The cap the hardware holds.
    cap_watts: f64,
    /// Whether the site service knows it (read back once).
    known: bool,
    job: Option<u8>,
}

/// What happens to one node in one period.
#[derive(Clone, Debug)]
struct NodeEvent {
    responsive: bool,
    write_fails: bool,
    /// Its draw as a share of its cap; `None`: not measured.
    load: Option<f64>,
    /// A job starts or ends on it.
    job: Option<Option<u8>>,
    /// Where the hardware rounds a written cap, as a share of the tolerance (-1 to 1).
    rounding: f64,
}

#[derive(Clone, Debug)]
struct Period {
    bound_watts: f64,
    reserve_watts: f64,
    nodes: Vec<NodeEvent>,
    /// Caps a careless policy would ask for (NaN, negative and huge included).
    wild_caps: Vec<f64>,
}

fn node() -> impl Strategy<Value = Node> {
    (0.0..200.0f64, 0.0..400.0f64, 0.0..1.0f64, any::<bool>(), prop::option::of(0u8..3)).prop_map(
        |(min_watts, range, at, known, job)| Node {
            min_watts,
            max_watts: min_watts + range,
            cap_watts: min_watts + range * at,
            known,
            job,
        },
    )
}

fn event() -> impl Strategy<Value = NodeEvent> {
    (
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.1),
        prop::option::weighted(0.9, 0.0..1.05f64),
        prop::option::weighted(0.15, prop::option::of(0u8..3)),
        -1.0..1.0f64,
    )
        .prop_map(|(responsive, write_fails, load, job, rounding)| NodeEvent {
            responsive,
            write_fails,
            load,
            job,
            rounding,
        })
}

fn wild_cap() -> impl Strategy<Value = f64> {
    prop_oneof![0.0..700.0f64, Just(f64::NAN), Just(-5.0), Just(1e12)]
}

fn scenario() -> impl Strategy<Value = (Vec<Node>, Vec<Period>)> {
    prop::collection::vec(node(), 1..10).prop_flat_map(|nodes| {
        let n = nodes.len();
        let period = (
            0.0..4000.0f64,
            0.0..300.0f64,
            prop::collection::vec(event(), n),
            prop::collection::vec(wild_cap(), n),
        )
            .prop_map(|(bound_watts, reserve_watts, nodes, wild_caps)| Period {
                bound_watts,
                reserve_watts,
                nodes,
                wild_caps,
            });
        (Just(nodes), prop::collection::vec(period, 1..8))
    })
}

/// A policy that asks for anything (each period's caps in turn): the plan alone must keep the bound.
struct Careless(Vec<Vec<f64>>, usize);

impl Policy for Careless {
    fn decide(&mut self, input: &Input) -> Decision {
        let asked = &self.0[self.1 % self.0.len()];
        self.1 += 1;
        let caps = input.nodes.iter().map(|n| n.node.clone()).zip(asked.iter().copied()).collect();
        Decision { caps, ..Decision::default() }
    }
}

fn name(i: usize) -> String {
    format!("n{i}")
}

/// What the site service sees this period.
fn input(nodes: &[Node], period: &Period) -> Input {
    let states = nodes
        .iter()
        .zip(&period.nodes)
        .enumerate()
        .map(|(i, (n, e))| NodeState {
            node: name(i),
            job: n.job.map(|j| format!("j{j}")),
            min_cap_watts: n.min_watts,
            max_cap_watts: n.max_watts,
            cap_in_force_watts: n.known.then_some(n.cap_watts),
            power_watts: e.load.map(|l| l * n.cap_watts),
            responsive: e.responsive,
        })
        .collect();
    let jobs = (0u8..3)
        .map(|j| JobState {
            id: format!("j{j}"),
            priority: i32::from(j % 2),
            request_watts: (j == 1).then_some(300.0),
            nodes: (0..nodes.len()).filter(|&i| nodes[i].job == Some(j)).map(name).collect(),
        })
        .collect();
    Input {
        bound: Bound { watts: period.bound_watts, reserve_watts: period.reserve_watts },
        nodes: states,
        jobs,
    }
}

/// The caps in force as the invariant counts them: unknown ones at the maximum.
fn counted_watts(nodes: &[Node]) -> f64 {
    nodes.iter().map(|n| if n.known { n.cap_watts } else { n.max_watts }).sum()
}

/// Writes caps to the responsive nodes whose write does not fail, each rounded by up to `tol`;
/// returns what reads back.
fn write(
    nodes: &mut [Node],
    period: &Period,
    caps: &[(String, f64)],
    tol: f64,
) -> Vec<(String, f64)> {
    let mut read_back = Vec::new();
    for (node, watts) in caps {
        let i = (0..nodes.len()).find(|&i| &name(i) == node).expect("the plan names known nodes");
        let event = &period.nodes[i];
        assert!(event.responsive, "the plan wrote to {node}, which does not answer");
        if !event.write_fails {
            nodes[i].cap_watts = (*watts + event.rounding * tol).max(0.0);
            nodes[i].known = true;
        }
        if nodes[i].known {
            read_back.push((node.clone(), nodes[i].cap_watts));
        }
    }
    read_back
}

/// What a policy itself promises, beyond the plan's invariant.
#[derive(Clone, Copy)]
struct Promises {
    /// Its caps fit the budget whenever the bound is feasible (the plan never scales them).
    fits: bool,
    /// A job's bound is at most its request (or its nodes' minimums when they are more).
    requests: bool,
}

const NONE: Promises = Promises { fits: false, requests: false };

/// Checks a decision against what its policy promises.
fn keeps(
    promises: Promises,
    input: &Input,
    decision: &Decision,
    feasible: bool,
) -> Result<(), TestCaseError> {
    let budget = input.running_budget_watts();
    let idle: f64 = input
        .nodes
        .iter()
        .filter(|n| n.responsive && n.job.is_none())
        .map(|n| n.min_cap_watts)
        .sum();
    let asked: f64 = decision.caps.iter().map(|c| c.1).sum::<f64>() - idle;
    if promises.fits && feasible {
        prop_assert!(asked <= budget + TOLERANCE_WATTS, "asked {asked} W of {budget} W");
    }
    if promises.requests {
        for job in input.jobs.iter().filter(|j| j.request_watts.is_some()) {
            let floors: f64 = input
                .nodes
                .iter()
                .filter(|n| n.is_running() && n.job.as_deref() == Some(job.id.as_str()))
                .map(|n| n.min_cap_watts)
                .sum();
            let limit = job.request_watts.unwrap_or(0.0).max(floors) + TOLERANCE_WATTS;
            let bound = decision.job_bounds.iter().find(|b| b.0 == job.id).map_or(0.0, |b| b.1);
            prop_assert!(bound <= limit, "job {} got {bound} W, asked {limit} W", job.id);
        }
    }
    Ok(())
}

/// Runs `policy` over `periods` on hardware that rounds each written cap by up to `tol` watts,
/// planned with that tolerance.
fn run(
    policy: &mut dyn Policy,
    promises: Promises,
    mut nodes: Vec<Node>,
    periods: &[Period],
    tol: f64,
) -> Result<(), TestCaseError> {
    for period in periods {
        for (n, e) in nodes.iter_mut().zip(&period.nodes) {
            if let Some(job) = e.job {
                n.job = job;
            }
        }
        let input = input(&nodes, period);
        let limit = period.bound_watts - period.reserve_watts + TOLERANCE_WATTS;
        let floors: f64 = nodes
            .iter()
            .zip(&period.nodes)
            .map(|(n, e)| {
                if e.responsive {
                    n.min_watts
                } else if n.known {
                    n.cap_watts
                } else {
                    n.max_watts
                }
            })
            .sum();
        let decision = policy.decide(&input);
        let plan = plan_within(&input, &decision, tol).expect("the input is valid");
        keeps(promises, &input, &decision, plan.shortfall.is_none())?;
        let responsive = period.nodes.iter().filter(|e| e.responsive).count() as f64;
        prop_assert_eq!(
            plan.shortfall.is_some(),
            floors + period.reserve_watts + tol * responsive > period.bound_watts
        );
        let before = counted_watts(&nodes);
        let read_back = write(&mut nodes, period, &plan.lower, tol);
        let after_lower = counted_watts(&nodes);
        let raises = plan.raises_allowed(&read_back).to_vec();
        let all_confirmed = plan.lower.iter().all(|(n, _)| !period.nodes[index(n)].write_fails);
        if plan.shortfall.is_some() {
            prop_assert!(plan.raise.is_empty());
        } else if all_confirmed {
            prop_assert!(after_lower <= limit, "after lowering: {after_lower} W > {limit} W");
        } else {
            prop_assert!(raises.is_empty());
        }
        prop_assert!(after_lower <= before + TOLERANCE_WATTS + tol * responsive);
        // Raises only increase caps, so every instant of the raise phase is under its end.
        write(&mut nodes, period, &raises, tol);
        let after_raise = counted_watts(&nodes);
        if plan.shortfall.is_none() && all_confirmed {
            prop_assert!(after_raise <= limit, "after raising: {after_raise} W > {limit} W");
        } else {
            prop_assert!(after_raise <= after_lower + TOLERANCE_WATTS + tol * responsive);
        }
    }
    Ok(())
}

fn index(node: &str) -> usize {
    node.trim_start_matches('n').parse().expect("named n<i>")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_policy_overshoots_the_bound((nodes, periods) in scenario()) {
        let fits = Promises { fits: true, requests: false };
        let both = Promises { fits: true, requests: true };
        run(&mut Uniform, fits, nodes.clone(), &periods, 0.0)?;
        run(&mut Slurm::default(), NONE, nodes.clone(), &periods, 0.0)?;
        run(&mut Priority, both, nodes.clone(), &periods, 0.0)?;
        run(&mut Dynamic::default(), both, nodes, &periods, 0.0)?;
    }

    #[test]
    fn the_plan_keeps_the_bound_whatever_the_decision((nodes, periods) in scenario()) {
        let mut careless = Careless(periods.iter().map(|p| p.wild_caps.clone()).collect(), 0);
        run(&mut careless, NONE, nodes, &periods, 0.0)?;
    }

    #[test]
    fn on_hardware_that_rounds_the_tolerance_keeps_the_bound((nodes, periods) in scenario()) {
        let mut careless = Careless(periods.iter().map(|p| p.wild_caps.clone()).collect(), 0);
        run(&mut careless, NONE, nodes.clone(), &periods, 0.5)?;
        run(&mut Dynamic::default(), NONE, nodes.clone(), &periods, 0.5)?;
        run(&mut Uniform, NONE, nodes, &periods, 2.0)?;
    }
}
