//! The site's clock: the wall clock, µs since the Unix epoch, that stamps jobs, samples' arrival
//! and control tasks.

/// The site's clock, µs since the Unix epoch.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
