//! The hwmon and pm_counters providers against `powerstack-sim`'s cray-ex and hwmon-node roots:
//! measured power over a simulated interval agrees with the model's true power, and controller
//! restarts and removed devices behave.

use std::time::Duration;

use powerstack_hw::{Platform, Root, Selection, Source, discover};
use powerstack_model::{DomainId, DomainKind, NodeSource, PowerReport, Snapshot, Value};
use powerstack_sim::{Profile, SimNode, SimOptions};
use tempfile::TempDir;

const SECOND: Duration = Duration::from_secs(1);

fn start(profile: Profile, opts: SimOptions, source: Source) -> (TempDir, SimNode, Platform) {
    let dir = tempfile::tempdir().unwrap();
    let node = SimNode::create(dir.path(), profile, opts).unwrap();
    let found = discover(&Root::new(dir.path()), &Selection::Only(vec![source]));
    let provider_warnings: Vec<_> =
        found.warnings.iter().filter(|w| w.provider == source.as_str()).collect();
    assert!(provider_warnings.is_empty(), "{provider_warnings:?}");
    (dir, node, found.platform)
}

fn sample(pf: &mut Platform, node: &SimNode) -> Snapshot {
    pf.sample_at(node.mono_ns(), node.unix_us())
}

/// Every simulated domain is in the catalog, and each measured power is within `tolerance(truth,
/// interval)` of the model's.
fn assert_close(
    pf: &Platform,
    node: &SimNode,
    r: &PowerReport,
    tolerance: impl Fn(f64, f64) -> f64,
) {
    let mut ids: Vec<DomainId> = pf.catalog().iter().map(|d| d.id).collect();
    let mut expected = node.domains();
    ids.sort();
    expected.sort();
    assert_eq!(ids, expected);
    for id in ids {
        let truth = node.true_power_watts(id).unwrap();
        let measured = r.get(id).and_then(|d| d.power_watts).unwrap_or(f64::NAN);
        let tol = tolerance(truth, r.interval_s);
        assert!(
            (measured - truth).abs() <= tol,
            "{id}: measured {measured} W, true {truth} W (±{tol})"
        );
    }
}

/// pm_counters count whole joules and whole watts.
fn pm_tolerance(truth: f64, interval_s: f64) -> f64 {
    (0.01 * truth).max(1.0 / interval_s)
}

#[test]
fn cray_ex_power_matches_the_model() {
    let (_dir, mut node, mut pf) =
        start(Profile::CrayEx, SimOptions::default(), Source::PmCounters);
    assert_eq!(pf.catalog().iter().filter(|d| d.id.kind == DomainKind::Gpu).count(), 4);
    node.advance(SECOND).unwrap();
    let a = sample(&mut pf, &node);
    node.advance(SECOND).unwrap();
    let b = sample(&mut pf, &node);
    let r = PowerReport::between(pf.catalog(), &a, &b);
    assert_close(&pf, &node, &r, pm_tolerance);
    assert_eq!(r.node.as_ref().map(|n| &n.source), Some(&NodeSource::Direct(0)));
    assert!(pf.take_warnings().is_empty());
}

#[test]
fn cray_ex_sine_load_over_many_steps_matches_the_true_energy() {
    let opts = SimOptions { pattern: powerstack_sim::LoadPattern::Sine, ..SimOptions::default() };
    let (_dir, mut node, mut pf) = start(Profile::CrayEx, opts, Source::PmCounters);
    let a = sample(&mut pf, &node);
    let e0: Vec<f64> =
        pf.catalog().iter().map(|d| node.true_energy_joules(d.id).unwrap()).collect();
    for _ in 0..50 {
        node.advance(Duration::from_millis(100)).unwrap();
    }
    let b = sample(&mut pf, &node);
    let r = PowerReport::between(pf.catalog(), &a, &b);
    for (i, d) in pf.catalog().iter().enumerate() {
        let truth = (node.true_energy_joules(d.id).unwrap() - e0[i]) / 5.0;
        let measured = r.domains[i].power_watts.unwrap();
        assert!(
            (measured - truth).abs() <= pm_tolerance(truth, 5.0),
            "{}: {measured} vs {truth}",
            d.id
        );
    }
}

#[test]
fn cray_ex_controller_restart_is_a_reset_not_a_negative_or_huge_power() {
    let (_dir, mut node, mut pf) =
        start(Profile::CrayEx, SimOptions::default(), Source::PmCounters);
    node.advance(SECOND).unwrap();
    let a = sample(&mut pf, &node);
    // A restart in the middle of an interval: the energy before it is lost, never negative.
    node.advance(Duration::from_millis(500)).unwrap();
    node.reset_pm_counters().unwrap();
    node.advance(Duration::from_millis(500)).unwrap();
    let b = sample(&mut pf, &node);
    let r = PowerReport::between(pf.catalog(), &a, &b);
    for d in pf.catalog() {
        let truth = node.true_power_watts(d.id).unwrap();
        let p = r.get(d.id).and_then(|x| x.power_watts).unwrap();
        assert!(
            p >= 0.0 && p <= truth + pm_tolerance(truth, r.interval_s),
            "{}: {p} W (true {truth})",
            d.id
        );
    }
    // The next interval is exact again, and the extended counters never went backwards.
    node.advance(SECOND).unwrap();
    let c = sample(&mut pf, &node);
    let r = PowerReport::between(pf.catalog(), &b, &c);
    assert_close(&pf, &node, &r, pm_tolerance);
    for i in 0..pf.catalog().len() {
        let j = |s: &Snapshot| match s.values[i] {
            Value::Energy { joules, .. } => joules,
            other => panic!("{other:?}"),
        };
        assert!(j(&a) <= j(&b) && j(&b) <= j(&c));
    }
    assert!(pf.take_warnings().is_empty());
}

#[test]
fn cray_ex_removed_accelerator_reads_missing_and_the_rest_keeps_reading() {
    let (_dir, mut node, mut pf) =
        start(Profile::CrayEx, SimOptions::default(), Source::PmCounters);
    let gpu2 = DomainId::new(DomainKind::Gpu, 2);
    node.advance(SECOND).unwrap();
    let a = sample(&mut pf, &node);
    node.remove_device(gpu2).unwrap();
    node.advance(SECOND).unwrap();
    let b = sample(&mut pf, &node);
    let i = pf.catalog().iter().position(|d| d.id == gpu2).unwrap();
    assert_eq!(b.values[i], Value::Missing);
    let w = pf.take_warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].message.contains("gpu-2"), "{w:?}");
    let r = PowerReport::between(pf.catalog(), &a, &b);
    for d in pf.catalog().iter().filter(|d| d.id != gpu2) {
        let truth = node.true_power_watts(d.id).unwrap();
        let p = r.get(d.id).and_then(|x| x.power_watts).unwrap();
        assert!((p - truth).abs() <= pm_tolerance(truth, r.interval_s), "{}: {p} vs {truth}", d.id);
    }
}

#[test]
fn hwmon_node_power_matches_the_model_exactly() {
    for shuffle in [false, true] {
        let opts = SimOptions { shuffle_indices: shuffle, ..SimOptions::default() };
        let (_dir, mut node, mut pf) = start(Profile::HwmonNode, opts, Source::Hwmon);
        let gpu = pf.catalog().iter().find(|d| d.id.kind == DomainKind::Gpu).unwrap();
        assert_eq!(gpu.source, "amdgpu 0000:03:00.0 power1_average");
        assert_eq!(gpu.socket, Some(0));
        node.advance(SECOND).unwrap();
        let a = sample(&mut pf, &node);
        node.advance(SECOND).unwrap();
        let b = sample(&mut pf, &node);
        let r = PowerReport::between(pf.catalog(), &a, &b);
        // The files hold whole microwatts.
        assert_close(&pf, &node, &r, |_, _| 1e-6);
        let n = r.node.unwrap();
        assert!(matches!(n.source, NodeSource::Direct(_)));
        assert!(pf.take_warnings().is_empty());
    }
}

#[test]
fn hwmon_node_removed_gpu_reads_missing_and_the_meter_keeps_reading() {
    let (_dir, mut node, mut pf) = start(Profile::HwmonNode, SimOptions::default(), Source::Hwmon);
    let gpu0 = DomainId::new(DomainKind::Gpu, 0);
    node.advance(SECOND).unwrap();
    let a = sample(&mut pf, &node);
    node.remove_device(gpu0).unwrap();
    node.advance(SECOND).unwrap();
    let b = sample(&mut pf, &node);
    let i = pf.catalog().iter().position(|d| d.id == gpu0).unwrap();
    assert_eq!(b.values[i], Value::Missing);
    let w = pf.take_warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    let r = PowerReport::between(pf.catalog(), &a, &b);
    let truth = node.true_power_watts(DomainId::NODE).unwrap();
    let p = r.get(DomainId::NODE).and_then(|d| d.power_watts).unwrap();
    assert!((p - truth).abs() <= 1e-6, "{p} vs {truth}");
    assert_eq!(pf.refresh_limits().len(), 1, "the gone GPU's cap cannot be re-read");
}
