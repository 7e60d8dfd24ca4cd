//! State shared between the sampler threads and the HTTP side.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use powerstack_model::DomainInfo;

use crate::job::store::{JobsFile, StoreError};
use crate::job::{Jobs, NodeView};
pub use crate::ring::DomainMeta;
use crate::ring::Ring;

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
    /// Domain readings missing: failed reads and counters that stopped moving (the previous
    /// value was kept).
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

/// The site pusher's statistics ([`crate::push`]), updated by its thread without locks and shown on
/// `/metrics` when a site is configured.
#[derive(Debug, Default)]
pub struct SiteStats {
    /// Whether the last call to the site succeeded.
    pub up: AtomicBool,
    /// Bytes the spool holds on disk.
    pub spool_bytes: AtomicU64,
    /// Sealed batches waiting in the spool.
    pub spool_batches: AtomicU64,
    /// Samples waiting in the spool (sealed and open batches).
    pub spool_samples: AtomicU64,
    /// Samples the site has acknowledged (a resend's included once).
    pub pushed_samples: AtomicU64,
    /// Samples dropped because the spool grew over `spool_max_bytes`.
    pub dropped_bytes_samples: AtomicU64,
    /// Samples dropped because they grew older than `spool_max_age_s`.
    pub dropped_age_samples: AtomicU64,
    /// Samples the site refused (a 4xx answer) and that were set aside.
    pub dropped_rejected_samples: AtomicU64,
    /// Calls to the site that failed: no answer, or an error status.
    pub push_errors: AtomicU64,
}

/// The agent's clock: wall-clock µs derived from the monotonic clock anchored once, so sample and
/// job times never jump or drift apart when the wall clock is stepped or slewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// `powerstack_hw::clock::mono_ns()` at the anchor.
    pub anchor_mono_ns: u64,
    /// The wall clock at the anchor, µs since the Unix epoch.
    pub anchor_unix_us: u64,
}

impl Clock {
    /// Anchors a clock now.
    pub fn start() -> Clock {
        Clock {
            anchor_mono_ns: powerstack_hw::clock::mono_ns(),
            anchor_unix_us: powerstack_hw::clock::unix_us().max(0) as u64,
        }
    }

    /// The time, µs since the epoch, of a `powerstack_hw::clock::mono_ns()` reading.
    pub fn unix_us_at(&self, mono_ns: u64) -> u64 {
        self.anchor_unix_us + mono_ns.saturating_sub(self.anchor_mono_ns) / 1000
    }

    /// Now, µs since the epoch.
    pub fn now_unix_us(&self) -> u64 {
        self.unix_us_at(powerstack_hw::clock::mono_ns())
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
    /// The clock of ring and job times.
    pub clock: Clock,
    /// The samples.
    pub ring: Mutex<Ring>,
    /// The job windows.
    pub jobs: Mutex<Jobs>,
    /// Where the job windows are kept across restarts (`None`: in memory only).
    pub jobs_file: Option<JobsFile>,
    /// Sampler statistics.
    pub stats: SamplerStats,
    /// Up to when every column of the ring is final, µs since the epoch (0: not yet): a slow
    /// source's rows are redrawn until its reading for that time has arrived.
    pub settled_us: AtomicU64,
    /// Each column's measured update period, µs (0: updated at every sample, or not known yet).
    pub update_period_us: Vec<AtomicU64>,
    /// Whether each column's newest reading is missing (a failed read, or a counter that has
    /// stopped moving): the ring holds its last value, which is no current power.
    pub missing: Vec<AtomicBool>,
    /// The window a job's peak is taken over when a query does not ask for one, µs.
    pub peak_window_us: u64,
    /// The site pusher's statistics (`None`: no site configured).
    pub site: Option<SiteStats>,
}

impl Shared {
    /// The shared state of an agent sampling `domains` at `rate_hz` into a ring of
    /// `buffer_samples` samples, with the clock anchored now.
    pub fn new(
        hostname: String,
        simulated: Option<String>,
        domains: Vec<DomainMeta>,
        rate_hz: f64,
        buffer_samples: usize,
        peak_window_us: u64,
    ) -> Shared {
        let columns = domains.len();
        Shared {
            hostname,
            simulated,
            rate_hz,
            clock: Clock::start(),
            ring: Mutex::new(Ring::new(buffer_samples, columns)),
            jobs: Mutex::new(Jobs::default()),
            jobs_file: None,
            stats: SamplerStats::default(),
            settled_us: AtomicU64::new(0),
            update_period_us: (0..columns).map(|_| AtomicU64::new(0)).collect(),
            missing: (0..columns).map(|_| AtomicBool::new(false)).collect(),
            peak_window_us,
            site: None,
            domains,
        }
    }

    /// The window a job's peak is taken over: `asked_us` (else the agent's default), but never
    /// shorter than the sampling interval nor than any column's measured update period, over
    /// which power cannot be told apart.
    pub fn peak_window_us(&self, asked_us: Option<u64>) -> u64 {
        let interval_us = (1e6 / self.rate_hz.max(1e-3)) as u64;
        let slowest =
            self.update_period_us.iter().map(|p| p.load(Ordering::Relaxed)).max().unwrap_or(0);
        asked_us.unwrap_or(self.peak_window_us).max(interval_us).max(slowest)
    }

    /// Records whether column `col`'s newest reading is missing (a store only when it changes).
    pub fn set_missing(&self, col: usize, missing: bool) {
        if let Some(m) = self.missing.get(col)
            && m.load(Ordering::Relaxed) != missing
        {
            m.store(missing, Ordering::Relaxed);
        }
    }

    /// The number of columns whose newest reading is missing.
    pub fn missing_columns(&self) -> usize {
        self.missing.iter().filter(|m| m.load(Ordering::Relaxed)).count()
    }

    /// This state with `jobs` (loaded from the state directory) kept in `file`.
    pub fn with_jobs(mut self, jobs: Jobs, file: JobsFile) -> Shared {
        self.jobs = Mutex::new(jobs);
        self.jobs_file = Some(file);
        self
    }

    /// This state with the statistics of a site pusher (shown on `/metrics`).
    pub fn with_site(mut self) -> Shared {
        self.site = Some(SiteStats::default());
        self
    }

    /// Keeps `jobs` (this agent's table, locked by the caller) in the state directory, as an
    /// agent that runs on (not stopping): nothing to do without a [`Shared::jobs_file`].
    pub fn save_jobs(&self, jobs: &Jobs) -> Result<(), StoreError> {
        match &self.jobs_file {
            Some(f) => f.save(jobs, false),
            None => Ok(()),
        }
    }

    /// What a job's figures need of this node besides the ring, now.
    pub fn job_view(&self) -> NodeView<'_> {
        NodeView {
            hostname: &self.hostname,
            domains: &self.domains,
            now_unix_us: self.clock.now_unix_us(),
        }
    }

    /// The catalog entries, in ring column order.
    pub fn catalog(&self) -> Vec<DomainInfo> {
        self.domains.iter().map(|d| d.info.clone()).collect()
    }
}
