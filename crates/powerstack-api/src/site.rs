//! The site service's wire types: what an agent pushes (a stream's registration and its batches
//! of counters), the job records a scheduler writes, and what the site answers (nodes, site
//! power, jobs, job reports, time series).
//!
//! A **stream** is one run of an agent on one node: its columns (the domains whose counters it
//! pushes, in order) and its counters, cumulative and wrap-extended, so that the energy between
//! any two stored samples of one stream is their difference. A new run is a new stream: counters
//! are never compared across streams. The agent names its stream (16 hex digits it draws at
//! start), so it can spool batches before the site has ever answered.

use serde::{Deserialize, Serialize};

use crate::job::{DataPresence, JobQueryV1};

/// A node's name at the site: 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
pub const NODE_NAME_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";
/// A stream's id: 16 lowercase hex digits.
pub const STREAM_ID_PATTERN: &str = "^[0-9a-f]{16}$";
/// The most samples one batch may carry.
pub const MAX_BATCH_SAMPLES: usize = 3600;
/// The most columns a stream may have.
pub const MAX_STREAM_COLUMNS: usize = 512;
/// The most nodes one job may name.
pub const MAX_JOB_NODES: usize = 100_000;

/// A batch's samples: at most [`MAX_BATCH_SAMPLES`] rows of integers (a time, then counters).
fn batch_samples() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let value =
        ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(u64::MAX));
    ArrayBuilder::new()
        .items(ArrayBuilder::new().items(value))
        .max_items(Some(MAX_BATCH_SAMPLES))
        .description(Some(
            "The samples (at most 3600), each `[unix_us, counter0, counter1, ...]`, as wide as the stream's columns plus one.",
        ))
        .build()
}

/// A job's node names: 1 to [`MAX_JOB_NODES`], each once, each a node name.
fn job_nodes() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let name = ObjectBuilder::new().schema_type(Type::String).pattern(Some(NODE_NAME_PATTERN));
    ArrayBuilder::new()
        .items(name)
        .min_items(Some(1))
        .max_items(Some(MAX_JOB_NODES))
        .unique_items(true)
        .description(Some(
            "The job's nodes, by their names at the site (a hostlist expanded), each once.",
        ))
        .build()
}

/// Whether `name` is a node name ([`NODE_NAME_PATTERN`]).
pub fn is_node_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `id` is a stream id ([`STREAM_ID_PATTERN`]).
pub fn is_stream_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// One column of a stream: a domain whose counter the agent pushes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamDomainV1 {
    /// The domain's kind (`node`, `package`, `memory`, `gpu`, ...).
    #[schema(schema_with = crate::cap::domain_kinds)]
    pub domain: String,
    /// The domain's index (its socket, its GPU).
    #[serde(deserialize_with = "crate::int::u32")]
    #[schema(minimum = 0, maximum = 4_294_967_295_u64)]
    pub index: u32,
    /// Its die, where a package has several.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt_u32"
    )]
    #[schema(minimum = 0, maximum = 4_294_967_295_u64)]
    pub die: Option<u32>,
    /// The provider that reads it.
    pub provider: String,
    /// Joules per counter tick (positive, at most a million).
    #[schema(exclusive_minimum = 0.0, maximum = 1e6)]
    pub joules_per_tick: f64,
    /// Whether the domain has held a reading (a column that never has measures nothing).
    pub read: bool,
    /// The long-term power limit in force when the stream began, W.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0)]
    pub limit_watts: Option<f64>,
    /// The most the domain can draw, W (its highest settable limit, or its rated power), used to
    /// refuse impossible counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0)]
    pub max_power_watts: Option<f64>,
}

/// `PUT /v1/nodes/{node}/streams/{stream}`: an agent run registers the node and its columns.
/// Registering the same stream again with the same columns is harmless; other columns are a 409.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamRegisterV1 {
    /// The node's hostname as its system says (1 to 255 characters, no control character).
    #[schema(min_length = 1, max_length = 255, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub hostname: String,
    /// The simulated profile, when the node is simulated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated: Option<String>,
    /// When the run began, µs since the Unix epoch.
    #[serde(deserialize_with = "crate::int::u64")]
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub started_unix_us: u64,
    /// The columns of every batch, in order (1 to [`MAX_STREAM_COLUMNS`]).
    #[schema(min_items = 1, max_items = 512)]
    pub domains: Vec<StreamDomainV1>,
    /// The node's topology document (`powerstack.topology.v1`), kept as given.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt_object"
    )]
    #[schema(value_type = Option<Object>)]
    pub topology: Option<serde_json::Value>,
    /// Where the site can reach this agent's HTTP API (its TCP listener), an `http://` or
    /// `https://` URL (at most 2048 characters); absent: the agent takes no caps from the site
    /// (a registration without it forgets the one given before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        max_length = 2048,
        pattern = r"^[hH][tT][tT][pP][sS]?://[^/\u0000-\u0020\u007F-\u009F][^\u0000-\u0020\u007F-\u009F]*$"
    )]
    pub control_url: Option<String>,
}

/// The most characters of a control URL.
pub const MAX_CONTROL_URL: usize = 2048;

/// What is wrong with a control URL, when anything is: an absolute `http://` or `https://` URL
/// with a host, at most [`MAX_CONTROL_URL`] characters, no space or control character (what
/// [`StreamRegisterV1::control_url`]'s schema pattern says).
pub fn control_url_problem(url: &str) -> Option<String> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return Some(format!("control_url {url:?}: an http:// or https:// URL"));
    };
    if url.chars().count() > MAX_CONTROL_URL {
        return Some(format!("control_url: at most {MAX_CONTROL_URL} characters"));
    }
    if url.chars().any(|c| c.is_control() || c == ' ') {
        return Some("control_url: no space or control character".into());
    }
    if rest.is_empty() || rest.starts_with('/') {
        return Some(format!("control_url {url:?}: the URL names no host"));
    }
    None
}

/// The answer to a registration: where the site's copy of the stream stands, so that a
/// restarted sender knows what was stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StreamRegisteredV1 {
    /// The node.
    pub node: String,
    /// The stream.
    pub stream: String,
    /// The newest stored sample's time, µs since the Unix epoch.
    pub last_unix_us: Option<u64>,
}

/// `POST /v1/nodes/{node}/streams/{stream}/batches`: samples of a stream, each
/// `[unix_us, counter0, counter1, ...]` with one counter per registered column, times strictly
/// increasing and after every sample stored before. A batch whose samples are stored already is
/// a resend: answered, not stored again. `seq` numbers a stream's batches for the sender and for
/// messages; the site recognises a resend by its samples.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchV1 {
    /// The batch's sequence number in its stream (from 1, increasing).
    #[schema(minimum = 1, maximum = 18_446_744_073_709_551_615_u64)]
    #[serde(deserialize_with = "crate::int::u64")]
    pub seq: u64,
    /// The samples (at most [`MAX_BATCH_SAMPLES`]), each as wide as the stream's columns plus one.
    #[schema(schema_with = batch_samples)]
    #[serde(deserialize_with = "crate::int::rows")]
    pub samples: Vec<Vec<u64>>,
}

/// The answer to a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchStoredV1 {
    /// Samples stored by this request (0 for a resend).
    pub stored: u64,
    /// Whether the batch had been stored before (a resend).
    pub duplicate: bool,
}

/// A node known to the site (`GET /v1/nodes`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SiteNodeV1 {
    /// Its name at the site.
    pub name: String,
    /// Its hostname as its system says.
    pub hostname: String,
    /// The simulated profile, when simulated.
    pub simulated: Option<String>,
    /// Columns of its newest stream.
    pub domains: Vec<StreamDomainV1>,
    /// Its newest stream.
    pub stream: String,
    /// Its newest stored sample, µs since the Unix epoch.
    pub last_unix_us: Option<u64>,
    /// Node power between its two newest samples, W.
    pub power_watts: Option<f64>,
    /// Whether its newest sample is older than the site's `stale_after`.
    pub stale: bool,
    /// Where the site reaches its agent's HTTP API to cap it, as its agent last registered;
    /// absent when it gave none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_url: Option<String>,
}

/// `GET /v1/nodes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SiteNodesV1 {
    /// Always `powerstack.site-nodes.v1`.
    pub schema: String,
    /// The nodes, by name.
    pub nodes: Vec<SiteNodeV1>,
}

/// `GET /v1/site/power`: the site's power now, the sum over fresh nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SitePowerV1 {
    /// Always `powerstack.site-power.v1`.
    pub schema: String,
    /// When it was computed, µs since the Unix epoch.
    pub unix_us: u64,
    /// Sum of the fresh nodes' power, W.
    pub power_watts: f64,
    /// Nodes whose newest sample is fresh and has a power.
    pub nodes_fresh: usize,
    /// Nodes whose newest sample is older than `stale_after_s` (not in the sum).
    pub nodes_stale: usize,
    /// How old a node's newest sample may be and still count, s.
    pub stale_after_s: f64,
}

/// `POST /v1/jobs`: a job begins at the site (now, by the site's clock).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteJobBeginV1 {
    /// The job's id (1 to 128 characters of `A-Z a-z 0-9 . _ : -`).
    #[schema(pattern = r"^[A-Za-z0-9._:-]{1,128}$")]
    pub id: String,
    /// The job's nodes, by their names at the site (a hostlist expanded), each once.
    #[schema(schema_with = job_nodes)]
    pub nodes: Vec<String>,
    /// Who the job belongs to.
    #[serde(default)]
    #[schema(max_length = 256, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub user: Option<String>,
    /// The account it is charged to.
    #[serde(default)]
    #[schema(max_length = 256, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub account: Option<String>,
    /// Its application (the job's name).
    #[serde(default)]
    #[schema(max_length = 256, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub app: Option<String>,
    /// What the job holds of the nodes it shares with other jobs, each node once and each one of
    /// the job's; a node not listed is held whole (default: every node held whole).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 100_000)]
    pub allocations: Vec<JobAllocationV1>,
    /// The power the job asks for, W (finite, above 0), for the site's power bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0.0, maximum = 1e12)]
    pub power_watts: Option<f64>,
    /// The job's priority for the site's power bound (higher first; 0 when absent).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt_i32"
    )]
    #[schema(minimum = -2_147_483_648_i64, maximum = 2_147_483_647)]
    pub priority: Option<i32>,
}

/// The most CPUs an allocation may name.
pub const MAX_ALLOC_CPUS: u32 = 1_048_576;
/// The most GPUs an allocation may name.
pub const MAX_ALLOC_GPUS: usize = 1024;

/// What a job holds of one of its nodes when it does not hold it whole: its share of the node's
/// energy is split by `cpus` and its GPUs' energy goes to it (docs/site.md, "Shared nodes").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobAllocationV1 {
    /// The node, one of the job's.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub node: String,
    /// The CPUs the job holds on it (1 to 1048576); absent: not said (the node's energy is then
    /// split equally between the jobs on it).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt_u32"
    )]
    #[schema(minimum = 1, maximum = 1_048_576)]
    pub cpus: Option<u32>,
    /// The GPUs the job holds on it, by index as the site's GPU domains number them (each once, at
    /// most 1024, each below 1024); empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "crate::int::u32s")]
    #[schema(schema_with = alloc_gpus)]
    pub gpus: Vec<u32>,
}

/// An allocation's GPU indices: at most [`MAX_ALLOC_GPUS`], each once, each below it.
fn alloc_gpus() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let index = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .maximum(Some(MAX_ALLOC_GPUS as u64 - 1));
    ArrayBuilder::new()
        .items(index)
        .max_items(Some(MAX_ALLOC_GPUS))
        .unique_items(true)
        .description(Some("The GPUs the job holds on the node, by index, each once."))
        .build()
}

/// A node a job shared with other jobs during its window (`SiteJobReportV1::shared`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SharedNodeV1 {
    /// The node.
    pub node: String,
    /// The other jobs on it whose windows overlap the job's.
    pub jobs: Vec<String>,
}

/// A node of a job measured through its BMC, without an agent (`SiteJobReportV1::bmc`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BmcNodeV1 {
    /// The node.
    pub node: String,
    /// How its energy was obtained, one per kind of stream over the job: `redfish` (the BMC's
    /// energy counter) or `redfish-integrated` (its power readings integrated).
    pub providers: Vec<String>,
}

/// A job record at the site, with its figures once it has ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SiteJobV1 {
    /// The job's id.
    pub id: String,
    /// Who it belongs to.
    pub user: Option<String>,
    /// The account it is charged to.
    pub account: Option<String>,
    /// Its application.
    pub app: Option<String>,
    /// Its nodes.
    pub nodes: Vec<String>,
    /// When it began, µs since the Unix epoch.
    pub begin_unix_us: u64,
    /// When it ended, µs since the Unix epoch; `null` while it runs.
    pub end_unix_us: Option<u64>,
    /// Energy over all its nodes, J (`null` when nothing was measured): an ended job's once
    /// computed; a running job's so far in its report and, for the newest running jobs of a listing
    /// (up to 256 nodes in all), in the listing.
    pub energy_joules: Option<f64>,
    /// Mean power over all its nodes, W.
    pub mean_power_watts: Option<f64>,
    /// Sum of its nodes' peak powers, W (an upper bound of the job's peak).
    pub peak_power_watts: Option<f64>,
    /// Whether every node's data covers the whole job.
    pub data_presence: Option<DataPresence>,
    /// Whether every node's figures are final (each node's stored samples reach past the end);
    /// a job whose nodes still have samples to send is recomputed when they arrive.
    pub settled: bool,
    /// The power the job asked for, W; absent when it asked for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_watts: Option<f64>,
    /// The job's priority for the power bound; absent when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// `GET /v1/jobs`: jobs, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SiteJobsV1 {
    /// Always `powerstack.site-jobs.v1`.
    pub schema: String,
    /// The jobs.
    pub jobs: Vec<SiteJobV1>,
    /// Whether more jobs matched than `limit`.
    pub truncated: bool,
}

/// `GET /v1/jobs?user=&since=&until=&limit=`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SiteJobsQueryV1 {
    /// Only this user's jobs.
    #[serde(default)]
    #[param(max_length = 256, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub user: Option<String>,
    /// Only jobs running at or after this time, µs since the Unix epoch.
    #[serde(default)]
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub since: Option<u64>,
    /// Only jobs that began at or before this time, µs since the Unix epoch.
    #[serde(default)]
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub until: Option<u64>,
    /// At most this many jobs (default 1000, at most 100000).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100_000)]
    pub limit: Option<usize>,
}

/// `GET /v1/jobs/{id}`: a job and its report, one row per node (figures from the stored
/// counters) and the total.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SiteJobReportV1 {
    /// Always `powerstack.site-job.v1`.
    pub schema: String,
    /// The job record.
    pub job: SiteJobV1,
    /// The nodes the job shared with other jobs (their energy split between the jobs, see
    /// docs/site.md, "Shared nodes"), by node; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared: Vec<SharedNodeV1>,
    /// The nodes measured through their BMC rather than an agent (see docs/site.md, "Nodes
    /// without an agent"), by node; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bmc: Vec<BmcNodeV1>,
    /// Per node and in total, in the shape of `powerstack job query`.
    #[serde(flatten)]
    pub report: JobQueryV1,
}

/// What a job's report or time series is answered as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DocumentFormatV1 {
    /// The JSON document (the default).
    #[default]
    Json,
    /// CSV: a report in the columns of `powerstack job report --format csv`, a time series one
    /// row per node and step ([`crate::site_csv::timeseries_csv`]).
    Csv,
}

/// `GET /v1/jobs/{id}?format=`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobReportQueryV1 {
    /// `json` (the default) or `csv`.
    #[serde(default)]
    pub format: Option<DocumentFormatV1>,
}

/// `GET /v1/jobs/{id}/timeseries?step=&format=`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TimeseriesQueryV1 {
    /// The step, a duration from 1ms to 24h (`500ms`, `1s`, `10s`, `1m`, `1.5h`); default: the
    /// job's length over 600, at least 1s. The pattern is a part of what the site takes, all of
    /// it within the range.
    #[serde(default)]
    #[param(
        pattern = r"^([1-9][0-9]{0,4}ms|[1-9][0-9]{0,3}s|[1-9][0-9]{0,2}m|([1-9]|1[0-9]|2[0-4])h)$"
    )]
    pub step: Option<String>,
    /// `json` (the default) or `csv`.
    #[serde(default)]
    pub format: Option<DocumentFormatV1>,
}

/// A job's node power over time: per node, the mean power over each step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SiteTimeseriesV1 {
    /// Always `powerstack.site-timeseries.v1`.
    pub schema: String,
    /// The job.
    pub job_id: String,
    /// The beginning of the first step, µs since the Unix epoch.
    pub start_unix_us: u64,
    /// The step, s.
    pub step_s: f64,
    /// One series per node.
    pub nodes: Vec<NodeSeriesV1>,
}

/// One node's power over the steps of a [`SiteTimeseriesV1`]: the node's, and that of each kind
/// of its domains (the `CPU`, `MEM` and `GPU` columns of the job's report).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeSeriesV1 {
    /// The node.
    pub node: String,
    /// Mean node power over each step, W; `null` where the step has no data.
    pub watts: Vec<Option<f64>>,
    /// Mean power of its CPU sockets (package domains, summed) over each step, W; `null` where
    /// the step has no data; absent when the node reports no such domain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpu_watts: Vec<Option<f64>>,
    /// Mean power of its memory domains, summed, over each step, W; as `cpu_watts`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memory_watts: Vec<Option<f64>>,
    /// Mean power of its GPUs, summed, over each step, W; as `cpu_watts`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpu_watts: Vec<Option<f64>>,
}

/// Whether `id` is a job id ([`crate::agent::JOB_ID_PATTERN`]: 1 to 128 characters of
/// `A-Z a-z 0-9 . _ : -`).
pub fn is_job_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

impl SiteJobBeginV1 {
    /// What is wrong with the job's power request, when anything is: `power_watts` finite and
    /// above 0 (at most 10^12).
    pub fn power_problem(&self) -> Option<String> {
        match self.power_watts {
            Some(w) if !(w.is_finite() && w > 0.0 && w <= 1e12) => {
                Some(format!("power_watts {w}: a finite number of watts above 0"))
            }
            _ => None,
        }
    }

    /// What is wrong with the job's allocations, when anything is: each names one of the job's
    /// nodes, each node once, `cpus` from 1 to [`MAX_ALLOC_CPUS`], at most [`MAX_ALLOC_GPUS`]
    /// GPUs, each once and below [`MAX_ALLOC_GPUS`].
    pub fn allocation_problem(&self) -> Option<String> {
        let nodes: std::collections::HashSet<&str> =
            self.nodes.iter().map(String::as_str).collect();
        let mut seen = std::collections::HashSet::new();
        for a in &self.allocations {
            if !nodes.contains(a.node.as_str()) {
                return Some(format!(
                    "allocations: node {:?} is not one of the job's nodes",
                    a.node
                ));
            }
            if !seen.insert(a.node.as_str()) {
                return Some(format!("allocations: node {} is given twice", a.node));
            }
            if a.cpus.is_some_and(|c| !(1..=MAX_ALLOC_CPUS).contains(&c)) {
                return Some(format!("allocations: {}: cpus is 1 to {MAX_ALLOC_CPUS}", a.node));
            }
            let mut gpus = std::collections::HashSet::new();
            if a.gpus.len() > MAX_ALLOC_GPUS
                || a.gpus.iter().any(|&g| g as usize >= MAX_ALLOC_GPUS || !gpus.insert(g))
            {
                return Some(format!(
                    "allocations: {}: at most {MAX_ALLOC_GPUS} GPU indices, each once and below {MAX_ALLOC_GPUS}",
                    a.node
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
