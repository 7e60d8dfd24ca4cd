//! Job records: begun and ended by the scheduler's hooks, listed and read by users, and each
//! node's figures kept once its samples reach past the job's end ("settled").

use powerstack_api::job::{DataPresence, JobResultV1};
use powerstack_api::site::{JobAllocationV1, SiteJobBeginV1, SiteJobV1};
use sqlx::Row;

use super::{Store, StoreError};
use crate::db::{from_db, on_db, to_db};

/// A job as stored.
pub type JobRow = SiteJobV1;

/// A job's node as stored: its figures once settled.
#[derive(Clone, Debug, PartialEq)]
pub struct JobNodeRow {
    /// The node's name.
    pub node: String,
    /// Its figures over the job, once settled.
    pub result: Option<JobResultV1>,
    /// Whether its figures are final.
    pub settled: bool,
    /// What the job holds of it; `None`: the node whole.
    pub allocation: Option<JobAllocationV1>,
    /// The counters at the job's edges, per stream, as last kept (`null` before).
    pub edges: serde_json::Value,
}

/// Another job on one of a job's nodes whose window overlaps the job's.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbour {
    /// The node.
    pub node: String,
    /// The other job.
    pub job_id: String,
    /// When it began, µs.
    pub begin_unix_us: u64,
    /// When it ended, µs; `None` while it runs.
    pub end_unix_us: Option<u64>,
    /// What it holds of the node; `None`: the node whole.
    pub allocation: Option<JobAllocationV1>,
}

/// Which jobs a listing wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobsFilter {
    /// Only this user's.
    pub user: Option<String>,
    /// Only jobs running at or after this time (ended at or after it, or running), µs.
    pub since_us: Option<u64>,
    /// Only jobs that began at or before this time, µs.
    pub until_us: Option<u64>,
    /// At most this many.
    pub limit: usize,
}

const JOB_COLUMNS: &str = "id, user_name, account, app, begin_us, end_us, energy_joules, mean_power_watts, \
     peak_power_watts, data_presence, settled, power_watts, priority";

/// A [`JobRow`] from the columns of [`JOB_COLUMNS`] (its nodes filled in by the caller).
macro_rules! job_row {
    ($r:expr) => {{
        let r = $r;
        let presence: Option<String> = r.try_get(9)?;
        JobRow {
            id: r.try_get(0)?,
            user: r.try_get(1)?,
            account: r.try_get(2)?,
            app: r.try_get(3)?,
            nodes: Vec::new(),
            begin_unix_us: from_db(r.try_get(4)?),
            end_unix_us: r.try_get::<Option<i64>, _>(5)?.map(from_db),
            energy_joules: r.try_get(6)?,
            mean_power_watts: r.try_get(7)?,
            peak_power_watts: r.try_get(8)?,
            data_presence: presence.as_deref().and_then(parse_presence),
            settled: r.try_get(10)?,
            power_watts: r.try_get(11)?,
            priority: r.try_get(12)?,
        }
    }};
}

/// A job node's [`JobAllocationV1`] from columns `allocated, cpus, gpus` starting at `$at`.
macro_rules! allocation {
    ($r:expr, $at:expr, $node:expr) => {{
        let (r, at) = ($r, $at);
        let allocated: bool = r.try_get(at)?;
        let cpus: Option<i32> = r.try_get(at + 1)?;
        let gpus: Option<String> = r.try_get(at + 2)?;
        allocated.then(|| JobAllocationV1 {
            node: $node.to_string(),
            cpus: cpus.and_then(|c| u32::try_from(c).ok()),
            gpus: gpus.and_then(|g| serde_json::from_str(&g).ok()).unwrap_or_default(),
        })
    }};
}

/// GPU indices as stored: a JSON list.
fn json_gpus(gpus: &[u32]) -> String {
    serde_json::to_string(gpus).unwrap_or_else(|_| "[]".to_string())
}

fn parse_presence(s: &str) -> Option<DataPresence> {
    [DataPresence::Complete, DataPresence::Partial, DataPresence::None]
        .into_iter()
        .find(|p| p.as_str() == s)
}

impl Store {
    /// Records job `job` as begun at `now_us`. An id already recorded is a conflict.
    pub async fn begin_job(&self, job: &SiteJobBeginV1, now_us: u64) -> Result<JobRow, StoreError> {
        if let Some(why) = job.allocation_problem().or_else(|| job.power_problem()) {
            return Err(StoreError::Invalid(why));
        }
        let _turn = self.turn().await;
        on_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO jobs (id, user_name, account, app, begin_us, power_watts, priority) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&job.id)
            .bind(&job.user)
            .bind(&job.account)
            .bind(&job.app)
            .bind(to_db(now_us))
            .bind(job.power_watts)
            .bind(job.priority)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(StoreError::Conflict(format!(
                    "job {} is already recorded: job ids are unique at the site", job.id
                )));
            }
            for (position, node) in job.nodes.iter().enumerate() {
                let alloc = job.allocations.iter().find(|a| &a.node == node);
                sqlx::query(
                    "INSERT INTO job_nodes (job_id, node, position, allocated, cpus, gpus) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(&job.id)
                .bind(node)
                .bind(i32::try_from(position).unwrap_or(i32::MAX))
                .bind(alloc.is_some())
                .bind(alloc.and_then(|a| a.cpus).map(|c| i32::try_from(c).unwrap_or(i32::MAX)))
                .bind(alloc.map(|a| json_gpus(&a.gpus)))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })?;
        self.job(&job.id).await
    }

    /// Records job `id`'s end at `now_us` (an ended job answers as it is: ending twice is
    /// harmless).
    pub async fn end_job(&self, id: &str, now_us: u64) -> Result<JobRow, StoreError> {
        let _turn = self.turn().await;
        let changed = on_db!(&self.db, pool => {
            sqlx::query("UPDATE jobs SET end_us = $1 WHERE id = $2 AND end_us IS NULL")
                .bind(to_db(now_us))
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        drop(_turn);
        if changed == 0 {
            // Not found, or already ended: the read says which.
            return self.job(id).await;
        }
        self.job(id).await
    }

    /// Job `id` with its nodes.
    pub async fn job(&self, id: &str) -> Result<JobRow, StoreError> {
        let mut job = on_db!(&self.db, pool => {
            let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("no job {id} at the site")))?;
            job_row!(&row)
        });
        job.nodes = self.job_nodes(id).await?.into_iter().map(|n| n.node).collect();
        Ok(job)
    }

    /// Job `id`'s nodes in the order the job named them.
    pub async fn job_nodes(&self, id: &str) -> Result<Vec<JobNodeRow>, StoreError> {
        on_db!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT node, result, settled, allocated, cpus, gpus, edges FROM job_nodes WHERE job_id = $1 ORDER BY position",
            )
                .bind(id)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let result: Option<String> = r.try_get(1)?;
                let node: String = r.try_get(0)?;
                let edges: Option<String> = r.try_get(6)?;
                out.push(JobNodeRow {
                    edges: edges.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default(),
                    allocation: allocation!(r, 3, &node),
                    node,
                    result: result.and_then(|t| serde_json::from_str(&t).ok()),
                    settled: r.try_get(2)?,
                });
            }
            Ok(out)
        })
    }

    /// The other jobs on job `id`'s nodes whose windows overlap `from_us..to_us` (a running
    /// job's window runs on), by node, then by beginning.
    pub async fn neighbours(
        &self,
        id: &str,
        from_us: u64,
        to_us: u64,
    ) -> Result<Vec<Neighbour>, StoreError> {
        on_db!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT me.node, o.job_id, j.begin_us, j.end_us, o.allocated, o.cpus, o.gpus \
                 FROM job_nodes me JOIN job_nodes o ON o.node = me.node AND o.job_id <> me.job_id \
                 JOIN jobs j ON j.id = o.job_id \
                 WHERE me.job_id = $1 AND j.begin_us < $2 AND (j.end_us IS NULL OR j.end_us > $3) \
                 ORDER BY me.node, j.begin_us, o.job_id",
            )
            .bind(id)
            .bind(to_db(to_us))
            .bind(to_db(from_us))
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let node: String = r.try_get(0)?;
                out.push(Neighbour {
                    allocation: allocation!(r, 4, &node),
                    node,
                    job_id: r.try_get(1)?,
                    begin_unix_us: from_db(r.try_get(2)?),
                    end_unix_us: r.try_get::<Option<i64>, _>(3)?.map(from_db),
                });
            }
            Ok(out)
        })
    }

    /// Jobs matching `filter`, newest first, and whether more matched.
    pub async fn jobs(&self, filter: &JobsFilter) -> Result<(Vec<JobRow>, bool), StoreError> {
        let limit = i64::try_from(filter.limit.saturating_add(1)).unwrap_or(i64::MAX);
        let mut jobs = on_db!(&self.db, pool => {
            let rows = sqlx::query(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE ($1 IS NULL OR user_name = $1) \
                 AND ($2 IS NULL OR end_us IS NULL OR end_us >= $2) AND ($3 IS NULL OR begin_us <= $3) \
                 ORDER BY begin_us DESC, id LIMIT $4"
            ))
            .bind(&filter.user)
            .bind(filter.since_us.map(to_db))
            .bind(filter.until_us.map(to_db))
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(job_row!(r));
            }
            out
        });
        let truncated = jobs.len() > filter.limit;
        jobs.truncate(filter.limit);
        for j in &mut jobs {
            j.nodes = self.job_nodes(&j.id).await?.into_iter().map(|n| n.node).collect();
        }
        Ok((jobs, truncated))
    }

    /// How many jobs are running.
    pub async fn running_jobs(&self) -> Result<u64, StoreError> {
        on_db!(&self.db, pool => {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE end_us IS NULL").fetch_one(pool).await?;
            Ok(from_db(n))
        })
    }

    /// Ended jobs with a node not yet settled, oldest first (at most `limit`).
    pub async fn unsettled_jobs(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        on_db!(&self.db, pool => {
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM jobs WHERE end_us IS NOT NULL AND settled = FALSE ORDER BY end_us LIMIT $1",
            )
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await?;
            Ok(ids)
        })
    }

    /// Keeps node `node`'s figures over job `id` (settled or not) and the counters at its edges.
    pub async fn keep_job_node(
        &self,
        id: &str,
        node: &str,
        result: &JobResultV1,
        edges: &serde_json::Value,
        settled: bool,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(result).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let _turn = self.turn().await;
        on_db!(&self.db, pool => {
            sqlx::query("UPDATE job_nodes SET result = $1, edges = $2, settled = $3 WHERE job_id = $4 AND node = $5")
                .bind(text)
                .bind(edges.to_string())
                .bind(settled)
                .bind(id)
                .bind(node)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Keeps job `id`'s totals, settled when every node is.
    pub async fn keep_job_totals(&self, job: &JobRow) -> Result<(), StoreError> {
        let _turn = self.turn().await;
        on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE jobs SET energy_joules = $1, mean_power_watts = $2, peak_power_watts = $3, \
                 data_presence = $4, settled = $5 WHERE id = $6",
            )
            .bind(job.energy_joules)
            .bind(job.mean_power_watts)
            .bind(job.peak_power_watts)
            .bind(job.data_presence.map(|p| p.as_str()))
            .bind(job.settled)
            .bind(&job.id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }
}
