//! The network between a real agent and `powerstack site serve` dropped and restored, through a
//! relay the test cuts: the agent spools, and once the network is back every sample of the job's
//! window is stored exactly once, and the site's report is what the agent itself measured.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::relay::Relay;
use common::site::{serve, settled_report};
use common::{Node, http_get, unix_request};
use powerstack_api::job::{DataPresence, JobResultV1};
use powerstack_api::site::{BatchV1, SiteJobBeginV1};
use powerstack_client::site::Site;
use serde_json::Value;

/// The agent's push interval.
const PUSH_INTERVAL: &str = "200ms";
/// How long the network stays cut (many push intervals, and longer than a call's 5 s timeout).
const CUT: Duration = Duration::from_secs(8);
/// How long the listener stays closed.
const REFUSED: Duration = Duration::from_millis(2500);

/// A value of the agent's `/metrics` (0 when absent).
fn metric(addr: &str, name: &str) -> f64 {
    let text = http_get(addr, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A JSON answer of the agent over its socket (privileged: exact figures).
fn agent_json(n: &Node, method: &str, path: &str) -> Value {
    let (status, body) = unix_request(&n.socket(), method, path, "{}");
    assert!((200..300).contains(&status), "{method} {path}: {status} {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Waits (at most 30 s) until `ok` holds of the agent's metrics.
fn wait_metrics(addr: &str, what: &str, ok: impl Fn(&dyn Fn(&str) -> f64) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok(&|name| metric(addr, name)) {
        assert!(Instant::now() < deadline, "{what}:\n{}", http_get(addr, "/metrics"));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The batches in the requests the relay forwarded whole (a request cut short reached nobody),
/// in the order sent.
fn batches_sent(relay: &Relay) -> Vec<BatchV1> {
    let mut out = Vec::new();
    for req in relay.forwarded() {
        let text = String::from_utf8_lossy(&req);
        let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
        if !head.starts_with("POST ") || !head.lines().next().unwrap().contains("/batches ") {
            continue;
        }
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase().strip_prefix("content-length:")?.trim().parse().ok()
            })
            .unwrap();
        if body.len() == length {
            out.push(serde_json::from_str(body).unwrap());
        }
    }
    out
}

/// What happened to the agent's pushes during the faults.
#[derive(Debug, Default)]
struct Seen {
    spooled_max: f64,
    down: bool,
}

/// Polls the agent's metrics for `d`.
fn watch(addr: &str, d: Duration, seen: &mut Seen) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        seen.spooled_max = seen.spooled_max.max(metric(addr, "powerstack_site_spool_samples"));
        seen.down |= metric(addr, "powerstack_site_up") == 0.0;
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the agent has delivered everything it spooled, and more since `pushed`.
fn drained(addr: &str, pushed: f64) -> f64 {
    wait_metrics(addr, "the spool drained", |m| {
        m("powerstack_site_up") == 1.0
            && m("powerstack_site_pushed_samples_total") > pushed
            && m("powerstack_site_spool_samples") <= 2.0
    });
    metric(addr, "powerstack_site_pushed_samples_total")
}

/// Each row sent in `[s0, s1]` is a row of the agent's ring, counters and all (a column never
/// read is sent as 0).
fn assert_rows_are_the_agents(n: &Node, s0: u64, s1: u64, sent: &[(&u64, &(u64, Vec<u64>))]) {
    let ring = agent_json(n, "GET", &format!("/v1/samples?since={s0}&until={s1}&limit=100000"));
    let ring: BTreeMap<u64, Vec<u64>> = ring["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let row: Vec<u64> =
                r.as_array().unwrap().iter().map(|v| v.as_u64().unwrap_or(0)).collect();
            (row[0], row)
        })
        .collect();
    for (t, (_, row)) in sent {
        assert_eq!(ring.get(t), Some(row), "sample {t} is not the agent's");
    }
}

#[test]
fn the_network_to_the_site_dropped_and_restored_loses_no_sample_and_doubles_none() {
    let state = tempfile::tempdir().unwrap();
    let (_site, url) = serve(state.path());
    let relay = Relay::start(url.trim_start_matches("http://"));
    let site = Site::new(&url, None, Duration::from_secs(5)).unwrap();
    let n = Node::new("intel-2s");
    let (_agent, addr) = n.agent_with(|c| {
        c.args(["--site", &relay.url(), "--node-name", "n1", "--push-interval", PUSH_INTERVAL]);
    });
    wait_metrics(&addr, "the agent pushes", |m| m("powerstack_site_pushed_samples_total") > 0.0);

    // The job on the agent and at the site (the scheduler reaches the site directly).
    let a0 = agent_json(&n, "POST", "/v1/jobs/net1/begin")["begin_unix_us"].as_u64().unwrap();
    let job = SiteJobBeginV1 { id: "net1".into(), nodes: vec!["n1".into()], ..Default::default() };
    let s0 = site.begin_job(&job).unwrap().begin_unix_us;
    std::thread::sleep(Duration::from_secs(2));

    // An answer lost on the way back (the batch is stored; the agent must send it again), then
    // the network cut for many push intervals.
    relay.drop_answers();
    let deadline = Instant::now() + Duration::from_secs(30);
    while relay.answers_dropped() == 0 {
        assert!(Instant::now() < deadline, "no answer went through the relay");
        std::thread::sleep(Duration::from_millis(10));
    }
    let errors = metric(&addr, "powerstack_site_push_errors_total");
    relay.cut();
    let mut cut = Seen::default();
    watch(&addr, CUT, &mut cut);
    assert!(cut.down && cut.spooled_max > 0.0, "the agent did not spool during the cut: {cut:?}");
    assert!(metric(&addr, "powerstack_site_push_errors_total") > errors);
    relay.restore();
    let pushed = drained(&addr, metric(&addr, "powerstack_site_pushed_samples_total"));

    // The listener closed: refused at once.
    let errors = metric(&addr, "powerstack_site_push_errors_total");
    relay.refuse();
    let mut refused = Seen::default();
    watch(&addr, REFUSED, &mut refused);
    assert!(refused.down, "the agent did not see the refusals: {refused:?}");
    assert!(metric(&addr, "powerstack_site_push_errors_total") > errors);
    relay.restore();
    drained(&addr, pushed);
    std::thread::sleep(Duration::from_secs(1));

    let agent_end: JobResultV1 =
        serde_json::from_value(agent_json(&n, "POST", "/v1/jobs/net1/end")).unwrap();
    let s1 = site.end_job("net1").unwrap().end_unix_us.unwrap();
    let r = settled_report(&site, "net1");
    let at_site = &r.report.nodes[0].result;
    assert_eq!(at_site.data_presence, DataPresence::Complete, "{at_site:?}");
    assert_eq!(agent_end.data_presence, DataPresence::Complete, "{agent_end:?}");
    assert_eq!(agent_end.result_start_time, a0);
    let a1 = agent_end.result_end_time;

    // Every sample time the agent sent, with how often, and its counters (the same each time).
    let mut sent: BTreeMap<u64, (u64, Vec<u64>)> = BTreeMap::new();
    for b in batches_sent(&relay) {
        for row in b.samples {
            let e = sent.entry(row[0]).or_insert((0, row.clone()));
            assert_eq!(e.1, row, "sample {} sent with other counters", row[0]);
            e.0 += 1;
        }
    }
    let in_window: Vec<(&u64, &(u64, Vec<u64>))> = sent.range(s0..=s1).collect();
    let resent = sent.values().filter(|(k, _)| *k > 1).count();
    // Exactly once: the site's samples over the window are the distinct times the agent sent in
    // it (the site stores only what it was sent, so equal counts are equal sets), though some were
    // sent twice: the batch whose answer was lost was sent again and answered as a duplicate.
    assert_eq!(at_site.samples, in_window.len() as u64, "{at_site:?}");
    assert!(resent > 0, "no sample was sent twice: the lost answer was not resent");
    let dup = http_get(url.trim_start_matches("http://"), "/metrics");
    let duplicates: f64 = dup
        .lines()
        .find_map(|l| l.strip_prefix("powerstack_site_batches_duplicate_total ")?.parse().ok())
        .unwrap();
    assert!(duplicates >= 1.0, "{dup}");
    for reason in ["spool_bytes", "spool_age", "rejected"] {
        let name = format!("powerstack_site_dropped_samples_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&addr, &name), 0.0, "{name}");
    }

    assert_rows_are_the_agents(&n, s0, s1, &in_window);

    // The energy: the agent's own over its window [a0, a1], moved to the site's [s0, s1] (a few
    // ms apart, the calls' latency; tens of ms on a loaded machine) at its mean power; within 0.1%
    // of the site's, plus what moving the edges at the mean power can miss: at most the time the
    // edges are apart times the node's power swing, taken as twice the peak (seen: edges 31 ms
    // apart on a loaded CI machine put the site 0.17% above, a correct figure).
    let edges_apart_s = ((s0 as f64 - a0 as f64).abs() + (s1 as f64 - a1 as f64).abs()) / 1e6;
    let moved = agent_end.energy_joules
        + agent_end.node_power * ((s1 as f64 - a1 as f64) - (s0 as f64 - a0 as f64)) / 1e6;
    let tolerance_joules = 1e-3 * moved + edges_apart_s * 2.0 * agent_end.peak_node_power;
    let diff = (at_site.energy_joules - moved) / moved;
    eprintln!(
        "site {} J, {} samples; agent {} J over its window ({} J over the site's), {} samples in its ring; \
         {} distinct times sent in the window, {resent} sent twice; edges apart {} / {} µs; \
         most spooled {}; difference {:+.4}%",
        at_site.energy_joules,
        at_site.samples,
        agent_end.energy_joules,
        moved,
        agent_end.samples,
        in_window.len(),
        s0 as i64 - a0 as i64,
        s1 as i64 - a1 as i64,
        cut.spooled_max,
        100.0 * diff
    );
    assert!(
        (at_site.energy_joules - moved).abs() < tolerance_joules,
        "off by more than {tolerance_joules} J: site {at_site:?}\nagent {agent_end:?}"
    );
    assert!(at_site.samples <= agent_end.samples + 2);
}
