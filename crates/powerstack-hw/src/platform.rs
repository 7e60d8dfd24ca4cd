//! The platform: every provider joined into one catalog, sampled as one.
//!
//! Architecture invariant: this module names no concrete provider. It receives boxed providers in
//! priority order, keeps the first provider's entry when two measure the same domain, extends every
//! energy counter across wraps and resets, and timestamps each snapshot with the monotonic clock.

use powerstack_model::{DomainInfo, DomainKind, PowerReport, Snapshot, Value};

use crate::clock::{mono_ns, unix_us};
use crate::error::Warning;
use crate::provider::{Provider, Reading, Refresh};

mod track;
use track::{CONTINUOUS_PERIOD_NS, Track};
pub use track::{MAX_COUNTING_S, RATED_FACTOR, ceiling_watts, generic_ceiling_watts};

/// How long [`Platform::measure`] (and a one-shot reading) waits for the next step of a counter
/// published in steps (NVML's energy moves about every 100 ms), so that power is measured between
/// steps.
pub const STEP_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// How often [`Platform::measure`] reads again a counter that has not moved yet.
pub const STILL_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Whether an energy counter reads the same in both snapshots.
fn still_between(a: &Snapshot, b: &Snapshot) -> bool {
    a.values.iter().zip(&b.values).any(|pair| {
        matches!(pair, (Value::Energy { total_ticks: x, .. }, Value::Energy { total_ticks: y, .. }) if x == y)
    })
}

#[derive(Clone, Copy)]
struct Slot {
    provider: usize,
    index: usize,
}

/// All providers of a node as one catalog.
pub struct Platform {
    providers: Vec<Box<dyn Provider>>,
    buffers: Vec<Vec<Reading>>,
    catalog: Vec<DomainInfo>,
    slots: Vec<Slot>,
    /// Per domain: its extended counter, when it last moved, what was reported.
    tracks: Vec<Track>,
    /// Providers to look at (a value of theirs still or failing for a while) once the values
    /// of the sample are taken.
    to_check: Vec<usize>,
    pending_warnings: Vec<Warning>,
}

impl Platform {
    /// Joins providers, given in priority order. A domain measured by two providers is taken from
    /// the first; the other is dropped with a warning naming both. Then each provider published in
    /// steps is split into its devices ([`Provider::split`]: one per NVML GPU), so that each can
    /// be read on its own (see [`Platform::sample_at_steps`]).
    pub fn new(providers: Vec<Box<dyn Provider>>) -> (Platform, Vec<Warning>) {
        let mut warnings = Vec::new();
        let mut catalog: Vec<DomainInfo> = Vec::new();
        let mut slots = Vec::new();
        let gpu_source = per_device_gpu_provider(&providers, &mut warnings);
        for (p, provider) in providers.iter().enumerate() {
            for (i, info) in provider.domains().iter().enumerate() {
                if info.id.kind == DomainKind::Gpu && gpu_source.is_some_and(|g| g != p) {
                    continue;
                }
                if let Some(kept) = catalog.iter().find(|c| c.id == info.id) {
                    warnings.push(Warning::new(
                        provider.name(),
                        format!(
                            "{} is also measured by {} ({}); using that one, not {}",
                            info.id, kept.provider, kept.source, info.source
                        ),
                    ));
                    continue;
                }
                catalog.push(info.clone());
                slots.push(Slot { provider: p, index: i });
            }
        }
        let (providers, slots) = split_stepped(providers, slots);
        let tracks = catalog
            .iter()
            .zip(&slots)
            .map(|(info, slot)| {
                let period_ns = match providers[slot.provider].refresh() {
                    Refresh::Continuous => CONTINUOUS_PERIOD_NS,
                    Refresh::Stepped { period } => period.as_nanos() as u64,
                };
                Track::new(info, period_ns)
            })
            .collect();
        let buffers = providers
            .iter()
            .map(|p| (0..p.domains().len()).map(|_| Reading::Pending).collect())
            .collect();
        let platform = Platform {
            providers,
            buffers,
            catalog,
            slots,
            tracks,
            to_check: Vec::new(),
            pending_warnings: Vec::new(),
        };
        (platform, warnings)
    }

    /// The joined catalog, in the order snapshots list values.
    pub fn catalog(&self) -> &[DomainInfo] {
        &self.catalog
    }

    /// The names of the providers in use, in priority order.
    pub fn provider_names(&self) -> Vec<&'static str> {
        self.providers.iter().map(|p| p.name()).collect()
    }

    /// The providers, in priority order, to join differently (say, split into platforms read
    /// at different rates) without probing the hardware again.
    pub fn into_providers(self) -> Vec<Box<dyn Provider>> {
        self.providers
    }

    /// Whether there is nothing to measure.
    pub fn is_empty(&self) -> bool {
        self.catalog.is_empty()
    }

    /// Reads every domain now (monotonic and wall clocks).
    pub fn sample(&mut self) -> Snapshot {
        let t0 = mono_ns();
        self.read_all();
        let t1 = mono_ns();
        self.extend(t0 + (t1 - t0) / 2, unix_us())
    }

    /// Reads every domain and stamps the snapshot with the given times (simulated time in tests).
    pub fn sample_at(&mut self, mono_ns: u64, unix_us: i64) -> Snapshot {
        self.read_all();
        self.extend(mono_ns, unix_us)
    }

    /// Warnings raised while sampling (a domain failing, an impossible delta), each once per domain
    /// until it recovers.
    pub fn take_warnings(&mut self) -> Vec<Warning> {
        std::mem::take(&mut self.pending_warnings)
    }

    /// Re-reads every provider's limits and refreshes the catalog's copy.
    pub fn refresh_limits(&mut self) -> Vec<Warning> {
        let mut warnings = Vec::new();
        for p in &mut self.providers {
            warnings.extend(p.refresh_limits());
        }
        for (slot, info) in self.slots.iter().zip(self.catalog.iter_mut()) {
            if let Some(d) = self.providers[slot.provider].domains().get(slot.index) {
                info.limits = d.limits.clone();
            }
        }
        warnings
    }

    /// Writes one power limit of catalog entry `index` through its provider, then refreshes the
    /// catalog's copy of that domain's limits (the read-back).
    pub fn write_limit(
        &mut self,
        index: usize,
        write: &powerstack_model::LimitWrite,
    ) -> Result<(), crate::HwError> {
        let Some(slot) = self.slots.get(index).copied() else {
            return Err(crate::HwError::Unsupported {
                provider: "platform",
                what: format!("domain #{index}"),
            });
        };
        let result = self.providers[slot.provider].write_limit(slot.index, write);
        if let Some(d) = self.providers[slot.provider].domains().get(slot.index) {
            self.catalog[index].limits = d.limits.clone();
        }
        result
    }

    /// Samples, waits `interval`, samples again, and reports power over the interval. Never a
    /// first-call 0 W: every figure is a difference over a real interval. Counters published in
    /// steps are measured between their steps ([`Platform::sample_at_steps`]). An energy counter
    /// that has not moved by then is waited for (every [`STILL_POLL`]) until it moves or has not
    /// moved for its stale time, when it is missing: a stopped counter is never a confident 0 W.
    pub fn measure(&mut self, interval: std::time::Duration) -> PowerReport {
        self.measure_with(|| std::thread::sleep(interval))
    }

    /// [`Platform::measure`] with the caller's wait between the two samples (one that a stop
    /// signal ends early).
    pub fn measure_with(&mut self, wait: impl FnOnce()) -> PowerReport {
        let a = self.sample_at_steps(STEP_WAIT);
        wait();
        let b = self.sample_at_steps(STEP_WAIT);
        let b = self.until_moved(&a, b);
        PowerReport::between(&self.catalog, &a, &b)
    }

    /// `b`, or, while an energy counter reads the same in `a` and `b`, a later snapshot
    /// ([`Platform::sample_at_steps`], every [`STILL_POLL`]): until every such counter has moved
    /// or has not moved for its stale time (then it is missing). A one-shot reading over a short
    /// interval thus reports a stopped counter as missing rather than 0 W; one that moves only
    /// now and then (whole joules at a few watts) is measured once it has.
    pub fn until_moved(&mut self, a: &Snapshot, mut b: Snapshot) -> Snapshot {
        let longest = self.tracks.iter().map(Track::stale_after_ns).max().unwrap_or(0);
        let deadline =
            a.mono_ns.saturating_add(longest).saturating_add(STEP_WAIT.as_nanos() as u64);
        while still_between(a, &b) && mono_ns() < deadline {
            std::thread::sleep(STILL_POLL);
            b = self.sample_at_steps(STEP_WAIT);
        }
        b
    }

    fn read_all(&mut self) {
        for (p, buf) in self.providers.iter_mut().zip(self.buffers.iter_mut()) {
            p.read(buf);
        }
    }

    fn extend(&mut self, mono_ns: u64, unix_us: i64) -> Snapshot {
        let mut values = Vec::with_capacity(self.catalog.len());
        self.extend_into(mono_ns, &mut values);
        Snapshot { mono_ns, unix_us, values }
    }

    fn extend_into(&mut self, mono_ns: u64, values: &mut Vec<Value>) {
        values.clear();
        for i in 0..self.slots.len() {
            let Slot { provider, index } = self.slots[i];
            let reading = std::mem::replace(&mut self.buffers[provider][index], Reading::Pending);
            values.push(self.extend_one(i, reading, mono_ns));
        }
        if !self.to_check.is_empty() {
            self.reopen_replaced(values);
        }
    }

    /// [`Platform::sample`] into `values` (one per catalog entry; reused, so a sampler that calls
    /// it at every tick allocates nothing), without the wall clock; returns the monotonic time of
    /// the reading.
    pub fn sample_into(&mut self, values: &mut Vec<Value>) -> u64 {
        let t0 = mono_ns();
        self.read_all();
        let t1 = mono_ns();
        let mono_ns = t0 + (t1 - t0) / 2;
        self.extend_into(mono_ns, values);
        mono_ns
    }

    /// Turns catalog entry `i`'s reading, taken at `mono_ns`, into its value: energy extended
    /// across wraps and resets (an implausible step refused), power checked, a counter stopped
    /// for its stale time missing. A value stopped (or failing) that long has its provider look
    /// whether its files were replaced, at most once per stale time.
    fn extend_one(&mut self, i: usize, reading: Reading, mono_ns: u64) -> Value {
        let (value, check) =
            self.tracks[i].take(&self.catalog[i], reading, mono_ns, &mut self.pending_warnings);
        let p = self.slots[i].provider;
        if check && !self.to_check.contains(&p) {
            self.to_check.push(p);
        }
        value
    }

    /// Has each provider to check reopen its replaced files. A domain read from a new file
    /// starts a new counter (nothing is added for the time in between), with a warning; its
    /// value in `values` (catalog order) came from the old file and becomes missing.
    fn reopen_replaced(&mut self, values: &mut [Value]) {
        for p in std::mem::take(&mut self.to_check) {
            for index in self.providers[p].reopen_replaced() {
                let Some(i) = self.slots.iter().position(|s| s.provider == p && s.index == index)
                else {
                    continue;
                };
                self.tracks[i].rebase();
                if let Some(v) = values.get_mut(i) {
                    *v = Value::Missing;
                }
                self.warn_replaced(i);
            }
        }
    }

    fn warn_replaced(&mut self, i: usize) {
        let info = &self.catalog[i];
        self.pending_warnings.push(Warning::new(
            info.provider,
            format!(
                "{}: {} was replaced (its device registered again?): reading the new one, whose counter starts anew",
                info.id, info.source
            ),
        ));
    }

    /// [`Platform::sample`], then, for every energy counter that the hardware updates in steps
    /// without a timestamp (NVML's, about every 100 ms: [`Refresh::Stepped`]), its next step:
    /// each such provider is read again and again (concurrently, on a thread each) until its
    /// counters move or `timeout` passes, and each counter that moved is given the value it moved
    /// to, stamped (`hw_time_us`, on the monotonic clock) with the moment it moved: midway
    /// between the two reads around the change.
    ///
    /// Power between two such snapshots is then measured between steps of the counter, not
    /// between arbitrary reads of it, which would be off by up to a step's energy (±50% over
    /// 200 ms on a 100 ms counter). Takes up to one step longer than [`Platform::sample`]; for
    /// one-shot readings (a sampler that runs on places its readings itself).
    pub fn sample_at_steps(&mut self, timeout: std::time::Duration) -> Snapshot {
        let mut snap = self.sample();
        let stepped: Vec<usize> = (0..self.providers.len())
            .filter(|&p| matches!(self.providers[p].refresh(), Refresh::Stepped { .. }))
            .filter(|&p| {
                self.slots.iter().zip(&snap.values).any(|(slot, v)| {
                    slot.provider == p && matches!(v, Value::Energy { hw_time_us: None, .. })
                })
            })
            .collect();
        if stepped.is_empty() {
            return snap;
        }
        let timeout_ns = timeout.as_nanos() as u64;
        let mut edges: Vec<(usize, Vec<Option<Edge>>)> = Vec::new();
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .providers
                .iter_mut()
                .enumerate()
                .filter(|(p, _)| stepped.contains(p))
                .map(|(p, provider)| scope.spawn(move || (p, next_steps(provider, timeout_ns))))
                .collect();
            edges = handles.into_iter().filter_map(|h| h.join().ok()).collect();
        });
        for (p, found) in edges {
            for (index, edge) in found.into_iter().enumerate() {
                let Some((at_ns, reading)) = edge else { continue };
                let Some(i) = self.slots.iter().position(|s| s.provider == p && s.index == index)
                else {
                    continue;
                };
                if let Value::Energy { total_ticks, joules, .. } =
                    self.extend_one(i, reading, at_ns)
                {
                    snap.values[i] =
                        Value::Energy { total_ticks, joules, hw_time_us: Some(at_ns / 1000) };
                }
            }
        }
        if !self.to_check.is_empty() {
            self.reopen_replaced(&mut snap.values);
        }
        snap
    }
}

/// Splits the providers published in steps into their devices, and points the slots at the
/// parts (a split keeps the domains in order: the parts' domains, one after the other, are the
/// provider's).
fn split_stepped(
    providers: Vec<Box<dyn Provider>>,
    slots: Vec<Slot>,
) -> (Vec<Box<dyn Provider>>, Vec<Slot>) {
    let mut out: Vec<Box<dyn Provider>> = Vec::with_capacity(providers.len());
    let mut moved: Vec<Vec<Slot>> = Vec::with_capacity(providers.len());
    for mut p in providers {
        let n = p.domains().len();
        let parts = match p.refresh() {
            Refresh::Stepped { .. } => p.split(),
            Refresh::Continuous => Vec::new(),
        };
        let mut to = Vec::with_capacity(n);
        if parts.is_empty() {
            to.extend((0..n).map(|index| Slot { provider: out.len(), index }));
            out.push(p);
        } else {
            for part in parts {
                let k = part.domains().len();
                to.extend((0..k).map(|index| Slot { provider: out.len(), index }));
                out.push(part);
            }
        }
        moved.push(to);
    }
    let slots = slots
        .into_iter()
        .map(|s| moved.get(s.provider).and_then(|m| m.get(s.index)).copied().unwrap_or(s))
        .collect();
    (out, slots)
}

/// When a stepping counter moved (monotonic ns), and the reading it moved to.
type Edge = (u64, Reading);

/// Reads `provider` until each of its energy counters moves (or `timeout_ns` passes); returns,
/// per domain, when it moved (midway between the reads around the change) and the reading it
/// moved to.
fn next_steps(provider: &mut Box<dyn Provider>, timeout_ns: u64) -> Vec<Option<Edge>> {
    let n = provider.domains().len();
    let mut buf: Vec<Reading> = (0..n).map(|_| Reading::Pending).collect();
    let ticks = |r: &Reading| if let Reading::Energy(e) = r { Some(e.ticks) } else { None };
    let read = |provider: &mut Box<dyn Provider>, buf: &mut Vec<Reading>| {
        let t0 = mono_ns();
        provider.read(buf);
        (t0 + (mono_ns() - t0) / 2, buf.iter().map(ticks).collect::<Vec<_>>())
    };
    let (mut prev_mid, first) = read(provider, &mut buf);
    let deadline = prev_mid + timeout_ns;
    let mut found: Vec<Option<Edge>> = (0..n).map(|_| None).collect();
    let mut waiting = first.iter().filter(|t| t.is_some()).count();
    while waiting > 0 && prev_mid < deadline {
        std::thread::sleep(std::time::Duration::from_micros(500));
        let (mid, now) = read(provider, &mut buf);
        for d in 0..n {
            if found[d].is_none() && first[d].is_some() && now[d].is_some() && now[d] != first[d] {
                let reading = std::mem::replace(&mut buf[d], Reading::Pending);
                found[d] = Some((prev_mid + (mid - prev_mid) / 2, reading));
                waiting -= 1;
            }
        }
        prev_mid = mid;
    }
    found
}

/// When providers disagree on how many GPUs there are, they count different things: a board
/// controller's accelerator modules (HPE Cray `accelN`, one per MI250X with two GPU devices) against
/// a driver's devices. The provider with the most GPU domains (per device, the granularity caps
/// apply to) is then the only source of GPU domains. Returns its index, or `None` when the counts
/// agree (ordinary per-domain priority applies).
fn per_device_gpu_provider(
    providers: &[Box<dyn Provider>],
    warnings: &mut Vec<Warning>,
) -> Option<usize> {
    let counts: Vec<(usize, usize)> = providers
        .iter()
        .enumerate()
        .map(|(p, prov)| {
            (p, prov.domains().iter().filter(|d| d.id.kind == DomainKind::Gpu).count())
        })
        .filter(|&(_, n)| n > 0)
        .collect();
    let first = counts.first()?.1;
    if counts.iter().all(|&(_, n)| n == first) {
        return None;
    }
    let &(best, most) = counts.iter().max_by_key(|&&(p, n)| (n, std::cmp::Reverse(p)))?;
    for &(p, n) in &counts {
        if p != best {
            warnings.push(Warning::new(
                providers[p].name(),
                format!(
                    "its {n} GPU domain(s) cover the {most} GPU devices that {} reports one by one; using {}'s",
                    providers[best].name(),
                    providers[best].name()
                ),
            ));
        }
    }
    Some(best)
}
