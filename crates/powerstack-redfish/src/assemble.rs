//! Pure: the pieces parsed from a chassis's resources, joined into its readings.

use crate::parse::{Environment, LegacyPower};
use crate::readings::{ChassisReadings, Energy, Limit, SensorKind, SensorReading};

/// What was read of one chassis, resource by resource (absent resources are `None` or empty).
#[derive(Debug, Default)]
pub struct Parts {
    /// Legacy `Power`.
    pub legacy: Option<LegacyPower>,
    /// `PowerSubsystem.CapacityWatts`.
    pub capacity_watts: Option<f64>,
    /// `EnvironmentMetrics`.
    pub environment: Option<Environment>,
    /// Power and energy sensors, in the collection's order.
    pub sensors: Vec<SensorReading>,
    /// Power controls, in the collection's order.
    pub controls: Vec<Limit>,
}

/// Joins the parts. Power, most trusted first: `EnvironmentMetrics.PowerWatts`, the chassis's
/// total power sensor, then legacy `PowerConsumedWatts`. Energy: `EnvironmentMetrics`'
/// `EnergyJoules`/`EnergykWh`, else the chassis's total energy sensor, else power to integrate
/// (when there is power). Limits: the controls, the `PowerLimitWatts` excerpt unless it stands
/// for a control already read, then legacy `LimitInWatts`.
pub fn assemble(id: String, uri: String, parts: Parts) -> ChassisReadings {
    let Parts { legacy, capacity_watts, environment, sensors, controls } = parts;
    let legacy = legacy.unwrap_or_default();
    let environment = environment.unwrap_or_default();
    let total = |kind: SensorKind| {
        sensors.iter().find(|s| s.kind == kind && s.chassis_total && s.value.is_some())
    };
    let mut power: Vec<_> = environment.power.into_iter().collect();
    if let Some(sensor) = total(SensorKind::Power) {
        let watts = sensor.value.unwrap_or_default();
        power.push(crate::readings::PowerReading { watts, source: sensor.source.clone() });
    }
    power.extend(legacy.power);
    let counter = environment.energy.or_else(|| {
        total(SensorKind::Energy).map(|s| (s.value.unwrap_or_default(), s.source.clone()))
    });
    let energy = match counter {
        Some((joules, source)) => Some(Energy::Counter { joules, source }),
        None => (!power.is_empty()).then_some(Energy::IntegrateFromPower),
    };
    let mut limits = controls;
    if let Some((excerpt, data_source)) = environment.limit {
        let known = data_source.is_some_and(|d| limits.iter().any(|l| l.source.uri == d));
        if !known {
            limits.push(excerpt);
        }
    }
    limits.extend(legacy.limits);
    ChassisReadings {
        id,
        uri,
        power,
        energy,
        capacity_watts: capacity_watts.or(legacy.capacity_watts),
        sensors,
        limits,
    }
}
