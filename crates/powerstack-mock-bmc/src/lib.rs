//! A mock Redfish BMC for powerstack's tests.
//!
//! [`MockBmc::start`] serves a [`Tree`] of Redfish documents (from a directory of mockup
//! `index.json` files, such as the DMTF mockups, built in memory, or one of the built-in trees
//! [`Tree::dmtf_controls`], [`Tree::legacy_power`], [`Tree::hpe_cray_ex`]) on `127.0.0.1:0` and
//! tells its address ([`Background`]: on a runtime of its own, for tests that are not async).
//! `GET` answers carry an `ETag` and `OData-Version`; an unknown path is a 404
//! with a Redfish error body. Credentials are checked as basic auth or a session
//! ([`SESSIONS`]: `X-Auth-Token`, expiring after a number of requests or on demand). `PATCH`
//! checks `If-Match` (412, and 428 when required), merges only writable properties (400
//! otherwise), checks ranges (400), and makes the change at once, after a task monitor
//! completes, or at the next reset ([`LimitTiming`]). `POST` of `ComputerSystem.Reset` honours
//! the allowed reset types (400 otherwise) and drives a power state machine per system. Every
//! request other than GET is recorded ([`MockBmc::recorded`]). [`Faults`] are the knobs for what
//! a real BMC does wrong: a delay, 503s with `Retry-After`, 500s, malformed JSON, an ETag that
//! changes under the client or is missing, and requests never answered ([`Hang`]).
//!
//! One mock is one listener and one small shared state: a thousand run in one process.
//!
//! A document that holds only an `error` object (a captured answer to a missing resource, as in
//! the HPE Cray EX235a capture) is served as a 404 with that body.

mod background;
mod builtin;
mod power;
mod serve;
mod sessions;
mod state;
mod tree;
mod write;

pub use background::Background;
pub use builtin::BUILTIN_TREES;
pub use power::RESET_SUFFIX;
pub use serve::MockBmc;
pub use sessions::SESSIONS;
pub use state::{Faults, Hang, LimitTiming, Options, Recorded};
pub use tree::Tree;
pub use write::TASK_MONITORS;

/// What went wrong loading a tree or starting the server.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// A mockup file could not be read.
    #[error("cannot read mockup file {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A mockup file is not JSON.
    #[error("mockup file {path} is not JSON: {source}")]
    Json {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// The listening socket could not be opened.
    #[error("cannot listen on 127.0.0.1: {0}")]
    Listen(std::io::Error),
    /// The runtime of a [`Background`] mock could not be started.
    #[error("cannot start the mock's runtime: {0}")]
    Runtime(std::io::Error),
}
