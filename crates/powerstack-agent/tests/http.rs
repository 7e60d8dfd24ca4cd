//! The agent's HTTP API through `oneshot` (no socket), its access control, and one real Unix-socket
//! server (root allowed, nobody refused). No test sleeps to measure anything: the ring is filled
//! with synthetic samples at chosen times.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use powerstack_agent::access::{
    Access, AccessPolicy, Accounts, Denied, EtcFiles, Peer, load_token,
};
use powerstack_agent::http::{self, Controls, NO_ROUTE, Verb};
use powerstack_agent::serve::{self, ConnectionLimits, Server};
use powerstack_agent::{DomainMeta, Shared};
use powerstack_cap::{NodeId, StateDir};
use powerstack_hw::{HwError, Platform, Provider, Reading, Root};
use powerstack_model::{
    CounterSpec, DomainId, DomainInfo, DomainKind, LimitWrite, Measurement, PowerLimit,
};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The first sample's time, µs since the epoch.
const T0: u64 = 1_700_000_000_000_000;
/// Sampling period, µs (10 Hz).
const DT: u64 = 100_000;
/// Samples in the ring: 4 s.
const N: u64 = 41;

/// Domain powers of the synthetic node, W: package-0, package-1, memory-0, gpu-0.
const WATTS: [f64; 4] = [100.0, 50.0, 20.0, 200.0];
/// Joules per tick of each column (µJ counters; the GPU in mJ, as NVML).
const JPT: [f64; 4] = [1e-6, 1e-6, 1e-6, 1e-3];

fn limit(name: &str, watts: f64, min: f64, max: f64) -> PowerLimit {
    PowerLimit {
        name: name.into(),
        limit_watts: Some(watts),
        min_watts: Some(min),
        max_watts: Some(max),
        time_window_s: None,
        enabled: Some(true),
        ..PowerLimit::default()
    }
}

fn catalog() -> Vec<DomainInfo> {
    let d = |kind, index, jpt, limits: Vec<PowerLimit>| DomainInfo {
        id: DomainId::new(kind, index),
        provider: "fake",
        source: format!("fake:{kind}-{index}"),
        measurement: Measurement::Energy(CounterSpec::non_wrapping(jpt)),
        limits,
        socket: Some(0),
        label: None,
    };
    vec![
        d(DomainKind::Package, 0, JPT[0], vec![limit("long_term", 150.0, 50.0, 200.0)]),
        d(DomainKind::Package, 1, JPT[1], vec![limit("long_term", 150.0, 50.0, 200.0)]),
        d(DomainKind::Memory, 0, JPT[2], vec![]),
        d(DomainKind::Gpu, 0, JPT[3], vec![limit("cap", 300.0, 100.0, 400.0)]),
    ]
}

/// The counters of every column at time `t` (constant power since `T0`).
fn row(t: u64) -> Vec<u64> {
    let s = (t - T0) as f64 / 1e6;
    (0..4).map(|c| (1e6 + WATTS[c] * s / JPT[c]).round() as u64).collect()
}

/// A node with `samples` samples in its ring, from `T0` every `DT`.
fn shared(samples: u64) -> Arc<Shared> {
    let domains: Vec<DomainMeta> = catalog()
        .into_iter()
        .zip(JPT)
        .map(|(info, joules_per_tick)| DomainMeta { info, joules_per_tick })
        .collect();
    let shared = Shared::new("node1".into(), Some("test".into()), domains, 10.0, 1000, 1_000_000);
    {
        let mut ring = shared.ring.lock().unwrap();
        for i in 0..samples {
            let t = T0 + i * DT;
            ring.push(t, &row(t));
        }
    }
    for _ in 0..samples {
        shared.stats.record(250_000);
    }
    // Every row is final (no slow source is waited for).
    shared.settled_us.store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
    Arc::new(shared)
}

/// A provider whose limits are what was last written, except: with `stubborn`, the GPU's
/// firmware keeps its cap (a silent refusal); with `refuse`, every write fails.
struct Fake {
    domains: Vec<DomainInfo>,
    stubborn: Arc<AtomicBool>,
    refuse: Arc<AtomicBool>,
}

impl Provider for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn domains(&self) -> &[DomainInfo] {
        &self.domains
    }
    fn read(&mut self, out: &mut [Reading]) {
        for o in out {
            *o = Reading::Power(1.0);
        }
    }
    fn write_limit(&mut self, index: usize, w: &LimitWrite) -> Result<(), HwError> {
        let Some(d) = self.domains.get_mut(index) else {
            return Err(HwError::Unsupported { provider: "fake", what: "nothing".into() });
        };
        if self.refuse.load(Ordering::Relaxed) {
            return Err(HwError::Unsupported {
                provider: "fake",
                what: format!("{} {}", d.id, w.constraint),
            });
        }
        if d.id.kind == DomainKind::Gpu && self.stubborn.load(Ordering::Relaxed) {
            return Ok(());
        }
        if let Some(l) = d.limits.iter_mut().find(|l| l.name == w.constraint) {
            l.limit_watts = Some(w.limit_watts);
        }
        Ok(())
    }
}

/// Users and groups for the access tests.
struct Etc {
    _dir: tempfile::TempDir,
    files: EtcFiles,
}

fn etc() -> Etc {
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    let group = dir.path().join("group");
    std::fs::write(
        &passwd,
        "root:x:0:0:root:/root:/bin/bash\n\
         alice:x:1000:1000::/home/alice:/bin/sh\n\
         bob:x:1001:1001::/home/bob:/bin/sh\n\
         carol:x:1002:1002::/home/carol:/bin/sh\n\
         dave:x:1003:2000::/home/dave:/bin/sh\n\
         erin:x:1004:1004::/home/erin:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(&group, "root:x:0:\nhpcadm:x:2000:carol\nnogroup:x:65534:\n").unwrap();
    Etc { _dir: dir, files: EtcFiles { passwd, group } }
}

fn policy(token: Option<&str>) -> AccessPolicy {
    AccessPolicy {
        allow_users: vec!["alice".into(), "1001".into()],
        allow_groups: vec!["hpcadm".into()],
        token: token.map(str::to_string),
        socket: None,
    }
}

/// An agent under test: its router, shared state, and (with capping) its controls.
struct Agent {
    app: Router,
    shared: Arc<Shared>,
    controls: Option<Arc<Controls>>,
    stubborn: Arc<AtomicBool>,
    refuse: Arc<AtomicBool>,
    state: tempfile::TempDir,
    _etc: Etc,
}

fn agent_with(samples: u64, capping: bool, token: Option<&str>) -> Agent {
    let shared = shared(samples);
    let stubborn = Arc::new(AtomicBool::new(false));
    let refuse = Arc::new(AtomicBool::new(false));
    let state = tempfile::tempdir().unwrap();
    let controls = capping.then(|| {
        let fake = Fake { domains: catalog(), stubborn: stubborn.clone(), refuse: refuse.clone() };
        let (platform, _) = Platform::new(vec![Box::new(fake)]);
        let root = Root::new(state.path());
        let at = StateDir::new(state.path().join("state"), NodeId::new(&root, None));
        Arc::new(Controls::new(platform, root, at))
    });
    let etc = etc();
    let access = Access::with_accounts(policy(token), Arc::new(etc.files.clone()));
    let app = http::app(shared.clone(), controls.clone(), access);
    Agent { app, shared, controls, stubborn, refuse, state, _etc: etc }
}

/// A server of the agent's router, with the limits of a process allowed 1024 open files.
fn server(a: &Agent) -> Server {
    Server::new(a.app.clone(), Access::default(), ConnectionLimits::for_open_files(1024))
}

fn agent() -> Agent {
    agent_with(N, true, Some("s3cret"))
}

fn root() -> Peer {
    Peer::Unix { uid: 0, gid: 0, pid: Some(1) }
}

fn nobody() -> Peer {
    Peer::Unix { uid: 65534, gid: 65534, pid: Some(2) }
}

/// An answer: status, headers and body.
struct Answer {
    status: StatusCode,
    content_type: String,
    www_authenticate: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
    /// The error message, checking the error shape.
    fn error(&self) -> String {
        let v = self.json();
        assert_eq!(v["error"]["status"], self.status.as_u16(), "{v}");
        assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
        v["error"]["message"].as_str().unwrap().to_string()
    }
}

async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    peer: Option<Peer>,
    auth: Option<&str>,
    body: Option<Vec<u8>>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let mut req = req.body(body.map(Body::from).unwrap_or_else(Body::empty)).unwrap();
    if let Some(p) = peer {
        req.extensions_mut().insert(ConnectInfo(p));
    }
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let www_authenticate =
        response.headers().get(header::WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_string());
    let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
    Answer { status, content_type, www_authenticate, body }
}

/// A GET as root on the Unix socket (full detail; see `read_tiers.rs` for the other callers).
async fn get(app: &Router, uri: &str) -> Answer {
    send(app, Method::GET, uri, Some(root()), None, None).await
}

async fn post(app: &Router, uri: &str, peer: Peer, body: Option<Value>) -> Answer {
    send(app, Method::POST, uri, Some(peer), None, body.map(|b| b.to_string().into_bytes())).await
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6 * b.abs().max(1.0)
}

#[tokio::test]
async fn healthz_counts_samples() {
    let a = agent();
    let r = get(&a.app, "/healthz").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"status": "ok", "samples": N}));
}

#[tokio::test]
async fn power_comes_from_the_ring_over_about_a_second_in_every_format() {
    let a = agent();
    let r = get(&a.app, "/v1/power").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type.starts_with("application/json"));
    let v = r.json();
    assert_eq!(v["schema"], "powerstack.power.v1");
    assert_eq!(v["hostname"], "node1");
    assert_eq!(v["simulated_profile"], "test");
    assert!(close(v["interval_s"].as_f64().unwrap(), 1.0), "{v}");
    assert_eq!(v["timestamp_us"], T0 + (N - 1) * DT);
    let doms = v["domains"].as_array().unwrap();
    for (d, w) in doms.iter().zip(WATTS) {
        assert!(close(d["power_watts"].as_f64().unwrap(), w), "{d}");
    }
    assert!(close(v["node_power_watts"].as_f64().unwrap(), 370.0), "{v}");
    assert_eq!(v["node_source"], "sum");

    let r = get(&a.app, "/v1/power?format=variorum").await;
    let v = r.json();
    assert!(close(v["node1"]["power_node_watts"].as_f64().unwrap(), 370.0), "{v}");
    assert!(close(v["node1"]["socket_0"]["power_cpu_watts"].as_f64().unwrap(), 100.0), "{v}");
    let r = get(&a.app, "/v1/power?format=variorum-flat").await;
    let v = r.json();
    assert_eq!(v["hostname"], "node1");
    assert!(close(v["power_cpu_watts_socket_1"].as_f64().unwrap(), 50.0), "{v}");

    let r = get(&a.app, "/v1/power?format=csv").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error().contains("variorum-flat"));
    let r = get(&a.app, "/v1/power?fromat=json").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error().contains("fromat"));
}

#[tokio::test]
async fn a_short_ring_uses_the_oldest_sample_and_fewer_than_two_is_503() {
    let a = agent_with(4, false, None);
    let v = get(&a.app, "/v1/power").await.json();
    assert!(close(v["interval_s"].as_f64().unwrap(), 0.3), "{v}");
    assert!(close(v["domains"][0]["power_watts"].as_f64().unwrap(), 100.0), "{v}");
    for n in [0, 1] {
        let a = agent_with(n, false, None);
        let r = get(&a.app, "/v1/power").await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.error().contains(&format!("{n} sample(s)")), "{}", r.text());
    }
}

#[tokio::test]
async fn samples_are_raw_counters_with_their_units_within_a_range_and_a_limit() {
    let a = agent();
    let v = get(&a.app, "/v1/samples").await.json();
    assert_eq!(v["truncated"], false);
    assert_eq!(
        v["domains"][0],
        json!({"domain": "package", "index": 0, "provider": "fake", "joules_per_tick": 1e-6})
    );
    assert_eq!(v["domains"][3]["domain"], "gpu");
    assert_eq!(v["domains"][3]["joules_per_tick"], 1e-3);
    let samples = v["samples"].as_array().unwrap();
    assert_eq!(samples.len() as u64, N);
    let last: Vec<u64> = serde_json::from_value(samples[N as usize - 1].clone()).unwrap();
    let t = T0 + (N - 1) * DT;
    assert_eq!(last[0], t);
    assert_eq!(&last[1..], &row(t)[..]);

    let uri = format!("/v1/samples?since={}&until={}&limit=3", T0 + DT, T0 + 10 * DT);
    let v = get(&a.app, &uri).await.json();
    assert_eq!(v["truncated"], true);
    let times: Vec<u64> =
        v["samples"].as_array().unwrap().iter().map(|s| s[0].as_u64().unwrap()).collect();
    assert_eq!(times, vec![T0 + DT, T0 + 2 * DT, T0 + 3 * DT]);
    let uri = format!("/v1/samples?since={}&until={}", T0 + DT, T0 + 2 * DT);
    let v = get(&a.app, &uri).await.json();
    assert_eq!((v["samples"].as_array().unwrap().len(), &v["truncated"]), (2, &json!(false)));

    for bad in ["limit=0", "limit=100001", "since=x", "since=5&until=4", "step=2"] {
        let r = get(&a.app, &format!("/v1/samples?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        let m = r.error();
        let field = bad.split('=').next().unwrap();
        assert!(m.contains(field), "{bad}: {m}");
    }
}

#[tokio::test]
async fn a_job_s_peak_is_over_the_window_asked_for_never_under_the_sampling_interval() {
    let a = agent();
    {
        let mut jobs = a.shared.jobs.lock().unwrap();
        jobs.begin("pw", None, None, T0).unwrap();
        jobs.end("pw", T0 + (N - 1) * DT).unwrap();
    }
    // 4 s of samples at 10 Hz, each domain steady: the peak is the mean over any window.
    for (query, window_s) in [("", 1.0), ("?peak_window=2s", 2.0), ("?peak_window=10ms", 0.1)] {
        let r = get(&a.app, &format!("/v1/jobs/pw{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text());
        let v = r.json();
        assert_eq!(v["peak_window_s"], window_s, "{query}: {v}");
        let (peak, mean) =
            (v["peak_node_power"].as_f64().unwrap(), v["node_power"].as_f64().unwrap());
        assert!(close(peak, mean), "{query}: peak {peak} W, mean {mean} W");
    }
    for bad in ["peak_window=0s", "peak_window=2h", "peak_window=soon", "window=2s"] {
        let r = get(&a.app, &format!("/v1/jobs/pw?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
        assert!(r.error().contains("window"), "{bad}: {}", r.text());
    }
}

#[tokio::test]
async fn a_job_marked_over_http_follows_the_rules_and_answers_the_flux_fields() {
    let a = agent();
    let r =
        post(&a.app, "/v1/jobs/j1/begin", root(), Some(json!({"user": "alice", "app": "lammps"})))
            .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (v["id"].as_str(), v["user"].as_str(), v["app"].as_str()),
        (Some("j1"), Some("alice"), Some("lammps"))
    );
    assert!(v["end_unix_us"].is_null());
    assert!(v["warnings"][0].as_str().unwrap().contains("the buffer holds 100 s"), "{v}");

    let r = post(&a.app, "/v1/jobs/j1/begin", root(), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.error().contains("j1"));
    // No body at all is fine.
    assert_eq!(post(&a.app, "/v1/jobs/j2/begin", root(), None).await.status, StatusCode::CREATED);

    let list = get(&a.app, "/v1/jobs").await.json();
    let ids: Vec<&str> =
        list["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"j1") && ids.contains(&"j2"));

    let r = get(&a.app, "/v1/jobs/j1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["running"], true);

    let r = post(&a.app, "/v1/jobs/j1/end", root(), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["running"], false);
    let r = post(&a.app, "/v1/jobs/j1/end", root(), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.error().contains("j1"));
    let r = post(&a.app, "/v1/jobs/nope/end", root(), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.error().contains("nope"));

    let r = get(&a.app, "/v1/jobs/42").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error(), "no job 42 on this node");
    let r = get(&a.app, "/v1/jobs/a%20b").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error().contains("bad job id"));

    let r = post(&a.app, "/v1/jobs/j3/begin", root(), Some(json!({"user": "x", "uid": 5}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error().contains("uid"));
    let r = send(
        &a.app,
        Method::POST,
        "/v1/jobs/j3/begin",
        Some(root()),
        None,
        Some(b"{\"user\": ".to_vec()),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error().contains("JSON"));
    let r = post(&a.app, "/v1/jobs/j3/begin", root(), Some(json!({"user": 5}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error().contains("user"), "the field is named");
}

/// One caller cannot fill the job table: its running jobs are counted (a uid on the socket, the
/// token holder over TCP), and past its quota its `begin` is refused with one line until it ends
/// one; other callers are not held back.
#[tokio::test]
async fn a_caller_may_have_only_its_quota_of_running_jobs() {
    let a = agent();
    *a.shared.jobs.lock().unwrap() = powerstack_agent::job::Jobs::default().with_caller_quota(2);
    let alice = || Peer::Unix { uid: 1000, gid: 1000, pid: None };
    for id in ["q1", "q2"] {
        let r = post(&a.app, &format!("/v1/jobs/{id}/begin"), alice(), None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    let r = post(&a.app, "/v1/jobs/q3/begin", alice(), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    let message = r.error();
    assert!(message.contains("uid 1000") && message.contains("end some"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    // Others are not held back: root on the socket, the token holder over TCP.
    assert_eq!(post(&a.app, "/v1/jobs/r1/begin", root(), None).await.status, StatusCode::CREATED);
    let tcp = Peer::Tcp { addr: "127.0.0.1:5000".parse().unwrap() };
    for (id, want) in [("t1", StatusCode::CREATED), ("t2", StatusCode::CREATED)] {
        let uri = format!("/v1/jobs/{id}/begin");
        let r = send(&a.app, Method::POST, &uri, Some(tcp.clone()), Some("Bearer s3cret"), None);
        assert_eq!(r.await.status, want);
    }
    let r = send(&a.app, Method::POST, "/v1/jobs/t3/begin", Some(tcp), Some("Bearer s3cret"), None);
    let r = r.await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert!(r.error().contains("token"));
    // An ended job no longer counts.
    assert_eq!(post(&a.app, "/v1/jobs/q1/end", alice(), None).await.status, StatusCode::OK);
    assert_eq!(post(&a.app, "/v1/jobs/q3/begin", alice(), None).await.status, StatusCode::CREATED);
    let jobs = a.shared.jobs.lock().unwrap();
    assert_eq!(jobs.caller("q3"), Some("uid 1000"));
    assert_eq!(jobs.caller("r1"), Some("uid 0"));
    assert_eq!(jobs.caller("t1"), Some("token"));
}

#[tokio::test]
async fn a_job_result_covers_its_window_from_the_ring() {
    let a = agent();
    {
        let mut jobs = a.shared.jobs.lock().unwrap();
        jobs.begin("w", Some("bob".into()), None, T0 + 10 * DT).unwrap();
        jobs.end("w", T0 + 30 * DT).unwrap();
        jobs.begin("late", None, None, T0 + 20 * DT).unwrap();
        jobs.end("late", T0 + 100 * DT).unwrap();
    }
    let v = get(&a.app, "/v1/jobs/w").await.json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "hostname",
        "job_id",
        "user",
        "app",
        "running",
        "node_power",
        "energy_joules",
        "cpu_power_0",
        "cpu_power_1",
        "mem_power_0",
        "gpu_power_0",
        "peak_node_power",
        "result_start_time",
        "result_end_time",
        "samples",
        "data_presence",
    ] {
        assert!(keys.contains(&k), "{k} missing: {v}");
    }
    assert_eq!(v["data_presence"], "Complete");
    assert_eq!(v["user"], "bob");
    assert!(close(v["node_power"].as_f64().unwrap(), 370.0), "{v}");
    assert!(close(v["energy_joules"].as_f64().unwrap(), 740.0), "{v}");
    assert!(close(v["cpu_power_1"].as_f64().unwrap(), 50.0), "{v}");
    assert!(close(v["gpu_power_0"].as_f64().unwrap(), 200.0), "{v}");
    assert_eq!(v["samples"], 21);
    let v = get(&a.app, "/v1/jobs/late").await.json();
    assert_eq!(v["data_presence"], "Partial");
    assert_eq!(v["result_end_time"], T0 + (N - 1) * DT);
}

#[tokio::test]
async fn errors_have_one_shape_for_unknown_routes_methods_and_big_bodies() {
    let a = agent();
    let r = get(&a.app, "/v2/power").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.error().starts_with(NO_ROUTE));
    let r = send(&a.app, Method::DELETE, "/v1/jobs", Some(root()), None, None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.error().contains("GET"));
    let r = get(&a.app, "/v1/caps/reset").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.error().contains("POST"));

    let big = format!("{{\"user\": \"{}\"}}", "x".repeat(70 * 1024));
    let r = send(
        &a.app,
        Method::POST,
        "/v1/jobs/big/begin",
        Some(root()),
        None,
        Some(big.into_bytes()),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.error().contains("65536"));
    let big = vec![b' '; 65 * 1024];
    let r = send(&a.app, Method::POST, "/v1/caps", Some(root()), None, Some(big)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let _ = r.error();
}

#[tokio::test]
async fn writes_need_permission_and_reads_do_not() {
    let a = agent();
    // Reads: anyone, any transport, no token.
    for peer in [nobody(), Peer::Tcp { addr: "10.0.0.9:4000".parse().unwrap() }, Peer::Unknown] {
        let r = send(&a.app, Method::GET, "/v1/jobs", Some(peer), None, None).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    // Every write refuses nobody with 403, before looking at the body.
    for (verb, path) in http::routes() {
        if verb != Verb::Post {
            continue;
        }
        let path = path.replace("{id}", "j9");
        let r = send(&a.app, Method::POST, &path, Some(nobody()), None, Some(b"{".to_vec())).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        assert!(r.error().contains("nobody (uid 65534)"), "{path}");
        let r = send(&a.app, Method::POST, &path, None, None, None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: no connection info");
    }
    // TCP: a bearer token.
    let tcp = Peer::Tcp { addr: "10.0.0.9:4000".parse().unwrap() };
    let uri = "/v1/jobs/t1/begin";
    let r = send(&a.app, Method::POST, uri, Some(tcp.clone()), None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.www_authenticate.as_deref(), Some("Bearer"));
    assert!(r.error().contains("Authorization"));
    let r = send(&a.app, Method::POST, uri, Some(tcp.clone()), Some("Bearer s3creT"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = send(&a.app, Method::POST, uri, Some(tcp.clone()), Some("Bearer s3cret"), None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    // Allowed users and groups on the Unix socket.
    let alice = Peer::Unix { uid: 1000, gid: 1000, pid: None };
    assert_eq!(post(&a.app, "/v1/jobs/a1/begin", alice, None).await.status, StatusCode::CREATED);
    let carol = Peer::Unix { uid: 1002, gid: 1002, pid: None };
    assert_eq!(post(&a.app, "/v1/jobs/c1/begin", carol, None).await.status, StatusCode::CREATED);
    // Without a token, TCP writes are refused outright.
    let b = agent_with(N, false, None);
    let r = send(&b.app, Method::POST, uri, Some(tcp), Some("Bearer s3cret"), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.error().contains("TCP"));
}

#[test]
fn access_decisions_follow_the_policy() {
    let etc = etc();
    let accounts: &dyn Accounts = &etc.files;
    let p = policy(Some("s3cret"));
    let unix = |uid, gid| Peer::Unix { uid, gid, pid: None };
    assert_eq!(p.check_write(&unix(0, 0), None, accounts), Ok(()), "root");
    assert_eq!(p.check_write(&unix(1000, 1000), None, accounts), Ok(()), "alice, by name");
    assert_eq!(p.check_write(&unix(1001, 1001), None, accounts), Ok(()), "bob, by uid");
    assert_eq!(p.check_write(&unix(1002, 1002), None, accounts), Ok(()), "carol, group member");
    assert_eq!(
        p.check_write(&unix(1003, 1003), None, accounts),
        Ok(()),
        "dave, primary group in passwd"
    );
    assert_eq!(p.check_write(&unix(4242, 2000), None, accounts), Ok(()), "a process in the group");
    for (uid, gid) in [(1004, 1004), (65534, 65534), (4242, 4242)] {
        let e = p.check_write(&unix(uid, gid), None, accounts).unwrap_err();
        assert!(matches!(e, Denied::Forbidden(_)), "{uid}");
        assert!(e.to_string().contains(&format!("uid {uid}")), "{e}");
    }
    // A token does not open the Unix socket.
    assert!(p.check_write(&unix(65534, 65534), Some("Bearer s3cret"), accounts).is_err());
    assert!(matches!(p.check_write(&Peer::Unknown, None, accounts), Err(Denied::Forbidden(_))));
    let tcp = Peer::Tcp { addr: "127.0.0.1:9".parse().unwrap() };
    assert!(matches!(p.check_write(&tcp, None, accounts), Err(Denied::Unauthorized(_))));
    assert!(matches!(
        p.check_write(&tcp, Some("Bearer nope"), accounts),
        Err(Denied::Unauthorized(_))
    ));
    assert!(matches!(
        p.check_write(&tcp, Some("Basic s3cret"), accounts),
        Err(Denied::Unauthorized(_))
    ));
    assert!(matches!(
        p.check_write(&tcp, Some("Bearer s3cret2"), accounts),
        Err(Denied::Unauthorized(_))
    ));
    assert_eq!(p.check_write(&tcp, Some("Bearer s3cret"), accounts), Ok(()));
    assert_eq!(p.check_write(&tcp, Some("bearer   s3cret "), accounts), Ok(()));
    let no_token = policy(None);
    assert!(matches!(
        no_token.check_write(&tcp, Some("Bearer s3cret"), accounts),
        Err(Denied::Forbidden(_))
    ));
    // Names resolve through the files given, so a listed name absent from them allows nobody.
    let ghost = AccessPolicy {
        allow_users: vec!["ghost".into()],
        allow_groups: vec!["ghosts".into()],
        token: None,
        socket: None,
    };
    assert!(ghost.check_write(&unix(1004, 1004), None, accounts).is_err());
    // The system files by default.
    assert_eq!(EtcFiles::default().passwd, Path::new("/etc/passwd"));
    assert_eq!(EtcFiles::default().user_by_uid(0).map(|u| u.name), Some("root".to_string()));
}

#[test]
fn a_token_file_must_be_private_and_not_empty() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("token");
    std::fs::write(&p, "  s3cret\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = load_token(&p).unwrap_err().to_string();
    assert!(e.contains("chmod 600") && e.contains("0644"), "{e}");
    assert_eq!(e.lines().count(), 1);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(load_token(&p).is_err());
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(load_token(&p).unwrap(), "s3cret");
    std::fs::write(&p, "\n \n").unwrap();
    let e = load_token(&p).unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");
    assert!(load_token(&dir.path().join("absent")).unwrap_err().to_string().contains("absent"));
}

fn journal(a: &Agent) -> String {
    std::fs::read_to_string(a.state.path().join("state/journal.json")).unwrap_or_default()
}

fn limit_of(a: &Agent, kind: DomainKind, index: u32, name: &str) -> Option<f64> {
    let controls = a.controls.as_ref().unwrap();
    let platform = controls.platform.lock().unwrap();
    let d = platform.catalog().iter().find(|d| d.id == DomainId::new(kind, index)).unwrap();
    d.limit(name).and_then(|l| l.limit_watts)
}

/// Changes refused by validation or by the hardware: 422 with the line, nothing written (or all
/// rolled back).
async fn refused_changes_are_422_and_write_nothing(a: &Agent) {
    // Refused by validation: 422 with the line, nothing written.
    let body = json!({"domain": "package", "index": 1, "limit_watts": 500});
    let r = post(&a.app, "/v1/caps", root(), Some(body)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.error().contains("package-1 long_term: 500 W is outside the allowed range"));
    assert_eq!(limit_of(a, DomainKind::Package, 1, "long_term"), Some(150.0));
    let r = post(
        &a.app,
        "/v1/caps",
        root(),
        Some(json!({"domain": "package", "index": 7, "limit_watts": 100})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.error().contains("package-0, package-1"));
    // Refused by the hardware: 422, rolled back.
    a.refuse.store(true, Ordering::Relaxed);
    let r =
        post(&a.app, "/v1/caps", root(), Some(json!({"domain": "package", "limit_watts": 100})))
            .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let m = r.error();
    assert!(
        m.contains("cannot be set through fake") && m.contains("nothing had been written"),
        "{m}"
    );
    a.refuse.store(false, Ordering::Relaxed);
    // The GPU's firmware keeps its cap: the read-back fails.
    a.stubborn.store(true, Ordering::Relaxed);
    let r = post(
        &a.app,
        "/v1/caps",
        root(),
        Some(json!({"domain": "gpu", "index": 0, "limit_watts": 250})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.error().contains("gpu-0 cap: wrote 250 W but read back 300 W"));
    a.stubborn.store(false, Ordering::Relaxed);
}

async fn malformed_cap_bodies_are_400_naming_the_field(a: &Agent) {
    // Malformed: 400 naming the field.
    for (body, field) in [
        (json!({"domain": "package", "limit_watts": "x"}), "limit_watts"),
        (json!({"domain": "socket", "limit_watts": 100}), "domain"),
        (json!({"domain": "package"}), "limit_watts"),
        (json!({"limit_watts": 100}), "domain"),
        (json!({"domain": "package", "limit_watts": 100, "watts": 5}), "watts"),
        (json!({"node_watts": 500, "policy": "greedy"}), "policy"),
        (json!({"node_watts": 500, "domain": "package"}), "domain"),
        (json!({"domain": "package", "limit_watts": 100, "policy": "uniform"}), "policy"),
    ] {
        let r = post(&a.app, "/v1/caps", root(), Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        let m = r.error();
        assert!(m.contains(field), "{body}: {m}");
    }
}

#[tokio::test]
async fn caps_are_validated_written_read_back_journaled_and_reset() {
    let a = agent();
    let v = get(&a.app, "/v1/caps").await.json();
    assert_eq!(v["schema"], "powerstack.caps.v1");
    let controls = v["controls"].as_array().unwrap();
    assert_eq!(controls.len(), 3);
    assert_eq!(controls[0]["set_by"], "not powerstack");

    // One domain.
    let body =
        json!({"domain": "package", "index": 0, "constraint": "long_term", "limit_watts": 120});
    let r = post(&a.app, "/v1/caps", root(), Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["schema"], "powerstack.cap.v1");
    assert_eq!(v["command"], "socket");
    assert_eq!(v["writes"].as_array().unwrap().len(), 1);
    assert_eq!(v["writes"][0]["previous_watts"], 150.0);
    assert_eq!(v["writes"][0]["read_back_watts"], 120.0);
    assert_eq!(limit_of(&a, DomainKind::Package, 0, "long_term"), Some(120.0));
    let j = journal(&a);
    assert!(j.contains("powerstack agent (HTTP, root (uid 0), pid 1)"), "{j}");
    assert_eq!(a.controls.as_ref().unwrap().changed().len(), 1);
    let v = get(&a.app, "/v1/caps").await.json();
    assert_eq!(v["controls"][0]["set_by"], "powerstack");
    assert_eq!(v["controls"][0]["original_watts"], 150.0);

    refused_changes_are_422_and_write_nothing(&a).await;
    malformed_cap_bodies_are_400_naming_the_field(&a).await;

    // A dry run writes nothing.
    let r =
        post(&a.app, "/v1/caps", root(), Some(json!({"node_watts": 500, "dry_run": true}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["dry_run"], true);
    assert!(r.json()["node_read_back_watts"].is_null(), "nothing read back on a dry run");
    assert_eq!(limit_of(&a, DomainKind::Package, 1, "long_term"), Some(150.0));
    // A node cap: memory (20 W, uncappable) first, the rest in proportion to the maxima.
    let r = post(
        &a.app,
        "/v1/caps",
        root(),
        Some(json!({"node_watts": 500, "policy": "proportional"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!((v["command"].as_str(), v["node_cap_watts"].as_f64()), (Some("node"), Some(500.0)));
    assert!(close(v["uncappable_watts"].as_f64().unwrap(), 20.0), "{v}");
    assert_eq!(limit_of(&a, DomainKind::Package, 1, "long_term"), Some(120.0));
    assert_eq!(limit_of(&a, DomainKind::Gpu, 0, "cap"), Some(240.0));
    // The limits read back make the cap, and the node's cap in force is it, within its range.
    assert!(close(v["node_read_back_watts"].as_f64().unwrap(), 500.0), "{v}");
    let node = get(&a.app, "/v1/caps").await.json()["node"].clone();
    let in_force = node["cap_in_force_watts"].as_f64().unwrap();
    assert!(close(in_force, 500.0) && close(node["uncappable_watts"].as_f64().unwrap(), 20.0));
    assert!(node["min_watts"].as_f64() < Some(in_force), "{node}");
    assert!(node["max_watts"].as_f64() > Some(in_force), "{node}");
    let r = post(&a.app, "/v1/caps", root(), Some(json!({"node_watts": 5000}))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.error().contains("above the most this node can draw"));

    // Nobody may not; the limits stay.
    let r = post(&a.app, "/v1/caps", nobody(), Some(json!({"domain": "gpu", "limit_watts": 100})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(limit_of(&a, DomainKind::Gpu, 0, "cap"), Some(240.0));
    let r = post(&a.app, "/v1/caps/reset", nobody(), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Reset puts back every original.
    let r = post(&a.app, "/v1/caps/reset", root(), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["writes"].as_array().unwrap().len(), 3);
    assert_eq!(limit_of(&a, DomainKind::Package, 0, "long_term"), Some(150.0));
    assert_eq!(limit_of(&a, DomainKind::Package, 1, "long_term"), Some(150.0));
    assert_eq!(limit_of(&a, DomainKind::Gpu, 0, "cap"), Some(300.0));
    assert!(a.controls.as_ref().unwrap().changed().is_empty());
}

#[tokio::test]
async fn the_cap_api_validates_as_the_command_does_and_clamps_when_asked() {
    let a = agent();
    let cap = |body: Value| post(&a.app, "/v1/caps", root(), Some(body));
    // Below the hardware's minimum: 422 with the range and how to clamp; nothing written.
    let r = cap(json!({"domain": "package", "index": 0, "limit_watts": 10})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let m = r.error();
    assert!(
        m.contains("package-0 long_term: 10 W is below the allowed range [50 W .. 200 W]")
            && m.contains("clamp"),
        "{m}"
    );
    assert_eq!(limit_of(&a, DomainKind::Package, 0, "long_term"), Some(150.0));
    // A window on a limit that has none.
    let r =
        cap(json!({"domain": "package", "index": 1, "limit_watts": 100, "time_window_s": 1})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.error().contains("this limit has no averaging window"), "{}", r.error());
    assert_eq!(limit_of(&a, DomainKind::Package, 1, "long_term"), Some(150.0));
    // `clamp` applies the minimum instead.
    let r = cap(json!({"domain": "package", "index": 0, "limit_watts": 10, "clamp": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (v["clamped"].as_bool(), v["writes"][0]["read_back_watts"].as_f64()),
        (Some(true), Some(50.0))
    );
    assert_eq!(limit_of(&a, DomainKind::Package, 0, "long_term"), Some(50.0));
}

#[tokio::test]
async fn without_capping_the_cap_routes_answer_503() {
    let a = agent_with(N, false, None);
    let r = get(&a.app, "/v1/caps").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.error().contains("capping is not configured"));
    let body = json!({"domain": "package", "limit_watts": 100});
    let r = post(&a.app, "/v1/caps", root(), Some(body)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        post(&a.app, "/v1/caps/reset", root(), None).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// An agent with capping on a simulated intel-2s node: the simulator's directory, the agent's
/// state directory (its journal), the controls and the router.
struct SimAgent {
    dir: tempfile::TempDir,
    state: tempfile::TempDir,
    at: StateDir,
    app: Router,
}

fn sim_agent() -> SimAgent {
    let dir = tempfile::tempdir().unwrap();
    let _node = powerstack_sim::SimNode::create(
        dir.path(),
        powerstack_sim::Profile::Intel2s,
        powerstack_sim::SimOptions::default(),
    )
    .unwrap();
    let root = Root::new(dir.path());
    let platform = powerstack_hw::discover(&root, &powerstack_hw::Selection::Auto).platform;
    let state = tempfile::tempdir().unwrap();
    let at = StateDir::new(state.path(), NodeId::new(&root, None));
    let controls = Arc::new(Controls::new(platform, root, at.clone()));
    let app = http::app(shared(N), Some(controls), AccessPolicy::default());
    SimAgent { dir, state, at, app }
}

/// A package's long-term limit file of the simulated node.
fn pkg_limit_file(a: &SimAgent, socket: u32) -> PathBuf {
    a.dir.path().join(format!("sys/class/powercap/intel-rapl:{socket}/constraint_0_power_limit_uw"))
}

fn read_trimmed(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

#[tokio::test]
async fn a_simulated_package_cap_reaches_sysfs_and_reset_restores_it() {
    let a = sim_agent();
    let file = pkg_limit_file(&a, 0);
    assert_eq!(read_trimmed(&file), "150000000");
    let body = json!({"domain": "package", "index": 0, "limit_watts": 120});
    let r = post(&a.app, "/v1/caps", Peer::Unix { uid: 0, gid: 0, pid: None }, Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(read_trimmed(&file), "120000000");
    let caps = get(&a.app, "/v1/caps").await.json();
    assert!(caps["controls"].as_array().unwrap().iter().any(|c| c["set_by"] == "powerstack"));
    let r = post(&a.app, "/v1/caps/reset", Peer::Unix { uid: 0, gid: 0, pid: None }, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(read_trimmed(&file), "150000000");
}

#[tokio::test]
async fn a_reset_that_cannot_put_every_limit_back_answers_422_with_what_it_did() {
    let a = sim_agent();
    // Journaled originals: package-0's outside its range (350 W on a 150 W package, as a journal
    // of another node version could hold), package-1's in range.
    let key = |socket: u32| powerstack_cap::ControlKey {
        provider: "powercap".into(),
        domain: format!("package-{socket}"),
        constraint: "long_term".into(),
    };
    let setting = |watts| powerstack_cap::Setting {
        limit_watts: Some(watts),
        time_window_s: Some(0.999424),
        enabled: Some(true),
    };
    {
        let mut j = a.at.journal("test").unwrap();
        let originals = vec![
            (key(0), "intel-rapl:0".to_string(), setting(350.0)),
            (key(1), "intel-rapl:1".to_string(), setting(140.0)),
        ];
        j.begin(originals, "test").unwrap();
        j.finish().unwrap();
    }
    std::fs::write(pkg_limit_file(&a, 0), "90000000\n").unwrap();
    std::fs::write(pkg_limit_file(&a, 1), "90000000\n").unwrap();
    let r = post(&a.app, "/v1/caps/reset", Peer::Unix { uid: 0, gid: 0, pid: None }, None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let v = r.json();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("1 limit(s) could not be restored (package-0 long_term (powercap): ")
            && message.contains("350 W is outside the allowed range")
            && message.ends_with("they stay in the journal for the next reset"),
        "{message}"
    );
    // What the reset did put back, as `powerstack cap reset` prints it.
    let done = &v["error"]["result"];
    assert_eq!(done["schema"], "powerstack.cap.v1");
    assert_eq!(done["command"], "reset");
    let writes = done["writes"].as_array().unwrap();
    assert_eq!(writes.len(), 1, "{done}");
    assert_eq!(
        (writes[0]["index"].as_u64(), writes[0]["read_back_watts"].as_f64()),
        (Some(1), Some(140.0))
    );
    assert!(done["warnings"][0].as_str().unwrap().starts_with("could not restore"), "{done}");
    assert_eq!(read_trimmed(&pkg_limit_file(&a, 0)), "90000000", "nothing written");
    assert_eq!(read_trimmed(&pkg_limit_file(&a, 1)), "140000000");
    let journal = std::fs::read_to_string(a.state.path().join("journal.json")).unwrap();
    assert!(journal.contains("package-0") && !journal.contains("package-1"), "{journal}");
}

/// Every operation of the OpenAPI document, with `{id}` filled in.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path}");
            out.push((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[tokio::test]
async fn the_openapi_document_and_the_router_agree() {
    let a = agent();
    let doc = get(&a.app, "/v1/openapi.json").await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = operations(&doc);
    let mut routed: Vec<(String, String)> =
        http::routes().iter().map(|(v, p)| (v.as_str().to_string(), p.to_string())).collect();
    documented.sort();
    routed.sort();
    assert_eq!(documented, routed, "the document and the router list different routes");
    // Every documented operation answers (a job "walk" exists so that its routes find it).
    a.shared.jobs.lock().unwrap().begin("walk", None, None, T0).unwrap();
    for (method, path) in operations(&doc) {
        let uri = path.replace("{id}", "walk");
        let method: Method = method.parse().unwrap();
        let body = (method == Method::POST).then(|| b"{}".to_vec());
        let r = send(&a.app, method.clone(), &uri, Some(root()), None, body).await;
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        if r.status == StatusCode::NOT_FOUND {
            assert!(!r.error().starts_with(NO_ROUTE), "{method} {uri} is not routed");
        }
    }
    // Every $ref points at a schema that exists.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap();
        assert!(doc["components"]["schemas"].get(name).is_some(), "{name}");
    }
}

/// What the document says of inputs is what the server enforces: `since <= until`, the two forms
/// of a cap request, a node cap above 0 W, job labels (null allowed, at most 256 characters, no
/// control character) and bodies that are objects.
#[tokio::test]
async fn the_openapi_document_says_what_the_server_enforces() {
    let a = agent();
    let doc = get(&a.app, "/v1/openapi.json").await.json();
    let schemas = &doc["components"]["schemas"];
    let params = doc["paths"]["/v1/samples"]["get"]["parameters"].to_string();
    assert!(params.contains("Must not be after `until`"), "{params}");
    let r = get(&a.app, "/v1/samples?since=2&until=1").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!r.error().contains('\n'));

    let forms = schemas["CapRequestV1"]["oneOf"].as_array().unwrap();
    assert_eq!(forms.len(), 2);
    assert_eq!(schemas["NodeCapRequestV1"]["required"], json!(["node_watts"]));
    assert_eq!(schemas["NodeCapRequestV1"]["properties"]["node_watts"]["exclusiveMinimum"], 0);
    assert_eq!(schemas["DomainCapRequestV1"]["required"], json!(["domain", "limit_watts"]));
    for bad in [json!({"node_watts": 0.0}), json!({"node_watts": -5.0})] {
        let r = post(&a.app, "/v1/caps", root(), Some(bad.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
        assert!(r.error().contains("above 0 W"));
    }

    let user = &schemas["JobBeginV1"]["properties"]["user"];
    assert_eq!(user["type"], json!(["string", "null"]));
    assert_eq!(user["maxLength"], powerstack_agent::job::MAX_LABEL_LEN);
    assert_eq!(user["maxLength"], powerstack_api::agent::MAX_LABEL_LEN);
    let id = &doc["paths"]["/v1/jobs/{id}"]["get"]["parameters"][0];
    assert_eq!(id["schema"]["pattern"], powerstack_api::agent::JOB_ID_PATTERN);
    let null = json!({"user": null, "app": null});
    assert_eq!(post(&a.app, "/v1/jobs/l1/begin", root(), Some(null)).await.status, 201);
    let long = json!({"app": "é".repeat(256)});
    assert_eq!(post(&a.app, "/v1/jobs/l2/begin", root(), Some(long)).await.status, 201);
    for bad in [json!({"app": "é".repeat(257)}), json!({"user": "a\u{85}b"}), json!([null, null])]
    {
        let r = post(&a.app, "/v1/jobs/l3/begin", root(), Some(bad.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
    }
}

/// Whether `instance` validates against `schema` (inline, or a `$ref` into `doc`'s components).
fn check(doc: &Value, schema: &Value, instance: &Value) -> Result<(), String> {
    let mut root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"].clone(),
        "allOf": [schema],
    });
    root["components"]["securitySchemes"] = json!({});
    let validator = jsonschema::validator_for(&root).map_err(|e| format!("bad schema: {e}"))?;
    let errors: Vec<String> =
        validator.iter_errors(instance).map(|e| format!("{e} at {}", e.instance_path())).collect();
    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
}

/// The schema of `method path`'s answer with `status` (`application/json`, else `text/plain`).
fn answer_schema<'a>(doc: &'a Value, method: &Method, path: &str, status: u16) -> &'a Value {
    let answer =
        &doc["paths"][path][method.as_str().to_lowercase()]["responses"][status.to_string()];
    let content = &answer["content"];
    let schema = match content.get("application/json") {
        Some(json) => &json["schema"],
        None => &content["text/plain"]["schema"],
    };
    assert!(schema.is_object(), "{method} {path} has no schema for {status}");
    schema
}

/// One request of the walk over the API: method, route, concrete path, body, expected status.
type Case = (Method, &'static str, &'static str, Option<Value>, u16);

fn walk() -> Vec<Case> {
    let (get, post) = (Method::GET, Method::POST);
    let caps = "/v1/caps";
    vec![
        (get.clone(), "/healthz", "/healthz", None, 200),
        (get.clone(), "/metrics", "/metrics", None, 200),
        (get.clone(), "/v1/openapi.json", "/v1/openapi.json", None, 200),
        (get.clone(), "/v1/power", "/v1/power", None, 200),
        (get.clone(), "/v1/power", "/v1/power?format=variorum", None, 200),
        (get.clone(), "/v1/power", "/v1/power?format=variorum-flat", None, 200),
        (get.clone(), "/v1/power", "/v1/power?format=nope", None, 400),
        (get.clone(), "/v1/samples", "/v1/samples?limit=3", None, 200),
        (get.clone(), "/v1/samples", "/v1/samples?since=2&until=1", None, 400),
        (get.clone(), "/v1/jobs", "/v1/jobs", None, 200),
        (get.clone(), "/v1/jobs/{id}", "/v1/jobs/walk?peak_window=2s", None, 200),
        (get.clone(), "/v1/jobs/{id}", "/v1/jobs/nope", None, 404),
        (
            post.clone(),
            "/v1/jobs/{id}/begin",
            "/v1/jobs/w1/begin",
            Some(json!({"user": "alice"})),
            201,
        ),
        (post.clone(), "/v1/jobs/{id}/begin", "/v1/jobs/w1/begin", None, 409),
        (post.clone(), "/v1/jobs/{id}/begin", "/v1/jobs/w2/begin", Some(json!({"user": 7})), 400),
        (post.clone(), "/v1/jobs/{id}/end", "/v1/jobs/w1/end", None, 200),
        (post.clone(), "/v1/jobs/{id}/end", "/v1/jobs/w1/end", None, 409),
        (post.clone(), "/v1/jobs/{id}/end", "/v1/jobs/w9/end", None, 404),
        (get.clone(), caps, caps, None, 200),
        (post.clone(), caps, caps, Some(json!({"domain": "package", "limit_watts": 120})), 200),
        (post.clone(), caps, caps, Some(json!({"node_watts": 300, "dry_run": true})), 200),
        (post.clone(), caps, caps, Some(json!({"domain": "gpu", "limit_watts": 10})), 422),
        (post.clone(), caps, caps, Some(json!({"domain": "package", "node_watts": 1})), 400),
        (
            post.clone(),
            caps,
            caps,
            Some(json!({"domain": "gpu", "limit_watts": 250, "policy": "uniform"})),
            400,
        ),
        (post.clone(), "/v1/caps/reset", "/v1/caps/reset", None, 200),
    ]
}

/// Every route's requests and answers (each documented status the walk reaches) validate against
/// the OpenAPI document, and requests the server refuses with 400 do not: the document is as
/// strict as the server.
#[tokio::test]
async fn every_request_and_answer_validates_against_the_openapi_document() {
    let a = agent();
    a.shared.jobs.lock().unwrap().begin("walk", None, None, T0).unwrap();
    let doc = get(&a.app, "/v1/openapi.json").await.json();
    let mut covered = Vec::new();
    for (method, route, path, body, status) in walk() {
        let op = &doc["paths"][route][method.as_str().to_lowercase()];
        if let Some(body) = &body {
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            let valid = check(&doc, schema, body);
            assert_eq!(valid.is_ok(), status != 400, "{method} {path} {body}: {valid:?}");
        }
        let bytes = body.map(|b| b.to_string().into_bytes());
        let r = send(&a.app, method.clone(), path, Some(root()), None, bytes).await;
        assert_eq!(r.status.as_u16(), status, "{method} {path}: {}", r.text());
        let answer = if r.content_type.starts_with("application/json") {
            r.json()
        } else {
            Value::String(r.text())
        };
        let schema = answer_schema(&doc, &method, route, status);
        if let Err(e) = check(&doc, schema, &answer) {
            panic!("{method} {path} answered {status} off its schema: {e}\n{answer}");
        }
        covered.push((method.as_str().to_string(), route.to_string()));
    }
    // The check can fail: an answer off its schema does not pass.
    let health = answer_schema(&doc, &Method::GET, "/healthz", 200);
    assert!(check(&doc, health, &json!({"status": "ok", "samples": -1})).is_err());
    assert!(check(&doc, health, &json!({"status": "ok"})).is_err());
    // Nobody may write: 403 in the error's shape.
    let r = post(&a.app, "/v1/caps/reset", nobody(), None).await;
    check(&doc, answer_schema(&doc, &Method::POST, "/v1/caps/reset", 403), &r.json()).unwrap();
    covered.sort();
    covered.dedup();
    let mut documented = operations(&doc);
    documented.sort();
    assert_eq!(covered, documented, "the walk covers every documented operation");
}

fn promtool() -> Option<PathBuf> {
    let ok = std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then(|| PathBuf::from("promtool"))
}

#[tokio::test]
async fn metrics_cover_the_ring_the_sampler_and_the_jobs_and_pass_promtool() {
    let a = agent();
    a.shared.jobs.lock().unwrap().begin("m1", None, None, T0).unwrap();
    let r = get(&a.app, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type.starts_with("text/plain; version=0.0.4"), "{}", r.content_type);
    let text = r.text();
    let value = |series: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(series))
            .unwrap_or_else(|| panic!("{series} missing:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(close(value("powerstack_power_watts{domain=\"package\",index=\"0\"}"), 100.0));
    assert!(close(value("powerstack_power_watts{domain=\"gpu\",index=\"0\"}"), 200.0));
    let t = T0 + (N - 1) * DT;
    let pkg1_joules = row(t)[1] as f64 * 1e-6;
    assert!(close(
        value("powerstack_energy_joules_total{domain=\"package\",index=\"1\"}"),
        pkg1_joules
    ));
    assert_eq!(
        value(
            "powerstack_power_limit_watts{domain=\"package\",index=\"0\",constraint=\"long_term\"}"
        ),
        150.0
    );
    assert_eq!(
        value("powerstack_power_limit_watts{domain=\"gpu\",index=\"0\",constraint=\"cap\"}"),
        300.0
    );
    assert_eq!(value("powerstack_sampler_duration_seconds "), 0.00025);
    assert_eq!(value("powerstack_sampler_duration_seconds_max "), 0.00025);
    assert_eq!(value("powerstack_sampler_samples_total "), N as f64);
    assert_eq!(value("powerstack_sampler_overruns_total "), 0.0);
    assert_eq!(value("powerstack_sampler_read_failures_total "), 0.0);
    assert_eq!(value("powerstack_ring_samples "), N as f64);
    assert_eq!(value("powerstack_ring_capacity_samples "), 1000.0);
    assert_eq!(value("powerstack_jobs_running "), 1.0);
    assert_eq!(
        value(&format!("powerstack_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))),
        1.0
    );
    assert_eq!(value("powerstack_simulated{profile=\"test\"}"), 1.0);
    // A limit written through the agent shows at once.
    let body = json!({"domain": "package", "index": 0, "limit_watts": 120});
    assert_eq!(post(&a.app, "/v1/caps", root(), Some(body)).await.status, StatusCode::OK);
    let text = get(&a.app, "/metrics").await.text();
    assert!(text.contains("powerstack_power_limit_watts{domain=\"package\",index=\"0\",constraint=\"long_term\"} 120\n"), "{text}");

    let empty = agent_with(0, false, None);
    let texts = [text, get(&empty.app, "/metrics").await.text()];
    match promtool() {
        Some(p) => {
            for text in texts {
                use std::io::Write;
                let mut child = std::process::Command::new(&p)
                    .args(["check", "metrics"])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
                let out = child.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "promtool: {}{}\n{text}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        None if std::env::var_os("POWERSTACK_REQUIRE_PROMTOOL").is_some() => {
            panic!("promtool is not installed and POWERSTACK_REQUIRE_PROMTOOL is set")
        }
        None => eprintln!("promtool not installed: skipping `promtool check metrics`"),
    }
}

/// A tiny HTTP/1.1 exchange over the Unix socket; returns the status line.
async fn unix_request(path: &Path, method: &str, target: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(path).await.unwrap();
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: agent\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).lines().next().unwrap_or_default().to_string()
}

const CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(("%s %s HTTP/1.1\r\nHost: agent\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % (sys.argv[2], sys.argv[3])).encode())
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.split(b"\r\n")[0].decode())
"#;

/// Runs the client as user nobody (65534, no supplementary groups); its status line.
fn as_nobody(python: &Path, socket: &Path, method: &str, target: &str) -> String {
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(python)
        .args(["-c", CLIENT])
        .arg(socket)
        .args([method, target])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_real_unix_socket_identifies_root_and_refuses_nobody() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: skipping the Unix-socket identity test");
        return;
    }
    let python = ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let setpriv = std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let Some(python) = python.filter(|_| setpriv) else {
        eprintln!("setpriv or a system python3 is missing: skipping the Unix-socket identity test");
        return;
    };
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("agent.sock");
    // A stale socket file from an earlier run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let a = agent_with(N, false, None);
    rt.block_on(async {
        let listener = serve::bind_unix(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666);
        // A second agent on the same path is refused while the first listens.
        assert!(serve::bind_unix(&path).is_err());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(server(&a).serve_unix(listener, path.clone(), async {
            let _ = stopped.await;
        }));
        assert_eq!(unix_request(&path, "POST", "/v1/jobs/r1/begin").await, "HTTP/1.1 201 Created");
        assert_eq!(unix_request(&path, "GET", "/healthz").await, "HTTP/1.1 200 OK");
        let (p, s) = (python.clone(), path.clone());
        let (read, write) = tokio::task::spawn_blocking(move || {
            (
                as_nobody(&p, &s, "GET", "/v1/jobs/r1"),
                as_nobody(&p, &s, "POST", "/v1/jobs/n1/begin"),
            )
        })
        .await
        .unwrap();
        assert_eq!(read, "HTTP/1.1 200 OK");
        assert_eq!(write, "HTTP/1.1 403 Forbidden");
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    });
    assert!(!path.exists(), "the socket is removed at shutdown");
    assert!(a.shared.jobs.lock().unwrap().get("n1").is_none());
}

#[test]
fn binding_refuses_a_path_that_is_not_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file");
    std::fs::write(&path, "x").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let e = rt.block_on(async { serve::bind_unix(&path).map(|_| ()) }).unwrap_err();
    assert!(e.to_string().contains("not a socket"), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "x");
    // A missing directory is created.
    let nested = dir.path().join("run/powerstack/agent.sock");
    rt.block_on(async { serve::bind_unix(&nested).map(|_| ()) }).unwrap();
    assert!(nested.exists());
}

/// A tiny HTTP/1.1 exchange over TCP; returns the status line.
async fn tcp_request(addr: std::net::SocketAddr, target: &str, auth: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    let req = format!(
        "POST {target} HTTP/1.1\r\nHost: agent\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).lines().next().unwrap_or_default().to_string()
}

#[test]
fn a_real_tcp_listener_needs_the_token_for_writes() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let a = agent();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(server(&a).serve_tcp(listener, async {
            let _ = stopped.await;
        }));
        let target = "/v1/jobs/t1/begin";
        assert_eq!(tcp_request(addr, target, None).await, "HTTP/1.1 401 Unauthorized");
        assert_eq!(tcp_request(addr, target, Some("Bearer x")).await, "HTTP/1.1 401 Unauthorized");
        let ok = tcp_request(addr, target, Some("Bearer s3cret")).await;
        assert_eq!(ok, "HTTP/1.1 201 Created");
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    });
    let jobs = a.shared.jobs.lock().unwrap();
    assert!(jobs.get("t1").is_some());
}

/// Pushes `n` samples after the ring's newest, every `DT`, the memory drawing `memory_watts` from
/// then on (the other columns as before). Returns the newest sample's time.
fn draw_memory(shared: &Shared, memory_watts: f64, n: u64) -> u64 {
    let mut ring = shared.ring.lock().unwrap();
    let (mut t, last) = ring.newest().map(|(t, v)| (t, v.to_vec())).unwrap();
    let mut counters = last;
    for _ in 0..n {
        t += DT;
        let s = DT as f64 / 1e6;
        for (c, v) in counters.iter_mut().enumerate() {
            let w = if c == 2 { memory_watts } else { WATTS[c] };
            *v += (w * s / JPT[c]).round() as u64;
        }
        ring.push(t, &counters);
    }
    t
}

/// The cappable limits of the fake node (packages' long-term limits and the GPU's cap), summed.
fn cappable_limits_watts(a: &Agent) -> f64 {
    limit_of(a, DomainKind::Package, 0, "long_term").unwrap()
        + limit_of(a, DomainKind::Package, 1, "long_term").unwrap()
        + limit_of(a, DomainKind::Gpu, 0, "cap").unwrap()
}

fn standing_watts(v: &Value) -> Option<f64> {
    v["node"]["standing_watts"].as_f64()
}

#[tokio::test]
async fn a_node_cap_stands_when_the_uncappable_draw_moves_until_a_domain_write_or_reset() {
    let a = agent();
    let controls = a.controls.clone().unwrap();
    let check = || powerstack_agent::resplit::check(&a.shared, &controls).unwrap();
    let r = post(&a.app, "/v1/caps", root(), Some(json!({"node_watts": 500}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(close(cappable_limits_watts(&a), 480.0), "memory's 20 W charged");
    assert_eq!(standing_watts(&get(&a.app, "/v1/caps").await.json()), Some(500.0));
    let kept = a.state.path().join("state").join(powerstack_agent::standing::FILE);
    assert!(std::fs::read_to_string(&kept).unwrap().contains("500"), "kept before the answer");
    assert!(check().is_none(), "nothing moved");

    // The memory draws 60 W: split again, 60 W charged, the cap made again.
    draw_memory(&a.shared, 60.0, 15);
    let doc = check().expect("a re-split");
    assert!(close(doc.uncappable_watts.unwrap(), 60.0), "{doc:?}");
    let sum = cappable_limits_watts(&a);
    assert!(60.0 + sum <= 500.0 + 0.01 && close(60.0 + sum, 500.0), "{sum}");
    assert!(check().is_none(), "split: nothing moved since");
    let journal = journal(&a);
    assert!(journal.contains("powerstack agent (HTTP, standing node cap)"), "{journal}");
    let metrics = get(&a.app, "/metrics").await.text();
    assert!(metrics.contains("powerstack_agent_node_cap_resplits_total 1"), "{metrics}");

    // Out of reach (350 W uncappable + every minimum > 500 W): the node's lowest, said so.
    draw_memory(&a.shared, 350.0, 15);
    let doc = check().expect("a re-split");
    assert!(doc.clamped, "{doc:?}");
    assert!(close(cappable_limits_watts(&a), 50.0 + 50.0 + 100.0));

    // A domain write ends it: nothing is split again, and nothing is kept.
    let body = json!({"domain": "gpu", "index": 0, "limit_watts": 250});
    let r = post(&a.app, "/v1/caps", root(), Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(standing_watts(&get(&a.app, "/v1/caps").await.json()), None);
    assert!(!kept.exists());
    draw_memory(&a.shared, 20.0, 15);
    assert!(check().is_none());
    assert_eq!(limit_of(&a, DomainKind::Gpu, 0, "cap"), Some(250.0));

    // So does a reset.
    let r = post(&a.app, "/v1/caps", root(), Some(json!({"node_watts": 450}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(kept.exists());
    let r = post(&a.app, "/v1/caps/reset", root(), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(controls.standing.cap().is_none() && !kept.exists());
    draw_memory(&a.shared, 90.0, 15);
    assert!(check().is_none());
    assert_eq!(limit_of(&a, DomainKind::Gpu, 0, "cap"), Some(300.0));
}

#[tokio::test]
async fn a_standing_node_cap_is_kept_across_a_restart_and_split_again_by_the_agent_s_thread() {
    let a = agent();
    let r = post(&a.app, "/v1/caps", root(), Some(json!({"node_watts": 500}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // A new agent on the same state directory (its limits put back, as at a stop).
    let fake = Fake { domains: catalog(), stubborn: a.stubborn.clone(), refuse: a.refuse.clone() };
    let (platform, _) = Platform::new(vec![Box::new(fake)]);
    let root_dir = Root::new(a.state.path());
    let at = StateDir::new(a.state.path().join("state"), NodeId::new(&root_dir, None));
    let controls = Controls::new(platform, root_dir, at).with_resplit_watts(2.0);
    let kept = controls.standing.load(&a.state.path().join("state")).unwrap();
    assert_eq!(kept.map(|c| c.node_watts), Some(500.0));
    let controls = Arc::new(controls);
    let again = Agent {
        app: http::app(a.shared.clone(), Some(controls.clone()), Access::default()),
        controls: Some(controls.clone()),
        shared: a.shared.clone(),
        stubborn: a.stubborn.clone(),
        refuse: a.refuse.clone(),
        state: tempfile::tempdir().unwrap(),
        _etc: etc(),
    };
    assert!(close(cappable_limits_watts(&again), 600.0), "not applied yet");

    // The thread splits it at once (never split by this agent), then again when memory moves.
    let done = Arc::new(AtomicBool::new(false));
    let thread =
        powerstack_agent::resplit::start(a.shared.clone(), controls.clone(), done.clone()).unwrap();
    let wait_for = |uncappable: f64| {
        // A bound against hanging, not a measured duration.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !close(uncappable + cappable_limits_watts(&again), 500.0)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let sum = cappable_limits_watts(&again);
        assert!(uncappable + sum <= 500.0 + 0.01 && close(uncappable + sum, 500.0), "{sum}");
    };
    wait_for(20.0);
    draw_memory(&a.shared, 45.0, 15);
    wait_for(45.0);
    done.store(true, Ordering::Relaxed);
    thread.join().unwrap();
    assert_eq!(controls.standing.resplits.load(Ordering::Relaxed), 2);
    assert_eq!(standing_watts(&get(&again.app, "/v1/caps").await.json()), Some(500.0));
}
