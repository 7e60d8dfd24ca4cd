//! Pure vocabulary of powerstack.
//!
//! This crate names what the rest of the project measures and controls, and holds the arithmetic that
//! turns raw hardware readings into trustworthy numbers. It performs no I/O and depends on no other
//! workspace crate, so every rule here is tested without hardware.
//!
//! - [`domain`]: what can be measured ([`DomainKind`], [`DomainId`], [`DomainInfo`], [`PowerLimit`]).
//! - [`counter`]: wrap-extended 64-bit energy counters ([`ExtendedCounter`]).
//! - [`stale`]: counters that stopped moving are missing, not 0 W ([`Freshness`]).
//! - [`sample`]: a timestamped reading of every domain ([`Snapshot`]).
//! - [`power`]: power as ΔE/Δt between two snapshots, and the node-power choice ([`PowerReport`]).
//! - [`placement`]: readings placed at the time the hardware took them ([`HwClockMap`],
//!   [`StepClock`]).
//! - [`duration`]: parsing of user durations such as `200ms` or `1.5s`.
//! - [`civil`]: UTC dates as people read and type them (`2026-11-21 10:00:00`, `7d` back).
//! - [`window`]: the averaging windows a limit can hold ([`TimeWindows`], RAPL's grid).
//!
//! ```
//! use powerstack_model::counter::{CounterSpec, ExtendedCounter, RawEnergy};
//! // A RAPL-like counter in µJ that wraps after 1000 µJ.
//! let mut c = ExtendedCounter::new(CounterSpec { joules_per_tick: 1e-6, wrap_ticks: Some(1000) });
//! c.update(RawEnergy::new(900));
//! c.update(RawEnergy::new(100)); // wrapped: 200 µJ went by
//! assert_eq!(c.delta_ticks_total(), 200);
//! ```

pub mod civil;
pub mod counter;
pub mod cpulist;
pub mod domain;
pub mod duration;
pub mod placement;
pub mod power;
pub mod sample;
pub mod stale;
pub mod window;

pub use counter::{CounterSpec, ExtendedCounter, Plausible, RawEnergy, Step};
pub use domain::{DomainId, DomainInfo, DomainKind, LimitWrite, Measurement, PowerLimit};
pub use placement::{HwClockMap, StepClock, StepMode};
pub use power::{DomainPower, NodePower, NodeSource, PowerReport};
pub use sample::{Snapshot, Value};
pub use stale::{Fresh, Freshness};
pub use window::{TimeWindows, WindowRefusal};
