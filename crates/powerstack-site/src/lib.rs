//! The site service: the site level's memory. Agents push their streams of cumulative counters
//! ([`store::Store::ingest`]); the scheduler's hooks record jobs; a job's report is computed
//! from the stored counters with the same arithmetic as the agents' ([`powerstack_job`]), kept
//! per node once its samples reach past the job's end ([`report`]); everything is in SQLite (one
//! embedded file, the default) or PostgreSQL (production, several replicas), through [`db::Db`].
//! [`http`] is the API, [`access`] who may use it, [`tls`] its TLS, [`serve`] starts and stops it
//! all. [`tasks`] runs control tasks (power transitions and limits through BMCs) through the
//! [`control`] seam; [`telemetry`] reads the power of nodes without an agent through their BMCs
//! and stores it as their streams.

pub mod access;
pub mod bound;
pub mod clock;
pub mod config;
pub mod control;
pub mod db;
pub mod error;
pub mod history;
pub mod http;
pub mod report;
pub mod serve;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod tls;

pub use config::SiteConfig;
pub use serve::{Ready, Running, start, start_with_control};
pub use store::StoreError;
