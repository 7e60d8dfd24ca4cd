//! The one clock of the stack: every snapshot, ring row, job mark and sampler deadline is on it.
//!
//! [`mono_ns`] is `CLOCK_MONOTONIC`, counted from the first reading in this process;
//! [`sleep_until_ns`] sleeps to a deadline on that same scale. [`unix_us`] is the wall clock,
//! which only stamps outputs (an agent maps one onto the other once, at its start).

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// `CLOCK_MONOTONIC` as read by the kernel, ns.
fn monotonic_raw_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The `CLOCK_MONOTONIC` reading that [`mono_ns`] counts from: the first one in this process.
fn anchor_ns() -> u64 {
    static ANCHOR: OnceLock<u64> = OnceLock::new();
    *ANCHOR.get_or_init(monotonic_raw_ns)
}

/// The monotonic clock, in ns since the first call in this process. Read straight from
/// `CLOCK_MONOTONIC` (the samplers call it at every tick; `Instant` adds its checks and a u128
/// conversion).
pub fn mono_ns() -> u64 {
    let anchor = anchor_ns();
    monotonic_raw_ns().saturating_sub(anchor)
}

/// Sleeps until `deadline_ns`, a time of [`mono_ns`] (absolute: `clock_nanosleep` with
/// `TIMER_ABSTIME` on `CLOCK_MONOTONIC`, so wake-up delays do not accumulate). Returns at once
/// when the deadline has passed.
pub fn sleep_until_ns(deadline_ns: u64) {
    let raw_ns = deadline_ns.saturating_add(anchor_ns());
    let ts = libc::timespec {
        tv_sec: (raw_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (raw_ns % 1_000_000_000) as libc::c_long,
    };
    loop {
        // SAFETY: `ts` is a valid timespec; the remaining-time pointer may be null with
        // TIMER_ABSTIME.
        let rc = unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                std::ptr::null_mut(),
            )
        };
        if rc != libc::EINTR {
            return;
        }
    }
}

/// The wall clock, in µs since the Unix epoch.
pub fn unix_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_to_a_deadline_on_the_same_clock_it_reads() {
        let deadline = mono_ns() + 20_000_000;
        sleep_until_ns(deadline);
        assert!(mono_ns() >= deadline);
        // A deadline in the past returns at once.
        let before = mono_ns();
        sleep_until_ns(0);
        assert!(mono_ns() - before < 1_000_000_000);
    }
}
