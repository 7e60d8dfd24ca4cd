//! `GET /v1/power` (node power from the ring) and `GET /v1/samples` (the ring's raw samples).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use powerstack_api::Origin;
use powerstack_api::agent::{
    ErrorV1, PowerAnswerV1, PowerFormatV1, PowerQueryV1, SampleDomainV1, SamplesQueryV1, SamplesV1,
};
use powerstack_api::v1::PowerV1;
use powerstack_api::variorum;
use powerstack_model::{DomainInfo, PowerReport, Snapshot, Value};
use std::sync::atomic::Ordering;

use super::described::BadRequest;
use super::{ApiError, AppQuery, AppState, Reader, lock};
use crate::access::Tier;
use crate::coarse::{self, COARSE_INTERVAL_US};
use crate::state::{DomainMeta, Shared};

/// The window current power is computed over: the newest sample against the last sample at least
/// this long before it (µs), or the oldest.
pub const POWER_WINDOW_US: u64 = 1_000_000;

/// A snapshot of the ring's counters at `unix_us` (the ring's times stand for the monotonic clock
/// too: the sampler derives them from it).
fn snapshot(domains: &[DomainMeta], unix_us: u64, ticks: &[u64]) -> Snapshot {
    let values = domains
        .iter()
        .enumerate()
        .map(|(c, d)| match ticks.get(c) {
            Some(&t) => Value::Energy {
                total_ticks: t,
                joules: t as f64 * d.joules_per_tick,
                hw_time_us: None,
            },
            None => Value::Missing,
        })
        .collect();
    Snapshot {
        mono_ns: unix_us.saturating_mul(1000),
        unix_us: i64::try_from(unix_us).unwrap_or(i64::MAX),
        values,
    }
}

/// The ring's recent window: the sample about [`POWER_WINDOW_US`] before the newest (or the
/// oldest), the newest, and how many samples the ring holds. `None` when the ring is empty; with
/// one sample both ends are that sample. A column whose newest reading is missing (a failed read,
/// a stopped counter: the ring holds its last value) is missing in the newest snapshot, and one
/// that has never held a reading ([`crate::ring::Ring::was_read`]) in both: its power is missing,
/// not 0 W, and the node figure falls back as the CLI's does ([`PowerReport::between`]).
pub fn recent_window(shared: &Shared) -> Option<(Snapshot, Snapshot, usize)> {
    window_ending(shared, None)
}

/// The window an unprivileged caller's power is taken over ([`crate::coarse`]): it ends at the
/// last sample at or before the last whole second of the agent's clock and starts at the last
/// sample at least a second before that. `None` until the ring holds such a pair.
pub fn coarse_window(shared: &Shared) -> Option<(Snapshot, Snapshot, usize)> {
    let as_of = coarse::as_of_us(shared.clock.now_unix_us());
    window_ending(shared, Some(as_of))
        .filter(|(a, b, _)| b.unix_us.saturating_sub(a.unix_us) >= COARSE_INTERVAL_US as i64)
}

/// The window for `tier`: [`recent_window`] or [`coarse_window`].
pub fn window_for(shared: &Shared, tier: &Tier) -> Option<(Snapshot, Snapshot, usize)> {
    if tier.is_privileged() { recent_window(shared) } else { coarse_window(shared) }
}

fn window_ending(shared: &Shared, as_of_us: Option<u64>) -> Option<(Snapshot, Snapshot, usize)> {
    let ring = lock(&shared.ring);
    let n = ring.len();
    let last = match as_of_us {
        None => n.checked_sub(1)?,
        Some(t) => ring.last_at_or_before(t)?,
    };
    let (t1, row1) = ring.get(last)?;
    let i = ring
        .last_at_or_before(t1.saturating_sub(POWER_WINDOW_US))
        .filter(|&i| i < last)
        .unwrap_or(0);
    let (t0, row0) = ring.get(i)?;
    let mut newest = snapshot(&shared.domains, t1, row1);
    let mut oldest = snapshot(&shared.domains, t0, row0);
    for (c, v) in newest.values.iter_mut().enumerate() {
        let missing = shared.missing.get(c).is_some_and(|m| m.load(Ordering::Relaxed));
        if missing || !ring.was_read(c) {
            *v = Value::Missing;
        }
    }
    for (c, v) in oldest.values.iter_mut().enumerate() {
        if !ring.was_read(c) {
            *v = Value::Missing;
        }
    }
    Some((oldest, newest, n))
}

fn report_of(
    shared: &Shared,
    window: Option<(Snapshot, Snapshot, usize)>,
) -> Result<PowerReport, ApiError> {
    match window {
        Some((a, b, n)) if n >= 2 => Ok(PowerReport::between(&shared.catalog(), &a, &b)),
        Some((_, _, n)) => Err(not_enough(n)),
        None => Err(not_enough(lock(&shared.ring).len())),
    }
}

fn not_enough(n: usize) -> ApiError {
    ApiError::Unavailable(format!(
        "the agent has {n} sample(s) yet and needs 2 (a second apart for callers not allowed to write) to compute power; retry in a moment"
    ))
}

/// Current power over the recent window, for another catalog (the control platform's): each of
/// its domains takes the ring column of the same domain and provider (missing when the ring has
/// none).
pub(crate) fn report_for(shared: &Shared, catalog: &[DomainInfo]) -> Result<PowerReport, ApiError> {
    let (a, b, n) = recent_window(shared).ok_or_else(|| not_enough(0))?;
    if n < 2 {
        return Err(not_enough(n));
    }
    let remap = |s: &Snapshot| Snapshot {
        mono_ns: s.mono_ns,
        unix_us: s.unix_us,
        values: catalog
            .iter()
            .map(|info| {
                shared
                    .domains
                    .iter()
                    .position(|d| d.info.id == info.id && d.info.provider == info.provider)
                    .and_then(|c| s.values.get(c).copied())
                    .unwrap_or(Value::Missing)
            })
            .collect(),
    };
    Ok(PowerReport::between(catalog, &remap(&a), &remap(&b)))
}

/// The origin of the agent's documents.
pub(crate) fn origin(shared: &Shared) -> Origin {
    Origin { hostname: shared.hostname.clone(), simulated: shared.simulated.clone() }
}

/// `GET /v1/power?format=json|variorum|variorum-flat`.
#[utoipa::path(get, path = "/v1/power", operation_id = "power",
    summary = "Node power now: the newest sample against the one about a second earlier.",
    params(PowerQueryV1),
    responses(
        (status = 200, description = "Node power.", body = PowerAnswerV1),
        BadRequest,
        (status = 503, description = "Fewer than 2 samples yet.", body = ErrorV1),
    ))]
pub(crate) async fn power(
    State(state): State<AppState>,
    Reader(tier): Reader,
    AppQuery(q): AppQuery<PowerQueryV1>,
) -> Result<Response, ApiError> {
    let shared = &state.shared;
    let mut report = report_of(shared, window_for(shared, &tier))?;
    if !tier.is_privileged() {
        coarse::report(&mut report);
    }
    let catalog = shared.catalog();
    Ok(match q.format.unwrap_or_default() {
        PowerFormatV1::Variorum => {
            Json(variorum::power(&shared.hostname, &catalog, &report)).into_response()
        }
        PowerFormatV1::VariorumFlat => {
            Json(variorum::power_flat(&shared.hostname, &catalog, &report)).into_response()
        }
        PowerFormatV1::Json => {
            Json(PowerV1::new(&origin(shared), &catalog, &report, &[])).into_response()
        }
    })
}

/// Samples sent by default.
pub const DEFAULT_SAMPLES: usize = 10_000;
/// Most samples sent in one answer.
pub const MAX_SAMPLES: usize = 100_000;

/// `GET /v1/samples?since=US&until=US&limit=N`: the oldest `limit` samples taken from `since` to
/// `until` (µs since the Unix epoch, both included), each `[t, tick0, tick1, ...]`.
#[utoipa::path(get, path = "/v1/samples", operation_id = "samples",
    summary = "Raw samples from the ring: a time and one extended counter per domain.",
    params(SamplesQueryV1),
    responses(
        (status = 200, description = "The samples.", body = SamplesV1),
        BadRequest,
    ))]
pub(crate) async fn samples(
    State(state): State<AppState>,
    Reader(tier): Reader,
    AppQuery(q): AppQuery<SamplesQueryV1>,
) -> Result<Json<SamplesV1>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_SAMPLES);
    if limit == 0 || limit > MAX_SAMPLES {
        return Err(ApiError::BadRequest(format!(
            "limit {limit} is out of range: give 1 to {MAX_SAMPLES}"
        )));
    }
    let (since, until) = (q.since.unwrap_or(0), q.until.unwrap_or(u64::MAX));
    if since > until {
        return Err(ApiError::BadRequest(format!("since ({since}) is after until ({until})")));
    }
    let shared = &state.shared;
    let coarse = !tier.is_privileged();
    let (rows, truncated) = if coarse {
        coarse_rows(shared, since, until, limit)
    } else {
        raw_rows(shared, since, until, limit)
    };
    let domains = shared
        .domains
        .iter()
        .map(|d| SampleDomainV1 {
            domain: d.info.id.kind.to_string(),
            index: d.info.id.index,
            die: d.info.id.die,
            provider: d.info.provider.to_string(),
            joules_per_tick: if coarse { 1.0 } else { d.joules_per_tick },
        })
        .collect();
    Ok(Json(SamplesV1 { hostname: shared.hostname.clone(), domains, samples: rows, truncated }))
}

/// A sample's row: its time, then each column's value, `null` for a column whose domain has never
/// been read (its zeros measure nothing, as `/v1/power` and `/metrics` say by leaving it out).
type Row = Vec<Option<u64>>;

/// Which columns have held a reading.
fn columns_read(ring: &crate::ring::Ring, columns: usize) -> Vec<bool> {
    (0..columns).map(|c| ring.was_read(c)).collect()
}

/// The ring's samples from `since` to `until`, at most `limit`, each `[t, tick0, tick1, ...]`.
fn raw_rows(shared: &Shared, since: u64, until: u64, limit: usize) -> (Vec<Row>, bool) {
    let columns = shared.domains.len();
    let width = columns + 1;
    // Under the ring's lock (which the sampler waits on) only a flat copy; the rows are built
    // after it is released.
    let (flat, truncated, read) = {
        let ring = lock(&shared.ring);
        let read = columns_read(&ring, columns);
        let mut flat = Vec::with_capacity(limit.min(ring.len()) * width);
        let mut truncated = false;
        for (taken, (t, row)) in ring.samples_between(since, until).enumerate() {
            if taken == limit {
                truncated = true;
                break;
            }
            flat.push(t);
            flat.extend((0..columns).map(|c| row.get(c).copied().unwrap_or(0)));
        }
        (flat, truncated, read)
    };
    let row = |r: &[u64]| -> Row {
        r.iter().enumerate().map(|(i, &v)| (i == 0 || read[i - 1]).then_some(v)).collect()
    };
    (flat.chunks(width).map(row).collect(), truncated)
}

/// The samples of an unprivileged caller ([`crate::coarse`]): of the ring's samples from `since`
/// to `until`, the last one at or before each whole second up to the last whole second of the
/// agent's clock, shown at that second, with its counters in whole joules; at most `limit`.
fn coarse_rows(shared: &Shared, since: u64, until: u64, limit: usize) -> (Vec<Row>, bool) {
    let columns = shared.domains.len();
    let until = until.min(coarse::as_of_us(shared.clock.now_unix_us()));
    let ring = lock(&shared.ring);
    let read = columns_read(&ring, columns);
    let row_of = |boundary: u64, ticks: &[u64]| -> Row {
        let mut r = Vec::with_capacity(columns + 1);
        r.push(Some(boundary));
        r.extend(shared.domains.iter().enumerate().map(|(c, d)| {
            read[c].then(|| {
                coarse::whole_joules(ticks.get(c).copied().unwrap_or(0), d.joules_per_tick)
            })
        }));
        r
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut pending: Option<(u64, &[u64])> = None;
    let mut truncated = false;
    // Samples up to `until` only: a sample is the last before its boundary once one after that
    // boundary, or `until` at or past it, is seen.
    for (t, ticks) in ring.samples_between(since, until) {
        let boundary = coarse::boundary_of(t);
        if let Some((b, p)) = pending
            && b != boundary
        {
            if rows.len() == limit {
                truncated = true;
                pending = None;
                break;
            }
            rows.push(row_of(b, p));
        }
        pending = Some((boundary, ticks));
    }
    if let Some((b, p)) = pending.filter(|(b, _)| *b <= until) {
        if rows.len() == limit {
            truncated = true;
        } else {
            rows.push(row_of(b, p));
        }
    }
    (rows, truncated)
}
