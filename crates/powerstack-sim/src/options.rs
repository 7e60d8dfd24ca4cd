//! [`SimOptions`]: what a simulated node is asked to be, beyond its profile.

use std::path::PathBuf;

use crate::error::SimError;
use crate::faults::PmFaults;
use crate::nvidia_data::NvmlLatency;
use crate::profile::LoadPattern;

/// Options of a simulated node. Options that do not apply to a profile are ignored.
#[derive(Clone, Debug, PartialEq)]
pub struct SimOptions {
    /// The steady load, 0 (idle) to 1 (full power). Default 0.5.
    pub load: f64,
    /// How the load varies with time. Default steady.
    pub pattern: LoadPattern,
    /// Number devices differently from the usual layout, so that readers keying on indices break:
    /// intel-2s numbers psys `intel-rapl:0`, package-1 `:1`, package-0 `:2` and adds a `core`
    /// subzone at `:0` (dram moves to `:1`); amd-2s swaps the package zones; hwmon-node makes the GPU
    /// `hwmon0`, adds an `nvme` chip as `hwmon1` and the power meter becomes `hwmon2`.
    pub shuffle_indices: bool,
    /// intel-2s: add an `intel-rapl-mmio:0` zone named `package-0` mirroring package-0's counter.
    pub mmio_duplicate: bool,
    /// intel-2s: no dram zones, and the DRAM energy register of the MSR image reads 0.
    pub omit_dram: bool,
    /// nvidia-4gpu, nvidia-8gpu: the mock NVML library (`libpowerstack_mock_nvml.so`, built by
    /// `cargo build -p powerstack-mock-nvml`) that the root's `libnvidia-ml.so.1` links to. When
    /// `None`, [`crate::SimNode::create`] looks for it at `$POWERSTACK_MOCK_NVML` (the file, or a
    /// directory holding it), then next to the running executable, then in that directory's parent
    /// (test binaries live in `target/debug/deps`). After `create` it holds the path linked to; it
    /// is not stored in the root (`open` needs no library), so a reopened node has `None`.
    pub nvml_library: Option<PathBuf>,
    /// nvidia-4gpu, nvidia-8gpu: how long the mock NVML library's calls take (written to its state
    /// directory at create). Default [`NvmlLatency::H200`], what a real H200 takes.
    pub nvml_latency: NvmlLatency,
    /// nvidia-4gpu, nvidia-8gpu: the period of the GPUs' energy counters, ms. The simulator
    /// writes each `energy_mj` only when the monotonic clock crosses a multiple of it, holding the
    /// exact energy at that moment, as the driver does (an H200's counter moves every 100 ms).
    /// 0: at every step. Default 100; at most 60000.
    pub nvml_update_ms: u32,
    /// cray-ex, amd-mi250x: faults of the pm_counters controller (torn writes, `freshness` bumped
    /// mid-update, late updates, clock drift). Default: none.
    pub pm_faults: PmFaults,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            load: 0.5,
            pattern: LoadPattern::Steady,
            shuffle_indices: false,
            mmio_duplicate: false,
            omit_dram: false,
            nvml_library: None,
            nvml_latency: NvmlLatency::default(),
            nvml_update_ms: NVML_UPDATE_MS,
            pm_faults: PmFaults::default(),
        }
    }
}

/// The default [`SimOptions::nvml_update_ms`]: an H200's.
pub(crate) const NVML_UPDATE_MS: u32 = 100;

impl SimOptions {
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        if !self.load.is_finite() || !(0.0..=1.0).contains(&self.load) {
            return Err(SimError::InvalidLoad(self.load));
        }
        self.pm_faults.validate()?;
        if self.nvml_update_ms > 60_000 {
            return Err(SimError::InvalidOption(format!(
                "nvml_update_ms {}: at most 60000 (0 updates at every step)",
                self.nvml_update_ms
            )));
        }
        Ok(())
    }
}
