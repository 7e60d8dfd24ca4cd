//! Core types on hybrid parts, from the kernel's own data (never from frequencies).

use std::collections::{BTreeSet, HashMap};

use powerstack_hw::topology::sysfs::Sysfs;

use super::CpuInfo;

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

/// The hybrid PMUs whose `cpus` file lists the CPUs of one core type
/// (`/sys/devices/<pmu>/cpus`), with the type they stand for.
pub const HYBRID_PMUS: [(&str, CoreType); 3] = [
    ("cpu_core", CoreType::Performance),
    ("cpu_atom", CoreType::Efficiency),
    ("cpu_lowpower", CoreType::Efficiency),
];

/// Sets each CPU's core type from the kernel's own data and says whether the part is hybrid:
/// the hybrid PMU CPU lists first, else differing `cpu_capacity` values of online CPUs (the
/// largest is a P-core). Frequencies are never used: favoured cores of a non-hybrid part report a
/// higher maximum frequency without being another core type.
pub(super) fn assign_core_types(ctx: &mut Sysfs<'_>, cpus: &mut [CpuInfo]) -> bool {
    let mut listed: Vec<(CoreType, BTreeSet<u32>, String)> = Vec::new();
    let mut pmu_types: BTreeSet<CoreType> = BTreeSet::new();
    for (pmu, ty) in HYBRID_PMUS {
        let dir = ctx.root().path(format!("/sys/devices/{pmu}"));
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
                ctx.note(line);
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
                ctx.note(line);
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
                    ctx.note(line);
                }
                CoreType::Uniform
            }
        };
    }
    true
}
