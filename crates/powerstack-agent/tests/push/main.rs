//! The site pusher against a fake site ([`site::FakeSite`]): a pusher over a ring filled by a
//! thread of this test (rows whose counters are a known function of their time), and whole agents
//! on a simulated node for the restart. Waits are only for things to happen; nothing is timed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use powerstack_agent::access::Tier;
use powerstack_agent::config::AgentConfig;
use powerstack_agent::push::spool::REJECTED_DIR;
use powerstack_agent::push::{PushSettings, Pusher};
use powerstack_agent::run::{Ready, run};
use powerstack_agent::{DomainMeta, Shared, Stop};
use powerstack_model::{CounterSpec, DomainId, DomainInfo, DomainKind, Measurement};

mod site;
use site::{Event, FakeSite, Mode};

/// The synthetic node's columns: package-0, package-1, gpu-0 (never read).
fn domains() -> Vec<DomainMeta> {
    let d = |kind, index, jpt| DomainMeta {
        info: DomainInfo {
            id: DomainId::new(kind, index),
            provider: "fake",
            source: "test".into(),
            measurement: Measurement::Energy(CounterSpec::non_wrapping(jpt)),
            limits: Vec::new(),
            socket: Some(0),
            label: None,
        },
        joules_per_tick: jpt,
    };
    vec![
        d(DomainKind::Package, 0, 1e-6),
        d(DomainKind::Package, 1, 1e-6),
        d(DomainKind::Gpu, 0, 1e-3),
    ]
}

/// The counters of the synthetic node at `t` (µs): what every pushed row must carry.
fn counters(t: u64) -> Vec<u64> {
    vec![t % 1_000_000_000 * 3, t % 1_000_000_000 * 5, 0]
}

/// A pusher over a ring a thread of this test fills every 20 ms, each row settled at once.
struct Rig {
    state_dir: tempfile::TempDir,
    shared: Arc<Shared>,
    stop: Stop,
    feeding: Arc<AtomicBool>,
    feeder: Option<JoinHandle<()>>,
    pusher: Option<Pusher>,
}

fn settings(site: &FakeSite, state_dir: &Path) -> PushSettings {
    PushSettings {
        site: site.addr.clone(),
        node: "n01".into(),
        token: Some("n01".into()),
        site_ca_file: None,
        interval: Duration::from_millis(100),
        spool_dir: state_dir.join("spool"),
        spool_max_bytes: 64 << 20,
        spool_max_age: Duration::from_secs(86_400),
        topology: None,
        control_url: None,
        call_timeout: Duration::from_secs(5),
    }
}

impl Rig {
    fn start(site: &FakeSite, tune: impl FnOnce(&mut PushSettings)) -> Rig {
        let state_dir = tempfile::tempdir().unwrap();
        let shared = Shared::new("n01".into(), None, domains(), 50.0, 10_000, 1_000_000);
        let shared = Arc::new(shared.with_site());
        shared.ring.lock().unwrap().set_read(2, false);
        let feeding = Arc::new(AtomicBool::new(true));
        let feeder = {
            let (shared, feeding) = (shared.clone(), feeding.clone());
            std::thread::spawn(move || {
                while feeding.load(Ordering::Relaxed) {
                    let t = shared.clock.now_unix_us();
                    shared.ring.lock().unwrap().push(t, &counters(t));
                    shared.settled_us.store(t, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        let mut s = settings(site, state_dir.path());
        tune(&mut s);
        let stop = Stop::new();
        let (pusher, _) = Pusher::start(s, shared.clone(), stop.clone()).unwrap();
        Rig { state_dir, shared, stop, feeding, feeder: Some(feeder), pusher: Some(pusher) }
    }

    fn site_stat(&self, f: impl Fn(&powerstack_agent::SiteStats) -> u64) -> u64 {
        f(self.shared.site.as_ref().unwrap())
    }

    /// Waits (at most 60 s) until `cond` holds of the pusher's statistics.
    fn wait(&self, what: &str, cond: impl Fn(&powerstack_agent::SiteStats) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cond(self.shared.site.as_ref().unwrap()) {
            assert!(Instant::now() < deadline, "the pusher never got to {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops feeding and the pusher (which seals and tries one last push).
    fn stop(&mut self) {
        self.feeding.store(false, Ordering::Relaxed);
        if let Some(f) = self.feeder.take() {
            f.join().unwrap();
        }
        self.stop.stop();
        if let Some(p) = self.pusher.take() {
            p.join();
        }
    }

    fn metrics(&self) -> String {
        powerstack_agent::http::metrics::render(&self.shared, None, &Tier::Privileged)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop();
    }
}

fn get(a: &std::sync::atomic::AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Every stored batch of the site's one stream: seqs increase, times strictly increase within
/// and across batches, and each row is the node's counters at its time (the unread column 0).
fn check_stream(site: &FakeSite) -> (String, Vec<Vec<u64>>) {
    let s = site.state();
    assert_eq!(s.streams.len(), 1, "{:?}", s.streams.keys());
    let (id, stored) = s.streams.iter().next().unwrap();
    let batches = s.stored_batches(id);
    let (mut seq, mut t) = (0, 0);
    let mut rows = Vec::new();
    for b in &batches {
        assert!(b.seq > seq, "seq {} after {seq}", b.seq);
        seq = b.seq;
        for r in &b.samples {
            assert!(r[0] > t, "time {} after {t}", r[0]);
            t = r[0];
            assert_eq!(r[1..], counters(r[0]), "row at {}", r[0]);
            rows.push(r.clone());
        }
    }
    assert_eq!(rows, stored.samples);
    (id.clone(), rows)
}

#[test]
fn batches_carry_increasing_seqs_and_strictly_increasing_times_after_the_registration() {
    let site = FakeSite::start();
    site.state().token_node = Some("n01".into());
    let mut rig = Rig::start(&site, |_| {});
    site.wait("5 batches", |s| {
        s.stored_batches(s.streams.keys().next().map_or("", |k| k)).len() >= 5
    });
    rig.wait("up", |s| s.up.load(Ordering::Relaxed));
    let metrics = rig.metrics();
    rig.stop();
    let (id, rows) = check_stream(&site);
    let s = site.state();
    let Some(Event::Register { stream, body, status: 200 }) = s.events.first() else {
        panic!("the first request is no registration: {:?}", s.events.first())
    };
    assert_eq!(stream, &id);
    assert_eq!(body.hostname, "n01");
    assert_eq!(body.control_url, None, "no advertise_url, no control_url");
    let read: Vec<bool> = body.domains.iter().map(|d| d.read).collect();
    assert_eq!(read, [true, true, false]);
    let kinds: Vec<(&str, u32)> =
        body.domains.iter().map(|d| (d.domain.as_str(), d.index)).collect();
    assert_eq!(kinds, [("package", 0), ("package", 1), ("gpu", 0)]);
    assert_eq!(body.domains[2].joules_per_tick, 1e-3);
    assert!(body.started_unix_us <= rows[0][0]);
    // Each acknowledged sample counted once; nothing left.
    let site_stats = rig.shared.site.as_ref().unwrap();
    assert_eq!(get(&site_stats.pushed_samples), rows.len() as u64);
    assert_eq!((get(&site_stats.push_errors), get(&site_stats.spool_batches)), (0, 0));
    promtool_accepts(&metrics);
    for family in [
        "powerstack_site_up 1",
        "# TYPE powerstack_site_spool_bytes gauge",
        "powerstack_site_spool_batches ",
        "# TYPE powerstack_site_spool_samples gauge",
        "# TYPE powerstack_site_pushed_samples_total counter",
        "powerstack_site_dropped_samples_total{reason=\"spool_bytes\"} 0",
        "powerstack_site_dropped_samples_total{reason=\"spool_age\"} 0",
        "powerstack_site_dropped_samples_total{reason=\"rejected\"} 0",
        "powerstack_site_push_errors_total 0",
    ] {
        assert!(metrics.contains(family), "{family}:\n{metrics}");
    }
}

/// `promtool check metrics` accepts `text` (where promtool is installed: Debian's `prometheus`).
fn promtool_accepts(text: &str) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("promtool not installed: skipping");
        return;
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool: {said}\n{text}");
}

#[test]
fn without_a_site_the_metrics_have_no_site_families() {
    let shared = Shared::new("n01".into(), None, domains(), 50.0, 10, 1_000_000);
    let text = powerstack_agent::http::metrics::render(&shared, None, &Tier::Privileged);
    assert!(!text.contains("powerstack_site_"), "{text}");
}

#[test]
fn an_outage_is_spooled_and_delivered_after_exactly_once_in_few_batches() {
    let site = FakeSite::start();
    site.state().mode = Mode::Unavailable;
    let mut rig = Rig::start(&site, |_| {});
    // Refused at once, then again after the backoff: rows pile up meanwhile.
    site.wait("2 refusals", |s| s.refused >= 2);
    rig.wait("a spool", |s| get(&s.spool_bytes) > 0 && get(&s.push_errors) >= 2);
    assert!(!rig.shared.site.as_ref().unwrap().up.load(Ordering::Relaxed));
    assert!(rig.metrics().contains("powerstack_site_up 0"));
    site.state().mode = Mode::Up;
    rig.wait("an empty spool", |s| get(&s.spool_batches) == 0 && get(&s.pushed_samples) > 0);
    site.wait("a batch after the outage", |s| s.stored_samples() > 0);
    rig.stop();
    let (_, rows) = check_stream(&site);
    let s = site.state();
    let id = s.streams.keys().next().unwrap().clone();
    let batches = s.stored_batches(&id);
    // The rows of the outage went in one large batch, not one per tick.
    let largest = batches.iter().map(|b| b.samples.len()).max().unwrap();
    assert!(largest >= 5, "{:?}", batches.iter().map(|b| b.samples.len()).collect::<Vec<_>>());
    assert!(batches.len() < rows.len(), "{} batches for {} rows", batches.len(), rows.len());
    // No batch was sent twice, and every sample the pusher took reached the site.
    assert!(s.events.iter().all(|e| !matches!(e, Event::Batch { duplicate: true, .. })));
    assert_eq!(rig.site_stat(|x| get(&x.pushed_samples)), rows.len() as u64);
    assert_eq!(
        rig.site_stat(|x| get(&x.dropped_bytes_samples) + get(&x.dropped_rejected_samples)),
        0
    );
}

#[test]
fn a_batch_whose_answer_was_lost_is_sent_again_with_the_same_seq() {
    let site = FakeSite::start();
    let mut rig = Rig::start(&site, |_| {});
    site.wait("a batch", |s| s.stored_samples() > 0);
    site.state().lose_next_answer = true;
    site.wait("a resend", |s| {
        s.events.iter().any(|e| matches!(e, Event::Batch { duplicate: true, .. }))
    });
    let after = site.state().stored_samples();
    site.wait("more batches", |s| s.stored_samples() > after);
    rig.stop();
    check_stream(&site);
    let s = site.state();
    let batches: Vec<_> = s
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Batch { batch, duplicate, .. } => Some((batch, *duplicate)),
            _ => None,
        })
        .collect();
    let resend = batches.iter().position(|(_, dup)| *dup).unwrap();
    let (again, _) = batches[resend];
    let (first, _) = batches[resend - 1];
    assert_eq!(again, first, "a resend carries the same seq and samples");
    assert_eq!(rig.site_stat(|x| get(&x.push_errors)), 1);
}

#[test]
fn a_refused_batch_is_set_aside_and_the_rest_delivered() {
    let site = FakeSite::start();
    site.state().reject_seq = Some(2);
    let mut rig = Rig::start(&site, |_| {});
    site.wait("batch 3", |s| {
        s.events
            .iter()
            .any(|e| matches!(e, Event::Batch { batch, status: 200, .. } if batch.seq >= 3))
    });
    rig.stop();
    check_stream(&site);
    let s = site.state();
    let refused: Vec<_> =
        s.events.iter().filter(|e| matches!(e, Event::Batch { status: 422, .. })).collect();
    assert_eq!(refused.len(), 1, "refused once, then set aside");
    let dropped = rig.site_stat(|x| get(&x.dropped_rejected_samples));
    assert!(dropped >= 1);
    let aside = std::fs::read_dir(rig.state_dir.path().join("spool").join(REJECTED_DIR)).unwrap();
    assert_eq!(aside.count(), 1);
    assert!(rig.metrics().contains(&format!(
        "powerstack_site_dropped_samples_total{{reason=\"rejected\"}} {dropped}"
    )));
}

#[test]
fn a_site_that_lost_the_stream_gets_it_registered_again() {
    let site = FakeSite::start();
    let mut rig = Rig::start(&site, |_| {});
    site.wait("a batch", |s| s.stored_samples() > 0);
    site.state().streams.clear();
    site.wait("a new registration and a batch", |s| s.stored_samples() > 0);
    rig.stop();
    let s = site.state();
    let registrations =
        s.events.iter().filter(|e| matches!(e, Event::Register { status: 200, .. })).count();
    assert_eq!(registrations, 2);
    assert!(s.events.iter().any(|e| matches!(e, Event::Batch { status: 404, .. })));
    assert_eq!(rig.site_stat(|x| get(&x.dropped_rejected_samples)), 0);
}

#[test]
fn a_stream_the_site_knows_with_other_columns_goes_on_as_a_new_stream() {
    let site = FakeSite::start();
    site.state().conflict_next_register = true;
    let mut rig = Rig::start(&site, |_| {});
    site.wait("a batch", |s| s.stored_samples() > 0);
    rig.stop();
    let (id, _) = check_stream(&site);
    let s = site.state();
    let registrations: Vec<(&str, u16)> = s
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Register { stream, status, .. } => Some((stream.as_str(), *status)),
            _ => None,
        })
        .collect();
    assert_eq!(registrations.len(), 2, "{registrations:?}");
    assert_eq!(registrations[0].1, 409);
    assert_eq!(registrations[1], (id.as_str(), 200));
    assert_ne!(registrations[0].0, id);
    assert!(!rig.state_dir.path().join("spool").join(registrations[0].0).exists());
}

/// The value of the metric line starting with `name`.
fn metric(text: &str, name: &str) -> f64 {
    let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name}"));
    line[name.len()..].trim().parse().unwrap()
}

#[test]
fn a_full_spool_drops_its_oldest_samples_and_counts_them() {
    let site = FakeSite::start();
    site.state().mode = Mode::Unavailable;
    let mut rig = Rig::start(&site, |s| s.spool_max_bytes = 1);
    rig.wait("a drop", |s| get(&s.dropped_bytes_samples) >= 1);
    let text = rig.metrics();
    rig.stop();
    assert!(metric(&text, "powerstack_site_dropped_samples_total{reason=\"spool_bytes\"}") >= 1.0);
    assert_eq!(metric(&text, "powerstack_site_spool_batches"), 0.0);
    assert_eq!(metric(&text, "powerstack_site_dropped_samples_total{reason=\"spool_age\"}"), 0.0);
    assert_eq!(site.state().stored_samples(), 0);
}

#[test]
fn samples_older_than_the_age_bound_are_dropped_and_counted() {
    let site = FakeSite::start();
    site.state().mode = Mode::Unavailable;
    let mut rig = Rig::start(&site, |s| s.spool_max_age = Duration::from_micros(1));
    rig.wait("a drop", |s| get(&s.dropped_age_samples) >= 1);
    rig.stop();
    assert_eq!(rig.site_stat(|x| get(&x.dropped_bytes_samples)), 0);
}

/// A whole agent on a simulated `intel-2s` node under `root`, pushing to `site` from
/// `state_dir`, until `stop`.
fn agent(
    root: &Path,
    state_dir: &Path,
    site: &FakeSite,
    stop: &Stop,
) -> (JoinHandle<()>, Arc<Shared>) {
    let config = AgentConfig {
        rate_hz: 20.0,
        buffer_samples: 10_000,
        socket: String::new(),
        listen: "127.0.0.1:0".into(),
        state_dir: state_dir.to_path_buf(),
        root: root.to_path_buf(),
        site: Some(site.addr.clone()),
        node_name: Some("nid01".into()),
        advertise_url: Some("http://nid01:9464".into()),
        push_interval_ms: 100,
        ..AgentConfig::default()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let stop = stop.clone();
    let handle = std::thread::spawn(move || {
        run(&config, "host01".into(), Some("intel-2s".into()), stop, |ready: &Ready| {
            tx.send(ready.shared.clone()).unwrap();
        })
        .unwrap();
    });
    let shared = rx.recv_timeout(Duration::from_secs(60)).expect("the agent did not start");
    (handle, shared)
}

#[test]
fn a_restarted_agent_delivers_the_previous_streams_spool_first() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    powerstack_sim::SimNode::create(
        root.path(),
        powerstack_sim::Profile::Intel2s,
        powerstack_sim::SimOptions::default(),
    )
    .unwrap();
    let site = FakeSite::start();
    site.state().mode = Mode::Unavailable;

    // The first agent cannot reach the site: its rows stay in the spool when it stops.
    let stop = Stop::new();
    let (first, shared) = agent(root.path(), state.path(), &site, &stop);
    assert!(shared.site.is_some());
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(&shared.site.as_ref().unwrap().push_errors) < 2 {
        assert!(Instant::now() < deadline, "the agent never tried the site");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.stop();
    first.join().unwrap();
    let spool = state.path().join("spool");
    let streams: Vec<String> = std::fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != REJECTED_DIR)
        .collect();
    assert_eq!(streams.len(), 1, "{streams:?}");
    let old = streams[0].clone();
    let saved: powerstack_api::site::StreamRegisterV1 =
        serde_json::from_slice(&std::fs::read(spool.join(&old).join("register.json")).unwrap())
            .unwrap();
    assert_eq!((saved.hostname.as_str(), saved.simulated.as_deref()), ("host01", Some("intel-2s")));
    assert_eq!(saved.domains.len(), shared.domains.len());
    assert!(saved.topology.is_some());
    // The site is told where the agent takes caps (`advertise_url`).
    assert_eq!(saved.control_url.as_deref(), Some("http://nid01:9464"));
    let spooled: usize = std::fs::read_dir(spool.join(&old))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".json")?.parse::<u64>().ok()?;
            let b: powerstack_api::site::BatchV1 =
                serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
            Some(b.samples.len())
        })
        .sum();
    assert!(spooled >= 2, "{spooled} samples spooled");

    // The second agent sends the first one's stream, then its own.
    site.state().mode = Mode::Up;
    let stop = Stop::new();
    let (second, shared) = agent(root.path(), state.path(), &site, &stop);
    site.wait("both streams", |s| {
        s.streams.len() == 2 && s.streams.values().all(|st| !st.samples.is_empty())
    });
    stop.stop();
    second.join().unwrap();
    let s = site.state();
    assert_eq!(s.streams[&old].register, saved, "registered again as saved");
    assert_eq!(s.streams[&old].samples.len(), spooled, "every spooled sample, once");
    let new = s.streams.keys().find(|k| **k != old).unwrap().clone();
    let first_of = |id: &str| {
        s.events
            .iter()
            .position(|e| matches!(e, Event::Batch { stream, status: 200, .. } if stream == id))
            .unwrap()
    };
    assert!(first_of(&old) < first_of(&new), "the earlier stream goes first");
    assert!(!spool.join(&old).exists(), "a delivered stream leaves the spool");
    let register = &s.streams[&new].register;
    assert!(register.started_unix_us > saved.started_unix_us);
    assert!(get(&shared.site.as_ref().unwrap().pushed_samples) >= spooled as u64);
}
