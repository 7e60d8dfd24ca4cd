//! One control period at the site: the bound in force, the input gathered, the shared period
//! ([`powerstack_bound::Controller::step`]), then the plan's two phases written through the cap
//! path: every lower first, at once, each read back; the raises only when every lower read back at
//! or under its target. What each node counts for afterwards is stored before the decision is
//! recorded: the read-back after a confirmed write, the old cap after a refused one, and the
//! higher of the old and the new after one whose answer was lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use powerstack_api::site_bound::{BoundDecisionV1, JobBoundV1, NodeCapV1};
use powerstack_bound::{Bound, Controller, Input, Step};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::agents::{CapPath, Via, WriteError};
use super::gather::Gathered;
use super::{Loop, in_force};
use crate::store::{NodeCapRow, StoreError};

type Written = HashMap<String, Result<f64, WriteError>>;

/// Writes every cap at once (at most `concurrency` at a time).
pub async fn write_all(
    path: &Arc<CapPath>,
    writes: Vec<(String, Via, f64)>,
    concurrency: usize,
) -> Written {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut set = JoinSet::new();
    for (node, via, watts) in writes {
        let (path, permits) = (path.clone(), permits.clone());
        set.spawn(async move {
            let _p = permits.acquire_owned().await;
            let r = path.write(&node, &via, watts).await;
            (node, r)
        });
    }
    let mut out = HashMap::new();
    while let Some(done) = set.join_next().await {
        if let Ok((node, r)) = done {
            out.insert(node, r);
        }
    }
    out
}

/// One node after the period: what it counts for, and what became of it.
struct After {
    cap_watts: f64,
    outcome: &'static str,
    error: Option<String>,
}

fn after_write(old: f64, target: f64, r: &Result<f64, WriteError>, done: &'static str) -> After {
    match r {
        Ok(read_back) => After { cap_watts: *read_back, outcome: done, error: None },
        Err(WriteError::NotApplied(m)) => {
            After { cap_watts: old, outcome: "failed", error: Some(m.clone()) }
        }
        Err(WriteError::Unknown(m)) => {
            After { cap_watts: old.max(target), outcome: "failed", error: Some(m.clone()) }
        }
    }
}

impl Loop {
    fn with_via(&self, g: &Gathered, caps: &[(String, f64)]) -> Vec<(String, Via, f64)> {
        caps.iter().filter_map(|(n, w)| g.via.get(n).map(|v| (n.clone(), v.clone(), *w))).collect()
    }

    fn count(&self, written: &Written) {
        for r in written.values() {
            let i = match r {
                Ok(_) => 0,
                Err(WriteError::NotApplied(_)) => 1,
                Err(WriteError::Unknown(_)) => 2,
            };
            self.shared.status.writes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs one period at `now_us`.
    pub(crate) async fn period(&mut self, now_us: u64) -> Result<(), StoreError> {
        let config = &self.shared.settings.config;
        let bound = in_force(&self.store, config, now_us).await?;
        let key = (bound.watts, bound.reserve_watts, bound.policy.clone());
        let changed = self.last.as_ref() != Some(&key);
        self.last = Some(key);
        let Some(watts) = bound.watts else {
            return self.release(now_us, changed, &bound.policy).await;
        };
        if self.controller.as_ref().is_none_or(|c| c.policy_name() != bound.policy) {
            let c =
                Controller::new(&bound.policy).map_err(|e| StoreError::Config(e.to_string()))?;
            self.controller = Some(c.with_tolerance(self.shared.settings.config.tolerance_watts));
        }
        let forced = std::mem::take(&mut self.failed);
        let b = Bound { watts, reserve_watts: bound.reserve_watts };
        let g = self.shared.gather(&self.store, &forced, b, now_us).await?;
        let Some(controller) = self.controller.as_mut() else { return Ok(()) };
        let step = match controller.step(&g.input) {
            Ok(step) => step,
            Err(e) => {
                let d = decision(&g, &bound.policy, now_us, format!("no plan: {e}"));
                self.store.put_bound_node_caps(&g.read, &[]).await?;
                return self.record(d, true).await;
            }
        };
        let concurrency = self.shared.settings.config.concurrency;
        let lowered =
            write_all(&self.shared.path, self.with_via(&g, &step.plan.lower), concurrency).await;
        let read_back: Vec<(String, f64)> =
            lowered.iter().filter_map(|(n, r)| r.as_ref().ok().map(|w| (n.clone(), *w))).collect();
        let mut raises = step.plan.raises_allowed(&read_back).to_vec();
        // Fenced: raises only while this replica still holds the loop (a replica stalled past its
        // lease must not raise what another one has planned around).
        let settings = &self.shared.settings;
        let now = crate::clock::now_us();
        let period = std::time::Duration::from_secs_f64(settings.config.period_s);
        let until = now + super::lease_us(period);
        if !raises.is_empty() && !self.store.hold_bound_lease(&settings.owner, now, until).await? {
            raises.clear();
        }
        let raised = write_all(&self.shared.path, self.with_via(&g, &raises), concurrency).await;
        self.count(&lowered);
        self.count(&raised);
        let (d, rows) = self.settle(&g, &step, &lowered, &raised, &bound.policy, now_us);
        self.failed =
            d.nodes.iter().filter(|n| n.outcome == "failed").map(|n| n.node.clone()).collect();
        let mut all = g.read.clone();
        all.extend(rows);
        self.store.put_bound_node_caps(&all, &[]).await?;
        let worth = changed || d.lowered + d.raised + d.failed > 0 || d.shortfall_watts.is_some();
        self.record(d, worth).await
    }

    /// Each node after the period, the decision, and the rows to store.
    fn settle(
        &self,
        g: &Gathered,
        step: &Step,
        lowered: &Written,
        raised: &Written,
        policy: &str,
        now_us: u64,
    ) -> (BoundDecisionV1, Vec<NodeCapRow>) {
        let lower: HashMap<&str, f64> =
            step.plan.lower.iter().map(|(n, w)| (n.as_str(), *w)).collect();
        let raise: HashMap<&str, f64> =
            step.plan.raise.iter().map(|(n, w)| (n.as_str(), *w)).collect();
        let mut d = decision(g, policy, now_us, step.decision.why.clone());
        if step.plan.scaled {
            d.why.push_str("; scaled down to fit the bound");
        }
        d.shortfall_watts = step.plan.shortfall.map(|s| s.need_watts);
        let mut rows = Vec::new();
        d.nodes.clear();
        for n in &g.input.nodes {
            let old = n.accounted_watts();
            let a = if !n.responsive {
                After { cap_watts: old, outcome: "unresponsive", error: None }
            } else if let (Some(t), Some(r)) = (lower.get(n.node.as_str()), lowered.get(&n.node)) {
                after_write(old, *t, r, "lowered")
            } else if let (Some(t), Some(r)) = (raise.get(n.node.as_str()), raised.get(&n.node)) {
                after_write(old, *t, r, "raised")
            } else if raise.contains_key(n.node.as_str()) {
                After { cap_watts: old, outcome: "not-raised", error: None }
            } else {
                After { cap_watts: old, outcome: "kept", error: None }
            };
            match a.outcome {
                "lowered" => d.lowered += 1,
                "raised" => d.raised += 1,
                "failed" => d.failed += 1,
                _ => {}
            }
            let via = g.via.get(&n.node).map_or("agent", Via::as_str);
            if (a.cap_watts - old).abs() > 1e-9 || a.outcome == "failed" {
                rows.push(NodeCapRow {
                    node: n.node.clone(),
                    cap_watts: a.cap_watts,
                    via: via.into(),
                    updated_us: now_us,
                });
            }
            d.nodes.push(NodeCapV1 {
                node: n.node.clone(),
                cap_watts: a.cap_watts,
                via: via.into(),
                outcome: a.outcome.into(),
                error: a.error,
            });
        }
        finish(&mut d, &g.input);
        (d, rows)
    }

    /// No bound: every node the loop capped goes back to its maximum, and is forgotten once
    /// confirmed.
    async fn release(
        &mut self,
        now_us: u64,
        changed: bool,
        policy: &str,
    ) -> Result<(), StoreError> {
        self.controller = None;
        let capped = self.store.bound_node_caps().await?;
        if capped.is_empty() {
            return Ok(());
        }
        let free = Bound { watts: f64::MAX, reserve_watts: 0.0 };
        let forced: Vec<String> = capped.iter().map(|r| r.node.clone()).collect();
        let g = self.shared.gather(&self.store, &forced, free, now_us).await?;
        let writes: Vec<(String, f64)> = g
            .input
            .nodes
            .iter()
            .filter(|n| n.responsive && forced.contains(&n.node))
            .map(|n| (n.node.clone(), n.max_cap_watts))
            .collect();
        let written = write_all(
            &self.shared.path,
            self.with_via(&g, &writes),
            self.shared.settings.config.concurrency,
        )
        .await;
        self.count(&written);
        let done: Vec<String> =
            written.iter().filter(|(_, r)| r.is_ok()).map(|(n, _)| n.clone()).collect();
        // Nodes the site no longer knows (no control, no BMC) are forgotten too.
        let gone = forced.iter().filter(|n| !g.via.contains_key(*n)).cloned();
        let forget: Vec<String> = done.iter().cloned().chain(gone).collect();
        self.store.put_bound_node_caps(&[], &forget).await?;
        let why = format!(
            "no bound: {} of {} capped nodes raised to their maximum",
            done.len(),
            capped.len()
        );
        let mut d = decision(&g, policy, now_us, why);
        d.bound_watts = None;
        d.raised = done.len() as u64;
        d.failed = (writes.len() - done.len()) as u64;
        d.nodes = writes
            .iter()
            .map(|(n, w)| NodeCapV1 {
                node: n.clone(),
                cap_watts: *w,
                via: g.via.get(n).map_or("agent", Via::as_str).into(),
                outcome: if done.contains(n) { "raised" } else { "failed" }.into(),
                error: written
                    .get(n)
                    .and_then(|r| r.as_ref().err())
                    .map(|e| e.message().to_string()),
            })
            .collect();
        self.record(d, changed || !writes.is_empty()).await
    }

    async fn record(&mut self, d: BoundDecisionV1, worth: bool) -> Result<(), StoreError> {
        if let Ok(mut last) = self.shared.status.last.lock() {
            *last = Some(d.clone());
        }
        if worth {
            let keep_us =
                self.shared.settings.config.decision_retention_days.saturating_mul(86_400_000_000);
            self.store.record_decision(&d, d.unix_us.saturating_sub(keep_us)).await?;
        }
        Ok(())
    }
}

/// A decision with every node kept, before the writes.
fn decision(g: &Gathered, policy: &str, now_us: u64, why: String) -> BoundDecisionV1 {
    let mut why = why;
    if !g.unreached.is_empty() {
        let (node, reason) = &g.unreached[0];
        why.push_str(&format!(
            "; {} node(s) never reached, not counted (first: {node}: {reason})",
            g.unreached.len()
        ));
    }
    if g.uncontrolled_watts > g.input.bound.reserve_watts {
        why.push_str(&format!(
            "; nodes the site cannot cap draw {:.0} W, more than the {:.0} W reserve",
            g.uncontrolled_watts, g.input.bound.reserve_watts
        ));
    }
    let mut d = BoundDecisionV1 {
        id: 0,
        unix_us: now_us,
        bound_watts: Some(g.input.bound.watts),
        reserve_watts: g.input.bound.reserve_watts,
        policy: policy.into(),
        why,
        accounted_watts: 0.0,
        shortfall_watts: None,
        uncontrolled_watts: g.uncontrolled_watts,
        lowered: 0,
        raised: 0,
        failed: 0,
        nodes: g
            .input
            .nodes
            .iter()
            .map(|n| NodeCapV1 {
                node: n.node.clone(),
                cap_watts: n.accounted_watts(),
                via: g.via.get(&n.node).map_or("agent", Via::as_str).into(),
                outcome: if n.responsive { "kept" } else { "unresponsive" }.into(),
                error: None,
            })
            .collect(),
        jobs: Vec::new(),
    };
    finish(&mut d, &g.input);
    d
}

/// The decision's sums and job bounds from its nodes' caps.
fn finish(d: &mut BoundDecisionV1, input: &Input) {
    d.accounted_watts = d.nodes.iter().map(|n| n.cap_watts).sum::<f64>() + d.reserve_watts;
    d.jobs = input
        .jobs
        .iter()
        .map(|j| JobBoundV1 {
            job: j.id.clone(),
            bound_watts: d
                .nodes
                .iter()
                .filter(|n| j.nodes.contains(&n.node))
                .map(|n| n.cap_watts)
                .sum(),
            request_watts: j.request_watts,
            priority: j.priority,
        })
        .collect();
}
