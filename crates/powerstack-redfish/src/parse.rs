//! Pure parsing of single Redfish documents into pieces of readings. No I/O: a document and its
//! URI in, typed values or a [`ParseError`] out.

use serde_json::{Map, Value};

use crate::error::ParseError;
use crate::readings::{
    ControlMode, Deviation, Dialect, Limit, PowerReading, SensorKind, SensorReading, SetPoint,
    Source,
};

type Object = Map<String, Value>;

fn object<'a>(doc: &'a Value, property: &str) -> Result<&'a Object, ParseError> {
    doc.as_object().ok_or_else(|| {
        if property.is_empty() {
            ParseError::NotAnObject
        } else {
            ParseError::WrongType { property: property.to_string(), expected: "an object" }
        }
    })
}

/// `obj[key]` as a number: absent or null is `None`, anything else not a number an error.
fn number(obj: &Object, at: &str, key: &str) -> Result<Option<f64>, ParseError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| ParseError::WrongType { property: join(at, key), expected: "a number" }),
    }
}

/// `obj[key]` as a string: absent or null is `None`, anything else not a string an error.
fn string<'a>(obj: &'a Object, at: &str, key: &str) -> Result<Option<&'a str>, ParseError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_str()
            .map(Some)
            .ok_or_else(|| ParseError::WrongType { property: join(at, key), expected: "a string" }),
    }
}

/// `obj[key]` as an object, if present.
fn child<'a>(obj: &'a Object, at: &str, key: &str) -> Result<Option<&'a Object>, ParseError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => object(v, &join(at, key)).map(Some),
    }
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() { key.to_string() } else { format!("{at}/{key}") }
}

/// The `@odata.id` of the link `doc[key]`, if the document has that link.
pub fn link(doc: &Value, key: &str) -> Result<Option<String>, ParseError> {
    let obj = object(doc, "")?;
    let Some(target) = child(obj, "", key)? else { return Ok(None) };
    Ok(string(target, key, "@odata.id")?.map(str::to_string))
}

/// The `@odata.id`s of a collection's `Members`.
pub fn members(doc: &Value) -> Result<Vec<String>, ParseError> {
    let obj = object(doc, "")?;
    let list = obj.get("Members").ok_or_else(|| ParseError::Missing("Members".into()))?;
    let list = list.as_array().ok_or_else(|| ParseError::WrongType {
        property: "Members".into(),
        expected: "an array",
    })?;
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let at = format!("Members/{i}");
            string(object(m, &at)?, &at, "@odata.id")?
                .map(str::to_string)
                .ok_or_else(|| ParseError::Missing(format!("{at}/@odata.id")))
        })
        .collect()
}

/// A chassis's `Id`, or the last segment of its URI when it has none.
pub fn id(uri: &str, doc: &Value) -> Result<String, ParseError> {
    let obj = object(doc, "")?;
    Ok(string(obj, "", "Id")?
        .map(str::to_string)
        .unwrap_or_else(|| uri.rsplit('/').next().unwrap_or(uri).to_string()))
}

/// What a legacy `Chassis/{id}/Power` resource gives.
#[derive(Debug, Default, PartialEq)]
pub struct LegacyPower {
    /// `PowerControl[].PowerConsumedWatts`, in order.
    pub power: Vec<PowerReading>,
    /// The first `PowerControl[].PowerCapacityWatts`.
    pub capacity_watts: Option<f64>,
    /// `PowerControl[].PowerLimit`.
    pub limits: Vec<Limit>,
}

/// Parses a legacy `Power` resource (`PowerConsumedWatts` may be an integer or a float).
pub fn legacy_power(uri: &str, doc: &Value) -> Result<LegacyPower, ParseError> {
    let obj = object(doc, "")?;
    let mut out = LegacyPower::default();
    let Some(controls) = obj.get("PowerControl").filter(|v| !v.is_null()) else { return Ok(out) };
    let controls = controls.as_array().ok_or_else(|| ParseError::WrongType {
        property: "PowerControl".into(),
        expected: "an array",
    })?;
    for (i, control) in controls.iter().enumerate() {
        let at = format!("PowerControl/{i}");
        let control = object(control, &at)?;
        if let Some(watts) = number(control, &at, "PowerConsumedWatts")? {
            let source = Source::new(uri, join(&at, "PowerConsumedWatts"));
            out.power.push(PowerReading { watts, source });
        }
        let capacity = number(control, &at, "PowerCapacityWatts")?;
        out.capacity_watts = out.capacity_watts.or(capacity);
        let Some(limit) = child(control, &at, "PowerLimit")? else { continue };
        let set_point = number(limit, &join(&at, "PowerLimit"), "LimitInWatts")?;
        let cray = child(control, &at, "Oem")?
            .and_then(|oem| oem.get("Cray"))
            .and_then(|cray| cray.get("PowerLimit"))
            .and_then(Value::as_object);
        let (min, max) = match cray {
            Some(range) => {
                (range.get("Min").and_then(Value::as_f64), range.get("Max").and_then(Value::as_f64))
            }
            None => (None, None),
        };
        let name = string(control, &at, "Name")?.unwrap_or("PowerControl").to_string();
        out.limits.push(Limit {
            name,
            dialect: Dialect::LegacyLimitInWatts,
            set_point: set_point.map(SetPoint::Watts),
            mode: set_point.is_none().then_some(ControlMode::Disabled),
            min_watts: min,
            max_watts: max.or(capacity),
            physical_context: string(control, &at, "PhysicalContext")?.map(str::to_string),
            deviations: Vec::new(),
            source: Source::new(uri, join(&at, "PowerLimit/LimitInWatts")),
        });
    }
    Ok(out)
}

/// `PowerSubsystem.CapacityWatts`.
pub fn power_subsystem_capacity(doc: &Value) -> Result<Option<f64>, ParseError> {
    number(object(doc, "")?, "", "CapacityWatts")
}

/// What a chassis's `EnvironmentMetrics` gives.
#[derive(Debug, Default, PartialEq)]
pub struct Environment {
    /// `PowerWatts.Reading`.
    pub power: Option<PowerReading>,
    /// `EnergyJoules.Reading`, or `EnergykWh.Reading` in joules.
    pub energy: Option<(f64, Source)>,
    /// The `PowerLimitWatts` excerpt, and the `DataSourceUri` of the control it stands for.
    pub limit: Option<(Limit, Option<String>)>,
}

/// Parses an `EnvironmentMetrics` resource.
pub fn environment_metrics(uri: &str, doc: &Value) -> Result<Environment, ParseError> {
    let obj = object(doc, "")?;
    let mut out = Environment::default();
    if let Some(power) = child(obj, "", "PowerWatts")? {
        out.power = number(power, "PowerWatts", "Reading")?
            .map(|watts| PowerReading { watts, source: Source::new(uri, "PowerWatts/Reading") });
    }
    if let Some(energy) = child(obj, "", "EnergyJoules")? {
        let joules = number(energy, "EnergyJoules", "Reading")?;
        out.energy = joules.map(|j| (j, Source::new(uri, "EnergyJoules/Reading")));
    }
    if let (None, Some(energy)) = (&out.energy, child(obj, "", "EnergykWh")?) {
        let kwh = number(energy, "EnergykWh", "Reading")?;
        out.energy = kwh.map(|k| (k * JOULES_PER_KWH, Source::new(uri, "EnergykWh/Reading")));
    }
    if let Some(excerpt) = child(obj, "", "PowerLimitWatts")? {
        let at = "PowerLimitWatts";
        let limit = Limit {
            name: "PowerLimitWatts".into(),
            dialect: Dialect::DmtfControls,
            set_point: number(excerpt, at, "SetPoint")?.map(SetPoint::Watts),
            mode: string(excerpt, at, "ControlMode")?.map(ControlMode::parse),
            min_watts: number(excerpt, at, "AllowableMin")?,
            max_watts: number(excerpt, at, "AllowableMax")?,
            physical_context: None,
            deviations: Vec::new(),
            source: Source::new(uri, "PowerLimitWatts/SetPoint"),
        };
        let data_source = string(excerpt, at, "DataSourceUri")?.map(str::to_string);
        out.limit = Some((limit, data_source));
    }
    Ok(out)
}

const JOULES_PER_KWH: f64 = 3.6e6;

/// The factor from a sensor's units to watts (power) or joules (energy).
fn si_factor(kind: SensorKind, units: &str) -> Option<f64> {
    match (kind, units) {
        (SensorKind::Power, "W") => Some(1.0),
        (SensorKind::Power, "kW") => Some(1e3),
        (SensorKind::Power, "mW") => Some(1e-3),
        (SensorKind::Energy, "J") => Some(1.0),
        (SensorKind::Energy, "kJ") => Some(1e3),
        (SensorKind::Energy, "W.h" | "Wh") => Some(3600.0),
        (SensorKind::Energy, "kW.h" | "kWh") => Some(JOULES_PER_KWH),
        _ => None,
    }
}

/// Parses a `Sensor`; `None` when it measures neither power nor energy.
pub fn sensor(uri: &str, doc: &Value) -> Result<Option<SensorReading>, ParseError> {
    let obj = object(doc, "")?;
    let (kind, default_units) = match string(obj, "", "ReadingType")? {
        Some("Power") => (SensorKind::Power, "W"),
        Some("EnergyJoules") => (SensorKind::Energy, "J"),
        Some("EnergykWh") => (SensorKind::Energy, "kW.h"),
        Some("EnergyWh") => (SensorKind::Energy, "W.h"),
        _ => return Ok(None),
    };
    let units = string(obj, "", "ReadingUnits")?.unwrap_or(default_units);
    let factor = si_factor(kind, units).ok_or_else(|| ParseError::UnknownUnits {
        property: "ReadingUnits".into(),
        units: units.to_string(),
    })?;
    let physical_context = string(obj, "", "PhysicalContext")?;
    Ok(Some(SensorReading {
        id: id(uri, doc)?,
        kind,
        value: number(obj, "", "Reading")?.map(|v| v * factor),
        physical_context: physical_context.map(str::to_string),
        chassis_total: chassis_total(obj, physical_context)?,
        source: Source::new(uri, "Reading"),
    }))
}

/// Whether a sensor measures its whole chassis: `PhysicalContext` `Chassis` with no
/// `ElectricalContext` other than `Total`, or HPE Cray EX's node input (`VoltageRegulator`
/// `Input` with `Oem.ParentalContext` `Chassis` and `Oem.Index` 0).
fn chassis_total(obj: &Object, physical_context: Option<&str>) -> Result<bool, ParseError> {
    let electrical = string(obj, "", "ElectricalContext")?;
    if physical_context == Some("Chassis") {
        return Ok(matches!(electrical, None | Some("Total")));
    }
    let oem = child(obj, "", "Oem")?;
    let parental = oem.and_then(|o| o.get("ParentalContext")).and_then(Value::as_str);
    let index = oem.and_then(|o| o.get("Index")).and_then(Value::as_u64);
    Ok(physical_context == Some("VoltageRegulator")
        && string(obj, "", "PhysicalSubContext")? == Some("Input")
        && parental == Some("Chassis")
        && index == Some(0))
}

/// Parses a `Control`; `None` when its `ControlType` is not `Power`.
pub fn control(uri: &str, doc: &Value) -> Result<Option<Limit>, ParseError> {
    let obj = object(doc, "")?;
    if string(obj, "", "ControlType")? != Some("Power") {
        return Ok(None);
    }
    let pre_standard = obj.contains_key("SettingRangeMin") || obj.contains_key("SettingRangeMax");
    let hpe = child(obj, "", "Oem")?.is_some_and(|oem| oem.contains_key("Hpe"));
    let dialect =
        if pre_standard || hpe { Dialect::HpeCrayNodePowerLimit } else { Dialect::DmtfControls };
    let mut deviations = Vec::new();
    let value = number(obj, "", "SetPoint")?;
    let set_point = match string(obj, "", "SetPointUnits")? {
        None | Some("W") => value.map(SetPoint::Watts),
        Some("Watt") => {
            deviations.push(Deviation::SetPointUnitsWatt);
            value.map(SetPoint::Watts)
        }
        Some("%") => {
            deviations.push(Deviation::SetPointPercent);
            value.map(SetPoint::Percent)
        }
        Some(other) => {
            return Err(ParseError::UnknownUnits {
                property: "SetPointUnits".into(),
                units: other.to_string(),
            });
        }
    };
    let watts = !deviations.contains(&Deviation::SetPointPercent);
    let min = number(obj, "", "AllowableMin")?.or(number(obj, "", "SettingRangeMin")?);
    let max = number(obj, "", "AllowableMax")?.or(number(obj, "", "SettingRangeMax")?);
    Ok(Some(Limit {
        name: string(obj, "", "Name")?.map_or_else(|| id(uri, doc), |n| Ok(n.to_string()))?,
        dialect,
        set_point,
        mode: string(obj, "", "ControlMode")?.map(ControlMode::parse),
        min_watts: min.filter(|_| watts),
        max_watts: max.filter(|_| watts),
        physical_context: string(obj, "", "PhysicalContext")?.map(str::to_string),
        deviations,
        source: Source::new(uri, "SetPoint"),
    }))
}
