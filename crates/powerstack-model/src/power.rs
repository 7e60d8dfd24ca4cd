//! Power from energy: ΔE/Δt between two snapshots, and the choice of the node figure.

use crate::domain::{DomainId, DomainInfo, DomainKind};
use crate::sample::{Snapshot, Value};

/// The power and energy of one domain over an interval.
#[derive(Clone, Debug, PartialEq)]
pub struct DomainPower {
    /// Which domain.
    pub id: DomainId,
    /// Mean power over the interval, in watts; `None` when the domain could not be read at both ends.
    pub power_watts: Option<f64>,
    /// The extended energy counter at the end of the interval, in joules; `None` for power-only
    /// domains and unreadable ones.
    pub energy_joules: Option<f64>,
}

/// Where the node figure comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeSource {
    /// A direct measure of the node: the catalog index of a [`DomainKind::Node`] or
    /// [`DomainKind::Platform`] domain.
    Direct(usize),
    /// The sum of these catalog entries: packages, memory and GPUs; or the platform domain (psys)
    /// and the GPUs it does not cover.
    Sum(Vec<usize>),
}

/// The node's power over an interval.
#[derive(Clone, Debug, PartialEq)]
pub struct NodePower {
    /// Watts.
    pub watts: f64,
    /// How the figure was obtained.
    pub source: NodeSource,
}

/// Power and energy of every domain over one interval, plus the node figure.
#[derive(Clone, Debug, PartialEq)]
pub struct PowerReport {
    /// Length of the interval, in seconds (monotonic clock).
    pub interval_s: f64,
    /// Wall-clock time at the end of the interval, µs since the Unix epoch.
    pub unix_us: i64,
    /// One entry per catalog domain, in catalog order.
    pub domains: Vec<DomainPower>,
    /// The node's power, when a direct source or at least one component could be read.
    pub node: Option<NodePower>,
}

impl PowerReport {
    /// Computes power between `start` and `end`, two snapshots of the same `catalog`.
    ///
    /// Energy domains: ΔE/Δt, with Δt taken from the hardware's own timestamps when both ends carry
    /// one, else from the monotonic clock. Power-only domains: the mean of the two readings.
    pub fn between(catalog: &[DomainInfo], start: &Snapshot, end: &Snapshot) -> PowerReport {
        let interval_s = end.mono_ns.saturating_sub(start.mono_ns) as f64 / 1e9;
        let domains = catalog
            .iter()
            .enumerate()
            .map(|(i, info)| {
                let a = start.values.get(i).copied().unwrap_or(Value::Missing);
                let b = end.values.get(i).copied().unwrap_or(Value::Missing);
                let (power_watts, energy_joules) = domain_power(a, b, interval_s);
                DomainPower { id: info.id, power_watts, energy_joules }
            })
            .collect::<Vec<_>>();
        let node = choose_node(catalog, &domains);
        PowerReport { interval_s, unix_us: end.unix_us, domains, node }
    }

    /// The entry of a domain, if the catalog has it.
    pub fn get(&self, id: DomainId) -> Option<&DomainPower> {
        self.domains.iter().find(|d| d.id == id)
    }
}

fn domain_power(a: Value, b: Value, interval_s: f64) -> (Option<f64>, Option<f64>) {
    match (a, b) {
        (
            Value::Energy { joules: ja, hw_time_us: ta, .. },
            Value::Energy { joules: jb, hw_time_us: tb, .. },
        ) => {
            let dt = match (ta, tb) {
                (Some(ta), Some(tb)) if tb > ta => (tb - ta) as f64 / 1e6,
                _ => interval_s,
            };
            let p = (dt > 0.0 && jb >= ja).then(|| (jb - ja) / dt);
            (p, Some(jb))
        }
        (Value::Power { watts: wa }, Value::Power { watts: wb }) => (Some((wa + wb) / 2.0), None),
        (_, Value::Power { watts }) => (Some(watts), None),
        (_, Value::Energy { joules, .. }) => (None, Some(joules)),
        (_, Value::Missing) => (None, None),
    }
}

/// Which domains make up the node figure, given each catalog entry's kind and whether it could
/// be measured (`measured(i)` for catalog index `i`): the rule [`PowerReport::between`] follows.
///
/// - the first [`DomainKind::Node`] domain (a board controller or power meter), when measured;
/// - else the first [`DomainKind::Platform`] domain (RAPL psys), when measured, plus the measured
///   GPUs, which psys does not cover ([`NodeSource::Direct`] when there are none);
/// - else the sum of the measured packages, memory and GPUs (never core or uncore: they are inside
///   the package);
/// - `None` when nothing of that could be measured.
pub fn node_source(kinds: &[DomainKind], measured: impl Fn(usize) -> bool) -> Option<NodeSource> {
    if let Some(i) = kinds.iter().position(|k| *k == DomainKind::Node)
        && measured(i)
    {
        return Some(NodeSource::Direct(i));
    }
    let gpus: Vec<usize> =
        (0..kinds.len()).filter(|&i| kinds[i] == DomainKind::Gpu && measured(i)).collect();
    if let Some(p) = kinds.iter().position(|k| *k == DomainKind::Platform)
        && measured(p)
    {
        if gpus.is_empty() {
            return Some(NodeSource::Direct(p));
        }
        let mut parts = vec![p];
        parts.extend(gpus);
        return Some(NodeSource::Sum(parts));
    }
    let parts: Vec<usize> = (0..kinds.len())
        .filter(|&i| {
            matches!(kinds[i], DomainKind::Package | DomainKind::Memory | DomainKind::Gpu)
                && measured(i)
        })
        .collect();
    (!parts.is_empty()).then_some(NodeSource::Sum(parts))
}

/// The catalog indices whose energies (or powers) add up to the node figure when every domain can
/// be measured: [`node_source`] with all domains measured. Empty when the catalog has no domain
/// the node figure can be built from.
pub fn node_parts(kinds: &[DomainKind]) -> Vec<usize> {
    match node_source(kinds, |_| true) {
        Some(NodeSource::Direct(i)) => vec![i],
        Some(NodeSource::Sum(parts)) => parts,
        None => Vec::new(),
    }
}

/// Picks the node figure following [`node_source`]: a direct node measure, else psys plus the
/// GPUs, else the sum of packages, memory and GPUs.
fn choose_node(catalog: &[DomainInfo], domains: &[DomainPower]) -> Option<NodePower> {
    let kinds: Vec<DomainKind> = catalog.iter().map(|d| d.id.kind).collect();
    let power = |i: usize| domains.get(i).and_then(|d| d.power_watts);
    let source = node_source(&kinds, |i| power(i).is_some())?;
    let watts = match &source {
        NodeSource::Direct(i) => power(*i)?,
        NodeSource::Sum(parts) => match parts.split_first() {
            // psys plus the GPUs: added onto the platform figure.
            Some((&p, gpus)) if kinds[p] == DomainKind::Platform => {
                power(p)? + gpus.iter().filter_map(|&i| power(i)).sum::<f64>()
            }
            _ => parts.iter().filter_map(|&i| power(i)).sum(),
        },
    };
    Some(NodePower { watts, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counter::CounterSpec;
    use crate::domain::Measurement;

    fn info(kind: DomainKind, index: u32, m: Measurement) -> DomainInfo {
        DomainInfo {
            id: DomainId::new(kind, index),
            provider: "test",
            source: String::new(),
            measurement: m,
            limits: vec![],
            socket: None,
            label: None,
        }
    }

    fn energy(j: f64) -> Value {
        Value::Energy { total_ticks: (j * 1e6) as u64, joules: j, hw_time_us: None }
    }

    fn snap(ns: u64, values: Vec<Value>) -> Snapshot {
        Snapshot { mono_ns: ns, unix_us: 0, values }
    }

    #[test]
    fn power_is_energy_over_time_and_the_node_is_the_sum_of_components() {
        let e = Measurement::Energy(CounterSpec::non_wrapping(1e-6));
        let cat = vec![
            info(DomainKind::Package, 0, e),
            info(DomainKind::Core, 0, e),
            info(DomainKind::Memory, 0, e),
        ];
        let a = snap(0, vec![energy(10.0), energy(5.0), energy(1.0)]);
        let b = snap(500_000_000, vec![energy(60.0), energy(45.0), energy(6.0)]);
        let r = PowerReport::between(&cat, &a, &b);
        assert_eq!(r.domains[0].power_watts, Some(100.0));
        assert_eq!(r.domains[2].power_watts, Some(10.0));
        let node = r.node.unwrap();
        // Core is inside the package: not added.
        assert_eq!(node.watts, 110.0);
        assert_eq!(node.source, NodeSource::Sum(vec![0, 2]));
    }

    #[test]
    fn a_direct_node_source_wins_over_the_sum() {
        let e = Measurement::Energy(CounterSpec::non_wrapping(1e-6));
        let cat = vec![info(DomainKind::Package, 0, e), info(DomainKind::Platform, 0, e)];
        let a = snap(0, vec![energy(0.0), energy(0.0)]);
        let b = snap(1_000_000_000, vec![energy(100.0), energy(180.0)]);
        let r = PowerReport::between(&cat, &a, &b);
        assert_eq!(r.node.unwrap(), NodePower { watts: 180.0, source: NodeSource::Direct(1) });
    }

    #[test]
    fn psys_does_not_cover_discrete_gpus() {
        let e = Measurement::Energy(CounterSpec::non_wrapping(1e-6));
        let cat = vec![
            info(DomainKind::Platform, 0, e),
            info(DomainKind::Package, 0, e),
            info(DomainKind::Gpu, 0, e),
        ];
        let a = snap(0, vec![energy(0.0), energy(0.0), energy(0.0)]);
        let b = snap(1_000_000_000, vec![energy(200.0), energy(100.0), energy(300.0)]);
        let r = PowerReport::between(&cat, &a, &b);
        assert_eq!(
            r.node.unwrap(),
            NodePower { watts: 500.0, source: NodeSource::Sum(vec![0, 2]) }
        );
    }

    #[test]
    fn hardware_timestamps_are_preferred_when_both_ends_have_them() {
        let e = Measurement::Energy(CounterSpec::non_wrapping(1.0));
        let cat = vec![info(DomainKind::Node, 0, e)];
        let v = |j, t| Value::Energy { total_ticks: j as u64, joules: j, hw_time_us: Some(t) };
        let a = snap(0, vec![v(1000.0, 1_000_000)]);
        let b = snap(1_030_000_000, vec![v(1500.0, 2_000_000)]);
        let r = PowerReport::between(&cat, &a, &b);
        assert_eq!(r.domains[0].power_watts, Some(500.0));
    }

    #[test]
    fn power_only_domains_average_their_two_readings_and_missing_ones_stay_missing() {
        let cat = vec![
            info(DomainKind::Node, 0, Measurement::Power),
            info(DomainKind::Gpu, 0, Measurement::Power),
        ];
        let a = snap(0, vec![Value::Power { watts: 300.0 }, Value::Power { watts: 90.0 }]);
        let b = snap(1, vec![Value::Power { watts: 310.0 }, Value::Missing]);
        let r = PowerReport::between(&cat, &a, &b);
        assert_eq!(r.domains[0].power_watts, Some(305.0));
        assert_eq!(r.domains[1].power_watts, None);
        assert_eq!(r.node.unwrap().watts, 305.0);
    }

    #[test]
    fn node_parts_follow_the_node_rule() {
        use DomainKind::*;
        assert_eq!(node_parts(&[Package, Node, Memory]), vec![1]);
        assert_eq!(node_parts(&[Package, Platform, Memory]), vec![1]);
        assert_eq!(node_parts(&[Gpu, Platform, Package, Gpu]), vec![1, 0, 3]);
        assert_eq!(node_parts(&[Package, Core, Uncore, Memory, Gpu]), vec![0, 3, 4]);
        assert_eq!(node_parts(&[Core, Uncore]), Vec::<usize>::new());
        // An unmeasured node domain falls back to the sum.
        let kinds = [Node, Package, Memory];
        assert_eq!(node_source(&kinds, |i| i != 0), Some(NodeSource::Sum(vec![1, 2])));
    }

    #[test]
    fn a_zero_interval_gives_no_power_rather_than_infinity() {
        let e = Measurement::Energy(CounterSpec::non_wrapping(1e-6));
        let cat = vec![info(DomainKind::Package, 0, e)];
        let a = snap(5, vec![energy(1.0)]);
        let r = PowerReport::between(&cat, &a, &a.clone());
        assert_eq!(r.domains[0].power_watts, None);
        assert!(r.node.is_none());
    }
}
