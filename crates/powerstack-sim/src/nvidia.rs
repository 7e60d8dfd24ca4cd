//! The NVIDIA GPU profiles (nvidia-4gpu, nvidia-8gpu): their GPUs as data, the PCI devices, the
//! mock NVML library's state directory and the counters the simulator keeps in it.

use std::path::{Path, PathBuf};

use powerstack_model::{DomainId, DomainKind};

use crate::error::SimError;
use crate::fsutil::{OutFile, mkdirs};
use crate::io::{CapRole, Control, CtlKind, Device, Io};
use crate::msr::Shared;
use crate::options::SimOptions;
use crate::profile::Profile;
use crate::tree::{B, ci, pci_device};

/// One GPU of a node, in PCI order: its address, the bridge it hangs from (under
/// `sys/devices/`) and its NUMA node.
pub(crate) struct PciGpu {
    pub address: &'static str,
    pub parent: &'static str,
    pub numa: u32,
}

/// What an NVIDIA GPU node has: the GPU model and where each GPU sits.
pub(crate) struct NvidiaNode {
    /// The product name NVML reports (`gpuN/name`).
    pub name: &'static str,
    /// PCI device id and subsystem device id (vendor `0x10de`).
    pub device_id: &'static str,
    pub subsystem_device: &'static str,
    /// The GPUs in PCI order: `gpu-N` of the model and of the product is `gpus[N]`.
    pub gpus: &'static [PciGpu],
    /// The GPU (index into `gpus`) at each NVML index. Deliberately not PCI order, so that a
    /// reader numbering GPUs by NVML index gets them wrong.
    pub nvml_order: &'static [u32],
    /// The model: (idle, max) W of each GPU, capped by its `power_limit_mw`.
    pub watts: (f64, f64),
    /// The power limit's range, mW; the default is the maximum.
    pub limit_mw: (u64, u64),
}

impl NvidiaNode {
    /// The number of GPUs.
    pub fn count(&self) -> u32 {
        self.gpus.len() as u32
    }
}

const fn gpu(address: &'static str, parent: &'static str, numa: u32) -> PciGpu {
    PciGpu { address, parent, numa }
}

/// nvidia-4gpu: four H100 SXM, two per socket.
pub(crate) static NVIDIA_4GPU: NvidiaNode = NvidiaNode {
    name: "NVIDIA H100 80GB HBM3",
    device_id: "0x2330",
    subsystem_device: "0x16c1",
    gpus: &[
        gpu("0000:17:00.0", "pci0000:16/0000:16:01.0", 0),
        gpu("0000:31:00.0", "pci0000:30/0000:30:01.0", 0),
        gpu("0000:b1:00.0", "pci0000:b0/0000:b0:01.0", 1),
        gpu("0000:ca:00.0", "pci0000:c9/0000:c9:01.0", 1),
    ],
    nvml_order: &[2, 0, 3, 1],
    watts: (70.0, 700.0),
    limit_mw: (200_000, 700_000),
};

/// nvidia-8gpu: an HGX H200 board, four GPUs per socket, at the bus numbers of a typical
/// two-socket HGX server.
pub(crate) static NVIDIA_8GPU: NvidiaNode = NvidiaNode {
    name: "NVIDIA H200",
    device_id: "0x2335",
    subsystem_device: "0x18be",
    gpus: &[
        gpu("0000:19:00.0", "pci0000:18/0000:18:01.0", 0),
        gpu("0000:3b:00.0", "pci0000:3a/0000:3a:01.0", 0),
        gpu("0000:4c:00.0", "pci0000:4b/0000:4b:01.0", 0),
        gpu("0000:5d:00.0", "pci0000:5c/0000:5c:01.0", 0),
        gpu("0000:9b:00.0", "pci0000:9a/0000:9a:01.0", 1),
        gpu("0000:bb:00.0", "pci0000:ba/0000:ba:01.0", 1),
        gpu("0000:cb:00.0", "pci0000:ca/0000:ca:01.0", 1),
        gpu("0000:db:00.0", "pci0000:da/0000:da:01.0", 1),
    ],
    nvml_order: &[5, 2, 7, 0, 4, 1, 6, 3],
    watts: (75.0, 700.0),
    limit_mw: (200_000, 700_000),
};

/// How long one mock NVML call takes: 63 calls in 64 last between 0.9 and 1.1 times the median,
/// one in 64 between 0.9 times the tail and the tail (when the tail is the longer). Zero: no
/// latency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallLatency {
    /// The median duration, µs.
    pub median_us: u32,
    /// The longest duration, µs (the p99 is near it).
    pub tail_us: u32,
}

impl CallLatency {
    /// The mock library's file format: `"<median> <tail>\n"`.
    fn file_text(self) -> String {
        format!("{} {}\n", self.median_us, self.tail_us)
    }
}

/// How long the mock NVML library's calls take. [`crate::SimNode::create`] writes it to the state
/// directory (`latency_us/energy`, `latency_us/limit`, `latency_us/power`), where the library
/// reads it at `nvmlInit`; edit those files to change it for a later `nvmlInit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NvmlLatency {
    /// `nvmlDeviceGetTotalEnergyConsumption`.
    pub energy: CallLatency,
    /// The power-limit reads (management limit, enforced limit, default, constraints).
    pub limit: CallLatency,
    /// `nvmlDeviceGetPowerUsage`.
    pub power: CallLatency,
}

impl NvmlLatency {
    /// As measured on an H200 (driver 580): the energy counter 2.85 ms median, 15 ms tail
    /// (minimum 2.6 ms), the limit 142 µs (300 µs tail); the power reading about 2 µs, which the
    /// library's own file read already costs, so no sleep.
    pub const H200: NvmlLatency = NvmlLatency {
        energy: CallLatency { median_us: 2850, tail_us: 15_000 },
        limit: CallLatency { median_us: 142, tail_us: 300 },
        power: CallLatency { median_us: 0, tail_us: 0 },
    };

    /// Every call as fast as the library can answer.
    pub const NONE: NvmlLatency = NvmlLatency {
        energy: CallLatency { median_us: 0, tail_us: 0 },
        limit: CallLatency { median_us: 0, tail_us: 0 },
        power: CallLatency { median_us: 0, tail_us: 0 },
    };
}

impl Default for NvmlLatency {
    /// [`NvmlLatency::H200`].
    fn default() -> Self {
        NvmlLatency::H200
    }
}

impl std::str::FromStr for NvmlLatency {
    type Err = SimError;

    /// `h200` ([`NvmlLatency::H200`]) or `off` ([`NvmlLatency::NONE`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "h200" => Ok(NvmlLatency::H200),
            "off" => Ok(NvmlLatency::NONE),
            other => Err(SimError::UnknownNvmlLatency(other.to_string())),
        }
    }
}

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

/// The counters of one GPU in the mock NVML state (`var/lib/powerstack-sim/nvml/gpuN`).
#[derive(Debug)]
pub(crate) struct NvmlGpu {
    pub comp: usize,
    /// `energy_mj`: mJ since "driver load".
    pub energy: OutFile,
    /// `power_mw`: the power over the last step, mW.
    pub power: OutFile,
    /// mJ the counter showed when the simulation (re)started counting.
    pub offset_mj: u64,
}

impl NvmlGpu {
    /// Writes `power_mw` (the power over the last step) and, when the step crossed an update
    /// boundary `back_s` seconds before its end, `energy_mj` as it was at that boundary.
    pub fn update(&mut self, s: &Shared, back_s: Option<f64>) -> Result<(), SimError> {
        let (watts, joules) = s.comps.get(self.comp).map_or((0.0, 0.0), |c| (c.power, c.energy));
        if let Some(back) = back_s {
            // To the µJ first, so that float noise cannot take a whole mJ off.
            let uj = ((joules - watts * back) * 1e6).round().max(0.0) as u64;
            self.energy.set(&format!("{}\n", self.offset_mj.saturating_add(uj / 1000)))?;
        }
        self.power.set(&format!("{}\n", (watts * 1e3).round().max(0.0) as u64))
    }
}

/// The time from the last update boundary (a multiple of `period_ns`) in `(t0, t1]` to `t1`, in
/// seconds; `None` when there is none. A period of 0 updates at every step (`Some(0.0)`).
pub(crate) fn last_boundary(period_ns: u64, t0: u64, t1: u64) -> Option<f64> {
    if period_ns == 0 {
        return Some(0.0);
    }
    let b1 = t1 / period_ns;
    (b1 > t0 / period_ns).then(|| (t1 - b1 * period_ns) as f64 / 1e9)
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
