//! BMC telemetry: nodes without an agent (`[[bmc]] telemetry = true`) read through their BMC
//! every `bmc_telemetry_interval_s` and stored as streams like an agent's, registered with
//! [`Store::register`] and pushed through the [`Ingester`] (the one ingest path). One replica
//! polls a node at a time, the holder of its lease ([`Store::hold_bmc_lease`], renewed at each
//! reading); each holder writes a stream of its own. Reads run at most [`MAX_READS`] at once,
//! each bounded in time; a failed read is a gap ([`track`] says what the readings come to).

pub mod track;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use powerstack_api::site::{BatchV1, StreamDomainV1, StreamRegisterV1};
use powerstack_redfish::{Bmc, BmcConfig, ChassisReadings, Readings};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::clock::now_us;
use crate::config::SiteConfig;
use crate::store::{BatchIn, Ingester, Store, StoreError};
use track::{JOULES_PER_TICK, Method, Point, Step, Tracker};

/// BMC reads in flight at most, over all nodes.
pub const MAX_READS: usize = 64;
/// The longest one read of a BMC may take (its requests each have the client's timeout).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads of BMCs this replica made, by outcome.
#[derive(Debug, Default)]
pub struct ReadCounters {
    /// A sample stored.
    pub ok: AtomicU64,
    /// The BMC could not be read, or gave neither power nor an energy counter: a gap.
    pub failed: AtomicU64,
    /// Read, and not stored (the database away, or the sample refused).
    pub not_stored: AtomicU64,
    /// Not read: the node's agent pushes (its samples are fresh), and a node is counted once.
    pub agent: AtomicU64,
}

impl ReadCounters {
    /// Each outcome's label and count.
    pub fn outcomes(&self) -> [(&'static str, u64); 4] {
        [
            ("ok", self.ok.load(Ordering::Relaxed)),
            ("failed", self.failed.load(Ordering::Relaxed)),
            ("not-stored", self.not_stored.load(Ordering::Relaxed)),
            ("agent", self.agent.load(Ordering::Relaxed)),
        ]
    }
}

/// The provider of a stream the site registered for a node's BMC; `None`: an agent's stream.
pub fn bmc_provider(domains: &[StreamDomainV1]) -> Option<&str> {
    match domains {
        [d] if [Method::Counter, Method::Integrated].iter().any(|m| m.provider() == d.provider) => {
            Some(&d.provider)
        }
        _ => None,
    }
}

/// A node whose BMC is read.
struct Node {
    name: String,
    chassis: Option<String>,
    bmc: Bmc,
}

/// The nodes to read and how often.
pub struct Telemetry {
    nodes: Vec<Node>,
    interval: Duration,
    agent_fresh_us: u64,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        f.debug_struct("Telemetry")
            .field("nodes", &names)
            .field("interval", &self.interval)
            .finish()
    }
}

impl Telemetry {
    /// The `[[bmc]]` entries with `telemetry = true`, their clients made (password files read).
    pub fn from_config(config: &SiteConfig) -> Result<Telemetry, StoreError> {
        let mut nodes = Vec::new();
        for entry in config.bmcs()?.into_iter().filter(|b| b.telemetry) {
            let bmc_config: BmcConfig = crate::control::redfish::bmc_config(&entry)?;
            let bmc = Bmc::new(&bmc_config)
                .map_err(|e| StoreError::Config(format!("[[bmc]] node {}: {e}", entry.node)))?;
            nodes.push(Node { name: entry.node, chassis: entry.chassis, bmc });
        }
        Ok(Telemetry {
            nodes,
            interval: Duration::from_secs(config.bmc_telemetry_interval_s),
            agent_fresh_us: (config.stale_after_s * 1e6) as u64,
        })
    }
}

/// What every node's loop shares.
struct Ctx {
    store: Store,
    ingester: Ingester,
    counters: Arc<ReadCounters>,
    reads: Semaphore,
    owner: String,
    interval: Duration,
    lease_us: u64,
    agent_fresh_us: u64,
}

/// Starts [`run`] on the current runtime; its task and its counters.
pub fn spawn(
    telemetry: Telemetry,
    store: Store,
    ingester: Ingester,
    stopped: watch::Receiver<bool>,
) -> (tokio::task::JoinHandle<()>, Arc<ReadCounters>) {
    let counters = Arc::new(ReadCounters::default());
    let task = tokio::spawn(run(telemetry, store, ingester, Arc::clone(&counters), stopped));
    (task, counters)
}

/// Reads the nodes of `telemetry` until `stopped` turns true; then ends this replica's leases.
pub async fn run(
    telemetry: Telemetry,
    store: Store,
    ingester: Ingester,
    counters: Arc<ReadCounters>,
    stopped: watch::Receiver<bool>,
) {
    if telemetry.nodes.is_empty() {
        return;
    }
    let interval = telemetry.interval;
    // A lease outlives a read that runs to its timeout, and a missed renewal.
    let lease = READ_TIMEOUT + 2 * interval;
    let ctx = Arc::new(Ctx {
        store,
        ingester,
        counters,
        reads: Semaphore::new(MAX_READS),
        owner: crate::tasks::new_id(),
        interval,
        lease_us: u64::try_from(lease.as_micros()).unwrap_or(u64::MAX),
        agent_fresh_us: telemetry.agent_fresh_us,
    });
    let mut loops = JoinSet::new();
    for node in telemetry.nodes {
        loops.spawn(poll(node, Arc::clone(&ctx), stopped.clone()));
    }
    while loops.join_next().await.is_some() {}
    let _ = ctx.store.release_bmc_leases(&ctx.owner).await;
}

/// The stream a node's samples go to.
struct Stream {
    id: String,
    seq: u64,
}

/// A new stream id: 16 lowercase hex digits.
fn new_stream_id() -> String {
    crate::tasks::new_id().chars().filter(char::is_ascii_hexdigit).take(16).collect()
}

/// The chassis a node's power is read from: the entry's, else the first with power (else with
/// an energy counter).
fn chassis<'a>(readings: &'a Readings, id: Option<&str>) -> Option<&'a ChassisReadings> {
    match id {
        Some(id) => readings.chassis(id),
        None => readings.chassis.iter().find(|c| c.power_watts().is_some()).or_else(|| {
            readings
                .chassis
                .iter()
                .find(|c| matches!(c.energy, Some(powerstack_redfish::Energy::Counter { .. })))
        }),
    }
}

/// What a node's loop keeps between readings.
#[derive(Default)]
struct Polled {
    tracker: Tracker,
    stream: Option<Stream>,
}

impl Polled {
    /// Forgets the stream: the next reading begins another.
    fn reset(&mut self) {
        self.tracker.reset();
        self.stream = None;
    }
}

/// One node's loop: each interval, one reading ([`once`]); a stop ends it at once, a read in
/// flight abandoned.
async fn poll(node: Node, ctx: Arc<Ctx>, mut stopped: watch::Receiver<bool>) {
    let mut polled = Polled::default();
    let mut tick = tokio::time::interval(ctx.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => break,
            _ = tick.tick() => {}
        }
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => break,
            () = once(&node, &ctx, &mut polled) => {}
        }
    }
    // A session ended, as far as the BMC answers at once.
    let _ = tokio::time::timeout(Duration::from_secs(2), node.bmc.close()).await;
}

/// The lease held, the BMC read, the sample stored; the outcome counted.
async fn once(node: &Node, ctx: &Ctx, polled: &mut Polled) {
    let now = now_us();
    let until = now.saturating_add(ctx.lease_us);
    let stream = polled.stream.as_ref().map(|s| s.id.as_str());
    if ctx.store.hold_bmc_lease(&node.name, &ctx.owner, stream, now, until).await.ok() != Some(true)
    {
        // Another replica polls it (or the database is away): afresh once it is ours.
        polled.reset();
        return;
    }
    if agent_pushes(ctx, &node.name, now).await {
        // The agent's samples are the node's: a BMC stream beside them would count it twice.
        ctx.counters.agent.fetch_add(1, Ordering::Relaxed);
        polled.reset();
        return;
    }
    let read = {
        let _permit = ctx.reads.acquire().await;
        tokio::time::timeout(READ_TIMEOUT, node.bmc.readings()).await
    };
    let t_us = now_us();
    let point = match &read {
        Ok(Ok(readings)) => chassis(readings, node.chassis.as_deref())
            .and_then(|c| Point::of(t_us, c).map(|p| (p, c.capacity_watts))),
        _ => None,
    };
    // Nothing is written once the lease may have passed to another replica.
    let Some((point, capacity_watts)) = point.filter(|_| t_us < until) else {
        ctx.counters.failed.fetch_add(1, Ordering::Relaxed);
        polled.tracker.gap();
        if t_us >= until {
            polled.reset();
        }
        return;
    };
    let stored = match polled.tracker.reading(point) {
        Step::Skip => {
            ctx.counters.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Step::Begin(method) => {
            let begun = begin(ctx, &node.name, method, capacity_watts, t_us).await;
            polled.stream = begun.ok().map(|id| Stream { id, seq: 0 });
            match &polled.stream {
                Some(s) => push(ctx, &node.name, s, t_us, 0).await,
                None => Err(StoreError::Unavailable("the stream was not registered".into())),
            }
        }
        Step::Append(ticks) => match &polled.stream {
            Some(s) => push(ctx, &node.name, s, t_us, ticks).await,
            None => Err(StoreError::Unavailable("no stream".into())),
        },
    };
    if let Some(s) = polled.stream.as_mut() {
        s.seq += 1;
    }
    let counter = match stored {
        Ok(()) => &ctx.counters.ok,
        Err(_) => {
            if polled.stream.is_none() {
                polled.tracker.reset();
            }
            &ctx.counters.not_stored
        }
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Whether `node` has an agent's stream (not one of the site's BMC streams) with a sample
/// within the last `stale_after_s`; a database error reads as no.
async fn agent_pushes(ctx: &Ctx, node: &str, now: u64) -> bool {
    let since = now.saturating_sub(ctx.agent_fresh_us);
    let Ok(streams) = ctx.store.streams_of(node, since, now).await else { return false };
    for s in streams.iter().filter(|s| bmc_provider(&s.domains).is_none()) {
        if matches!(ctx.store.stream_has_samples_since(s.id, since).await, Ok(true)) {
            return true;
        }
    }
    false
}

/// Registers a new stream of `node` begun at `t_us`, through the store's registration (as an
/// agent's); its id.
async fn begin(
    ctx: &Ctx,
    node: &str,
    method: Method,
    capacity_watts: Option<f64>,
    t_us: u64,
) -> Result<String, StoreError> {
    let id = new_stream_id();
    let reg = StreamRegisterV1 {
        hostname: node.to_string(),
        simulated: None,
        started_unix_us: t_us,
        domains: vec![StreamDomainV1 {
            domain: "node".into(),
            index: 0,
            die: None,
            provider: method.provider().into(),
            joules_per_tick: JOULES_PER_TICK,
            read: true,
            limit_watts: None,
            max_power_watts: capacity_watts.filter(|w| w.is_finite() && *w > 0.0),
        }],
        topology: None,
        control_url: None,
    };
    ctx.store.register_stream(node, &id, &reg, now_us(), false).await?;
    // The lease names the holder's stream at once.
    let until = now_us().saturating_add(ctx.lease_us);
    if !ctx.store.hold_bmc_lease(node, &ctx.owner, Some(&id), now_us(), until).await? {
        return Err(StoreError::Conflict(format!("node {node}: another replica polls its BMC")));
    }
    Ok(id)
}

/// Stores one sample of `stream` through the ingest queue.
async fn push(
    ctx: &Ctx,
    node: &str,
    stream: &Stream,
    t_us: u64,
    ticks: u64,
) -> Result<(), StoreError> {
    let batch = BatchIn {
        node: node.to_string(),
        stream: stream.id.clone(),
        batch: BatchV1 { seq: stream.seq + 1, samples: vec![vec![t_us, ticks]] },
        now_us: now_us(),
    };
    ctx.ingester.submit(batch).await.map(|_| ())
}
