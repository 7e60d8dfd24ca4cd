//! A batch of a stream stored: checked against what is stored (sequence, time order, counters
//! that only grow), its samples written (PostgreSQL: binary `COPY`), the per-minute rollups and
//! the stream's newest state updated, all in one transaction with the stream's row locked, so a
//! resend, a replica racing another, or a crash mid-way stores every sample exactly once.

use powerstack_api::site::{BatchStoredV1, BatchV1, MAX_BATCH_SAMPLES};
use sqlx::Row;

use super::{Store, StoreError, node_watts, parts_of};
use crate::db::{decode_counters, encode_counters, from_db, on_db, to_db};

/// A minute, µs.
pub const MINUTE_US: u64 = 60_000_000;

/// What a batch may claim.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IngestLimits {
    /// How far ahead of the site's clock a sample may be, µs.
    pub max_ahead_us: u64,
    /// How many times its `max_power_watts` a domain may seem to draw between two samples before
    /// the batch is refused as impossible.
    pub max_power_factor: f64,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits { max_ahead_us: 300_000_000, max_power_factor: 4.0 }
    }
}

/// The stream as the batch finds it.
struct Head {
    id: i32,
    node: String,
    domains: Vec<powerstack_api::site::StreamDomainV1>,
    last_seq: u64,
    first_us: Option<u64>,
    last: Option<(u64, Vec<u64>)>,
}

/// One minute's rollup from a batch: the minute, its newest sample, the highest node power of
/// the intervals ending in it, and how many samples it got.
#[derive(Debug, PartialEq)]
struct Minute {
    minute_us: u64,
    t_us: u64,
    counters: Vec<u64>,
    peak_watts: Option<f64>,
    samples: u64,
}

/// Checks `samples` against the stream: width, time order after its newest sample, not ahead of
/// `now_us`, counters that never go back nor grow faster than a domain can draw.
fn check(
    head: &Head,
    samples: &[Vec<u64>],
    now_us: u64,
    limits: &IngestLimits,
) -> Result<(), StoreError> {
    let width = head.domains.len() + 1;
    let mut prev: Option<(u64, &[u64])> = head.last.as_ref().map(|(t, c)| (*t, c.as_slice()));
    for (i, s) in samples.iter().enumerate() {
        if s.len() != width {
            return Err(StoreError::Invalid(format!(
                "samples[{i}] has {} values; this stream's samples are [unix_us, then {} counters]",
                s.len(),
                width - 1
            )));
        }
        let t = s[0];
        if t > now_us.saturating_add(limits.max_ahead_us) {
            return Err(StoreError::Invalid(format!(
                "samples[{i}] is {:.0} s ahead of the site's clock: check the node's clock (NTP)",
                (t - now_us) as f64 / 1e6
            )));
        }
        if let Some((pt, pc)) = prev {
            if t <= pt {
                return Err(StoreError::Conflict(format!(
                    "samples[{i}] at {t} µs is not after the stream's previous sample at {pt} µs: \
                     the node's clock went back, or these samples were stored under another batch"
                )));
            }
            for (c, d) in head.domains.iter().enumerate() {
                let (a, b) = (pc[c], s[c + 1]);
                if b < a {
                    return Err(StoreError::Invalid(format!(
                        "samples[{i}]: the {} {} counter went back from {a} to {b}; counters of one stream only grow",
                        d.domain, d.index
                    )));
                }
                if let Some(max) = d.max_power_watts.filter(|m| *m > 0.0) {
                    let watts = (b - a) as f64 * d.joules_per_tick / ((t - pt) as f64 / 1e6);
                    if watts > max * limits.max_power_factor {
                        return Err(StoreError::Invalid(format!(
                            "samples[{i}]: the {} {} counter says {watts:.0} W, beyond what it can draw ({max:.0} W)",
                            d.domain, d.index
                        )));
                    }
                }
            }
        }
        prev = Some((t, &s[1..]));
    }
    Ok(())
}

/// The rollups of `samples` (after the stream's newest stored sample `last`), minute by minute.
fn minutes(
    parts: &[(usize, f64)],
    last: Option<&(u64, Vec<u64>)>,
    samples: &[Vec<u64>],
) -> Vec<Minute> {
    let mut out: Vec<Minute> = Vec::new();
    let mut prev: Option<(u64, &[u64])> = last.map(|(t, c)| (*t, c.as_slice()));
    for s in samples {
        let (t, counters) = (s[0], &s[1..]);
        let watts = prev.and_then(|(pt, pc)| node_watts(parts, pc, counters, t - pt));
        let minute_us = t - t % MINUTE_US;
        match out.last_mut() {
            Some(m) if m.minute_us == minute_us => {
                m.t_us = t;
                m.counters = counters.to_vec();
                m.peak_watts = max_opt(m.peak_watts, watts);
                m.samples += 1;
            }
            _ => out.push(Minute {
                minute_us,
                t_us: t,
                counters: counters.to_vec(),
                peak_watts: watts,
                samples: 1,
            }),
        }
        prev = Some((t, counters));
    }
    out
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// The binary `COPY` payload of `samples` of stream `id`.
fn copy_payload(id: i32, samples: &[Vec<u64>]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(
        19 + samples.len() * (2 + 8 + 12 + 4 + 8 * samples.first().map_or(0, Vec::len)) + 2,
    );
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes());
    for s in samples {
        buf.extend_from_slice(&3i16.to_be_bytes());
        buf.extend_from_slice(&4i32.to_be_bytes());
        buf.extend_from_slice(&id.to_be_bytes());
        buf.extend_from_slice(&8i32.to_be_bytes());
        buf.extend_from_slice(&to_db(s[0]).to_be_bytes());
        let counters = encode_counters(&s[1..]);
        buf.extend_from_slice(&i32::try_from(counters.len()).unwrap_or(i32::MAX).to_be_bytes());
        buf.extend_from_slice(&counters);
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    buf
}

const HEAD_SQL: &str = "SELECT s.id, n.name, s.domains, s.last_seq, s.first_us, s.last_us, s.last_counters \
     FROM streams s JOIN nodes n ON n.id = s.node_id WHERE s.stream = $1";

const ROLLUP_SQL: &str = "INSERT INTO rollups (stream_id, minute_us, t_us, counters, peak_watts, samples) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (stream_id, minute_us) DO UPDATE SET \
     t_us = CASE WHEN excluded.t_us > rollups.t_us THEN excluded.t_us ELSE rollups.t_us END, \
     counters = CASE WHEN excluded.t_us > rollups.t_us THEN excluded.counters ELSE rollups.counters END, \
     peak_watts = CASE WHEN rollups.peak_watts IS NULL OR excluded.peak_watts > rollups.peak_watts \
     THEN excluded.peak_watts ELSE rollups.peak_watts END, \
     samples = rollups.samples + excluded.samples";

const UPDATE_SQL: &str = "UPDATE streams SET last_seq = $1, first_us = COALESCE(first_us, $2), last_us = $3, \
     last_counters = $4, power_watts = COALESCE($5, power_watts) WHERE id = $6";

impl Store {
    /// Stores batch `batch` of stream `stream`, pushed for node `node`, at the site's time
    /// `now_us`. A batch whose sequence number is not above the stream's is a resend: answered,
    /// nothing stored.
    pub async fn ingest(
        &self,
        node: &str,
        stream: &str,
        batch: &BatchV1,
        now_us: u64,
        limits: &IngestLimits,
    ) -> Result<BatchStoredV1, StoreError> {
        if batch.samples.len() > MAX_BATCH_SAMPLES {
            return Err(StoreError::Invalid(format!(
                "a batch carries at most {MAX_BATCH_SAMPLES} samples, this one {}: split it",
                batch.samples.len()
            )));
        }
        if batch.seq == 0 {
            return Err(StoreError::Invalid("seq starts at 1".into()));
        }
        let _turn = self.turn().await;
        let lock = if self.db.is_postgres() { " FOR UPDATE OF s" } else { "" };
        on_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let row = sqlx::query(&format!("{HEAD_SQL}{lock}"))
                .bind(stream)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!(
                    "stream {stream} of node {node} is not registered: register it first (PUT /v1/nodes/{node}/streams/{stream})"
                )))?;
            let domains: String = row.try_get(2)?;
            let last_us: Option<i64> = row.try_get(5)?;
            let last_counters: Option<Vec<u8>> = row.try_get(6)?;
            let head = Head {
                id: row.try_get(0)?,
                node: row.try_get(1)?,
                domains: serde_json::from_str(&domains)
                    .map_err(|e| StoreError::Unavailable(format!("stored domains unreadable: {e}")))?,
                last_seq: from_db(row.try_get(3)?),
                first_us: row.try_get::<Option<i64>, _>(4)?.map(from_db),
                last: last_us.map(from_db).zip(last_counters.as_deref().map(decode_counters)),
            };
            if head.node != node {
                return Err(StoreError::Conflict(format!("stream {stream} belongs to node {}, not {node}", head.node)));
            }
            if batch.seq <= head.last_seq {
                return Ok(BatchStoredV1 { stored: 0, duplicate: true, last_seq: head.last_seq });
            }
            check(&head, &batch.samples, now_us, limits)?;
            let parts = parts_of(&head.domains);
            let minutes = minutes(&parts, head.last.as_ref(), &batch.samples);
            tx.insert_samples(head.id, &batch.samples).await?;
            for m in &minutes {
                sqlx::query(ROLLUP_SQL)
                    .bind(head.id)
                    .bind(to_db(m.minute_us))
                    .bind(to_db(m.t_us))
                    .bind(encode_counters(&m.counters))
                    .bind(m.peak_watts)
                    .bind(to_db(m.samples))
                    .execute(&mut *tx)
                    .await?;
            }
            let newest = batch.samples.last();
            let before_newest = batch.samples.len().checked_sub(2).and_then(|i| batch.samples.get(i));
            let power = match (newest, before_newest.map(|s| (s[0], &s[1..])).or(head.last.as_ref().map(|(t, c)| (*t, c.as_slice())))) {
                (Some(n), Some((pt, pc))) => node_watts(&parts, pc, &n[1..], n[0].saturating_sub(pt)),
                _ => None,
            };
            let (last_t, last_c) = match newest {
                Some(n) => (Some(n[0]), Some(encode_counters(&n[1..]))),
                None => (head.last.as_ref().map(|l| l.0), head.last.as_ref().map(|l| encode_counters(&l.1))),
            };
            let first = head.first_us.or(batch.samples.first().map(|s| s[0]));
            sqlx::query(UPDATE_SQL)
                .bind(to_db(batch.seq))
                .bind(first.map(to_db))
                .bind(last_t.map(to_db))
                .bind(last_c)
                .bind(power)
                .bind(head.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(BatchStoredV1 { stored: batch.samples.len() as u64, duplicate: false, last_seq: batch.seq })
        })
    }
}

/// The samples' insert, each dialect its own way: binary `COPY` on PostgreSQL, one prepared
/// insert a row on SQLite.
trait InsertSamples {
    async fn insert_samples(&mut self, id: i32, samples: &[Vec<u64>]) -> Result<(), StoreError>;
}

impl InsertSamples for sqlx::PgConnection {
    async fn insert_samples(&mut self, id: i32, samples: &[Vec<u64>]) -> Result<(), StoreError> {
        if samples.is_empty() {
            return Ok(());
        }
        let mut copy = self
            .copy_in_raw("COPY samples (stream_id, t_us, counters) FROM STDIN (FORMAT binary)")
            .await?;
        copy.send(copy_payload(id, samples)).await?;
        copy.finish().await?;
        Ok(())
    }
}

impl InsertSamples for sqlx::SqliteConnection {
    async fn insert_samples(&mut self, id: i32, samples: &[Vec<u64>]) -> Result<(), StoreError> {
        for s in samples {
            sqlx::query("INSERT INTO samples (stream_id, t_us, counters) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(to_db(s[0]))
                .bind(encode_counters(&s[1..]))
                .execute(&mut *self)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_keep_the_newest_counters_and_the_highest_power() {
        let parts = [(0usize, 1.0)];
        let last = (59_000_000u64, vec![0u64]);
        let samples = vec![vec![60_000_000, 100], vec![61_000_000, 400], vec![120_000_000, 500]];
        let m = minutes(&parts, Some(&last), &samples);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].minute_us, m[0].t_us, m[0].samples), (60_000_000, 61_000_000, 2));
        assert_eq!(m[0].counters, vec![400]);
        assert_eq!(m[0].peak_watts, Some(300.0));
        assert!((m[1].peak_watts.unwrap() - 100.0 / 59.0).abs() < 1e-9);
    }
}
