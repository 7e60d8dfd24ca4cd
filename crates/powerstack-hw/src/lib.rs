//! Hardware access under one root.
//!
//! Every hardware path is resolved under a [`Root`] (`/` on a real node, a simulated tree in tests).
//! Each hardware source is a [`Provider`] in its own module under [`providers`]: it is probed once
//! (opening what it needs and reporting what it could not use as [`Warning`]s, or that it is
//! absent from the node) and then read cheaply. Discovery probes the providers of a [`Registry`]
//! (the built-in ones, and any a caller adds from outside this crate) with one
//! [`ProviderOptions`]. A [`Platform`] joins the providers into one catalog of domains and extends
//! their energy counters; it names no provider. Every time is on one [`clock`].
//!
//! This crate is synchronous: no async runtime, no HTTP, no JSON.
//!
//! ```no_run
//! use powerstack_hw::{discover, Root, Selection};
//! let found = discover(&Root::system(), &Selection::Auto);
//! for w in &found.warnings { eprintln!("warning: {w}"); }
//! let mut platform = found.platform;
//! let report = platform.measure(std::time::Duration::from_millis(200));
//! if let Some(node) = report.node { println!("node: {:.1} W", node.watts); }
//! ```

pub mod clock;
pub mod discover;
pub mod error;
pub mod fault;
pub mod file;
pub mod numa;
pub mod platform;
pub mod provider;
pub mod providers;
pub mod root;
pub mod topology;

pub use discover::{
    DiscoverOptions, Discovery, Selection, SourceReport, SourceState, discover, discover_with,
};
pub use error::{HwError, Warning};
pub use platform::Platform;
pub use provider::{Probe, Provider, Reading, Refresh};
pub use providers::{ProbeContext, ProviderOptions, Registration, Registry, Source};
pub use root::Root;
pub use topology::CpuTopology;
