//! Job arithmetic, pure: a node's figures over a job window ([`JobFigures`]) from a series of
//! (time, counters) rows ([`Series`]), whatever holds them. Every figure that cannot be given is
//! `None`; how a document writes it is [`powerstack_api::job`]'s business.
//!
//! The steps, each a function of its own:
//!
//! - [`coverage`]: the part of the window the series covers, its samples and whether it is the
//!   whole window (data presence);
//! - [`energy_difference`]: a column's ticks across the covered part, its counter on the line
//!   between the samples around each end (exact at a sample);
//! - [`mean_power`]: energy over the covered duration, a time-weighted mean whatever the
//!   sampling irregularities;
//! - [`node_parts`]: the columns the node's figure is the sum of ([`node_source`]: only columns
//!   that have held a reading count);
//! - [`device_columns`]: the columns of each CPU socket, socket memory and GPU;
//! - [`peak`]: the highest mean node power over any window of a stated length within the covered
//!   part (see [`peak::peak_power`]), never below the mean.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use powerstack_api::job::{Coverage, DeviceClass, DeviceKey, JobFigures, Peak};
use powerstack_model::DomainKind;
use powerstack_model::power::{NodeSource, node_source};

pub mod peak;

/// Samples in time order, `0` the oldest: a time (µs since the Unix epoch) and one counter per
/// column each.
pub trait Series {
    /// Counters per sample.
    fn columns(&self) -> usize;
    /// Sample `i`: its time and counters.
    fn row(&self, i: usize) -> Option<(u64, &[u64])>;
    /// The first sample at or after `unix_us`.
    fn first_at_or_after(&self, unix_us: u64) -> Option<usize>;
    /// The last sample at or before `unix_us`.
    fn last_at_or_before(&self, unix_us: u64) -> Option<usize>;
    /// The times of the oldest and the newest sample.
    fn span(&self) -> Option<(u64, u64)>;
    /// Samples `rows` as runs stored one after the other: their times, and their counters row
    /// after row.
    fn runs(&self, rows: Range<usize>) -> impl Iterator<Item = (&[u64], &[u64])>;
}

/// One column of a series: the domain its counter measures, joules per tick, and whether it has
/// ever held a reading (a column that never did has no figure and no share of the node's).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Column {
    /// The domain's kind.
    pub kind: DomainKind,
    /// The domain's index (its socket, its GPU).
    pub index: u32,
    /// Joules per tick of its counter.
    pub joules_per_tick: f64,
    /// Whether it has held a reading.
    pub read: bool,
}

/// What is asked: a window (µs since the Unix epoch; a running job, `end_unix_us` `None`, runs
/// to `now_unix_us`), and the length of the peak's window, µs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asked {
    /// The window's beginning.
    pub begin_unix_us: u64,
    /// The window's end; `None` while the job runs.
    pub end_unix_us: Option<u64>,
    /// Now, for a running job.
    pub now_unix_us: u64,
    /// The window the peak is taken over (at least 1 µs is used).
    pub peak_window_us: u64,
}

/// A node's figures over the window `asked`, from `series` whose columns are `columns`.
///
/// Nothing covered: every figure `None`, every device listed without a figure. A covered part
/// without duration: its energy (0), no power. No node figure when `columns` have nothing to
/// build the node from.
pub fn figures(series: &impl Series, columns: &[Column], asked: &Asked) -> JobFigures {
    let columns = &columns[..columns.len().min(series.columns())];
    let devices = device_columns(columns);
    let mut out = JobFigures {
        device_watts: devices.keys().map(|&d| (d, None)).collect(),
        ..JobFigures::default()
    };
    let Some(covered) = coverage(series, asked) else { return out };
    out.coverage = Some(covered);
    let (from, to) = (covered.start_unix_us, covered.end_unix_us);
    let joules: Vec<f64> = columns
        .iter()
        .enumerate()
        .map(|(c, col)| {
            energy_difference(series, c, from, to).map_or(0.0, |ticks| ticks * col.joules_per_tick)
        })
        .collect();
    let parts = node_parts(columns);
    let node_joules = (!parts.is_empty()).then(|| parts.iter().map(|&(c, _)| joules[c]).sum());
    out.energy_joules = node_joules;
    let seconds = (to - from) as f64 / 1e6;
    if seconds <= 0.0 {
        return out;
    }
    for (device, cols) in &devices {
        let read: Vec<usize> = cols.iter().copied().filter(|&c| columns[c].read).collect();
        if !read.is_empty() {
            let device_joules = read.iter().map(|&c| joules[c]).sum::<f64>();
            out.device_watts.insert(*device, Some(mean_power(device_joules, seconds)));
        }
    }
    if let Some(e) = node_joules {
        let mean = mean_power(e, seconds);
        out.node_power_watts = Some(mean);
        out.peak = Some(peak(series, &parts, from, to, asked.peak_window_us, mean));
    }
    out
}

/// The part of the window `asked` that `series` covers: from the later of its beginning and the
/// oldest sample to the earlier of its end and the newest; complete when the series holds the
/// beginning and (the job running, or) the end. `None` when nothing overlaps.
pub fn coverage(series: &impl Series, asked: &Asked) -> Option<Coverage> {
    let (oldest, newest) = series.span()?;
    let begin = asked.begin_unix_us;
    let end = asked.end_unix_us.unwrap_or(asked.now_unix_us);
    let (from, to) = (begin.max(oldest), end.min(newest));
    if from > to {
        return None;
    }
    let running = asked.end_unix_us.is_none();
    let samples = match (series.first_at_or_after(from), series.last_at_or_before(to)) {
        (Some(f), Some(l)) if l >= f => (l - f + 1) as u64,
        _ => 0,
    };
    Some(Coverage {
        start_unix_us: from,
        end_unix_us: to,
        samples,
        complete: oldest <= begin && (running || newest >= end),
    })
}

/// Mean power, W, of `joules` over `seconds`: over a covered part, its time-weighted mean.
pub fn mean_power(joules: f64, seconds: f64) -> f64 {
    joules / seconds
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

/// Column `c`'s counter at `t` (within the series' span): on the line between the samples around
/// `t` (exact at a sample, the best estimate between two).
fn level_at(series: &impl Series, c: usize, t: u64) -> Option<Level> {
    let i = series.last_at_or_before(t)?;
    let (t0, row0) = series.row(i)?;
    let v0 = *row0.get(c)?;
    let flat = Level { base: v0, extra: 0.0 };
    let Some((t1, v1)) = series.row(i + 1).and_then(|(t1, row1)| Some((t1, *row1.get(c)?))) else {
        return Some(flat);
    };
    if t1 <= t0 || t <= t0 {
        return Some(flat);
    }
    let frac = ((t - t0) as f64 / (t1 - t0) as f64).min(1.0);
    Some(Level { base: v0, extra: v1.saturating_sub(v0) as f64 * frac })
}

/// Column `c`'s ticks from `from` to `to` (both within the series' span).
pub fn energy_difference(series: &impl Series, c: usize, from: u64, to: u64) -> Option<f64> {
    Some(level_at(series, c, to)?.since(level_at(series, c, from)?))
}

/// The columns the node's figure is the sum of, with their joules per tick (none: the columns
/// have nothing to build the node from).
pub fn node_parts(columns: &[Column]) -> Vec<(usize, f64)> {
    let kinds: Vec<DomainKind> = columns.iter().map(|c| c.kind).collect();
    match node_source(&kinds, |c| columns.get(c).is_some_and(|col| col.read)) {
        Some(NodeSource::Direct(c)) => vec![c],
        Some(NodeSource::Sum(parts)) => parts,
        None => Vec::new(),
    }
    .into_iter()
    .map(|c| (c, columns[c].joules_per_tick))
    .collect()
}

/// The columns of each device: every socket (of a package or memory domain) has its CPU and its
/// memory, every GPU its own; a device may have no column.
pub fn device_columns(columns: &[Column]) -> BTreeMap<DeviceKey, Vec<usize>> {
    let of = |kind: DomainKind, index: u32| -> Vec<usize> {
        (0..columns.len())
            .filter(|&c| columns[c].kind == kind && columns[c].index == index)
            .collect()
    };
    let indices = |kinds: &[DomainKind]| -> BTreeSet<u32> {
        columns.iter().filter(|c| kinds.contains(&c.kind)).map(|c| c.index).collect()
    };
    let mut out = BTreeMap::new();
    for s in indices(&[DomainKind::Package, DomainKind::Memory]) {
        out.insert(DeviceKey { class: DeviceClass::Cpu, index: s }, of(DomainKind::Package, s));
        out.insert(DeviceKey { class: DeviceClass::Mem, index: s }, of(DomainKind::Memory, s));
    }
    for g in indices(&[DomainKind::Gpu]) {
        out.insert(DeviceKey { class: DeviceClass::Gpu, index: g }, of(DomainKind::Gpu, g));
    }
    out
}

/// The peak over `window_us` (at least 1 µs, at most the covered part `from..to`) of the node
/// made of `parts`, never below its `mean`: over a covered part not longer than the window, the
/// mean.
pub fn peak(
    series: &impl Series,
    parts: &[(usize, f64)],
    from: u64,
    to: u64,
    window_us: u64,
    mean: f64,
) -> Peak {
    let window_us = window_us.max(1);
    let watts = peak::peak_power(series, parts, from, to, window_us).unwrap_or(mean);
    Peak { watts: watts.max(mean), window_s: Some(window_us.min(to - from) as f64 / 1e6) }
}
