//! A provider defined outside the crate (here, a node meter behind a BMC): registered on a
//! registry handed to discovery, then discovered, sampled and reported like a built-in one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tempfile::TempDir;

use powerstack_hw::{
    DiscoverOptions, Discovery, Probe, ProbeContext, Provider, Reading, Refresh, Registration,
    Registry, Root, Selection, Source, SourceState, Warning, discover_with,
};
use powerstack_model::{
    CounterSpec, DomainId, DomainInfo, DomainKind, Measurement, PowerReport, RawEnergy,
};

const BMC: Source = Source::External("bmc");

/// A node meter read over the network; here its counter (mJ) is moved by the test.
struct Bmc {
    domains: Vec<DomainInfo>,
    energy_mj: Arc<AtomicU64>,
}

impl Provider for Bmc {
    fn name(&self) -> &'static str {
        BMC.as_str()
    }
    fn domains(&self) -> &[DomainInfo] {
        &self.domains
    }
    fn read(&mut self, out: &mut [Reading]) {
        out[0] = Reading::Energy(RawEnergy::new(self.energy_mj.load(Ordering::Relaxed)));
    }
    fn refresh(&self) -> Refresh {
        Refresh::Stepped { period: Duration::from_secs(1) }
    }
}

/// The built-in providers and the BMC, which answers when `reachable`. The probe carries its own
/// settings (the counter, whether the BMC answers); the root it sees is the one discovered.
fn registry(energy_mj: &Arc<AtomicU64>, reachable: bool, root: &Root) -> Registry {
    let energy_mj = Arc::clone(energy_mj);
    let base = root.base().to_path_buf();
    Registry::builtin().with(Registration::new(BMC, move |ctx: &ProbeContext<'_>| {
        assert_eq!(ctx.root.base(), base.as_path());
        if !reachable {
            return Probe::absent("no BMC answers at bmc.example:443");
        }
        let info = DomainInfo {
            id: DomainId::NODE,
            provider: BMC.as_str(),
            source: "bmc https://bmc.example/redfish/v1/Chassis/1/Power".into(),
            measurement: Measurement::Energy(CounterSpec::non_wrapping(1e-3)),
            limits: Vec::new(),
            socket: None,
            label: None,
        };
        let bmc = Bmc { domains: vec![info], energy_mj: Arc::clone(&energy_mj) };
        Probe {
            provider: Some(Box::new(bmc)),
            warnings: vec![Warning::new(BMC.as_str(), "power limits not read: read-only account")],
            absent: None,
        }
    }))
}

/// Discovers an empty root (no built-in source) with the BMC registered: what was found, the
/// BMC's counter, and the root's directory (kept for the test's life).
fn discover_bmc(reachable: bool, selection: &Selection) -> (Discovery, Arc<AtomicU64>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new(dir.path());
    let energy_mj = Arc::new(AtomicU64::new(5_000));
    let options =
        DiscoverOptions { registry: registry(&energy_mj, reachable, &root), ..Default::default() };
    (discover_with(&root, selection, &options), energy_mj, dir)
}

fn state(sources: &[powerstack_hw::SourceReport], source: Source) -> SourceState {
    sources.iter().find(|r| r.source == source).expect("every source is reported").state.clone()
}

#[test]
fn an_external_provider_is_discovered_sampled_and_reported_like_a_built_in_one() {
    let (found, energy_mj, _dir) = discover_bmc(true, &Selection::Auto);

    // Reported after the built-in sources, in the registry's order.
    let order: Vec<Source> = found.sources.iter().map(|r| r.source).collect();
    let mut expected = Source::ALL.to_vec();
    expected.push(BMC);
    assert_eq!(order, expected);
    assert_eq!(state(&found.sources, BMC), SourceState::Found { domains: 1 });
    let line = found.sources.iter().find(|r| r.source == BMC).unwrap().to_string();
    assert_eq!(line, "bmc: found: 1 domain");
    for s in Source::ALL {
        assert!(matches!(state(&found.sources, s), SourceState::Absent(_)), "{s:?}");
    }
    // Its warnings are passed on; the node is measured, so no absent source is a warning.
    let warnings: Vec<String> = found.warnings.iter().map(ToString::to_string).collect();
    assert!(warnings.contains(&"bmc: power limits not read: read-only account".to_string()));
    for s in Source::ALL {
        assert!(!found.warnings.iter().any(|w| w.provider == s.as_str()), "{warnings:?}");
    }

    // Sampled and joined into the node figure.
    let mut platform = found.platform;
    assert_eq!(platform.provider_names(), vec!["bmc"]);
    assert_eq!(platform.catalog()[0].id.kind, DomainKind::Node);
    let a = platform.sample_at(1_000_000_000, 1_000_000);
    energy_mj.fetch_add(250_000, Ordering::Relaxed);
    let b = platform.sample_at(2_000_000_000, 2_000_000);
    let report = PowerReport::between(platform.catalog(), &a, &b);
    let node = report.node.expect("the BMC measures the node");
    assert!((node.watts - 250.0).abs() < 1e-9, "{}", node.watts);

    // Its cadence is kept, for a sampler to read it at its own pace.
    let providers = platform.into_providers();
    assert_eq!(providers[0].refresh(), Refresh::Stepped { period: Duration::from_secs(1) });
}

#[test]
fn an_external_provider_can_be_selected_by_itself() {
    let (found, _energy_mj, _dir) = discover_bmc(true, &Selection::Only(vec![BMC]));
    assert_eq!(state(&found.sources, BMC), SourceState::Found { domains: 1 });
    for s in Source::ALL {
        let not_selected = SourceState::NotProbed("not selected".into());
        assert_eq!(state(&found.sources, s), not_selected, "{s:?}");
    }
    assert_eq!(found.platform.catalog().len(), 1);
}

#[test]
fn an_absent_external_provider_is_a_warning_when_nothing_measures_the_node() {
    let (found, _energy_mj, _dir) = discover_bmc(false, &Selection::Auto);
    assert!(found.platform.is_empty());
    let why = "no BMC answers at bmc.example:443".to_string();
    assert_eq!(state(&found.sources, BMC), SourceState::Absent(why.clone()));
    assert!(
        found.warnings.iter().any(|w| w.provider == "bmc" && w.message == why),
        "{:?}",
        found.warnings
    );
}
