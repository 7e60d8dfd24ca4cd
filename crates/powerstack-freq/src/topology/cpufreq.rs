//! cpufreq policies: frequency settings are per policy, shared by its CPUs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use powerstack_hw::topology::sysfs::{Sysfs, numbered};

use super::CpuInfo;

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
pub(super) fn discover_policies(ctx: &mut Sysfs<'_>, base: &Path) -> Vec<Policy> {
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

fn read_policy(ctx: &mut Sysfs<'_>, id: u32, dir: PathBuf) -> Policy {
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
pub(super) fn link_policies(
    ctx: &mut Sysfs<'_>,
    base: &Path,
    cpus: &mut [CpuInfo],
    policies: &mut Vec<Policy>,
) {
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
