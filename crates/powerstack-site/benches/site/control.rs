//! `control`: out-of-band control tasks on `POWERSTACK_BENCH_NODES` (default 1,000) mock BMCs
//! on loopback, each answering every request after a fixed delay drawn uniformly in 20-200 ms
//! (seeded, `POWERSTACK_BENCH_SEED`), through a site service in this process and its HTTP API:
//! a power-cap snapshot of all of them (twice: the first and a second one), then transitions,
//! `ForceOff` then `On`, of all of them. Each task is polled every 100 ms from its `POST` until
//! every node is final: the wall time, each node's time to final (as seen by the polls), the
//! requests each BMC got, the counts, and the process's memory (RSS and high-water mark) after
//! each. `POWERSTACK_BENCH_DB` (`sqlite`, default, or `postgres`),
//! `POWERSTACK_BENCH_TASK_CONCURRENCY` (default: the site's default),
//! `POWERSTACK_BENCH_TRANSITION_PAIRS` (`ForceOff` then `On`, default once).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use powerstack_api::site_tasks::{
    PowerCapSnapshotRequestV1, TaskKindV1, TaskNodeStateV1, TaskV1, TransitionOperationV1,
    TransitionRequestV1,
};
use powerstack_client::site::Site;
use powerstack_mock_bmc::{MockBmc, Options, Tree};
use powerstack_site::SiteConfig;
use powerstack_site::config::BmcEntry;

use super::env;
use super::load::database;
use super::outage::{percentile, vm};

/// How often a task is read while it runs.
const POLL: Duration = Duration::from_millis(100);

/// A seeded generator (splitmix64): the same delays run after run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn bmc_node(n: usize) -> String {
    format!("bmc{n:05}")
}

/// What one task's run showed.
struct Run {
    task: TaskV1,
    wall: Duration,
    /// Each node's time from the `POST` to the first poll that saw it final, µs.
    node_us: Vec<u32>,
}

/// Sends `post` (which answers the task), then polls it until every node is final.
fn run_task(site: &Site, kind: TaskKindV1, post: impl FnOnce() -> TaskV1) -> Run {
    let start = Instant::now();
    let id = post().id;
    let mut seen: HashMap<String, u32> = HashMap::new();
    loop {
        std::thread::sleep(POLL);
        let t = site.task(kind, &id).unwrap();
        let now_us = start.elapsed().as_micros() as u32;
        for n in &t.nodes {
            if n.state.is_final() {
                seen.entry(n.node.clone()).or_insert(now_us);
            }
        }
        if seen.len() as u64 == t.counts.total {
            return Run { task: t, wall: start.elapsed(), node_us: seen.into_values().collect() };
        }
    }
}

fn requests(mocks: &[MockBmc]) -> u64 {
    mocks.iter().map(MockBmc::requests).sum()
}

fn line(what: &str, r: &Run, reqs: u64, nodes: usize) {
    let c = &r.task.counts;
    println!(
        "  {what}: {:.2} s from the POST to every node final; per node p50 {:.0} ms, p99 {:.0} ms; {} succeeded, {} failed of {}; {:.1} requests per BMC; process RSS {} kB, high-water {} kB",
        r.wall.as_secs_f64(),
        percentile(r.node_us.clone(), 0.50),
        percentile(r.node_us.clone(), 0.99),
        c.succeeded,
        c.failed,
        c.total,
        reqs as f64 / nodes as f64,
        vm("VmRSS:"),
        vm("VmHWM:")
    );
    if let Some(n) = r.task.nodes.iter().find(|n| n.state == TaskNodeStateV1::Failed) {
        println!("    first failure: {} {}", n.node, n.reason.as_deref().unwrap_or(""));
    }
}

/// The run.
pub fn run(rt: &tokio::runtime::Runtime) {
    let nodes = env("POWERSTACK_BENCH_NODES", 1000);
    let defaults = SiteConfig::default();
    let concurrency = env("POWERSTACK_BENCH_TASK_CONCURRENCY", defaults.task_concurrency);
    let mut rng = Rng(env("POWERSTACK_BENCH_SEED", 13) as u64);
    let kind = std::env::var("POWERSTACK_BENCH_DB").unwrap_or_else(|_| "sqlite".into());
    let dir = tempfile::tempdir().unwrap();
    let database = database(rt, &kind, &dir, "powerstack_bench_control");
    let delays: Vec<u64> = (0..nodes).map(|_| 20 + rng.next() % 181).collect();
    let mocks: Vec<MockBmc> = rt.block_on(async {
        let mut mocks = Vec::with_capacity(nodes);
        for d in &delays {
            let m = MockBmc::start(Tree::dmtf_controls(), Options::default()).await.unwrap();
            m.faults().set_delay_ms(*d);
            mocks.push(m);
        }
        mocks
    });
    let mocks_rss = vm("VmRSS:");
    let bmc = (0..nodes)
        .map(|n| BmcEntry { node: bmc_node(n), url: mocks[n].url(), ..BmcEntry::default() })
        .collect();
    let config = SiteConfig {
        listen: "127.0.0.1:0".into(),
        database,
        bmc,
        task_concurrency: concurrency,
        ..defaults
    };
    let running = powerstack_site::start(&config).unwrap();
    let site = Site::new(&running.ready().url(), None, Duration::from_secs(60)).unwrap();
    let all = vec![format!("bmc[00000-{:05}]", nodes - 1)];
    println!("  process RSS {mocks_rss} kB with the mock BMCs alone, before the site starts");
    println!(
        "control ({kind}): {nodes} mock BMCs on loopback, each answering after a fixed {}-{} ms (mean {:.0} ms); task_concurrency {concurrency}",
        delays.iter().min().unwrap(),
        delays.iter().max().unwrap(),
        delays.iter().sum::<u64>() as f64 / nodes as f64
    );
    for what in ["power-cap snapshot (first)", "power-cap snapshot (second)"] {
        let before = requests(&mocks);
        let request = PowerCapSnapshotRequestV1 { nodes: all.clone() };
        let r = run_task(&site, TaskKindV1::PowerCapSnapshot, || {
            site.power_cap_snapshot(&request).unwrap()
        });
        line(what, &r, requests(&mocks) - before, nodes);
    }
    let ops = [TransitionOperationV1::ForceOff, TransitionOperationV1::On];
    for op in ops.into_iter().cycle().take(2 * env("POWERSTACK_BENCH_TRANSITION_PAIRS", 1)) {
        let before = requests(&mocks);
        let request = TransitionRequestV1 {
            operation: op,
            nodes: all.clone(),
            deadline_s: None,
            escalate: None,
        };
        let r = run_task(&site, TaskKindV1::Transition, || site.transition(&request).unwrap());
        // The mocks' own records of every POST would otherwise grow the process with each task.
        mocks.iter().for_each(MockBmc::clear_recorded);
        line(&format!("transition {}", op.as_str()), &r, requests(&mocks) - before, nodes);
    }
    running.stop().unwrap();
    drop(mocks);
}
