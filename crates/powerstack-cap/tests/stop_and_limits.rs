//! Write sessions stopped between writes (the caller's SIGINT or SIGTERM), and the limits no
//! hardware should get, on simulated nodes.

use std::time::Duration;

use powerstack_cap::{
    AllocError, CapError, Capper, NodeId, Policy, Request, StateDir, plan, plan_node_cap,
};
use powerstack_hw::{Platform, Root, Selection, discover};
use powerstack_model::{DomainId, DomainKind, LimitWrite, PowerReport};
use powerstack_sim::{Profile, SimNode, SimOptions};

fn node(profile: Profile) -> (tempfile::TempDir, SimNode, Platform) {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimNode::create(dir.path(), profile, SimOptions::default()).unwrap();
    let found = discover(&Root::new(dir.path()), &Selection::Auto);
    (dir, sim, found.platform)
}

/// The state directory `dir` of the simulated node at `root`.
fn at(dir: &std::path::Path, root: &std::path::Path) -> StateDir {
    StateDir::new(dir, NodeId::new(&Root::new(root), None))
}

fn packages(p: &Platform) -> Vec<usize> {
    (0..2).map(|i| p.catalog().iter().position(|d| d.id == pkg(i)).unwrap()).collect()
}

fn pkg(i: u32) -> DomainId {
    DomainId::new(DomainKind::Package, i)
}

fn long_term(index: usize, watts: f64, time_window_s: Option<f64>) -> Request {
    Request {
        index,
        write: LimitWrite {
            constraint: "long_term".into(),
            limit_watts: watts,
            time_window_s,
            enabled: Some(true),
        },
    }
}

/// The long-term limit of each package, as the files say.
fn limits(dir: &tempfile::TempDir) -> Vec<String> {
    (0..2)
        .map(|i| {
            let f = format!("sys/class/powercap/intel-rapl:{i}/constraint_0_power_limit_uw");
            std::fs::read_to_string(dir.path().join(f)).unwrap().trim().to_string()
        })
        .collect()
}

/// A stop that answers `true` from the `n`-th question on (counting from 1).
fn stop_at(n: usize) -> impl FnMut() -> bool {
    let mut asked = 0;
    move || {
        asked += 1;
        asked >= n
    }
}

#[test]
fn a_stop_before_a_write_restores_what_was_written_and_ends_the_session() {
    let (dir, sim, mut p) = node(Profile::Intel2s);
    let before = limits(&dir);
    let state = tempfile::tempdir().unwrap();
    let requests: Vec<Request> =
        packages(&p).into_iter().map(|i| long_term(i, 100.0, None)).collect();
    for (n, said) in
        [(1, "nothing had been written"), (2, "restored the 1 limit(s) already written")]
    {
        let (mut capper, _) =
            Capper::open(&mut p, &Root::new(sim.root()), &at(state.path(), sim.root()), "test")
                .unwrap();
        let plan = capper.plan(&requests).unwrap();
        match capper.apply_until(&plan, &mut stop_at(n)) {
            Err(e @ CapError::Stopped { .. }) => {
                assert_eq!(e.to_string(), format!("stopped before the next write; {said}"));
            }
            other => panic!("stop at {n}: {other:?}"),
        }
        assert!(capper.journal().in_progress().is_none(), "the session is over");
        drop(capper);
        assert_eq!(limits(&dir), before, "stop at {n}");
    }
    // Never stopped: everything is written.
    let (mut capper, _) =
        Capper::open(&mut p, &Root::new(sim.root()), &at(state.path(), sim.root()), "t").unwrap();
    let plan = capper.plan(&requests).unwrap();
    assert_eq!(capper.apply_until(&plan, &mut || false).unwrap().len(), 2);
    drop(capper);
    assert_eq!(limits(&dir), ["100000000", "100000000"]);
}

#[test]
fn a_stopped_reset_puts_back_what_it_had_restored_and_keeps_the_journal() {
    let (dir, sim, mut p) = node(Profile::Intel2s);
    let state = tempfile::tempdir().unwrap();
    let root = Root::new(sim.root());
    let requests: Vec<Request> =
        packages(&p).into_iter().map(|i| long_term(i, 100.0, None)).collect();
    {
        let (mut capper, _) =
            Capper::open(&mut p, &root, &at(state.path(), sim.root()), "test").unwrap();
        let plan = capper.plan(&requests).unwrap();
        capper.apply(&plan).unwrap();
    }
    {
        let (mut capper, _) =
            Capper::open(&mut p, &root, &at(state.path(), sim.root()), "test").unwrap();
        let e = capper.reset_until(&mut stop_at(2)).unwrap_err();
        assert!(matches!(e, CapError::Stopped { .. }), "{e}");
        assert!(e.to_string().contains("restored the 1 limit(s) this reset had put back"), "{e}");
        assert_eq!(capper.journal().entries().len(), 2, "nothing forgotten");
    }
    assert_eq!(limits(&dir), ["100000000", "100000000"], "as before the reset");
    let (mut capper, _) =
        Capper::open(&mut p, &root, &at(state.path(), sim.root()), "test").unwrap();
    assert_eq!(capper.reset().unwrap().restored.len(), 2);
    drop(capper);
    assert_eq!(limits(&dir), ["150000000", "150000000"]);
}

#[test]
fn a_node_with_nothing_to_cap_says_so_whatever_it_draws() {
    // amd-2s measures its packages and cores but caps nothing; cray-ex's caps are read-only.
    for profile in [Profile::Amd2s, Profile::CrayEx] {
        let (_dir, mut sim, mut p) = node(profile);
        // What the node draws over a simulated second: the uncappable power.
        let a = p.sample_at(sim.mono_ns(), sim.unix_us());
        sim.advance(Duration::from_secs(1)).unwrap();
        let b = p.sample_at(sim.mono_ns(), sim.unix_us());
        let report = PowerReport::between(p.catalog(), &a, &b);
        for policy in Policy::ALL {
            for watts in [100.0, 1000.0, 1e6] {
                match plan_node_cap(p.catalog(), &report, watts, policy, false) {
                    Err(CapError::Allocation(AllocError::NothingToCap)) => {}
                    other => panic!("{profile:?} {policy:?} {watts} W: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn the_caps_no_hardware_should_get_are_refused_through_powercap() {
    let (_dir, _sim, p) = node(Profile::Intel2s);
    let pkg0 = packages(&p)[0];
    let refused = |r: Request| plan(p.catalog(), &[r]).unwrap_err().to_string();
    // The packages report no minimum: a quarter of their 150 W maximum.
    let m = refused(long_term(pkg0, 0.0001, None));
    assert!(m.contains("0.0001 W is below the allowed range [37.5 W .. 150 W]"), "{m}");
    // The kernel rounds a window down to RAPL's grid: 100 h would become 90.97 h.
    let m = refused(long_term(pkg0, 100.0, Some(100.0 * 3600.0)));
    assert!(m.contains("a time window of 100 h cannot be held"), "{m}");
    let m = refused(long_term(pkg0, 100.0, Some(1e4 * 3600.0)));
    assert!(m.contains("outside what the hardware can hold, [976 µs .. 509.4 h]"), "{m}");
    assert!(plan(p.catalog(), &[long_term(pkg0, 100.0, Some(28.0))]).is_ok());
    // Short-term (180 W in force) below a long-term limit asked for.
    let short = Request {
        index: pkg0,
        write: LimitWrite {
            constraint: "short_term".into(),
            limit_watts: 90.0,
            time_window_s: None,
            enabled: None,
        },
    };
    let m = plan(p.catalog(), &[long_term(pkg0, 100.0, None), short]).unwrap_err().to_string();
    assert!(m.contains("short_term limit 90 W (asked) is below the long_term limit 100 W"), "{m}");
}
