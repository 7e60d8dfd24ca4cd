//! The readings of one BMC, in SI units, each with where it came from.

/// Where a number came from: the resource's URI and the property within it, as a JSON-pointer
/// style path (`PowerControl/0/PowerConsumedWatts`).
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The resource's URI path (`/redfish/v1/Chassis/1U/Power`).
    pub uri: String,
    /// The property within it.
    pub property: String,
}

impl Source {
    pub(crate) fn new(uri: &str, property: impl Into<String>) -> Source {
        Source { uri: uri.to_string(), property: property.into() }
    }
}

/// A power reading.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerReading {
    /// Watts.
    pub watts: f64,
    /// Where it came from.
    pub source: Source,
}

/// A chassis's energy.
#[derive(Debug, Clone, PartialEq)]
pub enum Energy {
    /// The BMC keeps an energy counter; its value now, in joules.
    Counter {
        /// Joules.
        joules: f64,
        /// Where it came from.
        source: Source,
    },
    /// The BMC keeps no energy counter: energy must be integrated from successive power readings
    /// by the caller, and labelled as integrated wherever it is shown.
    IntegrateFromPower,
}

/// What a sensor measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorKind {
    /// Power, in watts.
    Power,
    /// Energy, in joules (converted from kWh or Wh where the sensor reads those).
    Energy,
}

/// A power or energy sensor (`Chassis/{id}/Sensors/{id}`).
#[derive(Debug, Clone, PartialEq)]
pub struct SensorReading {
    /// The sensor's `Id`.
    pub id: String,
    /// Power or energy.
    pub kind: SensorKind,
    /// Watts for power, joules for energy; `None` when the sensor has no reading.
    pub value: Option<f64>,
    /// `PhysicalContext` (`Chassis`, `CPU`, `PowerSupply`, `VoltageRegulator`...).
    pub physical_context: Option<String>,
    /// Whether it measures the whole chassis (the chassis's own total, see `docs/redfish.md`).
    pub chassis_total: bool,
    /// Where it came from.
    pub source: Source,
}

/// How a limit is read and set: the Redfish dialects of power limiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// DMTF `Control` resources (`Chassis/{id}/Controls/{id}`, `ControlType` Power) and the
    /// `EnvironmentMetrics.PowerLimitWatts` excerpt.
    DmtfControls,
    /// Legacy `Power.PowerControl[].PowerLimit.LimitInWatts` (null turns capping off).
    LegacyLimitInWatts,
    /// HPE Cray EX `Controls/NodePowerLimit` and its siblings (`Control.v1_0_0` with
    /// `SettingRangeMin`/`SettingRangeMax`), set with `ControlMode` Automatic and `SetPoint`.
    HpeCrayNodePowerLimit,
}

/// `ControlMode` of a control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMode {
    /// The limit is enforced by the service.
    Automatic,
    /// The set point overrides the service's own.
    Override,
    /// Manual.
    Manual,
    /// No limit is in force, whatever the set point says.
    Disabled,
    /// A mode the schema does not name.
    Other(String),
}

impl ControlMode {
    pub(crate) fn parse(text: &str) -> ControlMode {
        match text {
            "Automatic" => ControlMode::Automatic,
            "Override" => ControlMode::Override,
            "Manual" => ControlMode::Manual,
            "Disabled" => ControlMode::Disabled,
            other => ControlMode::Other(other.to_string()),
        }
    }
}

/// A limit's set point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SetPoint {
    /// Watts.
    Watts(f64),
    /// Percent of what the BMC does not say (a deviation seen on NVIDIA BlueField BMCs).
    Percent(f64),
}

/// A known departure from the standard, reported rather than hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deviation {
    /// `SetPointUnits` is `Watt` instead of UCUM `W` (Lenovo XCC).
    SetPointUnitsWatt,
    /// The set point is in percent (`SetPointUnits` `%`).
    SetPointPercent,
}

/// A power limit and what can be put on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    /// The control's name (`Node Power Limit`, `System Power Limit`, a `PowerControl`'s name).
    pub name: String,
    /// How it is read and set.
    pub dialect: Dialect,
    /// The set point in force; `None` when there is none (legacy `LimitInWatts` null).
    pub set_point: Option<SetPoint>,
    /// The mode, when the resource has one (legacy: `Disabled` when `LimitInWatts` is null).
    pub mode: Option<ControlMode>,
    /// Lowest allowed set point, watts.
    pub min_watts: Option<f64>,
    /// Highest allowed set point, watts.
    pub max_watts: Option<f64>,
    /// `PhysicalContext` (`Chassis` for the node's own limit, `Accelerator`...).
    pub physical_context: Option<String>,
    /// Departures from the standard seen in this resource.
    pub deviations: Vec<Deviation>,
    /// The resource that holds it (the property is the set point's).
    pub source: Source,
}

impl Limit {
    /// Whether a limit is in force: a set point and a mode other than `Disabled`.
    pub fn enforced(&self) -> bool {
        self.set_point.is_some() && self.mode != Some(ControlMode::Disabled)
    }
}

/// The readings of one chassis.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChassisReadings {
    /// The chassis's `Id`.
    pub id: String,
    /// The chassis's URI.
    pub uri: String,
    /// Power of the whole chassis, most trusted first (see `docs/redfish.md`); empty when the
    /// BMC gives none.
    pub power: Vec<PowerReading>,
    /// Its energy: a counter, or power to integrate.
    pub energy: Option<Energy>,
    /// Rated capacity, watts (`PowerSubsystem.CapacityWatts` or a legacy `PowerCapacityWatts`).
    pub capacity_watts: Option<f64>,
    /// Power and energy sensors.
    pub sensors: Vec<SensorReading>,
    /// Power limits.
    pub limits: Vec<Limit>,
}

impl ChassisReadings {
    /// The chassis's power, watts: the most trusted reading.
    pub fn power_watts(&self) -> Option<f64> {
        self.power.first().map(|p| p.watts)
    }
}

/// Everything read from one BMC.
#[derive(Debug, Default)]
pub struct Readings {
    /// One entry per chassis, in the order of the `Chassis` collection.
    pub chassis: Vec<ChassisReadings>,
    /// Resources that could not be read or understood (the rest was read without them).
    pub problems: Vec<crate::Error>,
}

impl Readings {
    /// The chassis with `Id` `id`.
    pub fn chassis(&self, id: &str) -> Option<&ChassisReadings> {
        self.chassis.iter().find(|c| c.id == id)
    }
}
