//! `GET /v1/power` (node power from the ring) and `GET /v1/samples` (the ring's raw samples).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use powerstack_api::Origin;
use powerstack_api::agent::{SampleDomainV1, SamplesV1};
use powerstack_api::v1::PowerV1;
use powerstack_api::variorum;
use powerstack_model::{DomainInfo, PowerReport, Snapshot, Value};
use serde::Deserialize;
use std::sync::atomic::Ordering;

use super::{ApiError, AppQuery, AppState, lock};
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
    let ring = lock(&shared.ring);
    let n = ring.len();
    let last = n.checked_sub(1)?;
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

/// Current power over the recent window, in ring column order; 503 with fewer than two samples.
pub(crate) fn current_report(shared: &Shared) -> Result<PowerReport, ApiError> {
    match recent_window(shared) {
        Some((a, b, n)) if n >= 2 => Ok(PowerReport::between(&shared.catalog(), &a, &b)),
        Some((_, _, n)) => Err(not_enough(n)),
        None => Err(not_enough(0)),
    }
}

fn not_enough(n: usize) -> ApiError {
    ApiError::Unavailable(format!(
        "the agent has {n} sample(s) yet and needs 2 to compute power; retry in a moment"
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PowerQuery {
    format: Option<String>,
}

/// `GET /v1/power?format=json|variorum|variorum-flat`.
pub(crate) async fn power(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<PowerQuery>,
) -> Result<Response, ApiError> {
    let shared = &state.shared;
    let format = q.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "variorum" | "variorum-flat") {
        return Err(ApiError::BadRequest(format!(
            "format {format:?} is not known: use json, variorum or variorum-flat"
        )));
    }
    let report = current_report(shared)?;
    let catalog = shared.catalog();
    Ok(match format {
        "variorum" => Json(variorum::power(&shared.hostname, &catalog, &report)).into_response(),
        "variorum-flat" => {
            Json(variorum::power_flat(&shared.hostname, &catalog, &report)).into_response()
        }
        _ => Json(PowerV1::new(&origin(shared), &catalog, &report, &[])).into_response(),
    })
}

/// Samples sent by default.
pub const DEFAULT_SAMPLES: usize = 10_000;
/// Most samples sent in one answer.
pub const MAX_SAMPLES: usize = 100_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SamplesQuery {
    since: Option<u64>,
    until: Option<u64>,
    limit: Option<usize>,
}

/// `GET /v1/samples?since=US&until=US&limit=N`: the oldest `limit` samples taken from `since` to
/// `until` (µs since the Unix epoch, both included), each `[t, tick0, tick1, ...]`.
pub(crate) async fn samples(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<SamplesQuery>,
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
    let columns = shared.domains.len();
    let width = columns + 1;
    // Under the ring's lock (which the sampler waits on) only a flat copy; the rows are built
    // after it is released.
    let (flat, truncated) = {
        let ring = lock(&shared.ring);
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
        (flat, truncated)
    };
    let rows: Vec<Vec<u64>> = flat.chunks(width).map(<[u64]>::to_vec).collect();
    let domains = shared
        .domains
        .iter()
        .map(|d| SampleDomainV1 {
            domain: d.info.id.kind.to_string(),
            index: d.info.id.index,
            die: d.info.id.die,
            provider: d.info.provider.to_string(),
            joules_per_tick: d.joules_per_tick,
        })
        .collect();
    Ok(Json(SamplesV1 { hostname: shared.hostname.clone(), domains, samples: rows, truncated }))
}
