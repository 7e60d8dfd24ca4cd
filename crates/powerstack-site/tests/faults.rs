//! Faults lose nothing and double nothing: the database stopped for 10 s under a pusher that
//! retries as an agent does.

mod common;

use std::time::{Duration, Instant};

use common::pg::PgInstance;
use common::{batch, node_watts, registration};
use powerstack_api::job::DataPresence;
use powerstack_api::site::SiteJobBeginV1;
use powerstack_client::site::Site;
use powerstack_site::SiteConfig;

fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
}

#[test]
fn the_database_stopped_for_ten_seconds_loses_no_sample_and_doubles_none() {
    let pg = PgInstance::start();
    let config =
        SiteConfig { listen: "127.0.0.1:0".into(), database: pg.url(), ..SiteConfig::default() };
    let running = powerstack_site::start(&config).unwrap();
    let site =
        Site::new(&format!("http://{}", running.ready().addr), None, Duration::from_secs(10))
            .unwrap();
    let t0 = now_us() - 5_000_000;
    let stream = "00000000000000f1";
    site.register("n01", stream, &registration(t0)).unwrap();
    let job = SiteJobBeginV1 { id: "f1".into(), nodes: vec!["n01".into()], ..Default::default() };
    let began = site.begin_job(&job).unwrap();
    let mut failures = 0u32;
    let mut stored = 0u64;
    let mut outage: Option<std::thread::JoinHandle<()>> = None;
    let pg = std::sync::Arc::new(pg);
    for k in 0..60u64 {
        let b = batch(k + 1, t0, (0..4).map(|i| t0 + (k * 4 + i) * 1_000_000));
        if k == 10 {
            // The database goes away for 10 s while batches keep coming.
            pg.halt();
            let pg = pg.clone();
            outage = Some(std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(10));
                pg.resume();
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match site.push("n01", stream, &b) {
                Ok(r) => {
                    stored += r.stored;
                    break;
                }
                Err(e) if e.is_transient() && Instant::now() < deadline => {
                    failures += 1;
                    assert!(matches!(e.status(), Some(503) | None), "{e}");
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => panic!("batch {k}: {e}"),
            }
        }
    }
    if let Some(t) = outage {
        t.join().unwrap();
    }
    assert!(failures > 0, "the outage was not seen");
    assert_eq!(stored, 240);
    let ended = loop {
        match site.end_job("f1") {
            Ok(j) => break j,
            Err(e) if e.is_transient() => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => panic!("{e}"),
        }
    };
    let r = site.job_report("f1").unwrap();
    assert_eq!(r.report.total.data_presence, DataPresence::Complete);
    let seconds = (ended.end_unix_us.unwrap() - began.begin_unix_us) as f64 / 1e6;
    let want = node_watts() * seconds;
    assert!(
        (r.report.total.energy_joules - want).abs() < 1e-6 * want,
        "{} vs {want}",
        r.report.total.energy_joules
    );
    assert_eq!(r.report.total.samples, r.report.nodes[0].result.samples);
    let node = &site.nodes().unwrap().nodes[0];
    assert_eq!(node.last_unix_us, Some(t0 + 239 * 1_000_000));
    running.stop().unwrap();
}
