//! What a BMC's readings come to in a stream of cumulative counters (one `node` column, in
//! millijoule ticks). Pure: the poller reads the BMC and stamps each reading.
//!
//! With an energy counter the column is the counter less its value at the stream's start (a
//! counter that goes back starts a new stream, as an agent restart does; a failed read leaves a
//! gap the counter still covers). Without one, power is integrated by trapezoids between
//! successive readings: the first reading of a stream gives no energy, and a failed read ends
//! the stream (the next reading begins another), so a gap is never filled with a guess.

use powerstack_redfish::{ChassisReadings, Energy};

/// Joules per tick of the `node` column.
pub const JOULES_PER_TICK: f64 = 0.001;

/// How a stream's energy is obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// The BMC's energy counter.
    Counter,
    /// The BMC's power readings integrated.
    Integrated,
}

impl Method {
    /// The column's provider label, as reports and `/v1/nodes` show it.
    pub fn provider(self) -> &'static str {
        match self {
            Method::Counter => "redfish",
            Method::Integrated => "redfish-integrated",
        }
    }
}

/// One reading of a chassis: when (µs since the epoch), its power and its energy counter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// When it was read, µs.
    pub t_us: u64,
    /// Power, W.
    pub watts: Option<f64>,
    /// The energy counter, J.
    pub counter_joules: Option<f64>,
}

impl Point {
    /// The reading of `chassis` at `t_us`; `None` when it has neither power nor a counter.
    pub fn of(t_us: u64, chassis: &ChassisReadings) -> Option<Point> {
        let counter_joules = match &chassis.energy {
            Some(Energy::Counter { joules, .. }) if joules.is_finite() && *joules >= 0.0 => {
                Some(*joules)
            }
            _ => None,
        };
        let watts = chassis.power_watts().filter(|w| w.is_finite() && *w >= 0.0);
        (watts.is_some() || counter_joules.is_some()).then_some(Point {
            t_us,
            watts,
            counter_joules,
        })
    }
}

/// What a reading comes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A new stream begins, with this method; its first sample is 0 ticks at the reading's time.
    Begin(Method),
    /// The stream's next sample: its cumulative ticks at the reading's time.
    Append(u64),
    /// Nothing to store (a reading not after the newest, or power missing where it is needed).
    Skip,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Track {
    method: Method,
    base_joules: f64,
    integrated_joules: f64,
    last: Point,
}

/// The stream a node's readings are written to, as far as its counter goes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tracker {
    track: Option<Track>,
}

fn ticks(joules: f64) -> u64 {
    // Non-negative and finite here; `as` saturates.
    (joules / JOULES_PER_TICK).round() as u64
}

impl Tracker {
    /// The method of the stream being written.
    pub fn method(&self) -> Option<Method> {
        self.track.map(|t| t.method)
    }

    /// Forgets the stream: the next reading begins another.
    pub fn reset(&mut self) {
        self.track = None;
    }

    /// A read failed: an integrated stream ends there (a counter covers the gap).
    pub fn gap(&mut self) {
        if self.method() == Some(Method::Integrated) {
            self.track = None;
        }
    }

    /// Takes reading `p`.
    pub fn reading(&mut self, p: Point) -> Step {
        let Some(t) = self.track.as_mut() else { return self.begin(p) };
        if p.t_us <= t.last.t_us {
            return Step::Skip;
        }
        match (t.method, p.counter_joules, t.last.counter_joules) {
            (Method::Counter, Some(c), Some(last)) if c >= last => {
                t.last = p;
                Step::Append(ticks(c - t.base_joules))
            }
            // The counter went back, or came or went: another stream.
            (Method::Counter, _, _) | (Method::Integrated, Some(_), _) => self.begin(p),
            (Method::Integrated, None, _) => {
                let (Some(a), Some(b)) = (t.last.watts, p.watts) else {
                    self.track = None;
                    return Step::Skip;
                };
                t.integrated_joules += (a + b) / 2.0 * ((p.t_us - t.last.t_us) as f64 / 1e6);
                t.last = p;
                Step::Append(ticks(t.integrated_joules))
            }
        }
    }

    fn begin(&mut self, p: Point) -> Step {
        let method = match (p.counter_joules, p.watts) {
            (Some(_), _) => Method::Counter,
            (None, Some(_)) => Method::Integrated,
            (None, None) => {
                self.track = None;
                return Step::Skip;
            }
        };
        self.track = Some(Track {
            method,
            base_joules: p.counter_joules.unwrap_or(0.0),
            integrated_joules: 0.0,
            last: p,
        });
        Step::Begin(method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t_s: u64, watts: Option<f64>, counter: Option<f64>) -> Point {
        Point { t_us: t_s * 1_000_000, watts, counter_joules: counter }
    }

    #[test]
    fn a_counter_is_its_difference_from_the_start_and_going_back_starts_again() {
        let mut t = Tracker::default();
        assert_eq!(t.reading(p(1, Some(300.0), Some(5000.0))), Step::Begin(Method::Counter));
        assert_eq!(t.reading(p(2, Some(300.0), Some(5000.25))), Step::Append(250));
        t.gap(); // the counter covers it
        assert_eq!(t.reading(p(5, None, Some(5900.0))), Step::Append(900_000));
        assert_eq!(t.reading(p(5, None, Some(6000.0))), Step::Skip);
        assert_eq!(t.reading(p(6, None, Some(10.0))), Step::Begin(Method::Counter));
        assert_eq!(t.reading(p(7, None, Some(11.0))), Step::Append(1000));
        // The counter gone, power left: integrated from here.
        assert_eq!(t.reading(p(8, Some(100.0), None)), Step::Begin(Method::Integrated));
    }

    #[test]
    fn power_is_integrated_by_trapezoids_and_a_gap_ends_the_stream() {
        let mut t = Tracker::default();
        assert_eq!(t.reading(p(10, Some(100.0), None)), Step::Begin(Method::Integrated));
        assert_eq!(t.reading(p(12, Some(300.0), None)), Step::Append(400_000));
        assert_eq!(t.reading(p(13, Some(300.0), None)), Step::Append(700_000));
        t.gap();
        assert_eq!(t.method(), None);
        assert_eq!(t.reading(p(20, Some(50.0), None)), Step::Begin(Method::Integrated));
        assert_eq!(t.reading(p(21, Some(50.0), None)), Step::Append(50_000));
        // A counter appears: the better source, another stream.
        assert_eq!(t.reading(p(22, Some(50.0), Some(7.0))), Step::Begin(Method::Counter));
    }

    #[test]
    fn a_chassis_without_power_or_counter_is_no_reading() {
        let none =
            ChassisReadings { energy: Some(Energy::IntegrateFromPower), ..Default::default() };
        assert_eq!(Point::of(1, &none), None);
        let mut t = Tracker::default();
        assert_eq!(t.reading(p(1, None, None)), Step::Skip);
        assert_eq!(t.method(), None);
    }
}
