//! A group of batches in one transaction: the streams' heads from the store's memory (read from
//! the database when not known), the plan ([`super::plan`]), resends confirmed against the stored
//! samples, the samples written (PostgreSQL: one binary `COPY`; SQLite: a prepared insert a
//! row), the minutes made stale noted, committed; on a key conflict (a replica stored some of
//! these samples meanwhile) the group's streams are forgotten and the group planned once more.
//!
//! The group is planned [`PLAN_CHUNK`] batches at a time, each chunk's rows sent as soon as it is
//! planned: the database takes in one chunk while the next is checked.

use std::collections::BTreeSet;

use powerstack_api::site::BatchStoredV1;
use sqlx::Row;

use super::{BatchIn, COPY_TRAILER, Head, IngestLimits, Planned, copy_header, copy_rows, plan};
use crate::db::{decode_counters, encode_counters, from_db, on_db, to_db};
use crate::store::{Store, StoreError};

/// How many batches are planned before their rows are sent.
const PLAN_CHUNK: usize = 1024;

/// A chunk's rows: each stream's row id and `[unix_us, counters...]`.
type Rows<'a> = Vec<(i32, &'a [u64])>;

/// What a dialect does its own way.
trait Dialect {
    async fn registrations(
        &mut self,
        streams: &[String],
    ) -> Result<Vec<(String, i32, String, String)>, sqlx::Error>;
    /// Writes each chunk's rows as the iterator plans it.
    async fn insert_chunks<'a>(
        &mut self,
        chunks: impl Iterator<Item = Rows<'a>>,
    ) -> Result<(), sqlx::Error>;
}

const REGISTRATIONS: &str =
    "SELECT s.stream, s.id, n.name, s.domains FROM streams s JOIN nodes n ON n.id = s.node_id";

impl Dialect for sqlx::PgConnection {
    async fn registrations(
        &mut self,
        streams: &[String],
    ) -> Result<Vec<(String, i32, String, String)>, sqlx::Error> {
        let rows = sqlx::query(&format!("{REGISTRATIONS} WHERE s.stream = ANY($1)"))
            .bind(streams)
            .fetch_all(&mut *self)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect()
    }

    async fn insert_chunks<'a>(
        &mut self,
        chunks: impl Iterator<Item = Rows<'a>>,
    ) -> Result<(), sqlx::Error> {
        let mut chunks = chunks.filter(|rows| !rows.is_empty());
        let Some(first) = chunks.next() else {
            return Ok(());
        };
        let mut copy = self
            .copy_in_raw("COPY samples (stream_id, t_us, counters) FROM STDIN (FORMAT binary)")
            .await?;
        let mut buf = Vec::new();
        copy_header(&mut buf);
        copy_rows(&mut buf, &first);
        copy.send(buf.as_slice()).await?;
        for rows in chunks {
            buf.clear();
            copy_rows(&mut buf, &rows);
            copy.send(buf.as_slice()).await?;
        }
        copy.send(&COPY_TRAILER[..]).await?;
        copy.finish().await?;
        Ok(())
    }
}

impl Dialect for sqlx::SqliteConnection {
    async fn registrations(
        &mut self,
        streams: &[String],
    ) -> Result<Vec<(String, i32, String, String)>, sqlx::Error> {
        let ids = serde_json::to_string(streams).unwrap_or_else(|_| "[]".into());
        let rows = sqlx::query(&format!(
            "{REGISTRATIONS} WHERE s.stream IN (SELECT value FROM json_each($1))"
        ))
        .bind(ids)
        .fetch_all(&mut *self)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect()
    }

    async fn insert_chunks<'a>(
        &mut self,
        chunks: impl Iterator<Item = Rows<'a>>,
    ) -> Result<(), sqlx::Error> {
        for rows in chunks {
            for (id, s) in rows {
                sqlx::query("INSERT INTO samples (stream_id, t_us, counters) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(to_db(s[0]))
                    .bind(encode_counters(&s[1..]))
                    .execute(&mut *self)
                    .await?;
            }
        }
        Ok(())
    }
}

/// Why a group's transaction failed: a key conflict (plan again) or anything else.
enum Failed {
    Conflict,
    Other(StoreError),
}

impl From<sqlx::Error> for Failed {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => Failed::Conflict,
            _ => Failed::Other(e.into()),
        }
    }
}

impl From<StoreError> for Failed {
    fn from(e: StoreError) -> Self {
        Failed::Other(e)
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
        let _turn = self.turn().await;
        for attempt in 0..2 {
            let missing: Vec<String> = {
                let known = self.heads.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let mut m: Vec<String> = batches
                    .iter()
                    .filter(|b| !known.contains_key(&b.stream))
                    .map(|b| b.stream.clone())
                    .collect();
                m.sort_unstable();
                m.dedup();
                m
            };
            let read = self.read_heads(&missing).await?;
            self.heads.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(read);
            match self.try_group(batches, limits).await {
                Ok(answers) => return Ok(answers),
                Err(failed) => {
                    // What the plan believed of these streams may not have been stored.
                    let mut known =
                        self.heads.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    for b in batches {
                        known.remove(&b.stream);
                    }
                    drop(known);
                    match failed {
                        Failed::Conflict if attempt == 0 => continue,
                        Failed::Conflict => {
                            return Err(StoreError::Unavailable(
                                "samples stored meanwhile by another replica: send again".into(),
                            ));
                        }
                        Failed::Other(e) => return Err(e),
                    }
                }
            }
        }
        Err(StoreError::Unavailable("the group could not be stored: send again".into()))
    }

    /// The group in one transaction, planned on the store's memory of its streams (which the
    /// caller forgets when this fails).
    async fn try_group(
        &self,
        batches: &[BatchIn],
        limits: &IngestLimits,
    ) -> Result<Vec<Result<BatchStoredV1, StoreError>>, Failed> {
        on_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let mut planned: Vec<Planned> = Vec::with_capacity(batches.len());
            let mut dirty: BTreeSet<(i32, u64)> = BTreeSet::new();
            let chunks = batches.chunks(PLAN_CHUNK).map(|chunk| {
                let mut known = self.heads.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let (answers, writes) = plan(&mut known, chunk, limits);
                planned.extend(answers);
                dirty.extend(writes.dirty);
                writes.rows
            });
            tx.insert_chunks(chunks).await?;
            for (id, minute) in &dirty {
                sqlx::query("INSERT INTO rollup_dirty (stream_id, minute_us) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(id)
                    .bind(to_db(*minute))
                    .execute(&mut *tx)
                    .await?;
            }
            // Resends are confirmed after the group's own samples are in: a batch sent twice in one
            // group finds its first copy.
            let mut answers = Vec::with_capacity(planned.len());
            for p in planned {
                answers.push(match p {
                    Planned::Done(a) => a,
                    Planned::Stored { id, first, last } => {
                        let same = |row: &Vec<u64>, stored: Option<Vec<u8>>| stored.is_some_and(|c| decode_counters(&c) == row[1..]);
                        let q = "SELECT counters FROM samples WHERE stream_id = $1 AND t_us = $2";
                        let a: Option<Vec<u8>> = sqlx::query_scalar(q).bind(id).bind(to_db(first[0])).fetch_optional(&mut *tx).await?;
                        let b: Option<Vec<u8>> = sqlx::query_scalar(q).bind(id).bind(to_db(last[0])).fetch_optional(&mut *tx).await?;
                        if same(&first, a) && same(&last, b) {
                            Ok(BatchStoredV1 { stored: 0, duplicate: true })
                        } else {
                            Err(StoreError::Conflict(format!(
                                "samples from {} µs are not after the stream's newest stored sample: \
                                 the node's clock went back, or they differ from what was stored at those times",
                                first[0]
                            )))
                        }
                    }
                });
            }
            tx.commit().await?;
            Ok(answers)
        })
    }

    /// Reads the heads of `missing`: registration and newest sample.
    async fn read_heads(&self, missing: &[String]) -> Result<Vec<(String, Head)>, StoreError> {
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        let loaded = on_db!(&self.db, pool => {
            let mut conn = pool.acquire().await?;
            let regs = conn.registrations(missing).await?;
            let mut out = Vec::with_capacity(regs.len());
            for (stream, id, node, domains) in regs {
                let newest = sqlx::query("SELECT t_us, counters FROM samples WHERE stream_id = $1 ORDER BY t_us DESC LIMIT 1")
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
                let last = match newest {
                    Some(r) => Some((from_db(r.try_get(0)?), decode_counters(&r.try_get::<Vec<u8>, _>(1)?))),
                    None => None,
                };
                let domains = serde_json::from_str(&domains)
                    .map_err(|e| StoreError::Unavailable(format!("stored domains unreadable: {e}")))?;
                out.push((stream, Head::new(id, node, domains, last)));
            }
            out
        });
        Ok(loaded)
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
