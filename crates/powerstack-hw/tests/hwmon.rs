//! The hwmon provider on hand-built sysfs trees laid out like the kernel's: chip directories under
//! their devices, relative `sys/class/hwmon/hwmonN` links to them and a `device` link in each chip.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use powerstack_hw::providers::hwmon::{self, Hwmon};
use powerstack_hw::{CpuTopology, HwError, Platform, Provider, Reading, Root, Selection, Source};
use powerstack_model::{
    DomainId, DomainKind, LimitWrite, Measurement, NodeSource, PowerReport, Value,
};
use tempfile::TempDir;

const ACPI_METER: &str = "LNXSYSTM:00/LNXSYBUS:00/ACPI000D:00";

struct Tree {
    dir: TempDir,
}

impl Tree {
    fn new() -> Tree {
        Tree { dir: tempfile::tempdir().unwrap() }
    }

    fn root(&self) -> Root {
        Root::new(self.dir.path())
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    /// CPUs as (cpu, package) pairs.
    fn cpus(&self, cpus: &[(u32, u32)]) {
        for (cpu, pkg) in cpus {
            self.write(
                &format!("sys/devices/system/cpu/cpu{cpu}/topology/physical_package_id"),
                &format!("{pkg}\n"),
            );
        }
    }

    fn numa_node(&self, node: u32, cpulist: &str) {
        self.write(&format!("sys/devices/system/node/node{node}/cpulist"), &format!("{cpulist}\n"));
    }

    fn topology(&self) -> CpuTopology {
        CpuTopology::discover(&self.root()).0
    }

    /// A chip registered the modern way: attributes in `devices/<device>/hwmon/<class>/`.
    fn chip(&self, class: &str, device: &str, name: &str, attrs: &[(&str, &str)]) -> PathBuf {
        let dev_rel = format!("sys/devices/{device}");
        let chip_rel = format!("{dev_rel}/hwmon/{class}");
        fs::create_dir_all(self.path(&chip_rel)).unwrap();
        self.write(&format!("{chip_rel}/name"), &format!("{name}\n"));
        for (a, v) in attrs {
            self.write(&format!("{chip_rel}/{a}"), &format!("{v}\n"));
        }
        symlink("../..", self.path(&format!("{chip_rel}/device"))).unwrap();
        self.link(class, &chip_rel);
        self.path(&chip_rel)
    }

    /// A chip of an old driver: `name` and attributes in the device directory.
    fn old_chip(&self, class: &str, device: &str, name: &str, attrs: &[(&str, &str)]) -> PathBuf {
        let dev_rel = format!("sys/devices/{device}");
        let chip_rel = format!("{dev_rel}/hwmon/{class}");
        fs::create_dir_all(self.path(&chip_rel)).unwrap();
        self.write(&format!("{dev_rel}/name"), &format!("{name}\n"));
        for (a, v) in attrs {
            self.write(&format!("{dev_rel}/{a}"), &format!("{v}\n"));
        }
        symlink("../..", self.path(&format!("{chip_rel}/device"))).unwrap();
        self.link(class, &chip_rel);
        self.path(&dev_rel)
    }

    fn link(&self, class: &str, chip_rel: &str) {
        fs::create_dir_all(self.path("sys/class/hwmon")).unwrap();
        let target = format!("../../{}", chip_rel.trim_start_matches("sys/"));
        symlink(target, self.path(&format!("sys/class/hwmon/{class}"))).unwrap();
    }

    /// A PCI GPU device directory with its NUMA node; returns the device path under `sys/devices`.
    fn pci_gpu(&self, addr: &str, numa_node: i32) -> String {
        let device = format!("pci0000:00/0000:00:03.1/{addr}");
        self.write(&format!("sys/devices/{device}/numa_node"), &format!("{numa_node}\n"));
        device
    }

    fn open(&self) -> (Hwmon, Vec<powerstack_hw::Warning>) {
        let (p, w) = Hwmon::open(&self.root(), &self.topology());
        (p.expect("hwmon found nothing"), w)
    }
}

fn set(path: &Path, content: &str) {
    fs::write(path, content).unwrap();
}

fn read_all(p: &mut Hwmon) -> Vec<Reading> {
    let mut out: Vec<Reading> = p.domains().iter().map(|_| Reading::Pending).collect();
    p.read(&mut out);
    out
}

fn platform(p: Hwmon) -> Platform {
    let (platform, w) = Platform::new(vec![Box::new(p)]);
    assert!(w.is_empty(), "{w:?}");
    platform
}

fn power(report: &PowerReport, id: DomainId) -> Option<f64> {
    report.get(id).and_then(|d| d.power_watts)
}

const GPU0: DomainId = DomainId::new(DomainKind::Gpu, 0);
const GPU1: DomainId = DomainId::new(DomainKind::Gpu, 1);
const GPU2: DomainId = DomainId::new(DomainKind::Gpu, 2);

#[test]
fn a_power_meter_is_the_node_source() {
    let t = Tree::new();
    t.cpus(&[(0, 0), (1, 0)]);
    let chip = t.chip(
        "hwmon0",
        ACPI_METER,
        "power_meter",
        &[
            ("power1_average", "350000000"),
            ("power1_average_interval", "1000"),
            ("power1_cap", "400000000"),
            ("power1_cap_min", "100000000"),
            ("power1_cap_max", "500000000"),
        ],
    );
    let (p, w) = t.open();
    assert!(w.is_empty(), "{w:?}");
    let d = &p.domains()[0];
    assert_eq!(p.domains().len(), 1);
    assert_eq!(d.id, DomainId::NODE);
    assert_eq!(d.measurement, Measurement::Power);
    assert_eq!(d.source, "power_meter ACPI000D:00 power1_average");
    assert_eq!(d.limits.len(), 1);
    let cap = &d.limits[0];
    assert_eq!(cap.name, "cap");
    assert_eq!(
        (cap.limit_watts, cap.min_watts, cap.max_watts),
        (Some(400.0), Some(100.0), Some(500.0))
    );

    let mut pf = platform(p);
    let a = pf.sample_at(0, 0);
    set(&chip.join("power1_average"), "360000000\n");
    let b = pf.sample_at(1_000_000_000, 1_000_000);
    let r = PowerReport::between(pf.catalog(), &a, &b);
    let node = r.node.unwrap();
    assert_eq!(node.source, NodeSource::Direct(0));
    assert_eq!(node.watts, 355.0);
}

#[test]
fn amdgpu_power_cap_and_label() {
    let t = Tree::new();
    t.cpus(&[(0, 0)]);
    let dev = t.pci_gpu("0000:03:00.0", -1);
    let chip = t.chip(
        "hwmon3",
        &dev,
        "amdgpu",
        &[
            ("power1_average", "120000000"),
            ("power1_input", "999000000"),
            ("power1_label", "PPT"),
            ("power1_cap", "250000000"),
            ("power1_cap_min", "100000000"),
            ("power1_cap_max", "300000000"),
            ("power1_cap_default", "250000000"),
            ("temp1_input", "45000"),
        ],
    );
    fs::set_permissions(chip.join("power1_cap"), fs::Permissions::from_mode(0o644)).unwrap();
    let (mut p, w) = t.open();
    assert!(w.is_empty(), "{w:?}");
    let d = p.domains()[0].clone();
    assert_eq!(d.id, GPU0);
    assert_eq!(d.source, "amdgpu 0000:03:00.0 power1_average");
    assert_eq!(d.label.as_deref(), Some("PPT"));
    assert_eq!(d.socket, Some(0), "numa_node -1 on a one-package node: its only package");
    let cap = &d.limits[0];
    assert_eq!(
        (cap.limit_watts, cap.min_watts, cap.max_watts),
        (Some(250.0), Some(100.0), Some(300.0))
    );
    assert_eq!(cap.default_watts, Some(250.0), "from power1_cap_default");
    assert_eq!((cap.time_window_s, cap.enabled), (None, None));
    assert!(!cap.locked);
    assert!(d.is_controllable());
    // The average is preferred over the instantaneous input.
    assert!(matches!(read_all(&mut p)[0], Reading::Power(w) if w == 120.0));

    // Uncapped and read-only after a change: refresh_limits re-reads.
    set(&chip.join("power1_cap"), "0\n");
    fs::set_permissions(chip.join("power1_cap"), fs::Permissions::from_mode(0o444)).unwrap();
    assert!(p.refresh_limits().is_empty());
    let cap = &p.domains()[0].limits[0];
    assert_eq!(cap.limit_watts, None);
    assert!(cap.locked);
}

#[test]
fn amdgpu_without_an_average_uses_the_input() {
    let t = Tree::new();
    let dev = t.pci_gpu("0000:03:00.0", 0);
    t.chip("hwmon1", &dev, "amdgpu", &[("power1_input", "80000000")]);
    let (mut p, _) = t.open();
    assert_eq!(p.domains()[0].source, "amdgpu 0000:03:00.0 power1_input");
    assert!(matches!(read_all(&mut p)[0], Reading::Power(w) if w == 80.0));
}

#[test]
fn gpu_numbers_follow_the_pci_address_not_the_hwmon_number() {
    let t = Tree::new();
    t.cpus(&[(0, 0)]);
    let c1 = t.pci_gpu("0000:c1:00.0", 0);
    let c2 = t.pci_gpu("0000:03:00.0", 0);
    let c3 = t.pci_gpu("0000:41:00.0", 0);
    t.chip("hwmon2", &c1, "amdgpu", &[("power1_average", "1000000")]);
    t.chip("hwmon9", &c2, "amdgpu", &[("power1_average", "2000000")]);
    t.chip(
        "hwmon5",
        &c3,
        "xe",
        &[("energy1_input", "3000000"), ("energy1_label", "card"), ("energy2_input", "1")],
    );
    t.chip("hwmon0", "platform/coretemp.0", "coretemp", &[]);
    let (p, w) = t.open();
    assert!(w.is_empty(), "{w:?}");
    let ids: Vec<(DomainId, &str)> =
        p.domains().iter().map(|d| (d.id, d.source.as_str())).collect();
    assert_eq!(
        ids,
        vec![
            (GPU0, "amdgpu 0000:03:00.0 power1_average"),
            (GPU1, "xe 0000:41:00.0 energy1_input"),
            (GPU2, "amdgpu 0000:c1:00.0 power1_average"),
        ]
    );
    assert_eq!(
        p.domains()[1].measurement,
        Measurement::Energy(powerstack_model::CounterSpec::non_wrapping(1e-6))
    );
    assert_eq!(p.domains()[1].label.as_deref(), Some("card"));
    assert!(p.domains().iter().all(|d| d.socket == Some(0)), "one package: socket 0");
}

#[test]
fn gpus_on_different_numa_nodes_map_to_their_sockets() {
    let t = Tree::new();
    t.cpus(&[(0, 0), (1, 0), (2, 1), (3, 1)]);
    t.numa_node(0, "0-1");
    t.numa_node(1, "2-3");
    let a = t.pci_gpu("0000:03:00.0", 0);
    let b = t.pci_gpu("0000:83:00.0", 1);
    let c = t.pci_gpu("0000:c3:00.0", -1);
    t.chip("hwmon1", &a, "amdgpu", &[("power1_average", "1000000")]);
    t.chip("hwmon2", &b, "amdgpu", &[("power1_average", "1000000")]);
    t.chip("hwmon3", &c, "amdgpu", &[("power1_average", "1000000")]);
    let (p, _) = t.open();
    let sockets: Vec<Option<u32>> = p.domains().iter().map(|d| d.socket).collect();
    assert_eq!(sockets, vec![Some(0), Some(1), None]);
}

#[test]
fn attributes_of_old_drivers_are_found_in_the_device_directory() {
    let t = Tree::new();
    let dev = t.old_chip(
        "hwmon4",
        ACPI_METER,
        "power_meter",
        &[("power1_average", "300000000"), ("power1_cap", "0")],
    );
    let (mut p, w) = t.open();
    assert!(w.is_empty(), "{w:?}");
    let d = &p.domains()[0];
    assert_eq!(d.id, DomainId::NODE);
    assert_eq!(d.source, "power_meter ACPI000D:00 power1_average");
    assert_eq!(d.limits[0].limit_watts, None, "a cap of 0 is uncapped");
    assert!(matches!(read_all(&mut p)[0], Reading::Power(w) if w == 300.0));
    set(&dev.join("power1_average"), "310000000\n");
    assert!(matches!(read_all(&mut p)[0], Reading::Power(w) if w == 310.0));
}

#[test]
fn a_chip_without_a_name_is_skipped_with_a_warning() {
    let t = Tree::new();
    let chip = t.chip("hwmon7", "platform/foo.0", "x", &[("power1_input", "1")]);
    fs::remove_file(chip.join("name")).unwrap();
    let (p, w) = Hwmon::open(&t.root(), &t.topology());
    assert!(p.is_none());
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].message.contains("name"), "{w:?}");
}

#[test]
fn an_unmapped_chip_with_power_channels_is_reported_and_others_are_silent() {
    let t = Tree::new();
    t.chip("hwmon0", "platform/nct6775.656", "nct6775", &[("power1_input", "5000000")]);
    t.chip("hwmon1", "platform/coretemp.0", "coretemp", &[("temp1_input", "40000")]);
    t.chip(
        "hwmon2",
        "pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0",
        "nvme",
        &[("temp1_input", "40000")],
    );
    t.chip("hwmon3", ACPI_METER, "power_meter", &[("power1_average", "1")]);
    let (p, w) = t.open();
    assert_eq!(p.domains().len(), 1);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].message.contains("nct6775") && w[0].message.contains("not mapped"), "{w:?}");
}

#[test]
fn disabled_channels_are_skipped() {
    let t = Tree::new();
    t.chip(
        "hwmon0",
        ACPI_METER,
        "power_meter",
        &[("power1_average", "1"), ("power1_enable", "0"), ("power2_average", "2000000")],
    );
    let (p, _) = t.open();
    assert_eq!(p.domains()[0].source, "power_meter ACPI000D:00 power2_average");
}

#[test]
fn two_power_meters_keep_the_first_by_device_path_and_warn() {
    let t = Tree::new();
    t.chip(
        "hwmon0",
        "LNXSYSTM:00/LNXSYBUS:00/ACPI000D:01",
        "power_meter",
        &[("power1_average", "2")],
    );
    t.chip(
        "hwmon1",
        "LNXSYSTM:00/LNXSYBUS:00/ACPI000D:00",
        "power_meter",
        &[("power1_average", "1")],
    );
    let (p, w) = t.open();
    assert_eq!(p.domains().len(), 1);
    assert_eq!(p.domains()[0].source, "power_meter ACPI000D:00 power1_average");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].message.contains("ACPI000D:01"), "{w:?}");
}

#[test]
fn amd_energy_socket_channels_are_packages() {
    let t = Tree::new();
    t.cpus(&[(0, 0), (1, 1)]);
    t.chip(
        "hwmon2",
        "platform/amd_energy.0",
        "amd_energy",
        &[
            ("energy1_input", "10"),
            ("energy1_label", "Ecore000"),
            ("energy2_input", "20"),
            ("energy2_label", "Ecore001"),
            ("energy3_input", "30000000"),
            ("energy3_label", "Esocket0"),
            ("energy4_input", "40000000"),
            ("energy4_label", "Esocket1"),
        ],
    );
    let (mut p, w) = t.open();
    assert!(w.is_empty(), "{w:?}");
    let ids: Vec<(DomainId, Option<u32>, &str)> =
        p.domains().iter().map(|d| (d.id, d.socket, d.source.as_str())).collect();
    assert_eq!(
        ids,
        vec![
            (
                DomainId::new(DomainKind::Package, 0),
                Some(0),
                "amd_energy amd_energy.0 energy3_input"
            ),
            (
                DomainId::new(DomainKind::Package, 1),
                Some(1),
                "amd_energy amd_energy.0 energy4_input"
            ),
        ]
    );
    let r = read_all(&mut p);
    assert!(matches!(r[1], Reading::Energy(e) if e.ticks == 40_000_000));
}

#[test]
fn a_vanishing_device_reads_missing_with_a_warning_and_the_others_keep_reading() {
    let t = Tree::new();
    let meter = t.chip("hwmon0", ACPI_METER, "power_meter", &[("power1_average", "300000000")]);
    let dev = t.pci_gpu("0000:03:00.0", 0);
    let gpu = t.chip(
        "hwmon1",
        &dev,
        "amdgpu",
        &[("power1_average", "100000000"), ("power1_cap", "200000000")],
    );
    let (p, _) = t.open();
    let mut pf = platform(p);
    let gpu_i = pf.catalog().iter().position(|d| d.id == GPU0).unwrap();
    let a = pf.sample_at(0, 0);
    assert!(matches!(a.values[gpu_i], Value::Power { watts } if watts == 100.0));
    // The driver is unbound: the attributes read empty, then the directory goes away.
    for entry in fs::read_dir(&gpu).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            fs::write(entry.path(), "").unwrap();
        }
    }
    fs::remove_dir_all(t.path(&format!("sys/devices/{dev}"))).unwrap();
    set(&meter.join("power1_average"), "310000000\n");
    let b = pf.sample_at(1_000_000_000, 1_000_000);
    assert_eq!(b.values[gpu_i], Value::Missing);
    let w = pf.take_warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].message.contains("gpu-0"), "{w:?}");
    let r = PowerReport::between(pf.catalog(), &a, &b);
    assert_eq!(power(&r, GPU0), None);
    assert_eq!(power(&r, DomainId::NODE), Some(305.0));
    // Limits of the gone device: a warning, the last known cap kept.
    let lw = pf.refresh_limits();
    assert_eq!(lw.len(), 1, "{lw:?}");
    assert_eq!(pf.catalog()[gpu_i].limits[0].limit_watts, Some(200.0));
    // Still Missing, no second warning.
    let c = pf.sample_at(2_000_000_000, 2_000_000);
    assert_eq!(c.values[gpu_i], Value::Missing);
    assert!(pf.take_warnings().is_empty());
}

#[test]
fn a_malformed_value_is_missing_never_a_number() {
    let t = Tree::new();
    let dev = t.pci_gpu("0000:03:00.0", 0);
    let chip = t.chip("hwmon1", &dev, "amdgpu", &[("power1_average", "100000000")]);
    let (mut p, _) = t.open();
    for bad in ["12a\n", "-5\n", "1.5\n", "\u{fffd}\n"] {
        set(&chip.join("power1_average"), bad);
        match &read_all(&mut p)[0] {
            Reading::Failed(e) => assert!(e.to_string().contains("power1_average"), "{e}"),
            other => panic!("{bad:?} read as {other:?}"),
        }
    }
    let mut pf = platform(p);
    let s = pf.sample_at(0, 0);
    assert_eq!(s.values[0], Value::Missing);
    assert_eq!(pf.take_warnings().len(), 1);
}

#[test]
fn an_energy_counter_reset_gives_no_negative_power() {
    let t = Tree::new();
    let dev = t.pci_gpu("0000:03:00.0", 0);
    let chip =
        t.chip("hwmon1", &dev, "i915", &[("energy1_input", "5000000000"), ("power1_input", "1")]);
    let (p, _) = t.open();
    assert_eq!(
        p.domains()[0].source,
        "i915 0000:03:00.0 energy1_input",
        "i915 prefers its energy counter"
    );
    let mut pf = platform(p);
    let a = pf.sample_at(0, 0);
    set(&chip.join("energy1_input"), "5050000000\n");
    let b = pf.sample_at(1_000_000_000, 1_000_000);
    assert_eq!(power(&PowerReport::between(pf.catalog(), &a, &b), GPU0), Some(50.0));
    // The driver reloaded: the counter restarted from zero.
    set(&chip.join("energy1_input"), "40000000\n");
    let c = pf.sample_at(2_000_000_000, 2_000_000);
    let p = power(&PowerReport::between(pf.catalog(), &b, &c), GPU0).unwrap();
    assert!((0.0..=50.0).contains(&p), "{p}");
    set(&chip.join("energy1_input"), "90000000\n");
    let d = pf.sample_at(3_000_000_000, 3_000_000);
    assert_eq!(power(&PowerReport::between(pf.catalog(), &c, &d), GPU0), Some(50.0));
}

#[test]
fn discovery_finds_hwmon_through_the_registry() {
    let t = Tree::new();
    t.cpus(&[(0, 0)]);
    t.chip("hwmon0", ACPI_METER, "power_meter", &[("power1_average", "1000000")]);
    let found = powerstack_hw::discover(&t.root(), &Selection::Only(vec![Source::Hwmon]));
    assert_eq!(found.platform.provider_names(), vec![hwmon::NAME]);
    assert_eq!(found.platform.catalog()[0].id, DomainId::NODE);
}

fn cap_write(watts: f64) -> LimitWrite {
    LimitWrite { constraint: "cap".into(), limit_watts: watts, time_window_s: None, enabled: None }
}

fn mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_cap_without_a_default_has_none() {
    let t = Tree::new();
    let dev = t.pci_gpu("0000:03:00.0", 0);
    t.chip("hwmon1", &dev, "amdgpu", &[("power1_average", "1000000"), ("power1_cap", "0")]);
    let (p, _) = t.open();
    let cap = &p.domains()[0].limits[0];
    assert_eq!((cap.limit_watts, cap.default_watts, cap.max_watts), (None, None, None));
}

#[test]
fn i915_and_xe_report_power1_max_as_the_cap() {
    let t = Tree::new();
    t.cpus(&[(0, 0)]);
    let a = t.pci_gpu("0000:03:00.0", 0);
    let b = t.pci_gpu("0000:04:00.0", 0);
    t.chip(
        "hwmon2",
        &a,
        "i915",
        &[
            ("energy1_input", "1000000"),
            ("power1_max", "150000000"),
            ("power1_max_interval", "28"),
            ("power1_rated_max", "190000000"),
            ("power1_crit", "400000000"),
        ],
    );
    let xe = t.chip(
        "hwmon1",
        &b,
        "xe",
        &[
            ("energy1_input", "1"),
            ("energy1_label", "card"),
            ("power1_max", "0"),
            ("power1_rated_max", "0"),
        ],
    );
    mode(&xe.join("power1_max"), 0o444);
    let (p, w) = t.open();
    assert!(w.is_empty(), "{w:?}");
    let i915 = p.domains()[0].limit("cap").unwrap();
    assert_eq!(i915.limit_watts, Some(150.0));
    assert_eq!(i915.time_window_s, Some(0.028), "power1_max_interval is in ms");
    assert_eq!((i915.max_watts, i915.default_watts), (Some(190.0), Some(190.0)));
    assert_eq!((i915.min_watts, i915.enabled, i915.locked), (None, Some(true), false));
    let xe = p.domains()[1].limit("cap").unwrap();
    assert_eq!((xe.limit_watts, xe.enabled), (None, Some(false)), "0 disables PL1");
    assert_eq!((xe.max_watts, xe.time_window_s), (None, None), "a rated max of 0 is unknown");
    assert!(xe.locked);
}

#[test]
fn write_limit_writes_the_cap_and_reads_the_limit_back() {
    let t = Tree::new();
    t.cpus(&[(0, 0)]);
    let dev = t.pci_gpu("0000:03:00.0", 0);
    let gpu = t.chip(
        "hwmon1",
        &dev,
        "amdgpu",
        &[
            ("power1_average", "100000000"),
            ("power1_cap", "250000000"),
            ("power1_cap_min", "0"),
            ("power1_cap_max", "300000000"),
            ("power1_cap_default", "300000000"),
        ],
    );
    let meter = t.chip(
        "hwmon0",
        ACPI_METER,
        "power_meter",
        &[("power1_average", "350000000"), ("power1_cap", "0")],
    );
    let (mut p, _) = t.open();
    let gpu_i = p.domains().iter().position(|d| d.id == GPU0).unwrap();
    // What the driver now says about the range: the read-back picks it up with the new value.
    set(&gpu.join("power1_cap_max"), "280000000\n");
    p.write_limit(gpu_i, &cap_write(200.0000004)).unwrap();
    assert_eq!(fs::read_to_string(gpu.join("power1_cap")).unwrap(), "200000000\n", "µW, rounded");
    let cap = p.domains()[gpu_i].limit("cap").unwrap();
    assert_eq!((cap.limit_watts, cap.max_watts), (Some(200.0), Some(280.0)));
    assert_eq!(cap.default_watts, Some(300.0));
    // The node meter's cap is written the same way, through the platform's catalog too.
    let mut pf = platform(p);
    let node_i = pf.catalog().iter().position(|d| d.id == DomainId::NODE).unwrap();
    pf.write_limit(node_i, &cap_write(450.5)).unwrap();
    assert_eq!(fs::read_to_string(meter.join("power1_cap")).unwrap(), "450500000\n");
    assert_eq!(pf.catalog()[node_i].limits[0].limit_watts, Some(450.5));
    // 0 W is uncapped.
    pf.write_limit(node_i, &cap_write(0.0)).unwrap();
    assert_eq!(pf.catalog()[node_i].limits[0].limit_watts, None);
}

#[test]
fn write_limit_on_i915_writes_power1_max_and_its_interval() {
    let t = Tree::new();
    let dev = t.pci_gpu("0000:03:00.0", 0);
    let chip = t.chip(
        "hwmon1",
        &dev,
        "i915",
        &[("energy1_input", "1"), ("power1_max", "0"), ("power1_max_interval", "28")],
    );
    let (mut p, _) = t.open();
    let w = LimitWrite { time_window_s: Some(0.5), ..cap_write(120.0) };
    p.write_limit(0, &w).unwrap();
    assert_eq!(fs::read_to_string(chip.join("power1_max")).unwrap(), "120000000\n");
    assert_eq!(fs::read_to_string(chip.join("power1_max_interval")).unwrap(), "500\n");
    let cap = p.domains()[0].limit("cap").unwrap();
    assert_eq!(
        (cap.limit_watts, cap.time_window_s, cap.enabled),
        (Some(120.0), Some(0.5), Some(true))
    );
    // Without a window the interval is left alone.
    p.write_limit(0, &cap_write(110.0)).unwrap();
    assert_eq!(fs::read_to_string(chip.join("power1_max_interval")).unwrap(), "500\n");
}

#[test]
fn a_locked_cap_is_refused_and_left_unchanged() {
    let t = Tree::new();
    let dev = t.pci_gpu("0000:03:00.0", 0);
    let chip =
        t.chip("hwmon1", &dev, "amdgpu", &[("power1_average", "1"), ("power1_cap", "250000000")]);
    mode(&chip.join("power1_cap"), 0o444);
    let (mut p, _) = t.open();
    assert!(p.domains()[0].limits[0].locked);
    let e = p.write_limit(0, &cap_write(200.0)).unwrap_err();
    assert!(matches!(e, HwError::Locked { .. }), "{e:?}");
    assert!(e.to_string().contains("gpu-0 cap") && e.to_string().contains("power1_cap"), "{e}");
    assert_eq!(fs::read_to_string(chip.join("power1_cap")).unwrap(), "250000000\n");
}

#[test]
fn what_hwmon_cannot_write_is_unsupported_and_nothing_is_written() {
    let t = Tree::new();
    let dev = t.pci_gpu("0000:03:00.0", 0);
    let chip =
        t.chip("hwmon1", &dev, "amdgpu", &[("power1_average", "1"), ("power1_cap", "250000000")]);
    t.chip("hwmon0", ACPI_METER, "power_meter", &[("power1_average", "1")]);
    let (mut p, _) = t.open();
    let gpu_i = p.domains().iter().position(|d| d.id == GPU0).unwrap();
    let node_i = p.domains().iter().position(|d| d.id == DomainId::NODE).unwrap();
    let unsupported = |r: Result<(), HwError>| match r {
        Err(e @ HwError::Unsupported { .. }) => e.to_string(),
        other => panic!("{other:?}"),
    };
    let long_term = LimitWrite { constraint: "long_term".into(), ..cap_write(200.0) };
    let msg = unsupported(p.write_limit(gpu_i, &long_term));
    assert!(msg.contains("gpu-0 long_term") && msg.contains("hwmon"), "{msg}");
    let window = LimitWrite { time_window_s: Some(1.0), ..cap_write(200.0) };
    assert!(unsupported(p.write_limit(gpu_i, &window)).contains("time window"));
    let disable = LimitWrite { enabled: Some(false), ..cap_write(200.0) };
    unsupported(p.write_limit(gpu_i, &disable));
    assert!(unsupported(p.write_limit(node_i, &cap_write(200.0))).contains("no power cap"));
    unsupported(p.write_limit(9, &cap_write(200.0)));
    assert_eq!(fs::read_to_string(chip.join("power1_cap")).unwrap(), "250000000\n");
    // A value that is not a power is refused, naming it.
    let e = p.write_limit(gpu_i, &cap_write(f64::NAN)).unwrap_err();
    assert!(matches!(e, HwError::Refused { .. }) && e.to_string().contains("NaN"), "{e}");
}
