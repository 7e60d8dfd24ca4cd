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
//!   no figure (`-1.0` in the document) and no share of the node's;
//! - `data_presence` is `Complete` when the buffer covers the whole window, `Partial` when it
//!   covers part of it (a window enclosing the whole buffer included), `None` when nothing
//!   overlaps.
//!
//! The arithmetic is [`figures`], pure over any series of (time, counters) rows, with typed
//! figures; [`job_result`] runs it over the ring and writes the document. The computation costs
//! two binary searches and two passes over the covered samples (for the peak): a few ms for a
//! million samples.

use powerstack_api::job::JobResultV1;

use crate::ring::{DomainMeta, Ring};

pub mod carry;
pub use powerstack_job::figures;
pub mod store;
mod table;

use figures::{Asked, Column, Series};
pub use table::{
    DEFAULT_MAX_RUNNING_PER_CALLER, ENDED_RETENTION_US, JobError, JobHistory, JobWindow, Jobs,
    MAX_ENDED_JOBS, MAX_ID_LEN, MAX_JOBS, MAX_LABEL_LEN, MAX_PEAK_WINDOW_MS, check_id,
    parse_peak_window_us,
};

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

impl Series for Ring {
    fn columns(&self) -> usize {
        self.domains()
    }
    fn row(&self, i: usize) -> Option<(u64, &[u64])> {
        self.get(i)
    }
    fn first_at_or_after(&self, unix_us: u64) -> Option<usize> {
        Ring::first_at_or_after(self, unix_us)
    }
    fn last_at_or_before(&self, unix_us: u64) -> Option<usize> {
        Ring::last_at_or_before(self, unix_us)
    }
    fn span(&self) -> Option<(u64, u64)> {
        Some((self.oldest()?.0, self.newest()?.0))
    }
    fn runs(&self, rows: std::ops::Range<usize>) -> impl Iterator<Item = (&[u64], &[u64])> {
        self.slices(rows).into_iter()
    }
}

/// The ring's columns as the job arithmetic sees them: each domain, its unit, and whether it has
/// held a reading ([`Ring::was_read`]).
fn columns(ring: &Ring, domains: &[DomainMeta]) -> Vec<Column> {
    domains
        .iter()
        .enumerate()
        .map(|(c, d)| Column {
            kind: d.info.id.kind,
            index: d.info.id.index,
            joules_per_tick: d.joules_per_tick,
            read: ring.was_read(c),
        })
        .collect()
}

/// One node's power and energy over `window`, from the samples in `ring` (whose columns are
/// `domains`), as of `now_unix_us` (a running job reports up to the newest sample), with the peak
/// over `peak_window_us` (see [`crate::Shared::peak_window_us`] for the one to use). Pure: the
/// caller holds the ring's lock.
///
/// See the [module documentation](self) for the rules, and [`figures::figures`] for the
/// arithmetic. Figures that cannot be given are `-1.0` in the document: all of them when nothing
/// overlaps (`None`, 0 samples); the powers when the covered part has no duration (its energy is
/// then 0); node figures when the catalog has nothing to build the node from. The peak is never
/// below the mean.
pub fn job_result(
    ring: &Ring,
    domains: &[DomainMeta],
    window: &JobWindow,
    now_unix_us: u64,
    hostname: &str,
    peak_window_us: u64,
) -> JobResultV1 {
    let asked = Asked {
        begin_unix_us: window.begin_unix_us,
        end_unix_us: window.end_unix_us,
        now_unix_us,
        peak_window_us,
    };
    let figures = figures::figures(ring, &columns(ring, domains), &asked);
    JobResultV1 {
        user: window.user.clone(),
        app: window.app.clone(),
        running: window.is_running(),
        ..JobResultV1::unanswered(hostname, &window.id)
    }
    .with_figures(&figures)
}

/// What a job's figures need of the node besides its ring: its name, the ring's columns, and the
/// time now.
#[derive(Clone, Copy, Debug)]
pub struct NodeView<'a> {
    /// The node's hostname.
    pub hostname: &'a str,
    /// The ring's columns.
    pub domains: &'a [DomainMeta],
    /// Now, µs since the Unix epoch.
    pub now_unix_us: u64,
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
