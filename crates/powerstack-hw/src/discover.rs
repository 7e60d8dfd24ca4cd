//! Discovery: probe the registered providers under a root and join what they found.
//!
//! The providers come from a [`Registry`] (the built-in one unless the caller adds its own), and
//! their options from one [`ProviderOptions`], both in [`DiscoverOptions`].

use powerstack_model::DomainKind;
use powerstack_model::power::node_parts;

use crate::error::Warning;
use crate::platform::Platform;
use crate::provider::{Probe, Provider};
use crate::providers::{ProbeContext, ProviderOptions, Registry, Source};
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
    /// What became of each registered source, in the registry's order.
    pub sources: Vec<SourceReport>,
}

/// What discovery made of one source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceReport {
    /// The source.
    pub source: Source,
    /// What became of it.
    pub state: SourceState,
}

/// The state of one source after discovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceState {
    /// It measures this many domains (before two sources measuring one domain are joined).
    Found {
        /// How many.
        domains: usize,
    },
    /// It has nothing on this node (no device, driver, directory or library): why. A warning too
    /// when the sources found do not measure the node.
    Absent(String),
    /// It is there but gave nothing usable: the first of its warnings.
    Unusable(String),
    /// It was not probed: why (not selected; another source measures the packages).
    NotProbed(String),
}

impl SourceState {
    /// `found`, `absent`, `unusable` or `not_probed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SourceState::Found { .. } => "found",
            SourceState::Absent(_) => "absent",
            SourceState::Unusable(_) => "unusable",
            SourceState::NotProbed(_) => "not_probed",
        }
    }

    /// One line for people: the domain count, or the reason.
    pub fn detail(&self) -> String {
        match self {
            SourceState::Found { domains: 1 } => "1 domain".into(),
            SourceState::Found { domains } => format!("{domains} domains"),
            SourceState::Absent(why) | SourceState::Unusable(why) | SourceState::NotProbed(why) => {
                why.clone()
            }
        }
    }
}

impl std::fmt::Display for SourceReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.source.as_str(), self.state.as_str(), self.state.detail())
    }
}

/// Options of discovery beyond the root and the selection.
#[derive(Clone, Debug, Default)]
pub struct DiscoverOptions {
    /// The providers' options, handed to every probe.
    pub providers: ProviderOptions,
    /// The providers to probe, in priority order: the built-in ones by default, others added
    /// with [`Registry::with`].
    pub registry: Registry,
}

impl From<ProviderOptions> for DiscoverOptions {
    /// The built-in providers, with these options.
    fn from(providers: ProviderOptions) -> Self {
        DiscoverOptions { providers, registry: Registry::builtin() }
    }
}

/// Probes the selected providers under `root`.
pub fn discover(root: &Root, selection: &Selection) -> Discovery {
    discover_with(root, selection, &DiscoverOptions::default())
}

/// Probes the selected providers of `options.registry` under `root`, with the providers'
/// options.
///
/// An absent source (see [`Probe::absent`]) is a warning only when the sources found do not
/// measure the node (no node figure can be built from their domains: see
/// [`powerstack_model::power::node_parts`]); otherwise it is only reported in
/// [`Discovery::sources`]. Whether an absent interface would have measured anything cannot be
/// known (a VM has CPUs but no RAPL; a node without GPUs has no NVML); a domain that is there but
/// unmeasured (NVIDIA devices without a library, an unreadable zone) is a warning of its provider.
pub fn discover_with(root: &Root, selection: &Selection, options: &DiscoverOptions) -> Discovery {
    let (topology, mut warnings) = CpuTopology::discover(root);
    let ctx = ProbeContext::with_options(root, &topology, &options.providers);
    let registry = &options.registry;
    let mut providers: Vec<Box<dyn Provider>> = Vec::new();
    let order: Vec<Source> = match selection {
        Selection::Auto => registry.entries().iter().map(|r| r.source).collect(),
        Selection::Only(list) => list.clone(),
    };
    // Per source probed, in order: its warnings, and its absence.
    let mut probed: Vec<(Source, Vec<Warning>, Option<String>)> = Vec::new();
    let mut sources: Vec<SourceReport> = Vec::new();
    for source in order {
        let Some(reg) = registry.get(source) else { continue };
        if let Some(kind) = reg.unless_measured.filter(|_| *selection == Selection::Auto) {
            let measured = providers.iter().any(|p| p.domains().iter().any(|d| d.id.kind == kind));
            if measured {
                let why = format!("another source measures the {}s", kind.as_str());
                sources.push(SourceReport { source, state: SourceState::NotProbed(why) });
                continue;
            }
        }
        let Probe { provider, warnings: w, absent } = (reg.probe)(&ctx);
        let state = match (&provider, &absent, w.first()) {
            (Some(p), _, _) => SourceState::Found { domains: p.domains().len() },
            (None, Some(why), _) => SourceState::Absent(why.clone()),
            (None, None, Some(first)) => SourceState::Unusable(first.message.clone()),
            (None, None, None) => SourceState::Unusable("nothing usable found".into()),
        };
        sources.push(SourceReport { source, state });
        probed.push((source, w, absent));
        if let Some(p) = provider {
            providers.push(p);
        }
    }
    for reg in registry.entries() {
        if !sources.iter().any(|s| s.source == reg.source) {
            let state = SourceState::NotProbed("not selected".into());
            sources.push(SourceReport { source: reg.source, state });
        }
    }
    sources.sort_by_key(|s| registry.position(s.source));
    let (platform, w) = Platform::new(providers);
    let kinds: Vec<DomainKind> = platform.catalog().iter().map(|d| d.id.kind).collect();
    let node_measured = !node_parts(&kinds).is_empty();
    for (source, w, absent) in probed {
        if let Some(why) = absent.filter(|_| !node_measured) {
            warnings.push(Warning::new(source.as_str(), why));
        }
        warnings.extend(w);
    }
    warnings.extend(w);
    Discovery { platform, topology, warnings, sources }
}
