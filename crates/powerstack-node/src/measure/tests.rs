use super::*;
use crate::open::{NodeOptions, Simulate, open};

fn simulated() -> OpenNode {
    let options = NodeOptions {
        simulate: Simulate::Profile(powerstack_sim::Profile::Intel2s),
        ..NodeOptions::default()
    };
    open(&options).unwrap()
}

/// Measures `ticks` waits of `wait_ms` each.
fn measure(node: &mut OpenNode, ticks: u32, wait_ms: u64) -> Measured {
    let meter = Meter::start(node, Duration::from_millis(20));
    let mut calls = 0;
    let (m, ()) = meter.until(node, |left| {
        calls += 1;
        std::thread::sleep(left.min(Duration::from_millis(wait_ms)));
        (calls >= ticks).then_some(())
    });
    m
}

#[test]
fn energy_is_mean_times_duration_and_every_peak_is_at_least_the_mean() {
    let mut node = simulated();
    let m = measure(&mut node, 15, 20);
    assert!(m.samples >= 3, "{m:?}");
    let node_mean = m.mean.node.as_ref().unwrap().watts;
    let node_energy = m.node_energy_joules.unwrap();
    let duration = m.mean.interval_s;
    assert!(duration > 0.0, "{duration}");
    assert!((node_energy - node_mean * duration).abs() <= 1e-6 * node_energy);
    assert!(node_mean > 0.0);
    assert!(m.node_peak_watts.unwrap() >= node_mean * (1.0 - 1e-9));
    for (i, d) in m.mean.domains.iter().enumerate() {
        let (Some(mean), Some(peak)) = (d.power_watts, m.peak_watts[i]) else {
            panic!("domain {} not measured: {m:?}", d.id)
        };
        assert!(peak >= mean * (1.0 - 1e-9), "{}: peak {peak} < mean {mean}", d.id);
    }
}

#[test]
fn the_document_names_the_node_source_and_how_the_command_ended() {
    let mut node = simulated();
    let m = measure(&mut node, 3, 20);
    let command = vec!["true".to_string()];
    let doc = document(&node, &m, &command, Some(Ended::Signaled(2)));
    assert_eq!(doc.header.schema, MEASURE_SCHEMA);
    assert_eq!(doc.header.simulated_profile.as_deref(), Some("intel-2s"));
    assert_eq!((doc.exit_code, doc.signal), (None, Some(2)));
    // intel-2s has psys: the node is the platform domain.
    assert_eq!(doc.node_source.as_deref(), Some("psys"));
    assert_eq!(doc.domains.len(), m.energy_joules.len());
    let platform = doc.domains.iter().find(|d| d.domain == "platform").unwrap();
    assert_eq!(platform.energy_joules, doc.node_energy_joules);
    assert_eq!(platform.mean_watts, doc.node_mean_watts);
    assert_eq!(platform.peak_watts, doc.node_peak_watts);
}
