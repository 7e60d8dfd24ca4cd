//! The site power bound's rows: the bound set by `powerstack site bound`, the control loop's
//! lease (one replica runs the loop), what each node counts for in the bound, and the recorded
//! decisions (see migration `0008_site_bound.sql`).

use powerstack_api::site_bound::BoundDecisionV1;

use super::{Store, StoreError};
use crate::db::{from_db, on_db, to_db};

/// The bound set by `powerstack site bound`.
#[derive(Clone, Debug, PartialEq)]
pub struct SetBound {
    /// The bound, W.
    pub watts: f64,
    /// The reserve, W (`None`: the configuration's).
    pub reserve_watts: Option<f64>,
    /// The policy (`None`: the configuration's).
    pub policy: Option<String>,
    /// Who set it.
    pub set_by: String,
    /// When, µs since the Unix epoch.
    pub set_us: u64,
}

/// What a node counts for in the bound, as the loop last wrote or read it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeCapRow {
    /// The node.
    pub node: String,
    /// Its cap, W.
    pub cap_watts: f64,
    /// `agent` or `bmc`.
    pub via: String,
    /// When written or read, µs since the Unix epoch.
    pub updated_us: u64,
}

/// A `site_bound` row: watts, reserve, policy, set by, set at.
type BoundRow = (f64, Option<f64>, Option<String>, String, i64);

const HOLD: &str = "INSERT INTO bound_lease (id, owner, lease_until_us) VALUES (1, $1, $2) \
     ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, lease_until_us = excluded.lease_until_us \
     WHERE bound_lease.owner = excluded.owner OR bound_lease.lease_until_us < $3";

impl Store {
    /// The bound set by `powerstack site bound`, if any.
    pub async fn set_bound(&self) -> Result<Option<SetBound>, StoreError> {
        on_db!(&self.db, pool => {
            let row: Option<BoundRow> = sqlx::query_as(
                "SELECT watts, reserve_watts, policy, set_by, set_us FROM site_bound WHERE id = 1",
            )
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|(watts, reserve_watts, policy, set_by, set_us)| SetBound {
                watts,
                reserve_watts,
                policy,
                set_by,
                set_us: from_db(set_us),
            }))
        })
    }

    /// Sets the bound (`Some`) or clears it (`None`), in one statement.
    pub async fn put_bound(&self, bound: Option<&SetBound>) -> Result<(), StoreError> {
        let _turn = self.turn().await;
        on_db!(&self.db, pool => {
            match bound {
                Some(b) => {
                    sqlx::query(
                        "INSERT INTO site_bound (id, watts, reserve_watts, policy, set_by, set_us) \
                         VALUES (1, $1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET \
                         watts = excluded.watts, reserve_watts = excluded.reserve_watts, \
                         policy = excluded.policy, set_by = excluded.set_by, set_us = excluded.set_us",
                    )
                    .bind(b.watts)
                    .bind(b.reserve_watts)
                    .bind(b.policy.as_deref())
                    .bind(&b.set_by)
                    .bind(to_db(b.set_us))
                    .execute(pool)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM site_bound").execute(pool).await?;
                }
            }
        });
        Ok(())
    }

    /// Takes or renews `owner`'s lease on the control loop until `until_us`; whether `owner`
    /// holds it now. Another owner's lease is taken only once it ran out (before `now_us`).
    pub async fn hold_bound_lease(
        &self,
        owner: &str,
        now_us: u64,
        until_us: u64,
    ) -> Result<bool, StoreError> {
        let _turn = self.turn().await;
        let n = on_db!(&self.db, pool => {
            sqlx::query(HOLD)
                .bind(owner)
                .bind(to_db(until_us))
                .bind(to_db(now_us))
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Ends `owner`'s lease on the control loop at once (another replica takes it over).
    pub async fn release_bound_lease(&self, owner: &str) -> Result<(), StoreError> {
        let _turn = self.turn().await;
        on_db!(&self.db, pool => {
            sqlx::query("UPDATE bound_lease SET lease_until_us = 0 WHERE owner = $1")
                .bind(owner)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// What every node counts for in the bound, as last written or read.
    pub async fn bound_node_caps(&self) -> Result<Vec<NodeCapRow>, StoreError> {
        on_db!(&self.db, pool => {
            let rows: Vec<(String, f64, String, i64)> = sqlx::query_as(
                "SELECT node, cap_watts, via, updated_us FROM bound_node_caps ORDER BY node",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(node, cap_watts, via, u)| NodeCapRow {
                    node,
                    cap_watts,
                    via,
                    updated_us: from_db(u),
                })
                .collect())
        })
    }

    /// Records what `rows`' nodes count for (one transaction); `forget` are removed.
    pub async fn put_bound_node_caps(
        &self,
        rows: &[NodeCapRow],
        forget: &[String],
    ) -> Result<(), StoreError> {
        if rows.is_empty() && forget.is_empty() {
            return Ok(());
        }
        let _turn = self.turn().await;
        on_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            for r in rows {
                sqlx::query(
                    "INSERT INTO bound_node_caps (node, cap_watts, via, updated_us) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (node) DO UPDATE SET \
                     cap_watts = excluded.cap_watts, via = excluded.via, updated_us = excluded.updated_us",
                )
                .bind(&r.node)
                .bind(r.cap_watts)
                .bind(&r.via)
                .bind(to_db(r.updated_us))
                .execute(&mut *tx)
                .await?;
            }
            for node in forget {
                sqlx::query("DELETE FROM bound_node_caps WHERE node = $1")
                    .bind(node)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Records a decision (its `id` is given by the database) and drops those older than
    /// `expire_before_us`; the id given.
    pub async fn record_decision(
        &self,
        decision: &BoundDecisionV1,
        expire_before_us: u64,
    ) -> Result<u64, StoreError> {
        let body = serde_json::to_string(decision)
            .map_err(|e| StoreError::Config(format!("decision: {e}")))?;
        let _turn = self.turn().await;
        on_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO bound_decisions (unix_us, body) VALUES ($1, $2) RETURNING id",
            )
            .bind(to_db(decision.unix_us))
            .bind(body)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM bound_decisions WHERE unix_us < $1")
                .bind(to_db(expire_before_us))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(from_db(id))
        })
    }

    /// The newest `limit` decisions at or before `until_us` (all when `None`), newest first.
    pub async fn decisions(
        &self,
        until_us: Option<u64>,
        limit: u64,
    ) -> Result<Vec<BoundDecisionV1>, StoreError> {
        let until = to_db(until_us.unwrap_or(u64::MAX));
        on_db!(&self.db, pool => {
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "SELECT id, body FROM bound_decisions WHERE unix_us <= $1 \
                 ORDER BY unix_us DESC, id DESC LIMIT $2",
            )
            .bind(until)
            .bind(to_db(limit))
            .fetch_all(pool)
            .await?;
            rows.into_iter()
                .map(|(id, body)| {
                    let mut d: BoundDecisionV1 = serde_json::from_str(&body).map_err(|e| {
                        StoreError::Config(format!("stored decision {id} is not readable: {e}"))
                    })?;
                    d.id = from_db(id);
                    Ok(d)
                })
                .collect()
        })
    }
}
