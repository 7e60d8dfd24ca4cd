//! One catalog entry's readings turned into values: energy extended across wraps and restarts
//! against a plausibility ceiling, a counter that stopped moving reported missing, warnings once.
//!
//! The **ceiling** of a domain ([`ceiling_watts`]) is the most it can plausibly draw:
//! [`RATED_FACTOR`] times the largest rated figure its provider reports (the maximum and default of
//! each power limit: hwmon `power1_cap_max` and `_cap_default`, i915/xe `power1_rated_max`, RAPL
//! `max_power_uw`, NVML's limit constraints and default), kept between the kind's floor and
//! generic ceiling ([`generic_ceiling_watts`]); the generic ceiling when nothing is rated. A
//! power reading above it, an energy jump implying more than twice it, and a non-wrapping counter
//! holding more than it could have counted in [`MAX_COUNTING_S`] (the all-ones sentinel among
//! them) are read failures with a warning, never figures. Computed once per domain: a read costs
//! one comparison.

use powerstack_model::{
    DomainInfo, DomainKind, ExtendedCounter, Fresh, Freshness, Measurement, Plausible, Step, Value,
};

use crate::error::Warning;
use crate::provider::Reading;

/// The update period assumed for a counter current at every read (RAPL's ~1 ms).
pub(super) const CONTINUOUS_PERIOD_NS: u64 = 1_000_000;

/// Added to the time a delta covers before it is judged: a counter may publish up to an update
/// period (or this, if longer) of energy beyond the time between two reads.
const SLACK_NS: u64 = 50_000_000;

/// A generous ceiling on what one domain of a kind can draw when nothing about the domain itself
/// is rated: used to reject impossible figures (an all-ones register, a counter that restarted
/// without saying so, a torn read).
pub fn generic_ceiling_watts(kind: DomainKind) -> f64 {
    match kind {
        DomainKind::Node | DomainKind::Platform => 100_000.0,
        DomainKind::Gpu => 10_000.0,
        DomainKind::Package | DomainKind::Core | DomainKind::Uncore => 5_000.0,
        DomainKind::Memory => 5_000.0,
    }
}

/// How many times its largest rated figure a domain may draw before a figure is implausible
/// (RAPL's PL2 and PL4 go to about three times a client CPU's TDP for milliseconds).
pub const RATED_FACTOR: f64 = 4.0;

/// The ceiling derived from a rating never goes below the kind's generic ceiling divided by this
/// (a rated figure that is itself wrong, far too small, never turns every reading into a failure).
const FLOOR_DIVISOR: f64 = 100.0;

/// The longest a non-wrapping counter can have counted, s (30 years): one holding more joules
/// than its domain's ceiling over that time is not a count.
pub const MAX_COUNTING_S: f64 = 30.0 * 365.25 * 86_400.0;

/// The plausibility ceiling of a domain, W: [`RATED_FACTOR`] times the largest `max_watts` or
/// `default_watts` of its limits, between the kind's floor and [`generic_ceiling_watts`]; the
/// generic ceiling when none is known. A cap in force is no rating (it can be lifted at any time).
pub fn ceiling_watts(info: &DomainInfo) -> f64 {
    let generic = generic_ceiling_watts(info.id.kind);
    let rated = info
        .limits
        .iter()
        .flat_map(|l| [l.max_watts, l.default_watts])
        .flatten()
        .filter(|w| w.is_finite() && *w > 0.0)
        .fold(0.0, f64::max);
    if rated > 0.0 {
        (rated * RATED_FACTOR).clamp(generic / FLOOR_DIVISOR, generic)
    } else {
        generic
    }
}

/// What one catalog entry's readings have been.
#[derive(Clone, Debug)]
pub(super) struct Track {
    counter: Option<ExtendedCounter>,
    /// When the counter was last read (a restart since then counted at most that long).
    last_read_ns: Option<u64>,
    /// The last power value, to tell whether it changes.
    last_power_bits: Option<u64>,
    fresh: Freshness,
    period_ns: u64,
    /// A warning was raised and the domain has not read well since.
    reported: bool,
    /// The domain's plausibility ceiling, W ([`ceiling_watts`]).
    ceiling_watts: f64,
    /// Twice the ceiling in counter ticks per ns (energy domains): the fastest plausible count.
    ticks_per_ns: f64,
    /// The largest raw value a non-wrapping counter may hold ([`MAX_COUNTING_S`] at the
    /// ceiling); `u64::MAX` for a wrapping one (its provider checks its range).
    max_raw_ticks: u64,
}

impl Track {
    /// The track of `info`, whose provider updates its values every `period_ns`.
    pub fn new(info: &DomainInfo, period_ns: u64) -> Track {
        let counter = match info.measurement {
            Measurement::Energy(spec) => Some(ExtendedCounter::new(spec)),
            Measurement::Power => None,
        };
        let ceiling_watts = ceiling_watts(info);
        let (ticks_per_ns, max_raw_ticks) = match info.measurement {
            Measurement::Energy(spec) if spec.joules_per_tick > 0.0 => {
                let max_raw = match spec.wrap_ticks {
                    Some(_) => u64::MAX,
                    // Saturates at u64::MAX; the all-ones sentinel is refused anyway.
                    None => (ceiling_watts * MAX_COUNTING_S / spec.joules_per_tick) as u64,
                };
                (ceiling_watts * 2.0 / 1e9 / spec.joules_per_tick, max_raw)
            }
            _ => (0.0, u64::MAX),
        };
        Track {
            counter,
            last_read_ns: None,
            last_power_bits: None,
            fresh: Freshness::new(period_ns),
            period_ns,
            reported: false,
            ceiling_watts,
            ticks_per_ns,
            max_raw_ticks,
        }
    }

    /// How long a value may stay still before it is stale, ns.
    pub fn stale_after_ns(&self) -> u64 {
        self.fresh.stale_after_ns()
    }

    /// The domain's source was reopened: its next reading starts a new counter, and is a change.
    pub fn rebase(&mut self) {
        if let Some(c) = &mut self.counter {
            c.rebase();
        }
        self.last_power_bits = None;
        self.fresh.restart();
    }

    /// The largest plausible deltas at `now_ns`: an advance since the counter last moved, a
    /// restart's count since it was last read, each at twice the domain's ceiling over that time
    /// plus an update period.
    fn plausible(&self, now_ns: u64) -> Plausible {
        // Twice the ceiling, in counter ticks per ns: one multiplication per bound at each read.
        let ticks_per_ns = self.ticks_per_ns;
        let slack = self.period_ns.max(SLACK_NS);
        let ticks =
            |since: u64| ((now_ns.saturating_sub(since) + slack) as f64 * ticks_per_ns) as u64;
        Plausible {
            advance_ticks: self.fresh.changed_ns().map(ticks),
            restart_ticks: self.last_read_ns.map(ticks),
        }
    }

    /// Turns a reading taken at `now_ns` into the value; returns it and whether the source should
    /// be looked at now ([`crate::Provider::reopen_replaced`]: a value still or failing for a few
    /// update periods, then less and less often; see [`Freshness`]).
    pub fn take(
        &mut self,
        info: &DomainInfo,
        reading: Reading,
        now_ns: u64,
        warnings: &mut Vec<Warning>,
    ) -> (Value, bool) {
        match reading {
            Reading::Energy(raw) if raw.ticks == u64::MAX || raw.ticks > self.max_raw_ticks => {
                let ceiling = self.ceiling_watts;
                self.warn(info, warnings, || {
                    format!(
                        "{}: {} reads {} (raw), more than the counter could hold after {:.0} years at the domain's ceiling of {ceiling} W: not a count, ignored",
                        info.id,
                        info.source,
                        raw.ticks,
                        MAX_COUNTING_S / (365.25 * 86_400.0)
                    )
                });
                (Value::Missing, self.fresh.observe(false, now_ns).check())
            }
            Reading::Energy(raw) => {
                if self.counter.is_none() {
                    return (Value::Missing, false);
                }
                let bounds = self.plausible(now_ns);
                self.last_read_ns = Some(now_ns);
                let Some(counter) = &mut self.counter else { return (Value::Missing, false) };
                let step = counter.update_plausible(raw, bounds);
                let fresh = self.fresh.observe(step != Step::Advanced(0), now_ns);
                let value = Value::Energy {
                    total_ticks: counter.total_ticks(),
                    joules: counter.total_joules(),
                    hw_time_us: raw.hw_time_us,
                };
                match (step, fresh) {
                    (Step::Rejected, _) => {
                        self.warn(info, warnings, || {
                            format!(
                                "{}: implausible energy jump ignored at {}",
                                info.id, info.source
                            )
                        });
                        (Value::Missing, false)
                    }
                    (_, Fresh::Stale { still_ns, check }) => {
                        self.warn(info, warnings, || {
                            format!(
                                "{}: the energy counter at {} has not moved for {:.1} s: no value until it moves again (stopped hardware, firmware or driver, or a file replaced under a reader)",
                                info.id,
                                info.source,
                                still_ns as f64 / 1e9
                            )
                        });
                        (Value::Missing, check)
                    }
                    (_, fresh) => {
                        self.reported = false;
                        (value, fresh.check())
                    }
                }
            }
            Reading::Power(w) if w.is_finite() && w >= 0.0 && w <= self.ceiling_watts => {
                self.reported = false;
                let bits = Some(w.to_bits());
                let changed = self.last_power_bits != bits;
                self.last_power_bits = bits;
                (Value::Power { watts: w }, self.fresh.observe(changed, now_ns).check())
            }
            Reading::Power(w) if w.is_finite() && w >= 0.0 => {
                let ceiling = self.ceiling_watts;
                self.warn(info, warnings, || {
                    format!(
                        "{}: {} reads {w} W, above the domain's plausibility ceiling of {ceiling} W (see docs/providers.md): not a reading, ignored",
                        info.id, info.source
                    )
                });
                (Value::Missing, self.fresh.observe(false, now_ns).check())
            }
            Reading::Power(w) => {
                self.warn(info, warnings, || {
                    format!("{}: invalid power reading {w} from {}", info.id, info.source)
                });
                (Value::Missing, false)
            }
            Reading::Failed(e) => {
                self.warn(info, warnings, || format!("{}: {e}", info.id));
                (Value::Missing, self.fresh.observe(false, now_ns).check())
            }
            Reading::Pending => (Value::Missing, false),
        }
    }

    /// Raises a warning for the domain once until it reads well again; the message is only built
    /// when raised (this runs on every sample of a failing domain).
    fn warn(
        &mut self,
        info: &DomainInfo,
        out: &mut Vec<Warning>,
        message: impl FnOnce() -> String,
    ) {
        if !self.reported {
            self.reported = true;
            out.push(Warning::unreadable(info.provider, message()));
        }
    }
}
