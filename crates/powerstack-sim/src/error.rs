//! Errors of the simulator.

use std::io;
use std::path::{Path, PathBuf};

use powerstack_model::DomainId;

/// An error creating, opening or animating a simulated root. Messages are one line and name the
/// path or the value at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A file or directory of the simulated tree could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// `create` was pointed at a directory that holds something other than a simulated root.
    #[error(
        "{path} is not empty and is not a powerstack-sim root (it has no powerstack-sim.toml): refusing to write a simulated tree into it; choose an absent or empty directory"
    )]
    NotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// `create` was pointed at a simulated root: readers (an agent, `sim run`) may keep its files
    /// open, and writing a new tree under them would leave them reading the old one.
    #[error(
        "{path} already holds a simulated root: remove it first (`rm -r {path}`, once no `powerstack sim run` or agent uses it) or choose an absent or empty directory"
    )]
    AlreadyCreated {
        /// The directory.
        path: PathBuf,
    },
    /// `create` was pointed at a simulated root that a `sim run` animates.
    #[error(
        "{path} is a simulated root that a running `powerstack sim run` animates: stop it (and any agent reading the root), remove the directory, then create again; or choose an absent or empty directory"
    )]
    Animated {
        /// The directory.
        path: PathBuf,
    },
    /// A second animation of a root that one already animates.
    #[error(
        "{path} is already animated by another `powerstack sim run`: stop that one first (two would fight over every file)"
    )]
    AlreadyAnimated {
        /// The directory.
        path: PathBuf,
    },
    /// The path exists and is not a directory.
    #[error("{path} exists and is not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// `open` found no usable `powerstack-sim.toml`.
    #[error("{path} is not a usable powerstack-sim root description: {detail}")]
    BadConfig {
        /// The `powerstack-sim.toml` file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A counter file of the tree does not hold what the simulator wrote there.
    #[error("malformed content in {path}: {detail}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// An unknown profile name.
    #[error("unknown profile {0:?}: expected one of {names}", names = crate::Profile::names())]
    UnknownProfile(String),
    /// An NVIDIA GPU profile: the mock NVML library was not found (or the path given is not a
    /// file).
    #[error(
        "the NVIDIA GPU profiles need the mock NVML library libpowerstack_mock_nvml.so{detail}: build it with `cargo build -p powerstack-mock-nvml` (cargo test --workspace builds it), or set POWERSTACK_MOCK_NVML"
    )]
    NvmlLibraryNotFound {
        /// What was looked at, when something specific (` (/x/y is not a file)`), else empty.
        detail: String,
    },
    /// An unknown mock NVML latency name.
    #[error("unknown NVML latency {0:?}: expected h200 or off")]
    UnknownNvmlLatency(String),
    /// An unknown load pattern name.
    #[error("unknown load pattern {0:?}: expected one of steady, sine, steps")]
    UnknownPattern(String),
    /// A load outside 0..=1.
    #[error("invalid load {0}: expected a number from 0 (idle) to 1 (full power)")]
    InvalidLoad(f64),
    /// A pm_counters fault that cannot be parsed or is out of range.
    #[error("invalid pm_counters fault {0}")]
    InvalidPmFault(String),
    /// An option out of its range.
    #[error("invalid option {0}")]
    InvalidOption(String),
    /// The profile does not simulate this domain (or it was removed).
    #[error("{root}: the {profile} simulation has no domain {domain}")]
    NoDomain {
        /// The simulated root.
        root: PathBuf,
        /// The profile.
        profile: &'static str,
        /// The domain asked for.
        domain: DomainId,
    },
    /// The operation does not apply to this domain or profile.
    #[error("{root}: {what} is not possible in the {profile} simulation")]
    Unsupported {
        /// The simulated root.
        root: PathBuf,
        /// The profile.
        profile: &'static str,
        /// What was asked.
        what: String,
    },
}

impl SimError {
    pub(crate) fn io(path: &Path, source: io::Error) -> SimError {
        SimError::Io { path: path.to_path_buf(), source }
    }

    pub(crate) fn malformed(path: &Path, detail: impl Into<String>) -> SimError {
        SimError::Malformed { path: path.to_path_buf(), detail: detail.into() }
    }
}
