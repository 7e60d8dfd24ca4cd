//! The NVIDIA GPU profiles, nvidia-4gpu and nvidia-8gpu: PCI devices, the mock NVML state (its
//! NVML index order, limits, call latency) and the energy counters' 100 ms steps, read as files.
//! No sleeping, no timing.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use powerstack_model::{DomainId, DomainKind};
use powerstack_sim::{CallLatency, NvmlLatency, Profile, SimError, SimNode, SimOptions};

mod common;
use common::{read, read_u64, write};

fn gpu(n: u32) -> DomainId {
    DomainId::new(DomainKind::Gpu, n)
}

/// A stand-in for the mock NVML library: the simulator only links to it, never loads it.
fn fake_library(dir: &Path) -> PathBuf {
    let lib = dir.join("libpowerstack_mock_nvml.so");
    fs::write(&lib, b"\x7fELF").unwrap();
    lib
}

struct Nvidia {
    _lib_dir: tempfile::TempDir,
    lib: PathBuf,
    dir: tempfile::TempDir,
    node: SimNode,
}

/// What an NVIDIA profile should show.
struct NvSpec {
    profile: Profile,
    /// GPU addresses in PCI order, and their NUMA nodes.
    pci: &'static [&'static str],
    numa: &'static [u64],
    name: &'static str,
    device: &'static str,
    /// (idle, max) W of a GPU.
    watts: (f64, f64),
    /// The NVML bus id of NVML index 0, and its GPU number (PCI order).
    nvml0: (&'static str, u32),
}

const NV4: NvSpec = NvSpec {
    profile: Profile::Nvidia4gpu,
    pci: &["0000:17:00.0", "0000:31:00.0", "0000:b1:00.0", "0000:ca:00.0"],
    numa: &[0, 0, 1, 1],
    name: "NVIDIA H100 80GB HBM3",
    device: "0x2330",
    watts: (70.0, 700.0),
    nvml0: ("00000000:B1:00.0", 2),
};

const NV8: NvSpec = NvSpec {
    profile: Profile::Nvidia8gpu,
    pci: &[
        "0000:19:00.0",
        "0000:3b:00.0",
        "0000:4c:00.0",
        "0000:5d:00.0",
        "0000:9b:00.0",
        "0000:bb:00.0",
        "0000:cb:00.0",
        "0000:db:00.0",
    ],
    numa: &[0, 0, 0, 0, 1, 1, 1, 1],
    name: "NVIDIA H200",
    device: "0x2335",
    watts: (75.0, 700.0),
    nvml0: ("00000000:BB:00.0", 5),
};

impl NvSpec {
    fn count(&self) -> u32 {
        self.pci.len() as u32
    }

    fn watts_at(&self, load: f64) -> f64 {
        self.watts.0 + (self.watts.1 - self.watts.0) * load
    }

    /// The GPU number (PCI order) of NVML index `i`, from its `pci_bus_id`.
    fn pci_index(&self, root: &Path, i: u32) -> u32 {
        let bus = read(root, &format!("{NVML}/gpu{i}/pci_bus_id"));
        let addr = bus.trim().strip_prefix("0000").unwrap().to_ascii_lowercase();
        self.pci.iter().position(|a| *a == addr).unwrap() as u32
    }
}

fn nvidia_profile(spec: &NvSpec, opts: SimOptions) -> Nvidia {
    let lib_dir = tempfile::tempdir().unwrap();
    let lib = fake_library(lib_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let opts = SimOptions { nvml_library: Some(lib.clone()), ..opts };
    let node = SimNode::create(dir.path(), spec.profile, opts).unwrap();
    Nvidia { _lib_dir: lib_dir, lib, dir, node }
}

fn nvidia(opts: SimOptions) -> Nvidia {
    nvidia_profile(&NV4, opts)
}

const NVML: &str = "var/lib/powerstack-sim/nvml";

/// The GPU number (PCI order) of NVML index `i` on nvidia-4gpu.
fn pci_index(root: &Path, i: u32) -> u32 {
    NV4.pci_index(root, i)
}

#[test]
fn nvidia_layout_has_pci_gpus_numa_nodes_and_the_nvml_state() {
    for spec in [&NV4, &NV8] {
        nvidia_layout(spec);
    }
}

fn nvidia_layout(spec: &NvSpec) {
    let t = nvidia_profile(spec, SimOptions::default());
    let r = t.dir.path();
    let n = spec.count();
    // intel-2s is all there.
    assert_eq!(read(r, "sys/class/powercap/intel-rapl:0/name"), "package-0\n");
    assert!(r.join("dev/cpu/0/msr").is_file());
    assert_eq!(read(r, "sys/devices/system/node/node0/cpulist"), "0-3,8-11\n");
    assert_eq!(read(r, "sys/devices/system/node/node1/cpulist"), "4-7,12-15\n");
    assert!(read(r, "proc/driver/nvidia/version").starts_with("NVRM version: NVIDIA UNIX x86_64"));
    // PCI devices: real directories, linked from sys/bus/pci/devices.
    for (addr, numa) in spec.pci.iter().zip(spec.numa) {
        let link = r.join(format!("sys/bus/pci/devices/{addr}"));
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        let dev = fs::canonicalize(&link).unwrap();
        assert!(dev.starts_with(fs::canonicalize(r.join("sys/devices")).unwrap()), "{dev:?}");
        assert_eq!(dev.file_name().unwrap().to_str(), Some(*addr));
        let f = |name: &str| fs::read_to_string(dev.join(name)).unwrap();
        assert_eq!(f("numa_node"), format!("{numa}\n"));
        assert_eq!(
            (f("vendor"), f("device"), f("class")),
            ("0x10de\n".into(), format!("{}\n", spec.device), "0x030200\n".into())
        );
    }
    // The mock NVML state.
    assert_eq!(read(r, &format!("{NVML}/count")), format!("{n}\n"));
    let mut uuids = Vec::new();
    let mut order = Vec::new();
    let milliwatts = (spec.watts_at(0.5) * 1e3).round() as u64;
    for i in 0..n {
        let g = format!("{NVML}/gpu{i}");
        assert_eq!(read(r, &format!("{g}/name")), format!("{}\n", spec.name));
        let uuid = read(r, &format!("{g}/uuid"));
        let u = uuid.trim().strip_prefix("GPU-").unwrap();
        let groups: Vec<usize> = u.split('-').map(str::len).collect();
        assert_eq!(groups, vec![8, 4, 4, 4, 12], "{uuid:?}");
        assert!(u.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{uuid:?}");
        uuids.push(uuid);
        let bus = read(r, &format!("{g}/pci_bus_id"));
        assert!(bus.starts_with("00000000:") && bus.len() == 17, "{bus:?}");
        assert_eq!(bus, bus.to_ascii_uppercase(), "NVML writes upper-case hex");
        assert_eq!(read(r, &format!("{g}/pci_device_id")), format!("{}10de\n", spec.device));
        order.push(spec.pci_index(r, i));
        assert_eq!(read_u64(r, &format!("{g}/limit_min_mw")), 200_000);
        assert_eq!(read_u64(r, &format!("{g}/limit_max_mw")), 700_000);
        assert_eq!(read_u64(r, &format!("{g}/limit_default_mw")), 700_000);
        assert_eq!(read_u64(r, &format!("{g}/power_limit_mw")), 700_000);
        assert_eq!(read(r, &format!("{g}/energy_supported")), "1\n");
        assert!(read_u64(r, &format!("{g}/energy_mj")) > 0);
        assert_eq!(read_u64(r, &format!("{g}/power_mw")), milliwatts);
    }
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), n as usize, "UUIDs are distinct");
    assert_eq!(read(r, &format!("{NVML}/gpu0/pci_bus_id")), format!("{}\n", spec.nvml0.0));
    // The mock's call latency, as measured on an H200.
    assert_eq!(read(r, &format!("{NVML}/latency_us/energy")), "2850 15000\n");
    assert_eq!(read(r, &format!("{NVML}/latency_us/limit")), "142 300\n");
    assert_eq!(read(r, &format!("{NVML}/latency_us/power")), "0 0\n");
    assert_eq!(order[0], spec.nvml0.1);
    assert_ne!(order, (0..n).collect::<Vec<_>>(), "NVML index order differs from PCI order");
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..n).collect::<Vec<_>>());
    // Same UUIDs on another node of the kind.
    let again = nvidia_profile(spec, SimOptions::default());
    assert_eq!(
        read(again.dir.path(), &format!("{NVML}/gpu1/uuid")),
        read(r, &format!("{NVML}/gpu1/uuid"))
    );
    // The library: a copy of the mock (a link would make two roots in one process share one
    // loaded library), with the unversioned name linked to it.
    let copy = r.join("usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1");
    assert!(fs::symlink_metadata(&copy).unwrap().file_type().is_file());
    assert_eq!(fs::read(&copy).unwrap(), fs::read(&t.lib).unwrap());
    assert_eq!(
        fs::canonicalize(r.join("usr/lib/x86_64-linux-gnu/libnvidia-ml.so")).unwrap(),
        fs::canonicalize(&copy).unwrap()
    );
    let target = fs::canonicalize(&t.lib).unwrap();
    assert_eq!(t.node.options().nvml_library.as_deref(), Some(target.as_path()));
    // The model: GPUs in PCI order, separate from psys.
    assert_eq!(t.node.domains().iter().filter(|d| d.kind == DomainKind::Gpu).count(), n as usize);
    assert_eq!(t.node.true_power_watts(gpu(n - 1)), Some(spec.watts_at(0.5)));
    assert_eq!(t.node.true_power_watts(gpu(n)), None);
    assert_eq!(
        t.node.true_power_watts(DomainId::new(DomainKind::Platform, 0)),
        Some(105.0 * 2.0 + 32.0 + 45.0),
        "psys is the CPU platform only"
    );
}

#[test]
fn nvml_energy_grows_by_the_model_energy() {
    let mut t = nvidia(SimOptions { load: 0.8, ..SimOptions::default() });
    let r = t.dir.path().to_path_buf();
    let energy = |i: u32| read_u64(&r, &format!("{NVML}/gpu{i}/energy_mj"));
    let before: Vec<u64> = (0..4).map(energy).collect();
    let kept = fs::File::open(r.join(format!("{NVML}/gpu2/energy_mj"))).unwrap();
    for _ in 0..10 {
        t.node.advance(Duration::from_millis(250)).unwrap();
    }
    for i in 0..4 {
        let n = pci_index(&r, i);
        let joules = t.node.true_energy_joules(gpu(n)).unwrap();
        assert!((joules - 2.5 * 574.0).abs() < 1e-6, "{joules}");
        let d = energy(i) - before[i as usize];
        assert!((d as f64 - joules * 1e3).abs() <= 1.0, "gpu{i}: {d} mJ vs {joules} J");
        let watts = t.node.true_power_watts(gpu(n)).unwrap();
        assert_eq!(read_u64(&r, &format!("{NVML}/gpu{i}/power_mw")), (watts * 1e3).round() as u64);
    }
    // Updated in place: a kept-open descriptor sees the new value.
    let mut buf = [0u8; 32];
    let n = kept.read_at(&mut buf, 0).unwrap();
    assert_eq!(
        std::str::from_utf8(&buf[..n]).unwrap(),
        read(&r, &format!("{NVML}/gpu2/energy_mj"))
    );
}

#[test]
fn nvml_energy_moves_only_at_100ms_boundaries_holding_the_boundarys_energy() {
    let mut t = nvidia_profile(&NV8, SimOptions::default());
    let r = t.dir.path().to_path_buf();
    let n = NV8.pci_index(&r, 0);
    let energy = |r: &Path| read_u64(r, &format!("{NVML}/gpu0/energy_mj"));
    let e0 = energy(&r);
    // 387.5 W: 38750 mJ per 100 ms. Steps of 7 ms cross the boundaries between steps.
    let step = Duration::from_millis(7);
    let mut changes = Vec::new();
    let mut last = e0;
    for k in 1..=60u64 {
        t.node.advance(step).unwrap();
        let boundaries = 7 * k / 100;
        let e = energy(&r);
        assert_eq!(e, e0 + 38_750 * boundaries, "after {} ms", 7 * k);
        if e != last {
            changes.push(7 * k);
            last = e;
        }
    }
    assert_eq!(changes, vec![105, 203, 301, 406]);
    let truth = t.node.true_energy_joules(gpu(n)).unwrap();
    assert!((truth - 387.5 * 0.42).abs() < 1e-9, "the truth moves every step: {truth}");
    // The power moves at every step, between boundaries too.
    t.node.set_load(1.0);
    t.node.advance(step).unwrap();
    assert_eq!(read_u64(&r, &format!("{NVML}/gpu0/power_mw")), 700_000);
    assert_eq!(energy(&r), last, "427 ms: no boundary crossed");
    // The 500 ms boundary adds 20 ms at 387.5 W, then 7 + 73 ms at 700 W.
    t.node.advance(Duration::from_millis(80)).unwrap();
    assert_eq!(energy(&r), last + 7_750 + 4_900 + 51_100);
}

#[test]
fn nvml_update_ms_0_moves_the_energy_at_every_step() {
    let opts = SimOptions { nvml_update_ms: 0, ..SimOptions::default() };
    let mut t = nvidia_profile(&NV8, opts);
    let r = t.dir.path().to_path_buf();
    let e0 = read_u64(&r, &format!("{NVML}/gpu0/energy_mj"));
    for k in 1..=20u64 {
        t.node.advance(Duration::from_millis(7)).unwrap();
        let e = read_u64(&r, &format!("{NVML}/gpu0/energy_mj"));
        assert_eq!(e, e0 + (387.5 * 7.0 * k as f64).floor() as u64, "step {k}");
    }
    assert_eq!(SimNode::open(&r).unwrap().options().nvml_update_ms, 0, "kept in the root");
    let e = SimNode::create(
        &r.join("x"),
        Profile::Nvidia8gpu,
        SimOptions {
            nvml_update_ms: 60_001,
            nvml_library: Some(t.lib.clone()),
            ..SimOptions::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("nvml_update_ms"), "{e}");
}

#[test]
fn a_power_limit_written_by_hand_is_honoured_at_the_next_advance() {
    for spec in [&NV4, &NV8] {
        limit_written_by_hand(spec);
    }
}

fn limit_written_by_hand(spec: &NvSpec) {
    let mut t = nvidia_profile(spec, SimOptions { load: 1.0, ..SimOptions::default() });
    let r = t.dir.path().to_path_buf();
    let n = spec.pci_index(&r, 0);
    assert_eq!(n, spec.nvml0.1, "NVML index 0 is not the first GPU in PCI order");
    write(&r, &format!("{NVML}/gpu0/power_limit_mw"), "250000\n");
    assert_eq!(t.node.expected_steady_power_watts(gpu(n)), Some(250.0));
    t.node.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(t.node.true_power_watts(gpu(n)), Some(250.0));
    assert_eq!(read_u64(&r, &format!("{NVML}/gpu0/power_mw")), 250_000);
    for other in (0..spec.count()).filter(|&o| o != n) {
        assert_eq!(t.node.true_power_watts(gpu(other)), Some(700.0));
    }
    // Out of range: the last valid limit stays in force, and the file shows it again.
    write(&r, &format!("{NVML}/gpu0/power_limit_mw"), "100000\n");
    t.node.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(t.node.true_power_watts(gpu(n)), Some(250.0));
    assert_eq!(read(&r, &format!("{NVML}/gpu0/power_limit_mw")), "250000\n");
    // Reopened: the limit is still honoured.
    drop(t.node);
    let mut node = SimNode::open(&r).unwrap();
    node.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(node.true_power_watts(gpu(n)), Some(250.0));
}

#[test]
fn the_nvml_latency_is_an_option_kept_in_the_root() {
    let custom =
        NvmlLatency { energy: CallLatency { median_us: 100, tail_us: 900 }, ..NvmlLatency::NONE };
    for (latency, energy, limit) in
        [(NvmlLatency::NONE, "0 0\n", "0 0\n"), (custom, "100 900\n", "0 0\n")]
    {
        let t = nvidia_profile(&NV8, SimOptions { nvml_latency: latency, ..SimOptions::default() });
        let r = t.dir.path();
        assert_eq!(read(r, &format!("{NVML}/latency_us/energy")), energy);
        assert_eq!(read(r, &format!("{NVML}/latency_us/limit")), limit);
        assert_eq!(SimNode::open(r).unwrap().options().nvml_latency, latency);
    }
    assert_eq!("off".parse::<NvmlLatency>().unwrap(), NvmlLatency::NONE);
    assert_eq!("h200".parse::<NvmlLatency>().unwrap(), NvmlLatency::default());
    let e = "fast".parse::<NvmlLatency>().unwrap_err().to_string();
    assert!(e.contains("h200") && e.contains("off"), "{e}");
}

#[test]
fn nvidia_needs_the_mock_library_and_says_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("node");
    let opts = SimOptions {
        nvml_library: Some(dir.path().join("missing/libpowerstack_mock_nvml.so")),
        ..SimOptions::default()
    };
    let e = SimNode::create(&root, Profile::Nvidia4gpu, opts).unwrap_err();
    assert!(matches!(e, SimError::NvmlLibraryNotFound { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("cargo build -p powerstack-mock-nvml"), "{msg}");
    assert!(msg.contains("POWERSTACK_MOCK_NVML") && msg.contains("missing"), "{msg}");
    assert!(!root.exists(), "nothing is written");
    // A directory holding the library will do.
    let lib_dir = tempfile::tempdir().unwrap();
    let lib = fake_library(lib_dir.path());
    let opts =
        SimOptions { nvml_library: Some(lib_dir.path().to_path_buf()), ..SimOptions::default() };
    SimNode::create(&root, Profile::Nvidia4gpu, opts).unwrap();
    let copy = fs::read(root.join("usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1")).unwrap();
    assert_eq!(copy, fs::read(lib).unwrap());
    // Other profiles need no library.
    SimNode::create(&dir.path().join("intel"), Profile::Intel2s, SimOptions::default()).unwrap();
}

#[test]
fn open_needs_no_library_and_continues_the_nvml_counters() {
    let mut t = nvidia(SimOptions::default());
    let r = t.dir.path().to_path_buf();
    t.node.advance(Duration::from_secs(2)).unwrap();
    let before = read_u64(&r, &format!("{NVML}/gpu3/energy_mj"));
    drop(t.node);
    fs::remove_file(&t.lib).unwrap();
    let mut node = SimNode::open(&r).unwrap();
    assert_eq!(node.options().nvml_library, None);
    assert_eq!(read_u64(&r, &format!("{NVML}/gpu3/energy_mj")), before, "open writes nothing");
    node.advance(Duration::from_secs(1)).unwrap();
    let after = read_u64(&r, &format!("{NVML}/gpu3/energy_mj"));
    assert_eq!(after - before, 385_000);
}

#[test]
fn a_removed_gpu_loses_its_nvml_state() {
    for spec in [&NV4, &NV8] {
        removed_gpu(spec);
    }
}

fn removed_gpu(spec: &NvSpec) {
    let mut t = nvidia_profile(spec, SimOptions::default());
    let r = t.dir.path().to_path_buf();
    let kept = fs::File::open(r.join(format!("{NVML}/gpu0/energy_mj"))).unwrap();
    let removed = gpu(spec.nvml0.1);
    t.node.remove_device(removed).unwrap();
    let mut buf = [0u8; 32];
    assert_eq!(kept.read_at(&mut buf, 0).unwrap(), 0, "truncated first");
    assert!(!r.join(format!("{NVML}/gpu0")).exists());
    assert!(!t.node.domains().contains(&removed));
    let e1 = read_u64(&r, &format!("{NVML}/gpu1/energy_mj"));
    t.node.advance(Duration::from_secs(1)).unwrap();
    assert!(!r.join(format!("{NVML}/gpu0")).exists(), "never written again");
    assert!(read_u64(&r, &format!("{NVML}/gpu1/energy_mj")) > e1);
    assert_eq!(read(&r, &format!("{NVML}/count")), format!("{}\n", spec.count()), "count stays");
    drop(t.node);
    let node = SimNode::open(&r).unwrap();
    assert!(!node.domains().contains(&removed));
    assert!(node.domains().contains(&gpu(0)));
}
