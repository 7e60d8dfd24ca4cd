//! Writing (or, on reopen, attaching to) the simulated tree of each profile.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use powerstack_model::cpulist::format_cpulist;
use powerstack_model::{DomainId, DomainKind};

use crate::error::SimError;
use crate::fsutil::{OutFile, create_file, mkdirs, symlink_rel, write_file};
use crate::io::{
    CapRole, Control, CtlKind, Device, HwmonKind, HwmonOut, ImgReg, Io, LimitSync, MsrImage,
    RegRef, Zone,
};
use crate::model::{self, CRAY_ACCELS, Caps, Key, MI250X_GCDS};
use crate::msr::{Reg, Shared};
use crate::nvidia;
use crate::options::SimOptions;
use crate::pm::{PmComp, PmCounters};
use crate::profile::{CoreKind, CpuSpec, Profile};
use crate::rapl::{
    AMD_UNITS, ESU_16, ESU_PKG, INTEL_UNITS, RaplCounter, ZoneLimits, limit_reg, max_range_uj,
    power_info_reg, raw_to_uj, us_to_window_field,
};
use crate::rules;

/// The simulated wall clock at creation, µs since the Unix epoch.
pub(crate) const UNIX_START_US: i64 = 1_795_000_000_000_000;

/// The width of a counter file holding one number (see [`OutFile`]): 20 digits (any u64) and a
/// newline.
pub(crate) const NUMBER_WIDTH: usize = 21;

/// A hwmon value file `rel` following component `comp`, showing `watts` now.
fn hwmon_out(
    b: &B<'_>,
    io: &mut Io,
    rel: &str,
    comp: usize,
    kind: HwmonKind,
    watts: f64,
) -> Result<(), SimError> {
    let file = b.counter(rel, &HwmonOut::content(kind, watts), 0o444, NUMBER_WIDTH)?;
    io.hwmon.push(HwmonOut { comp, kind, file });
    Ok(())
}

/// The width of a pm_counters value file (`<value> <unit> <timestamp> us`): a 20-digit value and
/// a 16-digit timestamp.
const PM_WIDTH: usize = 44;

/// Writes the tree when `fresh`, else only names its files.
pub(crate) struct B<'a> {
    pub root: &'a Path,
    pub fresh: bool,
    /// Directories known to exist (saves a `mkdir` per file).
    made: RefCell<HashSet<PathBuf>>,
}

impl B<'_> {
    pub fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Creates the parent directory of `path` once.
    fn parent(&self, path: &Path) -> Result<(), SimError> {
        if let Some(parent) = path.parent()
            && !self.made.borrow().contains(parent)
        {
            mkdirs(parent)?;
            self.made.borrow_mut().insert(parent.to_path_buf());
        }
        Ok(())
    }

    pub fn file(&self, rel: &str, content: &str, mode: u32) -> Result<(), SimError> {
        if self.fresh {
            let path = self.p(rel);
            self.parent(&path)?;
            create_file(&path, content, mode)?;
        }
        Ok(())
    }

    pub fn out(&self, rel: &str, content: &str, mode: u32) -> Result<OutFile, SimError> {
        let path = self.p(rel);
        if self.fresh {
            self.parent(&path)?;
            OutFile::create(path, content, mode)
        } else {
            Ok(OutFile::attach(path))
        }
    }

    /// A counter file kept at `width` bytes (see [`OutFile`]).
    pub fn counter(
        &self,
        rel: &str,
        content: &str,
        mode: u32,
        width: usize,
    ) -> Result<OutFile, SimError> {
        let path = self.p(rel);
        if self.fresh {
            self.parent(&path)?;
            OutFile::counter(path, content, mode, width)
        } else {
            Ok(OutFile::attach_counter(path, width))
        }
    }

    pub fn link(&self, rel_link: &str, rel_target: &str) -> Result<(), SimError> {
        if self.fresh {
            symlink_rel(&self.p(rel_link), &self.p(rel_target))?;
        }
        Ok(())
    }

    pub fn dir(&self, rel: &str) -> Result<(), SimError> {
        if self.fresh {
            mkdirs(&self.p(rel))?;
        }
        Ok(())
    }
}

/// Builds the model and its files. With `fresh`, writes the whole tree; otherwise attaches to an
/// existing one (counters keep their default offsets: the caller recovers them from the files).
pub(crate) fn build(
    root: &Path,
    profile: Profile,
    opts: &SimOptions,
    fresh: bool,
) -> Result<(Shared, Io), SimError> {
    let b = B { root, fresh, made: RefCell::new(HashSet::new()) };
    let mut s = Shared {
        root: root.to_path_buf(),
        profile,
        comps: model::components(profile, opts),
        counters: Vec::new(),
        regs: BTreeMap::new(),
        dirty: BTreeSet::new(),
    };
    let p0 = model::powers(profile, opts, opts.pattern.load_at(opts.load, 0.0), &Caps::default());
    for c in &mut s.comps {
        c.power = p0.get(&c.key).copied().unwrap_or(0.0);
    }
    let mut io = Io::default();
    let spec = profile.cpu();
    common(&b, profile)?;
    match profile {
        Profile::Intel2s => intel(&b, spec, &RAPL_2S, &ServerLayout::of(opts), &mut s, &mut io)?,
        Profile::IntelOffline => {
            let lay =
                ServerLayout { shuffle: false, mmio_duplicate: false, dram: true, image: false };
            intel(&b, spec, &RAPL_OFFLINE, &lay, &mut s, &mut io)?
        }
        Profile::IntelHybrid => intel_client(&b, &mut s, &mut io)?,
        Profile::Amd2s => amd(&b, opts, &mut s, &mut io)?,
        Profile::CrayEx => cray(&b, profile, opts, &s, &mut io)?,
        Profile::HwmonNode => hwmon(&b, opts, &s, &mut io)?,
        Profile::Nvidia4gpu | Profile::Nvidia8gpu => {
            intel(&b, spec, &RAPL_2S, &ServerLayout::of(opts), &mut s, &mut io)?;
            nvidia::build(&b, profile, opts, &s, &mut io)?;
        }
        Profile::AmdMi250x => {
            cray(&b, profile, opts, &s, &mut io)?;
            mi250x(&b, &s, &mut io)?;
        }
    }
    if fresh {
        for img in &mut io.images {
            img.update(&s)?;
        }
    }
    Ok((s, io))
}

/// The index of a component (the component lists are fixed per profile).
pub(crate) fn ci(s: &Shared, kind: DomainKind, index: u32) -> usize {
    ck(s, Key::Domain(DomainId::new(kind, index)))
}

/// The index of the component with `key`.
pub(crate) fn ck(s: &Shared, key: Key) -> usize {
    s.comps.iter().position(|c| c.key == key).unwrap_or(0)
}

fn counter(
    s: &mut Shared,
    kind: DomainKind,
    index: u32,
    esu: u32,
    scale: f64,
    offset: u32,
) -> usize {
    let comp = ci(s, kind, index);
    s.counters.push(RaplCounter { comp, esu, scale, offset });
    s.counters.len() - 1
}

// ---------------------------------------------------------------------------------------------
// CPUs: cpuinfo, topology, cpufreq, cpuidle, uncore.

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

/// The EPP strings of intel_pstate and amd-pstate-epp.
pub(crate) const EPP_CHOICES: &str = "default performance balance_performance balance_power power";

/// The EPP every policy starts with (the firmware default).
pub(crate) const EPP_DEFAULT: &str = "balance_performance";

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

fn common(b: &B<'_>, profile: Profile) -> Result<(), SimError> {
    if !b.fresh {
        return Ok(());
    }
    let spec = profile.cpu();
    let n = spec.ncpus();
    let online = spec.online();
    let offline: Vec<u32> = (0..n).filter(|&c| !spec.is_online(c)).collect();
    b.file("proc/cpuinfo", &cpuinfo(spec), 0o444)?;
    let cpu = "sys/devices/system/cpu";
    let all = format!("0-{}\n", n - 1);
    b.file(&format!("{cpu}/online"), &format!("{}\n", format_cpulist(&online)), 0o444)?;
    b.file(&format!("{cpu}/possible"), &all, 0o444)?;
    b.file(&format!("{cpu}/present"), &all, 0o444)?;
    b.file(&format!("{cpu}/offline"), &format!("{}\n", format_cpulist(&offline)), 0o444)?;
    b.file(&format!("{cpu}/kernel_max"), "8191\n", 0o444)?;
    let (idle_driver, states) = idle_states(profile);
    for c in 0..n {
        let d = format!("{cpu}/cpu{c}");
        let on = spec.is_online(c);
        if c > 0 {
            b.file(&format!("{d}/online"), if on { "1\n" } else { "0\n" }, 0o644)?;
        }
        // cpufreq: one policy per CPU, linked from cpuN/cpufreq. An offline CPU's policy stays,
        // inactive (no affected CPUs), and the CPU has no link.
        let cf = cpufreq_spec(profile, spec.kind(c));
        let pol = format!("{cpu}/cpufreq/policy{c}");
        let table = rules::parse_list(cf.freqs.unwrap_or(""));
        let cur = rules::policy_cur_khz(cf.driver, cf.governor, cf.min, cf.max, &table, None);
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
            files.push((
                "energy_performance_available_preferences",
                EPP_CHOICES.to_string(),
                0o444,
            ));
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
        if !on {
            // The kernel shows an offline CPU as its directory with `online` only.
            continue;
        }
        b.link(&format!("{d}/cpufreq"), &pol)?;
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
        match spec.kind(c) {
            CoreKind::P => {
                b.file(&format!("{d}/cpu_capacity"), &format!("{P_CAPACITY}\n"), 0o444)?
            }
            CoreKind::E => {
                b.file(&format!("{d}/cpu_capacity"), &format!("{E_CAPACITY}\n"), 0o444)?
            }
            CoreKind::Uniform => {}
        }
        // cpuidle
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
    }
    if spec.is_hybrid() {
        // The hybrid PMUs: how the kernel tells P-cores (cpu_core) from E-cores (cpu_atom).
        let p: Vec<u32> = (0..n).filter(|&c| spec.kind(c) == CoreKind::P).collect();
        let e: Vec<u32> = (0..n).filter(|&c| spec.kind(c) == CoreKind::E).collect();
        for (pmu, cpus) in [("cpu_core", p), ("cpu_atom", e)] {
            let dev = format!("sys/devices/{pmu}");
            b.file(&format!("{dev}/cpus"), &format!("{}\n", format_cpulist(&cpus)), 0o444)?;
            b.link(&format!("sys/bus/event_source/devices/{pmu}"), &dev)?;
        }
    }
    b.file(&format!("{cpu}/cpuidle/current_driver"), &format!("{idle_driver}\n"), 0o444)?;
    b.file(&format!("{cpu}/cpuidle/current_governor"), "menu\n", 0o644)?;
    b.file(&format!("{cpu}/cpuidle/current_governor_ro"), "menu\n", 0o444)?;
    b.file(&format!("{cpu}/cpuidle/available_governors"), "ladder menu teo \n", 0o444)?;
    // NUMA nodes: how hwmon and NVML readers map a device's numa_node to a package.
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
            b.link(&format!("{cpu}/cpu{c}/node{n}"), &d)?;
            b.link(&format!("{d}/cpu{c}"), &format!("{cpu}/cpu{c}"))?;
        }
    }
    if let Some((min_pct, num, turbo)) = intel_pstate_globals(profile) {
        for (f, v, mode) in [
            ("status", "active".to_string(), 0o644),
            ("no_turbo", "0".to_string(), 0o644),
            ("max_perf_pct", "100".to_string(), 0o644),
            ("min_perf_pct", min_pct.to_string(), 0o644),
            ("num_pstates", num.to_string(), 0o444),
            ("turbo_pct", turbo.to_string(), 0o444),
        ] {
            b.file(&format!("{cpu}/intel_pstate/{f}"), &format!("{v}\n"), mode)?;
        }
        if profile == Profile::IntelHybrid {
            b.file(&format!("{cpu}/intel_pstate/hwp_dynamic_boost"), "0\n", 0o644)?;
        }
    }
    match profile.cpu_profile() {
        Profile::Intel2s => {
            for p in 0..spec.packages {
                let u = format!("{UNCORE}/package_{p:02}_die_00");
                let (min, max) = (1_200_000, 2_400_000);
                for (f, v, mode) in [
                    ("initial_min_freq_khz", min, 0o444),
                    ("initial_max_freq_khz", max, 0o444),
                    ("min_freq_khz", min, 0o644),
                    ("max_freq_khz", max, 0o644),
                    ("current_freq_khz", rules::uncore_cur_khz(min, max), 0o444),
                ] {
                    b.file(&format!("{u}/{f}"), &format!("{v}\n"), mode)?;
                }
            }
        }
        Profile::IntelOffline => uncore_tpmi(b, spec)?,
        Profile::Amd2s => b.file(&format!("{cpu}/amd_pstate/status"), "active\n", 0o644)?,
        Profile::IntelHybrid => {}
        _ => b.file(&format!("{cpu}/cpufreq/boost"), "1\n", 0o644)?,
    }
    Ok(())
}

/// `intel_uncore_frequency` under the root.
pub(crate) const UNCORE: &str = "sys/devices/system/cpu/intel_uncore_frequency";

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
            v.push(("current_freq_khz", rules::uncore_cur_khz(min, max).to_string(), 0o444));
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

// ---------------------------------------------------------------------------------------------
// powercap zones and the MSR image.

const POWERCAP: &str = "sys/devices/virtual/powercap";
const CLASS_POWERCAP: &str = "sys/class/powercap";

enum ZoneLim {
    /// No constraints; `enabled` shows this.
    Fixed(bool),
    /// Constraints synced with a power-limit register.
    Sync { role: CapRole, reg: RegRef, n: usize, max_uw: [u64; 2] },
}

#[allow(clippy::too_many_arguments)]
fn zone(
    b: &B<'_>,
    s: &Shared,
    io: &mut Io,
    rel: &str,
    class: &str,
    name: &str,
    counter: usize,
    esu: u32,
    lim: ZoneLim,
) -> Result<(), SimError> {
    b.dir(rel)?;
    b.file(&format!("{rel}/name"), &format!("{name}\n"), 0o444)?;
    let uj = raw_to_uj(s.raw(counter), esu);
    io.zones.push(Zone {
        counter,
        esu,
        file: b.counter(
            &format!("{rel}/energy_uj"),
            &format!("{uj}\n"),
            0o444,
            max_range_uj(esu).to_string().len() + 1,
        )?,
    });
    b.file(&format!("{rel}/max_energy_range_uj"), &format!("{}\n", max_range_uj(esu)), 0o444)?;
    match lim {
        ZoneLim::Fixed(enabled) => {
            b.file(&format!("{rel}/enabled"), &format!("{}\n", u8::from(enabled)), 0o644)?
        }
        ZoneLim::Sync { role, reg, n, max_uw } => {
            let value = match reg {
                RegRef::Msr(key) => match s.regs.get(&key) {
                    Some(Reg::Rw(v)) => *v,
                    _ => 0,
                },
                RegRef::Local(v) => v,
            };
            let z = ZoneLimits::decode(value, n);
            let enabled =
                b.out(&format!("{rel}/enabled"), &format!("{}\n", u8::from(z.enabled)), 0o644)?;
            let (mut limit, mut window) = (Vec::new(), Vec::new());
            for (i, max) in max_uw.iter().enumerate().take(n) {
                let c = format!("{rel}/constraint_{i}");
                b.file(
                    &format!("{c}_name"),
                    if i == 0 { "long_term\n" } else { "short_term\n" },
                    0o444,
                )?;
                limit.push(b.out(
                    &format!("{c}_power_limit_uw"),
                    &format!("{}\n", z.c[i].limit_uw),
                    0o644,
                )?);
                window.push(b.out(
                    &format!("{c}_time_window_us"),
                    &format!("{}\n", z.c[i].window_us),
                    0o644,
                )?);
                b.file(&format!("{c}_max_power_uw"), &format!("{max}\n"), 0o444)?;
            }
            io.limits.push(LimitSync { role, reg, n, enabled, limit, window, last: z });
        }
    }
    b.link(&format!("{CLASS_POWERCAP}/{class}"), rel)
}

/// One package's MSR image: `dev/cpu/LEAD/msr`, hard-linked for the package's other CPUs.
fn image(
    b: &B<'_>,
    spec: &CpuSpec,
    package: u32,
    fixed: &[(u32, u64)],
    regs: Vec<(u32, Option<usize>)>,
) -> Result<MsrImage, SimError> {
    let cpus = spec.cpus_of(package);
    let lead = cpus.first().copied().unwrap_or(0);
    let path = b.p(&format!("dev/cpu/{lead}/msr"));
    let regs =
        regs.into_iter().map(|(addr, counter)| ImgReg { addr, counter, last: None }).collect();
    let mut img = MsrImage { path: path.clone(), file: None, regs, gone: false };
    if b.fresh {
        img.file = Some(write_file(&path, "", 0o600)?);
        for &(addr, value) in fixed {
            img.write_fixed(addr, value)?;
        }
        for &c in cpus.iter().skip(1) {
            let dir = b.p(&format!("dev/cpu/{c}"));
            mkdirs(&dir)?;
            let link = dir.join("msr");
            std::fs::hard_link(&path, &link).map_err(|e| SimError::io(&link, e))?;
        }
    }
    Ok(img)
}

/// The RAPL numbers of a two-socket Intel server (watts).
struct ServerRapl {
    /// Package PL1 and PL2 (both enabled).
    pkg: (u64, u64),
    /// PKG_POWER_INFO: thermal spec, minimum, maximum.
    pkg_info: (u64, u64, u64),
    /// Package `constraint_{0,1}_max_power_uw`.
    pkg_max: [u64; 2],
    /// DRAM PL1 (disabled).
    dram: u64,
    /// DRAM_POWER_INFO.
    dram_info: (u64, u64, u64),
    /// Platform (psys) PL1 and PL2 (both enabled).
    psys: (u64, u64),
}

const RAPL_2S: ServerRapl = ServerRapl {
    pkg: (150, 180),
    pkg_info: (150, 70, 300),
    pkg_max: [150, 300],
    dram: 40,
    dram_info: (40, 10, 60),
    psys: (500, 600),
};

const RAPL_OFFLINE: ServerRapl = ServerRapl {
    pkg: (350, 420),
    pkg_info: (350, 150, 700),
    pkg_max: [350, 700],
    dram: 60,
    dram_info: (60, 15, 90),
    psys: (1100, 1300),
};

/// Layout options of an Intel server (intel-2s' [`SimOptions`]; intel-offline has none, and no
/// MSR image).
struct ServerLayout {
    shuffle: bool,
    mmio_duplicate: bool,
    dram: bool,
    image: bool,
}

impl ServerLayout {
    fn of(opts: &SimOptions) -> ServerLayout {
        ServerLayout {
            shuffle: opts.shuffle_indices,
            mmio_duplicate: opts.mmio_duplicate,
            dram: !opts.omit_dram,
            image: true,
        }
    }
}

fn intel(
    b: &B<'_>,
    spec: &CpuSpec,
    rapl: &ServerRapl,
    lay: &ServerLayout,
    s: &mut Shared,
    io: &mut Io,
) -> Result<(), SimError> {
    use DomainKind::{Core, Memory, Package, Platform};
    let (shuffle, dram) = (lay.shuffle, lay.dram);
    let pkg_c = [
        counter(s, Package, 0, ESU_PKG, 1.0, 0x4000_0000),
        counter(s, Package, 1, ESU_PKG, 1.0, 0x5000_0000),
    ];
    let dram_c = if dram {
        [
            Some(counter(s, Memory, 0, ESU_16, 1.0, 0x1000_0000)),
            Some(counter(s, Memory, 1, ESU_16, 1.0, 0x2000_0000)),
        ]
    } else {
        [None, None]
    };
    let psys_c = counter(s, Platform, 0, ESU_PKG, 1.0, 0x6000_0000);
    let core_c = if shuffle {
        [
            Some(counter(s, Core, 0, ESU_PKG, 1.0, 0x3000_0000)),
            Some(counter(s, Core, 1, ESU_PKG, 1.0, 0x3800_0000)),
        ]
    } else {
        [None, None]
    };

    let pkg_limit = limit_reg(rapl.pkg.0, true, 0x0A, Some((rapl.pkg.1, true, 0x21)));
    let dram_limit = limit_reg(rapl.dram, false, 0x00, None);
    let psys_limit = limit_reg(rapl.psys.0, true, 0x0A, Some((rapl.psys.1, true, 0x21)));
    let (ps, pn, px) = rapl.pkg_info;
    let pkg_info = power_info_reg(ps, pn, px, 0x12);
    let (ds, dn, dx) = rapl.dram_info;
    let dram_info = power_info_reg(ds, dn, dx, 0x12);
    let counter_or_zero = |c: Option<usize>| c.map_or(Reg::Zero, Reg::Counter);
    for p in 0..2u32 {
        let i = p as usize;
        s.regs.insert((p, 0x606), Reg::Const(INTEL_UNITS));
        s.regs.insert((p, 0x610), Reg::Rw(pkg_limit));
        s.regs.insert((p, 0x611), Reg::Counter(pkg_c[i]));
        s.regs.insert((p, 0x614), Reg::Const(pkg_info));
        s.regs.insert((p, 0x618), Reg::Rw(dram_limit));
        s.regs.insert((p, 0x619), counter_or_zero(dram_c[i]));
        s.regs.insert((p, 0x61C), Reg::Const(dram_info));
        s.regs.insert((p, 0x639), counter_or_zero(core_c[i]));
    }
    s.regs.insert((0, 0x64D), Reg::Counter(psys_c));
    s.regs.insert((0, 0x65C), Reg::Rw(psys_limit));

    let base = format!("{POWERCAP}/intel-rapl");
    b.file(&format!("{base}/enabled"), "1\n", 0o644)?;
    b.link(&format!("{CLASS_POWERCAP}/intel-rapl"), &base)?;
    let (pkg_idx, psys_idx) = if shuffle { ([2, 1], 0) } else { ([0, 1], 2) };
    let pkg_max_uw = rapl.pkg_max.map(|w| w * 1_000_000);
    let pkg_lim =
        |p: u32, reg| ZoneLim::Sync { role: CapRole::Package(p), reg, n: 2, max_uw: pkg_max_uw };
    for p in 0..2u32 {
        let i = p as usize;
        let zname = format!("intel-rapl:{}", pkg_idx[i]);
        let zrel = format!("{base}/{zname}");
        zone(
            b,
            s,
            io,
            &zrel,
            &zname,
            &format!("package-{p}"),
            pkg_c[i],
            ESU_PKG,
            pkg_lim(p, RegRef::Msr((p, 0x610))),
        )?;
        let mut dev = Device {
            ids: vec![DomainId::new(Package, p)],
            truncate: vec![b.p(&zrel)],
            remove: vec![b.p(&zrel), b.p(&format!("{CLASS_POWERCAP}/{zname}"))],
            removed: false,
        };
        let mut subs: Vec<(DomainId, &str, usize, u32, ZoneLim)> = Vec::new();
        if let Some(c) = core_c[i] {
            subs.push((DomainId::new(Core, p), "core", c, ESU_PKG, ZoneLim::Fixed(false)));
        }
        if let Some(c) = dram_c[i] {
            let lim = ZoneLim::Sync {
                role: CapRole::Memory(p),
                reg: RegRef::Msr((p, 0x618)),
                n: 1,
                max_uw: [rapl.dram * 1_000_000, 0],
            };
            subs.push((DomainId::new(Memory, p), "dram", c, ESU_16, lim));
        }
        for (k, (id, name, c, esu, lim)) in subs.into_iter().enumerate() {
            let sname = format!("{zname}:{k}");
            let srel = format!("{zrel}/{sname}");
            zone(b, s, io, &srel, &sname, name, c, esu, lim)?;
            let class = b.p(&format!("{CLASS_POWERCAP}/{sname}"));
            dev.ids.push(id);
            dev.remove.push(class.clone());
            io.devices.push(Device {
                ids: vec![id],
                truncate: vec![b.p(&srel)],
                remove: vec![b.p(&srel), class],
                removed: false,
            });
        }
        if p == 0 && lay.mmio_duplicate {
            let mbase = format!("{POWERCAP}/intel-rapl-mmio");
            b.file(&format!("{mbase}/enabled"), "1\n", 0o644)?;
            b.link(&format!("{CLASS_POWERCAP}/intel-rapl-mmio"), &mbase)?;
            let mrel = format!("{mbase}/intel-rapl-mmio:0");
            zone(
                b,
                s,
                io,
                &mrel,
                "intel-rapl-mmio:0",
                "package-0",
                pkg_c[0],
                ESU_PKG,
                pkg_lim(0, RegRef::Local(pkg_limit)),
            )?;
            dev.truncate.push(b.p(&mrel));
            dev.remove.push(b.p(&mrel));
            dev.remove.push(b.p(&format!("{CLASS_POWERCAP}/intel-rapl-mmio:0")));
        }
        io.devices.push(dev);
    }
    let zname = format!("intel-rapl:{psys_idx}");
    let zrel = format!("{base}/{zname}");
    let lim = ZoneLim::Sync {
        role: CapRole::Platform,
        reg: RegRef::Msr((0, 0x65C)),
        n: 2,
        max_uw: [0, 0],
    };
    zone(b, s, io, &zrel, &zname, "psys", psys_c, ESU_PKG, lim)?;
    io.devices.push(Device {
        ids: vec![DomainId::new(Platform, 0)],
        truncate: vec![b.p(&zrel)],
        remove: vec![b.p(&zrel), b.p(&format!("{CLASS_POWERCAP}/{zname}"))],
        removed: false,
    });

    // MSR image: limit and info registers first (they overlap each other and the energy
    // registers), then units and energy registers, which stay exact.
    let fixed = [
        (0x610, pkg_limit),
        (0x614, pkg_info),
        (0x618, dram_limit),
        (0x61C, dram_info),
        (0x65C, psys_limit),
        (0x606, INTEL_UNITS),
    ];
    if !lay.image {
        return Ok(());
    }
    for p in 0..2u32 {
        let i = p as usize;
        let mut regs = vec![(0x611, Some(pkg_c[i])), (0x619, dram_c[i])];
        if let Some(c) = core_c[i] {
            regs.push((0x639, Some(c)));
        }
        regs.push((0x64D, Some(psys_c)));
        io.images.push(image(b, spec, p, &fixed, regs)?);
    }
    Ok(())
}

/// intel-hybrid: a client package. `intel-rapl:0` package-0 (long_term 125 W over 56 s,
/// short_term 253 W, and a `peak_power` constraint_2 that only shows) with `core` (`:0:0`) and
/// `uncore` (`:0:1`) subzones, and `intel-rapl:1` psys (limits disabled). No MSR image.
fn intel_client(b: &B<'_>, s: &mut Shared, io: &mut Io) -> Result<(), SimError> {
    use DomainKind::{Core, Package, Platform, Uncore};
    let pkg_c = counter(s, Package, 0, ESU_PKG, 1.0, 0x4000_0000);
    let core_c = counter(s, Core, 0, ESU_PKG, 1.0, 0x3000_0000);
    let uncore_c = counter(s, Uncore, 0, ESU_PKG, 1.0, 0x2000_0000);
    let psys_c = counter(s, Platform, 0, ESU_PKG, 1.0, 0x6000_0000);
    let tau = us_to_window_field(56_000_000);
    let pkg_limit = limit_reg(125, true, tau, Some((253, true, 0x21)));
    let psys_limit = limit_reg(300, false, tau, Some((360, false, 0x21)));
    s.regs.insert((0, 0x606), Reg::Const(INTEL_UNITS));
    s.regs.insert((0, 0x610), Reg::Rw(pkg_limit));
    s.regs.insert((0, 0x611), Reg::Counter(pkg_c));
    s.regs.insert((0, 0x614), Reg::Const(power_info_reg(125, 0, 253, 0x12)));
    s.regs.insert((0, 0x639), Reg::Counter(core_c));
    s.regs.insert((0, 0x641), Reg::Counter(uncore_c));
    s.regs.insert((0, 0x64D), Reg::Counter(psys_c));
    s.regs.insert((0, 0x65C), Reg::Rw(psys_limit));

    let base = format!("{POWERCAP}/intel-rapl");
    b.file(&format!("{base}/enabled"), "1\n", 0o644)?;
    b.link(&format!("{CLASS_POWERCAP}/intel-rapl"), &base)?;
    let zrel = format!("{base}/intel-rapl:0");
    let lim = ZoneLim::Sync {
        role: CapRole::Package(0),
        reg: RegRef::Msr((0, 0x610)),
        n: 2,
        max_uw: [253_000_000, 253_000_000],
    };
    zone(b, s, io, &zrel, "intel-rapl:0", "package-0", pkg_c, ESU_PKG, lim)?;
    b.file(&format!("{zrel}/constraint_2_name"), "peak_power\n", 0o444)?;
    b.file(&format!("{zrel}/constraint_2_power_limit_uw"), "380000000\n", 0o644)?;
    let mut dev = Device {
        ids: vec![DomainId::new(Package, 0)],
        truncate: vec![b.p(&zrel)],
        remove: vec![b.p(&zrel), b.p(&format!("{CLASS_POWERCAP}/intel-rapl:0"))],
        removed: false,
    };
    for (k, (kind, name, c)) in
        [(Core, "core", core_c), (Uncore, "uncore", uncore_c)].into_iter().enumerate()
    {
        let sname = format!("intel-rapl:0:{k}");
        let srel = format!("{zrel}/{sname}");
        zone(b, s, io, &srel, &sname, name, c, ESU_PKG, ZoneLim::Fixed(false))?;
        let class = b.p(&format!("{CLASS_POWERCAP}/{sname}"));
        let id = DomainId::new(kind, 0);
        dev.ids.push(id);
        dev.remove.push(class.clone());
        io.devices.push(Device {
            ids: vec![id],
            truncate: vec![b.p(&srel)],
            remove: vec![b.p(&srel), class],
            removed: false,
        });
    }
    io.devices.push(dev);
    let prel = format!("{base}/intel-rapl:1");
    let lim = ZoneLim::Sync {
        role: CapRole::Platform,
        reg: RegRef::Msr((0, 0x65C)),
        n: 2,
        max_uw: [0, 0],
    };
    zone(b, s, io, &prel, "intel-rapl:1", "psys", psys_c, ESU_PKG, lim)?;
    io.devices.push(Device {
        ids: vec![DomainId::new(Platform, 0)],
        truncate: vec![b.p(&prel)],
        remove: vec![b.p(&prel), b.p(&format!("{CLASS_POWERCAP}/intel-rapl:1"))],
        removed: false,
    });
    Ok(())
}

fn amd(b: &B<'_>, opts: &SimOptions, s: &mut Shared, io: &mut Io) -> Result<(), SimError> {
    use DomainKind::{Core, Package};
    let spec = Profile::Amd2s.cpu();
    let share = 1.0 / f64::from(spec.cores);
    let pkg_c = [
        counter(s, Package, 0, ESU_16, 1.0, 0x4000_0000),
        counter(s, Package, 1, ESU_16, 1.0, 0x5000_0000),
    ];
    let core_c = [
        counter(s, Core, 0, ESU_16, 1.0, 0x1000_0000),
        counter(s, Core, 1, ESU_16, 1.0, 0x2000_0000),
    ];
    let share_c = [
        counter(s, Core, 0, ESU_16, share, 0x0800_0000),
        counter(s, Core, 1, ESU_16, share, 0x0C00_0000),
    ];
    for p in 0..2u32 {
        let i = p as usize;
        s.regs.insert((p, 0xC001_0299), Reg::Const(AMD_UNITS));
        s.regs.insert((p, 0xC001_029A), Reg::Counter(share_c[i]));
        s.regs.insert((p, 0xC001_029B), Reg::Counter(pkg_c[i]));
    }
    let base = format!("{POWERCAP}/intel-rapl");
    b.file(&format!("{base}/enabled"), "1\n", 0o644)?;
    b.link(&format!("{CLASS_POWERCAP}/intel-rapl"), &base)?;
    let idx = if opts.shuffle_indices { [1, 0] } else { [0, 1] };
    for p in 0..2u32 {
        let i = p as usize;
        let zname = format!("intel-rapl:{}", idx[i]);
        let zrel = format!("{base}/{zname}");
        zone(
            b,
            s,
            io,
            &zrel,
            &zname,
            &format!("package-{p}"),
            pkg_c[i],
            ESU_16,
            ZoneLim::Fixed(false),
        )?;
        let sname = format!("{zname}:0");
        let srel = format!("{zrel}/{sname}");
        zone(b, s, io, &srel, &sname, "core", core_c[i], ESU_16, ZoneLim::Fixed(false))?;
        let (zclass, sclass) =
            (b.p(&format!("{CLASS_POWERCAP}/{zname}")), b.p(&format!("{CLASS_POWERCAP}/{sname}")));
        io.devices.push(Device {
            ids: vec![DomainId::new(Package, p), DomainId::new(Core, p)],
            truncate: vec![b.p(&zrel)],
            remove: vec![b.p(&zrel), zclass, sclass.clone()],
            removed: false,
        });
        io.devices.push(Device {
            ids: vec![DomainId::new(Core, p)],
            truncate: vec![b.p(&srel)],
            remove: vec![b.p(&srel), sclass],
            removed: false,
        });
    }
    // 0xC0010299, 0xC001029A and 0xC001029B are one byte apart, so a file image can hold only
    // some of them: the core register is written first and overwritten by the unit register, then
    // the package register is written last and kept exact. The unit register then reads its
    // power-unit and energy-unit fields right (bits 12:0) and the package's bytes above them;
    // the core register is meaningless (SimMsr has all three exact).
    for p in 0..2u32 {
        let i = p as usize;
        let share0 = u64::from(s.raw(share_c[i]));
        let fixed = [(0xC001_029A, share0), (0xC001_0299, AMD_UNITS)];
        io.images.push(image(b, spec, p, &fixed, vec![(0xC001_029B, Some(pkg_c[i]))])?);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// HPE Cray pm_counters.

pub(crate) const PM_DIR: &str = "sys/cray/pm_counters";

fn cray(
    b: &B<'_>,
    profile: Profile,
    opts: &SimOptions,
    s: &Shared,
    io: &mut Io,
) -> Result<(), SimError> {
    let ts = UNIX_START_US;
    // (component, domain removable by `remove_device`, file prefix, initial joules)
    let mut names: Vec<(Key, Option<DomainId>, String, u64)> = vec![
        (Key::Domain(DomainId::NODE), Some(DomainId::NODE), String::new(), 5_123_456),
        (
            Key::Domain(DomainId::new(DomainKind::Package, 0)),
            Some(DomainId::new(DomainKind::Package, 0)),
            "cpu_".into(),
            1_234_567,
        ),
        (
            Key::Domain(DomainId::new(DomainKind::Memory, 0)),
            Some(DomainId::new(DomainKind::Memory, 0)),
            "memory_".into(),
            234_567,
        ),
    ];
    for k in 0..CRAY_ACCELS {
        // amd-mi250x: accelK is module K (its GPU numbers are the GCDs, removed through hwmon).
        let (key, removable) = if profile == Profile::AmdMi250x {
            (Key::Module(k), None)
        } else {
            let id = DomainId::new(DomainKind::Gpu, k);
            (Key::Domain(id), Some(id))
        };
        names.push((key, removable, format!("accel{k}_"), 987_654 + 11_111 * u64::from(k)));
    }
    let mut comps = Vec::new();
    for (key, removable, prefix, offset) in names {
        let comp = ck(s, key);
        let w = s.comps.get(comp).map_or(0.0, |c| c.power);
        let (pr, er) = (format!("{PM_DIR}/{prefix}power"), format!("{PM_DIR}/{prefix}energy"));
        let power =
            b.counter(&pr, &format!("{} W {ts} us\n", w.round() as u64), 0o444, PM_WIDTH)?;
        let energy = b.counter(&er, &format!("{offset} J {ts} us\n"), 0o444, PM_WIDTH)?;
        io.devices.push(Device {
            ids: removable.into_iter().collect(),
            truncate: vec![b.p(&pr), b.p(&er)],
            remove: vec![b.p(&pr), b.p(&er)],
            removed: false,
        });
        comps.push(PmComp { comp, power, energy, offset_j: offset, since: 0.0 });
    }
    let startup_us = ts - 86_400_000_000;
    let control = [
        b.counter(&format!("{PM_DIR}/freshness"), "1\n", 0o444, NUMBER_WIDTH)?,
        b.counter(&format!("{PM_DIR}/generation"), "1\n", 0o444, NUMBER_WIDTH)?,
        b.counter(&format!("{PM_DIR}/startup"), &format!("{startup_us}\n"), 0o444, NUMBER_WIDTH)?,
    ];
    io.pm = Some(PmCounters::new(comps, control, startup_us, opts.pm_faults, ts * 1000));
    for (name, role) in [("power_cap", CapRole::Node), ("accel_power_cap", CapRole::Accel)] {
        let f = b.out(&format!("{PM_DIR}/{name}"), "0 W\n", 0o644)?;
        io.controls.push(Control::new(role, CtlKind::PmWatts, f, 0));
    }
    b.file(&format!("{PM_DIR}/raw_scan_hz"), "10\n", 0o444)?;
    b.file(&format!("{PM_DIR}/version"), "2\n", 0o444)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// hwmon: ACPI power meter and amdgpu.

pub(crate) const METER_DEV: &str = "sys/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI000D:00";
pub(crate) const GPU_PCI: &str = "sys/devices/pci0000:00/0000:00:03.1/0000:03:00.0";
const NVME_DEV: &str = "sys/devices/pci0000:00/0000:00:01.1/0000:01:00.0/nvme/nvme0";

fn hwmon(b: &B<'_>, opts: &SimOptions, s: &Shared, io: &mut Io) -> Result<(), SimError> {
    let (meter_n, gpu_n) = if opts.shuffle_indices { (2, 0) } else { (0, 1) };
    let node = ci(s, DomainKind::Node, 0);
    let gpu = ci(s, DomainKind::Gpu, 0);
    let watts = |c: usize| s.comps.get(c).map_or(0.0, |k| k.power);

    // ACPI power meter.
    b.file(&format!("{METER_DEV}/hid"), "ACPI000D\n", 0o444)?;
    let chip = format!("{METER_DEV}/hwmon/hwmon{meter_n}");
    b.file(&format!("{chip}/name"), "power_meter\n", 0o444)?;
    hwmon_out(b, io, &format!("{chip}/power1_average"), node, HwmonKind::PowerUw, watts(node))?;
    b.file(&format!("{chip}/power1_average_interval"), "1000\n", 0o644)?;
    let (cap_min, cap_max) = (200_000_000, 1_000_000_000);
    let cap = b.out(&format!("{chip}/power1_cap"), "0\n", 0o644)?;
    let kind = CtlKind::Microwatts { min: cap_min, max: cap_max, quantum: 1000, round: true };
    io.controls.push(Control::new(CapRole::Node, kind, cap, 0));
    b.file(&format!("{chip}/power1_cap_max"), &format!("{cap_max}\n"), 0o444)?;
    b.file(&format!("{chip}/power1_cap_min"), &format!("{cap_min}\n"), 0o444)?;
    b.file(&format!("{chip}/power1_is_battery"), "0\n", 0o444)?;
    b.link(&format!("{chip}/device"), METER_DEV)?;
    let meter_class = format!("sys/class/hwmon/hwmon{meter_n}");
    b.link(&meter_class, &chip)?;
    io.devices.push(Device {
        ids: vec![DomainId::NODE],
        truncate: vec![b.p(METER_DEV)],
        remove: vec![b.p(METER_DEV), b.p(&meter_class)],
        removed: false,
    });

    // amdgpu.
    for (f, v) in
        [("numa_node", "0"), ("vendor", "0x1002"), ("device", "0x740c"), ("class", "0x038000")]
    {
        b.file(&format!("{GPU_PCI}/{f}"), &format!("{v}\n"), 0o444)?;
    }
    let chip = format!("{GPU_PCI}/hwmon/hwmon{gpu_n}");
    b.file(&format!("{chip}/name"), "amdgpu\n", 0o444)?;
    let w = watts(gpu);
    hwmon_out(b, io, &format!("{chip}/power1_average"), gpu, HwmonKind::PowerUw, w)?;
    hwmon_out(b, io, &format!("{chip}/temp1_input"), gpu, HwmonKind::GpuTemp, w)?;
    b.file(&format!("{chip}/temp1_label"), "edge\n", 0o444)?;
    let cap = b.out(&format!("{chip}/power1_cap"), "300000000\n", 0o644)?;
    let kind = CtlKind::Microwatts { min: 0, max: 300_000_000, quantum: 1_000_000, round: false };
    io.controls.push(Control::new(CapRole::Gpu, kind, cap, 300_000_000));
    for (f, v) in [
        ("power1_cap_min", "0"),
        ("power1_cap_max", "300000000"),
        ("power1_cap_default", "300000000"),
        ("power1_label", "PPT"),
    ] {
        b.file(&format!("{chip}/{f}"), &format!("{v}\n"), 0o444)?;
    }
    b.link(&format!("{chip}/device"), GPU_PCI)?;
    let gpu_class = format!("sys/class/hwmon/hwmon{gpu_n}");
    b.link(&gpu_class, &chip)?;
    let card = format!("{GPU_PCI}/drm/card0");
    b.link(&format!("{card}/device"), GPU_PCI)?;
    b.link("sys/class/drm/card0", &card)?;
    io.devices.push(Device {
        ids: vec![DomainId::new(DomainKind::Gpu, 0)],
        truncate: vec![b.p(GPU_PCI)],
        remove: vec![b.p(GPU_PCI), b.p(&gpu_class), b.p("sys/class/drm/card0")],
        removed: false,
    });

    if opts.shuffle_indices {
        let chip = format!("{NVME_DEV}/hwmon1");
        b.file(&format!("{chip}/name"), "nvme\n", 0o444)?;
        b.file(&format!("{chip}/temp1_input"), "38850\n", 0o444)?;
        b.link(&format!("{chip}/device"), NVME_DEV)?;
        b.link("sys/class/hwmon/hwmon1", &chip)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// PCI devices shared by the GPU profiles.

/// Writes a PCI device directory `sys/devices/{parent}/{addr}` with its identification files and
/// `local_cpulist`, linked from `sys/bus/pci/devices`; returns the device's relative path.
pub(crate) fn pci_device(
    b: &B<'_>,
    profile: Profile,
    parent: &str,
    addr: &str,
    numa: u32,
    ids: [&str; 3],
) -> Result<String, SimError> {
    let dev = format!("sys/devices/{parent}/{addr}");
    let cpus = profile.numa_nodes().get(numa as usize).cloned().unwrap_or_default();
    let [vendor, device, class] = ids;
    for (f, v) in [
        ("numa_node", numa.to_string()),
        ("vendor", vendor.to_string()),
        ("device", device.to_string()),
        ("subsystem_vendor", vendor.to_string()),
        ("class", class.to_string()),
        ("local_cpulist", format_cpulist(&cpus)),
    ] {
        b.file(&format!("{dev}/{f}"), &format!("{v}\n"), 0o444)?;
    }
    b.link(&format!("{PCI_DEVICES}/{addr}"), &dev)?;
    Ok(dev)
}

pub(crate) const PCI_DEVICES: &str = "sys/bus/pci/devices";

// ---------------------------------------------------------------------------------------------
// amd-mi250x: eight amdgpu GCDs (pm_counters are cray-ex's).

/// amd-mi250x GCDs in PCI order: (address, NUMA node, hwmon number). The NUMA nodes are
/// Frontier's; the hwmon numbers are deliberately not in PCI order.
const MI250X: [(&str, u32, u32); MI250X_GCDS as usize] = [
    ("0000:c1:00.0", 3, 3),
    ("0000:c6:00.0", 3, 6),
    ("0000:c9:00.0", 1, 0),
    ("0000:ce:00.0", 1, 5),
    ("0000:d1:00.0", 0, 2),
    ("0000:d6:00.0", 0, 7),
    ("0000:d9:00.0", 2, 1),
    ("0000:de:00.0", 2, 4),
];

/// An MI250X GCD's `power1_cap_max` and `power1_cap_default`, µW.
const MI250X_CAP_MAX_UW: u64 = 560_000_000;

fn mi250x(b: &B<'_>, s: &Shared, io: &mut Io) -> Result<(), SimError> {
    for (i, (addr, numa, h)) in MI250X.into_iter().enumerate() {
        let n = i as u32;
        let parent = format!("pci0000:c0/0000:c0:{:02x}.1", n + 1);
        let dev = pci_device(
            b,
            Profile::AmdMi250x,
            &parent,
            addr,
            numa,
            ["0x1002", "0x7408", "0x038000"],
        )?;
        let gcd = ci(s, DomainKind::Gpu, n);
        let w = s.comps.get(gcd).map_or(0.0, |c| c.power);
        let chip = format!("{dev}/hwmon/hwmon{h}");
        b.file(&format!("{chip}/name"), "amdgpu\n", 0o444)?;
        hwmon_out(b, io, &format!("{chip}/power1_average"), gcd, HwmonKind::PowerUw, w)?;
        hwmon_out(b, io, &format!("{chip}/temp1_input"), gcd, HwmonKind::GpuTemp, w)?;
        b.file(&format!("{chip}/temp1_label"), "edge\n", 0o444)?;
        let cap = b.out(&format!("{chip}/power1_cap"), &format!("{MI250X_CAP_MAX_UW}\n"), 0o644)?;
        let kind = CtlKind::Microwatts {
            min: 0,
            max: MI250X_CAP_MAX_UW,
            quantum: 1_000_000,
            round: false,
        };
        io.controls.push(Control::new(CapRole::GpuN(n), kind, cap, MI250X_CAP_MAX_UW));
        for (f, v) in [
            ("power1_cap_min", "0".to_string()),
            ("power1_cap_max", MI250X_CAP_MAX_UW.to_string()),
            ("power1_cap_default", MI250X_CAP_MAX_UW.to_string()),
            ("power1_label", "PPT".to_string()),
        ] {
            b.file(&format!("{chip}/{f}"), &format!("{v}\n"), 0o444)?;
        }
        b.link(&format!("{chip}/device"), &dev)?;
        let hwmon_class = format!("sys/class/hwmon/hwmon{h}");
        b.link(&hwmon_class, &chip)?;
        let card = format!("{dev}/drm/card{n}");
        b.link(&format!("{card}/device"), &dev)?;
        let card_class = format!("sys/class/drm/card{n}");
        b.link(&card_class, &card)?;
        io.devices.push(Device {
            ids: vec![DomainId::new(DomainKind::Gpu, n)],
            truncate: vec![b.p(&dev)],
            remove: vec![
                b.p(&dev),
                b.p(&hwmon_class),
                b.p(&card_class),
                b.p(&format!("{PCI_DEVICES}/{addr}")),
            ],
            removed: false,
        });
    }
    Ok(())
}
