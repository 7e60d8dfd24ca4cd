//! The one clock of the stack: every snapshot, ring row, job mark and sampler deadline is on it.
//!
//! [`mono_ns`] is `CLOCK_MONOTONIC`; [`sleep_until_ns`] sleeps to a deadline on that same
//! clock. [`unix_us`] is the wall clock,
//! which only stamps outputs (an agent maps one onto the other once, at its start).

use std::time::{SystemTime, UNIX_EPOCH};

/// The monotonic clock (`CLOCK_MONOTONIC`), ns. Read straight from the kernel's vDSO (the
/// samplers call it at every tick; `Instant` adds its checks and a u128 conversion, an anchor a
/// check per call); only differences of its values mean anything.
#[inline]
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleeps until `deadline_ns`, a time of [`mono_ns`] (absolute: `clock_nanosleep` with
/// `TIMER_ABSTIME` on `CLOCK_MONOTONIC`, so wake-up delays do not accumulate). Returns at once
/// when the deadline has passed.
pub fn sleep_until_ns(deadline_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
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
