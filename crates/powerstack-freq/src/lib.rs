//! CPU frequency pools: reserved, shared and exclusive pools of CPUs, each with an optional
//! profile (min/max kHz, governor, EPP, per-core-type ranges, C-states), plus per package/die
//! uncore limits, applied through sysfs under a root.
//!
//! - [`topology`]: what the node has: CPUs (online/offline, package, die, core, SMT siblings,
//!   hybrid core types), cpufreq policies, cpuidle states, uncore domains, and the capability
//!   report.
//! - [`config`]: the pools file (TOML).
//! - [`edit`]: the rules for editing the file in force (create, delete, move, set a profile).
//! - [`plan`]: validation of a whole file against the node and the pool rules, and the exact
//!   writes in a safe order (nothing is written when anything is wrong).
//! - [`apply`]: a session that journals originals, writes, reads back, rolls back on failure,
//!   shows drift, and resets to boot-time settings.
//!
//! What the Intel Power Optimization Library got wrong, and this crate does instead: every write
//! is read back and a failure restores what was already written; kHz everywhere; C-states not
//! named keep their boot-time value and are restored; one lock, no lock-order deadlock; boot-time
//! settings are journaled before the first write; every CPU, policy and C-state list is read, not
//! only cpu0's; offline CPUs and hybrid parts come from the kernel's own data.

pub mod apply;
pub mod config;
pub mod edit;
pub mod plan;
pub mod topology;

use std::path::PathBuf;

pub use apply::{Applied, Live, Pools, STORED_FILE};
pub use config::{ExclusivePool, KhzRange, PoolsFile, ProfileSpec, UncoreSpec};
pub use edit::ProfileRequest;
pub use plan::{Assignment, Plan, PoolRef, State, Write};
pub use topology::{
    Capabilities, CoreType, CpuInfo, FreqTopology, IdleState, Policy, UncoreDomain, UncoreLayout,
    discover,
};

/// An error of frequency-pool operations; one line, naming the pool, CPU or field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FreqError {
    /// The pools file is malformed.
    #[error("pools file: {0}")]
    Config(String),
    /// The file or request is not valid for this node or breaks a pool rule.
    #[error("{0}")]
    Invalid(String),
    /// The kernel did not take a value.
    #[error("{what}: wrote {wrote:?} but read back {read:?}: the kernel refused it")]
    ReadBack {
        /// The attribute.
        what: String,
        /// Written.
        wrote: String,
        /// Read back.
        read: String,
    },
    /// A write failed.
    #[error("{what}: {source}")]
    Hardware {
        /// The attribute.
        what: String,
        /// The error.
        #[source]
        source: powerstack_hw::HwError,
    },
    /// A failure part way; what was already written has been restored (or not).
    #[error("{cause}; {rollback}")]
    RolledBack {
        /// The failure.
        cause: Box<FreqError>,
        /// What the rollback did.
        rollback: String,
    },
    /// A stop was asked (SIGINT, SIGTERM) during a write session; what had been written was
    /// restored (or could not be).
    #[error("stopped before the next write; {rollback}")]
    Stopped {
        /// What the rollback did.
        rollback: String,
    },
    /// The journal.
    #[error(transparent)]
    Journal(#[from] powerstack_cap::CapError),
    /// A state file that could not be read.
    #[error(transparent)]
    File(#[from] powerstack_file::FileError),
    /// The state directory.
    #[error("{path}: {detail}")]
    State {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}
