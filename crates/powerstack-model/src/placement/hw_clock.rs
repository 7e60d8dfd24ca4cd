//! [`HwClockMap`]: hardware timestamps onto the reader's monotonic clock.

use std::collections::VecDeque;

/// How many recent observations the fit uses (about a minute at 10 Hz).
const WINDOW: usize = 600;

/// The largest drift believed, as a slope of the offset: ns of offset per µs of hardware time
/// (1.0 is 1000 ppm; clock crystals are within about 100 ppm).
const MAX_SLOPE: f64 = 1.0;

/// A reading whose offset differs from the fitted line by more than this (ns) means the
/// hardware's clock was set or restarted: the fit starts over.
const JUMP_NS: f64 = 10e9;

/// Maps a hardware clock's timestamps (µs) onto the reader's monotonic clock (ns).
///
/// A value stamped `stamp` by the hardware is seen by the reader at `seen`, some time after the
/// hardware took it: it was published, then read, each after a delay that is never negative and
/// often long (a loaded machine, a late controller). So `seen - stamp` is the clocks' offset plus
/// a delay, and the offset is the **lower envelope** of the observations. The hardware's clock may
/// run slightly faster or slower than the node's, so the envelope is a line,
/// `offset(stamp) = alpha + beta * stamp`: the line under every recent observation that is
/// highest at their mean stamp (the linear program Moon, Skelly and Towsley proposed for clock skew
/// from one-way delays), found on the lower convex hull of the last [`WINDOW`] observations. Its
/// slope is bounded to 1000 ppm; a stamp that goes backwards, or an offset that jumps by more than
/// 10 s, starts the fit over (the controller restarted, or its clock was set).
///
/// A placed time is never later than the reading was seen.
#[derive(Clone, Debug, Default)]
pub struct HwClockMap {
    /// Observations relative to the first one: (stamp - stamp0 in µs, offset - offset0 in ns).
    points: VecDeque<(f64, f64)>,
    /// The first observation of this fit: (stamp µs, seen - stamp in ns).
    origin: Option<(u64, i128)>,
    /// The fitted line, relative to the origin: offset = alpha + beta * x.
    alpha: f64,
    beta: f64,
    last_stamp_us: Option<u64>,
}

impl HwClockMap {
    /// An empty map.
    pub fn new() -> HwClockMap {
        HwClockMap::default()
    }

    /// Feeds a value stamped `stamp_us` by the hardware and seen at `seen_ns` (monotonic), and
    /// returns where it belongs on the monotonic clock. A stamp seen again adds nothing (a later
    /// sighting says less about the offset).
    pub fn observe(&mut self, stamp_us: u64, seen_ns: u64) -> u64 {
        let offset = i128::from(seen_ns) - i128::from(stamp_us) * 1000;
        if let (Some(last), Some(placed)) = (self.last_stamp_us, self.place(stamp_us)) {
            let jumped =
                (offset - i128::from(placed) + i128::from(stamp_us) * 1000).abs() as f64 > JUMP_NS;
            if stamp_us < last || jumped {
                *self = HwClockMap::default();
            } else if stamp_us == last {
                return placed.min(seen_ns);
            }
        }
        let (stamp0, offset0) = *self.origin.get_or_insert((stamp_us, offset));
        let x = stamp_us.saturating_sub(stamp0) as f64;
        let y = (offset - offset0) as f64;
        self.points.push_back((x, y));
        if self.points.len() > WINDOW {
            self.points.pop_front();
        }
        self.last_stamp_us = Some(stamp_us);
        self.fit();
        self.place(stamp_us).unwrap_or(seen_ns).min(seen_ns)
    }

    /// Where a value stamped `stamp_us` belongs on the monotonic clock (ns), by the current fit;
    /// `None` before the first observation.
    pub fn place(&self, stamp_us: u64) -> Option<u64> {
        let (stamp0, offset0) = self.origin?;
        let x = stamp_us as f64 - stamp0 as f64;
        let offset = offset0 as f64 + self.alpha + self.beta * x;
        let t = stamp_us as f64 * 1000.0 + offset;
        Some(if t.is_finite() && t > 0.0 { t as u64 } else { 0 })
    }

    /// Observations in the fit (1 right after it started over).
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether nothing has been observed.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Refits the line to the lower hull of the points.
    fn fit(&mut self) {
        let hull = lower_hull(&self.points);
        let n = self.points.len() as f64;
        let mean_x = self.points.iter().map(|p| p.0).sum::<f64>() / n.max(1.0);
        let (alpha, beta) = match hull.as_slice() {
            [] => (0.0, 0.0),
            [p] => (p.1, 0.0),
            _ => {
                let k = hull.windows(2).position(|w| w[1].0 >= mean_x).unwrap_or(hull.len() - 2);
                let (a, b) = (hull[k], hull[k + 1]);
                let beta = if b.0 > a.0 { (b.1 - a.1) / (b.0 - a.0) } else { 0.0 };
                (a.1 - beta * a.0, beta)
            }
        };
        if beta.abs() <= MAX_SLOPE {
            (self.alpha, self.beta) = (alpha, beta);
        } else {
            // Implausible drift (too few points, or one stray): the steepest slope believed,
            // under every point.
            let beta = beta.clamp(-MAX_SLOPE, MAX_SLOPE);
            let alpha = self.points.iter().map(|p| p.1 - beta * p.0).fold(f64::INFINITY, f64::min);
            (self.alpha, self.beta) = (if alpha.is_finite() { alpha } else { 0.0 }, beta);
        }
    }
}

/// The lower convex hull of points sorted by x (stamps only grow): Andrew's monotone chain.
fn lower_hull(points: &VecDeque<(f64, f64)>) -> Vec<(f64, f64)> {
    let mut hull: Vec<(f64, f64)> = Vec::with_capacity(16);
    for &p in points {
        while let [.., o, a] = hull[..] {
            let cross = (a.0 - o.0) * (p.1 - o.1) - (a.1 - o.1) * (p.0 - o.0);
            if cross > 0.0 {
                break;
            }
            hull.pop();
        }
        hull.push(p);
    }
    hull
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::test_rng as rng;

    /// Stamps every 100 ms of a hardware clock running at `1 + ppm` of ours, offset by 5 s, each
    /// seen after `delay(k)` ns; returns the worst placement error (ns) after `settle` readings.
    fn worst_error(ppm: f64, settle: usize, mut delay: impl FnMut(usize) -> f64) -> f64 {
        let mut map = HwClockMap::new();
        let mut worst = 0.0f64;
        for k in 0..1200 {
            // The hardware takes the value at our time t (ns); its clock reads hw(t).
            let t = 7e9 + k as f64 * 1e8 / (1.0 + ppm * 1e-6);
            let stamp_us = ((t - 7e9) * (1.0 + ppm * 1e-6) / 1e3 + 1_700_000_000e6) as u64;
            let seen = t + delay(k);
            let placed = map.observe(stamp_us, seen as u64) as f64;
            assert!(placed <= seen + 1.0, "placed after it was seen");
            if k >= settle {
                worst = worst.max((placed - t).abs());
            }
        }
        worst
    }

    #[test]
    fn places_stamped_values_within_a_millisecond_despite_late_reads() {
        // Seen 0 to 300 ms late, most of them late: the envelope finds the prompt ones.
        let mut r = rng(1);
        let worst = worst_error(0.0, 50, |_| 300e6 * r().powi(3));
        assert!(worst < 1e6, "{worst} ns");
    }

    #[test]
    fn follows_a_drifting_controller_clock() {
        for ppm in [-500.0, -50.0, 80.0, 500.0] {
            let mut r = rng(2);
            let worst = worst_error(ppm, 100, |_| 40e6 * r());
            assert!(worst < 2e6, "{ppm} ppm: {worst} ns");
        }
        // A fixed offset (the minimum alone) would be off by 500 ppm × 120 s = 60 ms by the end.
    }

    #[test]
    fn a_constant_delay_is_the_only_error() {
        let worst = worst_error(0.0, 0, |_| 3e6);
        assert!((worst - 3e6).abs() < 1e3, "{worst}");
    }

    #[test]
    fn a_restarted_controller_starts_the_fit_over() {
        let mut map = HwClockMap::new();
        for k in 0..20u64 {
            map.observe(1_000_000 + k * 100_000, 5_000_000_000 + k * 100_000_000 + 2_000_000);
        }
        // The controller restarts: its clock begins again at 0.
        let placed = map.observe(50_000, 7_100_000_000);
        assert!(placed <= 7_100_000_000 && placed > 7_000_000_000, "{placed}");
        let next = map.observe(150_000, 7_200_500_000);
        assert!((next as i64 - 7_200_000_000).abs() < 1_000_000, "{next}");
    }

    #[test]
    fn a_stamp_read_again_changes_nothing() {
        let mut map = HwClockMap::new();
        let a = map.observe(1_000, 10_000_000);
        let b = map.observe(1_000, 60_000_000);
        assert_eq!(a, b);
        assert_eq!(a, 10_000_000);
    }
}
