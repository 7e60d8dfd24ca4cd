//! The site's store: nodes and their streams, samples and per-minute rollups, jobs and their
//! nodes, what the power bound reads (nodes' control URLs, running jobs' requests), over either
//! database ([`Db`]). Every write is one transaction; every check that decides whether a write
//! happens runs inside it, so two replicas on one PostgreSQL never disagree.

use std::str::FromStr;
use std::sync::Arc;

use powerstack_api::site::StreamDomainV1;
use powerstack_job::Column;
use powerstack_job::figures::node_parts;
use powerstack_model::DomainKind;
use tokio::sync::Mutex;

use crate::db::{Db, on_db};

pub use crate::error::StoreError;

mod bmc_leases;
mod bound;
mod ingest;
mod jobs;
pub mod partitions;
pub mod rollup;
mod samples;
mod site_bound;
mod streams;
mod task_work;
mod tasks;

pub use bound::BoundJobRow;
pub use ingest::queue::Ingester;
pub use ingest::{BatchIn, IngestLimits, MINUTE_US, copy_payload};
pub use jobs::{JobNodeRow, JobRow, JobsFilter, Neighbour};
pub use samples::{EDGE_US, StreamSpan, Window, WindowSummary};
pub use site_bound::{NodeCapRow, SetBound};
pub use streams::{NodeControlRow, NodeRow, StreamRow, node_document};
pub use task_work::{Claimed, Gate};
pub use tasks::{NewTask, TaskBounds, TaskParams};

/// The store: a database and, for SQLite, the one-writer-at-a-time lock (SQLite serialises
/// writers anyway; taking turns here avoids its busy errors).
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    writer: Arc<Mutex<()>>,
    /// What ingest believes of each stream it has seen (registration, newest sample).
    heads: Arc<std::sync::Mutex<std::collections::HashMap<String, ingest::Head>>>,
}

impl Store {
    /// A store over `db` (migrated).
    pub fn new(db: Db) -> Store {
        Store { db, writer: Arc::new(Mutex::new(())), heads: Arc::default() }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
            Ok(())
        })
    }

    /// Takes the writer's turn (SQLite only; PostgreSQL locks rows instead).
    async fn turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.db {
            Db::Sqlite(_) => Some(self.writer.lock().await),
            Db::Postgres(_) => None,
        }
    }
}

/// A stream's columns as the job arithmetic sees them. Kinds are checked at registration; one
/// this build does not know is a column that measures nothing here (not read).
pub fn columns(domains: &[StreamDomainV1]) -> Vec<Column> {
    domains
        .iter()
        .map(|d| match DomainKind::from_str(&d.domain) {
            Ok(kind) => {
                Column { kind, index: d.index, joules_per_tick: d.joules_per_tick, read: d.read }
            }
            Err(_) => {
                Column { kind: DomainKind::Core, index: d.index, joules_per_tick: 0.0, read: false }
            }
        })
        .collect()
}

/// Node power, W, between two rows of counters `dt_us` apart, from the columns `parts` (see
/// [`node_parts`]); `None` without parts or time.
pub fn node_watts(
    parts: &[(usize, f64)],
    before: &[u64],
    after: &[u64],
    dt_us: u64,
) -> Option<f64> {
    if parts.is_empty() || dt_us == 0 {
        return None;
    }
    let joules: f64 = parts
        .iter()
        .map(|&(c, jpt)| {
            let (a, b) = (before.get(c).copied().unwrap_or(0), after.get(c).copied().unwrap_or(0));
            b.saturating_sub(a) as f64 * jpt
        })
        .sum();
    Some(joules / (dt_us as f64 / 1e6))
}

/// The node figure's parts of a stream with `domains`.
pub fn parts_of(domains: &[StreamDomainV1]) -> Vec<(usize, f64)> {
    node_parts(&columns(domains))
}
