//! Golden Variorum outputs for the GPU profiles, read from simulated nodes with simulated time, so
//! the numbers are exact and stable. `UPDATE_GOLDEN=1` rewrites the files; review the diff.

use std::path::PathBuf;
use std::time::Duration;

use powerstack_api::variorum;
use powerstack_hw::{Root, Selection, discover};
use powerstack_model::{PowerReport, Value};
use powerstack_sim::{Profile, SimNode, SimOptions};

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{}: {e}; run with UPDATE_GOLDEN=1 to create it", path.display())
    });
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

/// One second of the simulated node, read the way `powerstack power` reads it.
fn outputs(profile: Profile) -> (String, String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = SimNode::create(dir.path(), profile, SimOptions::default()).unwrap();
    let mut platform = discover(&Root::new(dir.path()), &Selection::Auto).platform;
    let a = platform.sample_at(sim.mono_ns(), sim.unix_us());
    sim.advance(Duration::from_secs(1)).unwrap();
    let b = platform.sample_at(sim.mono_ns(), sim.unix_us());
    let catalog = platform.catalog();
    let report = PowerReport::between(catalog, &a, &b);
    let energies: Vec<Option<f64>> = b
        .values
        .iter()
        .map(|v| if let Value::Energy { joules, .. } = v { Some(*joules) } else { None })
        .collect();
    (
        variorum::to_pretty(&variorum::power("node01", catalog, &report)),
        variorum::to_pretty(&variorum::power_flat("node01", catalog, &report)),
        variorum::to_pretty(&variorum::energy("node01", catalog, &energies, b.unix_us)),
        variorum::to_pretty(&variorum::domain_info(
            "node01",
            catalog,
            b.unix_us,
            report.node.is_some(),
        )),
    )
}

#[test]
fn nvidia_4gpu_variorum_outputs() {
    let (power, flat, energy, domains) = outputs(Profile::Nvidia4gpu);
    check("variorum-nvidia-4gpu.json", &power);
    check("variorum-flat-nvidia-4gpu.json", &flat);
    check("variorum-energy-nvidia-4gpu.json", &energy);
    check("variorum-domains-nvidia-4gpu.json", &domains);
}

#[test]
fn amd_mi250x_variorum_outputs() {
    let (power, flat, energy, domains) = outputs(Profile::AmdMi250x);
    check("variorum-amd-mi250x.json", &power);
    check("variorum-flat-amd-mi250x.json", &flat);
    check("variorum-energy-amd-mi250x.json", &energy);
    check("variorum-domains-amd-mi250x.json", &domains);
}
