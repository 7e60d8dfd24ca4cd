//! The NVIDIA GPU profiles as data: each node's GPU model and PCI places, and the latency of the
//! mock NVML library's calls. Of the simulator only its error type is used here, so the options,
//! the profiles and the builder can all name them.

use crate::error::SimError;

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
    pub(crate) fn file_text(self) -> String {
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
