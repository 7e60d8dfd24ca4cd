//! The mock NVML library's state the simulator keeps current: each GPU's counter files, and when
//! an update boundary falls in a step.

use crate::error::SimError;
use crate::fsutil::OutFile;
use crate::msr::Shared;

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
