//! What the task runner does to stored tasks: claims node operations under a lease (PostgreSQL:
//! `FOR UPDATE SKIP LOCKED`; SQLite: one writer, a conditional UPDATE), renews and releases its
//! leases, marks a request sent (committed before it goes out), and records a node's outcome,
//! each write conditional on still holding the lease.

use std::collections::HashMap;

use powerstack_api::site_tasks::{TaskKindV1, TaskNodeResultV1, TaskNodeStateV1};
use sqlx::Row;

use super::tasks::{TaskParams, derive_state};
use super::{Store, StoreError};
use crate::db::{from_db, on_db, to_db};

/// A node operation claimed by this replica.
#[derive(Clone, Debug, PartialEq)]
pub struct Claimed {
    /// The task.
    pub task_id: String,
    /// The node.
    pub node: String,
    /// The task's kind.
    pub kind: TaskKindV1,
    /// The task's request.
    pub params: TaskParams,
    /// When the last request was sent (`Some`: never send again, read the state).
    pub sent_at_us: Option<u64>,
    /// Requests sent so far.
    pub attempt: u32,
}

/// Whether a request may go out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Marked sent (committed): send it.
    Send,
    /// The task was aborted: nothing is sent (the caller records the node).
    Aborted,
    /// The lease is no longer this replica's: leave the node alone.
    Lost,
}

const CLAIM_PG: &str = "UPDATE task_nodes AS n SET state = 'in-progress', lease_owner = $1, \
     lease_until_us = $2, updated_us = $3 \
     FROM (SELECT task_id, node FROM task_nodes \
           WHERE state = 'pending' OR (state = 'in-progress' AND lease_until_us < $3) \
           ORDER BY updated_us LIMIT $4 FOR UPDATE SKIP LOCKED) AS c \
     WHERE n.task_id = c.task_id AND n.node = c.node \
     RETURNING n.task_id, n.node, n.sent_at_us, n.attempt";

const CLAIM_SQLITE: &str = "UPDATE task_nodes SET state = 'in-progress', lease_owner = $1, \
     lease_until_us = $2, updated_us = $3 \
     WHERE (task_id, node) IN (SELECT task_id, node FROM task_nodes \
           WHERE state = 'pending' OR (state = 'in-progress' AND lease_until_us < $3) \
           ORDER BY updated_us LIMIT $4) \
     RETURNING task_id, node, sent_at_us, attempt";

impl Store {
    /// Claims at most `n` node operations for `owner` until `lease_until_us`: pending ones, and
    /// those in progress whose lease ran out (another replica stopped, or this one restarted).
    pub async fn claim_task_nodes(
        &self,
        owner: &str,
        n: usize,
        now_us: u64,
        lease_until_us: u64,
    ) -> Result<Vec<Claimed>, StoreError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let _turn = self.turn().await;
        let text = if self.db.is_postgres() { CLAIM_PG } else { CLAIM_SQLITE };
        let rows: Vec<(String, String, Option<i64>, i32)> = on_db!(&self.db, pool => {
            sqlx::query(text)
                .bind(owner)
                .bind(to_db(lease_until_us))
                .bind(to_db(now_us))
                .bind(to_db(n as u64))
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
                .collect::<Result<_, sqlx::Error>>()?
        });
        drop(_turn);
        let mut tasks: HashMap<String, Option<(TaskKindV1, TaskParams)>> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for (task_id, node, sent, attempt) in rows {
            if !tasks.contains_key(&task_id) {
                let t = self.task_head(&task_id).await?;
                tasks.insert(task_id.clone(), t);
            }
            // A task deleted meanwhile has no node left to do.
            let Some(Some((kind, params))) = tasks.get(&task_id).cloned() else { continue };
            out.push(Claimed {
                task_id,
                node,
                kind,
                params,
                sent_at_us: sent.map(from_db),
                attempt: u32::try_from(attempt).unwrap_or(0),
            });
        }
        Ok(out)
    }

    async fn task_head(&self, id: &str) -> Result<Option<(TaskKindV1, TaskParams)>, StoreError> {
        on_db!(&self.db, pool => {
            let row = sqlx::query("SELECT kind, params FROM tasks WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
            let Some(r) = row else { return Ok(None) };
            let (kind, params): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            Ok(TaskKindV1::parse(&kind)
                .map(|k| (k, serde_json::from_str(&params).unwrap_or_default())))
        })
    }

    /// Extends `owner`'s leases on the operations it has in progress to `until_us`.
    pub async fn renew_leases(&self, owner: &str, until_us: u64) -> Result<(), StoreError> {
        let _turn = self.turn().await;
        on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE task_nodes SET lease_until_us = $1 WHERE lease_owner = $2 AND state = 'in-progress'",
            )
            .bind(to_db(until_us))
            .bind(owner)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Ends `owner`'s leases at once (its operations in progress are taken over by the next
    /// claim, here or at another replica); `node` `Some`: that one only.
    pub async fn release_leases(
        &self,
        owner: &str,
        node: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        let _turn = self.turn().await;
        let (task_id, node) = node.unwrap_or(("", ""));
        on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE task_nodes SET lease_until_us = 0 WHERE lease_owner = $1 AND state = 'in-progress' \
                 AND ($2 = '' OR (task_id = $2 AND node = $3))",
            )
            .bind(owner)
            .bind(task_id)
            .bind(node)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Marks the request number `attempt` of `c` sent at `now_us`, committed before it goes
    /// out; or says why not: the task was aborted, or the lease is no longer `owner`'s.
    pub async fn mark_sent(
        &self,
        c: &Claimed,
        owner: &str,
        attempt: u32,
        now_us: u64,
    ) -> Result<Gate, StoreError> {
        let turn = self.turn().await;
        let marked = on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE task_nodes SET sent_at_us = $1, attempt = $2, updated_us = $1 \
                 WHERE task_id = $3 AND node = $4 AND lease_owner = $5 AND state = 'in-progress' \
                 AND NOT EXISTS (SELECT 1 FROM tasks WHERE id = $3 AND abort_requested)",
            )
            .bind(to_db(now_us))
            .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
            .bind(&c.task_id)
            .bind(&c.node)
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected()
        });
        drop(turn);
        if marked == 1 {
            return Ok(Gate::Send);
        }
        let aborted = on_db!(&self.db, pool => {
            sqlx::query("SELECT abort_requested FROM tasks WHERE id = $1")
                .bind(&c.task_id)
                .fetch_optional(pool)
                .await?
                .map(|r| r.try_get::<bool, _>(0))
                .transpose()?
        });
        Ok(if aborted == Some(true) { Gate::Aborted } else { Gate::Lost })
    }

    /// Takes back the sent mark of request number `attempt` of `c`, which was refused before it
    /// went out: the node's record is again that of the request before it (`previous_us`, when
    /// it was sent), or of none.
    pub async fn unmark_sent(
        &self,
        c: &Claimed,
        owner: &str,
        attempt: u32,
        previous_us: Option<u64>,
    ) -> Result<(), StoreError> {
        let _turn = self.turn().await;
        on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE task_nodes SET sent_at_us = $1, attempt = $2 \
                 WHERE task_id = $3 AND node = $4 AND lease_owner = $5 AND state = 'in-progress' \
                 AND attempt = $6",
            )
            .bind(previous_us.map(to_db))
            .bind(i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX))
            .bind(&c.task_id)
            .bind(&c.node)
            .bind(owner)
            .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Records `c`'s outcome, if `owner` still holds it; whether it did. The task's state is
    /// derived again in the same transaction.
    pub async fn finish_task_node(
        &self,
        c: &Claimed,
        owner: &str,
        state: TaskNodeStateV1,
        reason: Option<&str>,
        result: Option<&TaskNodeResultV1>,
        now_us: u64,
    ) -> Result<bool, StoreError> {
        let result = result.and_then(|r| serde_json::to_string(r).ok());
        let _turn = self.turn().await;
        on_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            // The task's row first: two nodes finishing at once derive its state in turn.
            sqlx::query("UPDATE tasks SET updated_us = $1 WHERE id = $2")
                .bind(to_db(now_us))
                .bind(&c.task_id)
                .execute(&mut *tx)
                .await?;
            let n = sqlx::query(
                "UPDATE task_nodes SET state = $1, reason = $2, result = $3, lease_owner = NULL, \
                 lease_until_us = 0, updated_us = $4 \
                 WHERE task_id = $5 AND node = $6 AND lease_owner = $7 AND state = 'in-progress'",
            )
            .bind(state.as_str())
            .bind(reason)
            .bind(&result)
            .bind(to_db(now_us))
            .bind(&c.task_id)
            .bind(&c.node)
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            derive_state!(tx, &c.task_id, now_us);
            tx.commit().await?;
            Ok(true)
        })
    }
}
