//! What the RAPL profiles share: powercap zones (energy counter, constraints synced with a
//! power-limit register, class link), RAPL counters, and a package's MSR image.

use powerstack_model::{DomainId, DomainKind};

use crate::error::SimError;
use crate::fsutil::{mkdirs, write_file};
use crate::io::{CapRole, Device, ImgReg, Io, LimitSync, MsrImage, RegRef, Zone};
use crate::msr::{Reg, Shared};
use crate::profile::CpuSpec;
use crate::rapl::{RaplCounter, ZoneLimits, max_range_uj, raw_to_uj};
use crate::tree::{B, ci};

/// The powercap zones' devices.
pub(super) const POWERCAP: &str = "sys/devices/virtual/powercap";

/// Where the kernel links every powercap zone from.
pub(super) const CLASS_POWERCAP: &str = "sys/class/powercap";

/// A zone's limits.
pub(super) enum ZoneLim {
    /// No constraints; `enabled` shows this.
    Fixed(bool),
    /// Constraints synced with a power-limit register.
    Sync { role: CapRole, reg: RegRef, n: usize, max_uw: [u64; 2] },
}

/// A powercap zone `rel` called `name`, linked from the class as `class`, whose `energy_uj`
/// shows RAPL counter `counter` (`esu` its energy unit), with the limits `lim`.
#[allow(clippy::too_many_arguments)]
pub(super) fn zone(
    b: &B<'_>,
    s: &Shared,
    io: &mut Io,
    rel: &str,
    class: &str,
    name: &str,
    counter: usize,
    esu: u32,
    lim: ZoneLim,
) -> Result<(), SimError> {
    b.dir(rel)?;
    b.file(&format!("{rel}/name"), &format!("{name}\n"), 0o444)?;
    let uj = raw_to_uj(s.raw(counter), esu);
    io.zones.push(Zone {
        counter,
        esu,
        file: b.counter(
            &format!("{rel}/energy_uj"),
            &format!("{uj}\n"),
            0o444,
            max_range_uj(esu).to_string().len() + 1,
        )?,
    });
    b.file(&format!("{rel}/max_energy_range_uj"), &format!("{}\n", max_range_uj(esu)), 0o444)?;
    match lim {
        ZoneLim::Fixed(enabled) => {
            b.file(&format!("{rel}/enabled"), &format!("{}\n", u8::from(enabled)), 0o644)?
        }
        ZoneLim::Sync { role, reg, n, max_uw } => {
            let value = match reg {
                RegRef::Msr(key) => match s.regs.get(&key) {
                    Some(Reg::Rw(v)) => *v,
                    _ => 0,
                },
                RegRef::Local(v) => v,
            };
            let z = ZoneLimits::decode(value, n);
            let enabled =
                b.out(&format!("{rel}/enabled"), &format!("{}\n", u8::from(z.enabled)), 0o644)?;
            let (mut limit, mut window) = (Vec::new(), Vec::new());
            for (i, max) in max_uw.iter().enumerate().take(n) {
                let c = format!("{rel}/constraint_{i}");
                b.file(
                    &format!("{c}_name"),
                    if i == 0 { "long_term\n" } else { "short_term\n" },
                    0o444,
                )?;
                limit.push(b.out(
                    &format!("{c}_power_limit_uw"),
                    &format!("{}\n", z.c[i].limit_uw),
                    0o644,
                )?);
                window.push(b.out(
                    &format!("{c}_time_window_us"),
                    &format!("{}\n", z.c[i].window_us),
                    0o644,
                )?);
                b.file(&format!("{c}_max_power_uw"), &format!("{max}\n"), 0o444)?;
            }
            io.limits.push(LimitSync { role, reg, n, enabled, limit, window, last: z });
        }
    }
    b.link(&format!("{CLASS_POWERCAP}/{class}"), rel)
}

/// A subzone of a package's zone: its domain, name, RAPL counter, energy unit and limits.
pub(super) struct Subzone<'a> {
    pub id: DomainId,
    pub name: &'a str,
    pub counter: usize,
    pub esu: u32,
    pub lim: ZoneLim,
}

/// The subzones of zone `zname` at `zrel`, numbered `{zname}:K` in order: each written by
/// [`zone`], part of its package's device `dev` and removable on its own.
pub(super) fn subzones(
    b: &B<'_>,
    s: &Shared,
    io: &mut Io,
    (zname, zrel): (&str, &str),
    subs: Vec<Subzone<'_>>,
    dev: &mut Device,
) -> Result<(), SimError> {
    for (k, sub) in subs.into_iter().enumerate() {
        let sname = format!("{zname}:{k}");
        let srel = format!("{zrel}/{sname}");
        zone(b, s, io, &srel, &sname, sub.name, sub.counter, sub.esu, sub.lim)?;
        let class = b.p(&format!("{CLASS_POWERCAP}/{sname}"));
        dev.ids.push(sub.id);
        dev.remove.push(class.clone());
        io.devices.push(Device {
            ids: vec![sub.id],
            truncate: vec![b.p(&srel)],
            remove: vec![b.p(&srel), class],
            removed: false,
        });
    }
    Ok(())
}

/// One package's MSR image: `dev/cpu/LEAD/msr`, hard-linked for the package's other CPUs.
pub(super) fn image(
    b: &B<'_>,
    spec: &CpuSpec,
    package: u32,
    fixed: &[(u32, u64)],
    regs: Vec<(u32, Option<usize>)>,
) -> Result<MsrImage, SimError> {
    let cpus = spec.cpus_of(package);
    let lead = cpus.first().copied().unwrap_or(0);
    let path = b.p(&format!("dev/cpu/{lead}/msr"));
    let regs =
        regs.into_iter().map(|(addr, counter)| ImgReg { addr, counter, last: None }).collect();
    let mut img = MsrImage { path: path.clone(), file: None, regs, gone: false };
    if b.fresh {
        img.file = Some(write_file(&path, "", 0o600)?);
        for &(addr, value) in fixed {
            img.write_fixed(addr, value)?;
        }
        for &c in cpus.iter().skip(1) {
            let dir = b.p(&format!("dev/cpu/{c}"));
            mkdirs(&dir)?;
            let link = dir.join("msr");
            std::fs::hard_link(&path, &link).map_err(|e| SimError::io(&link, e))?;
        }
    }
    Ok(img)
}

/// Adds a RAPL counter following the component of domain `kind` `index`; returns its index.
pub(super) fn counter(
    s: &mut Shared,
    kind: DomainKind,
    index: u32,
    esu: u32,
    scale: f64,
    offset: u32,
) -> usize {
    let comp = ci(s, kind, index);
    s.counters.push(RaplCounter { comp, esu, scale, offset });
    s.counters.len() - 1
}
