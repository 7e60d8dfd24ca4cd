//! CPU topology under the root: packages, dies, cores, logical CPUs, and the CPU model.
//!
//! [`read_cpus`] is the one reader of the node's CPUs (the frequency pools read them through it
//! too); [`sysfs::Sysfs`] reads attributes for discovery, keeping what could not be read.

mod cpus;
pub mod sysfs;

use std::collections::BTreeSet;

pub use cpus::{CpuScan, read_cpus};
use sysfs::Sysfs;

use crate::error::Warning;
use crate::file::read_trimmed;
use crate::root::Root;

/// Where the kernel lists CPUs (and cpufreq, cpuidle and uncore frequency).
pub const CPU_DIR: &str = "/sys/devices/system/cpu";

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

/// One logical CPU, as the kernel gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpu {
    /// Logical CPU number.
    pub id: u32,
    /// Whether the CPU is online.
    pub online: bool,
    /// `topology/physical_package_id`; `None` when the kernel does not say (an offline CPU has no
    /// topology directory): unknown, never 0.
    pub package: Option<u32>,
    /// `topology/die_id` (`Some(0)` when the topology has no `die_id`; `None` without a topology).
    pub die: Option<u32>,
    /// `topology/core_id`.
    pub core: Option<u32>,
    /// SMT siblings including itself (`thread_siblings_list` or `core_cpus_list`; itself alone
    /// when neither can be read).
    pub siblings: Vec<u32>,
    /// `cpu_capacity`, when the kernel exposes it.
    pub capacity: Option<u32>,
}

impl Cpu {
    /// The package this CPU counts in for [`CpuTopology`]'s queries: the kernel's, and 0 for an
    /// online CPU the kernel gives none for (the one package such a node can be driven as). An
    /// offline CPU's package is unknown unless the kernel says it.
    pub fn counted_package(&self) -> Option<u32> {
        match self.package {
            Some(p) => Some(p),
            None if self.online => Some(0),
            None => None,
        }
    }

    /// The physical core this CPU is a thread of, within its package: (die, core), with die 0
    /// and the CPU's own number as core when the kernel does not say.
    pub fn core_key(&self) -> (u32, u32) {
        (self.die.unwrap_or(0), self.core.unwrap_or(self.id))
    }
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
    /// Discovers the topology under `root`, through [`read_cpus`]. Missing pieces become
    /// warnings, never errors: the online list that is not a CPU list, the CPU directory that
    /// cannot be listed or holds no CPU, the CPU model unknown.
    pub fn discover(root: &Root) -> (CpuTopology, Vec<Warning>) {
        let mut warnings = Vec::new();
        let base = root.path(CPU_DIR);
        let scan = read_cpus(&mut Sysfs::new(root), &base);
        if let Some(e) = scan.online_list_error {
            warnings.push(Warning::new("topology", e));
        }
        if let Some(e) = scan.list_error {
            warnings.push(Warning::new("topology", e));
        }
        let cpus = scan.cpus;
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
        let set: BTreeSet<u32> =
            self.cpus.iter().filter(|c| c.online).filter_map(Cpu::counted_package).collect();
        set.into_iter().collect()
    }

    /// The online CPUs of a package, by number.
    pub fn online_of(&self, package: u32) -> impl Iterator<Item = &Cpu> {
        self.cpus.iter().filter(move |c| c.online && c.counted_package() == Some(package))
    }

    /// The online CPUs of a package, sorted.
    pub fn online_cpus_of(&self, package: u32) -> Vec<u32> {
        self.online_of(package).map(|c| c.id).collect()
    }

    /// The lowest-numbered online CPU of a package: the one to read package-scoped MSRs on.
    pub fn lead_cpu(&self, package: u32) -> Option<u32> {
        self.online_cpus_of(package).first().copied()
    }

    /// Number of distinct physical cores with an online CPU in a package.
    pub fn cores_of(&self, package: u32) -> usize {
        let set: BTreeSet<(u32, u32)> = self.online_of(package).map(Cpu::core_key).collect();
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

    #[test]
    fn an_offline_cpu_without_a_topology_has_no_package() {
        let dir = tempfile::tempdir().unwrap();
        let cpu = dir.path().join("sys/devices/system/cpu");
        std::fs::create_dir_all(cpu.join("cpu0/topology")).unwrap();
        std::fs::create_dir_all(cpu.join("cpu1")).unwrap();
        std::fs::write(cpu.join("online"), "0\n").unwrap();
        std::fs::write(cpu.join("cpu1/online"), "0\n").unwrap();
        std::fs::write(cpu.join("cpu0/topology/physical_package_id"), "1\n").unwrap();
        std::fs::write(cpu.join("cpu0/topology/core_id"), "0\n").unwrap();
        let (topo, _) = CpuTopology::discover(&Root::new(dir.path()));
        let packages: Vec<Option<u32>> = topo.cpus.iter().map(|c| c.package).collect();
        assert_eq!(packages, [Some(1), None]);
        assert_eq!(topo.packages(), [1]);
        assert_eq!(topo.online_cpus_of(1), [0]);
    }
}
