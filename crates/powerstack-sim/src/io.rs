//! The simulator's outputs and inputs on disk: energy files, the MSR image, limit files (synced
//! with the register model), cap files, pm_counters, hwmon values, and removable devices.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use powerstack_model::DomainId;

use crate::error::SimError;
use crate::fsutil::{OutFile, open_rw};
use crate::model::Caps;
use crate::msr::{Reg, Shared};
use crate::rapl::{ZoneLimits, lock_bit, raw_to_uj};

/// What a limit or cap applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CapRole {
    Package(u32),
    Memory(u32),
    Platform,
    Node,
    Accel,
    Gpu,
    /// One GPU of several, by GPU number (PCI order).
    GpuN(u32),
}

impl CapRole {
    pub fn add(self, caps: &mut Caps, watts: Option<f64>) {
        let Some(w) = watts else { return };
        let min = |cur: Option<f64>| Some(cur.map_or(w, |c| c.min(w)));
        match self {
            CapRole::Package(s) => caps.cap_package(s, w),
            CapRole::Memory(s) => {
                let e = caps.memory.entry(s).or_insert(w);
                *e = e.min(w);
            }
            CapRole::Platform => caps.platform = min(caps.platform),
            CapRole::Node => caps.node = min(caps.node),
            CapRole::Accel => caps.accel = min(caps.accel),
            CapRole::Gpu => caps.gpu = min(caps.gpu),
            CapRole::GpuN(n) => {
                let e = caps.gpus.entry(n).or_insert(w);
                *e = e.min(w);
            }
        }
    }
}

/// A powercap `energy_uj` file showing a RAPL counter.
#[derive(Debug)]
pub(crate) struct Zone {
    pub counter: usize,
    pub esu: u32,
    pub file: OutFile,
}

impl Zone {
    pub fn update(&mut self, s: &Shared) -> Result<(), SimError> {
        let uj = raw_to_uj(s.raw(self.counter), self.esu);
        self.file.set(&format!("{uj}\n"))
    }
}

/// One energy register of the MSR image.
#[derive(Debug)]
pub(crate) struct ImgReg {
    pub addr: u32,
    /// The counter shown, or `None` for a register that reads 0.
    pub counter: Option<usize>,
    pub last: Option<u64>,
}

/// One package's MSR image file (hard-linked as `dev/cpu/N/msr` for each of its CPUs).
#[derive(Debug)]
pub(crate) struct MsrImage {
    pub path: PathBuf,
    pub file: Option<File>,
    /// Energy registers, in write order (a later register overlapping an earlier one is rewritten
    /// after it, so the later one stays exact).
    pub regs: Vec<ImgReg>,
    /// The image was removed: nothing is written any more.
    pub gone: bool,
}

impl MsrImage {
    fn write_at(&mut self, addr: u32, value: u64) -> Result<(), SimError> {
        if self.file.is_none() {
            match open_rw(&self.path) {
                Ok(f) => self.file = Some(f),
                // Removed (a node without MSR devices made from a profile that has them): it
                // stays removed, like a removed device's files.
                Err(SimError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    self.gone = true;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(f) = &self.file {
            f.write_all_at(&value.to_le_bytes(), u64::from(addr))
                .map_err(|e| SimError::io(&self.path, e))?;
        }
        Ok(())
    }

    /// Writes registers whose value changed (and those an earlier write overlapped).
    pub fn update(&mut self, s: &Shared) -> Result<(), SimError> {
        if self.gone {
            return Ok(());
        }
        let mut written: Vec<u32> = Vec::new();
        for i in 0..self.regs.len() {
            let (addr, counter, last) =
                (self.regs[i].addr, self.regs[i].counter, self.regs[i].last);
            let value = counter.map_or(0, |c| u64::from(s.raw(c)));
            let overlapped = written.iter().any(|&w| w.abs_diff(addr) < 8);
            if last != Some(value) || overlapped {
                self.write_at(addr, value)?;
                self.regs[i].last = Some(value);
                written.push(addr);
            }
        }
        Ok(())
    }

    /// Writes a fixed register (at create).
    pub fn write_fixed(&mut self, addr: u32, value: u64) -> Result<(), SimError> {
        self.write_at(addr, value)
    }

    /// The raw counter value stored for register `i`, when it is not overlapped by a later one.
    pub fn read_counter(&self, i: usize) -> Option<u32> {
        let addr = self.regs.get(i)?.addr;
        if self.regs[i + 1..].iter().any(|r| r.addr.abs_diff(addr) < 8) {
            return None;
        }
        let f = File::open(&self.path).ok()?;
        let mut b = [0u8; 8];
        f.read_exact_at(&mut b, u64::from(addr)).ok()?;
        Some(u64::from_le_bytes(b) as u32)
    }
}

/// Where a zone's limit register lives.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RegRef {
    /// In the shared MSR model, under this key.
    Msr((u32, u32)),
    /// Private to the zone (the MMIO duplicate, whose registers are not MSRs).
    Local(u64),
}

/// The limit files of a RAPL zone, kept in step with its power-limit register the way the kernel
/// keeps them: a file write becomes a register write (refused when the register is locked: the
/// file is reverted), a register write shows in the files, and the files always read the
/// register's quantised values.
///
/// The simulator rewrites a limit file only when the file holds a value it refused or shows
/// differently (quantised, not a number), or when the register changed under it, and only if the
/// file still holds what was judged when it is rewritten ([`OutFile::replace`]). A writer that
/// writes a value the register holds exactly (what powerstack reads back and restores) is never
/// written over; a write landing between the judgement and the rewrite is kept and judged at the
/// next sync. An empty file is a write in progress (opened with `O_TRUNC`) and is left alone.
#[derive(Debug)]
pub(crate) struct LimitSync {
    pub role: CapRole,
    pub reg: RegRef,
    pub n: usize,
    pub enabled: OutFile,
    pub limit: Vec<OutFile>,
    pub window: Vec<OutFile>,
    /// The limits in force after the last sync (what the files show when nobody wrote since).
    pub last: ZoneLimits,
}

/// What a sync would do.
pub(crate) struct Resolved {
    pub target: ZoneLimits,
    pub new_reg: Option<u64>,
    /// What each file held when it was judged, in [`LimitSync::files`] order (`None`: gone or
    /// unreadable).
    pub seen: Vec<Option<String>>,
}

/// The number on the first line (a concurrent in-place update may leave a stale tail after it).
pub(crate) fn parse_u64(s: Option<&str>) -> Option<u64> {
    s?.lines().next()?.trim().parse().ok()
}

/// Whether a file holding `seen` shows `want` (a line): on its first line, whatever follows it.
/// A writer that shortens a file in place (`pwrite`, then `set_len`) leaves, for a moment, the
/// stale tail of the longer value after the newline: that is not another value, and rewriting the
/// file then would race the writer's next write for nothing.
pub(crate) fn shows(seen: &str, want: &str) -> bool {
    seen.lines().next().map(str::trim) == want.lines().next().map(str::trim)
}

impl LimitSync {
    fn reg_value(&self, s: &Shared) -> u64 {
        match self.reg {
            RegRef::Msr(key) => match s.regs.get(&key) {
                Some(Reg::Rw(v) | Reg::Const(v)) => *v,
                _ => 0,
            },
            RegRef::Local(v) => v,
        }
    }

    fn addr(&self) -> u32 {
        match self.reg {
            RegRef::Msr((_, a)) => a,
            RegRef::Local(_) => 0x610,
        }
    }

    /// The files: `enabled`, then each constraint's limit, then each constraint's window.
    fn files(&self) -> impl Iterator<Item = &OutFile> {
        std::iter::once(&self.enabled).chain(self.limit.iter()).chain(self.window.iter())
    }

    /// What the files show for `t`, in [`LimitSync::files`] order.
    fn shown(&self, t: &ZoneLimits) -> Vec<String> {
        std::iter::once(format!("{}\n", u8::from(t.enabled)))
            .chain(self.limit.iter().zip(&t.c).map(|(_, c)| format!("{}\n", c.limit_uw)))
            .chain(self.window.iter().zip(&t.c).map(|(_, c)| format!("{}\n", c.window_us)))
            .collect()
    }

    /// What the files said when read as `seen` (fields that cannot be parsed keep their last value).
    fn file_view(&self, seen: &[Option<String>]) -> ZoneLimits {
        let num = |k: usize| parse_u64(seen.get(k).and_then(Option::as_deref));
        let mut v = self.last;
        if let Some(e) = num(0) {
            v.enabled = e != 0;
        }
        let windows = 1 + self.limit.len();
        for i in 0..self.n.min(v.c.len()) {
            if let Some(l) = (i < self.limit.len()).then(|| num(1 + i)).flatten() {
                v.c[i].limit_uw = l;
            }
            if let Some(w) = (i < self.window.len()).then(|| num(windows + i)).flatten() {
                v.c[i].window_us = w;
            }
        }
        v
    }

    /// Works out the limits in force without changing anything.
    pub fn resolve(&self, s: &Shared) -> Resolved {
        let seen: Vec<Option<String>> = self.files().map(OutFile::read).collect();
        let reg = self.reg_value(s);
        let from_reg = ZoneLimits::decode(reg, self.n);
        let dirty = matches!(self.reg, RegRef::Msr(key) if s.dirty.contains(&key));
        if dirty {
            return Resolved { target: from_reg, new_reg: None, seen };
        }
        let view = self.file_view(&seen);
        if view == self.last || reg & (1u64 << lock_bit(self.addr())) != 0 {
            return Resolved { target: from_reg, new_reg: None, seen };
        }
        let new = view.encode_changes(&self.last, reg);
        Resolved { target: ZoneLimits::decode(new, self.n), new_reg: Some(new), seen }
    }

    /// Applies a resolution: stores the register, and rewrites the files that showed something
    /// else than the limits in force when they were judged, if they still do.
    pub fn apply(&mut self, s: &mut Shared, r: &Resolved) -> Result<(), SimError> {
        if let Some(new) = r.new_reg {
            match &mut self.reg {
                RegRef::Msr(key) => {
                    if let Some(Reg::Rw(v)) = s.regs.get_mut(key) {
                        *v = new;
                    }
                }
                RegRef::Local(v) => *v = new,
            }
        }
        if let RegRef::Msr(key) = self.reg {
            s.dirty.remove(&key);
        }
        let shown = self.shown(&r.target);
        for ((f, want), seen) in self.files_mut().zip(&shown).zip(&r.seen) {
            match seen {
                Some(seen) if !seen.is_empty() && !shows(seen, want) => {
                    f.replace(seen, want)?;
                }
                _ => {}
            }
        }
        self.last = r.target;
        Ok(())
    }

    pub fn files_mut(&mut self) -> impl Iterator<Item = &mut OutFile> {
        std::iter::once(&mut self.enabled)
            .chain(self.limit.iter_mut())
            .chain(self.window.iter_mut())
    }
}

/// How a cap file is written and read.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CtlKind {
    /// hwmon `powerN_cap`: µW; accepted when 0 or within `min..=max`; stored in steps of
    /// `quantum` µW (rounded or truncated, like the driver).
    Microwatts { min: u64, max: u64, quantum: u64, round: bool },
    /// pm_counters `power_cap`: `"{W} W"`, 0 = uncapped.
    PmWatts,
    /// Mock NVML `power_limit_mw`: mW, accepted within `min..=max` (there is no uncapped value).
    Milliwatts { min: u64, max: u64 },
}

/// A cap file that anyone may write; the simulator normalises it like the driver would.
#[derive(Debug)]
pub(crate) struct Control {
    pub role: CapRole,
    pub kind: CtlKind,
    pub file: OutFile,
    pub value: u64,
}

impl Control {
    pub fn new(role: CapRole, kind: CtlKind, file: OutFile, default: u64) -> Control {
        let mut c = Control { role, kind, file, value: default };
        c.value = c.peek();
        c
    }

    fn parse(&self, s: &str) -> Option<u64> {
        let first = s.split_whitespace().next()?;
        match self.kind {
            CtlKind::Microwatts { min, max, quantum, round } => {
                let v: u64 = first.parse().ok()?;
                if v != 0 && !(min..=max).contains(&v) {
                    return None;
                }
                let q = quantum.max(1);
                Some(if round { (v + q / 2) / q * q } else { v / q * q })
            }
            CtlKind::PmWatts => {
                let v: f64 = first.parse().ok()?;
                (v.is_finite() && (0.0..=1e6).contains(&v)).then(|| v.round() as u64)
            }
            CtlKind::Milliwatts { min, max } => {
                let v: u64 = first.parse().ok()?;
                (min..=max).contains(&v).then_some(v)
            }
        }
    }

    pub fn format(&self, v: u64) -> String {
        match self.kind {
            CtlKind::Microwatts { .. } | CtlKind::Milliwatts { .. } => format!("{v}\n"),
            CtlKind::PmWatts => format!("{v} W\n"),
        }
    }

    /// The value in force (the file's, when valid; else the last one).
    pub fn peek(&self) -> u64 {
        self.judge().1
    }

    /// What the file holds now, and the value in force after it.
    fn judge(&self) -> (Option<String>, u64) {
        let seen = self.file.read();
        let v = seen.as_deref().and_then(|s| self.parse(s)).unwrap_or(self.value);
        (seen, v)
    }

    /// Takes the value judged from the file holding `seen`, and normalises the file if it still
    /// holds `seen` (a newer write is kept and judged at the next sync; an empty file is a write
    /// in progress).
    fn settle(&mut self, seen: Option<String>, v: u64) -> Result<u64, SimError> {
        let want = self.format(v);
        if let Some(seen) = seen.filter(|s| !s.is_empty() && !shows(s, &want)) {
            self.file.replace(&seen, &want)?;
        }
        self.value = v;
        Ok(v)
    }

    /// Takes the file's value and normalises the file.
    pub fn sync(&mut self) -> Result<u64, SimError> {
        let (seen, v) = self.judge();
        self.settle(seen, v)
    }

    pub fn watts(&self, v: u64) -> Option<f64> {
        (v > 0).then(|| match self.kind {
            CtlKind::Microwatts { .. } => v as f64 / 1e6,
            CtlKind::Milliwatts { .. } => v as f64 / 1e3,
            CtlKind::PmWatts => v as f64,
        })
    }
}

/// What a hwmon value file shows.
#[derive(Clone, Copy, Debug)]
pub(crate) enum HwmonKind {
    /// `powerN_average`, µW.
    PowerUw,
    /// `temp1_input` of the GPU, m°C in whole degrees, rising with power.
    GpuTemp,
}

/// A hwmon value file following a component.
#[derive(Debug)]
pub(crate) struct HwmonOut {
    pub comp: usize,
    pub kind: HwmonKind,
    pub file: OutFile,
}

impl HwmonOut {
    pub fn content(kind: HwmonKind, watts: f64) -> String {
        match kind {
            HwmonKind::PowerUw => format!("{}\n", (watts * 1e6).round().max(0.0) as u64),
            HwmonKind::GpuTemp => {
                format!("{}\n", ((30.0 + 0.15 * watts).round().max(0.0) as u64) * 1000)
            }
        }
    }
}

/// A device that `remove_device` can make vanish.
#[derive(Debug)]
pub(crate) struct Device {
    /// The domains it carries; the first names it.
    pub ids: Vec<DomainId>,
    /// Directories or files whose regular files are truncated first.
    pub truncate: Vec<PathBuf>,
    /// Then removed, in order (directories, files, symlinks).
    pub remove: Vec<PathBuf>,
    pub removed: bool,
}

/// Everything the node reads and writes.
#[derive(Debug, Default)]
pub(crate) struct Io {
    pub zones: Vec<Zone>,
    pub images: Vec<MsrImage>,
    pub limits: Vec<LimitSync>,
    pub controls: Vec<Control>,
    pub hwmon: Vec<HwmonOut>,
    pub pm: Option<crate::pm::PmCounters>,
    pub nvml: Vec<crate::nvml_state::NvmlGpu>,
    pub devices: Vec<Device>,
}

impl Io {
    /// The limit and cap files (anyone may write them; the simulator answers like the hardware).
    pub fn limit_files(&mut self) -> impl Iterator<Item = &mut OutFile> {
        self.limits
            .iter_mut()
            .flat_map(|l| l.files_mut())
            .chain(self.controls.iter_mut().map(|c| &mut c.file))
    }

    /// Stops writing every file under one of `paths`.
    pub fn mark_gone(&mut self, paths: &[PathBuf]) {
        let under = |p: &Path| paths.iter().any(|r| p.starts_with(r));
        let mut files: Vec<&mut OutFile> = Vec::new();
        files.extend(self.zones.iter_mut().map(|z| &mut z.file));
        files.extend(self.limits.iter_mut().flat_map(|l| l.files_mut()));
        files.extend(self.controls.iter_mut().map(|c| &mut c.file));
        files.extend(self.hwmon.iter_mut().map(|h| &mut h.file));
        files.extend(self.nvml.iter_mut().flat_map(|g| [&mut g.energy, &mut g.power]));
        if let Some(pm) = &mut self.pm {
            files.extend(pm.files_mut());
        }
        for f in files {
            if under(f.path()) {
                f.mark_gone();
            }
        }
    }
}

#[cfg(test)]
mod tests;
