//! State shared between the sampler threads and the HTTP side.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use powerstack_model::DomainInfo;

use crate::job::Jobs;
use crate::ring::Ring;

/// What the stored counters of one domain mean.
#[derive(Clone, Debug, PartialEq)]
pub struct DomainMeta {
    /// The catalog entry.
    pub info: DomainInfo,
    /// Joules per stored tick. Energy domains: their counter's unit. Power-only domains: the agent
    /// integrates their power into µJ (1e-6).
    pub joules_per_tick: f64,
}

/// Sampler statistics, updated by the sampler thread without locks.
#[derive(Debug, Default)]
pub struct SamplerStats {
    /// Samples stored.
    pub samples: AtomicU64,
    /// Deadlines missed (a sample that started more than one period late counts each period).
    pub overruns: AtomicU64,
    /// Duration of the last sample, ns.
    pub last_duration_ns: AtomicU64,
    /// Longest sample, ns.
    pub max_duration_ns: AtomicU64,
    /// Sum of sample durations, ns (with `samples`, the mean).
    pub sum_duration_ns: AtomicU64,
    /// Domain reads that failed (the previous value was kept).
    pub read_failures: AtomicU64,
    /// Reads of the slow sources.
    pub slow_reads: AtomicU64,
}

impl SamplerStats {
    /// Records one sample that took `ns`.
    pub fn record(&self, ns: u64) {
        self.samples.fetch_add(1, Ordering::Relaxed);
        self.last_duration_ns.store(ns, Ordering::Relaxed);
        self.max_duration_ns.fetch_max(ns, Ordering::Relaxed);
        self.sum_duration_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

/// Everything the agent's threads share.
#[derive(Debug)]
pub struct Shared {
    /// The node's hostname.
    pub hostname: String,
    /// The simulator profile, when the node is simulated.
    pub simulated: Option<String>,
    /// The domains, in ring column order.
    pub domains: Vec<DomainMeta>,
    /// Sampling rate, Hz.
    pub rate_hz: f64,
    /// The samples.
    pub ring: Mutex<Ring>,
    /// The job windows.
    pub jobs: Mutex<Jobs>,
    /// Sampler statistics.
    pub stats: SamplerStats,
}

impl Shared {
    /// The catalog entries, in ring column order.
    pub fn catalog(&self) -> Vec<DomainInfo> {
        self.domains.iter().map(|d| d.info.clone()).collect()
    }
}
