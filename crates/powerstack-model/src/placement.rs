//! Placing readings in time: at the moment the hardware took them, not when they were read.
//!
//! A sampler reads a counter at some moment, but the value it gets may be older: HPE Cray
//! `pm_counters` are published ten times a second with the controller's own timestamp, and NVML's
//! total-energy counter moves in steps about every 100 ms (measured on an H200) and carries no
//! timestamp at all. Power over an interval shorter than a few such steps, or a job's energy cut
//! at a moment between two steps, is wrong by up to a whole step unless each value is placed at
//! the time it refers to. Two estimators do that, each from what the reader can observe:
//!
//! - [`HwClockMap`]: a value stamped by the hardware's clock is mapped onto the reader's
//!   monotonic clock by an offset and a rate (the controller's clock drifts against the node's),
//!   fitted to the lower envelope of `seen - stamp` over the recent readings;
//! - [`StepClock`]: an unstamped counter that moves in steps is read around the moments it
//!   steps, so each new value is placed at its step, and reads are scheduled so that about one
//!   read per step suffices (NVML's energy read costs milliseconds).
//!
//! Both are pure arithmetic over times the caller measures (monotonic ns), so they are tested
//! without hardware and without sleeping.

mod hw_clock;
mod step_clock;

pub use hw_clock::HwClockMap;
pub use step_clock::{StepClock, StepMode};

/// A deterministic pseudo-random sequence in [0, 1), for the estimators' tests.
#[cfg(test)]
fn test_rng(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    }
}
