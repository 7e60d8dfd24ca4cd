//! Profiles (which node is simulated), load patterns and options.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::SimError;

/// A simulated node type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Two-socket Intel Xeon Gold 6148 (Skylake-SP) server: powercap `intel-rapl` (package, dram,
    /// psys), RAPL MSR image, intel_pstate, intel_idle, uncore frequency.
    Intel2s,
    /// Two-socket AMD EPYC 7763 server: powercap `intel-rapl` (package, core; energy only), AMD RAPL
    /// MSR image, amd-pstate-epp, acpi_idle.
    Amd2s,
    /// HPE Cray EX235a-like node: one AMD EPYC 7A53 and four accelerators measured by
    /// `/sys/cray/pm_counters`; no powercap, no MSR image.
    CrayEx,
    /// A one-socket AMD EPYC 7313 node with an ACPI power meter and an AMD GPU, both hwmon; no
    /// powercap, no MSR image.
    HwmonNode,
    /// intel-2s plus four NVIDIA H100 GPUs on the PCI bus, served through a mock NVML library
    /// (`powerstack-mock-nvml`, linked as `usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1`) that reads
    /// the simulator's state under `var/lib/powerstack-sim/nvml`.
    Nvidia4gpu,
    /// HPE Cray EX235a with four AMD MI250X: one AMD EPYC 7A53 with four NUMA nodes, HPE Cray
    /// `pm_counters` (node, cpu, memory, accel0–3, one per module) and eight `amdgpu` hwmon chips
    /// (two GCDs per module).
    AmdMi250x,
}

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 6] = [
        Profile::Intel2s,
        Profile::Amd2s,
        Profile::CrayEx,
        Profile::HwmonNode,
        Profile::Nvidia4gpu,
        Profile::AmdMi250x,
    ];

    /// The profile's name on the command line and in `powerstack-sim.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Intel2s => "intel-2s",
            Profile::Amd2s => "amd-2s",
            Profile::CrayEx => "cray-ex",
            Profile::HwmonNode => "hwmon-node",
            Profile::Nvidia4gpu => "nvidia-4gpu",
            Profile::AmdMi250x => "amd-mi250x",
        }
    }

    /// One line for people: what the profile simulates.
    pub fn description(self) -> &'static str {
        match self {
            Profile::Intel2s => {
                "2x Intel Xeon Gold 6148: powercap intel-rapl (package, dram, psys) with limits, RAPL MSRs, intel_pstate"
            }
            Profile::Amd2s => {
                "2x AMD EPYC 7763: powercap intel-rapl (package, core; energy only), AMD RAPL MSRs, amd-pstate-epp"
            }
            Profile::CrayEx => {
                "HPE Cray EX235a-like: 1x AMD EPYC 7A53 + 4 accelerators in /sys/cray/pm_counters (10 Hz)"
            }
            Profile::HwmonNode => {
                "1x AMD EPYC 7313 + AMD GPU: hwmon ACPI power meter (node) and amdgpu (gpu)"
            }
            Profile::Nvidia4gpu => {
                "intel-2s + 4x NVIDIA H100 through a mock NVML library (needs powerstack-mock-nvml built)"
            }
            Profile::AmdMi250x => {
                "HPE Cray EX235a: 1x AMD EPYC 7A53 + 4x MI250X: pm_counters (accel per module) and 8 amdgpu hwmon GCDs"
            }
        }
    }

    pub(crate) fn cpu(self) -> &'static CpuSpec {
        match self.cpu_profile() {
            Profile::Amd2s => &EPYC_7763,
            Profile::CrayEx => &EPYC_7A53,
            Profile::HwmonNode => &EPYC_7313,
            _ => &INTEL_6148,
        }
    }

    /// The profile whose CPUs (model, topology, cpufreq, cpuidle) this one has.
    pub(crate) fn cpu_profile(self) -> Profile {
        match self {
            Profile::Nvidia4gpu => Profile::Intel2s,
            Profile::AmdMi250x => Profile::CrayEx,
            p => p,
        }
    }

    /// The CPUs of each NUMA node (`sys/devices/system/node/nodeN/cpulist`): one node per package,
    /// except amd-mi250x, whose package is split into four nodes of two cores each (NPS4).
    pub(crate) fn numa_nodes(self) -> Vec<Vec<u32>> {
        let spec = self.cpu();
        match self {
            Profile::AmdMi250x => {
                let per = spec.cores / 4;
                (0..4)
                    .map(|n| {
                        (0..spec.ncpus())
                            .filter(|&c| spec.core_of(c) / per == n)
                            .collect::<Vec<u32>>()
                    })
                    .collect()
            }
            _ => (0..spec.packages).map(|p| spec.cpus_of(p)).collect(),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = SimError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL
            .into_iter()
            .find(|p| p.as_str() == s.trim())
            .ok_or_else(|| SimError::UnknownProfile(s.to_string()))
    }
}

/// How the load of the simulated node varies with simulated time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum LoadPattern {
    /// Constant load: [`SimOptions::load`].
    #[default]
    Steady,
    /// `0.5 + 0.4 sin(2πt / 10 s)`.
    Sine,
    /// 0.2 and 0.9 alternating every 5 s (starting with 0.2).
    Steps,
}

impl LoadPattern {
    /// Every pattern.
    pub const ALL: [LoadPattern; 3] = [LoadPattern::Steady, LoadPattern::Sine, LoadPattern::Steps];

    /// The pattern's name (`steady`, `sine`, `steps`).
    pub fn as_str(self) -> &'static str {
        match self {
            LoadPattern::Steady => "steady",
            LoadPattern::Sine => "sine",
            LoadPattern::Steps => "steps",
        }
    }

    /// The load (0 to 1) at `t_s` seconds of simulated time, `steady` being the steady load.
    pub fn load_at(self, steady: f64, t_s: f64) -> f64 {
        let l = match self {
            LoadPattern::Steady => steady,
            LoadPattern::Sine => 0.5 + 0.4 * (2.0 * std::f64::consts::PI * t_s / 10.0).sin(),
            LoadPattern::Steps => {
                if (t_s / 5.0).floor().rem_euclid(2.0) < 1.0 {
                    0.2
                } else {
                    0.9
                }
            }
        };
        if l.is_finite() { l.clamp(0.0, 1.0) } else { 0.5 }
    }
}

impl fmt::Display for LoadPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LoadPattern {
    type Err = SimError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LoadPattern::ALL
            .into_iter()
            .find(|p| p.as_str() == s.trim())
            .ok_or_else(|| SimError::UnknownPattern(s.to_string()))
    }
}

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
    /// nvidia-4gpu: the mock NVML library (`libpowerstack_mock_nvml.so`, built by
    /// `cargo build -p powerstack-mock-nvml`) that the root's `libnvidia-ml.so.1` links to. When
    /// `None`, [`crate::SimNode::create`] looks for it at `$POWERSTACK_MOCK_NVML` (the file, or a
    /// directory holding it), then next to the running executable, then in that directory's parent
    /// (test binaries live in `target/debug/deps`). After `create` it holds the path linked to; it
    /// is not stored in the root (`open` needs no library), so a reopened node has `None`.
    pub nvml_library: Option<PathBuf>,
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
        }
    }
}

impl SimOptions {
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        if !self.load.is_finite() || !(0.0..=1.0).contains(&self.load) {
            return Err(SimError::InvalidLoad(self.load));
        }
        Ok(())
    }
}

/// The CPUs of a profile: model and topology. Linux numbering: CPU `t·(P·C) + p·C + c` is thread `t`
/// of core `c` of package `p`.
#[derive(Debug)]
pub(crate) struct CpuSpec {
    pub vendor: &'static str,
    pub family: u32,
    pub model: u32,
    pub stepping: u32,
    pub microcode: &'static str,
    pub name: &'static str,
    pub mhz: &'static str,
    pub cache: &'static str,
    pub bogomips: &'static str,
    pub address_sizes: &'static str,
    pub flags: &'static str,
    pub packages: u32,
    pub cores: u32,
    pub threads: u32,
}

impl CpuSpec {
    pub fn ncpus(&self) -> u32 {
        self.packages * self.cores * self.threads
    }
    fn per_thread(&self) -> u32 {
        self.packages * self.cores
    }
    pub fn package_of(&self, cpu: u32) -> u32 {
        (cpu % self.per_thread()) / self.cores
    }
    pub fn core_of(&self, cpu: u32) -> u32 {
        cpu % self.cores
    }
    pub fn thread_of(&self, cpu: u32) -> u32 {
        cpu / self.per_thread()
    }
    /// The CPUs sharing `cpu`'s core, sorted.
    pub fn siblings(&self, cpu: u32) -> Vec<u32> {
        let first = cpu % self.per_thread();
        (0..self.threads).map(|t| first + t * self.per_thread()).collect()
    }
    /// The CPUs of a package, sorted.
    pub fn cpus_of(&self, package: u32) -> Vec<u32> {
        (0..self.ncpus()).filter(|&c| self.package_of(c) == package).collect()
    }
    pub fn is_intel(&self) -> bool {
        self.vendor == "GenuineIntel"
    }
}

const INTEL_FLAGS: &str = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc art arch_perfmon pebs bts rep_good nopl xtopology nonstop_tsc cpuid aperfmperf pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 sdbg fma cx16 xtpr pdcm pcid dca sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand lahf_lm abm 3dnowprefetch cpuid_fault epb cat_l3 cdp_l3 invpcid_single intel_ppin ssbd mba ibrs ibpb stibp tpr_shadow vnmi flexpriority ept vpid ept_ad fsgsbase tsc_adjust bmi1 hle avx2 smep bmi2 erms invpcid rtm cqm mpx rdt_a avx512f avx512dq rdseed adx smap clflushopt clwb intel_pt avx512cd avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves cqm_llc cqm_occup_llc cqm_mbm_total cqm_mbm_local dtherm ida arat pln pts hwp hwp_act_window hwp_epp hwp_pkg_req pku ospke md_clear flush_l1d arch_capabilities";

const AMD_FLAGS: &str = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl nonstop_tsc cpuid extd_apicid aperfmperf rapl pni pclmulqdq monitor ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand lahf_lm cmp_legacy svm extapic cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw ibs skinit wdt tce topoext perfctr_core perfctr_nb bpext perfctr_llc mwaitx cpb cat_l3 cdp_l3 invpcid_single hw_pstate ssbd mba ibrs ibpb stibp vmmcall fsgsbase bmi1 avx2 smep bmi2 invpcid cqm rdt_a rdseed adx smap clflushopt clwb sha_ni xsaveopt xsavec xgetbv1 xsaves cqm_llc cqm_occup_llc cqm_mbm_total cqm_mbm_local clzero irperf xsaveerptr rdpru wbnoinvd amd_ppin arat npt lbrv svm_lock nrip_save tsc_scale vmcb_clean flushbyasid decodeassists pausefilter pfthreshold v_vmsave_vmload vgif v_spec_ctrl umip pku ospke vaes vpclmulqdq rdpid overflow_recov succor smca";

static INTEL_6148: CpuSpec = CpuSpec {
    vendor: "GenuineIntel",
    family: 6,
    model: 85,
    stepping: 4,
    microcode: "0x2007006",
    name: "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz",
    mhz: "2400.000",
    cache: "28160 KB",
    bogomips: "4800.00",
    address_sizes: "46 bits physical, 48 bits virtual",
    flags: INTEL_FLAGS,
    packages: 2,
    cores: 4,
    threads: 2,
};

static EPYC_7763: CpuSpec = CpuSpec {
    vendor: "AuthenticAMD",
    family: 25,
    model: 1,
    stepping: 1,
    microcode: "0xa001144",
    name: "AMD EPYC 7763 64-Core Processor",
    mhz: "2450.000",
    cache: "512 KB",
    bogomips: "4890.71",
    address_sizes: "48 bits physical, 48 bits virtual",
    flags: AMD_FLAGS,
    packages: 2,
    cores: 4,
    threads: 2,
};

static EPYC_7A53: CpuSpec = CpuSpec {
    vendor: "AuthenticAMD",
    family: 25,
    model: 48,
    stepping: 1,
    microcode: "0xa003005",
    name: "AMD EPYC 7A53 64-Core Processor",
    mhz: "2000.000",
    cache: "512 KB",
    bogomips: "3992.50",
    address_sizes: "48 bits physical, 48 bits virtual",
    flags: AMD_FLAGS,
    packages: 1,
    cores: 8,
    threads: 2,
};

static EPYC_7313: CpuSpec = CpuSpec {
    vendor: "AuthenticAMD",
    family: 25,
    model: 1,
    stepping: 1,
    microcode: "0xa0011ce",
    name: "AMD EPYC 7313 16-Core Processor",
    mhz: "3000.000",
    cache: "512 KB",
    bogomips: "5988.86",
    address_sizes: "48 bits physical, 48 bits virtual",
    flags: AMD_FLAGS,
    packages: 1,
    cores: 8,
    threads: 2,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_valid_ones() {
        for p in Profile::ALL {
            assert_eq!(p.as_str().parse::<Profile>().unwrap(), p);
        }
        let e = "intel".parse::<Profile>().unwrap_err().to_string();
        for p in Profile::ALL {
            assert!(e.contains(p.as_str()), "{e}");
        }
        for l in LoadPattern::ALL {
            assert_eq!(l.as_str().parse::<LoadPattern>().unwrap(), l);
        }
        assert!("square".parse::<LoadPattern>().unwrap_err().to_string().contains("steady"));
    }

    #[test]
    fn linux_cpu_numbering() {
        let s = Profile::Intel2s.cpu();
        assert_eq!(s.ncpus(), 16);
        assert_eq!(s.cpus_of(0), vec![0, 1, 2, 3, 8, 9, 10, 11]);
        assert_eq!(s.cpus_of(1), vec![4, 5, 6, 7, 12, 13, 14, 15]);
        assert_eq!(s.siblings(9), vec![1, 9]);
        assert_eq!((s.package_of(13), s.core_of(13), s.thread_of(13)), (1, 1, 1));
        assert_eq!(Profile::Nvidia4gpu.numa_nodes(), vec![s.cpus_of(0), s.cpus_of(1)]);
        assert_eq!(
            Profile::AmdMi250x.numa_nodes(),
            vec![vec![0, 1, 8, 9], vec![2, 3, 10, 11], vec![4, 5, 12, 13], vec![6, 7, 14, 15]]
        );
    }

    #[test]
    fn load_patterns() {
        assert_eq!(LoadPattern::Steady.load_at(0.3, 7.0), 0.3);
        assert!((LoadPattern::Sine.load_at(0.0, 2.5) - 0.9).abs() < 1e-12);
        assert_eq!(LoadPattern::Steps.load_at(0.0, 4.9), 0.2);
        assert_eq!(LoadPattern::Steps.load_at(0.0, 5.0), 0.9);
        assert_eq!(LoadPattern::Steps.load_at(0.0, 10.0), 0.2);
    }
}
