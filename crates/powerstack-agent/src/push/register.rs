//! A stream's registration, built from the ring's columns, and its id.

use powerstack_api::site::{StreamDomainV1, StreamRegisterV1};
use powerstack_model::PowerLimit;

use crate::state::{DomainMeta, Shared};

/// The long-term limit in force: RAPL's `long_term`, else a single `cap` (hwmon, NVML,
/// pm_counters), when set and not disabled.
fn long_term_watts(limits: &[PowerLimit]) -> Option<f64> {
    limits
        .iter()
        .find(|l| l.name == "long_term")
        .or_else(|| limits.iter().find(|l| l.name == "cap"))
        .filter(|l| l.enabled != Some(false))
        .and_then(|l| l.limit_watts)
        .filter(|w| w.is_finite() && *w > 0.0)
}

/// The most a domain can draw, as far as its limits say: the highest settable limit, else its
/// rated (default) limit.
fn max_power_watts(limits: &[PowerLimit]) -> Option<f64> {
    let highest = |f: fn(&PowerLimit) -> Option<f64>| {
        limits.iter().filter_map(f).filter(|w| w.is_finite() && *w > 0.0).reduce(f64::max)
    };
    highest(|l| l.max_watts).or_else(|| highest(|l| l.default_watts))
}

/// One column of a stream: `meta`'s domain, `read` whether it has held a reading.
pub fn column(meta: &DomainMeta, read: bool) -> StreamDomainV1 {
    let id = meta.info.id;
    StreamDomainV1 {
        domain: id.kind.as_str().to_string(),
        index: id.index,
        die: id.die,
        provider: meta.info.provider.to_string(),
        joules_per_tick: meta.joules_per_tick,
        read,
        limit_watts: long_term_watts(&meta.info.limits),
        max_power_watts: max_power_watts(&meta.info.limits),
    }
}

/// The registration of a stream of `shared`'s columns (`read[c]`: whether column `c` has held a
/// reading), begun at `started_unix_us`.
pub fn registration(
    shared: &Shared,
    read: &[bool],
    started_unix_us: u64,
    topology: Option<serde_json::Value>,
) -> StreamRegisterV1 {
    StreamRegisterV1 {
        hostname: shared.hostname.clone(),
        simulated: shared.simulated.clone(),
        started_unix_us,
        domains: shared
            .domains
            .iter()
            .enumerate()
            .map(|(c, m)| column(m, read.get(c).copied().unwrap_or(false)))
            .collect(),
        topology,
        control_url: None,
    }
}

/// A new stream id: 16 lowercase hex digits from the kernel's random source (the clock and the
/// pid mixed, should it fail).
pub fn new_stream_id() -> String {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer it is given.
    let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    let value = if got == bytes.len() as isize {
        u64::from_ne_bytes(bytes)
    } else {
        let t = powerstack_hw::clock::mono_ns() ^ (powerstack_hw::clock::unix_us() as u64);
        // A 64-bit mix (splitmix64's finaliser) of the clocks and the pid.
        let mut z = t ^ (u64::from(std::process::id()) << 32);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    format!("{value:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use powerstack_api::site::is_stream_id;
    use powerstack_model::{CounterSpec, DomainId, DomainInfo, DomainKind, Measurement};

    fn limit(name: &str, watts: Option<f64>, max: Option<f64>, default: Option<f64>) -> PowerLimit {
        PowerLimit {
            name: name.into(),
            limit_watts: watts,
            max_watts: max,
            default_watts: default,
            ..PowerLimit::default()
        }
    }

    #[test]
    fn columns_carry_the_long_term_limit_and_the_highest_settable_one() {
        let info = DomainInfo {
            id: DomainId { kind: DomainKind::Package, index: 1, die: Some(2) },
            provider: "powercap",
            source: "x".into(),
            measurement: Measurement::Energy(CounterSpec::non_wrapping(1e-6)),
            limits: vec![
                limit("short_term", Some(300.0), Some(400.0), None),
                limit("long_term", Some(250.0), Some(350.0), None),
            ],
            socket: Some(1),
            label: None,
        };
        let c = column(&DomainMeta { info: info.clone(), joules_per_tick: 1e-6 }, true);
        assert_eq!((c.domain.as_str(), c.index, c.die), ("package", 1, Some(2)));
        assert_eq!((c.provider.as_str(), c.joules_per_tick, c.read), ("powercap", 1e-6, true));
        assert_eq!((c.limit_watts, c.max_power_watts), (Some(250.0), Some(400.0)));
        // A GPU's cap, disabled: no limit in force; its rated power when nothing is settable.
        let mut gpu = DomainInfo { id: DomainId::new(DomainKind::Gpu, 0), ..info };
        gpu.limits = vec![PowerLimit {
            enabled: Some(false),
            ..limit("cap", Some(500.0), None, Some(700.0))
        }];
        let c = column(&DomainMeta { info: gpu.clone(), joules_per_tick: 1e-3 }, false);
        assert_eq!((c.domain.as_str(), c.die, c.read), ("gpu", None, false));
        assert_eq!((c.limit_watts, c.max_power_watts), (None, Some(700.0)));
        gpu.limits.clear();
        let c = column(&DomainMeta { info: gpu, joules_per_tick: 1e-3 }, true);
        assert_eq!((c.limit_watts, c.max_power_watts), (None, None));
    }

    #[test]
    fn stream_ids_are_16_hex_digits_and_differ() {
        let (a, b) = (new_stream_id(), new_stream_id());
        assert!(is_stream_id(&a) && is_stream_id(&b), "{a} {b}");
        assert_ne!(a, b);
    }
}
