//! Counters that stopped: a value that has not moved for far longer than its update period is
//! stale, and stale is missing, never 0 W.
//!
//! Every energy counter powerstack reads moves at every hardware update while anything draws
//! power (a RAPL counter every ~1 ms by at least one 61 µJ tick down to a few mW, pm_counters and
//! NVML every ~100 ms). One that does not move for many update periods is not measuring: a frozen
//! firmware, a driver that stopped, a file whose device was replaced while a reader kept the old
//! one open. Reporting the flat counter as 0 W would be a confident wrong answer; [`Freshness`]
//! tells the caller to report the value as missing instead, and when to look whether the
//! counter's file was replaced: first once it has been still for a few update periods
//! ([`check_after_ns`]), then less and less often (the wait doubles up to the stale time), so a
//! counter that moves costs nothing and one that stopped a few `stat`s a second at most.
//!
//! Pure: times come from the caller.

/// How many update periods without a change make a counter stale.
pub const STALE_PERIODS: u64 = 10;

/// The least time without a change that makes a counter stale, ns: well past any scheduling
/// delay of whatever updates the counter, and past the time the coarsest counter (whole joules
/// at 10 Hz) takes to move at a few watts.
pub const STALE_MIN_NS: u64 = 1_000_000_000;

/// How long a counter updated every `update_period_ns` may stay still before it is stale, ns.
pub fn stale_after_ns(update_period_ns: u64) -> u64 {
    update_period_ns.saturating_mul(STALE_PERIODS).max(STALE_MIN_NS)
}

/// How many update periods without a change before the source is first looked at.
pub const CHECK_PERIODS: u64 = 3;

/// The least time without a change before the source is first looked at, ns.
pub const CHECK_MIN_NS: u64 = 20_000_000;

/// How long a counter updated every `update_period_ns` stays still before its source is first
/// looked at (was its file replaced?), ns: a few periods, at most the stale time.
pub fn check_after_ns(update_period_ns: u64) -> u64 {
    update_period_ns
        .saturating_mul(CHECK_PERIODS)
        .max(CHECK_MIN_NS)
        .min(stale_after_ns(update_period_ns))
}

/// What [`Freshness::observe`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fresh {
    /// The value changed (or is the first).
    Moved,
    /// The value has not changed, for less than the stale time: an ordinary reading.
    Still {
        /// Whether to look now whether the source was replaced.
        check: bool,
    },
    /// The value has not changed for longer than the stale time: it is missing.
    Stale {
        /// How long it has not changed, ns.
        still_ns: u64,
        /// Whether to look now whether the source was replaced.
        check: bool,
    },
}

impl Fresh {
    /// Whether to look now whether the source was replaced: after [`check_after_ns`] of
    /// stillness, then after twice as long each time, up to once per stale time.
    pub fn check(self) -> bool {
        matches!(self, Fresh::Still { check: true } | Fresh::Stale { check: true, .. })
    }
}

/// Tracks when one domain's value last changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    stale_after_ns: u64,
    check_after_ns: u64,
    changed_ns: Option<u64>,
    /// When the source is to be looked at next (time still, ns).
    next_check_ns: u64,
}

impl Freshness {
    /// A domain whose value is updated every `update_period_ns`.
    pub fn new(update_period_ns: u64) -> Freshness {
        let check_after_ns = check_after_ns(update_period_ns);
        Freshness {
            stale_after_ns: stale_after_ns(update_period_ns),
            check_after_ns,
            changed_ns: None,
            next_check_ns: check_after_ns,
        }
    }

    /// How long the value may stay still before it is stale, ns.
    pub fn stale_after_ns(&self) -> u64 {
        self.stale_after_ns
    }

    /// When the value last changed (ns), once it has been seen.
    pub fn changed_ns(&self) -> Option<u64> {
        self.changed_ns
    }

    /// Records a reading at `now_ns`, `changed` when its value differs from the previous one (a
    /// failed read is not a change).
    pub fn observe(&mut self, changed: bool, now_ns: u64) -> Fresh {
        let Some(since) = self.changed_ns.filter(|_| !changed) else {
            self.changed_ns = Some(now_ns);
            self.next_check_ns = self.check_after_ns;
            return Fresh::Moved;
        };
        let still_ns = now_ns.saturating_sub(since);
        let check = still_ns > self.next_check_ns;
        if check {
            let wait =
                (self.next_check_ns.min(still_ns)).clamp(self.check_after_ns, self.stale_after_ns);
            self.next_check_ns = still_ns.saturating_add(wait);
        }
        if still_ns <= self.stale_after_ns {
            Fresh::Still { check }
        } else {
            Fresh::Stale { still_ns, check }
        }
    }

    /// Forgets the history: the next reading counts as a change (its source was reopened).
    pub fn restart(&mut self) {
        self.changed_ns = None;
        self.next_check_ns = self.check_after_ns;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn the_stale_time_is_ten_periods_and_at_least_a_second() {
        assert_eq!(stale_after_ns(MS), 1000 * MS);
        assert_eq!(stale_after_ns(100 * MS), 1000 * MS);
        assert_eq!(stale_after_ns(500 * MS), 5000 * MS);
        assert_eq!(check_after_ns(MS), 20 * MS);
        assert_eq!(check_after_ns(100 * MS), 300 * MS);
        assert_eq!(check_after_ns(500 * MS), 1500 * MS);
    }

    #[test]
    fn a_still_value_is_checked_less_and_less_often_and_turns_stale() {
        let mut f = Freshness::new(MS);
        assert_eq!(f.observe(false, 0), Fresh::Moved, "the first reading is a change");
        assert_eq!(f.observe(false, 20 * MS), Fresh::Still { check: false });
        assert_eq!(f.observe(false, 21 * MS), Fresh::Still { check: true });
        // Next after twice the wait, and so on.
        assert_eq!(f.observe(false, 40 * MS), Fresh::Still { check: false });
        assert_eq!(f.observe(false, 42 * MS), Fresh::Still { check: true });
        assert_eq!(f.observe(false, 80 * MS), Fresh::Still { check: false });
        assert_eq!(f.observe(false, 85 * MS), Fresh::Still { check: true });
        assert_eq!(f.observe(false, 1000 * MS), Fresh::Still { check: true });
        assert_eq!(f.observe(false, 1001 * MS), Fresh::Stale { still_ns: 1001 * MS, check: false });
        // Once stale, at most once per stale time.
        assert_eq!(f.observe(false, 2001 * MS), Fresh::Stale { still_ns: 2001 * MS, check: true });
        assert_eq!(f.observe(false, 2500 * MS), Fresh::Stale { still_ns: 2500 * MS, check: false });
        assert_eq!(f.observe(false, 3002 * MS), Fresh::Stale { still_ns: 3002 * MS, check: true });
        assert_eq!(f.observe(true, 3003 * MS), Fresh::Moved);
        assert_eq!(f.observe(false, 3010 * MS), Fresh::Still { check: false });
        assert_eq!(f.changed_ns(), Some(3003 * MS));
    }

    #[test]
    fn a_restarted_tracker_counts_its_next_reading_as_a_change() {
        let mut f = Freshness::new(100 * MS);
        f.observe(true, 0);
        assert!(matches!(f.observe(false, 5000 * MS), Fresh::Stale { .. }));
        f.restart();
        assert_eq!(f.observe(false, 5001 * MS), Fresh::Moved);
    }
}
