//! The site power bound's control loop against fake agents (`common/agent_fleet.rs`, range
//! 200-900 W): nodes registered with a control address are capped through `POST /v1/caps`, jobs'
//! priorities and requests shape the caps, the caps in force never exceed the bound less the
//! reserve after the first lower phase (checked after every write, through bound changes, policy
//! changes, a node that goes down and one that refuses), and admission answers by priority.

mod common;

use std::time::{Duration, Instant};

use common::agent_fleet::Fleet;
use common::bound::decision;
use common::tasks::{runtime, site};
use common::{TestDb, registration};
use powerstack_api::site::SiteJobBeginV1;
use powerstack_api::site_bound::{AdmitRequestV1, SiteBoundSetV1};
use powerstack_client::site::Site;
use powerstack_site::bound::BoundConfig;
use powerstack_site::{Running, SiteConfig};

const NODES: [&str; 6] = ["n01", "n02", "n03", "n04", "n05", "n06"];

fn start(db: &TestDb, fleet: &Fleet, policy: &str) -> Running {
    let config = SiteConfig {
        listen: "127.0.0.1:0".into(),
        database: db.url_text(),
        // The fake agents write exactly what they are asked: no rounding to allow for.
        bound: BoundConfig {
            period_s: 0.2,
            policy: policy.into(),
            tolerance_watts: 0.0,
            ..BoundConfig::default()
        },
        ..SiteConfig::default()
    };
    let r = powerstack_site::start(&config).unwrap();
    let s = site(&r);
    let t0 = powerstack_site::clock::now_us();
    for (i, node) in NODES.iter().enumerate() {
        let mut reg = registration(t0);
        reg.control_url = Some(fleet.control_url(node));
        s.register(node, &format!("{:016x}", i + 1), &reg).unwrap();
    }
    r
}

fn fleet() -> Fleet {
    let nodes: Vec<String> = NODES.iter().map(|n| n.to_string()).collect();
    Fleet::start(&nodes, 200.0, 900.0, Duration::from_millis(2))
}

fn begin(s: &Site, id: &str, nodes: &[&str], power_watts: Option<f64>, priority: i32) {
    let job = SiteJobBeginV1 {
        id: id.into(),
        nodes: nodes.iter().map(|n| n.to_string()).collect(),
        power_watts,
        priority: Some(priority),
        ..Default::default()
    };
    s.begin_job(&job).unwrap();
}

fn set(s: &Site, watts: f64, reserve_watts: f64, policy: Option<&str>) {
    let body = SiteBoundSetV1 {
        watts: Some(watts),
        reserve_watts: Some(reserve_watts),
        policy: policy.map(str::to_string),
    };
    s.set_bound(&body).unwrap();
}

fn caps(fleet: &Fleet) -> Vec<f64> {
    NODES.iter().map(|n| fleet.cap(n)).collect()
}

#[test]
fn priorities_and_requests_shape_the_caps_written_through_the_agents() {
    for db in runtime().block_on(TestDb::both()) {
        let fleet = fleet();
        let r = start(&db, &fleet, "priority");
        let s = site(&r);
        begin(&s, "low", &["n01", "n02", "n03"], None, 0);
        begin(&s, "high", &["n04", "n05", "n06"], Some(1200.0), 5);
        // 3900 W for caps: every node's 200 W minimum, then "high" its 1200 W, "low" the rest.
        set(&s, 4000.0, 100.0, None);
        let d = decision(&s, |d| {
            d.bound_watts == Some(4000.0) && d.nodes.iter().all(|n| n.outcome != "failed")
        });
        let want = [900.0, 900.0, 900.0, 400.0, 400.0, 400.0];
        let until = Instant::now() + Duration::from_secs(30);
        while caps(&fleet) != want {
            assert!(Instant::now() < until, "{}: caps {:?}, {d:#?}", db.kind, caps(&fleet));
            std::thread::sleep(Duration::from_millis(20));
        }
        let d = decision(&s, |d| d.accounted_watts > 3999.0);
        assert!(d.nodes.iter().all(|n| n.via == "agent"), "{d:#?}");
        let high = d.jobs.iter().find(|j| j.job == "high").unwrap();
        assert_eq!(
            (high.bound_watts, high.request_watts, high.priority),
            (1200.0, Some(1200.0), 5)
        );
        assert!(d.accounted_watts <= 4000.0 + 1e-6, "{d:#?}");
        // A newcomer of 2 nodes (no idle node: 2 new ones) asking 1000 W: behind both jobs it
        // keeps its 400 W of minimums; ahead of them, it gets what it asks.
        let ask = |priority| {
            let r =
                AdmitRequestV1 { nodes: 2, power_watts: Some(1000.0), priority: Some(priority) };
            s.admit(&r).unwrap()
        };
        let a = ask(-1);
        assert!(!a.fits && (a.bound_watts - 400.0).abs() < 1e-6, "{a:#?}");
        let a = ask(9);
        assert!(a.fits && (a.bound_watts - 1000.0).abs() < 1e-6, "{a:#?}");
        assert!(a.why.contains("2 more counted as new"), "{a:#?}");
        r.stop().unwrap();
        runtime().block_on(db.drop_database());
    }
}

#[test]
fn after_the_first_lower_phase_no_write_takes_the_caps_over_the_bound_whatever_fails() {
    let db = TestDb::sqlite();
    let fleet = fleet();
    let r = start(&db, &fleet, "uniform");
    let s = site(&r);
    begin(&s, "a", &NODES, None, 0);
    set(&s, 4200.0, 0.0, None);
    decision(&s, |d| d.bound_watts == Some(4200.0) && d.lowered == 6);
    let mut old = 4200.0_f64;
    let policies = [
        (3000.0, None),
        (4800.0, Some("dynamic")),
        (2400.0, Some("slurm")),
        (3600.0, Some("uniform")),
    ];
    for (watts, policy) in policies {
        let from = fleet.writes().len();
        set(&s, watts, 0.0, policy);
        decision(&s, |d| d.bound_watts == Some(watts) && d.failed == 0);
        std::thread::sleep(Duration::from_millis(500));
        // The old bound holds until the lowers are done, the new one from then on.
        for w in &fleet.writes()[from..] {
            assert!(w.sum_after_watts <= old.max(watts) + 1e-6, "{w:?} over {old} / {watts}");
        }
        assert!(
            caps(&fleet).iter().sum::<f64>() <= watts + 1e-6,
            "{:?} over {watts}",
            caps(&fleet)
        );
        old = watts;
    }
    // n01 goes down (503: its writes' outcome unknown, then no range read), n02 refuses (409).
    fleet.set("n01", |n| n.down = true);
    fleet.set("n02", |n| n.refuse = true);
    set(&s, 1800.0, 0.0, None);
    let d = decision(&s, |d| d.bound_watts == Some(1800.0) && d.failed >= 1);
    let n01 = d.nodes.iter().find(|n| n.node == "n01").unwrap();
    let n02 = d.nodes.iter().find(|n| n.node == "n02").unwrap();
    // n01 fails its write, or is found down by the range read first (no node here pushes
    // telemetry, so every range is read each period): either way it is counted at 600 W.
    assert!(["failed", "unresponsive"].contains(&n01.outcome.as_str()), "{d:#?}");
    assert_eq!(n01.cap_watts, 600.0, "{d:#?}");
    assert_eq!(n02.outcome, "failed", "{d:#?}");
    assert_eq!(n02.cap_watts, 600.0, "{d:#?}");
    assert!(n02.error.as_deref().unwrap_or_default().contains("refused by the fake agent"));
    // Nothing is raised while a lower is not confirmed, and the next periods count n01 as
    // unresponsive at its last known cap.
    assert!(d.raised == 0, "{d:#?}");
    let d =
        decision(&s, |d| d.nodes.iter().any(|n| n.node == "n01" && n.outcome == "unresponsive"));
    let n01 = d.nodes.iter().find(|n| n.node == "n01").unwrap();
    assert_eq!(n01.cap_watts, 600.0, "{d:#?}");
    let live: f64 = NODES[1..].iter().map(|n| fleet.cap(n)).sum();
    assert!(live + 600.0 <= 1800.0_f64.max(d.accounted_watts) + 1e-6, "{live} {d:#?}");
    // Back: n01 answers and takes its share, n02 takes writes again.
    fleet.set("n01", |n| n.down = false);
    fleet.set("n02", |n| n.refuse = false);
    let until = Instant::now() + Duration::from_secs(30);
    while caps(&fleet).iter().any(|c| (c - 300.0).abs() > 1e-6) {
        assert!(Instant::now() < until, "caps {:?}", caps(&fleet));
        std::thread::sleep(Duration::from_millis(20));
    }
    let writes = fleet.writes();
    let last = writes.last().unwrap();
    assert!(last.sum_after_watts <= 1800.0 + 1e-6, "{last:?}");
    r.stop().unwrap();
}

#[test]
fn two_replicas_on_one_database_run_one_loop_and_the_other_takes_over_when_it_stops() {
    let db = runtime().block_on(TestDb::postgres());
    let fleet = fleet();
    let a = start(&db, &fleet, "uniform");
    // The second replica: same database, its own listener; the nodes are registered already.
    let config = SiteConfig {
        listen: "127.0.0.1:0".into(),
        database: db.url_text(),
        bound: BoundConfig {
            period_s: 0.2,
            policy: "uniform".into(),
            tolerance_watts: 0.0,
            ..BoundConfig::default()
        },
        ..SiteConfig::default()
    };
    let b = powerstack_site::start(&config).unwrap();
    let (sa, sb) = (site(&a), site(&b));
    begin(&sa, "all", &NODES, None, 0);
    set(&sa, 3600.0, 0.0, None);
    decision(&sb, |d| d.bound_watts == Some(3600.0) && d.lowered == 6);
    // Several periods on, each node was written once: one loop ran, not two.
    std::thread::sleep(Duration::from_millis(1000));
    let writes = fleet.writes();
    assert_eq!(writes.len(), 6, "{writes:#?}");
    // The first replica took the loop at its start (a 5 s lease, renewed every period); it stops,
    // ending its lease, and the other takes the loop over and acts on a bound set through it.
    drop(a);
    set(&sb, 2400.0, 0.0, None);
    decision(&sb, |d| d.bound_watts == Some(2400.0) && d.lowered == 6);
    assert!(caps(&fleet).iter().all(|c| (c - 400.0).abs() < 1e-6), "{:?}", caps(&fleet));
    b.stop().unwrap();
    runtime().block_on(db.drop_database());
}
