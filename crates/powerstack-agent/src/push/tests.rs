use super::*;
use powerstack_model::{CounterSpec, DomainId, DomainInfo, DomainKind, Measurement};

use crate::state::DomainMeta;

fn shared() -> Arc<Shared> {
    let d = |index| DomainMeta {
        info: DomainInfo {
            id: DomainId::new(DomainKind::Package, index),
            provider: "fake",
            source: "test".into(),
            measurement: Measurement::Energy(CounterSpec::non_wrapping(1e-6)),
            limits: Vec::new(),
            socket: Some(index),
            label: None,
        },
        joules_per_tick: 1e-6,
    };
    Arc::new(Shared::new("n1".into(), None, vec![d(0), d(1)], 10.0, 100, 1_000_000).with_site())
}

/// A worker whose site is never called (the tests only take rows).
fn worker(shared: Arc<Shared>, dir: &std::path::Path) -> Worker {
    let settings = PushSettings {
        site: "127.0.0.1:9".into(),
        node: "n1".into(),
        token: None,
        site_ca_file: None,
        interval: Duration::from_secs(1),
        spool_dir: dir.to_path_buf(),
        spool_max_bytes: 1 << 20,
        spool_max_age: Duration::from_secs(60),
        topology: None,
        control_url: None,
        call_timeout: Duration::from_secs(1),
    };
    let site = Site::new(&settings.site, None, settings.call_timeout).unwrap();
    let sender = Sender::new(site, "n1".into());
    let (spool, _) = Spool::open(dir).unwrap();
    Worker::new(shared, settings, spool, sender)
}

fn push(shared: &Shared, t: u64, row: &[u64]) {
    shared.ring.lock().unwrap().push(t, row);
}

/// The rows of the current stream's open batch.
fn open_rows(w: &Worker) -> Vec<Vec<u64>> {
    let id = w.spool.current_id().unwrap();
    let text =
        std::fs::read_to_string(w.settings.spool_dir.join(id).join(spool::OPEN_FILE)).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn only_settled_rows_are_taken_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let shared = shared();
    let mut w = worker(shared.clone(), dir.path());
    w.take().unwrap();
    assert_eq!(w.spool.current_id(), None, "nothing settled: no stream yet");
    for t in [10, 20, 30] {
        push(&shared, t, &[t, 2 * t]);
    }
    shared.settled_us.store(25, Ordering::Relaxed);
    w.take().unwrap();
    w.take().unwrap();
    // Row 30 may still be redrawn: not taken.
    assert_eq!(open_rows(&w), [vec![20, 20, 40]]);
    shared.settled_us.store(30, Ordering::Relaxed);
    w.take().unwrap();
    assert_eq!(open_rows(&w), [vec![20, 20, 40], vec![30, 30, 60]]);
    assert_eq!(w.spool.stream_ids().len(), 1);
}

#[test]
fn a_late_tick_takes_the_rows_it_missed_an_interval_apart() {
    let dir = tempfile::tempdir().unwrap();
    let shared = shared();
    let mut w = worker(shared.clone(), dir.path());
    // Rows every 0.4 s; the push interval is 1 s.
    for k in 1..=20u64 {
        push(&shared, k * 400_000, &[k, 2 * k]);
    }
    shared.settled_us.store(1_200_000, Ordering::Relaxed);
    w.take().unwrap();
    // The next tick comes 5 s late: the rows a second apart since, then the newest settled.
    shared.settled_us.store(7_000_000, Ordering::Relaxed);
    w.take().unwrap();
    let times: Vec<u64> = open_rows(&w).iter().map(|r| r[0]).collect();
    assert_eq!(times, [1_200_000, 2_400_000, 3_600_000, 4_800_000, 6_000_000, 6_800_000]);
    assert_eq!(open_rows(&w)[1], [2_400_000, 6, 12]);
}

#[test]
fn a_column_never_read_is_sent_as_zero_and_its_first_reading_begins_a_new_stream() {
    let dir = tempfile::tempdir().unwrap();
    let shared = shared();
    let mut w = worker(shared.clone(), dir.path());
    shared.ring.lock().unwrap().set_read(1, false);
    push(&shared, 10, &[1, 7]);
    shared.settled_us.store(10, Ordering::Relaxed);
    w.take().unwrap();
    let first = w.spool.current_id().unwrap().to_string();
    assert_eq!(open_rows(&w), [vec![10, 1, 0]]);
    let reg = w.spool.front().map(|f| f.register.clone());
    assert!(reg.is_none(), "nothing sealed yet");
    shared.ring.lock().unwrap().set_read(1, true);
    push(&shared, 20, &[2, 8]);
    shared.settled_us.store(20, Ordering::Relaxed);
    w.take().unwrap();
    let second = w.spool.current_id().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(open_rows(&w), [vec![20, 2, 8]]);
    // The first stream, sealed, goes first; each registered with its columns' read flags.
    let front = w.spool.front().unwrap();
    assert_eq!(front.stream, first);
    let read: Vec<bool> = front.register.domains.iter().map(|d| d.read).collect();
    assert_eq!(read, [true, false]);
    assert_eq!(front.register.started_unix_us, shared.clock.anchor_unix_us.min(10));
    assert_eq!(w.spool.read(&first, 1).unwrap().samples, [vec![10, 1, 0]]);
}
