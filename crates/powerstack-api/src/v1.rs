//! Native JSON, version 1: the shapes documented in `docs/formats.md`.
//!
//! Every document carries a `schema` string (`powerstack.<what>.v1`). Fields are only ever added
//! within a version; a removal or a change of meaning makes a `v2`. Absent measurements are `null`,
//! never a sentinel number.

use serde::{Deserialize, Serialize};

use powerstack_model::{DomainInfo, DomainKind, Measurement, NodeSource, PowerLimit, PowerReport};

/// Schema name of [`PowerV1`].
pub const POWER_SCHEMA: &str = "powerstack.power.v1";
/// Schema name of [`EnergyV1`].
pub const ENERGY_SCHEMA: &str = "powerstack.energy.v1";
/// Schema name of [`DomainsV1`].
pub const DOMAINS_SCHEMA: &str = "powerstack.domains.v1";
/// Schema name of [`TopologyV1`].
pub const TOPOLOGY_SCHEMA: &str = "powerstack.topology.v1";

/// Who produced a document: the host and whether the hardware was simulated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The node's hostname.
    pub hostname: String,
    /// The simulator profile when the readings come from simulated hardware.
    pub simulated: Option<String>,
}

/// The header of a node's document: which document it is and which node it speaks of. Embedded
/// first (`#[serde(flatten)]`) in the documents whose four header keys come first
/// (`powerstack.cap.v1`, `caps.v1`, `pools.v1`, `pools-change.v1`, `topology.v1`); the timed
/// documents (`power.v1`, `energy.v1`, `domains.v1`) keep `timestamp_us` between `hostname` and
/// `simulated`, as their pinned key order has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeaderV1 {
    /// The document's schema name (`powerstack.cap.v1`, ...).
    pub schema: String,
    /// The node's hostname.
    pub hostname: String,
    /// Whether the node is simulated.
    pub simulated: bool,
    /// The simulated profile, when simulated.
    pub simulated_profile: Option<String>,
}

impl HeaderV1 {
    /// The header of a `schema` document about the node `origin`.
    pub fn new(schema: &str, origin: &Origin) -> HeaderV1 {
        HeaderV1 {
            schema: schema.to_string(),
            hostname: origin.hostname.clone(),
            simulated: origin.simulated.is_some(),
            simulated_profile: origin.simulated.clone(),
        }
    }
}

/// `powerstack power --format json`: node power over one interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PowerV1 {
    /// Always [`POWER_SCHEMA`].
    pub schema: String,
    /// The node's hostname.
    pub hostname: String,
    /// End of the interval, µs since the Unix epoch.
    pub timestamp_us: i64,
    /// Length of the interval, in seconds.
    pub interval_s: f64,
    /// Whether the readings come from simulated hardware.
    pub simulated: bool,
    /// The simulator profile, when simulated.
    pub simulated_profile: Option<String>,
    /// Node power in watts, `null` when nothing could be measured.
    pub node_power_watts: Option<f64>,
    /// Where the node figure comes from: `pm_counters`, `power_meter`, `psys`, `psys+gpus` (the
    /// platform domain does not cover discrete GPUs), or `sum`.
    pub node_source: Option<String>,
    /// With `node_source` = `sum`: the domains added up (`package-0`, `memory-0`, `gpu-1`, ...).
    pub node_parts: Vec<String>,
    /// Every domain.
    pub domains: Vec<DomainPowerV1>,
    /// What could not be read, one line each.
    pub warnings: Vec<String>,
}

/// One domain in [`PowerV1`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DomainPowerV1 {
    /// Kind: `node`, `platform`, `package`, `core`, `uncore`, `memory`, `gpu`.
    pub domain: String,
    /// Socket number (per-socket kinds), GPU number (gpu) or 0.
    pub index: u32,
    /// Die within a multi-die package.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub die: Option<u32>,
    /// Socket the domain is attached to, when known.
    pub socket: Option<u32>,
    /// Mean power over the interval, watts.
    pub power_watts: Option<f64>,
    /// The domain's energy counter at the end of the interval, joules (extended across wraps since
    /// the first reading; its origin is the hardware counter's own).
    pub energy_joules: Option<f64>,
    /// The provider that measured it.
    pub provider: String,
    /// Where the reading comes from.
    pub source: String,
}

/// `powerstack energy --format json`: energy counters now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnergyV1 {
    /// Always [`ENERGY_SCHEMA`].
    pub schema: String,
    /// The node's hostname.
    pub hostname: String,
    /// Time of the reading, µs since the Unix epoch.
    pub timestamp_us: i64,
    /// Whether the readings come from simulated hardware.
    pub simulated: bool,
    /// The simulator profile, when simulated.
    pub simulated_profile: Option<String>,
    /// Node energy in joules: the direct node counter, else the sum of packages, memory and GPUs.
    pub node_energy_joules: Option<f64>,
    /// `pm_counters`, `psys`, `sum`, ... as in [`PowerV1::node_source`].
    pub node_source: Option<String>,
    /// Every energy-measured domain.
    pub domains: Vec<DomainEnergyV1>,
    /// What could not be read.
    pub warnings: Vec<String>,
}

/// One domain in [`EnergyV1`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DomainEnergyV1 {
    /// Kind.
    pub domain: String,
    /// Index.
    pub index: u32,
    /// Die.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub die: Option<u32>,
    /// Socket.
    pub socket: Option<u32>,
    /// Joules, `null` for power-only sensors and unreadable domains.
    pub energy_joules: Option<f64>,
    /// Provider.
    pub provider: String,
    /// Source.
    pub source: String,
}

/// `powerstack domains --format json`: what can be measured and controlled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DomainsV1 {
    /// Always [`DOMAINS_SCHEMA`].
    pub schema: String,
    /// The node's hostname.
    pub hostname: String,
    /// Time of the report, µs since the Unix epoch.
    pub timestamp_us: i64,
    /// Whether the hardware is simulated.
    pub simulated: bool,
    /// The simulator profile, when simulated.
    pub simulated_profile: Option<String>,
    /// Every domain.
    pub domains: Vec<DomainInfoV1>,
    /// Every hardware source and what discovery made of it (absent in documents from before it
    /// was added).
    #[serde(default)]
    pub sources: Vec<SourceV1>,
    /// What could not be used.
    pub warnings: Vec<String>,
}

/// One hardware source in [`DomainsV1`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceV1 {
    /// `powercap`, `msr`, `nvml`, `pm_counters`, `hwmon`.
    pub source: String,
    /// `found` (it measures domains), `absent` (nothing of it on the node), `unusable` (it is
    /// there but gave nothing usable) or `not_probed`.
    pub status: String,
    /// How many domains it measures (before two sources measuring one domain are joined); 0
    /// unless found.
    pub domains: usize,
    /// Why it is absent, unusable or not probed; `null` when found.
    pub detail: Option<String>,
}

/// One domain in [`DomainsV1`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DomainInfoV1 {
    /// Kind.
    pub domain: String,
    /// Index.
    pub index: u32,
    /// Die.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub die: Option<u32>,
    /// Socket.
    pub socket: Option<u32>,
    /// Provider.
    pub provider: String,
    /// Source.
    pub source: String,
    /// Label from the hardware, if any.
    pub label: Option<String>,
    /// `energy` (a cumulative counter; power is derived) or `power` (a power sensor only).
    pub measurement: String,
    /// Joules per counter tick (energy counters).
    pub energy_resolution_joules: Option<f64>,
    /// Joules after which the counter wraps, when it wraps.
    pub energy_wrap_joules: Option<f64>,
    /// Power limits.
    pub controls: Vec<ControlV1>,
}

/// One power limit in [`DomainInfoV1`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlV1 {
    /// `long_term`, `short_term`, `peak_power`, `cap`.
    pub name: String,
    /// Its setting and range.
    #[serde(flatten)]
    pub limit: LimitV1,
}

/// A power limit's setting and range, as the hardware has it: flattened into [`ControlV1`] and
/// [`crate::cap::CapControlV1`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LimitV1 {
    /// The limit in force, watts.
    pub limit_watts: Option<f64>,
    /// Smallest accepted value, watts.
    pub min_watts: Option<f64>,
    /// Largest accepted value, watts.
    pub max_watts: Option<f64>,
    /// Factory default, watts, when the hardware reports one.
    pub default_watts: Option<f64>,
    /// Averaging window, seconds.
    pub time_window_s: Option<f64>,
    /// Whether the limit is enabled.
    pub enabled: Option<bool>,
    /// Whether it is locked.
    pub locked: bool,
}

impl From<&PowerLimit> for LimitV1 {
    fn from(l: &PowerLimit) -> LimitV1 {
        LimitV1 {
            limit_watts: l.limit_watts,
            min_watts: l.min_watts,
            max_watts: l.max_watts,
            default_watts: l.default_watts,
            time_window_s: l.time_window_s,
            enabled: l.enabled,
            locked: l.locked,
        }
    }
}

/// `powerstack topology --format json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopologyV1 {
    /// Which document, and which node it speaks of.
    #[serde(flatten)]
    pub header: crate::v1::HeaderV1,
    /// CPU vendor (`intel`, `amd`, or the raw vendor id).
    pub cpu_vendor: Option<String>,
    /// CPU family.
    pub cpu_family: Option<u32>,
    /// CPU model number.
    pub cpu_model: Option<u32>,
    /// CPU model name.
    pub cpu_model_name: Option<String>,
    /// Online CPUs as a CPU list.
    pub online_cpus: String,
    /// Offline CPUs as a CPU list.
    pub offline_cpus: String,
    /// Packages (sockets).
    pub packages: Vec<PackageV1>,
    /// GPUs, in PCI bus order.
    pub gpus: Vec<GpuV1>,
}

/// A package in [`TopologyV1`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PackageV1 {
    /// Package id.
    pub id: u32,
    /// Physical cores.
    pub cores: u32,
    /// Its online logical CPUs, as a CPU list (an offline CPU's package is unknown).
    pub cpus: String,
}

/// A GPU in [`TopologyV1`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpuV1 {
    /// GPU number.
    pub index: u32,
    /// Attached socket.
    pub socket: Option<u32>,
    /// Provider.
    pub provider: String,
    /// Source.
    pub source: String,
}

/// A domain's name as tables and CSV write it: `package-0`, `package-0-die-1`, `node`,
/// `platform`.
pub fn domain_name(domain: &str, index: u32, die: Option<u32>) -> String {
    match (domain, die) {
        ("node" | "platform", _) => domain.to_string(),
        (d, Some(die)) => format!("{d}-{index}-die-{die}"),
        (d, None) => format!("{d}-{index}"),
    }
}

/// The stable token for where a node figure comes from.
pub fn node_source_name(catalog: &[DomainInfo], source: &NodeSource) -> String {
    match source {
        NodeSource::Direct(i) => match catalog.get(*i) {
            Some(d) if d.id.kind == DomainKind::Platform => "psys".to_string(),
            Some(d) if d.provider == "hwmon" => "power_meter".to_string(),
            Some(d) => d.provider.to_string(),
            None => "unknown".to_string(),
        },
        NodeSource::Sum(parts)
            if parts
                .iter()
                .any(|&i| catalog.get(i).is_some_and(|d| d.id.kind == DomainKind::Platform)) =>
        {
            "psys+gpus".to_string()
        }
        NodeSource::Sum(_) => "sum".to_string(),
    }
}

fn control(l: &PowerLimit) -> ControlV1 {
    ControlV1 { name: l.name.clone(), limit: LimitV1::from(l) }
}

impl PowerV1 {
    /// Builds the document from a report over `catalog`.
    pub fn new(
        origin: &Origin,
        catalog: &[DomainInfo],
        report: &PowerReport,
        warnings: &[String],
    ) -> PowerV1 {
        let (node_power_watts, node_source, node_parts) = match &report.node {
            Some(n) => {
                let parts = match &n.source {
                    NodeSource::Sum(parts) => parts
                        .iter()
                        .filter_map(|&i| catalog.get(i))
                        .map(|d| d.id.to_string())
                        .collect(),
                    NodeSource::Direct(_) => Vec::new(),
                };
                (Some(n.watts), Some(node_source_name(catalog, &n.source)), parts)
            }
            None => (None, None, Vec::new()),
        };
        let domains = catalog
            .iter()
            .zip(&report.domains)
            .map(|(info, d)| DomainPowerV1 {
                domain: info.id.kind.to_string(),
                index: info.id.index,
                die: info.id.die,
                socket: info.socket,
                power_watts: d.power_watts,
                energy_joules: d.energy_joules,
                provider: info.provider.to_string(),
                source: info.source.clone(),
            })
            .collect();
        PowerV1 {
            schema: POWER_SCHEMA.to_string(),
            hostname: origin.hostname.clone(),
            timestamp_us: report.unix_us,
            interval_s: report.interval_s,
            simulated: origin.simulated.is_some(),
            simulated_profile: origin.simulated.clone(),
            node_power_watts,
            node_source,
            node_parts,
            domains,
            warnings: warnings.to_vec(),
        }
    }
}

impl EnergyV1 {
    /// Builds the document from one snapshot's energies (`energies[i]` for `catalog[i]`).
    pub fn new(
        origin: &Origin,
        catalog: &[DomainInfo],
        energies: &[Option<f64>],
        timestamp_us: i64,
        warnings: &[String],
    ) -> EnergyV1 {
        let domains: Vec<DomainEnergyV1> = catalog
            .iter()
            .enumerate()
            .filter(|(_, info)| matches!(info.measurement, Measurement::Energy(_)))
            .map(|(i, info)| DomainEnergyV1 {
                domain: info.id.kind.to_string(),
                index: info.id.index,
                die: info.id.die,
                socket: info.socket,
                energy_joules: energies.get(i).copied().flatten(),
                provider: info.provider.to_string(),
                source: info.source.clone(),
            })
            .collect();
        let (node_energy_joules, node_source) = node_energy(catalog, energies);
        EnergyV1 {
            schema: ENERGY_SCHEMA.to_string(),
            hostname: origin.hostname.clone(),
            timestamp_us,
            simulated: origin.simulated.is_some(),
            simulated_profile: origin.simulated.clone(),
            node_energy_joules,
            node_source,
            domains,
            warnings: warnings.to_vec(),
        }
    }
}

/// The node's energy: a direct node counter; else the platform counter (psys) plus the GPUs' (psys
/// does not cover discrete GPUs); else the sum of packages, memory and GPUs. Returns the joules
/// and the source token.
pub fn node_energy(
    catalog: &[DomainInfo],
    energies: &[Option<f64>],
) -> (Option<f64>, Option<String>) {
    let energy = |i: usize| energies.get(i).copied().flatten();
    let of_kind = |kinds: &[DomainKind]| -> Vec<usize> {
        (0..catalog.len())
            .filter(|&i| kinds.contains(&catalog[i].id.kind) && energy(i).is_some())
            .collect()
    };
    if let Some(&i) = of_kind(&[DomainKind::Node]).first() {
        return (energy(i), Some(node_source_name(catalog, &NodeSource::Direct(i))));
    }
    let gpus = of_kind(&[DomainKind::Gpu]);
    if let Some(&p) = of_kind(&[DomainKind::Platform]).first() {
        let total = energy(p).unwrap_or(0.0) + gpus.iter().filter_map(|&i| energy(i)).sum::<f64>();
        let source = if gpus.is_empty() { "psys" } else { "psys+gpus" };
        return (Some(total), Some(source.to_string()));
    }
    let parts = of_kind(&[DomainKind::Package, DomainKind::Memory, DomainKind::Gpu]);
    if parts.is_empty() {
        return (None, None);
    }
    (Some(parts.iter().filter_map(|&i| energy(i)).sum()), Some("sum".to_string()))
}

impl DomainsV1 {
    /// Builds the document from a catalog and the state of each source.
    pub fn new(
        origin: &Origin,
        catalog: &[DomainInfo],
        timestamp_us: i64,
        sources: &[SourceV1],
        warnings: &[String],
    ) -> DomainsV1 {
        let domains = catalog
            .iter()
            .map(|info| {
                let (measurement, res, wrap) = match info.measurement {
                    Measurement::Energy(spec) => (
                        "energy",
                        Some(spec.joules_per_tick),
                        spec.wrap_ticks.map(|m| m as f64 * spec.joules_per_tick),
                    ),
                    Measurement::Power => ("power", None, None),
                };
                DomainInfoV1 {
                    domain: info.id.kind.to_string(),
                    index: info.id.index,
                    die: info.id.die,
                    socket: info.socket,
                    provider: info.provider.to_string(),
                    source: info.source.clone(),
                    label: info.label.clone(),
                    measurement: measurement.to_string(),
                    energy_resolution_joules: res,
                    energy_wrap_joules: wrap,
                    controls: info.limits.iter().map(control).collect(),
                }
            })
            .collect();
        DomainsV1 {
            schema: DOMAINS_SCHEMA.to_string(),
            hostname: origin.hostname.clone(),
            timestamp_us,
            simulated: origin.simulated.is_some(),
            simulated_profile: origin.simulated.clone(),
            domains,
            sources: sources.to_vec(),
            warnings: warnings.to_vec(),
        }
    }
}
