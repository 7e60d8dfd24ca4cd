//! A period's input: the nodes the site can cap (agents that advertised a control address, and
//! `[[bmc]]` nodes without one), each with its cap range (read again every `range_refresh_s`, or
//! at once when its telemetry went stale or a write to it failed), its cap in force, its measured
//! power and its job; the running jobs with their priority and request; and the measured power of
//! the nodes the site cannot cap, which must fit in the reserve.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use powerstack_bound::{Bound, Input, JobState, NodeState};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::LoopSettings;
use super::agents::{CapPath, Range, Via};
use crate::store::{NodeCapRow, Store, StoreError, node_document};

/// Each node's cap range as last read, and when (µs since the Unix epoch).
pub type Ranges = HashMap<String, (Range, u64)>;

/// A period's input and what goes with it.
#[derive(Debug)]
pub struct Gathered {
    /// The policy's input.
    pub input: Input,
    /// How each node in the input is capped.
    pub via: HashMap<String, Via>,
    /// The measured power of nodes the site cannot cap, W.
    pub uncontrolled_watts: f64,
    /// Cap ranges read this period that change what a node counts for (its cap in force).
    pub read: Vec<NodeCapRow>,
    /// Nodes that could not be reached, with why.
    pub unreached: Vec<(String, String)>,
}

/// The nodes the site can cap and how, by name.
async fn members(store: &Store, bmc_nodes: &[String]) -> Result<BTreeMap<String, Via>, StoreError> {
    let mut members: BTreeMap<String, Via> =
        bmc_nodes.iter().map(|n| (n.clone(), Via::Bmc)).collect();
    for c in store.node_controls().await? {
        members.insert(c.node, Via::Agent(c.url));
    }
    Ok(members)
}

/// Reads the ranges of `nodes` at once (at most `concurrency` at a time).
async fn read_ranges(
    path: &Arc<CapPath>,
    nodes: Vec<(String, Via)>,
    concurrency: usize,
) -> Vec<(String, Result<Range, String>)> {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut set = JoinSet::new();
    for (node, via) in nodes {
        let (path, permits) = (path.clone(), permits.clone());
        set.spawn(async move {
            let _p = permits.acquire_owned().await;
            let r = path.range(&node, &via).await;
            (node, r)
        });
    }
    let mut out = Vec::new();
    while let Some(done) = set.join_next().await {
        if let Ok(x) = done {
            out.push(x);
        }
    }
    out
}

/// Builds the period's input under `bound`. `ranges` is the caller's cache; `forced` are read
/// again whatever their age.
pub async fn gather(
    store: &Store,
    path: &Arc<CapPath>,
    settings: &LoopSettings,
    ranges: &mut Ranges,
    forced: &[String],
    bound: Bound,
    now_us: u64,
) -> Result<Gathered, StoreError> {
    let members = members(store, &settings.bmc_nodes).await?;
    let rows: HashMap<String, NodeCapRow> =
        store.bound_node_caps().await?.into_iter().map(|r| (r.node.clone(), r)).collect();
    let site_nodes = store.nodes(now_us).await?;
    let mut power: HashMap<String, f64> = HashMap::new();
    let mut stale = Vec::new();
    let mut uncontrolled_watts = 0.0;
    for (n, s) in &site_nodes {
        let doc = node_document(n, s.as_ref(), now_us, settings.stale_after_us);
        match (doc.stale, doc.power_watts) {
            (false, Some(w)) if members.contains_key(&doc.name) => {
                power.insert(doc.name, w);
            }
            (false, Some(w)) => uncontrolled_watts += w,
            _ => stale.push(doc.name),
        }
    }
    let refresh_us = settings.config.range_refresh_s.saturating_mul(1_000_000);
    let due: Vec<(String, Via)> = members
        .iter()
        .filter(|(node, _)| {
            forced.contains(node)
                || stale.contains(node)
                || ranges.get(*node).is_none_or(|(_, at)| now_us.saturating_sub(*at) >= refresh_us)
        })
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    let mut fresh: HashMap<String, Result<Range, String>> =
        read_ranges(path, due, settings.config.concurrency).await.into_iter().collect();
    let mut nodes = Vec::new();
    let mut via = HashMap::new();
    let mut read = Vec::new();
    let mut unreached = Vec::new();
    for (node, how) in members {
        let row = rows.get(&node);
        let (range, responsive, in_force) = match fresh.remove(&node) {
            Some(Ok(r)) => {
                ranges.insert(node.clone(), (r, now_us));
                if row.is_none_or(|x| (x.cap_watts - r.in_force_watts).abs() > 0.5) {
                    read.push(NodeCapRow {
                        node: node.clone(),
                        cap_watts: r.in_force_watts,
                        via: how.as_str().into(),
                        updated_us: now_us,
                    });
                }
                (r, true, r.in_force_watts)
            }
            Some(Err(why)) => {
                let known = ranges.get(&node).map(|(r, _)| *r);
                let counted = row.map(|x| x.cap_watts).or(known.map(|r| r.in_force_watts));
                match (known, counted) {
                    (Some(r), Some(c)) => (r, false, c),
                    (None, Some(c)) => {
                        (Range { min_watts: c, max_watts: c, in_force_watts: c }, false, c)
                    }
                    _ => {
                        uncontrolled_watts += power.get(&node).copied().unwrap_or(0.0);
                        unreached.push((node, why));
                        continue;
                    }
                }
            }
            None => match ranges.get(&node) {
                Some((r, _)) => (*r, true, row.map_or(r.in_force_watts, |x| x.cap_watts)),
                None => continue,
            },
        };
        nodes.push(NodeState {
            node: node.clone(),
            job: None,
            min_cap_watts: range.min_watts,
            max_cap_watts: range.max_watts.max(range.min_watts),
            cap_in_force_watts: Some(in_force),
            power_watts: power.get(&node).copied(),
            responsive,
        });
        via.insert(node, how);
    }
    let jobs = jobs(store, &mut nodes).await?;
    Ok(Gathered { input: Input { bound, nodes, jobs }, via, uncontrolled_watts, read, unreached })
}

/// The running jobs, and each node's job (the first that holds it).
async fn jobs(store: &Store, nodes: &mut [NodeState]) -> Result<Vec<JobState>, StoreError> {
    let mut out = Vec::new();
    for j in store.running_jobs_for_bound().await? {
        let mut held = Vec::new();
        for n in nodes.iter_mut().filter(|n| j.nodes.contains(&n.node) && n.job.is_none()) {
            n.job = Some(j.id.clone());
            held.push(n.node.clone());
        }
        if !held.is_empty() {
            // A request covers all the job's nodes: the part of it for those the site caps.
            let share = held.len() as f64 / j.nodes.len().max(1) as f64;
            out.push(JobState {
                id: j.id,
                priority: j.priority,
                request_watts: j.power_watts.map(|w| w * share),
                nodes: held,
            });
        }
    }
    Ok(out)
}
