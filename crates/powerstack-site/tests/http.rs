//! The service over HTTP: roles, errors that say what to do, metrics, the OpenAPI document, and
//! two replicas on one PostgreSQL.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{TestDb, batch, registration};
use powerstack_api::job::DataPresence;
use powerstack_api::site::{SiteJobBeginV1, SiteJobsQueryV1};
use powerstack_client::site::{Site, SiteError};
use powerstack_client::{Addr, request};
use powerstack_site::{Running, SiteConfig};

const ADMIN: &str = "admin-token-0123456789";
const SCHED: &str = "scheduler-token-0123456789";
const AGENT1: &str = "agent-n01-token-0123456789";
const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn start(db: &TestDb, tokens: Option<&std::path::Path>) -> Running {
    let config = SiteConfig {
        listen: "127.0.0.1:0".into(),
        database: db.url_text(),
        tokens_file: tokens.map(|p| p.to_path_buf()),
        ..SiteConfig::default()
    };
    powerstack_site::start(&config).unwrap()
}

fn tokens_file(dir: &std::path::Path) -> std::path::PathBuf {
    let f = dir.join("tokens.toml");
    std::fs::write(
        &f,
        format!(
            "[[token]]\ntoken = \"{ADMIN}\"\nrole = \"admin\"\n\n[[token]]\ntoken = \"{SCHED}\"\nrole = \"scheduler\"\n\n\
             [[token]]\ntoken = \"{AGENT1}\"\nrole = \"agent\"\nnode = \"n01\"\n\n\
             [[token]]\ntoken = \"{ALICE}\"\nrole = \"user\"\nuser = \"alice\"\n\n\
             [[token]]\ntoken = \"{BOB}\"\nrole = \"user\"\nuser = \"bob\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    f
}

fn site(r: &Running, token: Option<&str>) -> Site {
    Site::new(
        &format!("http://{}", r.ready().addr),
        token.map(str::to_string),
        Duration::from_secs(10),
    )
    .unwrap()
}

fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
}

fn status(e: SiteError) -> (u16, String) {
    (e.status().unwrap_or(0), e.to_string())
}

#[test]
fn each_role_may_do_what_it_is_for_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite();
    let r = start(&db, Some(&tokens_file(dir.path())));
    let t0 = now_us() - 120_000_000;
    let stream = "0000000000000001";
    let agent = site(&r, Some(AGENT1));
    agent.register("n01", stream, &registration(t0)).unwrap();
    agent.push("n01", stream, &batch(1, t0, (0..60).map(|k| t0 + k * 1_000_000))).unwrap();
    // An agent pushes only its own node's samples.
    let (s, m) = status(agent.register("n02", stream, &registration(t0)).unwrap_err());
    assert_eq!(s, 403, "{m}");
    assert!(m.contains("only its own node"), "{m}");
    // No token, an unknown one.
    let (s, m) = status(site(&r, None).nodes().unwrap_err());
    assert_eq!(s, 401, "{m}");
    assert_eq!(status(site(&r, Some("nope-nope-nope-nope")).nodes().unwrap_err()).0, 401);
    // Only the scheduler (or an admin) writes job records.
    let job = SiteJobBeginV1 {
        id: "j1".into(),
        nodes: vec!["n01".into()],
        user: Some("alice".into()),
        ..Default::default()
    };
    assert_eq!(status(agent.begin_job(&job).unwrap_err()).0, 403);
    assert_eq!(status(site(&r, Some(ALICE)).begin_job(&job).unwrap_err()).0, 403);
    let sched = site(&r, Some(SCHED));
    sched.begin_job(&job).unwrap();
    assert_eq!(status(sched.begin_job(&job).unwrap_err()).0, 409);
    sched.end_job("j1").unwrap();
    // Alice reads her job; Bob does not see it exists; an agent reads no job.
    let alice = site(&r, Some(ALICE));
    let report = alice.job_report("j1").unwrap();
    assert_eq!(report.job.user.as_deref(), Some("alice"));
    assert_eq!(report.report.nodes.len(), 1);
    let bob = site(&r, Some(BOB));
    assert_eq!(status(bob.job_report("j1").unwrap_err()).0, 404);
    assert_eq!(status(bob.job_timeseries("j1", None).unwrap_err()).0, 404);
    assert_eq!(status(agent.job_report("j1").unwrap_err()).0, 403);
    // Listings: a user's are their own; asking for another's is refused.
    assert_eq!(alice.jobs(&SiteJobsQueryV1::default()).unwrap().jobs.len(), 1);
    assert!(bob.jobs(&SiteJobsQueryV1::default()).unwrap().jobs.is_empty());
    let others = SiteJobsQueryV1 { user: Some("alice".into()), ..Default::default() };
    assert_eq!(status(bob.jobs(&others).unwrap_err()).0, 403);
    assert_eq!(site(&r, Some(ADMIN)).jobs(&others).unwrap().jobs.len(), 1);
    r.stop().unwrap();
}

#[test]
fn bad_requests_get_a_clear_4xx_and_change_nothing() {
    let db = TestDb::sqlite();
    let r = start(&db, None);
    let addr = Addr::parse(&r.ready().addr.to_string()).unwrap();
    let send = |method: &str, path: &str, body: Option<&str>| {
        request(&addr, method, path, body, None, Duration::from_secs(10)).unwrap()
    };
    let stream = "0000000000000002";
    let t0 = now_us() - 60_000_000;
    let s = site(&r, None);
    s.register("n01", stream, &registration(t0)).unwrap();
    let a = send(
        "POST",
        &format!("/v1/nodes/n01/streams/{stream}/batches"),
        Some("{\"seq\": 1, \"samples\": [[1, \"x\"]]}"),
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("samples[0][1]"), "{}", a.body);
    let a = send("POST", "/v1/nodes/n01/streams/NOTHEX/batches", Some("{}"));
    assert_eq!(a.status, 400);
    assert!(a.body.contains("16 lowercase hex digits"), "{}", a.body);
    let a = send("POST", "/v1/jobs", Some("{\"id\": \"a b\", \"nodes\": [\"n01\"]}"));
    assert_eq!(a.status, 400);
    assert!(a.body.contains("job id"), "{}", a.body);
    let a = send("POST", "/v1/jobs", Some("{\"id\": \"x\", \"nodes\": [\"n01\", \"n01\"]}"));
    assert!(a.status == 400 && a.body.contains("named twice"), "{}", a.body);
    // Allocations name the job's nodes, each once.
    for (alloc, says) in [
        (r#"[{"node": "n02", "cpus": 4}]"#, "not one of the job's nodes"),
        (r#"[{"node": "n01", "cpus": 4}, {"node": "n01", "gpus": [0]}]"#, "n01"),
        (r#"[{"node": "n01", "cpus": 0}]"#, "cpus"),
    ] {
        let body = format!(r#"{{"id": "y", "nodes": ["n01"], "allocations": {alloc}}}"#);
        let a = send("POST", "/v1/jobs", Some(&body));
        assert!(a.status == 400 && a.body.contains(says), "{alloc}: {} {}", a.status, a.body);
    }
    let a = send("GET", "/v1/jobs?since=yesterday", None);
    assert_eq!(a.status, 400, "{}", a.body);
    let a = send("GET", "/v1/nope", None);
    assert_eq!(a.status, 404);
    // A body announced larger than the limit is refused before it is sent.
    let mut conn = std::net::TcpStream::connect(r.ready().addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST /v1/nodes/n01/streams/{stream}/batches HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        17 << 20
    );
    std::io::Write::write_all(&mut conn, head.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut conn, &mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("send fewer samples"), "{answer}");
    // Nothing of the above was stored.
    let n = s.nodes().unwrap();
    assert_eq!(n.nodes.len(), 1);
    assert_eq!(n.nodes[0].last_unix_us, None);
    assert!(s.jobs(&SiteJobsQueryV1::default()).unwrap().jobs.is_empty());
    r.stop().unwrap();
}

#[test]
fn metrics_and_the_openapi_document_describe_the_service() {
    let db = TestDb::sqlite();
    let r = start(&db, None);
    let s = site(&r, None);
    let t0 = now_us() - 30_000_000;
    let stream = "0000000000000003";
    s.register("n01", stream, &registration(t0)).unwrap();
    let b = batch(1, t0, (0..25).map(|k| t0 + k * 1_000_000));
    s.push("n01", stream, &b).unwrap();
    s.push("n01", stream, &b).unwrap();
    let addr = Addr::parse(&r.ready().addr.to_string()).unwrap();
    let m = request(&addr, "GET", "/metrics", None, None, Duration::from_secs(10)).unwrap();
    assert_eq!(m.status, 200);
    for line in [
        "powerstack_site_samples_stored_total 25",
        "powerstack_site_batches_stored_total 1",
        "powerstack_site_batches_duplicate_total 1",
        "powerstack_site_nodes_fresh 1",
    ] {
        assert!(m.body.contains(line), "{line} missing:\n{}", m.body);
    }
    let power = s.power().unwrap();
    assert!((power.power_watts - common::node_watts()).abs() < 1e-6, "{power:?}");
    if let Some(out) = common::promtool(&m.body) {
        assert!(out.status.success(), "promtool: {}", String::from_utf8_lossy(&out.stderr));
    }
    let doc =
        request(&addr, "GET", "/v1/openapi.json", None, None, Duration::from_secs(10)).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&doc.body).unwrap();
    assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.1")), Some(true));
    let paths: Vec<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    for p in [
        "/v1/nodes/{node}/streams/{stream}/batches",
        "/v1/jobs/{id}/timeseries",
        "/v1/site/power",
        "/metrics",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    r.stop().unwrap();
}

#[test]
fn two_replicas_on_one_postgresql_store_every_sample_once_and_agree() {
    let rt = runtime();
    let db = rt.block_on(TestDb::postgres());
    let (a, b) = (start(&db, None), start(&db, None));
    let (sa, sb) = (site(&a, None), site(&b, None));
    // Samples from 10 s ago to 190 s ahead (the site takes samples up to 300 s ahead of its clock).
    let t0 = now_us() - 10_000_000;
    let stream = "0000000000000004";
    sa.register("n01", stream, &registration(t0)).unwrap();
    sb.register("n01", stream, &registration(t0)).unwrap();
    let job = SiteJobBeginV1 { id: "r1".into(), nodes: vec!["n01".into()], ..Default::default() };
    let began = sa.begin_job(&job).unwrap();
    assert_eq!(status(sb.begin_job(&job).unwrap_err()).0, 409);
    // Batches alternate between the replicas; each is also resent to the other one.
    let mut stored = 0;
    for k in 0..20u64 {
        let b = batch(k + 1, t0, (0..10).map(|i| t0 + (k * 10 + i) * 1_000_000));
        let (first, second) = if k % 2 == 0 { (&sa, &sb) } else { (&sb, &sa) };
        stored += first.push("n01", stream, &b).unwrap().stored;
        let again = second.push("n01", stream, &b).unwrap();
        assert!(again.duplicate && again.stored == 0);
    }
    assert_eq!(stored, 200);
    // Running, the listing carries its figures so far.
    let listed = sa.jobs(&SiteJobsQueryV1::default()).unwrap().jobs;
    let r1 = listed.iter().find(|j| j.id == "r1").unwrap();
    assert_eq!(r1.end_unix_us, None);
    assert!(r1.energy_joules.is_some_and(|e| e > 0.0), "{r1:?}");
    let mean = r1.mean_power_watts.unwrap();
    assert!((mean - common::node_watts()).abs() < 1e-6 * mean, "{r1:?}");
    let ended = sb.end_job("r1").unwrap();
    let (ra, rb) = (sa.job_report("r1").unwrap(), sb.job_report("r1").unwrap());
    assert_eq!(ra.report, rb.report);
    assert_eq!(ra.job.nodes, vec!["n01"]);
    assert!(ra.job.settled);
    assert_eq!(ra.report.total.data_presence, DataPresence::Complete);
    let seconds = (ended.end_unix_us.unwrap() - began.begin_unix_us) as f64 / 1e6;
    let want = common::node_watts() * seconds;
    assert!(
        (ra.report.total.energy_joules - want).abs() < 1e-6 * want,
        "{} vs {want}",
        ra.report.total.energy_joules
    );
    assert_eq!(sa.nodes().unwrap(), sb.nodes().unwrap());
    a.stop().unwrap();
    b.stop().unwrap();
    rt.block_on(db.drop_database());
}
