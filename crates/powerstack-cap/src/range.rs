//! The node cap range: the lowest and highest node cap a node can take and the cap in force, as
//! [`crate::plan_node_cap`] counts them ([`node_cap_inputs`]), for a site that caps nodes.

use powerstack_model::{DomainInfo, PowerReport};

use crate::plan::{node_cap_constraint, node_cap_inputs};

/// The default least move of the power that cannot be capped, W, that splits a standing node cap
/// again (the agent's `node_cap_resplit_watts`).
pub const DEFAULT_RESPLIT_WATTS: f64 = 2.0;
/// The least move, as a share of the node cap, that splits a standing node cap again (when larger
/// than the watts).
pub const RESPLIT_FRACTION: f64 = 0.005;
/// The shortest time between two re-splits of a standing node cap, s.
pub const MIN_RESPLIT_INTERVAL_S: f64 = 1.0;

/// The move of the uncappable power, W, past which a standing node cap of `node_watts` is split
/// again: the larger of `resplit_watts` and [`RESPLIT_FRACTION`] of the cap. The agent and the
/// simulated cluster's node model both use it.
pub fn resplit_threshold_watts(node_watts: f64, resplit_watts: f64) -> f64 {
    resplit_watts.max(RESPLIT_FRACTION * node_watts)
}

/// What node caps a node can take now.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeCapRange {
    /// The lowest node cap: uncappable power plus every cappable domain's minimum, W.
    pub min_watts: f64,
    /// The highest node cap: uncappable power plus every cappable domain's maximum, W.
    pub max_watts: f64,
    /// Measured power that cannot be capped, W.
    pub uncappable_watts: f64,
    /// The node cap in force: uncappable power plus every cappable domain's limit in force (its
    /// maximum when the limit is disabled or unknown), W.
    pub cap_in_force_watts: f64,
}

/// The node cap range of a node with `catalog` (its limits as last read) and a recent power
/// `report`; `None` when nothing is cappable.
pub fn node_cap_range(catalog: &[DomainInfo], report: &PowerReport) -> Option<NodeCapRange> {
    let (cappable, uncappable_watts) = node_cap_inputs(catalog, report);
    if cappable.is_empty() {
        return None;
    }
    let mut range = NodeCapRange {
        min_watts: uncappable_watts,
        max_watts: uncappable_watts,
        uncappable_watts,
        cap_in_force_watts: uncappable_watts,
    };
    for (i, c) in &cappable {
        range.min_watts += c.min_watts;
        range.max_watts += c.max_watts;
        let limit =
            catalog.get(*i).and_then(|d| node_cap_constraint(d.id.kind).and_then(|k| d.limit(k)));
        let in_force = match limit {
            Some(l) if l.enabled != Some(false) => l.limit_watts.unwrap_or(c.max_watts),
            _ => c.max_watts,
        };
        range.cap_in_force_watts += in_force;
    }
    Some(range)
}

/// The node cap that a node cap's writes left in force: `uncappable_watts` plus each cappable
/// domain's limit as read back (`read_back`: catalog index and watts), or its maximum when it was
/// not written; `None` when nothing is cappable.
pub fn node_read_back_watts(
    catalog: &[DomainInfo],
    uncappable_watts: f64,
    read_back: &[(usize, f64)],
) -> Option<f64> {
    let empty = PowerReport { interval_s: 0.0, unix_us: 0, domains: Vec::new(), node: None };
    let (cappable, _) = node_cap_inputs(catalog, &empty);
    if cappable.is_empty() {
        return None;
    }
    let domains: f64 = cappable
        .iter()
        .map(|(i, c)| {
            read_back.iter().find(|(j, _)| j == i).map_or(c.max_watts, |(_, watts)| *watts)
        })
        .sum();
    Some(uncappable_watts + domains)
}

#[cfg(test)]
mod tests;
