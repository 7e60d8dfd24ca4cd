//! Out-of-band power through Redfish BMCs.
//!
//! [`Bmc::readings`] walks a BMC from its service root (`/redfish/v1` → `Chassis` → each
//! chassis's `Power`, `PowerSubsystem`, `EnvironmentMetrics`, `Sensors` and `Controls`, as
//! present) and returns [`Readings`]: each chassis's power (W) and energy (J, a BMC counter or
//! power to integrate, labelled as such), its power and energy sensors and its power limits
//! with their [`Dialect`], every number with its [`Source`] (resource and property).
//!
//! The parsing (`parse`, `assemble`) is pure: documents in, typed values or a [`ParseError`]
//! out, no I/O; `discover` walks any [`Fetch`]; `client` is the only module with a network.
//! See `docs/redfish.md`.

mod assemble;
mod client;
mod discover;
mod error;
pub mod parse;
mod readings;

pub use assemble::{Parts, assemble};
pub use client::{
    BlockingBmc, Bmc, BmcConfig, DEFAULT_MAX_CONCURRENT_REQUESTS, DEFAULT_TIMEOUT_MS,
};
pub use discover::{Fetch, SERVICE_ROOT, read};
pub use error::{Error, ParseError};
pub use readings::{
    ChassisReadings, ControlMode, Deviation, Dialect, Energy, Limit, PowerReading, Readings,
    SensorKind, SensorReading, SetPoint, Source,
};
