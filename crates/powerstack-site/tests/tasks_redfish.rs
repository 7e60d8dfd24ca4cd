//! Control tasks through the site's own Redfish controller against mock BMCs, with the faults
//! real BMCs have: 503s with `Retry-After` (the reset waited for and done once), a BMC that never
//! answers (the node fails naming it, nothing sent) and one whose answers to writes are lost
//! (settled by reading, sent once), a stale ETag (412, read again, set), a session that expires
//! mid-task (a new login), and a graceful shutdown that never happens, escalated or not.

mod common;

use common::TestDb;
use common::tasks::{finished, node, runtime, site, transition};
use powerstack_api::site_tasks::{
    PowerCapRequestV1, TaskKindV1, TaskNodeStateV1, TaskStateV1, TransitionOperationV1,
};
use powerstack_mock_bmc::{Background, Hang, Options, RESET_SUFFIX, Recorded, SESSIONS, Tree};
use powerstack_site::config::BmcEntry;
use powerstack_site::{Running, SiteConfig};
use serde_json::json;

fn serve(tree: Tree, options: Options) -> Background {
    Background::start(tree, options).unwrap()
}

/// Quick power transitions: one read of each intermediate state.
fn quick() -> Options {
    Options { transition_reads: 1, ..Options::default() }
}

fn entry(node: &str, served: &Background) -> BmcEntry {
    BmcEntry { node: node.into(), url: served.url(), ..BmcEntry::default() }
}

fn config(db: &TestDb, bmc: Vec<BmcEntry>) -> SiteConfig {
    SiteConfig {
        listen: "127.0.0.1:0".into(),
        database: db.url_text(),
        bmc,
        task_poll_ms: 20,
        ..SiteConfig::default()
    }
}

fn start(config: &SiteConfig) -> Running {
    powerstack_site::start(config).unwrap()
}

/// The requests `method` to paths ending with `suffix` the BMC answered with a success.
fn done(served: &Background, method: &str, suffix: &str) -> Vec<Recorded> {
    let all = served.recorded_matching(method, suffix);
    all.into_iter().filter(|r| r.status.is_some_and(|s| (200..300).contains(&s))).collect()
}

fn reset_types(recorded: &[Recorded]) -> Vec<String> {
    recorded.iter().map(|r| r.body["ResetType"].as_str().unwrap_or_default().to_string()).collect()
}

fn power_state(served: &Background, system: &str) -> String {
    let doc = served.document(&format!("/redfish/v1/Systems/{system}")).unwrap();
    doc["PowerState"].as_str().unwrap().to_string()
}

fn reason(t: &powerstack_api::site_tasks::TaskV1, n: &str) -> String {
    node(t, n).reason.clone().unwrap_or_default()
}

const DMTF_LIMIT: &str = "/redfish/v1/Chassis/1/Controls/PowerLimit";

#[test]
fn a_bmc_answering_503_with_retry_after_is_waited_for_and_each_change_is_made_once() {
    for db in runtime().block_on(TestDb::both()) {
        let n01 = serve(Tree::dmtf_controls(), quick());
        // Reads refused twice, the reset once and the PATCH once: all unprocessed, retried.
        n01.faults().set_unavailable(2, 1);
        n01.faults().set_unavailable_writes(1, 1);
        let r = start(&config(&db, vec![entry("n01", &n01)]));
        let s = site(&r);
        let t = s.transition(&transition(TransitionOperationV1::ForceOff, "n01", 60, false));
        let t = finished(TaskKindV1::Transition, &s, &t.unwrap().id);
        assert_eq!(t.state, TaskStateV1::Succeeded, "{}: {t:#?}", db.kind);
        assert!(reason(&t, "n01").contains("ForceOff: confirmed off"), "{t:#?}");
        let posts = n01.recorded_matching("POST", RESET_SUFFIX);
        let answered: Vec<Option<u16>> = posts.iter().map(|r| r.status).collect();
        assert_eq!(answered, [Some(503), Some(204)], "refused once, then done once");
        assert_eq!(power_state(&n01, "1"), "Off");
        n01.faults().set_unavailable_writes(1, 1);
        let cap = PowerCapRequestV1 { nodes: vec!["n01".into()], limit_watts: Some(400.0) };
        let c = finished(TaskKindV1::PowerCap, &s, &s.power_cap(&cap).unwrap().id);
        assert_eq!(c.state, TaskStateV1::Succeeded, "{c:#?}");
        let patches = n01.recorded_matching("PATCH", DMTF_LIMIT);
        let answered: Vec<Option<u16>> = patches.iter().map(|r| r.status).collect();
        assert_eq!(answered, [Some(503), Some(200)]);
        assert_eq!(n01.document(DMTF_LIMIT).unwrap()["SetPoint"], 400);
        r.stop().unwrap();
        runtime().block_on(db.drop_database());
    }
}

#[test]
fn a_bmc_that_never_answers_fails_its_node_naming_it_and_a_lost_answer_is_read_back() {
    let db = TestDb::sqlite();
    let silent = serve(Tree::dmtf_controls(), quick());
    silent.faults().set_hang(Hang::Everything);
    // Does what it is asked and never says so.
    let mute = serve(Tree::dmtf_controls(), quick());
    mute.faults().set_hang(Hang::Writes);
    let c = SiteConfig {
        task_call_timeout_s: 2,
        ..config(&db, vec![entry("n01", &silent), entry("n02", &mute)])
    };
    let r = start(&c);
    let s = site(&r);
    let t = s.transition(&transition(TransitionOperationV1::ForceOff, "n[01-02]", 60, false));
    let t = finished(TaskKindV1::Transition, &s, &t.unwrap().id);
    assert_eq!(node(&t, "n01").state, TaskNodeStateV1::Failed, "{t:#?}");
    let why = reason(&t, "n01");
    assert!(
        why.contains("reading the power state: no answer within 2 s")
            && why.contains("nothing was sent")
            && !why.contains("lost"),
        "{why}"
    );
    assert!(silent.recorded().is_empty(), "nothing sent to n01");
    assert_eq!(node(&t, "n02").state, TaskNodeStateV1::Succeeded, "{t:#?}");
    assert!(reason(&t, "n02").contains("the answer was lost; the node is off"), "{t:#?}");
    assert_eq!(reset_types(&mute.recorded_matching("POST", RESET_SUFFIX)), ["ForceOff"]);
    let cap = PowerCapRequestV1 { nodes: vec!["n01".into()], limit_watts: Some(400.0) };
    let c = finished(TaskKindV1::PowerCap, &s, &s.power_cap(&cap).unwrap().id);
    let why = reason(&c, "n01");
    assert!(why.contains("reading the limits: no answer within 2 s"), "{why}");
    assert!(silent.recorded().is_empty(), "nothing sent to n01");
    r.stop().unwrap();
}

#[test]
fn a_stale_etag_is_read_again_and_the_limit_set_once_more() {
    let db = TestDb::sqlite();
    let n01 = serve(Tree::dmtf_controls(), Options::default());
    let n02 = serve(Tree::hpe_cray_ex(), Options { require_if_match: true, ..Options::default() });
    let hpe_limit = "/redfish/v1/Chassis/Node0/Controls/NodePowerLimit";
    n01.faults().set_stale_etag_once(DMTF_LIMIT);
    n02.faults().set_stale_etag_once(hpe_limit);
    let r = start(&config(&db, vec![entry("n01", &n01), entry("n02", &n02)]));
    let s = site(&r);
    let cap = PowerCapRequestV1 { nodes: vec!["n[01-02]".into()], limit_watts: Some(800.0) };
    let c = finished(TaskKindV1::PowerCap, &s, &s.power_cap(&cap).unwrap().id);
    assert_eq!(c.state, TaskStateV1::Succeeded, "{c:#?}");
    for (served, uri, n) in [(&n01, DMTF_LIMIT, "n01"), (&n02, hpe_limit, "n02")] {
        let patches = served.recorded_matching("PATCH", uri);
        let answered: Vec<Option<u16>> = patches.iter().map(|r| r.status).collect();
        assert_eq!(answered, [Some(412), Some(200)], "{n}");
        assert_ne!(patches[0].if_match, patches[1].if_match, "{n}: the ETag read again");
        assert!(patches[1].if_match.is_some(), "{n}");
        assert_eq!(node(&c, n).result.as_ref().unwrap().limit_watts, Some(800.0), "{n}");
        let doc = served.document(uri).unwrap();
        assert_eq!(
            (doc["SetPoint"].as_f64(), doc["ControlMode"].as_str()),
            (Some(800.0), Some("Automatic"))
        );
    }
    r.stop().unwrap();
}

#[test]
fn a_session_that_expires_mid_task_logs_in_again_and_the_task_goes_on() {
    let db = TestDb::sqlite();
    let options = Options {
        credentials: Some(("admin".into(), "pw".into())),
        session_max_requests: Some(2),
        ..quick()
    };
    let n01 = serve(Tree::legacy_power(), options);
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("n01.password");
    std::fs::write(&password, "pw\n").unwrap();
    let bmc = BmcEntry {
        user: Some("admin".into()),
        password_file: Some(password),
        session: Some(true),
        ..entry("n01", &n01)
    };
    let r = start(&config(&db, vec![bmc]));
    let s = site(&r);
    let t = s.transition(&transition(TransitionOperationV1::ForceOff, "n01", 60, false));
    let t = finished(TaskKindV1::Transition, &s, &t.unwrap().id);
    assert_eq!(t.state, TaskStateV1::Succeeded, "{t:#?}");
    assert_eq!(reset_types(&done(&n01, "POST", RESET_SUFFIX)), ["ForceOff"]);
    let logins = done(&n01, "POST", SESSIONS).len();
    assert!(logins >= 2, "the session expired and was opened again: {logins} logins");
    let cap = PowerCapRequestV1 { nodes: vec!["n01".into()], limit_watts: Some(450.0) };
    let c = finished(TaskKindV1::PowerCap, &s, &s.power_cap(&cap).unwrap().id);
    assert_eq!(c.state, TaskStateV1::Succeeded, "{c:#?}");
    assert_eq!(done(&n01, "PATCH", "/Power").len(), 1);
    let doc = n01.document("/redfish/v1/Chassis/1/Power").unwrap();
    assert_eq!(doc["PowerControl"][0]["PowerLimit"]["LimitInWatts"], 450);
    assert!(done(&n01, "POST", SESSIONS).len() > logins, "and again");
    assert_eq!(n01.open_sessions(), 1);
    // A clean stop ends the session (a BMC has few to give).
    r.stop().unwrap();
    assert_eq!(n01.open_sessions(), 0);
}

#[test]
fn a_graceful_shutdown_that_never_happens_fails_at_its_deadline_or_is_escalated_when_asked() {
    let db = TestDb::sqlite();
    let stubborn =
        || serve(Tree::dmtf_controls(), Options { graceful_never_finishes: true, ..quick() });
    let (n01, n02) = (stubborn(), stubborn());
    let r = start(&config(&db, vec![entry("n01", &n01), entry("n02", &n02)]));
    let s = site(&r);
    let t = s.transition(&transition(TransitionOperationV1::Off, "n01", 1, false)).unwrap();
    let t = finished(TaskKindV1::Transition, &s, &t.id);
    assert_eq!(t.state, TaskStateV1::Failed, "{t:#?}");
    let why = reason(&t, "n01");
    assert!(
        why.contains("GracefulShutdown: not off within the 1 s deadline; the node is on"),
        "{why}"
    );
    assert_eq!(reset_types(&n01.recorded()), ["GracefulShutdown"]);
    assert_eq!(power_state(&n01, "1"), "On");
    let t = s.transition(&transition(TransitionOperationV1::Off, "n02", 1, true)).unwrap();
    let t = finished(TaskKindV1::Transition, &s, &t.id);
    assert_eq!(t.state, TaskStateV1::Succeeded, "{t:#?}");
    assert_eq!(node(&t, "n02").attempts, 2);
    assert!(reason(&t, "n02").contains("ForceOff: confirmed off"), "{t:#?}");
    assert_eq!(reset_types(&n02.recorded()), ["GracefulShutdown", "ForceOff"]);
    assert_eq!(power_state(&n02, "1"), "Off");
    r.stop().unwrap();
}

#[test]
fn an_escalation_the_bmc_does_not_allow_is_not_sent_and_the_graceful_request_stays_recorded() {
    let db = TestDb::sqlite();
    let n01 = serve(Tree::dmtf_controls(), Options { graceful_never_finishes: true, ..quick() });
    n01.edit_tree(|t| {
        let uri = "/redfish/v1/Systems/1";
        let mut doc = t.get(uri).unwrap().clone();
        let allowed = "ResetType@Redfish.AllowableValues";
        doc["Actions"]["#ComputerSystem.Reset"][allowed] = json!(["On", "GracefulShutdown"]);
        t.insert(uri, doc);
    });
    let r = start(&config(&db, vec![entry("n01", &n01)]));
    let s = site(&r);
    let t = s.transition(&transition(TransitionOperationV1::Off, "n01", 1, true)).unwrap();
    let t = finished(TaskKindV1::Transition, &s, &t.id);
    let n = node(&t, "n01");
    assert_eq!(n.state, TaskNodeStateV1::Failed, "{t:#?}");
    let why = reason(&t, "n01");
    assert!(why.contains("ForceOff") && why.ends_with("it was not sent"), "{why}");
    assert_eq!(reset_types(&n01.recorded()), ["GracefulShutdown"]);
    assert_eq!(n.attempts, 1, "the graceful request, sent; not the escalation: {n:?}");
    assert!(n.sent_unix_us.is_some(), "{n:?}");
    r.stop().unwrap();
}

#[test]
fn a_request_the_bmc_does_not_allow_is_refused_before_sending_and_recorded_as_never_sent() {
    for db in runtime().block_on(TestDb::both()) {
        let n01 = serve(Tree::hpe_cray_ex(), quick());
        // No such chassis: its limit cannot be chosen.
        let n02 = serve(Tree::hpe_cray_ex(), quick());
        let n02_bmc = BmcEntry { chassis: Some("Nope".into()), ..entry("n02", &n02) };
        let r = start(&config(&db, vec![entry("n01", &n01), n02_bmc]));
        let s = site(&r);
        // HPE Cray EX allows On, ForceOff and Off: no graceful restart.
        let t = s.transition(&transition(TransitionOperationV1::Restart, "n01", 5, false)).unwrap();
        let t = finished(TaskKindV1::Transition, &s, &t.id);
        let n = node(&t, "n01");
        assert_eq!(n.state, TaskNodeStateV1::Failed, "{t:#?}");
        let why = reason(&t, "n01");
        assert!(why.contains("does not allow the reset GracefulRestart"), "{why}");
        assert!(why.ends_with("nothing was sent"), "{why}");
        assert_eq!((n.sent_unix_us, n.attempts), (None, 0), "{n:?}");
        let cap = PowerCapRequestV1 { nodes: vec!["n02".into()], limit_watts: Some(800.0) };
        let c = finished(TaskKindV1::PowerCap, &s, &s.power_cap(&cap).unwrap().id);
        let n = node(&c, "n02");
        assert_eq!(n.state, TaskNodeStateV1::Failed, "{c:#?}");
        let why = reason(&c, "n02");
        assert!(why.contains("Nope") && why.ends_with("nothing was sent"), "{why}");
        assert_eq!((n.sent_unix_us, n.attempts), (None, 0), "{n:?}");
        assert!(n01.recorded().is_empty() && n02.recorded().is_empty(), "nothing sent");
        r.stop().unwrap();
        runtime().block_on(db.drop_database());
    }
}

#[test]
fn a_restart_is_confirmed_only_once_the_node_left_on_and_a_warm_one_is_said_unconfirmable() {
    let db = TestDb::sqlite();
    // n01 goes through powering off and on; n02 takes a graceful restart and its power state
    // never shows it (as a warm restart).
    let n01 = serve(Tree::dmtf_controls(), quick());
    let n02 = serve(Tree::dmtf_controls(), Options { graceful_never_finishes: true, ..quick() });
    let r = start(&config(&db, vec![entry("n01", &n01), entry("n02", &n02)]));
    let s = site(&r);
    let t = s.transition(&transition(TransitionOperationV1::ForceRestart, "n01", 60, false));
    let t = finished(TaskKindV1::Transition, &s, &t.unwrap().id);
    assert_eq!(t.state, TaskStateV1::Succeeded, "{t:#?}");
    assert!(reason(&t, "n01").contains("ForceRestart: confirmed on"), "{t:#?}");
    assert_eq!(reset_types(&n01.recorded()), ["ForceRestart"]);
    let t = s.transition(&transition(TransitionOperationV1::Restart, "n02", 1, true)).unwrap();
    let t = finished(TaskKindV1::Transition, &s, &t.id);
    assert_eq!(t.state, TaskStateV1::Succeeded, "{t:#?}");
    let why = reason(&t, "n02");
    assert!(why.contains("GracefulRestart: accepted; not confirmable"), "{why}");
    // Not escalated: a restart that cannot be seen is not a restart that failed.
    assert_eq!(reset_types(&n02.recorded()), ["GracefulRestart"]);
    r.stop().unwrap();
}
