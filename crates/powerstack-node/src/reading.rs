//! One-shot readings of an opened node as documents, for the front ends that ask for one reading
//! at a time (the C library, Python): power over an interval, and the energy counters now.

use std::time::Duration;

use powerstack_api::v1::{EnergyV1, PowerV1};
use powerstack_model::Value;

use crate::open::OpenNode;

/// The extended energy of each domain of a snapshot, joules (`None` where the domain has no
/// counter or could not be read).
pub fn energies(values: &[Value]) -> Vec<Option<f64>> {
    values
        .iter()
        .map(|v| if let Value::Energy { joules, .. } = v { Some(*joules) } else { None })
        .collect()
}

impl OpenNode {
    /// The node's power over `interval` (`powerstack.power.v1`): two samples and ΔE/Δt between
    /// them ([`powerstack_hw::Platform::measure`]); the discovery warnings and what the samples
    /// could not read are its warnings.
    pub fn power(&mut self, interval: Duration) -> PowerV1 {
        let report = self.discovery.platform.measure(interval);
        let warnings = self.sampled_warnings();
        PowerV1::new(&self.origin, self.discovery.platform.catalog(), &report, &warnings)
    }

    /// The node's energy counters now (`powerstack.energy.v1`), extended since the node was
    /// opened.
    pub fn energy(&mut self) -> EnergyV1 {
        let snap = self.discovery.platform.sample();
        let joules = energies(&snap.values);
        let warnings = self.sampled_warnings();
        let catalog = self.discovery.platform.catalog();
        EnergyV1::new(&self.origin, catalog, &joules, snap.unix_us, &warnings)
    }

    /// The discovery warnings, then those of the last sample.
    fn sampled_warnings(&mut self) -> Vec<String> {
        let mut warnings = self.warnings.clone();
        let failed = self.discovery.platform.take_warnings();
        warnings.extend(failed.into_iter().map(|w| w.to_string()));
        warnings
    }
}
