//! The admission answer for schedulers (`powerstack site admit`, `POST /v1/site/admit`): would a
//! job of N nodes asking for W watts fit under the bound now, and what bound would it get? The
//! job is placed on N idle nodes the site caps (the first by name; nodes the site does not know
//! yet are taken as copies of the first one it caps, counted at their maximum), and the policy in
//! force, started afresh, decides and plans the period with it. The job fits when the bound holds
//! every node at least at its minimum with it, and, when it asks for power, it gets all of it.

use powerstack_api::site_bound::{AdmitRequestV1, AdmitV1};
use powerstack_bound::{Bound, Controller, JobState, NodeState};

use super::InForce;
use super::gather::Gathered;

/// The candidate job's name in the trial period.
const CANDIDATE: &str = "(candidate)";

/// Why a job cannot be judged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// The site caps no node, so it cannot say what a job would get.
    #[error(
        "the site caps no node yet: admission needs nodes whose agent advertises its address (advertise_url) or a [[bmc]] limit"
    )]
    NoNodes,
    /// The policy or the plan refused the input.
    #[error("{0}")]
    Plan(String),
}

/// The answer for `request` under `bound`, from the period's input `g`.
pub fn admit(
    bound: &InForce,
    g: &Gathered,
    request: &AdmitRequestV1,
    tolerance_watts: f64,
) -> Result<AdmitV1, AdmitError> {
    let answer = |fits, bound_watts, node_cap_watts, why: String| AdmitV1 {
        schema: "powerstack.admit.v1".into(),
        fits,
        bound_watts,
        node_cap_watts,
        site_bound_watts: bound.watts,
        policy: bound.policy.clone(),
        why,
    };
    let Some(watts) = bound.watts else {
        return Ok(answer(true, 0.0, 0.0, "no bound is in force: every job fits".into()));
    };
    let mut input = g.input.clone();
    input.bound = Bound { watts, reserve_watts: bound.reserve_watts };
    let template = input.nodes.iter().find(|n| n.responsive).cloned().ok_or(AdmitError::NoNodes)?;
    let wanted = usize::try_from(request.nodes).unwrap_or(usize::MAX);
    let mut chosen = Vec::new();
    for n in input.nodes.iter_mut().filter(|n| n.responsive && n.job.is_none()) {
        if chosen.len() == wanted {
            break;
        }
        n.job = Some(CANDIDATE.into());
        chosen.push(n.node.clone());
    }
    let known = chosen.len();
    while chosen.len() < wanted {
        let name = format!("(new-{})", chosen.len() - known + 1);
        input.nodes.push(NodeState {
            node: name.clone(),
            job: Some(CANDIDATE.into()),
            cap_in_force_watts: None,
            power_watts: None,
            ..template.clone()
        });
        chosen.push(name);
    }
    input.jobs.push(JobState {
        id: CANDIDATE.into(),
        priority: request.priority.unwrap_or(0),
        request_watts: request.power_watts,
        nodes: chosen.clone(),
    });
    let mut controller = Controller::new(&bound.policy)
        .map_err(|e| AdmitError::Plan(e.to_string()))?
        .with_tolerance(tolerance_watts);
    let step = controller.step(&input).map_err(|e| AdmitError::Plan(e.to_string()))?;
    let caps: Vec<f64> =
        step.decision.caps.iter().filter(|(n, _)| chosen.contains(n)).map(|(_, w)| *w).collect();
    let got: f64 = caps.iter().sum();
    let lowest = caps.iter().copied().fold(f64::INFINITY, f64::min);
    let placed = if known < wanted {
        format!("{known} idle node(s) known, {} more counted as new", wanted - known)
    } else {
        format!("{wanted} idle node(s)")
    };
    if let Some(s) = step.plan.shortfall {
        let why = format!(
            "does not fit: with it the cluster needs at least {:.0} W, over the {:.0} W bound ({placed})",
            s.need_watts, s.bound_watts
        );
        return Ok(answer(false, got, lowest, why));
    }
    match request.power_watts {
        Some(asked) if got + 1e-6 < asked => Ok(answer(
            false,
            got,
            lowest,
            format!("does not fit: it would get {got:.0} W of the {asked:.0} W asked ({placed})"),
        )),
        Some(asked) => Ok(answer(
            true,
            got,
            lowest,
            format!("fits: it would get the {asked:.0} W asked ({placed})"),
        )),
        None => Ok(answer(
            true,
            got,
            lowest,
            format!("fits: it would get {got:.0} W, at least {lowest:.0} W a node ({placed})"),
        )),
    }
}
