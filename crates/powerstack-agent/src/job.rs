//! Job windows, and a job's power and energy computed from the sample ring.
//!
//! A job is a named time window on this node ([`JobWindow`]): marked at its beginning and its end
//! ([`Jobs::begin`], [`Jobs::end`]); jobs may overlap. [`job_result`] turns the ring's samples over
//! a window into a [`JobResultV1`]:
//!
//! - the **covered part** is the window intersected with the buffer's span (oldest to newest
//!   sample); a running job runs to the newest sample;
//! - a domain's energy at a time between two samples is the linear interpolation of its counter
//!   between them (the edges of a window need not fall on samples), so a job's energy is the exact
//!   counter difference across the covered part, and its mean power that energy over the covered
//!   duration: a time-weighted mean, whatever the sampling irregularities;
//! - the node is what [`powerstack_model::power::node_parts`] says: a node domain, else psys plus
//!   the GPUs, else packages, memory and GPUs (the rule of `PowerReport`);
//! - `data_presence` is `Complete` when the buffer covers the whole window, `Partial` when it
//!   covers part of it (a window enclosing the whole buffer included), `None` when nothing
//!   overlaps.
//!
//! The computation costs two binary searches and one pass over the covered samples (for the peak).

use std::collections::{BTreeMap, BTreeSet};

use powerstack_api::job::{DataPresence, JobResultV1, JobV1};
use powerstack_model::DomainKind;
use powerstack_model::power::node_parts;

use crate::ring::Ring;
use crate::state::DomainMeta;

/// The longest job id, in characters.
pub const MAX_ID_LEN: usize = 128;
/// The longest `user` or `app` label, in characters.
pub const MAX_LABEL_LEN: usize = 256;
/// How many job windows [`Jobs::default`] keeps; beyond that, a new job replaces the ended job
/// that ended first.
pub const MAX_JOBS: usize = 10_000;

/// What the number in a figure is when it cannot be given (as in the Flux Power Monitor's rows).
const NOT_MEASURED: f64 = -1.0;

/// One job's time window on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobWindow {
    /// The job's id: 1 to [`MAX_ID_LEN`] characters of `A-Z a-z 0-9 . _ : -`.
    pub id: String,
    /// Who the job belongs to, when the job mark said.
    pub user: Option<String>,
    /// The job's application, when the job mark said.
    pub app: Option<String>,
    /// When the job began, µs since the Unix epoch.
    pub begin_unix_us: u64,
    /// When the job ended, µs since the Unix epoch; `None` while it runs.
    pub end_unix_us: Option<u64>,
}

impl JobWindow {
    /// Whether the job has not ended.
    pub fn is_running(&self) -> bool {
        self.end_unix_us.is_none()
    }
}

impl From<&JobWindow> for JobV1 {
    fn from(w: &JobWindow) -> JobV1 {
        JobV1 {
            id: w.id.clone(),
            user: w.user.clone(),
            app: w.app.clone(),
            begin_unix_us: w.begin_unix_us,
            end_unix_us: w.end_unix_us,
        }
    }
}

/// Why a job mark was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The id is empty, too long, or has a character outside `A-Z a-z 0-9 . _ : -` (`id` holds at
    /// most its first 40 characters).
    #[error("bad job id {id:?}: use 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'")]
    BadId {
        /// The id (shortened).
        id: String,
    },
    /// A `user` or `app` label is too long or holds a control character.
    #[error("job {id}: bad {field}: use at most 256 characters and no control characters")]
    BadLabel {
        /// The job's id.
        id: String,
        /// `user` or `app`.
        field: &'static str,
    },
    /// A job with this id is already known (running or ended).
    #[error("job {id} has already begun (at {begin_unix_us} µs since the epoch): use another id")]
    AlreadyBegun {
        /// The job's id.
        id: String,
        /// When the known job began, µs since the Unix epoch.
        begin_unix_us: u64,
    },
    /// No job has this id (never begun, or forgotten).
    #[error("job {id} is unknown: begin it first")]
    Unknown {
        /// The job's id.
        id: String,
    },
    /// The job has already ended.
    #[error("job {id} has already ended (at {end_unix_us} µs since the epoch)")]
    AlreadyEnded {
        /// The job's id.
        id: String,
        /// When it ended, µs since the Unix epoch.
        end_unix_us: u64,
    },
    /// The end mark is earlier than the beginning.
    #[error(
        "job {id} cannot end at {end_unix_us} µs since the epoch, before it began ({begin_unix_us} µs)"
    )]
    EndBeforeBegin {
        /// The job's id.
        id: String,
        /// When it began, µs since the Unix epoch.
        begin_unix_us: u64,
        /// The refused end, µs since the Unix epoch.
        end_unix_us: u64,
    },
    /// The job table is full of running jobs.
    #[error("job {id}: {max} jobs are running already: end some first")]
    TooMany {
        /// The refused job's id.
        id: String,
        /// The most jobs kept.
        max: usize,
    },
}

/// Checks a job id: 1 to [`MAX_ID_LEN`] characters of `A-Z a-z 0-9 . _ : -`.
pub fn check_id(id: &str) -> Result<(), JobError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok { Ok(()) } else { Err(JobError::BadId { id: id.chars().take(40).collect() }) }
}

fn check_label(id: &str, field: &'static str, label: Option<&str>) -> Result<(), JobError> {
    match label {
        Some(l) if l.chars().count() > MAX_LABEL_LEN || l.chars().any(char::is_control) => {
            Err(JobError::BadLabel { id: id.to_string(), field })
        }
        _ => Ok(()),
    }
}

/// The job windows of this node, by id.
#[derive(Clone, Debug)]
pub struct Jobs {
    jobs: BTreeMap<String, JobWindow>,
    max_jobs: usize,
}

impl Default for Jobs {
    fn default() -> Jobs {
        Jobs::with_limit(MAX_JOBS)
    }
}

impl Jobs {
    /// An empty table keeping at most `max_jobs` windows (at least one): when full, a new job
    /// replaces the ended job that ended first; when every kept job runs, it is refused.
    pub fn with_limit(max_jobs: usize) -> Jobs {
        Jobs { jobs: BTreeMap::new(), max_jobs: max_jobs.max(1) }
    }

    /// Marks the beginning of job `id` at `at_us` (µs since the Unix epoch).
    ///
    /// Refused when the id is malformed ([`JobError::BadId`]), a label is
    /// ([`JobError::BadLabel`]), a job with this id is known ([`JobError::AlreadyBegun`]), or the
    /// table is full of running jobs ([`JobError::TooMany`]).
    pub fn begin(
        &mut self,
        id: &str,
        user: Option<String>,
        app: Option<String>,
        at_us: u64,
    ) -> Result<&JobWindow, JobError> {
        check_id(id)?;
        check_label(id, "user", user.as_deref())?;
        check_label(id, "app", app.as_deref())?;
        if let Some(known) = self.jobs.get(id) {
            return Err(JobError::AlreadyBegun {
                id: id.to_string(),
                begin_unix_us: known.begin_unix_us,
            });
        }
        if self.jobs.len() >= self.max_jobs {
            let first_ended =
                self.jobs.values().filter_map(|j| j.end_unix_us.map(|e| (e, j.id.clone()))).min();
            match first_ended {
                Some((_, old)) => {
                    self.jobs.remove(&old);
                }
                None => {
                    return Err(JobError::TooMany { id: id.to_string(), max: self.max_jobs });
                }
            }
        }
        let window =
            JobWindow { id: id.to_string(), user, app, begin_unix_us: at_us, end_unix_us: None };
        Ok(self.jobs.entry(id.to_string()).or_insert(window))
    }

    /// Marks the end of job `id` at `at_us` (µs since the Unix epoch).
    ///
    /// Refused when the id is malformed ([`JobError::BadId`]), no such job is known
    /// ([`JobError::Unknown`]), it has ended ([`JobError::AlreadyEnded`]), or `at_us` is before
    /// its beginning ([`JobError::EndBeforeBegin`]).
    pub fn end(&mut self, id: &str, at_us: u64) -> Result<&JobWindow, JobError> {
        check_id(id)?;
        let Some(job) = self.jobs.get_mut(id) else {
            return Err(JobError::Unknown { id: id.to_string() });
        };
        if let Some(end_unix_us) = job.end_unix_us {
            return Err(JobError::AlreadyEnded { id: id.to_string(), end_unix_us });
        }
        if at_us < job.begin_unix_us {
            return Err(JobError::EndBeforeBegin {
                id: id.to_string(),
                begin_unix_us: job.begin_unix_us,
                end_unix_us: at_us,
            });
        }
        job.end_unix_us = Some(at_us);
        Ok(job)
    }

    /// The job with this id.
    pub fn get(&self, id: &str) -> Option<&JobWindow> {
        self.jobs.get(id)
    }

    /// Every job, by begin time (then id).
    pub fn list(&self) -> Vec<&JobWindow> {
        let mut all: Vec<&JobWindow> = self.jobs.values().collect();
        all.sort_by(|a, b| (a.begin_unix_us, &a.id).cmp(&(b.begin_unix_us, &b.id)));
        all
    }

    /// Forgets job `id`, returning its window.
    pub fn remove(&mut self, id: &str) -> Option<JobWindow> {
        self.jobs.remove(id)
    }

    /// Forgets the jobs that ended before `unix_us` (say, the oldest sample kept: their data are
    /// gone); returns how many.
    pub fn prune_ended_before(&mut self, unix_us: u64) -> usize {
        let before = self.jobs.len();
        self.jobs.retain(|_, j| j.end_unix_us.is_none_or(|e| e >= unix_us));
        before - self.jobs.len()
    }

    /// Jobs known.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether no job is known.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

/// How long a buffer of `capacity` samples at `rate_hz` reaches back, in seconds (`None` for a
/// rate that is not a positive number).
pub fn buffer_span_s(capacity: usize, rate_hz: f64) -> Option<f64> {
    (rate_hz.is_finite() && rate_hz > 0.0).then(|| capacity as f64 / rate_hz)
}

/// The warning given when a job begins: how far back the buffer reaches, and that a longer job
/// will be `Partial`, e.g. `the buffer holds 10000 s (2.8 h) at 100 Hz; a job longer than that
/// will be Partial`.
pub fn buffer_span_warning(capacity: usize, rate_hz: f64) -> String {
    match buffer_span_s(capacity, rate_hz) {
        Some(s) => {
            let human = if s >= 86_400.0 {
                format!(" ({:.1} days)", s / 86_400.0)
            } else if s >= 3600.0 {
                format!(" ({:.1} h)", s / 3600.0)
            } else if s >= 60.0 {
                format!(" ({:.1} min)", s / 60.0)
            } else {
                String::new()
            };
            format!(
                "the buffer holds {} s{human} at {} Hz; a job longer than that will be Partial",
                fmt_num(s),
                fmt_num(rate_hz)
            )
        }
        None => {
            format!("the buffer holds {capacity} samples; a job longer than that will be Partial")
        }
    }
}

/// A number with at most three decimals and no trailing zeros.
fn fmt_num(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// How many samples the search for the start of a counter's flat run looks back (or for its next
/// change looks ahead, at a window's edge) before giving up.
const RUN_SEARCH: usize = 4096;

/// The first sample of the run of equal values of column `c` that ends at sample `i` (value
/// `v`): where the counter last changed. `None` when that is not known: the run reaches the
/// oldest sample kept (the change may be older) or goes back further than [`RUN_SEARCH`].
fn run_start(ring: &Ring, c: usize, i: usize, v: u64) -> Option<usize> {
    let stop = i.saturating_sub(RUN_SEARCH);
    let mut s = i;
    while s > stop {
        if ring.value(s - 1, c) != Some(v) {
            return Some(s);
        }
        s -= 1;
    }
    None
}

/// The first sample after `i` (at most `limit` samples after it) where column `c` no longer
/// holds `v`.
fn next_change(ring: &Ring, c: usize, i: usize, v: u64, limit: usize) -> Option<usize> {
    let end = ring.len().min(i.saturating_add(limit).saturating_add(1));
    (i + 1..end).find(|&k| ring.value(k, c) != Some(v))
}

/// A counter's value at a time: whole ticks plus a fraction, so that differences of large
/// counters stay exact.
#[derive(Clone, Copy, Debug)]
struct Level {
    base: u64,
    extra: f64,
}

impl Level {
    /// Ticks from `a` to `self`.
    fn since(self, a: Level) -> f64 {
        (self.base.saturating_sub(a.base) as f64 + self.extra - a.extra).max(0.0)
    }
}

/// Column `c`'s counter at `t` (within the buffer's span).
///
/// A counter updated less often than the ring is sampled (pm_counters at 10 Hz, NVML) repeats its
/// value: its energy is spread over the run from the sample where it last changed to the sample
/// where it changes next, and interpolated linearly there. A counter that changes at every sample
/// is thus interpolated between the two samples around `t`, and read exactly at a sample.
fn level_at(ring: &Ring, c: usize, t: u64) -> Option<Level> {
    let i = ring.last_at_or_before(t)?;
    let v = ring.value(i, c)?;
    let flat = Level { base: v, extra: 0.0 };
    let Some(s1) = next_change(ring, c, i, v, RUN_SEARCH) else {
        return Some(flat);
    };
    let s0 = run_start(ring, c, i, v).unwrap_or(i);
    let (Some(t0), Some(t1), Some(v1)) = (ring.time(s0), ring.time(s1), ring.value(s1, c)) else {
        return Some(flat);
    };
    let frac =
        if t1 > t0 { (t.saturating_sub(t0) as f64 / (t1 - t0) as f64).min(1.0) } else { 1.0 };
    Some(Level { base: v, extra: v1.saturating_sub(v) as f64 * frac })
}

/// One node part during the peak search: where its counter's current run began. (Within a run
/// the counter holds one value, so the energy of the run is the change that ends it.)
struct Part {
    col: usize,
    joules_per_tick: f64,
    /// The time of the sample where the run began.
    start_t: u64,
    /// Whether the run's beginning is known (it is not for a run that reaches back to the oldest
    /// sample kept, or further back than [`RUN_SEARCH`]).
    known: bool,
    /// The sample up to which this part's power has been added to the intervals.
    covered: usize,
    /// The last run length seen, µs, and 1e6 over it (sampling is regular: this saves divisions).
    last_dt: (u64, f64),
}

impl Part {
    /// Watts of a run of `ticks` that ended at `t`; NaN when the run's beginning is not known.
    #[inline]
    fn run_watts(&mut self, ticks: u64, t: u64) -> f64 {
        if !self.known || t <= self.start_t {
            return f64::NAN;
        }
        let dt = t - self.start_t;
        if self.last_dt.0 != dt {
            self.last_dt = (dt, 1e6 / dt as f64);
        }
        ticks as f64 * self.joules_per_tick * self.last_dt.1
    }
}

/// How many samples the general case of [`peak_power`] takes in at a time, part after part.
const BLOCK: usize = 1024;

/// The stride of the parts' columns in the general case's copy of a block: not a power of two,
/// so that the columns do not fall on the same cache sets.
const COLUMN: usize = BLOCK + 8;

/// The sums of the parts' powers over the intervals not evaluated yet, by interval (the one from
/// sample `k` to `k + 1` at `k % PENDING`): never more than [`RUN_SEARCH`] + [`BLOCK`] + 1.
const PENDING: usize = (RUN_SEARCH + BLOCK + 2).next_power_of_two();

/// The peak so far, as joules over µs (no division per interval).
#[derive(Clone, Copy)]
struct Best(f64, f64);

impl Best {
    const NONE: Best = Best(f64::NEG_INFINITY, 1.0);

    /// `joules` over `dt_us` µs, if higher (NaN is not).
    #[inline]
    fn offer(&mut self, joules: f64, dt_us: f64) {
        if joules * self.1 > self.0 * dt_us {
            *self = Best(joules, dt_us);
        }
    }

    /// A power in watts, if higher (NaN is not).
    #[inline]
    fn offer_watts(&mut self, watts: f64) {
        self.offer(watts * 1e-6, 1.0);
    }

    fn watts(self) -> Option<f64> {
        let w = self.0 * 1e6 / self.1;
        (w > f64::NEG_INFINITY).then_some(w)
    }
}

/// The highest node power within `from..to` (within the buffer, with a duration), W.
///
/// Each part's power is constant over a run of its counter (the samples from one change to the
/// next: one sampling interval for a counter that changes at every sample, ten for a 10 Hz
/// counter in a 100 Hz ring); the node's power over a sampling interval is the sum of the
/// parts' powers there. Intervals where a part's run has an unknown beginning are left out; a
/// part whose counter stays still for more than [`RUN_SEARCH`] samples counts 0 W there (it draws
/// next to nothing, and the other parts need not wait for it). One pass over the covered samples
/// (and on, until the slow parts' runs end).
fn peak_power(ring: &Ring, parts: &[(usize, f64)], from: u64, to: u64) -> Option<f64> {
    let i = ring.last_at_or_before(from)?;
    let j = ring.first_at_or_after(to)?;
    let (t_i, row_i) = ring.get(i)?;
    let d = ring.domains();
    let mut state: Vec<Part> = Vec::with_capacity(parts.len());
    for &(col, joules_per_tick) in parts {
        let start = run_start(ring, col, i, row_i.get(col).copied()?);
        state.push(Part {
            col,
            joules_per_tick,
            start_t: start.and_then(|s| ring.time(s)).unwrap_or(t_i),
            known: start.is_some(),
            covered: i,
            last_dt: (0, f64::NAN),
        });
    }
    if let [part] = &state[..] {
        return single_part_peak(ring, part, i, j);
    }
    // The parts grouped by unit: (joules per tick, their range in `cols`).
    state.sort_by(|a, b| a.joules_per_tick.total_cmp(&b.joules_per_tick));
    let cols: Vec<usize> = state.iter().map(|p| p.col).collect();
    let mut units: Vec<(f64, std::ops::Range<usize>)> = Vec::new();
    for (n, p) in state.iter().enumerate() {
        match units.last_mut() {
            Some((jpt, members)) if *jpt == p.joules_per_tick => members.end = n + 1,
            _ => units.push((p.joules_per_tick, n..n + 1)),
        }
    }
    // The common case: every part's run began at the previous sample and nothing is pending,
    // so when every part changes again the interval is each part's whole run (the parts'
    // `start_t` and `covered` are not kept up to date meanwhile).
    let mut aligned = state.iter().all(|p| p.known && p.start_t == t_i);
    let mut best = Best::NONE;
    let mut pending: Vec<f64> = Vec::new();
    // The general case's copy of a block's counters, part after part (`state` order).
    let mut columns: Vec<u64> = Vec::new();
    let mut per_joule: Vec<f64> = Vec::new();
    // The next interval to evaluate: from sample `e` to `e + 1`.
    let mut e = i;
    // Past the covered part only to see the slow parts' runs end, and not for ever.
    let stop = j.saturating_add(RUN_SEARCH).saturating_add(1);
    let (mut k, mut prev) = (i, (t_i, row_i));
    'scan: for (times, ticks) in ring.slices(i + 1..stop) {
        let mut n = 0;
        while n < times.len() {
            if e >= j {
                break 'scan;
            }
            if aligned {
                let rows = (&times[n..], &ticks[n * d..]);
                let taken = aligned_run(prev, rows, d, &cols, &units, j - k, &mut best);
                if taken > 0 {
                    (n, k, e) = (n + taken, k + taken, k + taken);
                    prev = (times[n - 1], &ticks[(n - 1) * d..n * d]);
                    continue;
                }
                // Leaving the common case: the runs began at the previous sample.
                for p in &mut state {
                    (p.start_t, p.covered) = (prev.0, k);
                }
            }
            if pending.is_empty() {
                pending = vec![0.0; PENDING];
                columns = vec![0; COLUMN * state.len()];
                per_joule = vec![0.0; BLOCK];
            }
            let m = (times.len() - n).min(BLOCK);
            let (block_t, rows) = (&times[n..n + m], &ticks[n * d..(n + m) * d]);
            // The parts' counters of the block, part after part (one pass over the rows).
            for (r, row) in rows.chunks_exact(d).enumerate() {
                for (x, &c) in cols.iter().enumerate() {
                    if let Some(v) = columns.get_mut(x * COLUMN + r) {
                        *v = row.get(c).copied().unwrap_or(0);
                    }
                }
            }
            // Watts per joule over each sampling interval (NaN where time stands still).
            let mut t0 = prev.0;
            for (w, &t) in per_joule.iter_mut().zip(block_t) {
                *w = if t > t0 { 1e6 / (t - t0) as f64 } else { f64::NAN };
                t0 = t;
            }
            for (x, p) in state.iter_mut().enumerate() {
                let before = prev.1.get(p.col).copied().unwrap_or(0);
                let values = columns.get(x * COLUMN..x * COLUMN + m).unwrap_or_default();
                let mut changes = values.iter().zip(std::iter::once(&before).chain(values));
                if p.known && p.covered == k && p.start_t == prev.0 && changes.all(|(b, a)| b != a)
                {
                    // Runs of one interval each: each adds to its own interval.
                    fast_block(p, k, before, values, &per_joule[..m], &mut pending);
                    p.start_t = block_t[m - 1];
                } else {
                    general_block(p, k, before, block_t, values, &mut pending);
                }
            }
            (n, k) = (n + m, k + m);
            prev = (times[n - 1], &ticks[(n - 1) * d..n * d]);
            let next_e = state.iter().map(|p| p.covered).min().unwrap_or(k);
            for q in e..next_e {
                let w = std::mem::take(&mut pending[q % PENDING]);
                if q < j {
                    best.offer_watts(w);
                }
            }
            e = next_e;
            aligned = e == k && state.iter().all(|p| p.known && p.start_t == prev.0);
        }
    }
    // The rest: parts whose counter did not change again (soon) count 0 W there.
    if !pending.is_empty() {
        for q in e..j {
            best.offer_watts(pending[q % PENDING]);
        }
    }
    best.watts()
}

/// The general case of [`peak_power`] for a part whose counter changes at every sample of the
/// block and did at the one before (`before`, sample `k0`): each interval gets its own change's
/// power (`per_joule`: watts per joule over each interval).
#[inline(never)]
fn fast_block(
    p: &mut Part,
    k0: usize,
    before: u64,
    values: &[u64],
    per_joule: &[f64],
    pending: &mut [f64],
) {
    let jpt = p.joules_per_tick;
    // The block's intervals in `pending`: from slot k0 % PENDING, wrapping at most once.
    let start = k0 % PENDING;
    let (tail, head) = pending.split_at_mut(start);
    let first = values.len().min(head.len());
    let mut a = before;
    let mut add = |dst: &mut [f64], values: &[u64], per_joule: &[f64]| {
        for ((x, &b), &w) in dst.iter_mut().zip(values).zip(per_joule) {
            *x += b.saturating_sub(a) as i64 as f64 * jpt * w;
            a = b;
        }
    };
    add(head, &values[..first], &per_joule[..first]);
    add(tail, &values[first..], &per_joule[first..]);
    (p.known, p.covered) = (true, k0 + values.len());
}

/// The general case of [`peak_power`] for one part: its counter's `values` at `times`, the
/// samples after sample `k0` (where it read `before`); each run of the counter that ends there
/// adds its power to the intervals it covers in `pending`.
fn general_block(
    p: &mut Part,
    k0: usize,
    before: u64,
    times: &[u64],
    values: &[u64],
    pending: &mut [f64],
) {
    let mut a = before;
    let mut r = 0;
    while let Some(off) = values.get(r..).and_then(|rest| rest.iter().position(|&b| b != a)) {
        r += off;
        let (k, t, b) = (k0 + 1 + r, times.get(r).copied().unwrap_or(0), values[r]);
        let watts = p.run_watts(b.saturating_sub(a), t);
        add_to_intervals(pending, p.covered..k, watts);
        (p.start_t, p.known, p.covered, a) = (t, true, k, b);
        r += 1;
    }
    // A counter still for that long draws next to nothing: 0 W so far, so that the other parts
    // need not wait for it.
    let k_end = k0 + values.len();
    if k_end - p.covered > RUN_SEARCH {
        p.covered = k_end;
    }
}

/// Adds `watts` to the intervals `range` of `pending` (at most [`PENDING`] of them).
fn add_to_intervals(pending: &mut [f64], range: std::ops::Range<usize>, watts: f64) {
    let n = range.len().min(PENDING);
    let (head, tail) = pending.split_at_mut((range.start % PENDING).min(pending.len()));
    let first = n.min(tail.len());
    for x in tail.iter_mut().take(first).chain(head.iter_mut().take(n - first)) {
        *x += watts;
    }
}

/// [`peak_power`] for a node of one part (a node counter, psys): the highest power over the
/// counter's runs that overlap intervals `i..j`.
fn single_part_peak(ring: &Ring, part: &Part, i: usize, j: usize) -> Option<f64> {
    let d = ring.domains();
    let c = part.col;
    let (mut start_t, mut known, mut covered) = (part.start_t, part.known, i);
    let mut v0 = ring.value(i, c)?;
    let mut best = Best::NONE;
    let stop = j.saturating_add(RUN_SEARCH).saturating_add(1);
    let mut k = i;
    'scan: for (times, ticks) in ring.slices(i + 1..stop) {
        for (&t, row) in times.iter().zip(ticks.chunks_exact(d)) {
            if covered >= j {
                break 'scan;
            }
            k += 1;
            let v = row.get(c).copied().unwrap_or(v0);
            if v != v0 {
                if known && t > start_t {
                    let joules = v.saturating_sub(v0) as f64 * part.joules_per_tick;
                    best.offer(joules, (t - start_t) as f64);
                }
                (v0, start_t, known, covered) = (v, t, true, k);
            } else if k - covered > RUN_SEARCH {
                // Still for that long: next to nothing.
                best.offer_watts(0.0);
                covered = k;
            }
        }
    }
    if covered < j {
        best.offer_watts(0.0);
    }
    best.watts()
}

/// The common case of [`peak_power`]: samples `rows` (timestamps, and `d` counters each) after
/// `prev`, while every part's run is one sampling interval (every part changed at the previous
/// sample and changes at this one). Returns how many samples it took in: it stops before the
/// first sample where a part did not change, or after `limit` samples.
fn aligned_run(
    prev: (u64, &[u64]),
    rows: (&[u64], &[u64]),
    d: usize,
    cols: &[usize],
    units: &[(f64, std::ops::Range<usize>)],
    limit: usize,
    best: &mut Best,
) -> usize {
    let (mut t0, mut before) = prev;
    let mut taken = 0;
    for (&t, row) in rows.0.iter().zip(rows.1.chunks_exact(d)).take(limit) {
        let mut all_changed = t > t0;
        // Ticks are added up per unit (integer additions), then converted once.
        let mut joules = 0.0;
        for (joules_per_tick, members) in units {
            let mut ticks = 0u64;
            for &c in cols.get(members.clone()).unwrap_or_default() {
                let (a, b) =
                    (before.get(c).copied().unwrap_or(0), row.get(c).copied().unwrap_or(0));
                all_changed &= b != a;
                ticks = ticks.saturating_add(b.saturating_sub(a));
            }
            joules += ticks as f64 * joules_per_tick;
        }
        if !all_changed {
            break;
        }
        best.offer(joules, (t - t0) as i64 as f64);
        (t0, before, taken) = (t, row, taken + 1);
    }
    taken
}

/// Which columns make up each `cpu_power_N`, `mem_power_N` and `gpu_power_N` key.
fn domain_keys(domains: &[DomainMeta]) -> BTreeMap<String, Vec<usize>> {
    let cols = |kind: DomainKind, index: u32| -> Vec<usize> {
        (0..domains.len())
            .filter(|&c| domains[c].info.id.kind == kind && domains[c].info.id.index == index)
            .collect()
    };
    let sockets: BTreeSet<u32> = domains
        .iter()
        .filter(|d| matches!(d.info.id.kind, DomainKind::Package | DomainKind::Memory))
        .map(|d| d.info.id.index)
        .collect();
    let gpus: BTreeSet<u32> = domains
        .iter()
        .filter(|d| d.info.id.kind == DomainKind::Gpu)
        .map(|d| d.info.id.index)
        .collect();
    let mut keys = BTreeMap::new();
    for s in sockets {
        keys.insert(format!("cpu_power_{s}"), cols(DomainKind::Package, s));
        keys.insert(format!("mem_power_{s}"), cols(DomainKind::Memory, s));
    }
    for g in gpus {
        keys.insert(format!("gpu_power_{g}"), cols(DomainKind::Gpu, g));
    }
    keys
}

/// One node's power and energy over `window`, from the samples in `ring` (whose columns are
/// `domains`), as of `now_unix_us` (a running job reports up to the newest sample). Pure: the
/// caller holds the ring's lock.
///
/// See the [module documentation](self) for the rules. Figures that cannot be given are `-1.0`:
/// all of them when nothing overlaps (`None`, 0 samples); the powers when the covered part has no
/// duration (its energy is then 0); node figures when the catalog has nothing to build the node
/// from. The peak is never below the mean.
pub fn job_result(
    ring: &Ring,
    domains: &[DomainMeta],
    window: &JobWindow,
    now_unix_us: u64,
    hostname: &str,
) -> JobResultV1 {
    let domains = &domains[..domains.len().min(ring.domains())];
    let keys = domain_keys(domains);
    let running = window.is_running();
    let mut out = JobResultV1 {
        hostname: hostname.to_string(),
        job_id: window.id.clone(),
        user: window.user.clone(),
        app: window.app.clone(),
        running,
        node_power: NOT_MEASURED,
        energy_joules: NOT_MEASURED,
        domain_power: keys.keys().map(|k| (k.clone(), NOT_MEASURED)).collect(),
        peak_node_power: NOT_MEASURED,
        result_start_time: 0,
        result_end_time: 0,
        samples: 0,
        data_presence: DataPresence::None,
    };
    let (Some((oldest, _)), Some((newest, _))) = (ring.oldest(), ring.newest()) else {
        return out;
    };
    let begin = window.begin_unix_us;
    let end = window.end_unix_us.unwrap_or(now_unix_us);
    let (from, to) = (begin.max(oldest), end.min(newest));
    if from > to {
        return out;
    }
    let complete = oldest <= begin && (running || newest >= end);
    out.data_presence = if complete { DataPresence::Complete } else { DataPresence::Partial };
    out.result_start_time = from;
    out.result_end_time = to;
    out.samples = match (ring.first_at_or_after(from), ring.last_at_or_before(to)) {
        (Some(f), Some(l)) if l >= f => (l - f + 1) as u64,
        _ => 0,
    };

    let joules: Vec<f64> = domains
        .iter()
        .enumerate()
        .map(|(c, d)| match (level_at(ring, c, from), level_at(ring, c, to)) {
            (Some(a), Some(b)) => b.since(a) * d.joules_per_tick,
            _ => 0.0,
        })
        .collect();
    let kinds: Vec<DomainKind> = domains.iter().map(|d| d.info.id.kind).collect();
    let parts: Vec<(usize, f64)> =
        node_parts(&kinds).into_iter().map(|c| (c, domains[c].joules_per_tick)).collect();
    let has_node = !parts.is_empty();
    if has_node {
        out.energy_joules = parts.iter().map(|&(c, _)| joules[c]).sum();
    }
    let seconds = (to - from) as f64 / 1e6;
    if seconds <= 0.0 {
        return out;
    }
    for (key, cols) in &keys {
        if !cols.is_empty()
            && let Some(v) = out.domain_power.get_mut(key)
        {
            *v = cols.iter().map(|&c| joules[c]).sum::<f64>() / seconds;
        }
    }
    if has_node {
        out.node_power = out.energy_joules / seconds;
        let peak = peak_power(ring, &parts, from, to).unwrap_or(out.node_power);
        out.peak_node_power = peak.max(out.node_power);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        for ok in ["1", "f2Xy.3:step_1-a", &"a".repeat(128)] {
            assert_eq!(check_id(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a b", "ƒ2Xy", "a/b", &"a".repeat(129)] {
            assert!(matches!(check_id(bad), Err(JobError::BadId { .. })), "{bad}");
        }
    }

    #[test]
    fn begin_and_end_follow_the_rules() {
        let mut jobs = Jobs::default();
        let w = jobs.begin("j1", Some("alice".into()), None, 100).unwrap();
        assert!(w.is_running());
        assert!(matches!(
            jobs.begin("j1", None, None, 200),
            Err(JobError::AlreadyBegun { begin_unix_us: 100, .. })
        ));
        assert!(matches!(jobs.end("j1", 99), Err(JobError::EndBeforeBegin { .. })));
        assert_eq!(jobs.end("j1", 150).unwrap().end_unix_us, Some(150));
        let e = jobs.end("j1", 160).unwrap_err();
        assert_eq!(e, JobError::AlreadyEnded { id: "j1".into(), end_unix_us: 150 });
        assert!(e.to_string().contains("j1"));
        assert!(matches!(jobs.end("nope", 1), Err(JobError::Unknown { .. })));
        assert!(matches!(jobs.begin("j1", None, None, 200), Err(JobError::AlreadyBegun { .. })));
        assert!(matches!(
            jobs.begin("j2", Some("a\nb".into()), None, 1),
            Err(JobError::BadLabel { field: "user", .. })
        ));
        // Overlapping jobs, listed by begin time.
        jobs.begin("j0", None, Some("app".into()), 120).unwrap();
        jobs.begin("j3", None, None, 50).unwrap();
        let ids: Vec<&str> = jobs.list().iter().map(|j| j.id.as_str()).collect();
        assert_eq!(ids, ["j3", "j1", "j0"]);
        assert_eq!(JobV1::from(jobs.get("j0").unwrap()).app.as_deref(), Some("app"));
        assert_eq!(jobs.prune_ended_before(151), 1);
        assert!(jobs.get("j1").is_none());
    }

    #[test]
    fn a_full_table_replaces_the_first_ended_job_or_refuses() {
        let mut jobs = Jobs::with_limit(2);
        jobs.begin("a", None, None, 1).unwrap();
        jobs.begin("b", None, None, 2).unwrap();
        assert!(matches!(jobs.begin("c", None, None, 3), Err(JobError::TooMany { max: 2, .. })));
        jobs.end("b", 5).unwrap();
        jobs.begin("c", None, None, 6).unwrap();
        assert!(jobs.get("b").is_none());
        assert_eq!(jobs.len(), 2);
    }

    #[test]
    fn the_span_warning_says_how_far_back_the_buffer_reaches() {
        assert_eq!(
            buffer_span_warning(1_000_000, 100.0),
            "the buffer holds 10000 s (2.8 h) at 100 Hz; a job longer than that will be Partial"
        );
        assert!(buffer_span_warning(10, 0.0).contains("10 samples"));
    }
}
