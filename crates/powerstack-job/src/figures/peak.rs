//! A job's peak: the highest mean node power over any window of a stated length (see
//! [`peak_power`]).

use std::collections::VecDeque;

use super::Series;

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

/// The node's joules in a row of counters, since the row `base`.
struct NodeJoules {
    units: Units,
    base: Vec<u64>,
    /// One unit (the usual case): the sum of the counters at `base` (wrapping: they never
    /// decrease, so differences of sums are sums of differences), and joules per tick.
    one: Option<(u64, f64)>,
}

impl NodeJoules {
    fn new(parts: &[(usize, f64)], base: &[u64]) -> NodeJoules {
        let units = by_unit(parts);
        let one = match &units.1[..] {
            [(joules_per_tick, _)] => Some((sum(&units.0, base), *joules_per_tick)),
            _ => None,
        };
        NodeJoules { units, base: base.to_vec(), one }
    }

    #[inline]
    fn of(&self, row: &[u64]) -> f64 {
        match self.one {
            Some((s0, jpt)) => sum(&self.units.0, row).wrapping_sub(s0) as f64 * jpt,
            None => joules_between(&self.base, row, &self.units),
        }
    }
}

#[inline]
fn sum(cols: &[usize], row: &[u64]) -> u64 {
    cols.iter().fold(0u64, |s, &c| s.wrapping_add(row.get(c).copied().unwrap_or(0)))
}

/// The node's joules at `t` (within the samples), on the line between the samples around it.
fn node_joules_at(series: &impl Series, node: &NodeJoules, t: u64) -> Option<f64> {
    let k = series.last_at_or_before(t)?;
    let (t0, row0) = series.row(k)?;
    let e0 = node.of(row0);
    Some(match series.row(k + 1) {
        Some((t1, row1)) => on_line((t0, e0), (t1, node.of(row1)), t),
        None => e0,
    })
}

/// The value at `t` on the line from `(t0, e0)` to `(t1, e1)`, held at `e1` past `t1`; `e0` at
/// or before `t0`, or when the two points share a time.
#[inline]
fn on_line((t0, e0): (u64, f64), (t1, e1): (u64, f64), t: u64) -> f64 {
    if t1 > t0 && t > t0 {
        e0 + (e1 - e0) * ((t - t0) as f64 / (t1 - t0) as f64).min(1.0)
    } else {
        e0
    }
}

/// The highest mean node power over any `window_us` within `from..to` (within the buffer, with a
/// duration), W; `parts` are the node's columns and their joules per tick. `None` when the
/// covered part is not longer than the window (its mean is then the peak).
///
/// The node's energy is the line through its samples, so the energy of a window sliding along is
/// piecewise linear in its start, with corners where either end crosses a sample: its maximum is
/// at one of those, or at either end of the covered part. One pass over the covered samples
/// ([`Sweep`]), keeping only the last window's worth of them.
pub fn peak_power(
    series: &impl Series,
    parts: &[(usize, f64)],
    from: u64,
    to: u64,
    window_us: u64,
) -> Option<f64> {
    let window_us = window_us.max(1);
    if to.saturating_sub(from) <= window_us || series.columns() == 0 {
        return None;
    }
    let i = series.last_at_or_before(from)?;
    let j = series.first_at_or_after(to)?;
    let node = NodeJoules::new(parts, series.row(i)?.1);
    let at = |t: u64| node_joules_at(series, &node, t);
    let last_start = to - window_us;
    let at_the_ends = (at(from + window_us)? - at(from)?).max(at(to)? - at(last_start)?);
    let mut best = at_the_ends;
    // The samples of the last window, (time, node joules), and the first of them whose window
    // (as a start) is still to come. Plain locals, not a struct's fields: they stay in
    // registers over the million samples of a full ring (a struct holding them cost 12% more
    // instructions per query, callgrind).
    let mut kept: VecDeque<(u64, f64)> = VecDeque::new();
    let mut starts = 0;
    let d = series.columns();
    for (ts, ticks) in series.runs(i..j + 1) {
        for (&t, row) in ts.iter().zip(ticks.chunks_exact(d)) {
            let e = node.of(row);
            // The windows starting at a kept sample and ending between the previous one and this.
            while let Some(&(s, es)) = kept.get(starts) {
                if s + window_us > t {
                    break;
                }
                if s > from
                    && s < last_start
                    && let Some(&previous) = kept.back()
                {
                    best = best.max(window_from((s, es), previous, (t, e), window_us));
                }
                starts += 1;
            }
            // The window ending at this sample, after the kept samples before its start whose
            // starts are done with are dropped.
            if t > from + window_us && t < to {
                let begin = t - window_us;
                while kept.len() >= 2 && kept[1].0 <= begin && starts > 0 {
                    kept.pop_front();
                    starts -= 1;
                }
                if let Some(&first) = kept.front() {
                    best = best.max(window_to(first, kept.get(1).copied(), (t, e), window_us));
                }
            }
            kept.push_back((t, e));
        }
    }
    Some(best * 1e6 / window_us as f64)
}

/// The energy of the window starting at the sample `(s, es)` and ending between the samples
/// `previous` and `(t, e)`, on the line between them, J.
#[inline]
fn window_from(
    (s, es): (u64, f64),
    (tp, ep): (u64, f64),
    (t, e): (u64, f64),
    window_us: u64,
) -> f64 {
    let end = s + window_us;
    let f = if t > tp { (end.saturating_sub(tp)) as f64 / (t - tp) as f64 } else { 1.0 };
    ep + (e - ep) * f.min(1.0) - es
}

/// The energy of the window ending at the sample `(t, e)`, its start on the line between the
/// first kept sample and the second (or this one), J.
#[inline]
fn window_to(
    first: (u64, f64),
    second: Option<(u64, f64)>,
    (t, e): (u64, f64),
    window_us: u64,
) -> f64 {
    e - on_line(first, second.unwrap_or((t, e)), t - window_us)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::Rows;
    use proptest::prelude::*;

    proptest! {
        /// The one-pass peak is the highest window found by trying every window that starts or
        /// ends at a sample or at an end of the covered part.
        #[test]
        fn the_peak_is_the_highest_window_however_irregular_the_samples(
            steps in proptest::collection::vec((1u64..50_000, 0u64..3_000_000, 0u64..3_000_000), 3..200),
            window_us in 1_000u64..2_000_000,
            cut in (0u64..1000, 0u64..1000),
        ) {
            let mut ring = Rows::new(2);
            let (mut t, mut a, mut b) = (1_000_000u64, 0u64, 0u64);
            assert!(ring.push(t, &[a, b]));
            for &(dt, da, db) in &steps {
                t += dt;
                a += da;
                b += db;
                assert!(ring.push(t, &[a, b]));
            }
            let (t0, t1) = ring.span().unwrap();
            let from = t0 + (t1 - t0) * cut.0 / 4000;
            let to = t1 - (t1 - t0) * cut.1 / 4000;
            let parts = [(0, 1e-6), (1, 2e-6)];
            let got = peak_power(&ring, &parts, from, to, window_us);
            if to - from <= window_us {
                prop_assert!(got.is_none());
                return Ok(());
            }
            let node = NodeJoules::new(&parts, ring.row(0).unwrap().1);
            let at = |x: u64| node_joules_at(&ring, &node, x).unwrap();
            let mut starts = vec![from, to - window_us];
            for i in 0..ring.len() {
                let x = ring.time(i).unwrap();
                starts.push(x);
                starts.push(x.saturating_sub(window_us));
            }
            let best = starts
                .into_iter()
                .filter(|&s| s >= from && s + window_us <= to)
                .map(|s| at(s + window_us) - at(s))
                .fold(f64::NEG_INFINITY, f64::max)
                * 1e6
                / window_us as f64;
            let got = got.unwrap();
            prop_assert!((got - best).abs() <= 1e-6 * best.abs().max(1.0), "{} vs {}", got, best);
        }
    }
}
