//! The sampler: plain threads, absolute deadlines, one ring row per tick.
//!
//! The **fast thread** sleeps to absolute deadlines on the one clock ([`powerstack_hw::clock`]:
//! `CLOCK_MONOTONIC`, `clock_nanosleep` with `TIMER_ABSTIME`, so late wake-ups do not accumulate
//! drift), reads the continuous sources (powercap, MSRs, hwmon) and pushes one row into the ring
//! through the [`Recorder`].
//!
//! Stepped sources ([`Refresh::Stepped`]: HPE Cray pm_counters, published at 10 Hz with the
//! controller's timestamps; NVML, whose energy counter moves about every 100 ms and whose read
//! takes milliseconds) are read by **slow threads**, one per provider after
//! [`powerstack_hw::Provider::split`] (one per GPU), each at its own pace: its [`Placer`]s say when
//! to read next and place each new value at the time it refers to. The anchors go to the fast
//! thread, which draws the columns through them (see [`crate::record`]), so a slow or late read
//! never stalls a row and never puts energy at the wrong time.
//!
//! Power-only domains (an ACPI power meter) are integrated (trapezoid) into µJ.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use powerstack_hw::clock::{mono_ns, sleep_until_ns};
use powerstack_hw::{DiscoverOptions, Platform, Provider, Refresh, Root, Selection, discover_with};
use powerstack_model::{DomainInfo, Measurement, Value};

use crate::place::{Placed, Placer};
use crate::record::Recorder;
use crate::state::{DomainMeta, Shared};

/// The period a stepped source is read at when it says nothing better.
pub const SLOW_PERIOD: Duration = Duration::from_millis(100);

/// The longest a sampler thread sleeps without looking at the stop flag: at low rates a sample's
/// deadline is seconds away, and a stop must not wait for it.
pub const STOP_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Sleeps until the monotonic time `deadline_ns`, looking at `stop` at least every
/// [`STOP_CHECK_INTERVAL`]; returns whether it was set.
fn sleep_unless_stopped(deadline_ns: u64, stop: &AtomicBool) -> bool {
    let slice_ns = STOP_CHECK_INTERVAL.as_nanos() as u64;
    loop {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        let now = mono_ns();
        if now >= deadline_ns {
            return false;
        }
        // The last slice ends on the deadline itself, so an absolute deadline stays exact.
        sleep_until_ns(deadline_ns.min(now.saturating_add(slice_ns)));
    }
}

/// A stepped provider read on a thread of its own.
struct SlowSource {
    platform: Platform,
    /// The ring column of each of its domains.
    columns: Vec<Option<usize>>,
    /// Its documented update period.
    update: Duration,
}

/// The platforms the sampler reads, and which ring column each of their domains fills.
pub struct Sources {
    /// The domains, in ring column order.
    pub domains: Vec<DomainMeta>,
    fast: Platform,
    fast_columns: Vec<Option<usize>>,
    slow: Vec<SlowSource>,
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
    /// Discovers the node ([`Sources::new`]); returns the discovery warnings too.
    pub fn open(
        root: &Root,
        selection: &Selection,
        options: &DiscoverOptions,
    ) -> (Sources, Vec<String>) {
        let full = discover_with(root, selection, options);
        let (sources, mut warnings) = Sources::new(full.platform);
        warnings.splice(0..0, full.warnings.iter().map(ToString::to_string));
        (sources, warnings)
    }

    /// Splits a node's platform into the fast one and the stepped providers (each GPU its own, as
    /// the platform split them): the ring's columns are the platform's (deduplicated) catalog. No
    /// provider is probed again (NVML starts once).
    pub fn new(platform: Platform) -> (Sources, Vec<String>) {
        let domains: Vec<DomainMeta> = platform.catalog().iter().map(meta).collect();
        let mut fast_providers: Vec<Box<dyn Provider>> = Vec::new();
        let mut stepped: Vec<(Box<dyn Provider>, Duration)> = Vec::new();
        // A platform has already split the stepped providers into their devices.
        for p in platform.into_providers() {
            match p.refresh() {
                Refresh::Continuous => fast_providers.push(p),
                Refresh::Stepped { period } => stepped.push((p, period)),
            }
        }
        let map = |platform: &Platform| -> Vec<Option<usize>> {
            platform.catalog().iter().map(|i| column_of(&domains, i)).collect()
        };
        let (fast, _) = Platform::new(fast_providers);
        let fast_columns = map(&fast);
        let slow: Vec<SlowSource> = stepped
            .into_iter()
            .map(|(p, update)| {
                let (platform, _) = Platform::new(vec![p]);
                let columns = map(&platform);
                SlowSource { platform, columns, update }
            })
            .collect();
        let covered = |c: usize| {
            fast_columns.contains(&Some(c)) || slow.iter().any(|s| s.columns.contains(&Some(c)))
        };
        let warnings = domains
            .iter()
            .enumerate()
            .filter(|&(c, _)| !covered(c))
            .map(|(_, d)| {
                format!(
                    "sampler: {} ({}) is in neither the fast nor the slow sources; its column stays empty",
                    d.info.id, d.info.provider
                )
            })
            .collect();
        (Sources { domains, fast, fast_columns, slow }, warnings)
    }

    /// The number of ring columns.
    pub fn columns(&self) -> usize {
        self.domains.len()
    }

    /// Which columns slow threads fill.
    fn slow_flags(&self) -> Vec<bool> {
        (0..self.columns()).map(|c| !self.fast_columns.contains(&Some(c))).collect()
    }
}

/// Logs the warnings a sample raised (a domain that stopped reading, an implausible jump): the
/// platform raises each once per domain until it recovers. Taking an empty list allocates nothing.
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

/// What a slow thread sends the fast one for a column.
enum Fed {
    /// A new value: (µs since the epoch, ticks).
    Anchor(u64, u64),
    /// The recent values placed again: redraw from (µs) through them.
    Redraw(u64, Vec<(u64, u64)>),
}

/// Anchors from the slow threads to the fast one, by column.
type Feed = Arc<Mutex<Vec<(usize, Fed)>>>;

/// Starts the sampler threads at `rate_hz`, writing into `shared`'s ring, until `stop` is set.
/// Ring timestamps come from `shared.clock` (monotonic, anchored once), so they never jump with the
/// wall clock and agree with job marks.
pub fn start(
    sources: Sources,
    shared: Arc<Shared>,
    rate_hz: f64,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Sampler> {
    let slow_flags = sources.slow_flags();
    let Sources { domains, fast, fast_columns, slow } = sources;
    let power_only: Vec<bool> =
        domains.iter().map(|d| matches!(d.info.measurement, Measurement::Power)).collect();
    let feed: Feed = Arc::new(Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for (n, source) in slow.into_iter().enumerate() {
        let (feed, stop, shared) = (feed.clone(), stop.clone(), shared.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("powerstack-slow-{n}"))
                .spawn(move || slow_thread(source, &shared, &feed, &stop))?,
        );
    }
    let fast = FastThread { platform: fast, fast_columns, power_only, slow_flags, feed };
    threads.push(
        std::thread::Builder::new()
            .name("powerstack-sampler".into())
            .spawn(move || fast.run(&shared, rate_hz, &stop))?,
    );
    Ok(Sampler { threads })
}

/// Reads one stepped provider at the pace its placers ask for, until `stop`.
fn slow_thread(mut source: SlowSource, shared: &Shared, feed: &Feed, stop: &AtomicBool) {
    let update_ns = source.update.as_nanos() as u64;
    let base_ns = SLOW_PERIOD.as_nanos() as u64;
    let mut placers: Vec<Placer> =
        source.columns.iter().map(|_| Placer::new(update_ns, base_ns)).collect();
    let mut anchors = Vec::with_capacity(source.columns.len());
    let mut next = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if sleep_unless_stopped(next, stop) {
            break;
        }
        let start_ns = mono_ns();
        let snap = source.platform.sample();
        let end_ns = mono_ns();
        report(source.platform.take_warnings());
        shared.stats.slow_reads.fetch_add(1, Ordering::Relaxed);
        let mut failures = 0;
        for ((v, col), placer) in snap.values.iter().zip(&source.columns).zip(&mut placers) {
            let Some(c) = *col else { continue };
            let missing = matches!(v, Value::Missing);
            failures += u64::from(missing);
            shared.set_missing(c, missing);
            let unix = |mono_ns| shared.clock.unix_us_at(mono_ns);
            match placer.observe(v, start_ns, end_ns) {
                Some(Placed::New(a)) => anchors.push((c, Fed::Anchor(unix(a.mono_ns), a.ticks))),
                Some(Placed::Again(r)) => {
                    let again = r.anchors.iter().map(|a| (unix(a.mono_ns), a.ticks)).collect();
                    anchors.push((c, Fed::Redraw(unix(r.from_mono_ns), again)));
                }
                None => {}
            }
            if let (Some(p), Some(slot)) =
                (placer.update_period_ns(), shared.update_period_us.get(c))
            {
                slot.store(p / 1000, Ordering::Relaxed);
            }
        }
        shared.stats.read_failures.fetch_add(failures, Ordering::Relaxed);
        if !anchors.is_empty()
            && let Ok(mut f) = feed.lock()
        {
            f.append(&mut anchors);
        }
        anchors.clear();
        // At least a little after this read, and at most a base period: a stop is seen soon.
        let wanted = placers.iter_mut().map(Placer::next_read_ns).min().unwrap_or(end_ns);
        next = wanted.clamp(end_ns + 200_000, end_ns + base_ns);
    }
}

/// The fast thread's state.
struct FastThread {
    platform: Platform,
    fast_columns: Vec<Option<usize>>,
    power_only: Vec<bool>,
    slow_flags: Vec<bool>,
    feed: Feed,
}

impl FastThread {
    fn run(mut self, shared: &Shared, rate_hz: f64, stop: &AtomicBool) {
        let period = (1e9 / rate_hz) as u64;
        let columns = self.slow_flags.len();
        let mut recorder = Recorder::new(&self.slow_flags);
        let has_slow = self.slow_flags.contains(&true);
        // Power-only columns: the last watts and time, and the integral (µJ).
        let mut power: Vec<(Option<(f64, u64)>, f64)> = vec![(None, 0.0); columns];
        let mut arrived: Vec<(usize, Fed)> = Vec::new();
        let mut values = Vec::with_capacity(self.fast_columns.len());
        // The first sample is taken at once (its deadline is already due).
        let mut next = mono_ns();
        let mut last_unix = 0u64;
        loop {
            if sleep_unless_stopped(next, stop) {
                break;
            }
            let start = mono_ns();
            if start > next + period {
                let missed = (start - next) / period;
                shared.stats.overruns.fetch_add(missed, Ordering::Relaxed);
                next += missed * period;
            }
            let snap_mono_ns = self.platform.sample_into(&mut values);
            report(self.platform.take_warnings());
            let mut failures = 0;
            for (v, col) in values.iter().zip(&self.fast_columns) {
                let Some(c) = *col else { continue };
                let reading = match *v {
                    Value::Energy { total_ticks, .. } => Some(total_ticks),
                    Value::Power { watts } if self.power_only[c] => {
                        Some(integrate(&mut power[c], watts, snap_mono_ns))
                    }
                    _ => {
                        power[c].0 = None;
                        None
                    }
                };
                failures += u64::from(reading.is_none());
                shared.set_missing(c, reading.is_none());
                recorder.set(c, reading);
            }
            if has_slow {
                if let Ok(mut f) = self.feed.lock() {
                    std::mem::swap(&mut *f, &mut arrived);
                }
                for (c, fed) in arrived.drain(..) {
                    match fed {
                        Fed::Anchor(at, ticks) => recorder.anchor(c, at, ticks),
                        Fed::Redraw(from, again) => recorder.redraw(c, from, again),
                    }
                }
            }
            let unix = shared.clock.unix_us_at(snap_mono_ns).max(last_unix);
            last_unix = unix;
            if let Ok(mut ring) = shared.ring.lock() {
                recorder.push(&mut ring, unix);
            }
            shared.settled_us.store(recorder.settled_us().unwrap_or(0), Ordering::Relaxed);
            shared.stats.read_failures.fetch_add(failures, Ordering::Relaxed);
            shared.stats.record(mono_ns().saturating_sub(start));
            next += period;
        }
    }
}

/// Adds a power reading at `mono_ns` to a power-only column's integral (trapezoid from the
/// previous reading; nothing across a gap); returns the integral, µJ.
fn integrate(state: &mut (Option<(f64, u64)>, f64), watts: f64, mono_ns: u64) -> u64 {
    if let Some((w0, t0)) = state.0 {
        let dt_s = mono_ns.saturating_sub(t0) as f64 / 1e9;
        state.1 += (w0 + watts) / 2.0 * dt_s * 1e6;
    }
    state.0 = Some((watts, mono_ns));
    state.1 as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_is_integrated_over_the_ticks_and_not_over_a_gap() {
        // 100 W sampled every 1 ms for 1 s: 100 J = 1e8 µJ.
        let mut state = (None, 0.0);
        let mut last = 0;
        for k in 0..=1000u64 {
            let v = integrate(&mut state, 100.0, 5_000_000_000 + k * 1_000_000);
            assert!(v >= last);
            last = v;
        }
        assert!((last as f64 - 1e8).abs() < 1e8 * 1e-6, "{last}");
        state.0 = None;
        assert_eq!(integrate(&mut state, 100.0, 9_000_000_000), last);
    }
}
