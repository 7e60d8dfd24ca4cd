//! hwmon chips: hwmon-node's ACPI power meter and amdgpu (with its DRM card), and amd-mi250x's
//! eight amdgpu GCDs (its `pm_counters` are cray-ex's).

use powerstack_model::{DomainId, DomainKind};

use crate::error::SimError;
use crate::io::{CapRole, Control, CtlKind, Device, HwmonKind, HwmonOut, Io};
use crate::model::MI250X_GCDS;
use crate::msr::Shared;
use crate::options::SimOptions;
use crate::profile::Profile;
use crate::tree::{B, NUMBER_WIDTH, PCI_DEVICES, ci, pci_device};

/// A hwmon value file `rel` following component `comp`, showing `watts` now.
fn hwmon_out(
    b: &B<'_>,
    io: &mut Io,
    rel: &str,
    comp: usize,
    kind: HwmonKind,
    watts: f64,
) -> Result<(), SimError> {
    let file = b.counter(rel, &HwmonOut::content(kind, watts), 0o444, NUMBER_WIDTH)?;
    io.hwmon.push(HwmonOut { comp, kind, file });
    Ok(())
}

/// The ACPI power meter device.
const METER_DEV: &str = "sys/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI000D:00";
/// hwmon-node's GPU, a PCI device.
const GPU_PCI: &str = "sys/devices/pci0000:00/0000:00:03.1/0000:03:00.0";
/// An NVMe drive whose hwmon chip is in the way (shuffled indices).
const NVME_DEV: &str = "sys/devices/pci0000:00/0000:00:01.1/0000:01:00.0/nvme/nvme0";

/// Writes hwmon-node's chips: the power meter (node power and cap) and the amdgpu (GPU power,
/// temperature and cap); with shuffled indices, an `nvme` chip between them.
pub(super) fn build(b: &B<'_>, opts: &SimOptions, s: &Shared, io: &mut Io) -> Result<(), SimError> {
    let (meter_n, gpu_n) = if opts.shuffle_indices { (2, 0) } else { (0, 1) };
    let node = ci(s, DomainKind::Node, 0);
    let gpu = ci(s, DomainKind::Gpu, 0);
    let watts = |c: usize| s.comps.get(c).map_or(0.0, |k| k.power);

    // ACPI power meter.
    b.file(&format!("{METER_DEV}/hid"), "ACPI000D\n", 0o444)?;
    let chip = format!("{METER_DEV}/hwmon/hwmon{meter_n}");
    b.file(&format!("{chip}/name"), "power_meter\n", 0o444)?;
    hwmon_out(b, io, &format!("{chip}/power1_average"), node, HwmonKind::PowerUw, watts(node))?;
    b.file(&format!("{chip}/power1_average_interval"), "1000\n", 0o644)?;
    let (cap_min, cap_max) = (200_000_000, 1_000_000_000);
    let cap = b.out(&format!("{chip}/power1_cap"), "0\n", 0o644)?;
    let kind = CtlKind::Microwatts { min: cap_min, max: cap_max, quantum: 1000, round: true };
    io.controls.push(Control::new(CapRole::Node, kind, cap, 0));
    b.file(&format!("{chip}/power1_cap_max"), &format!("{cap_max}\n"), 0o444)?;
    b.file(&format!("{chip}/power1_cap_min"), &format!("{cap_min}\n"), 0o444)?;
    b.file(&format!("{chip}/power1_is_battery"), "0\n", 0o444)?;
    b.link(&format!("{chip}/device"), METER_DEV)?;
    let meter_class = format!("sys/class/hwmon/hwmon{meter_n}");
    b.link(&meter_class, &chip)?;
    io.devices.push(Device {
        ids: vec![DomainId::NODE],
        truncate: vec![b.p(METER_DEV)],
        remove: vec![b.p(METER_DEV), b.p(&meter_class)],
        removed: false,
    });

    // amdgpu.
    for (f, v) in
        [("numa_node", "0"), ("vendor", "0x1002"), ("device", "0x740c"), ("class", "0x038000")]
    {
        b.file(&format!("{GPU_PCI}/{f}"), &format!("{v}\n"), 0o444)?;
    }
    let chip = format!("{GPU_PCI}/hwmon/hwmon{gpu_n}");
    b.file(&format!("{chip}/name"), "amdgpu\n", 0o444)?;
    let w = watts(gpu);
    hwmon_out(b, io, &format!("{chip}/power1_average"), gpu, HwmonKind::PowerUw, w)?;
    hwmon_out(b, io, &format!("{chip}/temp1_input"), gpu, HwmonKind::GpuTemp, w)?;
    b.file(&format!("{chip}/temp1_label"), "edge\n", 0o444)?;
    let cap = b.out(&format!("{chip}/power1_cap"), "300000000\n", 0o644)?;
    let kind = CtlKind::Microwatts { min: 0, max: 300_000_000, quantum: 1_000_000, round: false };
    io.controls.push(Control::new(CapRole::Gpu, kind, cap, 300_000_000));
    for (f, v) in [
        ("power1_cap_min", "0"),
        ("power1_cap_max", "300000000"),
        ("power1_cap_default", "300000000"),
        ("power1_label", "PPT"),
    ] {
        b.file(&format!("{chip}/{f}"), &format!("{v}\n"), 0o444)?;
    }
    b.link(&format!("{chip}/device"), GPU_PCI)?;
    let gpu_class = format!("sys/class/hwmon/hwmon{gpu_n}");
    b.link(&gpu_class, &chip)?;
    let card = format!("{GPU_PCI}/drm/card0");
    b.link(&format!("{card}/device"), GPU_PCI)?;
    b.link("sys/class/drm/card0", &card)?;
    io.devices.push(Device {
        ids: vec![DomainId::new(DomainKind::Gpu, 0)],
        truncate: vec![b.p(GPU_PCI)],
        remove: vec![b.p(GPU_PCI), b.p(&gpu_class), b.p("sys/class/drm/card0")],
        removed: false,
    });

    if opts.shuffle_indices {
        let chip = format!("{NVME_DEV}/hwmon1");
        b.file(&format!("{chip}/name"), "nvme\n", 0o444)?;
        b.file(&format!("{chip}/temp1_input"), "38850\n", 0o444)?;
        b.link(&format!("{chip}/device"), NVME_DEV)?;
        b.link("sys/class/hwmon/hwmon1", &chip)?;
    }
    Ok(())
}

/// amd-mi250x GCDs in PCI order: (address, NUMA node, hwmon number). The NUMA nodes are
/// Frontier's; the hwmon numbers are deliberately not in PCI order.
const MI250X: [(&str, u32, u32); MI250X_GCDS as usize] = [
    ("0000:c1:00.0", 3, 3),
    ("0000:c6:00.0", 3, 6),
    ("0000:c9:00.0", 1, 0),
    ("0000:ce:00.0", 1, 5),
    ("0000:d1:00.0", 0, 2),
    ("0000:d6:00.0", 0, 7),
    ("0000:d9:00.0", 2, 1),
    ("0000:de:00.0", 2, 4),
];

/// An MI250X GCD's `power1_cap_max` and `power1_cap_default`, µW.
const MI250X_CAP_MAX_UW: u64 = 560_000_000;

/// Writes amd-mi250x's GCDs: a PCI device each, with an amdgpu hwmon chip and a DRM card.
pub(super) fn build_mi250x(b: &B<'_>, s: &Shared, io: &mut Io) -> Result<(), SimError> {
    for (i, (addr, numa, h)) in MI250X.into_iter().enumerate() {
        let n = i as u32;
        let parent = format!("pci0000:c0/0000:c0:{:02x}.1", n + 1);
        let dev = pci_device(
            b,
            Profile::AmdMi250x,
            &parent,
            addr,
            numa,
            ["0x1002", "0x7408", "0x038000"],
        )?;
        let gcd = ci(s, DomainKind::Gpu, n);
        let w = s.comps.get(gcd).map_or(0.0, |c| c.power);
        let chip = format!("{dev}/hwmon/hwmon{h}");
        b.file(&format!("{chip}/name"), "amdgpu\n", 0o444)?;
        hwmon_out(b, io, &format!("{chip}/power1_average"), gcd, HwmonKind::PowerUw, w)?;
        hwmon_out(b, io, &format!("{chip}/temp1_input"), gcd, HwmonKind::GpuTemp, w)?;
        b.file(&format!("{chip}/temp1_label"), "edge\n", 0o444)?;
        let cap = b.out(&format!("{chip}/power1_cap"), &format!("{MI250X_CAP_MAX_UW}\n"), 0o644)?;
        let kind = CtlKind::Microwatts {
            min: 0,
            max: MI250X_CAP_MAX_UW,
            quantum: 1_000_000,
            round: false,
        };
        io.controls.push(Control::new(CapRole::GpuN(n), kind, cap, MI250X_CAP_MAX_UW));
        for (f, v) in [
            ("power1_cap_min", "0".to_string()),
            ("power1_cap_max", MI250X_CAP_MAX_UW.to_string()),
            ("power1_cap_default", MI250X_CAP_MAX_UW.to_string()),
            ("power1_label", "PPT".to_string()),
        ] {
            b.file(&format!("{chip}/{f}"), &format!("{v}\n"), 0o444)?;
        }
        b.link(&format!("{chip}/device"), &dev)?;
        let hwmon_class = format!("sys/class/hwmon/hwmon{h}");
        b.link(&hwmon_class, &chip)?;
        let card = format!("{dev}/drm/card{n}");
        b.link(&format!("{card}/device"), &dev)?;
        let card_class = format!("sys/class/drm/card{n}");
        b.link(&card_class, &card)?;
        io.devices.push(Device {
            ids: vec![DomainId::new(DomainKind::Gpu, n)],
            truncate: vec![b.p(&dev)],
            remove: vec![
                b.p(&dev),
                b.p(&hwmon_class),
                b.p(&card_class),
                b.p(&format!("{PCI_DEVICES}/{addr}")),
            ],
            removed: false,
        });
    }
    Ok(())
}
