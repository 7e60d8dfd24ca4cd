//! The register-level MSR model ([`SimMsr`]) and the state it shares with the node.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use powerstack_hw::HwError;
use powerstack_hw::providers::msr::MsrIo;

use crate::model::Comp;
use crate::profile::Profile;
use crate::rapl::{RaplCounter, lock_bit};

/// One register of the model.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reg {
    /// Read-only value (units, power info).
    Const(u64),
    /// Read-write value (power limits).
    Rw(u64),
    /// Read-only energy status: the raw value of a counter (bits 31:0; 63:32 zero).
    Counter(usize),
    /// Read-only, reads 0 (an energy domain the part does not have).
    Zero,
}

/// The model state shared by [`crate::SimNode`] and [`SimMsr`].
#[derive(Debug)]
pub(crate) struct Shared {
    pub root: PathBuf,
    pub profile: Profile,
    pub comps: Vec<Comp>,
    pub counters: Vec<RaplCounter>,
    /// Registers by (scope package, address); platform-wide registers live in package 0.
    pub regs: BTreeMap<(u32, u32), Reg>,
    /// Power-limit registers written through [`SimMsr`] since the node last synced its files.
    pub dirty: BTreeSet<(u32, u32)>,
}

impl Shared {
    pub fn raw(&self, counter: usize) -> u32 {
        match self.counters.get(counter) {
            Some(c) => c.raw(self.comps.get(c.comp).map_or(0.0, |k| k.energy)),
            None => 0,
        }
    }

    /// The key of register `addr` seen from `package`.
    pub fn key(addr: u32, package: u32) -> (u32, u32) {
        if matches!(addr, 0x64D | 0x65C) { (0, addr) } else { (package, addr) }
    }

    pub fn value(&self, key: (u32, u32)) -> Option<u64> {
        match self.regs.get(&key)? {
            Reg::Const(v) | Reg::Rw(v) => Some(*v),
            Reg::Counter(i) => Some(u64::from(self.raw(*i))),
            Reg::Zero => Some(0),
        }
    }
}

pub(crate) fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A register-level model of the simulated node's RAPL MSRs, implementing [`MsrIo`].
///
/// Unlike the file image under `dev/cpu/N/msr` (where registers closer than 8 bytes overlap), every
/// register is exact. It shares its state with the [`crate::SimNode`] it came from: energy status
/// registers follow [`crate::SimNode::advance`], and power limits written here are honoured by the
/// power model and shown in the powercap files after the next advance (and a powercap write shows
/// here after it). Served per package (a CPU reads its package's registers):
///
/// - intel-2s: 0x606 units, 0x610 PKG_POWER_LIMIT (rw, lock bit 63), 0x611 PKG_ENERGY_STATUS, 0x614
///   PKG_POWER_INFO, 0x618 DRAM_POWER_LIMIT (rw, lock bit 31), 0x619 DRAM_ENERGY_STATUS (0 with
///   `omit_dram`), 0x61C DRAM_POWER_INFO, 0x639 PP0_ENERGY_STATUS (0 unless the `core` zone exists),
///   0x64D PLATFORM_ENERGY_STATUS and 0x65C PLATFORM_POWER_LIMIT (rw; one for the platform).
/// - amd-2s: 0xC0010299 units, 0xC001029A core energy (this core's share of its package's core
///   energy), 0xC001029B package energy.
/// - cray-ex, hwmon-node, intel-hybrid and intel-offline have no MSR device: every access fails as
///   a missing device.
///
/// Unknown registers and writes to read-only ones fail with EIO, like the msr driver's #GP.
#[derive(Clone, Debug)]
pub struct SimMsr {
    shared: Arc<Mutex<Shared>>,
}

impl SimMsr {
    pub(crate) fn new(shared: Arc<Mutex<Shared>>) -> SimMsr {
        SimMsr { shared }
    }

    /// Sets or clears the lock bit of a power-limit register of `package` (bit 63, or 31 for
    /// 0x618), as a BIOS would. Writes to a locked register fail, and powercap writes to its zone
    /// are reverted at the next advance. Registers without a lock bit are left alone.
    pub fn set_lock(&self, package: u32, addr: u32, locked: bool) {
        let mut s = lock(&self.shared);
        let key = Shared::key(addr, package);
        if let Some(Reg::Rw(v)) = s.regs.get_mut(&key) {
            let bit = 1u64 << lock_bit(addr);
            *v = if locked { *v | bit } else { *v & !bit };
        }
    }

    /// The number of logical CPUs (valid `cpu` arguments are below it).
    pub fn cpus(&self) -> u32 {
        lock(&self.shared).profile.cpu().ncpus()
    }

    fn path(&self, cpu: u32) -> PathBuf {
        lock(&self.shared).root.join(format!("dev/cpu/{cpu}/msr"))
    }

    /// The register key for `cpu`, or the error of a CPU without an msr device.
    fn key(s: &Shared, cpu: u32, addr: u32) -> Option<(u32, u32)> {
        let spec = s.profile.cpu();
        let has_msr = matches!(s.profile, Profile::Intel2s | Profile::Amd2s);
        (has_msr && cpu < spec.ncpus()).then(|| Shared::key(addr, spec.package_of(cpu)))
    }
}

fn eio(path: PathBuf) -> HwError {
    HwError::Io { path, source: io::Error::from_raw_os_error(libc::EIO) }
}

impl MsrIo for SimMsr {
    fn read(&mut self, cpu: u32, addr: u32) -> Result<u64, HwError> {
        let path = self.path(cpu);
        let s = lock(&self.shared);
        let Some(key) = Self::key(&s, cpu, addr) else { return Err(HwError::Vanished { path }) };
        s.value(key).ok_or_else(|| eio(path))
    }

    fn write(&mut self, cpu: u32, addr: u32, value: u64) -> Result<(), HwError> {
        let path = self.path(cpu);
        let mut s = lock(&self.shared);
        let Some(key) = Self::key(&s, cpu, addr) else { return Err(HwError::Vanished { path }) };
        match s.regs.get_mut(&key) {
            Some(Reg::Rw(cur)) => {
                if *cur & (1u64 << lock_bit(addr)) != 0 {
                    return Err(eio(path));
                }
                *cur = value;
                s.dirty.insert(key);
                Ok(())
            }
            _ => Err(eio(path)),
        }
    }
}
