//! The Intel profiles' RAPL: two-socket servers (intel-2s and the GPU profiles, intel-offline)
//! with package, dram and psys zones, their registers and MSR images; and the intel-hybrid client
//! package.

use powerstack_model::{DomainId, DomainKind};

use super::powercap::{CLASS_POWERCAP, POWERCAP, Subzone, ZoneLim, counter, image, subzones, zone};
use crate::error::SimError;
use crate::io::{CapRole, Device, Io, RegRef};
use crate::msr::{Reg, Shared};
use crate::options::SimOptions;
use crate::profile::CpuSpec;
use crate::rapl::{ESU_16, ESU_PKG, INTEL_UNITS, limit_reg, power_info_reg, us_to_window_field};
use crate::tree::B;

/// The RAPL numbers of a two-socket Intel server (watts).
pub(super) struct ServerRapl {
    /// Package PL1 and PL2 (both enabled).
    pkg: (u64, u64),
    /// PKG_POWER_INFO: thermal spec, minimum, maximum.
    pkg_info: (u64, u64, u64),
    /// Package `constraint_{0,1}_max_power_uw`.
    pkg_max: [u64; 2],
    /// DRAM PL1 (disabled).
    dram: u64,
    /// DRAM_POWER_INFO.
    dram_info: (u64, u64, u64),
    /// Platform (psys) PL1 and PL2 (both enabled).
    psys: (u64, u64),
}

/// intel-2s' (and the GPU profiles') RAPL numbers.
pub(super) const RAPL_2S: ServerRapl = ServerRapl {
    pkg: (150, 180),
    pkg_info: (150, 70, 300),
    pkg_max: [150, 300],
    dram: 40,
    dram_info: (40, 10, 60),
    psys: (500, 600),
};

/// intel-offline's RAPL numbers.
pub(super) const RAPL_OFFLINE: ServerRapl = ServerRapl {
    pkg: (350, 420),
    pkg_info: (350, 150, 700),
    pkg_max: [350, 700],
    dram: 60,
    dram_info: (60, 15, 90),
    psys: (1100, 1300),
};

/// Layout options of an Intel server (intel-2s' [`SimOptions`]; intel-offline has none, and no
/// MSR image).
pub(super) struct ServerLayout {
    shuffle: bool,
    mmio_duplicate: bool,
    dram: bool,
    image: bool,
}

impl ServerLayout {
    /// intel-offline's layout: dram zones, no MSR image.
    pub(super) fn offline() -> ServerLayout {
        ServerLayout { shuffle: false, mmio_duplicate: false, dram: true, image: false }
    }

    /// intel-2s' layout as the options ask, with an MSR image.
    pub(super) fn of(opts: &SimOptions) -> ServerLayout {
        ServerLayout {
            shuffle: opts.shuffle_indices,
            mmio_duplicate: opts.mmio_duplicate,
            dram: !opts.omit_dram,
            image: true,
        }
    }
}

/// An Intel server's RAPL counters, in the order they are added: packages, dram (unless
/// omitted), psys, and core (only with shuffled indices).
struct Counters {
    pkg: [usize; 2],
    dram: [Option<usize>; 2],
    psys: usize,
    core: [Option<usize>; 2],
}

impl Counters {
    fn add(s: &mut Shared, lay: &ServerLayout) -> Counters {
        use DomainKind::{Core, Memory, Package, Platform};
        let pkg = [
            counter(s, Package, 0, ESU_PKG, 1.0, 0x4000_0000),
            counter(s, Package, 1, ESU_PKG, 1.0, 0x5000_0000),
        ];
        let dram = if lay.dram {
            [
                Some(counter(s, Memory, 0, ESU_16, 1.0, 0x1000_0000)),
                Some(counter(s, Memory, 1, ESU_16, 1.0, 0x2000_0000)),
            ]
        } else {
            [None, None]
        };
        let psys = counter(s, Platform, 0, ESU_PKG, 1.0, 0x6000_0000);
        let core = if lay.shuffle {
            [
                Some(counter(s, Core, 0, ESU_PKG, 1.0, 0x3000_0000)),
                Some(counter(s, Core, 1, ESU_PKG, 1.0, 0x3800_0000)),
            ]
        } else {
            [None, None]
        };
        Counters { pkg, dram, psys, core }
    }
}

/// An Intel server's power-limit and power-info registers.
struct Regs {
    pkg_limit: u64,
    dram_limit: u64,
    psys_limit: u64,
    pkg_info: u64,
    dram_info: u64,
}

impl Regs {
    fn of(rapl: &ServerRapl) -> Regs {
        let (ps, pn, px) = rapl.pkg_info;
        let (ds, dn, dx) = rapl.dram_info;
        Regs {
            pkg_limit: limit_reg(rapl.pkg.0, true, 0x0A, Some((rapl.pkg.1, true, 0x21))),
            dram_limit: limit_reg(rapl.dram, false, 0x00, None),
            psys_limit: limit_reg(rapl.psys.0, true, 0x0A, Some((rapl.psys.1, true, 0x21))),
            pkg_info: power_info_reg(ps, pn, px, 0x12),
            dram_info: power_info_reg(ds, dn, dx, 0x12),
        }
    }

    /// Puts the registers of both packages (and psys, package 0's) in the register model.
    fn insert(&self, s: &mut Shared, c: &Counters) {
        let counter_or_zero = |c: Option<usize>| c.map_or(Reg::Zero, Reg::Counter);
        for p in 0..2u32 {
            let i = p as usize;
            s.regs.insert((p, 0x606), Reg::Const(INTEL_UNITS));
            s.regs.insert((p, 0x610), Reg::Rw(self.pkg_limit));
            s.regs.insert((p, 0x611), Reg::Counter(c.pkg[i]));
            s.regs.insert((p, 0x614), Reg::Const(self.pkg_info));
            s.regs.insert((p, 0x618), Reg::Rw(self.dram_limit));
            s.regs.insert((p, 0x619), counter_or_zero(c.dram[i]));
            s.regs.insert((p, 0x61C), Reg::Const(self.dram_info));
            s.regs.insert((p, 0x639), counter_or_zero(c.core[i]));
        }
        s.regs.insert((0, 0x64D), Reg::Counter(c.psys));
        s.regs.insert((0, 0x65C), Reg::Rw(self.psys_limit));
    }
}

/// A two-socket Intel server being built.
struct Server<'a> {
    rapl: &'a ServerRapl,
    lay: &'a ServerLayout,
    c: Counters,
    regs: Regs,
    /// `…/powercap/intel-rapl`.
    base: String,
}

/// Writes a two-socket Intel server's RAPL: registers, powercap zones and (unless the layout
/// says not) one MSR image per package.
pub(super) fn build_server(
    b: &B<'_>,
    spec: &CpuSpec,
    rapl: &ServerRapl,
    lay: &ServerLayout,
    s: &mut Shared,
    io: &mut Io,
) -> Result<(), SimError> {
    let c = Counters::add(s, lay);
    let regs = Regs::of(rapl);
    regs.insert(s, &c);
    let base = format!("{POWERCAP}/intel-rapl");
    b.file(&format!("{base}/enabled"), "1\n", 0o644)?;
    b.link(&format!("{CLASS_POWERCAP}/intel-rapl"), &base)?;
    let server = Server { rapl, lay, c, regs, base };
    let (pkg_idx, psys_idx) = if lay.shuffle { ([2, 1], 0) } else { ([0, 1], 2) };
    for p in 0..2u32 {
        server.package(b, s, io, p, pkg_idx[p as usize])?;
    }
    psys(b, s, io, &server.base, psys_idx, server.c.psys)?;
    if lay.image {
        server.images(b, spec, io)?;
    }
    Ok(())
}

impl Server<'_> {
    /// Package `p`'s limits, synced with `reg`.
    fn pkg_lim(&self, p: u32, reg: RegRef) -> ZoneLim {
        let max_uw = self.rapl.pkg_max.map(|w| w * 1_000_000);
        ZoneLim::Sync { role: CapRole::Package(p), reg, n: 2, max_uw }
    }

    /// Package `p`'s zone `intel-rapl:{idx}`, its subzones and (package 0, when the layout asks)
    /// its `intel-rapl-mmio:0` twin.
    fn package(
        &self,
        b: &B<'_>,
        s: &mut Shared,
        io: &mut Io,
        p: u32,
        idx: u32,
    ) -> Result<(), SimError> {
        let i = p as usize;
        let zname = format!("intel-rapl:{idx}");
        let zrel = format!("{}/{zname}", self.base);
        let lim = self.pkg_lim(p, RegRef::Msr((p, 0x610)));
        zone(b, s, io, &zrel, &zname, &format!("package-{p}"), self.c.pkg[i], ESU_PKG, lim)?;
        let mut dev = Device {
            ids: vec![DomainId::new(DomainKind::Package, p)],
            truncate: vec![b.p(&zrel)],
            remove: vec![b.p(&zrel), b.p(&format!("{CLASS_POWERCAP}/{zname}"))],
            removed: false,
        };
        self.subzones(b, s, io, p, (&zname, &zrel), &mut dev)?;
        if p == 0 && self.lay.mmio_duplicate {
            self.mmio(b, s, io, &mut dev)?;
        }
        io.devices.push(dev);
        Ok(())
    }

    /// Package `p`'s subzones: `core` (with shuffled indices), then `dram` (unless omitted).
    fn subzones(
        &self,
        b: &B<'_>,
        s: &mut Shared,
        io: &mut Io,
        p: u32,
        parent: (&str, &str),
        dev: &mut Device,
    ) -> Result<(), SimError> {
        use DomainKind::{Core, Memory};
        let i = p as usize;
        let mut subs = Vec::new();
        if let Some(counter) = self.c.core[i] {
            let id = DomainId::new(Core, p);
            let lim = ZoneLim::Fixed(false);
            subs.push(Subzone { id, name: "core", counter, esu: ESU_PKG, lim });
        }
        if let Some(counter) = self.c.dram[i] {
            let lim = ZoneLim::Sync {
                role: CapRole::Memory(p),
                reg: RegRef::Msr((p, 0x618)),
                n: 1,
                max_uw: [self.rapl.dram * 1_000_000, 0],
            };
            subs.push(Subzone {
                id: DomainId::new(Memory, p),
                name: "dram",
                counter,
                esu: ESU_16,
                lim,
            });
        }
        subzones(b, s, io, parent, subs, dev)
    }

    /// `intel-rapl-mmio:0`, package-0's counter and limits seen through MMIO (part of package
    /// 0's device `dev`).
    fn mmio(
        &self,
        b: &B<'_>,
        s: &mut Shared,
        io: &mut Io,
        dev: &mut Device,
    ) -> Result<(), SimError> {
        let mbase = format!("{POWERCAP}/intel-rapl-mmio");
        b.file(&format!("{mbase}/enabled"), "1\n", 0o644)?;
        b.link(&format!("{CLASS_POWERCAP}/intel-rapl-mmio"), &mbase)?;
        let mrel = format!("{mbase}/intel-rapl-mmio:0");
        let lim = self.pkg_lim(0, RegRef::Local(self.regs.pkg_limit));
        zone(b, s, io, &mrel, "intel-rapl-mmio:0", "package-0", self.c.pkg[0], ESU_PKG, lim)?;
        dev.truncate.push(b.p(&mrel));
        dev.remove.push(b.p(&mrel));
        dev.remove.push(b.p(&format!("{CLASS_POWERCAP}/intel-rapl-mmio:0")));
        Ok(())
    }

    /// The MSR images: limit and info registers first (they overlap each other and the energy
    /// registers), then units and energy registers, which stay exact.
    fn images(&self, b: &B<'_>, spec: &CpuSpec, io: &mut Io) -> Result<(), SimError> {
        let r = &self.regs;
        let fixed = [
            (0x610, r.pkg_limit),
            (0x614, r.pkg_info),
            (0x618, r.dram_limit),
            (0x61C, r.dram_info),
            (0x65C, r.psys_limit),
            (0x606, INTEL_UNITS),
        ];
        for p in 0..2u32 {
            let i = p as usize;
            let mut regs = vec![(0x611, Some(self.c.pkg[i])), (0x619, self.c.dram[i])];
            if let Some(c) = self.c.core[i] {
                regs.push((0x639, Some(c)));
            }
            regs.push((0x64D, Some(self.c.psys)));
            io.images.push(image(b, spec, p, &fixed, regs)?);
        }
        Ok(())
    }
}

/// The psys zone `intel-rapl:{idx}` under `base`, counting `counter`, its limits synced with
/// MSR 0x65C.
fn psys(
    b: &B<'_>,
    s: &Shared,
    io: &mut Io,
    base: &str,
    idx: u32,
    counter: usize,
) -> Result<(), SimError> {
    let zname = format!("intel-rapl:{idx}");
    let zrel = format!("{base}/{zname}");
    let lim = ZoneLim::Sync {
        role: CapRole::Platform,
        reg: RegRef::Msr((0, 0x65C)),
        n: 2,
        max_uw: [0, 0],
    };
    zone(b, s, io, &zrel, &zname, "psys", counter, ESU_PKG, lim)?;
    io.devices.push(Device {
        ids: vec![DomainId::new(DomainKind::Platform, 0)],
        truncate: vec![b.p(&zrel)],
        remove: vec![b.p(&zrel), b.p(&format!("{CLASS_POWERCAP}/{zname}"))],
        removed: false,
    });
    Ok(())
}

/// intel-hybrid: a client package. `intel-rapl:0` package-0 (long_term 125 W over 56 s,
/// short_term 253 W, and a `peak_power` constraint_2 that only shows) with `core` (`:0:0`) and
/// `uncore` (`:0:1`) subzones, and `intel-rapl:1` psys (limits disabled). No MSR image.
pub(super) fn build_client(b: &B<'_>, s: &mut Shared, io: &mut Io) -> Result<(), SimError> {
    use DomainKind::{Core, Package, Platform, Uncore};
    let pkg_c = counter(s, Package, 0, ESU_PKG, 1.0, 0x4000_0000);
    let core_c = counter(s, Core, 0, ESU_PKG, 1.0, 0x3000_0000);
    let uncore_c = counter(s, Uncore, 0, ESU_PKG, 1.0, 0x2000_0000);
    let psys_c = counter(s, Platform, 0, ESU_PKG, 1.0, 0x6000_0000);
    let tau = us_to_window_field(56_000_000);
    let pkg_limit = limit_reg(125, true, tau, Some((253, true, 0x21)));
    let psys_limit = limit_reg(300, false, tau, Some((360, false, 0x21)));
    s.regs.insert((0, 0x606), Reg::Const(INTEL_UNITS));
    s.regs.insert((0, 0x610), Reg::Rw(pkg_limit));
    s.regs.insert((0, 0x611), Reg::Counter(pkg_c));
    s.regs.insert((0, 0x614), Reg::Const(power_info_reg(125, 0, 253, 0x12)));
    s.regs.insert((0, 0x639), Reg::Counter(core_c));
    s.regs.insert((0, 0x641), Reg::Counter(uncore_c));
    s.regs.insert((0, 0x64D), Reg::Counter(psys_c));
    s.regs.insert((0, 0x65C), Reg::Rw(psys_limit));

    let base = format!("{POWERCAP}/intel-rapl");
    b.file(&format!("{base}/enabled"), "1\n", 0o644)?;
    b.link(&format!("{CLASS_POWERCAP}/intel-rapl"), &base)?;
    let zrel = format!("{base}/intel-rapl:0");
    let lim = ZoneLim::Sync {
        role: CapRole::Package(0),
        reg: RegRef::Msr((0, 0x610)),
        n: 2,
        max_uw: [253_000_000, 253_000_000],
    };
    zone(b, s, io, &zrel, "intel-rapl:0", "package-0", pkg_c, ESU_PKG, lim)?;
    b.file(&format!("{zrel}/constraint_2_name"), "peak_power\n", 0o444)?;
    b.file(&format!("{zrel}/constraint_2_power_limit_uw"), "380000000\n", 0o644)?;
    let mut dev = Device {
        ids: vec![DomainId::new(Package, 0)],
        truncate: vec![b.p(&zrel)],
        remove: vec![b.p(&zrel), b.p(&format!("{CLASS_POWERCAP}/intel-rapl:0"))],
        removed: false,
    };
    let sub =
        |id, name, counter| Subzone { id, name, counter, esu: ESU_PKG, lim: ZoneLim::Fixed(false) };
    let subs = vec![
        sub(DomainId::new(Core, 0), "core", core_c),
        sub(DomainId::new(Uncore, 0), "uncore", uncore_c),
    ];
    subzones(b, s, io, ("intel-rapl:0", &zrel), subs, &mut dev)?;
    io.devices.push(dev);
    psys(b, s, io, &base, 1, psys_c)
}
