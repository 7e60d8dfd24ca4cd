//! `sustained` with the database stopped mid-run (`POWERSTACK_BENCH_DB_STOP_S`, from
//! `POWERSTACK_BENCH_DB_STOP_AT_S`): a private PostgreSQL server (`tests/common/pg.rs`) halted and
//! started again, under pushers that behave as agents do. Each node samples once a second into a
//! bounded queue whatever its sender does; the sender sends what accumulated as one batch (at
//! most `MAX_BATCH_SAMPLES`), keeps it until the site acknowledges it and sends it again after a
//! transient failure (503, no answer within 5 s), backing off 1 s doubling to 30 s as the agent
//! does. At the end the queues are drained and the samples counted in the database.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use powerstack_api::site::{BatchStoredV1, BatchV1, MAX_BATCH_SAMPLES};
use powerstack_site::SiteConfig;
use sqlx::Connection;

use super::load::{Http, client, register_http, send};
use super::pg::PgInstance;
use super::{WATTS, env, node_name, now_us, stream_id};

/// The agent's call timeout, first backoff and longest backoff.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The most samples a pusher holds (the oldest are dropped beyond, and counted).
const MAX_QUEUE: usize = 4 * MAX_BATCH_SAMPLES;

/// Counters over all pushers.
#[derive(Default)]
struct Totals {
    generated: AtomicU64,
    dropped: AtomicU64,
    acked: AtomicU64,
    stored: AtomicU64,
    requests: AtomicU64,
    resends: AtomicU64,
    duplicates: AtomicU64,
    failures: AtomicU64,
    /// Samples waiting in the queues and in flight.
    backlog: AtomicU64,
}

/// One pusher's queue: the sampler appends, the sender takes.
struct Queue {
    rows: Mutex<VecDeque<Vec<u64>>>,
    wake: tokio::sync::Notify,
}

/// Node `n`'s sample at `t_us` (counters at its powers since `t0`).
fn sample_at(t0: u64, n: usize, t_us: u64) -> Vec<u64> {
    let scale = 1.0 + (n % 7) as f64 * 0.01;
    let mut row = vec![t_us];
    row.extend(WATTS.iter().map(|w| (w * scale * (t_us - t0) as f64) as u64));
    row
}

/// Samples once a second (a tick missed is skipped, as the agent's are) for `seconds` s.
async fn sampler(
    q: Arc<Queue>,
    totals: Arc<Totals>,
    n: usize,
    t0: u64,
    start: tokio::time::Instant,
    seconds: u64,
) {
    let mut tick = tokio::time::interval_at(start, Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let t = now_us().max(last + 1);
        last = t;
        {
            let mut rows = q.rows.lock().unwrap();
            rows.push_back(sample_at(t0, n, t));
            if rows.len() > MAX_QUEUE {
                rows.pop_front();
                totals.dropped.fetch_add(1, Ordering::Relaxed);
                totals.backlog.fetch_sub(1, Ordering::Relaxed);
            }
        }
        totals.generated.fetch_add(1, Ordering::Relaxed);
        totals.backlog.fetch_add(1, Ordering::Relaxed);
        q.wake.notify_one();
    }
}

/// What the run keeps of each acknowledged request: when it was sent, how long it took, and
/// whether it held a sample taken before the database came back.
type Acks = Vec<(Instant, u32, bool)>;

/// Sends the queue, batch after batch, until `done` and nothing is left.
async fn sender(
    q: Arc<Queue>,
    client: Http,
    uri: String,
    totals: Arc<Totals>,
    sampling: tokio::task::JoinHandle<()>,
    resumed_us: Arc<AtomicU64>,
) -> Acks {
    let mut acks = Vec::new();
    let (mut seq, mut backoff) = (0u64, INITIAL_BACKOFF);
    let mut inflight: Option<(BatchV1, u32)> = None;
    loop {
        if inflight.is_none() {
            let rows: Vec<Vec<u64>> = {
                let mut rows = q.rows.lock().unwrap();
                let k = rows.len().min(MAX_BATCH_SAMPLES);
                rows.drain(..k).collect()
            };
            if rows.is_empty() {
                if sampling.is_finished() {
                    return acks;
                }
                // Woken by the next sample (or checked again within a second).
                let _ = tokio::time::timeout(Duration::from_secs(1), q.wake.notified()).await;
                continue;
            }
            seq += 1;
            inflight = Some((BatchV1 { seq, samples: rows }, 0));
        }
        let Some((batch, tries)) = &mut inflight else { continue };
        let body = serde_json::to_string(&*batch).unwrap();
        totals.requests.fetch_add(1, Ordering::Relaxed);
        if *tries > 0 {
            totals.resends.fetch_add(1, Ordering::Relaxed);
        }
        *tries += 1;
        let sent = Instant::now();
        let answer = tokio::time::timeout(CALL_TIMEOUT, send(&client, &uri, "POST", body)).await;
        match answer {
            Ok(Ok((200, text))) => {
                let a: BatchStoredV1 = serde_json::from_str(&text).unwrap();
                let n = batch.samples.len() as u64;
                totals.acked.fetch_add(n, Ordering::Relaxed);
                totals.stored.fetch_add(a.stored, Ordering::Relaxed);
                totals.backlog.fetch_sub(n, Ordering::Relaxed);
                if a.duplicate {
                    totals.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                let old = batch.samples[0][0] <= resumed_us.load(Ordering::Relaxed);
                acks.push((sent, sent.elapsed().as_micros() as u32, old));
                inflight = None;
                backoff = INITIAL_BACKOFF;
            }
            Ok(Ok((status, text))) if status < 500 && status != 408 && status != 429 => {
                panic!("{uri}: batch {seq} refused: {status} {text}")
            }
            _ => {
                totals.failures.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// The `p` quantile of `v` (µs), ms.
pub(super) fn percentile(mut v: Vec<u32>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)] as f64 / 1000.0
}

/// A line of /proc/self/status (`VmRSS:`, `VmHWM:`), kB.
pub(super) fn vm(key: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap_or("");
    line.split_whitespace().nth(1).unwrap_or("?").to_string()
}

/// The run with the database stopped for `stop_s` s at `stop_at_s` s.
pub fn run(rt: &tokio::runtime::Runtime, stop_s: u64) {
    let nodes = env("POWERSTACK_BENCH_NODES", 1000);
    let seconds = env("POWERSTACK_BENCH_SECONDS", 150) as u64;
    let stop_at_s = env("POWERSTACK_BENCH_DB_STOP_AT_S", 30) as u64;
    let pg = Arc::new(PgInstance::start());
    let config =
        SiteConfig { listen: "127.0.0.1:0".into(), database: pg.url(), ..SiteConfig::default() };
    let site = powerstack_site::start(&config).unwrap();
    let base = format!("http://{}", site.ready().addr);
    let http = client(nodes);
    let t0 = now_us();
    register_http(rt, &http, &base, nodes, t0);
    println!(
        "sustained with the database stopped: {nodes} nodes x 8 domains, 1 sample/s each for {seconds} s; PostgreSQL (a private server) halted at {stop_at_s} s for {stop_s} s"
    );
    let totals = Arc::new(Totals::default());
    let resumed_us = Arc::new(AtomicU64::new(u64::MAX));
    let start = Instant::now();
    let (halted_at, resumed_at) = (Arc::new(Mutex::new(None)), Arc::new(Mutex::new(None)));
    let outage = {
        let (pg, h, r, resumed_us) =
            (pg.clone(), halted_at.clone(), resumed_at.clone(), resumed_us.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(stop_at_s));
            pg.halt();
            *h.lock().unwrap() = Some(Instant::now());
            std::thread::sleep(Duration::from_secs(stop_s));
            pg.resume();
            resumed_us.store(now_us(), Ordering::Relaxed);
            *r.lock().unwrap() = Some(Instant::now());
        })
    };
    let monitor = {
        let totals = totals.clone();
        std::thread::spawn(move || {
            let mut peak = (0, String::new());
            for s in 0.. {
                std::thread::sleep(Duration::from_secs(1));
                let b = totals.backlog.load(Ordering::Relaxed);
                if b > peak.0 {
                    peak = (b, vm("VmRSS:"));
                }
                if s % 10 == 9 {
                    println!(
                        "  {:>4} s: backlog {b} samples, process RSS {} kB",
                        s + 1,
                        vm("VmRSS:")
                    );
                }
                if Arc::strong_count(&totals) == 1 {
                    return peak;
                }
            }
            peak
        })
    };
    let acks: Vec<Acks> = rt.block_on(async {
        let first = tokio::time::Instant::now();
        let mut tasks = Vec::with_capacity(nodes);
        for n in 0..nodes {
            let q = Arc::new(Queue { rows: Mutex::new(VecDeque::new()), wake: Default::default() });
            let offset = Duration::from_micros((n as u64 * 1_000_000) / nodes as u64);
            let sampling =
                tokio::spawn(sampler(q.clone(), totals.clone(), n, t0, first + offset, seconds));
            let uri = format!("{base}/v1/nodes/{}/streams/{}/batches", node_name(n), stream_id(n));
            tasks.push(tokio::spawn(sender(
                q,
                http.clone(),
                uri,
                totals.clone(),
                sampling,
                resumed_us.clone(),
            )));
        }
        let mut all = Vec::with_capacity(nodes);
        for t in tasks {
            all.push(t.await.unwrap());
        }
        all
    });
    let elapsed = start.elapsed();
    outage.join().unwrap();
    report(&pg, rt, &totals, &acks, elapsed, halted_at, resumed_at);
    drop(totals);
    let (peak, rss) = monitor.join().unwrap();
    println!(
        "  backlog at most {peak} samples (process RSS then {rss} kB; at the end {} kB, high-water {} kB)",
        vm("VmRSS:"),
        vm("VmHWM:")
    );
    site.stop().unwrap();
}

type When = Arc<Mutex<Option<Instant>>>;

fn report(
    pg: &PgInstance,
    rt: &tokio::runtime::Runtime,
    totals: &Totals,
    acks: &[Acks],
    elapsed: Duration,
    halted: When,
    resumed: When,
) {
    let (halted, resumed) = (halted.lock().unwrap().unwrap(), resumed.lock().unwrap().unwrap());
    let in_db: i64 = rt.block_on(async {
        let mut conn = sqlx::PgConnection::connect(&pg.url()).await.unwrap();
        sqlx::query_scalar("SELECT COUNT(*) FROM samples").fetch_one(&mut conn).await.unwrap()
    });
    let drained = acks
        .iter()
        .flatten()
        .filter(|a| a.2)
        .map(|a| a.0 + Duration::from_micros(a.1 as u64))
        .max();
    let drained = drained.map_or(f64::NAN, |d| d.saturating_duration_since(resumed).as_secs_f64());
    let bucket = |lo: Instant, hi: Instant| {
        percentile(
            acks.iter().flatten().filter(|a| a.0 >= lo && a.0 < hi).map(|a| a.1).collect(),
            0.99,
        )
    };
    let far = Instant::now() + Duration::from_secs(3600);
    let begin = Instant::now() - Duration::from_secs(86_400);
    let drain_end = resumed + Duration::from_secs_f64(drained.max(0.0));
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let generated = get(&totals.generated);
    println!(
        "sustained with the database stopped: {:.0} s; samples pushed {generated}, acknowledged {}, stored (answers) {}, in the database {in_db} ({}); dropped by the pushers' bounds {}",
        elapsed.as_secs_f64(),
        get(&totals.acked),
        get(&totals.stored),
        if in_db as u64 == generated { "equal" } else { "NOT EQUAL" },
        get(&totals.dropped),
    );
    println!(
        "  requests {}, failed {}, resends {}, answered duplicate {}; backlog drained {drained:.1} s after the database came back (halted for {:.1} s)",
        get(&totals.requests),
        get(&totals.failures),
        get(&totals.resends),
        get(&totals.duplicates),
        resumed.duration_since(halted).as_secs_f64(),
    );
    println!(
        "  latency p99 of acknowledged requests by when sent: before {:.1} ms, during {:.1} ms, draining {:.1} ms, after {:.1} ms",
        bucket(begin, halted),
        bucket(halted, resumed),
        bucket(resumed, drain_end),
        bucket(drain_end, far)
    );
}
