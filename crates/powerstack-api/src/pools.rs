//! Native JSON, version 1, of the frequency-pool commands: `powerstack.pools.v1` (pools, the
//! values in sysfs and drift) and `powerstack.pools-change.v1` (what a change wrote).

use serde::{Deserialize, Serialize};

/// Schema name of [`PoolsV1`].
pub const POOLS_SCHEMA: &str = "powerstack.pools.v1";
/// Schema name of [`PoolsChangeV1`].
pub const POOLS_CHANGE_SCHEMA: &str = "powerstack.pools-change.v1";

/// `powerstack pools show`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolsV1 {
    /// Which document, and which node it speaks of.
    #[serde(flatten)]
    pub header: crate::v1::HeaderV1,
    /// Whether a configuration is in force (applied and not reset).
    pub configured: bool,
    /// What the node supports: (feature, status).
    pub capabilities: Vec<(String, String)>,
    /// The pools.
    pub pools: Vec<PoolV1>,
    /// Every cpufreq policy with the values in sysfs.
    pub policies: Vec<PolicyStateV1>,
    /// Uncore domains with the values in sysfs.
    pub uncore: Vec<UncoreStateV1>,
    /// Settings that differ from the configuration in force (changed outside powerstack).
    pub drift: Vec<DriftV1>,
    /// Anything worth knowing.
    pub warnings: Vec<String>,
}

/// A pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolV1 {
    /// `reserved`, `shared`, or the exclusive pool's name.
    pub name: String,
    /// `reserved`, `shared`, `exclusive`.
    pub kind: String,
    /// Its CPUs, as a CPU list.
    pub cpus: String,
    /// Its profile.
    pub profile: Option<String>,
}

/// A cpufreq policy as sysfs has it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyStateV1 {
    /// N of policyN.
    pub policy: u32,
    /// Its CPUs.
    pub cpus: String,
    /// The pool of its CPUs.
    pub pool: Option<String>,
    /// Core type (`uniform`, `p_core`, `e_core`).
    pub core_type: String,
    /// scaling_governor.
    pub governor: Option<String>,
    /// scaling_min_freq, kHz.
    pub min_khz: Option<u64>,
    /// scaling_max_freq, kHz.
    pub max_khz: Option<u64>,
    /// energy_performance_preference.
    pub epp: Option<String>,
    /// Disabled C-states of its first CPU.
    pub disabled_cstates: Vec<String>,
}

/// An uncore domain as sysfs has it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UncoreStateV1 {
    /// Directory name.
    pub name: String,
    /// Package.
    pub package: u32,
    /// min_freq_khz.
    pub min_khz: Option<u64>,
    /// max_freq_khz.
    pub max_khz: Option<u64>,
}

/// One setting that is not what the configuration in force says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftV1 {
    /// What (`policy3 scaling_max_freq`).
    pub what: String,
    /// In sysfs now.
    pub actual: String,
    /// Configured.
    pub expected: String,
}

/// What `pools apply|reset|create|delete|move|set-profile` wrote (or, with `--dry-run`, would).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolsChangeV1 {
    /// Which document, and which node it speaks of.
    #[serde(flatten)]
    pub header: crate::v1::HeaderV1,
    /// The command.
    pub command: String,
    /// Nothing was written.
    pub dry_run: bool,
    /// The writes, in order.
    pub writes: Vec<SettingWriteV1>,
    /// The pools after the change.
    pub pools: Vec<PoolV1>,
    /// Settings restored because a previous run had died part way.
    pub recovered: Vec<String>,
}

/// One write.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SettingWriteV1 {
    /// What (`policy3 scaling_max_freq`).
    pub what: String,
    /// The attribute, relative to the root.
    pub path: String,
    /// Before.
    pub before: String,
    /// After.
    pub after: String,
}
