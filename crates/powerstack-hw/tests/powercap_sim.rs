//! The powercap and MSR providers against the simulator: what they report must match the model's
//! true power.

use std::time::Duration;

use powerstack_hw::providers::{msr, powercap};
use powerstack_hw::{CpuTopology, Platform, Probe, ProbeContext, Provider, Root};
use powerstack_model::{DomainId, DomainKind, PowerReport};
use powerstack_sim::{Profile, SimNode, SimOptions};

/// A simulated node and its topology.
struct Sim {
    _dir: tempfile::TempDir,
    node: SimNode,
    root: Root,
    topology: CpuTopology,
}

fn sim(profile: Profile, opts: SimOptions) -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let node = SimNode::create(dir.path(), profile, opts).unwrap();
    let root = Root::new(dir.path());
    let (topology, warnings) = CpuTopology::discover(&root);
    assert!(warnings.is_empty(), "{warnings:?}");
    Sim { _dir: dir, node, root, topology }
}

impl Sim {
    fn probe(&self, f: fn(&ProbeContext<'_>) -> Probe) -> (Box<dyn Provider>, Vec<String>) {
        let Probe { provider, warnings, .. } = f(&ProbeContext::new(&self.root, &self.topology));
        (provider.expect("a provider"), warnings.iter().map(|w| w.to_string()).collect())
    }

    /// Samples, advances the simulation by `steps` × 1 s, samples again, and checks every domain
    /// against the model.
    fn check(&mut self, provider: Box<dyn Provider>, steps: u32) -> Vec<DomainId> {
        let (mut platform, w) = Platform::new(vec![provider]);
        assert!(w.is_empty(), "{w:?}");
        let mut prev = platform.sample_at(self.node.mono_ns(), self.node.unix_us());
        for _ in 0..steps {
            self.node.advance(Duration::from_secs(1)).unwrap();
            let next = platform.sample_at(self.node.mono_ns(), self.node.unix_us());
            let r = PowerReport::between(platform.catalog(), &prev, &next);
            for d in &r.domains {
                let truth = self.node.true_power_watts(d.id).expect("a modelled domain");
                let got = d.power_watts.unwrap_or_else(|| panic!("{}: no power", d.id));
                assert!(truth > 0.0, "{}: the model draws nothing", d.id);
                assert!((got - truth).abs() <= truth * 0.005, "{}: {got} W, true {truth} W", d.id);
            }
            assert!(platform.take_warnings().is_empty());
            prev = next;
        }
        platform.catalog().iter().map(|d| d.id).collect()
    }
}

fn ids(list: &[(DomainKind, u32)]) -> Vec<DomainId> {
    list.iter().map(|&(k, i)| DomainId::new(k, i)).collect()
}

#[test]
fn powercap_matches_the_model_on_intel_2s() {
    let mut s = sim(Profile::Intel2s, SimOptions::default());
    let (p, warnings) = s.probe(powercap::probe);
    assert!(warnings.is_empty(), "{warnings:?}");
    let got = s.check(p, 3);
    assert!(got.contains(&DomainId::new(DomainKind::Package, 0)), "{got:?}");
    assert!(got.contains(&DomainId::new(DomainKind::Package, 1)), "{got:?}");
    assert!(got.contains(&DomainId::new(DomainKind::Memory, 1)), "{got:?}");
}

#[test]
fn powercap_matches_the_model_on_amd_2s() {
    let mut s = sim(Profile::Amd2s, SimOptions::default());
    let (p, warnings) = s.probe(powercap::probe);
    assert!(warnings.is_empty(), "{warnings:?}");
    let got = s.check(p, 3);
    assert!(got.contains(&DomainId::new(DomainKind::Package, 1)), "{got:?}");
}

#[test]
fn shuffled_indices_and_an_mmio_duplicate_change_nothing() {
    let plain = {
        let mut s = sim(Profile::Intel2s, SimOptions::default());
        let (p, _) = s.probe(powercap::probe);
        s.check(p, 1)
    };
    let opts = SimOptions { shuffle_indices: true, mmio_duplicate: true, ..SimOptions::default() };
    let mut s = sim(Profile::Intel2s, opts);
    let (p, warnings) = s.probe(powercap::probe);
    assert!(warnings.is_empty(), "{warnings:?}");
    // The shuffled layout also has `core` subzones (at index 0, before `dram`); the rest is the
    // same, and the MMIO duplicate of package-0 adds nothing.
    let shuffled = s.check(p, 2);
    let without_cores: Vec<DomainId> =
        shuffled.iter().copied().filter(|id| id.kind != DomainKind::Core).collect();
    assert_eq!(without_cores, plain);
}

#[test]
fn a_missing_dram_is_absent_on_both_providers() {
    let opts = SimOptions { omit_dram: true, ..SimOptions::default() };
    let mut s = sim(Profile::Intel2s, opts);
    let (p, _) = s.probe(powercap::probe);
    let got = s.check(p, 1);
    assert!(got.iter().all(|id| id.kind != DomainKind::Memory), "{got:?}");
    let m = msr::probe_with(&s.topology, Box::new(s.node.msr())).provider.unwrap();
    let got = s.check(m, 1);
    assert!(got.iter().all(|id| id.kind != DomainKind::Memory), "{got:?}");
}

#[test]
fn wraps_near_the_counter_end_are_extended_on_intel_2s() {
    let mut s = sim(Profile::Intel2s, SimOptions::default());
    let (p, _) = s.probe(powercap::probe);
    let m = msr::probe_with(&s.topology, Box::new(s.node.msr())).provider.unwrap();
    let (mut pc, _) = Platform::new(vec![p]);
    let (mut ms, _) = Platform::new(vec![m]);
    for id in ids(&[(DomainKind::Package, 0), (DomainKind::Memory, 1)]) {
        s.node.near_wrap(id, 1.5).unwrap();
    }
    let mut prev = (
        pc.sample_at(s.node.mono_ns(), s.node.unix_us()),
        ms.sample_at(s.node.mono_ns(), s.node.unix_us()),
    );
    for _ in 0..3 {
        s.node.advance(Duration::from_secs(1)).unwrap();
        let next = (
            pc.sample_at(s.node.mono_ns(), s.node.unix_us()),
            ms.sample_at(s.node.mono_ns(), s.node.unix_us()),
        );
        for (platform, a, b) in [(&pc, &prev.0, &next.0), (&ms, &prev.1, &next.1)] {
            let r = PowerReport::between(platform.catalog(), a, b);
            for d in &r.domains {
                let truth = s.node.true_power_watts(d.id).unwrap();
                let got = d.power_watts.unwrap();
                assert!((got - truth).abs() <= truth * 0.005, "{}: {got} W, true {truth} W", d.id);
            }
        }
        prev = next;
    }
}

#[test]
fn msr_register_model_matches_the_model_on_intel_2s() {
    let mut s = sim(Profile::Intel2s, SimOptions::default());
    let Probe { provider, warnings, .. } = msr::probe_with(&s.topology, Box::new(s.node.msr()));
    assert!(warnings.is_empty(), "{warnings:?}");
    let p = provider.unwrap();
    // The register model is exact: limits are read (not a file image).
    let pkg = p.domains().iter().find(|d| d.id == DomainId::new(DomainKind::Package, 0)).unwrap();
    assert_eq!(pkg.limits.len(), 2);
    assert!(pkg.limits.iter().all(|l| l.limit_watts.is_some_and(|w| w > 0.0)));
    let got = s.check(p, 3);
    for id in ids(&[(DomainKind::Package, 0), (DomainKind::Package, 1), (DomainKind::Memory, 0)]) {
        assert!(got.contains(&id), "{id} missing from {got:?}");
    }
}

#[test]
fn msr_register_model_matches_the_model_on_amd_2s() {
    let mut s = sim(Profile::Amd2s, SimOptions::default());
    let Probe { provider, warnings, .. } = msr::probe_with(&s.topology, Box::new(s.node.msr()));
    assert!(warnings.is_empty(), "{warnings:?}");
    let got = s.check(provider.unwrap(), 3);
    assert_eq!(
        got,
        ids(&[
            (DomainKind::Package, 0),
            (DomainKind::Package, 1),
            (DomainKind::Core, 0),
            (DomainKind::Core, 1)
        ])
    );
}

#[test]
fn msr_file_image_gives_energy_and_one_warning_on_intel_2s() {
    let mut s = sim(Profile::Intel2s, SimOptions::default());
    let (p, warnings) = s.probe(msr::probe);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("regular file"), "{}", warnings[0]);
    assert!(p.domains().iter().all(|d| d.limits.is_empty()));
    s.check(p, 2);
}

#[test]
fn a_counter_back_from_a_long_outage_keeps_the_outage_energy() {
    // 60 s unreadable at 400 W: 24 kJ, more than the 10 kJ a package may gain in 2 s. The
    // plausibility ceiling spans the time since this counter was last read, not since the last
    // sample of the node, so the energy of the outage is counted, not refused.
    let s = sim(Profile::Intel2s, SimOptions::default());
    let (provider, _) = s.probe(powercap::probe);
    let (mut platform, _) = Platform::new(vec![provider]);
    let pkg0 = platform
        .catalog()
        .iter()
        .position(|d| d.id == DomainId::new(DomainKind::Package, 0))
        .unwrap();
    let file = s.root.path("sys/class/powercap/intel-rapl:0/energy_uj");
    let start: u64 = std::fs::read_to_string(&file).unwrap().trim().parse().unwrap();
    let joules = |snap: &powerstack_model::Snapshot| match snap.values[pkg0] {
        powerstack_model::Value::Energy { joules, .. } => joules,
        ref v => panic!("{v:?}"),
    };
    let sec = 1_000_000_000u64;
    let first = joules(&platform.sample_at(sec, 0));
    std::fs::write(&file, "garbage\n").unwrap();
    for t in 2..=60 {
        let snap = platform.sample_at(t * sec, 0);
        assert!(matches!(snap.values[pkg0], powerstack_model::Value::Missing));
    }
    std::fs::write(&file, format!("{}\n", start + 24_000_000_000)).unwrap();
    let back = joules(&platform.sample_at(61 * sec, 0));
    assert!((back - first - 24_000.0).abs() < 1e-6, "{first} → {back}");
    let warnings: Vec<String> = platform.take_warnings().iter().map(|w| w.to_string()).collect();
    assert!(!warnings.iter().any(|w| w.contains("implausible")), "{warnings:?}");
}
