//! Nodes without an agent: the site reads their power through their BMC (mock BMCs behind
//! `[[bmc]] telemetry = true`) and stores it as streams like an agent's, which the node listing,
//! the site's power and job reports read. Expectations come from what was stored, never from
//! wall time; conditions are polled for with generous deadlines.

mod common;

use std::time::{Duration, Instant};

use common::TestDb;
use powerstack_api::job::DataPresence;
use powerstack_api::site::{SiteJobBeginV1, SiteNodeV1};
use powerstack_client::site::Site;
use powerstack_client::{Addr, request};
use powerstack_job::figures::Series;
use powerstack_mock_bmc::{MockBmc, Options, Tree};
use powerstack_site::config::BmcEntry;
use powerstack_site::store::{Store, StreamSpan};
use powerstack_site::{Running, SiteConfig};
use serde_json::json;

/// The dmtf-controls tree's energy counter at the start, J.
const COUNTER_J: f64 = 1_000_000.0;
/// The legacy-power tree's steady power, W.
const LEGACY_W: f64 = 344.0;
const ENERGY_URI: &str = "/redfish/v1/Chassis/1/EnvironmentMetrics";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn entry(node: &str, bmc: &MockBmc) -> BmcEntry {
    BmcEntry { node: node.into(), url: bmc.url(), telemetry: true, ..BmcEntry::default() }
}

fn start(db: &TestDb, bmcs: Vec<BmcEntry>) -> Running {
    let config = SiteConfig {
        listen: "127.0.0.1:0".into(),
        database: db.url_text(),
        bmc: bmcs,
        bmc_telemetry_interval_s: 1,
        ..SiteConfig::default()
    };
    powerstack_site::start(&config).unwrap()
}

fn site(r: &Running) -> Site {
    Site::new(&format!("http://{}", r.ready().addr), None, Duration::from_secs(10)).unwrap()
}

/// Polls `f` until it gives `Some`, for at most two minutes.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn node(s: &Site, name: &str) -> Option<SiteNodeV1> {
    s.nodes().unwrap().nodes.into_iter().find(|n| n.name == name)
}

/// The node once it has power (two samples of its newest stream).
fn with_power(s: &Site, name: &str) -> SiteNodeV1 {
    wait_for(&format!("{name} to have power"), || node(s, name).filter(|n| n.power_watts.is_some()))
}

fn set_counter(bmc: &MockBmc, joules: f64) {
    bmc.edit_tree(|t| {
        t.insert(
            ENERGY_URI,
            json!({"PowerWatts": {"Reading": 374.5}, "EnergyJoules": {"Reading": joules}}),
        );
    });
}

/// This replica's BMC reads with `outcome`.
fn reads(r: &Running, outcome: &str) -> u64 {
    let addr = Addr::parse(&r.ready().addr.to_string()).unwrap();
    let m = request(&addr, "GET", "/metrics", None, None, Duration::from_secs(10)).unwrap();
    let line = format!("powerstack_site_bmc_reads_total{{outcome=\"{outcome}\"}} ");
    m.body
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{line} missing:\n{}", m.body))
}

/// Every stored sample of node `name`'s stream `stream`: `(unix_us, ticks)`.
fn samples(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    name: &str,
    stream: &str,
) -> Vec<(u64, u64)> {
    rt.block_on(async {
        let streams = store.streams_of(name, 0, u64::MAX / 2).await.unwrap();
        let s = streams.iter().find(|s| s.stream == stream).unwrap();
        let rows = store.rows(s, 0, u64::MAX / 2, StreamSpan::Raw).await.unwrap();
        (0..rows.len()).filter_map(|i| rows.row(i).map(|(t, c)| (t, c[0]))).collect()
    })
}

/// A site on SQLite reading two mock BMCs: `c01` with an energy counter (dmtf-controls), `i01`
/// with power only (legacy-power).
fn two_nodes() -> (tokio::runtime::Runtime, MockBmc, MockBmc, TestDb, Running) {
    let rt = runtime();
    let counter = rt.block_on(MockBmc::start(Tree::dmtf_controls(), Options::default())).unwrap();
    let legacy = rt.block_on(MockBmc::start(Tree::legacy_power(), Options::default())).unwrap();
    let db = TestDb::sqlite();
    let r = start(&db, vec![entry("c01", &counter), entry("i01", &legacy)]);
    (rt, counter, legacy, db, r)
}

#[test]
fn a_node_read_through_its_bmc_is_a_node_like_any_other() {
    let (rt, counter, _legacy, db, r) = two_nodes();
    let s = site(&r);
    // Listed with their providers; the BMC's capacity bounds the integrated node.
    let c = with_power(&s, "c01");
    let i = with_power(&s, "i01");
    assert_eq!((c.hostname.as_str(), c.domains.len()), ("c01", 1));
    assert_eq!((c.domains[0].domain.as_str(), c.domains[0].provider.as_str()), ("node", "redfish"));
    assert_eq!(c.domains[0].joules_per_tick, 0.001);
    assert_eq!(i.domains[0].provider, "redfish-integrated");
    assert_eq!(i.domains[0].max_power_watts, Some(800.0));
    // Within a millijoule tick over the two newest samples' interval.
    assert!((i.power_watts.unwrap() - LEGACY_W).abs() < 1.0, "{i:?}");
    // The counter has not moved: 0 W; the site's power is the integrated node's.
    assert_eq!(c.power_watts, Some(0.0));
    let power = s.power().unwrap();
    assert_eq!(power.nodes_fresh, 2, "{power:?}");
    assert!((power.power_watts - LEGACY_W).abs() < 1.0, "{power:?}");

    // A job on both: the counter moves by a known amount inside it, far from its edges.
    let job = SiteJobBeginV1 {
        id: "bmc1".into(),
        nodes: vec!["c01".into(), "i01".into()],
        ..Default::default()
    };
    let began = s.begin_job(&job).unwrap().begin_unix_us;
    wait_for("a sample after the job began", || {
        node(&s, "c01").filter(|n| n.last_unix_us.is_some_and(|t| t > began))
    });
    set_counter(&counter, COUNTER_J + 1234.5);
    wait_for("the counter's step", || node(&s, "c01").filter(|n| n.power_watts > Some(0.0)));
    wait_for("the counter at rest", || node(&s, "c01").filter(|n| n.power_watts == Some(0.0)));
    let ended = s.end_job("bmc1").unwrap().end_unix_us.unwrap();
    let report = wait_for("the job to settle", || {
        let r = s.job_report("bmc1").unwrap();
        r.job.settled.then_some(r)
    });
    // Reports name the nodes read through their BMC, and how, computed and kept alike.
    let bmc: Vec<(&str, Vec<String>)> =
        report.bmc.iter().map(|b| (b.node.as_str(), b.providers.clone())).collect();
    let how = |p: &str| vec![p.to_string()];
    assert_eq!(bmc, [("c01", how("redfish")), ("i01", how("redfish-integrated"))]);
    assert_eq!(s.job_report("bmc1").unwrap().bmc, report.bmc);
    let of = |name: &str| report.report.nodes.iter().find(|n| n.result.hostname == name).unwrap();
    let c = &of("c01").result;
    assert_eq!(c.data_presence, DataPresence::Complete, "{c:?}");
    assert!((c.energy_joules - 1234.5).abs() < 1e-6, "{c:?}");
    // Integrated: the job's edges on the line between stored samples of steady power.
    let i = &of("i01").result;
    assert_eq!(i.data_presence, DataPresence::Complete, "{i:?}");
    let store = rt.block_on(db.store());
    let stream = node(&s, "i01").unwrap().stream;
    let stored = samples(&rt, &store, "i01", &stream);
    let at = |t: u64| -> f64 {
        let k = stored.iter().position(|&(ts, _)| ts >= t).unwrap();
        let ((t0, c0), (t1, c1)) = (stored[k - 1], stored[k]);
        c0 as f64 + (c1 - c0) as f64 * (t - t0) as f64 / (t1 - t0) as f64
    };
    let want = (at(ended) - at(began)) * 0.001;
    assert!((i.energy_joules - want).abs() < 1e-6, "{} vs {want}", i.energy_joules);
    let steady = LEGACY_W * (ended - began) as f64 / 1e6;
    assert!((i.energy_joules - steady).abs() < 0.01, "{} vs {steady}", i.energy_joules);
    assert!(reads(&r, "ok") > 0);
    r.stop().unwrap();
}

#[test]
fn a_failing_bmc_leaves_a_gap_and_a_counter_that_goes_back_starts_a_new_stream() {
    let (rt, counter, legacy, db, r) = two_nodes();
    let s = site(&r);
    let before = with_power(&s, "i01");
    let c_stream = with_power(&s, "c01").stream;
    // The BMC fails: reads are counted as failed and nothing is stored meanwhile.
    let root = "/redfish/v1";
    let saved = legacy.document(root).unwrap();
    legacy.edit_tree(|t| {
        t.remove(root);
    });
    let failed = reads(&r, "failed");
    wait_for("failed reads", || (reads(&r, "failed") >= failed + 2).then_some(()));
    let last = node(&s, "i01").unwrap().last_unix_us;
    let failed = reads(&r, "failed");
    wait_for("more failed reads", || (reads(&r, "failed") >= failed + 3).then_some(()));
    let during = node(&s, "i01").unwrap();
    assert_eq!(during.last_unix_us, last, "a sample was stored while the BMC failed");
    assert_eq!(during.stream, before.stream);
    // It answers again: another stream, whose first reading gives no power.
    legacy.edit_tree(|t| {
        t.insert(root, saved);
    });
    let after = wait_for("a new stream after the gap", || {
        node(&s, "i01").filter(|n| n.stream != before.stream && n.power_watts.is_some())
    });
    assert_eq!(after.domains[0].provider, "redfish-integrated");
    let store = rt.block_on(db.store());
    let old = samples(&rt, &store, "i01", &before.stream);
    assert!(old.iter().all(|&(t, _)| Some(t) <= last), "{old:?} after {last:?}");
    let new = samples(&rt, &store, "i01", &after.stream);
    assert_eq!(new[0].1, 0);
    assert!(new[0].0 > last.unwrap());
    // The counter goes back (a BMC reset): a new stream from the new value.
    set_counter(&counter, 10.0);
    let c = wait_for("the counter's new stream", || {
        node(&s, "c01").filter(|n| n.stream != c_stream && n.power_watts.is_some())
    });
    assert_eq!((c.domains[0].provider.as_str(), c.power_watts), ("redfish", Some(0.0)));
    let old = samples(&rt, &store, "c01", &c_stream);
    assert!(old.windows(2).all(|w| w[0].1 <= w[1].1), "{old:?}");
    r.stop().unwrap();
}

#[test]
fn two_replicas_poll_a_node_one_at_a_time_each_in_its_own_stream() {
    let rt = runtime();
    let legacy = rt.block_on(MockBmc::start(Tree::legacy_power(), Options::default())).unwrap();
    let db = rt.block_on(TestDb::postgres());
    let (a, b) = (start(&db, vec![entry("i01", &legacy)]), start(&db, vec![entry("i01", &legacy)]));
    let s = site(&a);
    let store = rt.block_on(db.store());
    let first = with_power(&s, "i01").stream;
    // Both replicas have had their turns: still one stream, the lease holder's.
    wait_for("several samples", || (samples(&rt, &store, "i01", &first).len() >= 6).then_some(()));
    let streams = rt.block_on(store.streams_of("i01", 0, u64::MAX / 2)).unwrap();
    assert_eq!(streams.len(), 1, "{streams:?}");
    let (owner, stream, _) = rt.block_on(store.bmc_lease("i01")).unwrap().unwrap();
    assert_eq!(stream.as_deref(), Some(first.as_str()));
    // The holder stops: the other replica takes the node over, in a stream of its own.
    let reads_a = reads(&a, "ok");
    let (holder, other) = if reads_a > 0 { (a, b) } else { (b, a) };
    holder.stop().unwrap();
    let s = site(&other);
    let second = wait_for("the other replica's stream", || {
        node(&s, "i01").filter(|n| n.stream != first && n.power_watts.is_some())
    });
    let (owner2, stream2, _) = rt.block_on(store.bmc_lease("i01")).unwrap().unwrap();
    assert_ne!(owner2, owner);
    assert_eq!(stream2.as_deref(), Some(second.stream.as_str()));
    let old = samples(&rt, &store, "i01", &first);
    let new = samples(&rt, &store, "i01", &second.stream);
    assert!(old.last().unwrap().0 < new[0].0, "the streams overlap");
    assert!(reads(&other, "ok") as usize >= new.len());
    other.stop().unwrap();
    drop(store);
    rt.block_on(db.drop_database());
}

#[test]
fn a_lease_is_one_owner_s_until_it_runs_out_or_is_released() {
    let rt = runtime();
    rt.block_on(async {
        for db in TestDb::both().await {
            let store = db.store().await;
            let hold = |owner: &'static str, stream: Option<&'static str>, now: u64, until: u64| {
                let store = store.clone();
                async move { store.hold_bmc_lease("n1", owner, stream, now, until).await.unwrap() }
            };
            assert!(hold("a", None, 1_000, 2_000).await);
            assert!(!hold("b", None, 1_500, 2_500).await, "{}", db.kind);
            assert!(hold("a", Some("s1"), 1_900, 3_000).await);
            let lease = store.bmc_lease("n1").await.unwrap();
            assert_eq!(lease, Some(("a".to_string(), Some("s1".to_string()), 3_000)));
            // Run out: another takes it, and the first can no longer renew it.
            assert!(hold("b", None, 3_001, 4_000).await, "{}", db.kind);
            assert!(!hold("a", Some("s1"), 3_002, 5_000).await, "{}", db.kind);
            // Released: taken at once.
            store.release_bmc_leases("b").await.unwrap();
            assert!(hold("a", None, 3_003, 5_000).await, "{}", db.kind);
            assert_eq!(store.bmc_lease("n1").await.unwrap().map(|l| l.0), Some("a".into()));
            store.db().close().await;
            db.drop_database().await;
        }
    });
}

#[test]
fn a_node_whose_agent_pushes_is_not_read_through_its_bmc() {
    let rt = runtime();
    let legacy = rt.block_on(MockBmc::start(Tree::legacy_power(), Options::default())).unwrap();
    let db = TestDb::sqlite();
    let r = start(&db, vec![entry("a01", &legacy)]);
    let s = site(&r);
    // The BMC stream first: the node has no agent yet.
    let bmc_stream = with_power(&s, "a01").stream;
    // Its agent starts: a stream of its own, samples pushed as they are taken.
    let addr = Addr::parse(&r.ready().addr.to_string()).unwrap();
    let call = |method: &str, path: &str, body: String| {
        let a = request(&addr, method, path, Some(body.as_str()), None, Duration::from_secs(10));
        let a = a.unwrap();
        assert!(a.status < 300, "{method} {path}: {} {}", a.status, a.body);
    };
    let t0 = now_us();
    let agent = "00000000000000a1";
    let reg = serde_json::to_string(&common::registration(t0)).unwrap();
    call("PUT", &format!("/v1/nodes/a01/streams/{agent}"), reg);
    let push = |seq: u64| {
        let b = common::batch(seq, t0, [now_us()]);
        call(
            "POST",
            &format!("/v1/nodes/a01/streams/{agent}/batches"),
            serde_json::to_string(&b).unwrap(),
        );
    };
    push(1);
    let mut seq = 1;
    // While the agent pushes, the BMC is not read for it (counted), and its BMC stream ends.
    wait_for("a reading skipped for the agent", || {
        seq += 1;
        push(seq);
        (reads(&r, "agent") >= 2).then_some(())
    });
    let store = rt.block_on(db.store());
    let before = samples(&rt, &store, "a01", &bmc_stream).len();
    for _ in 0..3 {
        seq += 1;
        push(seq);
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert_eq!(samples(&rt, &store, "a01", &bmc_stream).len(), before, "the BMC stream grew");
    let streams = rt.block_on(store.streams_of("a01", 0, u64::MAX / 2)).unwrap();
    assert_eq!(streams.len(), 2, "{streams:?}");
    r.stop().unwrap();
}

fn now_us() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    since.as_micros() as u64
}
