//! A job's figures from the stored counters: per node, each stream that overlaps the job gives a
//! part (the agents' own arithmetic, [`powerstack_job::figures`]); parts of several streams (an
//! agent restarted during the job) are combined with a gap between them. An ended job's node is
//! *settled* once its stored samples reach past the job's end (or its samples can no longer
//! come): its figures and the counters at the job's edges are then kept, so the report stays
//! exact after the raw samples expire and costs one row a node.

use powerstack_api::job::{
    DataPresence, JobFigures, JobQueryNodeV1, JobQueryV1, JobResultV1, JobTotalV1,
};
use powerstack_api::site::{
    BmcNodeV1, JobAllocationV1, NodeSeriesV1, SharedNodeV1, SiteJobReportV1, SiteTimeseriesV1,
};
use powerstack_job::combine::combine_figures;
use powerstack_job::figures::{Series, energy_difference, node_parts};
use powerstack_job::shares::{Occupant, shared_figures};
use powerstack_job::{Asked, Rows};
use powerstack_model::DomainKind;
use serde_json::json;

use crate::store::{
    JobRow, Neighbour, Store, StoreError, StreamRow, StreamSpan, Window, WindowSummary, columns,
};
use crate::telemetry::bmc_provider;

/// How a report is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportSettings {
    /// The window a node's peak is taken over, µs.
    pub peak_window_us: u64,
    /// How long after a job's end a node's samples may still arrive (an agent's spool); past
    /// it, what is stored is final, µs.
    pub settle_after_us: u64,
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings { peak_window_us: 1_000_000, settle_after_us: 7 * 86_400_000_000 }
    }
}

/// One node's figures over a job as computed now.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeFigures {
    /// The node's document.
    pub result: JobResultV1,
    /// The counters at the job's edges, per stream.
    pub edges: serde_json::Value,
    /// Whether nothing more can change them.
    pub settled: bool,
}

/// Who a job shares a node with: what the job holds of it and the other jobs on it whose
/// windows overlap the job's (none: the job has the node to itself).
#[derive(Clone, Copy, Debug, Default)]
pub struct Sharing<'a> {
    /// What the job holds of the node; `None`: the node whole.
    pub mine: Option<&'a JobAllocationV1>,
    /// The other jobs on the node.
    pub others: &'a [&'a Neighbour],
}

/// A job on a node as its energy is split: its window (a running job's to `now_us`) and what it
/// holds.
fn occupant(
    begin_us: u64,
    end_us: Option<u64>,
    now_us: u64,
    alloc: Option<&JobAllocationV1>,
) -> Occupant {
    Occupant {
        begin_unix_us: begin_us,
        end_unix_us: end_us.unwrap_or(now_us).max(begin_us),
        cpus: alloc.and_then(|a| a.cpus),
        gpus: alloc.map(|a| a.gpus.iter().copied().collect()),
    }
}

/// The figures of node `node` over `job` at `now_us`, from its stored streams: the job's part
/// of the node's when it shares it (`sharing`). `rolled_up_us` is how far the rollups were done
/// before any of these samples was read ([`Store::rolled_up_until`]): a long job's figures are
/// final only once they reach its end, and a shared node's once every job on it has ended.
pub async fn node_figures(
    store: &Store,
    job: &JobRow,
    node: &str,
    sharing: Sharing<'_>,
    (now_us, rolled_up_us): (u64, u64),
    settings: &ReportSettings,
) -> Result<NodeFigures, StoreError> {
    let from = job.begin_unix_us;
    let to = job.end_unix_us.unwrap_or(now_us);
    let me = occupant(from, job.end_unix_us, now_us, sharing.mine);
    let others: Vec<Occupant> = sharing
        .others
        .iter()
        .map(|n| occupant(n.begin_unix_us, n.end_unix_us, now_us, n.allocation.as_ref()))
        .collect();
    // Whether the figures can be final is decided before the samples are read: a sample past the
    // end stored by then is read below (a stream's samples only come in time order).
    let past_end = match job.end_unix_us {
        None => false,
        Some(end) if now_us.saturating_sub(end) > settings.settle_after_us => true,
        Some(end) => store.node_has_samples_since(node, end).await?,
    };
    let streams = store.streams_of(node, from, to).await?;
    let asked = Asked {
        begin_unix_us: from,
        end_unix_us: job.end_unix_us,
        now_unix_us: now_us,
        peak_window_us: settings.peak_window_us,
    };
    let mut parts = Vec::new();
    let mut edges = Vec::new();
    let mut needs_rollups = false;
    for s in &streams {
        let mut window = store.window(s, from, to).await?;
        if window.rows.is_empty() {
            window =
                Window { rows: store.rows(s, from, to, StreamSpan::Minutes).await?, summary: None };
        }
        let cols = columns(&s.domains);
        let mut f = shared_figures(&window.rows, &cols, &asked, &me, &others);
        if let Some(summary) = window.summary {
            needs_rollups = true;
            // On a shared node, the rollups' node peak counts at the job's part of the energy.
            let part = match others.is_empty() {
                true => Some(1.0),
                false => powerstack_job::figures(&window.rows, &cols, &asked)
                    .energy_joules
                    .zip(f.energy_joules)
                    .and_then(|(node, mine)| (node > 0.0).then(|| mine / node)),
            };
            with_summary(&mut f, summary, part, settings);
        }
        if f.coverage.is_some() {
            parts.push(f);
            edges.push(edge(s, &window.rows));
        }
    }
    let figures = match parts.len() {
        0 => JobFigures::default(),
        1 => parts.remove(0),
        _ => combine_figures(&parts, true),
    };
    let mut result = JobResultV1::unanswered(node, &job.id);
    result.user = job.user.clone();
    result.app = job.app.clone();
    result.running = job.end_unix_us.is_none();
    let result = result.with_figures(&figures);
    let others_ended = sharing.others.iter().all(|n| n.end_unix_us.is_some());
    let settled =
        past_end && others_ended && (!needs_rollups || rolled_up_us >= to - to % 60_000_000);
    Ok(NodeFigures { result, edges: json!(edges), settled })
}

/// Figures over a long window's rows (raw near the edges, a minute apart between) made whole by
/// the rollups: the raw sample count, and the peak no lower than the highest power between two
/// samples inside (the rollups keep it for peak windows up to the samples' spacing; a longer
/// peak window is taken from the rows as they are), scaled by the job's `part` of the node's
/// energy on a shared node.
fn with_summary(
    f: &mut JobFigures,
    summary: WindowSummary,
    part: Option<f64>,
    settings: &ReportSettings,
) {
    if let Some(c) = f.coverage.as_mut() {
        c.samples = summary.samples;
    }
    if settings.peak_window_us <= 1_000_000
        && let (Some(p), Some(w), Some(part)) = (f.peak.as_mut(), summary.peak_watts, part)
    {
        p.watts = p.watts.max(w * part);
    }
}

/// A stream's rows at the edges of what was read: its first and last sample.
fn edge(stream: &StreamRow, rows: &Rows) -> serde_json::Value {
    let at = |i: Option<usize>| {
        i.and_then(|i| rows.row(i)).map(|(t, c)| json!({"unix_us": t, "counters": c}))
    };
    let mut edge = json!({
        "stream": stream.stream,
        "first": at(Some(0)),
        "last": at(rows.len().checked_sub(1)),
    });
    if let Some(p) = bmc_provider(&stream.domains) {
        edge["provider"] = json!(p);
    }
    edge
}

/// Node `node` as measured through its BMC, from the streams of its `edges`; `None`: an agent's.
fn bmc_node(node: &str, edges: &serde_json::Value) -> Option<BmcNodeV1> {
    let mut providers: Vec<String> = Vec::new();
    for p in edges.as_array()?.iter().filter_map(|e| e.get("provider")?.as_str()) {
        if !providers.iter().any(|q| q == p) {
            providers.push(p.to_string());
        }
    }
    (!providers.is_empty()).then(|| BmcNodeV1 { node: node.to_string(), providers })
}

/// Job `id`'s report at `now_us`: kept figures for settled nodes, computed ones for the others
/// (and kept, settling the job when every node is).
pub async fn job_report(
    store: &Store,
    id: &str,
    now_us: u64,
    settings: &ReportSettings,
) -> Result<SiteJobReportV1, StoreError> {
    let mut job = store.job(id).await?;
    let was_settled = job.settled;
    let nodes = store.job_nodes(id).await?;
    // Once for every node, before any of their samples is read.
    let rolled_up_us = store.rolled_up_until().await?;
    let neighbours =
        store.neighbours(id, job.begin_unix_us, job.end_unix_us.unwrap_or(now_us)).await?;
    let mut rows = Vec::with_capacity(nodes.len());
    let mut shared = Vec::new();
    let mut bmc = Vec::new();
    let mut all_settled = job.end_unix_us.is_some();
    let mut changed = false;
    for n in &nodes {
        let others: Vec<&Neighbour> = neighbours.iter().filter(|o| o.node == n.node).collect();
        if !others.is_empty() {
            let jobs = others.iter().map(|o| o.job_id.clone()).collect();
            shared.push(SharedNodeV1 { node: n.node.clone(), jobs });
        }
        let (result, settled, edges) = match (&n.result, n.settled) {
            (Some(r), true) => (r.clone(), true, n.edges.clone()),
            _ => {
                let sharing = Sharing { mine: n.allocation.as_ref(), others: &others };
                let times = (now_us, rolled_up_us);
                let f = node_figures(store, &job, &n.node, sharing, times, settings).await?;
                if job.end_unix_us.is_some() {
                    store.keep_job_node(id, &n.node, &f.result, &f.edges, f.settled).await?;
                    changed = true;
                }
                (f.result, f.settled, f.edges)
            }
        };
        bmc.extend(bmc_node(&n.node, &edges));
        all_settled &= settled;
        rows.push(result);
    }
    let total = JobTotalV1::of(
        &rows
            .iter()
            .map(|r| (r.data_presence != DataPresence::None || r.samples > 0).then_some(r))
            .collect::<Vec<_>>(),
    );
    set_totals(&mut job, &rows, &total);
    job.settled = all_settled;
    if job.end_unix_us.is_some() && (changed || was_settled != all_settled) {
        store.keep_job_totals(&job).await?;
    }
    let nodes = rows
        .into_iter()
        .map(|result| {
            let is_shared = shared.iter().any(|s| s.node == result.hostname);
            let status = match (result.data_presence, result.running, is_shared) {
                (DataPresence::None, _, _) => "no data".to_string(),
                (_, true, false) => "ok (running)".to_string(),
                (_, true, true) => "ok (running, shared)".to_string(),
                (_, false, true) => "ok (shared)".to_string(),
                (_, false, false) => "ok".to_string(),
            };
            JobQueryNodeV1 { agent: result.hostname.clone(), result, status }
        })
        .collect();
    Ok(SiteJobReportV1 {
        schema: "powerstack.site-job.v1".into(),
        job,
        shared,
        bmc,
        report: JobQueryV1 { job_id: id.to_string(), nodes, total },
    })
}

/// The job record's totals from its nodes' documents.
fn set_totals(job: &mut JobRow, rows: &[JobResultV1], total: &JobTotalV1) {
    let known = |x: f64| (x >= 0.0 && x.is_finite()).then_some(x);
    job.energy_joules = known(total.energy_joules);
    job.mean_power_watts = known(total.node_power);
    let peaks: Vec<f64> = rows.iter().filter_map(|r| known(r.peak_node_power)).collect();
    job.peak_power_watts = (!peaks.is_empty()).then(|| peaks.iter().sum());
    job.data_presence = Some(total.data_presence);
}

/// Settles what can be settled of up to `limit` ended jobs; returns how many jobs were looked at.
pub async fn settle(
    store: &Store,
    now_us: u64,
    settings: &ReportSettings,
    limit: usize,
) -> Result<usize, StoreError> {
    let ids = store.unsettled_jobs(limit).await?;
    for id in &ids {
        job_report(store, id, now_us, settings).await?;
    }
    Ok(ids.len())
}

/// The most steps a time series has.
pub const MAX_STEPS: u64 = 10_000;

/// Job `id`'s node power over steps of `step_us` (`None`: the job's length over 600, at least
/// 1 s): per node, the mean power over each step from the counters around its ends. Steps of a
/// minute or more read the per-minute rollups.
pub async fn timeseries(
    store: &Store,
    id: &str,
    step_us: Option<u64>,
    now_us: u64,
) -> Result<SiteTimeseriesV1, StoreError> {
    let job = store.job(id).await?;
    let from = job.begin_unix_us;
    let to = job.end_unix_us.unwrap_or(now_us).max(from);
    let span = to - from;
    let step = step_us.unwrap_or((span / 600).max(1_000_000)).max(1_000);
    if span / step > MAX_STEPS {
        return Err(StoreError::Invalid(format!(
            "{} steps of {} s: at most {MAX_STEPS}; ask for a longer step",
            span / step,
            step as f64 / 1e6
        )));
    }
    let steps = span.div_ceil(step).max(1);
    let table = if step >= 60_000_000 { StreamSpan::Minutes } else { StreamSpan::Raw };
    let steps = usize::try_from(steps).unwrap_or(0);
    let mut nodes = Vec::with_capacity(job.nodes.len());
    for node in &job.nodes {
        let mut series = NodeSeriesV1 { node: node.clone(), ..NodeSeriesV1::default() };
        for s in store.streams_of(node, from, to).await? {
            let rows = store.rows(&s, from, to, table).await?;
            let cols = columns(&s.domains);
            let of = |kind: DomainKind| -> Vec<(usize, f64)> {
                let read = cols.iter().enumerate().filter(|(_, c)| c.kind == kind && c.read);
                read.map(|(i, c)| (i, c.joules_per_tick)).collect()
            };
            for (out, parts) in [
                (&mut series.watts, node_parts(&cols)),
                (&mut series.cpu_watts, of(DomainKind::Package)),
                (&mut series.memory_watts, of(DomainKind::Memory)),
                (&mut series.gpu_watts, of(DomainKind::Gpu)),
            ] {
                fill_steps(out, steps, &rows, &parts, from, to, step);
            }
        }
        // A node without data still has its (empty) node series.
        series.watts.resize(steps, None);
        nodes.push(series);
    }
    Ok(SiteTimeseriesV1 {
        schema: "powerstack.site-timeseries.v1".into(),
        job_id: id.to_string(),
        start_unix_us: from,
        step_s: step as f64 / 1e6,
        nodes,
    })
}

/// The steps of `[from, to)` that `rows` cover, filled into `out` (sized to `steps` first) from
/// the columns `parts`; nothing when there are no such columns.
fn fill_steps(
    out: &mut Vec<Option<f64>>,
    steps: usize,
    rows: &Rows,
    parts: &[(usize, f64)],
    from: u64,
    to: u64,
    step: u64,
) {
    if parts.is_empty() {
        return;
    }
    out.resize(steps, None);
    for (k, w) in out.iter_mut().enumerate() {
        let a = from + k as u64 * step;
        let b = (a + step).min(to);
        if let Some(x) = step_watts(rows, parts, a, b) {
            *w = Some(x);
        }
    }
}

/// Mean power of the columns `parts` over `[a, b]` when `rows` cover it entirely.
fn step_watts(rows: &Rows, parts: &[(usize, f64)], a: u64, b: u64) -> Option<f64> {
    let (oldest, newest) = rows.span()?;
    if parts.is_empty() || a < oldest || b > newest || b <= a {
        return None;
    }
    let joules: f64 = parts
        .iter()
        .map(|&(c, jpt)| energy_difference(rows, c, a, b).map(|t| t * jpt))
        .sum::<Option<f64>>()?;
    Some(joules / ((b - a) as f64 / 1e6))
}
