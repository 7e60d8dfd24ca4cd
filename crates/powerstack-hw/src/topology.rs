//! CPU topology under the root: packages, dies, cores, logical CPUs, and the CPU model.

use std::collections::BTreeSet;

use powerstack_model::cpulist::parse_cpulist;

use crate::error::Warning;
use crate::file::{list_dir, read_trimmed};
use crate::root::Root;

/// The CPU vendor, from `/proc/cpuinfo`'s `vendor_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Vendor {
    /// `GenuineIntel`.
    Intel,
    /// `AuthenticAMD` (and `HygonGenuine`, which shares AMD's RAPL registers).
    Amd,
    /// Anything else.
    Other(String),
}

/// The CPU model, from `/proc/cpuinfo` (first processor).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuModel {
    /// Vendor.
    pub vendor: Vendor,
    /// `cpu family`.
    pub family: u32,
    /// `model`.
    pub model: u32,
    /// `model name`.
    pub name: String,
}

/// One logical CPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpu {
    /// Logical CPU number.
    pub id: u32,
    /// Whether the CPU is online.
    pub online: bool,
    /// `topology/physical_package_id` (0 when unknown, e.g. offline CPUs without a topology dir:
    /// [`CpuTopology::packages`] and friends count online CPUs only).
    pub package: u32,
    /// `topology/die_id` (0 when absent).
    pub die: u32,
    /// `topology/core_id`.
    pub core: u32,
}

/// The node's CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuTopology {
    /// Every CPU found, by number.
    pub cpus: Vec<Cpu>,
    /// The CPU model, when `/proc/cpuinfo` could be read.
    pub model: Option<CpuModel>,
}

impl CpuTopology {
    /// Discovers the topology under `root`. Missing pieces become warnings, never errors.
    pub fn discover(root: &Root) -> (CpuTopology, Vec<Warning>) {
        let mut warnings = Vec::new();
        let base = root.path("/sys/devices/system/cpu");
        let online: Option<BTreeSet<u32>> =
            match read_trimmed(&base.join("online"), "cpu online list") {
                Ok(s) => match parse_cpulist(&s) {
                    Ok(v) => Some(v.into_iter().collect()),
                    Err(e) => {
                        warnings.push(Warning::new("topology", e.to_string()));
                        None
                    }
                },
                Err(_) => None,
            };
        let mut cpus = Vec::new();
        match list_dir(&base) {
            Ok(entries) => {
                for (name, path) in entries {
                    let Some(id) = name.strip_prefix("cpu").and_then(|n| n.parse::<u32>().ok())
                    else {
                        continue;
                    };
                    let topo = path.join("topology");
                    let read = |f: &str| {
                        read_trimmed(&topo.join(f), "topology")
                            .ok()
                            .and_then(|s| s.parse::<u32>().ok())
                    };
                    let is_online = online.as_ref().map(|o| o.contains(&id)).unwrap_or(true);
                    cpus.push(Cpu {
                        id,
                        online: is_online,
                        package: read("physical_package_id").unwrap_or(0),
                        die: read("die_id").unwrap_or(0),
                        core: read("core_id").unwrap_or(id),
                    });
                }
            }
            Err(e) => warnings.push(Warning::new("topology", e.to_string())),
        }
        cpus.sort_by_key(|c| c.id);
        if cpus.is_empty() {
            warnings
                .push(Warning::new("topology", format!("no CPUs found under {}", base.display())));
        }
        let model = match read_trimmed(&root.path("/proc/cpuinfo"), "cpuinfo") {
            Ok(text) => parse_cpuinfo(&text),
            Err(e) => {
                warnings.push(Warning::new("topology", format!("CPU model unknown: {e}")));
                None
            }
        };
        (CpuTopology { cpus, model }, warnings)
    }

    /// The package ids present, sorted (from online CPUs: an offline CPU's package is unknown).
    pub fn packages(&self) -> Vec<u32> {
        let set: BTreeSet<u32> = self.cpus.iter().filter(|c| c.online).map(|c| c.package).collect();
        set.into_iter().collect()
    }

    /// The online CPUs of a package, sorted.
    pub fn online_cpus_of(&self, package: u32) -> Vec<u32> {
        self.cpus.iter().filter(|c| c.online && c.package == package).map(|c| c.id).collect()
    }

    /// The lowest-numbered online CPU of a package: the one to read package-scoped MSRs on.
    pub fn lead_cpu(&self, package: u32) -> Option<u32> {
        self.online_cpus_of(package).first().copied()
    }

    /// Number of distinct physical cores with an online CPU in a package.
    pub fn cores_of(&self, package: u32) -> usize {
        let set: BTreeSet<(u32, u32)> = self
            .cpus
            .iter()
            .filter(|c| c.online && c.package == package)
            .map(|c| (c.die, c.core))
            .collect();
        set.len()
    }
}

/// Parses the first processor block of `/proc/cpuinfo`.
pub fn parse_cpuinfo(text: &str) -> Option<CpuModel> {
    let mut vendor = None;
    let mut family = None;
    let mut model = None;
    let mut name = String::new();
    for line in text.lines() {
        if line.trim().is_empty() && vendor.is_some() {
            break;
        }
        let Some((k, v)) = line.split_once(':') else { continue };
        let v = v.trim();
        match k.trim() {
            "vendor_id" => {
                vendor = Some(match v {
                    "GenuineIntel" => Vendor::Intel,
                    "AuthenticAMD" | "HygonGenuine" => Vendor::Amd,
                    other => Vendor::Other(other.to_string()),
                })
            }
            "cpu family" => family = v.parse().ok(),
            "model" => model = v.parse().ok(),
            "model name" => name = v.to_string(),
            _ => {}
        }
    }
    Some(CpuModel { vendor: vendor?, family: family.unwrap_or(0), model: model.unwrap_or(0), name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vendor_family_and_model_from_cpuinfo() {
        let t = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz\n\nprocessor\t: 1\n";
        let m = parse_cpuinfo(t).unwrap();
        assert_eq!(m.vendor, Vendor::Intel);
        assert_eq!((m.family, m.model), (6, 0x55));
        assert!(m.name.contains("6148"));
        assert!(parse_cpuinfo("garbage").is_none());
    }
}
