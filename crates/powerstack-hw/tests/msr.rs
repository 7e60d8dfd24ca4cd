//! The RAPL MSR provider over a register model injected through `probe_with`, and `DevMsr` over
//! device files that are plain files in a temporary root.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use powerstack_hw::providers::msr::{self, DevMsr, MsrIo};
use powerstack_hw::topology::{Cpu, CpuModel, Vendor};
use powerstack_hw::{CpuTopology, HwError, Platform, Probe, ProbeContext, Provider, Root};
use powerstack_model::{
    CounterSpec, DomainId, DomainKind, LimitWrite, Measurement, PowerReport, Value,
};

const SECOND_NS: u64 = 1_000_000_000;
/// Skylake-SP's 0x606: power 1/8 W, energy 2^-14 J, time 2^-10 s.
const SKX_UNITS: u64 = 0x000A_0E03;
/// PL1 125 W enabled + clamp, 1 s; PL2 150 W enabled, 2.44 ms.
const PKG_LIMIT: u64 = 0x0042_84B0_0015_83E8;
const LOCK: u64 = 1 << 63;
/// TDP 125 W, min 70 W, max 200 W.
const PKG_INFO: u64 = 0x0000_0640_0230_03E8;

/// A register model shared with the test, so registers can change after the provider took it.
#[derive(Clone, Default)]
struct FakeMsr {
    regs: Arc<Mutex<HashMap<(u32, u32), u64>>>,
    file_image: bool,
}

impl FakeMsr {
    fn set(&self, cpu: u32, addr: u32, value: u64) {
        self.regs.lock().unwrap().insert((cpu, addr), value);
    }

    fn remove(&self, cpu: u32, addr: u32) {
        self.regs.lock().unwrap().remove(&(cpu, addr));
    }
}

impl MsrIo for FakeMsr {
    fn read(&mut self, cpu: u32, addr: u32) -> Result<u64, HwError> {
        // An unimplemented MSR faults: the msr driver answers EIO.
        self.regs.lock().unwrap().get(&(cpu, addr)).copied().ok_or_else(|| HwError::Io {
            path: format!("/dev/cpu/{cpu}/msr").into(),
            source: std::io::Error::from_raw_os_error(5),
        })
    }

    fn write(&mut self, cpu: u32, addr: u32, value: u64) -> Result<(), HwError> {
        self.set(cpu, addr, value);
        Ok(())
    }

    fn is_file_image(&self) -> bool {
        self.file_image
    }
}

/// `sockets` packages of `cores` cores with two threads each; CPU numbers as Linux gives them
/// (first threads of every core of every package, then the siblings).
fn topology(vendor: Vendor, family: u32, model: u32, sockets: u32, cores: u32) -> CpuTopology {
    let per_thread = sockets * cores;
    let mut cpus = Vec::new();
    for thread in 0..2 {
        for pkg in 0..sockets {
            for core in 0..cores {
                let id = thread * per_thread + pkg * cores + core;
                cpus.push(Cpu {
                    id,
                    online: true,
                    package: Some(pkg),
                    die: Some(0),
                    core: Some(core),
                    siblings: vec![id],
                    capacity: None,
                });
            }
        }
    }
    cpus.sort_by_key(|c| c.id);
    CpuTopology { cpus, model: Some(CpuModel { vendor, family, model, name: "test CPU".into() }) }
}

fn intel(model: u32, sockets: u32) -> (CpuTopology, FakeMsr) {
    let t = topology(Vendor::Intel, 6, model, sockets, 4);
    let io = FakeMsr::default();
    for pkg in 0..sockets {
        let cpu = t.lead_cpu(pkg).unwrap();
        io.set(cpu, 0x606, SKX_UNITS);
        io.set(cpu, 0x610, PKG_LIMIT);
        io.set(cpu, 0x611, 1000);
        io.set(cpu, 0x614, PKG_INFO);
        io.set(cpu, 0x619, 2000);
        io.set(cpu, 0x618, 0x0015_8140); // 40 W, enabled, clamp, 1 s
        io.set(cpu, 0x61C, 0x0000_0000_0000_0000);
    }
    (t, io)
}

fn provider(t: &CpuTopology, io: &FakeMsr) -> (Box<dyn Provider>, Vec<String>) {
    let Probe { provider, warnings, .. } = msr::probe_with(t, Box::new(io.clone()));
    (provider.expect("an msr provider"), warnings.iter().map(|w| w.to_string()).collect())
}

fn spec(p: &dyn Provider, i: usize) -> CounterSpec {
    match p.domains()[i].measurement {
        Measurement::Energy(s) => s,
        Measurement::Power => panic!("not an energy domain"),
    }
}

#[test]
fn intel_packages_and_dram_with_their_units_and_sources() {
    let (t, io) = intel(0x55, 2);
    let (p, warnings) = provider(&t, &io);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(p.name(), "msr");
    let got: Vec<(DomainId, &str, Option<u32>)> =
        p.domains().iter().map(|d| (d.id, d.source.as_str(), d.socket)).collect();
    assert_eq!(
        got,
        vec![
            (DomainId::new(DomainKind::Package, 0), "cpu0 msr 0x611", Some(0)),
            (DomainId::new(DomainKind::Package, 1), "cpu4 msr 0x611", Some(1)),
            (DomainId::new(DomainKind::Memory, 0), "cpu0 msr 0x619", Some(0)),
            (DomainId::new(DomainKind::Memory, 1), "cpu4 msr 0x619", Some(1)),
        ]
    );
    assert_eq!(
        spec(p.as_ref(), 0),
        CounterSpec { joules_per_tick: 1.0 / 16384.0, wrap_ticks: Some(1 << 32) }
    );
    // Skylake-SP DRAM counts in the fixed 2^-16 J unit, not the package's 2^-14 J.
    assert_eq!(
        spec(p.as_ref(), 2),
        CounterSpec { joules_per_tick: 1.0 / 65536.0, wrap_ticks: Some(1 << 32) }
    );
}

#[test]
fn dram_uses_the_package_energy_unit_off_the_server_list() {
    let (t, io) = intel(0x9E, 1);
    let (p, _) = provider(&t, &io);
    assert_eq!(p.domains()[1].id, DomainId::new(DomainKind::Memory, 0));
    assert_eq!(spec(p.as_ref(), 1).joules_per_tick, 1.0 / 16384.0);
}

#[test]
fn dram_core_and_platform_appear_only_where_they_count() {
    let (t, io) = intel(0x55, 2);
    io.remove(0, 0x619); // package 0 has no DRAM register
    io.set(4, 0x619, 0xFFFF_FFFF_0000_0000); // a DRAM counter at 0 (only reserved bits set)
    io.set(0, 0x639, 0); // PP0 present but not counting
    io.set(4, 0x639, 77); // PP0 counting on package 1
    io.set(0, 0x64D, 5); // psys on package 0
    io.set(4, 0x64D, 5); // ... and never taken from package 1
    let (p, warnings) = provider(&t, &io);
    assert!(warnings.is_empty(), "{warnings:?}");
    let ids: Vec<DomainId> = p.domains().iter().map(|d| d.id).collect();
    assert_eq!(
        ids,
        vec![
            DomainId::new(DomainKind::Platform, 0),
            DomainId::new(DomainKind::Package, 0),
            DomainId::new(DomainKind::Package, 1),
            DomainId::new(DomainKind::Core, 1),
        ]
    );
    assert_eq!(p.domains()[0].socket, None);
    assert_eq!(p.domains()[0].source, "cpu0 msr 0x64d");
}

#[test]
fn energy_is_the_low_32_bits_and_a_wrap_of_0x611_is_extended() {
    let (t, io) = intel(0x55, 1);
    let unit = 1.0 / 16384.0;
    // Reserved high bits must not leak into the count.
    io.set(0, 0x611, 0xDEAD_0000_0000_0000 | (u64::from(u32::MAX) - 16384 * 10));
    let (p, _) = provider(&t, &io);
    let (mut platform, _) = Platform::new(vec![p]);
    let a = platform.sample_at(0, 0);
    // 10 J to the wrap, then 20 J past it: 30 J in 0.5 s.
    io.set(0, 0x611, 0xDEAD_0000_0000_0000 | (16384 * 20 - 1));
    let b = platform.sample_at(SECOND_NS / 2, 500_000);
    let r = PowerReport::between(platform.catalog(), &a, &b);
    let w = r.domains[0].power_watts.unwrap();
    assert!((w - 60.0).abs() < 1e-9, "{w}");
    let (Value::Energy { total_ticks: ta, .. }, Value::Energy { total_ticks: tb, joules, .. }) =
        (a.values[0], b.values[0])
    else {
        panic!("energy expected");
    };
    assert_eq!(tb - ta, 16384 * 30);
    assert!((joules - tb as f64 * unit).abs() < 1e-9);
}

#[test]
fn several_wraps_over_several_samples_never_go_negative() {
    let (t, io) = intel(0x55, 1);
    let (p, _) = provider(&t, &io);
    let (mut platform, _) = Platform::new(vec![p]);
    let mut prev = platform.sample_at(0, 0);
    let mut raw: u64 = 1000;
    for step in 1..=6u64 {
        // 200 kJ per 1000 s: a full 32-bit period at 2^-14 J is 262 kJ, so most steps wrap.
        let ticks = 200_000 * 16384;
        raw = (raw + ticks) % (1 << 32);
        io.set(0, 0x611, raw);
        let next = platform.sample_at(step * 1000 * SECOND_NS, 0);
        let r = PowerReport::between(platform.catalog(), &prev, &next);
        let w = r.domains[0].power_watts.unwrap();
        assert!((w - 200.0).abs() < 1e-9, "step {step}: {w}");
        prev = next;
    }
}

#[test]
fn intel_limits_decode_with_lock_and_info() {
    let (t, io) = intel(0x55, 1);
    let (p, _) = provider(&t, &io);
    let pl = &p.domains()[0].limits;
    assert_eq!(pl.len(), 2);
    assert_eq!(pl[0].name, "long_term");
    assert_eq!(pl[0].limit_watts, Some(125.0));
    assert_eq!(pl[0].min_watts, Some(70.0));
    assert_eq!(pl[0].max_watts, Some(200.0));
    assert_eq!(pl[0].time_window_s, Some(1.0));
    assert_eq!(pl[0].enabled, Some(true));
    assert!(!pl[0].locked);
    assert_eq!(pl[1].name, "short_term");
    assert_eq!(pl[1].limit_watts, Some(150.0));
    assert_eq!(pl[1].time_window_s, Some(2.5 / 1024.0));
    let dram = &p.domains()[1].limits;
    assert_eq!(dram.len(), 1);
    assert_eq!(dram[0].limit_watts, Some(40.0));
    assert_eq!(
        (dram[0].min_watts, dram[0].max_watts),
        (None, None),
        "a zero info register is unknown"
    );

    // The lock bit, and a max of 0 falling back to the TDP.
    io.set(0, 0x610, PKG_LIMIT | LOCK);
    io.set(0, 0x614, 0x03E8);
    let (p, _) = provider(&t, &io);
    let pl = &p.domains()[0].limits;
    assert!(pl.iter().all(|l| l.locked));
    assert_eq!(pl[0].max_watts, Some(125.0));
    assert!(!p.domains()[0].is_controllable());
}

#[test]
fn limits_are_refreshed_from_the_registers() {
    let (t, io) = intel(0x55, 1);
    let (p, _) = provider(&t, &io);
    let (mut platform, _) = Platform::new(vec![p]);
    io.set(0, 0x610, (PKG_LIMIT & !0x7FFF) | 800); // PL1 100 W
    assert!(platform.refresh_limits().is_empty());
    assert_eq!(platform.catalog()[0].limits[0].limit_watts, Some(100.0));
    io.remove(0, 0x610);
    let w = platform.refresh_limits();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].message.contains("last known"), "{}", w[0]);
    assert_eq!(platform.catalog()[0].limits[0].limit_watts, Some(100.0));
}

#[test]
fn a_file_image_gives_energy_but_no_limits_and_one_warning() {
    let (t, mut io) = intel(0x55, 2);
    io.file_image = true;
    let (p, warnings) = provider(&t, &io);
    assert_eq!(p.domains().len(), 4);
    assert!(p.domains().iter().all(|d| d.limits.is_empty()));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(
        warnings[0],
        "msr: cpu0 msr is a regular file (a simulated image): power-info and limit registers overlap in a file and are not read; energy and units are read"
    );
}

#[test]
fn a_package_without_units_is_skipped_with_a_warning() {
    let (t, io) = intel(0x55, 2);
    io.remove(4, 0x606);
    let (p, warnings) = provider(&t, &io);
    assert!(p.domains().iter().all(|d| d.socket == Some(0)));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("package 1") && warnings[0].contains("0x606"), "{}", warnings[0]);
}

fn amd(cores: u32) -> (CpuTopology, FakeMsr) {
    let t = topology(Vendor::Amd, 0x19, 0x01, 2, cores);
    let io = FakeMsr::default();
    for cpu in t.cpus.iter().map(|c| c.id) {
        io.set(cpu, 0xC001_0299, 0x000A_1003); // energy 2^-16 J
        io.set(cpu, 0xC001_029B, 500);
        io.set(cpu, 0xC001_029A, 100);
    }
    (t, io)
}

#[test]
fn amd_packages_and_core_sums_over_physical_cores() {
    let (t, io) = amd(4);
    let (p, warnings) = provider(&t, &io);
    assert!(warnings.is_empty(), "{warnings:?}");
    let got: Vec<(DomainId, &str)> =
        p.domains().iter().map(|d| (d.id, d.source.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (DomainId::new(DomainKind::Package, 0), "cpu0 msr 0xc001029b"),
            (DomainId::new(DomainKind::Package, 1), "cpu4 msr 0xc001029b"),
            (DomainId::new(DomainKind::Core, 0), "cpus 0-3 msr 0xc001029a (sum over 4 cores)"),
            (DomainId::new(DomainKind::Core, 1), "cpus 4-7 msr 0xc001029a (sum over 4 cores)"),
        ]
    );
    assert!(p.domains().iter().all(|d| d.limits.is_empty()));
    assert_eq!(
        spec(p.as_ref(), 0),
        CounterSpec { joules_per_tick: 1.0 / 65536.0, wrap_ticks: Some(1 << 32) }
    );
    assert_eq!(spec(p.as_ref(), 2), CounterSpec::non_wrapping(1.0 / 65536.0));
}

#[test]
fn an_amd_file_image_reports_packages_but_not_the_overlapping_core_register() {
    let (t, mut io) = amd(4);
    io.file_image = true;
    let (p, warnings) = provider(&t, &io);
    let kinds: Vec<DomainKind> = p.domains().iter().map(|d| d.id.kind).collect();
    assert_eq!(kinds, vec![DomainKind::Package, DomainKind::Package]);
    assert!(
        warnings.iter().any(|w| w.contains("0xc001029a") && w.contains("regular file")),
        "{warnings:?}"
    );
}

#[test]
fn amd_core_sum_extends_each_core_across_its_own_wrap() {
    let (t, io) = amd(4);
    // Package 0's cores: cores 0-2 draw 5 W each (5 × 65536 ticks/s at 2^-16 J), core 3 draws
    // 15 W. Core 2 starts just below its 32-bit wrap and wraps in the first interval; core 3 wraps
    // in the second. A sum of raw values would go backwards twice.
    let per_core_ticks = 5 * 65536u64;
    let mut raw = [100u64, 100, u64::from(u32::MAX) - 1000, u64::from(u32::MAX) - 1_000_000];
    for (cpu, r) in raw.iter().enumerate() {
        io.set(cpu as u32, 0xC001_029A, *r);
    }
    let (p, _) = provider(&t, &io);
    let (mut platform, _) = Platform::new(vec![p]);
    let mut prev = platform.sample_at(0, 0);
    for step in 1..=3u64 {
        for (cpu, r) in raw.iter_mut().enumerate() {
            let ticks = if cpu == 3 { 3 * per_core_ticks } else { per_core_ticks };
            *r = (*r + ticks) % (1 << 32);
            io.set(cpu as u32, 0xC001_029A, *r);
        }
        let next = platform.sample_at(step * SECOND_NS, 0);
        let r = PowerReport::between(platform.catalog(), &prev, &next);
        let core0 = r.get(DomainId::new(DomainKind::Core, 0)).unwrap().power_watts.unwrap();
        assert!((core0 - 30.0).abs() < 1e-9, "step {step}: {core0} W");
        // Package 1's cores draw nothing here: 0 W, until their counters have stood still
        // for a second, when they are stale (missing), never another package's figure.
        let core1 = r.get(DomainId::new(DomainKind::Core, 1)).unwrap().power_watts;
        assert!(matches!(core1, Some(0.0) | None), "step {step}: {core1:?}");
        prev = next;
    }
}

#[test]
fn an_unreadable_core_drops_the_core_sum_not_the_package() {
    let (t, io) = amd(4);
    io.remove(6, 0xC001_029A);
    let (p, warnings) = provider(&t, &io);
    let ids: Vec<DomainId> = p.domains().iter().map(|d| d.id).collect();
    assert_eq!(
        ids,
        vec![
            DomainId::new(DomainKind::Package, 0),
            DomainId::new(DomainKind::Package, 1),
            DomainId::new(DomainKind::Core, 0),
        ]
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("core-1") && warnings[0].contains("cpu6"), "{}", warnings[0]);
}

#[test]
fn unknown_cpus_are_declined_with_a_reason() {
    let t = topology(Vendor::Other("CentaurHauls".into()), 6, 0x0F, 1, 2);
    let probe = msr::probe_with(&t, Box::new(FakeMsr::default()));
    assert!(probe.provider.is_none());
    assert_eq!(probe.warnings.len(), 1);
    let msg = &probe.warnings[0].message;
    assert!(msg.contains("CentaurHauls family 0x6") && msg.contains("powercap"), "{msg}");
    let old_amd = topology(Vendor::Amd, 0x15, 0x01, 1, 2);
    assert!(msr::probe_with(&old_amd, Box::new(FakeMsr::default())).provider.is_none());
}

// ---- DevMsr over plain files --------------------------------------------------------------

/// A root with `/proc/cpuinfo`, one package of `cpus` CPUs in sysfs, and (when `with_dev`)
/// `/dev/cpu/N/msr` image files.
fn dev_root(cpus: u32, with_dev: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::create_dir_all(base.join("proc")).unwrap();
    std::fs::write(
        base.join("proc/cpuinfo"),
        "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R) Gold 6148\n\n",
    )
    .unwrap();
    let sys = base.join("sys/devices/system/cpu");
    std::fs::create_dir_all(&sys).unwrap();
    std::fs::write(sys.join("online"), format!("0-{}\n", cpus - 1)).unwrap();
    for cpu in 0..cpus {
        let topo = sys.join(format!("cpu{cpu}/topology"));
        std::fs::create_dir_all(&topo).unwrap();
        std::fs::write(topo.join("physical_package_id"), "0\n").unwrap();
        std::fs::write(topo.join("core_id"), format!("{cpu}\n")).unwrap();
        if with_dev {
            let dev = base.join(format!("dev/cpu/{cpu}"));
            std::fs::create_dir_all(&dev).unwrap();
            let f = std::fs::File::create(dev.join("msr")).unwrap();
            f.set_len(0x700).unwrap();
        }
    }
    dir
}

fn poke(path: &std::path::Path, addr: u64, value: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&value.to_le_bytes(), addr).unwrap();
}

#[test]
fn dev_msr_reads_little_endian_registers_at_their_offset() {
    let dir = dev_root(2, true);
    let msr0 = dir.path().join("dev/cpu/0/msr");
    poke(&msr0, 0x606, SKX_UNITS);
    poke(&msr0, 0x611, 0x0000_0000_1234_5678);
    let mut dev = DevMsr::new(&Root::new(dir.path()));
    assert_eq!(dev.cpus(), &[0, 1]);
    assert!(dev.is_file_image());
    assert_eq!(dev.read(0, 0x606).unwrap(), SKX_UNITS);
    assert_eq!(dev.read(0, 0x611).unwrap(), 0x1234_5678);
    // Writes land at the offset too, and the kept-open file sees later changes.
    dev.write(1, 0x611, 42).unwrap();
    assert_eq!(dev.read(1, 0x611).unwrap(), 42);
    poke(&msr0, 0x611, 7);
    assert_eq!(dev.read(0, 0x611).unwrap(), 7);
    // Past the end of the image: a short read is malformed, never a made-up value.
    let e = dev.read(0, 0x6FC).unwrap_err();
    assert!(matches!(e, HwError::Malformed { .. }), "{e}");
    // A CPU without a device is named in the error.
    let e = dev.read(9, 0x611).unwrap_err();
    assert!(matches!(e, HwError::Vanished { .. }), "{e}");
}

#[test]
fn dev_msr_prefers_msr_safe() {
    let dir = dev_root(1, true);
    let safe = dir.path().join("dev/cpu/0/msr_safe");
    std::fs::File::create(&safe).unwrap().set_len(0x700).unwrap();
    poke(&safe, 0x611, 11);
    poke(&dir.path().join("dev/cpu/0/msr"), 0x611, 22);
    let mut dev = DevMsr::new(&Root::new(dir.path()));
    assert_eq!(dev.read(0, 0x611).unwrap(), 11);
}

#[test]
fn probe_reads_energy_from_a_file_image_and_warns_about_limits() {
    let dir = dev_root(2, true);
    let msr0 = dir.path().join("dev/cpu/0/msr");
    poke(&msr0, 0x606, SKX_UNITS);
    poke(&msr0, 0x611, 16384 * 100); // 100 J
    poke(&msr0, 0x619, 65536 * 10); // 10 J in the fixed DRAM unit
    let root = Root::new(dir.path());
    let (topology, tw) = CpuTopology::discover(&root);
    assert!(tw.is_empty(), "{tw:?}");
    let Probe { provider, warnings, .. } = msr::probe(&ProbeContext::new(&root, &topology));
    let p = provider.expect("an msr provider");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].message.contains("regular file"));
    let (mut platform, _) = Platform::new(vec![p]);
    let a = platform.sample_at(0, 0);
    let joules = |v: Value| match v {
        Value::Energy { joules, .. } => joules,
        other => panic!("{other:?}"),
    };
    assert_eq!(joules(a.values[0]), 100.0);
    assert_eq!(joules(a.values[1]), 10.0);
    poke(&msr0, 0x611, 16384 * 170);
    poke(&msr0, 0x619, 65536 * 15);
    let b = platform.sample_at(SECOND_NS, 1_000_000);
    let r = PowerReport::between(platform.catalog(), &a, &b);
    assert_eq!(r.domains[0].power_watts, Some(70.0));
    assert_eq!(r.domains[1].power_watts, Some(5.0));
    assert_eq!(r.node.unwrap().watts, 75.0);
}

#[test]
fn probe_without_devices_says_how_to_get_them() {
    let dir = dev_root(2, false);
    let root = Root::new(dir.path());
    let (topology, _) = CpuTopology::discover(&root);
    let probe = msr::probe(&ProbeContext::new(&root, &topology));
    assert!(probe.provider.is_none());
    // Absent, not a warning by itself: discovery decides whether it is one.
    assert!(probe.warnings.is_empty(), "{:?}", probe.warnings);
    let msg = probe.absent.expect("the msr source is absent");
    assert!(msg.contains("modprobe msr") && msg.contains("msr-safe"), "{msg}");
}

#[test]
fn msr_permission_errors_say_what_to_do() {
    let e = HwError::from_io(
        std::path::Path::new("/dev/cpu/0/msr"),
        std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        "msr (load the msr module and run as root, or use msr-safe with an allowlist)",
    );
    let msg = e.to_string();
    assert!(msg.contains("run as root") && msg.contains("msr-safe"), "{msg}");
}

fn lw(constraint: &str, watts: f64, window: Option<f64>, enabled: Option<bool>) -> LimitWrite {
    LimitWrite { constraint: constraint.into(), limit_watts: watts, time_window_s: window, enabled }
}

#[test]
fn writes_encode_pl1_and_pl2_keep_other_bits_and_read_back() {
    let (t, io) = intel(0x55, 1);
    let (p, _) = provider(&t, &io);
    let (mut platform, _) = Platform::new(vec![p]);
    let before = io.regs.lock().unwrap()[&(0, 0x610)];
    platform.write_limit(0, &lw("long_term", 90.0, Some(1.0), Some(true))).unwrap();
    let after = io.regs.lock().unwrap()[&(0, 0x610)];
    // PL1 = 90 W / (1/8 W) = 720 = 0x2D0; PL2 (upper half) untouched.
    assert_eq!(after & 0x7FFF, 720);
    assert_eq!(after >> 32, before >> 32);
    assert_ne!(after & (1 << 15), 0, "enabled");
    let l = platform.catalog()[0].limit("long_term").unwrap();
    assert_eq!((l.limit_watts, l.time_window_s), (Some(90.0), Some(1.0)));
    platform.write_limit(0, &lw("short_term", 160.0, None, None)).unwrap();
    let after2 = io.regs.lock().unwrap()[&(0, 0x610)];
    assert_eq!((after2 >> 32) & 0x7FFF, 1280);
    assert_eq!(after2 & 0xFFFF_FFFF, after & 0xFFFF_FFFF);
    assert_eq!(platform.catalog()[0].limit("short_term").unwrap().limit_watts, Some(160.0));
    // DRAM: long-term only.
    platform.write_limit(1, &lw("long_term", 30.0, None, None)).unwrap();
    assert_eq!(platform.catalog()[1].limit("long_term").unwrap().limit_watts, Some(30.0));
    assert!(platform.write_limit(1, &lw("short_term", 30.0, None, None)).is_err());
}

#[test]
fn a_locked_register_or_a_value_beyond_the_field_is_refused_untouched() {
    let (t, io) = intel(0x55, 1);
    io.set(0, 0x610, PKG_LIMIT | LOCK);
    let (p, _) = provider(&t, &io);
    let (mut platform, _) = Platform::new(vec![p]);
    let e = platform.write_limit(0, &lw("long_term", 90.0, None, None)).unwrap_err();
    assert!(matches!(e, HwError::Locked { .. }), "{e}");
    assert!(e.to_string().contains("lock bit 63"), "{e}");
    assert_eq!(io.regs.lock().unwrap()[&(0, 0x610)], PKG_LIMIT | LOCK);
    io.set(0, 0x610, PKG_LIMIT);
    let e = platform.write_limit(0, &lw("long_term", 5000.0, None, None)).unwrap_err();
    assert!(matches!(e, HwError::Refused { .. }), "{e}");
    assert_eq!(io.regs.lock().unwrap()[&(0, 0x610)], PKG_LIMIT);
}

#[test]
fn a_file_image_cannot_be_capped() {
    let (t, mut io) = intel(0x55, 1);
    io.file_image = true;
    let (p, _) = provider(&t, &io);
    let (mut platform, _) = Platform::new(vec![p]);
    let e = platform.write_limit(0, &lw("long_term", 90.0, None, None)).unwrap_err();
    assert!(e.to_string().contains("file image"), "{e}");
}
