//! Profiles (which node is simulated), load patterns and options.

use std::fmt;
use std::str::FromStr;

use crate::error::SimError;
use crate::nvidia_data::{NVIDIA_4GPU, NVIDIA_8GPU, NvidiaNode};

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
    /// intel-2s plus eight NVIDIA H200 GPUs (an HGX H200 board, four per socket), served like
    /// nvidia-4gpu's through the mock NVML library.
    Nvidia8gpu,
    /// HPE Cray EX235a with four AMD MI250X: one AMD EPYC 7A53 with four NUMA nodes, HPE Cray
    /// `pm_counters` (node, cpu, memory, accel0–3, one per module) and eight `amdgpu` hwmon chips
    /// (two GCDs per module).
    AmdMi250x,
    /// Intel Core i9-13900K-like hybrid desktop: one package of 4 P-cores (2 threads each, CPUs
    /// 0-7) and 8 E-cores (CPUs 8-15), `cpu_core`/`cpu_atom` PMUs and `cpu_capacity`; client
    /// powercap (package with `core` and `uncore` subzones, psys); intel_pstate with different
    /// P-core and E-core ranges; intel_idle down to C10; no uncore frequency control.
    IntelHybrid,
    /// Intel Xeon 6960P-like (Granite Rapids) server, 2 packages, with CPUs 6, 7, 14 and 15
    /// offline (no topology, cpufreq or cpuidle; their policies inactive); intel_uncore_frequency
    /// in the TPMI layout (`uncore00`–`uncore03`, plus package-level compatibility entries).
    IntelOffline,
}

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 9] = [
        Profile::Intel2s,
        Profile::Amd2s,
        Profile::CrayEx,
        Profile::HwmonNode,
        Profile::Nvidia4gpu,
        Profile::Nvidia8gpu,
        Profile::AmdMi250x,
        Profile::IntelHybrid,
        Profile::IntelOffline,
    ];

    /// The profile's name on the command line and in `powerstack-sim.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Intel2s => "intel-2s",
            Profile::Amd2s => "amd-2s",
            Profile::CrayEx => "cray-ex",
            Profile::HwmonNode => "hwmon-node",
            Profile::Nvidia4gpu => "nvidia-4gpu",
            Profile::Nvidia8gpu => "nvidia-8gpu",
            Profile::AmdMi250x => "amd-mi250x",
            Profile::IntelHybrid => "intel-hybrid",
            Profile::IntelOffline => "intel-offline",
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
            Profile::Nvidia8gpu => {
                "intel-2s + 8x NVIDIA H200 (HGX) through a mock NVML library (needs powerstack-mock-nvml built)"
            }
            Profile::AmdMi250x => {
                "HPE Cray EX235a: 1x AMD EPYC 7A53 + 4x MI250X: pm_counters (accel per module) and 8 amdgpu hwmon GCDs"
            }
            Profile::IntelHybrid => {
                "Intel Core i9-13900K-like: 4 P-cores (HT) + 8 E-cores, client powercap (package, core, uncore, psys), intel_pstate"
            }
            Profile::IntelOffline => {
                "2x Intel Xeon 6960P-like with CPUs 6,7,14,15 offline: powercap intel-rapl, intel_pstate, TPMI uncore frequency"
            }
        }
    }

    pub(crate) fn cpu(self) -> &'static CpuSpec {
        match self.cpu_profile() {
            Profile::Amd2s => &EPYC_7763,
            Profile::CrayEx => &EPYC_7A53,
            Profile::HwmonNode => &EPYC_7313,
            Profile::IntelHybrid => &CORE_13900K,
            Profile::IntelOffline => &XEON_6960P,
            _ => &INTEL_6148,
        }
    }

    /// The profile whose CPUs (model, topology, cpufreq, cpuidle) this one has.
    pub(crate) fn cpu_profile(self) -> Profile {
        match self {
            Profile::Nvidia4gpu | Profile::Nvidia8gpu => Profile::Intel2s,
            Profile::AmdMi250x => Profile::CrayEx,
            p => p,
        }
    }

    /// Whether the profile's GPUs are served by the mock NVML library, which
    /// [`crate::SimNode::create`] then needs (see [`crate::SimOptions::nvml_library`]).
    pub fn uses_mock_nvml(self) -> bool {
        self.nvidia().is_some()
    }

    /// The NVIDIA GPUs of the profile, when it has some.
    pub(crate) fn nvidia(self) -> Option<&'static NvidiaNode> {
        match self {
            Profile::Nvidia4gpu => Some(&NVIDIA_4GPU),
            Profile::Nvidia8gpu => Some(&NVIDIA_8GPU),
            _ => None,
        }
    }

    /// Every profile's name, comma-separated (for messages).
    pub(crate) fn names() -> String {
        Profile::ALL.map(Profile::as_str).join(", ")
    }

    /// The CPUs of each NUMA node (`sys/devices/system/node/nodeN/cpulist`): one node per package,
    /// except amd-mi250x, whose package is split into four nodes of two cores each (NPS4). Offline CPUs
    /// are in no node (as on x86, where a CPU leaves its node's map when it goes offline).
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
            _ => (0..spec.packages).map(|p| spec.online_cpus_of(p)).collect(),
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
    /// Constant load: [`crate::SimOptions::load`].
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

/// What kind of core a CPU belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CoreKind {
    /// Not a hybrid part.
    Uniform,
    /// A hybrid part's performance core.
    P,
    /// A hybrid part's efficiency core.
    E,
}

/// The CPUs of a profile: model and topology. Linux numbering: CPU `t·(P·C) + p·C + c` is thread `t`
/// of core `c` of package `p`. Hybrid parts (`e_cores > 0`, one package) number the P-core threads
/// first with siblings adjacent (CPUs `2c`, `2c+1` are P-core `c`), then one CPU per E-core.
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
    /// Cores per package (hybrid: P-cores).
    pub cores: u32,
    /// Threads per core (hybrid: per P-core).
    pub threads: u32,
    /// Hybrid: E-cores (one thread each), after the P-core threads; 0 on other parts.
    pub e_cores: u32,
    /// CPUs that are offline.
    pub offline: &'static [u32],
}

impl CpuSpec {
    pub fn ncpus(&self) -> u32 {
        self.packages * self.cores * self.threads + self.e_cores
    }
    fn per_thread(&self) -> u32 {
        self.packages * self.cores
    }
    /// P-core threads of a hybrid part.
    fn p_threads(&self) -> u32 {
        self.cores * self.threads
    }
    pub fn is_hybrid(&self) -> bool {
        self.e_cores > 0
    }
    pub fn kind(&self, cpu: u32) -> CoreKind {
        match (self.is_hybrid(), cpu < self.p_threads()) {
            (false, _) => CoreKind::Uniform,
            (true, true) => CoreKind::P,
            (true, false) => CoreKind::E,
        }
    }
    pub fn package_of(&self, cpu: u32) -> u32 {
        if self.is_hybrid() { 0 } else { (cpu % self.per_thread()) / self.cores }
    }
    /// The core's index within its package (hybrid: P-cores first, then E-cores).
    pub fn core_of(&self, cpu: u32) -> u32 {
        match self.kind(cpu) {
            CoreKind::Uniform => cpu % self.cores,
            CoreKind::P => cpu / self.threads,
            CoreKind::E => self.cores + (cpu - self.p_threads()),
        }
    }
    /// `topology/core_id`: the core index, except on hybrid parts, whose P-cores have ids
    /// 0, 4, 8, ... and E-cores the ids after them, one apart (like Alder/Raptor Lake).
    pub fn core_id(&self, cpu: u32) -> u32 {
        match self.kind(cpu) {
            CoreKind::Uniform => self.core_of(cpu),
            CoreKind::P => 4 * self.core_of(cpu),
            CoreKind::E => 4 * self.cores + (cpu - self.p_threads()),
        }
    }
    pub fn thread_of(&self, cpu: u32) -> u32 {
        match self.kind(cpu) {
            CoreKind::Uniform => cpu / self.per_thread(),
            CoreKind::P => cpu % self.threads,
            CoreKind::E => 0,
        }
    }
    /// The CPUs sharing `cpu`'s core, sorted.
    pub fn siblings(&self, cpu: u32) -> Vec<u32> {
        match self.kind(cpu) {
            CoreKind::Uniform => {
                let first = cpu % self.per_thread();
                (0..self.threads).map(|t| first + t * self.per_thread()).collect()
            }
            CoreKind::P => {
                let first = cpu - cpu % self.threads;
                (first..first + self.threads).collect()
            }
            CoreKind::E => vec![cpu],
        }
    }
    /// The CPUs of a package (online or not), sorted.
    pub fn cpus_of(&self, package: u32) -> Vec<u32> {
        (0..self.ncpus()).filter(|&c| self.package_of(c) == package).collect()
    }
    /// The online CPUs of a package, sorted.
    pub fn online_cpus_of(&self, package: u32) -> Vec<u32> {
        self.cpus_of(package).into_iter().filter(|&c| self.is_online(c)).collect()
    }
    pub fn is_online(&self, cpu: u32) -> bool {
        !self.offline.contains(&cpu)
    }
    pub fn online(&self) -> Vec<u32> {
        (0..self.ncpus()).filter(|&c| self.is_online(c)).collect()
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
    e_cores: 0,
    offline: &[],
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
    e_cores: 0,
    offline: &[],
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
    e_cores: 0,
    offline: &[],
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
    e_cores: 0,
    offline: &[],
};

/// A client part's flags: no AVX-512, `hybrid_cpu`.
const INTEL_CLIENT_FLAGS: &str = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc art arch_perfmon pebs bts rep_good nopl xtopology nonstop_tsc cpuid aperfmperf tsc_known_freq pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 sdbg fma cx16 xtpr pdcm pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand lahf_lm abm 3dnowprefetch cpuid_fault epb ssbd ibrs ibpb stibp ibrs_enhanced tpr_shadow flexpriority ept vpid ept_ad fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid rdseed adx smap clflushopt clwb intel_pt sha_ni xsaveopt xsavec xgetbv1 xsaves split_lock_detect user_shstk avx_vnni dtherm ida arat pln pts hwp hwp_notify hwp_act_window hwp_epp hwp_pkg_req hfi vnmi umip pku ospke waitpkg gfni vaes vpclmulqdq rdpid movdiri movdir64b fsrm md_clear serialize pconfig arch_lbr ibt flush_l1d arch_capabilities hybrid_cpu";

static CORE_13900K: CpuSpec = CpuSpec {
    vendor: "GenuineIntel",
    family: 6,
    model: 183,
    stepping: 1,
    microcode: "0x12b",
    name: "13th Gen Intel(R) Core(TM) i9-13900K",
    mhz: "3000.000",
    cache: "36864 KB",
    bogomips: "5990.40",
    address_sizes: "46 bits physical, 48 bits virtual",
    flags: INTEL_CLIENT_FLAGS,
    packages: 1,
    cores: 4,
    threads: 2,
    e_cores: 8,
    offline: &[],
};

static XEON_6960P: CpuSpec = CpuSpec {
    vendor: "GenuineIntel",
    family: 6,
    model: 173,
    stepping: 1,
    microcode: "0x10003a2",
    name: "Intel(R) Xeon(R) 6960P",
    mhz: "2700.000",
    cache: "442368 KB",
    bogomips: "5400.00",
    address_sizes: "52 bits physical, 57 bits virtual",
    flags: INTEL_FLAGS,
    packages: 2,
    cores: 4,
    threads: 2,
    e_cores: 0,
    offline: &[6, 7, 14, 15],
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
        assert_eq!(Profile::Nvidia8gpu.numa_nodes(), vec![s.cpus_of(0), s.cpus_of(1)]);
        assert_eq!(
            Profile::AmdMi250x.numa_nodes(),
            vec![vec![0, 1, 8, 9], vec![2, 3, 10, 11], vec![4, 5, 12, 13], vec![6, 7, 14, 15]]
        );
    }

    #[test]
    fn hybrid_and_offline_numbering() {
        let h = Profile::IntelHybrid.cpu();
        assert_eq!(h.ncpus(), 16);
        assert_eq!(h.siblings(3), vec![2, 3]);
        assert_eq!(h.siblings(9), vec![9]);
        assert_eq!((h.kind(7), h.kind(8)), (CoreKind::P, CoreKind::E));
        let ids: Vec<u32> = (0..16).map(|c| h.core_id(c)).collect();
        assert_eq!(ids, vec![0, 0, 4, 4, 8, 8, 12, 12, 16, 17, 18, 19, 20, 21, 22, 23]);
        assert_eq!(h.cpus_of(0), (0..16).collect::<Vec<u32>>());
        let o = Profile::IntelOffline.cpu();
        assert_eq!(o.online(), vec![0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13]);
        assert_eq!(Profile::IntelOffline.numa_nodes()[1], vec![4, 5, 12, 13]);
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
