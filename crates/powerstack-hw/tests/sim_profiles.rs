//! The hwmon, pm_counters and nvml providers against `powerstack-sim`'s cray-ex, hwmon-node and
//! NVIDIA roots:
//! measured power over a simulated interval agrees with the model's true power, and controller
//! restarts and removed devices behave.

use std::time::Duration;

use powerstack_hw::{Platform, Root, Selection, Source, discover};
use powerstack_model::{DomainId, DomainKind, NodeSource, PowerReport, Snapshot, Value};
use powerstack_sim::{Profile, SimNode, SimOptions};
use tempfile::TempDir;

const SECOND: Duration = Duration::from_secs(1);

fn start(profile: Profile, opts: SimOptions, source: Source) -> (TempDir, SimNode, Platform) {
    let dir = tempfile::tempdir().unwrap();
    let node = SimNode::create(dir.path(), profile, opts).unwrap();
    let found = discover(&Root::new(dir.path()), &Selection::Only(vec![source]));
    let provider_warnings: Vec<_> =
        found.warnings.iter().filter(|w| w.provider == source.as_str()).collect();
    assert!(provider_warnings.is_empty(), "{provider_warnings:?}");
    (dir, node, found.platform)
}

fn sample(pf: &mut Platform, node: &SimNode) -> Snapshot {
    pf.sample_at(node.mono_ns(), node.unix_us())
}

/// Every simulated domain is in the catalog, and each measured power is within `tolerance(truth,
/// interval)` of the model's.
fn assert_close(
    pf: &Platform,
    node: &SimNode,
    r: &PowerReport,
    tolerance: impl Fn(f64, f64) -> f64,
) {
    let mut ids: Vec<DomainId> = pf.catalog().iter().map(|d| d.id).collect();
    let mut expected = node.domains();
    ids.sort();
    expected.sort();
    assert_eq!(ids, expected);
    for id in ids {
        let truth = node.true_power_watts(id).unwrap();
        let measured = r.get(id).and_then(|d| d.power_watts).unwrap_or(f64::NAN);
        let tol = tolerance(truth, r.interval_s);
        assert!(
            (measured - truth).abs() <= tol,
            "{id}: measured {measured} W, true {truth} W (±{tol})"
        );
    }
}

/// pm_counters count whole joules and whole watts.
fn pm_tolerance(truth: f64, interval_s: f64) -> f64 {
    (0.01 * truth).max(1.0 / interval_s)
}

#[test]
fn cray_ex_power_matches_the_model() {
    let (_dir, mut node, mut pf) =
        start(Profile::CrayEx, SimOptions::default(), Source::PmCounters);
    assert_eq!(pf.catalog().iter().filter(|d| d.id.kind == DomainKind::Gpu).count(), 4);
    node.advance(SECOND).unwrap();
    let a = sample(&mut pf, &node);
    node.advance(SECOND).unwrap();
    let b = sample(&mut pf, &node);
    let r = PowerReport::between(pf.catalog(), &a, &b);
    assert_close(&pf, &node, &r, pm_tolerance);
    assert_eq!(r.node.as_ref().map(|n| &n.source), Some(&NodeSource::Direct(0)));
    assert!(pf.take_warnings().is_empty());
}

#[test]
fn cray_ex_sine_load_over_many_steps_matches_the_true_energy() {
    let opts = SimOptions { pattern: powerstack_sim::LoadPattern::Sine, ..SimOptions::default() };
    let (_dir, mut node, mut pf) = start(Profile::CrayEx, opts, Source::PmCounters);
    let a = sample(&mut pf, &node);
    let e0: Vec<f64> =
        pf.catalog().iter().map(|d| node.true_energy_joules(d.id).unwrap()).collect();
    for _ in 0..50 {
        node.advance(Duration::from_millis(100)).unwrap();
    }
    let b = sample(&mut pf, &node);
    let r = PowerReport::between(pf.catalog(), &a, &b);
    for (i, d) in pf.catalog().iter().enumerate() {
        let truth = (node.true_energy_joules(d.id).unwrap() - e0[i]) / 5.0;
        let measured = r.domains[i].power_watts.unwrap();
        assert!(
            (measured - truth).abs() <= pm_tolerance(truth, 5.0),
            "{}: {measured} vs {truth}",
            d.id
        );
    }
}

#[test]
fn cray_ex_controller_restart_is_a_reset_not_a_negative_or_huge_power() {
    let (_dir, mut node, mut pf) =
        start(Profile::CrayEx, SimOptions::default(), Source::PmCounters);
    node.advance(SECOND).unwrap();
    let a = sample(&mut pf, &node);
    // A restart in the middle of an interval: the energy before it is lost, never negative.
    node.advance(Duration::from_millis(500)).unwrap();
    node.reset_pm_counters().unwrap();
    node.advance(Duration::from_millis(500)).unwrap();
    let b = sample(&mut pf, &node);
    let r = PowerReport::between(pf.catalog(), &a, &b);
    for d in pf.catalog() {
        let truth = node.true_power_watts(d.id).unwrap();
        let p = r.get(d.id).and_then(|x| x.power_watts).unwrap();
        assert!(
            p >= 0.0 && p <= truth + pm_tolerance(truth, r.interval_s),
            "{}: {p} W (true {truth})",
            d.id
        );
    }
    // The next interval is exact again, and the extended counters never went backwards.
    node.advance(SECOND).unwrap();
    let c = sample(&mut pf, &node);
    let r = PowerReport::between(pf.catalog(), &b, &c);
    assert_close(&pf, &node, &r, pm_tolerance);
    for i in 0..pf.catalog().len() {
        let j = |s: &Snapshot| match s.values[i] {
            Value::Energy { joules, .. } => joules,
            other => panic!("{other:?}"),
        };
        assert!(j(&a) <= j(&b) && j(&b) <= j(&c));
    }
    assert!(pf.take_warnings().is_empty());
}

#[test]
fn cray_ex_removed_accelerator_reads_missing_and_the_rest_keeps_reading() {
    let (_dir, mut node, mut pf) =
        start(Profile::CrayEx, SimOptions::default(), Source::PmCounters);
    let gpu2 = DomainId::new(DomainKind::Gpu, 2);
    node.advance(SECOND).unwrap();
    let a = sample(&mut pf, &node);
    node.remove_device(gpu2).unwrap();
    node.advance(SECOND).unwrap();
    let b = sample(&mut pf, &node);
    let i = pf.catalog().iter().position(|d| d.id == gpu2).unwrap();
    assert_eq!(b.values[i], Value::Missing);
    let w = pf.take_warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].message.contains("gpu-2"), "{w:?}");
    let r = PowerReport::between(pf.catalog(), &a, &b);
    for d in pf.catalog().iter().filter(|d| d.id != gpu2) {
        let truth = node.true_power_watts(d.id).unwrap();
        let p = r.get(d.id).and_then(|x| x.power_watts).unwrap();
        assert!((p - truth).abs() <= pm_tolerance(truth, r.interval_s), "{}: {p} vs {truth}", d.id);
    }
}

#[test]
fn hwmon_node_power_matches_the_model_exactly() {
    for shuffle in [false, true] {
        let opts = SimOptions { shuffle_indices: shuffle, ..SimOptions::default() };
        let (_dir, mut node, mut pf) = start(Profile::HwmonNode, opts, Source::Hwmon);
        let gpu = pf.catalog().iter().find(|d| d.id.kind == DomainKind::Gpu).unwrap();
        assert_eq!(gpu.source, "amdgpu 0000:03:00.0 power1_average");
        assert_eq!(gpu.socket, Some(0));
        node.advance(SECOND).unwrap();
        let a = sample(&mut pf, &node);
        node.advance(SECOND).unwrap();
        let b = sample(&mut pf, &node);
        let r = PowerReport::between(pf.catalog(), &a, &b);
        // The files hold whole microwatts.
        assert_close(&pf, &node, &r, |_, _| 1e-6);
        let n = r.node.unwrap();
        assert!(matches!(n.source, NodeSource::Direct(_)));
        assert!(pf.take_warnings().is_empty());
    }
}

#[test]
fn hwmon_node_removed_gpu_reads_missing_and_the_meter_keeps_reading() {
    let (_dir, mut node, mut pf) = start(Profile::HwmonNode, SimOptions::default(), Source::Hwmon);
    let gpu0 = DomainId::new(DomainKind::Gpu, 0);
    node.advance(SECOND).unwrap();
    let a = sample(&mut pf, &node);
    node.remove_device(gpu0).unwrap();
    node.advance(SECOND).unwrap();
    let b = sample(&mut pf, &node);
    let i = pf.catalog().iter().position(|d| d.id == gpu0).unwrap();
    assert_eq!(b.values[i], Value::Missing);
    let w = pf.take_warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    let r = PowerReport::between(pf.catalog(), &a, &b);
    let truth = node.true_power_watts(DomainId::NODE).unwrap();
    let p = r.get(DomainId::NODE).and_then(|d| d.power_watts).unwrap();
    assert!((p - truth).abs() <= 1e-6, "{p} vs {truth}");
    assert_eq!(pf.refresh_limits().len(), 1, "the gone GPU's cap cannot be re-read");
}

// ---------------------------------------------------------------------------------------------
// nvidia-4gpu and nvidia-8gpu through the nvml provider and the mock NVML library (built by
// cargo as a dev-dependency, next to this test binary, where `SimNode::create` finds it).

/// Each NVIDIA profile's GPU addresses in PCI order and their sockets.
const NVIDIA: [(Profile, &[&str], &[u32]); 2] = [
    (
        Profile::Nvidia4gpu,
        &["0000:17:00.0", "0000:31:00.0", "0000:b1:00.0", "0000:ca:00.0"],
        &[0, 0, 1, 1],
    ),
    (
        Profile::Nvidia8gpu,
        &[
            "0000:19:00.0",
            "0000:3b:00.0",
            "0000:4c:00.0",
            "0000:5d:00.0",
            "0000:9b:00.0",
            "0000:bb:00.0",
            "0000:cb:00.0",
            "0000:db:00.0",
        ],
        &[0, 0, 0, 0, 1, 1, 1, 1],
    ),
];

fn gpu_entries(pf: &Platform) -> Vec<&powerstack_model::DomainInfo> {
    pf.catalog().iter().filter(|d| d.id.kind == DomainKind::Gpu).collect()
}

#[test]
fn nvidia_gpus_are_discovered_in_pci_order_on_their_sockets_with_their_caps() {
    for (profile, addrs, sockets) in NVIDIA {
        let (_dir, mut node, mut pf) = start(profile, SimOptions::default(), Source::Nvml);
        let gpus = gpu_entries(&pf);
        assert_eq!(gpus.len(), addrs.len(), "{profile}");
        for (i, g) in gpus.iter().enumerate() {
            assert_eq!(g.id, DomainId::new(DomainKind::Gpu, i as u32), "{profile}");
            assert!(g.source.starts_with(addrs[i]), "{profile}: {} is not {}", g.source, addrs[i]);
            assert_eq!(g.socket, Some(sockets[i]), "{profile} {}", g.id);
            let cap = g.limit("cap").unwrap();
            assert_eq!(
                (cap.limit_watts, cap.min_watts, cap.max_watts, cap.default_watts),
                (Some(700.0), Some(200.0), Some(700.0), Some(700.0)),
                "{profile} {}",
                g.id
            );
        }
        // Power over whole NVML update periods is the model's, to the counter's 1 mJ.
        node.advance(SECOND).unwrap();
        let a = sample(&mut pf, &node);
        node.advance(SECOND).unwrap();
        let b = sample(&mut pf, &node);
        let r = PowerReport::between(pf.catalog(), &a, &b);
        for g in gpu_entries(&pf) {
            let truth = node.true_power_watts(g.id).unwrap();
            let p = r.get(g.id).and_then(|x| x.power_watts).unwrap();
            assert!((p - truth).abs() <= 1e-3, "{profile} {}: {p} vs {truth}", g.id);
        }
        assert!(pf.take_warnings().is_empty(), "{profile}");
    }
}

#[test]
fn nvidia_nvml_calls_take_what_an_h200_takes() {
    for (profile, addrs, _) in NVIDIA {
        let (dir, _node, _pf) = start(profile, SimOptions::default(), Source::Nvml);
        let lib = dir.path().join("usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1");
        let nvml = nvml_wrapper::Nvml::builder().lib_path(lib.as_os_str()).init().unwrap();
        assert_eq!(nvml.device_count().unwrap(), addrs.len() as u32);
        for i in 0..addrs.len() as u32 {
            let gpu = nvml.device_by_index(i).unwrap();
            let start = std::time::Instant::now();
            gpu.total_energy_consumption().unwrap();
            let took = start.elapsed();
            assert!(took >= Duration::from_micros(2565), "{profile}: energy of {i} in {took:?}");
            let start = std::time::Instant::now();
            gpu.power_management_limit().unwrap();
            let took = start.elapsed();
            assert!(took >= Duration::from_micros(128), "{profile}: limit of {i} in {took:?}");
        }
    }
}

#[test]
fn nvidia_nvml_answers_one_thread_per_gpu_at_once() {
    let (profile, addrs, _) = NVIDIA[1];
    let (dir, _node, _pf) = start(profile, SimOptions::default(), Source::Nvml);
    let lib = dir.path().join("usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1");
    let nvml = nvml_wrapper::Nvml::builder().lib_path(lib.as_os_str()).init().unwrap();
    let state = dir.path().join("var/lib/powerstack-sim/nvml");
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..addrs.len() as u32)
            .map(|i| {
                let (nvml, state) = (&nvml, &state);
                scope.spawn(move || {
                    let gpu = nvml.device_by_index(i).unwrap();
                    let file = |f: &str| -> u64 {
                        let text = std::fs::read_to_string(state.join(format!("gpu{i}/{f}")));
                        text.unwrap().trim().parse().unwrap()
                    };
                    for _ in 0..5 {
                        assert_eq!(gpu.total_energy_consumption().unwrap(), file("energy_mj"));
                        assert_eq!(u64::from(gpu.power_usage().unwrap()), file("power_mw"));
                        assert_eq!(u64::from(gpu.power_management_limit().unwrap()), 700_000);
                    }
                    gpu.pci_info().unwrap().bus_id
                })
            })
            .collect();
        let mut seen: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        seen.sort();
        let mut want: Vec<String> =
            addrs.iter().map(|a| format!("0000{}", a.to_ascii_uppercase())).collect();
        want.sort();
        assert_eq!(seen, want, "each thread got its own GPU");
    });
}

#[test]
fn nvidia_gpu_caps_written_through_nvml_are_honoured() {
    for (profile, addrs, _) in NVIDIA {
        let opts = SimOptions { load: 1.0, ..SimOptions::default() };
        let (_dir, mut node, mut pf) = start(profile, opts, Source::Nvml);
        let last = DomainId::new(DomainKind::Gpu, addrs.len() as u32 - 1);
        let i = pf.catalog().iter().position(|d| d.id == last).unwrap();
        let write = powerstack_model::LimitWrite {
            constraint: "cap".into(),
            limit_watts: 300.0,
            time_window_s: None,
            enabled: None,
        };
        pf.write_limit(i, &write).unwrap();
        assert_eq!(pf.catalog()[i].limit("cap").unwrap().limit_watts, Some(300.0));
        node.advance(SECOND).unwrap();
        assert_eq!(node.true_power_watts(last), Some(300.0), "{profile}");
        assert_eq!(node.true_power_watts(DomainId::new(DomainKind::Gpu, 0)), Some(700.0));
    }
}

#[test]
fn nvidia_removed_gpu_reads_missing_and_the_others_keep_reading() {
    for (profile, addrs, _) in NVIDIA {
        let (_dir, mut node, mut pf) = start(profile, SimOptions::default(), Source::Nvml);
        let gone = DomainId::new(DomainKind::Gpu, 1);
        node.advance(SECOND).unwrap();
        let a = sample(&mut pf, &node);
        node.remove_device(gone).unwrap();
        node.advance(SECOND).unwrap();
        let b = sample(&mut pf, &node);
        let i = pf.catalog().iter().position(|d| d.id == gone).unwrap();
        assert_eq!(b.values[i], Value::Missing, "{profile}");
        let w = pf.take_warnings();
        assert_eq!(w.len(), 1, "{profile}: {w:?}");
        assert!(w[0].message.contains(addrs[1]), "{profile}: {w:?}");
        let r = PowerReport::between(pf.catalog(), &a, &b);
        for d in gpu_entries(&pf).into_iter().filter(|d| d.id != gone) {
            let truth = node.true_power_watts(d.id).unwrap();
            let p = r.get(d.id).and_then(|x| x.power_watts).unwrap();
            assert!((p - truth).abs() <= 1e-3, "{profile} {}: {p} vs {truth}", d.id);
        }
    }
}
