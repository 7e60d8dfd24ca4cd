//! The interface every hardware source implements.

use powerstack_model::{DomainInfo, LimitWrite, RawEnergy};

use crate::error::{HwError, Warning};

/// One reading of one domain, as a provider returns it.
#[derive(Debug)]
pub enum Reading {
    /// A raw energy counter value (ticks of the domain's counter spec).
    Energy(RawEnergy),
    /// A power figure in watts (power-only sensors).
    Power(f64),
    /// The domain could not be read this time.
    Failed(HwError),
    /// Not read yet (the initial state of a reading buffer).
    Pending,
}

/// How a provider's values change, which decides how a sampler reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresh {
    /// Current at every read, and cheap to read (powercap, MSRs, hwmon): read at the sampler's
    /// rate.
    Continuous,
    /// Published by the hardware in steps about `period` apart (HPE Cray pm_counters at 10 Hz,
    /// NVML's total energy about every 100 ms), or slow to read (an NVML call takes milliseconds):
    /// read on a thread of its own, at its own pace, each value placed at the time it refers to.
    Stepped {
        /// The documented (or measured) update period.
        period: std::time::Duration,
    },
}

/// A source of power and energy readings: one kernel interface or vendor library.
///
/// A provider is built by its probe function (registered in a [`crate::Registry`]), which opens
/// what it needs once; [`Provider::read`] then only re-reads kept-open files. Providers are
/// synchronous and never panic on what the hardware returns. A provider may be defined outside
/// this crate (see [`crate::Source::External`]).
pub trait Provider: Send {
    /// The provider's name (`powercap`, `msr`, `nvml`, `hwmon`, `pm_counters`, or an external
    /// provider's [`crate::Source::External`] name).
    fn name(&self) -> &'static str;

    /// The domains this provider measures: its catalog. Fixed after probing.
    fn domains(&self) -> &[DomainInfo];

    /// Reads every domain. `out` has one slot per entry of [`Provider::domains`], in that order.
    fn read(&mut self, out: &mut [Reading]);

    /// How this provider's values change (see [`Refresh`]).
    fn refresh(&self) -> Refresh {
        Refresh::Continuous
    }

    /// Splits the provider into independent ones that can be read concurrently, one per device
    /// (a GPU's NVML call does not wait for another's), in catalog order, leaving this one
    /// without domains. Empty (the default) when it cannot be split: keep it whole.
    fn split(&mut self) -> Vec<Box<dyn Provider>> {
        Vec::new()
    }

    /// Looks whether the files this provider keeps open were replaced (a device registered again by
    /// its driver, a simulated root written again) or removed since it opened them, reopens the
    /// replaced ones and makes the removed ones fail as vanished. Returns the domains (positions
    /// in [`Provider::domains`]) whose readings now come from another file: their next value
    /// starts a new counter. A few `stat`s per file: the platform calls it only for a provider
    /// with a domain whose value has stopped changing or failing for a long time, never at every
    /// read. The default (nothing kept open that can be replaced) finds nothing.
    fn reopen_replaced(&mut self) -> Vec<usize> {
        Vec::new()
    }

    /// Re-reads the power limits of every domain (they can be changed by others at any time).
    /// Returns warnings for limits that could not be read; the catalog keeps the last known values.
    fn refresh_limits(&mut self) -> Vec<Warning> {
        Vec::new()
    }

    /// Writes one power limit of domain `index` (its position in [`Provider::domains`]) and
    /// re-reads that domain's limits into the catalog. Callers validate the value against the
    /// domain's range first; the provider refuses what the hardware cannot take (a locked limit, an
    /// unknown constraint) with an error and changes nothing in that case.
    fn write_limit(&mut self, index: usize, write: &LimitWrite) -> Result<(), HwError> {
        let what = self
            .domains()
            .get(index)
            .map(|d| format!("{} {}", d.id, write.constraint))
            .unwrap_or_else(|| write.constraint.clone());
        Err(HwError::Unsupported { provider: self.name(), what })
    }
}

/// What a provider's probe found: the provider (when it has at least one domain) and warnings for
/// what it could not use; or that the source is absent from the node.
#[derive(Default)]
pub struct Probe {
    /// The provider, when anything usable was found.
    pub provider: Option<Box<dyn Provider>>,
    /// What could not be used, and why.
    pub warnings: Vec<Warning>,
    /// Set when the source has nothing on this node (no device, driver, directory or library):
    /// why, in one line that says how to make it appear. Not a warning by itself: discovery makes
    /// it one only when no source found measures the node (see [`crate::discover_with`]).
    pub absent: Option<String>,
}

impl Probe {
    /// Nothing usable found, with these warnings.
    pub fn none(warnings: Vec<Warning>) -> Probe {
        Probe { provider: None, warnings, absent: None }
    }

    /// The source has nothing on this node, for this reason.
    pub fn absent(reason: impl Into<String>) -> Probe {
        Probe { provider: None, warnings: Vec::new(), absent: Some(reason.into()) }
    }

    /// The probe of a provider that was opened: what it found, or, when it found nothing and had
    /// nothing to say about it (no device at all), the source absent for `why`.
    pub fn opened<P: Provider + 'static>(
        (provider, warnings): (Option<P>, Vec<Warning>),
        why: impl FnOnce() -> String,
    ) -> Probe {
        if provider.is_none() && warnings.is_empty() {
            return Probe::absent(why());
        }
        Probe {
            provider: provider.map(|p| Box::new(p) as Box<dyn Provider>),
            warnings,
            absent: None,
        }
    }
}
