//! `powerstack site serve` as a process: killed with SIGKILL in the middle of ingest and started
//! again on the same database, with pushers that resend what was not answered, stores every
//! sample exactly once.

mod common;
// The test site CA of the site service's tests.
#[path = "../../powerstack-site/tests/common/pki.rs"]
mod pki;

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::site::{serve, settled_report};
use common::{Proc, bin, stderr_until};
use powerstack_api::job::DataPresence;
use powerstack_api::site::{BatchV1, SiteJobBeginV1, StreamDomainV1, StreamRegisterV1};
use powerstack_client::site::Site;

const NODES: usize = 4;
const BATCHES: u64 = 200;
const PER_BATCH: u64 = 10;
const STEP_US: u64 = 10_000;
/// Watts of the one column (a node domain): 500 W, in µJ ticks.
const WATTS: f64 = 500.0;

fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
}

fn registration(t0: u64) -> StreamRegisterV1 {
    StreamRegisterV1 {
        hostname: "test".into(),
        simulated: None,
        started_unix_us: t0,
        domains: vec![StreamDomainV1 {
            domain: "node".into(),
            index: 0,
            die: None,
            provider: "test".into(),
            joules_per_tick: 1e-6,
            read: true,
            limit_watts: None,
            max_power_watts: Some(1000.0),
        }],
        topology: None,
        control_url: None,
    }
}

fn batch(seq: u64, t0: u64) -> BatchV1 {
    let samples = (0..PER_BATCH)
        .map(|i| {
            let k = (seq - 1) * PER_BATCH + i;
            let t = t0 + k * STEP_US;
            vec![t, (WATTS * (k * STEP_US) as f64) as u64]
        })
        .collect();
    BatchV1 { seq, samples }
}

#[test]
fn the_site_killed_mid_ingest_and_started_again_stores_every_sample_once() {
    let state = tempfile::tempdir().unwrap();
    let (first, url) = serve(state.path());
    let url = Arc::new(Mutex::new(url));
    let site = |u: &str| Site::new(u, None, Duration::from_secs(5)).unwrap();
    // Samples from 1 s from now, 10 ms apart: a job begun now covers them all.
    let t0 = now_us() + 1_000_000;
    let streams: Vec<String> = (0..NODES).map(|n| format!("{:016x}", 0xa0 + n)).collect();
    let s = site(&url.lock().unwrap());
    for (n, stream) in streams.iter().enumerate() {
        s.register(&format!("n{n}"), stream, &registration(t0)).unwrap();
    }
    let job = SiteJobBeginV1 {
        id: "k1".into(),
        nodes: (0..NODES).map(|n| format!("n{n}")).collect(),
        ..Default::default()
    };
    s.begin_job(&job).unwrap();
    let acked = Arc::new(AtomicUsize::new(0));
    let pushers: Vec<_> = streams
        .iter()
        .enumerate()
        .map(|(n, stream)| {
            let (url, acked, stream) = (url.clone(), acked.clone(), stream.clone());
            std::thread::spawn(move || {
                for seq in 1..=BATCHES {
                    let b = batch(seq, t0);
                    let deadline = Instant::now() + Duration::from_secs(60);
                    loop {
                        let u = url.lock().unwrap().clone();
                        match Site::new(&u, None, Duration::from_secs(5)).unwrap().push(
                            &format!("n{n}"),
                            &stream,
                            &b,
                        ) {
                            Ok(_) => break,
                            Err(e) if e.is_transient() && Instant::now() < deadline => {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            Err(e) => panic!("n{n} batch {seq}: {e}"),
                        }
                    }
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // A third of the way in, the service is killed and started again on the same database.
    while acked.load(Ordering::Relaxed) < (NODES as u64 * BATCHES / 3) as usize {
        std::thread::sleep(Duration::from_millis(5));
    }
    first.signal(libc::SIGKILL);
    drop(first);
    let (second, new_url) = serve(state.path());
    *url.lock().unwrap() = new_url.clone();
    for p in pushers {
        p.join().unwrap();
    }
    let s = site(&new_url);
    // The job ends after its last sample.
    let last = t0 + (BATCHES * PER_BATCH - 1) * STEP_US;
    while now_us() <= last + 100_000 {
        std::thread::sleep(Duration::from_millis(100));
    }
    s.end_job("k1").unwrap();
    let r = s.job_report("k1").unwrap();
    let span_s = ((BATCHES * PER_BATCH - 1) * STEP_US) as f64 / 1e6;
    for node in &r.report.nodes {
        let n = &node.result;
        assert_eq!(n.samples, BATCHES * PER_BATCH, "{}: every sample once", n.hostname);
        assert!(
            (n.energy_joules - WATTS * span_s).abs() < 1e-3,
            "{}: {} J",
            n.hostname,
            n.energy_joules
        );
        assert_eq!(n.data_presence, DataPresence::Partial, "the job began before the first sample");
    }
    assert_eq!(r.report.total.samples, NODES as u64 * BATCHES * PER_BATCH);
    drop(second);
}

#[test]
fn up_runs_an_agent_that_pushes_to_its_embedded_site_which_records_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let n = common::Node::new("intel-2s");
    let db = format!("sqlite:{}", dir.path().join("site.db").display());
    let mut child = bin()
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--site-listen",
            "127.0.0.1:0",
            "--database",
            &db,
            "--root",
        ])
        .arg(n.root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_until(&mut child, "Ctrl-C to stop");
    let _up = Proc(child);
    let line = lines
        .iter()
        .find(|l| l.starts_with("powerstack site on http://"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    let addr =
        line.split("http://").nth(1).unwrap().split(':').take(2).collect::<Vec<_>>().join(":");
    assert!(lines.iter().any(|l| l.contains("job begin ID --site http://")), "{lines:?}");
    let s = Site::new(&format!("http://{addr}"), None, Duration::from_secs(5)).unwrap();
    // The agent registers and pushes within a few seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    let node = loop {
        let nodes = s.nodes().unwrap().nodes;
        if let Some(n) = nodes.iter().find(|n| n.power_watts.is_some()) {
            break n.clone();
        }
        assert!(Instant::now() < deadline, "no node with power at the site: {nodes:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(node.simulated.as_deref(), Some("intel-2s"));
    let job =
        SiteJobBeginV1 { id: "u1".into(), nodes: vec![node.name.clone()], ..Default::default() };
    s.begin_job(&job).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    s.end_job("u1").unwrap();
    // Settled once the agent's samples reach past the end.
    let r = settled_report(&s, "u1");
    let n0 = &r.report.nodes[0].result;
    assert_eq!(n0.data_presence, DataPresence::Complete, "{n0:?} {:?}", r.job);
    // The simulated intel-2s node draws about 287 W (psys).
    assert!((n0.node_power - 287.0).abs() < 0.03 * 287.0, "{n0:?}");
}

#[test]
fn an_agent_killed_mid_job_and_started_again_pushes_what_it_had_spooled() {
    let state = tempfile::tempdir().unwrap();
    let (_site, url) = serve(state.path());
    let s = Site::new(&url, None, Duration::from_secs(5)).unwrap();
    let n = common::Node::new("intel-2s");
    let with_site = |c: &mut std::process::Command| {
        c.args(["--site", &url, "--node-name", "n1"]);
    };
    let wait_for_stream = |not: Option<String>| -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let nodes = s.nodes().unwrap().nodes;
            if let Some(node) = nodes.iter().find(|x| x.name == "n1" && x.power_watts.is_some())
                && Some(&node.stream) != not.as_ref()
            {
                return node.stream.clone();
            }
            assert!(Instant::now() < deadline, "no pushing stream for n1: {nodes:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let (agent, _) = n.agent_with(with_site);
    let first = wait_for_stream(None);
    let job = SiteJobBeginV1 { id: "a1".into(), nodes: vec!["n1".into()], ..Default::default() };
    let began = s.begin_job(&job).unwrap();
    std::thread::sleep(Duration::from_secs(6));
    agent.signal(libc::SIGKILL);
    drop(agent);
    let killed = now_us();
    std::thread::sleep(Duration::from_secs(2));
    // Started again on the same state directory: a new stream, after the old spool.
    let (_agent, _) = n.agent_with(with_site);
    let second = wait_for_stream(Some(first.clone()));
    assert_ne!(first, second);
    std::thread::sleep(Duration::from_secs(3));
    let ended = s.end_job("a1").unwrap();
    let r = settled_report(&s, "a1");
    let n1 = &r.report.nodes[0].result;
    // Around the restart: Partial, no energy claimed across the gap, the power still the node's.
    assert_eq!(n1.data_presence, DataPresence::Partial, "{n1:?}");
    assert!((n1.node_power - 287.0).abs() < 0.03 * 287.0, "{n1:?}");
    // What the first run took before it was killed was delivered: samples a second apart from
    // the job's beginning to within two seconds of the kill (at least 4), then at least 3 of the
    // second run's; without the first run's spool there would be the second's alone.
    let end = ended.end_unix_us.unwrap();
    let before_kill = (killed - began.begin_unix_us) / 1_000_000;
    assert!(
        n1.samples > before_kill,
        "{} samples; {before_kill} s before the kill: {n1:?}",
        n1.samples
    );
    assert!(n1.energy_joules < 287.0 * 1.03 * (end - began.begin_unix_us) as f64 / 1e6, "{n1:?}");
}

#[test]
fn over_tls_the_agent_pushes_and_the_job_commands_record_and_report_with_the_site_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new(dir.path(), "ca");
    let cert = ca.server(dir.path(), "site", &["127.0.0.1", "localhost"]);
    let mut child = bin()
        .args(["site", "serve", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(dir.path())
        .arg("--tls-cert")
        .arg(&cert.cert_file)
        .arg("--tls-key")
        .arg(&cert.key_file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_until(&mut child, "powerstack site on https://");
    let _site = Proc(child);
    let port = lines.last().unwrap().split("https://127.0.0.1:").nth(1).unwrap();
    let url = format!("https://127.0.0.1:{}", port.split(':').next().unwrap());
    let ca_file = ca.cert_file.to_str().unwrap().to_string();
    let n = common::Node::new("intel-2s");
    let (_agent, _) = n.agent_with(|c| {
        c.args(["--site", &url, "--site-ca", &ca_file, "--node-name", "n1"]);
    });
    let s = Site::new(&url, None, Duration::from_secs(5))
        .unwrap()
        .with_ca_file(Some(&ca.cert_file))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s.nodes().unwrap().nodes.iter().any(|x| x.name == "n1" && x.power_watts.is_some()) {
        assert!(Instant::now() < deadline, "the agent pushes nothing over TLS");
        std::thread::sleep(Duration::from_millis(200));
    }
    let job = |args: &[&str]| {
        let out = bin().args(args).args(["--site", &url, "--site-ca", &ca_file]).output().unwrap();
        let (stdout, stderr) =
            (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code(), stdout.into_owned(), stderr.into_owned())
    };
    let (code, _, err) = job(&["job", "begin", "t1", "--nodes", "n1", "--no-agents"]);
    assert_eq!(code, Some(0), "{err}");
    std::thread::sleep(Duration::from_secs(3));
    let (code, _, err) = job(&["job", "end", "t1", "--no-agents"]);
    assert_eq!(code, Some(0), "{err}");
    // Complete once the agent's samples reach past the end.
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let (code, out, err) = job(&["job", "report", "-j", "t1", "--format", "json"]);
        if code == Some(0) {
            break serde_json::from_str::<serde_json::Value>(&out).unwrap();
        }
        assert!(Instant::now() < deadline, "no complete report: {code:?} {err}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(report["total"]["data_presence"], "Complete", "{report}");
    assert_eq!(report["nodes"][0]["hostname"], "n1", "{report}");
    assert!(report["total"]["samples"].as_u64().unwrap() >= 2, "{report}");
    // Without the CA the command says what to give.
    let out = bin().args(["jobs", "--site", &url]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--site-ca FILE"), "{err}");
}
