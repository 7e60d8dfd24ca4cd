use powerstack_model::{
    CounterSpec, DomainId, DomainKind, DomainPower, Measurement, NodePower, NodeSource, PowerLimit,
};

use super::*;
use crate::plan::tests::limit;
use crate::{AllocError, CapError, Policy, plan_node_cap};

fn domain(kind: DomainKind, index: u32, limits: Vec<PowerLimit>) -> DomainInfo {
    DomainInfo {
        id: DomainId::new(kind, index),
        provider: "sim",
        source: format!("{kind}-{index}"),
        measurement: Measurement::Energy(CounterSpec::non_wrapping(1e-6)),
        limits,
        socket: Some(0),
        label: None,
    }
}

/// A node meter, a package (long-term 120 W of 40..150 W), a GPU (cap 300 W of 200..700 W).
fn catalog() -> Vec<DomainInfo> {
    vec![
        domain(DomainKind::Node, 0, Vec::new()),
        domain(DomainKind::Package, 0, vec![limit("long_term", 120.0, Some(40.0), Some(150.0))]),
        domain(DomainKind::Gpu, 0, vec![limit("cap", 300.0, Some(200.0), Some(700.0))]),
    ]
}

/// The node draws 500 W measured directly, the package 100 W and the GPU 250 W: 150 W uncappable.
fn report(catalog: &[DomainInfo]) -> PowerReport {
    let watts = [500.0, 100.0, 250.0];
    PowerReport {
        interval_s: 1.0,
        unix_us: 0,
        domains: catalog
            .iter()
            .zip(watts)
            .map(|(d, w)| DomainPower { id: d.id, power_watts: Some(w), energy_joules: None })
            .collect(),
        node: Some(NodePower { watts: 500.0, source: NodeSource::Direct(0) }),
    }
}

#[test]
fn the_range_is_what_a_node_cap_can_take_and_the_cap_in_force_counts_disabled_limits_at_max() {
    let c = catalog();
    let range = node_cap_range(&c, &report(&c)).unwrap();
    assert_eq!(
        range,
        NodeCapRange {
            min_watts: 150.0 + 40.0 + 200.0,
            max_watts: 150.0 + 150.0 + 700.0,
            uncappable_watts: 150.0,
            cap_in_force_watts: 150.0 + 120.0 + 300.0,
        }
    );
    // The ends are the ends plan_node_cap takes: the highest is accepted, above it refused.
    let r = report(&c);
    assert!(plan_node_cap(&c, &r, range.max_watts, Policy::Proportional, false).is_ok());
    let above = plan_node_cap(&c, &r, range.max_watts + 1.0, Policy::Proportional, false);
    assert!(
        matches!(above, Err(CapError::AboveNodeMaximum { least_watts, most_watts, .. })
            if least_watts == range.min_watts && most_watts == range.max_watts),
        "{above:?}"
    );
    // A disabled package limit is in force at the package's maximum.
    let mut off = catalog();
    off[1].limits[0].enabled = Some(false);
    let range = node_cap_range(&off, &report(&off)).unwrap();
    assert_eq!(range.cap_in_force_watts, 150.0 + 150.0 + 300.0);
}

#[test]
fn nothing_cappable_has_no_range_and_no_read_back() {
    let mut c = catalog();
    c[1].limits[0].locked = true;
    c[2].limits.clear();
    assert_eq!(node_cap_range(&c, &report(&c)), None);
    assert_eq!(node_read_back_watts(&c, 10.0, &[]), None);
    let e = plan_node_cap(&c, &report(&c), 300.0, Policy::Proportional, false).unwrap_err();
    assert!(matches!(e, CapError::Allocation(AllocError::NothingToCap)), "{e:?}");
}

#[test]
fn the_read_back_node_cap_counts_a_domain_not_written_at_its_maximum() {
    let c = catalog();
    assert_eq!(node_read_back_watts(&c, 150.0, &[(1, 100.0), (2, 250.0)]), Some(500.0));
    assert_eq!(node_read_back_watts(&c, 150.0, &[(1, 100.0)]), Some(150.0 + 100.0 + 700.0));
}
