//! The site power bound's control loop against fake BMC-capped nodes (range 200-900 W): a bound
//! set lowers every node first and keeps the caps in force plus the reserve within it from then
//! on, whatever the order of writes; a lowered bound is in force at the next period; a write
//! refused counts the node at its old cap, one whose answer was lost at the higher of the two; a
//! cleared bound raises every node to its maximum; every decision is recorded and queryable; bad
//! input is refused with nothing changed.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestDb;
use common::bound::decision;
use common::fake_control::{Fake, FakeNode};
use common::tasks::{runtime, site, status};
use powerstack_api::site_bound::{AdmitRequestV1, SiteBoundSetV1};
use powerstack_client::site::Site;
use powerstack_client::{Addr, request};
use powerstack_site::bound::BoundConfig;
use powerstack_site::config::BmcEntry;
use powerstack_site::{Running, SiteConfig};

const NODES: [&str; 4] = ["n01", "n02", "n03", "n04"];
const MAX_WATTS: f64 = 900.0;

fn start(db: &TestDb, fake: &Arc<Fake>) -> Running {
    let bmc = NODES
        .iter()
        .map(|n| BmcEntry {
            node: n.to_string(),
            url: format!("http://{n}.bmc"),
            ..BmcEntry::default()
        })
        .collect();
    let config = SiteConfig {
        listen: "127.0.0.1:0".into(),
        database: db.url_text(),
        bmc,
        bound: BoundConfig { period_s: 0.2, ..BoundConfig::default() },
        ..SiteConfig::default()
    };
    powerstack_site::start_with_control(&config, fake.clone()).unwrap()
}

fn fake() -> Arc<Fake> {
    Fake::new(NODES.iter().map(|n| (n.to_string(), FakeNode::on())))
}

fn set(s: &Site, watts: Option<f64>, reserve_watts: Option<f64>) {
    s.set_bound(&SiteBoundSetV1 { watts, reserve_watts, policy: None }).unwrap();
}

/// The sum of the fake nodes' limits in force after each write, from the first write on (a node
/// never written counts at its maximum).
fn sums_after_each_write(fake: &Fake) -> Vec<f64> {
    let mut caps: std::collections::HashMap<String, f64> =
        NODES.iter().map(|n| (n.to_string(), MAX_WATTS)).collect();
    let mut sums = Vec::new();
    for (node, what) in fake.sent.lock().unwrap().iter() {
        let watts = what.trim_start_matches("limit Some(").trim_end_matches(')');
        if let Ok(w) = watts.parse::<f64>() {
            caps.insert(node.clone(), w);
            sums.push(caps.values().sum());
        }
    }
    sums
}

#[test]
fn a_bound_caps_idle_nodes_at_their_minimum_then_a_clear_raises_them_and_all_is_recorded() {
    for db in runtime().block_on(TestDb::both()) {
        let fake = fake();
        let r = start(&db, &fake);
        let s = site(&r);
        assert_eq!(s.bound().unwrap().source, "none");
        set(&s, Some(3000.0), Some(200.0));
        let d = decision(&s, |d| d.bound_watts == Some(3000.0) && d.lowered == 4);
        assert_eq!(d.reserve_watts, 200.0);
        assert!(d.nodes.iter().all(|n| n.cap_watts == 200.0 && n.via == "bmc"), "{d:#?}");
        assert_eq!(d.accounted_watts, 1000.0);
        for n in NODES {
            assert_eq!(fake.node(n).limit, Some(200.0), "{}", db.kind);
        }
        let b = s.bound().unwrap();
        assert_eq!((b.watts, b.source.as_str()), (Some(3000.0), "set"));
        let addr = Addr::parse(&r.ready().addr.to_string()).unwrap();
        let m = request(&addr, "GET", "/metrics", None, None, Duration::from_secs(10)).unwrap();
        for line in [
            "powerstack_site_bound_watts 3000",
            "powerstack_site_bound_reserve_watts 200",
            "powerstack_site_bound_cap_writes_total{outcome=\"confirmed\"} 4",
        ] {
            assert!(m.body.contains(line), "{line} missing:\n{}", m.body);
        }
        if let Some(out) = common::promtool(&m.body) {
            assert!(out.status.success(), "promtool: {}", String::from_utf8_lossy(&out.stderr));
        }
        // Cleared: each node back at its maximum, recorded, and no longer counted.
        set(&s, None, None);
        let d = decision(&s, |d| d.why.starts_with("no bound"));
        assert_eq!(d.raised, 4, "{d:#?}");
        for n in NODES {
            assert_eq!(fake.node(n).limit, Some(MAX_WATTS));
        }
        assert!(s.bound_decisions(100).unwrap().decisions.len() >= 2);
        r.stop().unwrap();
        runtime().block_on(db.drop_database());
    }
}

#[test]
fn once_the_first_lower_phase_is_done_no_write_takes_the_caps_over_the_bound() {
    let db = TestDb::sqlite();
    let fake = fake();
    let r = start(&db, &fake);
    let s = site(&r);
    set(&s, Some(2400.0), Some(0.0));
    decision(&s, |d| d.bound_watts == Some(2400.0));
    // Lowered again and again: every write after the first phase keeps the sum within.
    for watts in [1600.0, 2000.0, 1000.0, 3600.0, 800.0] {
        set(&s, Some(watts), Some(0.0));
        decision(&s, |d| d.bound_watts == Some(watts));
        let sums = sums_after_each_write(&fake);
        let first_phase = NODES.len();
        assert!(sums[first_phase..].iter().all(|s| *s <= 3600.0), "{sums:?}");
        let limits: f64 = NODES.iter().map(|n| fake.node(n).limit.unwrap_or(MAX_WATTS)).sum();
        assert!(limits <= watts.max(800.0) + 1e-6, "{limits} > {watts}");
    }
    r.stop().unwrap();
}

#[test]
fn failed_writes_count_the_node_at_its_old_cap_or_the_higher_when_the_answer_was_lost() {
    let db = TestDb::sqlite();
    let fake = fake();
    fake.set("n01", |n| n.refuse = true);
    fake.set("n02", |n| n.lose = true);
    let r = start(&db, &fake);
    let s = site(&r);
    set(&s, Some(3200.0), Some(0.0));
    let d = decision(&s, |d| d.failed >= 2);
    let node = |name: &str| d.nodes.iter().find(|n| n.node == name).unwrap().clone();
    // Refused: still at its maximum (unknown cap); lost: the higher of old (900) and new.
    assert_eq!(node("n01").outcome, "failed");
    assert_eq!(node("n01").cap_watts, MAX_WATTS);
    assert!(node("n01").error.as_deref().unwrap_or_default().contains("refused"));
    assert_eq!(node("n02").cap_watts, MAX_WATTS);
    // No raise while a lower is not confirmed; what is counted stays within reach.
    assert!(d.accounted_watts <= 2.0 * MAX_WATTS + 2.0 * 200.0 + 1e-6, "{d:#?}");
    r.stop().unwrap();
}

#[test]
fn bad_bounds_are_refused_and_change_nothing_and_admission_answers() {
    let db = TestDb::sqlite();
    let fake = fake();
    let r = start(&db, &fake);
    let s = site(&r);
    for (body, what) in [
        (SiteBoundSetV1 { watts: Some(-5.0), reserve_watts: None, policy: None }, "watts"),
        (
            SiteBoundSetV1 { watts: Some(100.0), reserve_watts: Some(-1.0), policy: None },
            "reserve_watts",
        ),
        (
            SiteBoundSetV1 { watts: Some(100.0), reserve_watts: None, policy: Some("even".into()) },
            "unknown policy",
        ),
    ] {
        let (code, message) = status(s.set_bound(&body).unwrap_err());
        assert_eq!(code, 400, "{message}");
        assert!(message.contains(what), "{message}");
    }
    assert_eq!(s.bound().unwrap().source, "none");
    // No bound: everything fits.
    let a =
        s.admit(&AdmitRequestV1 { nodes: 2, power_watts: Some(1000.0), priority: None }).unwrap();
    assert!(a.fits && a.site_bound_watts.is_none(), "{a:#?}");
    // 4 idle nodes at 200 W minimum; 2400 W leaves a 2-node job 2000 W at most.
    set(&s, Some(2400.0), Some(0.0));
    decision(&s, |d| d.bound_watts == Some(2400.0));
    let ask = |nodes, watts| {
        s.admit(&AdmitRequestV1 { nodes, power_watts: watts, priority: None }).unwrap()
    };
    let a = ask(2, Some(1500.0));
    assert!(a.fits, "{a:#?}");
    assert!(a.bound_watts >= 1500.0 - 1e-6);
    let a = ask(2, Some(1900.0));
    assert!(!a.fits && a.why.contains("does not fit"), "{a:#?}");
    // 20 nodes at 200 W minimum need 4000 W: over the bound.
    let a = ask(20, None);
    assert!(!a.fits && a.why.contains("needs at least"), "{a:#?}");
    let (code, message) = status(
        s.admit(&AdmitRequestV1 { nodes: 0, power_watts: None, priority: None }).unwrap_err(),
    );
    assert_eq!(code, 400, "{message}");
    r.stop().unwrap();
}
