//! The store on both databases: ingest checks, exactly-once, job figures from the stored
//! counters, settling, restarts, time series.

mod common;

use common::{TestDb, batch, node_watts, registration, sample};
use powerstack_api::job::DataPresence;
use powerstack_api::site::{BatchV1, SiteJobBeginV1};
use powerstack_site::report::{ReportSettings, job_report, settle, timeseries};
use powerstack_site::store::{IngestLimits, Store, StoreError};

const S: u64 = 1_000_000;
const T0: u64 = 1_780_000_000 * S;
const STREAM: &str = "00000000000000a1";

async fn registered(store: &Store, node: &str, stream: &str, t0: u64) {
    let r = store.register(node, stream, &registration(t0), t0).await.unwrap();
    assert_eq!(r.last_unix_us, None);
}

fn job(id: &str, nodes: &[&str]) -> SiteJobBeginV1 {
    SiteJobBeginV1 {
        id: id.into(),
        nodes: nodes.iter().map(|n| n.to_string()).collect(),
        user: Some("alice".into()),
        account: Some("physics".into()),
        app: Some("lammps".into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_stored_once_and_impossible_ones_are_refused_on_both_databases() {
    for db in TestDb::both().await {
        let store = db.store().await;
        let kind = db.kind;
        let limits = IngestLimits::default();
        let now = T0 + 3600 * S;
        registered(&store, "n01", STREAM, T0).await;
        let b1 = batch(1, T0, (0..10).map(|k| T0 + k * S));
        let r = store.ingest("n01", STREAM, &b1, now, &limits).await.unwrap();
        assert_eq!((r.stored, r.duplicate), (10, false), "{kind}");
        // A resend is answered and not stored again.
        let again = store.ingest("n01", STREAM, &b1, now, &limits).await.unwrap();
        assert_eq!((again.stored, again.duplicate), (0, true), "{kind}");
        // Re-registering answers where the stream stands.
        let reg = store.register("n01", STREAM, &registration(T0), now).await.unwrap();
        assert_eq!(reg.last_unix_us, Some(T0 + 9 * S), "{kind}");
        let err = |e: StoreError| (e.status(), e.to_string());
        // Samples not after the stored ones: the clock went back.
        let back = batch(2, T0, [T0 + 5 * S + S / 2]);
        let (status, msg) =
            err(store.ingest("n01", STREAM, &back, now, &limits).await.unwrap_err());
        assert_eq!(status, 409, "{kind}: {msg}");
        assert!(msg.contains("not after"), "{msg}");
        // A counter that goes back.
        let mut dec = batch(2, T0, [T0 + 11 * S]);
        dec.samples[0][1] = 5;
        let (status, msg) = err(store.ingest("n01", STREAM, &dec, now, &limits).await.unwrap_err());
        assert_eq!(status, 422, "{kind}: {msg}");
        assert!(msg.contains("went back"), "{msg}");
        // A counter faster than the domain can draw.
        let mut fast = batch(2, T0, [T0 + 11 * S]);
        fast.samples[0][1] *= 1000;
        let (status, msg) =
            err(store.ingest("n01", STREAM, &fast, now, &limits).await.unwrap_err());
        assert_eq!(status, 422, "{kind}: {msg}");
        assert!(msg.contains("beyond what it can draw"), "{msg}");
        // The wrong width, times ahead of the clock, too many samples.
        let narrow = BatchV1 { seq: 2, samples: vec![vec![T0 + 11 * S, 1]] };
        assert_eq!(
            err(store.ingest("n01", STREAM, &narrow, now, &limits).await.unwrap_err()).0,
            422
        );
        let ahead = batch(2, T0, [now + 3600 * S]);
        assert!(
            err(store.ingest("n01", STREAM, &ahead, now, &limits).await.unwrap_err())
                .1
                .contains("ahead")
        );
        let many = batch(2, T0, (0..3601).map(|k| T0 + (20 + k) * S));
        assert!(
            err(store.ingest("n01", STREAM, &many, now, &limits).await.unwrap_err())
                .1
                .contains("split it")
        );
        // Another node's stream, an unknown stream.
        let other = batch(2, T0, [T0 + 11 * S]);
        assert_eq!(
            err(store.ingest("n02", STREAM, &other, now, &limits).await.unwrap_err()).0,
            409
        );
        assert_eq!(
            err(store.ingest("n01", "00000000000000ff", &other, now, &limits).await.unwrap_err()).0,
            404
        );
        // None of the refusals stored anything: the next good batch goes on from sample 10.
        let good = store.ingest("n01", STREAM, &other, now, &limits).await.unwrap();
        assert_eq!(good.stored, 1, "{kind}");
        let nodes = store.nodes(now).await.unwrap();
        assert_eq!(nodes.len(), 1);
        let stream = nodes[0].1.as_ref().unwrap();
        assert_eq!(stream.last_us, Some(T0 + 11 * S));
        let p = stream.power_watts.unwrap();
        assert!((p - node_watts()).abs() < 1e-6, "{kind}: {p}");
        // Registering the stream with other columns is a conflict.
        let mut changed = registration(T0);
        changed.domains.pop();
        assert_eq!(err(store.register("n01", STREAM, &changed, now).await.unwrap_err()).0, 409);
        store.db().close().await;
        db.drop_database().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_figures_come_from_the_stored_counters_and_settle_when_the_samples_pass_its_end() {
    for db in TestDb::both().await {
        let store = db.store().await;
        let kind = db.kind;
        let limits = IngestLimits::default();
        let settings = ReportSettings::default();
        for (node, stream) in [("n01", "00000000000000b1"), ("n02", "00000000000000b2")] {
            registered(&store, node, stream, T0).await;
            store
                .ingest(
                    node,
                    stream,
                    &batch(1, T0, (0..=60).map(|k| T0 + k * S)),
                    T0 + 61 * S,
                    &limits,
                )
                .await
                .unwrap();
        }
        store.begin_job(&job("42", &["n01", "n02"]), T0 + 10 * S + S / 2).await.unwrap();
        // Running: figures up to the newest sample.
        let running = job_report(&store, "42", T0 + 61 * S, &settings).await.unwrap();
        assert!(
            running.job.end_unix_us.is_none() && running.report.nodes[0].result.running,
            "{kind}"
        );
        store.end_job("42", T0 + 70 * S + S / 2).await.unwrap();
        // Ended, but n01's samples stop at 60 s: not settled, Partial.
        let r = job_report(&store, "42", T0 + 71 * S, &settings).await.unwrap();
        assert!(!r.job.settled, "{kind}");
        assert_eq!(r.report.total.data_presence, DataPresence::Partial, "{kind}");
        // The rest arrives (one node's agent spooled it); the job settles, exact.
        for (node, stream) in [("n01", "00000000000000b1"), ("n02", "00000000000000b2")] {
            store
                .ingest(
                    node,
                    stream,
                    &batch(2, T0, (61..=80).map(|k| T0 + k * S)),
                    T0 + 81 * S,
                    &limits,
                )
                .await
                .unwrap();
        }
        assert_eq!(settle(&store, T0 + 82 * S, &settings, 10).await.unwrap(), 1);
        let r = job_report(&store, "42", T0 + 90 * S, &settings).await.unwrap();
        assert!(r.job.settled, "{kind}");
        let seconds = 60.0;
        let want = node_watts() * seconds;
        for n in &r.report.nodes {
            assert_eq!(n.result.data_presence, DataPresence::Complete, "{kind}");
            assert!(
                (n.result.energy_joules - want).abs() < 1e-3,
                "{kind}: {} vs {want}",
                n.result.energy_joules
            );
            assert!((n.result.node_power - node_watts()).abs() < 1e-6);
            assert!((n.result.peak_node_power - node_watts()).abs() < 1e-6);
            assert!((n.result.domain_power["gpu_power_0"] - 300.0).abs() < 1e-6);
            assert!((n.result.domain_power["cpu_power_1"] - 140.0).abs() < 1e-6);
            assert!((n.result.domain_power["mem_power_0"] - 20.0).abs() < 1e-6);
        }
        assert!((r.report.total.energy_joules - 2.0 * want).abs() < 1e-3);
        assert_eq!(r.job.energy_joules.map(|e| (e - 2.0 * want).abs() < 1e-3), Some(true));
        // The kept figures stand after the raw samples expire.
        store.expire(T0 + 100 * S, T0 + 100 * S).await.unwrap();
        let kept = job_report(&store, "42", T0 + 200 * S, &settings).await.unwrap();
        assert_eq!(kept.report, r.report, "{kind}");
        // Listing by user and time.
        let (jobs, truncated) = store
            .jobs(&powerstack_site::store::JobsFilter {
                user: Some("alice".into()),
                since_us: Some(T0),
                until_us: None,
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!((jobs.len(), truncated), (1, false));
        assert_eq!(jobs[0].nodes, vec!["n01", "n02"]);
        let (none, _) = store
            .jobs(&powerstack_site::store::JobsFilter {
                user: Some("bob".into()),
                since_us: None,
                until_us: None,
                limit: 10,
            })
            .await
            .unwrap();
        assert!(none.is_empty());
        assert_eq!(store.begin_job(&job("42", &["n01"]), T0).await.unwrap_err().status(), 409);
        store.db().close().await;
        db.drop_database().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_restart_is_a_new_stream_and_the_job_is_partial_around_the_gap() {
    for db in TestDb::both().await {
        let store = db.store().await;
        let kind = db.kind;
        let limits = IngestLimits::default();
        let (a, b) = ("00000000000000c1", "00000000000000c2");
        registered(&store, "n01", a, T0).await;
        store
            .ingest("n01", a, &batch(1, T0, (0..=30).map(|k| T0 + k * S)), T0 + 100 * S, &limits)
            .await
            .unwrap();
        // The agent restarts at 40 s: counters start again from 0 in a new stream.
        let t1 = T0 + 40 * S;
        registered(&store, "n01", b, t1).await;
        store
            .ingest("n01", b, &batch(1, t1, (40..=80).map(|k| T0 + k * S)), T0 + 100 * S, &limits)
            .await
            .unwrap();
        store.begin_job(&job("7", &["n01"]), T0 + 10 * S).await.unwrap();
        store.end_job("7", T0 + 70 * S).await.unwrap();
        let r = job_report(&store, "7", T0 + 100 * S, &ReportSettings::default()).await.unwrap();
        let n = &r.report.nodes[0].result;
        assert_eq!(n.data_presence, DataPresence::Partial, "{kind}");
        // 20 s before the restart and 30 s after: the 10 s gap is not claimed.
        let want = node_watts() * 50.0;
        assert!((n.energy_joules - want).abs() < 1e-3, "{kind}: {} vs {want}", n.energy_joules);
        assert!((n.node_power - node_watts()).abs() < 1e-6, "{kind}");
        assert!(r.job.settled);
        // The time series: 10 s steps, the gap's steps empty.
        let t = timeseries(&store, "7", Some(10 * S), T0 + 100 * S).await.unwrap();
        let w = &t.nodes[0].watts;
        assert_eq!(w.len(), 6, "{kind}");
        assert!((w[0].unwrap() - node_watts()).abs() < 1e-6);
        assert_eq!(w[2], None, "{kind}: {w:?}");
        assert!((w[5].unwrap() - node_watts()).abs() < 1e-6);
        // By minutes, from the rollups (derived in the background; here, now).
        store.roll_up(T0 + 400 * S).await.unwrap();
        let m = timeseries(&store, "7", Some(60 * S), T0 + 100 * S).await.unwrap();
        assert_eq!(m.nodes[0].watts.len(), 1);
        let _ = sample(T0, T0);
        store.db().close().await;
        db.drop_database().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_refuses_a_bad_batch_alone_and_takes_two_batches_of_a_stream_in_order() {
    use powerstack_site::store::BatchIn;
    for db in TestDb::both().await {
        let store = db.store().await;
        let kind = db.kind;
        let (a, b) = ("00000000000000d1", "00000000000000d2");
        registered(&store, "n01", a, T0).await;
        registered(&store, "n02", b, T0).await;
        let now = T0 + 3600 * S;
        let one = |node: &str, stream: &str, batch: BatchV1| BatchIn {
            node: node.into(),
            stream: stream.into(),
            batch,
            now_us: now,
        };
        let mut bad = batch(2, T0, [T0 + 20 * S]);
        bad.samples[0][2] = 0;
        let group = vec![
            one("n01", a, batch(1, T0, (0..10).map(|k| T0 + k * S))),
            one("n02", b, batch(1, T0, (0..10).map(|k| T0 + k * S))),
            one("n01", a, batch(1, T0, (0..10).map(|k| T0 + k * S))),
            one("n02", b, bad),
            one("n01", a, batch(2, T0, (10..20).map(|k| T0 + k * S))),
            one("n02", b, batch(3, T0, (10..20).map(|k| T0 + k * S))),
            one("n01", "00000000000000d9", batch(1, T0, [T0])),
        ];
        let answers = store.ingest_group(&group, &IngestLimits::default()).await.unwrap();
        let got: Vec<Result<(u64, bool), u16>> = answers
            .into_iter()
            .map(|r| r.map(|a| (a.stored, a.duplicate)).map_err(|e| e.status()))
            .collect();
        assert_eq!(
            got,
            vec![
                Ok((10, false)),
                Ok((10, false)),
                Ok((0, true)),
                Err(422),
                Ok((10, false)),
                Ok((10, false)),
                Err(404)
            ],
            "{kind}"
        );
        store.begin_job(&job("g", &["n01", "n02"]), T0 + 2 * S).await.unwrap();
        store.end_job("g", T0 + 18 * S).await.unwrap();
        let r = job_report(&store, "g", now, &ReportSettings::default()).await.unwrap();
        assert!(r.job.settled, "{kind}");
        let want = 2.0 * node_watts() * 16.0;
        assert!(
            (r.report.total.energy_joules - want).abs() < 1e-3,
            "{kind}: {}",
            r.report.total.energy_joules
        );
        assert_eq!(r.report.total.samples, 2 * 17, "{kind}");
        store.db().close().await;
        db.drop_database().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_larger_than_a_planning_chunk_is_checked_in_order_across_chunks() {
    use powerstack_site::store::BatchIn;
    // The group is planned and written a chunk (1,024 batches) at a time: a resend and a clock
    // that went back, chunks after the samples they repeat, are still answered as such.
    for db in TestDb::both().await {
        let store = db.store().await;
        let kind = db.kind;
        let a = "00000000000000e1";
        registered(&store, "n01", a, T0).await;
        let now = T0 + 4000 * S;
        let one =
            |batch: BatchV1| BatchIn { node: "n01".into(), stream: a.into(), batch, now_us: now };
        let mut group: Vec<BatchIn> =
            (0..3000).map(|k| one(batch(k + 1, T0, [T0 + k * S]))).collect();
        // Batch 6 sent again, and a sample at 7 s that differs from the stored one.
        group.insert(2100, one(batch(6, T0, [T0 + 5 * S])));
        let mut back = batch(9000, T0, [T0 + 7 * S]);
        back.samples[0][1] += 1;
        group.insert(1500, one(back));
        let answers = store.ingest_group(&group, &IngestLimits::default()).await.unwrap();
        assert_eq!(answers.len(), 3002, "{kind}");
        let status =
            |i: usize| answers[i].as_ref().map(|a| (a.stored, a.duplicate)).map_err(|e| e.status());
        assert_eq!(status(1500), Err(409), "{kind}");
        assert_eq!(status(2101), Ok((0, true)), "{kind}");
        let stored: u64 = answers.iter().filter_map(|a| a.as_ref().ok()).map(|a| a.stored).sum();
        assert_eq!(stored, 3000, "{kind}");
        store.roll_up(now).await.unwrap();
        store.begin_job(&job("c", &["n01"]), T0).await.unwrap();
        store.end_job("c", T0 + 2999 * S).await.unwrap();
        let r = job_report(&store, "c", now, &ReportSettings::default()).await.unwrap();
        assert_eq!(r.report.total.samples, 3000, "{kind}");
        let want = node_watts() * 2999.0;
        assert!((r.report.total.energy_joules - want).abs() < 1e-3 * want, "{kind}: {r:?}");
        store.db().close().await;
        db.drop_database().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_job_reads_minutes_between_its_edges_and_stays_exact() {
    for db in TestDb::both().await {
        let store = db.store().await;
        let kind = db.kind;
        let stream = "00000000000000e1";
        registered(&store, "n01", stream, T0).await;
        // 30 minutes at 1 Hz; one second at 1 kW more on the GPU (counter ticks of 1 mJ).
        let spike_at = 900u64;
        let row = |k: u64| {
            let mut r = sample(T0, T0 + k * S);
            if k > spike_at {
                r[5] += 1_000_000;
            }
            r
        };
        let samples: Vec<Vec<u64>> = (0..=1800).map(row).collect();
        for (n, chunk) in samples.chunks(600).enumerate() {
            let b = BatchV1 { seq: n as u64 + 1, samples: chunk.to_vec() };
            store.ingest("n01", stream, &b, T0 + 3600 * S, &IngestLimits::default()).await.unwrap();
        }
        for _ in 0..10 {
            store.roll_up(T0 + 3600 * S).await.unwrap();
        }
        let (begin, end) = (T0 + 100 * S + S / 2, T0 + 1700 * S + S / 4);
        store.begin_job(&job("long", &["n01"]), begin).await.unwrap();
        store.end_job("long", end).await.unwrap();
        let r =
            job_report(&store, "long", T0 + 3600 * S, &ReportSettings::default()).await.unwrap();
        let n = &r.report.nodes[0].result;
        let seconds = (end - begin) as f64 / 1e6;
        let want = node_watts() * seconds + 1000.0;
        assert!((n.energy_joules - want).abs() < 1e-3, "{kind}: {} vs {want}", n.energy_joules);
        assert_eq!(n.samples, 1600, "{kind}: samples at 101 s ..= 1700 s");
        assert!(
            (n.peak_node_power - (node_watts() + 1000.0)).abs() < 1e-6,
            "{kind}: peak {}",
            n.peak_node_power
        );
        assert_eq!(n.data_presence, DataPresence::Complete);
        store.db().close().await;
        db.drop_database().await;
    }
}
