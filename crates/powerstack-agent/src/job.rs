//! Job windows, and a job's power and energy computed from the sample ring.
//!
//! A job is a named time window on this node ([`JobWindow`]): marked at its beginning and its end
//! ([`Jobs::begin`], [`Jobs::end`]); jobs may overlap. The table is kept in the state directory
//! ([`store`]), so jobs outlive the agent; what a job's figures need from before a restart is in
//! its [`JobHistory`] ([`carry`]). [`job_result`] turns the ring's samples over a window into a
//! [`JobResultV1`]:
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
//! - the node is what [`powerstack_model::power::node_source`] says of the columns that have held
//!   a reading ([`Ring::was_read`]): a node domain, else psys plus the GPUs, else packages, memory
//!   and GPUs (the rule of `PowerReport`, so the CLI's); a domain that could never be read has
//!   no figure (`-1.0`) and no share of the node's;
//! - `data_presence` is `Complete` when the buffer covers the whole window, `Partial` when it
//!   covers part of it (a window enclosing the whole buffer included), `None` when nothing
//!   overlaps.
//!
//! The computation costs two binary searches and two passes over the covered samples (for the
//! peak): a few ms for a million samples.

use std::collections::{BTreeMap, BTreeSet};

use powerstack_api::job::{DataPresence, JobResultV1};
use powerstack_model::DomainKind;
use powerstack_model::power::{NodeSource, node_source};

use crate::ring::Ring;
use crate::state::DomainMeta;

pub mod carry;
mod peak;
pub mod store;
mod table;

use peak::peak_power;
pub use table::{
    DEFAULT_MAX_RUNNING_PER_CALLER, ENDED_RETENTION_US, JobError, JobHistory, JobWindow, Jobs,
    MAX_ENDED_JOBS, MAX_ID_LEN, MAX_JOBS, MAX_LABEL_LEN, check_id, parse_peak_window_us,
};

/// What the number in a figure is when it cannot be given (as in the Flux Power Monitor's rows).
const NOT_MEASURED: f64 = -1.0;

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
        gaps: Vec::new(),
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
    let parts: Vec<(usize, f64)> = match node_source(&kinds, |c| ring.was_read(c)) {
        Some(NodeSource::Direct(c)) => vec![c],
        Some(NodeSource::Sum(parts)) => parts,
        None => Vec::new(),
    }
    .into_iter()
    .map(|c| (c, domains[c].joules_per_tick))
    .collect();
    let has_node = !parts.is_empty();
    if has_node {
        out.energy_joules = parts.iter().map(|&(c, _)| joules[c]).sum();
    }
    let seconds = (to - from) as f64 / 1e6;
    if seconds <= 0.0 {
        return out;
    }
    for (key, cols) in &keys {
        let read: Vec<usize> = cols.iter().copied().filter(|&c| ring.was_read(c)).collect();
        if !read.is_empty()
            && let Some(v) = out.domain_power.get_mut(key)
        {
            *v = read.iter().map(|&c| joules[c]).sum::<f64>() / seconds;
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
    fn the_span_warning_says_how_far_back_the_buffer_reaches() {
        assert_eq!(
            buffer_span_warning(1_000_000, 100.0),
            "the buffer holds 10000 s (2.8 h) at 100 Hz; a job longer than that will be Partial"
        );
        assert!(buffer_span_warning(10, 0.0).contains("10 samples"));
    }
}
