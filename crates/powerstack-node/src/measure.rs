//! Measuring a span of time, like `perf stat` (`powerstack measure -- COMMAND`): the energy of
//! every domain and of the node from the counters (extended across wraps) at both ends, the mean
//! power (energy over duration), and the peak power from samples taken every interval in between.
//!
//! The peak is the highest mean power over one sampling interval: the intervals partition the
//! span, so it is never below the mean. A counter the hardware updates in steps without a
//! timestamp (NVML's, about every 100 ms) is read at its steps
//! ([`powerstack_hw::Platform::sample_at_steps`]), at both ends and in between, so that no interval
//! holds a step's energy over part of its time; its intervals last at least a step. The last
//! reading waits for every counter to have moved since the first (a span shorter than a counter's
//! update period is measured over one period rather than as 0 J).

use std::time::{Duration, Instant};

use powerstack_api::measure::{DomainMeasureV1, MEASURE_SCHEMA, MeasureV1};
use powerstack_api::v1::{HeaderV1, PowerV1};
use powerstack_hw::platform::STEP_WAIT;
use powerstack_model::power::node_source;
use powerstack_model::{
    DomainInfo, DomainPower, Measurement, NodePower, NodeSource, PowerReport, Snapshot, Value,
};

use crate::open::OpenNode;

/// The sampling intervals `measure` accepts: 10 ms to 1 h.
pub const SAMPLE_INTERVAL: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(10)..=Duration::from_secs(3600);

/// A span being measured: the first reading, the last, and the peaks so far.
pub struct Meter {
    start: Snapshot,
    last: Snapshot,
    /// Per domain (catalog order): the highest power over one interval.
    peak_watts: Vec<Option<f64>>,
    node_peak_watts: Option<f64>,
    /// Per domain: the energy of a power sensor, its readings added up over time.
    sensor_joules: Vec<Option<f64>>,
    samples: u64,
    interval: Duration,
}

/// What a span measured: per domain and for the node, in catalog order.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    /// The mean power of every domain and of the node over the span (energy over duration), as a
    /// power report over the whole span (for Variorum's power document).
    pub mean: PowerReport,
    /// Per domain: the energy over the span, joules.
    pub energy_joules: Vec<Option<f64>>,
    /// Per domain: the highest power over one sampling interval, watts.
    pub peak_watts: Vec<Option<f64>>,
    /// The node's energy over the span, joules.
    pub node_energy_joules: Option<f64>,
    /// The node's highest power over one sampling interval, watts.
    pub node_peak_watts: Option<f64>,
    /// The first reading, µs since the Unix epoch.
    pub start_us: i64,
    /// Readings taken, both ends included.
    pub samples: u64,
    /// The sampling interval.
    pub interval: Duration,
    /// The node's discovery warnings and what could not be read while sampling.
    pub warnings: Vec<String>,
}

impl Meter {
    /// Takes the first reading (between the steps of counters published in steps); sample every
    /// `interval` from now on ([`Meter::until`]).
    pub fn start(node: &mut OpenNode, interval: Duration) -> Meter {
        let start = node.discovery.platform.sample_at_steps(STEP_WAIT);
        let n = start.values.len();
        Meter {
            last: start.clone(),
            start,
            peak_watts: vec![None; n],
            node_peak_watts: None,
            sensor_joules: vec![None; n],
            samples: 1,
            interval,
        }
    }

    /// Samples every interval until `wait` returns something, then takes the last reading:
    /// `wait(left)` waits at most `left` for the end of what is measured (a child process) and
    /// says how it ended, or `None` when it has not yet.
    pub fn until<T>(
        mut self,
        node: &mut OpenNode,
        mut wait: impl FnMut(Duration) -> Option<T>,
    ) -> (Measured, T) {
        let mut next = Instant::now() + self.interval;
        loop {
            if let Some(ended) = wait(next.saturating_duration_since(Instant::now())) {
                // A counter that has not moved since the first reading (a command shorter than
                // its update period) is waited for: never 0 J for a counter that did not tick.
                let platform = &mut node.discovery.platform;
                let last = platform.sample_at_steps(STEP_WAIT);
                let last = platform.until_moved(&self.start, last);
                self.add(platform.catalog(), last);
                return (self.finish(node), ended);
            }
            let now = Instant::now();
            if now >= next {
                // Between steps too: a stepped counter read between a plain reading and one
                // stamped at its step would give that interval a step's energy over a fraction
                // of its time.
                let snap = node.discovery.platform.sample_at_steps(STEP_WAIT);
                self.add(node.discovery.platform.catalog(), snap);
                // Behind (a slow read): the next interval starts now rather than at once.
                next = (next + self.interval).max(now);
            }
        }
    }

    /// Takes in one more reading: the peaks over the interval since the last one, and the energy
    /// of power sensors over it.
    fn add(&mut self, catalog: &[DomainInfo], snap: Snapshot) {
        let report = PowerReport::between(catalog, &self.last, &snap);
        for (i, d) in report.domains.iter().enumerate() {
            let Some(w) = d.power_watts else { continue };
            self.peak_watts[i] = Some(self.peak_watts[i].map_or(w, |p| p.max(w)));
            if matches!(catalog[i].measurement, Measurement::Power) {
                self.sensor_joules[i] =
                    Some(self.sensor_joules[i].unwrap_or(0.0) + w * report.interval_s);
            }
        }
        if let Some(n) = &report.node {
            self.node_peak_watts = Some(self.node_peak_watts.map_or(n.watts, |p| p.max(n.watts)));
        }
        self.last = snap;
        self.samples += 1;
    }

    fn finish(self, node: &mut OpenNode) -> Measured {
        let catalog = node.discovery.platform.catalog();
        let duration_s = self.last.mono_ns.saturating_sub(self.start.mono_ns) as f64 / 1e9;
        // Energy counters' mean power over the whole span, as `power` measures an interval: over
        // the hardware's own timestamps where both ends carry one.
        let span = PowerReport::between(catalog, &self.start, &self.last);
        let (mut energy_joules, mut mean_watts) = (Vec::new(), Vec::new());
        for (i, info) in catalog.iter().enumerate() {
            let (joules, watts) = match info.measurement {
                Measurement::Energy(_) => {
                    (counter_joules(&self.start, &self.last, i), span.domains[i].power_watts)
                }
                Measurement::Power => {
                    let joules = self.sensor_joules[i];
                    (joules, joules.filter(|_| duration_s > 0.0).map(|j| j / duration_s))
                }
            };
            energy_joules.push(joules);
            mean_watts.push(watts);
        }
        let kinds: Vec<_> = catalog.iter().map(|d| d.id.kind).collect();
        let source = node_source(&kinds, |i| mean_watts[i].is_some() && energy_joules[i].is_some());
        let sum = |values: &[Option<f64>], s: &NodeSource| match s {
            NodeSource::Direct(i) => values[*i].unwrap_or(0.0),
            NodeSource::Sum(parts) => parts.iter().filter_map(|&i| values[i]).sum(),
        };
        let node_energy_joules = source.as_ref().map(|s| sum(&energy_joules, s));
        let node_power = source.map(|s| NodePower { watts: sum(&mean_watts, &s), source: s });
        // Some interval's mean is at least the whole span's: a peak computed a hair below it
        // (domains timed by different clocks, hardware and monotonic) is the mean.
        let at_least = |peak: Option<f64>, mean: Option<f64>| match (peak, mean) {
            (Some(p), Some(m)) => Some(p.max(m)),
            (p, m) => p.or(m),
        };
        let peak_watts =
            self.peak_watts.iter().zip(&mean_watts).map(|(&p, &m)| at_least(p, m)).collect();
        let node_peak_watts = at_least(self.node_peak_watts, node_power.as_ref().map(|n| n.watts));
        let domains = catalog
            .iter()
            .enumerate()
            .map(|(i, info)| DomainPower {
                id: info.id,
                power_watts: mean_watts[i],
                energy_joules: energy_joules[i],
            })
            .collect();
        let mean = PowerReport {
            interval_s: duration_s,
            unix_us: self.last.unix_us,
            domains,
            node: node_power,
        };
        let warnings = crate::read::warnings(node);
        Measured {
            mean,
            energy_joules,
            peak_watts,
            node_energy_joules,
            node_peak_watts,
            start_us: self.start.unix_us,
            samples: self.samples,
            interval: self.interval,
            warnings,
        }
    }
}

/// The energy counted by domain `i` between two readings, joules: `None` unless both read it.
fn counter_joules(a: &Snapshot, b: &Snapshot, i: usize) -> Option<f64> {
    match (a.values.get(i), b.values.get(i)) {
        (Some(Value::Energy { joules: ja, .. }), Some(Value::Energy { joules: jb, .. })) => {
            (jb >= ja).then(|| jb - ja)
        }
        _ => None,
    }
}

/// How a measured command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this status.
    Exited(i32),
    /// A signal ended it.
    Signaled(i32),
}

/// The `powerstack.measure.v1` document of a measured command.
pub fn document(
    node: &OpenNode,
    measured: &Measured,
    command: &[String],
    ended: Option<Ended>,
) -> MeasureV1 {
    let catalog = node.discovery.platform.catalog();
    // The node's source and parts, named as `powerstack power` names them.
    let power = PowerV1::new(&node.origin, catalog, &measured.mean, &[]);
    let domains = power
        .domains
        .into_iter()
        .enumerate()
        .map(|(i, d)| DomainMeasureV1 {
            domain: d.domain,
            index: d.index,
            die: d.die,
            socket: d.socket,
            energy_joules: measured.energy_joules[i],
            mean_watts: d.power_watts,
            peak_watts: measured.peak_watts[i],
            provider: d.provider,
            source: d.source,
        })
        .collect();
    MeasureV1 {
        header: HeaderV1::new(MEASURE_SCHEMA, &node.origin),
        command: command.to_vec(),
        exit_code: match ended {
            Some(Ended::Exited(c)) => Some(c),
            _ => None,
        },
        signal: match ended {
            Some(Ended::Signaled(s)) => Some(s),
            _ => None,
        },
        start_us: measured.start_us,
        end_us: measured.mean.unix_us,
        duration_s: measured.mean.interval_s,
        interval_s: measured.interval.as_secs_f64(),
        samples: measured.samples,
        node_energy_joules: measured.node_energy_joules,
        node_mean_watts: power.node_power_watts,
        node_peak_watts: measured.node_peak_watts,
        node_source: power.node_source,
        node_parts: power.node_parts,
        domains,
        warnings: measured.warnings.clone(),
    }
}

#[cfg(test)]
mod tests;
