//! Numbers that cannot be absurd: a value outside its domain's physical range (power above the
//! plausibility ceiling, a counter beyond its wrap range or holding an all-ones sentinel, an
//! energy jump implying power above the ceiling) and a file the kernel would never write (two
//! lines, an unknown pm_counters interface version) are read failures with a warning naming the
//! file, never figures. Simulated roots (`powerstack_sim`), read on the simulator's clock.

use std::time::Duration;

use powerstack_hw::platform::{RATED_FACTOR, ceiling_watts, generic_ceiling_watts};
use powerstack_hw::{DiscoverOptions, Platform, Root, Selection, Source, discover_with};
use powerstack_model::{
    DomainId, DomainInfo, DomainKind, Measurement, NodeSource, PowerLimit, PowerReport, Snapshot,
    Value,
};
use powerstack_sim::{Profile, SimNode, SimOptions};

struct Sim {
    dir: tempfile::TempDir,
    node: SimNode,
}

fn sim(profile: Profile) -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let node = SimNode::create(dir.path(), profile, SimOptions::default()).unwrap();
    Sim { dir, node }
}

impl Sim {
    fn platform(&self, sources: &[Source]) -> (Platform, Vec<String>) {
        let d = discover_with(
            &Root::new(self.dir.path()),
            &Selection::Only(sources.to_vec()),
            &DiscoverOptions::default(),
        );
        (d.platform, d.warnings.iter().map(ToString::to_string).collect())
    }

    fn write(&self, rel: &str, content: &str) {
        std::fs::write(self.dir.path().join(rel), content).unwrap();
    }

    fn sample(&self, platform: &mut Platform) -> Snapshot {
        platform.sample_at(self.node.mono_ns(), self.node.unix_us())
    }

    fn step(&mut self) {
        self.node.advance(Duration::from_secs(1)).unwrap();
    }
}

fn index(platform: &Platform, kind: DomainKind, i: u32) -> usize {
    platform.catalog().iter().position(|d| d.id == DomainId::new(kind, i)).unwrap()
}

fn warnings(platform: &mut Platform) -> String {
    platform.take_warnings().iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

#[test]
fn the_ceiling_comes_from_the_ratings_within_the_kind_bounds() {
    let limit = |max: Option<f64>, default: Option<f64>, limit: Option<f64>| PowerLimit {
        name: "cap".into(),
        max_watts: max,
        default_watts: default,
        limit_watts: limit,
        ..PowerLimit::default()
    };
    let info = |kind, limits| DomainInfo {
        id: DomainId::new(kind, 0),
        provider: "test",
        source: String::new(),
        measurement: Measurement::Power,
        limits,
        socket: None,
        label: None,
    };
    let node = DomainKind::Node;
    assert_eq!(ceiling_watts(&info(node, vec![])), generic_ceiling_watts(node));
    // A cap in force is no rating: it can be lifted.
    assert_eq!(ceiling_watts(&info(node, vec![limit(None, None, Some(50.0))])), 100_000.0);
    let rated = info(DomainKind::Gpu, vec![limit(Some(700.0), Some(600.0), Some(300.0))]);
    assert_eq!(ceiling_watts(&rated), 700.0 * RATED_FACTOR);
    // A rating that is itself absurd stays within the kind's bounds.
    let huge = info(DomainKind::Gpu, vec![limit(Some(1.8e13), None, None)]);
    assert_eq!(ceiling_watts(&huge), generic_ceiling_watts(DomainKind::Gpu));
    let tiny = info(DomainKind::Gpu, vec![limit(Some(1e-6), None, None)]);
    assert_eq!(ceiling_watts(&tiny), generic_ceiling_watts(DomainKind::Gpu) / 100.0);
}

#[test]
fn hwmon_power_above_the_ceiling_is_a_read_failure_and_the_node_falls_back_to_its_parts() {
    let mut s = sim(Profile::HwmonNode);
    let (mut platform, w) = s.platform(&[Source::Hwmon]);
    assert!(w.is_empty(), "{w:?}");
    let node = index(&platform, DomainKind::Node, 0);
    let meter = "sys/class/hwmon/hwmon0/power1_average";
    // The meter's power1_cap_max is 1000 W: its ceiling is 4000 W.
    assert_eq!(ceiling_watts(&platform.catalog()[node]), 4000.0);
    for (uw, plausible) in
        [("18446744073709551615", false), ("4000000001", false), ("3999000000", true)]
    {
        let a = s.sample(&mut platform);
        s.step();
        s.write(meter, &format!("{uw}\n"));
        let b = s.sample(&mut platform);
        let r = PowerReport::between(platform.catalog(), &a, &b);
        let said = warnings(&mut platform);
        let node_power = r.node.as_ref().unwrap();
        if plausible {
            assert!(matches!(b.values[node], Value::Power { watts: 3999.0 }), "{said}");
            assert_eq!(node_power.source, NodeSource::Direct(node));
        } else {
            assert_eq!(r.domains[node].power_watts, None, "{uw} µW read as a figure");
            assert!(matches!(b.values[node], Value::Missing));
            // The node figure falls back to the sum of its parts (the GPU), never 1.8e13 W.
            assert!(matches!(node_power.source, NodeSource::Sum(_)), "{node_power:?}");
            assert!(node_power.watts < 1000.0, "{node_power:?}");
        }
        if uw.starts_with("1844") {
            assert!(
                said.contains("power1_average") && said.contains("ceiling of 4000 W"),
                "the warning names the file and the ceiling: {said}"
            );
        }
        // Back to a plausible reading before the next case (the warning is raised once).
        s.write(meter, "385000000\n");
        s.sample(&mut platform);
        warnings(&mut platform);
    }
}

#[test]
fn a_powercap_counter_above_its_range_is_a_read_failure_naming_the_file() {
    let mut s = sim(Profile::Intel2s);
    let (mut platform, w) = s.platform(&[Source::Powercap]);
    assert!(w.is_empty(), "{w:?}");
    let pkg = index(&platform, DomainKind::Package, 0);
    let zone = "sys/class/powercap/intel-rapl:0";
    let range: u64 = std::fs::read_to_string(s.dir.path().join(zone).join("max_energy_range_uj"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    s.sample(&mut platform);
    s.step();
    s.write(&format!("{zone}/energy_uj"), &format!("{}\n", range + 1));
    let b = s.sample(&mut platform);
    assert!(matches!(b.values[pkg], Value::Missing), "{:?}", b.values[pkg]);
    let said = warnings(&mut platform);
    assert!(
        said.contains(&format!("{zone}/energy_uj")) && said.contains("max_energy_range_uj"),
        "{said}"
    );
}

#[test]
fn an_energy_file_with_two_lines_is_a_read_failure_not_its_first_line() {
    let mut s = sim(Profile::Intel2s);
    let (mut platform, _) = s.platform(&[Source::Powercap]);
    let pkg = index(&platform, DomainKind::Package, 0);
    let file = "sys/class/powercap/intel-rapl:0/energy_uj";
    s.sample(&mut platform);
    s.step();
    let now = std::fs::read_to_string(s.dir.path().join(file)).unwrap();
    let value: u64 = now.trim().parse().unwrap();
    s.write(file, &format!("{}\n{}\n", value + 1000, value + 2000));
    let b = s.sample(&mut platform);
    assert!(matches!(b.values[pkg], Value::Missing), "{:?}", b.values[pkg]);
    let said = warnings(&mut platform);
    assert!(said.contains(file) && said.contains("more than one line"), "{said}");
}

#[test]
fn a_pm_counters_version_the_firmware_never_writes_is_refused_naming_the_file() {
    for (version, known) in [
        ("3\n", true),
        ("2\n", true),
        ("99\n", false),
        ("abc\n", false),
        ("3\n3\n", false),
        ("-1\n", false),
    ] {
        let s = sim(Profile::CrayEx);
        s.write("sys/cray/pm_counters/version", version);
        let (platform, w) = s.platform(&[Source::PmCounters]);
        let said = w.join("\n");
        assert_eq!(!platform.is_empty(), known, "version {version:?}: {said}");
        if !known {
            assert!(
                said.contains("pm_counters/version") && said.contains("1 to 3"),
                "version {version:?}: {said}"
            );
        }
    }
}

#[test]
fn an_nvml_energy_sentinel_or_jump_above_the_ceiling_is_no_energy() {
    let mut s = sim(Profile::Nvidia4gpu);
    let (mut platform, w) = s.platform(&[Source::Nvml]);
    assert!(w.is_empty(), "{w:?}");
    let gpu = index(&platform, DomainKind::Gpu, 0);
    let rated = ceiling_watts(&platform.catalog()[gpu]);
    assert!(rated < generic_ceiling_watts(DomainKind::Gpu), "the GPU is rated: {rated} W");
    // The mock's GPUs are in NVML index order; gpu-0 (the first in PCI order) starts at 3.6e9 mJ.
    let file = (0..4)
        .map(|n| format!("var/lib/powerstack-sim/nvml/gpu{n}/energy_mj"))
        .find(|f| std::fs::read_to_string(s.dir.path().join(f)).unwrap().trim() == "3600000000")
        .unwrap();
    let file = file.as_str();
    // The all-ones sentinel, as the very first reading: no 1.84e16 J.
    s.write(file, &format!("{}\n", u64::MAX));
    let a = s.sample(&mut platform);
    assert!(matches!(a.values[gpu], Value::Missing), "{:?}", a.values[gpu]);
    assert!(warnings(&mut platform).contains("gpu-0"));
    // A jump implying 2.5 times the ceiling over a second (energy deltas may imply up to twice
    // it), below the generic GPU ceiling.
    s.write(file, "1000000\n");
    let a = s.sample(&mut platform);
    assert!(matches!(a.values[gpu], Value::Energy { .. }), "{:?}", a.values[gpu]);
    s.step();
    let jump_mj = 1_000_000 + (rated * 2.5 * 1e3) as u64;
    s.write(file, &format!("{jump_mj}\n"));
    let b = s.sample(&mut platform);
    let r = PowerReport::between(platform.catalog(), &a, &b);
    assert_eq!(r.domains[gpu].power_watts, None, "{:?}", r.domains[gpu]);
    assert!(warnings(&mut platform).contains("implausible energy jump"));
}
