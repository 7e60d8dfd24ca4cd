//! A node's figures over a job window, typed ([`JobFigures`]: a figure that cannot be given is
//! `None`), and the one place that knows how a [`JobResultV1`] writes them: each device's figure
//! under its own key (`cpu_power_N`, `gpu_power_N`, `mem_power_N`: [`DeviceKey`]) and `-1`
//! ([`NOT_MEASURED`]) for a figure that cannot be given, as the Flux Power Monitor's rows do.
//!
//! The agent computes [`JobFigures`] and writes them with [`JobResultV1::with_figures`]; whoever
//! reads a document back (the agent combining the parts of a job measured by several of its
//! runs, a client summing a class of devices) reads it through [`JobResultV1::figures`] and
//! [`JobResultV1::class_watts`], never by the keys' spelling.

use std::collections::BTreeMap;
use std::fmt;

use super::{DataPresence, JobResultV1, JobTotalV1, NOT_MEASURED, known, sum_known};

/// A class of devices whose figures a job result gives one per device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceClass {
    /// A CPU socket (its package's dies summed): `cpu_power_N`.
    Cpu,
    /// A GPU: `gpu_power_N`.
    Gpu,
    /// A socket's memory: `mem_power_N`.
    Mem,
}

impl DeviceClass {
    /// Every class, in the Flux Power Monitor's column order.
    pub const ALL: [DeviceClass; 3] = [DeviceClass::Cpu, DeviceClass::Gpu, DeviceClass::Mem];

    /// What the keys of the class begin with (`cpu_power_`).
    fn prefix(self) -> &'static str {
        match self {
            DeviceClass::Cpu => "cpu_power_",
            DeviceClass::Gpu => "gpu_power_",
            DeviceClass::Mem => "mem_power_",
        }
    }

    /// The index of the device of this class `key` names, however its number is written
    /// (`cpu_power_02` is 2); `None` when `key` names none.
    fn index_of(self, key: &str) -> Option<u32> {
        key.strip_prefix(self.prefix())?.parse().ok()
    }
}

/// The keys [`DeviceKey`]'s `Display` writes, as a regular expression (the OpenAPI documents'
/// `patternProperties` of a job result).
pub const DEVICE_KEY_PATTERN: &str = "^(cpu|gpu|mem)_power_(0|[1-9][0-9]*)$";

/// One device with a figure of its own: its class and index (`cpu_power_2` is CPU socket 2).
/// Ordered by class in the Flux Power Monitor's column order, then by index as a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceKey {
    /// What kind of device.
    pub class: DeviceClass,
    /// Its index: the socket, or the GPU.
    pub index: u32,
}

impl DeviceKey {
    /// The device a document's key names, when the key is written as [`DeviceKey`]'s `Display`
    /// writes it (`cpu_power_2`, not `cpu_power_02`: so that each key names one device).
    pub fn parse(key: &str) -> Option<DeviceKey> {
        DeviceClass::ALL.into_iter().find_map(|class| {
            let index = class.index_of(key)?;
            let d = DeviceKey { class, index };
            (d.to_string() == key).then_some(d)
        })
    }
}

impl fmt::Display for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.class.prefix(), self.index)
    }
}

/// The part of a job window a node's buffer covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coverage {
    /// Its start, µs since the Unix epoch.
    pub start_unix_us: u64,
    /// Its end, µs since the Unix epoch.
    pub end_unix_us: u64,
    /// Samples taken within it.
    pub samples: u64,
    /// Whether it is the whole window.
    pub complete: bool,
}

impl Coverage {
    /// How long it lasts, s.
    pub fn seconds(&self) -> f64 {
        self.end_unix_us.saturating_sub(self.start_unix_us) as f64 / 1e6
    }
}

/// A job's peak: the highest mean node power over any window of a stated length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Peak {
    /// The power, W.
    pub watts: f64,
    /// The window it is taken over, s (`None` in documents of agents that did not say).
    pub window_s: Option<f64>,
}

/// One node's figures over a job window; what cannot be given is `None`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobFigures {
    /// The part of the window covered (`None`: nothing overlaps).
    pub coverage: Option<Coverage>,
    /// The node's energy over the covered part, J.
    pub energy_joules: Option<f64>,
    /// The node's mean power over the covered part, W.
    pub node_power_watts: Option<f64>,
    /// Each device of the node and its mean power over the covered part, W.
    pub device_watts: BTreeMap<DeviceKey, Option<f64>>,
    /// The peak.
    pub peak: Option<Peak>,
}

fn or_not_measured(x: Option<f64>) -> f64 {
    x.unwrap_or(NOT_MEASURED)
}

impl JobResultV1 {
    /// This document with `figures` written in: the covered part and its presence (`None`, times
    /// and `samples` 0, when nothing is covered), each figure, and a key per device; every
    /// figure that cannot be given [`NOT_MEASURED`].
    pub fn with_figures(self, figures: &JobFigures) -> JobResultV1 {
        let (start, end, samples, presence) = match figures.coverage {
            None => (0, 0, 0, DataPresence::None),
            Some(c) => {
                let p = if c.complete { DataPresence::Complete } else { DataPresence::Partial };
                (c.start_unix_us, c.end_unix_us, c.samples, p)
            }
        };
        JobResultV1 {
            node_power: or_not_measured(figures.node_power_watts),
            energy_joules: or_not_measured(figures.energy_joules),
            domain_power: figures
                .device_watts
                .iter()
                .map(|(d, w)| (d.to_string(), or_not_measured(*w)))
                .collect(),
            peak_node_power: or_not_measured(figures.peak.map(|p| p.watts)),
            peak_window_s: or_not_measured(figures.peak.and_then(|p| p.window_s)),
            result_start_time: start,
            result_end_time: end,
            samples,
            data_presence: presence,
            ..self
        }
    }

    /// The figures of this document, read back: a figure written as [`NOT_MEASURED`] (or any
    /// that is negative or not a number) is `None`, a key that names no device is left out.
    pub fn figures(&self) -> JobFigures {
        let coverage = (self.data_presence != DataPresence::None).then_some(Coverage {
            start_unix_us: self.result_start_time,
            end_unix_us: self.result_end_time,
            samples: self.samples,
            complete: self.data_presence == DataPresence::Complete,
        });
        JobFigures {
            coverage,
            energy_joules: known(self.energy_joules),
            node_power_watts: known(self.node_power),
            device_watts: self
                .domain_power
                .iter()
                .filter_map(|(k, w)| Some((DeviceKey::parse(k)?, known(*w))))
                .collect(),
            peak: known(self.peak_node_power)
                .map(|watts| Peak { watts, window_s: known(self.peak_window_s) }),
        }
    }

    /// One figure for a class (the job table's CPU, MEM and GPU columns): the sum over its
    /// devices, W; `None` when the node has none, or none of them could be measured.
    pub fn class_watts(&self, class: DeviceClass) -> Option<f64> {
        let by_index: BTreeMap<u32, f64> =
            self.domain_power.iter().filter_map(|(k, v)| Some((class.index_of(k)?, *v))).collect();
        known(sum_known(by_index.into_values()))
    }
}

impl JobTotalV1 {
    /// The sum of the total's figures of one class, W; `None` when none is known.
    pub fn class_watts(&self, class: DeviceClass) -> Option<f64> {
        let prefix = class.prefix();
        let watts = self.domain_power.iter().filter(|(k, _)| k.starts_with(prefix));
        known(sum_known(watts.map(|(_, v)| *v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_keys_are_written_and_read_one_way() {
        let d = DeviceKey { class: DeviceClass::Gpu, index: 10 };
        assert_eq!(d.to_string(), "gpu_power_10");
        assert_eq!(DeviceKey::parse("gpu_power_10"), Some(d));
        assert_eq!(DeviceKey::parse("gpu_power_010"), None);
        assert_eq!(DeviceKey::parse("peak_window_s"), None);
        let cpu2 = DeviceKey { class: DeviceClass::Cpu, index: 2 };
        assert!(cpu2 < DeviceKey { class: DeviceClass::Cpu, index: 10 });
        assert!(DeviceKey { class: DeviceClass::Cpu, index: 10 } < d);
    }

    #[test]
    fn figures_written_then_read_back_are_the_same() {
        let mut device_watts = BTreeMap::new();
        device_watts.insert(DeviceKey { class: DeviceClass::Cpu, index: 0 }, Some(150.0));
        device_watts.insert(DeviceKey { class: DeviceClass::Mem, index: 0 }, None);
        let f = JobFigures {
            coverage: Some(Coverage {
                start_unix_us: 5,
                end_unix_us: 2_000_005,
                samples: 3,
                complete: false,
            }),
            energy_joules: Some(300.0),
            node_power_watts: Some(150.0),
            device_watts,
            peak: Some(Peak { watts: 160.0, window_s: Some(1.0) }),
        };
        let r = JobResultV1::unanswered("n", "j").with_figures(&f);
        assert_eq!(r.domain_power["mem_power_0"], NOT_MEASURED);
        assert_eq!(r.data_presence, DataPresence::Partial);
        assert_eq!(r.figures(), f);
        let none = JobResultV1::unanswered("n", "j");
        assert_eq!(none.clone().with_figures(&none.figures()), none);
    }
}
