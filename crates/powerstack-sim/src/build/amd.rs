//! amd-2s' RAPL: package zones (energy only) with `core` subzones, the AMD energy registers and
//! their MSR images.

use powerstack_model::{DomainId, DomainKind};

use super::powercap::{CLASS_POWERCAP, POWERCAP, ZoneLim, counter, image, zone};
use crate::error::SimError;
use crate::io::{Device, Io};
use crate::msr::{Reg, Shared};
use crate::options::SimOptions;
use crate::profile::Profile;
use crate::rapl::{AMD_UNITS, ESU_16};
use crate::tree::B;

/// Writes amd-2s' RAPL: registers, powercap zones and one MSR image per package.
pub(super) fn build(
    b: &B<'_>,
    opts: &SimOptions,
    s: &mut Shared,
    io: &mut Io,
) -> Result<(), SimError> {
    use DomainKind::{Core, Package};
    let spec = Profile::Amd2s.cpu();
    let share = 1.0 / f64::from(spec.cores);
    let pkg_c = [
        counter(s, Package, 0, ESU_16, 1.0, 0x4000_0000),
        counter(s, Package, 1, ESU_16, 1.0, 0x5000_0000),
    ];
    let core_c = [
        counter(s, Core, 0, ESU_16, 1.0, 0x1000_0000),
        counter(s, Core, 1, ESU_16, 1.0, 0x2000_0000),
    ];
    let share_c = [
        counter(s, Core, 0, ESU_16, share, 0x0800_0000),
        counter(s, Core, 1, ESU_16, share, 0x0C00_0000),
    ];
    for p in 0..2u32 {
        let i = p as usize;
        s.regs.insert((p, 0xC001_0299), Reg::Const(AMD_UNITS));
        s.regs.insert((p, 0xC001_029A), Reg::Counter(share_c[i]));
        s.regs.insert((p, 0xC001_029B), Reg::Counter(pkg_c[i]));
    }
    let base = format!("{POWERCAP}/intel-rapl");
    b.file(&format!("{base}/enabled"), "1\n", 0o644)?;
    b.link(&format!("{CLASS_POWERCAP}/intel-rapl"), &base)?;
    let idx = if opts.shuffle_indices { [1, 0] } else { [0, 1] };
    for p in 0..2u32 {
        let i = p as usize;
        let zname = format!("intel-rapl:{}", idx[i]);
        let zrel = format!("{base}/{zname}");
        zone(
            b,
            s,
            io,
            &zrel,
            &zname,
            &format!("package-{p}"),
            pkg_c[i],
            ESU_16,
            ZoneLim::Fixed(false),
        )?;
        let sname = format!("{zname}:0");
        let srel = format!("{zrel}/{sname}");
        zone(b, s, io, &srel, &sname, "core", core_c[i], ESU_16, ZoneLim::Fixed(false))?;
        let (zclass, sclass) =
            (b.p(&format!("{CLASS_POWERCAP}/{zname}")), b.p(&format!("{CLASS_POWERCAP}/{sname}")));
        io.devices.push(Device {
            ids: vec![DomainId::new(Package, p), DomainId::new(Core, p)],
            truncate: vec![b.p(&zrel)],
            remove: vec![b.p(&zrel), zclass, sclass.clone()],
            removed: false,
        });
        io.devices.push(Device {
            ids: vec![DomainId::new(Core, p)],
            truncate: vec![b.p(&srel)],
            remove: vec![b.p(&srel), sclass],
            removed: false,
        });
    }
    // 0xC0010299, 0xC001029A and 0xC001029B are one byte apart, so a file image can hold only
    // some of them: the core register is written first and overwritten by the unit register, then
    // the package register is written last and kept exact. The unit register then reads its
    // power-unit and energy-unit fields right (bits 12:0) and the package's bytes above them;
    // the core register is meaningless (SimMsr has all three exact).
    for p in 0..2u32 {
        let i = p as usize;
        let share0 = u64::from(s.raw(share_c[i]));
        let fixed = [(0xC001_029A, share0), (0xC001_0299, AMD_UNITS)];
        io.images.push(image(b, spec, p, &fixed, vec![(0xC001_029B, Some(pkg_c[i]))])?);
    }
    Ok(())
}
