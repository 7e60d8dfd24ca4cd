//! The node model: what each phase of a job asks of each domain, how its speed follows a limit
//! under that demand, and a node whose cap is split over its domains by the agent's own code
//! ([`powerstack_cap::allocate`], the split `POST /v1/caps {node_watts}` makes) and enforced with a
//! lag. docs/budget.md justifies the figures.

use powerstack_cap::{
    Cappable, DEFAULT_RESPLIT_WATTS, MIN_RESPLIT_INTERVAL_S, Policy as SplitPolicy, allocate,
    resplit_threshold_watts,
};
use powerstack_model::{DomainId, DomainKind};

use crate::trace::{DomainKindName, NodeSpec, PhaseKind};

/// How a phase loads one kind of domain.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Load {
    /// The share of the domain's range (idle to maximum) it draws uncapped.
    pub util: f64,
    /// How speed follows a limit under that demand: `((limit - idle) / (demand - idle))^exponent`.
    pub exponent: f64,
}

/// What `phase` asks of a domain of `kind` (docs/budget.md, "The node model").
pub fn load(phase: PhaseKind, kind: DomainKindName) -> Load {
    use DomainKindName as D;
    use PhaseKind as P;
    let (util, exponent) = match (phase, kind) {
        // Dynamic power goes roughly with f^2.5 (voltage with frequency), so speed, with f,
        // goes with the dynamic power to the 0.4.
        (P::Compute, D::Cpu) => (1.0, 0.4),
        (P::Compute, D::Memory) => (0.3, 0.0),
        // Stalled on memory: lower core clocks cost little (HLRS Hawk: 20% less power, no
        // visible slowdown); a DRAM limit throttles bandwidth itself.
        (P::Memory, D::Cpu) => (0.6, 0.1),
        (P::Memory, D::Memory) => (1.0, 0.5),
        // GPU-bound: a GPU held to 70% of its range loses about 10% (0.7^0.3).
        (P::Gpu, D::Cpu) => (0.3, 0.05),
        (P::Gpu, D::Memory) => (0.2, 0.0),
        (P::Gpu, D::Gpu) => (1.0, 0.3),
        (P::Compute | P::Memory, D::Gpu) | (P::Idle, _) => (0.0, 0.0),
    };
    Load { util, exponent }
}

/// One domain of a simulated node.
#[derive(Clone, Debug)]
struct Domain {
    kind: DomainKindName,
    id: DomainId,
    idle_watts: f64,
    max_watts: f64,
    min_cap_watts: Option<f64>,
    /// The limit the domain enforces now.
    limit_watts: f64,
    /// A limit written and not yet enforced: the limit and when it will be.
    pending: Option<(f64, f64)>,
    draw_watts: f64,
}

impl Domain {
    fn demand_watts(&self, phase: Option<PhaseKind>) -> f64 {
        let util = phase.map_or(0.0, |p| load(p, self.kind).util);
        self.idle_watts + util * (self.max_watts - self.idle_watts)
    }
}

/// A simulated node: its domains' draw under their limits, its speed in the phase it runs.
#[derive(Clone, Debug)]
pub struct SimNode {
    base_watts: f64,
    domains: Vec<Domain>,
    phase: Option<PhaseKind>,
    cap_watts: Option<f64>,
    /// The uncappable draw the node cap was last split with, in watts.
    split_uncappable_watts: f64,
    /// When a standing cap was last split again, in seconds (`None`: never).
    resplit_at_s: Option<f64>,
}

fn model_kind(kind: DomainKindName) -> DomainKind {
    match kind {
        DomainKindName::Cpu => DomainKind::Package,
        DomainKindName::Memory => DomainKind::Memory,
        DomainKindName::Gpu => DomainKind::Gpu,
    }
}

impl SimNode {
    /// An idle, uncapped node as `spec` describes.
    pub fn new(spec: &NodeSpec) -> SimNode {
        let mut domains = Vec::new();
        for d in &spec.domains {
            for index in 0..d.count {
                domains.push(Domain {
                    kind: d.kind,
                    id: DomainId::new(model_kind(d.kind), index),
                    idle_watts: d.idle_watts,
                    max_watts: d.max_watts,
                    min_cap_watts: d.min_cap_watts,
                    limit_watts: d.max_watts,
                    pending: None,
                    draw_watts: d.idle_watts,
                });
            }
        }
        SimNode {
            base_watts: spec.base_watts,
            domains,
            phase: None,
            cap_watts: None,
            split_uncappable_watts: 0.0,
            resplit_at_s: None,
        }
    }

    /// The lowest node cap it keeps: the base, what cannot be capped at its highest and the
    /// cappable domains' minimums, in watts.
    pub fn min_cap_watts(&self) -> f64 {
        self.base_watts
            + self.domains.iter().map(|d| d.min_cap_watts.unwrap_or(d.max_watts)).sum::<f64>()
    }

    /// Its highest draw, uncapped, in watts.
    pub fn max_cap_watts(&self) -> f64 {
        self.base_watts + self.domains.iter().map(|d| d.max_watts).sum::<f64>()
    }

    /// The node cap last written (the agent's read-back), `None` before any.
    pub fn cap_watts(&self) -> Option<f64> {
        self.cap_watts
    }

    /// The phase it runs, `None` when idle.
    pub fn phase(&self) -> Option<PhaseKind> {
        self.phase
    }

    /// Starts a phase (`None`: the node is idle); the draw follows at the next tick.
    pub fn set_phase(&mut self, phase: Option<PhaseKind>) {
        self.phase = phase;
    }

    /// What cannot be capped, as measured now: the base and the uncappable domains, in watts.
    fn uncappable_watts(&self) -> f64 {
        self.base_watts
            + self
                .domains
                .iter()
                .filter(|d| d.min_cap_watts.is_none())
                .map(|d| d.draw_watts)
                .sum::<f64>()
    }

    /// Splits the node cap as the agent does: what cannot be capped, as measured now, is charged
    /// first and the rest shared over the cappable domains in proportion to their maximum
    /// ([`allocate`], [`SplitPolicy::Proportional`]); each domain enforces its share `lag_s`
    /// after `now_s`.
    fn split(&mut self, node_watts: f64, now_s: f64, lag_s: f64) {
        let cappable: Vec<Cappable> = self
            .domains
            .iter()
            .filter_map(|d| {
                let min_watts = d.min_cap_watts?;
                Some(Cappable { id: d.id, min_watts, max_watts: d.max_watts })
            })
            .collect();
        let uncappable = self.uncappable_watts();
        self.split_uncappable_watts = uncappable;
        // The trace guarantees a cappable domain, so the split only fails on a bug: keep the limits.
        let Ok(split) =
            allocate(SplitPolicy::Proportional, node_watts, &cappable, uncappable, true)
        else {
            return;
        };
        for (id, share) in split.shares {
            if let Some(d) = self.domains.iter_mut().find(|d| d.id == id) {
                if lag_s > 0.0 {
                    d.pending = Some((share, now_s + lag_s));
                } else {
                    d.limit_watts = share;
                    d.pending = None;
                }
            }
        }
    }

    /// Writes a node cap (`POST /v1/caps {node_watts}`), split as [`allocate`] splits it.
    /// Returns the cap read back: the one written, or the lowest the node keeps when below it.
    pub fn write_cap(&mut self, node_watts: f64, now_s: f64, lag_s: f64) -> f64 {
        self.split(node_watts, now_s, lag_s);
        let read_back = node_watts.max(self.min_cap_watts());
        self.cap_watts = Some(read_back);
        read_back
    }

    /// Advances to `now_s`: limits whose lag has passed are enforced, each domain draws the least
    /// of its demand and its limit, and, with `standing`, a node cap whose uncappable part has
    /// moved since it was split by more than the agent's threshold
    /// ([`resplit_threshold_watts`] with [`DEFAULT_RESPLIT_WATTS`]) is split again (enforced
    /// `lag_s` later), at most once a second between re-splits as the agent does.
    pub fn tick(&mut self, now_s: f64, standing: bool, lag_s: f64) {
        let phase = self.phase;
        for d in &mut self.domains {
            if let Some((limit, at_s)) = d.pending
                && at_s <= now_s + 1e-9
            {
                d.limit_watts = limit;
                d.pending = None;
            }
            d.draw_watts = d.demand_watts(phase).min(d.limit_watts);
        }
        // As the agent: a move past the threshold, at most once a second between re-splits.
        if let Some(cap) = self.cap_watts
            && standing
            && (self.uncappable_watts() - self.split_uncappable_watts).abs()
                > resplit_threshold_watts(cap, DEFAULT_RESPLIT_WATTS)
            && self.resplit_at_s.is_none_or(|t| now_s >= t + MIN_RESPLIT_INTERVAL_S - 1e-9)
        {
            self.split(cap, now_s, lag_s);
            self.resplit_at_s = Some(now_s);
        }
    }

    /// What the node draws now, in watts.
    pub fn power_watts(&self) -> f64 {
        self.base_watts + self.domains.iter().map(|d| d.draw_watts).sum::<f64>()
    }

    /// Its speed in its phase, 1 at full speed: the slowest of its domains' factors.
    pub fn rate(&self) -> f64 {
        let Some(phase) = self.phase else {
            return 1.0;
        };
        self.domains
            .iter()
            .map(|d| {
                let l = load(phase, d.kind);
                let demand = d.demand_watts(Some(phase));
                if l.exponent == 0.0 || d.draw_watts >= demand - 1e-9 || demand <= d.idle_watts {
                    return 1.0;
                }
                ((d.draw_watts - d.idle_watts) / (demand - d.idle_watts)).max(0.0).powf(l.exponent)
            })
            .fold(1.0, f64::min)
    }
}

#[cfg(test)]
mod tests {
    use super::SimNode;
    use crate::trace::PhaseKind;
    use crate::trace::{DomainKindName, DomainSpec, NodeSpec};

    pub(crate) fn cpu_node() -> NodeSpec {
        let domain = |kind, count, idle_watts, max_watts, min_cap_watts| DomainSpec {
            kind,
            count,
            idle_watts,
            max_watts,
            min_cap_watts,
        };
        NodeSpec {
            base_watts: 100.0,
            domains: vec![
                domain(DomainKindName::Cpu, 2, 50.0, 250.0, Some(70.0)),
                domain(DomainKindName::Memory, 2, 5.0, 30.0, None),
            ],
        }
    }

    fn rate_at(phase: PhaseKind, cap_watts: f64) -> f64 {
        let mut node = SimNode::new(&cpu_node());
        node.set_phase(Some(phase));
        node.tick(0.0, true, 0.0);
        node.write_cap(cap_watts, 0.0, 0.0);
        node.tick(0.1, true, 0.0);
        node.rate()
    }

    #[test]
    fn a_cap_slows_compute_more_than_memory() {
        assert_eq!(rate_at(PhaseKind::Compute, 660.0), 1.0);
        let compute = rate_at(PhaseKind::Compute, 420.0);
        let memory = rate_at(PhaseKind::Memory, 420.0);
        assert!(compute < 0.85, "{compute}");
        assert!(memory > 0.95 && memory < 1.0, "{memory}");
        assert_eq!(rate_at(PhaseKind::Idle, 300.0), 1.0);
    }

    #[test]
    fn the_draw_is_under_the_cap_once_the_lag_has_passed() {
        let mut node = SimNode::new(&cpu_node());
        node.set_phase(Some(PhaseKind::Compute));
        node.tick(0.0, true, 0.0);
        assert!((node.power_watts() - 625.0).abs() < 1e-9);
        assert!((node.write_cap(400.0, 0.0, 0.3) - 400.0).abs() < 1e-9);
        node.tick(0.2, true, 0.3);
        assert!(node.power_watts() > 400.0, "the lag lets the draw overshoot");
        node.tick(0.3, true, 0.3);
        assert!(node.power_watts() <= 400.0 + 1e-9, "{}", node.power_watts());
        // Below the lowest cap: the node keeps its minimum and says so in the read-back.
        assert_eq!(node.write_cap(10.0, 0.3, 0.3), node.min_cap_watts());
    }
}
