//! The nvml provider through the real loading path: nvml-wrapper `dlopen`s the mock NVML library
//! (`powerstack-mock-nvml`, built by `cargo test --workspace`) installed under a hand-built root,
//! and the mock answers from the state directory under that root (found from its own load path,
//! so no environment variable is needed and tests can run in parallel).
//!
//! Each root gets its own **copy** of the library: the dynamic loader would share one instance
//! between symlinks or hard links to the same file, and with it the first root's state.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use powerstack_hw::providers::nvml::{self, NvmlOptions};
use powerstack_hw::{
    DiscoverOptions, Discovery, HwError, ProviderOptions, Root, Selection, Source, SourceState,
    discover, discover_with,
};
use powerstack_model::{DomainKind, LimitWrite, Measurement, PowerReport, Value};
use tempfile::TempDir;

/// The built mock library. It is a dev-dependency of this crate, so cargo builds it (into
/// `target/<profile>/deps/`, next to this test binary) before running these tests; a direct build
/// (`cargo build -p powerstack-mock-nvml`) puts it in `target/<profile>/`.
fn mock_library() -> PathBuf {
    const FILE: &str = "libpowerstack_mock_nvml.so";
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("target/<profile>/deps");
    let candidates = [deps.join(FILE), deps.parent().map(|p| p.join(FILE)).unwrap_or_default()];
    candidates.iter().find(|p| p.is_file()).cloned().unwrap_or_else(|| {
        panic!(
            "the mock NVML library is not built (looked for {} and {}): run `cargo test --workspace` \
             or `cargo build -p powerstack-mock-nvml`",
            candidates[0].display(),
            candidates[1].display()
        )
    })
}

/// One simulated GPU: PCI address (NVML form), NUMA node, name.
struct GpuSpec {
    bus_id: &'static str,
    numa: i32,
    name: &'static str,
}

/// Four GPUs listed in NVML index order, which is not PCI order: PCI order is 17, 3b (NUMA node
/// 0), 86, b3 (NUMA node 1).
const GPUS: [GpuSpec; 4] = [
    GpuSpec { bus_id: "00000000:86:00.0", numa: 1, name: "NVIDIA H100 80GB HBM3" },
    GpuSpec { bus_id: "00000000:17:00.0", numa: 0, name: "NVIDIA H100 80GB HBM3" },
    GpuSpec { bus_id: "00000000:B3:00.0", numa: 1, name: "NVIDIA H100 PCIe" },
    GpuSpec { bus_id: "00000000:3B:00.0", numa: 0, name: "NVIDIA H100 80GB HBM3" },
];

/// The NVML index of the GPU numbered `gpu-N` in PCI order.
const NVML_INDEX_OF_GPU: [usize; 4] = [1, 3, 0, 2];

const STATE: &str = "var/lib/powerstack-sim/nvml";

struct Node {
    dir: TempDir,
}

impl Node {
    /// A two-package node with two NUMA nodes; `gpus` adds the NVIDIA PCI devices, `library`
    /// installs the mock NVML library and its state.
    fn new(gpus: bool, library: bool) -> Node {
        let node = Node { dir: tempfile::tempdir().unwrap() };
        for cpu in 0..4u32 {
            let pkg = cpu / 2;
            node.write(
                &format!("sys/devices/system/cpu/cpu{cpu}/topology/physical_package_id"),
                &format!("{pkg}\n"),
            );
            node.write(&format!("sys/devices/system/cpu/cpu{cpu}/topology/core_id"), "0\n");
        }
        node.write("sys/devices/system/cpu/online", "0-3\n");
        node.write("sys/devices/system/node/node0/cpulist", "0-1\n");
        node.write("sys/devices/system/node/node1/cpulist", "2-3\n");
        node.write(
            "proc/cpuinfo",
            "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n\n",
        );
        if gpus {
            for g in &GPUS {
                node.pci_device(g);
            }
        }
        if library {
            node.install_library();
            node.write(&format!("{STATE}/count"), &format!("{}\n", GPUS.len()));
            for (i, g) in GPUS.iter().enumerate() {
                let uuid = format!("GPU-0000000{i}-1111-2222-3333-444444444444");
                let files = [
                    ("name", g.name.to_string()),
                    ("uuid", uuid),
                    ("pci_bus_id", g.bus_id.to_string()),
                    ("energy_mj", format!("{}", 1_000_000 * (i as u64 + 1))),
                    ("power_mw", "250000".to_string()),
                    ("power_limit_mw", "700000".to_string()),
                    ("limit_min_mw", "200000".to_string()),
                    ("limit_max_mw", "700000".to_string()),
                    ("limit_default_mw", "700000".to_string()),
                    ("energy_supported", "1".to_string()),
                ];
                for (f, v) in files {
                    node.write(&format!("{STATE}/gpu{i}/{f}"), &format!("{v}\n"));
                }
            }
        }
        node
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

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }

    /// A PCI device laid out like the kernel's: the device directory under `sys/devices` and a
    /// relative `sys/bus/pci/devices/ADDR` link to it.
    fn pci_device(&self, g: &GpuSpec) {
        let addr = format!("0000:{}", &g.bus_id[9..]).to_lowercase();
        let bus = &addr[..7];
        let dev_rel = format!("sys/devices/pci{bus}/{addr}");
        self.write(&format!("{dev_rel}/vendor"), "0x10de\n");
        self.write(&format!("{dev_rel}/class"), "0x030200\n");
        self.write(&format!("{dev_rel}/numa_node"), &format!("{}\n", g.numa));
        let link = self.path(&format!("sys/bus/pci/devices/{addr}"));
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        symlink(format!("../../../devices/pci{bus}/{addr}"), link).unwrap();
    }

    fn install_library(&self) {
        let dst = self.path("usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1");
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        fs::copy(mock_library(), dst).unwrap();
    }

    /// The state file `file` of the GPU numbered `gpu` in PCI order.
    fn gpu_file(&self, gpu: usize, file: &str) -> String {
        format!("{STATE}/gpu{}/{file}", NVML_INDEX_OF_GPU[gpu])
    }

    fn discover(&self) -> Discovery {
        discover(&self.root(), &Selection::Only(vec![Source::Nvml]))
    }
}

fn nvml_warnings(d: &Discovery) -> Vec<String> {
    d.warnings.iter().filter(|w| w.provider == nvml::NAME).map(|w| w.message.clone()).collect()
}

fn cap(limit_watts: f64) -> LimitWrite {
    LimitWrite { constraint: "cap".into(), limit_watts, time_window_s: None, enabled: None }
}

#[test]
fn gpus_are_numbered_in_pci_order_and_attached_to_their_numa_socket() {
    let node = Node::new(true, true);
    let found = discover(&node.root(), &Selection::Auto);
    assert!(nvml_warnings(&found).is_empty(), "{:?}", nvml_warnings(&found));
    let gpus: Vec<_> =
        found.platform.catalog().iter().filter(|d| d.id.kind == DomainKind::Gpu).collect();
    assert_eq!(gpus.len(), 4);
    let addrs = ["0000:17:00.0", "0000:3b:00.0", "0000:86:00.0", "0000:b3:00.0"];
    for (i, (g, addr)) in gpus.iter().zip(addrs).enumerate() {
        assert_eq!(g.id.index, i as u32);
        assert_eq!(g.provider, "nvml");
        let name = GPUS[NVML_INDEX_OF_GPU[i]].name;
        assert_eq!(g.source, format!("{addr} ({name})"));
        assert_eq!(g.label.as_deref(), Some(name));
        assert_eq!(
            g.measurement,
            Measurement::Energy(powerstack_model::CounterSpec::non_wrapping(1e-3))
        );
    }
    let sockets: Vec<_> = gpus.iter().map(|g| g.socket).collect();
    assert_eq!(sockets, [Some(0), Some(0), Some(1), Some(1)]);
}

#[test]
fn power_comes_from_the_energy_counter() {
    let node = Node::new(true, true);
    let mut platform = node.discover().platform;
    let a = platform.sample_at(1_000_000_000, 0);
    // gpu-0 draws 300 W for 2 s; gpu-3 400 W; the others idle at 60 W.
    for (gpu, watts) in [(0usize, 300u64), (1, 60), (2, 60), (3, 400)] {
        let f = node.gpu_file(gpu, "energy_mj");
        let before: u64 = node.read(&f).trim().parse().unwrap();
        node.write(&f, &format!("{}\n", before + watts * 2_000));
    }
    let b = platform.sample_at(3_000_000_000, 2_000_000);
    let report = PowerReport::between(platform.catalog(), &a, &b);
    let watts: Vec<_> = report.domains.iter().map(|d| d.power_watts.unwrap()).collect();
    assert!((watts[0] - 300.0).abs() < 1e-9, "{watts:?}");
    assert!((watts[3] - 400.0).abs() < 1e-9, "{watts:?}");
    assert!((watts[1] - 60.0).abs() < 1e-9, "{watts:?}");
    // The counter's raw value is kept: gpu-0 is NVML index 1, which started at 2000 J.
    assert_eq!(report.domains[0].energy_joules, Some(2_000.0 + 600.0));
    assert!(platform.take_warnings().is_empty());
}

#[test]
fn each_call_takes_the_latency_configured_in_the_state_directory() {
    // 20 ms per energy reading, 5 ms per limit read, none for the power: each call lasts at least
    // 0.9 times its median (no upper bound is checked: a loaded machine may take longer).
    let node = Node::new(true, true);
    node.write(&format!("{STATE}/latency_us/energy"), "20000\n");
    node.write(&format!("{STATE}/latency_us/limit"), "5000 5000\n");
    node.write(&format!("{STATE}/latency_us/power"), "0 0\n");
    let lib = node.path("usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1");
    let nvml = nvml_wrapper::Nvml::builder().lib_path(lib.as_os_str()).init().unwrap();
    let gpu = nvml.device_by_index(1).unwrap();
    let timed = |call: &dyn Fn() -> u64| {
        let start = std::time::Instant::now();
        let v = call();
        (v, start.elapsed())
    };
    let (mj, took) = timed(&|| gpu.total_energy_consumption().unwrap());
    assert_eq!(mj, 2_000_000, "the value is read");
    assert!(took >= std::time::Duration::from_millis(18), "an energy reading took {took:?}");
    let (mw, took) = timed(&|| u64::from(gpu.power_management_limit().unwrap()));
    assert_eq!(mw, 700_000);
    assert!(took >= std::time::Duration::from_micros(4500), "a limit read took {took:?}");
    let (mw, _) = timed(&|| u64::from(gpu.power_usage().unwrap()));
    assert_eq!(mw, 250_000);
}

#[test]
fn a_driver_reload_resets_the_energy_counter_without_a_negative_power() {
    let node = Node::new(true, true);
    let mut platform = node.discover().platform;
    let a = platform.sample_at(1_000_000_000, 0);
    node.write(&node.gpu_file(0, "energy_mj"), "500\n");
    let b = platform.sample_at(2_000_000_000, 1_000_000);
    let report = PowerReport::between(platform.catalog(), &a, &b);
    let w = report.domains[0].power_watts.unwrap();
    assert!((0.0..=1.0).contains(&w), "{w}");
}

#[test]
fn a_gpu_without_an_energy_counter_is_measured_by_power_usage() {
    let node = Node::new(true, true);
    node.write(&node.gpu_file(2, "energy_supported"), "0\n");
    node.write(&node.gpu_file(2, "power_mw"), "312500\n");
    let found = node.discover();
    assert!(nvml_warnings(&found).is_empty(), "{:?}", nvml_warnings(&found));
    let mut platform = found.platform;
    assert_eq!(platform.catalog()[2].measurement, Measurement::Power);
    assert!(matches!(platform.catalog()[1].measurement, Measurement::Energy(_)));
    let s = platform.sample_at(1, 0);
    assert_eq!(s.values[2], Value::Power { watts: 312.5 });
}

#[test]
fn limits_report_the_range_and_the_default() {
    let node = Node::new(true, true);
    node.write(&node.gpu_file(1, "power_limit_mw"), "550000\n");
    let platform = node.discover().platform;
    let l = platform.catalog()[1].limit("cap").unwrap();
    assert_eq!(l.limit_watts, Some(550.0));
    assert_eq!(
        (l.min_watts, l.max_watts, l.default_watts),
        (Some(200.0), Some(700.0), Some(700.0))
    );
    assert_eq!((l.enabled, l.locked, l.time_window_s), (Some(true), false, None));
    assert!(platform.catalog()[1].is_controllable());
}

#[test]
fn writing_a_limit_in_range_sets_the_gpu_and_the_catalog() {
    let node = Node::new(true, true);
    let mut platform = node.discover().platform;
    platform.write_limit(3, &cap(450.4)).unwrap();
    assert_eq!(node.read(&node.gpu_file(3, "power_limit_mw")), "450400\n");
    assert_eq!(platform.catalog()[3].limit("cap").unwrap().limit_watts, Some(450.4));
    // The others are untouched.
    assert_eq!(node.read(&node.gpu_file(0, "power_limit_mw")), "700000\n");
    // A change made by someone else shows at the next refresh.
    node.write(&node.gpu_file(0, "power_limit_mw"), "300000\n");
    assert!(platform.refresh_limits().is_empty());
    assert_eq!(platform.catalog()[0].limit("cap").unwrap().limit_watts, Some(300.0));
}

#[test]
fn a_limit_out_of_range_is_refused_by_nvml_and_changes_nothing() {
    let node = Node::new(true, true);
    let mut platform = node.discover().platform;
    let e = platform.write_limit(0, &cap(800.0)).unwrap_err();
    assert!(matches!(e, HwError::Refused { .. }), "{e}");
    assert!(e.to_string().contains("200 W to 700 W"), "{e}");
    assert_eq!(node.read(&node.gpu_file(0, "power_limit_mw")), "700000\n");
    assert_eq!(platform.catalog()[0].limit("cap").unwrap().limit_watts, Some(700.0));
    let e = platform
        .write_limit(0, &LimitWrite { constraint: "long_term".into(), ..cap(300.0) })
        .unwrap_err();
    assert!(matches!(e, HwError::Unsupported { .. }), "{e}");
}

#[test]
fn without_permission_a_write_says_to_run_as_root() {
    let node = Node::new(true, true);
    node.write(&node.gpu_file(1, "set_permission"), "0\n");
    let mut platform = node.discover().platform;
    let e = platform.write_limit(1, &cap(400.0)).unwrap_err();
    assert!(e.to_string().contains("run as root"), "{e}");
    assert_eq!(node.read(&node.gpu_file(1, "power_limit_mw")), "700000\n");
}

#[test]
fn a_vanished_gpu_is_missing_with_a_warning_and_the_others_keep_reading() {
    let node = Node::new(true, true);
    let mut platform = node.discover().platform;
    platform.sample_at(1_000_000_000, 0);
    fs::remove_dir_all(node.path(&format!("{STATE}/gpu{}", NVML_INDEX_OF_GPU[2]))).unwrap();
    let s = platform.sample_at(2_000_000_000, 1_000_000);
    assert_eq!(s.values[2], Value::Missing);
    for i in [0, 1, 3] {
        assert!(matches!(s.values[i], Value::Energy { .. }), "{:?}", s.values[i]);
    }
    let w = platform.take_warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].unreadable);
    assert!(w[0].message.starts_with("gpu-2: NVIDIA GPU 0000:86:00.0 is not there"), "{}", w[0]);
    // Warned once, not at every sample (the others draw power meanwhile).
    for gpu in [0usize, 1, 3] {
        let f = node.gpu_file(gpu, "energy_mj");
        let before: u64 = node.read(&f).trim().parse().unwrap();
        node.write(&f, &format!("{}\n", before + 60_000));
    }
    platform.sample_at(3_000_000_000, 2_000_000);
    assert!(platform.take_warnings().is_empty());
}

fn state(d: &Discovery, source: Source) -> SourceState {
    d.sources.iter().find(|r| r.source == source).expect("every source is reported").state.clone()
}

#[test]
fn a_node_without_nvidia_devices_or_library_has_no_nvml_and_no_warning() {
    let node = Node::new(false, false);
    // The node is measured by something else (an HPE Cray board controller).
    node.write("sys/cray/pm_counters/energy", "100 J\n");
    node.write("sys/cray/pm_counters/power", "100 W\n");
    let found = discover(&node.root(), &Selection::Auto);
    assert!(nvml_warnings(&found).is_empty(), "{:?}", nvml_warnings(&found));
    assert!(!found.platform.provider_names().contains(&"nvml"));
    let nvml = state(&found, Source::Nvml);
    assert!(matches!(&nvml, SourceState::Absent(why) if why.contains("no NVIDIA GPU")), "{nvml:?}");
}

#[test]
fn on_a_gpu_only_node_the_absent_cpu_sources_are_reported_not_warned() {
    // An H200 VM: NVML and nothing else (no powercap zone, no msr device, no hwmon chip).
    let node = Node::new(true, true);
    let found = discover(&node.root(), &Selection::Auto);
    assert!(found.warnings.is_empty(), "{:?}", found.warnings);
    assert_eq!(state(&found, Source::Nvml), SourceState::Found { domains: 4 });
    let msr = state(&found, Source::Msr);
    assert!(matches!(&msr, SourceState::Absent(why) if why.contains("no msr device")), "{msr:?}");
    for s in [Source::Powercap, Source::PmCounters, Source::Hwmon] {
        assert!(matches!(state(&found, s), SourceState::Absent(_)), "{s:?}");
    }
    let line = found.sources.iter().find(|r| r.source == Source::Msr).unwrap().to_string();
    assert!(line.starts_with("msr: absent: no msr device under "), "{line}");
}

#[test]
fn when_nothing_measures_the_node_an_absent_source_is_a_warning() {
    let node = Node::new(false, false);
    let found = discover(&node.root(), &Selection::Auto);
    assert!(found.platform.is_empty());
    let warned = |provider: &str, text: &str| {
        found.warnings.iter().any(|w| w.provider == provider && w.message.contains(text))
    };
    assert!(warned("msr", "no msr device"), "{:?}", found.warnings);
    assert!(warned("powercap", "no RAPL zone"), "{:?}", found.warnings);
    // Absent is not unreadable: nothing present failed.
    assert!(found.warnings.iter().all(|w| !w.unreadable), "{:?}", found.warnings);
    assert!(matches!(state(&found, Source::Msr), SourceState::Absent(_)));
}

#[test]
fn sources_left_out_are_not_probed_and_say_why() {
    let node = Node::new(true, true);
    let found = node.discover();
    assert_eq!(state(&found, Source::Nvml), SourceState::Found { domains: 4 });
    assert_eq!(state(&found, Source::Msr), SourceState::NotProbed("not selected".into()));
    let order: Vec<Source> = found.sources.iter().map(|r| r.source).collect();
    assert_eq!(order, Source::ALL);
}

#[test]
fn nvidia_devices_without_a_library_are_a_warning() {
    let node = Node::new(true, false);
    let found = node.discover();
    assert!(found.platform.is_empty());
    let w = nvml_warnings(&found);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("NVIDIA GPUs are present but libnvidia-ml.so.1 is not under"),
        "{}",
        w[0]
    );
}

#[test]
fn a_named_library_that_is_missing_is_a_warning_with_the_loader_error() {
    let node = Node::new(false, true);
    let missing = node.path("opt/nvidia/libnvidia-ml.so.1");
    let options = DiscoverOptions::from(ProviderOptions {
        nvml: NvmlOptions { library: Some(missing.clone()) },
    });
    let found = discover_with(&node.root(), &Selection::Only(vec![Source::Nvml]), &options);
    assert!(found.platform.is_empty());
    let w = nvml_warnings(&found);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with(&format!("cannot load the NVML library {}", missing.display())),
        "{}",
        w[0]
    );
    assert!(w[0].contains("No such file"), "{}", w[0]);
}

#[test]
fn a_library_without_its_driver_state_says_the_driver_is_not_running() {
    // The library named explicitly, loaded from a path that names no root: no state directory.
    let node = Node::new(true, false);
    let lib = node.path("opt/mock/libnvidia-ml.so.1");
    fs::create_dir_all(lib.parent().unwrap()).unwrap();
    fs::copy(mock_library(), &lib).unwrap();
    let options =
        DiscoverOptions::from(ProviderOptions { nvml: NvmlOptions { library: Some(lib) } });
    let found = discover_with(&node.root(), &Selection::Only(vec![Source::Nvml]), &options);
    assert!(found.platform.is_empty());
    let w = nvml_warnings(&found);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("the NVIDIA driver is not running"), "{}", w[0]);
}

#[test]
fn nvml_takes_gpus_before_pm_counters() {
    let node = Node::new(true, true);
    node.write("sys/cray/pm_counters/accel0_energy", "100 J\n");
    node.write("sys/cray/pm_counters/accel0_power", "100 W\n");
    node.write("sys/cray/pm_counters/freshness", "1\n");
    let found = discover(&node.root(), &Selection::Auto);
    let gpu0 = found.platform.catalog().iter().find(|d| d.id.kind == DomainKind::Gpu).unwrap();
    assert_eq!(gpu0.provider, "nvml");
    assert!(
        found.warnings.iter().any(|w| w.provider == "pm_counters" && w.message.contains("nvml")),
        "{:?}",
        found.warnings
    );
}
