//! What the site's power bound reads of the jobs: every running job's priority, power request
//! and nodes.

use sqlx::Row;

use super::{Store, StoreError};
use crate::db::on_db;

/// A running job as the power bound sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct BoundJobRow {
    /// The job's id.
    pub id: String,
    /// Its priority (higher first); 0 when not given.
    pub priority: i32,
    /// The power it asked for, W.
    pub power_watts: Option<f64>,
    /// Its nodes, in the order the job named them.
    pub nodes: Vec<String>,
}

impl Store {
    /// Every job begun and not ended, oldest first, with its nodes.
    pub async fn running_jobs_for_bound(&self) -> Result<Vec<BoundJobRow>, StoreError> {
        on_db!(&self.db, pool => {
            let jobs = sqlx::query(
                "SELECT id, priority, power_watts FROM jobs WHERE end_us IS NULL ORDER BY begin_us, id",
            )
            .fetch_all(pool)
            .await?;
            let nodes = sqlx::query(
                "SELECT n.job_id, n.node FROM job_nodes n JOIN jobs j ON j.id = n.job_id \
                 WHERE j.end_us IS NULL ORDER BY n.job_id, n.position",
            )
            .fetch_all(pool)
            .await?;
            let mut by_job: std::collections::HashMap<String, Vec<String>> =
                std::collections::HashMap::new();
            for r in &nodes {
                by_job.entry(r.try_get(0)?).or_default().push(r.try_get(1)?);
            }
            let mut out = Vec::with_capacity(jobs.len());
            for r in &jobs {
                let id: String = r.try_get(0)?;
                let priority: Option<i32> = r.try_get(1)?;
                out.push(BoundJobRow {
                    nodes: by_job.remove(&id).unwrap_or_default(),
                    id,
                    priority: priority.unwrap_or(0),
                    power_watts: r.try_get(2)?,
                });
            }
            Ok(out)
        })
    }
}
