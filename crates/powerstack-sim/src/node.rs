//! [`SimNode`]: a simulated node behind a hardware root.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use powerstack_model::DomainId;

use crate::build::{UNIX_START_US, build};
use crate::config::{CONFIG_FILE, Config};
use crate::error::SimError;
use crate::fsutil::{mkdirs, remove_any, truncate_tree};
use crate::io::Io;
use crate::model::{self, Caps, Key};
use crate::msr::Shared;
use crate::msr::{SimMsr, lock};
use crate::options::SimOptions;
use crate::pm::{Emit, ObserverSlot, PmObserver};
use crate::profile::{LoadPattern, Profile};
use crate::rules::Rules;

/// The simulated monotonic clock at creation, ns.
pub const MONO_START_NS: u64 = 1_000_000_000;

/// The longest a real-time animation waits before it looks at its stop flag again.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// How many refusal lines [`SimNode::advance`] keeps for [`SimNode::take_refusals`].
const REFUSALS_KEPT: usize = 1024;

/// A simulated node: a directory standing for `/` that the real providers read with `--root`,
/// and a deterministic power model that animates it.
///
/// Time is simulated: [`SimNode::advance`] moves both clocks by the given step, computes each
/// component's power (after the limits found on disk and in [`SimMsr`]), accumulates exact energy
/// and rewrites the counter files in place.
#[derive(Debug)]
pub struct SimNode {
    root: PathBuf,
    profile: Profile,
    opts: SimOptions,
    shared: Arc<Mutex<Shared>>,
    io: Io,
    rules: Rules,
    /// Refusals found by `advance`, oldest first.
    refusals: Vec<String>,
    /// Shown every pm_counters write.
    observer: ObserverSlot,
    /// Inside `run_realtime`: torn writes pause in real time.
    realtime: bool,
    mono_ns: u64,
    unix_ns: i64,
}

impl SimNode {
    /// Writes the whole tree of `profile` under `dir`, with `DIR/powerstack-sim.toml` describing
    /// it. `dir` must be absent or empty: a previous simulated root is refused too
    /// ([`SimError::AlreadyCreated`], or [`SimError::Animated`] while a `sim run` animates it),
    /// since readers keep its files open and would go on reading the old ones. Nothing is touched
    /// when it is refused; when writing fails part way, what was written is removed.
    ///
    /// The NVIDIA GPU profiles ([`Profile::uses_mock_nvml`]) need the mock NVML library (see
    /// [`SimOptions::nvml_library`]); without it, nothing is written and the error says how to
    /// build it.
    pub fn create(dir: &Path, profile: Profile, opts: SimOptions) -> Result<SimNode, SimError> {
        opts.validate()?;
        let mut opts = opts;
        if profile.uses_mock_nvml() {
            opts.nvml_library = Some(crate::nvidia::find_library(opts.nvml_library.as_deref())?);
        }
        let made = prepare(dir)?;
        let written = Config::write(&dir.join(CONFIG_FILE), profile, &opts)
            .and_then(|()| build(dir, profile, &opts, true));
        let (shared, io) = written.inspect_err(|_| undo(dir, made))?;
        Ok(SimNode::assemble(dir, profile, opts, shared, io, UNIX_START_US * 1000))
    }

    /// Reopens a root written by [`SimNode::create`] (possibly by another process): rebuilds the
    /// model from `powerstack-sim.toml` and continues every counter from the value in its file,
    /// so no counter goes backwards. Removed devices stay removed. True energies
    /// ([`SimNode::true_energy_joules`]) and the monotonic clock restart; the simulated wall
    /// clock continues from the newest pm_counters timestamp when there is one. Opening writes
    /// nothing (the first [`SimNode::advance`] does), so a second process may open a root that
    /// another animates, to ask the model what to expect.
    pub fn open(dir: &Path) -> Result<SimNode, SimError> {
        let (profile, opts) = Config::parse(&dir.join(CONFIG_FILE))?;
        let (mut shared, mut io) = build(dir, profile, &opts, false)?;
        let unix_us = crate::reopen::recover(&mut shared, &mut io)?;
        Ok(SimNode::assemble(dir, profile, opts, shared, io, unix_us.max(UNIX_START_US) * 1000))
    }

    fn assemble(
        dir: &Path,
        profile: Profile,
        opts: SimOptions,
        shared: Shared,
        mut io: Io,
        unix_ns: i64,
    ) -> SimNode {
        if let Some(pm) = &mut io.pm {
            pm.set_clock(unix_ns);
        }
        SimNode {
            root: dir.to_path_buf(),
            profile,
            opts,
            shared: Arc::new(Mutex::new(shared)),
            io,
            rules: Rules::load(dir),
            refusals: Vec::new(),
            observer: ObserverSlot::default(),
            realtime: false,
            mono_ns: MONO_START_NS,
            unix_ns,
        }
    }

    /// The simulated profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The simulated root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The options in force.
    pub fn options(&self) -> &SimOptions {
        &self.opts
    }

    /// The simulated monotonic clock, ns (starts at 1 s).
    pub fn mono_ns(&self) -> u64 {
        self.mono_ns
    }

    /// The simulated wall clock, µs since the Unix epoch (pm_counters timestamps use it).
    pub fn unix_us(&self) -> i64 {
        self.unix_ns.div_euclid(1000)
    }

    /// Sets a steady load (clamped to 0..=1; a NaN is ignored), replacing any load pattern.
    pub fn set_load(&mut self, load: f64) {
        if load.is_finite() {
            self.opts.load = load.clamp(0.0, 1.0);
            self.opts.pattern = LoadPattern::Steady;
        }
    }

    /// The load at the current simulated time.
    pub fn load(&self) -> f64 {
        let t = self.mono_ns.saturating_sub(MONO_START_NS) as f64 / 1e9;
        self.opts.pattern.load_at(self.opts.load, t)
    }

    /// Every measurable domain: those a provider can read (hidden components such as hwmon-node's
    /// CPU, and removed devices, are left out).
    pub fn domains(&self) -> Vec<DomainId> {
        let s = lock(&self.shared);
        s.comps.iter().filter(|c| !c.hidden && !c.removed).filter_map(|c| c.key.domain()).collect()
    }

    fn comp<T>(&self, key: Key, f: impl Fn(&crate::model::Comp) -> T) -> Option<T> {
        lock(&self.shared).comps.iter().find(|c| c.key == key).map(f)
    }

    /// The model's power over the last [`SimNode::advance`] step (after limits), W; before any
    /// step, the power at creation. `None` for a domain the profile does not model.
    ///
    /// GPUs are numbered in PCI bus order, as the product numbers them: on nvidia-4gpu and
    /// nvidia-8gpu whatever their NVML index, on amd-mi250x `gpu-N` is the N-th GCD (amdgpu
    /// device), not a module.
    pub fn true_power_watts(&self, id: DomainId) -> Option<f64> {
        self.comp(Key::Domain(id), |c| c.power)
    }

    /// The exact energy the model accumulated since create (or open), J.
    pub fn true_energy_joules(&self, id: DomainId) -> Option<f64> {
        self.comp(Key::Domain(id), |c| c.energy)
    }

    /// amd-mi250x: the power of MI250X module `k` (0–3) over the last step, W: what pm_counters
    /// `accelK_power` shows, the sum of GCDs `2k` and `2k+1` ([`SimNode::true_power_watts`] of
    /// `gpu-2k` and `gpu-2k+1`). `None` on other profiles (cray-ex's accelerators are `gpu-K`).
    pub fn true_accel_power_watts(&self, k: u32) -> Option<f64> {
        self.comp(Key::Module(k), |c| c.power)
    }

    /// The power the model draws right now at the current load and limits (read from disk and
    /// the register model now): what the next step will use.
    pub fn expected_steady_power_watts(&self, id: DomainId) -> Option<f64> {
        let s = lock(&self.shared);
        let caps = self.peek_caps(&s);
        model::powers(self.profile, &self.opts, self.load(), &caps).get(&Key::Domain(id)).copied()
    }

    /// A [`SimMsr`] register model sharing this node's state.
    pub fn msr(&self) -> SimMsr {
        SimMsr::new(Arc::clone(&self.shared))
    }

    fn peek_caps(&self, s: &Shared) -> Caps {
        let mut caps = Caps::default();
        for l in &self.io.limits {
            l.role.add(&mut caps, l.resolve(s).target.cap_watts());
        }
        for c in &self.io.controls {
            c.role.add(&mut caps, c.watts(c.peek()));
        }
        caps
    }

    /// Applies the kernel's rules to the writable cpufreq, cpuidle and uncore attributes of the
    /// root (`scaling_{min,max}_freq`, `scaling_governor`, `energy_performance_preference`,
    /// `scaling_setspeed`, `cpuN/cpuidle/stateK/disable`, `intel_uncore_frequency/*/
    /// {min,max}_freq_khz` and `elc_*`, `cpufreq/boost`, `intel_pstate/{no_turbo,max_perf_pct,
    /// min_perf_pct}`, `cpuidle/current_governor`).
    ///
    /// The last accepted value of each is kept (taken from the files at create and at open). A file
    /// whose value changed is checked: an accepted value becomes the last accepted one, shown the
    /// way the kernel shows it (uncore limits rounded down to 100 MHz, EPP numbers as names, ...)
    /// with its consequences (EPP pinned by the `performance` governor, package-level uncore
    /// limits passed on to TPMI clusters, `scaling_cur_freq` and `current_freq_khz` following the
    /// limits); a refused one is restored in place and described by one returned line, such as
    /// `cpu3 scaling_min_freq 9000000 outside 1000000..3700000: restored 1000000`. An empty file
    /// counts as a write in progress and is looked at again next time. [`SimNode::advance`] calls
    /// this first. See `docs/simulator.md` for the rules.
    pub fn enforce_sysfs_rules(&mut self) -> Result<Vec<String>, SimError> {
        self.rules.enforce()
    }

    /// The refusals found by the [`SimNode::enforce_sysfs_rules`] runs inside
    /// [`SimNode::advance`] since the last call (the most recent 1024), oldest first.
    pub fn take_refusals(&mut self) -> Vec<String> {
        std::mem::take(&mut self.refusals)
    }

    /// Advances simulated time by `dt`: enforces the kernel's rules on the frequency attributes
    /// ([`SimNode::enforce_sysfs_rules`]; refusals are kept for [`SimNode::take_refusals`]), reads
    /// the limit files back (honouring writes by anyone, and register writes through [`SimMsr`]),
    /// computes each component's power, accumulates its energy exactly (power constant over the
    /// step) and writes the counters that changed. pm_counters publish only when the step crosses
    /// a 100 ms boundary, and the mock NVML energy counters only when it crosses an
    /// [`SimOptions::nvml_update_ms`] boundary of the monotonic clock, each with the exact energy
    /// at that boundary. Never sleeps.
    pub fn advance(&mut self, dt: Duration) -> Result<(), SimError> {
        let refused = self.rules.enforce()?;
        self.refusals.extend(refused);
        if self.refusals.len() > REFUSALS_KEPT {
            let extra = self.refusals.len() - REFUSALS_KEPT;
            self.refusals.drain(..extra);
        }
        let dt_ns = u64::try_from(dt.as_nanos()).unwrap_or(u64::MAX / 4).min(u64::MAX / 4);
        let dt_s = dt_ns as f64 / 1e9;
        let load = self.load();
        let caps = self.sync_limits()?;
        let shared = Arc::clone(&self.shared);
        let mut s = lock(&shared);
        let p = model::powers(self.profile, &self.opts, load, &caps);
        for c in &mut s.comps {
            c.power = p.get(&c.key).copied().unwrap_or(0.0);
            c.energy += c.power * dt_s;
        }
        let powers: Vec<f64> = s.comps.iter().map(|c| c.power).collect();

        let t0 = self.unix_ns;
        let t1 = t0.saturating_add(dt_ns as i64);
        if let Some(pm) = &mut self.io.pm {
            let mut emit = Emit { observer: self.observer.0.as_mut(), realtime: self.realtime };
            pm.step(&powers, (t0, t1, dt_s), &mut emit)?;
        }
        self.unix_ns = t1;
        let mono0 = self.mono_ns;
        self.mono_ns = self.mono_ns.saturating_add(dt_ns);

        for z in &mut self.io.zones {
            z.update(&s)?;
        }
        for img in &mut self.io.images {
            img.update(&s)?;
        }
        for h in &mut self.io.hwmon {
            let w = powers.get(h.comp).copied().unwrap_or(0.0);
            h.file.set(&crate::io::HwmonOut::content(h.kind, w))?;
        }
        let period_ns = u64::from(self.opts.nvml_update_ms) * 1_000_000;
        let boundary = crate::nvml_state::last_boundary(period_ns, mono0, self.mono_ns);
        for g in &mut self.io.nvml {
            g.update(&s, boundary)?;
        }
        Ok(())
    }

    /// Applies now, without moving time, what the hardware does with its limit and cap files and
    /// the frequency attributes: a written limit taken into its register and shown quantised to
    /// the register's unit (or rounded like the driver), a refused one restored, a register
    /// written through [`SimMsr`] shown in its files; the kernel's rules on the frequency
    /// attributes ([`SimNode::enforce_sysfs_rules`]; the refusals are returned). [`SimNode::advance`]
    /// does this first; a test that writes a limit and wants the hardware's answer before time
    /// moves calls it. `sim run` does it as soon as a limit or cap file is written.
    pub fn settle(&mut self) -> Result<Vec<String>, SimError> {
        let refused = self.rules.enforce()?;
        self.sync_limits()?;
        Ok(refused)
    }

    /// Syncs every limit and cap file with its register or driver value; returns the caps in
    /// force.
    fn sync_limits(&mut self) -> Result<Caps, SimError> {
        let shared = Arc::clone(&self.shared);
        let mut s = lock(&shared);
        let mut caps = Caps::default();
        for l in &mut self.io.limits {
            let r = l.resolve(&s);
            l.apply(&mut s, &r)?;
            l.role.add(&mut caps, r.target.cap_watts());
        }
        for c in &mut self.io.controls {
            let v = c.sync()?;
            c.role.add(&mut caps, c.watts(v));
        }
        Ok(caps)
    }

    fn no_domain(&self, id: DomainId) -> SimError {
        SimError::NoDomain { root: self.root.clone(), profile: self.profile.as_str(), domain: id }
    }

    fn unsupported(&self, what: String) -> SimError {
        SimError::Unsupported { root: self.root.clone(), profile: self.profile.as_str(), what }
    }

    /// Sets the raw RAPL counter(s) of `id` (powercap `energy_uj` and the MSR image, and
    /// [`SimMsr`]) so that they wrap after about `seconds_before_wrap` at the power drawn now,
    /// and writes the files.
    pub fn near_wrap(&mut self, id: DomainId, seconds_before_wrap: f64) -> Result<(), SimError> {
        let watts = self.expected_steady_power_watts(id).ok_or_else(|| self.no_domain(id))?;
        let secs = if seconds_before_wrap.is_finite() { seconds_before_wrap.max(0.0) } else { 0.0 };
        let shared = Arc::clone(&self.shared);
        let mut s = lock(&shared);
        let mut found = Vec::new();
        for i in 0..s.counters.len() {
            let comp = s.counters[i].comp;
            let Some(c) = s.comps.get(comp) else { continue };
            if c.key != Key::Domain(id) {
                continue;
            }
            let energy = c.energy;
            let ticks =
                (secs * s.counters[i].ticks_per_s(watts)).ceil().clamp(1.0, f64::from(u32::MAX));
            let raw = (u64::from(u32::MAX) + 1 - ticks as u64) as u32;
            s.counters[i].set_raw(energy, raw);
            found.push(i);
        }
        if found.is_empty() {
            return Err(
                self.unsupported(format!("near_wrap({id}): {id} has no wrapping RAPL counter"))
            );
        }
        for z in self.io.zones.iter_mut().filter(|z| found.contains(&z.counter)) {
            z.update(&s)?;
        }
        for img in &mut self.io.images {
            img.update(&s)?;
        }
        Ok(())
    }

    /// Makes the device carrying `id` vanish: its files are truncated to 0 bytes first (so
    /// descriptors readers keep open read empty, like ENODEV), then its directory and the
    /// symlinks naming it are removed. A powercap zone takes its subzones along (and package-0
    /// the MMIO duplicate); an hwmon chip takes its device; a pm_counters domain its two files.
    pub fn remove_device(&mut self, id: DomainId) -> Result<(), SimError> {
        let Some(d) = self.io.devices.iter().position(|d| !d.removed && d.ids.first() == Some(&id))
        else {
            return Err(self.no_domain(id));
        };
        let (truncate, remove, ids) = {
            let dev = &self.io.devices[d];
            (dev.truncate.clone(), dev.remove.clone(), dev.ids.clone())
        };
        self.io.mark_gone(&truncate);
        for p in &truncate {
            truncate_tree(p)?;
        }
        for p in &remove {
            remove_any(p)?;
        }
        self.io.devices[d].removed = true;
        // Devices inside this one (subzones) are gone too.
        for dev in &mut self.io.devices {
            if dev.truncate.iter().all(|p| truncate.iter().any(|r| p.starts_with(r))) {
                dev.removed = true;
            }
        }
        let mut s = lock(&self.shared);
        for c in &mut s.comps {
            if c.key.domain().is_some_and(|id| ids.contains(&id)) {
                c.removed = true;
            }
        }
        Ok(())
    }

    /// cray-ex: a controller restart. `generation` goes up by one, `startup` becomes now, and
    /// every pm_counters energy restarts from 0; the files are written at once.
    pub fn reset_pm_counters(&mut self) -> Result<(), SimError> {
        let powers: Vec<f64> = lock(&self.shared).comps.iter().map(|c| c.power).collect();
        let Some(pm) = &mut self.io.pm else {
            return Err(self.unsupported("reset_pm_counters (there is no pm_counters)".to_string()));
        };
        let mut emit = Emit { observer: self.observer.0.as_mut(), realtime: self.realtime };
        pm.restart(&powers, self.unix_ns, &mut emit)
    }

    /// Shows every change to a pm_counters file to `observer` (or to no one, with `None`), right
    /// after it is on disk and before anything else is written: the test seam for what a reader
    /// can see during an update, e.g. the empty and half-written files of
    /// [`PmFaults::torn`](crate::faults::PmFaults::torn) or the early `freshness` of
    /// [`PmFaults::freshness_mid_update`](crate::faults::PmFaults::freshness_mid_update).
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use powerstack_sim::{PmStage, Profile, SimNode, SimOptions, faults::PmFaults};
    /// let dir = tempfile::tempdir().unwrap();
    /// let opts = SimOptions {
    ///     pm_faults: PmFaults { torn: true, ..PmFaults::default() },
    ///     ..SimOptions::default()
    /// };
    /// let mut node = SimNode::create(dir.path(), Profile::CrayEx, opts).unwrap();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// node.observe_pm_writes(Some(Box::new(move |path, stage, shown| {
    ///     if path.ends_with("cpu_energy") {
    ///         log.lock().unwrap().push((stage, shown.to_string()));
    ///     }
    /// })));
    /// node.advance(Duration::from_millis(100)).unwrap();
    /// let seen = seen.lock().unwrap();
    /// assert_eq!(seen[0], (PmStage::Emptied, String::new()));
    /// assert_eq!(seen[1].0, PmStage::Partial);
    /// assert_eq!(seen[2].0, PmStage::Written);
    /// assert!(seen[2].1.starts_with(&seen[1].1));
    /// ```
    pub fn observe_pm_writes(&mut self, observer: Option<PmObserver>) {
        self.observer = ObserverSlot(observer);
    }

    /// Animates the root in real time: every `tick`, advances by the real elapsed monotonic time,
    /// until `stop` is set (checked at least every 50 ms). Torn pm_counters writes pause in real
    /// time here. A limit or cap file written between ticks is taken at once (an inotify watch
    /// wakes the animation: [`SimNode::settle`]'s limits part), so that a writer reading it back
    /// sees what the hardware would show. Refused ([`SimError::AlreadyAnimated`]) while another
    /// animation of the root runs: each holds a lock on its `powerstack-sim.toml`.
    pub fn run_realtime(&mut self, tick: Duration, stop: &AtomicBool) -> Result<(), SimError> {
        self.run_realtime_with(tick, stop, |_, _| {})
    }

    /// [`SimNode::run_realtime`], calling `on_step(node, at)` once before the first step (by
    /// then a limit written is answered at once) and after every step, with the real instant the
    /// node's clocks stand for: the step covered the time since the previous call's `at`. A test records the truth there (see
    /// [`crate::TruthLog`]), and may change the load for the steps that follow, from the thread
    /// that animates the node while the product reads the root from another.
    pub fn run_realtime_with(
        &mut self,
        tick: Duration,
        stop: &AtomicBool,
        mut on_step: impl FnMut(&mut SimNode, Instant),
    ) -> Result<(), SimError> {
        let _animating = crate::lock::take(&self.root)?;
        self.realtime = true;
        let r = self.realtime_loop(tick, stop, &mut on_step);
        self.realtime = false;
        r
    }

    fn realtime_loop(
        &mut self,
        tick: Duration,
        stop: &AtomicBool,
        on_step: &mut impl FnMut(&mut SimNode, Instant),
    ) -> Result<(), SimError> {
        let tick = tick.max(Duration::from_micros(100));
        let watched: Vec<PathBuf> = self.io.limit_files().map(|f| f.path().to_path_buf()).collect();
        let watch = crate::watch::Watch::files(watched.iter().map(PathBuf::as_path));
        let mut last = Instant::now();
        on_step(self, last);
        let mut next = last + tick;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if next > now {
                // In slices, so that a stop is seen soon whatever the tick.
                let slice = (next - now).min(STOP_CHECK);
                match &watch {
                    // A limit or cap written meanwhile is taken at once, as hardware would.
                    Some(w) => {
                        if w.wait(slice) {
                            self.sync_limits()?;
                        }
                    }
                    None => std::thread::sleep(slice),
                }
                continue;
            }
            let now = Instant::now();
            next += tick;
            if next < now {
                next = now + tick;
            }
            self.advance(now.duration_since(last))?;
            on_step(self, now);
            last = now;
        }
        Ok(())
    }
}

/// The profile of the simulated root `dir`, when it is one (its `powerstack-sim.toml` is readable
/// and valid); `None` for anything else, a real `/` included.
pub fn profile_of(dir: &Path) -> Option<Profile> {
    let config = dir.join(CONFIG_FILE);
    if !config.is_file() {
        return None;
    }
    Config::parse(&config).ok().map(|(profile, _)| profile)
}

/// Makes `dir` ready for a new tree: absent (created; returns true) or empty. Anything else is
/// refused without touching it.
fn prepare(dir: &Path) -> Result<bool, SimError> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return mkdirs(dir).map(|()| true),
        Err(e) => return Err(SimError::io(dir, e)),
        Ok(m) if !m.is_dir() => return Err(SimError::NotADirectory { path: dir.to_path_buf() }),
        Ok(_) => {}
    }
    let mut entries = std::fs::read_dir(dir).map_err(|e| SimError::io(dir, e))?;
    if entries.next().is_none() {
        return Ok(false);
    }
    let path = dir.to_path_buf();
    if !dir.join(CONFIG_FILE).exists() {
        return Err(SimError::NotEmpty { path });
    }
    if crate::lock::is_animated(dir) {
        return Err(SimError::Animated { path });
    }
    Err(SimError::AlreadyCreated { path })
}

/// Removes what a failed `create` wrote: the directory it made, or what it put in an empty one.
fn undo(dir: &Path, made: bool) {
    if made {
        let _ = std::fs::remove_dir_all(dir);
    } else if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = remove_any(&e.path());
        }
    }
}
