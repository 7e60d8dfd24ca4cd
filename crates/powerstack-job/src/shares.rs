//! A job's figures on a node it shares with other jobs: its part of the node's energy.
//!
//! The job's window is split where the other jobs on the node begin and end. A boundary between
//! two samples takes the counters on the line between them (as a window's edges do), the same
//! value for the segments on both sides, so the segments' energies add up to the node's over the
//! window and a job that begins between two samples gets its part from that instant. In each segment, with the set `S` of jobs on
//! the node:
//!
//! - a GPU's energy goes to the jobs of `S` holding it (equally if several do), to `S` by weight
//!   if none does (a job that said nothing of what it holds holds every GPU);
//! - every other column's energy, and the node's less its GPUs', is split over `S` by weight:
//!   each job's CPUs when every job of `S` gave them, else equally.
//!
//! The peak is an estimate: each segment's node peak scaled by the job's part of the segment's
//! energy.

use std::collections::BTreeSet;

use powerstack_api::job::{JobFigures, Peak};
use powerstack_model::DomainKind;

use crate::figures::{Asked, Column, Series, energy_difference, figures, mean_power, node_parts};

/// A job on a node: its window (µs since the Unix epoch; a running job's to now) and what it
/// holds of the node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Occupant {
    /// When it began.
    pub begin_unix_us: u64,
    /// When it ended (or now).
    pub end_unix_us: u64,
    /// The CPUs it holds on the node, when it said.
    pub cpus: Option<u32>,
    /// The GPUs it holds on the node; `None`: all of them (the node held whole).
    pub gpus: Option<BTreeSet<u32>>,
}

impl Occupant {
    fn on_at(&self, t: u64) -> bool {
        self.begin_unix_us <= t && t < self.end_unix_us
    }

    fn holds_gpu(&self, g: u32) -> bool {
        self.gpus.as_ref().is_none_or(|gs| gs.contains(&g))
    }
}

/// The segments of `from..to` where the jobs of `others` begin or end: `(start, end)`, each with
/// one set of jobs (those on at its start).
pub fn segments(from: u64, to: u64, others: &[Occupant]) -> Vec<(u64, u64)> {
    let mut bounds: Vec<u64> = others
        .iter()
        .flat_map(|o| [o.begin_unix_us, o.end_unix_us])
        .filter(|&b| from < b && b < to)
        .collect();
    bounds.push(from);
    bounds.push(to);
    bounds.sort_unstable();
    bounds.dedup();
    bounds.windows(2).map(|w| (w[0], w[1])).collect()
}

/// The part of one segment's column energies a job gets: per column, the fraction.
fn fractions(columns: &[Column], me: &Occupant, set: &[&Occupant]) -> (Vec<f64>, f64) {
    let weights: Vec<f64> = if set.iter().all(|o| o.cpus.is_some()) {
        set.iter().map(|o| f64::from(o.cpus.unwrap_or(1))).collect()
    } else {
        vec![1.0; set.len()]
    };
    let total: f64 = weights.iter().sum();
    // `me` is the set's first.
    let mine = weights.first().copied().unwrap_or(0.0);
    let by_weight = if total > 0.0 { mine / total } else { 0.0 };
    let per_column = columns
        .iter()
        .map(|c| {
            if c.kind != DomainKind::Gpu {
                return by_weight;
            }
            let holders = set.iter().filter(|o| o.holds_gpu(c.index)).count();
            match holders {
                0 => by_weight,
                n if me.holds_gpu(c.index) => 1.0 / n as f64,
                _ => 0.0,
            }
        })
        .collect();
    (per_column, by_weight)
}

/// The figures of job `me` on a node over `asked`, from the node's `series`, sharing it with
/// `others` (the other jobs on the node whose windows overlap `me`'s): the node's figures when
/// none does.
pub fn shared_figures(
    series: &impl Series,
    columns: &[Column],
    asked: &Asked,
    me: &Occupant,
    others: &[Occupant],
) -> JobFigures {
    let columns = &columns[..columns.len().min(series.columns())];
    let mut out = figures(series, columns, asked);
    let Some(covered) = out.coverage else { return out };
    if others.is_empty() {
        return out;
    }
    let (from, to) = (covered.start_unix_us, covered.end_unix_us);
    let parts = node_parts(columns);
    let direct = parts.len() == 1 && columns[parts[0].0].kind == DomainKind::Node;
    let node_gpus: Vec<usize> = (0..columns.len())
        .filter(|&c| columns[c].kind == DomainKind::Gpu && columns[c].read)
        .filter(|c| direct || parts.iter().any(|p| p.0 == *c))
        .collect();
    let mut mine = vec![0.0; columns.len()];
    let mut node_mine = 0.0;
    let mut peak_watts: Option<f64> = None;
    for (a, b) in segments(from, to, others) {
        let set: Vec<&Occupant> =
            std::iter::once(me).chain(others.iter().filter(|o| o.on_at(a))).collect();
        let (frac, by_weight) = fractions(columns, me, &set);
        let joules: Vec<f64> = columns
            .iter()
            .enumerate()
            .map(|(c, col)| {
                energy_difference(series, c, a, b).map_or(0.0, |t| t * col.joules_per_tick)
            })
            .collect();
        for c in 0..columns.len() {
            mine[c] += frac[c] * joules[c];
        }
        let node: f64 = parts.iter().map(|&(c, _)| joules[c]).sum();
        let gpus: f64 = node_gpus.iter().map(|&c| joules[c]).sum();
        let share = node_gpus.iter().map(|&c| frac[c] * joules[c]).sum::<f64>()
            + by_weight * (node - gpus).max(0.0);
        node_mine += share;
        if b > a && node > 0.0 && !parts.is_empty() {
            let mean = mean_power(node, (b - a) as f64 / 1e6);
            let p = crate::figures::peak(series, &parts, a, b, asked.peak_window_us, mean);
            let scaled = p.watts * share / node;
            peak_watts = Some(peak_watts.map_or(scaled, |w| w.max(scaled)));
        }
    }
    let seconds = (to - from) as f64 / 1e6;
    if out.energy_joules.is_some() {
        out.energy_joules = Some(node_mine);
    }
    if seconds <= 0.0 {
        return out;
    }
    for (device, cols) in crate::figures::device_columns(columns) {
        let read: Vec<usize> = cols.into_iter().filter(|&c| columns[c].read).collect();
        if !read.is_empty() {
            let joules = read.iter().map(|&c| mine[c]).sum::<f64>();
            out.device_watts.insert(device, Some(mean_power(joules, seconds)));
        }
    }
    if let Some(e) = out.energy_joules {
        let mean = mean_power(e, seconds);
        out.node_power_watts = Some(mean);
        let window_s = Some(asked.peak_window_us.max(1).min(to - from) as f64 / 1e6);
        out.peak = Some(Peak { watts: peak_watts.unwrap_or(mean).max(mean), window_s });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rows;

    const S: u64 = 1_000_000;

    /// CPU 0 at 100 W, GPU 0 at 200 W, GPU 1 at 300 W, a sample a second for 100 s.
    fn node() -> (Rows, Vec<Column>) {
        let col = |kind, index| Column { kind, index, joules_per_tick: 1.0, read: true };
        let columns =
            vec![col(DomainKind::Package, 0), col(DomainKind::Gpu, 0), col(DomainKind::Gpu, 1)];
        let mut rows = Rows::new(3);
        for k in 0..=100u64 {
            rows.push(k * S, &[100 * k, 200 * k, 300 * k]);
        }
        (rows, columns)
    }

    fn job(begin: u64, end: u64, cpus: Option<u32>, gpus: Option<&[u32]>) -> Occupant {
        Occupant {
            begin_unix_us: begin * S,
            end_unix_us: end * S,
            cpus,
            gpus: gpus.map(|g| g.iter().copied().collect()),
        }
    }

    fn energy(jobs: &[Occupant], i: usize) -> JobFigures {
        let (rows, columns) = node();
        let me = &jobs[i];
        let others: Vec<Occupant> =
            jobs.iter().enumerate().filter(|(k, _)| *k != i).map(|(_, o)| o.clone()).collect();
        let asked = Asked {
            begin_unix_us: me.begin_unix_us,
            end_unix_us: Some(me.end_unix_us),
            now_unix_us: 100 * S,
            peak_window_us: S,
        };
        shared_figures(&rows, &columns, &asked, me, &others)
    }

    #[test]
    fn every_segment_is_split_whole_between_its_jobs() {
        // Three jobs, boundaries on samples.
        let jobs = [
            job(0, 60, Some(16), Some(&[0])),
            job(30, 90, Some(48), Some(&[])),
            job(45, 100, None, None),
        ];
        let sum: f64 = (0..3).map(|i| energy(&jobs, i).energy_joules.unwrap()).sum();
        // The node's energy over the union of the windows: 600 W for 100 s.
        assert!((sum - 60_000.0).abs() < 1e-6, "{sum}");
        // Alone: the whole node over its window.
        let first = energy(&jobs[..1], 0).energy_joules.unwrap();
        assert!((first - 36_000.0).abs() < 1e-6, "{first}");
    }

    #[test]
    fn cpus_weigh_and_a_held_gpu_goes_to_its_holder() {
        // Both from 0 to 100: job 0 holds GPU 0 and 16 CPUs, job 1 GPU 1 and 48.
        let jobs = [job(0, 100, Some(16), Some(&[0])), job(0, 100, Some(48), Some(&[1]))];
        let a = energy(&jobs, 0);
        let b = energy(&jobs, 1);
        let watts = |f: &JobFigures, k: &str| {
            f.device_watts.iter().find(|(d, _)| d.to_string() == k).and_then(|(_, w)| *w).unwrap()
        };
        assert!((watts(&a, "cpu_power_0") - 25.0).abs() < 1e-9);
        assert!((watts(&b, "cpu_power_0") - 75.0).abs() < 1e-9);
        assert_eq!(watts(&a, "gpu_power_0"), 200.0);
        assert_eq!(watts(&a, "gpu_power_1"), 0.0);
        assert_eq!(watts(&b, "gpu_power_1"), 300.0);
        assert!((a.node_power_watts.unwrap() - 225.0).abs() < 1e-9);
        assert!((b.node_power_watts.unwrap() - 375.0).abs() < 1e-9);
        // Without CPUs from one of them: equal; a GPU nobody holds: by weight.
        let jobs = [job(0, 100, Some(16), Some(&[])), job(0, 100, None, Some(&[]))];
        assert!((energy(&jobs, 0).node_power_watts.unwrap() - 300.0).abs() < 1e-9);
        let peak = energy(&jobs, 0).peak.unwrap().watts;
        assert!((peak - 300.0).abs() < 1e-9, "{peak}");
    }

    #[test]
    fn a_boundary_between_samples_splits_there() {
        // Job 1 begins half-way between the samples at 30 s and 31 s: job 0 has the node alone
        // until 30.5 s, then half of it; together they have all of it.
        let jobs = [job(0, 100, None, None), {
            let mut o = job(0, 100, None, None);
            o.begin_unix_us = 30 * S + S / 2;
            o
        }];
        let (a, b) = (energy(&jobs, 0), energy(&jobs, 1));
        let (ea, eb) = (a.energy_joules.unwrap(), b.energy_joules.unwrap());
        assert!((ea - (600.0 * 30.5 + 300.0 * 69.5)).abs() < 1e-6, "{ea}");
        assert!((ea + eb - 60_000.0).abs() < 1e-6, "{ea} + {eb}");
        assert_eq!(
            segments(0, 100 * S, &jobs[1..]),
            vec![(0, 30 * S + S / 2), (30 * S + S / 2, 100 * S)]
        );
    }
}
