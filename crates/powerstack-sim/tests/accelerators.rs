//! amd-mi250x: pm_counters per MI250X module and eight amdgpu hwmon GCDs, read as files and
//! through the hardware layer's hwmon provider. (The NVIDIA profiles are in `nvidia.rs`.) No
//! sleeping, no timing.

use std::fs;
use std::path::Path;
use std::time::Duration;

use powerstack_hw::providers::hwmon::Hwmon;
use powerstack_hw::{CpuTopology, Provider, Root};
use powerstack_model::{DomainId, DomainKind, LimitWrite};
use powerstack_sim::{Profile, SimNode, SimOptions};

mod common;
use common::{read, read_u64, write};

fn gpu(n: u32) -> DomainId {
    DomainId::new(DomainKind::Gpu, n)
}

const GCDS: [&str; 8] = [
    "0000:c1:00.0",
    "0000:c6:00.0",
    "0000:c9:00.0",
    "0000:ce:00.0",
    "0000:d1:00.0",
    "0000:d6:00.0",
    "0000:d9:00.0",
    "0000:de:00.0",
];

fn mi250x(load: f64) -> (tempfile::TempDir, SimNode) {
    let dir = tempfile::tempdir().unwrap();
    let opts = SimOptions { load, ..SimOptions::default() };
    let node = SimNode::create(dir.path(), Profile::AmdMi250x, opts).unwrap();
    (dir, node)
}

/// The `sys/class/hwmon/hwmonN` chip of each GCD, in PCI order.
fn chips(root: &Path) -> Vec<String> {
    let mut by_addr = Vec::new();
    for e in fs::read_dir(root.join("sys/class/hwmon")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let dev = fs::canonicalize(root.join(format!("sys/class/hwmon/{name}/device"))).unwrap();
        by_addr.push((dev.file_name().unwrap().to_str().unwrap().to_string(), name));
    }
    by_addr.sort();
    let addrs: Vec<&str> = by_addr.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(addrs, GCDS);
    by_addr.into_iter().map(|(_, c)| format!("sys/class/hwmon/{c}")).collect()
}

/// Whole watts of a pm_counters power file.
fn pm_watts(root: &Path, name: &str) -> u64 {
    let t = read(root, &format!("sys/cray/pm_counters/{name}"));
    let f: Vec<&str> = t.split_whitespace().collect();
    assert_eq!((f[1], f[3]), ("W", "us"), "{t:?}");
    f[0].parse().unwrap()
}

#[test]
fn mi250x_layout_has_pm_counters_and_eight_amdgpu_chips() {
    let (dir, node) = mi250x(0.5);
    let r = dir.path();
    for f in ["power", "energy", "cpu_power", "memory_energy", "accel0_power", "accel3_energy"] {
        assert!(r.join(format!("sys/cray/pm_counters/{f}")).is_file(), "{f}");
    }
    assert!(!r.join("sys/cray/pm_counters/accel4_power").exists());
    for (n, cpus) in ["0-1,8-9", "2-3,10-11", "4-5,12-13", "6-7,14-15"].iter().enumerate() {
        assert_eq!(
            read(r, &format!("sys/devices/system/node/node{n}/cpulist")),
            format!("{cpus}\n")
        );
    }
    let chips = chips(r);
    assert_eq!(chips.len(), 8);
    assert_ne!(
        chips,
        (0..8).map(|i| format!("sys/class/hwmon/hwmon{i}")).collect::<Vec<_>>(),
        "hwmon numbers are not in PCI order"
    );
    let mut numa = Vec::new();
    for (i, c) in chips.iter().enumerate() {
        assert_eq!(read(r, &format!("{c}/name")), "amdgpu\n");
        assert_eq!(read_u64(r, &format!("{c}/power1_average")), 162_500_000);
        assert_eq!(read_u64(r, &format!("{c}/power1_cap")), 560_000_000);
        assert_eq!(read_u64(r, &format!("{c}/power1_cap_min")), 0);
        assert_eq!(read_u64(r, &format!("{c}/power1_cap_max")), 560_000_000);
        assert_eq!(read_u64(r, &format!("{c}/power1_cap_default")), 560_000_000);
        assert_eq!(read(r, &format!("{c}/power1_label")), "PPT\n");
        let mode = fs::metadata(r.join(format!("{c}/power1_cap"))).unwrap();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777, 0o644);
        numa.push(read_u64(r, &format!("{c}/device/numa_node")));
        assert_eq!(read(r, &format!("{c}/device/vendor")), "0x1002\n");
        let card = fs::canonicalize(r.join(format!("sys/class/drm/card{i}/device"))).unwrap();
        assert_eq!(card, fs::canonicalize(r.join(format!("{c}/device"))).unwrap());
    }
    let mut per_node = numa.clone();
    per_node.sort_unstable();
    assert_eq!(per_node, vec![0, 0, 1, 1, 2, 2, 3, 3], "two GCDs per NUMA node");
    assert_eq!(node.domains().iter().filter(|d| d.kind == DomainKind::Gpu).count(), 8);
    assert_eq!(node.true_accel_power_watts(0), Some(325.0));
    assert_eq!(node.true_accel_power_watts(4), None);
    let intel = SimNode::create(&r.join("x"), Profile::Intel2s, SimOptions::default());
    assert!(intel.unwrap().true_accel_power_watts(0).is_none());
}

#[test]
fn mi250x_pm_counters_accel_is_the_sum_of_its_two_gcds() {
    let (dir, mut node) = mi250x(0.5);
    let r = dir.path();
    let chips = chips(r);
    let caps = [(1, 150), (6, 100)];
    for (gcd, w) in caps {
        write(r, &format!("{}/power1_cap", chips[gcd]), &format!("{}\n", w * 1_000_000));
    }
    let e0: Vec<u64> = (0..4)
        .map(|k| {
            let t = read(r, &format!("sys/cray/pm_counters/accel{k}_energy"));
            t.split_whitespace().next().unwrap().parse().unwrap()
        })
        .collect();
    node.advance(Duration::from_secs(2)).unwrap();
    let gcd = |n: u32| node.true_power_watts(gpu(n)).unwrap();
    for k in 0..4u32 {
        let sum = gcd(2 * k) + gcd(2 * k + 1);
        assert_eq!(node.true_accel_power_watts(k), Some(sum));
        assert_eq!(pm_watts(r, &format!("accel{k}_power")), sum.round() as u64);
        let t = read(r, &format!("sys/cray/pm_counters/accel{k}_energy"));
        let e: u64 = t.split_whitespace().next().unwrap().parse().unwrap();
        assert_eq!(e - e0[k as usize], (2.0 * sum).floor() as u64, "accel{k}");
        let hw = |n: u32| read_u64(r, &format!("{}/power1_average", chips[n as usize]));
        assert_eq!(hw(2 * k) + hw(2 * k + 1), (sum * 1e6).round() as u64);
    }
    assert_eq!(node.true_accel_power_watts(0), Some(162.5 + 150.0));
    assert_eq!(node.true_accel_power_watts(3), Some(100.0 + 162.5));
    let accels: f64 = (0..4).map(|k| node.true_accel_power_watts(k).unwrap()).sum();
    let cpu = node.true_power_watts(DomainId::new(DomainKind::Package, 0)).unwrap();
    let mem = node.true_power_watts(DomainId::new(DomainKind::Memory, 0)).unwrap();
    let total = node.true_power_watts(DomainId::NODE).unwrap();
    assert!((total - (cpu + mem + accels + 150.0)).abs() < 1e-9);
    assert_eq!(pm_watts(r, "power"), total.round() as u64);
}

#[test]
fn mi250x_gcd_caps_are_honoured_and_normalised() {
    let (dir, mut node) = mi250x(1.0);
    let r = dir.path();
    let chips = chips(r);
    write(r, &format!("{}/power1_cap", chips[3]), "120500000\n");
    node.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(node.true_power_watts(gpu(3)), Some(120.0), "whole watts, like the driver");
    assert_eq!(read(r, &format!("{}/power1_cap", chips[3])), "120000000\n");
    assert_eq!(node.true_power_watts(gpu(2)), Some(280.0));
    // Above the maximum: refused, the last cap stays.
    write(r, &format!("{}/power1_cap", chips[3]), "900000000\n");
    node.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(node.true_power_watts(gpu(3)), Some(120.0));
    // A removed GCD: its PCI device, chip and links go.
    node.remove_device(gpu(3)).unwrap();
    assert!(fs::symlink_metadata(r.join(&chips[3])).is_err());
    assert!(fs::symlink_metadata(r.join(format!("sys/bus/pci/devices/{}", GCDS[3]))).is_err());
    assert!(fs::symlink_metadata(r.join("sys/class/drm/card3")).is_err());
    assert!(!node.domains().contains(&gpu(3)));
    node.advance(Duration::from_secs(1)).unwrap();
    assert!(r.join(format!("{}/power1_average", chips[4])).exists());
}

#[test]
fn hwmon_sees_eight_gpus_in_pci_order_on_socket_0_and_writes_their_caps() {
    let (dir, mut node) = mi250x(1.0);
    let root = Root::new(dir.path());
    let (topology, w) = CpuTopology::discover(&root);
    assert!(w.is_empty(), "{w:?}");
    let (hwmon, w) = Hwmon::open(&root, &topology);
    assert!(w.is_empty(), "{w:?}");
    let mut hwmon = hwmon.expect("hwmon finds the GCDs");
    let seen: Vec<(DomainId, String, Option<u32>)> =
        hwmon.domains().iter().map(|d| (d.id, d.source.clone(), d.socket)).collect();
    let want: Vec<(DomainId, String, Option<u32>)> = GCDS
        .iter()
        .enumerate()
        .map(|(n, a)| (gpu(n as u32), format!("amdgpu {a} power1_average"), Some(0)))
        .collect();
    assert_eq!(seen, want);
    let cap = hwmon.domains()[5].limit("cap").unwrap().clone();
    assert_eq!(
        (cap.limit_watts, cap.min_watts, cap.max_watts, cap.default_watts, cap.locked),
        (Some(560.0), Some(0.0), Some(560.0), Some(560.0), false)
    );
    // A cap written through the provider is read back and honoured by the model.
    let write = LimitWrite {
        constraint: "cap".into(),
        limit_watts: 200.0,
        time_window_s: None,
        enabled: None,
    };
    hwmon.write_limit(5, &write).unwrap();
    assert_eq!(hwmon.domains()[5].limit("cap").unwrap().limit_watts, Some(200.0));
    node.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(node.true_power_watts(gpu(5)), Some(200.0));
    assert_eq!(node.true_power_watts(gpu(4)), Some(280.0));
    assert_eq!(node.true_accel_power_watts(2), Some(480.0));
}
