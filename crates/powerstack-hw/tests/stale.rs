//! Counters that stop, vanish, restart or are replaced under a reader that keeps them open: a
//! value is missing (with a warning) or right, never a confident 0 W or an impossible figure.

use std::path::Path;
use std::time::Duration;

use powerstack_hw::{Platform, Root, Selection, discover};
use powerstack_model::{DomainId, DomainKind, PowerReport, Snapshot, Value};
use powerstack_sim::{Profile, SimNode, SimOptions};

const MS: u64 = 1_000_000;

fn platform(root: &Path) -> Platform {
    let d = discover(&Root::new(root), &Selection::Auto);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    d.platform
}

/// The power of every domain between two snapshots, by domain.
fn powers(p: &Platform, a: &Snapshot, b: &Snapshot) -> Vec<(DomainId, Option<f64>)> {
    PowerReport::between(p.catalog(), a, b).domains.iter().map(|d| (d.id, d.power_watts)).collect()
}

fn assert_true_power(node: &SimNode, got: &[(DomainId, Option<f64>)]) {
    for &(id, w) in got {
        let truth = node.true_power_watts(id).unwrap();
        let w = w.unwrap_or_else(|| panic!("{id}: no value"));
        assert!((w - truth).abs() <= truth * 0.005, "{id}: {w} W, true {truth} W");
    }
}

#[test]
fn a_root_written_again_under_a_reader_is_reopened_and_never_reads_zero_watts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let mut node = SimNode::create(&root, Profile::Intel2s, SimOptions::default()).unwrap();
    let mut p = platform(&root);
    let mut t = 10_000 * MS;
    let mut prev = p.sample_at(t, 0);
    node.advance(Duration::from_millis(100)).unwrap();
    t += 100 * MS;
    let next = p.sample_at(t, 0);
    assert_true_power(&node, &powers(&p, &prev, &next));
    prev = next;

    // The tree is removed and written again while the platform keeps its files open: its
    // descriptors read the removed files, which never change again.
    drop(node);
    std::fs::remove_dir_all(&root).unwrap();
    let opts = SimOptions { load: 0.8, ..SimOptions::default() };
    let mut node = SimNode::create(&root, Profile::Intel2s, opts).unwrap();
    let mut recovered = false;
    let mut warnings = Vec::new();
    for _ in 0..40 {
        node.advance(Duration::from_millis(100)).unwrap();
        t += 100 * MS;
        let next = p.sample_at(t, 0);
        warnings.extend(p.take_warnings().into_iter().map(|w| w.to_string()));
        let got = powers(&p, &prev, &next);
        for &(id, w) in &got {
            assert_ne!(w, Some(0.0), "{id} reads a confident 0 W");
        }
        if got.iter().all(|(_, w)| w.is_some()) && recovered {
            // Once reopened, the figures are the new tree's.
            assert_true_power(&node, &got);
        }
        recovered |= got.iter().all(|(_, w)| w.is_some());
        prev = next;
    }
    assert!(recovered, "the platform never read the new tree");
    assert!(warnings.iter().any(|w| w.contains("was replaced")), "{warnings:?}");
}

#[test]
fn a_counter_that_stops_is_missing_and_warned_once_until_it_moves_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = SimNode::create(dir.path(), Profile::Intel2s, SimOptions::default()).unwrap();
    let mut p = platform(dir.path());
    let mut t = 10_000 * MS;
    p.sample_at(t, 0);
    node.advance(Duration::from_millis(100)).unwrap();
    t += 100 * MS;
    let good = p.sample_at(t, 0);
    assert!(good.values.iter().all(|v| matches!(v, Value::Energy { .. })));
    // Nothing updates the counters any more: a second of stillness is an ordinary reading (a
    // counter may move rarely), more is stale.
    t += 900 * MS;
    assert_eq!(p.sample_at(t, 0).values, good.values);
    t += 200 * MS;
    let stale = p.sample_at(t, 0);
    assert!(stale.values.iter().all(|v| *v == Value::Missing), "{:?}", stale.values);
    let w = p.take_warnings();
    assert_eq!(w.len(), good.values.len(), "one warning per domain: {w:?}");
    assert!(w.iter().all(|w| w.unreadable && w.message.contains("has not moved")), "{w:?}");
    t += 5_000 * MS;
    assert!(p.sample_at(t, 0).values.iter().all(|v| *v == Value::Missing));
    assert!(p.take_warnings().is_empty(), "warned once");
    // Moving again: values again, and what the counters counted meanwhile is kept.
    node.advance(Duration::from_millis(100)).unwrap();
    t += 100 * MS;
    let back = p.sample_at(t, 0);
    assert!(back.values.iter().all(|v| matches!(v, Value::Energy { .. })));
    let r = PowerReport::between(p.catalog(), &good, &back);
    let pkg = r.get(DomainId::new(DomainKind::Package, 0)).unwrap();
    let truth = node.true_power_watts(DomainId::new(DomainKind::Package, 0)).unwrap();
    let expected = truth * 0.1 / ((t - 10_100 * MS) as f64 / 1e9);
    assert!((pkg.power_watts.unwrap() - expected).abs() < expected * 0.01, "{pkg:?}");
}

#[test]
fn a_counter_that_restarts_between_two_reads_is_not_taken_for_a_wrap() {
    // memory-0 (a 65.5 kJ DRAM counter) ten minutes before its wrap at 16 W: 9.6 kJ below the top.
    let dir = tempfile::tempdir().unwrap();
    let mut node = SimNode::create(dir.path(), Profile::Intel2s, SimOptions::default()).unwrap();
    let mem = DomainId::new(DomainKind::Memory, 0);
    node.near_wrap(mem, 600.0).unwrap();
    let mut p = platform(dir.path());
    let energy = dir.path().join("sys/class/powercap/intel-rapl:0/intel-rapl:0:0/energy_uj");
    let mut t = 10_000 * MS;
    let mut prev = p.sample_at(t, 0);
    for k in 0..6 {
        if k == 2 {
            // The counter restarts from 0 (a reset): 100 µJ counted since.
            std::fs::write(&energy, "100\n").unwrap();
        } else {
            node.advance(Duration::from_millis(1)).unwrap();
        }
        t += MS;
        let next = p.sample_at(t, 0);
        for (id, w) in powers(&p, &prev, &next) {
            // A wrap would put 9.6 kJ in a millisecond: 9.6 MW.
            assert!(w.is_none_or(|w| w < 1000.0), "step {k}: {id}: {w:?} W");
        }
        prev = next;
    }
}
