//! Linux powercap RAPL zones (stub: being written).
use crate::provider::{Probe, ProbeContext};
/// Probes `/sys/class/powercap`.
pub fn probe(_ctx: &ProbeContext<'_>) -> Probe { Probe::default() }
