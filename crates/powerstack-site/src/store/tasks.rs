//! Control tasks as stored: created with every node `pending` (refused while a named node is in
//! a running transition, or when too many tasks are kept), read, aborted, expired. What the
//! runner does to them (claims, leases, the sent mark) is in `task_work.rs`.

use std::collections::HashMap;

use powerstack_api::site_tasks::{
    TaskCountsV1, TaskKindV1, TaskNodeResultV1, TaskNodeStateV1, TaskNodeV1, TaskParamsV1,
    TaskStateV1, TaskV1,
};
use sqlx::Row;

use super::{Store, StoreError};
use crate::db::{from_db, on_db, to_db};

/// The advisory lock under which PostgreSQL replicas create tasks one at a time (the
/// reservation check and the bound are decided inside it).
const CREATE_LOCK: i64 = 0x7073_7461_736b; // "pstask"
/// Nodes inserted per statement.
const INSERT_CHUNK: usize = 1000;

/// A task's request, as stored in its `params`.
pub type TaskParams = TaskParamsV1;

/// A task to create.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTask {
    /// Its id.
    pub id: String,
    /// What it does.
    pub kind: TaskKindV1,
    /// Its request.
    pub params: TaskParams,
    /// Its nodes, each once.
    pub nodes: Vec<String>,
    /// Who asked.
    pub requested_by: String,
}

/// How many tasks are kept and how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskBounds {
    /// The most tasks kept.
    pub max_tasks: u64,
    /// How long a task is kept, µs.
    pub expiry_us: u64,
}

const TASK_COLUMNS: &str =
    "id, kind, params, state, abort_requested, requested_by, created_us, updated_us, expires_us";

/// A [`TaskV1`] from the columns of [`TASK_COLUMNS`] (no counts, no nodes).
macro_rules! task_row {
    ($r:expr) => {{
        let r = $r;
        let kind: String = r.try_get(1)?;
        let params: String = r.try_get(2)?;
        let state: String = r.try_get(3)?;
        let params: TaskParams = serde_json::from_str(&params).unwrap_or_default();
        TaskV1 {
            schema: "powerstack.site-task.v1".into(),
            id: r.try_get(0)?,
            kind: TaskKindV1::parse(&kind).unwrap_or(TaskKindV1::Transition),
            state: TaskStateV1::parse(&state).unwrap_or(TaskStateV1::Running),
            params,
            requested_by: r.try_get(5)?,
            created_unix_us: from_db(r.try_get(6)?),
            updated_unix_us: from_db(r.try_get(7)?),
            expires_unix_us: from_db(r.try_get(8)?),
            abort_requested: r.try_get(4)?,
            counts: TaskCountsV1::default(),
            nodes: Vec::new(),
        }
    }};
}

pub(crate) fn node_state(s: &str) -> TaskNodeStateV1 {
    TaskNodeStateV1::parse(s).unwrap_or(TaskNodeStateV1::Failed)
}

/// Recomputes task `$id`'s state from its nodes' inside transaction `$tx` (whose first statement
/// on the task locked its row).
macro_rules! derive_state {
    ($tx:expr, $id:expr, $now:expr) => {{
        let rows =
            sqlx::query("SELECT state, COUNT(*) FROM task_nodes WHERE task_id = $1 GROUP BY state")
                .bind($id)
                .fetch_all(&mut *$tx)
                .await?;
        let mut counts = powerstack_api::site_tasks::TaskCountsV1::default();
        for r in &rows {
            let s: String = r.try_get(0)?;
            let n: i64 = r.try_get(1)?;
            counts.add($crate::store::tasks::node_state(&s), $crate::db::from_db(n));
        }
        let state = powerstack_api::site_tasks::TaskStateV1::of(&counts);
        sqlx::query("UPDATE tasks SET state = $1, updated_us = $2 WHERE id = $3")
            .bind(state.as_str())
            .bind($crate::db::to_db($now))
            .bind($id)
            .execute(&mut *$tx)
            .await?;
        state
    }};
}
pub(crate) use derive_state;

/// Marks task `$id` aborted inside transaction `$tx`: the flag, its pending nodes `aborted` with
/// `$why`, its state derived again.
macro_rules! abort_in {
    ($tx:expr, $id:expr, $now:expr, $why:expr) => {{
        sqlx::query("UPDATE tasks SET abort_requested = TRUE, updated_us = $1 WHERE id = $2")
            .bind(to_db($now))
            .bind($id)
            .execute(&mut *$tx)
            .await?;
        sqlx::query(
            "UPDATE task_nodes SET state = 'aborted', reason = $1, updated_us = $2 \
             WHERE task_id = $3 AND state = 'pending'",
        )
        .bind($why)
        .bind(to_db($now))
        .bind($id)
        .execute(&mut *$tx)
        .await?;
        derive_state!($tx, $id, $now);
    }};
}

impl Store {
    /// Creates `task` at `now_us`, every node pending. Refused: a node in a running transition
    /// (409, naming the node and the task), or `bounds.max_tasks` kept already once the expired
    /// ones are deleted (429).
    pub async fn create_task(
        &self,
        task: &NewTask,
        now_us: u64,
        bounds: TaskBounds,
    ) -> Result<TaskV1, StoreError> {
        self.expire_tasks(now_us).await?;
        let params = serde_json::to_string(&task.params)
            .map_err(|e| StoreError::Invalid(format!("the task's parameters: {e}")))?;
        let _turn = self.turn().await;
        let postgres = self.db.is_postgres();
        on_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            if postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(CREATE_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            let kept: i64 = sqlx::query("SELECT COUNT(*) FROM tasks")
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            if from_db(kept) >= bounds.max_tasks {
                return Err(StoreError::Busy(format!(
                    "{kept} control tasks are kept, the most the site keeps (tasks_max): wait for some to expire, or raise tasks_max"
                )));
            }
            for chunk in task.nodes.chunks(INSERT_CHUNK) {
                let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 1)).collect();
                let held = format!(
                    "SELECT n.node, n.task_id FROM task_nodes n JOIN tasks t ON t.id = n.task_id \
                     WHERE t.kind = 'transition' AND n.state IN ('pending', 'in-progress') \
                     AND n.node IN ({}) LIMIT 1",
                    marks.join(", ")
                );
                let mut q = sqlx::query(&held);
                for n in chunk {
                    q = q.bind(n);
                }
                if let Some(r) = q.fetch_optional(&mut *tx).await? {
                    let (node, holder): (String, String) = (r.try_get(0)?, r.try_get(1)?);
                    return Err(StoreError::Conflict(format!(
                        "node {node} is reserved by transition {holder}, still running: wait for it, or abort it (DELETE /v1/transitions/{holder})"
                    )));
                }
            }
            let expires = now_us.saturating_add(bounds.expiry_us);
            sqlx::query(
                "INSERT INTO tasks (id, kind, params, state, requested_by, created_us, updated_us, expires_us) \
                 VALUES ($1, $2, $3, 'running', $4, $5, $5, $6)",
            )
            .bind(&task.id)
            .bind(task.kind.as_str())
            .bind(&params)
            .bind(&task.requested_by)
            .bind(to_db(now_us))
            .bind(to_db(expires))
            .execute(&mut *tx)
            .await?;
            for chunk in task.nodes.chunks(INSERT_CHUNK) {
                let rows: Vec<String> = (0..chunk.len())
                    .map(|i| format!("($1, ${}, 'pending', $2)", i + 3))
                    .collect();
                let text = format!(
                    "INSERT INTO task_nodes (task_id, node, state, updated_us) VALUES {}",
                    rows.join(", ")
                );
                let mut q = sqlx::query(&text).bind(&task.id).bind(to_db(now_us));
                for n in chunk {
                    q = q.bind(n);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })?;
        drop(_turn);
        self.task(&task.id, &[task.kind]).await
    }

    /// Task `id` with its nodes, if it is of one of `kinds`.
    pub async fn task(&self, id: &str, kinds: &[TaskKindV1]) -> Result<TaskV1, StoreError> {
        let missing = || StoreError::NotFound(format!("no task {id} at the site (or it expired)"));
        let mut task = on_db!(&self.db, pool => {
            let row = sqlx::query(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            match row {
                Some(r) => task_row!(&r),
                None => return Err(missing()),
            }
        });
        if !kinds.contains(&task.kind) {
            return Err(missing());
        }
        task.nodes = on_db!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT node, state, reason, result, sent_at_us, attempt FROM task_nodes \
                 WHERE task_id = $1 ORDER BY node",
            )
            .bind(id)
            .fetch_all(pool)
            .await?;
            let mut nodes = Vec::with_capacity(rows.len());
            for r in &rows {
                let state: String = r.try_get(1)?;
                let result: Option<String> = r.try_get(3)?;
                let attempt: i32 = r.try_get(5)?;
                nodes.push(TaskNodeV1 {
                    node: r.try_get(0)?,
                    state: node_state(&state),
                    reason: r.try_get(2)?,
                    result: result.and_then(|t| serde_json::from_str::<TaskNodeResultV1>(&t).ok()),
                    sent_unix_us: r.try_get::<Option<i64>, _>(4)?.map(from_db),
                    attempts: u32::try_from(attempt).unwrap_or(0),
                });
            }
            nodes
        });
        for n in &task.nodes {
            task.counts.add(n.state, 1);
        }
        Ok(task)
    }

    /// Tasks of `kinds`, newest first, at most `limit`, with their counts (no nodes).
    pub async fn tasks(&self, kinds: &[TaskKindV1], limit: u64) -> Result<Vec<TaskV1>, StoreError> {
        let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let (a, b) = (names.first().copied().unwrap_or(""), names.last().copied().unwrap_or(""));
        let mut tasks = on_db!(&self.db, pool => {
            let rows = sqlx::query(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE kind = $1 OR kind = $2 \
                 ORDER BY created_us DESC, id LIMIT $3"
            ))
            .bind(a)
            .bind(b)
            .bind(to_db(limit))
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(task_row!(r));
            }
            out
        });
        let counts = on_db!(&self.db, pool => {
            // Counted for the listed tasks only.
            let rows = sqlx::query(
                "SELECT task_id, state, COUNT(*) FROM task_nodes WHERE task_id IN \
                 (SELECT id FROM tasks WHERE kind = $1 OR kind = $2 ORDER BY created_us DESC, id LIMIT $3) \
                 GROUP BY task_id, state",
            )
            .bind(a)
            .bind(b)
            .bind(to_db(limit))
            .fetch_all(pool)
            .await?;
            let mut by_task: HashMap<String, TaskCountsV1> = HashMap::new();
            for r in &rows {
                let (id, state, n): (String, String, i64) =
                    (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
                by_task.entry(id).or_default().add(node_state(&state), from_db(n));
            }
            by_task
        });
        for t in &mut tasks {
            t.counts = counts.get(&t.id).cloned().unwrap_or_default();
        }
        Ok(tasks)
    }

    /// Aborts task `id` (of one of `kinds`): its pending nodes become `aborted`; those in flight
    /// finish and are recorded. Aborting a finished task answers it as it is.
    pub async fn abort_task(
        &self,
        id: &str,
        kinds: &[TaskKindV1],
        now_us: u64,
    ) -> Result<TaskV1, StoreError> {
        self.task(id, kinds).await?;
        let _turn = self.turn().await;
        on_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            abort_in!(tx, id, now_us, "aborted before it began");
            tx.commit().await?;
        });
        drop(_turn);
        self.task(id, kinds).await
    }

    /// Deletes the finished tasks past their expiry, and aborts the running ones past it (their
    /// pending nodes aborted; deleted once finished). The number deleted.
    pub async fn expire_tasks(&self, now_us: u64) -> Result<u64, StoreError> {
        let _turn = self.turn().await;
        on_db!(&self.db, pool => {
            let running: Vec<String> = sqlx::query(
                "SELECT id FROM tasks WHERE expires_us < $1 AND state = 'running' AND NOT abort_requested",
            )
            .bind(to_db(now_us))
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
            for id in &running {
                let mut tx = pool.begin().await?;
                abort_in!(tx, id, now_us, "the task expired before this node began");
                tx.commit().await?;
            }
            let gone = sqlx::query("DELETE FROM tasks WHERE expires_us < $1 AND state <> 'running'")
                .bind(to_db(now_us))
                .execute(pool)
                .await?
                .rows_affected();
            Ok(gone)
        })
    }

    /// Tasks counted by kind and state.
    pub async fn task_states(&self) -> Result<Vec<(String, String, u64)>, StoreError> {
        on_db!(&self.db, pool => {
            let rows = sqlx::query("SELECT kind, state, COUNT(*) FROM tasks GROUP BY kind, state")
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, from_db(r.try_get(2)?))))
                .collect()
        })
    }
}
