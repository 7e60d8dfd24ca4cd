//! `GET /v1/site/power/history`: the site's power over the past minutes, from the per-minute
//! rollups (so the minutes not rolled up yet, the last two or three, are not in it).

use serde::{Deserialize, Serialize};

/// The most minutes one answer covers (a day).
pub const MAX_HISTORY_MINUTES: u32 = 1440;

/// `GET /v1/site/power/history?minutes=`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SitePowerHistoryQueryV1 {
    /// How many minutes back from now, 1 to 1440 (default 60).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1440)]
    pub minutes: Option<u32>,
}

/// The site's power minute by minute.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SitePowerHistoryV1 {
    /// Always `powerstack.site-power-history.v1`.
    pub schema: String,
    /// The minutes asked for, from `since_unix_us` to now.
    pub since_unix_us: u64,
    /// One point per minute that some node's rollups cover, oldest first.
    pub points: Vec<SitePowerPointV1>,
}

/// One minute of [`SitePowerHistoryV1`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SitePowerPointV1 {
    /// The minute's end (its nodes' newest samples in it, on the minute's grid), µs since the
    /// Unix epoch.
    pub unix_us: u64,
    /// The sum over the nodes of each one's mean power between its newest sample of the minute
    /// before and its newest of this minute, W.
    pub power_watts: f64,
    /// How many nodes the sum has.
    pub nodes: usize,
}
