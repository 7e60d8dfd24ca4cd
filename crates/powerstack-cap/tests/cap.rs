//! Capping on simulated nodes: validation, read-back, rollback, the journal, reset, crash recovery,
//! lock bits, concurrent callers, and power under the cap afterwards.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use powerstack_cap::{
    CapError, Capper, NodeId, Policy, Request, Setting, StateDir, allocate, node_cap_inputs, plan,
};
use powerstack_hw::providers::msr;
use powerstack_hw::{Platform, Root, Selection, discover};
use powerstack_model::{DomainId, DomainKind, LimitWrite, PowerReport};
use powerstack_sim::{Profile, SimNode, SimOptions};

fn node(profile: Profile) -> (tempfile::TempDir, SimNode, Platform) {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimNode::create(dir.path(), profile, SimOptions::default()).unwrap();
    let found = discover(&Root::new(dir.path()), &Selection::Auto);
    (dir, sim, found.platform)
}

/// The state directory `dir` of the node under `root`.
fn at(dir: &Path, root: &Path) -> StateDir {
    StateDir::new(dir, NodeId::new(&Root::new(root), None))
}

fn index(p: &Platform, kind: DomainKind, i: u32) -> usize {
    p.catalog().iter().position(|d| d.id == DomainId::new(kind, i)).unwrap()
}

fn long_term(watts: f64) -> LimitWrite {
    LimitWrite {
        constraint: "long_term".into(),
        limit_watts: watts,
        time_window_s: None,
        enabled: Some(true),
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

/// Measured power over one simulated second.
fn measure(sim: &mut SimNode, p: &mut Platform) -> PowerReport {
    let a = p.sample_at(sim.mono_ns(), sim.unix_us());
    sim.advance(Duration::from_secs(1)).unwrap();
    let b = p.sample_at(sim.mono_ns(), sim.unix_us());
    PowerReport::between(p.catalog(), &a, &b)
}

#[test]
fn a_socket_cap_is_written_read_back_journaled_and_honoured() {
    let (dir, mut sim, mut p) = node(Profile::Intel2s);
    let state = tempfile::tempdir().unwrap();
    let pkg0 = index(&p, DomainKind::Package, 0);
    {
        let (mut capper, recovered) =
            Capper::open(&mut p, &Root::new(sim.root()), &at(state.path(), sim.root()), "test")
                .unwrap();
        assert!(recovered.is_none());
        let plan = capper.plan(&[Request { index: pkg0, write: long_term(80.0) }]).unwrap();
        let done = capper.apply(&plan).unwrap();
        assert_eq!(done[0].read_back_watts, Some(80.0));
        let e = &capper.journal().entries()[0];
        assert_eq!(e.original.limit_watts, Some(150.0));
        assert_eq!(e.last_written.as_ref().unwrap().limit_watts, 80.0);
        assert!(capper.journal().in_progress().is_none());
    }
    assert_eq!(
        read(&dir.path().join("sys/class/powercap/intel-rapl:0/constraint_0_power_limit_uw")),
        "80000000"
    );
    // The simulator honours the limit: measured power is under the cap.
    measure(&mut sim, &mut p);
    let r = measure(&mut sim, &mut p);
    let w = r.get(DomainId::new(DomainKind::Package, 0)).unwrap().power_watts.unwrap();
    assert!(w <= 80.0 + 0.01, "package-0 draws {w} W under an 80 W cap");
    assert!(w > 70.0, "{w}");
}

#[test]
fn reset_puts_back_what_was_there_before_the_first_write_and_forgets_it() {
    let (dir, sim, mut p) = node(Profile::Intel2s);
    let state = tempfile::tempdir().unwrap();
    let pkg0 = index(&p, DomainKind::Package, 0);
    let limit = dir.path().join("sys/class/powercap/intel-rapl:0/constraint_0_power_limit_uw");
    for w in [100.0, 90.0] {
        let (mut capper, _) =
            Capper::open(&mut p, &Root::new(sim.root()), &at(state.path(), sim.root()), "test")
                .unwrap();
        let plan = capper.plan(&[Request { index: pkg0, write: long_term(w) }]).unwrap();
        capper.apply(&plan).unwrap();
    }
    assert_eq!(read(&limit), "90000000");
    let (mut capper, _) =
        Capper::open(&mut p, &Root::new(sim.root()), &at(state.path(), sim.root()), "test")
            .unwrap();
    // The original is the value before the first write, not before the second.
    assert_eq!(capper.journal().entries()[0].original.limit_watts, Some(150.0));
    let r = capper.reset().unwrap();
    assert_eq!(r.restored.len(), 1);
    assert!(r.failed.is_empty());
    assert!(capper.journal().entries().is_empty());
    drop(capper);
    assert_eq!(read(&limit), "150000000");
}

#[test]
fn a_failure_part_way_restores_what_was_already_written() {
    let (dir, sim, mut p) = node(Profile::Intel2s);
    let state = tempfile::tempdir().unwrap();
    let (pkg0, pkg1) = (index(&p, DomainKind::Package, 0), index(&p, DomainKind::Package, 1));
    let zone =
        |z: &str| dir.path().join(format!("sys/class/powercap/{z}/constraint_0_power_limit_uw"));
    let (mut capper, _) =
        Capper::open(&mut p, &Root::new(sim.root()), &at(state.path(), sim.root()), "test")
            .unwrap();
    let plan = capper
        .plan(&[
            Request { index: pkg0, write: long_term(100.0) },
            Request { index: pkg1, write: long_term(100.0) },
        ])
        .unwrap();
    // Between planning and writing, package-1's limit becomes read-only (a BIOS lock).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(zone("intel-rapl:1"), std::fs::Permissions::from_mode(0o444)).unwrap();
    let e = capper.apply(&plan).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, CapError::RolledBack { .. }), "{msg}");
    assert!(msg.contains("package-1 long_term") && msg.contains("locked"), "{msg}");
    assert!(msg.contains("restored the 1 limit(s) already written"), "{msg}");
    assert!(capper.journal().in_progress().is_none());
    drop(capper);
    assert_eq!(read(&zone("intel-rapl:0")), "150000000", "package-0 put back");
    assert_eq!(read(&zone("intel-rapl:1")), "150000000", "package-1 untouched");
}

/// A provider whose firmware keeps a GPU cap at 300 W whatever is written (a silent refusal).
struct Stubborn {
    domains: Vec<powerstack_model::DomainInfo>,
    writes: std::sync::Arc<std::sync::Mutex<Vec<f64>>>,
}

impl powerstack_hw::Provider for Stubborn {
    fn name(&self) -> &'static str {
        "stubborn"
    }
    fn domains(&self) -> &[powerstack_model::DomainInfo] {
        &self.domains
    }
    fn read(&mut self, out: &mut [powerstack_hw::Reading]) {
        for o in out {
            *o = powerstack_hw::Reading::Power(100.0);
        }
    }
    fn write_limit(&mut self, index: usize, w: &LimitWrite) -> Result<(), powerstack_hw::HwError> {
        self.writes.lock().unwrap().push(w.limit_watts);
        // GPU 1's firmware ignores the value; GPU 0 takes it.
        if index == 0 {
            self.domains[0].limits[0].limit_watts = Some(w.limit_watts);
        }
        Ok(())
    }
}

#[test]
fn a_read_back_that_differs_is_a_failure_and_rolls_back() {
    let gpu = |i: u32| powerstack_model::DomainInfo {
        id: DomainId::new(DomainKind::Gpu, i),
        provider: "stubborn",
        source: format!("gpu{i}"),
        measurement: powerstack_model::Measurement::Power,
        limits: vec![powerstack_model::PowerLimit {
            name: "cap".into(),
            limit_watts: Some(300.0),
            min_watts: Some(100.0),
            max_watts: Some(400.0),
            ..Default::default()
        }],
        socket: Some(0),
        label: None,
    };
    let writes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let provider = Stubborn { domains: vec![gpu(0), gpu(1)], writes: writes.clone() };
    let (mut p, _) = Platform::new(vec![Box::new(provider)]);
    let state = tempfile::tempdir().unwrap();
    let cap = |w| LimitWrite {
        constraint: "cap".into(),
        limit_watts: w,
        time_window_s: None,
        enabled: None,
    };
    let (mut capper, _) =
        Capper::open(&mut p, &Root::new(state.path()), &at(state.path(), state.path()), "test")
            .unwrap();
    let planned = capper
        .plan(&[Request { index: 0, write: cap(200.0) }, Request { index: 1, write: cap(200.0) }])
        .unwrap();
    let e = capper.apply(&planned).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("gpu-1 cap: wrote 200 W but read back 300 W"), "{msg}");
    assert!(msg.contains("restored the 1 limit(s) already written"), "{msg}");
    // GPU 0 was written (200), GPU 1 tried (200), then GPU 0 put back (300).
    assert_eq!(*writes.lock().unwrap(), vec![200.0, 200.0, 300.0]);
    assert_eq!(capper.platform().catalog()[0].limits[0].limit_watts, Some(300.0));
}

#[test]
fn validation_refuses_bad_values_with_the_domain_and_range_and_writes_nothing() {
    let (dir, _sim, p) = node(Profile::Intel2s);
    let pkg0 = index(&p, DomainKind::Package, 0);
    let limit = dir.path().join("sys/class/powercap/intel-rapl:0/constraint_0_power_limit_uw");
    for (w, expect) in [
        (-5.0, "not a valid power limit"),
        (f64::NAN, "not a valid power limit"),
        (0.0, "not a valid power limit"),
        (1e12, "outside the allowed range"),
        (150.5, "outside the allowed range"),
    ] {
        let e = plan(p.catalog(), &[Request { index: pkg0, write: long_term(w) }]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("package-0 long_term") && msg.contains(expect), "{w}: {msg}");
        assert!(msg.contains("150 W"), "names the range: {msg}");
    }
    let e = plan(
        p.catalog(),
        &[Request {
            index: pkg0,
            write: LimitWrite { constraint: "peak_power".into(), ..long_term(100.0) },
        }],
    )
    .unwrap_err();
    assert!(e.to_string().contains("its limits are long_term, short_term"), "{e}");
    assert_eq!(read(&limit), "150000000");
}

#[test]
fn a_locked_msr_limit_is_refused_before_anything_is_written() {
    let (_dir, sim, _p) = node(Profile::Intel2s);
    let (topology, _) = powerstack_hw::CpuTopology::discover(&Root::new(sim.root()));
    let io = sim.msr();
    io.set_lock(0, 0x610, true);
    let probe = msr::probe_with(&topology, Box::new(io));
    let (mut p, _) = Platform::new(vec![probe.provider.unwrap()]);
    let pkg0 = index(&p, DomainKind::Package, 0);
    let e = plan(p.catalog(), &[Request { index: pkg0, write: long_term(100.0) }]).unwrap_err();
    assert!(matches!(e, CapError::Locked { .. }), "{e}");
    // Package 1 is not locked: its PL1 goes through the MSR.
    let pkg1 = index(&p, DomainKind::Package, 1);
    let state = tempfile::tempdir().unwrap();
    let (mut capper, _) =
        Capper::open(&mut p, &Root::new(sim.root()), &at(state.path(), sim.root()), "test")
            .unwrap();
    let planned = capper.plan(&[Request { index: pkg1, write: long_term(100.0) }]).unwrap();
    let done = capper.apply(&planned).unwrap();
    assert_eq!(done[0].read_back_watts, Some(100.0));
}

#[test]
fn a_journal_left_in_progress_by_a_crash_restores_the_originals_at_the_next_start() {
    let (dir, sim, mut p) = node(Profile::Intel2s);
    let state = tempfile::tempdir().unwrap();
    let limit = dir.path().join("sys/class/powercap/intel-rapl:1/constraint_0_power_limit_uw");
    // A run that died after recording the original and writing, before finishing.
    {
        let mut j = at(state.path(), sim.root()).journal("test").unwrap();
        let key = powerstack_cap::ControlKey {
            provider: "powercap".into(),
            domain: "package-1".into(),
            constraint: "long_term".into(),
        };
        let original = Setting {
            limit_watts: Some(150.0),
            time_window_s: Some(0.999424),
            enabled: Some(true),
        };
        j.begin(vec![(key, "intel-rapl:1".into(), original)], "powerstack cap socket 60").unwrap();
    }
    std::fs::write(&limit, "60000000\n").unwrap();
    let (capper, recovered) =
        Capper::open(&mut p, &Root::new(sim.root()), &at(state.path(), sim.root()), "test")
            .unwrap();
    let recovered = recovered.expect("the crash is noticed");
    assert_eq!(recovered.restored.len(), 1, "{recovered:?}");
    assert!(capper.journal().in_progress().is_none());
    assert!(capper.journal().entries().is_empty());
    drop(capper);
    assert_eq!(read(&limit), "150000000");
}

#[test]
fn a_malformed_journal_is_an_error_not_a_silent_reset() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("journal.json"), "{not json").unwrap();
    let e = at(state.path(), state.path()).journal("test").err().unwrap();
    assert!(e.to_string().contains("malformed journal"), "{e}");
    assert_eq!(std::fs::read_to_string(state.path().join("journal.json")).unwrap(), "{not json");
}

#[test]
fn concurrent_callers_take_turns_and_do_not_deadlock() {
    let state = tempfile::tempdir().unwrap();
    let path = state.path().to_path_buf();
    let first = at(&path, &path).journal("test").unwrap();
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let _second = at(&path, &path).journal("test").unwrap();
        tx.send("second has the lock").unwrap();
    });
    // While the first holds the lock, the second waits.
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    drop(first);
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "second has the lock");
    t.join().unwrap();
}

#[test]
fn a_proportional_node_cap_on_intel_2s_keeps_measured_power_under_the_cap() {
    let (_dir, mut sim, mut p) = node(Profile::Intel2s);
    let state = tempfile::tempdir().unwrap();
    let report = measure(&mut sim, &mut p);
    let node_before = report.node.as_ref().unwrap().watts;
    let (cappable, uncappable) = node_cap_inputs(p.catalog(), &report);
    // Packages and DRAM are cappable; psys reads the platform, whose 45 W base is uncappable.
    assert_eq!(cappable.len(), 4);
    assert!((uncappable - 45.0).abs() < 0.5, "{uncappable}");
    let cap = 200.0;
    let domains: Vec<_> = cappable.iter().map(|c| c.1.clone()).collect();
    let alloc = allocate(Policy::Proportional, cap, &domains, uncappable, false).unwrap();
    let requests: Vec<Request> = alloc
        .shares
        .iter()
        .map(|(id, w)| Request {
            index: cappable.iter().find(|c| c.1.id == *id).unwrap().0,
            write: long_term(*w),
        })
        .collect();
    let (mut capper, _) =
        Capper::open(&mut p, &Root::new(sim.root()), &at(state.path(), sim.root()), "test")
            .unwrap();
    let planned = capper.plan(&requests).unwrap();
    capper.apply(&planned).unwrap();
    drop(capper);
    measure(&mut sim, &mut p);
    let after = measure(&mut sim, &mut p).node.unwrap().watts;
    assert!(node_before > cap, "{node_before}");
    assert!(after <= cap + 0.5, "node draws {after} W under a {cap} W cap");
}

#[test]
fn a_gpu_that_vanishes_part_way_through_rolls_back_the_gpus_already_capped() {
    let (_dir, mut sim, mut p) = node(Profile::Nvidia4gpu);
    let state = tempfile::tempdir().unwrap();
    let cap = |w| LimitWrite {
        constraint: "cap".into(),
        limit_watts: w,
        time_window_s: None,
        enabled: None,
    };
    let requests: Vec<Request> = (0..4)
        .map(|g| Request { index: index(&p, DomainKind::Gpu, g), write: cap(300.0) })
        .collect();
    let (mut capper, _) =
        Capper::open(&mut p, &Root::new(sim.root()), &at(state.path(), sim.root()), "test")
            .unwrap();
    let planned = capper.plan(&requests).unwrap();
    // The GPU falls off the bus after planning.
    sim.remove_device(DomainId::new(DomainKind::Gpu, 2)).unwrap();
    let e = capper.apply(&planned).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("gpu-2 cap"), "{msg}");
    assert!(msg.contains("restored the 2 limit(s) already written"), "{msg}");
    let catalog = capper.platform().catalog().to_vec();
    for g in [0, 1, 3] {
        let d = catalog.iter().find(|d| d.id == DomainId::new(DomainKind::Gpu, g)).unwrap();
        assert_eq!(d.limit("cap").unwrap().limit_watts, Some(700.0), "gpu-{g}");
    }
    assert!(capper.journal().in_progress().is_none());
}

#[test]
fn crash_recovery_also_puts_back_journaled_frequency_settings() {
    let (dir, sim, mut p) = node(Profile::Intel2s);
    let state = tempfile::tempdir().unwrap();
    let rel = "sys/devices/system/cpu/cpufreq/policy3/scaling_max_freq";
    let original = read(&dir.path().join(rel));
    {
        let mut j = at(state.path(), sim.root()).journal("test").unwrap();
        j.begin_files(vec![(rel.to_string(), original.clone())], "powerstack pools apply x.toml")
            .unwrap();
    }
    std::fs::write(dir.path().join(rel), "2000000\n").unwrap();
    let (capper, recovered) =
        Capper::open(&mut p, &Root::new(sim.root()), &at(state.path(), sim.root()), "test")
            .unwrap();
    let r = recovered.expect("the crash is noticed");
    assert_eq!(r.files_restored, vec![rel.to_string()]);
    assert!(capper.journal().file_entries().is_empty());
    drop(capper);
    assert_eq!(read(&dir.path().join(rel)), original);
}
