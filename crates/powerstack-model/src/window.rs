//! The averaging windows a power limit can hold.
//!
//! RAPL encodes a window in 7 bits as `2^Y × (1 + Z/4)` time units (`Y` in bits 4:0, `Z` in bits
//! 6:5; the time unit is `MSR_RAPL_POWER_UNIT` bits 19:16, 2^-10 s on every Intel and AMD part so
//! far), and rounds a window down to that grid: 1.2 s becomes 1 s, 100 h becomes 90.97 h. A
//! window is therefore accepted only when the grid holds one close to it (see [`TimeWindows::check`]).

/// A window may be rounded by the hardware by at most this share of itself; further away from
/// every window the hardware can hold, it is refused with the nearest ones.
pub const WINDOW_TOLERANCE: f64 = 0.05;

/// The largest RAPL exponent `Y` (5 bits).
const RAPL_MAX_Y: i32 = 31;

/// The averaging windows a power limit accepts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TimeWindows {
    /// RAPL's grid: `2^Y × (1 + Z/4) × unit_s` for `Y` in 0..=31 and `Z` in 0..=3, up to `max_s`
    /// (the encoding's largest, or the hardware's maximum when it reports one).
    Rapl {
        /// The time unit, seconds.
        unit_s: f64,
        /// The largest window, seconds.
        max_s: f64,
    },
    /// Any window from `min_s` to `max_s`.
    Range {
        /// The smallest window, seconds.
        min_s: f64,
        /// The largest window, seconds.
        max_s: f64,
    },
}

/// Why a window cannot be held.
#[derive(Clone, Debug, PartialEq)]
pub enum WindowRefusal {
    /// Below the smallest or above the largest window.
    OutOfRange,
    /// Within the range, but the hardware would round it by more than [`WINDOW_TOLERANCE`]; the
    /// nearest windows it can hold, below and above.
    OffGrid {
        /// The nearest window below, seconds.
        below_s: f64,
        /// The nearest window above, seconds.
        above_s: f64,
    },
}

impl TimeWindows {
    /// The RAPL grid for time unit `unit_s`, up to the encoding's largest window or `max_s`
    /// when the hardware reports a smaller maximum.
    pub fn rapl(unit_s: f64, max_s: Option<f64>) -> TimeWindows {
        let encodable = 2f64.powi(RAPL_MAX_Y) * 1.75 * unit_s;
        let max_s = max_s.filter(|m| *m >= unit_s && *m < encodable).unwrap_or(encodable);
        TimeWindows::Rapl { unit_s, max_s }
    }

    /// The smallest window, seconds.
    pub fn min_s(&self) -> f64 {
        match *self {
            TimeWindows::Rapl { unit_s, .. } => unit_s,
            TimeWindows::Range { min_s, .. } => min_s,
        }
    }

    /// The largest window, seconds.
    pub fn max_s(&self) -> f64 {
        match *self {
            TimeWindows::Rapl { max_s, .. } | TimeWindows::Range { max_s, .. } => max_s,
        }
    }

    /// Checks that a window of `s` seconds can be held: within the range and, on RAPL, rounded
    /// down to the grid by no more than [`WINDOW_TOLERANCE`] of itself.
    pub fn check(&self, s: f64) -> Result<(), WindowRefusal> {
        let slack = 1e-9 * s.abs().max(1.0);
        if !s.is_finite() || s < self.min_s() - slack || s > self.max_s() + slack {
            return Err(WindowRefusal::OutOfRange);
        }
        let TimeWindows::Rapl { unit_s, max_s } = *self else {
            return Ok(());
        };
        // The hardware holds the largest window of the grid not above `s` (it rounds down).
        let mut held_s = unit_s;
        let mut above_s = max_s;
        for w in rapl_grid(unit_s).take_while(|w| *w <= max_s + slack) {
            if w > s + slack {
                above_s = w;
                break;
            }
            held_s = w;
        }
        if s - held_s <= WINDOW_TOLERANCE * s {
            Ok(())
        } else {
            Err(WindowRefusal::OffGrid { below_s: held_s, above_s })
        }
    }

    /// The range as text, for messages: `[976 µs .. 509.4 h]`, with the grid's rule for RAPL.
    pub fn describe(&self) -> String {
        match *self {
            TimeWindows::Rapl { unit_s, .. } => format!(
                "[{} .. {}] in steps of 2^Y × (1 + Z/4) × {}",
                seconds_text(self.min_s()),
                seconds_text(self.max_s()),
                seconds_text(unit_s)
            ),
            TimeWindows::Range { .. } => {
                format!("[{} .. {}]", seconds_text(self.min_s()), seconds_text(self.max_s()))
            }
        }
    }
}

/// Every RAPL window for `unit_s`, ascending.
fn rapl_grid(unit_s: f64) -> impl Iterator<Item = f64> {
    (0..=RAPL_MAX_Y).flat_map(move |y| (0..4).map(move |z| rapl_window(y, z, unit_s)))
}

fn rapl_window(y: i32, z: i32, unit_s: f64) -> f64 {
    2f64.powi(y) * (1.0 + f64::from(z) / 4.0) * unit_s
}

/// A duration for people: µs, ms, s or h with four significant digits.
pub fn seconds_text(s: f64) -> String {
    let (v, unit) = if s < 1e-3 {
        (s * 1e6, "µs")
    } else if s < 1.0 {
        (s * 1e3, "ms")
    } else if s < 3600.0 {
        (s, "s")
    } else {
        (s / 3600.0, "h")
    };
    let digits = if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let text = format!("{v:.digits$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIT: f64 = 976e-6;

    #[test]
    fn rapl_windows_on_the_grid_pass_and_others_name_their_neighbours() {
        let w = TimeWindows::rapl(UNIT, None);
        // 2^10 units, 2^14 × 1.75 units (the usual 28 s), and 28 ms (27.3 ms is 2.4% below).
        for s in [1.0, 2.0, 28.0, 0.028, UNIT, 0.00244] {
            assert_eq!(w.check(s), Ok(()), "{s}");
        }
        // 100 h: the grid has 2^28 × 1.25 units (90.97 h) and 2^28 × 1.5 units (109.2 h).
        match w.check(100.0 * 3600.0) {
            Err(WindowRefusal::OffGrid { below_s, above_s }) => {
                assert!((below_s / 3600.0 - 90.97).abs() < 0.01, "{below_s}");
                assert!((above_s / 3600.0 - 109.16).abs() < 0.01, "{above_s}");
            }
            other => panic!("{other:?}"),
        }
        // 1.2 s would be held as 1 s (the grid is rounded down to), 17% less.
        match w.check(1.2) {
            Err(WindowRefusal::OffGrid { below_s, above_s }) => {
                assert!((below_s - 0.999_424).abs() < 1e-9, "{below_s}");
                assert!((above_s - 1.249_28).abs() < 1e-9, "{above_s}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(w.check(1.04), Ok(()));
    }

    #[test]
    fn rapl_windows_outside_the_encoding_or_the_reported_maximum_are_out_of_range() {
        let w = TimeWindows::rapl(UNIT, None);
        assert_eq!(w.check(UNIT / 2.0), Err(WindowRefusal::OutOfRange));
        assert_eq!(w.check(0.0), Err(WindowRefusal::OutOfRange));
        assert_eq!(w.check(f64::NAN), Err(WindowRefusal::OutOfRange));
        assert_eq!(w.check(w.max_s() * 1.01), Err(WindowRefusal::OutOfRange));
        assert_eq!(w.check(w.max_s()), Ok(()));
        let capped = TimeWindows::rapl(UNIT, Some(40.0));
        assert_eq!(capped.max_s(), 40.0);
        assert_eq!(capped.check(56.0), Err(WindowRefusal::OutOfRange));
        assert_eq!(capped.check(28.0), Ok(()));
        // A reported maximum of nothing, or above the encoding, is ignored.
        assert_eq!(TimeWindows::rapl(UNIT, Some(0.0)).max_s(), w.max_s());
    }

    #[test]
    fn a_plain_range_takes_any_window_inside() {
        let w = TimeWindows::Range { min_s: 0.001, max_s: 10.0 };
        assert_eq!(w.check(1.2345), Ok(()));
        assert_eq!(w.check(10.5), Err(WindowRefusal::OutOfRange));
        assert_eq!(w.describe(), "[1 ms .. 10 s]");
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(seconds_text(976e-6), "976 µs");
        assert_eq!(seconds_text(0.0273), "27.3 ms");
        assert_eq!(seconds_text(1.0), "1 s");
        assert_eq!(seconds_text(327_491.584), "90.97 h");
        assert!(TimeWindows::rapl(UNIT, None).describe().starts_with("[976 µs .. "));
    }
}
