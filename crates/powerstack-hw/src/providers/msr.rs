//! RAPL model-specific registers, read through `/dev/cpu/N/msr_safe` or `/dev/cpu/N/msr`.
//!
//! Register access goes through [`MsrIo`], so tests and the simulator can replace the device files
//! with a register model ([`probe_with`]). [`DevMsr`] is the real implementation: `pread`/`pwrite`
//! of 8 bytes at offset = register address.
//!
//! - Intel (family 6): units 0x606; package 0x611; DRAM 0x619 (a fixed 2^-16 J unit on server
//!   models, see [`dram_fixed_unit`]), PP0 0x639 and platform 0x64D (package 0) when readable and
//!   non-zero at probe. Limits: 0x610/0x614
//!   (package) and 0x618/0x61C (DRAM), not read from a file image (registers overlap there).
//! - AMD/Hygon (family ≥ 0x17): units 0xC0010299; package 0xC001029B; core energy 0xC001029A is per
//!   physical core, so a package's core domain is the sum over its cores, each extended separately.
//!
//! Energy counters are the low 32 bits of their register and wrap at 2^32 ticks.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use powerstack_model::cpulist::format_cpulist;
use powerstack_model::{
    CounterSpec, DomainId, DomainInfo, DomainKind, LimitWrite, Measurement, PowerLimit, RawEnergy,
    TimeWindows,
};

use crate::error::{HwError, Warning};
use crate::provider::{Probe, ProbeContext, Provider, Reading};
use crate::root::Root;
use crate::topology::{CpuTopology, Vendor};

/// The provider's name.
pub const NAME: &str = "msr";

/// The hint given with permission errors on the msr device.
const MSR_HINT: &str =
    "msr (load the msr module and run as root, or use msr-safe with an allowlist)";

/// Intel `MSR_RAPL_POWER_UNIT`.
pub const INTEL_RAPL_POWER_UNIT: u32 = 0x606;
/// Intel `MSR_PKG_POWER_LIMIT`.
pub const INTEL_PKG_POWER_LIMIT: u32 = 0x610;
/// Intel `MSR_PKG_ENERGY_STATUS`.
pub const INTEL_PKG_ENERGY_STATUS: u32 = 0x611;
/// Intel `MSR_PKG_POWER_INFO`.
pub const INTEL_PKG_POWER_INFO: u32 = 0x614;
/// Intel `MSR_DRAM_POWER_LIMIT`.
pub const INTEL_DRAM_POWER_LIMIT: u32 = 0x618;
/// Intel `MSR_DRAM_ENERGY_STATUS`.
pub const INTEL_DRAM_ENERGY_STATUS: u32 = 0x619;
/// Intel `MSR_DRAM_POWER_INFO`.
pub const INTEL_DRAM_POWER_INFO: u32 = 0x61C;
/// Intel `MSR_PP0_ENERGY_STATUS` (cores).
pub const INTEL_PP0_ENERGY_STATUS: u32 = 0x639;
/// Intel `MSR_PLATFORM_ENERGY_STATUS` (psys).
pub const INTEL_PLATFORM_ENERGY_STATUS: u32 = 0x64D;
/// AMD `MSR_RAPL_PWR_UNIT`.
pub const AMD_RAPL_POWER_UNIT: u32 = 0xC001_0299;
/// AMD `MSR_CORE_ENERGY_STAT` (per physical core).
pub const AMD_CORE_ENERGY_STATUS: u32 = 0xC001_029A;
/// AMD `MSR_PKG_ENERGY_STAT`.
pub const AMD_PKG_ENERGY_STATUS: u32 = 0xC001_029B;

/// The modulus of a 32-bit RAPL energy counter.
const WRAP_32: u64 = 1 << 32;

/// Register-level access to MSRs, so tests can replace the device files with a full register model.
pub trait MsrIo: Send {
    /// Reads the 64-bit register `addr` on logical CPU `cpu`.
    fn read(&mut self, cpu: u32, addr: u32) -> Result<u64, HwError>;
    /// Writes the 64-bit register `addr` on logical CPU `cpu`.
    fn write(&mut self, cpu: u32, addr: u32, value: u64) -> Result<(), HwError>;
    /// Whether the registers are backed by plain files (a simulated image) rather than the msr
    /// driver: in a file, registers closer than 8 bytes overlap, so only the energy and unit
    /// registers are meaningful.
    fn is_file_image(&self) -> bool {
        false
    }
}

// ---------------------------------------------------------------------------------------------
// Pure decoding.

/// The RAPL units of one package (`MSR_RAPL_POWER_UNIT`, same layout on AMD).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RaplUnits {
    /// Watts per power-field unit: 1/2^(bits 3:0).
    pub watts_per_unit: f64,
    /// Joules per energy-counter tick: 1/2^(bits 12:8).
    pub joules_per_tick: f64,
    /// Seconds per time unit: 1/2^(bits 19:16).
    pub seconds_per_unit: f64,
}

/// Decodes a RAPL power-unit register.
pub fn decode_units(raw: u64) -> RaplUnits {
    let inv_pow2 = |bits: u64| 1.0 / (1u64 << bits) as f64;
    RaplUnits {
        watts_per_unit: inv_pow2(raw & 0xF),
        joules_per_tick: inv_pow2((raw >> 8) & 0x1F),
        seconds_per_unit: inv_pow2((raw >> 16) & 0xF),
    }
}

/// Intel server models whose DRAM energy counter uses a fixed 2^-16 J unit instead of the unit in
/// 0x606 (Haswell-X, Broadwell-X, Broadwell-DE, Skylake-X, Ice Lake-X/D, Xeon Phi, Sapphire...).
pub const DRAM_FIXED_UNIT_MODELS: [u32; 8] = [0x3F, 0x4F, 0x56, 0x55, 0x6A, 0x6C, 0x57, 0x85];

/// The DRAM energy unit in joules per tick on Intel `model`, when it is fixed rather than the
/// package's energy unit.
pub fn dram_fixed_unit(model: u32) -> Option<f64> {
    DRAM_FIXED_UNIT_MODELS.contains(&model).then_some(1.0 / 65536.0)
}

/// Decodes a 7-bit RAPL time-window field (Y = bits 4:0, Z = bits 6:5) into seconds:
/// 2^Y × (1 + Z/4) × time unit.
pub fn decode_time_window(field: u64, seconds_per_unit: f64) -> f64 {
    let y = (field & 0x1F) as i32;
    let z = ((field >> 5) & 0x3) as f64;
    2f64.powi(y) * (1.0 + z / 4.0) * seconds_per_unit
}

/// Encodes a time window in seconds into the 7-bit RAPL field, rounding down to the nearest
/// representable window as the kernel does (Y = ⌊log2 v⌋, Z = ⌊4 (v / 2^Y − 1)⌋, v in time units).
/// Windows below one time unit give the smallest field (0); windows beyond the largest give the
/// largest (Y = 31, Z = 3).
pub fn encode_time_window(seconds: f64, seconds_per_unit: f64) -> u64 {
    if !(seconds.is_finite() && seconds_per_unit > 0.0) {
        return 0;
    }
    let units = seconds / seconds_per_unit;
    if units < 1.0 {
        return 0;
    }
    if units >= 2f64.powi(31) * 1.75 {
        return 31 | (3 << 5);
    }
    let y = units.log2().floor() as i32;
    // Guard log2 rounding on exact powers of two.
    let y = if 2f64.powi(y) > units { y - 1 } else { y };
    let y = y.clamp(0, 31);
    let z = ((4.0 * (units / 2f64.powi(y) - 1.0)).floor() as i64).clamp(0, 3) as u64;
    y as u64 | (z << 5)
}

/// One power limit of a RAPL limit register (PL1: bits 31:0; PL2: bits 63:32), decoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RaplLimit {
    /// The limit, in watts (bits 14:0 × power unit).
    pub limit_watts: f64,
    /// The enable bit (15).
    pub enabled: bool,
    /// The clamp bit (16): the limit may take the package below the requested P-state.
    pub clamp: bool,
    /// The averaging window, in seconds (bits 23:17).
    pub time_window_s: f64,
}

/// Decodes one 32-bit half of a RAPL power-limit register.
pub fn decode_limit_half(half: u32, units: &RaplUnits) -> RaplLimit {
    let half = u64::from(half);
    RaplLimit {
        limit_watts: (half & 0x7FFF) as f64 * units.watts_per_unit,
        enabled: half & (1 << 15) != 0,
        clamp: half & (1 << 16) != 0,
        time_window_s: decode_time_window((half >> 17) & 0x7F, units.seconds_per_unit),
    }
}

/// Sets the limit, and optionally the enable bit and time window, in one 32-bit half of a RAPL
/// power-limit register (the PL1 layout), keeping every other bit. The watts are rounded to the
/// power unit; `None` when they do not fit the 15-bit field.
pub fn encode_limit_half(
    half: u32,
    limit_watts: f64,
    time_window_s: Option<f64>,
    enabled: Option<bool>,
    units: &RaplUnits,
) -> Option<u32> {
    if !(limit_watts.is_finite() && limit_watts >= 0.0 && units.watts_per_unit > 0.0) {
        return None;
    }
    let field = (limit_watts / units.watts_per_unit).round();
    if field > 0x7FFF as f64 {
        return None;
    }
    let mut h = (u64::from(half) & !0x7FFF) | field as u64;
    if let Some(on) = enabled {
        // Enable (15) and clamp (16) together, as the kernel does for a limit it enables.
        h = if on { h | (1 << 15) | (1 << 16) } else { h & !(1 << 15) };
    }
    if let Some(window) = time_window_s {
        h = (h & !(0x7F << 17)) | (encode_time_window(window, units.seconds_per_unit) << 17);
    }
    Some(h as u32)
}

/// `MSR_PKG_POWER_LIMIT` (0x610), decoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PkgPowerLimit {
    /// PL1, the long-term limit (bits 23:0).
    pub pl1: RaplLimit,
    /// PL2, the short-term limit (bits 55:32).
    pub pl2: RaplLimit,
    /// The lock bit (63): the register cannot be written until reset.
    pub locked: bool,
}

/// Decodes `MSR_PKG_POWER_LIMIT`.
pub fn decode_pkg_power_limit(raw: u64, units: &RaplUnits) -> PkgPowerLimit {
    PkgPowerLimit {
        pl1: decode_limit_half(raw as u32, units),
        pl2: decode_limit_half((raw >> 32) as u32, units),
        locked: raw & (1 << 63) != 0,
    }
}

/// `MSR_DRAM_POWER_LIMIT` (0x618), decoded: the PL1 layout, lock bit 31.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DramPowerLimit {
    /// The limit.
    pub limit: RaplLimit,
    /// The lock bit (31).
    pub locked: bool,
}

/// Decodes `MSR_DRAM_POWER_LIMIT`.
pub fn decode_dram_power_limit(raw: u64, units: &RaplUnits) -> DramPowerLimit {
    DramPowerLimit { limit: decode_limit_half(raw as u32, units), locked: raw & (1 << 31) != 0 }
}

/// A power-info register (`MSR_PKG_POWER_INFO` 0x614, `MSR_DRAM_POWER_INFO` 0x61C), decoded. Zero
/// fields mean unknown.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct PowerInfo {
    /// Thermal design power (bits 14:0), in watts.
    pub tdp_watts: Option<f64>,
    /// The smallest settable limit (bits 30:16), in watts.
    pub min_watts: Option<f64>,
    /// The largest settable limit (bits 46:32), in watts.
    pub max_watts: Option<f64>,
    /// The largest time window (bits 53:48: Y in 52:48, Z in bit 53, as the kernel reads it), in
    /// seconds.
    pub max_time_window_s: Option<f64>,
}

/// Decodes a power-info register.
pub fn decode_power_info(raw: u64, units: &RaplUnits) -> PowerInfo {
    let field = |shift: u32| {
        let v = (raw >> shift) & 0x7FFF;
        (v != 0).then_some(v as f64 * units.watts_per_unit)
    };
    let window = (raw >> 48) & 0x3F;
    PowerInfo {
        tdp_watts: field(0),
        min_watts: field(16),
        max_watts: field(32),
        max_time_window_s: (window != 0)
            .then(|| decode_time_window(window, units.seconds_per_unit)),
    }
}

/// Builds the catalog limit for one decoded RAPL limit and its info register.
fn power_limit(
    name: &str,
    limit: &RaplLimit,
    info: &PowerInfo,
    units: &RaplUnits,
    locked: bool,
) -> PowerLimit {
    PowerLimit {
        name: name.to_string(),
        limit_watts: Some(limit.limit_watts),
        min_watts: info.min_watts,
        max_watts: info.max_watts.or(info.tdp_watts),
        default_watts: None,
        time_window_s: Some(limit.time_window_s),
        time_windows: Some(TimeWindows::rapl(units.seconds_per_unit, info.max_time_window_s)),
        enabled: Some(limit.enabled),
        locked,
    }
}

// ---------------------------------------------------------------------------------------------
// Device access.

/// One opened msr device.
#[derive(Debug)]
struct Device {
    file: File,
    path: PathBuf,
}

/// [`MsrIo`] over `/dev/cpu/N/msr_safe` (preferred) or `/dev/cpu/N/msr` under a root. Devices are
/// opened on first use and kept open.
#[derive(Debug)]
pub struct DevMsr {
    dev_cpu: PathBuf,
    open: HashMap<u32, Device>,
    cpus: Vec<u32>,
    file_image: bool,
}

impl DevMsr {
    /// Finds the msr devices under `root` (`/dev/cpu/N/msr_safe` or `/dev/cpu/N/msr`). Nothing is
    /// opened yet.
    pub fn new(root: &Root) -> DevMsr {
        let dev_cpu = root.path("/dev/cpu");
        let mut cpus = Vec::new();
        let mut file_image = None;
        for (name, path) in crate::file::list_dir(&dev_cpu).unwrap_or_default() {
            let Ok(cpu) = name.parse::<u32>() else { continue };
            let found =
                ["msr_safe", "msr"].iter().find_map(|f| std::fs::metadata(path.join(f)).ok());
            if let Some(meta) = found {
                cpus.push(cpu);
                file_image.get_or_insert(meta.file_type().is_file());
            }
        }
        cpus.sort_unstable();
        DevMsr { dev_cpu, open: HashMap::new(), cpus, file_image: file_image.unwrap_or(false) }
    }

    /// The CPUs that have an msr device, sorted.
    pub fn cpus(&self) -> &[u32] {
        &self.cpus
    }

    /// Opens the device of `cpu`: `msr_safe` if it is there, else `msr`; read-write when allowed,
    /// else read-only (writes then fail).
    fn device(&mut self, cpu: u32) -> Result<&Device, HwError> {
        use std::collections::hash_map::Entry;
        let slot = match self.open.entry(cpu) {
            Entry::Occupied(o) => return Ok(o.into_mut()),
            Entry::Vacant(v) => v,
        };
        let dir = self.dev_cpu.join(cpu.to_string());
        let safe = dir.join("msr_safe");
        let dev = match open_rw_or_ro(&safe) {
            Ok(file) => Device { file, path: safe },
            Err(safe_err) => {
                let plain = dir.join("msr");
                match open_rw_or_ro(&plain) {
                    Ok(file) => Device { file, path: plain },
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let path = if safe_err.kind() == std::io::ErrorKind::NotFound {
                            plain
                        } else {
                            safe
                        };
                        return Err(HwError::from_io(&path, safe_err, MSR_HINT));
                    }
                    Err(e) => return Err(HwError::from_io(&plain, e, MSR_HINT)),
                }
            }
        };
        Ok(slot.insert(dev))
    }
}

fn open_rw_or_ro(path: &Path) -> std::io::Result<File> {
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(e),
        Err(_) => File::open(path),
    }
}

impl MsrIo for DevMsr {
    fn read(&mut self, cpu: u32, addr: u32) -> Result<u64, HwError> {
        let dev = self.device(cpu)?;
        let mut buf = [0u8; 8];
        let n = dev
            .file
            .read_at(&mut buf, u64::from(addr))
            .map_err(|e| HwError::from_io(&dev.path, e, MSR_HINT))?;
        if n != buf.len() {
            return Err(HwError::malformed(
                &dev.path,
                format!("short read of register {addr:#x}: {n} of 8 bytes"),
            ));
        }
        Ok(u64::from_le_bytes(buf))
    }

    fn write(&mut self, cpu: u32, addr: u32, value: u64) -> Result<(), HwError> {
        let dev = self.device(cpu)?;
        let n = dev
            .file
            .write_at(&value.to_le_bytes(), u64::from(addr))
            .map_err(|e| HwError::from_io(&dev.path, e, MSR_HINT))?;
        if n != 8 {
            return Err(HwError::malformed(
                &dev.path,
                format!("short write of register {addr:#x}: {n} of 8 bytes"),
            ));
        }
        Ok(())
    }

    fn is_file_image(&self) -> bool {
        self.file_image
    }
}

// ---------------------------------------------------------------------------------------------
// The provider.

/// One physical core's energy counter, extended on its own (AMD core energy).
#[derive(Debug)]
struct CoreCounter {
    cpu: u32,
    last_raw: u32,
    total_ticks: u64,
}

/// How one domain is read.
#[derive(Debug)]
enum Source {
    /// The low 32 bits of one register.
    Register { cpu: u32, addr: u32 },
    /// The sum of per-core counters, each extended separately: a non-wrapping tick count.
    CoreSum(Vec<CoreCounter>),
}

/// Which limit registers a domain has.
#[derive(Clone, Copy, Debug)]
enum LimitRegs {
    Package { cpu: u32, units: RaplUnits },
    Dram { cpu: u32, units: RaplUnits },
}

struct Msr {
    io: Box<dyn MsrIo>,
    domains: Vec<DomainInfo>,
    sources: Vec<Source>,
    limit_regs: Vec<Option<LimitRegs>>,
}

impl Provider for Msr {
    fn name(&self) -> &'static str {
        NAME
    }

    fn domains(&self) -> &[DomainInfo] {
        &self.domains
    }

    fn read(&mut self, out: &mut [Reading]) {
        let io = &mut self.io;
        for (slot, source) in out.iter_mut().zip(self.sources.iter_mut()) {
            *slot = match read_source(io.as_mut(), source) {
                Ok(ticks) => Reading::Energy(RawEnergy::new(ticks)),
                Err(e) => Reading::Failed(e),
            };
        }
    }

    fn write_limit(&mut self, index: usize, write: &LimitWrite) -> Result<(), HwError> {
        let Some(info) = self.domains.get(index) else {
            return Err(HwError::Unsupported { provider: NAME, what: format!("domain #{index}") });
        };
        let what = format!("{} {}", info.id, write.constraint);
        let Some(regs) = self.limit_regs.get(index).copied().flatten() else {
            let why = if self.io.is_file_image() {
                "its limit registers cannot be read from a file image"
            } else {
                "it has no RAPL limit register"
            };
            return Err(HwError::Unsupported { provider: NAME, what: format!("{what} ({why})") });
        };
        let (cpu, addr, units, upper, lock_bit) = match (regs, write.constraint.as_str()) {
            (LimitRegs::Package { cpu, units }, "long_term") => {
                (cpu, INTEL_PKG_POWER_LIMIT, units, false, 63)
            }
            (LimitRegs::Package { cpu, units }, "short_term") => {
                (cpu, INTEL_PKG_POWER_LIMIT, units, true, 63)
            }
            (LimitRegs::Dram { cpu, units }, "long_term") => {
                (cpu, INTEL_DRAM_POWER_LIMIT, units, false, 31)
            }
            _ => return Err(HwError::Unsupported { provider: NAME, what }),
        };
        let raw = self.io.read(cpu, addr)?;
        if raw & (1u64 << lock_bit) != 0 {
            return Err(HwError::Locked {
                what,
                why: format!("lock bit {lock_bit} of MSR {addr:#x} is set"),
            });
        }
        let half = if upper { (raw >> 32) as u32 } else { raw as u32 };
        let Some(new_half) =
            encode_limit_half(half, write.limit_watts, write.time_window_s, write.enabled, &units)
        else {
            return Err(HwError::Refused {
                what,
                value: format!("{} W", write.limit_watts),
                detail: format!(
                    "does not fit the 15-bit field in units of {} W",
                    units.watts_per_unit
                ),
            });
        };
        let new = if upper {
            (raw & 0xFFFF_FFFF) | (u64::from(new_half) << 32)
        } else {
            (raw & !0xFFFF_FFFF) | u64::from(new_half)
        };
        self.io.write(cpu, addr, new)?;
        let limits = read_limits(self.io.as_mut(), regs)?;
        self.domains[index].limits = limits;
        Ok(())
    }

    fn refresh_limits(&mut self) -> Vec<Warning> {
        let mut warnings = Vec::new();
        for (info, regs) in self.domains.iter_mut().zip(&self.limit_regs) {
            let Some(regs) = regs else { continue };
            match read_limits(self.io.as_mut(), *regs) {
                Ok(limits) => info.limits = limits,
                Err(e) => warnings.push(Warning::new(
                    NAME,
                    format!(
                        "{}: limits not refreshed, keeping the last known values: {e}",
                        info.id
                    ),
                )),
            }
        }
        warnings
    }
}

fn read_source(io: &mut dyn MsrIo, source: &mut Source) -> Result<u64, HwError> {
    match source {
        Source::Register { cpu, addr } => Ok(io.read(*cpu, *addr)? & (WRAP_32 - 1)),
        Source::CoreSum(cores) => {
            let mut first_err = None;
            let mut sum = 0u64;
            for core in cores.iter_mut() {
                match io.read(core.cpu, AMD_CORE_ENERGY_STATUS) {
                    Ok(raw) => {
                        let raw = raw as u32;
                        core.total_ticks = core
                            .total_ticks
                            .wrapping_add(u64::from(raw.wrapping_sub(core.last_raw)));
                        core.last_raw = raw;
                    }
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
                sum = sum.wrapping_add(core.total_ticks);
            }
            match first_err {
                Some(e) => Err(e),
                None => Ok(sum),
            }
        }
    }
}

fn read_limits(io: &mut dyn MsrIo, regs: LimitRegs) -> Result<Vec<PowerLimit>, HwError> {
    match regs {
        LimitRegs::Package { cpu, units } => {
            let limit = decode_pkg_power_limit(io.read(cpu, INTEL_PKG_POWER_LIMIT)?, &units);
            let info = decode_power_info(io.read(cpu, INTEL_PKG_POWER_INFO)?, &units);
            Ok(vec![
                power_limit("long_term", &limit.pl1, &info, &units, limit.locked),
                power_limit("short_term", &limit.pl2, &info, &units, limit.locked),
            ])
        }
        LimitRegs::Dram { cpu, units } => {
            let limit = decode_dram_power_limit(io.read(cpu, INTEL_DRAM_POWER_LIMIT)?, &units);
            let info = decode_power_info(io.read(cpu, INTEL_DRAM_POWER_INFO)?, &units);
            Ok(vec![power_limit("long_term", &limit.limit, &info, &units, limit.locked)])
        }
    }
}

/// The CPU vendor as far as RAPL MSRs go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rapl {
    Intel { model: u32 },
    Amd,
}

/// Probes `/dev/cpu/N/msr_safe` and `/dev/cpu/N/msr`.
pub fn probe(ctx: &ProbeContext<'_>) -> Probe {
    let dev = DevMsr::new(ctx.root);
    if dev.cpus().is_empty() {
        return Probe::absent(format!(
            "no msr device under {}: run `modprobe msr` (and read as root) or install msr-safe with an allowlist for the RAPL registers",
            ctx.root.path("/dev/cpu").display()
        ));
    }
    probe_with(ctx.topology, Box::new(dev))
}

/// Builds the provider over any register access: the real devices ([`probe`]), a simulator's
/// register model, or a test's.
pub fn probe_with(topology: &CpuTopology, mut io: Box<dyn MsrIo>) -> Probe {
    let mut warnings = Vec::new();
    let rapl = match &topology.model {
        Some(m) if m.vendor == Vendor::Intel && m.family == 6 => Rapl::Intel { model: m.model },
        Some(m) if m.vendor == Vendor::Amd && m.family >= 0x17 => Rapl::Amd,
        Some(m) => {
            let vendor = match &m.vendor {
                Vendor::Intel => "Intel",
                Vendor::Amd => "AMD",
                Vendor::Other(v) => v.as_str(),
            };
            return Probe::none(vec![Warning::new(
                NAME,
                format!(
                    "no known RAPL registers on {vendor} family {:#x} model {:#x} ({}); use powercap instead",
                    m.family, m.model, m.name
                ),
            )]);
        }
        None => {
            return Probe::none(vec![Warning::new(
                NAME,
                "CPU model unknown (/proc/cpuinfo unreadable), so the RAPL registers are unknown; use powercap instead",
            )]);
        }
    };
    let packages = topology.packages();
    let file_image = io.is_file_image();
    if file_image && rapl != Rapl::Amd {
        let cpu = packages.first().and_then(|&p| topology.lead_cpu(p)).unwrap_or(0);
        warnings.push(Warning::new(
            NAME,
            format!(
                "cpu{cpu} msr is a regular file (a simulated image): power-info and limit registers overlap in a file and are not read; energy and units are"
            ),
        ));
    }
    let mut found = Found::default();
    for &pkg in &packages {
        let Some(lead) = topology.lead_cpu(pkg) else {
            warnings.push(Warning::new(
                NAME,
                format!("package {pkg} has no online CPU to read its registers on; skipped"),
            ));
            continue;
        };
        match rapl {
            Rapl::Intel { model } => probe_intel_package(
                io.as_mut(),
                pkg,
                lead,
                model,
                file_image,
                &mut found,
                &mut warnings,
            ),
            Rapl::Amd => probe_amd_package(
                io.as_mut(),
                topology,
                pkg,
                lead,
                file_image,
                &mut found,
                &mut warnings,
            ),
        }
    }
    if found.0.is_empty() {
        if packages.is_empty() {
            warnings.push(Warning::new(
                NAME,
                "no CPU packages found in the topology; nothing to read RAPL registers on",
            ));
        }
        return Probe::none(warnings);
    }
    found.0.sort_by_key(|(info, _, _)| info.id);
    let mut domains = Vec::with_capacity(found.0.len());
    let mut sources = Vec::with_capacity(found.0.len());
    let mut limit_regs = Vec::with_capacity(found.0.len());
    for (info, source, regs) in found.0 {
        domains.push(info);
        sources.push(source);
        limit_regs.push(regs);
    }
    Probe {
        provider: Some(Box::new(Msr { io, domains, sources, limit_regs })),
        warnings,
        absent: None,
    }
}

/// Domains found so far, with how to read them and their limit registers.
#[derive(Default)]
struct Found(Vec<(DomainInfo, Source, Option<LimitRegs>)>);

impl Found {
    fn push(&mut self, info: DomainInfo, source: Source, limits: Option<LimitRegs>) {
        self.0.push((info, source, limits));
    }
}

fn energy_domain(id: DomainId, socket: u32, source: String, spec: CounterSpec) -> DomainInfo {
    DomainInfo {
        id,
        provider: NAME,
        source,
        measurement: Measurement::Energy(spec),
        limits: Vec::new(),
        socket: (!id.kind.is_node_level()).then_some(socket),
        label: None,
    }
}

fn wrapping_32(joules_per_tick: f64) -> CounterSpec {
    CounterSpec { joules_per_tick, wrap_ticks: Some(WRAP_32) }
}

fn probe_intel_package(
    io: &mut dyn MsrIo,
    pkg: u32,
    cpu: u32,
    model: u32,
    file_image: bool,
    found: &mut Found,
    warnings: &mut Vec<Warning>,
) {
    let units = match io.read(cpu, INTEL_RAPL_POWER_UNIT) {
        Ok(raw) => decode_units(raw),
        Err(e) => {
            warnings.push(Warning::new(
                NAME,
                format!("package {pkg} skipped: units register 0x606: {e}"),
            ));
            return;
        }
    };
    let src = |addr: u32| format!("cpu{cpu} msr {addr:#x}");
    let with_limits = |regs: LimitRegs,
                       io: &mut dyn MsrIo,
                       info: &mut DomainInfo,
                       warnings: &mut Vec<Warning>| {
        if file_image {
            return None;
        }
        match read_limits(io, regs) {
            Ok(limits) => {
                info.limits = limits;
                Some(regs)
            }
            Err(e) => {
                warnings.push(Warning::new(NAME, format!("{}: limits not reported: {e}", info.id)));
                None
            }
        }
    };

    // Package.
    match io.read(cpu, INTEL_PKG_ENERGY_STATUS) {
        Ok(_) => {
            let id = DomainId::new(DomainKind::Package, pkg);
            let mut info = energy_domain(
                id,
                pkg,
                src(INTEL_PKG_ENERGY_STATUS),
                wrapping_32(units.joules_per_tick),
            );
            let regs = with_limits(LimitRegs::Package { cpu, units }, io, &mut info, warnings);
            found.push(info, Source::Register { cpu, addr: INTEL_PKG_ENERGY_STATUS }, regs);
        }
        Err(e) => warnings
            .push(Warning::unreadable(NAME, format!("package {pkg} energy (0x611) not read: {e}"))),
    }

    // DRAM: on servers. Where there is none the register faults (EIO) or stays at 0; a counter
    // that has run since reset is never exactly 0.
    if matches!(io.read(cpu, INTEL_DRAM_ENERGY_STATUS), Ok(v) if v & (WRAP_32 - 1) != 0) {
        let unit = dram_fixed_unit(model).unwrap_or(units.joules_per_tick);
        let id = DomainId::new(DomainKind::Memory, pkg);
        let mut info = energy_domain(id, pkg, src(INTEL_DRAM_ENERGY_STATUS), wrapping_32(unit));
        let regs = with_limits(LimitRegs::Dram { cpu, units }, io, &mut info, warnings);
        found.push(info, Source::Register { cpu, addr: INTEL_DRAM_ENERGY_STATUS }, regs);
    }

    // PP0 (cores) and, on package 0, the platform: only when counting.
    let mut optional = vec![(DomainKind::Core, INTEL_PP0_ENERGY_STATUS)];
    if pkg == 0 {
        optional.push((DomainKind::Platform, INTEL_PLATFORM_ENERGY_STATUS));
    }
    for (kind, addr) in optional {
        if matches!(io.read(cpu, addr), Ok(v) if v & (WRAP_32 - 1) != 0) {
            let index = if kind.is_node_level() { 0 } else { pkg };
            let info = energy_domain(
                DomainId::new(kind, index),
                pkg,
                src(addr),
                wrapping_32(units.joules_per_tick),
            );
            found.push(info, Source::Register { cpu, addr }, None);
        }
    }
}

fn probe_amd_package(
    io: &mut dyn MsrIo,
    topology: &CpuTopology,
    pkg: u32,
    lead: u32,
    file_image: bool,
    found: &mut Found,
    warnings: &mut Vec<Warning>,
) {
    let units = match io.read(lead, AMD_RAPL_POWER_UNIT) {
        Ok(raw) => decode_units(raw),
        Err(e) => {
            warnings.push(Warning::new(
                NAME,
                format!("package {pkg} skipped: units register 0xc0010299: {e}"),
            ));
            return;
        }
    };
    match io.read(lead, AMD_PKG_ENERGY_STATUS) {
        Ok(_) => {
            let info = energy_domain(
                DomainId::new(DomainKind::Package, pkg),
                pkg,
                format!("cpu{lead} msr {AMD_PKG_ENERGY_STATUS:#x}"),
                wrapping_32(units.joules_per_tick),
            );
            found.push(info, Source::Register { cpu: lead, addr: AMD_PKG_ENERGY_STATUS }, None);
        }
        Err(e) => warnings.push(Warning::new(
            NAME,
            format!("package {pkg} energy ({AMD_PKG_ENERGY_STATUS:#x}) not read: {e}"),
        )),
    }

    if file_image {
        // 0xC0010299, 0xC001029A and 0xC001029B are one byte apart: in a file image the core
        // register overlaps the other two and holds no meaningful value.
        warnings.push(Warning::new(
            NAME,
            format!(
                "cpu{lead} msr is a regular file (a simulated image): the core energy register {AMD_CORE_ENERGY_STATUS:#x} overlaps its neighbours in a file and is not read; package energy is"
            ),
        ));
        return;
    }

    // One online CPU per physical core: the lowest-numbered one.
    let mut per_core: BTreeMap<(u32, u32), u32> = BTreeMap::new();
    for c in topology.online_of(pkg) {
        per_core.entry(c.core_key()).and_modify(|cpu| *cpu = (*cpu).min(c.id)).or_insert(c.id);
    }
    let mut cores = Vec::new();
    let mut failed = Vec::new();
    for &cpu in per_core.values() {
        match io.read(cpu, AMD_CORE_ENERGY_STATUS) {
            Ok(raw) => cores.push(CoreCounter {
                cpu,
                last_raw: raw as u32,
                total_ticks: u64::from(raw as u32),
            }),
            Err(e) => failed.push((cpu, e)),
        }
    }
    if let Some((cpu, e)) = failed.first() {
        warnings.push(Warning::new(
            NAME,
            format!(
                "core-{pkg}: core energy unreadable on {} of {} cores (first: cpu{cpu}: {e}); not reported",
                failed.len(),
                per_core.len()
            ),
        ));
        return;
    }
    if cores.is_empty() {
        return;
    }
    let cpus: Vec<u32> = cores.iter().map(|c| c.cpu).collect();
    let info = energy_domain(
        DomainId::new(DomainKind::Core, pkg),
        pkg,
        format!(
            "cpus {} msr {AMD_CORE_ENERGY_STATUS:#x} (sum over {} cores)",
            format_cpulist(&cpus),
            cpus.len()
        ),
        CounterSpec::non_wrapping(units.joules_per_tick),
    );
    found.push(info, Source::CoreSum(cores), None);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Skylake-SP's 0x606: power 1/8 W, energy 2^-14 J, time 2^-10 s.
    const SKX_UNITS: u64 = 0x000A_0E03;

    #[test]
    fn units_decode_from_their_bit_fields() {
        let u = decode_units(SKX_UNITS);
        assert_eq!(u.watts_per_unit, 0.125);
        assert_eq!(u.joules_per_tick, 1.0 / 16384.0);
        assert_eq!(u.seconds_per_unit, 1.0 / 1024.0);
        // Client parts and AMD: energy 2^-16 J (15.3 µJ).
        assert_eq!(decode_units(0x000A_1003).joules_per_tick, 1.0 / 65536.0);
        // Reserved bits are ignored.
        let reserved = 0xFFFF_FFFF_FFF0_E0F0;
        assert_eq!(decode_units(SKX_UNITS | reserved), decode_units(SKX_UNITS));
    }

    #[test]
    fn dram_uses_the_fixed_unit_only_on_server_models() {
        assert_eq!(dram_fixed_unit(0x55), Some(1.0 / 65536.0));
        assert_eq!(dram_fixed_unit(0x3F), Some(1.0 / 65536.0));
        assert_eq!(dram_fixed_unit(0x8F), None);
        assert_eq!(dram_fixed_unit(0x9E), None);
    }

    #[test]
    fn time_windows_decode_as_two_to_the_y_times_one_plus_z_quarters() {
        let tu = 1.0 / 1024.0;
        assert_eq!(decode_time_window(0x0A, tu), 1.0); // Y=10, Z=0: 1 s
        assert_eq!(decode_time_window(0x21, tu), 2.0 * 1.25 / 1024.0); // Y=1, Z=1: 2.44 ms
        assert_eq!(decode_time_window(0x6E, tu), 16.0 * 1.75); // Y=14, Z=3: 28 s
        assert_eq!(decode_time_window(0, tu), tu);
        // Only 7 bits count.
        assert_eq!(decode_time_window(0x80 | 0x0A, tu), 1.0);
    }

    #[test]
    fn time_windows_encode_by_rounding_down() {
        let tu = 1.0 / 1024.0;
        assert_eq!(encode_time_window(1.0, tu), 0x0A);
        assert_eq!(encode_time_window(28.0, tu), 0x6E);
        assert_eq!(encode_time_window(1.2, tu), 0x0A); // 1.25 s is above 1.2 s
        assert_eq!(encode_time_window(1.25, tu), 0x2A);
        assert_eq!(encode_time_window(0.0, tu), 0);
        assert_eq!(encode_time_window(f64::NAN, tu), 0);
        assert_eq!(encode_time_window(1e30, tu), 0x7F);
        for field in 0..128u64 {
            for k in [0, 4, 10, 15] {
                let u = 1.0 / f64::from(1u32 << k);
                assert_eq!(
                    encode_time_window(decode_time_window(field, u), u),
                    field,
                    "field {field:#x} unit 2^-{k}"
                );
            }
        }
    }

    #[test]
    fn package_power_limit_decodes_pl1_pl2_and_the_lock() {
        let u = decode_units(SKX_UNITS);
        // PL1 125 W enabled + clamp, 1 s; PL2 150 W enabled, 2.44 ms; locked.
        let l = decode_pkg_power_limit(0x8042_84B0_0015_83E8, &u);
        assert_eq!(
            l.pl1,
            RaplLimit { limit_watts: 125.0, enabled: true, clamp: true, time_window_s: 1.0 }
        );
        assert_eq!(
            l.pl2,
            RaplLimit {
                limit_watts: 150.0,
                enabled: true,
                clamp: false,
                time_window_s: 2.5 / 1024.0
            }
        );
        assert!(l.locked);
        let unlocked = decode_pkg_power_limit(0x0042_84B0_0015_83E8, &u);
        assert!(!unlocked.locked);
        let disabled = decode_pkg_power_limit(0x03E8, &u);
        assert!(!disabled.pl1.enabled && !disabled.pl1.clamp);
        assert_eq!(disabled.pl1.limit_watts, 125.0);
    }

    #[test]
    fn dram_power_limit_has_its_lock_at_bit_31() {
        let u = decode_units(SKX_UNITS);
        let l = decode_dram_power_limit(0x8015_8140, &u); // 40 W, enabled, clamp, 1 s, locked
        assert_eq!(l.limit.limit_watts, 40.0);
        assert!(l.limit.enabled && l.locked);
        assert_eq!(l.limit.time_window_s, 1.0);
        assert!(!decode_dram_power_limit(0x0015_8140, &u).locked);
    }

    #[test]
    fn power_info_decodes_tdp_min_max_and_zero_is_unknown() {
        let u = decode_units(SKX_UNITS);
        // Max window 0x2E: Y = 14, Z = 1: 2^14 × 1.25 × 2^-10 s = 20 s.
        let i = decode_power_info(0x002E_0640_0230_03E8, &u);
        assert_eq!(
            i,
            PowerInfo {
                tdp_watts: Some(125.0),
                min_watts: Some(70.0),
                max_watts: Some(200.0),
                max_time_window_s: Some(20.0),
            }
        );
        let tdp_only = decode_power_info(0x03E8, &u);
        assert_eq!(
            tdp_only,
            PowerInfo {
                tdp_watts: Some(125.0),
                min_watts: None,
                max_watts: None,
                max_time_window_s: None,
            }
        );
        // A catalog limit falls back to the TDP as its maximum, and to the encoding's largest
        // window; the reported maximum window bounds the windows it accepts.
        let pl1 = decode_limit_half(0x0015_83E8, &u);
        let limit = power_limit("long_term", &pl1, &tdp_only, &u, false);
        assert_eq!(limit.max_watts, Some(125.0));
        assert_eq!(limit.min_watts, None);
        assert_eq!(limit.enabled, Some(true));
        assert_eq!(limit.time_windows, Some(TimeWindows::rapl(u.seconds_per_unit, None)));
        let bounded = power_limit("long_term", &pl1, &i, &u, false).time_windows.unwrap();
        assert_eq!(bounded.max_s(), 20.0);
        assert_eq!(bounded.min_s(), 1.0 / 1024.0);
    }

    proptest! {
        /// Encoding rounds down to a representable window no more than 20% below the request, and
        /// decoding then encoding gives the same field.
        #[test]
        fn time_window_round_trip(k in 0u32..16, units in 1.0f64..3.0e9) {
            let u = 1.0 / f64::from(1u32 << k);
            let seconds = units * u;
            let field = encode_time_window(seconds, u);
            prop_assert!(field < 128);
            let back = decode_time_window(field, u);
            if units < f64::from(1u32 << 31) * 1.75 {
                prop_assert!(back <= seconds * (1.0 + 1e-12), "{back} > {seconds}");
                prop_assert!(back >= seconds * 0.8 * (1.0 - 1e-12), "{back} < 0.8 × {seconds}");
            }
            prop_assert_eq!(encode_time_window(back, u), field);
        }
    }
}
