//! Discovery: probe the registered providers under a root and join what they found.

use std::path::PathBuf;

use powerstack_model::DomainKind;

use crate::error::Warning;
use crate::platform::Platform;
use crate::provider::{Probe, ProbeContext, Provider};
use crate::providers::{REGISTRY, Source};
use crate::root::Root;
use crate::topology::CpuTopology;

/// Which sources to use.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Selection {
    /// Every source that is present; RAPL MSRs only when powercap gave no package domain.
    #[default]
    Auto,
    /// Exactly these sources, in this order of priority.
    Only(Vec<Source>),
}

impl std::str::FromStr for Selection {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            return Ok(Selection::Auto);
        }
        let list =
            s.split(',').map(|x| x.trim().parse::<Source>()).collect::<Result<Vec<_>, _>>()?;
        if list.is_empty() {
            return Err("empty source list".into());
        }
        Ok(Selection::Only(list))
    }
}

/// What discovery found.
pub struct Discovery {
    /// The joined providers.
    pub platform: Platform,
    /// The CPU topology.
    pub topology: CpuTopology,
    /// What could not be used, and why.
    pub warnings: Vec<Warning>,
}

/// Options of discovery beyond the root and the selection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscoverOptions {
    /// The NVML library to load instead of the one found by the `nvml` provider's rules.
    pub nvml_lib: Option<PathBuf>,
}

/// Probes the selected providers under `root`.
pub fn discover(root: &Root, selection: &Selection) -> Discovery {
    discover_with(root, selection, &DiscoverOptions::default())
}

/// Probes the selected providers under `root`, with options.
pub fn discover_with(root: &Root, selection: &Selection, options: &DiscoverOptions) -> Discovery {
    let (topology, mut warnings) = CpuTopology::discover(root);
    let ctx = ProbeContext { root, topology: &topology, nvml_lib: options.nvml_lib.clone() };
    let mut providers: Vec<Box<dyn Provider>> = Vec::new();
    let order: Vec<Source> = match selection {
        Selection::Auto => REGISTRY.iter().map(|r| r.source).collect(),
        Selection::Only(list) => list.clone(),
    };
    for source in order {
        let Some(reg) = REGISTRY.iter().find(|r| r.source == source) else { continue };
        if source == Source::Msr && *selection == Selection::Auto {
            let has_packages = providers
                .iter()
                .any(|p| p.domains().iter().any(|d| d.id.kind == DomainKind::Package));
            if has_packages {
                continue;
            }
        }
        let Probe { provider, warnings: w } = (reg.probe)(&ctx);
        // In automatic mode an absent MSR device is not worth a warning when powercap is there.
        warnings.extend(w);
        if let Some(p) = provider {
            providers.push(p);
        }
    }
    let (platform, w) = Platform::new(providers);
    warnings.extend(w);
    Discovery { platform, topology, warnings }
}
