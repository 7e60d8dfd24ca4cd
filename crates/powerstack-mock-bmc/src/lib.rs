//! A mock Redfish BMC for powerstack's tests.
//!
//! [`MockBmc::start`] serves a [`Tree`] of Redfish documents (from a directory of mockup
//! `index.json` files, such as the DMTF mockups, or built in memory) on `127.0.0.1:0` and tells
//! its address. Every `GET` answer carries an `ETag` (a hash of the body) and `OData-Version`;
//! an unknown path is a 404 with a Redfish error body; basic auth is checked when credentials are
//! set. [`Faults`] are the knobs for what a real BMC does wrong: a delay on every request, a
//! number of 503 answers with `Retry-After`, paths answered with malformed JSON or as missing.
//!
//! A document that holds only an `error` object (a captured answer to a missing resource, as in
//! the HPE Cray EX235a capture) is served as a 404 with that body.

mod serve;
mod tree;

pub use serve::{Faults, MockBmc, Options};
pub use tree::Tree;

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
}
