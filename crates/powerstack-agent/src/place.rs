//! Placing a stepped source's readings at the time they refer to (see
//! [`powerstack_model::placement`]).
//!
//! A slow reader thread reads one stepped provider (pm_counters, one NVML GPU) at its own pace.
//! Each of its domains has a [`Placer`] that turns a reading, with the times its read started and
//! ended, into an [`Anchor`]: the domain's extended counter and the monotonic time it refers to.
//! New values only: a value read again adds nothing. The [`crate::record::Recorder`] then draws
//! the ring's column through the anchors.
//!
//! - an energy value stamped by the hardware (pm_counters) is placed at its stamp, mapped onto the
//!   monotonic clock by a [`HwClockMap`];
//! - an unstamped energy counter that moves in steps (NVML) is placed at its step by a
//!   [`StepClock`], which also says when to read it next;
//! - a power-only value (a pm_counters power file, an old GPU's power usage) is integrated into
//!   µJ at the reads' times (trapezoids); a gap is not integrated over.
//!
//! Pure: times come from the caller, so tests drive it with simulated time.

use powerstack_model::{HwClockMap, StepClock, Value};

/// A domain's extended counter at a time: where the ring's column passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// When, monotonic ns (`powerstack_hw::clock::mono_ns`).
    pub mono_ns: u64,
    /// The counter, in the column's ticks.
    pub ticks: u64,
}

/// How many recent stamp increments the stamped update period is the median of.
const PERIODS_KEPT: usize = 31;

/// How far back (hardware time, µs) stamped values are placed again when the clock map moves.
const REDRAW_SPAN_US: u64 = 10_000_000;

/// How far (ns) the clock map must move a placed value before the recent ones are placed again.
const REDRAW_NS: u64 = 1_000_000;

/// Over how long (ns) before the values placed again the column moves over to them.
const REDRAW_BLEND_NS: u64 = 1_000_000_000;

/// What a reading placed: a new value, or, when the clock map moved them, the recent values
/// placed again (the new one the last of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placed {
    /// A new value at its place.
    New(Anchor),
    /// The recent values at their new places: draw the column through these.
    Again(Redraw),
}

/// The recent values of a stamped domain, placed again: their column is redrawn through them
/// from `from_mono_ns` (a second before the earliest of the first one's old and new places) on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redraw {
    /// Where the redrawn part begins, monotonic ns.
    pub from_mono_ns: u64,
    /// The values, oldest first, at their new places (the newest value is the last).
    pub anchors: Vec<Anchor>,
}

/// Places one domain's readings.
#[derive(Clone, Debug)]
pub struct Placer {
    /// The stamped values' clock map, and the last stamp seen.
    stamps: HwClockMap,
    last_stamp_us: Option<u64>,
    /// Recent increments between stamps, µs (their median is the update period).
    stamp_steps_us: Vec<u64>,
    /// The recent stamped values: stamp (µs), ticks, where they were placed (ns).
    recent: std::collections::VecDeque<(u64, u64, u64)>,
    /// Unstamped energy values.
    steps: StepClock,
    /// Power-only values: the last watts and their time, and the integral so far.
    last_power: Option<(f64, u64)>,
    integral_uj: f64,
    /// What the last reading was: stamped, stepped or power (for the schedule).
    kind: Kind,
    /// The base read period (ns).
    base_ns: u64,
    /// The last read's start (ns), and a counter for jittering the stamped reads.
    last_start_ns: u64,
    jitter: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Unknown,
    Stamped,
    Stepped,
    Power,
}

impl Placer {
    /// A placer for a domain whose hardware updates about every `update_ns`, read every
    /// `base_ns` when nothing better is known.
    pub fn new(update_ns: u64, base_ns: u64) -> Placer {
        Placer {
            stamps: HwClockMap::new(),
            last_stamp_us: None,
            stamp_steps_us: Vec::with_capacity(PERIODS_KEPT),
            recent: std::collections::VecDeque::new(),
            steps: StepClock::new(update_ns, base_ns),
            last_power: None,
            integral_uj: 0.0,
            kind: Kind::Unknown,
            base_ns: base_ns.max(1),
            last_start_ns: 0,
            jitter: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// Feeds a reading whose read started at `start_ns` and ended at `end_ns`; returns what it
    /// placed when it is a new value (its anchor, or the recent values placed again). A stamped value counts as seen at the end of the read; an
    /// unstamped one as read at its middle.
    pub fn observe(&mut self, value: &Value, start_ns: u64, end_ns: u64) -> Option<Placed> {
        self.last_start_ns = start_ns;
        let mid_ns = start_ns / 2 + end_ns / 2;
        match *value {
            Value::Energy { total_ticks, hw_time_us: Some(stamp), .. } => {
                self.kind = Kind::Stamped;
                if self.last_stamp_us == Some(stamp) {
                    return None;
                }
                if let Some(last) = self.last_stamp_us.filter(|&l| stamp > l) {
                    if self.stamp_steps_us.len() == PERIODS_KEPT {
                        self.stamp_steps_us.remove(0);
                    }
                    self.stamp_steps_us.push(stamp - last);
                }
                self.last_stamp_us = Some(stamp);
                // Seen by the end of the read for sure (a read held up before it fetched the value
                // would make its midpoint too early, and the clocks' offset with it).
                let mono_ns = self.stamps.observe(stamp, end_ns);
                let new = Anchor { mono_ns, ticks: total_ticks };
                Some(self.place_again(stamp, new).map_or(Placed::New(new), Placed::Again))
            }
            Value::Energy { total_ticks, hw_time_us: None, .. } => {
                self.kind = Kind::Stepped;
                let r = self.steps.observe(start_ns, end_ns, total_ticks);
                let mono_ns = r?;
                Some(Placed::New(Anchor { mono_ns, ticks: total_ticks }))
            }
            Value::Power { watts } => {
                self.kind = Kind::Power;
                if let Some((w0, t0)) = self.last_power {
                    let dt_s = mid_ns.saturating_sub(t0) as f64 / 1e9;
                    self.integral_uj += (w0 + watts) / 2.0 * dt_s * 1e6;
                }
                self.last_power = Some((watts, mid_ns));
                Some(Placed::New(Anchor { mono_ns: mid_ns, ticks: self.integral_uj as u64 }))
            }
            Value::Missing => {
                self.last_power = None;
                None
            }
        }
    }

    /// Keeps a stamped value, and when the clock map has moved the recent ones (it learns the
    /// clocks' offset from its lowest sightings, which take a while to come: a late publication
    /// or a slow read only shows a larger one), places them all again, so that the column is
    /// drawn with one offset throughout and a job's two ends agree.
    fn place_again(&mut self, stamp: u64, new: Anchor) -> Option<Redraw> {
        if self.stamps.len() == 1 {
            // The map started over (the controller restarted, or this is the first value).
            self.recent.clear();
        }
        // Moved since they were placed: small moves add up, so the kept values at both ends (the
        // map is a line: the largest move is at one of them) are compared with where they were
        // placed, not only the newest with its place a moment ago.
        let moved_by = |e: Option<&(u64, u64, u64)>| {
            e.and_then(|&(s, _, placed)| Some(self.stamps.place(s)?.abs_diff(placed)))
        };
        let moved = moved_by(self.recent.front())
            .max(moved_by(self.recent.back()))
            .is_some_and(|d| d > REDRAW_NS);
        self.recent.push_back((stamp, new.ticks, new.mono_ns));
        while self.recent.front().is_some_and(|f| f.0 + REDRAW_SPAN_US < stamp) {
            self.recent.pop_front();
        }
        if !moved {
            return None;
        }
        let mut from_mono_ns = u64::MAX;
        let mut anchors = Vec::with_capacity(self.recent.len());
        for (s, t, placed) in self.recent.iter_mut() {
            let again = self.stamps.place(*s).unwrap_or(*placed);
            from_mono_ns = from_mono_ns.min(again).min(*placed);
            *placed = again;
            anchors.push(Anchor { mono_ns: again, ticks: *t });
        }
        // The column moves over to the new places along the second before them, so that the
        // energy the move shifts in time is spread, not heaped on one sample.
        let from_mono_ns = from_mono_ns.saturating_sub(REDRAW_BLEND_NS);
        Some(Redraw { from_mono_ns, anchors })
    }

    /// When this domain wants its next read (monotonic ns): a stepped counter when its
    /// [`StepClock`] says; stamped values a quarter of the base period after the last read, give
    /// or take a fifth (so the reads drift across the controller's updates and some come right
    /// after one: the prompt sightings the clock map needs); anything else at the base period.
    pub fn next_read_ns(&mut self) -> u64 {
        match self.kind {
            Kind::Stepped => self.steps.next_read_ns(),
            Kind::Stamped => {
                self.jitter ^= self.jitter << 13;
                self.jitter ^= self.jitter >> 7;
                self.jitter ^= self.jitter << 17;
                let quarter = self.base_ns / 4;
                let spread = (quarter / 5).max(1);
                self.last_start_ns + quarter - spread + self.jitter % (2 * spread)
            }
            Kind::Unknown | Kind::Power => self.last_start_ns + self.base_ns,
        }
    }

    /// The update period measured so far (ns): the median increment of the hardware's stamps, or
    /// the step period a [`StepClock`] found.
    pub fn update_period_ns(&self) -> Option<u64> {
        match self.kind {
            Kind::Stamped => {
                let mut steps = self.stamp_steps_us.clone();
                steps.sort_unstable();
                steps.get(steps.len() / 2).map(|us| us.saturating_mul(1000))
            }
            Kind::Stepped => self.steps.update_period_ns(),
            Kind::Unknown | Kind::Power => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The new value's anchor, whether placed alone or with the recent values placed again.
    fn new(placed: Option<Placed>) -> Option<Anchor> {
        match placed? {
            Placed::New(a) => Some(a),
            Placed::Again(r) => r.anchors.last().copied(),
        }
    }

    fn energy(ticks: u64, stamp: Option<u64>) -> Value {
        Value::Energy { total_ticks: ticks, joules: ticks as f64, hw_time_us: stamp }
    }

    #[test]
    fn a_stamped_value_is_anchored_once_at_its_stamp() {
        let mut p = Placer::new(100_000_000, 100_000_000);
        // Stamps 100 ms apart, seen 3 ms, 40 ms and 2 ms after them.
        let a = new(p.observe(&energy(10, Some(1_000_000)), 5_003_000_000, 5_003_000_000)).unwrap();
        assert_eq!(a, Anchor { mono_ns: 5_003_000_000, ticks: 10 });
        assert_eq!(
            new(p.observe(&energy(10, Some(1_000_000)), 5_030_000_000, 5_030_000_000)),
            None
        );
        let b = new(p.observe(&energy(20, Some(1_100_000)), 5_140_000_000, 5_140_000_000)).unwrap();
        // The earliest sighting sets the offset (give or take the drift allowed, 1000 ppm).
        assert!(b.mono_ns.abs_diff(5_103_000_000) <= 100_000, "{}", b.mono_ns);
        let c = new(p.observe(&energy(30, Some(1_200_000)), 5_202_000_000, 5_202_000_000)).unwrap();
        assert_eq!(c.mono_ns, 5_202_000_000);
        assert_eq!(p.update_period_ns(), Some(100_000_000));
        // Reads come about every 25 ms, never in step with the updates.
        let next = p.next_read_ns();
        assert!((5_222_000_000..5_232_000_000).contains(&next), "{next}");
    }

    #[test]
    fn power_is_integrated_between_reads_but_not_over_a_gap() {
        let mut p = Placer::new(100_000_000, 100_000_000);
        let at = |t_ms: u64| t_ms * 1_000_000;
        assert_eq!(
            new(p.observe(&Value::Power { watts: 100.0 }, at(1000), at(1000))).unwrap().ticks,
            0
        );
        let a = new(p.observe(&Value::Power { watts: 300.0 }, at(1100), at(1100))).unwrap();
        assert_eq!(a, Anchor { mono_ns: at(1100), ticks: 20_000_000 });
        assert_eq!(new(p.observe(&Value::Missing, at(1200), at(1200))), None);
        let b = new(p.observe(&Value::Power { watts: 300.0 }, at(2000), at(2000))).unwrap();
        assert_eq!(b.ticks, 20_000_000, "nothing over the gap");
        assert_eq!(p.next_read_ns(), at(2100));
    }

    #[test]
    fn an_unstamped_counter_follows_its_step_clock() {
        let mut p = Placer::new(100_000_000, 100_000_000);
        let first = new(p.observe(&energy(7, None), 1_000_000_000, 1_003_000_000)).unwrap();
        assert_eq!(first.mono_ns, 1_001_500_000);
        // Acquiring: the next read comes a few ms after this one ended.
        assert_eq!(p.next_read_ns(), 1_008_000_000);
    }
}
