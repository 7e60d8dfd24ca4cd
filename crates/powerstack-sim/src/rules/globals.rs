//! The rules of the global frequency attributes: boost switches, intel_pstate's `no_turbo` and
//! `{max,min}_perf_pct`, the cpuidle governor, and what the simulator cannot do (CPU hotplug,
//! driver mode switches), refused whatever is written.

use std::path::{Path, PathBuf};

use super::attr::{Attr, numbered, parse_u64, put, read_num, read_trim};
use crate::error::SimError;

/// The global attributes with rules.
#[derive(Debug, Default)]
pub(super) struct Globals {
    /// `cpufreq/boost`, `intel_pstate/hwp_dynamic_boost`: 0 or 1 (who, attribute).
    switches: Vec<(&'static str, Attr)>,
    /// `intel_pstate/no_turbo`: a decimal, shown as 0 or 1.
    no_turbo: Option<Attr>,
    /// `intel_pstate/{max,min}_perf_pct` and the lowest min (the hardware's).
    perf_pct: Option<(Attr, Attr, u64)>,
    /// `cpuidle/current_governor`, its choices and `current_governor_ro`.
    idle_governor: Option<(Attr, Vec<String>, PathBuf)>,
    /// What the simulator cannot do (CPU hotplug `cpuN/online`, `intel_pstate/status` and
    /// `amd_pstate/status` mode switches): every change is refused, so nobody believes it done.
    frozen: Vec<(String, Attr)>,
}

impl Globals {
    /// Takes the global attributes under `cpu` (the root's CPU directory) and their values now.
    pub(super) fn load(cpu: &Path) -> Globals {
        let perf_floor = {
            let p0 = cpu.join("cpufreq/policy0");
            match (read_num(&p0.join("cpuinfo_min_freq")), read_num(&p0.join("cpuinfo_max_freq"))) {
                (Some(lo), Some(hi)) if hi > 0 => lo * 100 / hi,
                _ => 0,
            }
        };
        let pstate = cpu.join("intel_pstate");
        Globals {
            switches: [
                ("cpufreq", "cpufreq/boost"),
                ("intel_pstate", "intel_pstate/hwp_dynamic_boost"),
            ]
            .into_iter()
            .filter_map(|(who, f)| Some((who, Attr::load(cpu.join(f))?)))
            .collect(),
            no_turbo: Attr::load(pstate.join("no_turbo")),
            perf_pct: Attr::load(pstate.join("max_perf_pct"))
                .zip(Attr::load(pstate.join("min_perf_pct")))
                .map(|(max, min)| (max, min, perf_floor)),
            idle_governor: Attr::load(cpu.join("cpuidle/current_governor")).map(|a| {
                let choices = read_trim(&cpu.join("cpuidle/available_governors"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
                (a, choices, cpu.join("cpuidle/current_governor_ro"))
            }),
            frozen: numbered(cpu, "cpu")
                .into_iter()
                .map(|(c, d)| (format!("cpu{c}"), d.join("online")))
                .chain(
                    ["intel_pstate", "amd_pstate"]
                        .map(|d| (d.to_string(), cpu.join(d).join("status"))),
                )
                .filter_map(|(who, path)| Some((who, Attr::load(path)?)))
                .collect(),
        }
    }

    /// Every attribute with rules.
    pub(super) fn attrs(&self) -> impl Iterator<Item = &Attr> {
        self.switches
            .iter()
            .map(|(_, a)| a)
            .chain(&self.no_turbo)
            .chain(self.perf_pct.iter().flat_map(|(a, b, _)| [a, b]))
            .chain(self.idle_governor.iter().map(|(a, _, _)| a))
            .chain(self.frozen.iter().map(|(_, a)| a))
    }

    /// Judges what was written to the global attributes.
    pub(super) fn enforce(&mut self, out: &mut Vec<String>) -> Result<(), SimError> {
        for (who, a) in &mut self.switches {
            if let Some(w) = a.written() {
                match parse_u64(&w) {
                    Some(v @ (0 | 1)) => a.accept(v.to_string())?,
                    _ => a.refuse(out, who, &w, "is not 0 or 1 (EINVAL)")?,
                }
            }
        }
        for (who, a) in &self.frozen {
            if let Some(w) = a.written() {
                a.refuse(out, who, &w, "refused: the simulator does not do this")?;
            }
        }
        if let Some(a) = &mut self.no_turbo
            && let Some(w) = a.written()
        {
            match parse_u64(&w) {
                Some(v) => a.accept(u8::from(v != 0).to_string())?,
                None => a.refuse(out, "intel_pstate", &w, "is not a decimal number (EINVAL)")?,
            }
        }
        if let Some((max, min, floor)) = &mut self.perf_pct {
            // The kernel clamps: max into [min_perf_pct, 100], min into [floor, max_perf_pct].
            if let Some(w) = max.written() {
                match parse_u64(&w) {
                    Some(v) => {
                        let shown = v.clamp(min.num(), 100).to_string();
                        max.accept(shown)?;
                    }
                    None => {
                        max.refuse(out, "intel_pstate", &w, "is not a decimal number (EINVAL)")?
                    }
                }
            }
            if let Some(w) = min.written() {
                match parse_u64(&w) {
                    Some(v) => {
                        let shown = v.clamp((*floor).min(max.num()), max.num()).to_string();
                        min.accept(shown)?;
                    }
                    None => {
                        min.refuse(out, "intel_pstate", &w, "is not a decimal number (EINVAL)")?
                    }
                }
            }
        }
        if let Some((a, choices, ro)) = &mut self.idle_governor
            && let Some(w) = a.written()
        {
            if choices.contains(&w) {
                a.accept(w.clone())?;
                put(ro, &w)?;
            } else {
                let why = format!("not in [{}] (EINVAL)", choices.join(" "));
                a.refuse(out, "cpuidle", &w, &why)?;
            }
        }
        Ok(())
    }
}
