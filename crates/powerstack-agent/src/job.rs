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
//!   duration: a time-weighted mean, whatever the sampling irregularities. A counter updated less
//!   often than the ring is sampled (pm_counters at 10 Hz, NVML) repeats its value, then jumps: it
//!   is interpolated between the samples where it changed;
//! - the peak is the highest node power over one sampling interval, or, when a node part is
//!   updated less often, over the stretches between its updates (see `peak_power`);
//! - the node is what [`powerstack_model::power::node_parts`] says: a node domain, else psys plus
//!   the GPUs, else packages, memory and GPUs (the rule of `PowerReport`);
//! - `data_presence` is `Complete` when the buffer covers the whole window, `Partial` when it
//!   covers part of it (a window enclosing the whole buffer included), `None` when nothing
//!   overlaps.
//!
//! The computation costs two binary searches and one pass over the covered samples (for the peak):
//! a few ms for a million samples.

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
    // Unknown: the run goes back at least as far as the search looked.
    let s0 = run_start(ring, c, i, v).unwrap_or(i.saturating_sub(RUN_SEARCH));
    let (Some(t0), Some(t1), Some(v1)) = (ring.time(s0), ring.time(s1), ring.value(s1, c)) else {
        return Some(flat);
    };
    let frac =
        if t1 > t0 { (t.saturating_sub(t0) as f64 / (t1 - t0) as f64).min(1.0) } else { 1.0 };
    Some(Level { base: v, extra: v1.saturating_sub(v) as f64 * frac })
}

/// The peak so far, as joules over µs (comparisons need no division).
#[derive(Clone, Copy, Debug)]
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

    fn watts(self) -> Option<f64> {
        let w = self.0 * 1e6 / self.1;
        (w > f64::NEG_INFINITY).then_some(w)
    }
}

/// How many sampling intervals [`peak_power`] looks at to tell the parts that change at every
/// sample from the slower ones.
const PROBE: usize = 64;

/// The highest node power within `from..to` (within the buffer, with a duration), W; `parts`
/// are the node's columns and their joules per tick.
///
/// A counter updated less often than the ring is sampled (pm_counters at 10 Hz, NVML) repeats its
/// value, then jumps: its power is constant over each run from one change to the next, and known
/// when the run ends. So:
///
/// - a node of one part: the highest power over the runs of its counter (over each sampling
///   interval for a counter that changes at every sample);
/// - parts that all change at every sample: the highest node power over a sampling interval;
/// - some parts slower: the node's power is known at their pace, so the highest power over the
///   stretches between their changes (the other parts' energies over the same stretches).
///
/// Runs with an unknown beginning (reaching back to the oldest sample) are left out; a part still
/// for more than [`RUN_SEARCH`] samples counts 0 W there (it draws next to nothing). One pass
/// over the covered samples (and on, until the slow parts' runs end).
fn peak_power(ring: &Ring, parts: &[(usize, f64)], from: u64, to: u64) -> Option<f64> {
    let i = ring.last_at_or_before(from)?;
    let j = ring.first_at_or_after(to)?;
    if j <= i || ring.domains() == 0 {
        return None;
    }
    if let [(col, joules_per_tick)] = parts {
        return single_part_peak(ring, *col, *joules_per_tick, i, j);
    }
    // The parts that changed at every sample of the first intervals.
    let mut every = vec![true; parts.len()];
    for k in i..(i + PROBE).min(j) {
        if let (Some((_, a)), Some((_, b))) = (ring.get(k), ring.get(k + 1)) {
            for (e, &(c, _)) in every.iter_mut().zip(parts) {
                *e &= a.get(c) != b.get(c);
            }
        }
    }
    let pick = |want: bool| -> Vec<(usize, f64)> {
        parts.iter().zip(&every).filter(|&(_, &e)| e == want).map(|(&p, _)| p).collect()
    };
    let (quick, slow) = (pick(true), pick(false));
    if slow.is_empty() {
        interval_peak(ring, &quick, i, j)
    } else {
        stretch_peak(ring, &quick, &slow, i, j)
    }
}

/// [`peak_power`] for a node of one part (a node counter, psys): the highest power over the
/// counter's runs that overlap intervals `i..j`.
fn single_part_peak(
    ring: &Ring,
    c: usize,
    joules_per_tick: f64,
    i: usize,
    j: usize,
) -> Option<f64> {
    let d = ring.domains();
    let (t_i, row_i) = ring.get(i)?;
    let mut v0 = row_i.get(c).copied()?;
    let start = run_start(ring, c, i, v0);
    let mut start_t = start.and_then(|s| ring.time(s)).unwrap_or(t_i);
    let (mut known, mut covered, mut k) = (start.is_some(), i, i);
    let mut best = Best::NONE;
    let stop = j.saturating_add(RUN_SEARCH).saturating_add(1);
    'scan: for (times, ticks) in ring.slices(i + 1..stop) {
        for (&t, row) in times.iter().zip(ticks.chunks_exact(d)) {
            if covered >= j {
                break 'scan;
            }
            k += 1;
            let v = row.get(c).copied().unwrap_or(v0);
            if v != v0 {
                if known && t > start_t {
                    let joules = v.saturating_sub(v0) as f64 * joules_per_tick;
                    best.offer(joules, (t - start_t) as f64);
                }
                (v0, start_t, known, covered) = (v, t, true, k);
            } else if k - covered > RUN_SEARCH {
                // Still for that long: next to nothing.
                best.offer(0.0, 1.0);
                covered = k;
            }
        }
    }
    if covered < j {
        best.offer(0.0, 1.0);
    }
    best.watts()
}

/// The parts grouped by unit: their columns, and (joules per tick, the range of the columns).
type Units = (Vec<usize>, Vec<(f64, std::ops::Range<usize>)>);

fn by_unit(parts: &[(usize, f64)]) -> Units {
    let mut parts = parts.to_vec();
    parts.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut units: Vec<(f64, std::ops::Range<usize>)> = Vec::new();
    for (n, &(_, jpt)) in parts.iter().enumerate() {
        match units.last_mut() {
            Some((unit, members)) if *unit == jpt => members.end = n + 1,
            _ => units.push((jpt, n..n + 1)),
        }
    }
    (parts.iter().map(|p| p.0).collect(), units)
}

/// Joules of the parts from counters `before` to counters `after` (ticks added up per unit, as
/// integers, then converted once).
#[inline]
fn joules_between(before: &[u64], after: &[u64], (cols, units): &Units) -> f64 {
    let mut joules = 0.0;
    for (joules_per_tick, members) in units {
        let mut ticks = 0u64;
        for &c in cols.get(members.clone()).unwrap_or_default() {
            let (a, b) = (before.get(c).copied().unwrap_or(0), after.get(c).copied().unwrap_or(0));
            ticks = ticks.saturating_add(b.saturating_sub(a));
        }
        joules += ticks as f64 * joules_per_tick;
    }
    joules
}

/// [`peak_power`] when every part changes at every sample: the highest node power over the
/// sampling intervals `i..j`.
fn interval_peak(ring: &Ring, parts: &[(usize, f64)], i: usize, j: usize) -> Option<f64> {
    let d = ring.domains();
    let units = by_unit(parts);
    let (mut t0, mut before) = ring.get(i)?;
    let mut best = Best::NONE;
    if let (cols, [(joules_per_tick, _)]) = (&units.0, &units.1[..]) {
        // One unit: the sum of the counters (wrapping: they never decrease, so differences of
        // sums are sums of differences).
        let sum = |row: &[u64]| {
            cols.iter().fold(0u64, |s, &c| s.wrapping_add(row.get(c).copied().unwrap_or(0)))
        };
        let mut s0 = sum(before);
        for (times, ticks) in ring.slices(i + 1..j + 1) {
            for (&t, row) in times.iter().zip(ticks.chunks_exact(d)) {
                let s = sum(row);
                if t > t0 {
                    best.offer(s.wrapping_sub(s0) as i64 as f64 * joules_per_tick, (t - t0) as f64);
                }
                (t0, s0) = (t, s);
            }
        }
        return best.watts();
    }
    for (times, ticks) in ring.slices(i + 1..j + 1) {
        for (&t, row) in times.iter().zip(ticks.chunks_exact(d)) {
            if t > t0 {
                best.offer(joules_between(before, row, &units), (t - t0) as f64);
            }
            (t0, before) = (t, row);
        }
    }
    best.watts()
}

/// A slow part in [`stretch_peak`].
struct SlowPart {
    col: usize,
    joules_per_tick: f64,
    /// The counter's current run: its value, the time it began, whether that is known.
    value: u64,
    start_t: u64,
    known: bool,
    /// The sample of its last change (or of the last time it was taken as still).
    changed_k: usize,
    /// The first stretch (numbered from 0) its current run covers that has not had its power.
    open: usize,
}

/// A stretch between changes of the slow parts in [`stretch_peak`].
struct Stretch {
    /// The sample where it begins.
    start_k: usize,
    dt_us: u64,
    /// The energy of the parts that change at every sample.
    quick_joules: f64,
    /// The power of the slow parts that have had it.
    slow_watts: f64,
    /// Slow parts whose power over it is not known yet.
    waiting: usize,
}

/// [`peak_power`] with slow parts: the highest node power over the stretches between the slow
/// parts' changes that overlap intervals `i..j`.
fn stretch_peak(
    ring: &Ring,
    quick: &[(usize, f64)],
    slow: &[(usize, f64)],
    i: usize,
    j: usize,
) -> Option<f64> {
    let d = ring.domains();
    let quick = by_unit(quick);
    let (t_i, row_i) = ring.get(i)?;
    let mut parts = Vec::with_capacity(slow.len());
    for &(col, joules_per_tick) in slow {
        let value = row_i.get(col).copied()?;
        let start = run_start(ring, col, i, value);
        parts.push(SlowPart {
            col,
            joules_per_tick,
            value,
            start_t: start.and_then(|s| ring.time(s)).unwrap_or(t_i),
            known: start.is_some(),
            changed_k: i,
            open: 0,
        });
    }
    let mut stretches: std::collections::VecDeque<Stretch> = Default::default();
    // The number of the front stretch, and of the next one to close.
    let (mut base, mut next) = (0usize, 0usize);
    // The stretch being built: where it began.
    let (mut s_k, mut s_t, mut s_row) = (i, t_i, row_i);
    let (mut k, mut last) = (i, (t_i, row_i));
    let mut best = Best::NONE;
    let offer = |best: &mut Best, s: &Stretch| {
        if s.start_k < j && s.dt_us > 0 {
            let joules = s.quick_joules + s.slow_watts * s.dt_us as f64 * 1e-6;
            best.offer(joules, s.dt_us as f64);
        }
    };
    let stop = j.saturating_add(2 * RUN_SEARCH + 2);
    'scan: for (times, ticks) in ring.slices(i + 1..stop) {
        for (&t, row) in times.iter().zip(ticks.chunks_exact(d)) {
            k += 1;
            last = (t, row);
            let changed = parts.iter().any(|p| row.get(p.col).is_some_and(|&v| v != p.value));
            if !changed && k - s_k < RUN_SEARCH {
                continue;
            }
            let quick_joules = joules_between(s_row, row, &quick);
            let waiting = parts.len();
            let dt_us = t.saturating_sub(s_t);
            stretches.push_back(Stretch {
                start_k: s_k,
                dt_us,
                quick_joules,
                slow_watts: 0.0,
                waiting,
            });
            let closed = next;
            next += 1;
            for p in &mut parts {
                let v = row.get(p.col).copied().unwrap_or(p.value);
                let watts = if v != p.value {
                    let w = if p.known && t > p.start_t {
                        v.saturating_sub(p.value) as f64 * p.joules_per_tick * 1e6
                            / (t - p.start_t) as f64
                    } else {
                        f64::NAN
                    };
                    (p.value, p.start_t, p.known, p.changed_k) = (v, t, true, k);
                    w
                } else if k - p.changed_k > RUN_SEARCH {
                    // Still for that long: next to nothing.
                    p.changed_k = k;
                    0.0
                } else {
                    continue;
                };
                for s in stretches.iter_mut().skip(p.open.saturating_sub(base)) {
                    s.slow_watts += watts;
                    s.waiting = s.waiting.saturating_sub(1);
                }
                p.open = closed + 1;
            }
            (s_k, s_t, s_row) = (k, t, row);
            while let Some(s) = stretches.front() {
                if s.waiting > 0 {
                    break;
                }
                offer(&mut best, s);
                stretches.pop_front();
                base += 1;
            }
            if s_k >= j && stretches.is_empty() {
                break 'scan;
            }
        }
    }
    // The end of the samples: the stretch being built and the runs still open count as they are
    // (the slow parts' runs still open at 0 W).
    if s_k < j && k > s_k {
        let quick_joules = joules_between(s_row, last.1, &quick);
        let dt_us = last.0.saturating_sub(s_t);
        stretches.push_back(Stretch {
            start_k: s_k,
            dt_us,
            quick_joules,
            slow_watts: 0.0,
            waiting: 0,
        });
    }
    for s in &stretches {
        offer(&mut best, s);
    }
    best.watts()
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
