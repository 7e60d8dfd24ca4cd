//! Simulated hardware roots for powerstack.
//!
//! A [`SimNode`] writes a complete fake hardware root (a directory standing for `/`) for one of
//! nine [`Profile`]s and animates it with a deterministic power model. The product reads these
//! trees with the same code it uses on real nodes (`--root DIR`), so every file follows the real
//! kernel ABI: powercap `intel-rapl` zones with 32-bit RAPL counters that wrap, an MSR image under
//! `dev/cpu/N/msr`, HPE Cray `pm_counters` updated at 10 Hz, hwmon chips, CPU topology, cpufreq
//! and cpuidle.
//!
//! - Files are updated in place (`pwrite` at offset 0, then `set_len`): a reader that keeps a
//!   descriptor open and re-reads it at offset 0 sees every update, never an empty file.
//! - Time is simulated and advanced explicitly ([`SimNode::advance`]); energies are exact, so tests
//!   compare what a reader computed with [`SimNode::true_energy_joules`]. In real time
//!   ([`SimNode::run_realtime_with`], from a thread of its own), a [`TruthLog`] records the truth
//!   at every step.
//! - Limits are read back from disk at each step, so writes by the product are honoured; the
//!   register model [`SimMsr`] implements the hardware layer's `MsrIo` with exact registers.
//! - Writable cpufreq, cpuidle and uncore attributes follow the kernel's rules
//!   ([`SimNode::enforce_sysfs_rules`], run by every [`SimNode::advance`]): a write the kernel would
//!   refuse is restored to the last accepted value, an accepted one is shown as the kernel shows
//!   it (uncore limits in 100 MHz steps, EPP pinned by the `performance` governor, ...).
//! - Real hardware's untidiness can be switched on: the pm_counters controller's faults
//!   ([`faults::PmFaults`]: torn files, `freshness` bumped mid-update, late updates, a drifting
//!   clock, seen under `advance` through [`SimNode::observe_pm_writes`]), NVML energy counters that
//!   move in 100 ms steps ([`SimOptions::nvml_update_ms`]) and NVML calls that take as long as a
//!   real GPU's ([`NvmlLatency`]).
//!
//! # Layouts (paths under the root)
//!
//! Every profile: `proc/cpuinfo` (online CPUs), `sys/devices/system/cpu/{online,offline,possible,
//! present}` (16 CPUs), `cpuN/topology/*`, `cpuN/cpufreq` → `cpufreq/policyN` (one policy per CPU,
//! with `related_cpus`/`affected_cpus`), `cpuN/cpuidle/stateM/*`,
//! `cpuidle/{current_driver,current_governor,available_governors}`, NUMA nodes
//! `sys/devices/system/node/nodeN/cpulist` (one per package; four on amd-mi250x).
//!
//! - **intel-2s**: `sys/devices/virtual/powercap/intel-rapl/intel-rapl:{0,1}` (package-0/1, each
//!   with an `:0` dram subzone) and `intel-rapl:2` (psys), linked from `sys/class/powercap`;
//!   `dev/cpu/N/msr` (one file per package, hard-linked); intel_pstate, intel_idle,
//!   `intel_uncore_frequency/package_0{0,1}_die_00`.
//! - **amd-2s**: `intel-rapl:{0,1}` (package, energy only) with `:0` core subzones; `dev/cpu/N/msr`
//!   (0xC0010299 fields and 0xC001029B exact; 0xC001029A overlaps them in a file: use [`SimMsr`]);
//!   amd-pstate-epp, acpi_idle.
//! - **cray-ex**: `sys/cray/pm_counters/*`; acpi-cpufreq, acpi_idle.
//! - **hwmon-node**: `sys/class/hwmon/hwmon0` → `sys/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI000D:00/
//!   hwmon/hwmon0` (`power_meter`), `hwmon1` → `sys/devices/pci0000:00/0000:00:03.1/0000:03:00.0/
//!   hwmon/hwmon1` (`amdgpu`), `sys/class/drm/card0`; acpi-cpufreq, acpi_idle.
//! - **nvidia-4gpu**: intel-2s, plus PCI GPUs `0000:{17,31,b1,ca}:00.0` (NUMA 0, 0, 1, 1) under
//!   `sys/devices/pci0000:XX/0000:XX:01.0/`, linked from `sys/bus/pci/devices`;
//!   `proc/driver/nvidia/version`; the mock NVML state `var/lib/powerstack-sim/nvml/{count,gpuN/*}`
//!   (NVML index order is not PCI order) and `usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1` → the
//!   mock library ([`SimOptions::nvml_library`]).
//! - **nvidia-8gpu**: as nvidia-4gpu, with eight H200 GPUs `0000:{19,3b,4c,5d}:00.0` (NUMA 0) and
//!   `0000:{9b,bb,cb,db}:00.0` (NUMA 1).
//! - **amd-mi250x**: cray-ex's `pm_counters` (accelK = MI250X module K), plus eight `amdgpu` GCDs
//!   `0000:{c1,c6,c9,ce,d1,d6,d9,de}:00.0` with hwmon chips numbered out of PCI order and
//!   `sys/class/drm/cardN`.
//! - **intel-hybrid**: one package, P-core threads 0-7 (siblings 0-1, 2-3, ...) and E-cores 8-15;
//!   `sys/devices/cpu_core/cpus`, `sys/devices/cpu_atom/cpus`, `cpuN/cpu_capacity`; `intel-rapl:0`
//!   package-0 with `:0:0` core and `:0:1` uncore, `intel-rapl:1` psys; intel_pstate with P-core
//!   and E-core ranges, intel_idle down to C10; no uncore frequency, no MSR image.
//! - **intel-offline**: intel-2s' powercap layout; CPUs 6, 7, 14, 15 offline (`cpuN/online` only;
//!   their policies inactive); `intel_uncore_frequency/uncore0{0..3}` (TPMI) and
//!   `package_0{0,1}_die_00`; no MSR image.
//!
//! ```
//! use std::time::Duration;
//! use powerstack_model::{DomainId, DomainKind};
//! use powerstack_sim::{Profile, SimNode, SimOptions};
//! let dir = tempfile::tempdir().unwrap();
//! let mut node = SimNode::create(dir.path(), Profile::Intel2s, SimOptions::default()).unwrap();
//! node.advance(Duration::from_secs(1)).unwrap();
//! let pkg0 = DomainId::new(DomainKind::Package, 0);
//! assert_eq!(node.true_power_watts(pkg0), Some(105.0));
//! let uj = std::fs::read_to_string(dir.path().join("sys/class/powercap/intel-rapl:0/energy_uj")).unwrap();
//! assert!(uj.trim().parse::<u64>().unwrap() > 0);
//! ```

mod build;
mod config;
mod cpufreq;
mod error;
pub mod faults;
mod fsutil;
mod io;
mod lock;
mod model;
mod msr;
mod node;
mod nvidia;
mod nvidia_data;
mod nvml_state;
mod options;
mod pm;
mod profile;
mod rapl;
mod reopen;
mod rules;
mod tree;
mod truth;
mod watch;

pub use config::CONFIG_FILE;
pub use error::SimError;
pub use msr::SimMsr;
pub use node::{MONO_START_NS, SimNode, profile_of};
pub use nvidia_data::{CallLatency, NvmlLatency};
pub use options::SimOptions;
pub use pm::{PmObserver, PmStage};
pub use profile::{LoadPattern, Profile};
pub use truth::TruthLog;

/// The simulated wall clock at creation, µs since the Unix epoch.
pub const UNIX_START_US: i64 = build::UNIX_START_US;
