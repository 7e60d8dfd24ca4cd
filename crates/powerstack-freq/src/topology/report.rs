//! The capability report: one line per frequency feature, for people.

use std::collections::BTreeSet;

use powerstack_model::cpulist::format_cpulist;

use super::{CoreType, CpuInfo, FreqTopology, UncoreLayout};

impl FreqTopology {
    /// One line per feature for people: (feature, status), in a fixed order: `CPUs`,
    /// `frequency scaling`, `EPP`, `C-states`, `uncore`, `hybrid`. A feature the node lacks reads
    /// `no...`, with the reason when one is known.
    pub fn capability_report(&self) -> Vec<(String, String)> {
        vec![
            ("CPUs".to_string(), self.cpus_line()),
            ("frequency scaling".to_string(), self.scaling_line()),
            ("EPP".to_string(), self.epp_line()),
            ("C-states".to_string(), self.cstates_line()),
            ("uncore".to_string(), self.uncore_line()),
            ("hybrid".to_string(), self.hybrid_line()),
        ]
    }

    fn cpus_line(&self) -> String {
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
        cpus_line
    }

    fn scaling_line(&self) -> String {
        let caps = &self.capabilities;
        if self.policies.is_empty() {
            return "no: no cpufreq policies (no cpufreq driver loaded)".to_string();
        }
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
    }

    fn epp_line(&self) -> String {
        let with_epp = self.policies.iter().filter(|p| p.epp_choices.is_some()).count();
        if self.capabilities.epp {
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
        }
    }

    fn cstates_line(&self) -> String {
        let Some(driver) = &self.capabilities.idle_driver else {
            return "no: no cpuidle driver".to_string();
        };
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

    fn uncore_line(&self) -> String {
        let tpmi = self.uncore.iter().filter(|u| u.layout == UncoreLayout::Tpmi).count();
        let legacy = self.uncore.iter().filter(|u| u.layout == UncoreLayout::Legacy).count();
        let mut parts = Vec::new();
        if tpmi > 0 {
            parts.push(format!("TPMI ({tpmi} domain{})", if tpmi == 1 { "" } else { "s" }));
        }
        if legacy > 0 {
            parts.push(format!("legacy package/die ({legacy})"));
        }
        if parts.is_empty() { "no".to_string() } else { parts.join(" + ") }
    }

    fn hybrid_line(&self) -> String {
        if !self.capabilities.hybrid {
            return "no".to_string();
        }
        let mut parts = Vec::new();
        for (ty, label) in [(CoreType::Performance, "P-core"), (CoreType::Efficiency, "E-core")] {
            let cpus: Vec<&CpuInfo> = self.cpus.iter().filter(|c| c.core_type == ty).collect();
            let cores: BTreeSet<CoreKey> = cpus.iter().map(|c| core_key(c)).collect();
            let ids: Vec<u32> = cpus.iter().map(|c| c.id).collect();
            let n = cores.len();
            let plural = if n == 1 { "" } else { "s" };
            parts.push(format!("{n} {label}{plural} (CPUs {})", format_cpulist(&ids)));
        }
        parts.join(", ")
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
