//! Discovery: from the service root to each chassis's power resources, over any [`Fetch`].

use std::future::Future;

use futures_util::future::join_all;
use serde_json::Value;

use crate::assemble::{Parts, assemble};
use crate::error::{Error, ParseError};
use crate::parse;
use crate::readings::{ChassisReadings, Readings};

/// The Redfish service root.
pub const SERVICE_ROOT: &str = "/redfish/v1";

/// Something that GETs Redfish documents by URI path: the HTTP client, or a directory of
/// mockup files in tests.
pub trait Fetch {
    /// The document at `uri`; `Ok(None)` when there is none (404).
    fn get(&self, uri: &str) -> impl Future<Output = Result<Option<Value>, Error>>;
}

fn document(uri: &str) -> impl Fn(ParseError) -> Error + '_ {
    move |source| Error::Document { uri: uri.to_string(), source }
}

/// What a walk reads of each chassis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Walk {
    /// Every power resource.
    Everything,
    /// The power limits only.
    Limits,
}

/// Reads every chassis's readings. The service root and the chassis collection must be read;
/// a chassis or a resource of one that cannot be read is a problem in
/// [`Readings::problems`], and the rest is read without it.
pub async fn read<F: Fetch>(fetch: &F) -> Result<Readings, Error> {
    walk(fetch, Walk::Everything).await.map(|(readings, _)| readings)
}

/// Reads every chassis's power limits, and no more than they need: its `Controls` and legacy
/// `Power`, at once; `EnvironmentMetrics` only when the chassis has no `Controls` (its
/// `PowerLimitWatts` excerpt is then the only limit it may show); no `PowerSubsystem`, no
/// `Sensors`. The limits are those [`read`] finds (with `Controls` present, the excerpt stands
/// for one of them); the power and energy are only what those resources hold.
pub async fn read_limits<F: Fetch>(fetch: &F) -> Result<Readings, Error> {
    walk(fetch, Walk::Limits).await.map(|(readings, _)| readings)
}

/// [`read_limits`], and where each chassis's limits were found, to be read again directly
/// ([`read_limits_again`]); `None` when something could not be read (walk again next time).
pub(crate) async fn read_limits_at<F: Fetch>(
    fetch: &F,
) -> Result<(Readings, Option<Vec<LimitSources>>), Error> {
    let (readings, sources) = walk(fetch, Walk::Limits).await?;
    let whole = readings.problems.is_empty() && sources.len() == readings.chassis.len();
    Ok((readings, whole.then_some(sources)))
}

/// Where one chassis's limits are: the resources [`read_limits`] found them in.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LimitSources {
    id: String,
    uri: String,
    /// Legacy `Power`, when it was read.
    power: Option<String>,
    /// `EnvironmentMetrics`, when it was read (a chassis without `Controls`).
    environment: Option<String>,
    /// The members of `Controls` that are power controls.
    controls: Vec<String>,
}

/// The limits read again at `sources` only: one request per resource that holds one, none of
/// the service root, collections and chassis a walk reads. `Ok(None)` when one of them is gone
/// (404) or no longer what it was: the BMC changed, walk again.
pub(crate) async fn read_limits_again<F: Fetch>(
    fetch: &F,
    sources: &[LimitSources],
) -> Result<Option<Readings>, Error> {
    let mut readings = Readings::default();
    for result in join_all(sources.iter().map(|s| chassis_again(fetch, s))).await {
        match result {
            Ok(Some(one)) => readings.chassis.push(one),
            Ok(None) | Err(Error::NotFound { .. } | Error::Document { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(readings))
}

/// `doc` (read at `uri`) parsed.
fn parsed<T>(
    uri: &str,
    doc: Result<Value, Error>,
    parse: impl Fn(&str, &Value) -> Result<T, ParseError>,
) -> Result<T, Error> {
    doc.and_then(|d| parse(uri, &d).map_err(document(uri)))
}

/// One chassis's limits read again; `Ok(None)`: a control is no longer a power control.
async fn chassis_again<F: Fetch>(
    fetch: &F,
    s: &LimitSources,
) -> Result<Option<ChassisReadings>, Error> {
    let required = |uri: &str| {
        let uri = uri.to_string();
        async move {
            let doc = fetch.get(&uri).await?;
            doc.ok_or(Error::NotFound { uri })
        }
    };
    let (legacy, environment, controls) = tokio::join!(
        async {
            let Some(uri) = &s.power else { return Ok(None) };
            parsed(uri, required(uri).await, parse::legacy_power).map(Some)
        },
        async {
            let Some(uri) = &s.environment else { return Ok(None) };
            parsed(uri, required(uri).await, parse::environment_metrics).map(Some)
        },
        join_all(
            s.controls
                .iter()
                .map(|uri| async move { parsed(uri, required(uri).await, parse::control) })
        ),
    );
    let mut parts = Parts { legacy: legacy?, environment: environment?, ..Parts::default() };
    for control in controls {
        let Some(limit) = control? else { return Ok(None) };
        parts.controls.push(limit);
    }
    Ok(Some(assemble(s.id.clone(), s.uri.clone(), parts)))
}

async fn walk<F: Fetch>(fetch: &F, walk: Walk) -> Result<(Readings, Vec<LimitSources>), Error> {
    let root = fetch
        .get(SERVICE_ROOT)
        .await?
        .ok_or_else(|| Error::NotFound { uri: SERVICE_ROOT.into() })?;
    let (mut readings, mut sources) = (Readings::default(), Vec::new());
    let Some(chassis_uri) = parse::link(&root, "Chassis").map_err(document(SERVICE_ROOT))? else {
        return Ok((readings, sources));
    };
    let collection = fetch
        .get(&chassis_uri)
        .await?
        .ok_or_else(|| Error::NotFound { uri: chassis_uri.clone() })?;
    let members = parse::members(&collection).map_err(document(&chassis_uri))?;
    let results = join_all(members.iter().map(|uri| chassis(fetch, uri, walk))).await;
    for result in results {
        match result {
            Ok((one, problems, at)) => {
                readings.chassis.push(one);
                readings.problems.extend(problems);
                sources.extend(at);
            }
            Err(e) => readings.problems.push(e),
        }
    }
    Ok((readings, sources))
}

/// One optional resource, parsed: absent is `None`; a failed read or parse goes to `problems`.
async fn optional<F: Fetch, T>(
    fetch: &F,
    uri: Option<&str>,
    parse: impl Fn(&str, &Value) -> Result<T, ParseError>,
) -> Result<Option<T>, Error> {
    let Some(uri) = uri else { return Ok(None) };
    match fetch.get(uri).await? {
        None => Ok(None),
        Some(doc) => parse(uri, &doc).map(Some).map_err(document(uri)),
    }
}

/// Each member of an optional collection, parsed, with its URI; members that are not power or
/// energy are dropped (the parser's `None`).
async fn each_member<F: Fetch, T>(
    fetch: &F,
    collection: Option<&str>,
    parse: impl Fn(&str, &Value) -> Result<Option<T>, ParseError> + Copy,
    problems: &mut Vec<Error>,
) -> Vec<(String, T)> {
    let members = optional(fetch, collection, |_, doc| parse::members(doc)).await;
    let members = match members {
        Ok(members) => members.unwrap_or_default(),
        Err(e) => {
            problems.push(e);
            Vec::new()
        }
    };
    let results = join_all(members.iter().map(|m| optional(fetch, Some(m), parse))).await;
    let mut out = Vec::new();
    for (uri, result) in members.into_iter().zip(results) {
        match result {
            Ok(value) => out.extend(value.flatten().map(|v| (uri, v))),
            Err(e) => problems.push(e),
        }
    }
    out
}

fn values<T>(members: Vec<(String, T)>) -> Vec<T> {
    members.into_iter().map(|(_, v)| v).collect()
}

fn keep<T>(result: Result<Option<T>, Error>, problems: &mut Vec<Error>) -> Option<T> {
    result.unwrap_or_else(|e| {
        problems.push(e);
        None
    })
}

/// One chassis: its document, then its power resources, as present (those `walk` wants); with
/// `Walk::Limits`, where its limits are.
async fn chassis<F: Fetch>(
    fetch: &F,
    uri: &str,
    walk: Walk,
) -> Result<(ChassisReadings, Vec<Error>, Option<LimitSources>), Error> {
    let doc = fetch.get(uri).await?.ok_or_else(|| Error::NotFound { uri: uri.to_string() })?;
    let link = |key: &str| parse::link(&doc, key).map_err(document(uri));
    let id = parse::id(uri, &doc).map_err(document(uri))?;
    let (power, subsystem, environment) =
        (link("Power")?, link("PowerSubsystem")?, link("EnvironmentMetrics")?);
    let (sensors, controls) = (link("Sensors")?, link("Controls")?);
    let mut problems = Vec::new();
    if walk == Walk::Limits {
        let environment = environment.filter(|_| controls.is_none());
        let (legacy, environment_read, controls) = tokio::join!(
            optional(fetch, power.as_deref(), parse::legacy_power),
            optional(fetch, environment.as_deref(), parse::environment_metrics),
            each_member(fetch, controls.as_deref(), parse::control, &mut problems),
        );
        let parts = Parts {
            legacy: keep(legacy, &mut problems),
            environment: keep(environment_read, &mut problems),
            controls: values(controls.clone()),
            ..Parts::default()
        };
        let at = LimitSources {
            id: id.clone(),
            uri: uri.to_string(),
            power: power.filter(|_| parts.legacy.is_some()),
            environment: environment.filter(|_| parts.environment.is_some()),
            controls: controls.into_iter().map(|(uri, _)| uri).collect(),
        };
        return Ok((assemble(id, uri.to_string(), parts), problems, Some(at)));
    }
    let (legacy, capacity, environment) = tokio::join!(
        optional(fetch, power.as_deref(), parse::legacy_power),
        optional(fetch, subsystem.as_deref(), |_, d| parse::power_subsystem_capacity(d)),
        optional(fetch, environment.as_deref(), parse::environment_metrics),
    );
    let mut parts = Parts {
        legacy: keep(legacy, &mut problems),
        capacity_watts: keep(capacity, &mut problems).flatten(),
        environment: keep(environment, &mut problems),
        ..Parts::default()
    };
    let sensors = each_member(fetch, sensors.as_deref(), parse::sensor, &mut problems).await;
    let controls = each_member(fetch, controls.as_deref(), parse::control, &mut problems).await;
    (parts.sensors, parts.controls) = (values(sensors), values(controls));
    Ok((assemble(id, uri.to_string(), parts), problems, None))
}
