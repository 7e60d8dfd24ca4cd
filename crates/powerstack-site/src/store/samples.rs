//! Reading a stream's samples back: the rows of a window with the samples just outside it (so a
//! counter's value at either edge is on the line between the samples around it), from the raw
//! samples or, coarser, from the per-minute rollups.

use powerstack_job::Rows;
use powerstack_job::figures::Series;
use sqlx::Row;

use super::ingest::MINUTE_US;
use super::{Store, StoreError, StreamRow};
use crate::db::{decode_counters, from_db, on_db, to_db};

/// Which table a window is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamSpan {
    /// Every stored sample.
    Raw,
    /// The newest sample of each minute (exact counters at those times).
    Minutes,
}

impl StreamSpan {
    fn table(self) -> (&'static str, &'static str) {
        match self {
            StreamSpan::Raw => ("samples", "t_us"),
            StreamSpan::Minutes => ("rollups", "minute_us"),
        }
    }
}

impl Store {
    /// The samples of `stream` from the last one at or before `from_us` to the first one at or
    /// after `to_us` (each edge sample only when it exists), from `span`'s table.
    pub async fn rows(
        &self,
        stream: &StreamRow,
        from_us: u64,
        to_us: u64,
        span: StreamSpan,
    ) -> Result<Rows, StoreError> {
        let (table, key) = span.table();
        let before = format!(
            "SELECT t_us, counters FROM {table} WHERE stream_id = $1 AND {key} <= $2 AND t_us <= $2 \
             ORDER BY {key} DESC LIMIT 1"
        );
        let inside = format!(
            "SELECT t_us, counters FROM {table} WHERE stream_id = $1 AND {key} >= $2 AND {key} < $3 \
             AND t_us > $4 AND t_us < $3 ORDER BY {key}"
        );
        let after = format!(
            "SELECT t_us, counters FROM {table} WHERE stream_id = $1 AND {key} >= $2 AND t_us >= $3 \
             ORDER BY {key} LIMIT 1"
        );
        let id = i32::try_from(stream.id).unwrap_or(i32::MAX);
        let mut out = Rows::new(stream.domains.len());
        on_db!(&self.db, pool => {
            let mut conn = pool.acquire().await?;
            let first = sqlx::query(&before).bind(id).bind(to_db(from_us)).fetch_optional(&mut *conn).await?;
            let middle = sqlx::query(&inside)
                .bind(id)
                .bind(to_db(from_us.saturating_sub(MINUTE_US)))
                .bind(to_db(to_us))
                .bind(to_db(from_us))
                .fetch_all(&mut *conn)
                .await?;
            let last = sqlx::query(&after)
                .bind(id)
                .bind(to_db(to_us.saturating_sub(MINUTE_US)))
                .bind(to_db(to_us))
                .fetch_optional(&mut *conn)
                .await?;
            for r in first.iter().chain(middle.iter()).chain(last.iter()) {
                let t: i64 = r.try_get(0)?;
                let c: Vec<u8> = r.try_get(1)?;
                // An edge row may also be the first or last inside.
                let t = from_db(t);
                if out.len().checked_sub(1).and_then(|i| out.time(i)) == Some(t) {
                    continue;
                }
                out.push(t, &decode_counters(&c));
            }
            Ok(out)
        })
    }

    /// Every stream's per-minute rollups of the minutes ending in `[from_us, to_us]`: by stream
    /// row id, each rollup's sample time and counters, in time order. One query, whatever the
    /// number of nodes (the site's power over time).
    pub async fn minutes_between(
        &self,
        from_us: u64,
        to_us: u64,
    ) -> Result<std::collections::BTreeMap<i64, Vec<(u64, Vec<u64>)>>, StoreError> {
        let mut out: std::collections::BTreeMap<i64, Vec<(u64, Vec<u64>)>> = Default::default();
        on_db!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT stream_id, t_us, counters FROM rollups \
                 WHERE minute_us >= $1 AND minute_us <= $2 ORDER BY stream_id, minute_us",
            )
            .bind(to_db(from_us))
            .bind(to_db(to_us))
            .fetch_all(pool)
            .await?;
            for r in &rows {
                let id: i32 = r.try_get(0)?;
                let t: i64 = r.try_get(1)?;
                let c: Vec<u8> = r.try_get(2)?;
                out.entry(i64::from(id)).or_default().push((from_db(t), decode_counters(&c)));
            }
            Ok(out)
        })
    }
}

/// A long window read cheaply: raw samples near its two edges, the per-minute rollups between
/// (exact counters at those times, so energies stay exact), and what the rollups say of the
/// minutes inside it.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// The rows: raw near the edges, one a minute between.
    pub rows: Rows,
    /// For a long window, the raw samples in it and the highest node power between two samples
    /// inside it, from the rollups; `None`: `rows` are every raw sample.
    pub summary: Option<WindowSummary>,
}

/// What the rollups (and the raw edges) say of a long window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowSummary {
    /// Raw samples in the window.
    pub samples: u64,
    /// The highest node power between two consecutive samples inside the window, W.
    pub peak_watts: Option<f64>,
}

/// Raw samples are read this far into a long window from each edge.
pub const EDGE_US: u64 = 2 * MINUTE_US;

fn floor_minute(t: u64) -> u64 {
    t - t % MINUTE_US
}

fn ceil_minute(t: u64) -> u64 {
    floor_minute(t.saturating_add(MINUTE_US - 1))
}

impl Store {
    /// The samples of `stream` over `[from_us, to_us]` for figures: every raw sample for a window
    /// up to three times [`EDGE_US`] long; for a longer one, raw samples within [`EDGE_US`] of
    /// each edge and the minutes' newest samples between, with a [`WindowSummary`], so the cost
    /// grows with minutes, not samples.
    pub async fn window(
        &self,
        stream: &StreamRow,
        from_us: u64,
        to_us: u64,
    ) -> Result<Window, StoreError> {
        if to_us.saturating_sub(from_us) <= 3 * EDGE_US {
            return Ok(Window {
                rows: self.rows(stream, from_us, to_us, StreamSpan::Raw).await?,
                summary: None,
            });
        }
        let (a, b) = (ceil_minute(from_us + EDGE_US), floor_minute(to_us - EDGE_US));
        let head = self.rows(stream, from_us, a, StreamSpan::Raw).await?;
        let middle = self.rows(stream, a, b, StreamSpan::Minutes).await?;
        let tail = self.rows(stream, b, to_us, StreamSpan::Raw).await?;
        let mut rows = Rows::new(stream.domains.len());
        for part in [&head, &middle, &tail] {
            for i in 0..part.len() {
                if let Some((t, c)) = part.row(i)
                    && rows
                        .len()
                        .checked_sub(1)
                        .and_then(|l| rows.time(l))
                        .is_none_or(|last| t > last)
                {
                    rows.push(t, c);
                }
            }
        }
        let (m0, m1) = (ceil_minute(from_us), floor_minute(to_us));
        let count = |r: &Rows, lo: u64, hi: u64| {
            (0..r.len()).filter_map(|i| r.time(i)).filter(|t| (lo..hi).contains(t)).count() as u64
        };
        let edges = count(&head, from_us, m0) + count(&tail, m1, to_us.saturating_add(1));
        let id = i32::try_from(stream.id).unwrap_or(i32::MAX);
        let (inside, peak) = on_db!(&self.db, pool => {
            let r = sqlx::query(
                "SELECT CAST(COALESCE(SUM(samples), 0) AS BIGINT), MAX(CASE WHEN minute_us >= $2 THEN peak_watts END) FROM rollups \
                 WHERE stream_id = $1 AND minute_us >= $3 AND minute_us < $4",
            )
            .bind(id)
            .bind(to_db(m0 + MINUTE_US))
            .bind(to_db(m0))
            .bind(to_db(m1))
            .fetch_one(pool)
            .await?;
            (r.try_get::<i64, _>(0)?, r.try_get::<Option<f64>, _>(1)?)
        });
        Ok(Window {
            rows,
            summary: Some(WindowSummary { samples: edges + from_db(inside), peak_watts: peak }),
        })
    }
}
