//! `bound`: how fast a change of the site bound reaches every node. `POWERSTACK_BENCH_NODES`
//! (default 1,000) fake agents behind one loopback server (`tests/common/agent_fleet.rs`), each
//! answering a cap after `POWERSTACK_BENCH_AGENT_DELAY_MS` (default 10 ms), registered with the
//! site as agents with a control address, all running one job; the site's control loop with the
//! `uniform` policy (every node's cap follows the bound, so every node is written each change) and
//! its default period (5 s). Each round sets the bound through `PUT /v1/site/bound`, alternately
//! 500 W and 600 W a node, and takes, for each node, the time from the request to the fake agent's
//! write of the new cap: p50/p99/max over `POWERSTACK_BENCH_ROUNDS` (default 10) rounds, and the
//! highest sum of caps in force seen after any write against the bound in force.

use std::time::{Duration, Instant};

use powerstack_api::site::{SiteJobBeginV1, StreamRegisterV1};
use powerstack_api::site_bound::SiteBoundSetV1;
use powerstack_client::site::Site;
use powerstack_site::SiteConfig;
use powerstack_site::bound::BoundConfig;

use super::env;
use super::fleet::Fleet;
use super::load::database;
use super::outage::percentile;

const MIN_WATTS: f64 = 200.0;
const MAX_WATTS: f64 = 900.0;

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < until, "{what}: not within 120 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub fn run(rt: &tokio::runtime::Runtime) {
    let n = env("POWERSTACK_BENCH_NODES", 1000);
    let rounds = env("POWERSTACK_BENCH_ROUNDS", 10);
    let delay_ms = env("POWERSTACK_BENCH_AGENT_DELAY_MS", 10) as u64;
    let kind = std::env::var("POWERSTACK_BENCH_DB").unwrap_or_else(|_| "sqlite".into());
    let dir = tempfile::tempdir().unwrap();
    let database = database(rt, &kind, &dir, "powerstack_bench_bound");
    let nodes: Vec<String> = (0..n).map(|i| format!("c{i:05}")).collect();
    let fleet = Fleet::start(&nodes, MIN_WATTS, MAX_WATTS, Duration::from_millis(delay_ms));
    let config = SiteConfig {
        listen: "127.0.0.1:0".into(),
        database,
        // The fake agents write exactly what they are asked: no rounding to allow for.
        bound: BoundConfig {
            policy: "uniform".into(),
            tolerance_watts: 0.0,
            ..BoundConfig::default()
        },
        ..SiteConfig::default()
    };
    let running = powerstack_site::start(&config).unwrap();
    let site = Site::new(&running.ready().url(), None, Duration::from_secs(60)).unwrap();
    let t0 = powerstack_site::clock::now_us();
    for (i, node) in nodes.iter().enumerate() {
        let reg = StreamRegisterV1 {
            control_url: Some(fleet.control_url(node)),
            ..super::registration(t0)
        };
        site.register(node, &format!("{:016x}", i + 1), &reg).unwrap();
    }
    let job: SiteJobBeginV1 =
        serde_json::from_value(serde_json::json!({"id": "bench-all", "nodes": nodes})).unwrap();
    site.begin_job(&job).unwrap();
    println!(
        "bound ({kind}): {n} fake agents on loopback answering a cap after {delay_ms} ms, one job on all; uniform policy, period {} s",
        config.bound.period_s
    );
    let mut latencies_us: Vec<u32> = Vec::new();
    let mut walls = Vec::new();
    let mut worst_excess = f64::NEG_INFINITY;
    let mut previous_bound = MAX_WATTS * n as f64;
    for round in 0..=rounds {
        let per_node = if round % 2 == 0 { 600.0 } else { 500.0 };
        let bound = per_node * n as f64;
        let before = fleet.writes().len();
        let start = Instant::now();
        let set = SiteBoundSetV1 { watts: Some(bound), reserve_watts: Some(0.0), policy: None };
        site.set_bound(&set).unwrap();
        wait_until("every node at its new cap", || {
            nodes.iter().all(|node| (fleet.cap(node) - per_node).abs() < 1e-6)
        });
        let wall = start.elapsed();
        let writes = fleet.writes();
        // Round 0 brings the uncapped nodes down: a warm-up, not counted.
        if round > 0 {
            walls.push(wall);
            for node in &nodes {
                let first = writes[before..].iter().find(|w| &w.node == node).unwrap();
                latencies_us.push(first.at.duration_since(start).as_micros() as u32);
            }
            let excess = writes[before..]
                .iter()
                .map(|w| w.sum_after_watts - bound.max(previous_bound))
                .fold(f64::NEG_INFINITY, f64::max);
            worst_excess = worst_excess.max(excess);
        }
        previous_bound = bound;
    }
    let mean_wall = walls.iter().map(Duration::as_secs_f64).sum::<f64>() / walls.len() as f64;
    println!(
        "  bound change to the node's write, {} node-changes over {rounds} rounds: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; every node written {:.1} ms after the request (mean of rounds)",
        latencies_us.len(),
        percentile(latencies_us.clone(), 0.50),
        percentile(latencies_us.clone(), 0.99),
        percentile(latencies_us, 1.0),
        mean_wall * 1000.0
    );
    println!(
        "  highest sum of caps in force after any write, less the higher of the old and new bound: {worst_excess:.1} W (never above 0: lowers come first)"
    );
    running.stop().unwrap();
}
