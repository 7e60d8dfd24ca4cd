//! A group of batches in one transaction: the streams' rows read and locked, the plan
//! ([`super::plan`]) made, its writes done (PostgreSQL: one `COPY` and array-bound statements;
//! SQLite: prepared statements a row), committed.

use std::collections::HashMap;

use powerstack_api::site::BatchStoredV1;
use sqlx::Row;

use super::{BatchIn, Head, IngestLimits, Writes, copy_payload, plan};
use crate::db::{decode_counters, encode_counters, from_db, on_db, to_db};
use crate::store::{Store, StoreError};

const HEAD_COLUMNS: &str = "SELECT s.id, s.stream, n.name, s.domains, s.last_seq, s.first_us, s.last_us, \
     s.last_counters FROM streams s JOIN nodes n ON n.id = s.node_id";

const ROLLUP_SET: &str = "ON CONFLICT (stream_id, minute_us) DO UPDATE SET \
     t_us = CASE WHEN excluded.t_us > rollups.t_us THEN excluded.t_us ELSE rollups.t_us END, \
     counters = CASE WHEN excluded.t_us > rollups.t_us THEN excluded.counters ELSE rollups.counters END, \
     peak_watts = CASE WHEN rollups.peak_watts IS NULL OR excluded.peak_watts > rollups.peak_watts \
     THEN excluded.peak_watts ELSE rollups.peak_watts END, \
     samples = rollups.samples + excluded.samples";

/// The streams' rows, read in a way each dialect does well, and locked where it can.
trait Dialect {
    async fn heads(&mut self, streams: &[String]) -> Result<Vec<(String, Head)>, StoreError>;
    async fn write(&mut self, w: &Writes) -> Result<(), StoreError>;
}

macro_rules! head_of {
    ($r:expr) => {{
        let r = $r;
        let domains: String = r.try_get(3)?;
        let last_us: Option<i64> = r.try_get(6)?;
        let last_counters: Option<Vec<u8>> = r.try_get(7)?;
        let stream: String = r.try_get(1)?;
        let head = Head {
            id: r.try_get(0)?,
            node: r.try_get(2)?,
            domains: serde_json::from_str(&domains)
                .map_err(|e| StoreError::Unavailable(format!("stored domains unreadable: {e}")))?,
            last_seq: from_db(r.try_get(4)?),
            first_us: r.try_get::<Option<i64>, _>(5)?.map(from_db),
            last: last_us.map(from_db).zip(last_counters.as_deref().map(decode_counters)),
        };
        (stream, head)
    }};
}

impl Dialect for sqlx::PgConnection {
    async fn heads(&mut self, streams: &[String]) -> Result<Vec<(String, Head)>, StoreError> {
        let rows = sqlx::query(&format!(
            "{HEAD_COLUMNS} WHERE s.stream = ANY($1) ORDER BY s.id FOR UPDATE OF s"
        ))
        .bind(streams)
        .fetch_all(&mut *self)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(head_of!(r));
        }
        Ok(out)
    }

    async fn write(&mut self, w: &Writes) -> Result<(), StoreError> {
        if !w.rows.is_empty() {
            let rows: Vec<(i32, &[u64])> =
                w.rows.iter().map(|(id, s)| (*id, s.as_slice())).collect();
            let mut copy = self
                .copy_in_raw("COPY samples (stream_id, t_us, counters) FROM STDIN (FORMAT binary)")
                .await?;
            copy.send(copy_payload(&rows)).await?;
            copy.finish().await?;
        }
        if !w.rollups.is_empty() {
            let ms = w.rollups.values();
            sqlx::query(&format!(
                "INSERT INTO rollups (stream_id, minute_us, t_us, counters, peak_watts, samples) \
                 SELECT * FROM UNNEST($1::int4[], $2::int8[], $3::int8[], $4::bytea[], $5::float8[], $6::int8[]) {ROLLUP_SET}"
            ))
            .bind(w.rollups.keys().map(|k| k.0).collect::<Vec<i32>>())
            .bind(ms.clone().map(|m| to_db(m.minute_us)).collect::<Vec<i64>>())
            .bind(ms.clone().map(|m| to_db(m.t_us)).collect::<Vec<i64>>())
            .bind(ms.clone().map(|m| encode_counters(&m.counters)).collect::<Vec<Vec<u8>>>())
            .bind(ms.clone().map(|m| m.peak_watts).collect::<Vec<Option<f64>>>())
            .bind(ms.map(|m| to_db(m.samples)).collect::<Vec<i64>>())
            .execute(&mut *self)
            .await?;
        }
        if !w.streams.is_empty() {
            let us = w.streams.values();
            sqlx::query(
                "UPDATE streams AS s SET last_seq = v.seq, first_us = COALESCE(s.first_us, v.first_us), \
                 last_us = COALESCE(v.last_us, s.last_us), last_counters = COALESCE(v.counters, s.last_counters), \
                 power_watts = COALESCE(v.power, s.power_watts) \
                 FROM UNNEST($1::int4[], $2::int8[], $3::int8[], $4::int8[], $5::bytea[], $6::float8[]) \
                 AS v(id, seq, first_us, last_us, counters, power) WHERE s.id = v.id",
            )
            .bind(w.streams.keys().copied().collect::<Vec<i32>>())
            .bind(us.clone().map(|u| to_db(u.seq)).collect::<Vec<i64>>())
            .bind(us.clone().map(|u| u.first_us.map(to_db)).collect::<Vec<Option<i64>>>())
            .bind(us.clone().map(|u| u.last_us.map(to_db)).collect::<Vec<Option<i64>>>())
            .bind(us.clone().map(|u| u.last_counters.clone()).collect::<Vec<Option<Vec<u8>>>>())
            .bind(us.map(|u| u.power_watts).collect::<Vec<Option<f64>>>())
            .execute(&mut *self)
            .await?;
        }
        Ok(())
    }
}

impl Dialect for sqlx::SqliteConnection {
    async fn heads(&mut self, streams: &[String]) -> Result<Vec<(String, Head)>, StoreError> {
        let ids = serde_json::to_string(streams).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let rows = sqlx::query(&format!(
            "{HEAD_COLUMNS} WHERE s.stream IN (SELECT value FROM json_each($1))"
        ))
        .bind(ids)
        .fetch_all(&mut *self)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(head_of!(r));
        }
        Ok(out)
    }

    async fn write(&mut self, w: &Writes) -> Result<(), StoreError> {
        for (id, s) in &w.rows {
            sqlx::query("INSERT INTO samples (stream_id, t_us, counters) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(to_db(s[0]))
                .bind(encode_counters(&s[1..]))
                .execute(&mut *self)
                .await?;
        }
        for ((id, _), m) in &w.rollups {
            sqlx::query(&format!(
                "INSERT INTO rollups (stream_id, minute_us, t_us, counters, peak_watts, samples) \
                 VALUES ($1, $2, $3, $4, $5, $6) {ROLLUP_SET}"
            ))
            .bind(id)
            .bind(to_db(m.minute_us))
            .bind(to_db(m.t_us))
            .bind(encode_counters(&m.counters))
            .bind(m.peak_watts)
            .bind(to_db(m.samples))
            .execute(&mut *self)
            .await?;
        }
        for (id, u) in &w.streams {
            sqlx::query(
                "UPDATE streams SET last_seq = $1, first_us = COALESCE(first_us, $2), last_us = COALESCE($3, last_us), \
                 last_counters = COALESCE($4, last_counters), power_watts = COALESCE($5, power_watts) WHERE id = $6",
            )
            .bind(to_db(u.seq))
            .bind(u.first_us.map(to_db))
            .bind(u.last_us.map(to_db))
            .bind(&u.last_counters)
            .bind(u.power_watts)
            .bind(id)
            .execute(&mut *self)
            .await?;
        }
        Ok(())
    }
}

impl Store {
    /// Stores a group of batches in one transaction: each batch's answer in order. `Err`: the
    /// transaction failed (the database is away) and nothing of the group was stored.
    pub async fn ingest_group(
        &self,
        batches: &[BatchIn],
        limits: &IngestLimits,
    ) -> Result<Vec<Result<BatchStoredV1, StoreError>>, StoreError> {
        let mut streams: Vec<String> = batches.iter().map(|b| b.stream.clone()).collect();
        streams.sort();
        streams.dedup();
        let _turn = self.turn().await;
        on_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let mut heads: HashMap<String, Head> = tx.heads(&streams).await?.into_iter().collect();
            let (answers, writes) = plan(&mut heads, batches, limits);
            tx.write(&writes).await?;
            tx.commit().await?;
            Ok(answers)
        })
    }

    /// Stores one batch (a group of one): see [`Store::ingest_group`].
    pub async fn ingest(
        &self,
        node: &str,
        stream: &str,
        batch: &powerstack_api::site::BatchV1,
        now_us: u64,
        limits: &IngestLimits,
    ) -> Result<BatchStoredV1, StoreError> {
        let one =
            BatchIn { node: node.into(), stream: stream.into(), batch: batch.clone(), now_us };
        self.ingest_group(std::slice::from_ref(&one), limits)
            .await?
            .pop()
            .unwrap_or_else(|| Err(StoreError::Unavailable("no answer for the batch".into())))
    }
}
