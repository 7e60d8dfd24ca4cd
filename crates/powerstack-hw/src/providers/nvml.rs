//! NVIDIA GPUs through NVML (`libnvidia-ml.so.1`), loaded at run time with `nvml-wrapper`.
//!
//! Nothing from NVIDIA is needed to build; a node without the driver simply has no NVIDIA
//! domains. Which library is loaded:
//!
//! 1. the one given explicitly ([`NvmlOptions::library`], `--nvml-lib`);
//! 2. on the running system (`/`), the loader's `libnvidia-ml.so.1`, and only when NVIDIA hardware
//!    is present (`/proc/driver/nvidia`, or a PCI device of vendor `0x10de`);
//! 3. under another root, `<root>/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1` or
//!    `<root>/usr/lib64/libnvidia-ml.so.1` when there (a simulated node installs the mock NVML
//!    library, `powerstack-mock-nvml`, there);
//! 4. else none. A missing or failing library is a warning only when NVIDIA hardware is present or
//!    the library was named explicitly.
//!
//! Domains: one `gpu-N` per NVML device, numbered in **PCI bus order** (not NVML index order),
//! attached to the socket of `/sys/bus/pci/devices/<address>/numa_node`. Each is measured by the
//! total energy counter (mJ since the driver was loaded, Volta and later) when supported, else by
//! the power usage (mW). The energy counter restarts when the driver is reloaded: a decrease is a
//! reset, which the counter extension handles.
//!
//! Limits: one `cap` limit, the power management limit, with its constraints (min, max) and
//! default. NVML has no lock; a write without root fails with a permission error. Reads keep the
//! NVML handle open and make one library call per GPU.
//!
//! Pace: the total-energy counter moves in steps ([`UPDATE_PERIOD`], measured on an H200 with
//! driver 580) and reading it takes milliseconds (2.85 ms median, 15 ms at the 99th percentile
//! there), so the provider is [`Refresh::Stepped`] and splits into one provider per GPU, which a
//! sampler reads concurrently.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};
use nvml_wrapper_sys::bindings::nvmlDevice_t;
use powerstack_model::{
    CounterSpec, DomainId, DomainInfo, DomainKind, LimitWrite, Measurement, PowerLimit, RawEnergy,
};

use crate::error::{HwError, Warning};
use crate::file::{list_dir, read_trimmed};
use crate::numa;
use crate::provider::{Probe, Provider, Reading, Refresh};
use crate::providers::ProbeContext;
use crate::root::Root;
use crate::topology::CpuTopology;

/// The provider's name.
pub const NAME: &str = "nvml";

/// The NVML library's file name.
pub const LIB_NAME: &str = "libnvidia-ml.so.1";

/// Where the library is looked for under a root other than `/`, in this order.
pub const LIB_DIRS: [&str; 2] = ["/usr/lib/x86_64-linux-gnu", "/usr/lib64"];

/// The `nvml` provider's options (see [`crate::ProviderOptions`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NvmlOptions {
    /// The NVML library to load instead of the one found by the rules of this module's
    /// documentation (`--nvml-lib`).
    pub library: Option<PathBuf>,
}

/// NVIDIA's PCI vendor id, as sysfs writes it.
const NVIDIA_VENDOR: &str = "0x10de";

/// How often NVML's total-energy counter moves (the median gap between its changes on an H200,
/// driver 580).
pub const UPDATE_PERIOD: Duration = Duration::from_millis(100);

/// Milliwatts per watt.
const MILLI: f64 = 1e3;

/// The library to load under `root`, by the rules in the module documentation (`None`: none).
pub fn library_path(root: &Root, explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if root.is_system() {
        return Some(PathBuf::from(LIB_NAME));
    }
    LIB_DIRS.iter().map(|d| root.path(d).join(LIB_NAME)).find(|p| p.exists())
}

/// Whether the node has NVIDIA hardware: the driver's `/proc/driver/nvidia`, or a PCI device of
/// NVIDIA's vendor id.
pub fn nvidia_present(root: &Root) -> bool {
    if root.path("/proc/driver/nvidia").exists() {
        return true;
    }
    list_dir(&root.path("/sys/bus/pci/devices")).unwrap_or_default().iter().any(|(_, dev)| {
        read_trimmed(&dev.join("vendor"), "pci vendor")
            .is_ok_and(|v| v.eq_ignore_ascii_case(NVIDIA_VENDOR))
    })
}

/// A PCI address in sysfs form (`0000:17:00.0`, lower case, 4-digit domain) and its numeric sort
/// key, from NVML's bus id (`00000000:17:00.0`).
fn sysfs_address(bus_id: &str) -> Option<((u32, u32, u32, u32), String)> {
    let mut parts = bus_id.trim().split(':');
    let (domain, bus, rest) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (dev, func) = rest.split_once('.')?;
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    let key = (hex(domain)?, hex(bus)?, hex(dev)?, hex(func)?);
    let (d, b, v, f) = key;
    Some((key, format!("{d:04x}:{b:02x}:{v:02x}.{f:x}")))
}

/// An NVML device handle, kept for the life of the provider's [`Nvml`].
#[derive(Clone, Copy, Debug)]
struct Handle(nvmlDevice_t);

// SAFETY: an NVML device handle is an opaque token that NVML accepts from any thread (NVML is
// thread-safe, and nvml-wrapper declares its `Device` Send and Sync); it is only ever passed back
// to the library that issued it, which the provider owns alongside.
unsafe impl Send for Handle {}

/// One measured GPU.
#[derive(Debug)]
struct Gpu {
    handle: Handle,
    /// Measured by the energy counter (else by power usage).
    energy: bool,
    /// The PCI address, sysfs form, for messages.
    address: String,
}

/// The NVML provider: the loaded library and its GPUs, in catalog order.
pub struct NvmlGpus {
    domains: Vec<DomainInfo>,
    gpus: Vec<Gpu>,
    /// Declared last: dropped (shut down and unloaded) after everything that refers to it; shared
    /// by the per-GPU providers [`Provider::split`] makes, the last of which shuts it down.
    nvml: Arc<Nvml>,
}

/// What the hardware-layer error for an NVML error on a GPU is.
fn hw_error(address: &str, e: NvmlError) -> HwError {
    let path = PathBuf::from(format!("NVIDIA GPU {address}"));
    match e {
        NvmlError::GpuLost => HwError::Vanished { path },
        NvmlError::NoPermission => HwError::PermissionDenied { path, hint: "nvml" },
        e => HwError::Io { path, source: std::io::Error::other(format!("NVML: {e}")) },
    }
}

/// `Ok(None)` for NVML's "not supported", the value otherwise.
fn supported<T>(r: Result<T, NvmlError>) -> Result<Option<T>, NvmlError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(NvmlError::NotSupported) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads a GPU's `cap` limit; `None` when the GPU has no settable power limit.
fn read_cap(dev: &Device<'_>) -> Result<Option<PowerLimit>, NvmlError> {
    let Some(limit) = supported(dev.power_management_limit())? else { return Ok(None) };
    let range = supported(dev.power_management_limit_constraints())?;
    let default = supported(dev.power_management_limit_default())?;
    let watts = |mw: u32| f64::from(mw) / MILLI;
    Ok(Some(PowerLimit {
        name: "cap".to_string(),
        limit_watts: Some(watts(limit)),
        min_watts: range.as_ref().map(|r| watts(r.min_limit)),
        max_watts: range.as_ref().map(|r| watts(r.max_limit)),
        default_watts: default.map(watts),
        time_window_s: None,
        time_windows: None,
        enabled: Some(true),
        locked: false,
    }))
}

/// A GPU found during the probe, before numbering.
struct Candidate {
    key: (u32, u32, u32, u32),
    gpu: Gpu,
    info: DomainInfo,
}

/// GPU `index` of an initialised library, when it can be measured; else `None` with a warning.
fn candidate(
    nvml: &Nvml,
    index: u32,
    root: &Root,
    topology: &CpuTopology,
    warnings: &mut Vec<Warning>,
) -> Option<Candidate> {
    let dev = match nvml.device_by_index(index) {
        Ok(d) => d,
        Err(e) => {
            warnings.push(Warning::unreadable(
                NAME,
                format!("NVIDIA GPU with NVML index {index} is not measured: {e}"),
            ));
            return None;
        }
    };
    let bus_id = match dev.pci_info() {
        Ok(p) => p.bus_id,
        Err(e) => {
            warnings.push(Warning::unreadable(
                NAME,
                format!(
                    "NVIDIA GPU with NVML index {index} has no PCI address ({e}); not measured"
                ),
            ));
            return None;
        }
    };
    let Some((key, address)) = sysfs_address(&bus_id) else {
        warnings.push(Warning::unreadable(
                NAME,
                format!("NVIDIA GPU with NVML index {index} has a malformed PCI bus id {bus_id:?}; not measured"),
            ));
        return None;
    };
    let energy = match dev.total_energy_consumption() {
        Ok(_) => true,
        Err(energy_err) => match dev.power_usage() {
            Ok(_) => {
                if !matches!(energy_err, NvmlError::NotSupported) {
                    warnings.push(Warning::new(
                            NAME,
                            format!("NVIDIA GPU {address}: energy counter unreadable ({energy_err}); measured by power usage"),
                        ));
                }
                false
            }
            Err(power_err) => {
                warnings.push(Warning::unreadable(
                        NAME,
                        format!("NVIDIA GPU {address} is not measured: energy: {energy_err}; power: {power_err}"),
                    ));
                return None;
            }
        },
    };
    let mut limits = Vec::new();
    match read_cap(&dev) {
        Ok(Some(l)) => limits.push(l),
        Ok(None) => {}
        Err(e) => warnings.push(Warning::new(
            NAME,
            format!("NVIDIA GPU {address}: power limit not reported: {e}"),
        )),
    }
    let name = dev.name().ok().filter(|n| !n.is_empty());
    let source = match &name {
        Some(n) => format!("{address} ({n})"),
        None => address.clone(),
    };
    let socket =
        numa::socket_of_device(root, topology, &root.path("/sys/bus/pci/devices").join(&address));
    // SAFETY: reading the handle out of a `Device` of this `nvml`, to rebuild the same
    // `Device` on later calls; it stays valid until `nvml` is shut down.
    let handle = Handle(unsafe { dev.handle() });
    Some(Candidate {
        key,
        gpu: Gpu { handle, energy, address },
        info: DomainInfo {
            id: DomainId::new(DomainKind::Gpu, 0),
            provider: NAME,
            source,
            measurement: if energy {
                Measurement::Energy(CounterSpec::non_wrapping(1e-3))
            } else {
                Measurement::Power
            },
            limits,
            socket,
            label: name,
        },
    })
}

impl NvmlGpus {
    /// Lists the GPUs of an initialised library. `None` when none is usable; the warnings say
    /// why.
    fn open(nvml: Nvml, root: &Root, topology: &CpuTopology) -> (Option<NvmlGpus>, Vec<Warning>) {
        let mut warnings = Vec::new();
        let count = match nvml.device_count() {
            Ok(c) => c,
            Err(e) => {
                warnings.push(Warning::unreadable(
                    NAME,
                    format!("cannot count the NVIDIA GPUs: {e}; none is measured"),
                ));
                return (None, warnings);
            }
        };
        let mut found = Vec::new();
        for index in 0..count {
            found.extend(candidate(&nvml, index, root, topology, &mut warnings));
        }
        if found.is_empty() {
            return (None, warnings);
        }
        found.sort_by_key(|c| c.key);
        let mut domains = Vec::with_capacity(found.len());
        let mut gpus = Vec::with_capacity(found.len());
        for (i, mut c) in found.into_iter().enumerate() {
            c.info.id = DomainId::new(DomainKind::Gpu, u32::try_from(i).unwrap_or(u32::MAX));
            domains.push(c.info);
            gpus.push(c.gpu);
        }
        (Some(NvmlGpus { domains, gpus, nvml: Arc::new(nvml) }), warnings)
    }

    /// The NVML device of GPU `i` (catalog order).
    fn device(&self, i: usize) -> Option<Device<'_>> {
        let gpu = self.gpus.get(i)?;
        // SAFETY: the handle was issued by `self.nvml` (see `open`), which is still initialised:
        // it is shut down only when `self` is dropped.
        Some(unsafe { Device::new(gpu.handle.0, &self.nvml) })
    }

    /// Re-reads the `cap` limit of GPU `i` into the catalog.
    fn reread_cap(&mut self, i: usize) -> Result<(), HwError> {
        let Some(dev) = self.device(i) else { return Ok(()) };
        let cap = read_cap(&dev).map_err(|e| hw_error(&self.gpus[i].address, e))?;
        let limits = &mut self.domains[i].limits;
        limits.retain(|l| l.name != "cap");
        limits.extend(cap);
        Ok(())
    }
}

impl Provider for NvmlGpus {
    fn name(&self) -> &'static str {
        NAME
    }

    fn domains(&self) -> &[DomainInfo] {
        &self.domains
    }

    fn refresh(&self) -> Refresh {
        Refresh::Stepped { period: UPDATE_PERIOD }
    }

    fn split(&mut self) -> Vec<Box<dyn Provider>> {
        if self.gpus.len() < 2 {
            return Vec::new();
        }
        let (domains, gpus) = (std::mem::take(&mut self.domains), std::mem::take(&mut self.gpus));
        domains
            .into_iter()
            .zip(gpus)
            .map(|(info, gpu)| {
                let nvml = Arc::clone(&self.nvml);
                Box::new(NvmlGpus { domains: vec![info], gpus: vec![gpu], nvml })
                    as Box<dyn Provider>
            })
            .collect()
    }

    fn read(&mut self, out: &mut [Reading]) {
        for (i, reading) in out.iter_mut().enumerate().take(self.gpus.len()) {
            let gpu = &self.gpus[i];
            // SAFETY: as in `device`: the handle comes from `self.nvml`, alive for `self`.
            let dev = unsafe { Device::new(gpu.handle.0, &self.nvml) };
            *reading = if gpu.energy {
                match dev.total_energy_consumption() {
                    Ok(mj) => Reading::Energy(RawEnergy::new(mj)),
                    Err(e) => Reading::Failed(hw_error(&gpu.address, e)),
                }
            } else {
                match dev.power_usage() {
                    Ok(mw) => Reading::Power(f64::from(mw) / MILLI),
                    Err(e) => Reading::Failed(hw_error(&gpu.address, e)),
                }
            };
        }
    }

    fn refresh_limits(&mut self) -> Vec<Warning> {
        let mut warnings = Vec::new();
        for i in 0..self.gpus.len() {
            if let Err(e) = self.reread_cap(i) {
                warnings.push(Warning::new(
                    NAME,
                    format!("{}: {e}; keeping the last known cap", self.domains[i].id),
                ));
            }
        }
        warnings
    }

    fn write_limit(&mut self, index: usize, write: &LimitWrite) -> Result<(), HwError> {
        let Some(info) = self.domains.get(index) else {
            return Err(HwError::Unsupported { provider: NAME, what: format!("domain #{index}") });
        };
        let what = format!("{} {}", info.id, write.constraint);
        let Some(cap) = info.limit("cap").filter(|_| write.constraint == "cap") else {
            return Err(HwError::Unsupported { provider: NAME, what });
        };
        if write.time_window_s.is_some() {
            return Err(HwError::Unsupported {
                provider: NAME,
                what: format!("{what} time window"),
            });
        }
        if write.enabled == Some(false) {
            return Err(HwError::Unsupported { provider: NAME, what: format!("disabling {what}") });
        }
        let value = format!("{} W", write.limit_watts);
        let mw = (write.limit_watts * MILLI).round();
        if !(0.0..=f64::from(u32::MAX)).contains(&mw) {
            return Err(HwError::Refused { what, value, detail: "not a valid power limit".into() });
        }
        let range = match (cap.min_watts, cap.max_watts) {
            (Some(lo), Some(hi)) => format!(" ({lo} W to {hi} W)"),
            _ => String::new(),
        };
        let address = self.gpus[index].address.clone();
        let Some(mut dev) = self.device(index) else {
            return Err(HwError::Unsupported { provider: NAME, what });
        };
        match dev.set_power_management_limit(mw as u32) {
            Ok(()) => {}
            Err(NvmlError::NoPermission) => {
                return Err(HwError::Refused {
                    what,
                    value,
                    detail:
                        "NVML: insufficient permissions: run as root to change a GPU power limit"
                            .into(),
                });
            }
            Err(NvmlError::InvalidArg) => {
                return Err(HwError::Refused {
                    what,
                    value,
                    detail: format!(
                        "NVML: invalid argument: outside the GPU's accepted range{range}"
                    ),
                });
            }
            Err(NvmlError::NotSupported) => {
                return Err(HwError::Unsupported { provider: NAME, what });
            }
            Err(e) => return Err(hw_error(&address, e)),
        }
        self.reread_cap(index)
    }
}

/// Probes NVML (see the module documentation for which library is loaded).
pub fn probe(ctx: &ProbeContext<'_>) -> Probe {
    let explicit = ctx.options.nvml.library.as_deref();
    let present = nvidia_present(ctx.root);
    let no_gpu = || {
        Probe::absent(format!(
            "no NVIDIA GPU (no PCI device of vendor {NVIDIA_VENDOR} under {}, no {})",
            ctx.root.path("/sys/bus/pci/devices").display(),
            ctx.root.path("/proc/driver/nvidia").display()
        ))
    };
    let Some(lib) = library_path(ctx.root, explicit) else {
        if !present {
            return no_gpu();
        }
        return Probe::none(vec![Warning::new(
            NAME,
            format!(
                "NVIDIA GPUs are present but {LIB_NAME} is not under {}/usr/lib/x86_64-linux-gnu or {}/usr/lib64; they are not measured (install the NVIDIA driver, or give the library's path)",
                ctx.root.base().display(),
                ctx.root.base().display()
            ),
        )]);
    };
    if explicit.is_none() && ctx.root.is_system() && !present {
        return no_gpu();
    }
    let nvml = match Nvml::builder().lib_path(lib.as_os_str()).init() {
        Ok(n) => n,
        Err(e) => return Probe::none(vec![init_warning(&lib, e)]),
    };
    Probe::opened(NvmlGpus::open(nvml, ctx.root, ctx.topology), || {
        format!("NVML ({}) reports no GPU", lib.display())
    })
}

/// The warning for a library that could not be loaded or initialised.
fn init_warning(lib: &Path, e: NvmlError) -> Warning {
    let lib = lib.display();
    match e {
        NvmlError::LibloadingError(e) => Warning::new(
            NAME,
            format!(
                "cannot load the NVML library {lib}: {e}; NVIDIA GPUs are not measured (install the NVIDIA driver, or give the library's path)"
            ),
        ),
        NvmlError::DriverNotLoaded => Warning::new(
            NAME,
            format!(
                "{lib} is loaded but the NVIDIA driver is not running; NVIDIA GPUs are not measured"
            ),
        ),
        NvmlError::NoPermission => Warning::unreadable(
            NAME,
            format!(
                "NVML ({lib}) may not talk to the NVIDIA driver: run as root, or grant access to /dev/nvidia*"
            ),
        ),
        e => Warning::new(
            NAME,
            format!("cannot initialise NVML ({lib}): {e}; NVIDIA GPUs are not measured"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_nvml_bus_ids_into_sysfs_addresses() {
        assert_eq!(sysfs_address("00000000:17:00.0").unwrap().1, "0000:17:00.0");
        assert_eq!(sysfs_address("00000000:B3:00.0").unwrap().1, "0000:b3:00.0");
        assert_eq!(sysfs_address("00010000:01:1F.7").unwrap().1, "10000:01:1f.7");
        assert!(
            sysfs_address("00000000:17:00.0").unwrap().0
                < sysfs_address("00000000:B3:00.0").unwrap().0
        );
        assert!(sysfs_address("garbage").is_none());
        assert!(sysfs_address("0000:17:00").is_none());
    }

    #[test]
    fn picks_the_library_by_the_documented_rules() {
        let explicit = Path::new("/opt/lib/libnvidia-ml.so.1");
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        assert_eq!(library_path(&root, Some(explicit)).as_deref(), Some(explicit));
        assert_eq!(library_path(&Root::system(), None), Some(PathBuf::from(LIB_NAME)));
        assert_eq!(library_path(&root, None), None);
        let lib64 = root.path("/usr/lib64");
        std::fs::create_dir_all(&lib64).unwrap();
        std::fs::write(lib64.join(LIB_NAME), "").unwrap();
        assert_eq!(library_path(&root, None), Some(lib64.join(LIB_NAME)));
        assert!(!nvidia_present(&root));
    }
}
