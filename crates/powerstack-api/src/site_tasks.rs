//! The site's control tasks: power transitions and power limits put on many nodes out of band
//! (through their BMCs), each an asynchronous task the caller polls. A request answers `202` with
//! the task at once; the task then holds one row per node, each `pending`, `in-progress`, then
//! `succeeded`, `failed` (with the reason) or `aborted`.

use serde::{Deserialize, Deserializer, Serialize};

/// The most nodes one task may name.
pub const MAX_TASK_NODES: usize = 100_000;
/// The longest deadline a transition may be given, s.
pub const MAX_DEADLINE_S: u64 = 86_400;

/// A power transition, as a caller asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TransitionOperationV1 {
    /// Power on (`On`); a node already on succeeds at once.
    On,
    /// A graceful shutdown (`GracefulShutdown`); with `escalate`, forced off at the deadline.
    Off,
    /// Power off at once (`ForceOff`).
    ForceOff,
    /// A graceful restart (`GracefulRestart`); with `escalate`, forced at the deadline.
    Restart,
    /// A forced restart (`ForceRestart`).
    ForceRestart,
    /// Power off, then on (`PowerCycle`).
    PowerCycle,
}

impl TransitionOperationV1 {
    /// Its name on the wire (`force-off`).
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionOperationV1::On => "on",
            TransitionOperationV1::Off => "off",
            TransitionOperationV1::ForceOff => "force-off",
            TransitionOperationV1::Restart => "restart",
            TransitionOperationV1::ForceRestart => "force-restart",
            TransitionOperationV1::PowerCycle => "power-cycle",
        }
    }

    /// Every operation.
    pub const ALL: [TransitionOperationV1; 6] = [
        TransitionOperationV1::On,
        TransitionOperationV1::Off,
        TransitionOperationV1::ForceOff,
        TransitionOperationV1::Restart,
        TransitionOperationV1::ForceRestart,
        TransitionOperationV1::PowerCycle,
    ];

    /// The operation named `name` (`force-off`).
    pub fn parse(name: &str) -> Option<TransitionOperationV1> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

/// `POST /v1/transitions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequestV1 {
    /// What to do.
    pub operation: TransitionOperationV1,
    /// The nodes: names or hostlists (`node[01-04]`), each node once, each with a BMC in the
    /// site's configuration.
    #[schema(min_items = 1, max_items = 100_000)]
    pub nodes: Vec<String>,
    /// How long each node may take to reach its new power state, s (1 to 86400; default the
    /// site's, 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 86_400)]
    pub deadline_s: Option<u64>,
    /// Whether a graceful operation not done by the deadline is forced (once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate: Option<bool>,
}

/// `POST /v1/power-cap`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerCapRequestV1 {
    /// The nodes: names or hostlists, each node once, each with a BMC.
    #[schema(min_items = 1, max_items = 100_000)]
    pub nodes: Vec<String>,
    /// Each node's own power limit, W; `null` turns capping off (the key is required).
    #[serde(deserialize_with = "present")]
    #[schema(required = true, minimum = 1.0, maximum = 1_000_000.0)]
    pub limit_watts: Option<f64>,
}

/// An `Option` whose field must be present (`null` allowed).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Option::<f64>::deserialize(d)
}

/// `POST /v1/power-cap/snapshot`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerCapSnapshotRequestV1 {
    /// The nodes: names or hostlists, each node once, each with a BMC.
    #[schema(min_items = 1, max_items = 100_000)]
    pub nodes: Vec<String>,
}

/// What a task does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKindV1 {
    /// A power transition.
    Transition,
    /// A power limit set (or turned off).
    PowerCap,
    /// The power limits and their ranges read.
    PowerCapSnapshot,
}

impl TaskKindV1 {
    /// Its name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKindV1::Transition => "transition",
            TaskKindV1::PowerCap => "power-cap",
            TaskKindV1::PowerCapSnapshot => "power-cap-snapshot",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<TaskKindV1> {
        [TaskKindV1::Transition, TaskKindV1::PowerCap, TaskKindV1::PowerCapSnapshot]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// A task's state, derived from its nodes': `running` while any node is pending or in progress,
/// then `failed` when any node failed, else `aborted` when any was aborted, else `succeeded`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TaskStateV1 {
    /// Some node is pending or in progress.
    Running,
    /// Every node succeeded.
    Succeeded,
    /// Some node failed.
    Failed,
    /// No node failed, some were aborted.
    Aborted,
}

/// A node's state in a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TaskNodeStateV1 {
    /// Not begun.
    Pending,
    /// Being done.
    InProgress,
    /// Done and confirmed.
    Succeeded,
    /// Not done, or not confirmed: see the reason.
    Failed,
    /// Never begun: the task was aborted.
    Aborted,
}

impl TaskNodeStateV1 {
    /// Its name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskNodeStateV1::Pending => "pending",
            TaskNodeStateV1::InProgress => "in-progress",
            TaskNodeStateV1::Succeeded => "succeeded",
            TaskNodeStateV1::Failed => "failed",
            TaskNodeStateV1::Aborted => "aborted",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<TaskNodeStateV1> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Every state.
    pub const ALL: [TaskNodeStateV1; 5] = [
        TaskNodeStateV1::Pending,
        TaskNodeStateV1::InProgress,
        TaskNodeStateV1::Succeeded,
        TaskNodeStateV1::Failed,
        TaskNodeStateV1::Aborted,
    ];

    /// Whether it is final (succeeded, failed, aborted).
    pub fn is_final(self) -> bool {
        !matches!(self, TaskNodeStateV1::Pending | TaskNodeStateV1::InProgress)
    }
}

impl TaskStateV1 {
    /// Its name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStateV1::Running => "running",
            TaskStateV1::Succeeded => "succeeded",
            TaskStateV1::Failed => "failed",
            TaskStateV1::Aborted => "aborted",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<TaskStateV1> {
        [TaskStateV1::Running, TaskStateV1::Succeeded, TaskStateV1::Failed, TaskStateV1::Aborted]
            .into_iter()
            .find(|s| s.as_str() == name)
    }

    /// The state of a task whose nodes are counted in `c`.
    pub fn of(c: &TaskCountsV1) -> TaskStateV1 {
        if c.pending + c.in_progress > 0 {
            TaskStateV1::Running
        } else if c.failed > 0 {
            TaskStateV1::Failed
        } else if c.aborted > 0 {
            TaskStateV1::Aborted
        } else {
            TaskStateV1::Succeeded
        }
    }
}

/// A task's nodes counted by state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskCountsV1 {
    /// Every node.
    pub total: u64,
    /// Not begun.
    pub pending: u64,
    /// Being done.
    pub in_progress: u64,
    /// Done and confirmed.
    pub succeeded: u64,
    /// Failed.
    pub failed: u64,
    /// Aborted.
    pub aborted: u64,
}

impl TaskCountsV1 {
    /// Counts `n` more nodes in `state`.
    pub fn add(&mut self, state: TaskNodeStateV1, n: u64) {
        self.total += n;
        *match state {
            TaskNodeStateV1::Pending => &mut self.pending,
            TaskNodeStateV1::InProgress => &mut self.in_progress,
            TaskNodeStateV1::Succeeded => &mut self.succeeded,
            TaskNodeStateV1::Failed => &mut self.failed,
            TaskNodeStateV1::Aborted => &mut self.aborted,
        } += n;
    }
}

/// One power limit a node's BMC holds, as read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PowerLimitControlV1 {
    /// Its name at the BMC (`Node Power Limit`, `Accelerator0 Power Limit`).
    pub name: String,
    /// The limit in force, W; `null`: no limit.
    pub limit_watts: Option<f64>,
    /// The lowest limit it takes, W.
    pub min_watts: Option<f64>,
    /// The highest limit it takes, W.
    pub max_watts: Option<f64>,
}

/// What a node's operation found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskNodeResultV1 {
    /// The power state last read (`on`, `off`, ...), for a transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_state: Option<String>,
    /// The node's own limit read back, W (`null` with `limits` read: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_watts: Option<f64>,
    /// Whether the limit written takes effect only after the node's next reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_reset: Option<bool>,
    /// Every limit and its range, the node's own first (a snapshot).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<PowerLimitControlV1>,
}

/// One node of a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskNodeV1 {
    /// The node.
    pub node: String,
    /// Its state.
    pub state: TaskNodeStateV1,
    /// Why it failed or was aborted, or how it was confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<TaskNodeResultV1>,
    /// When the (last) request was sent to its BMC, µs since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_unix_us: Option<u64>,
    /// Requests sent (2: a graceful one escalated).
    pub attempts: u32,
}

/// What a task was asked to do, as its request said (defaults filled in).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskParamsV1 {
    /// A transition's operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<TransitionOperationV1>,
    /// A transition's deadline per node, s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_s: Option<u64>,
    /// Whether a transition escalates at the deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate: Option<bool>,
    /// A power-cap task's limit, W (`null`: capping off); absent for other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "some")]
    pub limit_watts: Option<Option<f64>>,
}

/// A present `limit_watts`, `null` included, as `Some`.
fn some<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

/// A task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskV1 {
    /// Always `powerstack.site-task.v1`.
    pub schema: String,
    /// Its id (a UUID).
    pub id: String,
    /// What it does.
    pub kind: TaskKindV1,
    /// Its state, derived from its nodes'.
    pub state: TaskStateV1,
    /// What was asked.
    #[serde(flatten)]
    pub params: TaskParamsV1,
    /// Who asked (the token's user or role).
    pub requested_by: String,
    /// When it was created, µs since the Unix epoch.
    pub created_unix_us: u64,
    /// When a node's state last changed, µs since the Unix epoch.
    pub updated_unix_us: u64,
    /// When it is deleted, µs since the Unix epoch.
    pub expires_unix_us: u64,
    /// Whether it was aborted (its pending nodes are `aborted`; those in flight finish).
    pub abort_requested: bool,
    /// Its nodes counted by state.
    pub counts: TaskCountsV1,
    /// Its nodes (absent in a listing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<TaskNodeV1>,
}

/// `GET /v1/transitions`, `GET /v1/power-cap`: tasks, newest first, without their nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TasksV1 {
    /// Always `powerstack.site-tasks.v1`.
    pub schema: String,
    /// The tasks.
    pub tasks: Vec<TaskV1>,
}

/// One line of a task's progress: its nodes counted by state.
pub fn progress(t: &TaskV1) -> String {
    let c = &t.counts;
    let done = c.succeeded + c.failed + c.aborted;
    let mut line = format!("{} {}: {done}/{} done", t.kind.as_str(), t.id, c.total);
    for (n, what) in [
        (c.succeeded, "succeeded"),
        (c.failed, "failed"),
        (c.aborted, "aborted"),
        (c.in_progress, "in progress"),
        (c.pending, "pending"),
    ] {
        if n > 0 {
            line.push_str(&format!(", {n} {what}"));
        }
    }
    line
}

fn watts(w: Option<f64>) -> String {
    w.map_or_else(|| "none".to_string(), |w| format!("{w} W"))
}

/// What a node's result says, in a few words.
fn result_cell(r: Option<&TaskNodeResultV1>) -> String {
    let Some(r) = r else { return "-".into() };
    if let Some(own) = r.limits.first() {
        return format!(
            "{} {} ({} to {})",
            own.name,
            watts(own.limit_watts),
            watts(own.min_watts),
            watts(own.max_watts)
        );
    }
    if r.pending_reset.is_some() {
        let reset = if r.pending_reset == Some(true) { ", at the next reset" } else { "" };
        return format!("limit {}{reset}", watts(r.limit_watts));
    }
    r.power_state.clone().unwrap_or_else(|| "-".into())
}

/// A task: what it was asked, its state and counts, then one row per node.
pub fn task_table(t: &TaskV1) -> String {
    use crate::site_table::{Align, render, text};
    let mut out = String::new();
    let what = match (t.kind, &t.params) {
        (TaskKindV1::Transition, p) => format!(
            "transition {} (deadline {} s{})",
            p.operation.map_or("?", |o| o.as_str()),
            p.deadline_s.unwrap_or(0),
            if p.escalate == Some(true) { ", escalating" } else { "" }
        ),
        (TaskKindV1::PowerCap, p) => format!("power-cap {}", watts(p.limit_watts.flatten())),
        (TaskKindV1::PowerCapSnapshot, _) => "power-cap snapshot".to_string(),
    };
    let aborted = if t.abort_requested { " (abort requested)" } else { "" };
    out.push_str(&format!("task {}: {what}, {}{aborted}\n", t.id, t.state.as_str()));
    out.push_str(&progress(t));
    out.push_str("\n\n");
    let rows: Vec<Vec<String>> = t
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.node.clone(),
                n.state.as_str().to_string(),
                n.attempts.to_string(),
                result_cell(n.result.as_ref()),
                text(n.reason.as_deref()),
            ]
        })
        .collect();
    let head = [
        ("NODE", Align::Left),
        ("STATE", Align::Left),
        ("SENT", Align::Right),
        ("RESULT", Align::Left),
        ("REASON", Align::Left),
    ];
    render(&mut out, &head, &rows);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_power_cap_request_names_its_limit_or_null_and_states_derive_from_nodes() {
        let r: PowerCapRequestV1 =
            serde_json::from_str(r#"{"nodes":["n[1-2]"],"limit_watts":null}"#).unwrap();
        assert_eq!(r.limit_watts, None);
        assert!(serde_json::from_str::<PowerCapRequestV1>(r#"{"nodes":["n1"]}"#).is_err());
        let t: TransitionRequestV1 =
            serde_json::from_str(r#"{"operation":"force-off","nodes":["n1"]}"#).unwrap();
        assert_eq!(t.operation, TransitionOperationV1::ForceOff);
        assert_eq!(
            TransitionOperationV1::parse("power-cycle"),
            Some(TransitionOperationV1::PowerCycle)
        );
        let mut c = TaskCountsV1::default();
        c.add(TaskNodeStateV1::Succeeded, 2);
        assert_eq!(TaskStateV1::of(&c), TaskStateV1::Succeeded);
        c.add(TaskNodeStateV1::Aborted, 1);
        assert_eq!(TaskStateV1::of(&c), TaskStateV1::Aborted);
        c.add(TaskNodeStateV1::Failed, 1);
        assert_eq!(TaskStateV1::of(&c), TaskStateV1::Failed);
        c.add(TaskNodeStateV1::InProgress, 1);
        assert_eq!((TaskStateV1::of(&c), c.total), (TaskStateV1::Running, 5));
        // A limit of null, turning capping off, reads back as such.
        let p = TaskParamsV1 { limit_watts: Some(None), ..TaskParamsV1::default() };
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(text, r#"{"limit_watts":null}"#);
        assert_eq!(serde_json::from_str::<TaskParamsV1>(&text).unwrap(), p);
        assert_eq!(serde_json::from_str::<TaskParamsV1>("{}").unwrap().limit_watts, None);
    }

    #[test]
    fn a_task_shows_as_its_progress_and_a_row_per_node() {
        let node = |n: &str, state, reason: Option<&str>, result| TaskNodeV1 {
            node: n.into(),
            state,
            reason: reason.map(str::to_string),
            result,
            sent_unix_us: None,
            attempts: 1,
        };
        let limits = TaskNodeResultV1 {
            limit_watts: Some(500.0),
            limits: vec![PowerLimitControlV1 {
                name: "Node Power Limit".into(),
                limit_watts: Some(500.0),
                min_watts: Some(200.0),
                max_watts: None,
            }],
            ..TaskNodeResultV1::default()
        };
        let mut t = TaskV1 {
            schema: "powerstack.site-task.v1".into(),
            id: "t1".into(),
            kind: TaskKindV1::PowerCapSnapshot,
            state: TaskStateV1::Running,
            params: TaskParamsV1::default(),
            requested_by: "admin".into(),
            created_unix_us: 0,
            updated_unix_us: 0,
            expires_unix_us: 0,
            abort_requested: false,
            counts: TaskCountsV1::default(),
            nodes: vec![
                node("n01", TaskNodeStateV1::Succeeded, Some("read"), Some(limits)),
                node("n02", TaskNodeStateV1::Failed, Some("reading the limits: 503"), None),
                node("n03", TaskNodeStateV1::Pending, None, None),
            ],
        };
        for n in &t.nodes.clone() {
            t.counts.add(n.state, 1);
        }
        assert_eq!(
            progress(&t),
            "power-cap-snapshot t1: 2/3 done, 1 succeeded, 1 failed, 1 pending"
        );
        let text = task_table(&t);
        assert!(text.starts_with("task t1: power-cap snapshot, running\n"), "{text}");
        assert!(
            text.contains("n01   succeeded     1  Node Power Limit 500 W (200 W to none)  read"),
            "{text}"
        );
        assert!(text.contains("n03   pending       1  -"), "{text}");
    }
}
