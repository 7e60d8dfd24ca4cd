//! The NVIDIA GPU profiles (nvidia-4gpu, nvidia-8gpu): their GPUs as data, the PCI devices, the
//! mock NVML library's state directory and the counters the simulator keeps in it.

use std::path::{Path, PathBuf};

use powerstack_model::{DomainId, DomainKind};

use crate::error::SimError;
use crate::fsutil::mkdirs;
use crate::io::{CapRole, Control, CtlKind, Device, Io};
use crate::msr::Shared;
use crate::nvidia_data::NvidiaNode;
use crate::nvml_state::NvmlGpu;
use crate::options::SimOptions;
use crate::profile::Profile;
use crate::tree::{B, ci, pci_device};

/// The mock NVML library's state directory.
pub(crate) const NVML_DIR: &str = "var/lib/powerstack-sim/nvml";

/// Where the NVML library is installed in the root.
pub(crate) const NVML_LINK: &str = "usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1";

/// A deterministic NVML UUID (`GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`) for a PCI address.
fn gpu_uuid(addr: &str) -> String {
    let fnv = |seed: u64| {
        addr.bytes().fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
    };
    let x = format!("{:016x}{:016x}", fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4));
    format!("GPU-{}-{}-{}-{}-{}", &x[0..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}

/// NVML's bus id format: 8-digit domain, upper-case hex (`00000000:B1:00.0`).
fn nvml_bus_id(addr: &str) -> String {
    format!("0000{}", addr.to_ascii_uppercase())
}

/// Writes (or attaches to) the PCI devices, the NVML state and the library of an NVIDIA profile.
pub(crate) fn build(
    b: &B<'_>,
    profile: Profile,
    opts: &SimOptions,
    s: &Shared,
    io: &mut Io,
) -> Result<(), SimError> {
    let Some(node) = profile.nvidia() else { return Ok(()) };
    b.file(
        "proc/driver/nvidia/version",
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n\
         GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04) \n",
        0o444,
    )?;
    b.file("sys/module/nvidia/version", "550.54.15\n", 0o444)?;
    b.dir("sys/bus/pci/drivers/nvidia")?;
    for g in node.gpus {
        let ids = ["0x10de", node.device_id, "0x030200"];
        let dev = pci_device(b, profile, g.parent, g.address, g.numa, ids)?;
        b.file(&format!("{dev}/subsystem_device"), &format!("{}\n", node.subsystem_device), 0o444)?;
        b.link(&format!("{dev}/driver"), "sys/bus/pci/drivers/nvidia")?;
        b.link(&format!("sys/bus/pci/drivers/nvidia/{}", g.address), &dev)?;
    }
    b.file(&format!("{NVML_DIR}/count"), &format!("{}\n", node.count()), 0o444)?;
    let latency = opts.nvml_latency;
    for (call, l) in
        [("energy", latency.energy), ("limit", latency.limit), ("power", latency.power)]
    {
        b.file(&format!("{NVML_DIR}/latency_us/{call}"), &l.file_text(), 0o644)?;
    }
    for (nvml, &pci) in node.nvml_order.iter().enumerate() {
        let addr = node.gpus.get(pci as usize).map_or("", |g| g.address);
        state_dir(b, node, &format!("{NVML_DIR}/gpu{nvml}"), addr, pci, s, io)?;
    }
    // Sort by GPU number, so removal and updates follow PCI order.
    io.nvml.sort_by_key(|g| g.comp);
    if b.fresh {
        install_library(b, opts)?;
    }
    Ok(())
}

/// The state directory `d` of the GPU at PCI position `pci` (address `addr`).
fn state_dir(
    b: &B<'_>,
    node: &NvidiaNode,
    d: &str,
    addr: &str,
    pci: u32,
    s: &Shared,
    io: &mut Io,
) -> Result<(), SimError> {
    let (min, max) = node.limit_mw;
    let device_id = format!("{}{}", node.device_id, "10de");
    for (f, v) in [
        ("name", node.name.to_string()),
        ("uuid", gpu_uuid(addr)),
        ("pci_bus_id", nvml_bus_id(addr)),
        ("pci_device_id", device_id),
        ("limit_min_mw", min.to_string()),
        ("limit_max_mw", max.to_string()),
        ("limit_default_mw", max.to_string()),
        ("energy_supported", "1".to_string()),
    ] {
        b.file(&format!("{d}/{f}"), &format!("{v}\n"), 0o444)?;
    }
    let comp = ci(s, DomainKind::Gpu, pci);
    let w = s.comps.get(comp).map_or(0.0, |c| c.power);
    let offset_mj = 3_600_000_000 + 123_457 * u64::from(pci);
    let energy = b.counter(
        &format!("{d}/energy_mj"),
        &format!("{offset_mj}\n"),
        0o444,
        crate::tree::NUMBER_WIDTH,
    )?;
    let power = b.counter(
        &format!("{d}/power_mw"),
        &format!("{}\n", (w * 1e3).round() as u64),
        0o444,
        crate::tree::NUMBER_WIDTH,
    )?;
    io.nvml.push(NvmlGpu { comp, energy, power, offset_mj });
    let limit = b.out(&format!("{d}/power_limit_mw"), &format!("{max}\n"), 0o644)?;
    let kind = CtlKind::Milliwatts { min, max };
    io.controls.push(Control::new(CapRole::GpuN(pci), kind, limit, max));
    io.devices.push(Device {
        ids: vec![DomainId::new(DomainKind::Gpu, pci)],
        truncate: vec![b.p(d)],
        remove: vec![b.p(d)],
        removed: false,
    });
    Ok(())
}

/// Copies the mock library into the root as `libnvidia-ml.so.1`, with `libnvidia-ml.so` linked
/// to it.
fn install_library(b: &B<'_>, opts: &SimOptions) -> Result<(), SimError> {
    let lib = opts
        .nvml_library
        .as_deref()
        .ok_or_else(|| SimError::NvmlLibraryNotFound { detail: String::new() })?;
    let link = b.p(NVML_LINK);
    mkdirs(link.parent().unwrap_or(b.root))?;
    // A copy, not a link: the dynamic loader takes links to one file for one library, so two
    // simulated roots in one process would share the first one's state.
    std::fs::copy(lib, &link).map_err(|e| SimError::io(&link, e))?;
    let dev_link = link.with_file_name("libnvidia-ml.so");
    std::os::unix::fs::symlink("libnvidia-ml.so.1", &dev_link)
        .map_err(|e| SimError::io(&dev_link, e))
}

/// The file name of the mock NVML library.
const NVML_LIB_NAME: &str = "libpowerstack_mock_nvml.so";

/// The environment variable naming the mock NVML library (or its directory).
const NVML_ENV: &str = "POWERSTACK_MOCK_NVML";

/// Finds the mock NVML library: `given`, else `$POWERSTACK_MOCK_NVML` (a file, or a directory
/// holding it), else next to the running executable, in its `deps/` directory (where cargo puts
/// it when it is built as a dependency of the `powerstack` binary), or in that directory's parent.
/// Returns an absolute path.
pub(crate) fn find_library(given: Option<&Path>) -> Result<PathBuf, SimError> {
    let absolute = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let named = |p: &Path, what: &str| -> Result<PathBuf, SimError> {
        let file = if p.is_dir() { p.join(NVML_LIB_NAME) } else { p.to_path_buf() };
        if file.is_file() {
            Ok(absolute(&file))
        } else {
            Err(SimError::NvmlLibraryNotFound {
                detail: format!(" ({what} {} is not a file)", file.display()),
            })
        }
    };
    if let Some(p) = given {
        return named(p, "nvml_library");
    }
    if let Some(p) = std::env::var_os(NVML_ENV).filter(|v| !v.is_empty()) {
        return named(Path::new(&p), &format!("{NVML_ENV}:"));
    }
    let exe = std::env::current_exe().ok();
    let dir = exe.as_deref().and_then(Path::parent);
    let deps = dir.map(|d| d.join("deps"));
    for d in [dir, deps.as_deref(), dir.and_then(Path::parent)].into_iter().flatten() {
        let file = d.join(NVML_LIB_NAME);
        if file.is_file() {
            return Ok(absolute(&file));
        }
    }
    Err(SimError::NvmlLibraryNotFound { detail: String::new() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nvidia_data::{NVIDIA_4GPU, NVIDIA_8GPU};
    use crate::nvml_state::last_boundary;

    #[test]
    fn every_nvidia_node_is_consistent() {
        for node in [&NVIDIA_4GPU, &NVIDIA_8GPU] {
            let addrs: Vec<&str> = node.gpus.iter().map(|g| g.address).collect();
            let mut sorted = addrs.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(addrs, sorted, "{}: GPUs are listed in PCI order, once each", node.name);
            let mut order = node.nvml_order.to_vec();
            assert_ne!(order, (0..node.count()).collect::<Vec<_>>(), "NVML order is not PCI order");
            order.sort_unstable();
            assert_eq!(order, (0..node.count()).collect::<Vec<_>>(), "a permutation");
            for g in node.gpus {
                let bus = &g.address[5..7];
                assert!(g.parent.starts_with("pci0000:"), "{}", g.parent);
                assert!(!g.parent.contains(bus), "the bridge is on another bus: {}", g.parent);
            }
        }
        let per_node = |n: u32| NVIDIA_8GPU.gpus.iter().filter(|g| g.numa == n).count();
        assert_eq!((per_node(0), per_node(1)), (4, 4));
    }

    #[test]
    fn update_boundaries() {
        let ms = 1_000_000;
        assert_eq!(last_boundary(100 * ms, 1000 * ms, 1050 * ms), None);
        assert_eq!(last_boundary(100 * ms, 1050 * ms, 1130 * ms), Some(0.03));
        assert_eq!(last_boundary(100 * ms, 1050 * ms, 1100 * ms), Some(0.0));
        assert_eq!(last_boundary(100 * ms, 1100 * ms, 1150 * ms), None, "(t0, t1]");
        assert_eq!(last_boundary(100 * ms, 1050 * ms, 1420 * ms), Some(0.02), "the last one");
        assert_eq!(last_boundary(0, 1000 * ms, 1001 * ms), Some(0.0));
    }

    #[test]
    fn nvml_bus_ids_and_uuids() {
        assert_eq!(nvml_bus_id("0000:b1:00.0"), "00000000:B1:00.0");
        assert_ne!(gpu_uuid("0000:19:00.0"), gpu_uuid("0000:3b:00.0"));
    }
}
