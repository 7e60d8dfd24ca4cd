//! Site benchmarks (see BENCHMARKS.md for results and how to run them):
//!
//! - `ratio`: ingest into PostgreSQL through the store's group commit as a ratio to raw binary
//!   `COPY` of the same rows into the same table, second by second in alternating order, in one
//!   run (`POWERSTACK_BENCH_ROUNDS` rounds, default 5);
//! - `sustained`: simulated agents pushing one sample a second each over HTTP (keep-alive), for
//!   `POWERSTACK_BENCH_NODES` nodes (default 10,000 on PostgreSQL; 1,000 with
//!   `POWERSTACK_BENCH_DB=sqlite`); with `POWERSTACK_BENCH_DB_STOP_S=60` (and
//!   `POWERSTACK_BENCH_DB_STOP_AT_S`, default 30), against a private PostgreSQL server halted for
//!   that long mid-run, under pushers that keep and resend as agents do (default 1,000 nodes,
//!   150 s);
//! - `report`: a 1,000-node job's report on a store holding 1,000 nodes x `POWERSTACK_BENCH_HOURS`
//!   (default 6) at 1 Hz: the first report (which settles it) and the settled report, for a job of
//!   the last hour and one of the whole time; and the bytes stored per node-sample;
//! - `control`: out-of-band control tasks on `POWERSTACK_BENCH_NODES` (default 1,000) mock BMCs
//!   answering after 20-200 ms each: a power-cap snapshot of all, and a transition of all
//!   (`site/control.rs`);
//! - `bound`: a change of the site bound to every one of `POWERSTACK_BENCH_NODES` (default 1,000)
//!   fake agents: each node's time from the request to its cap written (`site/bound.rs`).
//!
//! `cargo bench -p powerstack-site --bench site -- ratio|sustained|report|control|bound` (all when
//! none given).
//! PostgreSQL from `POWERSTACK_BENCH_POSTGRES` (default postgres://postgres@127.0.0.1:5432/postgres).

use std::time::{Duration, Instant};

use powerstack_api::site::{BatchV1, SiteJobBeginV1, StreamDomainV1, StreamRegisterV1};
use powerstack_site::db::{DatabaseUrl, Db};
use powerstack_site::report::{ReportSettings, job_report};
use powerstack_site::store::{BatchIn, IngestLimits, Store};
use sqlx::Connection;

#[path = "site/bound.rs"]
mod bound;
#[path = "site/control.rs"]
mod control;
#[path = "../tests/common/agent_fleet.rs"]
#[allow(dead_code)]
mod fleet;
#[path = "site/load.rs"]
mod load;
#[path = "site/outage.rs"]
mod outage;
#[path = "../tests/common/pg.rs"]
mod pg;

const S: u64 = 1_000_000;
/// Eight domains: two packages, two memories, four GPUs.
const WATTS: [f64; 8] = [150.0, 140.0, 20.0, 25.0, 300.0, 310.0, 290.0, 305.0];

fn domains() -> Vec<StreamDomainV1> {
    let kinds = ["package", "package", "memory", "memory", "gpu", "gpu", "gpu", "gpu"];
    let index = [0, 1, 0, 1, 0, 1, 2, 3];
    kinds
        .iter()
        .zip(index)
        .map(|(k, i)| StreamDomainV1 {
            domain: (*k).into(),
            index: i,
            die: None,
            provider: "bench".into(),
            joules_per_tick: 1e-6,
            read: true,
            limit_watts: None,
            max_power_watts: Some(1000.0),
        })
        .collect()
}

fn registration(t0: u64) -> StreamRegisterV1 {
    StreamRegisterV1 {
        hostname: "bench".into(),
        simulated: None,
        started_unix_us: t0,
        domains: domains(),
        topology: None,
        control_url: None,
    }
}

/// Node `n`'s sample `k` seconds after `t0` (its powers scaled a little per node).
fn sample(t0: u64, n: usize, k: u64) -> Vec<u64> {
    let scale = 1.0 + (n % 7) as f64 * 0.01;
    let mut row = vec![t0 + k * S];
    row.extend(WATTS.iter().map(|w| (w * scale * k as f64 * 1e6) as u64));
    row
}

fn stream_id(n: usize) -> String {
    format!("{n:016x}")
}

fn node_name(n: usize) -> String {
    format!("node{n:05}")
}

fn admin_url() -> String {
    std::env::var("POWERSTACK_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A new, empty PostgreSQL database (dropped first if a run before left it).
async fn fresh_pg(name: &str) -> DatabaseUrl {
    let admin = admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("PostgreSQL for the benchmark");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_string();
    DatabaseUrl::Postgres(format!("{base}/{name}"))
}

async fn register_all(store: &Store, nodes: usize, t0: u64) {
    for n in 0..nodes {
        store.register(&node_name(n), &stream_id(n), &registration(t0), t0).await.unwrap();
    }
}

fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Raw binary COPY of one second's rows into `samples`, in a transaction of its own; its time.
async fn copy_second(store: &Store, rows: &[(i32, Vec<u64>)]) -> Duration {
    let Db::Postgres(pool) = store.db() else { unreachable!() };
    let start = Instant::now();
    let mut tx = pool.begin().await.unwrap();
    let refs: Vec<(i32, &[u64])> = rows.iter().map(|(i, s)| (*i, s.as_slice())).collect();
    let mut copy = tx
        .copy_in_raw("COPY samples (stream_id, t_us, counters) FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    copy.send(powerstack_site::store::copy_payload(&refs)).await.unwrap();
    copy.finish().await.unwrap();
    tx.commit().await.unwrap();
    start.elapsed()
}

/// One second's batches (one sample each) through the store's group commit; its time.
async fn ingest_second(store: &Store, group: &[BatchIn]) -> Duration {
    let start = Instant::now();
    let answers = store.ingest_group(group, &IngestLimits::default()).await.unwrap();
    let took = start.elapsed();
    assert!(answers.iter().all(|a| a.as_ref().is_ok_and(|a| a.stored == 1)));
    took
}

/// One round: a fresh database for each side, then second by second the same rows by raw COPY
/// into one and through the store into the other, in alternating order, so that both see the
/// same moments of the machine. Returns (COPY rows/s, ingest rows/s).
async fn ratio_round(nodes: usize, seconds: u64, t0: u64) -> (f64, f64) {
    let raw = Store::new(Db::open(&fresh_pg("powerstack_bench_copy").await).await.unwrap());
    raw.ensure_partitions(t0).await.unwrap();
    let ours = Store::new(Db::open(&fresh_pg("powerstack_bench_ingest").await).await.unwrap());
    ours.ensure_partitions(t0).await.unwrap();
    register_all(&ours, nodes, t0).await;
    let now_us = t0 + seconds * S;
    let group = |k: u64| -> Vec<BatchIn> {
        (0..nodes)
            .map(|n| BatchIn {
                node: node_name(n),
                stream: stream_id(n),
                batch: BatchV1 { seq: k + 1, samples: vec![sample(t0, n, k)] },
                now_us,
            })
            .collect()
    };
    let rows = |k: u64| -> Vec<(i32, Vec<u64>)> {
        (0..nodes).map(|n| (n as i32 + 1, sample(t0, n, k))).collect()
    };
    // The first group reads each stream's newest sample (what a replica pays once per stream
    // after it starts): timed apart, the steady state after it.
    let cold = ingest_second(&ours, &group(0)).await;
    copy_second(&raw, &rows(0)).await;
    println!("    first group ({nodes} streams not yet known): {:.0} ms", cold.as_secs_f64() * 1e3);
    let (mut t_raw, mut t_ours) = (Duration::ZERO, Duration::ZERO);
    for k in 1..seconds {
        let (g, r) = (group(k), rows(k));
        if k % 2 == 0 {
            t_raw += copy_second(&raw, &r).await;
            t_ours += ingest_second(&ours, &g).await;
        } else {
            t_ours += ingest_second(&ours, &g).await;
            t_raw += copy_second(&raw, &r).await;
        }
    }
    raw.db().close().await;
    ours.db().close().await;
    let n = (nodes as u64 * (seconds - 1)) as f64;
    (n / t_raw.as_secs_f64(), n / t_ours.as_secs_f64())
}

async fn ratio() {
    let nodes: usize = env("POWERSTACK_BENCH_NODES", 10_000);
    let seconds: u64 = env("POWERSTACK_BENCH_SECONDS", 6).max(2) as u64;
    let rounds: usize = env("POWERSTACK_BENCH_ROUNDS", 5).max(1);
    let t0 = now_us() - 3600 * S;
    println!(
        "ratio: {nodes} nodes x 8 domains, {seconds} s at 1 Hz ({} rows), PostgreSQL, {rounds} rounds",
        nodes as u64 * seconds
    );
    let (mut copy, mut ours, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (c, o) = ratio_round(nodes, seconds, t0).await;
        println!(
            "  round {round}: raw COPY {c:.0} rows/s, group-commit ingest {o:.0} rows/s, ratio {:.2}",
            o / c
        );
        copy.push(c);
        ours.push(o);
        ratios.push(o / c);
    }
    println!(
        "ratio: median raw COPY {:.0} rows/s, median ingest {:.0} rows/s; median of the rounds' ratios {:.0}% (lowest {:.0}%, highest {:.0}%)",
        median(copy),
        median(ours),
        100.0 * median(ratios.clone()),
        100.0 * ratios.iter().copied().fold(f64::INFINITY, f64::min),
        100.0 * ratios.iter().copied().fold(0.0, f64::max)
    );
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn report() {
    let nodes: usize = env("POWERSTACK_BENCH_NODES", 1000);
    let hours: u64 = env("POWERSTACK_BENCH_HOURS", 6) as u64;
    let kind = std::env::var("POWERSTACK_BENCH_DB").unwrap_or_else(|_| "postgres".into());
    let dir = tempfile::tempdir().unwrap();
    let url = if kind == "sqlite" {
        DatabaseUrl::Sqlite(dir.path().join("site.db"))
    } else {
        fresh_pg("powerstack_bench_report").await
    };
    let store = Store::new(Db::open(&url).await.unwrap());
    let seconds = hours * 3600;
    // The data ends four minutes ago, so the rollups (two minutes behind) cover it.
    let t0 = now_us() - seconds * S - 240 * S;
    for d in 0..=(hours / 24 + 1) {
        store.ensure_partitions(t0 + d * 86_400 * S).await.unwrap();
    }
    register_all(&store, nodes, t0).await;
    let start = Instant::now();
    let limits = IngestLimits::default();
    // A minute of every node a group (as agents catching up would send it).
    for m in 0..seconds / 60 {
        let group: Vec<BatchIn> = (0..nodes)
            .map(|n| BatchIn {
                node: node_name(n),
                stream: stream_id(n),
                batch: BatchV1 {
                    seq: m + 1,
                    samples: (m * 60..m * 60 + 60).map(|k| sample(t0, n, k)).collect(),
                },
                now_us: now_us(),
            })
            .collect();
        store.ingest_group(&group, &limits).await.unwrap();
    }
    let loaded = start.elapsed();
    let rows = nodes as u64 * seconds;
    println!(
        "report ({kind}): loaded {nodes} nodes x {hours} h at 1 Hz = {rows} node-samples in {:.0} s ({:.0} rows/s)",
        loaded.as_secs_f64(),
        rows as f64 / loaded.as_secs_f64()
    );
    let rolling = Instant::now();
    let mut minutes = 0;
    loop {
        let n = store.roll_up(now_us()).await.unwrap();
        minutes += n;
        if n == 0 {
            break;
        }
    }
    println!(
        "report ({kind}): rolled up {minutes} stream-minutes in {:.0} s ({:.0} samples/s read back)",
        rolling.elapsed().as_secs_f64(),
        rows as f64 / rolling.elapsed().as_secs_f64()
    );
    bytes(&store, &url, rows).await;
    let names: Vec<String> = (0..nodes).map(node_name).collect();
    let settings = ReportSettings::default();
    for (id, from) in [("job-1h", seconds - 3600), ("job-all", 0)] {
        let job = SiteJobBeginV1 {
            id: id.into(),
            nodes: names.clone(),
            user: Some("bench".into()),
            ..Default::default()
        };
        store.begin_job(&job, t0 + from * S + S / 2).await.unwrap();
        store.end_job(id, t0 + (seconds - 1) * S).await.unwrap();
        let first = Instant::now();
        let r = job_report(&store, id, now_us(), &settings).await.unwrap();
        let first = first.elapsed();
        assert!(r.job.settled);
        let mut times = Vec::new();
        for _ in 0..7 {
            let t = Instant::now();
            let again = job_report(&store, id, now_us(), &settings).await.unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(again.report.total.energy_joules, r.report.total.energy_joules);
        }
        println!(
            "report ({kind}): {id} ({} nodes, {:.1} h): first report (settles it) {:.0} ms; settled report median {:.1} ms (min {:.1}, max {:.1})",
            nodes,
            (seconds - 1 - from) as f64 / 3600.0,
            first.as_secs_f64() * 1000.0,
            median(times.clone()),
            times.iter().copied().fold(f64::INFINITY, f64::min),
            times.iter().copied().fold(0.0, f64::max)
        );
    }
    store.db().close().await;
}

async fn bytes(store: &Store, url: &DatabaseUrl, rows: u64) {
    match (store.db(), url) {
        (Db::Postgres(pool), _) => {
            let size: i64 = sqlx::query_scalar(
                "SELECT CAST(SUM(pg_total_relation_size(i.inhrelid)) AS BIGINT) FROM pg_inherits i WHERE i.inhparent = 'samples'::regclass",
            )
            .fetch_one(pool)
            .await
            .unwrap();
            let rollups: i64 = sqlx::query_scalar(
                "SELECT CAST(SUM(pg_total_relation_size(i.inhrelid)) AS BIGINT) FROM pg_inherits i WHERE i.inhparent = 'rollups'::regclass",
            )
            .fetch_one(pool)
            .await
            .unwrap();
            println!(
                "bytes (postgres): samples {:.1} B per node-sample (heap + index, 8 counters); rollups {:.2} B per node-sample",
                size as f64 / rows as f64,
                rollups as f64 / rows as f64
            );
        }
        (Db::Sqlite(pool), DatabaseUrl::Sqlite(path)) => {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(pool).await.unwrap();
            let size = std::fs::metadata(path).unwrap().len();
            println!(
                "bytes (sqlite): whole file {:.1} B per node-sample (samples, rollups, indexes, 8 counters)",
                size as f64 / rows as f64
            );
        }
        _ => {}
    }
}

fn main() {
    // Thousands of connections: the open-file limit up to the hard one.
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid rlimit for both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max.min(1 << 20);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    let asked: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let want = |name: &str| asked.is_empty() || asked.iter().any(|a| a == name);
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    if want("ratio") {
        rt.block_on(ratio());
    }
    if want("sustained") {
        load::sustained(&rt);
    }
    if want("report") {
        rt.block_on(report());
    }
    if want("control") {
        control::run(&rt);
    }
    if want("bound") {
        bound::run(&rt);
    }
    let _ = Duration::ZERO;
}
