//! The HPE Cray pm_counters provider on hand-built `/sys/cray/pm_counters` trees.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use powerstack_hw::providers::pm_counters::{self, PmCounters};
use powerstack_hw::{CpuTopology, HwError, Platform, Provider, Reading, Root, Selection, Source};
use powerstack_model::{
    CounterSpec, DomainId, DomainKind, Measurement, PowerReport, RawEnergy, Snapshot, Value,
};
use tempfile::TempDir;

const NODE: DomainId = DomainId::NODE;
const CPU0: DomainId = DomainId::new(DomainKind::Package, 0);
const MEM0: DomainId = DomainId::new(DomainKind::Memory, 0);
const GPU0: DomainId = DomainId::new(DomainKind::Gpu, 0);
const GPU1: DomainId = DomainId::new(DomainKind::Gpu, 1);

struct Tree {
    dir: TempDir,
}

impl Tree {
    /// A tree with `packages` single-CPU packages and the given pm_counters files.
    fn new(packages: u32, files: &[(&str, &str)]) -> Tree {
        let t = Tree { dir: tempfile::tempdir().unwrap() };
        for p in 0..packages {
            t.write_rel(
                &format!("sys/devices/system/cpu/cpu{p}/topology/physical_package_id"),
                &format!("{p}\n"),
            );
        }
        fs::create_dir_all(t.pm("")).unwrap();
        for (name, content) in files {
            t.set(name, content);
        }
        t
    }

    fn write_rel(&self, rel: &str, content: &str) {
        let p = self.dir.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    fn pm(&self, name: &str) -> PathBuf {
        self.dir.path().join("sys/cray/pm_counters").join(name)
    }

    /// Rewrites one counter file the way the controller does (in place).
    fn set(&self, name: &str, content: &str) {
        set(&self.pm(name), content);
    }

    fn root(&self) -> Root {
        Root::new(self.dir.path())
    }

    fn open(&self) -> (PmCounters, Vec<powerstack_hw::Warning>) {
        let (topology, _) = CpuTopology::discover(&self.root());
        let (p, w) = PmCounters::open(&self.root(), &topology);
        (p.expect("pm_counters found nothing"), w)
    }
}

fn set(path: &Path, content: &str) {
    fs::write(path, format!("{content}\n")).unwrap();
}

fn read_all(p: &mut PmCounters) -> Vec<Reading> {
    let mut out: Vec<Reading> = p.domains().iter().map(|_| Reading::Pending).collect();
    p.read(&mut out);
    out
}

fn index(p: &impl Provider, id: DomainId) -> usize {
    p.domains().iter().position(|d| d.id == id).unwrap()
}

fn platform(p: PmCounters) -> Platform {
    let (platform, w) = Platform::new(vec![Box::new(p)]);
    assert!(w.is_empty(), "{w:?}");
    platform
}

fn power(catalog_platform: &Platform, a: &Snapshot, b: &Snapshot, id: DomainId) -> Option<f64> {
    PowerReport::between(catalog_platform.catalog(), a, b).get(id).and_then(|d| d.power_watts)
}

/// A cray-ex style file set at one instant: energy in J, power in W, all stamped `ts` µs.
fn ex_files(node_j: u64, cpu_j: u64, mem_j: u64, ts: u64) -> Vec<(String, String)> {
    vec![
        ("energy".into(), format!("{node_j} J {ts} us")),
        ("power".into(), format!("500 W {ts} us")),
        ("cpu_energy".into(), format!("{cpu_j} J {ts} us")),
        ("cpu_power".into(), format!("300 W {ts} us")),
        ("memory_energy".into(), format!("{mem_j} J {ts} us")),
        ("memory_power".into(), format!("50 W {ts} us")),
    ]
}

fn write_all(t: &Tree, files: &[(String, String)]) {
    for (n, c) in files {
        t.set(n, c);
    }
}

#[test]
fn maps_the_cray_ex_file_set_and_prefers_energy() {
    let t = Tree::new(
        1,
        &[
            ("energy", "1000 J 7810213855886 us"),
            ("power", "724 W 7810213855886 us"),
            ("cpu_energy", "600 J 7810213855886 us"),
            ("cpu_power", "400 W 7810213855886 us"),
            ("memory_power", "0 W"),
            ("cpu0_temp", "45 C 7810213855886 us"),
            ("power_cap", "0 W 7810213855886 us"),
            ("raw_scan_hz", "10"),
            ("version", "2"),
            ("freshness", "77"),
            ("generation", "3"),
            ("startup", "1650000000"),
        ],
    );
    let (mut p, w) = t.open();
    assert!(w.is_empty(), "{w:?}");
    let ids: Vec<(DomainId, Measurement, Option<u32>, &str)> =
        p.domains().iter().map(|d| (d.id, d.measurement, d.socket, d.source.as_str())).collect();
    let joules = Measurement::Energy(CounterSpec::non_wrapping(1.0));
    assert_eq!(
        ids,
        vec![
            (NODE, joules, None, "pm_counters energy"),
            (CPU0, joules, Some(0), "pm_counters cpu_energy"),
            (MEM0, Measurement::Power, Some(0), "pm_counters memory_power"),
        ]
    );
    let node = &p.domains()[0];
    assert_eq!(node.limits.len(), 1);
    assert_eq!(node.limits[0].name, "cap");
    assert_eq!(node.limits[0].limit_watts, None, "0 W is uncapped");
    let r = read_all(&mut p);
    let epoch = 3u64.rotate_left(32) ^ 1_650_000_000;
    assert!(
        matches!(r[0], Reading::Energy(e) if e == RawEnergy { ticks: 1000, epoch, hw_time_us: Some(7810213855886) })
    );
    assert!(matches!(r[2], Reading::Power(w) if w == 0.0));
}

#[test]
fn parses_values_with_and_without_timestamps_and_rejects_bad_units_and_garbage() {
    let t = Tree::new(1, &[("energy", "1234567 J"), ("cpu_power", "85 W 12 us")]);
    let (mut p, _) = t.open();
    let (node, cpu) = (index(&p, NODE), index(&p, CPU0));
    let r = read_all(&mut p);
    assert!(
        matches!(r[node], Reading::Energy(e) if e == RawEnergy { ticks: 1234567, epoch: 0, hw_time_us: None })
    );
    assert!(matches!(r[cpu], Reading::Power(w) if w == 85.0));

    for (file, bad) in [
        ("energy", "1234567 W"),
        ("energy", "1234567"),
        ("energy", "12x J"),
        ("energy", "1234567 J 5"),
        ("energy", "1234567 J 5 ms"),
        ("energy", ""),
        ("cpu_power", "85 J"),
        ("cpu_power", "\u{1}\u{2}garbage"),
    ] {
        t.set(file, bad);
        let r = read_all(&mut p);
        let i = if file == "energy" { node } else { cpu };
        match &r[i] {
            Reading::Failed(e @ (HwError::Malformed { path, .. } | HwError::Vanished { path })) => {
                assert!(path.ends_with(file), "{e}");
                assert!(e.to_string().contains(file), "{e}");
            }
            other => panic!("{bad:?} in {file} read as {other:?}"),
        }
        t.set("energy", "1234567 J");
        t.set("cpu_power", "85 W 12 us");
    }
}

#[test]
fn a_file_with_the_wrong_unit_at_discovery_falls_back_with_a_warning() {
    let t = Tree::new(1, &[("energy", "5 W"), ("power", "500 W")]);
    let (p, w) = t.open();
    assert_eq!(p.domains()[0].measurement, Measurement::Power);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].message.contains("energy") && w[0].message.contains("expected J"), "{w:?}");
}

#[test]
fn energy_based_power_uses_the_hardware_timestamps() {
    let t = Tree::new(1, &[("energy", "1000 J 1000000 us"), ("freshness", "1")]);
    let (p, _) = t.open();
    let mut pf = platform(p);
    let a = pf.sample_at(0, 0);
    t.set("energy", "1500 J 2000000 us");
    t.set("freshness", "2");
    // The sampler woke up late: 1.03 s of monotonic time, 1 s of controller time.
    let b = pf.sample_at(1_030_000_000, 1_030_000);
    assert_eq!(power(&pf, &a, &b, NODE), Some(500.0));
}

#[test]
fn a_generation_or_startup_change_is_a_reset_not_a_negative_or_huge_energy() {
    let t = Tree::new(
        1,
        &[
            ("energy", "1000000 J 1000000 us"),
            ("cpu_energy", "400000 J 1000000 us"),
            ("generation", "1"),
            ("startup", "100"),
        ],
    );
    let (p, _) = t.open();
    let mut pf = platform(p);
    let a = pf.sample_at(0, 0);
    t.set("energy", "1000500 J 2000000 us");
    t.set("cpu_energy", "400300 J 2000000 us");
    let b = pf.sample_at(1_000_000_000, 1_000_000);
    assert_eq!(power(&pf, &a, &b, NODE), Some(500.0));

    // The controller restarted: generation bumped, counters and clock restarted.
    t.set("generation", "2");
    t.set("energy", "450 J 900000 us");
    t.set("cpu_energy", "270 J 900000 us");
    let c = pf.sample_at(2_000_000_000, 2_000_000);
    let r = PowerReport::between(pf.catalog(), &b, &c);
    for id in [NODE, CPU0] {
        let w = r.get(id).and_then(|d| d.power_watts).unwrap();
        assert!((0.0..=1000.0).contains(&w), "{id}: {w} W");
    }
    assert_eq!(pf.take_warnings(), vec![]);

    // Only startup changes (same generation): also a restart. Here the counter kept a value larger
    // than before, which an ordinary delta would have taken as 2 MJ in one second.
    t.set("startup", "200");
    t.set("energy", "2000000 J 1900000 us");
    t.set("cpu_energy", "170 J 1900000 us");
    let d = pf.sample_at(3_000_000_000, 3_000_000);
    let r = PowerReport::between(pf.catalog(), &c, &d);
    match r.get(NODE).and_then(|x| x.power_watts) {
        None => {}
        Some(w) => assert!((0.0..=100_000.0).contains(&w), "node: {w} W"),
    }
    let cpu = r.get(CPU0).and_then(|x| x.power_watts).unwrap();
    assert!((0.0..=1000.0).contains(&cpu), "cpu: {cpu} W");
    // The extended counters never go backwards.
    let joules = |s: &Snapshot, i: usize| match s.values[i] {
        Value::Energy { joules, .. } => joules,
        _ => f64::NAN,
    };
    assert!(joules(&d, 1) >= joules(&c, 1) && joules(&c, 1) >= joules(&b, 1));

    // Back to normal counting in the new epoch.
    t.set("energy", "2000400 J 2900000 us");
    t.set("cpu_energy", "470 J 2900000 us");
    let e = pf.sample_at(4_000_000_000, 4_000_000);
    assert_eq!(power(&pf, &d, &e, CPU0), Some(300.0));
}

#[test]
fn a_freshness_change_mid_read_is_retried_into_a_consistent_set() {
    let t = Tree::new(1, &[]);
    write_all(&t, &ex_files(1000, 600, 100, 1_000_000));
    t.set("freshness", "10");
    let (mut p, _) = t.open();
    let calls = Arc::new(AtomicU32::new(0));
    let dir = t.pm("");
    let c = calls.clone();
    p.set_between_reads_hook(Box::new(move || {
        // On the first attempt the controller publishes a new set while we read: node energy is
        // already new, the rest is written after, and freshness bumped.
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            set(&dir.join("energy"), "1500 J 2000000 us");
            set(&dir.join("freshness"), "11");
            set(&dir.join("cpu_energy"), "900 J 2000000 us");
            set(&dir.join("memory_energy"), "150 J 2000000 us");
        }
    }));
    let r = read_all(&mut p);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one retry");
    let ticks: Vec<(u64, Option<u64>)> = r
        .iter()
        .map(|x| match x {
            Reading::Energy(e) => (e.ticks, e.hw_time_us),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        ticks,
        vec![(1500, Some(2_000_000)), (900, Some(2_000_000)), (150, Some(2_000_000))]
    );
}

#[test]
fn a_file_caught_while_it_is_rewritten_is_read_again_not_taken() {
    let t = Tree::new(1, &[]);
    write_all(&t, &ex_files(1000, 600, 100, 1_000_000));
    t.set("freshness", "10");
    let (mut p, _) = t.open();
    let calls = Arc::new(AtomicU32::new(0));
    let dir = t.pm("");
    let c = calls.clone();
    p.set_between_reads_hook(Box::new(move || {
        match c.fetch_add(1, Ordering::SeqCst) {
            // Truncated by a writer that has not written the new line yet.
            0 => fs::write(dir.join("energy"), "").unwrap(),
            // The value and its unit written, the timestamp not yet.
            1 => fs::write(dir.join("energy"), "1500 J").unwrap(),
            _ => set(&dir.join("energy"), "1500 J 2000000 us"),
        }
    }));
    let r = read_all(&mut p);
    assert_eq!(calls.load(Ordering::SeqCst), 3, "two retries");
    match &r[0] {
        Reading::Energy(e) => assert_eq!((e.ticks, e.hw_time_us), (1500, Some(2_000_000))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_file_that_stays_cut_short_fails_alone() {
    let t = Tree::new(1, &[]);
    write_all(&t, &ex_files(1000, 600, 100, 1_000_000));
    let (mut p, _) = t.open();
    t.set("energy", "1500 J");
    let r = read_all(&mut p);
    assert!(matches!(&r[0], Reading::Failed(HwError::Malformed { .. })), "{:?}", r[0]);
    assert!(matches!(&r[1], Reading::Energy(_)), "{:?}", r[1]);
}

#[test]
fn an_always_changing_freshness_fails_every_domain_as_unstable() {
    let t = Tree::new(1, &[]);
    write_all(&t, &ex_files(1000, 600, 100, 1_000_000));
    t.set("freshness", "10");
    let (mut p, _) = t.open();
    let fresh = t.pm("freshness");
    let n = Arc::new(AtomicU32::new(10));
    p.set_between_reads_hook(Box::new(move || {
        let v = n.fetch_add(1, Ordering::SeqCst) + 1;
        set(&fresh, &v.to_string());
    }));
    let r = read_all(&mut p);
    assert_eq!(r.len(), 3);
    for x in &r {
        match x {
            Reading::Failed(HwError::Unstable { path, attempts }) => {
                assert!(path.ends_with("freshness"));
                assert_eq!(*attempts, pm_counters::MAX_ATTEMPTS);
            }
            other => panic!("{other:?}"),
        }
    }
    // Through the platform: missing, with one warning.
    let mut pf = platform(p);
    let s = pf.sample_at(0, 0);
    assert!(s.values.iter().all(|v| *v == Value::Missing));
    let w = pf.take_warnings();
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(w[0].message.contains("kept changing"), "{w:?}");
}

#[test]
fn works_without_freshness_generation_and_startup() {
    let t = Tree::new(1, &[]);
    write_all(&t, &ex_files(1000, 600, 100, 1_000_000));
    let (mut p, w) = t.open();
    assert!(w.is_empty(), "{w:?}");
    let r = read_all(&mut p);
    assert!(matches!(r[0], Reading::Energy(e) if e.epoch == 0 && e.ticks == 1000));
    let mut pf = platform(p);
    let a = pf.sample_at(0, 0);
    write_all(&t, &ex_files(1500, 900, 150, 2_000_000));
    let b = pf.sample_at(1_000_000_000, 1_000_000);
    let r = PowerReport::between(pf.catalog(), &a, &b);
    assert_eq!(r.get(NODE).and_then(|d| d.power_watts), Some(500.0));
    assert_eq!(r.get(CPU0).and_then(|d| d.power_watts), Some(300.0));
    assert_eq!(r.get(MEM0).and_then(|d| d.power_watts), Some(50.0));
    assert_eq!(r.node.map(|n| n.watts), Some(500.0));
}

#[test]
fn accelerators_are_numbered_from_their_files_and_share_the_accel_cap() {
    let t = Tree::new(
        1,
        &[
            ("energy", "1 J"),
            ("accel0_energy", "10 J 5 us"),
            ("accel0_power", "100 W 5 us"),
            ("accel1_power", "200 W 5 us"),
            ("accel_energy", "99 J"),
            ("accel_power_cap", "400 W"),
            ("power_cap", "2000 W"),
        ],
    );
    fs::set_permissions(t.pm("power_cap"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(t.pm("accel_power_cap"), fs::Permissions::from_mode(0o444)).unwrap();
    let (mut p, w) = t.open();
    assert!(w.is_empty(), "{w:?}");
    let ids: Vec<(DomainId, Measurement, Option<u32>)> =
        p.domains().iter().map(|d| (d.id, d.measurement, d.socket)).collect();
    let joules = Measurement::Energy(CounterSpec::non_wrapping(1.0));
    assert_eq!(
        ids,
        vec![(NODE, joules, None), (GPU0, joules, Some(0)), (GPU1, Measurement::Power, Some(0))]
    );
    let node_cap = &p.domains()[0].limits[0];
    // Set out of band by the system controller: reported, never written, whatever the file mode.
    assert_eq!((node_cap.limit_watts, node_cap.locked), (Some(2000.0), true));
    for i in [1, 2] {
        let cap = &p.domains()[i].limits[0];
        assert_eq!((cap.name.as_str(), cap.limit_watts, cap.locked), ("cap", Some(400.0), true));
    }
    let r = read_all(&mut p);
    assert!(matches!(r[1], Reading::Energy(e) if e.ticks == 10));
    assert!(matches!(r[2], Reading::Power(w) if w == 200.0));

    // refresh_limits re-reads; a malformed cap keeps the last known value with a warning.
    t.set("power_cap", "1800 W 7 us");
    t.set("accel_power_cap", "garbage");
    let w = p.refresh_limits();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].message.contains("accel_power_cap"), "{w:?}");
    assert_eq!(p.domains()[0].limits[0].limit_watts, Some(1800.0));
    assert_eq!(p.domains()[1].limits[0].limit_watts, Some(400.0));
}

#[test]
fn older_blades_have_one_unnumbered_accelerator_and_gpus_on_two_sockets_have_no_socket() {
    let t = Tree::new(2, &[("accel_energy", "5 J"), ("accel_power", "7 W")]);
    let (p, _) = t.open();
    let d = &p.domains()[0];
    assert_eq!((d.id, d.socket, d.source.as_str()), (GPU0, None, "pm_counters accel_energy"));
}

#[test]
fn per_socket_cpu_files_are_packages() {
    let t = Tree::new(
        2,
        &[
            ("cpu_energy", "9 J"),
            ("cpu0_energy", "4 J"),
            ("cpu1_energy", "5 J"),
            ("cpu1_power", "1 W"),
        ],
    );
    let (p, _) = t.open();
    let ids: Vec<(DomainId, Option<u32>, &str)> =
        p.domains().iter().map(|d| (d.id, d.socket, d.source.as_str())).collect();
    assert_eq!(
        ids,
        vec![
            (CPU0, Some(0), "pm_counters cpu0_energy"),
            (DomainId::new(DomainKind::Package, 1), Some(1), "pm_counters cpu1_energy"),
        ]
    );
}

#[test]
fn absent_or_empty_directories_are_not_a_cray_node_and_control_files_alone_are_reported() {
    let t = Tree::new(1, &[]);
    let (topology, _) = CpuTopology::discover(&t.root());
    let (p, w) = PmCounters::open(&t.root(), &topology);
    assert!(p.is_none() && w.is_empty(), "{w:?}");
    fs::remove_dir(t.pm("")).unwrap();
    let (p, w) = PmCounters::open(&t.root(), &topology);
    assert!(p.is_none() && w.is_empty(), "{w:?}");
    fs::create_dir_all(t.pm("")).unwrap();
    t.set("freshness", "1");
    t.set("version", "2");
    let (p, w) = PmCounters::open(&t.root(), &topology);
    assert!(p.is_none());
    assert_eq!(w.len(), 1, "{w:?}");
}

#[test]
fn a_vanished_directory_reads_as_failed_not_a_panic() {
    let t = Tree::new(1, &[]);
    write_all(&t, &ex_files(1000, 600, 100, 1_000_000));
    t.set("freshness", "1");
    let (mut p, _) = t.open();
    for entry in fs::read_dir(t.pm("")).unwrap() {
        fs::write(entry.unwrap().path(), "").unwrap();
    }
    fs::remove_dir_all(t.pm("")).unwrap();
    for x in read_all(&mut p) {
        assert!(matches!(x, Reading::Failed(HwError::Vanished { .. })), "{x:?}");
    }
}

#[test]
fn discovery_finds_pm_counters_through_the_registry() {
    let t = Tree::new(1, &[("energy", "1 J"), ("power", "1 W")]);
    let found = powerstack_hw::discover(&t.root(), &Selection::Only(vec![Source::PmCounters]));
    assert_eq!(found.platform.provider_names(), vec![pm_counters::NAME]);
    assert_eq!(found.platform.catalog()[0].id, NODE);
}
