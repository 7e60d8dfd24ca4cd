//! How long the mock's calls take: a per-call latency read from `STATE/latency_us/<call>` at
//! `nvmlInit`, spent sleeping (not spinning) around the read of the value, which is taken at a
//! random point inside the call as a real driver call samples somewhere in its duration.
//!
//! A file holds `"<median> <tail>"` in µs (or just `"<median>"`: no tail). A call lasts:
//!
//! - in the body (63 calls in 64): uniform in `[0.9 × median, 1.1 × median]`;
//! - in the tail (1 call in 64, when `tail > 1.1 × median`): uniform in
//!   `[max(0.9 × tail, 1.1 × median), tail]`.
//!
//! `"0 0"`, an absent, unreadable or malformed file: no latency. Draws come from a splitmix64
//! sequence with a fixed seed, shared by all threads (so one thread's sequence depends on what
//! the others drew, but the distribution does not).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One call's latency distribution, µs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Latency {
    median_us: u64,
    tail_us: u64,
}

/// One call in `TAIL_ONE_IN` is in the tail.
const TAIL_ONE_IN: u64 = 64;

/// No latency above this (µs): a file asking for more is malformed.
const MAX_US: u64 = 10_000_000;

impl Latency {
    /// Parses `"<median> <tail>"` or `"<median>"` (µs); `None` for anything else.
    pub fn parse(text: &str) -> Option<Latency> {
        let mut words = text.split_ascii_whitespace();
        let median_us: u64 = words.next()?.parse().ok()?;
        let tail_us: u64 = match words.next() {
            Some(w) => w.parse().ok()?,
            None => median_us,
        };
        if words.next().is_some() || median_us > MAX_US || tail_us > MAX_US {
            return None;
        }
        Some(Latency { median_us, tail_us })
    }

    /// Reads `dir/<call>`; no latency when it is absent or not understood.
    pub fn load(dir: &Path, call: &str) -> Latency {
        std::fs::read_to_string(dir.join(call))
            .ok()
            .and_then(|t| Latency::parse(&t))
            .unwrap_or_default()
    }

    /// One call's duration, µs, from a uniform random number `r`.
    pub fn draw(self, r: u64) -> u64 {
        let m = self.median_us;
        let body = (m - m / 10, m + m / 10);
        let in_tail = self.tail_us > body.1 && (r >> 32).is_multiple_of(TAIL_ONE_IN);
        let (lo, hi) = if in_tail {
            (body.1.max(self.tail_us - self.tail_us / 10), self.tail_us)
        } else {
            body
        };
        lo + (r & 0xFFFF_FFFF) % (hi - lo + 1)
    }
}

/// The latencies of the calls that have one.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Latencies {
    /// `nvmlDeviceGetTotalEnergyConsumption` (`latency_us/energy`).
    pub energy: Latency,
    /// `nvmlDeviceGetPowerUsage` (`latency_us/power`).
    pub power: Latency,
    /// The power-limit reads (`latency_us/limit`): the management limit, the enforced limit, the
    /// default and the constraints.
    pub limit: Latency,
}

impl Latencies {
    /// Reads `state/latency_us/*`.
    pub fn load(state: &Path) -> Latencies {
        let dir = state.join("latency_us");
        Latencies {
            energy: Latency::load(&dir, "energy"),
            power: Latency::load(&dir, "power"),
            limit: Latency::load(&dir, "limit"),
        }
    }
}

/// The shared random sequence's position.
static SEQUENCE: AtomicU64 = AtomicU64::new(0x6e76_6d6c_5eed_0001);

/// The next number of the shared splitmix64 sequence.
fn next() -> u64 {
    let mut z = SEQUENCE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Runs `read` at a random point inside a call lasting a draw of `latency`: sleeps part of it,
/// reads, sleeps the rest.
pub(crate) fn during<T>(latency: Latency, read: impl FnOnce() -> T) -> T {
    let total = latency.draw(next());
    if total == 0 {
        return read();
    }
    let before = total * (next() % 1024) / 1023;
    std::thread::sleep(Duration::from_micros(before));
    let value = read();
    std::thread::sleep(Duration::from_micros(total - before));
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(l: Latency, n: usize) -> Vec<u64> {
        (0..n).map(|_| l.draw(next())).collect()
    }

    #[test]
    fn parses_median_and_tail() {
        assert_eq!(
            Latency::parse("2850 15000\n"),
            Some(Latency { median_us: 2850, tail_us: 15000 })
        );
        assert_eq!(Latency::parse("142"), Some(Latency { median_us: 142, tail_us: 142 }));
        for bad in ["", "x", "1 2 3", "-1 5", "99999999999 1"] {
            assert_eq!(Latency::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn zero_is_no_latency() {
        let none = Latency::parse("0 0").unwrap();
        assert_eq!(none, Latency::default());
        assert!(draws(none, 1000).iter().all(|&d| d == 0));
    }

    #[test]
    fn the_energy_call_is_like_the_h200s() {
        let l = Latency::parse("2850 15000").unwrap();
        let mut d = draws(l, 64_000);
        d.sort_unstable();
        let (min, max) = (d[0], d[d.len() - 1]);
        assert!(min >= 2565, "min {min}");
        assert!((13_500..=15_000).contains(&max), "max {max}");
        let median = d[d.len() / 2];
        assert!((2800..=2900).contains(&median), "median {median}");
        let tail = d.iter().filter(|&&x| x > 3135).count();
        assert!((700..=1300).contains(&tail), "{tail} of 64000 in the tail");
        let p99 = d[d.len() * 99 / 100];
        assert!(p99 > 3135, "p99 {p99} is in the tail");
    }

    #[test]
    fn without_a_tail_every_call_is_in_the_body() {
        let l = Latency::parse("142 150").unwrap();
        assert!(draws(l, 10_000).iter().all(|&x| (128..=157).contains(&x)));
    }
}
