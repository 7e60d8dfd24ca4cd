//! Per-minute rollups and each stream's newest state, derived from the raw samples in the
//! background, so that ingest writes samples only. One replica at a time does it (an advisory
//! lock on PostgreSQL, the writer's turn on SQLite): the minutes closed since the last run (those
//! older than [`ROLLUP_LAG_US`], time for agents' normal pushes to arrive), then the minutes late
//! samples made stale. A rollup is the minute's newest sample (exact counters at that time), the
//! highest node power between two consecutive samples ending in it, and how many samples it has;
//! it is computed whole from the raw samples and overwrites what was there, so running it twice
//! changes nothing.

use powerstack_api::site::StreamDomainV1;
use sqlx::Row;

use super::ingest::{MINUTE_US, Minute, minutes};
use super::{Store, StoreError, node_watts, parts_of};
use crate::db::{decode_counters, encode_counters, from_db, on_db, to_db};

/// How long after a minute ends it is rolled up.
pub const ROLLUP_LAG_US: u64 = 2 * MINUTE_US;
/// The most minutes one run rolls up.
const MAX_MINUTES_A_RUN: u64 = 10;
/// Streams read at once.
const CHUNK: usize = 500;
/// The advisory lock key of the rollup runs.
const LOCK_KEY: i64 = 0x706f_7765_7273_726f;

/// A stream's rollups and newest state from its samples in a span.
#[derive(Debug, Default)]
struct Derived {
    minutes: Vec<Minute>,
    first_us: Option<u64>,
    last: Option<(u64, Vec<u64>)>,
    power_watts: Option<f64>,
}

/// Rollups of the minutes in `[from, to)` from `rows` (time order, starting before `from` when
/// there is a sample before), and the newest state.
fn derive(parts: &[(usize, f64)], rows: &[(u64, Vec<u64>)], from: u64, to: u64) -> Derived {
    let split = rows.partition_point(|(t, _)| *t < from);
    let before = split.checked_sub(1).map(|i| (rows[i].0, rows[i].1.clone()));
    let inside: Vec<Vec<u64>> = rows[split..]
        .iter()
        .filter(|(t, _)| *t < to)
        .map(|(t, c)| std::iter::once(*t).chain(c.iter().copied()).collect())
        .collect();
    let mut out =
        Derived { minutes: minutes(parts, before.as_ref(), &inside), ..Derived::default() };
    out.first_us = rows.first().map(|r| r.0);
    if let Some((t, c)) = rows.last() {
        out.last = Some((*t, c.clone()));
        if let Some((pt, pc)) = rows.len().checked_sub(2).map(|i| &rows[i]) {
            out.power_watts = node_watts(parts, pc, c, t - pt);
        }
    }
    out
}

/// Rolls up each `(stream, domains, from, to)` of `$spans` inside the transaction `$tx`: reads
/// the samples (from the one before `from`), writes the minutes and the stream's newest state.
macro_rules! roll_spans {
    ($tx:expr, $spans:expr) => {{
        let tx = $tx;
        let spans: &[(i32, String, u64, u64)] = $spans;
        let mut rolled = 0u64;
        for (id, domains, from, to) in spans {
            let domains: Vec<StreamDomainV1> = serde_json::from_str(domains).unwrap_or_default();
            let parts = parts_of(&domains);
            let rows = sqlx::query(
                "SELECT t_us, counters FROM samples WHERE stream_id = $1 AND t_us >= $2 AND t_us < $3 ORDER BY t_us",
            )
            .bind(id)
            .bind(to_db(from.saturating_sub(MINUTE_US)))
            .bind(to_db(*to))
            .fetch_all(&mut **tx)
            .await?;
            let mut samples = Vec::with_capacity(rows.len());
            for r in &rows {
                samples.push((from_db(r.try_get::<i64, _>(0)?), decode_counters(&r.try_get::<Vec<u8>, _>(1)?)));
            }
            let d = derive(&parts, &samples, *from, *to);
            for m in &d.minutes {
                sqlx::query(
                    "INSERT INTO rollups (stream_id, minute_us, t_us, counters, peak_watts, samples) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (stream_id, minute_us) DO UPDATE SET t_us = excluded.t_us, counters = excluded.counters, \
                     peak_watts = excluded.peak_watts, samples = excluded.samples",
                )
                .bind(id)
                .bind(to_db(m.minute_us))
                .bind(to_db(m.t_us))
                .bind(encode_counters(&m.counters))
                .bind(m.peak_watts)
                .bind(to_db(m.samples))
                .execute(&mut **tx)
                .await?;
                rolled += 1;
            }
            if let Some((t, c)) = &d.last {
                sqlx::query(
                    "UPDATE streams SET first_us = CASE WHEN first_us IS NULL OR first_us > $1 THEN $1 ELSE first_us END, \
                     last_us = CASE WHEN last_us IS NULL OR last_us < $2 THEN $2 ELSE last_us END, \
                     last_counters = CASE WHEN last_us IS NULL OR last_us <= $2 THEN $3 ELSE last_counters END, \
                     power_watts = CASE WHEN last_us IS NULL OR last_us <= $2 THEN COALESCE($4, power_watts) ELSE power_watts END \
                     WHERE id = $5",
                )
                .bind(d.first_us.map(to_db))
                .bind(to_db(*t))
                .bind(encode_counters(c))
                .bind(d.power_watts)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            }
        }
        rolled
    }};
}

impl Store {
    /// How far rollups are done, µs (0: never run).
    pub async fn rolled_up_until(&self) -> Result<u64, StoreError> {
        on_db!(&self.db, pool => {
            let t: Option<i64> = sqlx::query_scalar("SELECT done_until_us FROM rollup_state WHERE id = 1").fetch_optional(pool).await?;
            Ok(t.map_or(0, from_db))
        })
    }

    /// Rolls up what is due at `now_us`: closed minutes (at most ten a run) and stale ones.
    /// Returns the minutes rolled up (0 when another replica holds the turn).
    pub async fn roll_up(&self, now_us: u64) -> Result<u64, StoreError> {
        let _turn = self.turn().await;
        on_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            if self.db.is_postgres() {
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(LOCK_KEY).fetch_one(&mut *tx).await?;
                if !got {
                    return Ok(0);
                }
            }
            let target = now_us.saturating_sub(ROLLUP_LAG_US);
            let target = target - target % MINUTE_US;
            let done: Option<i64> = sqlx::query_scalar("SELECT done_until_us FROM rollup_state WHERE id = 1").fetch_optional(&mut *tx).await?;
            let done = match done {
                Some(d) => from_db(d),
                None => {
                    let oldest: Option<i64> = sqlx::query_scalar("SELECT MIN(t_us) FROM samples").fetch_one(&mut *tx).await?;
                    let start = oldest.map_or(target, |t| { let t = from_db(t); t - t % MINUTE_US }).min(target);
                    sqlx::query("INSERT INTO rollup_state (id, done_until_us) VALUES (1, $1)").bind(to_db(start)).execute(&mut *tx).await?;
                    start
                }
            };
            let end = target.min(done + MAX_MINUTES_A_RUN * MINUTE_US);
            let mut rolled = 0;
            if end > done {
                let active: Vec<(i32, String)> = {
                    let rows = sqlx::query("SELECT id, domains FROM streams WHERE last_us IS NULL OR last_us >= $1")
                        .bind(to_db(done.saturating_sub(10 * MINUTE_US)))
                        .fetch_all(&mut *tx)
                        .await?;
                    let mut v = Vec::with_capacity(rows.len());
                    for r in &rows {
                        v.push((r.try_get(0)?, r.try_get(1)?));
                    }
                    v
                };
                for chunk in active.chunks(CHUNK) {
                    let spans: Vec<(i32, String, u64, u64)> = chunk.iter().map(|(id, d)| (*id, d.clone(), done, end)).collect();
                    rolled += roll_spans!(&mut tx, &spans);
                }
                sqlx::query("UPDATE rollup_state SET done_until_us = $1 WHERE id = 1").bind(to_db(end)).execute(&mut *tx).await?;
            }
            // Minutes made stale by late samples.
            let dirty = sqlx::query(
                "SELECT d.stream_id, s.domains, d.minute_us FROM rollup_dirty d JOIN streams s ON s.id = d.stream_id \
                 ORDER BY d.stream_id, d.minute_us LIMIT 2000",
            )
            .fetch_all(&mut *tx)
            .await?;
            let mut spans = Vec::with_capacity(dirty.len());
            for r in &dirty {
                let minute = from_db(r.try_get::<i64, _>(2)?);
                spans.push((r.try_get::<i32, _>(0)?, r.try_get::<String, _>(1)?, minute, minute + MINUTE_US));
            }
            if !spans.is_empty() {
                rolled += roll_spans!(&mut tx, &spans);
                for (id, _, minute, _) in &spans {
                    sqlx::query("DELETE FROM rollup_dirty WHERE stream_id = $1 AND minute_us = $2")
                        .bind(id)
                        .bind(to_db(*minute))
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(rolled)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_is_derived_from_the_samples_around_it() {
        let parts = [(0usize, 1.0)];
        let rows = vec![
            (59_000_000, vec![0]),
            (60_000_000, vec![100]),
            (61_000_000, vec![400]),
            (120_000_000, vec![500]),
        ];
        let d = derive(&parts, &rows, 60_000_000, 120_000_000);
        assert_eq!(d.minutes.len(), 1);
        assert_eq!((d.minutes[0].t_us, d.minutes[0].samples), (61_000_000, 2));
        assert_eq!(d.minutes[0].peak_watts, Some(300.0));
        assert_eq!(d.first_us, Some(59_000_000));
        assert_eq!(d.last, Some((120_000_000, vec![500])));
    }
}
