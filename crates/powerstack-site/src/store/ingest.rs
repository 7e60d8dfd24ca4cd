//! Batches of streams stored, many at once, at the cost of writing their samples and little
//! else: each batch is checked against its stream's newest sample (kept in memory by the store,
//! read from the database when not known) and the batches before it in the group (time order,
//! counters that only grow and no faster than a domain can draw), then the group's samples are
//! written in one transaction (PostgreSQL: one binary `COPY`). Exactly once is the samples'
//! primary key (stream, time): a resend is recognised by its samples being stored already, and a
//! replica that raced another one fails its transaction on the key, forgets what it believed of
//! those streams, and plans the group again from the database. A batch refused is refused alone;
//! a transaction that fails fails every batch of its group, with nothing stored. Rollups and each
//! stream's newest state are derived from the samples afterwards (`rollup`), so ingest writes
//! nothing per stream.
//!
//! This module plans ([`plan`], pure); `write` talks to the database; `queue` gathers the
//! batches that arrive while a transaction runs into the next group.

use std::collections::{BTreeSet, HashMap};

use powerstack_api::site::{BatchStoredV1, BatchV1, MAX_BATCH_SAMPLES, StreamDomainV1};

use super::{StoreError, node_watts, parts_of};
use crate::db::to_db;

pub mod queue;
mod write;

/// A minute, µs.
pub const MINUTE_US: u64 = 60_000_000;
/// A sample this much older than its arrival marks its minute's rollup stale: a minute less
/// than the rollups' lag, so a rollup running while it is stored is covered too.
pub const LATE_US: u64 = 60_000_000;

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

/// A stream as a batch finds it: its registration and newest sample (as stored, then as the
/// batches before it in the group left it).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Head {
    pub(crate) id: i32,
    pub(crate) node: String,
    pub(crate) domains: Vec<StreamDomainV1>,
    pub(crate) parts: Vec<(usize, f64)>,
    pub(crate) last: Option<(u64, Vec<u64>)>,
}

impl Head {
    /// A stream's head from its registration and newest stored sample.
    pub(crate) fn new(
        id: i32,
        node: String,
        domains: Vec<StreamDomainV1>,
        last: Option<(u64, Vec<u64>)>,
    ) -> Head {
        let parts = parts_of(&domains);
        Head { id, node, domains, parts, last }
    }
}

/// What planning says of a batch.
#[derive(Debug)]
pub(crate) enum Planned {
    /// Its answer.
    Done(Result<BatchStoredV1, StoreError>),
    /// Its samples are not after the stream's newest: a resend if they are stored already
    /// (the database says), else a clock that went back.
    Stored { id: i32, first: Vec<u64>, last: Vec<u64> },
}

/// A batch to store: the node and stream of its path, the batch, the site's time it arrived.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchIn {
    /// The node it was pushed for.
    pub node: String,
    /// Its stream.
    pub stream: String,
    /// The batch.
    pub batch: BatchV1,
    /// The site's time when it arrived, µs.
    pub now_us: u64,
}

/// What a group writes (its samples borrowed from the batches).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Writes<'a> {
    /// Samples: each stream's row id and `[unix_us, counters...]`.
    pub(crate) rows: Vec<(i32, &'a [u64])>,
    /// Minutes these samples may change after they were rolled up: (stream row id, minute).
    pub(crate) dirty: BTreeSet<(i32, u64)>,
}

/// One minute's rollup from a batch: the minute, its newest sample, the highest node power of
/// the intervals ending in it, and how many samples it got.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Minute {
    pub(crate) minute_us: u64,
    pub(crate) t_us: u64,
    pub(crate) counters: Vec<u64>,
    pub(crate) peak_watts: Option<f64>,
    pub(crate) samples: u64,
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
pub(crate) fn minutes(
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

/// Checks one batch on its own: size and sequence number.
fn precheck(batch: &BatchV1) -> Result<(), StoreError> {
    if batch.samples.len() > MAX_BATCH_SAMPLES {
        return Err(StoreError::Invalid(format!(
            "a batch carries at most {MAX_BATCH_SAMPLES} samples, this one {}: split it",
            batch.samples.len()
        )));
    }
    if batch.seq == 0 {
        return Err(StoreError::Invalid("seq starts at 1".into()));
    }
    Ok(())
}

/// Plans a group: what each batch comes to, and what the group writes, given the streams as
/// known (`heads`, by stream id; updated as the group goes, so two batches of one stream in a
/// group are checked one after the other).
pub(crate) fn plan<'a>(
    heads: &mut HashMap<String, Head>,
    batches: &'a [BatchIn],
    limits: &IngestLimits,
) -> (Vec<Planned>, Writes<'a>) {
    let mut writes = Writes::default();
    let answers = batches.iter().map(|b| plan_one(heads, b, limits, &mut writes)).collect();
    (answers, writes)
}

fn plan_one<'a>(
    heads: &mut HashMap<String, Head>,
    b: &'a BatchIn,
    limits: &IngestLimits,
    writes: &mut Writes<'a>,
) -> Planned {
    if let Err(e) = precheck(&b.batch) {
        return Planned::Done(Err(e));
    }
    let (node, stream) = (&b.node, &b.stream);
    let Some(head) = heads.get_mut(stream) else {
        return Planned::Done(Err(StoreError::NotFound(format!(
            "stream {stream} of node {node} is not registered: register it first (PUT /v1/nodes/{node}/streams/{stream})"
        ))));
    };
    if &head.node != node {
        return Planned::Done(Err(StoreError::Conflict(format!(
            "stream {stream} belongs to node {}, not {node}",
            head.node
        ))));
    }
    let samples = &b.batch.samples;
    let (Some(first), Some(newest)) = (samples.first(), samples.last()) else {
        return Planned::Done(Ok(BatchStoredV1 { stored: 0, duplicate: false }));
    };
    if let Some((t, _)) = &head.last
        && first.first().is_some_and(|f| f <= t)
        && newest.first().is_some_and(|l| l <= t)
    {
        return Planned::Stored { id: head.id, first: first.clone(), last: newest.clone() };
    }
    if let Err(e) = check(head, samples, b.now_us, limits) {
        return Planned::Done(Err(e));
    }
    for s in samples {
        // A sample older than this may belong to a minute already rolled up, or being rolled up
        // now: it marks its minute stale (the rollups run `ROLLUP_LAG_US` behind, so samples
        // sent on time never do).
        if s[0] < b.now_us.saturating_sub(LATE_US) {
            writes.dirty.insert((head.id, s[0] - s[0] % MINUTE_US));
        }
    }
    writes.rows.extend(samples.iter().map(|s| (head.id, s.as_slice())));
    match &mut head.last {
        Some((t, c)) => {
            *t = newest[0];
            c.clear();
            c.extend_from_slice(&newest[1..]);
        }
        None => head.last = Some((newest[0], newest[1..].to_vec())),
    }
    Planned::Done(Ok(BatchStoredV1 { stored: samples.len() as u64, duplicate: false }))
}

/// The binary `COPY` header (signature, flags, no extension).
pub(crate) fn copy_header(buf: &mut Vec<u8>) {
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes());
}

/// The binary `COPY` trailer.
pub(crate) const COPY_TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// `rows` as binary `COPY` tuples, appended to `buf`.
pub(crate) fn copy_rows(buf: &mut Vec<u8>, rows: &[(i32, &[u64])]) {
    let width = rows.first().map_or(0, |r| r.1.len());
    buf.reserve(rows.len() * (2 + 8 + 12 + 4 + 8 * width));
    for &(id, s) in rows {
        buf.extend_from_slice(&3i16.to_be_bytes());
        buf.extend_from_slice(&4i32.to_be_bytes());
        buf.extend_from_slice(&id.to_be_bytes());
        buf.extend_from_slice(&8i32.to_be_bytes());
        buf.extend_from_slice(&to_db(s[0]).to_be_bytes());
        let counters = &s[1..];
        let bytes = i32::try_from(counters.len() * 8).unwrap_or(i32::MAX);
        buf.extend_from_slice(&bytes.to_be_bytes());
        // As `crate::db::encode_counters` lays them out, without a vector a row.
        for c in counters {
            buf.extend_from_slice(&c.to_le_bytes());
        }
    }
}

/// The binary `COPY` payload of `rows`: each a stream's row id and a sample
/// (`[unix_us, counters...]`).
pub fn copy_payload(rows: &[(i32, &[u64])]) -> Vec<u8> {
    let mut buf = Vec::new();
    copy_header(&mut buf);
    copy_rows(&mut buf, rows);
    buf.extend_from_slice(&COPY_TRAILER);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_rows_carry_the_counters_as_the_database_stores_them() {
        let (a, b) = ([5u64, 1, u64::MAX], [6u64, 2, 3]);
        let p = copy_payload(&[(7, &a[..]), (8, &b[..])]);
        assert_eq!(&p[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(&p[p.len() - 2..], &COPY_TRAILER);
        // Header 19 bytes, then per row: 3 fields, id (4), time (8), counters (16).
        let row = &p[19..19 + 2 + 8 + 12 + 4 + 16];
        assert_eq!(row[..2], 3i16.to_be_bytes());
        assert_eq!(row[6..10], 7i32.to_be_bytes());
        assert_eq!(row[14..22], 5i64.to_be_bytes());
        assert_eq!(row[22..26], 16i32.to_be_bytes());
        assert_eq!(row[26..], crate::db::encode_counters(&a[1..])[..]);
        assert_eq!(p.len(), 19 + 2 * row.len() + 2);
    }

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
