//! What the node has for frequency control, discovered from sysfs under a [`Root`].
//!
//! [`discover`] reads every CPU directory (not only `cpu0`), the online list as a kernel CPU list
//! (any form, `0-3,8,10-11`), each CPU's topology (absent for offline CPUs: `None`, never a
//! failure), every cpufreq policy, each online CPU's own cpuidle states, both uncore layouts
//! (legacy `package_XX_die_YY` and TPMI `uncoreNN`), and hybrid core types from the kernel's own
//! data (`cpu_core`/`cpu_atom` PMU CPU lists, or differing `cpu_capacity`), never from
//! frequencies: a non-hybrid part whose favoured cores report a higher `cpuinfo_max_freq` stays
//! [`CoreType::Uniform`]. What cannot be read becomes a line in [`FreqTopology::warnings`];
//! discovery never panics and never fails.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use powerstack_hw::Root;
use powerstack_hw::error::HwError;
use powerstack_hw::file::{list_dir, read_trimmed};
use powerstack_model::cpulist::{format_cpulist, parse_cpulist};

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
    /// Core type. On a hybrid part, a CPU the kernel names in no hybrid PMU list (an offline
    /// CPU) takes the type of the CPUs with its `cpu_capacity`; without one it stays `Uniform`.
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

/// Where the kernel lists CPUs, cpufreq, cpuidle and uncore frequency.
pub const CPU_DIR: &str = "/sys/devices/system/cpu";

/// The hybrid PMUs whose `cpus` file lists the CPUs of one core type
/// (`/sys/devices/<pmu>/cpus`), with the type they stand for.
pub const HYBRID_PMUS: [(&str, CoreType); 3] = [
    ("cpu_core", CoreType::Performance),
    ("cpu_atom", CoreType::Efficiency),
    ("cpu_lowpower", CoreType::Efficiency),
];

impl FreqTopology {
    /// The CPU numbered `id`.
    pub fn cpu(&self, id: u32) -> Option<&CpuInfo> {
        self.cpus.iter().find(|c| c.id == id)
    }

    /// The cpufreq policy covering `cpu`: the one recorded on the CPU, else the first whose
    /// `related_cpus` lists it.
    pub fn policy_of(&self, cpu: u32) -> Option<&Policy> {
        if let Some(id) = self.cpu(cpu).and_then(|c| c.policy)
            && let Some(p) = self.policies.iter().find(|p| p.id == id)
        {
            return Some(p);
        }
        self.policies.iter().find(|p| p.cpus.contains(&cpu))
    }

    /// The online CPUs, sorted.
    pub fn online_cpus(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.cpus.iter().filter(|c| c.online).map(|c| c.id).collect();
        v.sort_unstable();
        v
    }

    /// The offline CPUs, sorted.
    pub fn offline_cpus(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.cpus.iter().filter(|c| !c.online).map(|c| c.id).collect();
        v.sort_unstable();
        v
    }

    /// The cpuidle state called `name` (`C6`) of `cpu`, when that CPU has it. States are per CPU:
    /// one CPU having a state says nothing about another.
    pub fn idle_state(&self, cpu: u32, name: &str) -> Option<&IdleState> {
        self.idle_states.get(&cpu)?.iter().find(|s| s.name == name)
    }

    /// The core types present among the CPUs, sorted (`[Uniform]` on a non-hybrid part,
    /// `[Performance, Efficiency]` on a hybrid one; empty when no CPU was found).
    pub fn core_types(&self) -> Vec<CoreType> {
        let set: BTreeSet<CoreType> = self.cpus.iter().map(|c| c.core_type).collect();
        set.into_iter().collect()
    }

    /// The CPUs (online or not) of one core type, sorted.
    pub fn cpus_of_type(&self, core_type: CoreType) -> Vec<u32> {
        let mut v: Vec<u32> =
            self.cpus.iter().filter(|c| c.core_type == core_type).map(|c| c.id).collect();
        v.sort_unstable();
        v
    }

    /// The distinct policies covering any of `cpus`, by policy number.
    pub fn policies_of(&self, cpus: &[u32]) -> Vec<&Policy> {
        let mut ids: Vec<u32> =
            cpus.iter().filter_map(|&c| self.policy_of(c).map(|p| p.id)).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.iter().filter_map(|id| self.policies.iter().find(|p| p.id == *id)).collect()
    }

    /// The uncore domains to control: the TPMI domains when there are any (the legacy
    /// `package_XX_die_YY` entries are then only package-level aliases of them), else the legacy
    /// ones.
    pub fn preferred_uncore(&self) -> Vec<&UncoreDomain> {
        let tpmi: Vec<&UncoreDomain> =
            self.uncore.iter().filter(|u| u.layout == UncoreLayout::Tpmi).collect();
        if tpmi.is_empty() { self.uncore.iter().collect() } else { tpmi }
    }

    /// One line per feature for people: (feature, status), in a fixed order: `CPUs`,
    /// `frequency scaling`, `EPP`, `C-states`, `uncore`, `hybrid`. A feature the node lacks reads
    /// `no...`, with the reason when one is known.
    pub fn capability_report(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let caps = &self.capabilities;

        let online = self.online_cpus();
        let offline = self.offline_cpus();
        let mut cpus_line = format!("{} online", online.len());
        if !online.is_empty() {
            cpus_line.push_str(&format!(" ({})", format_cpulist(&online)));
        }
        if !offline.is_empty() {
            cpus_line.push_str(&format!(
                ", {} offline ({})",
                offline.len(),
                format_cpulist(&offline)
            ));
        }
        out.push(("CPUs".to_string(), cpus_line));

        let scaling = if self.policies.is_empty() {
            "no: no cpufreq policies (no cpufreq driver loaded)".to_string()
        } else {
            let drivers = if caps.drivers.is_empty() {
                "unknown driver".to_string()
            } else {
                caps.drivers.join(", ")
            };
            let status = caps.pstate_status.as_ref().map(|s| format!(" ({s})")).unwrap_or_default();
            let n = self.policies.len();
            let min = self.policies.iter().map(|p| p.cpuinfo_min_khz).min().unwrap_or(0);
            let max = self.policies.iter().map(|p| p.cpuinfo_max_khz).max().unwrap_or(0);
            let plural = if n == 1 { "policy" } else { "policies" };
            format!("{drivers}{status}, {n} {plural}, {min}..{max} kHz")
        };
        out.push(("frequency scaling".to_string(), scaling));

        let with_epp = self.policies.iter().filter(|p| p.epp_choices.is_some()).count();
        let epp = if caps.epp {
            let choices = self
                .policies
                .iter()
                .find_map(|p| p.epp_choices.as_ref())
                .map(|c| c.join(" "))
                .unwrap_or_default();
            format!("yes: {choices}")
        } else if with_epp > 0 {
            format!("partial: {with_epp} of {} policies have EPP", self.policies.len())
        } else {
            "no".to_string()
        };
        out.push(("EPP".to_string(), epp));

        let cstates = match &caps.idle_driver {
            None => "no: no cpuidle driver".to_string(),
            Some(driver) => {
                let mut names: Vec<&str> = Vec::new();
                for states in self.idle_states.values() {
                    for s in states {
                        if !names.contains(&s.name.as_str()) {
                            names.push(&s.name);
                        }
                    }
                }
                let lists: BTreeSet<Vec<&str>> = self
                    .idle_states
                    .values()
                    .map(|v| v.iter().map(|s| s.name.as_str()).collect())
                    .collect();
                if names.is_empty() {
                    format!("{driver}: no states")
                } else if lists.len() > 1 {
                    format!("{driver}: {} (not the same on every CPU)", names.join(" "))
                } else {
                    format!("{driver}: {}", names.join(" "))
                }
            }
        };
        out.push(("C-states".to_string(), cstates));

        let tpmi = self.uncore.iter().filter(|u| u.layout == UncoreLayout::Tpmi).count();
        let legacy = self.uncore.iter().filter(|u| u.layout == UncoreLayout::Legacy).count();
        let mut parts = Vec::new();
        if tpmi > 0 {
            parts.push(format!("TPMI ({tpmi} domain{})", if tpmi == 1 { "" } else { "s" }));
        }
        if legacy > 0 {
            parts.push(format!("legacy package/die ({legacy})"));
        }
        let uncore = if parts.is_empty() { "no".to_string() } else { parts.join(" + ") };
        out.push(("uncore".to_string(), uncore));

        let hybrid = if caps.hybrid {
            let mut parts = Vec::new();
            for (ty, label) in [(CoreType::Performance, "P-core"), (CoreType::Efficiency, "E-core")]
            {
                let cpus: Vec<&CpuInfo> = self.cpus.iter().filter(|c| c.core_type == ty).collect();
                let cores: BTreeSet<CoreKey> = cpus.iter().map(|c| core_key(c)).collect();
                let ids: Vec<u32> = cpus.iter().map(|c| c.id).collect();
                let n = cores.len();
                let plural = if n == 1 { "" } else { "s" };
                parts.push(format!("{n} {label}{plural} (CPUs {})", format_cpulist(&ids)));
            }
            parts.join(", ")
        } else {
            "no".to_string()
        };
        out.push(("hybrid".to_string(), hybrid));
        out
    }
}

/// What identifies a physical core: (package, die, core) when known, else the lowest SMT sibling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum CoreKey {
    Topology(u32, u32, u32),
    Thread(u32),
}

fn core_key(c: &CpuInfo) -> CoreKey {
    match (c.package, c.core) {
        (Some(p), Some(core)) => CoreKey::Topology(p, c.die.unwrap_or(0), core),
        _ => CoreKey::Thread(c.siblings.iter().copied().min().unwrap_or(c.id).min(c.id)),
    }
}

/// Discovers what the node under `root` has for frequency control. Never fails and never panics:
/// what cannot be read becomes a line in [`FreqTopology::warnings`] (a CPU's topology, an
/// attribute with garbage in it, a missing required file), and the rest is still discovered.
/// Offline CPUs without a topology directory, an absent cpufreq, cpuidle or uncore driver are not
/// errors.
pub fn discover(root: &Root) -> FreqTopology {
    let mut ctx = Ctx { root, warnings: Vec::new() };
    let base = root.path(CPU_DIR);
    let mut cpus = discover_cpus(&mut ctx, &base);
    let hybrid = assign_core_types(&mut ctx, &mut cpus);
    let mut policies = discover_policies(&mut ctx, &base);
    link_policies(&mut ctx, &base, &mut cpus, &mut policies);

    let idle_driver =
        ctx.optional(&base.join("cpuidle/current_driver")).filter(|d| !d.is_empty() && d != "none");
    let idle_states = discover_idle(&mut ctx, &base, &cpus, idle_driver.is_some());
    let uncore = discover_uncore(&mut ctx, &base);

    let mut drivers: Vec<String> = Vec::new();
    for p in &policies {
        if !p.driver.is_empty() && !drivers.contains(&p.driver) {
            drivers.push(p.driver.clone());
        }
    }
    let pstate_status = ctx
        .optional(&base.join("intel_pstate/status"))
        .or_else(|| ctx.optional(&base.join("amd_pstate/status")))
        .filter(|s| !s.is_empty());
    let mut layouts = Vec::new();
    for layout in [UncoreLayout::Tpmi, UncoreLayout::Legacy] {
        if uncore.iter().any(|u| u.layout == layout) {
            layouts.push(layout);
        }
    }
    let capabilities = Capabilities {
        drivers,
        pstate_status,
        epp: !policies.is_empty() && policies.iter().all(|p| p.epp_choices.is_some()),
        idle_driver,
        uncore: layouts,
        hybrid,
    };
    FreqTopology { cpus, policies, idle_states, uncore, capabilities, warnings: ctx.warnings }
}

/// Reading state: the root (to show paths as system paths) and the warnings so far.
struct Ctx<'a> {
    root: &'a Root,
    warnings: Vec<String>,
}

impl Ctx<'_> {
    /// `path` as the system path it stands for (`/sys/...`).
    fn show(&self, path: &Path) -> String {
        match path.strip_prefix(self.root.base()) {
            Ok(rel) if !self.root.is_system() => format!("/{}", rel.display()),
            _ => path.display().to_string(),
        }
    }

    fn warn(&mut self, path: &Path, problem: impl std::fmt::Display) {
        let line = format!("{}: {problem}", self.show(path));
        self.warnings.push(line);
    }

    fn warn_err(&mut self, path: &Path, err: &HwError) {
        let problem = match err {
            HwError::Vanished { .. } => "missing".to_string(),
            HwError::PermissionDenied { .. } => {
                "permission denied: run as root, or grant read access to it".to_string()
            }
            HwError::Malformed { detail, .. } => detail.clone(),
            HwError::Io { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        self.warn(path, problem);
    }

    /// An attribute that may be absent: `None` silently when it is; a warning when it exists but
    /// cannot be read.
    fn optional(&mut self, path: &Path) -> Option<String> {
        match read_trimmed(path, "sysfs attribute") {
            Ok(s) => Some(s),
            Err(HwError::Vanished { .. }) => None,
            Err(e) => {
                self.warn_err(path, &e);
                None
            }
        }
    }

    /// An attribute that should be there: a warning when it is absent or unreadable.
    fn required(&mut self, path: &Path) -> Option<String> {
        match read_trimmed(path, "sysfs attribute") {
            Ok(s) => Some(s),
            Err(e) => {
                self.warn_err(path, &e);
                None
            }
        }
    }

    fn number<T: std::str::FromStr>(&mut self, path: &Path, text: &str) -> Option<T> {
        match text.parse::<T>() {
            Ok(v) => Some(v),
            Err(_) => {
                self.warn(path, format!("expected an unsigned integer, found {text:?}"));
                None
            }
        }
    }

    fn opt_num<T: std::str::FromStr>(&mut self, path: &Path) -> Option<T> {
        let text = self.optional(path)?;
        self.number(path, &text)
    }

    fn req_num<T: std::str::FromStr>(&mut self, path: &Path) -> Option<T> {
        let text = self.required(path)?;
        self.number(path, &text)
    }

    fn cpulist(&mut self, path: &Path, text: &str) -> Option<Vec<u32>> {
        match parse_cpulist(text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.warn(path, e);
                None
            }
        }
    }

    fn req_cpulist(&mut self, path: &Path) -> Option<Vec<u32>> {
        let text = self.required(path)?;
        self.cpulist(path, &text)
    }

    fn list(&mut self, dir: &Path) -> Vec<(String, PathBuf)> {
        match list_dir(dir) {
            Ok(v) => v,
            Err(e) => {
                self.warn_err(dir, &e);
                Vec::new()
            }
        }
    }
}

/// The number after `prefix` in a sysfs name (`cpu12`, `policy3`, `state2`, `uncore07`).
fn numbered(name: &str, prefix: &str) -> Option<u32> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `package_XX_die_YY` → (package, die).
fn legacy_uncore_name(name: &str) -> Option<(u32, u32)> {
    let rest = name.strip_prefix("package_")?;
    let (p, d) = rest.split_once("_die_")?;
    Some((numbered(p, "")?, numbered(d, "")?))
}

fn discover_cpus(ctx: &mut Ctx<'_>, base: &Path) -> Vec<CpuInfo> {
    let online_path = base.join("online");
    let online_list: Option<BTreeSet<u32>> = match ctx.optional(&online_path) {
        Some(text) => ctx.cpulist(&online_path, &text).map(|v| v.into_iter().collect()),
        None => None,
    };
    let mut cpus = Vec::new();
    for (name, dir) in ctx.list(base) {
        let Some(id) = numbered(&name, "cpu") else { continue };
        if !dir.is_dir() {
            continue;
        }
        let own_path = dir.join("online");
        let own = match ctx.optional(&own_path).as_deref() {
            None => None,
            Some("1") => Some(true),
            Some("0") => Some(false),
            Some(other) => {
                ctx.warn(&own_path, format!("expected 0 or 1, found {other:?}"));
                None
            }
        };
        let online = match &online_list {
            Some(list) => {
                let on = list.contains(&id);
                if own.is_some_and(|o| o != on) {
                    let listed = if on { "online" } else { "offline" };
                    ctx.warn(
                        &own_path,
                        format!(
                            "disagrees with {} (cpu{id} {listed}); using the list",
                            ctx.show(&online_path)
                        ),
                    );
                }
                on
            }
            // CPU 0 usually has no `online` file: it cannot be taken offline.
            None => own.unwrap_or(true),
        };

        let topo = dir.join("topology");
        let (package, die, core, siblings) = if topo.is_dir() {
            let package = ctx.req_num::<u32>(&topo.join("physical_package_id"));
            let die_path = topo.join("die_id");
            let die = if die_path.exists() { ctx.req_num::<u32>(&die_path) } else { Some(0) };
            let core = ctx.req_num::<u32>(&topo.join("core_id"));
            let mut siblings = None;
            for f in ["thread_siblings_list", "core_cpus_list"] {
                let p = topo.join(f);
                if let Some(text) = ctx.optional(&p) {
                    siblings = ctx.cpulist(&p, &text);
                    break;
                }
            }
            let mut siblings = siblings.unwrap_or_else(|| vec![id]);
            if !siblings.contains(&id) {
                siblings.push(id);
                siblings.sort_unstable();
            }
            (package, die, core, siblings)
        } else {
            if online {
                ctx.warn(&topo, "missing on an online CPU: its package, die and core are unknown");
            }
            (None, None, None, vec![id])
        };
        let capacity = ctx.opt_num::<u32>(&dir.join("cpu_capacity"));
        cpus.push(CpuInfo {
            id,
            online,
            package,
            die,
            core,
            siblings,
            core_type: CoreType::Uniform,
            capacity,
            policy: None,
        });
    }
    cpus.sort_by_key(|c| c.id);
    if cpus.is_empty() {
        ctx.warn(base, "no cpuN directories: no CPUs found");
    } else if let Some(list) = &online_list {
        let missing: Vec<u32> = list
            .iter()
            .copied()
            .filter(|id| cpus.binary_search_by_key(id, |c| c.id).is_err())
            .collect();
        if !missing.is_empty() {
            let path = online_path.clone();
            ctx.warn(
                &path,
                format!("lists CPUs {} that have no cpuN directory", format_cpulist(&missing)),
            );
        }
    }
    cpus
}

/// Sets each CPU's core type from the kernel's own data and says whether the part is hybrid:
/// the hybrid PMU CPU lists first, else differing `cpu_capacity` values of online CPUs (the
/// largest is a P-core). Frequencies are never used: favoured cores of a non-hybrid part report a
/// higher maximum frequency without being another core type.
fn assign_core_types(ctx: &mut Ctx<'_>, cpus: &mut [CpuInfo]) -> bool {
    let mut listed: Vec<(CoreType, BTreeSet<u32>, String)> = Vec::new();
    let mut pmu_types: BTreeSet<CoreType> = BTreeSet::new();
    for (pmu, ty) in HYBRID_PMUS {
        let dir = ctx.root.path(format!("/sys/devices/{pmu}"));
        if !dir.is_dir() {
            continue;
        }
        let path = dir.join("cpus");
        if let Some(list) = ctx.req_cpulist(&path) {
            pmu_types.insert(ty);
            listed.push((ty, list.into_iter().collect(), ctx.show(&path)));
        }
    }

    if !listed.is_empty() {
        for cpu in cpus.iter_mut() {
            let mut found = listed.iter().filter(|(_, set, _)| set.contains(&cpu.id));
            if let Some((ty, _, _)) = found.next() {
                cpu.core_type = *ty;
            }
            if let Some((_, _, other)) = found.find(|(ty, _, _)| *ty != cpu.core_type) {
                let line = format!(
                    "{other}: lists cpu{} of another core type; the first list wins",
                    cpu.id
                );
                ctx.warnings.push(line);
            }
        }
        // A CPU in no list (offline CPUs leave the PMU's list): its capacity, when one core type
        // alone has that capacity.
        let mut by_capacity: HashMap<u32, BTreeSet<CoreType>> = HashMap::new();
        for c in cpus.iter().filter(|c| c.core_type != CoreType::Uniform) {
            if let Some(cap) = c.capacity {
                by_capacity.entry(cap).or_default().insert(c.core_type);
            }
        }
        let lists: Vec<&str> = listed.iter().map(|(_, _, p)| p.as_str()).collect();
        let lists = lists.join(", ");
        for cpu in cpus.iter_mut().filter(|c| c.core_type == CoreType::Uniform) {
            let by_cap =
                cpu.capacity.and_then(|cap| by_capacity.get(&cap)).filter(|t| t.len() == 1);
            if let Some(ty) = by_cap.and_then(|t| t.iter().next()) {
                cpu.core_type = *ty;
            } else if cpu.online {
                let line = format!("cpu{} is in none of {lists}: its core type is unknown", cpu.id);
                ctx.warnings.push(line);
            }
        }
        let present: BTreeSet<CoreType> = cpus.iter().map(|c| c.core_type).collect();
        let both = |s: &BTreeSet<CoreType>| {
            s.contains(&CoreType::Performance) && s.contains(&CoreType::Efficiency)
        };
        let hybrid = both(&present) || both(&pmu_types);
        if !hybrid {
            for cpu in cpus.iter_mut() {
                cpu.core_type = CoreType::Uniform;
            }
        }
        return hybrid;
    }

    let caps: BTreeSet<u32> = cpus.iter().filter(|c| c.online).filter_map(|c| c.capacity).collect();
    let Some(&largest) = caps.last() else { return false };
    if caps.len() < 2 {
        return false;
    }
    for cpu in cpus.iter_mut() {
        cpu.core_type = match cpu.capacity {
            Some(c) if c >= largest => CoreType::Performance,
            Some(_) => CoreType::Efficiency,
            None => {
                if cpu.online {
                    let line = format!(
                        "cpu{} has no cpu_capacity while other CPUs' differ: its core type is unknown",
                        cpu.id
                    );
                    ctx.warnings.push(line);
                }
                CoreType::Uniform
            }
        };
    }
    true
}

fn discover_policies(ctx: &mut Ctx<'_>, base: &Path) -> Vec<Policy> {
    let dir = base.join("cpufreq");
    let mut policies = Vec::new();
    for (name, path) in ctx.list(&dir) {
        let Some(id) = numbered(&name, "policy") else { continue };
        if path.is_dir() {
            policies.push(read_policy(ctx, id, path));
        }
    }
    policies
}

fn read_policy(ctx: &mut Ctx<'_>, id: u32, dir: PathBuf) -> Policy {
    let cpus = ctx.req_cpulist(&dir.join("related_cpus")).unwrap_or_default();
    let driver = ctx.required(&dir.join("scaling_driver")).unwrap_or_default();
    let cpuinfo_min_khz = ctx.req_num::<u64>(&dir.join("cpuinfo_min_freq")).unwrap_or(0);
    let cpuinfo_max_khz = ctx.req_num::<u64>(&dir.join("cpuinfo_max_freq")).unwrap_or(0);
    if cpuinfo_min_khz > cpuinfo_max_khz {
        ctx.warn(
            &dir,
            format!("cpuinfo_min_freq {cpuinfo_min_khz} kHz is above cpuinfo_max_freq {cpuinfo_max_khz} kHz"),
        );
    }
    let base_khz = ctx.opt_num::<u64>(&dir.join("base_frequency"));
    let words = |s: String| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let governors =
        ctx.required(&dir.join("scaling_available_governors")).map(words).unwrap_or_default();
    let epp_choices =
        ctx.optional(&dir.join("energy_performance_available_preferences")).map(words);
    Policy {
        id,
        dir,
        cpus,
        driver,
        cpuinfo_min_khz,
        cpuinfo_max_khz,
        base_khz,
        governors,
        epp_choices,
    }
}

/// Gives each CPU its policy: the one whose `related_cpus` lists it, else the one its
/// `cpuN/cpufreq` link leads to (read from there when it is not under `cpufreq/`).
fn link_policies(ctx: &mut Ctx<'_>, base: &Path, cpus: &mut [CpuInfo], policies: &mut Vec<Policy>) {
    let mut canonical: HashMap<PathBuf, u32> = policies
        .iter()
        .filter_map(|p| std::fs::canonicalize(&p.dir).ok().map(|c| (c, p.id)))
        .collect();
    for cpu in cpus.iter_mut() {
        let mut covering = policies.iter().filter(|p| p.cpus.contains(&cpu.id)).map(|p| p.id);
        if let Some(first) = covering.next() {
            cpu.policy = Some(first);
            let others: Vec<String> = covering.map(|id| format!("policy{id}")).collect();
            if !others.is_empty() {
                let path = base.join("cpufreq");
                ctx.warn(
                    &path,
                    format!(
                        "cpu{} is in policy{first} and also {}; using policy{first}",
                        cpu.id,
                        others.join(", ")
                    ),
                );
            }
            continue;
        }
        let link = base.join(format!("cpu{}/cpufreq", cpu.id));
        if !link.is_dir() {
            if cpu.online && !policies.is_empty() {
                let path = base.join(format!("cpu{}", cpu.id));
                ctx.warn(&path, "online, but no cpufreq policy covers it");
            }
            continue;
        }
        let target = match std::fs::canonicalize(&link) {
            Ok(t) => t,
            Err(e) => {
                ctx.warn(&link, e);
                continue;
            }
        };
        if let Some(&id) = canonical.get(&target) {
            cpu.policy = Some(id);
            let path = base.join(format!("cpufreq/policy{id}/related_cpus"));
            ctx.warn(&path, format!("does not list cpu{}, whose cpufreq links to it", cpu.id));
            continue;
        }
        let id = target
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| numbered(n, "policy"))
            .unwrap_or(cpu.id);
        if policies.iter().any(|p| p.id == id) {
            ctx.warn(&link, format!("leads to a second directory for policy{id}; ignored"));
            continue;
        }
        let mut policy = read_policy(ctx, id, link);
        if policy.cpus.is_empty() {
            policy.cpus = vec![cpu.id];
        }
        canonical.insert(target, id);
        cpu.policy = Some(id);
        policies.push(policy);
    }
    policies.sort_by_key(|p| p.id);
    if policies.is_empty() {
        let path = base.join("cpufreq");
        ctx.warn(
            &path,
            "no cpufreq policies: frequency scaling is not available (no cpufreq driver loaded)",
        );
    }
}

fn discover_idle(
    ctx: &mut Ctx<'_>,
    base: &Path,
    cpus: &[CpuInfo],
    driver: bool,
) -> BTreeMap<u32, Vec<IdleState>> {
    let mut out = BTreeMap::new();
    for cpu in cpus.iter().filter(|c| c.online) {
        let dir = base.join(format!("cpu{}/cpuidle", cpu.id));
        if !dir.is_dir() {
            if driver {
                ctx.warn(&dir, "missing: this CPU's C-states cannot be controlled");
            }
            continue;
        }
        let mut states = Vec::new();
        for (name, path) in ctx.list(&dir) {
            let Some(index) = numbered(&name, "state") else { continue };
            if !path.is_dir() {
                continue;
            }
            let name_path = path.join("name");
            let Some(state_name) = ctx.required(&name_path) else { continue };
            if state_name.is_empty() {
                ctx.warn(&name_path, "empty: state skipped");
                continue;
            }
            let desc = ctx.optional(&path.join("desc")).unwrap_or_default();
            let latency_us = ctx.req_num::<u64>(&path.join("latency")).unwrap_or(0);
            let residency_us = ctx.req_num::<u64>(&path.join("residency")).unwrap_or(0);
            states.push(IdleState { index, name: state_name, desc, latency_us, residency_us });
        }
        states.sort_by_key(|s| s.index);
        if !states.is_empty() {
            out.insert(cpu.id, states);
        }
    }
    out
}

fn discover_uncore(ctx: &mut Ctx<'_>, base: &Path) -> Vec<UncoreDomain> {
    let dir = base.join("intel_uncore_frequency");
    let mut out = Vec::new();
    for (name, path) in ctx.list(&dir) {
        if !path.is_dir() {
            continue;
        }
        let (layout, package, die, domain, cluster) =
            if let Some((p, d)) = legacy_uncore_name(&name) {
                (UncoreLayout::Legacy, p, Some(d), None, None)
            } else if numbered(&name, "uncore").is_some() {
                let Some(p) = ctx.req_num::<u32>(&path.join("package_id")) else {
                    ctx.warn(&path, "skipped: its package is unknown");
                    continue;
                };
                let domain = ctx.opt_num::<u32>(&path.join("domain_id"));
                let cluster = ctx.opt_num::<u32>(&path.join("fabric_cluster_id"));
                let die = ctx.opt_num::<u32>(&path.join("die_id"));
                (UncoreLayout::Tpmi, p, die, domain, cluster)
            } else {
                continue;
            };
        let min = ctx.req_num::<u64>(&path.join("initial_min_freq_khz"));
        let max = ctx.req_num::<u64>(&path.join("initial_max_freq_khz"));
        let (Some(initial_min_khz), Some(initial_max_khz)) = (min, max) else {
            ctx.warn(&path, "skipped: its hardware frequency range is unknown");
            continue;
        };
        out.push(UncoreDomain {
            name,
            dir: path,
            layout,
            package,
            die,
            domain,
            cluster,
            initial_min_khz,
            initial_max_khz,
        });
    }
    let rank = |l: UncoreLayout| match l {
        UncoreLayout::Legacy => 0,
        UncoreLayout::Tpmi => 1,
    };
    out.sort_by(|a, b| {
        (rank(a.layout), a.package, a.die, a.domain, a.cluster, &a.name).cmp(&(
            rank(b.layout),
            b.package,
            b.die,
            b.domain,
            b.cluster,
            &b.name,
        ))
    });
    out
}
