//! `powerstack site transition|power-cap|task` against `site serve` as a process, driving mock
//! BMCs served from this test process through real Redfish: one per dialect of power limits and
//! a BMC where nothing listens; the limits and states the tasks report are the mocks' documents,
//! and each change reaches its BMC once. Then `site serve` killed with SIGKILL while resets are
//! on the wire and restarted on the same database: every node ends in a true state, nothing is
//! sent twice, and the node still pending at the kill is sent once.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::site::serve_with;
use common::{Proc, bin};
use powerstack_api::site_tasks::{
    TaskKindV1, TaskNodeStateV1, TaskNodeV1, TaskStateV1, TaskV1, TransitionOperationV1,
    TransitionRequestV1,
};
use powerstack_client::site::Site;
use powerstack_mock_bmc::{Background, Hang, Options, RESET_SUFFIX, Recorded, Tree};
use serde_json::Value;

const DMTF_LIMIT: &str = "/redfish/v1/Chassis/1/Controls/PowerLimit";
const LEGACY_POWER: &str = "/redfish/v1/Chassis/1/Power";
const HPE_LIMIT: &str = "/redfish/v1/Chassis/Node0/Controls/NodePowerLimit";
const HPE_GPU_LIMIT: &str = "/redfish/v1/Chassis/Node0/Controls/Accelerator0PowerLimit";

fn mock(tree: Tree, options: Options) -> Background {
    Background::start(tree, options).unwrap()
}

/// A URL where nothing listens.
fn nowhere() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// `site serve` (SQLite in `dir`) with a `[[bmc]]` per `(node, url)` and `settings` lines; the
/// process and its URL.
fn serve(dir: &Path, bmcs: &[(&str, String)], settings: &str) -> (Proc, String) {
    let config = dir.join("site.toml");
    let mut text = format!(
        "listen = \"127.0.0.1:0\"\nstate_dir = \"{}\"\ntask_poll_ms = 50\n{settings}\n",
        dir.display()
    );
    for (node, url) in bmcs {
        text.push_str(&format!("\n[[bmc]]\nnode = \"{node}\"\nurl = \"{url}\"\n"));
    }
    std::fs::write(&config, text).unwrap();
    serve_with(&["--config", config.to_str().unwrap()])
}

fn run(url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = bin().args(["site"]).args(args).args(["--site", url]).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Runs a task command with `--json`: its exit code and the task.
fn run_json(url: &str, args: &[&str]) -> (Option<i32>, TaskV1) {
    let (code, out, err) = run(url, &[args, &["--json"]].concat());
    let task = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    (code, task)
}

fn node<'a>(t: &'a TaskV1, n: &str) -> &'a TaskNodeV1 {
    t.nodes.iter().find(|x| x.node == n).unwrap_or_else(|| panic!("no {n} in {t:#?}"))
}

fn reason(t: &TaskV1, n: &str) -> String {
    node(t, n).reason.clone().unwrap_or_default()
}

fn limit_watts(t: &TaskV1, n: &str) -> Option<f64> {
    node(t, n).result.as_ref().and_then(|r| r.limit_watts)
}

fn doc(bmc: &Background, uri: &str) -> Value {
    bmc.document(uri).unwrap_or_else(|| panic!("no {uri}"))
}

fn power_state(bmc: &Background, system: &str) -> String {
    doc(bmc, &format!("/redfish/v1/Systems/{system}"))["PowerState"].as_str().unwrap().to_string()
}

fn resets(bmc: &Background) -> Vec<Recorded> {
    bmc.recorded_matching("POST", RESET_SUFFIX)
}

fn reset_types(bmc: &Background) -> Vec<String> {
    let types = resets(bmc).into_iter().map(|r| r.body["ResetType"].as_str().map(String::from));
    types.map(Option::unwrap_or_default).collect()
}

/// A limit as the snapshot gives it: `(name, limit, min, max)`.
type LimitRow = (String, Option<f64>, Option<f64>, Option<f64>);

/// A node's limits as the snapshot gives them.
fn limits(t: &TaskV1, n: &str) -> Vec<LimitRow> {
    let result = node(t, n).result.as_ref().unwrap_or_else(|| panic!("{n}: no result: {t:#?}"));
    let each = result.limits.iter();
    each.map(|l| (l.name.clone(), l.limit_watts, l.min_watts, l.max_watts)).collect()
}

/// The snapshot of n[01-04]: each node's limits and ranges, as its BMC's documents hold them;
/// n04's BMC cannot be reached.
fn snapshot_is_what_the_bmcs_hold(url: &str, [n01, n02, n03]: [&Background; 3]) {
    let (code, snap) = run_json(url, &["power-cap", "snapshot", "--nodes", "n[01-04]"]);
    assert_eq!((code, snap.state), (Some(1), TaskStateV1::Failed), "{snap:#?}");
    let (d, l, h, g) = (
        doc(n01, DMTF_LIMIT),
        doc(n02, LEGACY_POWER),
        doc(n03, HPE_LIMIT),
        doc(n03, HPE_GPU_LIMIT),
    );
    let name = |v: &Value| v["Name"].as_str().unwrap().to_string();
    let f = |v: &Value| v.as_f64();
    let control = &l["PowerControl"][0];
    assert_eq!(
        limits(&snap, "n01"),
        [(name(&d), f(&d["SetPoint"]), f(&d["AllowableMin"]), f(&d["AllowableMax"]))]
    );
    assert_eq!(
        limits(&snap, "n02"),
        [(
            name(control),
            f(&control["PowerLimit"]["LimitInWatts"]),
            None,
            f(&control["PowerCapacityWatts"])
        )]
    );
    // HPE Cray EX: the node's limit is disabled (no limit in force), the GPU's second.
    assert_eq!(
        (h["ControlMode"].as_str(), g["ControlMode"].as_str()),
        (Some("Disabled"), Some("Disabled"))
    );
    assert_eq!(
        limits(&snap, "n03"),
        [
            (name(&h), None, f(&h["SettingRangeMin"]), f(&h["SettingRangeMax"])),
            (name(&g), None, f(&g["SettingRangeMin"]), f(&g["SettingRangeMax"])),
        ]
    );
    assert_eq!(node(&snap, "n04").state, TaskNodeStateV1::Failed);
    let why = reason(&snap, "n04");
    let refused = why.to_lowercase().contains("connection refused");
    assert!(why.contains("reading the limits") && refused, "{why}");
}

/// Caps on n[01-03]: 400 W set and read back where it is in range, refused before sending
/// where it is not, 800 W on HPE Cray EX, then off, each in its dialect and PATCHed once.
fn caps_are_set_in_each_dialect(url: &str, [n01, n02, n03]: [&Background; 3]) {
    let (code, cap) = run_json(url, &["power-cap", "set", "400", "--nodes", "n[01-03]"]);
    assert_eq!(code, Some(1), "{cap:#?}");
    for n in ["n01", "n02"] {
        assert_eq!(node(&cap, n).state, TaskNodeStateV1::Succeeded, "{cap:#?}");
        assert_eq!(limit_watts(&cap, n), Some(400.0), "{n}");
    }
    assert_eq!(doc(n01, DMTF_LIMIT)["SetPoint"], 400);
    assert_eq!(doc(n01, DMTF_LIMIT)["ControlMode"], "Automatic");
    assert_eq!(doc(n02, LEGACY_POWER)["PowerControl"][0]["PowerLimit"]["LimitInWatts"], 400);
    assert_eq!(node(&cap, "n03").state, TaskNodeStateV1::Failed);
    let why = reason(&cap, "n03");
    assert!(
        why.contains("400 W is outside the node's range, 764 W to 2754 W: nothing was sent"),
        "{why}"
    );
    assert!(n03.recorded().is_empty(), "nothing PATCHed on n03");
    // Inside its range: HPE's set point, in automatic mode.
    let (code, cap) = run_json(url, &["power-cap", "set", "800W", "--nodes", "n03"]);
    assert_eq!((code, limit_watts(&cap, "n03")), (Some(0), Some(800.0)), "{cap:#?}");
    let h = doc(n03, HPE_LIMIT);
    assert_eq!(
        (h["SetPoint"].as_f64(), h["ControlMode"].as_str()),
        (Some(800.0), Some("Automatic"))
    );

    // Capping off everywhere, each in its dialect.
    let (code, off) = run_json(url, &["power-cap", "set", "off", "--nodes", "n[01-03]"]);
    assert_eq!((code, off.state), (Some(0), TaskStateV1::Succeeded), "{off:#?}");
    assert!(off.nodes.iter().all(|n| n.result.as_ref().unwrap().limit_watts.is_none()));
    assert_eq!(doc(n01, DMTF_LIMIT)["ControlMode"], "Disabled");
    assert!(doc(n02, LEGACY_POWER)["PowerControl"][0]["PowerLimit"]["LimitInWatts"].is_null());
    assert_eq!(doc(n03, HPE_LIMIT)["ControlMode"], "Disabled");
    for (bmc, n) in [(n01, 2), (n02, 2), (n03, 2)] {
        assert_eq!(bmc.recorded_matching("PATCH", "").len(), n, "each change PATCHed once");
    }
}

#[test]
fn control_tasks_drive_each_dialect_through_redfish_and_report_each_node() {
    let dir = tempfile::tempdir().unwrap();
    let n01 = mock(Tree::dmtf_controls(), Options::default());
    let n02 = mock(Tree::legacy_power(), Options::default());
    let n03 = mock(Tree::hpe_cray_ex(), Options::default());
    let bmcs = [("n01", n01.url()), ("n02", n02.url()), ("n03", n03.url()), ("n04", nowhere())];
    let (_site, url) = serve(dir.path(), &bmcs, "");

    snapshot_is_what_the_bmcs_hold(&url, [&n01, &n02, &n03]);
    caps_are_set_in_each_dialect(&url, [&n01, &n02, &n03]);
    // Off, confirmed: each BMC got one reset and says Off.
    let (code, out, err) = run(&url, &["transition", "off", "--nodes", "n[01-02]"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("transition off") && out.contains(", succeeded"), "{out}");
    for (bmc, system) in [(&n01, "1"), (&n02, "1")] {
        assert_eq!(power_state(bmc, system), "Off");
        assert_eq!(reset_types(bmc), ["GracefulShutdown"]);
    }
    // HPE Cray EX lists Off, not GracefulShutdown: off sends Off there.
    let (code, t) = run_json(&url, &["transition", "off", "--nodes", "n03"]);
    assert_eq!((code, t.state), (Some(0), TaskStateV1::Succeeded), "{t:#?}");
    assert_eq!(reason(&t, "n03"), "Off: confirmed off", "the request named as sent");
    assert_eq!(
        (reset_types(&n03), power_state(&n03, "Node0")),
        (vec!["Off".to_string()], "Off".to_string())
    );
    // Nor a graceful restart: refused before anything is sent.
    let (code, t) = run_json(&url, &["transition", "restart", "--nodes", "n03"]);
    assert_eq!(code, Some(1));
    let why = reason(&t, "n03");
    assert!(why.contains("GracefulRestart") && why.contains("not supported"), "{why}");
    assert!(why.ends_with("nothing was sent"), "{why}");
    assert_eq!(reset_types(&n03), ["Off"], "nothing more sent to n03");
    let n = node(&t, "n03");
    assert_eq!((n.sent_unix_us, n.attempts), (None, 0), "recorded as never sent: {n:?}");

    // Not waited for: the id alone; then waited for and shown as JSON.
    let (code, id, err) = run(&url, &["transition", "on", "--nodes", "n01", "--no-wait"]);
    assert_eq!(code, Some(0), "{err}");
    let id = id.trim();
    assert_eq!(id.len(), 36, "{id}");
    let (code, t) = run_json(&url, &["task", "show", id]);
    assert_eq!((code, t.id.as_str(), t.state), (Some(0), id, TaskStateV1::Succeeded), "{t:#?}");
    assert!(reason(&t, "n01").contains("On: confirmed on"), "{t:#?}");
    assert_eq!(power_state(&n01, "1"), "On");
    assert_eq!(reset_types(&n01), ["GracefulShutdown", "On"]);

    // Bad input: one line each, nothing created.
    let (code, _, err) = run(&url, &["transition", "off", "--nodes", "n[04-05]"]);
    assert!(code == Some(1) && err.contains("node n05 has no BMC"), "{err}");
    let (code, _, err) = run(&url, &["transition", "reboot", "--nodes", "n01"]);
    assert!(code == Some(1) && err.contains("one of on, off, force-off"), "{err}");
    let (code, _, err) = run(&url, &["power-cap", "set", "lots", "--nodes", "n01"]);
    assert!(code == Some(1) && err.contains("or off"), "{err}");
    let (code, _, err) = run(&url, &["task", "abort", "00000000-0000-4000-8000-000000000000"]);
    assert!(code == Some(1) && err.contains("404"), "{err}");
    assert_eq!(reset_types(&n02), ["GracefulShutdown"], "nothing more sent");
}

/// Polls `check` every 20 ms for at most a minute.
fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_site_killed_with_resets_on_the_wire_settles_every_node_after_restart_and_sends_nothing_twice()
{
    let dir = tempfile::tempdir().unwrap();
    // n01 does the reset and its answer never comes; n02 holds it unprocessed; n03 is fine.
    let n01 = mock(Tree::dmtf_controls(), Options::default());
    n01.faults().set_hang(Hang::Writes);
    let n02 = mock(Tree::dmtf_controls(), Options::default());
    n02.faults().set_hang(Hang::WritesUnprocessed);
    let n03 = mock(Tree::dmtf_controls(), Options::default());
    let bmcs = [("n01", n01.url()), ("n02", n02.url()), ("n03", n03.url())];
    // Two operations at once; a lease of 1 s, so that the restarted service takes over soon.
    let settings = "task_concurrency = 2\ntask_lease_s = 1\n";
    let (mut site, url) = serve(dir.path(), &bmcs, settings);
    let s = Site::new(&url, None, Duration::from_secs(30)).unwrap();
    let off = |nodes: &str| TransitionRequestV1 {
        operation: TransitionOperationV1::Off,
        nodes: vec![nodes.into()],
        deadline_s: Some(5),
        escalate: Some(false),
    };
    let first = s.transition(&off("n[01-02]")).unwrap();
    let in_progress = |t: &TaskV1| t.nodes.iter().all(|n| n.state == TaskNodeStateV1::InProgress);
    until("both nodes claimed", || {
        in_progress(&s.task(TaskKindV1::Transition, &first.id).unwrap())
    });
    // Both operations hold the two places: n03 waits.
    let second = s.transition(&off("n03")).unwrap();
    until("both resets on the wire", || resets(&n01).len() == 1 && resets(&n02).len() == 1);
    let waiting = s.task(TaskKindV1::Transition, &second.id).unwrap();
    assert_eq!(node(&waiting, "n03").state, TaskNodeStateV1::Pending, "{waiting:#?}");
    site.signal(libc::SIGKILL);
    let _ = site.0.wait();
    assert_eq!(power_state(&n01, "1"), "Off", "n01 did the reset");
    assert_eq!(power_state(&n02, "1"), "On", "n02 did not");

    let (_site, url) = serve(dir.path(), &bmcs, settings);
    let (code, t) = run_json(&url, &["task", "show", &first.id]);
    assert_eq!((code, t.state), (Some(1), TaskStateV1::Failed), "{t:#?}");
    assert_eq!(node(&t, "n01").state, TaskNodeStateV1::Succeeded, "{t:#?}");
    assert_eq!(reason(&t, "n01"), "confirmed after restart");
    assert_eq!(node(&t, "n02").state, TaskNodeStateV1::Failed, "{t:#?}");
    assert_eq!(reason(&t, "n02"), "the service stopped after sending; the node is now on");
    let (code, t) = run_json(&url, &["task", "show", &second.id]);
    assert_eq!((code, t.state), (Some(0), TaskStateV1::Succeeded), "{t:#?}");
    assert!(reason(&t, "n03").contains("GracefulShutdown: confirmed off"), "{t:#?}");
    for bmc in [&n01, &n02, &n03] {
        assert_eq!(reset_types(bmc), ["GracefulShutdown"], "sent once");
    }
    let answered: Vec<Option<u16>> =
        [&n01, &n02, &n03].iter().map(|b| resets(b)[0].status).collect();
    assert_eq!(answered, [None, None, Some(204)]);
    assert_eq!(power_state(&n03, "1"), "Off");
}
