//! What the node has for frequency control (being written).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// A CPU's core type on hybrid parts, from the kernel's own data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CoreType {
    /// Not a hybrid part: every core is the same.
    Uniform,
    /// A performance core (`/sys/devices/cpu_core/cpus`, or the largest `cpu_capacity`).
    Performance,
    /// An efficiency core (`/sys/devices/cpu_atom/cpus`, or a smaller `cpu_capacity`).
    Efficiency,
}

impl CoreType {
    /// The name used in configuration files and output: `uniform`, `p_core`, `e_core`.
    pub fn as_str(self) -> &'static str {
        match self {
            CoreType::Uniform => "uniform",
            CoreType::Performance => "p_core",
            CoreType::Efficiency => "e_core",
        }
    }
}

/// One logical CPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuInfo {
    /// Logical CPU number.
    pub id: u32,
    /// Online.
    pub online: bool,
    /// Package (physical_package_id); offline CPUs without a topology directory: `None`.
    pub package: Option<u32>,
    /// Die (die_id, 0 when absent).
    pub die: Option<u32>,
    /// Core (core_id).
    pub core: Option<u32>,
    /// SMT siblings including itself (thread_siblings_list / core_cpus_list).
    pub siblings: Vec<u32>,
    /// Core type.
    pub core_type: CoreType,
    /// `cpu_capacity`, when the kernel exposes it.
    pub capacity: Option<u32>,
    /// The cpufreq policy number covering this CPU (`policyN`), when it has one.
    pub policy: Option<u32>,
}

/// One cpufreq policy (`/sys/devices/system/cpu/cpufreq/policyN`): frequency settings are per
/// policy, shared by its CPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// N of `policyN`.
    pub id: u32,
    /// Its directory (under the root).
    pub dir: PathBuf,
    /// `related_cpus`: every CPU the policy covers (online or not).
    pub cpus: Vec<u32>,
    /// `scaling_driver` (`intel_pstate`, `intel_cpufreq`, `acpi-cpufreq`, `amd-pstate`,
    /// `amd-pstate-epp`, `cppc_cpufreq`, ...).
    pub driver: String,
    /// `cpuinfo_min_freq`, kHz.
    pub cpuinfo_min_khz: u64,
    /// `cpuinfo_max_freq`, kHz.
    pub cpuinfo_max_khz: u64,
    /// `base_frequency`, kHz (intel_pstate).
    pub base_khz: Option<u64>,
    /// `scaling_available_governors`.
    pub governors: Vec<String>,
    /// `energy_performance_available_preferences`, when the policy has EPP.
    pub epp_choices: Option<Vec<String>>,
}

/// One cpuidle state of a CPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdleState {
    /// K of `stateK`.
    pub index: u32,
    /// `name` (`POLL`, `C1`, `C1E`, `C6`).
    pub name: String,
    /// `desc`.
    pub desc: String,
    /// Exit latency, µs.
    pub latency_us: u64,
    /// Target residency, µs.
    pub residency_us: u64,
}

/// Which sysfs layout an uncore domain comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UncoreLayout {
    /// `intel_uncore_frequency/package_XX_die_YY`.
    Legacy,
    /// `intel_uncore_frequency/uncoreNN` (TPMI), per fabric cluster.
    Tpmi,
}

/// One uncore frequency domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UncoreDomain {
    /// Directory name (`package_00_die_00`, `uncore03`).
    pub name: String,
    /// Its directory (under the root).
    pub dir: PathBuf,
    /// Layout.
    pub layout: UncoreLayout,
    /// Package.
    pub package: u32,
    /// Die (legacy), or the TPMI `die_id` when present.
    pub die: Option<u32>,
    /// TPMI `domain_id`.
    pub domain: Option<u32>,
    /// TPMI `fabric_cluster_id`.
    pub cluster: Option<u32>,
    /// `initial_min_freq_khz`: the hardware minimum.
    pub initial_min_khz: u64,
    /// `initial_max_freq_khz`: the hardware maximum.
    pub initial_max_khz: u64,
}

/// Which frequency features the node has, for the capability report and profile validation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The scaling drivers present (usually one).
    pub drivers: Vec<String>,
    /// `intel_pstate/status` or `amd_pstate/status` (`active`, `passive`, `guided`), when present.
    pub pstate_status: Option<String>,
    /// Every policy has EPP.
    pub epp: bool,
    /// `cpuidle/current_driver`, when C-states can be controlled.
    pub idle_driver: Option<String>,
    /// The uncore layouts present.
    pub uncore: Vec<UncoreLayout>,
    /// Hybrid (P-cores and E-cores).
    pub hybrid: bool,
}

/// Everything frequency control needs to know about the node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FreqTopology {
    /// Every CPU, by number (online and offline).
    pub cpus: Vec<CpuInfo>,
    /// Every cpufreq policy, by number.
    pub policies: Vec<Policy>,
    /// The cpuidle states of each online CPU.
    pub idle_states: BTreeMap<u32, Vec<IdleState>>,
    /// Uncore domains.
    pub uncore: Vec<UncoreDomain>,
    /// Capabilities.
    pub capabilities: Capabilities,
    /// What could not be read, one line each.
    pub warnings: Vec<String>,
}
