//! Wrap-extended 64-bit energy counters.
//!
//! Hardware energy counters are narrow (RAPL: 32 bits of 15.3 µJ or 61 µJ ticks), they wrap, and some
//! restart (an HPE Cray controller reboot bumps `generation`). [`ExtendedCounter`] turns successive raw
//! readings of one counter into a monotonic 64-bit count that never goes backwards and never jumps:
//!
//! - a raw value below the previous one on a counter with a known range is a **wrap**: the delta is
//!   `range - previous + current`;
//! - a change of the reading's `epoch` (generation/startup), or a decrease on a counter without a known
//!   range, is a **reset**: the counter restarted, so the delta is the new raw value (the energy since
//!   the restart), or nothing when that would be implausible;
//! - any delta that implies more than [`CounterSpec`]'s plausibility ceiling is rejected (counted, not
//!   added).
//!
//! A gap between two readings longer than one wrap period cannot be recovered by any reader; samplers
//! read often enough (see [`CounterSpec::min_wrap_seconds`]).

/// The fixed properties of one energy counter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CounterSpec {
    /// Joules per counter tick (1e-6 for a µJ sysfs counter, 2^-14 for a 61 µJ RAPL MSR, 1.0 for
    /// pm_counters' joules).
    pub joules_per_tick: f64,
    /// The number of distinct counter values before it wraps to zero (the modulus), when it wraps.
    pub wrap_ticks: Option<u64>,
}

impl CounterSpec {
    /// A counter in microjoules that wraps after `max_range_uj` (powercap's `max_energy_range_uj`: the
    /// largest value the counter shows, so the modulus is one more).
    pub fn microjoules_wrapping_at(max_range_uj: u64) -> Self {
        CounterSpec { joules_per_tick: 1e-6, wrap_ticks: Some(max_range_uj.saturating_add(1)) }
    }

    /// A counter in the given unit that never wraps in practice (64-bit firmware counters).
    pub fn non_wrapping(joules_per_tick: f64) -> Self {
        CounterSpec { joules_per_tick, wrap_ticks: None }
    }

    /// How long the counter takes to wrap at `watts`, in seconds (`None` when it does not wrap).
    pub fn min_wrap_seconds(&self, watts: f64) -> Option<f64> {
        let range = self.wrap_ticks? as f64 * self.joules_per_tick;
        (watts > 0.0).then(|| range / watts)
    }
}

/// One raw reading of an energy counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEnergy {
    /// The counter value, in ticks.
    pub ticks: u64,
    /// An identifier of the counter's life: it changes when the counter restarts (pm_counters
    /// `generation` and `startup`). Zero for counters that have no such notion.
    pub epoch: u64,
    /// The time the hardware attached to the value, in µs, when it provides one (pm_counters).
    pub hw_time_us: Option<u64>,
}

impl RawEnergy {
    /// A plain counter value, without epoch or hardware time.
    pub const fn new(ticks: u64) -> Self {
        RawEnergy { ticks, epoch: 0, hw_time_us: None }
    }
}

/// What one update did to the extended counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The first reading: it sets the origin.
    First,
    /// The counter advanced by this many ticks.
    Advanced(u64),
    /// The counter wrapped once; this many ticks went by.
    Wrapped(u64),
    /// The counter restarted; this many ticks (counted since the restart) were added.
    Reset(u64),
    /// The delta was implausible and was not added.
    Rejected,
}

/// A monotonic 64-bit extension of a narrow or resettable energy counter.
#[derive(Clone, Debug)]
pub struct ExtendedCounter {
    spec: CounterSpec,
    last: Option<RawEnergy>,
    /// Ticks accumulated since the first reading.
    delta_total: u64,
    /// The raw value at the first reading: the extended value starts there.
    origin: u64,
    wraps: u64,
    resets: u64,
    rejected: u64,
}

impl ExtendedCounter {
    /// A counter that has not been read yet.
    pub fn new(spec: CounterSpec) -> Self {
        ExtendedCounter {
            spec,
            last: None,
            delta_total: 0,
            origin: 0,
            wraps: 0,
            resets: 0,
            rejected: 0,
        }
    }

    /// The counter's properties.
    pub fn spec(&self) -> CounterSpec {
        self.spec
    }

    /// Feeds one raw reading. `max_delta_ticks`, when given, is the largest plausible delta since the
    /// previous reading (elapsed time × a generous power ceiling); larger deltas are rejected.
    pub fn update_checked(&mut self, raw: RawEnergy, max_delta_ticks: Option<u64>) -> Step {
        let Some(prev) = self.last else {
            self.last = Some(raw);
            self.origin = raw.ticks;
            return Step::First;
        };
        let step = if raw.epoch != prev.epoch {
            Step::Reset(raw.ticks)
        } else if raw.ticks >= prev.ticks {
            Step::Advanced(raw.ticks - prev.ticks)
        } else {
            match self.spec.wrap_ticks {
                Some(m) if prev.ticks < m && raw.ticks < m => {
                    Step::Wrapped(m - prev.ticks + raw.ticks)
                }
                _ => Step::Reset(raw.ticks),
            }
        };
        let delta = match step {
            Step::Advanced(d) | Step::Wrapped(d) | Step::Reset(d) => d,
            Step::First | Step::Rejected => 0,
        };
        self.last = Some(raw);
        if max_delta_ticks.is_some_and(|max| delta > max) {
            self.rejected += 1;
            return Step::Rejected;
        }
        match step {
            Step::Wrapped(_) => self.wraps += 1,
            Step::Reset(_) => self.resets += 1,
            _ => {}
        }
        self.delta_total = self.delta_total.saturating_add(delta);
        step
    }

    /// Feeds one raw reading without a plausibility ceiling.
    pub fn update(&mut self, raw: RawEnergy) -> Step {
        self.update_checked(raw, None)
    }

    /// Ticks counted since the first reading (wraps and resets included).
    pub fn delta_ticks_total(&self) -> u64 {
        self.delta_total
    }

    /// The extended counter: the raw value of the first reading plus every tick since.
    pub fn total_ticks(&self) -> u64 {
        self.origin.saturating_add(self.delta_total)
    }

    /// [`Self::total_ticks`] in joules.
    pub fn total_joules(&self) -> f64 {
        self.total_ticks() as f64 * self.spec.joules_per_tick
    }

    /// How many wraps, resets and rejected deltas were seen.
    pub fn events(&self) -> (u64, u64, u64) {
        (self.wraps, self.resets, self.rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn uj(max: u64) -> ExtendedCounter {
        ExtendedCounter::new(CounterSpec::microjoules_wrapping_at(max))
    }

    #[test]
    fn first_reading_sets_the_origin() {
        let mut c = uj(999);
        assert_eq!(c.update(RawEnergy::new(500)), Step::First);
        assert_eq!(c.total_ticks(), 500);
        assert_eq!(c.delta_ticks_total(), 0);
    }

    #[test]
    fn a_wrap_adds_the_distance_to_the_range_and_the_new_value() {
        let mut c = uj(999);
        c.update(RawEnergy::new(900));
        assert_eq!(c.update(RawEnergy::new(50)), Step::Wrapped(150));
        assert_eq!(c.total_ticks(), 1050);
        assert_eq!(c.events(), (1, 0, 0));
    }

    #[test]
    fn several_wraps_in_a_row_keep_the_count() {
        // Modulus 1000: 0 → 600 (+600) → 200 (wrap, +600) → 800 (+600) → 400 (wrap, +600) → ...
        let mut c = uj(999);
        let mut raw = 0;
        c.update(RawEnergy::new(raw));
        for _ in 0..10 {
            raw = (raw + 600) % 1000;
            c.update(RawEnergy::new(raw));
        }
        assert_eq!(c.delta_ticks_total(), 6000);
        assert_eq!(c.events().0, 6);
    }

    #[test]
    fn an_epoch_change_is_a_reset_never_a_negative_or_huge_delta() {
        let mut c = ExtendedCounter::new(CounterSpec::non_wrapping(1.0));
        c.update(RawEnergy { ticks: 1_000_000, epoch: 1, hw_time_us: None });
        let s = c.update(RawEnergy { ticks: 7, epoch: 2, hw_time_us: None });
        assert_eq!(s, Step::Reset(7));
        assert_eq!(c.total_ticks(), 1_000_007);
    }

    #[test]
    fn a_decrease_without_a_range_is_a_reset() {
        let mut c = ExtendedCounter::new(CounterSpec::non_wrapping(1e-6));
        c.update(RawEnergy::new(5000));
        assert_eq!(c.update(RawEnergy::new(10)), Step::Reset(10));
    }

    #[test]
    fn implausible_deltas_are_rejected_and_counted() {
        let mut c = uj(u64::MAX - 1);
        c.update(RawEnergy::new(0));
        assert_eq!(c.update_checked(RawEnergy::new(1_000_000), Some(1000)), Step::Rejected);
        assert_eq!(c.delta_ticks_total(), 0);
        assert_eq!(c.update_checked(RawEnergy::new(1_000_500), Some(1000)), Step::Advanced(500));
        assert_eq!(c.events().2, 1);
    }

    #[test]
    fn a_value_beyond_the_range_is_not_taken_for_a_wrap() {
        // A counter claiming a range of 1000 but showing 5000 then 10 has restarted, not wrapped.
        let mut c = uj(999);
        c.update(RawEnergy::new(5000));
        assert_eq!(c.update(RawEnergy::new(10)), Step::Reset(10));
    }

    proptest! {
        /// Whatever the true increments (each below one wrap period), the extended counter
        /// recovers their exact sum from the wrapped raw values.
        #[test]
        fn recovers_true_energy_from_wrapped_values(
            modulus in 2u64..1_000_000_000,
            start in 0u64..1_000_000_000,
            steps in proptest::collection::vec(0u64..1_000_000_000, 1..200),
        ) {
            let start = start % modulus;
            let mut c = ExtendedCounter::new(CounterSpec { joules_per_tick: 1.0, wrap_ticks: Some(modulus) });
            c.update(RawEnergy::new(start));
            let mut truth = 0u64;
            let mut raw = start;
            for s in steps {
                let s = s % modulus; // less than one full wrap per interval
                truth += s;
                raw = (raw + s) % modulus;
                c.update(RawEnergy::new(raw));
            }
            prop_assert_eq!(c.delta_ticks_total(), truth);
        }
    }
}
