//! `GET /metrics`: Prometheus text of the site: its power, nodes fresh and stale, running jobs,
//! and what this replica ingested.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::nodes::power_now;
use super::{ApiError, App, caller};

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

/// The control tasks kept, by kind and state (from the database), and the node operations this
/// replica finished, by outcome.
async fn tasks(state: &App, out: &mut String) -> Result<(), ApiError> {
    let name = "powerstack_site_tasks";
    let _ = writeln!(out, "# HELP {name} Control tasks kept, by kind and state.");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (kind, st, n) in state.store.task_states().await? {
        let _ = writeln!(out, "{name}{{kind=\"{kind}\",state=\"{st}\"}} {n}");
    }
    let name = "powerstack_site_task_node_operations_total";
    let _ = writeln!(
        out,
        "# HELP {name} Node operations of control tasks this replica finished, by outcome."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    let ops = &state.tasks.ops;
    for (outcome, v) in
        [("succeeded", &ops.succeeded), ("failed", &ops.failed), ("aborted", &ops.aborted)]
    {
        let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {}", v.load(Ordering::Relaxed));
    }
    Ok(())
}

/// The site bound in force and the caps counted against it (from this replica's newest decision,
/// absent when this replica has made none), and this replica's cap writes by outcome.
async fn bound(state: &App, out: &mut String) -> Result<(), ApiError> {
    let config = &state.bound.settings.config;
    let b = crate::bound::in_force(&state.store, config, super::now_us()).await?;
    if let Some(w) = b.watts {
        metric(out, "powerstack_site_bound_watts", "gauge", "The site power bound in force, W.", w);
        let help = "What cannot be capped, kept out of the bound, W.";
        metric(out, "powerstack_site_bound_reserve_watts", "gauge", help, b.reserve_watts);
    }
    let last = state.bound.status.last.lock().ok().and_then(|l| l.clone());
    if let Some(d) = last.filter(|_| b.watts.is_some()) {
        let help = "The caps in force plus the reserve at this replica's newest decision, W.";
        metric(out, "powerstack_site_bound_accounted_watts", "gauge", help, d.accounted_watts);
    }
    let name = "powerstack_site_bound_cap_writes_total";
    let _ = writeln!(
        out,
        "# HELP {name} Cap writes of the bound's control loop at this replica, by outcome."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    let w = &state.bound.status.writes;
    for (outcome, v) in [("confirmed", &w[0]), ("not-applied", &w[1]), ("unknown", &w[2])] {
        let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {}", v.load(Ordering::Relaxed));
    }
    Ok(())
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", operation_id = "siteMetrics",
    summary = "Prometheus text: the site's power, nodes, running jobs, control tasks, the site bound, and this replica's ingest, task and cap-write counters.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition 0.0.4.", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 401, description = "No or an unknown token.", body = powerstack_api::agent::ErrorV1),
        (status = 503, description = "The database is away.", body = powerstack_api::agent::ErrorV1),
    ))]
pub(crate) async fn handler(
    State(state): State<App>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller(&state, &headers)?;
    let power = power_now(&state).await?;
    let running = state.store.running_jobs().await?;
    let c = &state.counters;
    let mut out = String::new();
    metric(
        &mut out,
        "powerstack_site_power_watts",
        "gauge",
        "Sum of the fresh nodes' power, W.",
        power.power_watts,
    );
    metric(
        &mut out,
        "powerstack_site_nodes_fresh",
        "gauge",
        "Nodes whose newest sample is fresh.",
        power.nodes_fresh as f64,
    );
    metric(
        &mut out,
        "powerstack_site_nodes_stale",
        "gauge",
        "Nodes whose newest sample is older than stale_after_s.",
        power.nodes_stale as f64,
    );
    metric(
        &mut out,
        "powerstack_site_jobs_running",
        "gauge",
        "Jobs begun and not ended.",
        running as f64,
    );
    let counters = [
        ("powerstack_site_samples_stored_total", "Samples this replica stored.", &c.samples_stored),
        ("powerstack_site_batches_stored_total", "Batches this replica stored.", &c.batches_stored),
        (
            "powerstack_site_batches_duplicate_total",
            "Resent batches this replica answered without storing.",
            &c.batches_duplicate,
        ),
        (
            "powerstack_site_batches_rejected_total",
            "Batches this replica refused (4xx).",
            &c.batches_rejected,
        ),
        (
            "powerstack_site_database_errors_total",
            "Requests this replica answered 503 for the database.",
            &c.database_errors,
        ),
        (
            "powerstack_site_tls_handshake_failures_total",
            "TLS handshakes that failed or timed out at this replica.",
            &c.tls_handshake_failures,
        ),
    ];
    for (name, help, v) in counters {
        metric(&mut out, name, "counter", help, v.load(Ordering::Relaxed) as f64);
    }
    tasks(&state, &mut out).await?;
    bound(&state, &mut out).await?;
    let name = "powerstack_site_bmc_reads_total";
    let _ = writeln!(out, "# HELP {name} BMC telemetry reads this replica made, by outcome.");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (outcome, n) in state.bmc_reads.outcomes() {
        let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {n}");
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response())
}
