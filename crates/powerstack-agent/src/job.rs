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
//!   often than the ring is sampled (pm_counters at 10 Hz, NVML) is drawn by the sampler through
//!   its readings placed at the times they refer to ([`crate::record`]), so it is interpolated
//!   the same way;
//! - the peak is the highest mean node power over any window of a stated length within the
//!   covered part (`peak_window_s` in the result, 1 s by default, never shorter than the sampling
//!   interval or the slowest part's measured update period: see `peak_power`); over a covered part
//!   shorter than that, the mean;
//! - the node is what [`powerstack_model::power::node_parts`] says: a node domain, else psys plus
//!   the GPUs, else packages, memory and GPUs (the rule of `PowerReport`);
//! - `data_presence` is `Complete` when the buffer covers the whole window, `Partial` when it
//!   covers part of it (a window enclosing the whole buffer included), `None` when nothing
//!   overlaps.
//!
//! The computation costs two binary searches and two passes over the covered samples (for the
//! peak): a few ms for a million samples.

use std::collections::{BTreeMap, BTreeSet};

use powerstack_api::job::{DataPresence, JobResultV1, JobV1};
use powerstack_model::DomainKind;
use powerstack_model::power::node_parts;

use crate::ring::Ring;
use crate::state::DomainMeta;

mod peak;

use peak::peak_power;

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

/// Parses a peak window as people type it (`2s`, `500ms`), µs: 1 ms to
/// [`crate::config::MAX_PEAK_WINDOW_MS`] (an hour). The agent's query parameter and the client's
/// `--peak-window` both take it so.
pub fn parse_peak_window_us(text: &str) -> Result<u64, String> {
    let d = powerstack_model::duration::parse_duration(text).map_err(|e| e.to_string())?;
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    if !(1000..=crate::config::MAX_PEAK_WINDOW_MS * 1000).contains(&us) {
        return Err(format!("{text:?} is out of range: give 1ms to 1h"));
    }
    Ok(us)
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

/// Column `c`'s counter at `t` (within the buffer's span): on the line between the samples around
/// `t` (the sampler draws every column as the line through its readings, each placed at the time
/// it refers to, so this is exact at a sample and the best estimate between two).
fn level_at(ring: &Ring, c: usize, t: u64) -> Option<Level> {
    let i = ring.last_at_or_before(t)?;
    let (t0, v0) = (ring.time(i)?, ring.value(i, c)?);
    let flat = Level { base: v0, extra: 0.0 };
    let (Some(t1), Some(v1)) = (ring.time(i + 1), ring.value(i + 1, c)) else {
        return Some(flat);
    };
    if t1 <= t0 || t <= t0 {
        return Some(flat);
    }
    let frac = ((t - t0) as f64 / (t1 - t0) as f64).min(1.0);
    Some(Level { base: v0, extra: v1.saturating_sub(v0) as f64 * frac })
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
/// `domains`), as of `now_unix_us` (a running job reports up to the newest sample), with the peak
/// over `peak_window_us` (see [`crate::Shared::peak_window_us`] for the one to use). Pure: the
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
    peak_window_us: u64,
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
        peak_window_s: NOT_MEASURED,
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
        let window_us = peak_window_us.max(1);
        let peak = peak_power(ring, &parts, from, to, window_us).unwrap_or(out.node_power);
        out.peak_node_power = peak.max(out.node_power);
        out.peak_window_s = window_us.min(to - from) as f64 / 1e6;
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
