//! The CPUs of every profile: `proc/cpuinfo`, topology, cpufreq policies, cpuidle states, NUMA
//! nodes, intel_pstate's and the other drivers' globals, and uncore frequency.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use powerstack_model::cpulist::format_cpulist;

use crate::cpufreq::{
    CPU, EPP_CHOICES, EPP_DEFAULT, UNCORE, parse_list, policy_cur_khz, uncore_cur_khz,
};
use crate::error::SimError;
use crate::profile::{CoreKind, CpuSpec, Profile};
use crate::tree::B;

fn cpuinfo(spec: &CpuSpec) -> String {
    let mut t = String::new();
    let intel = spec.is_intel();
    for cpu in spec.online() {
        let (pkg, core, thread) = (spec.package_of(cpu), spec.core_id(cpu), spec.thread_of(cpu));
        let apic = pkg * if intel { 64 } else { 128 } + core * 2 + thread;
        let pkg_cpus = spec.online_cpus_of(pkg);
        let cores: BTreeSet<u32> = pkg_cpus.iter().map(|&c| spec.core_of(c)).collect();
        let _ = write!(
            t,
            "processor\t: {cpu}\nvendor_id\t: {}\ncpu family\t: {}\nmodel\t\t: {}\nmodel name\t: {}\nstepping\t: {}\n\
             microcode\t: {}\ncpu MHz\t\t: {}\ncache size\t: {}\nphysical id\t: {pkg}\nsiblings\t: {}\ncore id\t\t: {core}\n\
             cpu cores\t: {}\napicid\t\t: {apic}\ninitial apicid\t: {apic}\nfpu\t\t: yes\nfpu_exception\t: yes\n\
             cpuid level\t: {}\nwp\t\t: yes\nflags\t\t: {}\nbugs\t\t: {}\nbogomips\t: {}\n",
            spec.vendor,
            spec.family,
            spec.model,
            spec.name,
            spec.stepping,
            spec.microcode,
            spec.mhz,
            spec.cache,
            pkg_cpus.len(),
            cores.len(),
            if intel { 22 } else { 16 },
            spec.flags,
            if intel {
                "spectre_v1 spectre_v2 spec_store_bypass swapgs taa itlb_multihit mmio_stale_data retbleed gds"
            } else {
                "sysret_ss_attrs spectre_v1 spectre_v2 spec_store_bypass srso"
            },
            spec.bogomips,
        );
        if !intel {
            t.push_str("TLB size\t: 2560 4K pages\n");
        }
        let _ = write!(
            t,
            "clflush size\t: 64\ncache_alignment\t: 64\naddress sizes\t: {}\npower management:{}\n\n",
            spec.address_sizes,
            if intel { "" } else { " ts ttp tm hwpstate cpb eff_freq_ro [13] [14]" }
        );
    }
    t
}

struct Cpufreq {
    driver: &'static str,
    governors: &'static str,
    governor: &'static str,
    min: u64,
    max: u64,
    latency: u64,
    base: Option<u64>,
    epp: bool,
    freqs: Option<&'static str>,
    extra: &'static [(&'static str, &'static str)],
}

/// An intel_pstate policy (active mode, HWP) with the given range and base frequency, kHz.
fn intel_pstate(min: u64, max: u64, base: u64) -> Cpufreq {
    Cpufreq {
        driver: "intel_pstate",
        governors: "performance powersave",
        governor: "powersave",
        min,
        max,
        latency: 0,
        base: Some(base),
        epp: true,
        freqs: None,
        extra: &[],
    }
}

fn cpufreq_spec(profile: Profile, kind: CoreKind) -> Cpufreq {
    match profile.cpu_profile() {
        // The GPU profiles have intel-2s' CPUs (`cpu_profile`).
        Profile::Intel2s | Profile::Nvidia4gpu | Profile::Nvidia8gpu => {
            intel_pstate(1_000_000, 3_700_000, 2_400_000)
        }
        Profile::IntelHybrid => match kind {
            CoreKind::E => intel_pstate(800_000, 4_300_000, 2_200_000),
            _ => intel_pstate(800_000, 5_800_000, 3_000_000),
        },
        Profile::IntelOffline => intel_pstate(800_000, 3_900_000, 2_700_000),
        Profile::Amd2s => Cpufreq {
            driver: "amd-pstate-epp",
            governors: "performance powersave",
            governor: "powersave",
            min: 400_000,
            max: 3_529_000,
            latency: 20_000,
            base: None,
            epp: true,
            freqs: None,
            extra: &[
                ("amd_pstate_max_freq", "3529000"),
                ("amd_pstate_lowest_nonlinear_freq", "1500000"),
            ],
        },
        Profile::CrayEx | Profile::AmdMi250x => Cpufreq {
            driver: "acpi-cpufreq",
            governors: "conservative ondemand userspace powersave performance schedutil",
            governor: "performance",
            min: 1_500_000,
            max: 2_000_000,
            latency: 0,
            base: None,
            epp: false,
            freqs: Some("2000000 1700000 1500000"),
            extra: &[],
        },
        Profile::HwmonNode => Cpufreq {
            driver: "acpi-cpufreq",
            governors: "conservative ondemand userspace powersave performance schedutil",
            governor: "schedutil",
            min: 1_500_000,
            max: 3_000_000,
            latency: 0,
            base: None,
            epp: false,
            freqs: Some("3000000 2200000 1500000"),
            extra: &[],
        },
    }
}

/// An idle state: (name, desc, exit latency µs, target residency µs).
type IdleState = (&'static str, &'static str, u32, u32);

fn idle_states(profile: Profile) -> (&'static str, &'static [IdleState]) {
    match profile.cpu_profile() {
        Profile::Intel2s => (
            "intel_idle",
            &[
                ("POLL", "CPUIDLE CORE POLL IDLE", 0, 0),
                ("C1", "MWAIT 0x00", 2, 2),
                ("C1E", "MWAIT 0x01", 10, 20),
                ("C6", "MWAIT 0x20", 133, 600),
            ],
        ),
        Profile::IntelHybrid => (
            "intel_idle",
            &[
                ("POLL", "CPUIDLE CORE POLL IDLE", 0, 0),
                ("C1", "MWAIT 0x00", 1, 1),
                ("C1E", "MWAIT 0x01", 2, 4),
                ("C6", "MWAIT 0x20", 220, 600),
                ("C8", "MWAIT 0x40", 280, 800),
                ("C10", "MWAIT 0x60", 680, 2000),
            ],
        ),
        Profile::IntelOffline => (
            "intel_idle",
            &[
                ("POLL", "CPUIDLE CORE POLL IDLE", 0, 0),
                ("C1", "MWAIT 0x00", 1, 1),
                ("C1E", "MWAIT 0x01", 2, 4),
                ("C6", "MWAIT 0x20", 290, 800),
            ],
        ),
        _ => (
            "acpi_idle",
            &[
                ("POLL", "CPUIDLE CORE POLL IDLE", 0, 0),
                ("C1", "ACPI FFH MWAIT 0x0", 1, 2),
                ("C2", "ACPI IOPORT 0x814", 400, 800),
            ],
        ),
    }
}

/// intel_pstate's global attributes: (min_perf_pct, num_pstates, turbo_pct).
fn intel_pstate_globals(profile: Profile) -> Option<(u32, u32, u32)> {
    match profile.cpu_profile() {
        Profile::Intel2s => Some((27, 28, 36)),
        Profile::IntelHybrid => Some((13, 51, 55)),
        Profile::IntelOffline => Some((20, 32, 38)),
        _ => None,
    }
}

/// hybrid parts: `cpu_capacity` of a P-core and of an E-core.
const P_CAPACITY: u32 = 1024;
const E_CAPACITY: u32 = 633;

/// Writes the CPUs' files (a reopened tree has them already).
pub(super) fn build(b: &B<'_>, profile: Profile) -> Result<(), SimError> {
    if !b.fresh {
        return Ok(());
    }
    let spec = profile.cpu();
    cpu_lists(b, spec)?;
    let (idle_driver, states) = idle_states(profile);
    for c in 0..spec.ncpus() {
        cpu(b, profile, spec, c, states)?;
    }
    if spec.is_hybrid() {
        hybrid_pmus(b, spec)?;
    }
    b.file(&format!("{CPU}/cpuidle/current_driver"), &format!("{idle_driver}\n"), 0o444)?;
    b.file(&format!("{CPU}/cpuidle/current_governor"), "menu\n", 0o644)?;
    b.file(&format!("{CPU}/cpuidle/current_governor_ro"), "menu\n", 0o444)?;
    b.file(&format!("{CPU}/cpuidle/available_governors"), "ladder menu teo \n", 0o444)?;
    numa_nodes(b, profile)?;
    driver_globals(b, profile, spec)
}

/// `proc/cpuinfo` and the CPU lists (`online`, `possible`, `present`, `offline`).
fn cpu_lists(b: &B<'_>, spec: &CpuSpec) -> Result<(), SimError> {
    let n = spec.ncpus();
    let online = spec.online();
    let offline: Vec<u32> = (0..n).filter(|&c| !spec.is_online(c)).collect();
    b.file("proc/cpuinfo", &cpuinfo(spec), 0o444)?;
    let all = format!("0-{}\n", n - 1);
    b.file(&format!("{CPU}/online"), &format!("{}\n", format_cpulist(&online)), 0o444)?;
    b.file(&format!("{CPU}/possible"), &all, 0o444)?;
    b.file(&format!("{CPU}/present"), &all, 0o444)?;
    b.file(&format!("{CPU}/offline"), &format!("{}\n", format_cpulist(&offline)), 0o444)?;
    b.file(&format!("{CPU}/kernel_max"), "8191\n", 0o444)
}

/// CPU `c`: its `online` switch, its cpufreq policy and, when online, its topology, capacity
/// and cpuidle states.
fn cpu(
    b: &B<'_>,
    profile: Profile,
    spec: &CpuSpec,
    c: u32,
    states: &[IdleState],
) -> Result<(), SimError> {
    let d = format!("{CPU}/cpu{c}");
    let on = spec.is_online(c);
    if c > 0 {
        b.file(&format!("{d}/online"), if on { "1\n" } else { "0\n" }, 0o644)?;
    }
    let pol = policy(b, profile, spec.kind(c), c, on)?;
    if !on {
        // The kernel shows an offline CPU as its directory with `online` only.
        return Ok(());
    }
    b.link(&format!("{d}/cpufreq"), &pol)?;
    topology(b, spec, c, &d)?;
    match spec.kind(c) {
        CoreKind::P => b.file(&format!("{d}/cpu_capacity"), &format!("{P_CAPACITY}\n"), 0o444)?,
        CoreKind::E => b.file(&format!("{d}/cpu_capacity"), &format!("{E_CAPACITY}\n"), 0o444)?,
        CoreKind::Uniform => {}
    }
    idle(b, &d, c, states)
}

/// CPU `c`'s cpufreq policy (one policy per CPU, linked from `cpuN/cpufreq`: an offline CPU's
/// policy stays, inactive (no affected CPUs), and the CPU has no link); returns its directory.
fn policy(
    b: &B<'_>,
    profile: Profile,
    kind: CoreKind,
    c: u32,
    on: bool,
) -> Result<String, SimError> {
    let cf = cpufreq_spec(profile, kind);
    let pol = format!("{CPU}/cpufreq/policy{c}");
    let table = parse_list(cf.freqs.unwrap_or(""));
    let cur = policy_cur_khz(cf.driver, cf.governor, cf.min, cf.max, &table, None);
    let mut files: Vec<(&str, String, u32)> = vec![
        ("affected_cpus", if on { c.to_string() } else { String::new() }, 0o444),
        ("related_cpus", c.to_string(), 0o444),
        ("cpuinfo_min_freq", cf.min.to_string(), 0o444),
        ("cpuinfo_max_freq", cf.max.to_string(), 0o444),
        ("cpuinfo_transition_latency", cf.latency.to_string(), 0o444),
        ("scaling_min_freq", cf.min.to_string(), 0o644),
        ("scaling_max_freq", cf.max.to_string(), 0o644),
        ("scaling_cur_freq", cur.to_string(), 0o444),
        ("scaling_governor", cf.governor.to_string(), 0o644),
        ("scaling_available_governors", cf.governors.to_string(), 0o444),
        ("scaling_driver", cf.driver.to_string(), 0o444),
        ("scaling_setspeed", "<unsupported>".to_string(), 0o644),
    ];
    if let Some(base) = cf.base {
        files.push(("base_frequency", base.to_string(), 0o444));
    }
    if cf.epp {
        files.push(("energy_performance_preference", EPP_DEFAULT.to_string(), 0o644));
        files.push(("energy_performance_available_preferences", EPP_CHOICES.to_string(), 0o444));
    }
    if let Some(freqs) = cf.freqs {
        files.push(("scaling_available_frequencies", freqs.to_string(), 0o444));
        files.push(("cpuinfo_cur_freq", cur.to_string(), 0o400));
    }
    for (name, v) in cf.extra {
        files.push((name, v.to_string(), 0o444));
    }
    for (name, v, mode) in files {
        b.file(&format!("{pol}/{name}"), &format!("{v}\n"), mode)?;
    }
    Ok(pol)
}

/// CPU `c`'s `topology` directory (`d` is the CPU's directory).
fn topology(b: &B<'_>, spec: &CpuSpec, c: u32, d: &str) -> Result<(), SimError> {
    let t = format!("{d}/topology");
    let sib = spec.siblings(c);
    let pkg_cpus = spec.online_cpus_of(spec.package_of(c));
    b.file(&format!("{t}/physical_package_id"), &format!("{}\n", spec.package_of(c)), 0o444)?;
    b.file(&format!("{t}/die_id"), "0\n", 0o444)?;
    b.file(&format!("{t}/core_id"), &format!("{}\n", spec.core_id(c)), 0o444)?;
    for (name, list) in [
        ("thread_siblings", &sib),
        ("core_cpus", &sib),
        ("core_siblings", &pkg_cpus),
        ("package_cpus", &pkg_cpus),
    ] {
        b.file(&format!("{t}/{name}_list"), &format!("{}\n", format_cpulist(list)), 0o444)?;
    }
    Ok(())
}

/// CPU `c`'s cpuidle states (`d` is the CPU's directory).
fn idle(b: &B<'_>, d: &str, c: u32, states: &[IdleState]) -> Result<(), SimError> {
    for (i, (name, desc, latency, residency)) in states.iter().enumerate() {
        let st = format!("{d}/cpuidle/state{i}");
        let usage = if i == 0 { 0 } else { 1000 * i as u64 + u64::from(c) };
        for (f, v, mode) in [
            ("name", name.to_string(), 0o444),
            ("desc", desc.to_string(), 0o444),
            ("latency", latency.to_string(), 0o444),
            ("residency", residency.to_string(), 0o444),
            ("power", "0".to_string(), 0o444),
            ("usage", usage.to_string(), 0o444),
            ("time", (usage * 250).to_string(), 0o444),
            ("above", "0".to_string(), 0o444),
            ("below", "0".to_string(), 0o444),
            ("rejected", "0".to_string(), 0o444),
            ("disable", "0".to_string(), 0o644),
            ("default_status", "enabled".to_string(), 0o444),
        ] {
            b.file(&format!("{st}/{f}"), &format!("{v}\n"), mode)?;
        }
    }
    Ok(())
}

/// The hybrid PMUs: how the kernel tells P-cores (cpu_core) from E-cores (cpu_atom).
fn hybrid_pmus(b: &B<'_>, spec: &CpuSpec) -> Result<(), SimError> {
    let n = spec.ncpus();
    let p: Vec<u32> = (0..n).filter(|&c| spec.kind(c) == CoreKind::P).collect();
    let e: Vec<u32> = (0..n).filter(|&c| spec.kind(c) == CoreKind::E).collect();
    for (pmu, cpus) in [("cpu_core", p), ("cpu_atom", e)] {
        let dev = format!("sys/devices/{pmu}");
        b.file(&format!("{dev}/cpus"), &format!("{}\n", format_cpulist(&cpus)), 0o444)?;
        b.link(&format!("sys/bus/event_source/devices/{pmu}"), &dev)?;
    }
    Ok(())
}

/// NUMA nodes: how hwmon and NVML readers map a device's numa_node to a package.
fn numa_nodes(b: &B<'_>, profile: Profile) -> Result<(), SimError> {
    let nodes = profile.numa_nodes();
    let node_dir = "sys/devices/system/node";
    let all_nodes = format!("0-{}\n", nodes.len().saturating_sub(1));
    for f in ["online", "possible", "has_cpu", "has_normal_memory"] {
        b.file(&format!("{node_dir}/{f}"), &all_nodes, 0o444)?;
    }
    for (n, cpus) in nodes.iter().enumerate() {
        let d = format!("{node_dir}/node{n}");
        b.file(&format!("{d}/cpulist"), &format!("{}\n", format_cpulist(cpus)), 0o444)?;
        for c in cpus {
            b.link(&format!("{CPU}/cpu{c}/node{n}"), &d)?;
            b.link(&format!("{d}/cpu{c}"), &format!("{CPU}/cpu{c}"))?;
        }
    }
    Ok(())
}

/// The frequency drivers' global attributes: intel_pstate's, uncore frequency, amd_pstate's
/// status or acpi-cpufreq's boost.
fn driver_globals(b: &B<'_>, profile: Profile, spec: &CpuSpec) -> Result<(), SimError> {
    if let Some((min_pct, num, turbo)) = intel_pstate_globals(profile) {
        for (f, v, mode) in [
            ("status", "active".to_string(), 0o644),
            ("no_turbo", "0".to_string(), 0o644),
            ("max_perf_pct", "100".to_string(), 0o644),
            ("min_perf_pct", min_pct.to_string(), 0o644),
            ("num_pstates", num.to_string(), 0o444),
            ("turbo_pct", turbo.to_string(), 0o444),
        ] {
            b.file(&format!("{CPU}/intel_pstate/{f}"), &format!("{v}\n"), mode)?;
        }
        if profile == Profile::IntelHybrid {
            b.file(&format!("{CPU}/intel_pstate/hwp_dynamic_boost"), "0\n", 0o644)?;
        }
    }
    match profile.cpu_profile() {
        Profile::Intel2s => uncore_packages(b, spec)?,
        Profile::IntelOffline => uncore_tpmi(b, spec)?,
        Profile::Amd2s => b.file(&format!("{CPU}/amd_pstate/status"), "active\n", 0o644)?,
        Profile::IntelHybrid => {}
        _ => b.file(&format!("{CPU}/cpufreq/boost"), "1\n", 0o644)?,
    }
    Ok(())
}

/// Uncore frequency by package and die (`package_XX_die_00`), as before TPMI.
fn uncore_packages(b: &B<'_>, spec: &CpuSpec) -> Result<(), SimError> {
    for p in 0..spec.packages {
        let u = format!("{UNCORE}/package_{p:02}_die_00");
        let (min, max) = (1_200_000, 2_400_000);
        for (f, v, mode) in [
            ("initial_min_freq_khz", min, 0o444),
            ("initial_max_freq_khz", max, 0o444),
            ("min_freq_khz", min, 0o644),
            ("max_freq_khz", max, 0o644),
            ("current_freq_khz", uncore_cur_khz(min, max), 0o444),
        ] {
            b.file(&format!("{u}/{f}"), &format!("{v}\n"), mode)?;
        }
    }
    Ok(())
}

/// TPMI uncore: two fabric clusters per package (`uncoreNN`, NN = 2·package + cluster), and the
/// package-level compatibility entries `package_XX_die_00` (no `current_freq_khz`, no identity
/// attributes), whose writes the kernel passes on to every cluster of the package.
fn uncore_tpmi(b: &B<'_>, spec: &CpuSpec) -> Result<(), SimError> {
    let (min, max) = (800_000u64, 2_500_000u64);
    let freq = |with_current: bool| {
        let mut v = vec![
            ("initial_min_freq_khz", min.to_string(), 0o444),
            ("initial_max_freq_khz", max.to_string(), 0o444),
            ("min_freq_khz", min.to_string(), 0o644),
            ("max_freq_khz", max.to_string(), 0o644),
            ("elc_floor_freq_khz", min.to_string(), 0o644),
            ("elc_low_threshold_percent", "10".to_string(), 0o644),
            ("elc_high_threshold_percent", "95".to_string(), 0o644),
            ("elc_high_threshold_enable", "1".to_string(), 0o644),
        ];
        if with_current {
            v.push(("current_freq_khz", uncore_cur_khz(min, max).to_string(), 0o444));
        }
        v
    };
    for p in 0..spec.packages {
        for (f, v, mode) in freq(false) {
            b.file(&format!("{UNCORE}/package_{p:02}_die_00/{f}"), &format!("{v}\n"), mode)?;
        }
        for cluster in 0..2u32 {
            let dir = format!("{UNCORE}/uncore{:02}", 2 * p + cluster);
            let mut files = freq(true);
            files.extend([
                ("package_id", p.to_string(), 0o444),
                ("domain_id", "0".to_string(), 0o444),
                ("fabric_cluster_id", cluster.to_string(), 0o444),
                ("die_id", "0".to_string(), 0o444),
                ("agent_types", "core cache memory io".to_string(), 0o444),
            ]);
            for (f, v, mode) in files {
                b.file(&format!("{dir}/{f}"), &format!("{v}\n"), mode)?;
            }
        }
    }
    Ok(())
}
