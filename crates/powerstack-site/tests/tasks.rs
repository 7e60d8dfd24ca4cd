//! Control tasks through a fake controller that records every call: `202` at once, each node's
//! state, the next node started as soon as one ends, reservations, abort, expiry and the bound,
//! a restart with a request in flight (read back, never sent again), a lost answer, and two
//! replicas on one PostgreSQL sending each node operation exactly once.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestDb;
use common::fake_control::{Fake, FakeNode};
use common::tasks::{finished, node, runtime, site, status, transition, wait};
use powerstack_api::site_tasks::{
    PowerCapRequestV1, PowerCapSnapshotRequestV1, TaskKindV1, TaskNodeStateV1, TaskStateV1,
    TransitionOperationV1, TransitionRequestV1,
};
use powerstack_client::site::Site;
use powerstack_site::config::BmcEntry;
use powerstack_site::control::PowerState;
use powerstack_site::store::{NewTask, TaskBounds, TaskParams};
use powerstack_site::{Running, SiteConfig};

fn bmcs(nodes: &[String]) -> Vec<BmcEntry> {
    nodes
        .iter()
        .map(|n| BmcEntry {
            node: n.clone(),
            url: format!("https://{n}-bmc"),
            ..BmcEntry::default()
        })
        .collect()
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}{i:02}")).collect()
}

fn config(db: &TestDb, nodes: &[String]) -> SiteConfig {
    SiteConfig {
        listen: "127.0.0.1:0".into(),
        database: db.url_text(),
        bmc: bmcs(nodes),
        task_poll_ms: 20,
        ..SiteConfig::default()
    }
}

fn start(config: &SiteConfig, fake: &Arc<Fake>) -> Running {
    powerstack_site::start_with_control(config, fake.clone()).unwrap()
}

/// The service's metrics once they hold every one of `lines` (read for at most a minute).
fn metrics_with(r: &Running, lines: &[&str]) -> String {
    let addr = powerstack_client::Addr::parse(&r.ready().addr.to_string()).unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let text = powerstack_client::request(
            &addr,
            "GET",
            "/metrics",
            None,
            None,
            Duration::from_secs(10),
        )
        .unwrap()
        .body;
        if lines.iter().all(|l| text.contains(l)) {
            return text;
        }
        assert!(Instant::now() < until, "{lines:?} not all in:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_transition_answers_at_once_and_each_node_ends_in_what_its_bmc_did() {
    for db in runtime().block_on(TestDb::both()) {
        let nodes = names("n", 4);
        let fake = Fake::new(nodes.iter().map(|n| (n.clone(), FakeNode::on())));
        fake.set("n01", |f| f.power = PowerState::Off);
        fake.set("n03", |f| f.stubborn = true);
        fake.set("n04", |f| f.refuse = true);
        let r = start(&config(&db, &nodes), &fake);
        let s = site(&r);
        let t =
            s.transition(&transition(TransitionOperationV1::Off, "n[01-04]", 1, false)).unwrap();
        assert_eq!(
            (t.kind, t.counts.total, t.params.deadline_s),
            (TaskKindV1::Transition, 4, Some(1))
        );
        let t = finished(TaskKindV1::Transition, &s, &t.id);
        assert_eq!(t.state, TaskStateV1::Failed, "{}: {t:#?}", db.kind);
        let n1 = node(&t, "n01");
        assert_eq!(n1.state, TaskNodeStateV1::Succeeded);
        assert!(n1.reason.as_deref().unwrap().contains("already off"), "{n1:?}");
        assert!(fake.sent_to("n01").is_empty() && n1.sent_unix_us.is_none());
        let n2 = node(&t, "n02");
        assert_eq!((n2.state, n2.attempts), (TaskNodeStateV1::Succeeded, 1));
        assert_eq!(fake.sent_to("n02"), ["GracefulShutdown"]);
        let n3 = node(&t, "n03");
        assert_eq!(n3.state, TaskNodeStateV1::Failed);
        assert!(
            n3.reason
                .as_deref()
                .unwrap()
                .contains("not off within the 1 s deadline; the node is on"),
            "{n3:?}"
        );
        let n4 = node(&t, "n04");
        assert_eq!(n4.state, TaskNodeStateV1::Failed);
        assert!(n4.reason.as_deref().unwrap().contains("ResetType refused"), "{n4:?}");
        assert_eq!((t.counts.succeeded, t.counts.failed), (2, 2));
        // Escalated: the graceful request, then the forced one, once each.
        let t = s.transition(&transition(TransitionOperationV1::Off, "n03", 1, true)).unwrap();
        let t = finished(TaskKindV1::Transition, &s, &t.id);
        assert_eq!(t.state, TaskStateV1::Succeeded, "{t:#?}");
        assert_eq!(node(&t, "n03").attempts, 2);
        assert_eq!(fake.sent_to("n03"), ["GracefulShutdown", "GracefulShutdown", "ForceOff"]);
        // Unknown nodes, bad hostlists and duplicates are 400s naming them; nothing is created.
        let (code, m) = status(
            s.transition(&transition(TransitionOperationV1::On, "n[04-05]", 5, false)).unwrap_err(),
        );
        assert!(code == 400 && m.contains("node n05 has no BMC"), "{m}");
        let mut twice = transition(TransitionOperationV1::On, "n01", 5, false);
        twice.nodes.push("n[01-02]".into());
        let (code, m) = status(s.transition(&twice).unwrap_err());
        assert!(code == 400 && m.contains("node n01 is named twice"), "{m}");
        let (code, m) = status(
            s.transition(&transition(TransitionOperationV1::On, "n[02-", 5, false)).unwrap_err(),
        );
        assert!(code == 400 && m.contains("nodes:"), "{m}");
        assert_eq!(s.tasks(TaskKindV1::Transition).unwrap().tasks.len(), 2);
        // Metrics: tasks by state, node operations by outcome (counted just after the node's
        // outcome is committed, so read until they are there).
        let lines = [
            "powerstack_site_tasks{kind=\"transition\",state=\"failed\"} 1",
            "powerstack_site_task_node_operations_total{outcome=\"succeeded\"} 3",
            "powerstack_site_task_node_operations_total{outcome=\"failed\"} 2",
        ];
        let text = metrics_with(&r, &lines);
        if let Some(out) = common::promtool(&text) {
            assert!(out.status.success(), "promtool: {}", String::from_utf8_lossy(&out.stderr));
        }
        let doc: serde_json::Value = s.call("GET", "/v1/openapi.json", None::<&()>).unwrap();
        for p in ["/v1/transitions/{id}", "/v1/power-cap/snapshot", "/v1/power-cap/{id}"] {
            assert!(doc["paths"].get(p).is_some(), "{p} missing from the OpenAPI document");
        }
        let required = &doc["components"]["schemas"]["PowerCapRequestV1"]["required"];
        assert!(required.as_array().unwrap().iter().any(|k| k == "limit_watts"), "{required}");
        r.stop().unwrap();
        runtime().block_on(db.drop_database());
    }
}

#[test]
fn a_node_in_a_running_transition_is_reserved_until_it_is_done_and_abort_stops_what_is_pending() {
    for db in runtime().block_on(TestDb::both()) {
        let nodes = names("n", 2);
        let fake = Fake::new(
            nodes.iter().map(|n| (n.clone(), FakeNode { block: true, ..FakeNode::off() })),
        );
        let r = start(&SiteConfig { task_concurrency: 1, ..config(&db, &nodes) }, &fake);
        let s = site(&r);
        let t =
            s.transition(&transition(TransitionOperationV1::On, "n[01-02]", 30, false)).unwrap();
        // One node at a time: one is sent (and blocked), the other waits.
        let seen = wait(&s, TaskKindV1::Transition, &t.id, |t| {
            t.nodes.iter().any(|n| n.sent_unix_us.is_some())
        });
        let busy = seen.nodes.iter().find(|n| n.sent_unix_us.is_some()).unwrap().node.clone();
        let waiting = seen.nodes.iter().find(|n| n.node != busy).unwrap().node.clone();
        assert_eq!(node(&seen, &waiting).state, TaskNodeStateV1::Pending);
        for n in [&busy, &waiting] {
            let cap = PowerCapRequestV1 { nodes: vec![n.clone()], limit_watts: Some(500.0) };
            let (code, m) = status(s.power_cap(&cap).unwrap_err());
            assert!(
                code == 409 && m.contains(&format!("node {n} is reserved by transition {}", t.id)),
                "{m}"
            );
        }
        let (code, _) = status(
            s.transition(&transition(TransitionOperationV1::Off, &waiting, 5, false)).unwrap_err(),
        );
        assert_eq!(code, 409);
        // Abort: the pending node is aborted at once; the one in flight finishes.
        let a = s.abort_task(TaskKindV1::Transition, &t.id).unwrap();
        assert!(a.abort_requested);
        assert_eq!(node(&a, &waiting).state, TaskNodeStateV1::Aborted);
        assert_eq!(node(&a, &busy).state, TaskNodeStateV1::InProgress);
        fake.release();
        let t = finished(TaskKindV1::Transition, &s, &t.id);
        assert_eq!(t.state, TaskStateV1::Aborted, "{t:#?}");
        assert_eq!(node(&t, &busy).state, TaskNodeStateV1::Succeeded);
        assert!(fake.sent_to(&waiting).is_empty());
        // Done: the nodes are free again.
        let cap = PowerCapRequestV1 { nodes: vec!["n[01-02]".into()], limit_watts: Some(500.0) };
        let c = s.power_cap(&cap).unwrap();
        assert_eq!(finished(TaskKindV1::PowerCap, &s, &c.id).state, TaskStateV1::Succeeded);
        r.stop().unwrap();
        runtime().block_on(db.drop_database());
    }
}

#[test]
fn a_node_operation_that_ends_lets_the_next_pending_one_start_without_waiting_for_a_poll() {
    let db = TestDb::sqlite();
    let nodes = names("n", 3);
    let fake = Fake::new(nodes.iter().map(|n| (n.clone(), FakeNode::on())));
    // One at a time, and neither a poll nor a lease renewal within the minute `wait` allows:
    // only a node's end can start the next (before, the runner waited a poll between them).
    let slow = SiteConfig {
        task_concurrency: 1,
        task_poll_ms: 60_000,
        task_lease_s: 3600,
        ..config(&db, &nodes)
    };
    let r = start(&slow, &fake);
    let s = site(&r);
    let snap = PowerCapSnapshotRequestV1 { nodes: vec!["n[01-03]".into()] };
    let t = s.power_cap_snapshot(&snap).unwrap();
    let t = finished(TaskKindV1::PowerCapSnapshot, &s, &t.id);
    assert_eq!((t.state, t.counts.succeeded), (TaskStateV1::Succeeded, 3), "{t:#?}");
    r.stop().unwrap();
}

#[test]
fn a_node_begun_but_not_yet_sent_when_its_task_is_aborted_is_never_sent() {
    let db = TestDb::sqlite();
    let nodes = names("n", 1);
    let fake = Fake::new([("n01".to_string(), FakeNode { hold_reads: true, ..FakeNode::off() })]);
    let r = start(&config(&db, &nodes), &fake);
    let s = site(&r);
    let t = s.transition(&transition(TransitionOperationV1::On, "n01", 5, false)).unwrap();
    // Claimed, its power state being read: not pending any more, not sent yet.
    wait(&s, TaskKindV1::Transition, &t.id, |t| t.nodes[0].state == TaskNodeStateV1::InProgress);
    let a = s.abort_task(TaskKindV1::Transition, &t.id).unwrap();
    assert_eq!(a.nodes[0].state, TaskNodeStateV1::InProgress);
    fake.release();
    let t = finished(TaskKindV1::Transition, &s, &t.id);
    assert_eq!(t.state, TaskStateV1::Aborted);
    assert_eq!(t.nodes[0].reason.as_deref(), Some("aborted before it began: nothing was sent"));
    assert!(fake.sent_to("n01").is_empty() && t.nodes[0].sent_unix_us.is_none());
    r.stop().unwrap();
}

/// Waits (at most 30 s) until each node's BMC has received as many requests as given.
fn arrived(fake: &Fake, want: &[(&str, usize)]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !want.iter().all(|(n, k)| fake.sent_to(n).len() >= *k) {
        assert!(std::time::Instant::now() < deadline, "requests never arrived: {want:?}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn a_restarted_service_reads_what_was_sent_back_and_never_sends_it_again() {
    for db in runtime().block_on(TestDb::both()) {
        let nodes = names("n", 2);
        let fake = Fake::new(
            nodes.iter().map(|n| (n.clone(), FakeNode { block: true, ..FakeNode::off() })),
        );
        let c = config(&db, &nodes);
        let r = start(&c, &fake);
        let s = site(&r);
        let t = s.transition(&transition(TransitionOperationV1::On, "n[01-02]", 1, false)).unwrap();
        wait(&s, TaskKindV1::Transition, &t.id, |t| {
            t.nodes.iter().all(|n| n.sent_unix_us.is_some())
        });
        // Marked sent, and reached the BMCs (a loaded machine can stop the service between the
        // mark and the request: seen once).
        arrived(&fake, &[("n01", 1), ("n02", 1)]);
        // The service stops with both requests in flight; the BMC of n01 did it, n02's did not.
        drop(r);
        fake.set("n01", |f| f.power = PowerState::On);
        let r = start(&c, &fake);
        let s = site(&r);
        let t = finished(TaskKindV1::Transition, &s, &t.id);
        let (n1, n2) = (node(&t, "n01"), node(&t, "n02"));
        assert_eq!(
            (n1.state, n1.reason.as_deref()),
            (TaskNodeStateV1::Succeeded, Some("confirmed after restart")),
            "{}",
            db.kind
        );
        assert_eq!(n2.state, TaskNodeStateV1::Failed);
        assert_eq!(
            n2.reason.as_deref(),
            Some("the service stopped after sending; the node is now off")
        );
        assert_eq!(
            (fake.sent_to("n01"), fake.sent_to("n02")),
            (vec!["On".to_string()], vec!["On".to_string()])
        );
        // A power limit in flight the same way: read back, not written again.
        fake.set("n01", |f| f.block = true);
        let cap = s
            .power_cap(&PowerCapRequestV1 { nodes: vec!["n01".into()], limit_watts: Some(400.0) })
            .unwrap();
        wait(&s, TaskKindV1::PowerCap, &cap.id, |t| t.nodes[0].sent_unix_us.is_some());
        arrived(&fake, &[("n01", 2)]);
        drop(r);
        fake.set("n01", |f| f.limit = Some(400.0));
        let r = start(&c, &fake);
        let s = site(&r);
        let done = finished(TaskKindV1::PowerCap, &s, &cap.id);
        assert_eq!(done.nodes[0].reason.as_deref(), Some("confirmed after restart"), "{done:#?}");
        assert_eq!(done.nodes[0].result.as_ref().unwrap().limit_watts, Some(400.0));
        assert_eq!(fake.sent_to("n01").len(), 2);
        r.stop().unwrap();
        runtime().block_on(db.drop_database());
    }
}

#[test]
fn a_lost_answer_is_settled_by_reading_the_node_and_limits_are_checked_against_their_range() {
    let db = TestDb::sqlite();
    let nodes = names("n", 3);
    let fake =
        Fake::new(nodes.iter().map(|n| (n.clone(), FakeNode { lose: true, ..FakeNode::off() })));
    let r = start(&config(&db, &nodes), &fake);
    let s = site(&r);
    let t = s.transition(&transition(TransitionOperationV1::On, "n01", 5, false)).unwrap();
    let t = finished(TaskKindV1::Transition, &s, &t.id);
    assert_eq!(t.nodes[0].state, TaskNodeStateV1::Succeeded);
    assert!(t.nodes[0].reason.as_deref().unwrap().contains("the answer was lost; the node is on"));
    assert_eq!(fake.sent_to("n01"), ["On"]);
    let cap = |w: Option<f64>| PowerCapRequestV1 { nodes: vec!["n[01-02]".into()], limit_watts: w };
    let c = finished(TaskKindV1::PowerCap, &s, &s.power_cap(&cap(Some(450.0))).unwrap().id);
    assert_eq!(c.state, TaskStateV1::Succeeded, "{c:#?}");
    assert!(
        c.nodes[0].reason.as_deref().unwrap().contains("the answer was lost: the limit is 450 W")
    );
    // Outside the node's range: refused before anything is sent.
    let c = finished(TaskKindV1::PowerCap, &s, &s.power_cap(&cap(Some(100.0))).unwrap().id);
    assert_eq!(c.state, TaskStateV1::Failed);
    assert!(
        c.nodes[0].reason.as_deref().unwrap().contains("outside the node's range, 200 W to 900 W")
    );
    assert_eq!(fake.sent_to("n02"), ["limit Some(450.0)"]);
    // Capping off, then a snapshot of limits and ranges.
    let c = finished(TaskKindV1::PowerCap, &s, &s.power_cap(&cap(None)).unwrap().id);
    assert_eq!(c.state, TaskStateV1::Succeeded);
    let snap = s
        .power_cap_snapshot(&PowerCapSnapshotRequestV1 { nodes: vec!["n[01-03]".into()] })
        .unwrap();
    let snap = finished(TaskKindV1::PowerCap, &s, &snap.id);
    assert_eq!((snap.kind, snap.state), (TaskKindV1::PowerCapSnapshot, TaskStateV1::Succeeded));
    let limits = &snap.nodes[2].result.as_ref().unwrap().limits;
    assert_eq!(
        (limits.len(), limits[0].min_watts, limits[1].max_watts),
        (2, Some(200.0), Some(560.0))
    );
    assert_eq!(s.tasks(TaskKindV1::PowerCap).unwrap().tasks.len(), 4);
    // A transition id is not a power-cap task.
    assert_eq!(s.task(TaskKindV1::PowerCap, &t.id).unwrap_err().status(), Some(404));
    r.stop().unwrap();
}

#[test]
fn a_bmc_that_never_answers_is_read_instead_and_the_node_fails_at_its_deadline() {
    let db = TestDb::sqlite();
    let nodes = names("n", 1);
    // Its request is recorded and then never answered (nothing releases it).
    let fake = Fake::new([("n01".to_string(), FakeNode { block: true, ..FakeNode::off() })]);
    let r = start(&SiteConfig { task_call_timeout_s: 1, ..config(&db, &nodes) }, &fake);
    let s = site(&r);
    let t = s.transition(&transition(TransitionOperationV1::On, "n01", 1, false)).unwrap();
    let t = finished(TaskKindV1::Transition, &s, &t.id);
    assert_eq!(t.nodes[0].state, TaskNodeStateV1::Failed);
    let why = t.nodes[0].reason.as_deref().unwrap();
    assert!(why.contains("not on within the 1 s deadline; the node is off"), "{why}");
    assert_eq!(fake.sent_to("n01"), ["On"]);
    r.stop().unwrap();
}

#[test]
fn a_replica_that_died_after_sending_is_taken_over_once_its_lease_ends_without_sending_again() {
    let rt = runtime();
    for db in rt.block_on(TestDb::both()) {
        let nodes = names("n", 1);
        let fake = Fake::new([("n01".to_string(), FakeNode::on())]);
        // A replica claimed the node, marked its request sent, and died (no lease released).
        let store = rt.block_on(db.store());
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros()
                as u64;
        let task = NewTask {
            id: "00000000-0000-4000-8000-0000000000aa".into(),
            kind: TaskKindV1::Transition,
            params: TaskParams {
                operation: Some(TransitionOperationV1::Off),
                deadline_s: Some(30),
                escalate: Some(false),
                limit_watts: None,
            },
            nodes: nodes.clone(),
            requested_by: "admin".into(),
        };
        let bounds = TaskBounds { max_tasks: 10, expiry_us: 86_400_000_000 };
        rt.block_on(store.create_task(&task, now, bounds)).unwrap();
        let claimed =
            rt.block_on(store.claim_task_nodes("dead", 10, now, now + 1_000_000)).unwrap();
        assert_eq!(claimed.len(), 1);
        let gate = rt.block_on(store.mark_sent(&claimed[0], "dead", 1, now)).unwrap();
        assert_eq!(gate, powerstack_site::store::Gate::Send);
        rt.block_on(store.db().close());
        // The BMC did it; a new replica takes the node over once the dead one's lease ends.
        fake.set("n01", |f| f.power = PowerState::Off);
        let r = start(&config(&db, &nodes), &fake);
        let s = site(&r);
        let t = finished(TaskKindV1::Transition, &s, &task.id);
        assert_eq!(t.state, TaskStateV1::Succeeded, "{}: {t:#?}", db.kind);
        assert_eq!(t.nodes[0].reason.as_deref(), Some("confirmed after restart"));
        assert!(fake.sent_to("n01").is_empty());
        r.stop().unwrap();
        rt.block_on(db.drop_database());
    }
}

#[test]
fn tasks_expire_and_no_more_are_kept_than_the_bound() {
    let rt = runtime();
    for db in rt.block_on(TestDb::both()) {
        let store = rt.block_on(db.store());
        let bounds = TaskBounds { max_tasks: 2, expiry_us: 10_000_000 };
        let task = |i: u32| NewTask {
            id: format!("00000000-0000-4000-8000-00000000000{i}"),
            kind: TaskKindV1::PowerCapSnapshot,
            params: TaskParams::default(),
            nodes: vec![format!("n{i}")],
            requested_by: "admin".into(),
        };
        let t0 = 1_000_000_000;
        rt.block_on(store.create_task(&task(1), t0, bounds)).unwrap();
        rt.block_on(store.create_task(&task(2), t0 + 1, bounds)).unwrap();
        let e = rt.block_on(store.create_task(&task(3), t0 + 2, bounds)).unwrap_err();
        assert!(e.status() == 429 && e.to_string().contains("tasks_max"), "{e}");
        // Past their expiry: the running ones are aborted, then all deleted; room again.
        let later = t0 + 11_000_000;
        rt.block_on(store.create_task(&task(3), later, bounds)).unwrap();
        let kinds = [TaskKindV1::PowerCapSnapshot];
        assert_eq!(rt.block_on(store.task(&task(1).id, &kinds)).unwrap_err().status(), 404);
        let kept = rt.block_on(store.tasks(&kinds, 10)).unwrap();
        assert_eq!(kept.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [task(3).id.as_str()]);
        rt.block_on(store.db().close());
        rt.block_on(db.drop_database());
    }
}

#[test]
fn two_replicas_on_one_postgres_send_each_node_operation_exactly_once() {
    let rt = runtime();
    let db = rt.block_on(TestDb::postgres());
    let nodes = names("n", 300);
    let fake = Fake::new(nodes.iter().map(|n| (n.clone(), FakeNode::off())));
    // One node's request waits, so that the task is still running when the snapshot is asked.
    fake.set("n300", |f| f.block = true);
    let c = SiteConfig { task_concurrency: 16, ..config(&db, &nodes) };
    let (a, b) = (start(&c, &fake), start(&c, &fake));
    let t = site(&a).transition(&transition(TransitionOperationV1::On, "n[001-300]", 30, false));
    // The hostlist pads to three digits: name the nodes as configured instead.
    assert_eq!(t.unwrap_err().status(), Some(400));
    let req = TransitionRequestV1 {
        nodes: nodes.clone(),
        ..transition(TransitionOperationV1::On, "x", 30, false)
    };
    let t = site(&a).transition(&req).unwrap();
    let snap =
        site(&b).power_cap_snapshot(&PowerCapSnapshotRequestV1 { nodes: vec!["n300".into()] });
    assert_eq!(snap.unwrap_err().status(), Some(409), "the transition holds the nodes");
    fake.release();
    let t = finished(TaskKindV1::Transition, &site(&b), &t.id);
    assert_eq!((t.state, t.counts.succeeded), (TaskStateV1::Succeeded, 300), "{t:#?}");
    let sent = fake.sent.lock().unwrap().clone();
    let once: HashSet<&String> = sent.iter().map(|(n, _)| n).collect();
    assert_eq!((sent.len(), once.len()), (300, 300));
    drop((a, b));
    rt.block_on(db.drop_database());
}

#[test]
fn only_an_administrator_may_start_read_or_abort_control_tasks() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    let (admin, sched) = ("admin-token-0123456789", "scheduler-token-0123456789");
    let text = format!(
        "[[token]]\ntoken = \"{admin}\"\nrole = \"admin\"\n\n[[token]]\ntoken = \"{sched}\"\nrole = \"scheduler\"\n"
    );
    std::fs::write(&tokens, text).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let db = TestDb::sqlite();
    let nodes = names("n", 1);
    let fake = Fake::new([("n01".to_string(), FakeNode::on())]);
    let r = start(&SiteConfig { tokens_file: Some(tokens), ..config(&db, &nodes) }, &fake);
    let as_ = |token: &str| {
        let url = format!("http://{}", r.ready().addr);
        Site::new(&url, Some(token.to_string()), Duration::from_secs(10)).unwrap()
    };
    let snap = PowerCapSnapshotRequestV1 { nodes: vec!["n01".into()] };
    let (code, m) = status(as_(sched).power_cap_snapshot(&snap).unwrap_err());
    assert!(code == 403 && m.contains("for administrators"), "{m}");
    let t = as_(admin).power_cap_snapshot(&snap).unwrap();
    assert_eq!(status(as_(sched).task(TaskKindV1::PowerCap, &t.id).unwrap_err()).0, 403);
    assert_eq!(status(as_(sched).tasks(TaskKindV1::Transition).unwrap_err()).0, 403);
    assert_eq!(status(as_(sched).abort_task(TaskKindV1::PowerCap, &t.id).unwrap_err()).0, 403);
    assert_eq!(finished(TaskKindV1::PowerCap, &as_(admin), &t.id).state, TaskStateV1::Succeeded);
    r.stop().unwrap();
}
