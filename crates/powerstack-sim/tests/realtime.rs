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
            assert!(text.ends_with('\n') && text.trim_end().ends_with(" us"), "{name}: {text:?}");
        }
    }
}

const PKG0_LIMIT: &str = "sys/class/powercap/intel-rapl:0/constraint_0_power_limit_uw";

/// A node animated from its own thread; stopped (and its error returned) by `stop`.
struct Animation {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<(), powerstack_sim::SimError>>>,
}

impl Animation {
    /// Starts animating `node`; returns once the animation runs (its first callback came).
    fn start(mut node: SimNode, tick: Duration) -> Animation {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (started, running) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            node.run_realtime_with(tick, &flag, |_, _| {
                let _ = started.send(());
            })
        });
        let _ = running.recv();
        Animation { stop, thread: Some(thread) }
    }

    fn stop(mut self) -> Result<(), powerstack_sim::SimError> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Animation {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Waits until `cond` holds, for at most `limit` (a bound against hanging, far beyond what it
/// takes: the test never measures a duration).
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while !cond() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

#[test]
fn a_limit_written_between_ticks_is_rounded_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = SimNode::create(dir.path(), Profile::Intel2s, SimOptions::default()).unwrap();
    // A tick of an hour: only the watch on the limit files can answer the write.
    let anim = Animation::start(node, Duration::from_secs(3600));
    let path = dir.path().join(PKG0_LIMIT);
    fs::write(&path, "90100000\n").unwrap();
    let rounded =
        eventually(Duration::from_secs(30), || fs::read_to_string(&path).unwrap() == "90000000\n");
    assert!(rounded, "still {:?}", fs::read_to_string(&path).unwrap());
    anim.stop().unwrap();
}

#[test]
fn settle_answers_a_written_limit_without_moving_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = SimNode::create(dir.path(), Profile::Intel2s, SimOptions::default()).unwrap();
    let path = dir.path().join(PKG0_LIMIT);
    let t = node.mono_ns();
    fs::write(&path, "90100000\n").unwrap();
    assert!(node.settle().unwrap().is_empty());
    assert_eq!(fs::read_to_string(&path).unwrap(), "90000000\n", "quantised to 1/8 W");
    assert_eq!(node.mono_ns(), t);
    let pkg0 = powerstack_model::DomainId::new(powerstack_model::DomainKind::Package, 0);
    assert!((node.expected_steady_power_watts(pkg0).unwrap() - 90.0).abs() < 1e-9);
}

#[test]
fn a_root_is_animated_by_one_animation_and_not_written_over_while_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let node = SimNode::create(dir.path(), Profile::Intel2s, SimOptions::default()).unwrap();
    let anim = Animation::start(node, Duration::from_millis(5));
    let config = fs::read_to_string(dir.path().join("powerstack-sim.toml")).unwrap();
    let ticking = eventually(Duration::from_secs(30), || {
        // A second animation is refused while the first runs.
        let mut other = SimNode::open(dir.path()).unwrap();
        let flag = AtomicBool::new(false);
        matches!(
            other.run_realtime(Duration::from_millis(5), &flag),
            Err(powerstack_sim::SimError::AlreadyAnimated { .. })
        )
    });
    assert!(ticking, "a second animation ran");
    let e = SimNode::create(dir.path(), Profile::CrayEx, SimOptions::default()).unwrap_err();
    assert!(matches!(e, powerstack_sim::SimError::Animated { .. }), "{e}");
    assert!(e.to_string().contains("stop it"), "{e}");
    assert_eq!(fs::read_to_string(dir.path().join("powerstack-sim.toml")).unwrap(), config);
    assert!(dir.path().join("sys/class/powercap").exists(), "nothing was touched");
    anim.stop().unwrap();
    // Stopped: refused still (another reader may keep its files open), as a root already there.
    let e = SimNode::create(dir.path(), Profile::CrayEx, SimOptions::default()).unwrap_err();
    assert!(matches!(e, powerstack_sim::SimError::AlreadyCreated { .. }), "{e}");
    assert!(e.to_string().contains("rm -r"), "{e}");
}

/// Every value read from a counter file while the simulator rewrites it is one it wrote, whole:
/// never empty, never the stale tail of a longer value, never the first digits of a longer one.
#[test]
fn a_reader_never_sees_a_counter_file_half_written() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let mut node = SimNode::create(dir.path(), Profile::Intel2s, SimOptions::default()).unwrap();
    let mem0 = powerstack_model::DomainId::new(powerstack_model::DomainKind::Memory, 0);
    let path = dir.path().join("sys/class/powercap/intel-rapl:0/intel-rapl:0:0/energy_uj");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let reader_path = path.clone();
    let reader = std::thread::spawn(move || {
        let file = fs::File::open(&reader_path).unwrap();
        let mut buf = [0u8; 64];
        let mut seen = std::collections::BTreeSet::new();
        let mut reads = 0u64;
        while !flag.load(Ordering::Relaxed) {
            let n = file.read_at(&mut buf, 0).unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            // The whole content is one number (as a reader that trims the file takes it).
            let v: u64 = text.trim().parse().unwrap_or_else(|_| panic!("read {text:?}"));
            seen.insert(v);
            reads += 1;
        }
        (seen, reads)
    });
    // Every value the simulator writes, with wraps (an 11-digit value to a 4-digit one and back)
    // every few writes, so the files' contents change length all the time.
    let mut written = std::collections::BTreeSet::new();
    let read_back =
        |p: &std::path::Path| fs::read_to_string(p).unwrap().trim().parse::<u64>().unwrap();
    written.insert(read_back(&path));
    for k in 0..3000 {
        if k % 3 == 0 {
            node.near_wrap(mem0, 0.0005).unwrap();
            written.insert(read_back(&path));
        }
        node.advance(Duration::from_millis(1)).unwrap();
        written.insert(read_back(&path));
    }
    stop.store(true, Ordering::Relaxed);
    let (seen, reads) = reader.join().unwrap();
    assert!(reads > 0);
    let stray: Vec<_> = seen.difference(&written).take(5).collect();
    assert!(stray.is_empty(), "read values never written: {stray:?} ({reads} reads)");
    assert!(written.iter().any(|&v| v < 1_000_000) && written.iter().any(|&v| v > 10_000_000_000));
}

/// The documented rounding of a written power limit: down to the register's 1/8 W unit.
fn quantised_uw(uw: u64) -> u64 {
    uw / 125_000 * 125_000
}

/// 300 writes to a limit file 5 ms apart while the node is animated every 5 ms: every value
/// read back, at once or just before the next write, is the one last written or its rounding;
/// the last one stays, rounded, and the register follows it. No write is reverted.
#[test]
fn no_write_to_a_limit_file_is_lost_while_the_node_is_animated() {
    let dir = tempfile::tempdir().unwrap();
    let node = SimNode::create(dir.path(), Profile::Intel2s, SimOptions::default()).unwrap();
    let anim = Animation::start(node, Duration::from_millis(5));
    let path = dir.path().join(PKG0_LIMIT);
    let mut lost = Vec::new();
    let mut last = 0;
    for k in 0..300u64 {
        // Exact and unexact values, in a different order than they come back.
        let uw = 60_000_000 + (k * 7_919 % 301) * 100_000 + (k % 3) * 40_000;
        fs::write(&path, format!("{uw}\n")).unwrap();
        for _ in 0..2 {
            let text = fs::read_to_string(&path).unwrap();
            // An empty file is a writer's write in progress (none here but this one, done).
            let shown: u64 = text.trim().parse().unwrap_or_else(|_| panic!("read {text:?}"));
            if shown != uw && shown != quantised_uw(uw) {
                lost.push((k, uw, shown));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        last = uw;
    }
    assert!(
        lost.is_empty(),
        "{} reads of 600 showed another value: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    let want = format!("{}\n", quantised_uw(last));
    let settled =
        eventually(Duration::from_secs(30), || fs::read_to_string(&path).unwrap() == want);
    assert!(settled, "still {:?}", fs::read_to_string(&path).unwrap());
    anim.stop().unwrap();
    // The register took the last write (a node reopened reads it from the files).
    let node = SimNode::open(dir.path()).unwrap();
    let pkg0 = powerstack_model::DomainId::new(powerstack_model::DomainKind::Package, 0);
    let cap = node.expected_steady_power_watts(pkg0).unwrap();
    assert!(cap <= quantised_uw(last) as f64 / 1e6 + 1e-9, "{cap} W");
}

/// A write to one file of a zone changes only what that file says: the psys short-term window
/// (2440 µs at create, a field the kernel's own encoding would write back as 1952 µs) stays 2440
/// whatever is written to the limits and `enabled`; a write to the window itself is shown as the
/// kernel's encoding holds it, at once.
#[test]
fn a_write_rewrites_no_other_file_of_its_zone() {
    let dir = tempfile::tempdir().unwrap();
    let node = SimNode::create(dir.path(), Profile::Intel2s, SimOptions::default()).unwrap();
    let anim = Animation::start(node, Duration::from_millis(5));
    let zone = dir.path().join("sys/class/powercap/intel-rapl:2");
    let window = zone.join("constraint_1_time_window_us");
    assert_eq!(fs::read_to_string(&window).unwrap(), "2440\n");
    let writes = [
        ("constraint_0_power_limit_uw", "300100000\n", "300000000\n"),
        ("constraint_1_power_limit_uw", "550000000\n", "550000000\n"),
        ("enabled", "0\n", "0\n"),
        ("enabled", "1\n", "1\n"),
        ("constraint_0_time_window_us", "2000000\n", "1998848\n"),
    ];
    for (file, write, shown) in writes {
        fs::write(zone.join(file), write).unwrap();
        let answered = eventually(Duration::from_secs(30), || {
            fs::read_to_string(zone.join(file)).unwrap() == shown
        });
        assert!(answered, "{file}: {:?}", fs::read_to_string(zone.join(file)).unwrap());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(fs::read_to_string(&window).unwrap(), "2440\n", "after writing {file}");
    }
    fs::write(&window, "2440\n").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(fs::read_to_string(&window).unwrap(), "2440\n", "a write of what it shows");
    fs::write(&window, "5000\n").unwrap();
    let rounded =
        eventually(Duration::from_secs(30), || fs::read_to_string(&window).unwrap() == "4880\n");
    assert!(rounded, "{:?}", fs::read_to_string(&window).unwrap());
    anim.stop().unwrap();
}
