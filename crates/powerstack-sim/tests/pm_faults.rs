//! The pm_counters controller's faults, driven with `SimNode::advance` (no timing assertions):
//! late updates, a drifting clock, torn writes and `freshness` bumped mid-update; and reads that
//! come late (`DelayedReads`, checked only to take at least its delay).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use powerstack_hw::{Platform, Provider, Reading, Root, Selection, Source, discover};
use powerstack_model::DomainId;
use powerstack_sim::faults::{DelayedReads, PmFault, PmFaults};
use powerstack_sim::{PmStage, Profile, SimNode, SimOptions, UNIX_START_US};

const PM: &str = "sys/cray/pm_counters";
const MS: Duration = Duration::from_millis(1);

fn cray(faults: PmFaults) -> (tempfile::TempDir, SimNode) {
    let dir = tempfile::tempdir().unwrap();
    let opts = SimOptions { pm_faults: faults, ..SimOptions::default() };
    let node = SimNode::create(dir.path(), Profile::CrayEx, opts).unwrap();
    (dir, node)
}

/// `(joules or watts, stamp µs)` of a value file.
fn value(root: &Path, name: &str) -> (u64, i64) {
    let t = fs::read_to_string(root.join(format!("{PM}/{name}"))).unwrap();
    let f: Vec<&str> = t.split_whitespace().collect();
    assert_eq!(f.len(), 4, "{name}: {t:?}");
    (f[0].parse().unwrap(), f[2].parse().unwrap())
}

/// One publication seen on `energy` (the node's): when it appeared (node µs), joules, stamp.
#[derive(Debug)]
struct Seen {
    at_us: i64,
    joules: u64,
    stamp_us: i64,
}

/// Steps `steps` ms one at a time, recording each new `energy` publication.
fn watch(node: &mut SimNode, steps: u32) -> Vec<Seen> {
    let root = node.root().to_path_buf();
    let mut last = value(&root, "energy");
    let mut seen = Vec::new();
    for _ in 0..steps {
        node.advance(MS).unwrap();
        let now = value(&root, "energy");
        if now != last {
            seen.push(Seen { at_us: node.unix_us(), joules: now.0, stamp_us: now.1 });
            last = now;
        }
    }
    seen
}

/// `joules` is the floor of the counter's exact value `e0 + exact`.
fn is_floor_of(joules: u64, e0: u64, exact: f64) -> bool {
    let v = e0 as f64 + exact;
    (joules as f64) <= v + 1e-6 && (joules as f64) > v - 1.0
}

#[test]
fn on_time_updates_appear_at_their_boundary() {
    let (dir, mut node) = cray(PmFaults::default());
    let (e0, _) = value(dir.path(), "energy");
    let watts = node.true_power_watts(DomainId::NODE).unwrap();
    let seen = watch(&mut node, 1000);
    assert_eq!(seen.len(), 10);
    for (n, s) in seen.iter().enumerate() {
        assert_eq!(s.stamp_us, UNIX_START_US + 100_000 * (n as i64 + 1));
        assert_eq!(s.at_us, s.stamp_us, "published at its boundary");
        assert!(is_floor_of(s.joules, e0, watts * 0.1 * (n + 1) as f64), "{s:?}");
    }
}

#[test]
fn late_updates_keep_their_boundarys_stamp_and_values() {
    let late = PmFaults { late: Duration::from_millis(150), ..PmFaults::default() };
    let (dir, mut node) = cray(late);
    let (e0, _) = value(dir.path(), "energy");
    let watts = node.true_power_watts(DomainId::NODE).unwrap();
    let seen = watch(&mut node, 3000);
    assert!(seen.len() >= 15, "most of 30 updates are seen: {}", seen.len());
    let mut delays = Vec::new();
    for s in &seen {
        let since_start = s.stamp_us - UNIX_START_US;
        assert_eq!(since_start % 100_000, 0, "a boundary's stamp: {s:?}");
        let delay = s.at_us - s.stamp_us;
        assert!((0..=150_000).contains(&delay), "{s:?}");
        assert!(is_floor_of(s.joules, e0, watts * since_start as f64 / 1e6), "{s:?}");
        delays.push(delay);
    }
    assert!(seen.windows(2).all(|w| w[0].stamp_us < w[1].stamp_us), "in order");
    // Out of step: some arrive after the next boundary has passed, some nearly on time.
    assert!(delays.iter().any(|&d| d > 100_000), "{delays:?}");
    assert!(delays.iter().any(|&d| d < 50_000), "{delays:?}");
    // freshness (1 at create) counts every update published by now, seen or overtaken.
    let fresh: u64 = fs::read_to_string(dir.path().join(format!("{PM}/freshness")))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let published = (seen.last().unwrap().stamp_us - UNIX_START_US) / 100_000;
    assert!(fresh > published as u64, "freshness {fresh}, {published} published");
    // The same steps give the same publications.
    let (_d, mut again) = cray(late);
    let twice = watch(&mut again, 3000);
    let key = |v: &[Seen]| v.iter().map(|s| (s.at_us, s.stamp_us)).collect::<Vec<_>>();
    assert_eq!(key(&seen), key(&twice));
}

#[test]
fn drift_puts_stamps_on_the_controllers_clock_and_energies_at_node_time() {
    for ppm in [10_000.0, -10_000.0] {
        let (dir, mut node) = cray(PmFaults { drift_ppm: ppm, ..PmFaults::default() });
        let (e0, _) = value(dir.path(), "energy");
        let watts = node.true_power_watts(DomainId::NODE).unwrap();
        let rate = 1.0 + ppm * 1e-6;
        let seen = watch(&mut node, 2000);
        for (n, s) in seen.iter().enumerate() {
            let n = n as i64 + 1;
            // The controller's n-th boundary, stamped on its clock...
            assert_eq!(s.stamp_us, UNIX_START_US + 100_000 * n, "{ppm} ppm: {s:?}");
            // ...comes when the node's clock reads n × 100 ms / rate (in the 1 ms step holding it).
            let node_s = 0.1 * n as f64 / rate;
            let at_s = (s.at_us - UNIX_START_US) as f64 / 1e6;
            assert!(at_s >= node_s - 1e-9 && at_s < node_s + 0.001, "{ppm} ppm: {s:?}");
            // ...holding the energy at that node time.
            assert!(is_floor_of(s.joules, e0, watts * node_s), "{ppm} ppm: {s:?} at {node_s} s");
        }
        let expected = if ppm > 0.0 { 20 } else { 19 };
        assert_eq!(seen.len(), expected, "{ppm} ppm over 2 s of node time");
        // A restart is stamped on the controller's clock too.
        node.reset_pm_counters().unwrap();
        let startup: i64 = fs::read_to_string(dir.path().join(format!("{PM}/startup")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(startup, UNIX_START_US + (2e6 * rate).round() as i64, "{ppm} ppm");
    }
}

/// Records every pm_counters write under `node`, checking that the disk holds what is shown.
fn record(node: &mut SimNode) -> Arc<Mutex<Vec<(PathBuf, PmStage, String)>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    node.observe_pm_writes(Some(Box::new(move |path, stage, shown| {
        assert_eq!(fs::read_to_string(path).unwrap(), shown, "{path:?} holds what is shown");
        sink.lock().unwrap().push((path.to_path_buf(), stage, shown.to_string()));
    })));
    log
}

#[test]
fn torn_writes_leave_empty_and_half_written_files_for_a_moment() {
    let (_dir, mut node) = cray(PmFaults { torn: true, ..PmFaults::default() });
    let log = record(&mut node);
    node.advance(Duration::from_millis(100)).unwrap();
    let log = log.lock().unwrap();
    let written: Vec<_> = log.iter().filter(|(_, st, _)| *st == PmStage::Written).collect();
    assert_eq!(written.len(), 15, "7 energy and 7 power files, and freshness");
    let mut prefixes = Vec::new();
    for (path, _, line) in &written {
        let of_file: Vec<_> = log.iter().filter(|(p, _, _)| p == path).collect();
        let stages: Vec<PmStage> = of_file.iter().map(|(_, st, _)| *st).collect();
        assert_eq!(stages, [PmStage::Emptied, PmStage::Partial, PmStage::Written], "{path:?}");
        assert_eq!(of_file[0].2, "");
        let part = &of_file[1].2;
        assert!(!part.is_empty() && part.len() < line.len() && line.starts_with(part.as_str()));
        prefixes.push(part.len());
    }
    prefixes.sort_unstable();
    prefixes.dedup();
    assert!(prefixes.len() > 3, "split at different points: {prefixes:?}");
    drop(log);
    // Without the fault, each file is written at once.
    let (_d, mut whole) = cray(PmFaults::default());
    let log = record(&mut whole);
    whole.advance(Duration::from_millis(100)).unwrap();
    assert!(log.lock().unwrap().iter().all(|(_, st, _)| *st == PmStage::Written));
}

/// When `freshness` is written in the first update: how many energy files already hold the new
/// stamp, and how many still the old one.
fn energy_files_when_freshness_moves(faults: PmFaults) -> (usize, usize) {
    let (dir, mut node) = cray(faults);
    let root = dir.path().to_path_buf();
    let counts = Arc::new(Mutex::new(None));
    let sink = Arc::clone(&counts);
    node.observe_pm_writes(Some(Box::new(move |path, stage, _| {
        if stage != PmStage::Written || !path.ends_with("freshness") {
            return;
        }
        let mut new_old = (0, 0);
        for e in fs::read_dir(root.join(PM)).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            if name.ends_with("energy") {
                if value(&root, &name).1 == UNIX_START_US + 100_000 {
                    new_old.0 += 1;
                } else {
                    new_old.1 += 1;
                }
            }
        }
        *sink.lock().unwrap() = Some(new_old);
    })));
    node.advance(Duration::from_millis(100)).unwrap();
    let seen = *counts.lock().unwrap();
    seen.expect("freshness was written")
}

#[test]
fn freshness_moves_while_other_files_still_hold_the_old_update() {
    let (new, old) = energy_files_when_freshness_moves(PmFaults {
        freshness_mid_update: true,
        ..PmFaults::default()
    });
    assert!(new >= 1 && old >= 1, "{new} new, {old} old");
    assert_eq!(new + old, 7);
    assert_eq!(energy_files_when_freshness_moves(PmFaults::default()), (7, 0), "after all of them");
    // Torn and mid-update together: still every file ends whole.
    let both = PmFaults { freshness_mid_update: true, torn: true, ..PmFaults::default() };
    let (dir, mut node) = cray(both);
    node.advance(Duration::from_millis(250)).unwrap();
    assert_eq!(value(dir.path(), "cpu_energy").1, UNIX_START_US + 200_000);
}

#[test]
fn faults_are_kept_in_the_root_and_checked() {
    let faults = ["torn", "freshness-mid-update", "late=150ms", "drift=-20ppm"]
        .iter()
        .map(|f| f.parse::<PmFault>().unwrap())
        .fold(PmFaults::default(), PmFaults::with);
    let (dir, node) = cray(faults);
    drop(node);
    let again = SimNode::open(dir.path()).unwrap();
    assert_eq!(again.options().pm_faults, faults);
    let text = fs::read_to_string(dir.path().join("powerstack-sim.toml")).unwrap();
    assert!(text.contains("[pm_faults]") && text.contains("late_us = 150000"), "{text}");
    let bad = PmFaults { drift_ppm: f64::NAN, ..PmFaults::default() };
    let e = SimNode::create(
        &dir.path().join("x"),
        Profile::CrayEx,
        SimOptions { pm_faults: bad, ..SimOptions::default() },
    )
    .unwrap_err();
    assert!(e.to_string().contains("drift"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Reads that come late: `DelayedReads` around the product's own providers.

/// The cray-ex root's pm_counters provider, from the product's discovery.
fn pm_provider(root: &Path) -> Box<dyn Provider> {
    let found = discover(&Root::new(root), &Selection::Only(vec![Source::PmCounters]));
    found.platform.into_providers().pop().expect("pm_counters is found")
}

#[test]
fn delayed_reads_sleep_before_each_read_and_forward_everything_else() {
    let (dir, mut node) = cray(PmFaults::default());
    node.advance(Duration::from_secs(1)).unwrap();
    let max = Duration::from_millis(20);
    let mut slow = DelayedReads::new(pm_provider(dir.path()), max, 42);
    let mut plain = pm_provider(dir.path());
    assert_eq!(slow.name(), "pm_counters");
    assert_eq!(slow.domains(), plain.domains());
    let n = plain.domains().len();
    let mut delays = Vec::new();
    for _ in 0..8 {
        let mut a: Vec<Reading> = (0..n).map(|_| Reading::Pending).collect();
        let mut b: Vec<Reading> = (0..n).map(|_| Reading::Pending).collect();
        let start = Instant::now();
        slow.read(&mut a);
        let took = start.elapsed();
        plain.read(&mut b);
        assert!(took >= slow.last_delay(), "{took:?} < {:?}", slow.last_delay());
        assert!(slow.last_delay() <= max);
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "the same readings");
        delays.push(slow.last_delay());
    }
    assert!(delays.windows(2).any(|w| w[0] != w[1]), "pseudo-random: {delays:?}");
    // The same seed, the same delays; a zero maximum, none.
    let mut again = DelayedReads::new(pm_provider(dir.path()), max, 42);
    let mut none = DelayedReads::new(pm_provider(dir.path()), Duration::ZERO, 42);
    for d in &delays {
        let mut out: Vec<Reading> = (0..n).map(|_| Reading::Pending).collect();
        again.read(&mut out);
        none.read(&mut out);
        assert_eq!(again.last_delay(), *d);
        assert_eq!(none.last_delay(), Duration::ZERO);
    }
    assert!(slow.refresh_limits().is_empty());
    assert_eq!(slow.into_inner().name(), "pm_counters");
}

#[test]
fn a_platform_of_delayed_providers_measures_what_the_plain_one_does() {
    let (dir, mut node) = cray(PmFaults::default());
    let found = discover(&Root::new(dir.path()), &Selection::Auto);
    let slow = DelayedReads::wrap_all(found.platform.into_providers(), MS * 5, 1);
    let (mut slow, warnings) = Platform::new(slow);
    assert!(warnings.is_empty(), "{warnings:?}");
    let mut plain = discover(&Root::new(dir.path()), &Selection::Auto).platform;
    assert_eq!(slow.catalog(), plain.catalog());
    let a = (slow.sample_at(node.mono_ns(), node.unix_us()), plain.sample_at(1, 1));
    node.advance(Duration::from_secs(1)).unwrap();
    let b = (slow.sample_at(node.mono_ns(), node.unix_us()), plain.sample_at(2, 2));
    assert_eq!(a.0.values, a.1.values);
    assert_eq!(b.0.values, b.1.values);
}
