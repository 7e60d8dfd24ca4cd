//! The node agent's smaller documents: health, job listing, the answer to a job's begin, raw
//! samples, and the error body every failing request gets. (Power, job results and caps have
//! their own modules.)

use serde::{Deserialize, Serialize};

use crate::job::JobV1;

/// `GET /healthz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthV1 {
    /// Always `ok` when the agent answers.
    pub status: String,
    /// Samples in the ring.
    pub samples: u64,
}

/// `GET /v1/jobs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobsV1 {
    /// The node.
    pub hostname: String,
    /// Every job window kept, by begin time.
    pub jobs: Vec<JobV1>,
}

/// The optional body of `POST /v1/jobs/{id}/begin`: who the job belongs to and what it runs.
/// Unknown fields are refused (a 400), so a misspelt field is not lost silently.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobBeginV1 {
    /// Who the job belongs to.
    #[serde(default)]
    pub user: Option<String>,
    /// The job's application.
    #[serde(default)]
    pub app: Option<String>,
}

/// The answer to `POST /v1/jobs/{id}/begin`: the job and how far back the buffer reaches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobBeganV1 {
    /// The job.
    #[serde(flatten)]
    pub job: JobV1,
    /// For example, how long a job the buffer can hold before results become Partial.
    pub warnings: Vec<String>,
}

/// A column of [`SamplesV1`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleDomainV1 {
    /// Kind.
    pub domain: String,
    /// Index.
    pub index: u32,
    /// Die.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub die: Option<u32>,
    /// Provider.
    pub provider: String,
    /// Joules per stored tick.
    pub joules_per_tick: f64,
}

/// `GET /v1/samples`: raw ring rows `[t, tick0, tick1, ...]` (t in µs since the epoch; ticks of each
/// column's extended counter; `null` in every row for a column whose domain could never be read,
/// so that no one takes its zeros for a measurement).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplesV1 {
    /// The node.
    pub hostname: String,
    /// The columns after the timestamp.
    pub domains: Vec<SampleDomainV1>,
    /// The rows.
    pub samples: Vec<Vec<Option<u64>>>,
    /// More rows matched than the limit allowed.
    pub truncated: bool,
}

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorV1 {
    /// The error.
    pub error: ErrorBodyV1,
}

/// The inside of [`ErrorV1`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBodyV1 {
    /// The HTTP status.
    pub status: u16,
    /// One line saying what is wrong.
    pub message: String,
    /// What a cap reset did put back when it could not put back every limit (422 from
    /// `POST /v1/caps/reset`), as `powerstack cap reset` prints it before failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Box<crate::cap::CapResultV1>>,
}
