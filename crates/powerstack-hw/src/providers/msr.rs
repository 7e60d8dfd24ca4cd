//! RAPL model-specific registers (stub: being written).

use crate::error::HwError;
use crate::provider::{Probe, ProbeContext};

/// Register-level access to MSRs, so tests can replace the device files with a full register model.
pub trait MsrIo: Send {
    /// Reads the 64-bit register `addr` on logical CPU `cpu`.
    fn read(&mut self, cpu: u32, addr: u32) -> Result<u64, HwError>;
    /// Writes the 64-bit register `addr` on logical CPU `cpu`.
    fn write(&mut self, cpu: u32, addr: u32, value: u64) -> Result<(), HwError>;
    /// Whether the registers are backed by plain files (a simulated image) rather than the msr
    /// driver: in a file, registers closer than 8 bytes overlap, so only the energy and unit
    /// registers are meaningful.
    fn is_file_image(&self) -> bool {
        false
    }
}

/// Probes `/dev/cpu/N/msr_safe` and `/dev/cpu/N/msr`.
pub fn probe(_ctx: &ProbeContext<'_>) -> Probe {
    Probe::default()
}
