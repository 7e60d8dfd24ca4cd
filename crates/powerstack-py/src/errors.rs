//! The libraries' errors as the package's exceptions (`powerstack/errors.py`): each failure is
//! one of a few kinds, raised as that class with the library's one-line message.

use powerstack_cap::CapError;
use powerstack_client::fanout::TargetsError;
use powerstack_client::site::SiteError;
use powerstack_node::cap_session::SessionError;
use powerstack_node::open::OpenError;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// The kinds of failure, each a class of `powerstack.errors`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An argument that cannot be used (`InvalidArgument`, a `ValueError`).
    Invalid,
    /// A cap refused by validation before anything was written (`CapRefused`, a `ValueError`).
    Refused,
    /// The node has no such source, domain or data (`Unavailable`).
    Unavailable,
    /// The hardware or the state directory could not be read or written (`HardwareError`, an
    /// `OSError`).
    Hardware,
    /// An agent or the site could not be reached or answered an error (`RemoteError`).
    Remote,
}

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Kind::Invalid => "InvalidArgument",
            Kind::Refused => "CapRefused",
            Kind::Unavailable => "Unavailable",
            Kind::Hardware => "HardwareError",
            Kind::Remote => "RemoteError",
        }
    }
}

/// A failed call: its kind and its one-line message.
#[derive(Debug)]
pub struct Failure {
    /// Which exception it raises.
    pub kind: Kind,
    /// What went wrong and what to do.
    pub message: String,
}

impl Failure {
    /// A failure of `kind` saying `message`.
    pub fn new(kind: Kind, message: impl Into<String>) -> Failure {
        Failure { kind, message: message.into() }
    }

    /// An argument that cannot be used.
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(Kind::Invalid, message)
    }
}

impl From<Failure> for PyErr {
    fn from(f: Failure) -> PyErr {
        Python::attach(|py| {
            let made = py
                .import("powerstack.errors")
                .and_then(|m| m.getattr(f.kind.class_name()))
                .and_then(|class| class.call1((f.message.clone(),)));
            match made {
                Ok(exception) => PyErr::from_value(exception),
                // Only when the native module is used without its package.
                Err(_) => PyRuntimeError::new_err(f.message),
            }
        })
    }
}

impl From<OpenError> for Failure {
    fn from(e: OpenError) -> Failure {
        let kind = match e {
            OpenError::Invalid(_) => Kind::Invalid,
            OpenError::NothingReadable { .. } => Kind::Unavailable,
            OpenError::Simulator(_) => Kind::Hardware,
        };
        Failure::new(kind, e.to_string())
    }
}

impl From<SessionError> for Failure {
    fn from(e: SessionError) -> Failure {
        let kind = match &e {
            SessionError::NotOnNode(_) => Kind::Unavailable,
            SessionError::Unmeasured(_) | SessionError::NotRestored { .. } => Kind::Hardware,
            SessionError::Cap(c) => match c {
                CapError::Invalid { .. }
                | CapError::OutOfRange { .. }
                | CapError::BelowMinimum { .. }
                | CapError::TimeWindow { .. }
                | CapError::ShortBelowLong { .. }
                | CapError::Locked { .. }
                | CapError::Allocation(_)
                | CapError::AboveNodeMaximum { .. } => Kind::Refused,
                CapError::NoSuchControl { .. } => Kind::Unavailable,
                _ => Kind::Hardware,
            },
        };
        Failure::new(kind, e.to_string())
    }
}

impl From<SiteError> for Failure {
    fn from(e: SiteError) -> Failure {
        let kind = match e {
            SiteError::InvalidUrl { .. } => Kind::Invalid,
            _ => Kind::Remote,
        };
        Failure::new(kind, e.to_string())
    }
}

impl From<TargetsError> for Failure {
    fn from(e: TargetsError) -> Failure {
        Failure::invalid(e.to_string())
    }
}

/// A document as JSON text, for the Python layer to parse.
pub fn json<T: serde::Serialize>(doc: &T) -> Result<String, Failure> {
    serde_json::to_string(doc)
        .map_err(|e| Failure::new(Kind::Hardware, format!("encoding JSON: {e}")))
}
