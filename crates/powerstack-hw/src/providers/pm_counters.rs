//! Linux pm_counters (stub: being written).
use crate::provider::{Probe, ProbeContext};
/// Probes `pm_counters`.
pub fn probe(_ctx: &ProbeContext<'_>) -> Probe { Probe::default() }
