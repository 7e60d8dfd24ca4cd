//! What the ring's columns hold: readings turned into rows, in one place.
//!
//! Each column is drawn through **anchors**, points where the domain's extended counter is known:
//!
//! - a fast column (powercap, MSRs, hwmon) gets one at every row, its reading at the row's time;
//!   when a reading fails the column holds its value, and when reading resumes the rows in the
//!   gap are redrawn on the straight line from before it to after it (the counter kept counting:
//!   its energy is kept, and spread over the gap rather than heaped on one row);
//! - a slow column (pm_counters, NVML) gets its anchors from a slow reader thread, each placed at
//!   the time its value refers to ([`crate::place`]), which is in the past by the time it arrives:
//!   the rows since the previous anchor are redrawn through it, and rows after it are extended at
//!   the latest rate for at most [`EXTEND_US`] (provisional: the next anchor redraws them).
//!
//! So every column is the straight-line interpolation of its anchors, and stays monotonic: a row
//! is only ever redrawn between two anchors, or beyond the newest one. Counters are stored from
//! their first value (the first row of a fast column, the first anchor of a slow one), which reads
//! 0. A slow column is **settled** up to its newest anchor: rows before it are final.
//!
//! Pure: the sampler threads call it with the times they measure; tests with simulated ones.

use crate::ring::Ring;

/// How far past its newest anchor a slow column is extended at its latest rate (µs).
pub const EXTEND_US: u64 = 1_000_000;

/// One column's state.
#[derive(Clone, Debug, Default)]
struct Track {
    slow: bool,
    /// The first value: stored values are counted from it.
    origin: Option<u64>,
    /// The two newest anchors: (time µs, stored value).
    prev: Option<(u64, u64)>,
    last: Option<(u64, u64)>,
    /// Fast: the reading for the next row (`None`: could not be read).
    reading: Option<u64>,
    /// Fast: a reading failed since the last anchor.
    gap: bool,
    /// Slow: anchors (and redraws) to draw through at the next row, oldest first.
    pending: Vec<Op>,
}

/// What a slow reader sent for a column.
#[derive(Clone, Debug)]
enum Op {
    /// A new value: (µs since the epoch, ticks).
    Anchor(u64, u64),
    /// The recent values placed again: the column from `from` (µs) on is redrawn through them.
    Redraw(u64, Vec<(u64, u64)>),
}

impl Track {
    /// The column's value at `t` from its anchors: on the line between the two newest when `t`
    /// lies between them, else extended from the newest at the rate between them (for at most
    /// [`EXTEND_US`]); 0 before any anchor.
    fn value_at(&self, t: u64) -> u64 {
        let Some((ta, va)) = self.last else { return 0 };
        let Some((tp, vp)) = self.prev else { return va };
        if t == ta {
            return va;
        }
        let (rise, run) = ((va - vp) as f64, (ta - tp).max(1) as f64);
        if t < ta {
            if t <= tp {
                return vp;
            }
            return (vp + (rise * (t - tp) as f64 / run).round() as u64).min(va);
        }
        va + (rise * (t - ta).min(EXTEND_US) as f64 / run).round() as u64
    }
}

/// Turns readings and anchors into ring rows.
#[derive(Clone, Debug)]
pub struct Recorder {
    tracks: Vec<Track>,
    row: Vec<u64>,
    last_row_us: Option<u64>,
}

impl Recorder {
    /// A recorder for columns that are slow (`true`, anchored by a slow reader) or fast.
    pub fn new(slow: &[bool]) -> Recorder {
        let tracks = slow.iter().map(|&slow| Track { slow, ..Track::default() }).collect();
        Recorder { tracks, row: vec![0; slow.len()], last_row_us: None }
    }

    /// A fast column's reading for the next row: its extended counter, or `None` when it could
    /// not be read.
    pub fn set(&mut self, col: usize, reading: Option<u64>) {
        if let Some(t) = self.tracks.get_mut(col) {
            t.reading = reading;
        }
    }

    /// A slow column's extended counter at `at_us` (µs since the epoch), drawn at the next row.
    pub fn anchor(&mut self, col: usize, at_us: u64, ticks: u64) {
        if let Some(t) = self.tracks.get_mut(col).filter(|t| t.slow) {
            t.pending.push(Op::Anchor(at_us, ticks));
        }
    }

    /// A slow column's recent values placed again (`(µs, ticks)`, oldest first, the newest
    /// included): at the next row, the column from `from_us` on is redrawn through them (on the
    /// line from the last row before `from_us`, which is kept, to the first of them).
    pub fn redraw(&mut self, col: usize, from_us: u64, anchors: Vec<(u64, u64)>) {
        if let Some(t) = self.tracks.get_mut(col).filter(|t| t.slow && !anchors.is_empty()) {
            t.pending.push(Op::Redraw(from_us, anchors));
        }
    }

    /// Pushes the row of time `t_us` into `ring`, first redrawing what the new anchors and the
    /// readings that came back say of the rows before it.
    pub fn push(&mut self, ring: &mut Ring, t_us: u64) {
        let t_us = self.last_row_us.map_or(t_us, |last| t_us.max(last));
        for (c, track) in self.tracks.iter_mut().enumerate() {
            self.row[c] = if track.slow {
                let mut pending = std::mem::take(&mut track.pending);
                for op in pending.drain(..) {
                    match op {
                        Op::Anchor(at, ticks) => draw_through(ring, c, track, at, ticks),
                        Op::Redraw(from, anchors) => redraw(ring, c, track, from, &anchors),
                    }
                }
                track.pending = pending;
                track.value_at(t_us)
            } else {
                match track.reading.take() {
                    Some(v) => {
                        let stored = v.saturating_sub(*track.origin.get_or_insert(v));
                        if track.gap {
                            track.gap = false;
                            draw_through(ring, c, track, t_us, stored);
                        }
                        track.prev = track.last;
                        track.last = Some((t_us, stored.max(track.last.map_or(0, |l| l.1))));
                        track.last.map_or(0, |l| l.1)
                    }
                    None => {
                        track.gap |= track.last.is_some();
                        track.last.map_or(0, |l| l.1)
                    }
                }
            };
        }
        ring.push(t_us, &self.row);
        for (c, track) in self.tracks.iter().enumerate() {
            ring.set_read(c, track.last.is_some());
        }
        self.last_row_us = Some(t_us);
    }

    /// The time up to which every column is final, µs since the epoch: the newest row when every
    /// column is fast; else the oldest of the slow columns' newest anchors (`None` while one has
    /// none).
    pub fn settled_us(&self) -> Option<u64> {
        let mut settled = self.last_row_us?;
        for t in self.tracks.iter().filter(|t| t.slow) {
            settled = settled.min(t.last?.0);
        }
        Some(settled)
    }
}

/// Adds the anchor `(at, ticks)` (ticks not yet counted from the origin) to a column and redraws
/// the rows after the previous anchor through it.
fn draw_through(ring: &mut Ring, col: usize, track: &mut Track, at: u64, ticks: u64) {
    let stored =
        if track.slow { ticks.saturating_sub(*track.origin.get_or_insert(ticks)) } else { ticks };
    let Some((tp, vp)) = track.last else {
        track.last = Some((at, stored));
        return;
    };
    // Placed no earlier than the previous anchor, and never below it.
    let anchor = (at.max(tp + 1), stored.max(vp));
    if track.slow {
        (track.prev, track.last) = (Some((tp, vp)), Some(anchor));
        let drawn = track.clone();
        ring.rewrite_after(col, tp, |t| drawn.value_at(t));
    } else {
        // A fast column back from a gap: the rows of the gap on the line to its new value.
        let rate = (anchor.1 - vp) as f64 / (anchor.0 - tp) as f64;
        ring.rewrite_after(col, tp, |t| vp + (rate * (t.min(anchor.0) - tp) as f64).round() as u64);
    }
}

/// Redraws a slow column from the row at or before `from` through `anchors` (ticks not yet
/// counted from the origin), then on at the last rate, and makes them its newest anchors.
fn redraw(ring: &mut Ring, col: usize, track: &mut Track, from: u64, anchors: &[(u64, u64)]) {
    let Some(origin) = track.origin else {
        // Nothing drawn yet: the values are simply the first anchors.
        for &(at, ticks) in anchors {
            draw_through(ring, col, track, at, ticks);
        }
        return;
    };
    // The kept start: the last row before `from`, else the column's start.
    let before = from.saturating_sub(1);
    let start =
        ring.last_at_or_before(before).and_then(|i| Some((ring.time(i)?, ring.value(i, col)?)));
    let (t0, v0) = start.unwrap_or((from.saturating_sub(1), 0));
    let mut points: Vec<(u64, u64)> = Vec::with_capacity(anchors.len() + 1);
    points.push((t0, v0));
    for &(at, ticks) in anchors {
        let (tp, vp) = points[points.len() - 1];
        points.push((at.max(tp + 1), ticks.saturating_sub(origin).max(vp)));
    }
    let n = points.len();
    track.prev = Some(points[n - 2]);
    track.last = Some(points[n - 1]);
    let (prev, last) = (track.prev, track.last);
    ring.rewrite_after(col, t0, |t| {
        let k = points.partition_point(|p| p.0 < t);
        if k >= n {
            return Track { prev, last, ..Track::default() }.value_at(t);
        }
        let ((ta, va), (tb, vb)) = (points[k.max(1) - 1], points[k.max(1)]);
        if t >= tb {
            return vb;
        }
        va + ((vb - va) as f64 * t.saturating_sub(ta) as f64 / (tb - ta) as f64).round() as u64
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(ring: &Ring, col: usize) -> Vec<(u64, u64)> {
        (0..ring.len()).map(|i| (ring.time(i).unwrap(), ring.value(i, col).unwrap())).collect()
    }

    #[test]
    fn a_slow_column_is_drawn_through_its_anchors_as_they_arrive() {
        let mut rec = Recorder::new(&[true]);
        let mut ring = Ring::new(100, 1);
        // Rows every 10 ms; the counter is 1000 + 1 tick per µs, anchored at 0, 100 and 200 ms,
        // each arriving 30 ms late.
        let truth = |t: u64| 1000 + t;
        for k in 0..=25u64 {
            let t = k * 10_000;
            if k >= 3 && (k - 3) % 10 == 0 {
                let at = (k - 3) * 10_000;
                rec.anchor(0, at, truth(at));
            }
            rec.push(&mut ring, t);
        }
        let col = column(&ring, 0);
        // On the line through the anchors: the rows pushed before an anchor arrived are redrawn.
        for &(t, v) in &col[..23] {
            assert_eq!(v, t, "at {t}");
        }
        // After the newest anchor (200 ms), extended at the last rate.
        assert_eq!(col[25], (250_000, 250_000));
        assert_eq!(rec.settled_us(), Some(200_000));
        assert!(col.windows(2).all(|w| w[1].1 >= w[0].1), "monotonic");
    }

    #[test]
    fn a_late_anchor_below_the_extension_redraws_the_rows_down_and_stays_monotonic() {
        let mut rec = Recorder::new(&[true]);
        let mut ring = Ring::new(100, 1);
        rec.anchor(0, 0, 0);
        rec.push(&mut ring, 0);
        rec.anchor(0, 100_000, 100_000);
        for k in 1..=40u64 {
            rec.push(&mut ring, k * 10_000);
        }
        // Extended at 1/µs, up to 1 s: row 400 ms reads 400 000.
        assert_eq!(ring.newest().unwrap().1[0], 400_000);
        // The power dropped at 100 ms: the next anchor says 150 000 at 300 ms.
        rec.anchor(0, 300_000, 150_000);
        rec.push(&mut ring, 410_000);
        let col = column(&ring, 0);
        assert!(col.windows(2).all(|w| w[1].1 >= w[0].1), "monotonic: {col:?}");
        assert_eq!(col[20], (200_000, 125_000));
        assert_eq!(col[30], (300_000, 150_000));
        assert_eq!(col[40], (400_000, 175_000));
    }

    #[test]
    fn a_redraw_moves_the_recent_part_of_a_column_and_keeps_it_monotonic() {
        let mut rec = Recorder::new(&[true]);
        let mut ring = Ring::new(100, 1);
        // 1 tick per µs, anchored every 100 ms but placed 40 ms late.
        for k in 0..=50u64 {
            let t = k * 10_000;
            if k % 10 == 0 {
                rec.anchor(0, t + 40_000, t);
            }
            rec.push(&mut ring, t + 40_000);
        }
        // The offset was found: the values from 200 ms on belong 40 ms earlier; the column moves
        // over to them from 100 ms on.
        let anchors: Vec<(u64, u64)> = (2..=5u64).map(|k| (k * 100_000, k * 100_000)).collect();
        rec.redraw(0, 100_000, anchors);
        rec.push(&mut ring, 510_000);
        let col = column(&ring, 0);
        assert!(col.windows(2).all(|w| w[1].1 >= w[0].1), "monotonic: {col:?}");
        // Rows from 200 ms on are on the new line: value = time.
        for &(t, v) in col.iter().filter(|c| c.0 >= 200_000) {
            assert_eq!(v, t, "at {t}");
        }
        // Rows before it are kept, and in between the column moves over on a line.
        assert_eq!(col.iter().find(|c| c.0 == 90_000), Some(&(90_000, 50_000)));
        assert_eq!(col.iter().find(|c| c.0 == 150_000), Some(&(150_000, 131_818)));
    }

    #[test]
    fn a_fast_column_keeps_the_energy_of_a_gap_spread_over_it() {
        let mut rec = Recorder::new(&[false]);
        let mut ring = Ring::new(100, 1);
        for k in 0..10u64 {
            let reading = if (3..7).contains(&k) { None } else { Some(5000 + 100 * k) };
            rec.set(0, reading);
            rec.push(&mut ring, k * 1000);
        }
        let col: Vec<u64> = column(&ring, 0).into_iter().map(|c| c.1).collect();
        assert_eq!(col, [0, 100, 200, 300, 400, 500, 600, 700, 800, 900]);
    }

    #[test]
    fn settled_is_the_oldest_newest_anchor_of_the_slow_columns() {
        let mut rec = Recorder::new(&[false, true, true]);
        let mut ring = Ring::new(10, 3);
        rec.set(0, Some(1));
        rec.push(&mut ring, 500);
        assert_eq!(rec.settled_us(), None);
        rec.anchor(1, 300, 7);
        rec.anchor(2, 450, 9);
        rec.set(0, Some(2));
        rec.push(&mut ring, 600);
        assert_eq!(rec.settled_us(), Some(300));
        assert_eq!(Recorder::new(&[false]).settled_us(), None);
    }
}
