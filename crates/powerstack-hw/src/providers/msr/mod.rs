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
//!
//! Files: `registers` decodes and encodes the register layouts (pure), `device` is [`DevMsr`],
//! `probe` finds the domains; this module is the provider that reads them and writes limits.

use powerstack_model::{DomainInfo, LimitWrite, PowerLimit, RawEnergy};

use crate::error::{HwError, Warning};
use crate::provider::{Provider, Reading};

mod device;
mod probe;
mod registers;

pub use device::DevMsr;
pub use probe::{probe, probe_with};
use registers::power_limit;
pub use registers::{
    DRAM_FIXED_UNIT_MODELS, DramPowerLimit, PkgPowerLimit, PowerInfo, RaplLimit, RaplUnits,
    decode_dram_power_limit, decode_limit_half, decode_pkg_power_limit, decode_power_info,
    decode_time_window, decode_units, dram_fixed_unit, encode_limit_half, encode_time_window,
};

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
