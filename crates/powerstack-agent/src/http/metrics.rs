//! `GET /metrics`: Prometheus text exposition (format 0.0.4) from the ring and the sampler
//! statistics, never from hardware.
//!
//! Power and energy families come from `powerstack_api::prometheus::power` over the same window as
//! `GET /v1/power` (the newest sample against the one about a second earlier):
//! `powerstack_power_watts{domain,index}`, `powerstack_energy_joules_total{domain,index}`,
//! `powerstack_node_power_watts{source}`, `powerstack_power_limit_watts{domain,index,constraint}`
//! (the limits the control platform last read, else the discovery's), `powerstack_interval_seconds`
//! and `powerstack_simulated{profile}`. The agent adds its own: the sampler's last and longest
//! sample durations, its sample, overrun, read-failure and slow-read counters, the ring's fill and
//! capacity, the running jobs and the build; with capping, the standing node cap's re-splits and
//! failed re-splits; and, when a site is configured, the pusher's
//! (`powerstack_site_*`: whether the site answers, the spool, samples pushed and dropped, errors).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use powerstack_model::{DomainInfo, DomainPower, PowerReport};

use powerstack_api::prometheus::{escape, family};

use super::{AppState, Controls, Reader, lock, window_for};
use crate::access::Tier;
use crate::state::{Shared, SiteStats};

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

/// The ring's catalog with the limits the control platform holds now (its copy, refreshed by every
/// cap write and `GET /v1/caps`; no hardware is read). When the platform is busy (a cap being
/// written), the discovery's limits are used.
fn catalog_with_limits(shared: &Shared, controls: Option<&Controls>) -> Vec<DomainInfo> {
    let mut catalog = shared.catalog();
    let Some(controls) = controls else { return catalog };
    let Ok(platform) = controls.platform.try_lock() else { return catalog };
    for info in &mut catalog {
        if let Some(c) =
            platform.catalog().iter().find(|c| c.id == info.id && c.provider == info.provider)
        {
            info.limits = c.limits.clone();
        }
    }
    catalog
}

/// Renders the exposition for a caller of `tier`: an unprivileged one gets power and energy as
/// of the last whole second, over at least a second, rounded ([`crate::coarse`]). No job labels
/// are exported.
pub fn render(shared: &Shared, controls: Option<&Controls>, tier: &Tier) -> String {
    let catalog = catalog_with_limits(shared, controls);
    let mut report = match window_for(shared, tier) {
        Some((a, b, _)) => PowerReport::between(&catalog, &a, &b),
        None => PowerReport {
            interval_s: 0.0,
            unix_us: 0,
            domains: catalog
                .iter()
                .map(|d| DomainPower { id: d.id, power_watts: None, energy_joules: None })
                .collect(),
            node: None,
        },
    };
    if !tier.is_privileged() {
        crate::coarse::report(&mut report);
    }
    let origin = crate::http::origin(shared);
    let mut out = powerstack_api::prometheus::power(&origin, &catalog, &report);

    let stats = &shared.stats;
    let ns = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e9;
    gauge(
        &mut out,
        "powerstack_sampler_duration_seconds",
        "Time the last sample took to read every fast domain, in seconds.",
        ns(&stats.last_duration_ns),
    );
    gauge(
        &mut out,
        "powerstack_sampler_duration_seconds_max",
        "Longest time one sample took since the agent started, in seconds.",
        ns(&stats.max_duration_ns),
    );
    counter(
        &mut out,
        "powerstack_sampler_samples_total",
        "Samples stored in the ring since the agent started.",
        stats.samples.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "powerstack_sampler_overruns_total",
        "Sampling deadlines missed (each missed period counts).",
        stats.overruns.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "powerstack_sampler_read_failures_total",
        "Domain readings missing: a failed read or a counter that stopped moving (the previous value was kept).",
        stats.read_failures.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "powerstack_sampler_missing_domains",
        "Domains whose newest reading is missing (a failed read, or a counter that stopped moving): no current power.",
        shared.missing_columns(),
    );
    counter(
        &mut out,
        "powerstack_sampler_slow_reads_total",
        "Reads of the slow sources (NVML, pm_counters) since the agent started.",
        stats.slow_reads.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "powerstack_sampler_rate_hertz",
        "Configured sampling rate, in hertz.",
        shared.rate_hz,
    );
    let (held, capacity) = {
        let ring = lock(&shared.ring);
        (ring.len(), ring.capacity())
    };
    gauge(&mut out, "powerstack_ring_samples", "Samples held in the ring.", held);
    gauge(
        &mut out,
        "powerstack_ring_capacity_samples",
        "Samples the ring can hold; older ones are dropped.",
        capacity,
    );
    let running = lock(&shared.jobs).list().iter().filter(|j| j.is_running()).count();
    gauge(&mut out, "powerstack_jobs_running", "Job windows begun and not ended.", running);
    if let Some(site) = &shared.site {
        site_metrics(&mut out, site);
    }
    if let Some(controls) = controls {
        standing_metrics(&mut out, &controls.standing);
    }
    family(&mut out, "powerstack_build_info", "gauge", "The agent's version (always 1).");
    let _ = writeln!(
        out,
        "powerstack_build_info{{version=\"{}\"}} 1",
        escape(env!("CARGO_PKG_VERSION"))
    );
    out
}

/// The standing node cap's families.
fn standing_metrics(out: &mut String, standing: &crate::standing::Standing) {
    counter(
        out,
        "powerstack_agent_node_cap_resplits_total",
        "Standing node caps split again because the power that cannot be capped moved.",
        standing.resplits.load(Ordering::Relaxed),
    );
    counter(
        out,
        "powerstack_agent_node_cap_resplit_failures_total",
        "Re-splits of a standing node cap refused or rolled back (tried again a second later).",
        standing.resplit_failures.load(Ordering::Relaxed),
    );
}

/// The site pusher's families.
fn site_metrics(out: &mut String, site: &SiteStats) {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    gauge(
        out,
        "powerstack_site_up",
        "1 when the last call to the site service succeeded, else 0.",
        u8::from(site.up.load(Ordering::Relaxed)),
    );
    gauge(
        out,
        "powerstack_site_spool_bytes",
        "Bytes the spool of samples not yet acknowledged by the site holds on disk.",
        get(&site.spool_bytes),
    );
    gauge(
        out,
        "powerstack_site_spool_batches",
        "Sealed batches waiting in the spool for the site.",
        get(&site.spool_batches),
    );
    gauge(
        out,
        "powerstack_site_spool_samples",
        "Samples waiting in the spool for the site (sealed batches and the open one).",
        get(&site.spool_samples),
    );
    counter(
        out,
        "powerstack_site_pushed_samples_total",
        "Samples the site acknowledged.",
        get(&site.pushed_samples),
    );
    family(
        out,
        "powerstack_site_dropped_samples_total",
        "counter",
        "Samples dropped before the site stored them: the spool over spool_max_bytes or spool_max_age_s, or a batch the site refused.",
    );
    for (reason, n) in [
        ("spool_bytes", &site.dropped_bytes_samples),
        ("spool_age", &site.dropped_age_samples),
        ("rejected", &site.dropped_rejected_samples),
    ] {
        let _ = writeln!(
            out,
            "powerstack_site_dropped_samples_total{{reason=\"{reason}\"}} {}",
            get(n)
        );
    }
    counter(
        out,
        "powerstack_site_push_errors_total",
        "Calls to the site that failed: no answer, or an error status.",
        get(&site.push_errors),
    );
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics",
    summary = "Prometheus text exposition (version 0.0.4).",
    responses((status = 200, description = "The metrics.", body = String, content_type = "text/plain")))]
pub(crate) async fn handler(
    State(state): State<AppState>,
    Reader(tier): Reader,
) -> impl IntoResponse {
    let body = render(&state.shared, state.controls.as_deref(), &tier);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body)
}
