//! Reading a stream's samples back: the rows of a window with the samples just outside it (so a
//! counter's value at either edge is on the line between the samples around it), from the raw
//! samples or, coarser, from the per-minute rollups.

use powerstack_job::Rows;
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
}
