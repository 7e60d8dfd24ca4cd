//! What each caller reads (docs/agent.md, "What each caller may read and write"): root, the
//! allow-listed and the token holder get full detail; anyone else gets power and energy as of the
//! last whole second, over at least a second, rounded; no writer details; only its own jobs'
//! labels (none over TCP). Driven through `oneshot` with the caller set as `ConnectInfo<Peer>`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use powerstack_agent::access::{Access, AccessPolicy, EtcFiles, Peer};
use powerstack_agent::http::{self, Controls};
use powerstack_agent::{DomainMeta, Shared};
use powerstack_cap::{NodeId, StateDir};
use powerstack_hw::Root;
use powerstack_model::{CounterSpec, DomainId, DomainInfo, DomainKind, Measurement};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The first sample's time (a whole second), µs since the epoch.
const T0: u64 = 1_700_000_000_000_000;
/// Sampling period, µs (10 Hz); 41 samples: 4 s.
const DT: u64 = 100_000;
/// Package power, W, a little above a half so that rounding shows; µJ counters.
const WATTS: f64 = 100.37;

fn shared() -> Arc<Shared> {
    let info = DomainInfo {
        id: DomainId::new(DomainKind::Package, 0),
        provider: "fake",
        source: "fake:package-0".into(),
        measurement: Measurement::Energy(CounterSpec::non_wrapping(1e-6)),
        limits: vec![],
        socket: Some(0),
        label: None,
    };
    let domains = vec![DomainMeta { info, joules_per_tick: 1e-6 }];
    let shared = Shared::new("node1".into(), None, domains, 10.0, 1000, 100_000);
    {
        let mut ring = shared.ring.lock().unwrap();
        let ticks = |t: u64| (1e6 + WATTS * (t - T0) as f64).round() as u64 + 123;
        for i in 0..41 {
            let t = T0 + i * DT;
            ring.push(t, &[ticks(t)]);
        }
        // A sample a minute ahead of the agent's clock: never shown to an unprivileged caller
        // (it is newer than the last whole second), always to a privileged one.
        let ahead = shared.clock.now_unix_us() + 60_000_000;
        ring.push(ahead, &[ticks(T0 + 4_000_000) + 7_777_777]);
    }
    shared.settled_us.store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
    let mut jobs = shared.jobs.lock().unwrap();
    for (id, user) in
        [("e1", Some("erin")), ("e2", Some("1004")), ("a1", Some("alice")), ("n", None)]
    {
        jobs.begin(id, user.map(str::to_string), Some(format!("app-{id}")), T0 + DT).unwrap();
    }
    drop(jobs);
    Arc::new(shared)
}

struct Node {
    app: Router,
    _dirs: Vec<tempfile::TempDir>,
}

/// An agent on a simulated node (capping through the simulator's files), with `alice` allowed to
/// write and `s3cret` as the token.
fn node() -> Node {
    let etc = tempfile::tempdir().unwrap();
    let passwd = etc.path().join("passwd");
    let group = etc.path().join("group");
    std::fs::write(
        &passwd,
        "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/a:/bin/sh\nerin:x:1004:1004::/e:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(&group, "root:x:0:\n").unwrap();
    let policy = AccessPolicy {
        allow_users: vec!["alice".into()],
        allow_groups: vec![],
        token: Some("s3cret".into()),
        socket: None,
    };
    let access = Access::with_accounts(policy, Arc::new(EtcFiles { passwd, group }));
    let sim = tempfile::tempdir().unwrap();
    let _ = powerstack_sim::SimNode::create(
        sim.path(),
        powerstack_sim::Profile::Intel2s,
        powerstack_sim::SimOptions::default(),
    )
    .unwrap();
    let root = Root::new(sim.path());
    let platform = powerstack_hw::discover(&root, &powerstack_hw::Selection::Auto).platform;
    let state = tempfile::tempdir().unwrap();
    let at = StateDir::new(state.path(), NodeId::new(&root, None));
    let controls = Arc::new(Controls::new(platform, root, at));
    let app = http::app(shared(), Some(controls), access);
    Node { app, _dirs: vec![etc, sim, state] }
}

const ROOT: Peer = Peer::Unix { uid: 0, gid: 0, pid: Some(1) };
const ALICE: Peer = Peer::Unix { uid: 1000, gid: 1000, pid: Some(4242) };
const ERIN: Peer = Peer::Unix { uid: 1004, gid: 1004, pid: Some(7) };
const NOBODY: Peer = Peer::Unix { uid: 65534, gid: 65534, pid: Some(8) };

fn tcp() -> Peer {
    Peer::Tcp { addr: "127.0.0.1:40000".parse().unwrap() }
}

async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    peer: Peer,
    auth: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let body = body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty);
    let mut req = req.header(header::CONTENT_TYPE, "application/json").body(body).unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    (status, response.into_body().collect().await.unwrap().to_bytes().to_vec())
}

async fn read(app: &Router, uri: &str, peer: Peer, auth: Option<&str>) -> Value {
    let (status, body) = send(app, Method::GET, uri, peer, auth, None).await;
    let text = String::from_utf8_lossy(&body).to_string();
    assert_eq!(status, StatusCode::OK, "{uri}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// A caller: its name, peer, `Authorization` header, whether it is privileged, and the jobs whose
/// labels it sees.
type Caller = (&'static str, Peer, Option<&'static str>, bool, Vec<&'static str>);

/// Every caller.
fn callers() -> Vec<Caller> {
    vec![
        ("root", ROOT, None, true, vec!["e1", "e2", "a1", "n"]),
        ("alice (allow_users)", ALICE, None, true, vec!["e1", "e2", "a1", "n"]),
        ("tcp with the token", tcp(), Some("Bearer s3cret"), true, vec!["e1", "e2", "a1", "n"]),
        ("erin", ERIN, None, false, vec!["e1", "e2"]),
        ("nobody", NOBODY, None, false, vec![]),
        ("tcp without a token", tcp(), None, false, vec![]),
        ("tcp with a wrong token", tcp(), Some("Bearer nope"), false, vec![]),
        ("an unknown peer", Peer::Unknown, None, false, vec![]),
    ]
}

#[tokio::test]
async fn samples_are_raw_for_the_privileged_and_whole_seconds_and_joules_for_others() {
    let n = node();
    for (who, peer, auth, privileged, _) in callers() {
        let doc = read(&n.app, "/v1/samples", peer.clone(), auth).await;
        let rows = doc["samples"].as_array().unwrap();
        let jpt = doc["domains"][0]["joules_per_tick"].as_f64().unwrap();
        if privileged {
            assert_eq!(rows.len(), 42, "{who}");
            assert_eq!(jpt, 1e-6, "{who}");
            continue;
        }
        // One sample per whole second (the last at or before it), counters in whole joules, none
        // newer than the agent's clock.
        assert_eq!(jpt, 1.0, "{who}");
        let times: Vec<u64> = rows.iter().map(|r| r[0].as_u64().unwrap()).collect();
        assert_eq!(times, (0..5).map(|s| T0 + s * 1_000_000).collect::<Vec<_>>(), "{who}");
        let joules: Vec<u64> = rows.iter().map(|r| r[1].as_u64().unwrap()).collect();
        let exact = |s: f64| 1.0 + WATTS * s + 123e-6;
        assert_eq!(joules, (0..5).map(|s| exact(s as f64).floor() as u64).collect::<Vec<_>>());
        // The limit counts the seconds shown.
        let doc = read(&n.app, "/v1/samples?limit=2", peer.clone(), auth).await;
        assert_eq!(doc["samples"].as_array().unwrap().len(), 2, "{who}");
        assert_eq!(doc["truncated"], true, "{who}");
    }
}

#[tokio::test]
async fn power_and_metrics_are_whole_watts_as_of_the_last_whole_second_for_others() {
    let n = node();
    for (who, peer, auth, privileged, _) in callers() {
        let doc = read(&n.app, "/v1/power", peer.clone(), auth).await;
        let text = doc.to_string();
        let metrics = read(&n.app, "/metrics", peer, auth).await;
        let metrics = metrics.as_str().unwrap();
        let pkg = doc["domains"].as_array().unwrap().iter().find(|d| d["domain"] == "package");
        let pkg = pkg.unwrap_or_else(|| panic!("{who}: {text}"));
        if privileged {
            // The newest sample (a minute ahead of the clock) is the window's end.
            assert_ne!(pkg["power_watts"].as_f64(), Some(100.0), "{who}: {text}");
            continue;
        }
        // T0+3 s .. T0+4 s: 100.37 W over a whole second, shown as 100 W; the sample ahead
        // of the clock never shows.
        assert_eq!(pkg["power_watts"].as_f64(), Some(100.0), "{who}: {text}");
        let line = metrics
            .lines()
            .find(|l| l.starts_with("powerstack_power_watts{") && l.contains("package"))
            .unwrap_or_else(|| panic!("{who}: {metrics}"));
        assert!(line.ends_with(" 100"), "{who}: {line}");
        let energy = metrics
            .lines()
            .find(|l| l.starts_with("powerstack_energy_joules_total{"))
            .unwrap_or_else(|| panic!("{who}: {metrics}"));
        let joules: f64 = energy.rsplit(' ').next().unwrap().parse().unwrap();
        assert_eq!(joules, joules.floor(), "{who}: {energy}");
        assert!(!metrics.contains("erin") && !metrics.contains("app-"), "{who}: {metrics}");
    }
}

#[tokio::test]
async fn job_labels_are_shown_to_their_owner_and_the_privileged_only() {
    let n = node();
    for (who, peer, auth, privileged, sees) in callers() {
        let doc = read(&n.app, "/v1/jobs", peer.clone(), auth).await;
        let jobs = doc["jobs"].as_array().unwrap();
        assert_eq!(jobs.len(), 4, "{who}: every job is listed");
        for j in jobs {
            let id = j["id"].as_str().unwrap();
            let shown = sees.contains(&id);
            assert_eq!(j["app"].is_string(), shown, "{who} on {id}: {j}");
            assert_eq!(j["user"].is_string(), shown && id != "n", "{who} on {id}: {j}");
        }
        for id in ["e1", "a1"] {
            let r = read(&n.app, &format!("/v1/jobs/{id}"), peer.clone(), auth).await;
            assert_eq!(r["user"].is_string(), sees.contains(&id), "{who} on {id}: {r}");
            assert_eq!(r["running"], true, "{who}: {r}");
            if !privileged {
                let figures = ["node_power", "energy_joules", "peak_node_power"];
                for f in figures {
                    let v = r[f].as_f64().unwrap();
                    assert_eq!(v, v.round(), "{who}: {f} {r}");
                }
                assert!(r["peak_window_s"].as_f64().unwrap() >= 1.0, "{who}: {r}");
                assert!(r["result_end_time"].as_u64().unwrap() % 1_000_000 == 0, "{who}: {r}");
            }
        }
    }
}

#[tokio::test]
async fn cap_writers_are_named_by_program_only_for_others() {
    let n = node();
    let body = json!({"domain": "package", "index": 0, "limit_watts": 120});
    let (status, answer) = send(&n.app, Method::POST, "/v1/caps", ALICE, None, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer));
    for (who, peer, auth, privileged, _) in callers() {
        let doc = read(&n.app, "/v1/caps", peer, auth).await;
        let set = doc["controls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["set_by"] == "powerstack")
            .unwrap_or_else(|| panic!("{who}: {doc}"))
            .clone();
        let detail = set["set_detail"].as_str().unwrap();
        if privileged {
            assert!(detail.contains("alice (uid 1000)") && detail.contains("pid 4242"), "{detail}");
        } else {
            assert_eq!(detail, "powerstack agent", "{who}");
            let text = doc.to_string();
            assert!(!text.contains("4242") && !text.contains("alice"), "{who}: {text}");
        }
    }
}
