//! Time partitions and retention. PostgreSQL keeps samples in one partition a day and rollups in
//! one a month, created ahead by whichever replica gets there first (under an advisory lock), and
//! drops whole partitions past their retention; SQLite deletes old rows.

use powerstack_model::civil::{civil_from_days as civil, days_from_civil};
use sqlx::Row;

use super::{Store, StoreError};
use crate::db::{Db, to_db};

/// A day, µs.
pub const DAY_US: u64 = 86_400_000_000;

/// The advisory lock key partition maintenance holds ("powerstk").
const LOCK_KEY: i64 = 0x706f_7765_7273_746b;

/// The partitions a time needs: samples' day `[from, to)` named `samples_YYYYMMDD`, rollups'
/// month `rollups_YYYYMM`.
fn partitions_for(unix_us: u64) -> [(String, &'static str, u64, u64); 2] {
    let day = (unix_us / DAY_US) as i64;
    let (y, m, d) = civil(day);
    let month_start = days_from_civil(y, m, 1);
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let month_end = days_from_civil(ny, nm, 1);
    let us = |days: i64| u64::try_from(days).unwrap_or(0) * DAY_US;
    [
        (format!("samples_{y:04}{m:02}{d:02}"), "samples", us(day), us(day + 1)),
        (format!("rollups_{y:04}{m:02}"), "rollups", us(month_start), us(month_end)),
    ]
}

impl Store {
    /// Makes sure the partitions for `now_us`, the day before and the two after exist
    /// (PostgreSQL; nothing to do on SQLite). A range that the default partition already holds
    /// rows of cannot be created: it is left to the default, with a warning returned.
    pub async fn ensure_partitions(&self, now_us: u64) -> Result<Vec<String>, StoreError> {
        let Db::Postgres(pool) = &self.db else { return Ok(Vec::new()) };
        let mut warnings = Vec::new();
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(LOCK_KEY).execute(&mut *tx).await?;
        for k in [-1i64, 0, 1, 2] {
            let t = u64::try_from(to_db(now_us) + k * to_db(DAY_US)).unwrap_or(0);
            for (name, parent, from, to) in partitions_for(t) {
                let exists: bool =
                    sqlx::query("SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = $1)")
                        .bind(&name)
                        .fetch_one(&mut *tx)
                        .await?
                        .try_get(0)?;
                if exists {
                    continue;
                }
                let sql = format!(
                    "CREATE TABLE {name} PARTITION OF {parent} FOR VALUES FROM ({}) TO ({})",
                    to_db(from),
                    to_db(to)
                );
                sqlx::query("SAVEPOINT p").execute(&mut *tx).await?;
                if let Err(e) = sqlx::query(&sql).execute(&mut *tx).await {
                    sqlx::query("ROLLBACK TO SAVEPOINT p").execute(&mut *tx).await?;
                    warnings.push(format!(
                        "partition {name} not created ({e}); its rows stay in {parent}_default"
                    ));
                }
            }
        }
        tx.commit().await?;
        Ok(warnings)
    }

    /// Drops samples older than `raw_before_us` and rollups older than `rollups_before_us`:
    /// whole partitions on PostgreSQL (and the default's old rows), rows on SQLite. Returns the
    /// partitions dropped.
    pub async fn expire(
        &self,
        raw_before_us: u64,
        rollups_before_us: u64,
    ) -> Result<Vec<String>, StoreError> {
        match &self.db {
            Db::Sqlite(pool) => {
                let _turn = self.turn().await;
                sqlx::query("DELETE FROM samples WHERE t_us < $1")
                    .bind(to_db(raw_before_us))
                    .execute(pool)
                    .await?;
                sqlx::query("DELETE FROM rollups WHERE minute_us < $1")
                    .bind(to_db(rollups_before_us))
                    .execute(pool)
                    .await?;
                Ok(Vec::new())
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(LOCK_KEY)
                    .execute(&mut *tx)
                    .await?;
                let rows = sqlx::query(
                    "SELECT c.relname, p.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i \
                     JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
                     WHERE p.relname IN ('samples', 'rollups')",
                )
                .fetch_all(&mut *tx)
                .await?;
                let mut dropped = Vec::new();
                for r in &rows {
                    let (name, parent, bound): (String, String, String) =
                        (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
                    let before =
                        if parent == "samples" { raw_before_us } else { rollups_before_us };
                    if upper_bound(&bound).is_some_and(|to| to <= to_db(before)) {
                        sqlx::query(&format!("DROP TABLE {name}")).execute(&mut *tx).await?;
                        dropped.push(name);
                    }
                }
                sqlx::query("DELETE FROM samples_default WHERE t_us < $1")
                    .bind(to_db(raw_before_us))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM rollups_default WHERE minute_us < $1")
                    .bind(to_db(rollups_before_us))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(dropped)
            }
        }
    }
}

/// The upper bound of a range partition's `FOR VALUES FROM (a) TO (b)`.
fn upper_bound(bound: &str) -> Option<i64> {
    let to = bound.split(" TO (").nth(1)?;
    to.trim_end_matches(')').trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip_and_partitions_are_named_by_day_and_month() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(20_792), (2026, 12, 5));
        for d in [-1000i64, 0, 59, 60, 20_792, 40_000] {
            let (y, m, dd) = civil(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        let p = partitions_for(20_792 * DAY_US + 5);
        assert_eq!(p[0].0, "samples_20261205");
        assert_eq!((p[0].2, p[0].3), (20_792 * DAY_US, 20_793 * DAY_US));
        assert_eq!(p[1].0, "rollups_202612");
        assert_eq!(upper_bound("FOR VALUES FROM ('1') TO ('2')"), None);
        assert_eq!(upper_bound("FOR VALUES FROM (1) TO (2)"), Some(2));
    }
}
