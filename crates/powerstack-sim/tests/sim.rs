//! Deterministic tests of the simulator: layouts, counters, wraps, limits, pm_counters, reopen,
//! device removal and the MSR register model. No sleeping, no timing.

use std::fs;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use powerstack_hw::providers::msr::MsrIo;
use powerstack_hw::topology::Vendor;
use powerstack_hw::{CpuTopology, Root};
use powerstack_model::{DomainId, DomainKind};
use powerstack_sim::{LoadPattern, Profile, SimError, SimNode, SimOptions};

mod common;
use common::{read, read_u64, write};

const PKG0: DomainId = DomainId::new(DomainKind::Package, 0);
const PKG1: DomainId = DomainId::new(DomainKind::Package, 1);
const MEM0: DomainId = DomainId::new(DomainKind::Memory, 0);
const CORE0: DomainId = DomainId::new(DomainKind::Core, 0);
const PSYS: DomainId = DomainId::new(DomainKind::Platform, 0);
const GPU0: DomainId = DomainId::new(DomainKind::Gpu, 0);
const NODE: DomainId = DomainId::NODE;

fn msr_image(root: &Path, cpu: u32, addr: u64) -> u64 {
    let f = fs::File::open(root.join(format!("dev/cpu/{cpu}/msr"))).unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, addr).unwrap();
    u64::from_le_bytes(b)
}

/// What an attribute shows: its first line without the padding a counter file is kept wide with,
/// and a newline.
fn shown(root: &Path, rel: &str) -> String {
    let text = read(root, rel);
    assert!(text.ends_with('\n') && text.lines().count() == 1, "{rel}: {text:?}");
    format!("{}\n", text.trim_end())
}

/// `(joules, unix µs)` of a pm_counters energy file.
fn pm_energy(root: &Path, name: &str) -> (u64, u64) {
    let t = read(root, &format!("sys/cray/pm_counters/{name}"));
    let f: Vec<&str> = t.split_whitespace().collect();
    assert_eq!((f.len(), f[1], f[3]), (4, "J", "us"), "{t:?}");
    assert!(t.ends_with('\n') && t.trim_end().ends_with(" us"), "{t:?}");
    (f[0].parse().unwrap(), f[2].parse().unwrap())
}

fn create(profile: Profile, mut opts: SimOptions) -> (tempfile::TempDir, SimNode) {
    let dir = tempfile::tempdir().unwrap();
    if profile.uses_mock_nvml() && opts.nvml_library.is_none() {
        // The simulator only links to the mock NVML library, never loads it: any file will do.
        opts.nvml_library = Some(std::env::current_exe().unwrap());
    }
    let node = SimNode::create(dir.path(), profile, opts).unwrap();
    (dir, node)
}

const PKG0_ZONE: &str = "sys/class/powercap/intel-rapl:0";
const DRAM0_ZONE: &str = "sys/class/powercap/intel-rapl:0:0";
const PSYS_ZONE: &str = "sys/class/powercap/intel-rapl:2";

// ---------------------------------------------------------------------------------------------
// Layouts.

#[test]
fn every_profile_has_a_topology_the_hardware_layer_reads() {
    for (profile, packages, cores, vendor) in [
        (Profile::Intel2s, 2, 4, Vendor::Intel),
        (Profile::Amd2s, 2, 4, Vendor::Amd),
        (Profile::CrayEx, 1, 8, Vendor::Amd),
        (Profile::HwmonNode, 1, 8, Vendor::Amd),
        (Profile::Nvidia4gpu, 2, 4, Vendor::Intel),
        (Profile::Nvidia8gpu, 2, 4, Vendor::Intel),
        (Profile::AmdMi250x, 1, 8, Vendor::Amd),
    ] {
        let (dir, node) = create(profile, SimOptions::default());
        let root = dir.path();
        assert_eq!(node.profile(), profile);
        assert_eq!(node.root(), root);
        assert!(
            read(root, "powerstack-sim.toml")
                .contains(&format!("profile = \"{}\"", profile.as_str()))
        );
        assert_eq!(read(root, "sys/devices/system/cpu/online"), "0-15\n");
        assert_eq!(read(root, "sys/devices/system/cpu/possible"), "0-15\n");
        assert_eq!(read(root, "sys/devices/system/cpu/present"), "0-15\n");
        let (topo, warnings) = CpuTopology::discover(&Root::new(root));
        assert!(warnings.is_empty(), "{profile}: {warnings:?}");
        assert_eq!(topo.cpus.len(), 16);
        assert_eq!(topo.packages().len(), packages);
        assert_eq!(topo.cores_of(0), cores);
        let model = topo.model.unwrap();
        assert_eq!(model.vendor, vendor);
        assert_eq!(read(root, "proc/cpuinfo").matches("processor\t: ").count(), 16);
        let t = "sys/devices/system/cpu/cpu9/topology";
        assert_eq!(read(root, &format!("{t}/thread_siblings_list")), "1,9\n");
        assert_eq!(read(root, &format!("{t}/core_cpus_list")), "1,9\n");
        assert_eq!(read(root, &format!("{t}/die_id")), "0\n");
        assert_eq!(read(root, "sys/devices/system/cpu/cpu3/cpufreq/affected_cpus"), "3\n");
        assert_eq!(read(root, "sys/devices/system/cpu/cpu15/cpuidle/state1/name"), "C1\n");
        // NUMA nodes cover every CPU, each node within one package.
        let online = read(root, "sys/devices/system/node/online");
        let nodes = powerstack_model::cpulist::parse_cpulist(online.trim()).unwrap();
        let mut all = Vec::new();
        for n in nodes {
            let d = format!("sys/devices/system/node/node{n}");
            let cpus = powerstack_model::cpulist::parse_cpulist(
                read(root, &format!("{d}/cpulist")).trim(),
            )
            .unwrap();
            let pkgs: Vec<Option<u32>> = cpus
                .iter()
                .map(|c| topo.cpus.iter().find(|x| x.id == *c).unwrap().package)
                .collect();
            assert!(pkgs.windows(2).all(|w| w[0] == w[1]), "{profile} node{n}: {pkgs:?}");
            assert!(root.join(format!("sys/devices/system/cpu/cpu{}/node{n}", cpus[0])).is_dir());
            all.extend(cpus);
        }
        all.sort_unstable();
        assert_eq!(all, (0..16).collect::<Vec<u32>>(), "{profile}");
    }
}

#[test]
fn intel_layout_follows_the_kernel() {
    let (dir, node) = create(Profile::Intel2s, SimOptions::default());
    let r = dir.path();
    let model = powerstack_hw::topology::parse_cpuinfo(&read(r, "proc/cpuinfo")).unwrap();
    assert_eq!((model.family, model.model), (6, 85));
    assert_eq!(model.name, "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz");
    // CPUs 0-3 are package 0, 4-7 package 1, 8-15 their siblings.
    for (cpu, pkg) in [(0, 0), (3, 0), (4, 1), (8, 0), (12, 1), (15, 1)] {
        assert_eq!(
            read_u64(r, &format!("sys/devices/system/cpu/cpu{cpu}/topology/physical_package_id")),
            pkg
        );
    }
    // cpufreq, cpuidle, uncore.
    let pol = "sys/devices/system/cpu/cpu5/cpufreq";
    assert_eq!(fs::read_link(r.join(pol)).unwrap(), Path::new("../cpufreq/policy5"));
    assert_eq!(read(r, &format!("{pol}/scaling_driver")), "intel_pstate\n");
    assert_eq!(read_u64(r, &format!("{pol}/cpuinfo_max_freq")), 3_700_000);
    assert_eq!(read_u64(r, &format!("{pol}/base_frequency")), 2_400_000);
    assert_eq!(read(r, &format!("{pol}/scaling_available_governors")), "performance powersave\n");
    assert_eq!(read(r, &format!("{pol}/energy_performance_preference")), "balance_performance\n");
    assert_eq!(read(r, "sys/devices/system/cpu/intel_pstate/status"), "active\n");
    assert_eq!(read(r, "sys/devices/system/cpu/cpuidle/current_driver"), "intel_idle\n");
    assert_eq!(read(r, "sys/devices/system/cpu/cpu2/cpuidle/state3/name"), "C6\n");
    assert_eq!(read(r, "sys/devices/system/cpu/cpu2/cpuidle/state2/disable"), "0\n");
    let u = "sys/devices/system/cpu/intel_uncore_frequency/package_01_die_00";
    assert_eq!(read_u64(r, &format!("{u}/initial_max_freq_khz")), 2_400_000);
    // powercap: real directories, class symlinks, names by index.
    assert!(
        fs::symlink_metadata(r.join("sys/class/powercap/intel-rapl:0"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(r.join("sys/devices/virtual/powercap/intel-rapl/intel-rapl:0/intel-rapl:0:0").is_dir());
    assert_eq!(read(r, "sys/devices/virtual/powercap/intel-rapl/enabled"), "1\n");
    assert!(!r.join("sys/devices/virtual/powercap/intel-rapl/name").exists());
    for (zone, name) in [
        (PKG0_ZONE, "package-0"),
        (DRAM0_ZONE, "dram"),
        ("sys/class/powercap/intel-rapl:1", "package-1"),
        ("sys/class/powercap/intel-rapl:1:0", "dram"),
        (PSYS_ZONE, "psys"),
    ] {
        assert_eq!(read(r, &format!("{zone}/name")), format!("{name}\n"));
    }
    assert_eq!(shown(r, &format!("{PKG0_ZONE}/energy_uj")), "65536000000\n");
    assert_eq!(read_u64(r, &format!("{PKG0_ZONE}/max_energy_range_uj")), 262_143_999_938);
    assert_eq!(read_u64(r, &format!("{DRAM0_ZONE}/max_energy_range_uj")), 65_535_999_984);
    assert_eq!(read(r, &format!("{PKG0_ZONE}/enabled")), "1\n");
    assert_eq!(read(r, &format!("{DRAM0_ZONE}/enabled")), "0\n");
    for (zone, c, name, limit, window, max) in [
        (PKG0_ZONE, 0, "long_term", 150_000_000, 999_424, 150_000_000),
        (PKG0_ZONE, 1, "short_term", 180_000_000, 2_440, 300_000_000),
        (DRAM0_ZONE, 0, "long_term", 40_000_000, 976, 40_000_000),
        (PSYS_ZONE, 0, "long_term", 500_000_000, 999_424, 0),
        (PSYS_ZONE, 1, "short_term", 600_000_000, 2_440, 0),
    ] {
        let p = format!("{zone}/constraint_{c}");
        assert_eq!(read(r, &format!("{p}_name")), format!("{name}\n"));
        assert_eq!(read_u64(r, &format!("{p}_power_limit_uw")), limit);
        assert_eq!(read_u64(r, &format!("{p}_time_window_us")), window);
        assert_eq!(read_u64(r, &format!("{p}_max_power_uw")), max);
        let mode = |f: &str| {
            fs::metadata(r.join(format!("{p}_{f}"))).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(
            (mode("name"), mode("power_limit_uw"), mode("time_window_us"), mode("max_power_uw")),
            (0o444, 0o644, 0o644, 0o444)
        );
    }
    assert!(!r.join(format!("{DRAM0_ZONE}/constraint_1_name")).exists());
    // MSR image: one file per package, hard-linked for its CPUs.
    use std::os::unix::fs::MetadataExt;
    let ino = |cpu: u32| fs::metadata(r.join(format!("dev/cpu/{cpu}/msr"))).unwrap().ino();
    assert_eq!(ino(0), ino(8));
    assert_eq!(ino(4), ino(15));
    assert_ne!(ino(0), ino(4));
    assert!(fs::metadata(r.join("dev/cpu/3/msr")).unwrap().is_file());
    assert_eq!(msr_image(r, 0, 0x606), 0x000A_0E03);
    assert_eq!(msr_image(r, 0, 0x611), 0x4000_0000);
    assert_eq!(msr_image(r, 4, 0x611), 0x5000_0000);
    assert_eq!(msr_image(r, 0, 0x619), 0x1000_0000);
    assert_eq!(msr_image(r, 0, 0x64D), msr_image(r, 12, 0x64D));
    assert_eq!(msr_image(r, 0, 0x639), 0);
    let mut domains = node.domains();
    domains.sort();
    let mut want = vec![PKG0, PKG1, MEM0, DomainId::new(DomainKind::Memory, 1), PSYS];
    want.sort();
    assert_eq!(domains, want);
}

#[test]
fn intel_options_change_the_layout() {
    let opts = SimOptions {
        shuffle_indices: true,
        mmio_duplicate: true,
        omit_dram: false,
        ..SimOptions::default()
    };
    let (dir, mut node) = create(Profile::Intel2s, opts);
    let r = dir.path();
    let name = |z: &str| read(r, &format!("sys/class/powercap/{z}/name"));
    assert_eq!(name("intel-rapl:0"), "psys\n");
    assert_eq!(name("intel-rapl:1"), "package-1\n");
    assert_eq!(name("intel-rapl:2"), "package-0\n");
    assert_eq!(name("intel-rapl:2:0"), "core\n");
    assert_eq!(name("intel-rapl:2:1"), "dram\n");
    assert_eq!(name("intel-rapl-mmio:0"), "package-0\n");
    assert!(node.domains().contains(&CORE0));
    node.advance(Duration::from_millis(700)).unwrap();
    assert_eq!(
        read(r, "sys/class/powercap/intel-rapl-mmio:0/energy_uj"),
        read(r, "sys/class/powercap/intel-rapl:2/energy_uj")
    );
    assert_eq!(msr_image(r, 0, 0x639) as u32, node.msr().read(0, 0x639).unwrap() as u32);

    let (dir, node) =
        create(Profile::Intel2s, SimOptions { omit_dram: true, ..SimOptions::default() });
    let r = dir.path();
    assert!(!r.join(DRAM0_ZONE).exists());
    assert!(!node.domains().contains(&MEM0));
    assert_eq!(msr_image(r, 0, 0x619), 0);
    assert_eq!(node.msr().read(1, 0x619).unwrap(), 0);
}

#[test]
fn amd_layout_has_energy_only_zones_and_per_core_msr_shares() {
    let (dir, mut node) = create(Profile::Amd2s, SimOptions::default());
    let r = dir.path();
    let model = powerstack_hw::topology::parse_cpuinfo(&read(r, "proc/cpuinfo")).unwrap();
    assert_eq!(
        (model.family, model.model, model.name.as_str()),
        (25, 1, "AMD EPYC 7763 64-Core Processor")
    );
    assert_eq!(read(r, "sys/class/powercap/intel-rapl:0/name"), "package-0\n");
    assert_eq!(read(r, "sys/class/powercap/intel-rapl:0:0/name"), "core\n");
    assert_eq!(read(r, "sys/class/powercap/intel-rapl:1:0/name"), "core\n");
    assert!(!r.join("sys/class/powercap/intel-rapl:0/constraint_0_name").exists());
    assert!(!r.join("sys/class/powercap/intel-rapl:2").exists());
    assert_eq!(read_u64(r, "sys/class/powercap/intel-rapl:0/max_energy_range_uj"), 65_535_999_984);
    assert_eq!(read(r, "sys/devices/system/cpu/cpu0/cpufreq/scaling_driver"), "amd-pstate-epp\n");
    assert_eq!(read(r, "sys/devices/system/cpu/cpuidle/current_driver"), "acpi_idle\n");
    assert_eq!(read(r, "sys/devices/system/cpu/cpu0/cpuidle/state2/name"), "C2\n");

    let e0 = read_u64(r, "sys/class/powercap/intel-rapl:0/energy_uj");
    let c0 = read_u64(r, "sys/class/powercap/intel-rapl:0:0/energy_uj");
    let mut msr = node.msr();
    let share0 = msr.read(1, 0xC001_029A).unwrap();
    node.advance(Duration::from_secs(2)).unwrap();
    // 90 + 190 × 0.5 = 185 W; core 60 %.
    assert_eq!(node.true_power_watts(PKG0), Some(185.0));
    assert_eq!(node.true_power_watts(CORE0), Some(111.0));
    let tick_uj = 1e6 / 65536.0;
    let de = (read_u64(r, "sys/class/powercap/intel-rapl:0/energy_uj") - e0) as f64;
    assert!((de - 370e6).abs() <= tick_uj + 1.0, "{de}");
    let dc = (read_u64(r, "sys/class/powercap/intel-rapl:0:0/energy_uj") - c0) as f64;
    assert!((dc - 222e6).abs() <= tick_uj + 1.0, "{dc}");
    // Each core's MSR reads its own share: 222 J / 4 cores.
    let dshare = (msr.read(9, 0xC001_029A).unwrap() - share0) as f64 / 65536.0;
    assert!((dshare - 55.5).abs() < 2.0 / 65536.0, "{dshare}");
    assert_eq!(msr.read(0, 0xC001_0299).unwrap(), 0x000A_1003);
    // In the file image the package register is exact, and the unit register's fields are.
    assert_eq!(msr_image(r, 0, 0xC001_029B), msr.read(0, 0xC001_029B).unwrap());
    assert_eq!(msr_image(r, 12, 0xC001_029B), msr.read(4, 0xC001_029B).unwrap());
    let unit = msr_image(r, 0, 0xC001_0299);
    assert_eq!((unit & 0xf, (unit >> 8) & 0x1f), (3, 16));
    assert!(msr.read(0, 0x610).is_err());
}

#[test]
fn cray_layout_has_pm_counters_in_the_documented_formats() {
    let (dir, node) = create(Profile::CrayEx, SimOptions::default());
    let r = dir.path();
    let model = powerstack_hw::topology::parse_cpuinfo(&read(r, "proc/cpuinfo")).unwrap();
    assert_eq!(
        (model.family, model.model, model.name.as_str()),
        (25, 48, "AMD EPYC 7A53 64-Core Processor")
    );
    assert!(!r.join("sys/class/powercap").exists());
    assert!(!r.join("dev/cpu/0/msr").exists());
    let pm = "sys/cray/pm_counters";
    let ts = node.unix_us();
    // 0.5 load: cpu 185, memory 40, accels 325 each, node 185 + 40 + 1300 + 150.
    assert_eq!(shown(r, &format!("{pm}/power")), format!("1675 W {ts} us\n"));
    assert_eq!(shown(r, &format!("{pm}/cpu_power")), format!("185 W {ts} us\n"));
    assert_eq!(shown(r, &format!("{pm}/memory_power")), format!("40 W {ts} us\n"));
    for k in 0..4 {
        assert_eq!(shown(r, &format!("{pm}/accel{k}_power")), format!("325 W {ts} us\n"));
        assert!(shown(r, &format!("{pm}/accel{k}_energy")).ends_with(&format!(" J {ts} us\n")));
    }
    for (f, v) in [
        ("power_cap", "0 W\n"),
        ("accel_power_cap", "0 W\n"),
        ("raw_scan_hz", "10\n"),
        ("version", "2\n"),
        ("generation", "1\n"),
    ] {
        assert_eq!(shown(r, &format!("{pm}/{f}")), v, "{f}");
    }
    read_u64(r, &format!("{pm}/freshness"));
    assert!((read(r, &format!("{pm}/startup")).trim().parse::<i64>().unwrap()) < ts);
    let mut d = node.domains();
    d.sort();
    assert_eq!(d.len(), 7);
    assert!(
        d.contains(&NODE)
            && d.contains(&PKG0)
            && d.contains(&MEM0)
            && d.contains(&DomainId::new(DomainKind::Gpu, 3))
    );
}

#[test]
fn hwmon_layout_has_a_power_meter_and_an_amdgpu() {
    let (dir, node) = create(Profile::HwmonNode, SimOptions::default());
    let r = dir.path();
    let model = powerstack_hw::topology::parse_cpuinfo(&read(r, "proc/cpuinfo")).unwrap();
    assert_eq!(model.name, "AMD EPYC 7313 16-Core Processor");
    assert!(!r.join("dev/cpu/0/msr").exists());
    assert_eq!(
        fs::read_link(r.join("sys/class/hwmon/hwmon0")).unwrap(),
        Path::new("../../devices/LNXSYSTM:00/LNXSYBUS:00/ACPI000D:00/hwmon/hwmon0")
    );
    let m = "sys/class/hwmon/hwmon0";
    assert_eq!(read(r, &format!("{m}/name")), "power_meter\n");
    assert_eq!(read(r, &format!("{m}/power1_average_interval")), "1000\n");
    assert_eq!(read(r, &format!("{m}/power1_is_battery")), "0\n");
    // cpu 135 + gpu 170 + 80.
    assert_eq!(read_u64(r, &format!("{m}/power1_average")), 385_000_000);
    assert!(r.join(format!("{m}/device/hwmon")).is_dir());
    let g = "sys/class/hwmon/hwmon1";
    assert_eq!(read(r, &format!("{g}/name")), "amdgpu\n");
    assert_eq!(read(r, &format!("{g}/power1_label")), "PPT\n");
    assert_eq!(read_u64(r, &format!("{g}/power1_average")), 170_000_000);
    assert_eq!(read(r, &format!("{g}/device/vendor")), "0x1002\n");
    assert_eq!(read(r, &format!("{g}/device/device")), "0x740c\n");
    assert_eq!(read(r, &format!("{g}/device/numa_node")), "0\n");
    assert_eq!(read(r, "sys/class/drm/card0/device/vendor"), "0x1002\n");
    read_u64(r, &format!("{g}/temp1_input"));
    let mode =
        fs::metadata(r.join(format!("{g}/power1_cap"))).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    assert_eq!(node.domains().len(), 2);
    assert_eq!(node.true_power_watts(PKG0), Some(135.0), "the CPU is modelled, not measured");
    assert!(!node.domains().contains(&PKG0));

    let (dir, _node) =
        create(Profile::HwmonNode, SimOptions { shuffle_indices: true, ..SimOptions::default() });
    let r = dir.path();
    assert_eq!(read(r, "sys/class/hwmon/hwmon0/name"), "amdgpu\n");
    assert_eq!(read(r, "sys/class/hwmon/hwmon1/name"), "nvme\n");
    assert_eq!(read(r, "sys/class/hwmon/hwmon2/name"), "power_meter\n");
}

#[test]
fn the_tree_can_be_moved() {
    let parent = tempfile::tempdir().unwrap();
    let a = parent.path().join("a");
    let mut node = SimNode::create(&a, Profile::HwmonNode, SimOptions::default()).unwrap();
    node.advance(Duration::from_secs(1)).unwrap();
    drop(node);
    let b = parent.path().join("b");
    fs::rename(&a, &b).unwrap();
    assert_eq!(read(&b, "sys/class/drm/card0/device/hwmon/hwmon1/name"), "amdgpu\n");
    let mut node = SimNode::open(&b).unwrap();
    node.advance(Duration::from_secs(1)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Counters.

#[test]
fn energy_files_grow_by_the_model_energy() {
    let (dir, mut node) =
        create(Profile::Intel2s, SimOptions { load: 0.8, ..SimOptions::default() });
    let r = dir.path();
    let kept =
        powerstack_hw::file::AttrFile::open(r.join(format!("{PKG0_ZONE}/energy_uj")), "energy_uj")
            .unwrap();
    let zones = [(PKG0, PKG0_ZONE, 61.04), (MEM0, DRAM0_ZONE, 15.26), (PSYS, PSYS_ZONE, 61.04)];
    let start: Vec<u64> =
        zones.iter().map(|(_, z, _)| read_u64(r, &format!("{z}/energy_uj"))).collect();
    let msr_start = msr_image(r, 0, 0x611) as u32;
    for step in [3u64, 250, 1000, 17, 5000] {
        node.advance(Duration::from_millis(step)).unwrap();
    }
    assert_eq!(node.mono_ns(), 1_000_000_000 + 6_270_000_000);
    for ((id, z, tick), s) in zones.iter().zip(start) {
        let de = (read_u64(r, &format!("{z}/energy_uj")) - s) as f64;
        let truth = node.true_energy_joules(*id).unwrap() * 1e6;
        assert!((de - truth).abs() <= tick + 1.0, "{id}: {de} vs {truth}");
    }
    // 60 + 90 × 0.8 = 132 W for 6.27 s.
    assert!((node.true_energy_joules(PKG0).unwrap() - 132.0 * 6.27).abs() < 1e-9);
    assert_eq!(node.true_power_watts(PSYS), Some(132.0 * 2.0 + 2.0 * (8.0 + 16.0 * 0.8) + 45.0));
    // The kept-open descriptor sees the in-place update; the MSR image agrees with powercap.
    assert_eq!(kept.read_u64().unwrap(), read_u64(r, &format!("{PKG0_ZONE}/energy_uj")));
    let raw = msr_image(r, 0, 0x611) as u32;
    assert_eq!(read_u64(r, &format!("{PKG0_ZONE}/energy_uj")), u64::from(raw) * 15625 / 256);
    let dticks = raw.wrapping_sub(msr_start) as f64;
    assert!((dticks / 16384.0 - 132.0 * 6.27).abs() < 1.0 / 16384.0 + 1e-9);
    assert_eq!(node.msr().read(8, 0x611).unwrap(), u64::from(raw));
}

#[test]
fn load_patterns_drive_the_power() {
    let (_dir, mut node) = create(
        Profile::Intel2s,
        SimOptions { pattern: LoadPattern::Steps, ..SimOptions::default() },
    );
    node.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(node.true_power_watts(PKG0), Some(60.0 + 90.0 * 0.2));
    node.advance(Duration::from_secs(5)).unwrap();
    assert_eq!(node.true_power_watts(PKG0), Some(60.0 + 90.0 * 0.2), "power of the step's start");
    assert_eq!(node.expected_steady_power_watts(PKG0), Some(60.0 + 90.0 * 0.9));
    node.advance(Duration::from_millis(10)).unwrap();
    assert_eq!(node.true_power_watts(PKG0), Some(60.0 + 90.0 * 0.9));
    node.set_load(1.0);
    assert_eq!(node.expected_steady_power_watts(PKG0), Some(150.0));
    node.set_load(7.0);
    assert_eq!(node.load(), 1.0);
}

#[test]
fn near_wrap_makes_the_counter_wrap() {
    let (dir, mut node) = create(Profile::Intel2s, SimOptions::default());
    let r = dir.path();
    let max = read_u64(r, &format!("{PKG0_ZONE}/max_energy_range_uj"));
    node.near_wrap(PKG0, 0.5).unwrap();
    let before = read_u64(r, &format!("{PKG0_ZONE}/energy_uj"));
    // 105 W for 0.5 s: 52.5 J below the top.
    assert!(before > max - 53_000_000 && before < max - 52_000_000, "{before}");
    assert_eq!(u64::from(node.msr().read(0, 0x611).unwrap() as u32) * 15625 / 256, before);
    assert_eq!(msr_image(r, 0, 0x611) as u32, node.msr().read(0, 0x611).unwrap() as u32);
    let e0 = node.true_energy_joules(PKG0).unwrap();
    node.advance(Duration::from_secs(1)).unwrap();
    let after = read_u64(r, &format!("{PKG0_ZONE}/energy_uj"));
    assert!(after < 60_000_000, "{after}");
    // Across the wrap the counter advanced by the model's energy (modulus = max + 1 µJ, within
    // a tick).
    let delta = (max + 1 - before + after) as f64;
    let truth = (node.true_energy_joules(PKG0).unwrap() - e0) * 1e6;
    assert!((delta - truth).abs() <= 62.0 + 1.0, "{delta} vs {truth}");
    // Other domains and other profiles.
    node.near_wrap(MEM0, 2.0).unwrap();
    node.near_wrap(PSYS, 2.0).unwrap();
    assert!(read_u64(r, &format!("{DRAM0_ZONE}/energy_uj")) > 65_535_999_984 - 40_000_000);
    let (_d, mut amd) = create(Profile::Amd2s, SimOptions::default());
    amd.near_wrap(CORE0, 1.0).unwrap();
    let (_d, mut cray) = create(Profile::CrayEx, SimOptions::default());
    assert!(matches!(cray.near_wrap(NODE, 1.0), Err(SimError::Unsupported { .. })));
    assert!(matches!(cray.near_wrap(PSYS, 1.0), Err(SimError::NoDomain { .. })));
}

// ---------------------------------------------------------------------------------------------
// Limits.

#[test]
fn powercap_limits_cap_the_package() {
    let (dir, mut node) = create(Profile::Intel2s, SimOptions::default());
    let r = dir.path();
    write(r, &format!("{PKG0_ZONE}/constraint_0_power_limit_uw"), "80000000\n");
    assert_eq!(node.expected_steady_power_watts(PKG0), Some(80.0));
    node.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(node.true_power_watts(PKG0), Some(80.0));
    assert_eq!(node.true_power_watts(PKG1), Some(105.0));
    // The register followed the file; the other constraint's window was left alone.
    let reg = node.msr().read(0, 0x610).unwrap();
    assert_eq!(reg & 0x7fff, 640);
    assert_eq!(read_u64(r, &format!("{PKG0_ZONE}/constraint_1_time_window_us")), 2_440);
    // Disabling the zone lifts the limit.
    write(r, &format!("{PKG0_ZONE}/enabled"), "0\n");
    node.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(node.true_power_watts(PKG0), Some(105.0));
    assert_eq!(node.msr().read(0, 0x610).unwrap() & (1 << 15), 0);
    // Values are quantised like the kernel's: 1/8 W, and the window encoding.
    write(r, &format!("{PKG0_ZONE}/enabled"), "1\n");
    write(r, &format!("{PKG0_ZONE}/constraint_0_power_limit_uw"), "90100000\n");
    write(r, &format!("{PKG0_ZONE}/constraint_0_time_window_us"), "2440\n");
    node.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(read_u64(r, &format!("{PKG0_ZONE}/constraint_0_power_limit_uw")), 90_000_000);
    assert_eq!(read_u64(r, &format!("{PKG0_ZONE}/constraint_0_time_window_us")), 1_952);
    assert_eq!(node.true_power_watts(PKG0), Some(90.0));
    // Garbage is refused: the file shows the register again.
    write(r, &format!("{PKG0_ZONE}/constraint_0_power_limit_uw"), "lots\n");
    node.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(read_u64(r, &format!("{PKG0_ZONE}/constraint_0_power_limit_uw")), 90_000_000);
    // DRAM: capped only when its zone is enabled.
    write(r, &format!("{DRAM0_ZONE}/constraint_0_power_limit_uw"), "10000000\n");
    node.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(node.true_power_watts(MEM0), Some(16.0));
    write(r, &format!("{DRAM0_ZONE}/enabled"), "1\n");
    node.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(node.true_power_watts(MEM0), Some(10.0));
    // psys: a platform limit squeezes the packages.
    write(r, &format!("{PSYS_ZONE}/constraint_0_power_limit_uw"), "200000000\n");
    node.advance(Duration::from_secs(1)).unwrap();
    assert!((node.true_power_watts(PSYS).unwrap() - 200.0).abs() < 1e-9);
}

#[test]
fn the_mmio_duplicate_limit_is_enforced_too() {
    let (dir, mut node) =
        create(Profile::Intel2s, SimOptions { mmio_duplicate: true, ..SimOptions::default() });
    write(
        dir.path(),
        "sys/class/powercap/intel-rapl-mmio:0/constraint_0_power_limit_uw",
        "70000000\n",
    );
    node.advance(Duration::from_millis(100)).unwrap();
    assert_eq!(node.true_power_watts(PKG0), Some(70.0));
}

#[test]
fn msr_register_model_round_trips_and_locks() {
    let (dir, mut node) = create(Profile::Intel2s, SimOptions::default());
    let r = dir.path();
    let mut msr = node.msr();
    assert_eq!(msr.cpus(), 16);
    assert_eq!(msr.read(3, 0x606).unwrap(), 0x000A_0E03);
    let info = msr.read(0, 0x614).unwrap();
    assert_eq!((info & 0x7fff, (info >> 16) & 0x7fff, (info >> 32) & 0x7fff), (1200, 560, 2400));
    let limit = msr.read(0, 0x610).unwrap();
    assert_eq!(limit & 0x7fff, 1200);
    assert_ne!(limit & (1 << 15), 0, "PL1 enabled");
    assert_ne!(limit & (1 << 16), 0, "clamp");
    let (y, z) = ((limit >> 17) & 0x1f, (limit >> 22) & 0x3);
    assert_eq!((1u64 << y) * (4 + z) * 976 / 4, 999_424);
    assert_eq!((limit >> 32) & 0x7fff, 1440);
    assert_ne!(limit & (1 << 47), 0, "PL2 enabled");
    assert_eq!(limit >> 63, 0, "unlocked");
    assert_eq!(msr.read(0, 0x61C).unwrap() & 0x7fff, 320);
    assert_eq!(msr.read(0, 0x618).unwrap() & 0x7fff, 320);
    // A PL1 of 100 W written through the register caps the package and shows in powercap.
    let new = (limit & !0x7fff) | 800;
    msr.write(8, 0x610, new).unwrap();
    assert_eq!(msr.read(0, 0x610).unwrap(), new);
    assert_eq!(node.expected_steady_power_watts(PKG0), Some(100.0));
    node.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(node.true_power_watts(PKG0), Some(100.0));
    assert_eq!(read_u64(r, &format!("{PKG0_ZONE}/constraint_0_power_limit_uw")), 100_000_000);
    // Locked: register writes fail, and powercap writes are reverted.
    msr.set_lock(0, 0x610, true);
    assert!(msr.write(0, 0x610, limit).is_err());
    write(r, &format!("{PKG0_ZONE}/constraint_0_power_limit_uw"), "50000000\n");
    node.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(node.true_power_watts(PKG0), Some(100.0));
    assert_eq!(read_u64(r, &format!("{PKG0_ZONE}/constraint_0_power_limit_uw")), 100_000_000);
    msr.set_lock(0, 0x610, false);
    msr.write(0, 0x610, limit).unwrap();
    // DRAM_POWER_LIMIT locks with bit 31.
    msr.set_lock(1, 0x618, true);
    assert_ne!(msr.read(4, 0x618).unwrap() & (1 << 31), 0);
    assert!(msr.write(4, 0x618, 0).is_err());
    // Read-only and unknown registers, CPUs that do not exist.
    assert!(msr.write(0, 0x611, 0).is_err());
    assert!(msr.write(0, 0x606, 0).is_err());
    let e = msr.read(0, 0x123).unwrap_err().to_string();
    assert!(e.contains("dev/cpu/0/msr"), "{e}");
    assert!(matches!(msr.read(16, 0x611), Err(powerstack_hw::HwError::Vanished { .. })));
    assert!(!msr.is_file_image());
    // Energy registers follow advance.
    let a = msr.read(0, 0x611).unwrap();
    node.advance(Duration::from_secs(1)).unwrap();
    let b = msr.read(0, 0x611).unwrap();
    assert!(((b - a) as f64 / 16384.0 - 105.0).abs() < 1e-3);
    assert_eq!(msr.read(0, 0x64D).unwrap(), msr.read(15, 0x64D).unwrap());
    // No MSRs on cray-ex.
    let (_d, cray) = create(Profile::CrayEx, SimOptions::default());
    assert!(matches!(cray.msr().read(0, 0x611), Err(powerstack_hw::HwError::Vanished { .. })));
}

#[test]
fn hwmon_caps_are_honoured() {
    let (dir, mut node) = create(Profile::HwmonNode, SimOptions::default());
    let r = dir.path();
    write(r, "sys/class/hwmon/hwmon1/power1_cap", "100500000\n");
    node.advance(Duration::from_millis(10)).unwrap();
    // amdgpu keeps whole watts.
    assert_eq!(read(r, "sys/class/hwmon/hwmon1/power1_cap"), "100000000\n");
    assert_eq!(node.true_power_watts(GPU0), Some(100.0));
    assert_eq!(read_u64(r, "sys/class/hwmon/hwmon1/power1_average"), 100_000_000);
    assert_eq!(node.true_power_watts(NODE), Some(135.0 + 100.0 + 80.0));
    // Out of range: refused.
    write(r, "sys/class/hwmon/hwmon1/power1_cap", "900000000\n");
    node.advance(Duration::from_millis(10)).unwrap();
    assert_eq!(read(r, "sys/class/hwmon/hwmon1/power1_cap"), "100000000\n");
    // The meter's cap scales CPU and GPU.
    write(r, "sys/class/hwmon/hwmon0/power1_cap", "250000000\n");
    node.advance(Duration::from_millis(10)).unwrap();
    assert!((node.true_power_watts(NODE).unwrap() - 250.0).abs() < 1e-9);
    assert_eq!(read_u64(r, "sys/class/hwmon/hwmon0/power1_average"), 250_000_000);
}

#[test]
fn cray_power_caps_are_honoured() {
    let (dir, mut node) =
        create(Profile::CrayEx, SimOptions { load: 1.0, ..SimOptions::default() });
    let r = dir.path();
    write(r, "sys/cray/pm_counters/power_cap", "1500\n");
    node.advance(Duration::from_millis(100)).unwrap();
    assert_eq!(read(r, "sys/cray/pm_counters/power_cap"), "1500 W\n");
    assert!((node.true_power_watts(NODE).unwrap() - 1500.0).abs() < 1e-9);
    assert_eq!(node.true_power_watts(MEM0), Some(60.0));
    write(r, "sys/cray/pm_counters/power_cap", "0 W\n");
    write(r, "sys/cray/pm_counters/accel_power_cap", "300 W\n");
    node.advance(Duration::from_millis(100)).unwrap();
    assert_eq!(node.true_power_watts(GPU0), Some(300.0));
}

// ---------------------------------------------------------------------------------------------
// pm_counters timing, reset, reopen, removal.

#[test]
fn pm_counters_update_only_at_100_ms_boundaries() {
    let (dir, mut node) = create(Profile::CrayEx, SimOptions::default());
    let r = dir.path();
    let (e0, t0) = pm_energy(r, "energy");
    let mut last = read(r, "sys/cray/pm_counters/energy");
    let mut fresh = read_u64(r, "sys/cray/pm_counters/freshness");
    let mut updates = 0;
    for i in 1..=40u64 {
        let before = node.unix_us();
        node.advance(Duration::from_millis(30)).unwrap();
        let crossed = node.unix_us().div_euclid(100_000) > before.div_euclid(100_000);
        let now = read(r, "sys/cray/pm_counters/energy");
        let f = read_u64(r, "sys/cray/pm_counters/freshness");
        assert_eq!(now != last, crossed, "step {i}");
        assert_eq!(f != fresh, crossed, "step {i}");
        if crossed {
            updates += 1;
            let (e, ts) = pm_energy(r, "energy");
            assert_eq!(ts % 100_000, 0);
            assert_eq!(ts as i64, node.unix_us().div_euclid(100_000) * 100_000);
            // Energy at the update time: 1675 W since the start.
            let truth = 1675.0 * (ts - t0) as f64 / 1e6;
            assert_eq!(e - e0, truth.floor() as u64, "step {i}");
            assert_eq!(shown(r, "sys/cray/pm_counters/power"), format!("1675 W {ts} us\n"));
        }
        last = now;
        fresh = f;
    }
    assert_eq!(updates, 12);
    assert_eq!(node.unix_us(), powerstack_sim::UNIX_START_US + 1_200_000);
}

#[test]
fn reset_pm_counters_restarts_energies_and_bumps_generation() {
    let (dir, mut node) = create(Profile::CrayEx, SimOptions::default());
    let r = dir.path();
    node.advance(Duration::from_millis(550)).unwrap();
    assert!(pm_energy(r, "cpu_energy").0 > 1000);
    node.reset_pm_counters().unwrap();
    let now = node.unix_us();
    assert_eq!(shown(r, "sys/cray/pm_counters/generation"), "2\n");
    assert_eq!(shown(r, "sys/cray/pm_counters/startup"), format!("{now}\n"));
    assert_eq!(pm_energy(r, "energy"), (0, now as u64));
    node.advance(Duration::from_millis(450)).unwrap();
    let (e, _) = pm_energy(r, "cpu_energy");
    assert_eq!(e, (185.0f64 * 0.45).floor() as u64);
    assert!(node.true_energy_joules(PKG0).unwrap() > 185.0 * 0.99, "true energy is not reset");
    let (_d, mut intel) = create(Profile::Intel2s, SimOptions::default());
    assert!(matches!(intel.reset_pm_counters(), Err(SimError::Unsupported { .. })));
}

#[test]
fn open_continues_counters_without_going_backwards() {
    for profile in Profile::ALL {
        let (dir, mut node) = create(profile, SimOptions { load: 0.7, ..SimOptions::default() });
        let r = dir.path();
        node.advance(Duration::from_millis(1234)).unwrap();
        if profile == Profile::Intel2s {
            node.near_wrap(PKG0, 0.1).unwrap();
        }
        let snapshot = |r: &Path| -> Vec<(String, String)> {
            let mut v = Vec::new();
            for z in ["intel-rapl:0", "intel-rapl:0:0", "intel-rapl:1", "intel-rapl:2"] {
                let p = format!("sys/class/powercap/{z}/energy_uj");
                if r.join(&p).exists() {
                    v.push((p.clone(), read(r, &p)));
                }
            }
            for f in ["energy", "cpu_energy", "accel3_energy", "generation", "freshness"] {
                let p = format!("sys/cray/pm_counters/{f}");
                if r.join(&p).exists() {
                    v.push((p.clone(), read(r, &p)));
                }
            }
            v
        };
        let before = snapshot(r);
        drop(node);
        let mut node = SimNode::open(r).unwrap();
        assert_eq!(node.profile(), profile);
        assert_eq!(node.options().load, 0.7);
        assert_eq!(snapshot(r), before, "{profile}: open changes nothing");
        node.advance(Duration::from_millis(150)).unwrap();
        for ((p, old), (_, new)) in before.iter().zip(snapshot(r)) {
            let num = |s: &str| s.split_whitespace().next().unwrap().parse::<u64>().unwrap();
            if profile == Profile::Intel2s && p.contains("intel-rapl:0/") {
                // Wrapped meanwhile (near_wrap 0.1 s before a 0.15 s step).
                assert!(num(&new) < num(old), "{p}");
                continue;
            }
            assert!(num(&new) >= num(old), "{profile} {p}: {old:?} -> {new:?}");
            assert!(new != *old || p.ends_with("generation"), "{profile} {p} did not move");
        }
        if profile == Profile::CrayEx {
            let (_, ts) = pm_energy(r, "energy");
            assert!(ts > before[0].1.split_whitespace().nth(2).unwrap().parse::<u64>().unwrap());
        }
    }
}

#[test]
fn open_refuses_what_is_not_a_sim_root() {
    let dir = tempfile::tempdir().unwrap();
    assert!(SimNode::open(dir.path()).is_err());
    fs::write(dir.path().join("powerstack-sim.toml"), "format = 1\nprofile = \"vax\"\n").unwrap();
    let e = SimNode::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("powerstack-sim.toml"), "{e}");
}

#[test]
fn create_refuses_a_foreign_directory_or_a_sim_root_and_touches_neither() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("thesis.tex"), "precious").unwrap();
    let e = SimNode::create(dir.path(), Profile::Intel2s, SimOptions::default()).unwrap_err();
    assert!(matches!(e, SimError::NotEmpty { .. }), "{e}");
    assert!(e.to_string().contains(&dir.path().display().to_string()));
    assert_eq!(fs::read_to_string(dir.path().join("thesis.tex")).unwrap(), "precious");

    // A simulated root is not written over either: readers may keep its files open.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sim");
    SimNode::create(&root, Profile::Intel2s, SimOptions::default()).unwrap();
    let config = fs::read_to_string(root.join("powerstack-sim.toml")).unwrap();
    let e = SimNode::create(&root, Profile::CrayEx, SimOptions::default()).unwrap_err();
    assert!(matches!(e, SimError::AlreadyCreated { .. }), "{e}");
    assert!(e.to_string().contains("rm -r"), "{e}");
    assert_eq!(fs::read_to_string(root.join("powerstack-sim.toml")).unwrap(), config);
    assert!(root.join("sys/class/powercap").exists());
    assert!(!root.join("sys/cray").exists());
    // Once removed, the directory takes a new tree.
    fs::remove_dir_all(&root).unwrap();
    let node = SimNode::create(&root, Profile::CrayEx, SimOptions::default()).unwrap();
    assert_eq!(node.profile(), Profile::CrayEx);

    let file = dir.path().join("plain");
    fs::write(&file, "x").unwrap();
    assert!(SimNode::create(&file, Profile::Intel2s, SimOptions::default()).is_err());
    let bad = SimOptions { load: 1.5, ..SimOptions::default() };
    assert!(matches!(
        SimNode::create(&dir.path().join("x"), Profile::Intel2s, bad),
        Err(SimError::InvalidLoad(_))
    ));
    assert!(!dir.path().join("x").exists(), "nothing made for refused options");
}

#[test]
fn removed_devices_read_empty_then_vanish() {
    // powercap zone: a reader's kept-open descriptor reads nothing.
    let (dir, mut node) = create(Profile::Intel2s, SimOptions::default());
    let r = dir.path();
    let kept = fs::File::open(r.join(format!("{DRAM0_ZONE}/energy_uj"))).unwrap();
    node.remove_device(MEM0).unwrap();
    let mut buf = [0u8; 32];
    assert_eq!(kept.read_at(&mut buf, 0).unwrap(), 0);
    assert!(fs::symlink_metadata(r.join(DRAM0_ZONE)).is_err());
    assert!(
        !r.join("sys/devices/virtual/powercap/intel-rapl/intel-rapl:0/intel-rapl:0:0").exists()
    );
    assert!(!node.domains().contains(&MEM0));
    node.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(kept.read_at(&mut buf, 0).unwrap(), 0, "never written again");
    assert!(node.remove_device(MEM0).is_err());
    // A package zone takes its subzones along.
    let kept = fs::File::open(r.join(format!("{PKG0_ZONE}/energy_uj"))).unwrap();
    node.remove_device(PKG0).unwrap();
    assert_eq!(kept.read_at(&mut buf, 0).unwrap(), 0);
    assert!(fs::symlink_metadata(r.join(PKG0_ZONE)).is_err());
    assert!(r.join("sys/class/powercap/intel-rapl:1/energy_uj").exists());
    node.advance(Duration::from_secs(1)).unwrap();
    // Still removed after reopening.
    drop(node);
    let node = SimNode::open(r).unwrap();
    assert!(!node.domains().contains(&PKG0));
    assert!(node.domains().contains(&PKG1));

    // hwmon GPU chip.
    let (dir, mut node) = create(Profile::HwmonNode, SimOptions::default());
    let r = dir.path();
    let kept = fs::File::open(r.join("sys/class/hwmon/hwmon1/power1_average")).unwrap();
    node.remove_device(GPU0).unwrap();
    assert_eq!(kept.read_at(&mut buf, 0).unwrap(), 0);
    assert!(fs::symlink_metadata(r.join("sys/class/hwmon/hwmon1")).is_err());
    assert!(fs::symlink_metadata(r.join("sys/class/drm/card0")).is_err());
    assert!(r.join("sys/class/hwmon/hwmon0/power1_average").exists());
    node.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(node.domains(), vec![NODE]);
    node.remove_device(NODE).unwrap();
    assert!(fs::symlink_metadata(r.join("sys/class/hwmon/hwmon0")).is_err());

    // pm_counters accelerator.
    let (dir, mut node) = create(Profile::CrayEx, SimOptions::default());
    let r = dir.path();
    let kept = fs::File::open(r.join("sys/cray/pm_counters/accel2_energy")).unwrap();
    let acc2 = DomainId::new(DomainKind::Gpu, 2);
    node.remove_device(acc2).unwrap();
    assert_eq!(kept.read_at(&mut buf, 0).unwrap(), 0);
    assert!(!r.join("sys/cray/pm_counters/accel2_energy").exists());
    assert!(!r.join("sys/cray/pm_counters/accel2_power").exists());
    node.advance(Duration::from_millis(300)).unwrap();
    assert!(!r.join("sys/cray/pm_counters/accel2_energy").exists());
    assert!(!node.domains().contains(&acc2));
    assert!(node.true_power_watts(acc2).is_some(), "the accelerator still draws power");
}

#[test]
fn run_realtime_returns_when_stopped() {
    let (_dir, mut node) = create(Profile::Amd2s, SimOptions::default());
    let stop = AtomicBool::new(true);
    node.run_realtime(Duration::from_millis(5), &stop).unwrap();
    assert_eq!(node.mono_ns(), powerstack_sim::MONO_START_NS);
}

#[test]
fn profile_of_recognises_simulated_roots() {
    let (dir, _node) = create(Profile::CrayEx, SimOptions::default());
    assert_eq!(powerstack_sim::profile_of(dir.path()), Some(Profile::CrayEx));
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(powerstack_sim::profile_of(empty.path()), None);
}

#[test]
fn open_writes_nothing_and_tolerates_a_stale_tail() {
    let (dir, mut node) = create(Profile::Intel2s, SimOptions::default());
    let r = dir.path();
    node.advance(Duration::from_secs(1)).unwrap();
    // A reader may catch an in-place update between pwrite and set_len.
    let p = format!("{PKG0_ZONE}/energy_uj");
    let uj = read(r, &p);
    write(r, &p, &format!("{uj}4\n"));
    let before = fs::metadata(r.join(&p)).unwrap().modified().unwrap();
    let opened = SimNode::open(r).unwrap();
    assert_eq!(fs::metadata(r.join(&p)).unwrap().modified().unwrap(), before);
    assert_eq!(opened.expected_steady_power_watts(PKG0), Some(105.0));
    assert_eq!(opened.msr().read(0, 0x611).unwrap() as u32, msr_image(r, 0, 0x611) as u32);
}
