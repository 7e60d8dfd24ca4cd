//! Reading the node: power over an interval and energy now, as values and as the native
//! documents (`powerstack.power.v1`, `powerstack.energy.v1`), for the C library and the bindings;
//! the CLI's `power --count`/`energy --count` loops use the same pieces.

use std::ops::RangeInclusive;
use std::time::Duration;

use powerstack_api::v1::{EnergyV1, PowerV1};
use powerstack_model::PowerReport;

use crate::open::OpenNode;

/// The intervals a power reading may be taken over: 1 ms to 1 h.
pub const READ_INTERVAL: RangeInclusive<Duration> =
    Duration::from_millis(1)..=Duration::from_secs(3600);

/// The node's discovery warnings followed by what the last sample could not read.
pub(crate) fn warnings(node: &mut OpenNode) -> Vec<String> {
    let failed = node.discovery.platform.take_warnings();
    node.warnings.iter().cloned().chain(failed.into_iter().map(|w| w.to_string())).collect()
}

/// Power of every domain over `interval` ([`powerstack_hw::Platform::measure`]: never a
/// first-call 0 W) and its document.
pub fn power(node: &mut OpenNode, interval: Duration) -> (PowerReport, PowerV1) {
    let report = node.discovery.platform.measure(interval);
    let warnings = warnings(node);
    let doc = PowerV1::new(&node.origin, node.discovery.platform.catalog(), &report, &warnings);
    (report, doc)
}

/// The energy counter of every domain now, in joules (`None` where there is none or it could not
/// be read), and its document.
pub fn energy(node: &mut OpenNode) -> (Vec<Option<f64>>, EnergyV1) {
    let snap = node.discovery.platform.sample();
    let joules = snap.joules();
    let warnings = warnings(node);
    let catalog = node.discovery.platform.catalog();
    let doc = EnergyV1::new(&node.origin, catalog, &joules, snap.unix_us, &warnings);
    (joules, doc)
}
