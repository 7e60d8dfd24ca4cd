//! Domains: the parts of a node whose power and energy can be measured or controlled.

use std::fmt;
use std::str::FromStr;

use crate::counter::CounterSpec;

/// The kind of a measurable or controllable part of a node.
///
/// Kinds are vendor-neutral: an Intel `dram` RAPL zone, an HPE Cray `memory_*` counter and a Variorum
/// `power_mem` figure are all [`DomainKind::Memory`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DomainKind {
    /// The whole node, measured directly (board controller, power meter).
    Node,
    /// The RAPL platform domain (`psys`): the SoC and parts of the platform, reported by the CPU.
    Platform,
    /// A CPU socket (RAPL `package`, pm_counters `cpu`).
    Package,
    /// The cores of one socket (RAPL `core` / PP0). A subset of [`DomainKind::Package`].
    Core,
    /// The uncore or integrated graphics of one socket (RAPL `uncore` / PP1). A subset of the package.
    Uncore,
    /// Memory attached to one socket (RAPL `dram`, pm_counters `memory`).
    Memory,
    /// An accelerator (GPU), numbered in PCI bus order.
    Gpu,
}

impl DomainKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [DomainKind; 7] = [
        DomainKind::Node,
        DomainKind::Platform,
        DomainKind::Package,
        DomainKind::Core,
        DomainKind::Uncore,
        DomainKind::Memory,
        DomainKind::Gpu,
    ];

    /// The stable lower-case name used in JSON, Prometheus labels and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            DomainKind::Node => "node",
            DomainKind::Platform => "platform",
            DomainKind::Package => "package",
            DomainKind::Core => "core",
            DomainKind::Uncore => "uncore",
            DomainKind::Memory => "memory",
            DomainKind::Gpu => "gpu",
        }
    }

    /// Whether the kind, when measured, is a direct measure of the whole node (or platform).
    pub fn is_node_level(self) -> bool {
        matches!(self, DomainKind::Node | DomainKind::Platform)
    }
}

impl fmt::Display for DomainKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error returned when a domain kind or id cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown domain {0:?}: expected one of node, platform, package, core, uncore, memory, gpu")]
pub struct UnknownDomain(pub String);

impl FromStr for DomainKind {
    type Err = UnknownDomain;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DomainKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownDomain(s.to_string()))
    }
}

/// One domain of a node: its kind, its index (socket number for per-socket kinds, GPU number for GPUs,
/// 0 for node-level kinds) and, on multi-die packages, its die.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainId {
    /// What the domain is.
    pub kind: DomainKind,
    /// Socket number (package, core, uncore, memory), GPU number (gpu) or 0 (node, platform).
    pub index: u32,
    /// The die within a multi-die package, when the hardware reports dies separately.
    pub die: Option<u32>,
}

impl DomainId {
    /// A domain without a die.
    pub const fn new(kind: DomainKind, index: u32) -> Self {
        DomainId { kind, index, die: None }
    }

    /// The node domain.
    pub const NODE: DomainId = DomainId::new(DomainKind::Node, 0);
}

impl fmt::Display for DomainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.die) {
            (DomainKind::Node | DomainKind::Platform, _) => write!(f, "{}", self.kind),
            (k, Some(d)) => write!(f, "{k}-{}-die-{d}", self.index),
            (k, None) => write!(f, "{k}-{}", self.index),
        }
    }
}

/// How a domain is measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Measurement {
    /// A cumulative energy counter; power is derived as ΔE/Δt.
    Energy(CounterSpec),
    /// Only an instantaneous or averaged power figure is available (e.g. an ACPI power meter).
    Power,
}

/// A power limit (cap) of a domain, as read from the hardware, in SI units.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PowerLimit {
    /// The constraint's name: `long_term`, `short_term`, `peak_power` (RAPL) or `cap` (hwmon, pm_counters).
    pub name: String,
    /// The limit in force, in watts, when one is set.
    pub limit_watts: Option<f64>,
    /// The smallest value the hardware accepts, when known.
    pub min_watts: Option<f64>,
    /// The largest value the hardware accepts, when known.
    pub max_watts: Option<f64>,
    /// The factory default, when the hardware reports one (hwmon `_cap_default`, NVML default).
    pub default_watts: Option<f64>,
    /// The averaging window of the limit, in seconds, when the hardware has one.
    pub time_window_s: Option<f64>,
    /// The windows the hardware can hold, when known.
    pub time_windows: Option<crate::window::TimeWindows>,
    /// Whether the limit is enabled, when the hardware says.
    pub enabled: Option<bool>,
    /// Whether the limit is locked (BIOS lock bit, read-only file) and cannot be changed.
    pub locked: bool,
}

/// What a provider knows about one of its domains: the catalog entry.
#[derive(Clone, Debug, PartialEq)]
pub struct DomainInfo {
    /// Which domain this is.
    pub id: DomainId,
    /// The provider that measures it (`powercap`, `msr`, `hwmon`, `pm_counters`, ...).
    pub provider: &'static str,
    /// Where the readings come from, for people: a sysfs directory, a device file, a sensor label.
    pub source: String,
    /// How the domain is measured.
    pub measurement: Measurement,
    /// The power limits of the domain, empty when it cannot be capped.
    pub limits: Vec<PowerLimit>,
    /// The socket the domain is attached to, when known (GPUs: from their NUMA node).
    pub socket: Option<u32>,
    /// A human label (hwmon `label`, GPU model name, ...).
    pub label: Option<String>,
}

/// A new setting for one power limit of one domain.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitWrite {
    /// The constraint to write (`long_term`, `short_term`, `cap`).
    pub constraint: String,
    /// The new limit, watts.
    pub limit_watts: f64,
    /// The new averaging window, seconds (RAPL), or `None` to leave it.
    pub time_window_s: Option<f64>,
    /// Enable (or disable) the limit where the hardware has an enable, or `None` to leave it.
    pub enabled: Option<bool>,
}

impl DomainInfo {
    /// The limit named `constraint`, if the domain has it.
    pub fn limit(&self, constraint: &str) -> Option<&PowerLimit> {
        self.limits.iter().find(|l| l.name == constraint)
    }

    /// Whether any limit of this domain can be changed.
    pub fn is_controllable(&self) -> bool {
        self.limits.iter().any(|l| !l.locked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in DomainKind::ALL {
            assert_eq!(k.as_str().parse::<DomainKind>().unwrap(), k);
        }
        assert!("cpu".parse::<DomainKind>().is_err());
    }

    #[test]
    fn ids_display_like_the_cli_names_them() {
        assert_eq!(DomainId::NODE.to_string(), "node");
        assert_eq!(DomainId::new(DomainKind::Package, 1).to_string(), "package-1");
        let die = DomainId { kind: DomainKind::Package, index: 0, die: Some(1) };
        assert_eq!(die.to_string(), "package-0-die-1");
    }
}
