//! The journal bound to its node, restores checked like any write, and journals of older versions.

use std::path::Path;

use powerstack_cap::{Capper, ControlKey, NodeId, Request, Setting, StateDir};
use powerstack_hw::{HwError, Platform, Provider, Reading, Root, Selection, discover};
use powerstack_model::{
    CounterSpec, DomainId, DomainInfo, DomainKind, LimitWrite, Measurement, PowerLimit,
};
use powerstack_sim::{Profile, SimNode, SimOptions};

const PKG0: &str = "sys/class/powercap/intel-rapl:0/constraint_0_power_limit_uw";

fn node(profile: Profile) -> (tempfile::TempDir, Platform) {
    let dir = tempfile::tempdir().unwrap();
    SimNode::create(dir.path(), profile, SimOptions::default()).unwrap();
    let platform = discover(&Root::new(dir.path()), &Selection::Auto).platform;
    (dir, platform)
}

/// The state directory `dir` of the node under `root`.
fn at(dir: &Path, root: &Path) -> StateDir {
    StateDir::new(dir, NodeId::new(&Root::new(root), None))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

fn pkg0_long_term() -> ControlKey {
    ControlKey {
        provider: "powercap".into(),
        domain: "package-0".into(),
        constraint: "long_term".into(),
    }
}

fn setting(watts: f64) -> Setting {
    Setting { limit_watts: Some(watts), time_window_s: Some(0.999424), enabled: Some(true) }
}

/// Caps package-0 of the node under `root` at `watts`, journaled in `state`.
fn cap_pkg0(p: &mut Platform, root: &Path, state: &StateDir, watts: f64) {
    let index = p.catalog().iter().position(|d| d.id == DomainId::new(DomainKind::Package, 0));
    let (mut capper, _) = Capper::open(p, &Root::new(root), state, "test").unwrap();
    let write = LimitWrite {
        constraint: "long_term".into(),
        limit_watts: watts,
        time_window_s: None,
        enabled: Some(true),
    };
    let plan = capper.plan(&[Request { index: index.unwrap(), write }]).unwrap();
    capper.apply(&plan).unwrap();
}

#[test]
fn a_journal_of_another_node_is_refused_and_left_untouched() {
    let (a, mut pa) = node(Profile::Intel2s);
    let (b, mut pb) = node(Profile::Intel2s);
    let state = tempfile::tempdir().unwrap();
    cap_pkg0(&mut pa, a.path(), &at(state.path(), a.path()), 90.0);
    std::fs::write(b.path().join(PKG0), "80000000\n").unwrap();
    let journal = std::fs::read(state.path().join("journal.json")).unwrap();

    let e = Capper::open(&mut pb, &Root::new(b.path()), &at(state.path(), b.path()), "test")
        .err()
        .expect("refused");
    let msg = e.to_string();
    assert!(msg.contains("belongs to another node"), "{msg}");
    assert!(
        msg.contains(&format!("--root {}", a.path().canonicalize().unwrap().display())),
        "{msg}"
    );
    assert_eq!(msg.lines().count(), 1);
    assert_eq!(read(&b.path().join(PKG0)), "80000000", "nothing restored onto the other node");
    assert_eq!(std::fs::read(state.path().join("journal.json")).unwrap(), journal);

    // Another simulated profile at the same root is another node too.
    let other = StateDir::new(state.path(), NodeId::new(&Root::new(a.path()), Some("amd-2s")));
    let e = other.journal("test").err().expect("refused");
    assert!(e.to_string().contains("belongs to another node"), "{e}");

    // On its own node it restores; an empty journal then serves any node.
    let (mut capper, _) =
        Capper::open(&mut pa, &Root::new(a.path()), &at(state.path(), a.path()), "test").unwrap();
    assert_eq!(capper.reset().unwrap().restored, vec![pkg0_long_term()]);
    drop(capper);
    assert_eq!(read(&a.path().join(PKG0)), "150000000");
    cap_pkg0(&mut pb, b.path(), &at(state.path(), b.path()), 100.0);
    assert_eq!(read(&b.path().join(PKG0)), "100000000");
}

#[test]
fn an_original_outside_the_domains_range_is_not_restored_and_stays_in_the_journal() {
    // The journal of an intel-offline node (350 W packages) put onto an intel-2s one (150 W at
    // most), as an unbound journal of an older version would be.
    let (dir, mut p) = node(Profile::Intel2s);
    let state = tempfile::tempdir().unwrap();
    {
        let mut j = at(state.path(), dir.path()).journal("test").unwrap();
        j.begin(vec![(pkg0_long_term(), "intel-rapl:0".into(), setting(350.0))], "test").unwrap();
        j.finish().unwrap();
    }
    std::fs::write(dir.path().join(PKG0), "90000000\n").unwrap();
    let (mut capper, _) =
        Capper::open(&mut p, &Root::new(dir.path()), &at(state.path(), dir.path()), "test")
            .unwrap();
    let r = capper.reset().unwrap();
    assert!(r.restored.is_empty(), "{r:?}");
    let (key, why) = &r.failed[0];
    assert_eq!(key, &pkg0_long_term());
    assert!(why.contains("350 W is outside the allowed range"), "{why}");
    assert_eq!(capper.journal().entries().len(), 1, "the original is kept");
    drop(capper);
    assert_eq!(read(&dir.path().join(PKG0)), "90000000", "nothing written");
}

#[test]
fn a_version_1_journal_is_restored_on_the_node_that_opens_it_with_one_note() {
    let (dir, mut p) = node(Profile::Intel2s);
    let state = tempfile::tempdir().unwrap();
    let v1 = r#"{"version":1,"in_progress":null,"entries":[{"key":{"provider":"powercap","domain":"package-0","constraint":"long_term"},"source":"intel-rapl:0","original":{"limit_watts":150.0,"time_window_s":0.999424,"enabled":true},"last_written":{"limit_watts":90.0,"at_unix_us":1,"by":"root","via":"powerstack cap socket 90"}}],"files":[]}"#;
    std::fs::write(state.path().join("journal.json"), v1).unwrap();
    std::fs::write(dir.path().join(PKG0), "90000000\n").unwrap();
    let here = at(state.path(), dir.path());
    {
        let (capper, _) = Capper::open(&mut p, &Root::new(dir.path()), &here, "test").unwrap();
        assert_eq!(capper.notes().len(), 1, "{:?}", capper.notes());
        assert!(capper.notes()[0].contains("names no node"), "{:?}", capper.notes());
    }
    // Bound at once: another node is refused, and the next opening has nothing to say.
    let e = at(state.path(), state.path()).journal("test").err().expect("refused");
    assert!(e.to_string().contains("belongs to another node"), "{e}");
    let (mut capper, _) = Capper::open(&mut p, &Root::new(dir.path()), &here, "test").unwrap();
    assert!(capper.notes().is_empty(), "{:?}", capper.notes());
    assert_eq!(capper.reset().unwrap().restored, vec![pkg0_long_term()]);
    drop(capper);
    assert_eq!(read(&dir.path().join(PKG0)), "150000000");
}

/// One package whose limit never changes, whatever is written (a firmware that ignores writes).
struct Stubborn {
    domains: Vec<DomainInfo>,
}

impl Provider for Stubborn {
    fn name(&self) -> &'static str {
        "powercap"
    }
    fn domains(&self) -> &[DomainInfo] {
        &self.domains
    }
    fn read(&mut self, out: &mut [Reading]) {
        for o in out {
            *o = Reading::Power(1.0);
        }
    }
    fn write_limit(&mut self, _: usize, _: &LimitWrite) -> Result<(), HwError> {
        Ok(())
    }
}

#[test]
fn a_restore_that_does_not_read_back_is_reported_and_stays_in_the_journal() {
    let limit = PowerLimit {
        name: "long_term".into(),
        limit_watts: Some(90.0),
        min_watts: Some(10.0),
        max_watts: Some(200.0),
        default_watts: None,
        time_window_s: Some(0.999424),
        time_windows: None,
        enabled: Some(true),
        locked: false,
    };
    let domains = vec![DomainInfo {
        id: DomainId::new(DomainKind::Package, 0),
        provider: "powercap",
        source: "intel-rapl:0".into(),
        measurement: Measurement::Energy(CounterSpec::non_wrapping(1e-6)),
        limits: vec![limit],
        socket: Some(0),
        label: None,
    }];
    let (mut p, _) = Platform::new(vec![Box::new(Stubborn { domains })]);
    let state = tempfile::tempdir().unwrap();
    let here = at(state.path(), state.path());
    {
        let mut j = here.journal("test").unwrap();
        j.begin(vec![(pkg0_long_term(), "intel-rapl:0".into(), setting(150.0))], "test").unwrap();
        j.finish().unwrap();
    }
    let (mut capper, _) = Capper::open(&mut p, &Root::new(state.path()), &here, "test").unwrap();
    let r = capper.reset().unwrap();
    assert!(r.restored.is_empty(), "{r:?}");
    assert!(r.failed[0].1.contains("wrote 150 W but read back 90 W"), "{r:?}");
    assert_eq!(capper.journal().entries().len(), 1, "the original is kept");
}
