//! Job documents: one node's power and energy over a job window ([`JobResultV1`]), the job
//! listing of a node agent ([`JobV1`]), and a job asked of many agents at once ([`JobQueryV1`],
//! with its cross-node [`JobTotalV1`]; its CSV form is [`crate::job_csv`]).
//!
//! [`JobResultV1`] keeps the field names of the Flux Power Monitor's per-host rows (`hostname`,
//! `node_power`, `cpu_power_N`, `mem_power_N`, `gpu_power_N`, `result_start_time`,
//! `result_end_time`, `data_presence`), so its clients read it unchanged, and adds the energy, the
//! peak, the sample count and the job's owner. Unlike that monitor, powers are time-weighted means
//! (energy over time, from the energy counters), not means of samples; a window that encloses the
//! whole buffer is `Partial`, not `None`. As in its rows, a figure that cannot be given is `-1.0`.
//! The same figures typed, without `-1.0` and per-device keys, are [`JobFigures`]: the agent
//! computes those, and only [`JobResultV1::with_figures`] and [`JobResultV1::figures`] write and
//! read them in a document.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod figures;

pub use figures::{Coverage, DEVICE_KEY_PATTERN, DeviceClass, DeviceKey, JobFigures, Peak};

/// What a figure is when it cannot be given (the Flux Power Monitor's value for it).
pub const NOT_MEASURED: f64 = -1.0;

fn not_measured() -> f64 {
    NOT_MEASURED
}

/// A figure that may be missing: `None` when negative or not finite.
pub fn known(x: f64) -> Option<f64> {
    (x.is_finite() && x >= 0.0).then_some(x)
}

/// Sum of the known figures; [`NOT_MEASURED`] when none is known.
pub fn sum_known(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut any = false;
    let mut total = 0.0;
    for v in values.into_iter().filter_map(known) {
        any = true;
        total += v;
    }
    if any { total } else { NOT_MEASURED }
}

/// How much of a job window the node's sample buffer covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum DataPresence {
    /// The buffer covers the whole window (a running job: from its beginning to the newest
    /// sample).
    Complete,
    /// The buffer covers part of the window (the job began before the oldest sample kept, or ended
    /// after the newest, or the agent was restarted while the job ran: see
    /// [`JobResultV1::gaps`]); the figures are those of the covered part.
    Partial,
    /// No sample overlaps the window; every figure is `-1.0`, `samples` is 0.
    None,
}

impl DataPresence {
    /// `Complete`, `Partial` or `None`, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            DataPresence::Complete => "Complete",
            DataPresence::Partial => "Partial",
            DataPresence::None => "None",
        }
    }
}

/// One node's power and energy over a job window (`GET /v1/jobs/{id}` on the node agent).
///
/// Every figure covers the part of the window the node's buffer holds, `result_start_time` to
/// `result_end_time`. Powers are watts, energies joules, times µs since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobResultV1 {
    /// The node's hostname.
    pub hostname: String,
    /// The job's id.
    pub job_id: String,
    /// Who the job belongs to, when the job mark said.
    pub user: Option<String>,
    /// The job's application, when the job mark said.
    pub app: Option<String>,
    /// Whether the job had not ended when the figures were computed (they run to the newest
    /// sample).
    pub running: bool,
    /// Mean node power over the covered part: `energy_joules` / its duration (a time-weighted
    /// mean), W; `-1.0` when nothing is covered or the covered part has no duration.
    pub node_power: f64,
    /// Node energy over the covered part, J (the difference of the energy counters at its two
    /// ends); `-1.0` when nothing is covered.
    pub energy_joules: f64,
    /// Mean power of each CPU socket (`cpu_power_N`, the dies of package N summed), memory
    /// (`mem_power_N`) and GPU (`gpu_power_N`), W, flattened into the document. Every socket of
    /// the node has both its `cpu_power_N` and `mem_power_N` keys; one that cannot be measured
    /// (a socket without a memory domain, say) is `-1.0`. GPU keys exist for the node's GPUs.
    #[serde(flatten)]
    pub domain_power: BTreeMap<String, f64>,
    /// The highest mean node power over any `peak_window_s` within the covered part, W (the
    /// whole covered part when it is shorter); never below `node_power`; `-1.0` when the covered
    /// part has no duration.
    pub peak_node_power: f64,
    /// The window `peak_node_power` is taken over, s: the one asked for (1 s by default), but
    /// never shorter than the sampling interval or than the slowest node part's measured update
    /// period (NVML's energy counter and HPE Cray pm_counters move every 100 ms), over which
    /// power cannot be told apart. `-1.0` when there is no peak.
    #[serde(default = "not_measured")]
    pub peak_window_s: f64,
    /// Start of the covered part, µs since the Unix epoch (0 when nothing is covered).
    pub result_start_time: u64,
    /// End of the covered part, µs since the Unix epoch (0 when nothing is covered).
    pub result_end_time: u64,
    /// Samples taken within the covered part.
    pub samples: u64,
    /// Whether the buffer covers the whole window: `Complete`, `Partial` or `None`.
    pub data_presence: DataPresence,
    /// Where within the window no figures exist because the agent was not running (it was
    /// restarted while the job ran), oldest first; the figures cover the rest and
    /// `data_presence` is `Partial`. Absent from the document when there is none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<JobGapV1>,
}

/// A part of a job's window on one node without figures: the agent was stopped (or died) and
/// started again while the job ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobGapV1 {
    /// Where the figures stop: the last sample kept before the agent stopped (a clean stop), or
    /// the start of the part the agent lost (it was killed or crashed), µs since the Unix epoch.
    pub start_unix_us: u64,
    /// The first sample after the agent started again, µs since the Unix epoch.
    pub end_unix_us: u64,
    /// What happened: `agent restarted` (a clean stop: what was measured before it is kept) or
    /// `agent killed or crashed` (what it had measured since its start is lost too).
    pub cause: String,
}

/// [`JobGapV1::cause`] after a clean stop.
pub const GAP_RESTART: &str = "agent restarted";
/// [`JobGapV1::cause`] after the agent was killed or crashed.
pub const GAP_CRASH: &str = "agent killed or crashed";

impl JobResultV1 {
    /// The document of a node that gave no result: every figure [`NOT_MEASURED`], times and
    /// `samples` 0, `None` present.
    pub fn unanswered(hostname: &str, job_id: &str) -> Self {
        JobResultV1 {
            hostname: hostname.to_string(),
            job_id: job_id.to_string(),
            user: None,
            app: None,
            running: false,
            node_power: NOT_MEASURED,
            energy_joules: NOT_MEASURED,
            domain_power: BTreeMap::new(),
            peak_node_power: NOT_MEASURED,
            peak_window_s: NOT_MEASURED,
            result_start_time: 0,
            result_end_time: 0,
            samples: 0,
            data_presence: DataPresence::None,
            gaps: Vec::new(),
        }
    }
}

/// A job asked of many node agents at once (`powerstack job query --format json`): one entry per
/// node asked, in the order asked, and the total over those that answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobQueryV1 {
    /// The job's id.
    pub job_id: String,
    /// One entry per node asked, answered or not.
    pub nodes: Vec<JobQueryNodeV1>,
    /// The figures summed over the nodes that answered.
    pub total: JobTotalV1,
}

/// One node of a [`JobQueryV1`]: the agent's [`JobResultV1`] (or, for a node that gave none,
/// [`JobResultV1::unanswered`]), flattened, plus where it was asked and what came of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobQueryNodeV1 {
    /// The node's figures.
    #[serde(flatten)]
    pub result: JobResultV1,
    /// The agent's address, as asked.
    pub agent: String,
    /// `ok`, `ok (running)`, `ok (shared)` (a site report: the node shared with other jobs), or
    /// why there is no result (`unreachable: ...`, `no such job`, `error 403: ...`,
    /// `invalid answer: ...`).
    pub status: String,
}

/// The `TOTAL` of a [`JobQueryV1`]: figures summed over the nodes that answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobTotalV1 {
    /// Always `TOTAL` (so the row reads like the nodes' rows).
    pub hostname: String,
    /// Sum of the nodes' mean powers, W; [`NOT_MEASURED`] when no node gave one.
    pub node_power: f64,
    /// Sum of the nodes' energies, J; [`NOT_MEASURED`] when no node gave one.
    pub energy_joules: f64,
    /// Per device key (`cpu_power_N`, `mem_power_N`, `gpu_power_N`), the sum over the nodes
    /// that have it, W, flattened into the document.
    #[serde(flatten)]
    pub domain_power: BTreeMap<String, f64>,
    /// The earliest start of a node's covered part, µs since the Unix epoch (0 when none).
    pub result_start_time: u64,
    /// The latest end of a node's covered part, µs since the Unix epoch (0 when none).
    pub result_end_time: u64,
    /// Samples over all nodes.
    pub samples: u64,
    /// `Complete` when every node asked is, `None` when no node has data, else `Partial`.
    pub data_presence: DataPresence,
    /// Nodes asked.
    pub nodes: usize,
    /// Nodes that gave a result.
    pub nodes_answered: usize,
}

impl JobTotalV1 {
    /// The total over one entry per node asked: its result, or `None` when it gave none.
    pub fn of(nodes: &[Option<&JobResultV1>]) -> Self {
        let answered: Vec<&JobResultV1> = nodes.iter().flatten().copied().collect();
        let mut domain: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for r in &answered {
            for (k, v) in &r.domain_power {
                domain.entry(k.clone()).or_default().push(*v);
            }
        }
        let covered: Vec<&&JobResultV1> =
            answered.iter().filter(|r| r.result_end_time > 0).collect();
        let complete =
            nodes.iter().all(|r| r.is_some_and(|r| r.data_presence == DataPresence::Complete));
        let data_presence = if complete && !nodes.is_empty() {
            DataPresence::Complete
        } else if answered.iter().any(|r| r.data_presence != DataPresence::None) {
            DataPresence::Partial
        } else {
            DataPresence::None
        };
        JobTotalV1 {
            hostname: "TOTAL".into(),
            node_power: sum_known(answered.iter().map(|r| r.node_power)),
            energy_joules: sum_known(answered.iter().map(|r| r.energy_joules)),
            domain_power: domain.into_iter().map(|(k, v)| (k, sum_known(v))).collect(),
            result_start_time: covered.iter().map(|r| r.result_start_time).min().unwrap_or(0),
            result_end_time: covered.iter().map(|r| r.result_end_time).max().unwrap_or(0),
            samples: answered.iter().map(|r| r.samples).sum(),
            data_presence,
            nodes: nodes.len(),
            nodes_answered: answered.len(),
        }
    }

    /// How many nodes answered, in words: `results from all N nodes` (`results from the node`
    /// for one), or `results from K of N nodes`.
    pub fn status(&self) -> String {
        if self.nodes_answered == self.nodes && self.nodes == 1 {
            "results from the node".into()
        } else if self.nodes_answered == self.nodes {
            format!("results from all {} nodes", self.nodes)
        } else {
            let noun = if self.nodes == 1 { "node" } else { "nodes" };
            format!("results from {} of {} {noun}", self.nodes_answered, self.nodes)
        }
    }
}

/// One job window in a listing (`GET /v1/jobs` on the node agent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobV1 {
    /// The job's id.
    pub id: String,
    /// Who the job belongs to, when the job mark said.
    pub user: Option<String>,
    /// The job's application, when the job mark said.
    pub app: Option<String>,
    /// When the job began, µs since the Unix epoch.
    pub begin_unix_us: u64,
    /// When the job ended, µs since the Unix epoch; `null` while it runs.
    pub end_unix_us: Option<u64>,
}

#[cfg(test)]
mod tests;
