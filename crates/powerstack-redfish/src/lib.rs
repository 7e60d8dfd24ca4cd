//! Out-of-band power through Redfish BMCs.
//!
//! [`Bmc::readings`] walks a BMC from its service root (`/redfish/v1` → `Chassis` → each
//! chassis's `Power`, `PowerSubsystem`, `EnvironmentMetrics`, `Sensors` and `Controls`, as
//! present) and returns [`Readings`]: each chassis's power (W) and energy (J, a BMC counter or
//! power to integrate, labelled as such), its power and energy sensors and its power limits
//! with their [`Dialect`], every number with its [`Source`] (resource and property).
//! [`Bmc::set_power_limit`] sets a limit in its dialect and reads it back; [`Bmc::transition`]
//! sends a `ComputerSystem.Reset` and confirms it from `PowerState`.
//!
//! The parsing (`parse`, `assemble`, the choosing and building in `limits` and `systems`) is
//! pure: documents in, typed values or a [`ParseError`] out, no I/O; `discover` walks any
//! [`Fetch`]; `client`, `session`, `task`, `transport` and the `Bmc` methods of `limits`,
//! `systems` and `transition` are the only code with a network. See `docs/redfish.md`.

mod assemble;
mod blocking;
mod client;
mod discover;
mod error;
pub mod limits;
mod meter;
pub mod parse;
mod readings;
mod session;
pub mod systems;
mod task;
mod transition;
pub mod transport;

pub use assemble::{Parts, assemble};
pub use blocking::BlockingBmc;
pub use client::{
    Auth, Bmc, BmcConfig, DEFAULT_BACKOFF_MS, DEFAULT_MAX_CONCURRENT_REQUESTS, DEFAULT_RETRIES,
    DEFAULT_TASK_DEADLINE_MS, DEFAULT_TASK_POLL_INTERVAL_MS, DEFAULT_TIMEOUT_MS, MAX_BACKOFF_MS,
    MAX_RETRY_AFTER_S, retry_wait_ms,
};
pub use discover::{Fetch, SERVICE_ROOT, read, read_limits};
pub use error::{Error, ParseError};
pub use limits::{LimitApplied, LimitRequest};
pub use meter::{EnergyMeter, EnergyMethod, WindowEnergy};
pub use readings::{
    ChassisReadings, ControlMode, Deviation, Dialect, Energy, Limit, PowerReading, Readings,
    SensorKind, SensorReading, SetPoint, Source,
};
pub use session::SESSIONS;
pub use systems::{
    PowerState, ResetType, SystemPower, TRANSITIONS, Transition, TransitionOptions,
    TransitionOutcome,
};
