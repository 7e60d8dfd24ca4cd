//! HPE Cray `pm_counters` (`/sys/cray/pm_counters/`): node, CPU, memory and accelerator power and
//! energy measured by the blade controller.
//!
//! The file set varies by blade, so the directory is listed. Each value file reads
//! `"<value> <unit>"`, optionally followed by `" <timestamp> us"` (`724 W 7810213855886 us`,
//! `1234567 J`); the unit is `W` for power and caps and `J` for energy. Files are mapped to domains:
//!
//! | files | domain |
//! |---|---|
//! | `energy`, `power` | node |
//! | `cpu_energy`, `cpu_power` (or per-socket `cpuN_energy`, `cpuN_power`) | package-0 (package-N) |
//! | `memory_energy`, `memory_power` | memory-0 |
//! | `accelN_energy`, `accelN_power` (older `accel_energy`, `accel_power`) | gpu-N (gpu-0) |
//!
//! When a domain has both, the energy counter is used (cumulative joules, stamped by the controller);
//! a power-only domain reports watts. When per-socket `cpuN_*` (or numbered `accelN_*`) files exist,
//! the unnumbered `cpu_*` (`accel_*`) ones are not used: they would measure a different scope under
//! the same name.
//!
//! Consistency: the controller rewrites the files about ten times a second and bumps `freshness` each
//! time. A read takes `freshness` before and after reading every value file and retries when it
//! changed. A value file caught while it is rewritten (empty, or a line cut short: a file that
//! carried a timestamp at discovery must carry one in every reading) is retried too, after a short
//! pause; only a file that stays so fails. `generation` (bumped when the counters restart) and
//! `startup` are folded into each energy reading's epoch, so a controller restart is a counter
//! reset, never a negative or huge energy. All three are optional.
//!
//! Pace: the values change ten times a second ([`UPDATE_PERIOD`]) and each energy value carries the
//! controller's timestamp, so the provider is [`Refresh::Stepped`]: a sampler reads it on its own
//! thread and places each value at its timestamp.
//!
//! Version: `version`, when present, must read one of [`KNOWN_VERSIONS`] on one line (the
//! interface versions HPE firmware writes: 3 on current EX blades, 2 on earlier ones, 1 on XC
//! blades, whose values carry no timestamp). Anything else (`99`, letters, two lines) is not a
//! pm_counters directory powerstack knows how to read: the provider is not used, with a warning
//! naming the file.
//!
//! Limits: `power_cap` is the node's `cap`, `accel_power_cap` (or `accelN_power_cap`) each GPU's; a
//! value of 0 W means uncapped. They are set out of band by the system controller (CAPMC, PCS), not
//! through these files, so they are reported as locked: powerstack shows them and never writes them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use powerstack_model::{
    CounterSpec, DomainId, DomainInfo, DomainKind, Measurement, PowerLimit, RawEnergy,
};

use crate::error::{HwError, Warning};
use crate::file::{self, AttrFile, list_dir};
use crate::provider::{Probe, Provider, Reading, Refresh};
use crate::providers::ProbeContext;
use crate::root::Root;
use crate::topology::CpuTopology;

/// The provider's name.
pub const NAME: &str = "pm_counters";

/// Where the counters live, as a system path.
pub const DIR: &str = "/sys/cray/pm_counters";

/// How many times a read is attempted while `freshness` keeps changing or a file is caught
/// half written.
pub const MAX_ATTEMPTS: u32 = 4;

/// How long to wait before the attempt after one that caught a file half written (the writer
/// is in the middle of it): doubled after each.
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_micros(500);

/// How often the controller publishes new values (10 Hz).
pub const UPDATE_PERIOD: std::time::Duration = std::time::Duration::from_millis(100);

/// The interface versions a `version` file may hold (see the module documentation).
pub const KNOWN_VERSIONS: std::ops::RangeInclusive<u64> = 1..=3;

/// Checks the `version` file: one line holding one of [`KNOWN_VERSIONS`]. The error says what
/// the file holds and what was expected, naming it.
fn check_version(path: &Path) -> Result<u64, HwError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| HwError::from_io(path, e, "pm_counters"))?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    let version = (!line.contains('\n')).then(|| line.trim().parse::<u64>().ok()).flatten();
    match version {
        Some(v) if KNOWN_VERSIONS.contains(&v) => Ok(v),
        _ => Err(HwError::malformed(
            path,
            format!(
                "interface version {text:?} is not one powerstack reads (expected one line holding {} to {}); pm_counters not used (check the blade firmware)",
                KNOWN_VERSIONS.start(),
                KNOWN_VERSIONS.end()
            ),
        )),
    }
}

/// The size of the buffer a value file is read into.
const LINE_MAX: usize = 256;

/// The unit a pm_counters value file must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Watts (`W`): `power`, `*_power`, `*_cap`.
    Watts,
    /// Joules (`J`): `energy`, `*_energy`.
    Joules,
}

impl Unit {
    /// The unit's symbol as the files write it.
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Watts => "W",
            Unit::Joules => "J",
        }
    }
}

/// One parsed pm_counters value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PmValue {
    /// The value, in the file's unit (whole watts or joules).
    pub value: u64,
    /// The controller's timestamp of the value, in µs, when the file carries one.
    pub time_us: Option<u64>,
}

/// Parses one value line strictly: `"<value> <unit>"` or `"<value> <unit> <timestamp> us"`, where the
/// unit must be `expected`. Returns what is wrong otherwise.
pub fn parse_value(line: &str, expected: Unit) -> Result<PmValue, &'static str> {
    let mut tokens = line.split_ascii_whitespace();
    let value = tokens.next().ok_or("empty value")?;
    let value: u64 = value.parse().map_err(|_| "the value is not an unsigned integer")?;
    let unit = tokens.next().ok_or("missing unit")?;
    if unit != expected.symbol() {
        return Err(match expected {
            Unit::Watts => "wrong unit (expected W)",
            Unit::Joules => "wrong unit (expected J)",
        });
    }
    let time_us = match tokens.next() {
        None => None,
        Some(ts) => {
            let ts: u64 = ts.parse().map_err(|_| "the timestamp is not an unsigned integer")?;
            if tokens.next() != Some("us") {
                return Err("the timestamp is not followed by its unit \"us\"");
            }
            Some(ts)
        }
    };
    if tokens.next().is_some() {
        return Err("unexpected text after the value");
    }
    Ok(PmValue { value, time_us })
}

/// Reads and parses a kept-open value file without allocating (except for errors).
fn read_value(file: &AttrFile, unit: Unit) -> Result<PmValue, HwError> {
    let mut buf = [0u8; LINE_MAX];
    let line = file.read_line(&mut buf)?;
    parse_value(line, unit).map_err(|why| malformed_value(file.path(), line, why, unit))
}

fn malformed_value(path: &Path, line: &str, why: &str, unit: Unit) -> HwError {
    HwError::malformed(
        path,
        format!(
            "{why} in {line:?}; expected \"<value> {}\" optionally followed by \"<timestamp> us\" (check the blade firmware)",
            unit.symbol()
        ),
    )
}

/// Reads a one-shot value file (discovery, limits).
fn read_value_once(path: &Path, unit: Unit) -> Result<PmValue, HwError> {
    let text = file::read_trimmed(path, "pm_counters")?;
    let line = text.lines().next().unwrap_or("");
    parse_value(line, unit).map_err(|why| malformed_value(path, line, why, unit))
}

/// What one counter file measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quantity {
    Energy,
    Power,
}

/// Maps a file name to the domain it measures, and the quantity. `numbered` tells whether the name
/// carries an explicit index (`cpu1_energy`) or is the unnumbered form (`cpu_energy`).
fn classify(name: &str) -> Option<(DomainKind, u32, Quantity, bool)> {
    let (stem, q) = if let Some(s) = name.strip_suffix("_energy") {
        (s, Quantity::Energy)
    } else if let Some(s) = name.strip_suffix("_power") {
        (s, Quantity::Power)
    } else {
        return match name {
            "energy" => Some((DomainKind::Node, 0, Quantity::Energy, false)),
            "power" => Some((DomainKind::Node, 0, Quantity::Power, false)),
            _ => None,
        };
    };
    match stem {
        "cpu" => return Some((DomainKind::Package, 0, q, false)),
        "memory" => return Some((DomainKind::Memory, 0, q, false)),
        "accel" => return Some((DomainKind::Gpu, 0, q, false)),
        _ => {}
    }
    for (prefix, kind) in [("cpu", DomainKind::Package), ("accel", DomainKind::Gpu)] {
        if let Some(n) = stem.strip_prefix(prefix)
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && let Ok(index) = n.parse::<u32>()
        {
            return Some((kind, index, q, true));
        }
    }
    None
}

/// One measured domain: the kept-open file it is read from.
struct Counter {
    file: AttrFile,
    quantity: Quantity,
    /// The file carried a timestamp at discovery: a reading without one was cut short.
    stamped: bool,
}

/// A cap file and the catalog entries it limits.
struct Cap {
    path: PathBuf,
    domains: Vec<usize>,
}

/// What one read attempt found.
enum Attempt {
    /// Every file read, `freshness` unchanged.
    Consistent,
    /// `freshness` changed during the attempt: the set may mix two updates.
    Moved,
    /// A value file was empty or cut short: caught while it was rewritten.
    Torn,
}

/// The HPE Cray pm_counters provider.
pub struct PmCounters {
    domains: Vec<DomainInfo>,
    counters: Vec<Counter>,
    caps: Vec<Cap>,
    freshness: Option<AttrFile>,
    generation: Option<AttrFile>,
    startup: Option<AttrFile>,
    hook: Option<Box<dyn FnMut() + Send>>,
}

impl std::fmt::Debug for PmCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PmCounters").field("domains", &self.domains).finish_non_exhaustive()
    }
}

/// Opens an optional unitless control file (`freshness`, `generation`, `startup`).
fn open_control(
    files: &BTreeMap<String, PathBuf>,
    name: &'static str,
    warnings: &mut Vec<Warning>,
) -> Option<AttrFile> {
    let path = files.get(name)?;
    match AttrFile::open(path, "pm_counters") {
        Ok(f) => Some(f),
        Err(e) => {
            warnings.push(Warning::new(NAME, format!("{e}; reading without {name}")));
            None
        }
    }
}

/// The value files of one domain.
#[derive(Default)]
struct Files<'a> {
    energy: Option<&'a Path>,
    power: Option<&'a Path>,
}

/// The value files grouped by domain; an unnumbered CPU or accelerator file is shadowed by
/// numbered ones.
fn by_domain(files: &BTreeMap<String, PathBuf>) -> BTreeMap<DomainId, Files<'_>> {
    let numbered_cpu =
        files.keys().any(|n| matches!(classify(n), Some((DomainKind::Package, _, _, true))));
    let numbered_gpu =
        files.keys().any(|n| matches!(classify(n), Some((DomainKind::Gpu, _, _, true))));
    let mut by_domain: BTreeMap<DomainId, Files<'_>> = BTreeMap::new();
    for (name, path) in files {
        let Some((kind, index, q, numbered)) = classify(name) else { continue };
        let shadowed = match kind {
            DomainKind::Package => numbered_cpu && !numbered,
            DomainKind::Gpu => numbered_gpu && !numbered,
            _ => false,
        };
        if shadowed {
            continue;
        }
        let entry = by_domain.entry(DomainId::new(kind, index)).or_default();
        match q {
            Quantity::Energy => entry.energy = Some(path),
            Quantity::Power => entry.power = Some(path),
        }
    }
    by_domain
}

/// Opens a domain's counter: its energy file, else its power file, the first that reads.
fn open_counter(id: DomainId, f: &Files<'_>, warnings: &mut Vec<Warning>) -> Option<Counter> {
    let candidates = [(f.energy, Quantity::Energy), (f.power, Quantity::Power)];
    for (path, quantity) in candidates {
        let Some(path) = path else { continue };
        let unit = match quantity {
            Quantity::Energy => Unit::Joules,
            Quantity::Power => Unit::Watts,
        };
        let checked = AttrFile::open(path, "pm_counters").and_then(|file| {
            let v = read_value(&file, unit)?;
            Ok((file, v.time_us.is_some()))
        });
        match checked {
            Ok((file, stamped)) => return Some(Counter { file, quantity, stamped }),
            Err(e) => warnings
                .push(Warning::unreadable(NAME, format!("{id} not measured from this file: {e}"))),
        }
    }
    None
}

/// The catalog entry of a domain read from `counter`.
fn domain_info(id: DomainId, counter: &Counter, single_package: Option<u32>) -> DomainInfo {
    let file_name = counter.file.path().file_name().and_then(|n| n.to_str()).unwrap_or("?");
    let measurement = match counter.quantity {
        Quantity::Energy => Measurement::Energy(CounterSpec::non_wrapping(1.0)),
        Quantity::Power => Measurement::Power,
    };
    let socket = match id.kind {
        DomainKind::Package => Some(id.index),
        DomainKind::Memory => Some(0),
        DomainKind::Gpu => single_package,
        _ => None,
    };
    DomainInfo {
        id,
        provider: NAME,
        source: format!("pm_counters {file_name}"),
        measurement,
        limits: Vec::new(),
        socket,
        label: None,
    }
}

/// The cap files: `power_cap` for the node, `accelN_power_cap` (else `accel_power_cap`, shared)
/// for each accelerator.
fn caps(files: &BTreeMap<String, PathBuf>, domains: &[DomainInfo]) -> Vec<Cap> {
    let mut caps = Vec::new();
    if let Some(path) = files.get("power_cap")
        && let Some(i) = domains.iter().position(|d| d.id == DomainId::NODE)
    {
        caps.push(Cap { path: path.clone(), domains: vec![i] });
    }
    for (i, d) in domains.iter().enumerate() {
        if d.id.kind != DomainKind::Gpu {
            continue;
        }
        let own = files.get(&format!("accel{}_power_cap", d.id.index));
        if let Some(path) = own.or_else(|| files.get("accel_power_cap")) {
            match caps.iter_mut().find(|c| &c.path == path) {
                Some(c) => c.domains.push(i),
                None => caps.push(Cap { path: path.clone(), domains: vec![i] }),
            }
        }
    }
    caps
}

impl PmCounters {
    /// Opens the counters under `root`. `None` when the directory is absent (not an HPE Cray node)
    /// or holds no usable counter; the warnings say what could not be used.
    pub fn open(root: &Root, topology: &CpuTopology) -> (Option<PmCounters>, Vec<Warning>) {
        let mut warnings = Vec::new();
        let dir = root.path(DIR);
        let entries = match list_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                warnings.push(Warning::new(NAME, e.to_string()));
                return (None, warnings);
            }
        };
        if entries.is_empty() {
            return (None, warnings);
        }
        let files: BTreeMap<String, PathBuf> = entries.into_iter().collect();
        if let Some(path) = files.get("version")
            && let Err(e) = check_version(path)
        {
            warnings.push(Warning::unreadable(NAME, e.to_string()));
            return (None, warnings);
        }

        let single_package = match topology.packages().as_slice() {
            [p] => Some(*p),
            _ => None,
        };
        let mut domains = Vec::new();
        let mut counters = Vec::new();
        for (id, f) in &by_domain(&files) {
            let Some(counter) = open_counter(*id, f, &mut warnings) else { continue };
            domains.push(domain_info(*id, &counter, single_package));
            counters.push(counter);
        }
        if domains.is_empty() {
            warnings.push(Warning::new(
                NAME,
                format!(
                    "{} holds no readable energy or power counter; pm_counters not used",
                    dir.display()
                ),
            ));
            return (None, warnings);
        }
        let caps = caps(&files, &domains);

        let freshness = open_control(&files, "freshness", &mut warnings);
        let generation = open_control(&files, "generation", &mut warnings);
        let startup = open_control(&files, "startup", &mut warnings);
        let mut p =
            PmCounters { domains, counters, caps, freshness, generation, startup, hook: None };
        warnings.extend(p.refresh_limits());
        (Some(p), warnings)
    }

    /// Test seam: `hook` runs in every read attempt, after `freshness` is read the first time and
    /// before the value files are, so a test can change the files mid-read deterministically.
    pub fn set_between_reads_hook(&mut self, hook: Box<dyn FnMut() + Send>) {
        self.hook = Some(hook);
    }

    /// The current restart epoch: `generation` and `startup` folded into one value (0 when neither
    /// file exists).
    fn epoch(&self) -> Result<u64, HwError> {
        let generation = match &self.generation {
            Some(f) => f.read_u64()?,
            None => 0,
        };
        let startup = match &self.startup {
            Some(f) => f.read_u64()?,
            None => 0,
        };
        Ok(generation.rotate_left(32) ^ startup)
    }

    fn freshness(&self) -> Result<Option<u64>, HwError> {
        self.freshness.as_ref().map(AttrFile::read_u64).transpose()
    }

    /// One attempt: what it found.
    fn attempt(&mut self, out: &mut [Reading]) -> Result<Attempt, HwError> {
        let before = self.freshness()?;
        if let Some(hook) = &mut self.hook {
            hook();
        }
        let epoch = self.epoch()?;
        let mut torn = false;
        for (counter, slot) in self.counters.iter().zip(out.iter_mut()) {
            let unit = match counter.quantity {
                Quantity::Energy => Unit::Joules,
                Quantity::Power => Unit::Watts,
            };
            let value = read_value(&counter.file, unit).and_then(|v| match v.time_us {
                None if counter.stamped => Err(HwError::malformed(
                    counter.file.path(),
                    "the timestamp is missing (the file was caught while it was rewritten?)",
                )),
                _ => Ok(v),
            });
            *slot = match (value, counter.quantity) {
                (Ok(v), Quantity::Energy) => {
                    Reading::Energy(RawEnergy { ticks: v.value, epoch, hw_time_us: v.time_us })
                }
                (Ok(v), Quantity::Power) => Reading::Power(v.value as f64),
                (Err(e), _) => {
                    // Empty or cut short: a rewrite in progress, most likely.
                    torn |= matches!(e, HwError::Vanished { .. } | HwError::Malformed { .. });
                    Reading::Failed(e)
                }
            };
        }
        let after = self.freshness()?;
        Ok(if before != after {
            Attempt::Moved
        } else if torn {
            Attempt::Torn
        } else {
            Attempt::Consistent
        })
    }
}

impl Provider for PmCounters {
    fn name(&self) -> &'static str {
        NAME
    }

    fn domains(&self) -> &[DomainInfo] {
        &self.domains
    }

    fn refresh(&self) -> Refresh {
        Refresh::Stepped { period: UPDATE_PERIOD }
    }

    fn reopen_replaced(&mut self) -> Vec<usize> {
        // The controller's files are replaced together (a directory written again): its
        // freshness and epoch files first, then the values.
        for f in
            [&mut self.freshness, &mut self.generation, &mut self.startup].into_iter().flatten()
        {
            f.revalidate();
        }
        file::reopen_replaced(self.counters.iter_mut().map(|c| &mut c.file))
    }

    fn read(&mut self, out: &mut [Reading]) {
        let mut pause = RETRY_PAUSE;
        for attempt in 1..=MAX_ATTEMPTS {
            match self.attempt(out) {
                Ok(Attempt::Consistent) => return,
                Ok(Attempt::Moved) => {}
                // The failed files keep their errors if they are still so at the last attempt.
                Ok(Attempt::Torn) if attempt == MAX_ATTEMPTS => return,
                Ok(Attempt::Torn) => {
                    std::thread::sleep(pause);
                    pause *= 2;
                }
                Err(e) => {
                    for slot in out.iter_mut() {
                        *slot = Reading::Failed(HwError::duplicate(&e));
                    }
                    return;
                }
            }
        }
        let path = self.freshness.as_ref().map(|f| f.path().to_path_buf()).unwrap_or_default();
        for slot in out.iter_mut() {
            *slot =
                Reading::Failed(HwError::Unstable { path: path.clone(), attempts: MAX_ATTEMPTS });
        }
    }

    fn refresh_limits(&mut self) -> Vec<Warning> {
        let mut warnings = Vec::new();
        for cap in &self.caps {
            let limit = match read_value_once(&cap.path, Unit::Watts) {
                Ok(v) => PowerLimit {
                    name: "cap".to_string(),
                    limit_watts: (v.value > 0).then_some(v.value as f64),
                    locked: true,
                    ..PowerLimit::default()
                },
                Err(e) => {
                    warnings.push(Warning::new(NAME, format!("{e}; keeping the last known cap")));
                    continue;
                }
            };
            for &i in &cap.domains {
                if let Some(d) = self.domains.get_mut(i) {
                    match d.limits.iter_mut().find(|l| l.name == "cap") {
                        Some(l) => *l = limit.clone(),
                        None => d.limits.push(limit.clone()),
                    }
                }
            }
        }
        warnings
    }
}

/// Probes `/sys/cray/pm_counters`.
pub fn probe(ctx: &ProbeContext<'_>) -> Probe {
    Probe::opened(PmCounters::open(ctx.root, ctx.topology), || {
        format!("no {} (not an HPE Cray EX node)", ctx.root.path(DIR).display())
    })
}

#[cfg(test)]
mod tests;
