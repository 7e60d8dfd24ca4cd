//! Nodes and their streams: registration (idempotent per stream) and the node listing.

use powerstack_api::site::{
    MAX_STREAM_COLUMNS, SiteNodeV1, StreamDomainV1, StreamRegisterV1, StreamRegisteredV1,
    control_url_problem,
};
use powerstack_model::DomainKind;
use sqlx::Row;

use super::{Store, StoreError};
use crate::db::{decode_counters, from_db, on_db, to_db};
use crate::store::{node_watts, parts_of};

/// How far back the node listing reads samples for a node's newest ones.
pub const RECENT_US: u64 = 86_400_000_000;
/// How far the newest state the rollups keep of a stream may lag its samples (a window that
/// begins up to this long after a stream's known newest sample still reads it).
pub const STATE_LAG_US: u64 = 15 * 60_000_000;

/// A node as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeRow {
    /// Its name at the site.
    pub name: String,
    /// Its hostname.
    pub hostname: String,
    /// Its simulated profile.
    pub simulated: Option<String>,
    /// Where its agent takes caps, as last registered.
    pub control_url: Option<String>,
}

/// Where a node's agent takes caps, as its agent last registered (`node_controls`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeControlRow {
    /// The node's name at the site.
    pub node: String,
    /// The agent's HTTP API, an `http://` or `https://` URL.
    pub url: String,
    /// When the agent registered it, µs since the Unix epoch.
    pub updated_unix_us: i64,
}

/// A stream as stored, with where it stands.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamRow {
    /// The stream's row id.
    pub id: i64,
    /// The agent's stream id.
    pub stream: String,
    /// Its node.
    pub node: String,
    /// When the agent run began, µs.
    pub started_us: u64,
    /// Its columns.
    pub domains: Vec<StreamDomainV1>,
    /// Its oldest stored sample, µs.
    pub first_us: Option<u64>,
    /// Its newest stored sample, µs.
    pub last_us: Option<u64>,
    /// Node power between its two newest samples, W.
    pub power_watts: Option<f64>,
}

/// Checks a registration: columns within bounds, known kinds, positive units.
fn check(reg: &StreamRegisterV1) -> Result<(), StoreError> {
    let invalid = |why: String| Err(StoreError::Invalid(why));
    if reg.domains.is_empty() || reg.domains.len() > MAX_STREAM_COLUMNS {
        return invalid(format!(
            "a stream has 1 to {MAX_STREAM_COLUMNS} domains, this one {}",
            reg.domains.len()
        ));
    }
    if reg.hostname.is_empty()
        || reg.hostname.chars().count() > 255
        || reg.hostname.chars().any(char::is_control)
    {
        return invalid("hostname: 1 to 255 characters, no control character".into());
    }
    if let Some(why) = reg.control_url.as_deref().and_then(control_url_problem) {
        return invalid(why);
    }
    if i64::try_from(reg.started_unix_us).is_err() {
        return invalid(format!("started_unix_us: at most {} µs", i64::MAX));
    }
    for (i, d) in reg.domains.iter().enumerate() {
        if d.domain.parse::<DomainKind>().is_err() {
            return invalid(format!("domains[{i}]: unknown domain kind {:?}", d.domain));
        }
        if !(d.joules_per_tick.is_finite() && d.joules_per_tick > 0.0 && d.joules_per_tick <= 1e6) {
            return invalid(format!("domains[{i}]: joules_per_tick must be positive and finite"));
        }
        for (what, w) in [("limit_watts", d.limit_watts), ("max_power_watts", d.max_power_watts)] {
            if w.is_some_and(|w| !(w.is_finite() && w >= 0.0)) {
                return invalid(format!("domains[{i}]: {what} must be a finite number of watts"));
            }
        }
    }
    Ok(())
}

impl Store {
    /// Registers stream `stream` of node `node` (the node created or its labels updated), as its
    /// agent: the node's control URL becomes `reg.control_url` (none: forgotten) unless a newer
    /// run of its agent has registered already. The same
    /// stream again with the same columns answers where it stands; other columns are a conflict;
    /// a stream of another node too.
    pub async fn register(
        &self,
        node: &str,
        stream: &str,
        reg: &StreamRegisterV1,
        now_us: u64,
    ) -> Result<StreamRegisteredV1, StoreError> {
        self.register_stream(node, stream, reg, now_us, true).await
    }

    /// Registers a stream: as [`Store::register`] when `by_agent`; otherwise (a stream the site
    /// itself measures, a BMC's) the node's control URL is left as its agent gave it.
    pub(crate) async fn register_stream(
        &self,
        node: &str,
        stream: &str,
        reg: &StreamRegisterV1,
        now_us: u64,
        by_agent: bool,
    ) -> Result<StreamRegisteredV1, StoreError> {
        check(reg)?;
        let domains = serde_json::to_string(&reg.domains)
            .map_err(|e| StoreError::Invalid(format!("domains: {e}")))?;
        let topology = reg.topology.as_ref().map(|t| t.to_string());
        let _turn = self.turn().await;
        on_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO nodes (name, hostname, simulated, topology, registered_us) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (name) DO UPDATE SET hostname = excluded.hostname, simulated = excluded.simulated, \
                 topology = COALESCE(excluded.topology, nodes.topology)",
            )
            .bind(node)
            .bind(&reg.hostname)
            .bind(&reg.simulated)
            .bind(&topology)
            .bind(to_db(now_us))
            .execute(&mut *tx)
            .await?;
            let node_id: i32 = sqlx::query_scalar("SELECT id FROM nodes WHERE name = $1")
                .bind(node)
                .fetch_one(&mut *tx)
                .await?;
            if by_agent {
                keep_control!(tx, node, node_id, reg, now_us);
            }
            let existing = sqlx::query("SELECT s.id, s.node_id, s.domains FROM streams s WHERE s.stream = $1")
                .bind(stream)
                .fetch_optional(&mut *tx)
                .await?;
            let id: i32 = match existing {
                Some(row) => {
                    let owner: i32 = row.try_get(1)?;
                    let stored: String = row.try_get(2)?;
                    if owner != node_id {
                        return Err(StoreError::Conflict(format!(
                            "stream {stream} belongs to another node: an agent draws a new stream id at each start"
                        )));
                    }
                    if stored != domains {
                        return Err(StoreError::Conflict(format!(
                            "stream {stream} was registered with other domains: start a new stream"
                        )));
                    }
                    row.try_get(0)?
                }
                None => {
                    sqlx::query_scalar(
                        "INSERT INTO streams (node_id, stream, started_us, domains) VALUES ($1, $2, $3, $4) RETURNING id",
                    )
                    .bind(node_id)
                    .bind(stream)
                    .bind(to_db(reg.started_unix_us))
                    .bind(&domains)
                    .fetch_one(&mut *tx)
                    .await?
                }
            };
            let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(t_us) FROM samples WHERE stream_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let answer = StreamRegisteredV1 {
                node: node.to_string(),
                stream: stream.to_string(),
                last_unix_us: newest.map(from_db),
            };
            tx.commit().await?;
            Ok(answer)
        })
    }

    /// The streams of node `node` that may hold samples between `from_us` and `to_us`, oldest
    /// first.
    pub async fn streams_of(
        &self,
        node: &str,
        from_us: u64,
        to_us: u64,
    ) -> Result<Vec<StreamRow>, StoreError> {
        on_db!(&self.db, pool => {
            let rows = sqlx::query(&format!(
                "{STREAMS_SELECT} WHERE n.name = $1 AND (s.first_us IS NULL OR s.first_us <= $2) \
                 AND (s.last_us IS NULL OR s.last_us >= $3 \
                 OR s.started_us = (SELECT MAX(s2.started_us) FROM streams s2 WHERE s2.node_id = s.node_id)) \
                 ORDER BY s.started_us, s.id"
            ))
            .bind(node)
            .bind(to_db(to_us))
            .bind(to_db(from_us.saturating_sub(STATE_LAG_US)))
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(stream_row!(r, 0));
            }
            Ok(out)
        })
    }

    /// Every node's streams that may hold samples between `from_us` and `to_us`.
    pub async fn streams_between(
        &self,
        from_us: u64,
        to_us: u64,
    ) -> Result<Vec<StreamRow>, StoreError> {
        on_db!(&self.db, pool => {
            let rows = sqlx::query(&format!(
                "{STREAMS_SELECT} WHERE (s.first_us IS NULL OR s.first_us <= $1) \
                 AND (s.last_us IS NULL OR s.last_us >= $2) ORDER BY s.id"
            ))
            .bind(to_db(to_us))
            .bind(to_db(from_us))
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(stream_row!(r, 0));
            }
            Ok(out)
        })
    }

    /// Whether the stream with row id `stream_id` has a stored sample at or after `unix_us`.
    pub async fn stream_has_samples_since(
        &self,
        stream_id: i64,
        unix_us: u64,
    ) -> Result<bool, StoreError> {
        on_db!(&self.db, pool => {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT t_us FROM samples WHERE stream_id = $1 AND t_us >= $2 LIMIT 1",
            )
            .bind(stream_id)
            .bind(to_db(unix_us))
            .fetch_optional(pool)
            .await?;
            Ok(found.is_some())
        })
    }

    /// Whether node `node` has a stored sample at or after `unix_us` (in any of its streams).
    pub async fn node_has_samples_since(
        &self,
        node: &str,
        unix_us: u64,
    ) -> Result<bool, StoreError> {
        on_db!(&self.db, pool => {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT x.t_us FROM samples x JOIN streams s ON s.id = x.stream_id JOIN nodes n ON n.id = s.node_id \
                 WHERE n.name = $1 AND x.t_us >= $2 LIMIT 1",
            )
            .bind(node)
            .bind(to_db(unix_us))
            .fetch_optional(pool)
            .await?;
            Ok(found.is_some())
        })
    }

    /// Every node with its newest stream (the newest run of its agent), whose newest sample and
    /// power are read from the samples of the last [`RECENT_US`] before `now_us` (a node silent
    /// for longer shows what the rollups last derived).
    pub async fn nodes(
        &self,
        now_us: u64,
    ) -> Result<Vec<(NodeRow, Option<StreamRow>)>, StoreError> {
        let recent =
            "FROM samples x WHERE x.stream_id = s.id AND x.t_us >= $1 ORDER BY x.t_us DESC";
        let sql = format!(
            "SELECT n.name, n.hostname, n.simulated, s.id, s.stream, n.name, s.started_us, s.domains, \
             s.first_us, s.last_us, s.power_watts, \
             (SELECT x.t_us {recent} LIMIT 1), (SELECT x.counters {recent} LIMIT 1), \
             (SELECT x.t_us {recent} LIMIT 1 OFFSET 1), (SELECT x.counters {recent} LIMIT 1 OFFSET 1), \
             (SELECT c.url FROM node_controls c WHERE c.node = n.name) \
             FROM nodes n LEFT JOIN streams s ON s.id = (SELECT s2.id FROM streams s2 WHERE s2.node_id = n.id \
             ORDER BY s2.started_us DESC, s2.id DESC LIMIT 1) \
             ORDER BY n.name"
        );
        on_db!(&self.db, pool => {
            let rows = sqlx::query(&sql).bind(to_db(now_us.saturating_sub(RECENT_US))).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let node = NodeRow {
                    name: r.try_get(0)?,
                    hostname: r.try_get(1)?,
                    simulated: r.try_get(2)?,
                    control_url: r.try_get(15)?,
                };
                let id: Option<i32> = r.try_get(3)?;
                let stream = match id {
                    None => None,
                    Some(_) => {
                        let mut row = stream_row!(r, 3);
                        let t1: Option<i64> = r.try_get(11)?;
                        let c1: Option<Vec<u8>> = r.try_get(12)?;
                        let t0: Option<i64> = r.try_get(13)?;
                        let c0: Option<Vec<u8>> = r.try_get(14)?;
                        if let (Some(t1), Some(c1)) = (t1, c1) {
                            row.last_us = Some(from_db(t1));
                            row.power_watts = match (t0, c0) {
                                (Some(t0), Some(c0)) => node_watts(
                                    &parts_of(&row.domains),
                                    &decode_counters(&c0),
                                    &decode_counters(&c1),
                                    from_db(t1).saturating_sub(from_db(t0)),
                                ),
                                _ => None,
                            };
                        }
                        Some(row)
                    }
                };
                out.push((node, stream));
            }
            Ok(out)
        })
    }
}

impl Store {
    /// Where each node's agent takes caps, by node (the nodes whose agent gave a control URL at
    /// its newest registration).
    pub async fn node_controls(&self) -> Result<Vec<NodeControlRow>, StoreError> {
        on_db!(&self.db, pool => {
            let rows = sqlx::query("SELECT node, url, updated_unix_us FROM node_controls ORDER BY node")
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(NodeControlRow {
                    node: r.try_get(0)?,
                    url: r.try_get(1)?,
                    updated_unix_us: r.try_get(2)?,
                });
            }
            Ok(out)
        })
    }
}

/// A node as the API shows it, stale when its newest sample is older than `stale_after_us`.
pub fn node_document(
    node: &NodeRow,
    stream: Option<&StreamRow>,
    now_us: u64,
    stale_after_us: u64,
) -> SiteNodeV1 {
    let last = stream.and_then(|s| s.last_us);
    SiteNodeV1 {
        name: node.name.clone(),
        hostname: node.hostname.clone(),
        simulated: node.simulated.clone(),
        domains: stream.map(|s| s.domains.clone()).unwrap_or_default(),
        stream: stream.map(|s| s.stream.clone()).unwrap_or_default(),
        last_unix_us: last,
        power_watts: stream.and_then(|s| s.power_watts),
        stale: last.is_none_or(|t| now_us.saturating_sub(t) > stale_after_us),
        control_url: node.control_url.clone(),
    }
}

/// Keeps node `$node`'s control URL as a registration `$reg` of its agent says (none: forgotten),
/// inside the registration's transaction `$tx`; a run older than one registered before (its spool
/// sent late) changes nothing.
macro_rules! keep_control {
    ($tx:ident, $node:expr, $node_id:expr, $reg:expr, $now_us:expr) => {{
        let newest_us: Option<i64> =
            sqlx::query_scalar("SELECT MAX(started_us) FROM streams WHERE node_id = $1")
                .bind($node_id)
                .fetch_one(&mut *$tx)
                .await?;
        let newest = newest_us.is_none_or(|t| from_db(t) <= $reg.started_unix_us);
        match &$reg.control_url {
            _ if !newest => {}
            Some(url) => {
                sqlx::query(
                    "INSERT INTO node_controls (node, url, updated_unix_us) VALUES ($1, $2, $3) \
                     ON CONFLICT (node) DO UPDATE SET url = excluded.url, updated_unix_us = excluded.updated_unix_us",
                )
                .bind($node)
                .bind(url)
                .bind(to_db($now_us))
                .execute(&mut *$tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM node_controls WHERE node = $1")
                    .bind($node)
                    .execute(&mut *$tx)
                    .await?;
            }
        }
    }};
}
use keep_control;

/// A [`StreamRow`] from columns `id, stream, node, started_us, domains, first_us, last_us,
/// power_watts` of a row, starting at column `$at`.
/// The columns [`stream_row!`] reads, from streams joined with their nodes.
const STREAMS_SELECT: &str = "SELECT s.id, s.stream, n.name, s.started_us, s.domains, s.first_us, \
     s.last_us, s.power_watts FROM streams s JOIN nodes n ON n.id = s.node_id";

macro_rules! stream_row {
    ($r:expr, $at:expr) => {{
        let r = $r;
        let at: usize = $at;
        let id: i32 = r.try_get(at)?;
        let domains: String = r.try_get(at + 4)?;
        StreamRow {
            id: i64::from(id),
            stream: r.try_get(at + 1)?,
            node: r.try_get(at + 2)?,
            started_us: from_db(r.try_get(at + 3)?),
            domains: serde_json::from_str(&domains)
                .map_err(|e| StoreError::Unavailable(format!("stored domains unreadable: {e}")))?,
            first_us: r.try_get::<Option<i64>, _>(at + 5)?.map(from_db),
            last_us: r.try_get::<Option<i64>, _>(at + 6)?.map(from_db),
            power_watts: r.try_get(at + 7)?,
        }
    }};
}
pub(crate) use stream_row;
