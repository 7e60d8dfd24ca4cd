//! The simulated cluster of `powerstack sim cluster`: a trace of jobs (docs/traces/) on modelled
//! nodes, run in virtual time under a site power bound through the site's own control step
//! ([`powerstack_bound::Controller`]) and the agent's own node-cap split
//! ([`powerstack_cap::allocate`]), so that the policies are measured as they run at a site.
//!
//! - [`trace`]: the trace format (TOML) and its checks;
//! - [`model`]: a node's domains, what each phase of a job asks of them, its speed under a cap;
//! - [`run`]: one run in virtual time (ticks, control periods, first-come first-served placing);
//! - [`study`]: the uncapped run, then each policy, and the figures that compare them.
//!
//! No I/O, no clock: the caller reads the trace and prints the figures.

pub mod model;
pub mod run;
pub mod study;
pub mod trace;

pub use run::{Config, Outcome, RunError, run};
pub use study::{BoundSpec, PolicyFigures, Study, StudyConfig, Uncapped, study};
pub use trace::{Trace, TraceError};
