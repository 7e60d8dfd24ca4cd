//! The sampler: plain threads, absolute deadlines, one ring row per tick.
//!
//! The fast thread sleeps to absolute deadlines on `CLOCK_MONOTONIC` (`clock_nanosleep` with
//! `TIMER_ABSTIME`, so late wake-ups do not accumulate drift), reads the fast sources (powercap,
//! MSRs, hwmon) and pushes one row of extended counters into the ring. Slow sources (NVML, whose
//! calls take hundreds of µs each; HPE Cray pm_counters, refreshed at 10 Hz) are read by a second
//! thread at their own period; the fast thread fills their columns by extending their last rate
//! from their last reading (never going backwards), so a slow read never stalls a fast sample.
//!
//! Every column is kept continuous: a domain that cannot be read keeps its last value (the read
//! failure is counted), and when it comes back the column resumes from there instead of jumping.
//! Power-only domains (an ACPI power meter) are integrated (trapezoid) into µJ.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use powerstack_hw::{DiscoverOptions, Platform, Root, Selection, discover_with};
use powerstack_model::{DomainInfo, Measurement, Value};

use crate::state::{DomainMeta, Shared};

/// Providers read on the slow thread.
pub const SLOW_PROVIDERS: [&str; 2] = ["nvml", "pm_counters"];

/// The period of the slow thread.
pub const SLOW_PERIOD: Duration = Duration::from_millis(100);

/// The monotonic clock, ns (the clock deadlines are set on).
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleeps until the monotonic time `deadline_ns` (absolute, so wake-up delays do not accumulate).
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

/// The platforms the sampler reads, and which ring column each of their domains fills.
pub struct Sources {
    /// The domains, in ring column order.
    pub domains: Vec<DomainMeta>,
    fast: Platform,
    fast_columns: Vec<Option<usize>>,
    slow: Option<(Platform, Vec<Option<usize>>)>,
}

fn column_of(domains: &[DomainMeta], info: &DomainInfo) -> Option<usize> {
    domains.iter().position(|d| d.info.provider == info.provider && d.info.id == info.id)
}

fn meta(info: &DomainInfo) -> DomainMeta {
    let joules_per_tick = match info.measurement {
        Measurement::Energy(spec) => spec.joules_per_tick,
        Measurement::Power => 1e-6,
    };
    DomainMeta { info: info.clone(), joules_per_tick }
}

impl Sources {
    /// Discovers the node and splits its providers into fast and slow ones. The ring's columns are
    /// the full (deduplicated) catalog; returns the discovery warnings too.
    pub fn open(
        root: &Root,
        selection: &Selection,
        options: &DiscoverOptions,
    ) -> (Sources, Vec<String>) {
        let full = discover_with(root, selection, options);
        let mut warnings: Vec<String> = full.warnings.iter().map(ToString::to_string).collect();
        let domains: Vec<DomainMeta> = full.platform.catalog().iter().map(meta).collect();
        if !full.platform.provider_names().iter().any(|n| SLOW_PROVIDERS.contains(n)) {
            let fast_columns = (0..domains.len()).map(Some).collect();
            return (Sources { domains, fast: full.platform, fast_columns, slow: None }, warnings);
        }
        // Split the providers already probed (no second probe: NVML starts once).
        let (slow_providers, fast_providers): (Vec<_>, Vec<_>) = full
            .platform
            .into_providers()
            .into_iter()
            .partition(|p| SLOW_PROVIDERS.contains(&p.name()));
        let open = |providers| {
            let (platform, _) = Platform::new(providers);
            let columns =
                platform.catalog().iter().map(|i| column_of(&domains, i)).collect::<Vec<_>>();
            (platform, columns)
        };
        let (fast, fast_columns) = open(fast_providers);
        let (slow, slow_columns) = open(slow_providers);
        let covered = |c: usize| fast_columns.contains(&Some(c)) || slow_columns.contains(&Some(c));
        for (c, d) in domains.iter().enumerate() {
            if !covered(c) {
                warnings.push(format!(
                    "sampler: {} ({}) is in neither the fast nor the slow sources; its column stays empty",
                    d.info.id, d.info.provider
                ));
            }
        }
        (Sources { domains, fast, fast_columns, slow: Some((slow, slow_columns)) }, warnings)
    }

    /// The number of ring columns.
    pub fn columns(&self) -> usize {
        self.domains.len()
    }
}

/// Keeps one column continuous across read gaps, and integrates power-only domains.
#[derive(Clone, Debug, Default)]
struct Column {
    /// Stored ticks of the last row.
    held: u64,
    /// Added to the extended counter to give the stored ticks.
    offset: i128,
    /// The column has a value and is reading.
    live: bool,
    /// Power-only: last watts and time, and the integral so far (µJ).
    last_power: Option<(f64, u64)>,
    integral_uj: f64,
}

impl Column {
    /// Feeds an extended-counter reading (`None`: not readable now) and returns the stored ticks.
    fn energy(&mut self, ticks: Option<u64>) -> (u64, bool) {
        match ticks {
            Some(v) => {
                if !self.live {
                    // First value, or back after a gap: continue from what is held.
                    self.offset = i128::from(self.held) - i128::from(v);
                    self.live = true;
                }
                let stored = (i128::from(v) + self.offset).max(i128::from(self.held));
                self.held = u64::try_from(stored).unwrap_or(self.held);
                (self.held, false)
            }
            None => {
                self.live = false;
                (self.held, true)
            }
        }
    }

    /// Feeds a power reading at `mono_ns` and returns the stored (integrated) ticks.
    fn power(&mut self, watts: Option<f64>, mono_ns: u64) -> (u64, bool) {
        match watts {
            Some(w) => {
                if let Some((w0, t0)) = self.last_power {
                    let dt = mono_ns.saturating_sub(t0) as f64 / 1e9;
                    self.integral_uj += (w0 + w) / 2.0 * dt * 1e6;
                }
                self.last_power = Some((w, mono_ns));
                self.held = self.integral_uj as u64;
                (self.held, false)
            }
            None => {
                self.last_power = None;
                (self.held, true)
            }
        }
    }
}

/// The slow thread's latest reading of an energy counter: extended ticks, time, and the rate
/// since the previous reading (ticks per ns).
#[derive(Clone, Copy, Debug, Default)]
struct SlowReading {
    ticks: u64,
    mono_ns: u64,
    rate: f64,
}

/// The slow thread's latest reading of one column.
#[derive(Clone, Copy, Debug)]
enum Slow {
    /// An energy counter.
    Energy(SlowReading),
    /// A power-only domain (NVML without an energy counter, a pm_counters power file): watts.
    Power(f64),
}

/// The stored ticks of a slow column at `mono_ns` (a fast tick), from the slow thread's latest
/// reading. A counter is extended at its last rate up to now (bounded to two slow periods, so a
/// stalled source stops growing); a power-only domain's last watts are integrated over the fast
/// ticks. The column never goes backwards.
fn slow_column(col: &mut Column, reading: Option<Slow>, power_only: bool, mono_ns: u64) -> u64 {
    let (value, _) = match reading {
        Some(Slow::Power(w)) => col.power(Some(w), mono_ns),
        Some(Slow::Energy(r)) => {
            let ahead = mono_ns.saturating_sub(r.mono_ns).min(2 * SLOW_PERIOD.as_nanos() as u64);
            col.energy(Some(r.ticks.saturating_add((r.rate * ahead as f64) as u64)))
        }
        None if power_only => col.power(None, mono_ns),
        None => col.energy(None),
    };
    value
}

/// Converts a snapshot value into the column's raw input.
fn raw(v: &Value) -> (Option<u64>, Option<f64>) {
    match v {
        Value::Energy { total_ticks, .. } => (Some(*total_ticks), None),
        Value::Power { watts } => (None, Some(*watts)),
        Value::Missing => (None, None),
    }
}

/// Logs the warnings a sample raised (a domain that stopped reading, an implausible jump): each
/// once per domain until it recovers, so a failing domain does not flood the log. Taking an empty
/// list allocates nothing.
fn report(warnings: Vec<powerstack_hw::Warning>) {
    for w in warnings {
        eprintln!("powerstack agent: warning: {w}");
    }
}

/// Running sampler threads; stop them with the flag given to [`start`].
pub struct Sampler {
    threads: Vec<JoinHandle<()>>,
}

impl Sampler {
    /// Waits for the threads to finish (after the stop flag is set).
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Starts the sampler threads at `rate_hz`, writing into `shared`'s ring, until `stop` is set.
/// Ring timestamps come from `shared.clock` (monotonic, anchored once), so they never jump with the
/// wall clock and agree with job marks.
pub fn start(
    sources: Sources,
    shared: Arc<Shared>,
    rate_hz: f64,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Sampler> {
    let Sources { domains, mut fast, fast_columns, slow } = sources;
    let columns = domains.len();
    let power_only: Vec<bool> =
        domains.iter().map(|d| matches!(d.info.measurement, Measurement::Power)).collect();
    // Snapshots are stamped with the platform's monotonic clock; the shared clock maps it to µs
    // since the epoch (deadlines use CLOCK_MONOTONIC directly).
    let clock = shared.clock;
    let to_unix = move |mono: u64| clock.unix_us_at(mono);
    let latest: Arc<Mutex<Vec<Option<Slow>>>> = Arc::new(Mutex::new(vec![None; columns]));
    let mut threads = Vec::new();

    if let Some((mut slow, slow_columns)) = slow {
        let (latest, stop, shared) = (latest.clone(), stop.clone(), shared.clone());
        let power_only = power_only.clone();
        threads.push(std::thread::Builder::new().name("powerstack-slow".into()).spawn(
            move || {
                let period = SLOW_PERIOD.as_nanos() as u64;
                let mut offsets: Vec<Option<i64>> = vec![None; columns];
                let mut next = mono_ns();
                while !stop.load(Ordering::Relaxed) {
                    let snap = slow.sample();
                    report(slow.take_warnings());
                    shared.stats.slow_reads.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut l) = latest.lock() {
                        for (v, col) in snap.values.iter().zip(&slow_columns) {
                            let Some(c) = *col else { continue };
                            let (ticks, watts) = raw(v);
                            if power_only[c] {
                                l[c] = watts.map(Slow::Power);
                                continue;
                            }
                            // Place a reading at the time the hardware took it when it says
                            // (pm_counters stamps each update): the controller's clock is mapped
                            // onto ours by the smallest read-minus-stamp offset seen, which removes
                            // the up-to-one-period staleness of each read.
                            let hw = match v {
                                Value::Energy { hw_time_us: Some(h), .. } => Some(*h),
                                _ => None,
                            };
                            let at = match hw {
                                Some(h) => {
                                    // Saturating: a stamp is data from a file.
                                    let h = i64::try_from(h).unwrap_or(i64::MAX);
                                    let o = ((snap.mono_ns / 1000) as i64).saturating_sub(h);
                                    let off = offsets[c].map_or(o, |m: i64| m.min(o));
                                    offsets[c] = Some(off);
                                    (h.saturating_add(off).max(0) as u64).saturating_mul(1000)
                                }
                                None => snap.mono_ns,
                            };
                            let prev = match l[c] {
                                Some(Slow::Energy(r)) => Some(r),
                                _ => None,
                            };
                            l[c] = match (ticks, prev) {
                                // The same update read again: keep the reading and its rate.
                                (Some(t), Some(prev)) if hw.is_some() && at <= prev.mono_ns => {
                                    Some(SlowReading { ticks: t.max(prev.ticks), ..prev })
                                }
                                (Some(t), Some(prev)) if at > prev.mono_ns && t >= prev.ticks => {
                                    Some(SlowReading {
                                        ticks: t,
                                        mono_ns: at,
                                        rate: (t - prev.ticks) as f64 / (at - prev.mono_ns) as f64,
                                    })
                                }
                                (Some(t), _) => {
                                    Some(SlowReading { ticks: t, mono_ns: at, rate: 0.0 })
                                }
                                (None, _) => None,
                            }
                            .map(Slow::Energy);
                        }
                    }
                    next += period;
                    let now = mono_ns();
                    if now > next + period {
                        next = now;
                    }
                    sleep_until_ns(next);
                }
            },
        )?);
    }

    threads.push(std::thread::Builder::new().name("powerstack-sampler".into()).spawn(
        move || {
            let period = (1e9 / rate_hz) as u64;
            let mut state = vec![Column::default(); columns];
            let mut row = vec![0u64; columns];
            // The first sample is taken at once (its deadline is already due).
            let mut next = mono_ns().saturating_sub((1e9 / rate_hz) as u64);
            let mut last_unix = 0u64;
            let slow_columns: Vec<usize> =
                (0..columns).filter(|c| !fast_columns.contains(&Some(*c))).collect();
            loop {
                next += period;
                sleep_until_ns(next);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let start = mono_ns();
                if start > next + period {
                    let missed = (start - next) / period;
                    shared.stats.overruns.fetch_add(missed, Ordering::Relaxed);
                    next += missed * period;
                }
                let snap = fast.sample();
                report(fast.take_warnings());
                let mut failures = 0;
                for (v, col) in snap.values.iter().zip(&fast_columns) {
                    let Some(c) = *col else { continue };
                    let (ticks, watts) = raw(v);
                    let (value, failed) = if power_only[c] {
                        state[c].power(watts, snap.mono_ns)
                    } else {
                        state[c].energy(ticks)
                    };
                    row[c] = value;
                    failures += u64::from(failed);
                }
                if !slow_columns.is_empty() {
                    let readings = latest.lock().ok();
                    for &c in &slow_columns {
                        let reading = readings.as_ref().and_then(|l| l.get(c).copied().flatten());
                        row[c] = slow_column(&mut state[c], reading, power_only[c], snap.mono_ns);
                    }
                }
                let unix = to_unix(snap.mono_ns).max(last_unix);
                last_unix = unix;
                if let Ok(mut ring) = shared.ring.lock() {
                    ring.push(unix, &row);
                }
                shared.stats.read_failures.fetch_add(failures, Ordering::Relaxed);
                shared.stats.record(mono_ns().saturating_sub(start));
            }
        },
    )?);
    Ok(Sampler { threads })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_slow_power_only_domain_is_integrated_over_the_fast_ticks() {
        // 100 W read by the slow thread, sampled every 1 ms for 1 s: 100 J = 1e8 µJ ticks.
        let mut col = Column::default();
        let mut last = 0;
        for k in 0..=1000 {
            let v = slow_column(&mut col, Some(Slow::Power(100.0)), true, 5_000 * MS + k * MS);
            assert!(v >= last);
            last = v;
        }
        assert!((last as f64 - 1e8).abs() < 1e8 * 1e-6, "{last}");
        // A gap (no reading) holds the value and does not integrate across it.
        assert_eq!(slow_column(&mut col, None, true, 7_000 * MS), last);
        let after = slow_column(&mut col, Some(Slow::Power(100.0)), true, 9_000 * MS);
        assert_eq!(after, last);
    }

    #[test]
    fn a_slow_counter_is_extended_at_its_rate_for_at_most_two_slow_periods() {
        let mut col = Column::default();
        // 1 tick per µs since the reading at 1 s.
        let r = SlowReading { ticks: 1_000, mono_ns: 1_000 * MS, rate: 1e-3 };
        // The column starts from 0 at its first value and follows the counter from there.
        assert_eq!(slow_column(&mut col, Some(Slow::Energy(r)), false, 1_000 * MS), 0);
        assert_eq!(slow_column(&mut col, Some(Slow::Energy(r)), false, 1_050 * MS), 50_000);
        let cap = 2 * SLOW_PERIOD.as_micros() as u64;
        assert_eq!(slow_column(&mut col, Some(Slow::Energy(r)), false, 5_000 * MS), cap);
        // A newer reading below the extension never takes the column backwards.
        let r2 = SlowReading { ticks: 100_000, mono_ns: 5_000 * MS, rate: 0.0 };
        assert_eq!(slow_column(&mut col, Some(Slow::Energy(r2)), false, 5_001 * MS), cap);
    }
}
