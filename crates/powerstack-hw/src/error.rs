//! Errors of the hardware layer.

use std::io;
use std::path::{Path, PathBuf};

/// An error reading or writing hardware. Messages are one line and say what to do where there is
/// something to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HwError {
    /// The file exists but this process may not read it.
    #[error("permission denied reading {}: run as root, or grant read access to it{}", .path.display(), advice(.hint))]
    PermissionDenied {
        /// The file.
        path: PathBuf,
        /// What kind of file it is (`energy_uj`, `msr`, ...), for the advice.
        hint: &'static str,
    },
    /// The file or device is not there (any more).
    #[error(
        "{path} is not there: the device is absent or was removed, or its driver is not loaded"
    )]
    Vanished {
        /// The file.
        path: PathBuf,
    },
    /// The file's content is not what its ABI says.
    #[error("malformed content in {path}: {detail}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// Any other I/O error.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The provider cannot write this control.
    #[error("{what} cannot be set through {provider}")]
    Unsupported {
        /// The provider.
        provider: &'static str,
        /// What was asked.
        what: String,
    },
    /// The control is locked (BIOS lock bit, read-only attribute) and cannot be changed.
    #[error("{what} is locked ({why}); it cannot be changed until the lock is cleared")]
    Locked {
        /// The control.
        what: String,
        /// Why it is locked.
        why: String,
    },
    /// The hardware or driver refused the value.
    #[error("{what}: the hardware refused {value}: {detail}")]
    Refused {
        /// The control.
        what: String,
        /// The value written.
        value: String,
        /// What the hardware said.
        detail: String,
    },
    /// A register or file could not be read consistently (the hardware kept updating it).
    #[error("{path} kept changing while being read; gave up after {attempts} attempts")]
    Unstable {
        /// The file or directory.
        path: PathBuf,
        /// How many attempts were made.
        attempts: u32,
    },
}

/// Extra advice for a permission error on a kind of file.
fn advice(hint: &str) -> &'static str {
    if hint == "energy_uj" {
        " (energy_uj is root-only on kernels with the 2020 PLATYPUS fix; a udev rule or `chmod o+r` opens it)"
    } else if hint.starts_with("msr") {
        " (or use msr-safe with an allowlist)"
    } else {
        ""
    }
}

impl HwError {
    /// Classifies an I/O error on `path`.
    pub fn from_io(path: &Path, err: io::Error, hint: &'static str) -> HwError {
        match err.kind() {
            io::ErrorKind::PermissionDenied => {
                HwError::PermissionDenied { path: path.to_path_buf(), hint }
            }
            io::ErrorKind::NotFound => HwError::Vanished { path: path.to_path_buf() },
            _ if err.raw_os_error() == Some(libc::ENODEV)
                || err.raw_os_error() == Some(libc::ENXIO) =>
            {
                HwError::Vanished { path: path.to_path_buf() }
            }
            _ => HwError::Io { path: path.to_path_buf(), source: err },
        }
    }

    /// A copy of the error, for reporting one failure on several domains (`io::Error` is not
    /// `Clone`; its kind and message are kept).
    pub fn duplicate(&self) -> HwError {
        match self {
            HwError::PermissionDenied { path, hint } => {
                HwError::PermissionDenied { path: path.clone(), hint }
            }
            HwError::Vanished { path } => HwError::Vanished { path: path.clone() },
            HwError::Malformed { path, detail } => {
                HwError::Malformed { path: path.clone(), detail: detail.clone() }
            }
            HwError::Io { path, source } => HwError::Io {
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            HwError::Unsupported { provider, what } => {
                HwError::Unsupported { provider, what: what.clone() }
            }
            HwError::Locked { what, why } => {
                HwError::Locked { what: what.clone(), why: why.clone() }
            }
            HwError::Refused { what, value, detail } => HwError::Refused {
                what: what.clone(),
                value: value.clone(),
                detail: detail.clone(),
            },
            HwError::Unstable { path, attempts } => {
                HwError::Unstable { path: path.clone(), attempts: *attempts }
            }
        }
    }

    /// A malformed-content error.
    pub fn malformed(path: &Path, detail: impl Into<String>) -> HwError {
        HwError::Malformed { path: path.to_path_buf(), detail: detail.into() }
    }
}

/// Something discovery could not use, and why. Warnings never stop discovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The provider that noticed it.
    pub provider: &'static str,
    /// One line for people.
    pub message: String,
    /// Whether a domain that is present could not be read (permission, malformed or vanished
    /// file), as opposed to a feature that is simply absent or not used. Commands report readings
    /// with such warnings as partial.
    pub unreadable: bool,
}

impl Warning {
    /// A warning from `provider` about something absent or not used.
    pub fn new(provider: &'static str, message: impl Into<String>) -> Self {
        Warning { provider, message: message.into(), unreadable: false }
    }

    /// A warning from `provider` about a present domain that could not be read.
    pub fn unreadable(provider: &'static str, message: impl Into<String>) -> Self {
        Warning { provider, message: message.into(), unreadable: true }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.provider, self.message)
    }
}
