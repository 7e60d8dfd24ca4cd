//! The node agent's smaller documents: health, job listing, the answer to a job's begin, raw
//! samples, and the error body every failing request gets. (Power, job results and caps have
//! their own modules.)

use serde::{Deserialize, Serialize};

use crate::job::JobV1;

/// `GET /healthz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HealthV1 {
    /// Always `ok` when the agent answers.
    pub status: String,
    /// Samples in the ring.
    pub samples: u64,
}

/// `GET /v1/jobs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobsV1 {
    /// The node.
    pub hostname: String,
    /// Every job window kept, by begin time.
    pub jobs: Vec<JobV1>,
}

/// The query of `GET /v1/power`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PowerQueryV1 {
    /// json: powerstack.power.v1; variorum: Variorum 0.8 nested power JSON; variorum-flat:
    /// Variorum's older flat JSON. Default json.
    #[serde(default)]
    pub format: Option<PowerFormatV1>,
}

/// What `GET /v1/power` answers: a [`crate::v1::PowerV1`] (`format=json`), or a Variorum
/// document (`format=variorum`, `variorum-flat`; see docs/formats.md). Only a schema: each
/// format is built by its own type.
pub struct PowerAnswerV1;

impl utoipa::PartialSchema for PowerAnswerV1 {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};
        let variorum = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("A Variorum power document (format=variorum or variorum-flat)."));
        AnyOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name("PowerV1"))
            .item(variorum)
            .description(Some(
                "powerstack.power.v1 (format=json; see docs/formats.md), or a Variorum document.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for PowerAnswerV1 {
    fn schemas(out: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        out.push(("PowerV1".into(), <crate::v1::PowerV1 as utoipa::PartialSchema>::schema()));
        <crate::v1::PowerV1 as utoipa::ToSchema>::schemas(out);
    }
}

/// The documents `GET /v1/power` answers with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PowerFormatV1 {
    /// `powerstack.power.v1`.
    #[default]
    Json,
    /// Variorum 0.8's nested power JSON.
    Variorum,
    /// Variorum's older flat JSON.
    VariorumFlat,
}

/// The query of `GET /v1/samples`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SamplesQueryV1 {
    /// µs since the Unix epoch (included); default 0. Must not be after `until` (400
    /// otherwise).
    #[serde(default)]
    pub since: Option<u64>,
    /// µs since the Unix epoch (included); default: no bound. Must not be before `since` (400
    /// otherwise).
    #[serde(default)]
    pub until: Option<u64>,
    /// Most samples answered (the oldest of the range); default 10000.
    #[serde(default)]
    #[param(minimum = 1, maximum = 100_000)]
    pub limit: Option<usize>,
}

/// The query of `GET /v1/jobs/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobResultQueryV1 {
    /// The window the job's peak is taken over, a duration from 1ms to 1h (`2s`, `500ms`,
    /// `1.5s`, `3600s`); default: the agent's `peak_window_ms`. The pattern is a part of what
    /// the agent takes, all of it within the range.
    #[serde(default)]
    #[param(pattern = r"^([1-9][0-9]{0,2}(ms|s)|([1-9]|[1-5][0-9])m|1h)$")]
    pub peak_window: Option<String>,
}

/// The optional body of `POST /v1/jobs/{id}/begin`: who the job belongs to and what it runs.
/// Unknown fields are refused (a 400), so a misspelt field is not lost silently.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobBeginV1 {
    /// Who the job belongs to: at most [`MAX_LABEL_LEN`] characters, no control character.
    #[serde(default)]
    #[schema(max_length = 256, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub user: Option<String>,
    /// The job's application: at most [`MAX_LABEL_LEN`] characters, no control character.
    #[serde(default)]
    #[schema(max_length = 256, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub app: Option<String>,
}

/// The most characters of a job's `user` or `app` label (the schema of [`JobBeginV1`] says 256,
/// checked by a test).
pub const MAX_LABEL_LEN: usize = 256;

/// A job's id: 1 to 128 characters of `A-Z a-z 0-9 . _ : -`.
pub const JOB_ID_PATTERN: &str = "^[A-Za-z0-9._:-]{1,128}$";

/// The answer to `POST /v1/jobs/{id}/begin`: the job and how far back the buffer reaches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobBeganV1 {
    /// The job.
    #[serde(flatten)]
    pub job: JobV1,
    /// For example, how long a job the buffer can hold before results become Partial.
    pub warnings: Vec<String>,
}

/// A column of [`SamplesV1`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorV1 {
    /// The error.
    pub error: ErrorBodyV1,
}

/// The inside of [`ErrorV1`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
