//! The providers, one module each; their options; and the built-in registry.
//!
//! Adding a provider: write `providers/NAME.rs` (or `providers/NAME/mod.rs`) with a
//! `pub fn probe(&ProbeContext) -> Probe`, add one line to [`Registry::builtin`] (its position is
//! its priority when two providers measure the same domain) and one variant to [`Source`]; when it
//! takes options, one field of [`ProviderOptions`] (its own options type, in its module), set by
//! whoever parses them. Nothing else names providers.
//!
//! A provider defined outside this crate is registered the same way, on a [`Registry`] handed to
//! discovery ([`crate::DiscoverOptions::registry`]), under [`Source::External`].

use crate::root::Root;
use crate::topology::CpuTopology;

pub mod hwmon;
pub mod msr;
pub mod nvml;
pub mod pm_counters;
pub mod powercap;
mod registry;

pub use registry::{ProbeFn, Registration, Registry};

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
    /// A provider registered from outside this crate (see [`Registry::with`]), by its name.
    External(&'static str),
}

impl Source {
    /// Every built-in source.
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
            Source::External(name) => name,
        }
    }
}

impl std::str::FromStr for Source {
    type Err = String;
    /// Parses the name of a built-in source.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Source::ALL.into_iter().find(|x| x.as_str() == s).ok_or_else(|| {
            format!("unknown source {s:?}: expected auto or a comma-separated list of powercap, msr, nvml, pm_counters, hwmon")
        })
    }
}

/// The options of the providers, one field per provider that takes any: built once by whoever
/// parses them (the command line, the agent's configuration) and handed whole to discovery, which
/// gives them to every probe through [`ProbeContext::options`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderOptions {
    /// The `nvml` provider's.
    pub nvml: nvml::NvmlOptions,
}

/// The options of a [`ProbeContext::new`]: every provider's defaults.
static DEFAULT_OPTIONS: ProviderOptions =
    ProviderOptions { nvml: nvml::NvmlOptions { library: None } };

/// Everything a probe may look at.
pub struct ProbeContext<'a> {
    /// The hardware root.
    pub root: &'a Root,
    /// The CPU topology, discovered first.
    pub topology: &'a CpuTopology,
    /// The providers' options.
    pub options: &'a ProviderOptions,
}

impl<'a> ProbeContext<'a> {
    /// A context with default options.
    pub fn new(root: &'a Root, topology: &'a CpuTopology) -> Self {
        ProbeContext { root, topology, options: &DEFAULT_OPTIONS }
    }

    /// A context with these options.
    pub fn with_options(
        root: &'a Root,
        topology: &'a CpuTopology,
        options: &'a ProviderOptions,
    ) -> Self {
        ProbeContext { root, topology, options }
    }
}
