//! A chassis's energy over a window from successive readings: the difference of the BMC's
//! energy counter when it has one at both ends and it did not go back, else the power readings
//! integrated (trapezoids), and always labelled with which ([`EnergyMethod`]). Pure: the caller
//! reads the BMC and gives the monotonic time of each reading.

use crate::readings::{ChassisReadings, Energy};

/// How a window's energy was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnergyMethod {
    /// The BMC's energy counter, last reading minus first.
    Counter,
    /// The BMC's power readings integrated over time (the BMC has no counter, or it went back).
    IntegratedFromPower,
}

impl EnergyMethod {
    /// Its name in output.
    pub fn as_str(self) -> &'static str {
        match self {
            EnergyMethod::Counter => "counter",
            EnergyMethod::IntegratedFromPower => "integrated from power",
        }
    }
}

/// A window's energy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowEnergy {
    /// Joules.
    pub joules: f64,
    /// Seconds from the first reading to the last.
    pub seconds: f64,
    /// Mean power over the window, watts.
    pub mean_watts: f64,
    /// How the joules were obtained.
    pub method: EnergyMethod,
    /// Readings taken.
    pub readings: usize,
}

#[derive(Debug, Clone, Copy)]
struct Point {
    time_s: f64,
    watts: Option<f64>,
    counter_joules: Option<f64>,
}

/// The readings of one chassis over a window.
#[derive(Debug, Default)]
pub struct EnergyMeter {
    first: Option<Point>,
    last: Option<Point>,
    integrated_joules: f64,
    integrated_seconds: f64,
    counter_ok: bool,
    readings: usize,
}

impl EnergyMeter {
    /// An empty window.
    pub fn new() -> EnergyMeter {
        EnergyMeter { counter_ok: true, ..EnergyMeter::default() }
    }

    /// Adds the chassis's readings taken at `time_s` (seconds on a monotonic clock, later than
    /// the previous one; an earlier or equal time is ignored).
    pub fn add(&mut self, time_s: f64, chassis: &ChassisReadings) {
        let counter_joules = match &chassis.energy {
            Some(Energy::Counter { joules, .. }) if joules.is_finite() => Some(*joules),
            _ => None,
        };
        let watts = chassis.power_watts().filter(|w| w.is_finite() && *w >= 0.0);
        let point = Point { time_s, watts, counter_joules };
        if let Some(last) = self.last {
            if time_s <= last.time_s {
                return;
            }
            if let (Some(a), Some(b)) = (last.watts, watts) {
                self.integrated_joules += (a + b) / 2.0 * (time_s - last.time_s);
                self.integrated_seconds += time_s - last.time_s;
            }
            match (last.counter_joules, counter_joules) {
                (Some(a), Some(b)) if b >= a => {}
                _ => self.counter_ok = false,
            }
        } else {
            self.counter_ok = counter_joules.is_some();
            self.first = Some(point);
        }
        self.last = Some(point);
        self.readings += 1;
    }

    /// The window's energy; `None` with fewer than two readings, or when neither a counter nor
    /// power covered it.
    pub fn energy(&self) -> Option<WindowEnergy> {
        let (first, last) = (self.first?, self.last?);
        let seconds = last.time_s - first.time_s;
        if self.readings < 2 || seconds <= 0.0 {
            return None;
        }
        let (joules, method) = match (first.counter_joules, last.counter_joules) {
            (Some(a), Some(b)) if self.counter_ok => (b - a, EnergyMethod::Counter),
            _ if self.integrated_seconds > 0.0 => {
                (self.integrated_joules, EnergyMethod::IntegratedFromPower)
            }
            _ => return None,
        };
        let covered = match method {
            EnergyMethod::Counter => seconds,
            EnergyMethod::IntegratedFromPower => self.integrated_seconds,
        };
        Some(WindowEnergy {
            joules,
            seconds,
            mean_watts: joules / covered,
            method,
            readings: self.readings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readings::{PowerReading, Source};

    fn chassis(watts: Option<f64>, counter: Option<f64>) -> ChassisReadings {
        let source = Source { uri: "/c".into(), property: "p".into() };
        ChassisReadings {
            power: watts
                .map(|w| PowerReading { watts: w, source: source.clone() })
                .into_iter()
                .collect(),
            energy: Some(match counter {
                Some(joules) => Energy::Counter { joules, source },
                None => Energy::IntegrateFromPower,
            }),
            ..ChassisReadings::default()
        }
    }

    #[test]
    fn a_counter_gives_the_window_by_difference() {
        let mut m = EnergyMeter::new();
        m.add(0.0, &chassis(Some(100.0), Some(1000.0)));
        m.add(1.0, &chassis(Some(300.0), Some(1250.0)));
        m.add(2.0, &chassis(Some(300.0), Some(1500.0)));
        let e = m.energy().unwrap();
        assert_eq!((e.joules, e.method, e.readings), (500.0, EnergyMethod::Counter, 3));
        assert_eq!(e.mean_watts, 250.0);
    }

    #[test]
    fn without_a_counter_power_is_integrated_and_labelled() {
        let mut m = EnergyMeter::new();
        m.add(0.0, &chassis(Some(100.0), None));
        m.add(2.0, &chassis(Some(300.0), None));
        m.add(1.0, &chassis(Some(9999.0), None)); // earlier: ignored
        let e = m.energy().unwrap();
        assert_eq!((e.joules, e.method), (400.0, EnergyMethod::IntegratedFromPower));
        assert_eq!((e.seconds, e.mean_watts), (2.0, 200.0));
    }

    #[test]
    fn a_counter_that_goes_back_is_not_trusted() {
        let mut m = EnergyMeter::new();
        m.add(0.0, &chassis(Some(200.0), Some(5000.0)));
        m.add(1.0, &chassis(Some(200.0), Some(10.0)));
        let e = m.energy().unwrap();
        assert_eq!((e.joules, e.method), (200.0, EnergyMethod::IntegratedFromPower));
    }

    #[test]
    fn one_reading_or_no_data_gives_nothing() {
        let mut m = EnergyMeter::new();
        assert_eq!(m.energy(), None);
        m.add(0.0, &chassis(Some(200.0), None));
        assert_eq!(m.energy(), None);
        let mut m = EnergyMeter::new();
        m.add(0.0, &chassis(None, None));
        m.add(1.0, &chassis(None, None));
        assert_eq!(m.energy(), None);
    }
}
