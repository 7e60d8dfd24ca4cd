//! Setting a power limit: which limit a request means, the PATCH for its dialect (refused before
//! anything is sent when it cannot be right), `If-Match` with the resource's ETag (a 412 re-reads
//! and retries once, a 428 fetches the ETag first), a `202`'s task followed to its end, and the
//! value read back. Choosing and building are pure; `Bmc::set_power_limit` does the I/O.

use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::client::{Answer, Bmc};
use crate::error::{Error, ParseError};
use crate::parse;
use crate::readings::{ChassisReadings, Deviation, Dialect, Limit, Readings, SetPoint};

/// What limit to set, and to what.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitRequest {
    /// The chassis's `Id`; `None`: the node's own limit (the first chassis with a
    /// Chassis-context power limit).
    pub chassis_id: Option<String>,
    /// The control's `Id` or name; `None`: that chassis's node/chassis power limit.
    pub control: Option<String>,
    /// The set point, watts; `None` turns capping off.
    pub watts: Option<f64>,
}

/// What was set.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitApplied {
    /// The limit as read back after the change.
    pub limit: Limit,
    /// The BMC accepted the change but it is not in force until the node is reset (the BMC
    /// said so, or the read-back differs from what was set).
    pub takes_effect_after_reset: bool,
}

/// Whether `limit` is the one called `name`: its name, its resource's `Id` (the URI's last
/// segment) or, legacy, `PowerControl/N`.
fn is_named(limit: &Limit, name: &str) -> bool {
    limit.name == name
        || limit.source.uri.rsplit('/').next() == Some(name)
        || limit.source.property.starts_with(&format!("{name}/"))
}

fn node_limit(chassis: &ChassisReadings, strict: bool) -> Option<&Limit> {
    let wanted = if strict { Some("Chassis") } else { None };
    chassis.limits.iter().find(|l| l.physical_context.as_deref() == wanted)
}

/// The limit `request` is about.
pub fn select<'a>(readings: &'a Readings, request: &LimitRequest) -> Result<&'a Limit, Error> {
    let ids = || readings.chassis.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join(", ");
    let chassis: Vec<&ChassisReadings> = match &request.chassis_id {
        Some(id) => vec![readings.chassis(id).ok_or_else(|| {
            Error::Refused(format!("the BMC has no chassis {id:?} (it has: {})", ids()))
        })?],
        None => readings.chassis.iter().collect(),
    };
    let found = match &request.control {
        Some(name) => chassis.iter().find_map(|c| c.limits.iter().find(|l| is_named(l, name))),
        None => chassis
            .iter()
            .find_map(|c| node_limit(c, true))
            .or_else(|| chassis.iter().find_map(|c| node_limit(c, false))),
    };
    found.ok_or_else(|| {
        let names: Vec<String> =
            chassis.iter().flat_map(|c| &c.limits).map(|l| format!("{:?}", l.name)).collect();
        let what = request.control.as_deref().map(|c| format!(" named {c:?}")).unwrap_or_default();
        Error::Refused(format!(
            "no power limit{what} on {} (limits there: {})",
            request.chassis_id.as_deref().unwrap_or("the BMC's chassis"),
            if names.is_empty() { "none".into() } else { names.join(", ") }
        ))
    })
}

/// Watts as JSON: an integer when whole (many BMCs refuse a float for an integer property).
fn watts_json(watts: f64) -> Value {
    if watts.fract() == 0.0 && watts.abs() < 1e15 { json!(watts as i64) } else { json!(watts) }
}

/// Refuses a set point the limit cannot take.
pub fn check(limit: &Limit, watts: f64) -> Result<(), Error> {
    let name = format!("{:?} ({})", limit.name, limit.source.uri);
    if !watts.is_finite() || watts <= 0.0 {
        return Err(Error::Refused(format!("{watts} W is not a power limit; give watts above 0")));
    }
    if matches!(limit.set_point, Some(SetPoint::Percent(_)))
        || limit.deviations.contains(&Deviation::SetPointPercent)
    {
        return Err(Error::Refused(format!(
            "the limit {name} takes its set point in percent, not watts; it cannot be set in watts"
        )));
    }
    let (min, max) = (limit.min_watts, limit.max_watts);
    if min.is_some_and(|m| watts < m) || max.is_some_and(|m| watts > m) {
        let show = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_else(|| "?".into());
        return Err(Error::Refused(format!(
            "{watts} W is outside the range of the limit {name}: {} to {} W",
            show(min),
            show(max)
        )));
    }
    Ok(())
}

/// The PATCH (resource and body) that sets `limit` to `watts` (`None`: off), checked first.
pub fn patch_for(limit: &Limit, watts: Option<f64>) -> Result<(String, Value), Error> {
    if let Some(watts) = watts {
        check(limit, watts)?;
    }
    let uri = limit.source.uri.clone();
    let body = match (limit.dialect, watts) {
        (Dialect::LegacyLimitInWatts, _) => {
            let index: usize =
                limit.source.property.split('/').nth(1).and_then(|n| n.parse().ok()).ok_or_else(
                    || Error::Refused(format!("{} is not a PowerControl", limit.source.property)),
                )?;
            let mut controls = vec![json!({}); index];
            let value = watts.map_or(Value::Null, watts_json);
            controls.push(json!({"PowerLimit": {"LimitInWatts": value}}));
            json!({"PowerControl": controls})
        }
        (_, None) => json!({"ControlMode": "Disabled"}),
        (Dialect::HpeCrayNodePowerLimit, Some(w)) => {
            json!({"ControlMode": "Automatic", "SetPoint": watts_json(w)})
        }
        (Dialect::DmtfControls, Some(w)) => {
            json!({"SetPoint": watts_json(w), "ControlMode": "Automatic"})
        }
    };
    let excerpt = limit.source.property.starts_with("PowerLimitWatts/");
    Ok((uri, if excerpt { json!({"PowerLimitWatts": body}) } else { body }))
}

/// The limit as the resource `doc` (the one that holds `limit`) now says.
pub fn read_back(limit: &Limit, doc: &Value) -> Result<Option<Limit>, ParseError> {
    let uri = &limit.source.uri;
    if limit.dialect == Dialect::LegacyLimitInWatts {
        let legacy = parse::legacy_power(uri, doc)?;
        return Ok(legacy.limits.into_iter().find(|l| l.source == limit.source));
    }
    if limit.source.property.starts_with("PowerLimitWatts/") {
        return Ok(parse::environment_metrics(uri, doc)?.limit.map(|(l, _)| l));
    }
    parse::control(uri, doc)
}

/// Whether `limit` is what was asked: the set point (within half a watt) in force, or off.
pub fn is_applied(limit: &Limit, watts: Option<f64>) -> bool {
    match watts {
        None => !limit.enforced(),
        Some(w) => {
            limit.enforced()
                && matches!(limit.set_point, Some(SetPoint::Watts(v)) if (v - w).abs() < 0.5)
        }
    }
}

/// Whether an answer (a resource, an error or a task) carries a message that a reset is
/// required (`ResetRequired`, `Base.1.x.ResetRequired`, an OEM's `...ResetRequired`).
pub fn reset_required(doc: &Value) -> bool {
    match doc {
        Value::Object(obj) => obj.iter().any(|(key, value)| {
            (key == "MessageId" && value.as_str().is_some_and(|id| id.ends_with("ResetRequired")))
                || reset_required(value)
        }),
        Value::Array(items) => items.iter().any(reset_required),
        _ => false,
    }
}

/// The ETag of an answer: the header, else the body's `@odata.etag`.
fn etag_of(answer: &Answer, uri: &str) -> Option<HeaderValue> {
    if let Some(tag) = answer.headers.get(header::ETAG) {
        return Some(tag.clone());
    }
    let doc = answer.json(uri).ok()?;
    doc.get("@odata.etag").and_then(Value::as_str).and_then(|t| HeaderValue::from_str(t).ok())
}

impl Bmc {
    /// Sets a power limit (or turns it off) and reads it back; see `docs/redfish.md`.
    pub async fn set_power_limit(&self, request: &LimitRequest) -> Result<LimitApplied, Error> {
        let readings = self.limit_readings().await?;
        let limit = select(&readings, request)?.clone();
        let (uri, body) = patch_for(&limit, request.watts)?;
        let mut answer = self.patch_if_match(&uri, &body).await?;
        if answer.status == StatusCode::ACCEPTED {
            answer = self.follow_task(answer).await?;
        }
        if !answer.status.is_success() {
            return Err(answer.into_error(&uri));
        }
        let announced = reset_required(&answer.json(&uri).unwrap_or(Value::Null));
        let doc = self.get_json(&uri).await?.ok_or_else(|| Error::NotFound { uri: uri.clone() })?;
        let after = read_back(&limit, &doc)
            .map_err(|source| Error::Document { uri: uri.clone(), source })?
            .ok_or_else(|| Error::Document {
                uri: uri.clone(),
                source: ParseError::Missing(limit.source.property.clone()),
            })?;
        let takes_effect_after_reset = announced || !is_applied(&after, request.watts);
        Ok(LimitApplied { limit: after, takes_effect_after_reset })
    }

    /// GETs `uri` for its ETag.
    async fn current_etag(&self, uri: &str) -> Result<Option<HeaderValue>, Error> {
        let answer = self.send(Method::GET, uri, None, &[]).await?;
        if answer.status != StatusCode::OK {
            return Err(answer.into_error(uri));
        }
        Ok(etag_of(&answer, uri))
    }

    /// PATCHes with `If-Match` (when the resource has an ETag): a 412 (changed meanwhile)
    /// re-reads the ETag and retries once; a 428 (If-Match required) fetches it and retries.
    async fn patch_if_match(&self, uri: &str, body: &Value) -> Result<Answer, Error> {
        let patch = |etag: Option<HeaderValue>| async move {
            let headers: Vec<(HeaderName, HeaderValue)> =
                etag.into_iter().map(|e| (header::IF_MATCH, e)).collect();
            self.send(Method::PATCH, uri, Some(body), &headers).await
        };
        let answer = patch(self.current_etag(uri).await?).await?;
        match answer.status {
            StatusCode::PRECONDITION_FAILED | StatusCode::PRECONDITION_REQUIRED => {
                let Some(etag) = self.current_etag(uri).await? else {
                    return Err(answer.into_error(uri));
                };
                patch(Some(etag)).await
            }
            _ => Ok(answer),
        }
    }
}
