//! The providers, one module each, and the one list that registers them.
//!
//! Adding a provider: write `providers/NAME.rs` with a `pub fn probe(&ProbeContext) -> Probe`, add
//! one line to [`REGISTRY`] (its position is its priority when two providers measure the same
//! domain), and one variant to [`Source`]. Nothing else names providers.

use crate::provider::{Probe, ProbeContext};

pub mod hwmon;
pub mod msr;
pub mod nvml;
pub mod pm_counters;
pub mod powercap;

/// A hardware source that can be asked for by name (`--source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// Linux powercap (`/sys/class/powercap`, `intel-rapl` zones).
    Powercap,
    /// RAPL model-specific registers (`/dev/cpu/N/msr_safe` or `msr`).
    Msr,
    /// NVIDIA GPUs through NVML (`libnvidia-ml.so.1`, loaded at run time).
    Nvml,
    /// HPE Cray `/sys/cray/pm_counters`.
    PmCounters,
    /// Linux hwmon (`/sys/class/hwmon`).
    Hwmon,
}

impl Source {
    /// Every source.
    pub const ALL: [Source; 5] =
        [Source::Powercap, Source::Msr, Source::Nvml, Source::PmCounters, Source::Hwmon];

    /// The name used on the command line and in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Powercap => "powercap",
            Source::Msr => "msr",
            Source::Nvml => "nvml",
            Source::PmCounters => "pm_counters",
            Source::Hwmon => "hwmon",
        }
    }
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Source::ALL.into_iter().find(|x| x.as_str() == s).ok_or_else(|| {
            format!("unknown source {s:?}: expected auto or a comma-separated list of powercap, msr, nvml, pm_counters, hwmon")
        })
    }
}

/// One registered provider.
pub struct Registration {
    /// Which source it is.
    pub source: Source,
    /// Its probe.
    pub probe: fn(&ProbeContext<'_>) -> Probe,
}

/// Every provider, in priority order.
pub const REGISTRY: &[Registration] = &[
    Registration { source: Source::Powercap, probe: powercap::probe },
    Registration { source: Source::Msr, probe: msr::probe },
    Registration { source: Source::Nvml, probe: nvml::probe },
    Registration { source: Source::PmCounters, probe: pm_counters::probe },
    Registration { source: Source::Hwmon, probe: hwmon::probe },
];
