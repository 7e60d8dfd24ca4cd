//! Joining providers: per-domain priority, and GPUs counted at different granularities.

use powerstack_hw::{Platform, Provider, Reading};
use powerstack_model::{CounterSpec, DomainId, DomainInfo, DomainKind, Measurement, RawEnergy};

struct Fake {
    name: &'static str,
    domains: Vec<DomainInfo>,
}

impl Provider for Fake {
    fn name(&self) -> &'static str {
        self.name
    }
    fn domains(&self) -> &[DomainInfo] {
        &self.domains
    }
    fn read(&mut self, out: &mut [Reading]) {
        for o in out {
            *o = Reading::Energy(RawEnergy::new(1));
        }
    }
}

fn fake(name: &'static str, ids: &[(DomainKind, u32)]) -> Box<dyn Provider> {
    let domains = ids
        .iter()
        .map(|&(k, i)| DomainInfo {
            id: DomainId::new(k, i),
            provider: name,
            source: format!("{name} {k}-{i}"),
            measurement: Measurement::Energy(CounterSpec::non_wrapping(1.0)),
            limits: vec![],
            socket: Some(0),
            label: None,
        })
        .collect();
    Box::new(Fake { name, domains })
}

fn catalog(p: &Platform) -> Vec<(String, &'static str)> {
    p.catalog().iter().map(|d| (d.id.to_string(), d.provider)).collect()
}

#[test]
fn the_first_provider_wins_a_domain_measured_twice() {
    let a = fake("a", &[(DomainKind::Package, 0), (DomainKind::Gpu, 0)]);
    let b = fake("b", &[(DomainKind::Package, 0), (DomainKind::Gpu, 0), (DomainKind::Node, 0)]);
    let (p, warnings) = Platform::new(vec![a, b]);
    assert_eq!(
        catalog(&p),
        vec![("package-0".into(), "a"), ("gpu-0".into(), "a"), ("node".into(), "b")]
    );
    assert_eq!(warnings.len(), 2);
}

#[test]
fn gpu_modules_and_gpu_devices_are_not_mixed() {
    // A board controller reports 4 accelerator modules; a driver reports their 8 GPU devices.
    let board = fake(
        "board",
        &[
            (DomainKind::Node, 0),
            (DomainKind::Gpu, 0),
            (DomainKind::Gpu, 1),
            (DomainKind::Gpu, 2),
            (DomainKind::Gpu, 3),
        ],
    );
    let driver = fake("driver", &(0..8).map(|i| (DomainKind::Gpu, i)).collect::<Vec<_>>());
    let (p, warnings) = Platform::new(vec![board, driver]);
    let gpus: Vec<_> = catalog(&p).into_iter().filter(|(id, _)| id.starts_with("gpu")).collect();
    assert_eq!(gpus.len(), 8);
    assert!(gpus.iter().all(|(_, prov)| *prov == "driver"), "{gpus:?}");
    assert!(catalog(&p).contains(&("node".into(), "board")), "the board's node figure stays");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].message.contains("8 GPU devices"), "{}", warnings[0]);
}
