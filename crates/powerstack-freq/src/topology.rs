//! What the node has for frequency control, discovered from sysfs under a [`Root`].
//!
//! [`discover`] reads every CPU directory (not only `cpu0`), the online list as a kernel CPU list
//! (any form, `0-3,8,10-11`) and each CPU's topology (absent for offline CPUs: `None`, never a
//! failure) through the node's one CPU reader, [`powerstack_hw::topology::read_cpus`]; then every
//! cpufreq policy (`cpufreq`), each online CPU's own cpuidle states (`cpuidle`), both uncore
//! layouts (`uncore`: legacy `package_XX_die_YY` and TPMI `uncoreNN`), and hybrid core types
//! (`cores`) from the kernel's own data (`cpu_core`/`cpu_atom` PMU CPU lists, or differing
//! `cpu_capacity`), never from frequencies: a non-hybrid part whose favoured cores report a higher
//! `cpuinfo_max_freq` stays [`CoreType::Uniform`]. What cannot be read becomes a line in
//! [`FreqTopology::warnings`]; discovery never panics and never fails. `report` holds the
//! capability report.

mod cores;
mod cpufreq;
mod cpuidle;
mod report;
mod uncore;

use std::collections::{BTreeMap, BTreeSet};

use powerstack_hw::Root;
use powerstack_hw::topology::sysfs::Sysfs;
use powerstack_hw::topology::{Cpu, read_cpus};

pub use cores::{CoreType, HYBRID_PMUS};
pub use cpufreq::Policy;
pub use cpuidle::IdleState;
pub use powerstack_hw::topology::CPU_DIR;
pub use uncore::{UncoreDomain, UncoreLayout};

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

impl From<Cpu> for CpuInfo {
    /// A CPU as [`read_cpus`] found it: core type and policy not yet known.
    fn from(c: Cpu) -> Self {
        CpuInfo {
            id: c.id,
            online: c.online,
            package: c.package,
            die: c.die,
            core: c.core,
            siblings: c.siblings,
            core_type: CoreType::Uniform,
            capacity: c.capacity,
            policy: None,
        }
    }
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
}

/// Discovers what the node under `root` has for frequency control. Never fails and never panics:
/// what cannot be read becomes a line in [`FreqTopology::warnings`] (a CPU's topology, an
/// attribute with garbage in it, a missing required file), and the rest is still discovered.
/// Offline CPUs without a topology directory, an absent cpufreq, cpuidle or uncore driver are not
/// errors.
pub fn discover(root: &Root) -> FreqTopology {
    let mut ctx = Sysfs::new(root);
    let base = root.path(CPU_DIR);
    let mut cpus: Vec<CpuInfo> =
        read_cpus(&mut ctx, &base).cpus.into_iter().map(CpuInfo::from).collect();
    let hybrid = cores::assign_core_types(&mut ctx, &mut cpus);
    let mut policies = cpufreq::discover_policies(&mut ctx, &base);
    cpufreq::link_policies(&mut ctx, &base, &mut cpus, &mut policies);

    let idle_driver =
        ctx.optional(&base.join("cpuidle/current_driver")).filter(|d| !d.is_empty() && d != "none");
    let idle_states = cpuidle::discover_idle(&mut ctx, &base, &cpus, idle_driver.is_some());
    let uncore = uncore::discover_uncore(&mut ctx, &base);

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
    FreqTopology {
        cpus,
        policies,
        idle_states,
        uncore,
        capabilities,
        warnings: ctx.into_warnings(),
    }
}
