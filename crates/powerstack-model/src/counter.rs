//! Wrap-extended 64-bit energy counters.
//!
//! Hardware energy counters are narrow (RAPL: 32 bits of 15.3 µJ or 61 µJ ticks), they wrap, and some
//! restart (an HPE Cray controller reboot bumps `generation`). [`ExtendedCounter`] turns successive raw
//! readings of one counter into a monotonic 64-bit count that never goes backwards and never jumps:
//!
//! - a raw value below the previous one on a counter with a known range is a **wrap** when the
//!   delta it implies (`range - previous + current`) is plausible;
//! - a change of the reading's `epoch` (generation/startup), a decrease on a counter without a known
//!   range, or a decrease that is not a plausible wrap, is a **reset**: the counter restarted, so the
//!   delta is the new raw value (the energy since the restart) when that is plausible;
//! - anything else is rejected (counted, not added): the reading becomes the new origin of deltas,
//!   so a counter that restarted from an unknown value (a replaced file) costs one missing value,
//!   never an impossible figure. [`Plausible`] says what is plausible: separately for an advance
//!   (energy since the previous reading) and for a restart (energy since a restart in between).
//!
//! [`ExtendedCounter::rebase`] makes the next reading a new origin without adding anything: for a
//! counter read from a new file whose relation to the old one is unknown.
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

/// The largest deltas one update may add, in ticks (`None`: no limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Plausible {
    /// What the counter may have advanced (or wrapped) by since the previous reading.
    pub advance_ticks: Option<u64>,
    /// What a counter that restarted since the previous reading may have counted since.
    pub restart_ticks: Option<u64>,
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
    /// The first reading after [`ExtendedCounter::rebase`]: the new origin of deltas, nothing added.
    Rebased,
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
    /// The next reading is a new origin of deltas ([`ExtendedCounter::rebase`]).
    rebase: bool,
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
            rebase: false,
        }
    }

    /// The counter's properties.
    pub fn spec(&self) -> CounterSpec {
        self.spec
    }

    /// Feeds one raw reading. `max_delta_ticks`, when given, is the largest plausible delta since the
    /// previous reading (elapsed time × a generous power ceiling), for an advance and for a restart
    /// alike; larger deltas are rejected. See [`ExtendedCounter::update_plausible`].
    pub fn update_checked(&mut self, raw: RawEnergy, max_delta_ticks: Option<u64>) -> Step {
        let bounds = Plausible { advance_ticks: max_delta_ticks, restart_ticks: max_delta_ticks };
        self.update_plausible(raw, bounds)
    }

    /// Feeds one raw reading, judging its delta against `bounds`: an advance or a wrap against
    /// [`Plausible::advance_ticks`], a restart's count against [`Plausible::restart_ticks`]. A
    /// decrease that is not a plausible wrap is taken for a restart; what is neither is rejected
    /// and the reading becomes the origin of the next delta.
    pub fn update_plausible(&mut self, raw: RawEnergy, bounds: Plausible) -> Step {
        let Some(prev) = self.last else {
            self.last = Some(raw);
            self.origin = raw.ticks;
            return Step::First;
        };
        self.last = Some(raw);
        if std::mem::take(&mut self.rebase) {
            return Step::Rebased;
        }
        let within = |d: u64, max: Option<u64>| max.is_none_or(|m| d <= m);
        let restart = if within(raw.ticks, bounds.restart_ticks) {
            Step::Reset(raw.ticks)
        } else {
            Step::Rejected
        };
        let step = if raw.epoch != prev.epoch {
            restart
        } else if raw.ticks >= prev.ticks {
            let d = raw.ticks - prev.ticks;
            if within(d, bounds.advance_ticks) { Step::Advanced(d) } else { Step::Rejected }
        } else {
            match self.spec.wrap_ticks {
                Some(m) if prev.ticks < m && raw.ticks < m => {
                    let d = m - prev.ticks + raw.ticks;
                    if within(d, bounds.advance_ticks) { Step::Wrapped(d) } else { restart }
                }
                _ => restart,
            }
        };
        let delta = match step {
            Step::Advanced(d) | Step::Wrapped(d) | Step::Reset(d) => d,
            Step::First | Step::Rejected | Step::Rebased => 0,
        };
        match step {
            Step::Wrapped(_) => self.wraps += 1,
            Step::Reset(_) => self.resets += 1,
            Step::Rejected => self.rejected += 1,
            _ => {}
        }
        self.delta_total = self.delta_total.saturating_add(delta);
        step
    }

    /// Makes the next reading a new origin of deltas, adding nothing for the time in between: the
    /// counter is read from a new file (a device registered again, a simulated root written
    /// again) whose value has no known relation to the last one. The extended value continues
    /// from where it stands, so it never goes backwards.
    pub fn rebase(&mut self) {
        if self.last.is_some() {
            self.rebase = true;
        }
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

    #[test]
    fn a_decrease_that_is_no_plausible_wrap_is_a_reset() {
        // A DRAM-like counter (range 65.5 kJ) read every ms restarts from 0: as a wrap it would
        // add 5.5 kJ in a millisecond; it is a restart that counted 100 µJ since.
        let mut c = uj(65_535_999_999);
        c.update(RawEnergy::new(60_000_000_000));
        let ms = Plausible { advance_ticks: Some(20_000_000), restart_ticks: Some(10_000_000) };
        assert_eq!(c.update_plausible(RawEnergy::new(100), ms), Step::Reset(100));
        assert_eq!(c.delta_ticks_total(), 100);
        // Near the top of its range, the same decrease is an ordinary wrap.
        let mut c = uj(65_535_999_999);
        c.update(RawEnergy::new(65_535_990_000));
        assert_eq!(c.update_plausible(RawEnergy::new(100), ms), Step::Wrapped(10_100));
    }

    #[test]
    fn a_restart_from_an_unknown_value_is_rejected_and_becomes_the_origin() {
        // A non-wrapping counter replaced by one that shows 5 MJ: neither an advance nor a restart
        // in 1 ms; the next reading counts from it.
        let mut c = ExtendedCounter::new(CounterSpec::non_wrapping(1.0));
        let ms = Plausible { advance_ticks: Some(20), restart_ticks: Some(10) };
        c.update(RawEnergy::new(9_000_000));
        assert_eq!(c.update_plausible(RawEnergy::new(5_000_000), ms), Step::Rejected);
        assert_eq!(c.update_plausible(RawEnergy::new(5_000_001), ms), Step::Advanced(1));
        assert_eq!(c.total_ticks(), 9_000_001);
        assert_eq!(c.events(), (0, 0, 1));
    }

    #[test]
    fn a_rebased_counter_adds_nothing_for_the_gap_and_never_goes_back() {
        let mut c = uj(999_999);
        c.update(RawEnergy::new(5000));
        c.update(RawEnergy::new(6000));
        c.rebase();
        assert_eq!(c.update(RawEnergy::new(10)), Step::Rebased);
        assert_eq!(c.total_ticks(), 6000);
        assert_eq!(c.update(RawEnergy::new(30)), Step::Advanced(20));
        assert_eq!(c.total_ticks(), 6020);
        // Rebasing a counter never read is its first reading.
        let mut fresh = uj(999);
        fresh.rebase();
        assert_eq!(fresh.update(RawEnergy::new(7)), Step::First);
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
