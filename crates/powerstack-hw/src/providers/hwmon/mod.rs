//! Linux hwmon (`/sys/class/hwmon`): ACPI power meters, GPU drivers and AMD socket energy drivers.
//!
//! Chips are identified by their `name` attribute and their device, never by their `hwmonN` number
//! (unstable across boots). A chip's attributes are in `hwmonN/` or, for some old drivers, in
//! `hwmonN/device/`; both are looked at, `hwmonN/` first.
//!
//! Channels: `powerK_average` (else `powerK_input`) in µW, and `energyK_input`, a cumulative 64-bit
//! counter in µJ. Channels whose `powerK_enable` / `energyK_enable` reads 0 are skipped.
//!
//! | chip `name` | domain | channel |
//! |---|---|---|
//! | `power_meter` (ACPI power meter) | node | lowest power channel, else lowest energy channel |
//! | `amdgpu` | gpu-N | `power1` (average, else input), else the lowest channel |
//! | `i915`, `xe` | gpu-N | `energy1_input`, else the lowest energy, else power channel |
//! | `amd_energy`, `zenergy` | package-N | each `energyK_input` labelled `Esocket<N>` |
//!
//! GPUs are numbered in PCI address order across all GPU chips that have a usable channel, and
//! attached to the socket of their NUMA node. Other chips with power or energy channels are
//! reported as not mapped; chips without (coretemp, nvme) are ignored.
//!
//! Limits, all reported as the `cap` limit, in µW (0 means uncapped), locked when the file has no
//! write permission bit:
//!
//! - `powerK_cap` of the measured channel, with `_cap_min`, `_cap_max` and `_cap_default` (the
//!   factory default);
//! - on `i915` and `xe`, `powerK_max` (their PL1, 0 = disabled) with `powerK_max_interval` (ms) as
//!   the time window and `powerK_rated_max` (the card's rated TDP) as the maximum and default.
//!
//! [`Provider::write_limit`] writes the `cap` constraint: the value in µW (rounded) with one plain
//! write to `powerK_cap` (`powerK_max` on i915/xe; the window to `powerK_max_interval` first), then
//! reads the limit back, since the driver may clamp or round what it accepts.
//!
//! Files: `chip` reads a chip and its channels, `cap` its limit files, `open` maps chips to
//! domains; this module is the provider that reads them and writes the caps.

use powerstack_model::{DomainInfo, LimitWrite, RawEnergy};

use crate::error::{HwError, Warning};
use crate::file::{self, AttrFile};
use crate::provider::{Probe, Provider, Reading};
use crate::providers::ProbeContext;

mod cap;
mod chip;
mod open;

use cap::{CapFiles, attr_name};

/// The provider's name.
pub const NAME: &str = "hwmon";

/// Where the chips are listed, as a system path.
pub const CLASS_DIR: &str = "/sys/class/hwmon";

/// Microwatts per watt and microjoules per joule.
const MICRO: f64 = 1e6;

/// One measured domain: the kept-open file it is read from.
#[derive(Debug)]
struct Slot {
    file: AttrFile,
    energy: bool,
    cap: Option<CapFiles>,
}

/// The hwmon provider.
#[derive(Debug)]
pub struct Hwmon {
    domains: Vec<DomainInfo>,
    slots: Vec<Slot>,
}

impl Provider for Hwmon {
    fn name(&self) -> &'static str {
        NAME
    }

    fn domains(&self) -> &[DomainInfo] {
        &self.domains
    }

    fn reopen_replaced(&mut self) -> Vec<usize> {
        file::reopen_replaced(self.slots.iter_mut().map(|s| &mut s.file))
    }

    fn read(&mut self, out: &mut [Reading]) {
        for (slot, reading) in self.slots.iter().zip(out.iter_mut()) {
            *reading = match slot.file.read_u64() {
                Ok(uj) if slot.energy => Reading::Energy(RawEnergy::new(uj)),
                Ok(uw) => Reading::Power(uw as f64 / MICRO),
                Err(e) => Reading::Failed(e),
            };
        }
    }

    fn write_limit(&mut self, index: usize, write: &LimitWrite) -> Result<(), HwError> {
        let Some(info) = self.domains.get(index) else {
            return Err(HwError::Unsupported { provider: NAME, what: format!("domain #{index}") });
        };
        let what = format!("{} {}", info.id, write.constraint);
        let Some(cap) = self.slots.get(index).and_then(|s| s.cap.clone()) else {
            return Err(HwError::Unsupported {
                provider: NAME,
                what: format!("{what} (its chip has no power cap attribute)"),
            });
        };
        if write.constraint != "cap" {
            return Err(HwError::Unsupported { provider: NAME, what });
        }
        std::fs::metadata(&cap.cap)
            .map_err(|e| HwError::from_io(&cap.cap, e, "hwmon power cap"))?;
        if !file::is_writable(&cap.cap) {
            return Err(HwError::Locked {
                what,
                why: format!("{} is read-only", cap.cap.display()),
            });
        }
        if !(write.limit_watts.is_finite() && write.limit_watts >= 0.0) {
            return Err(HwError::Refused {
                what,
                value: format!("{} W", write.limit_watts),
                detail: "not a power".into(),
            });
        }
        if write.enabled == Some(false) {
            return Err(HwError::Unsupported {
                provider: NAME,
                what: format!(
                    "disabling {what} ({} has no enable; a limit of 0 W is uncapped)",
                    attr_name(&cap.cap)
                ),
            });
        }
        let window_ms = match (write.time_window_s, &cap.interval) {
            (None, _) => None,
            (Some(s), Some(path)) if s.is_finite() && s >= 0.0 => {
                Some((path, (s * 1e3).round() as u64))
            }
            (Some(s), Some(_)) => {
                return Err(HwError::Refused {
                    what,
                    value: format!("{s} s"),
                    detail: "not a time window".into(),
                });
            }
            (Some(_), None) => {
                return Err(HwError::Unsupported {
                    provider: NAME,
                    what: format!(
                        "the time window of {what} ({} has no averaging window)",
                        attr_name(&cap.cap)
                    ),
                });
            }
        };
        // The window first, so the new limit never applies over a stale window.
        if let Some((path, ms)) = window_ms {
            CapFiles::write(path, &what, ms, "ms")?;
        }
        let uw = (write.limit_watts * MICRO).round() as u64;
        CapFiles::write(&cap.cap, &what, uw, "µW")?;
        // Read back: the driver may have clamped or rounded the value.
        let l = cap.read()?;
        let limits = &mut self.domains[index].limits;
        match limits.iter_mut().find(|x| x.name == "cap") {
            Some(x) => *x = l,
            None => limits.push(l),
        }
        Ok(())
    }

    fn refresh_limits(&mut self) -> Vec<Warning> {
        let mut warnings = Vec::new();
        for (slot, info) in self.slots.iter().zip(self.domains.iter_mut()) {
            let Some(cap) = &slot.cap else { continue };
            match cap.read() {
                Ok(l) => match info.limits.iter_mut().find(|x| x.name == "cap") {
                    Some(x) => *x = l,
                    None => info.limits.push(l),
                },
                Err(e) => warnings.push(Warning::new(
                    NAME,
                    format!("{}: {e}; keeping the last known cap", info.id),
                )),
            }
        }
        warnings
    }
}

/// Probes `/sys/class/hwmon`.
pub fn probe(ctx: &ProbeContext<'_>) -> Probe {
    Probe::opened(Hwmon::open(ctx.root, ctx.topology), || {
        format!(
            "no hwmon chip with a power or energy channel under {}",
            ctx.root.path(CLASS_DIR).display()
        )
    })
}
