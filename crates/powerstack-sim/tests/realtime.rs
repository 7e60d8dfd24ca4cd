//! A node animated in real time from its own thread, with every pm_counters fault on, while the
//! product reads its root from the test's thread: the truth is recorded step by step. No timing
//! assertions: the test waits for records, never for a duration.

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use powerstack_hw::{Root, Selection, Source, discover};
use powerstack_sim::faults::PmFaults;
use powerstack_sim::{Profile, SimNode, SimOptions, TruthLog};

/// Waits until the log holds at least `n` records.
fn wait_for(log: &Mutex<TruthLog>, n: usize) {
    while log.lock().unwrap().len() < n {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn the_truth_is_recorded_while_the_product_reads_a_faulty_root() {
    let faults = PmFaults {
        torn: true,
        freshness_mid_update: true,
        late: Duration::from_millis(50),
        drift_ppm: 500.0,
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = SimOptions { pm_faults: faults, ..SimOptions::default() };
    let mut node = SimNode::create(dir.path(), Profile::CrayEx, opts).unwrap();
    let ids = node.domains();
    let log = Arc::new(Mutex::new(TruthLog::new(ids.clone())));
    let stop = Arc::new(AtomicBool::new(false));
    let (sink, flag) = (Arc::clone(&log), Arc::clone(&stop));
    let sim = std::thread::spawn(move || {
        node.run_realtime_with(Duration::from_millis(2), &flag, |n, at| {
            sink.lock().unwrap().record(n, at)
        })?;
        Ok::<_, powerstack_sim::SimError>(node)
    });
    wait_for(&log, 1);
    // The product reads the root meanwhile (what it makes of torn files is its own business).
    let mut platform =
        discover(&Root::new(dir.path()), &Selection::Only(vec![Source::PmCounters])).platform;
    for _ in 0..20 {
        platform.sample();
    }
    wait_for(&log, 60);
    stop.store(true, Ordering::Relaxed);
    let node = sim.join().unwrap().unwrap();

    let log = log.lock().unwrap();
    for id in ids {
        let points = log.points(id);
        assert!(points.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1), "{id}: in order");
        assert!(points.windows(2).all(|w| w[0].2 <= w[1].2), "{id}: energy never goes back");
        let (first, last) = (points[0], points[points.len() - 1]);
        assert_eq!(last.2, node.true_energy_joules(id).unwrap(), "{id}: the last step is logged");
        assert_eq!(log.energy_at(id, last.0), Some(last.2));
        assert!(log.energy_between(id, first.0, last.0).unwrap() > 0.0, "{id}");
        assert_eq!(log.energy_at_unix_us(id, last.1), Some(last.2));
    }
    // Once the node stops, every file is whole again.
    for e in fs::read_dir(dir.path().join("sys/cray/pm_counters")).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.ends_with("energy") || name.ends_with("power") {
            let text = fs::read_to_string(&path).unwrap();
            assert_eq!(text.split_whitespace().count(), 4, "{name}: {text:?}");
            assert!(text.ends_with(" us\n"), "{name}: {text:?}");
        }
    }
}
