//! Wire formats of powerstack: the only place output shapes are defined.
//!
//! - [`v1`]: native, versioned JSON documents (`powerstack.power.v1`, ...), with `serde`.
//! - [`agent`]: the node agent's health, job listing, begin answer, raw samples and error body.
//! - [`job`], [`job_csv`]: job results of one node and of many (JSON documents, and the CSV
//!   of `job query`).
//! - [`cap`]: the capping documents (`powerstack.cap.v1`, `powerstack.caps.v1`).
//! - [`pools`]: the frequency-pool documents (`powerstack.pools.v1`, `powerstack.pools-change.v1`).
//! - [`site`]: the site service's pushes, job records, reports and time series; [`site_table`]
//!   and [`site_csv`], a job report and a listing of jobs as tables and CSV; `plot` (feature
//!   `plot`), a job's node power over time as SVG or PNG; [`site_tasks`], the site's control
//!   tasks (power transitions and power limits on many nodes through their BMCs).
//! - [`measure`]: a command's run, measured (`powerstack.measure.v1`), as JSON, a table, CSV and
//!   Prometheus text.
//! - [`variorum`]: LLNL Variorum-compatible JSON (0.8 nested and the older flat form).
//! - [`openapi`]: what every service does to its generated OpenAPI document.
//! - [`prometheus`]: Prometheus text exposition.
//! - [`table`]: human tables.
//!
//! Architecture invariant: this crate turns [`powerstack_model`] values into text. It performs no
//! I/O, reads no clock and knows no hardware.

pub mod agent;
pub mod cap;
mod int;
pub mod job;
pub mod job_csv;
pub mod measure;
pub mod openapi;
#[cfg(feature = "plot")]
pub mod plot;
pub mod pools;
pub mod prometheus;
pub mod site;
pub mod site_bound;
pub mod site_csv;
pub mod site_history;
mod site_query;
pub mod site_table;
pub mod site_tasks;
pub mod table;
pub mod v1;
pub mod variorum;

pub use v1::Origin;
