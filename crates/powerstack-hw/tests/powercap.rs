//! The powercap provider on hand-built sysfs trees that mimic the kernel's layout: zone directories
//! under `sys/devices/.../powercap/<control type>/`, relative symlinks in `sys/class/powercap`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use powerstack_hw::providers::powercap;
use powerstack_hw::{CpuTopology, HwError, Platform, Probe, ProbeContext, Provider, Root, Warning};
use powerstack_model::{
    CounterSpec, DomainId, DomainKind, LimitWrite, Measurement, NodeSource, PowerReport, Snapshot,
    Value,
};

const SECOND_NS: u64 = 1_000_000_000;

/// A fake sysfs root.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let t = Tree { dir: tempfile::tempdir().unwrap() };
        std::fs::create_dir_all(t.class()).unwrap();
        t
    }

    fn root(&self) -> Root {
        Root::new(self.dir.path())
    }

    fn class(&self) -> PathBuf {
        self.dir.path().join("sys/class/powercap")
    }

    /// The device directory holding a control type, relative to `sys/`.
    fn control_dir(control_type: &str) -> String {
        match control_type {
            "intel-rapl" => "devices/virtual/powercap/intel-rapl".into(),
            other => format!("devices/pci0000:00/0000:00:04.0/powercap/{other}"),
        }
    }

    /// Adds a zone (`intel-rapl:0`, `intel-rapl:0:1`, `intel-rapl-mmio:0`) with its `name`, energy
    /// and range, two constraints, and the class symlink. Returns the zone's real directory.
    fn zone(&self, id: &str, name: &str, energy_uj: u64, max_range_uj: u64) -> PathBuf {
        let parts: Vec<&str> = id.split(':').collect();
        let ctl = parts[0];
        let mut rel = format!("{}/{}:{}", Tree::control_dir(ctl), ctl, parts[1]);
        if parts.len() == 3 {
            rel = format!("{rel}/{id}");
        }
        let sys = self.dir.path().join("sys");
        let dir = sys.join(&rel);
        std::fs::create_dir_all(&dir).unwrap();
        let ctl_link = self.class().join(ctl);
        if std::fs::symlink_metadata(&ctl_link).is_err() {
            std::os::unix::fs::symlink(format!("../../{}", Tree::control_dir(ctl)), &ctl_link)
                .unwrap();
            std::fs::write(sys.join(Tree::control_dir(ctl)).join("enabled"), "1\n").unwrap();
        }
        std::os::unix::fs::symlink(format!("../../{rel}"), self.class().join(id)).unwrap();
        let w = |f: &str, v: String| std::fs::write(dir.join(f), v).unwrap();
        w("name", format!("{name}\n"));
        w("energy_uj", format!("{energy_uj}\n"));
        w("max_energy_range_uj", format!("{max_range_uj}\n"));
        w("enabled", "1\n".into());
        w("constraint_0_name", "long_term\n".into());
        w("constraint_0_power_limit_uw", "125000000\n".into());
        w("constraint_0_time_window_us", "999424\n".into());
        w("constraint_0_max_power_uw", "165000000\n".into());
        w("constraint_1_name", "short_term\n".into());
        w("constraint_1_power_limit_uw", "150000000\n".into());
        w("constraint_1_time_window_us", "2440\n".into());
        w("constraint_1_max_power_uw", "0\n".into());
        dir
    }

    fn probe(&self) -> Probe {
        let topology = CpuTopology::default();
        let root = self.root();
        powercap::probe(&ProbeContext::new(&root, &topology))
    }

    fn provider(&self) -> (Box<dyn Provider>, Vec<Warning>) {
        let Probe { provider, warnings, .. } = self.probe();
        (provider.expect("a powercap provider"), warnings)
    }
}

fn set(dir: &Path, file: &str, value: impl ToString) {
    std::fs::write(dir.join(file), format!("{}\n", value.to_string())).unwrap();
}

fn id(kind: DomainKind, index: u32) -> DomainId {
    DomainId::new(kind, index)
}

fn ids(p: &dyn Provider) -> Vec<(DomainId, String)> {
    p.domains().iter().map(|d| (d.id, d.source.clone())).collect()
}

fn joules(s: &Snapshot, i: usize) -> Option<f64> {
    match s.values[i] {
        Value::Energy { joules, .. } => Some(joules),
        _ => None,
    }
}

#[test]
fn zones_map_by_name_whatever_their_index() {
    let t = Tree::new();
    t.zone("intel-rapl:0", "psys", 1, 262_143_328_850);
    t.zone("intel-rapl:1", "package-0", 2, 262_143_328_850);
    t.zone("intel-rapl:1:0", "core", 3, 262_143_328_850);
    t.zone("intel-rapl:1:1", "dram", 4, 65_712_999_613);
    t.zone("intel-rapl:2", "package-1", 5, 262_143_328_850);
    t.zone("intel-rapl:2:0", "dram", 6, 65_712_999_613);
    let (p, warnings) = t.provider();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(p.name(), "powercap");
    assert_eq!(
        ids(p.as_ref()),
        vec![
            (id(DomainKind::Platform, 0), "intel-rapl:0".to_string()),
            (id(DomainKind::Package, 0), "intel-rapl:1".to_string()),
            (id(DomainKind::Package, 1), "intel-rapl:2".to_string()),
            (id(DomainKind::Core, 0), "intel-rapl:1:0".to_string()),
            (id(DomainKind::Memory, 0), "intel-rapl:1:1".to_string()),
            (id(DomainKind::Memory, 1), "intel-rapl:2:0".to_string()),
        ]
    );
    let d = p.domains();
    assert_eq!(d[0].socket, None);
    assert_eq!(d[2].socket, Some(1));
    assert_eq!(d[5].socket, Some(1));
    assert_eq!(
        d[4].measurement,
        Measurement::Energy(CounterSpec::microjoules_wrapping_at(65_712_999_613))
    );
    assert_eq!(d[4].label.as_deref(), Some("dram"));

    // Each reading comes from its own zone's file.
    let mut p = p;
    let mut out: Vec<_> = (0..6).map(|_| powerstack_hw::Reading::Pending).collect();
    p.read(&mut out);
    let ticks: Vec<u64> = out
        .iter()
        .map(|r| match r {
            powerstack_hw::Reading::Energy(e) => e.ticks,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ticks, vec![1, 2, 5, 3, 4, 6]);
}

#[test]
fn multi_die_packages_and_their_subzones_carry_the_die() {
    let t = Tree::new();
    t.zone("intel-rapl:0", "package-0-die-0", 1, 1000);
    t.zone("intel-rapl:1", "package-0-die-1", 1, 1000);
    t.zone("intel-rapl:1:0", "dram", 1, 1000);
    let (p, _) = t.provider();
    let die = |kind, d| DomainId { kind, index: 0, die: Some(d) };
    let got: Vec<DomainId> = p.domains().iter().map(|d| d.id).collect();
    assert_eq!(
        got,
        vec![die(DomainKind::Package, 0), die(DomainKind::Package, 1), die(DomainKind::Memory, 1)]
    );
}

#[test]
fn a_missing_dram_zone_is_simply_absent() {
    let t = Tree::new();
    t.zone("intel-rapl:0", "package-0", 10, 1000);
    t.zone("intel-rapl:1", "package-1", 10, 1000);
    let (p, warnings) = t.provider();
    assert!(warnings.is_empty(), "{warnings:?}");
    let kinds: Vec<DomainKind> = p.domains().iter().map(|d| d.id.kind).collect();
    assert_eq!(kinds, vec![DomainKind::Package, DomainKind::Package]);
}

#[test]
fn no_powercap_directory_is_no_provider_and_no_noise() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new(dir.path());
    let topology = CpuTopology::default();
    let probe = powercap::probe(&ProbeContext::new(&root, &topology));
    assert!(probe.provider.is_none());
    assert!(probe.warnings.is_empty(), "{:?}", probe.warnings);
}

#[test]
fn unknown_names_and_unusable_zones_are_warned_about_and_skipped() {
    let t = Tree::new();
    t.zone("intel-rapl:0", "package-0", 10, 1000);
    t.zone("intel-rapl:1", "gpu-thing", 10, 1000);
    let no_range = t.zone("intel-rapl:2", "package-1", 10, 1000);
    std::fs::remove_file(no_range.join("max_energy_range_uj")).unwrap();
    let bad_range = t.zone("intel-rapl:0:0", "dram", 10, 1000);
    set(&bad_range, "max_energy_range_uj", "lots");
    let bad_energy = t.zone("intel-rapl:0:1", "core", 10, 1000);
    set(&bad_energy, "energy_uj", "-");
    let (p, warnings) = t.provider();
    assert_eq!(ids(p.as_ref()), vec![(id(DomainKind::Package, 0), "intel-rapl:0".to_string())]);
    let text: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(text.len(), 4, "{text:#?}");
    assert!(
        text.iter()
            .any(|w| w.contains("intel-rapl:1") && w.contains("unknown zone name \"gpu-thing\""))
    );
    assert!(text.iter().any(|w| w.contains("intel-rapl:2") && w.contains("max_energy_range_uj")));
    assert!(text.iter().any(|w| w.contains("intel-rapl:0:0") && w.contains("malformed")));
    assert!(text.iter().any(|w| w.contains("intel-rapl:0:1") && w.contains("energy_uj")));
    assert!(text.iter().all(|w| w.starts_with("powercap: ") && !w.contains('\n')));
}

#[test]
fn an_mmio_mirror_is_not_double_counted() {
    let t = Tree::new();
    let pkg = t.zone("intel-rapl:0", "package-0", 0, 262_143_328_850);
    let dram = t.zone("intel-rapl:0:0", "dram", 0, 65_712_999_613);
    let mmio = t.zone("intel-rapl-mmio:0", "package-0", 0, 262_143_328_850);
    let (p, warnings) = t.provider();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        ids(p.as_ref()),
        vec![
            (id(DomainKind::Package, 0), "intel-rapl:0".to_string()),
            (id(DomainKind::Memory, 0), "intel-rapl:0:0".to_string()),
        ]
    );
    let (mut platform, w) = Platform::new(vec![p]);
    assert!(w.is_empty(), "{w:?}");
    let a = platform.sample_at(0, 0);
    set(&pkg, "energy_uj", 100_000_000); // 100 J
    set(&mmio, "energy_uj", 100_000_000);
    set(&dram, "energy_uj", 20_000_000); // 20 J
    let b = platform.sample_at(SECOND_NS, 1_000_000);
    let r = PowerReport::between(platform.catalog(), &a, &b);
    let node = r.node.expect("a node figure");
    assert_eq!(node.watts, 120.0);
    assert_eq!(node.source, NodeSource::Sum(vec![0, 1]));
}

#[test]
fn an_mmio_zone_alone_is_used() {
    let t = Tree::new();
    t.zone("intel-rapl-mmio:0", "package-0", 0, 1000);
    let (p, _) = t.provider();
    assert_eq!(
        ids(p.as_ref()),
        vec![(id(DomainKind::Package, 0), "intel-rapl-mmio:0".to_string())]
    );
}

#[test]
fn a_wrap_inside_an_interval_is_extended() {
    let t = Tree::new();
    let range = 999_999; // the counter shows 0..=999999 µJ: it wraps every joule
    let pkg = t.zone("intel-rapl:0", "package-0", 900_000, range);
    let (p, _) = t.provider();
    let (mut platform, _) = Platform::new(vec![p]);
    let a = platform.sample_at(0, 0);
    set(&pkg, "energy_uj", 300_000); // wrapped: 0.4 J went by
    let b = platform.sample_at(SECOND_NS / 2, 500_000);
    let r = PowerReport::between(platform.catalog(), &a, &b);
    let w = r.domains[0].power_watts.unwrap();
    assert!((w - 0.8).abs() < 1e-9, "{w}");
    assert!((joules(&b, 0).unwrap() - 1.3).abs() < 1e-9);
}

#[test]
fn several_wraps_over_several_samples_keep_energy_and_power_right() {
    let t = Tree::new();
    let range: u64 = 9_999_999; // wraps every 10 J
    let modulus = range + 1;
    let pkg = t.zone("intel-rapl:0", "package-0", 7_000_000, range);
    let (p, _) = t.provider();
    let (mut platform, _) = Platform::new(vec![p]);
    let mut prev = platform.sample_at(0, 0);
    let mut true_uj: u64 = 7_000_000;
    // Per-second energy (µJ) below one wrap period each, with wraps in most intervals.
    for (step, uj) in
        [6_000_000u64, 9_500_000, 3_000_000, 8_250_000, 9_999_000, 100].into_iter().enumerate()
    {
        true_uj += uj;
        set(&pkg, "energy_uj", true_uj % modulus);
        let t_ns = (step as u64 + 1) * SECOND_NS;
        let next = platform.sample_at(t_ns, (t_ns / 1000) as i64);
        let r = PowerReport::between(platform.catalog(), &prev, &next);
        let w = r.domains[0].power_watts.expect("power every interval");
        assert!(w >= 0.0);
        assert!((w - uj as f64 / 1e6).abs() < 1e-6, "step {step}: {w} W");
        let e = joules(&next, 0).unwrap();
        assert!((e - true_uj as f64 / 1e6).abs() < 1e-6, "step {step}: {e} J");
        prev = next;
    }
}

#[test]
fn permission_errors_say_to_run_as_root() {
    // Tests run as root, where mode 0o000 does not stop a read; classify the error instead.
    let path = Path::new("/sys/class/powercap/intel-rapl:0/energy_uj");
    let e = HwError::from_io(
        path,
        std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        "energy_uj",
    );
    assert!(matches!(e, HwError::PermissionDenied { .. }));
    let msg = e.to_string();
    assert!(msg.contains("run as root"), "{msg}");
    assert!(msg.contains("energy_uj"), "{msg}");
}

#[test]
fn malformed_energy_is_missing_never_a_number() {
    let t = Tree::new();
    let pkg = t.zone("intel-rapl:0", "package-0", 1_000_000, 1_000_000_000);
    let (p, _) = t.provider();
    let (mut platform, _) = Platform::new(vec![p]);
    let a = platform.sample_at(0, 0);
    set(&pkg, "energy_uj", "12x4");
    let b = platform.sample_at(SECOND_NS, 1_000_000);
    assert_eq!(b.values[0], Value::Missing);
    let r = PowerReport::between(platform.catalog(), &a, &b);
    assert_eq!(r.domains[0].power_watts, None);
    assert!(r.node.is_none());
    let w = platform.take_warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].message.contains("malformed"), "{}", w[0]);
}

#[test]
fn a_vanishing_zone_goes_missing_with_a_warning_while_the_others_still_read() {
    let t = Tree::new();
    let p0 = t.zone("intel-rapl:0", "package-0", 0, 1_000_000_000);
    let p1 = t.zone("intel-rapl:1", "package-1", 0, 1_000_000_000);
    let (p, _) = t.provider();
    let (mut platform, _) = Platform::new(vec![p]);
    platform.sample_at(0, 0);
    // Unplugged: the attribute reads empty, then the directory goes.
    std::fs::write(p1.join("energy_uj"), "").unwrap();
    set(&p0, "energy_uj", 50_000_000);
    let b = platform.sample_at(SECOND_NS, 1_000_000);
    assert_eq!(joules(&b, 0), Some(50.0));
    assert_eq!(b.values[1], Value::Missing);
    let w = platform.take_warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].message.contains("package-1") && w[0].message.contains("not there"), "{}", w[0]);

    std::fs::remove_dir_all(&p1).unwrap();
    set(&p0, "energy_uj", 90_000_000);
    let c = platform.sample_at(2 * SECOND_NS, 2_000_000);
    assert_eq!(joules(&c, 0), Some(90.0));
    assert_eq!(c.values[1], Value::Missing);
    // Warned once per domain until it recovers.
    assert!(platform.take_warnings().is_empty());
    let r = PowerReport::between(platform.catalog(), &b, &c);
    assert_eq!(r.domains[0].power_watts, Some(40.0));
    assert_eq!(r.domains[1].power_watts, None);
}

#[test]
fn limits_are_read_in_si_units_and_refreshed() {
    let t = Tree::new();
    let pkg = t.zone("intel-rapl:0", "package-0", 0, 1000);
    let psys = t.zone("intel-rapl:1", "psys", 0, 1000);
    // psys: a read-only (BIOS-locked) long-term constraint, PL1 disabled, no min/max.
    std::fs::remove_file(psys.join("constraint_0_max_power_uw")).unwrap();
    set(&psys, "enabled", 0);
    std::fs::set_permissions(
        psys.join("constraint_0_power_limit_uw"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    std::fs::write(pkg.join("constraint_0_min_power_uw"), "70000000\n").unwrap();
    let (p, _) = t.provider();
    let (mut platform, _) = Platform::new(vec![p]);
    let cat = platform.catalog();
    assert_eq!(cat[0].id, id(DomainKind::Platform, 0));
    let pl = &cat[1].limits;
    assert_eq!(pl.len(), 2);
    assert_eq!(pl[0].name, "long_term");
    assert_eq!(pl[0].limit_watts, Some(125.0));
    assert_eq!(pl[0].min_watts, Some(70.0));
    assert_eq!(pl[0].max_watts, Some(165.0));
    assert_eq!(pl[0].time_window_s, Some(0.999424));
    assert_eq!(pl[0].enabled, Some(true));
    assert!(!pl[0].locked);
    assert_eq!(pl[1].name, "short_term");
    assert_eq!(pl[1].limit_watts, Some(150.0));
    assert_eq!(pl[1].max_watts, None, "0 is unknown");
    assert_eq!(pl[1].time_window_s, Some(0.00244));
    assert_eq!(pl[1].enabled, None);
    assert!(cat[1].is_controllable());
    let ps = &cat[0].limits;
    assert_eq!(ps[0].enabled, Some(false));
    assert_eq!(ps[0].max_watts, None);
    assert!(ps[0].locked);
    assert!(!ps[1].locked);

    set(&pkg, "constraint_0_power_limit_uw", 100_000_000);
    assert!(platform.refresh_limits().is_empty());
    assert_eq!(platform.catalog()[1].limits[0].limit_watts, Some(100.0));

    // An unreadable limit keeps the last known values and says so.
    set(&pkg, "constraint_0_power_limit_uw", "?");
    let w = platform.refresh_limits();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].message.contains("package-0") && w[0].message.contains("last known"), "{}", w[0]);
    assert_eq!(platform.catalog()[1].limits[0].limit_watts, Some(100.0));
}

#[test]
fn discovery_picks_powercap_from_the_registry() {
    let t = Tree::new();
    t.zone("intel-rapl:0", "package-0", 0, 1000);
    let found = powerstack_hw::discover(
        &t.root(),
        &powerstack_hw::Selection::Only(vec![powerstack_hw::Source::Powercap]),
    );
    assert_eq!(found.platform.provider_names(), vec!["powercap"]);
    assert_eq!(found.platform.catalog()[0].id, id(DomainKind::Package, 0));
}

fn write(constraint: &str, watts: f64, window: Option<f64>, enabled: Option<bool>) -> LimitWrite {
    LimitWrite { constraint: constraint.into(), limit_watts: watts, time_window_s: window, enabled }
}

#[test]
fn writes_set_the_constraint_window_and_enable_and_read_back() {
    let t = Tree::new();
    let pkg = t.zone("intel-rapl:0", "package-0", 0, 1000);
    set(&pkg, "enabled", 0);
    let (p, _) = t.provider();
    let (mut platform, _) = Platform::new(vec![p]);
    platform.write_limit(0, &write("long_term", 95.5, Some(2.0), Some(true))).unwrap();
    let read = |f: &str| std::fs::read_to_string(pkg.join(f)).unwrap();
    assert_eq!(read("constraint_0_power_limit_uw"), "95500000\n");
    assert_eq!(read("constraint_0_time_window_us"), "2000000\n");
    assert_eq!(read("enabled"), "1\n");
    let l = platform.catalog()[0].limit("long_term").unwrap();
    assert_eq!((l.limit_watts, l.enabled, l.time_window_s), (Some(95.5), Some(true), Some(2.0)));
    // The short-term constraint has no enable of its own: the zone's `enabled` is untouched.
    platform.write_limit(0, &write("short_term", 140.0, None, Some(false))).unwrap();
    assert_eq!(read("constraint_1_power_limit_uw"), "140000000\n");
    assert_eq!(read("enabled"), "1\n");
}

#[test]
fn locked_unknown_and_invalid_writes_are_refused_and_change_nothing() {
    let t = Tree::new();
    let pkg = t.zone("intel-rapl:0", "package-0", 0, 1000);
    std::fs::set_permissions(
        pkg.join("constraint_1_power_limit_uw"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    let (p, _) = t.provider();
    let (mut platform, _) = Platform::new(vec![p]);
    let before = std::fs::read_to_string(pkg.join("constraint_0_power_limit_uw")).unwrap();
    let e = platform.write_limit(0, &write("short_term", 100.0, None, None)).unwrap_err();
    assert!(matches!(e, HwError::Locked { .. }), "{e}");
    assert!(e.to_string().contains("package-0 short_term"), "{e}");
    let e = platform.write_limit(0, &write("peak_power", 100.0, None, None)).unwrap_err();
    assert!(matches!(e, HwError::Unsupported { .. }), "{e}");
    let e = platform.write_limit(0, &write("long_term", f64::NAN, None, None)).unwrap_err();
    assert!(matches!(e, HwError::Refused { .. }), "{e}");
    assert_eq!(std::fs::read_to_string(pkg.join("constraint_0_power_limit_uw")).unwrap(), before);
}
