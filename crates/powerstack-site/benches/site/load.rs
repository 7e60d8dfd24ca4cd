//! `sustained`: simulated agents over HTTP, each pushing a one-sample batch a second on a
//! keep-alive connection, against a site on PostgreSQL (or SQLite), on this same machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use powerstack_site::SiteConfig;

use super::{env, fresh_pg, node_name, now_us, registration, sample, stream_id};

/// The pushers' HTTP client.
pub type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// A keep-alive client for `nodes` pushers.
pub fn client(nodes: usize) -> Http {
    Client::builder(TokioExecutor::new()).pool_max_idle_per_host(nodes + 16).build_http()
}

/// Sends `method uri` with a JSON `body`: the status and the answer's body.
pub async fn send(
    client: &Http,
    uri: &str,
    method: &str,
    body: String,
) -> Result<(u16, String), String> {
    let req = hyper::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The site's database for a run: `site.db` in `dir` when `kind` is `sqlite`, else a new
/// PostgreSQL database `name`.
pub fn database(
    rt: &tokio::runtime::Runtime,
    kind: &str,
    dir: &tempfile::TempDir,
    name: &str,
) -> String {
    if kind == "sqlite" {
        return format!("sqlite:{}", dir.path().join("site.db").display());
    }
    match rt.block_on(fresh_pg(name)) {
        powerstack_site::db::DatabaseUrl::Postgres(u) => u,
        powerstack_site::db::DatabaseUrl::Sqlite(_) => unreachable!(),
    }
}

/// The sustained-load run.
pub fn sustained(rt: &tokio::runtime::Runtime) {
    let kind = std::env::var("POWERSTACK_BENCH_DB").unwrap_or_else(|_| "postgres".into());
    let stop_s = env("POWERSTACK_BENCH_DB_STOP_S", 0) as u64;
    if stop_s > 0 {
        assert_eq!(kind, "postgres", "POWERSTACK_BENCH_DB_STOP_S needs PostgreSQL");
        return super::outage::run(rt, stop_s);
    }
    let nodes = env("POWERSTACK_BENCH_NODES", if kind == "sqlite" { 1000 } else { 10_000 });
    let seconds = env("POWERSTACK_BENCH_SECONDS", 30) as u64;
    let dir = tempfile::tempdir().unwrap();
    let database = database(rt, &kind, &dir, "powerstack_bench_load");
    let config = SiteConfig { listen: "127.0.0.1:0".into(), database, ..SiteConfig::default() };
    let site = powerstack_site::start(&config).unwrap();
    let base = format!("http://{}", site.ready().addr);
    let client = client(nodes);
    let t0 = now_us();
    register_http(rt, &client, &base, nodes, t0);
    println!(
        "sustained ({kind}): {nodes} nodes x 8 domains pushing 1 sample/s each for {seconds} s over HTTP keep-alive"
    );
    let (ok, failed, late) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(nodes * seconds as usize)));
    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::with_capacity(nodes);
        for n in 0..nodes {
            let (client, ok, failed, late, latencies) =
                (client.clone(), ok.clone(), failed.clone(), late.clone(), latencies.clone());
            let uri = format!("{base}/v1/nodes/{}/streams/{}/batches", node_name(n), stream_id(n));
            let offset = Duration::from_micros((n as u64 * 1_000_000) / nodes as u64);
            tasks.push(tokio::spawn(async move {
                let first = tokio::time::Instant::now() + offset;
                let mut mine = Vec::with_capacity(seconds as usize);
                for k in 0..seconds {
                    let due = first + Duration::from_secs(k);
                    tokio::time::sleep_until(due).await;
                    let mut s = sample(t0, n, k);
                    s[0] = now_us();
                    let body = format!(
                        "{{\"seq\":{},\"samples\":[{}]}}",
                        k + 1,
                        serde_json::to_string(&s).unwrap()
                    );
                    let sent = Instant::now();
                    match send(&client, &uri, "POST", body).await {
                        Ok((200, _)) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            mine.push(sent.elapsed().as_micros() as u64);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if tokio::time::Instant::now() > due + Duration::from_secs(1) {
                        late.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies.lock().unwrap().extend(mine);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let offered = nodes as f64;
    let stored = ok.load(Ordering::Relaxed) as f64;
    println!(
        "sustained ({kind}): offered {offered:.0} samples/s; stored {stored:.0} in {elapsed:.1} s = {:.0} samples/s ({:.0} domain-samples/s); failed {}; pushes more than 1 s behind schedule {}; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        stored / elapsed,
        8.0 * stored / elapsed,
        failed.load(Ordering::Relaxed),
        late.load(Ordering::Relaxed),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    reads(rt, &client, &base, nodes);
    site.stop().unwrap();
}

/// What the site's whole-site reads cost with every node fresh: `GET /v1/site/power` and
/// `GET /v1/nodes`, each asked 7 times, one at a time; the median and the answer's size.
fn reads(rt: &tokio::runtime::Runtime, client: &Http, base: &str, nodes: usize) {
    for path in ["/v1/site/power", "/v1/nodes"] {
        let mut took = Vec::new();
        let mut bytes = 0;
        for _ in 0..7 {
            let start = Instant::now();
            let (status, body) =
                rt.block_on(send(client, &format!("{base}{path}"), "GET", String::new())).unwrap();
            took.push(start.elapsed().as_secs_f64() * 1e3);
            assert_eq!(status, 200, "{path}: {body}");
            bytes = body.len();
        }
        took.sort_by(f64::total_cmp);
        println!(
            "reads: GET {path} with {nodes} nodes: median {:.1} ms (min {:.1}, max {:.1}), {bytes} bytes",
            took[3], took[0], took[6]
        );
    }
}

/// Registers every node's stream over HTTP, 64 at a time.
pub fn register_http(
    rt: &tokio::runtime::Runtime,
    client: &Http,
    base: &str,
    nodes: usize,
    t0: u64,
) {
    rt.block_on(async {
        let reg = serde_json::to_string(&registration(t0)).unwrap();
        let mut tasks = Vec::new();
        for chunk in (0..nodes).collect::<Vec<_>>().chunks(nodes.div_ceil(64).max(1)) {
            let (client, base, reg, chunk) =
                (client.clone(), base.to_string(), reg.clone(), chunk.to_vec());
            tasks.push(tokio::spawn(async move {
                for n in chunk {
                    let uri = format!("{base}/v1/nodes/{}/streams/{}", node_name(n), stream_id(n));
                    assert_eq!(send(&client, &uri, "PUT", reg.clone()).await.map(|a| a.0), Ok(200));
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}
