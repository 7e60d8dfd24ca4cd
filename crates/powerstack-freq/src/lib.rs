//! CPU frequency pools: reserved, shared and exclusive pools of CPUs, each with an optional
//! profile (min/max kHz, governor, EPP, per-core-type ranges, C-states), plus per package/die
//! uncore limits, applied through sysfs under a root.
//!
//! - [`topology`]: what the node has: CPUs (online/offline, package, die, core, SMT siblings,
//!   hybrid core types), cpufreq policies, cpuidle states, uncore domains, and the capability
//!   report.

pub mod topology;

pub use topology::{
    Capabilities, CoreType, CpuInfo, FreqTopology, IdleState, Policy, UncoreDomain, UncoreLayout,
};
