//! The registry: which providers discovery probes, in which order, and how.

use std::sync::Arc;

use powerstack_model::DomainKind;

use super::{ProbeContext, Source, hwmon, msr, nvml, pm_counters, powercap};
use crate::provider::Probe;

/// A provider's probe: opens what the provider needs under the context's root (see
/// [`crate::provider::Provider`]). A closure, so that a provider registered from outside can
/// carry its own settings.
pub type ProbeFn = dyn Fn(&ProbeContext<'_>) -> Probe + Send + Sync;

/// One provider discovery may probe.
#[derive(Clone)]
pub struct Registration {
    /// Its name (`--source`, output, warnings).
    pub source: Source,
    /// Its probe.
    pub probe: Arc<ProbeFn>,
    /// When set, under [`crate::Selection::Auto`], it is not probed if a provider before it
    /// already measures a domain of this kind (RAPL MSRs stand in for powercap's packages).
    pub unless_measured: Option<DomainKind>,
}

impl Registration {
    /// A provider probed by `probe`.
    pub fn new(
        source: Source,
        probe: impl Fn(&ProbeContext<'_>) -> Probe + Send + Sync + 'static,
    ) -> Registration {
        Registration { source, probe: Arc::new(probe), unless_measured: None }
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("source", &self.source)
            .field("unless_measured", &self.unless_measured)
            .finish_non_exhaustive()
    }
}

/// The providers discovery probes, in priority order: when two measure the same domain, the
/// first one's entry is kept. [`Registry::default`] is [`Registry::builtin`].
#[derive(Clone, Debug)]
pub struct Registry {
    entries: Vec<Registration>,
}

impl Registry {
    /// Every provider of this crate, in priority order.
    pub fn builtin() -> Registry {
        let msr = Registration {
            unless_measured: Some(DomainKind::Package),
            ..Registration::new(Source::Msr, msr::probe)
        };
        Registry {
            entries: vec![
                Registration::new(Source::Powercap, powercap::probe),
                msr,
                Registration::new(Source::Nvml, nvml::probe),
                Registration::new(Source::PmCounters, pm_counters::probe),
                Registration::new(Source::Hwmon, hwmon::probe),
            ],
        }
    }

    /// This registry with `registration` added: in place of the one of the same source, if any,
    /// else last (the lowest priority).
    pub fn with(mut self, registration: Registration) -> Registry {
        match self.entries.iter_mut().find(|r| r.source == registration.source) {
            Some(r) => *r = registration,
            None => self.entries.push(registration),
        }
        self
    }

    /// The registrations, in priority order.
    pub fn entries(&self) -> &[Registration] {
        &self.entries
    }

    /// The registration of `source`.
    pub fn get(&self, source: Source) -> Option<&Registration> {
        self.entries.iter().find(|r| r.source == source)
    }

    /// The priority of `source`: its position (`usize::MAX` when it is not registered).
    pub fn position(&self, source: Source) -> usize {
        self.entries.iter().position(|r| r.source == source).unwrap_or(usize::MAX)
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::builtin()
    }
}
