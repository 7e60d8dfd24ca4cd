//! Frequency pools on simulated nodes whose sysfs refuses what the kernel refuses.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use powerstack_cap::{NodeId, StateDir};
use powerstack_freq::{FreqError, Pools, PoolsFile};
use powerstack_hw::Root;
use powerstack_sim::{Profile, SimNode, SimOptions};

const EXAMPLE: &str = include_str!("../../../docs/examples/pools.toml");

struct Node {
    _dir: tempfile::TempDir,
    state: tempfile::TempDir,
    root: Root,
    sim: Arc<Mutex<SimNode>>,
}

fn node(profile: Profile) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimNode::create(dir.path(), profile, SimOptions::default()).unwrap();
    Node {
        root: Root::new(dir.path()),
        _dir: dir,
        state: tempfile::tempdir().unwrap(),
        sim: Arc::new(Mutex::new(sim)),
    }
}

impl Node {
    /// The node's state directory.
    fn state_dir(&self) -> StateDir {
        StateDir::new(self.state.path(), NodeId::new(&self.root, None))
    }

    /// A session whose writes are checked by the simulated kernel before they are read back.
    fn pools(&self) -> Pools<'_> {
        let mut p = Pools::open(&self.root, &self.state_dir(), "test", |_| Ok(())).unwrap();
        let sim = self.sim.clone();
        p.set_after_write(Box::new(move || {
            sim.lock().unwrap().enforce_sysfs_rules().unwrap();
        }));
        p
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.path(rel)).unwrap().trim().to_string()
    }

    fn write(&self, rel: &str, value: &str) {
        std::fs::write(self.root.path(rel), format!("{value}\n")).unwrap();
    }

    /// Every writable frequency setting, to show what changed and what did not.
    fn settings(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        walk(&self.root.path("sys/devices/system/cpu"), self.root.base(), &mut out);
        out
    }
}

fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            walk(&p, base, out);
        } else if ft.is_file() {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let writable = [
                "scaling_min_freq",
                "scaling_max_freq",
                "scaling_governor",
                "energy_performance_preference",
                "disable",
                "min_freq_khz",
                "max_freq_khz",
            ];
            if writable.contains(&name.as_str()) {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().to_string();
                out.insert(rel, std::fs::read_to_string(&p).unwrap().trim().to_string());
            }
        }
    }
}

fn policy(n: u32, attr: &str) -> String {
    format!("sys/devices/system/cpu/cpufreq/policy{n}/{attr}")
}

fn cstate_disable(cpu: u32, state: u32) -> String {
    format!("sys/devices/system/cpu/cpu{cpu}/cpuidle/state{state}/disable")
}

/// intel-2s C-state numbering: state0 POLL, state1 C1, state2 C1E, state3 C6.
const C1E: u32 = 2;
const C6: u32 = 3;

#[test]
fn the_documented_example_applies_shows_drifts_reapplies_and_resets() {
    let n = node(Profile::Intel2s);
    let boot = n.settings();
    let file = PoolsFile::parse(EXAMPLE).unwrap();
    let applied = n.pools().apply(&file).unwrap();
    assert!(!applied.writes.is_empty());

    // Reserved CPUs 0 and 8 keep their boot settings.
    assert_eq!(n.read(&policy(0, "scaling_min_freq")), boot[&policy(0, "scaling_min_freq")]);
    // Shared CPUs (6, 7, 14, 15): the low-power profile.
    assert_eq!(n.read(&policy(6, "scaling_max_freq")), "2000000");
    assert_eq!(n.read(&policy(6, "energy_performance_preference")), "power");
    // The "fast" pool: performance governor, EPP pinned, C6 off, C1E untouched.
    assert_eq!(n.read(&policy(1, "scaling_governor")), "performance");
    assert_eq!(n.read(&policy(1, "scaling_min_freq")), "2400000");
    assert_eq!(n.read(&policy(1, "energy_performance_preference")), "performance");
    assert_eq!(n.read(&cstate_disable(1, C6)), "1");
    assert_eq!(n.read(&cstate_disable(1, C1E)), "0");
    // The "latency" pool: C6 and C1E off.
    assert_eq!(n.read(&policy(4, "scaling_min_freq")), "3000000");
    assert_eq!(n.read(&cstate_disable(12, C1E)), "1");
    // Uncore of package 0 only.
    let unc0 = "sys/devices/system/cpu/intel_uncore_frequency/package_00_die_00";
    assert_eq!(n.read(&format!("{unc0}/max_freq_khz")), "2000000");
    assert_eq!(n.read(&format!("{unc0}/min_freq_khz")), "1200000");

    // Applying the same file again changes nothing.
    let pools = n.pools();
    assert!(pools.plan(&file).unwrap().writes.is_empty());
    drop(pools);
    assert!(n.pools().apply(&file).unwrap().writes.is_empty());

    // Drift: someone raises a max behind our back; the plan of the file in force shows it, and
    // re-applying puts it back.
    n.write(&policy(6, "scaling_max_freq"), "3000000");
    let pools = n.pools();
    let drift = pools.plan(&pools.stored().unwrap().unwrap()).unwrap().writes;
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!((drift[0].current.as_str(), drift[0].value.as_str()), ("3000000", "2000000"));
    drop(pools);
    assert_eq!(n.pools().apply(&file).unwrap().writes.len(), 1);

    // Reset: every setting back to boot, nothing left in the journal, no configuration in force.
    let mut pools = n.pools();
    pools.reset().unwrap();
    assert!(pools.journal().unwrap().file_entries().is_empty());
    assert!(pools.stored().unwrap().is_none());
    drop(pools);
    assert_eq!(n.settings(), boot);
}

#[test]
fn c_states_dropped_from_a_profile_go_back_to_their_boot_value() {
    let n = node(Profile::Intel2s);
    let mut file = PoolsFile::parse(EXAMPLE).unwrap();
    n.pools().apply(&file).unwrap();
    assert_eq!(n.read(&cstate_disable(1, C6)), "1");
    file.profiles.get_mut("performance").unwrap().cstates.clear();
    n.pools().apply(&file).unwrap();
    assert_eq!(
        n.read(&cstate_disable(1, C6)),
        "0",
        "not left disabled (the Power Library's partial-map bug)"
    );
}

#[test]
fn a_failure_halfway_through_a_multi_cpu_apply_restores_everything_written() {
    let n = node(Profile::Intel2s);
    let boot = n.settings();
    let file = PoolsFile::parse(EXAMPLE).unwrap();
    let mut pools = Pools::open(&n.root, &n.state_dir(), "test", |_| Ok(())).unwrap();
    // The 10th write is silently refused by "the kernel": the file keeps its old value.
    let count = Arc::new(Mutex::new(0u32));
    let (c, root) = (count.clone(), n.root.clone());
    let plan = pools.plan(&file).unwrap();
    let tenth = plan.writes[9].clone();
    pools.set_after_write(Box::new(move || {
        let mut c = c.lock().unwrap();
        *c += 1;
        if *c == 10 {
            std::fs::write(root.path(&tenth.path), format!("{}\n", tenth.current)).unwrap();
        }
    }));
    let e = pools.apply(&file).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, FreqError::RolledBack { .. }), "{msg}");
    assert!(
        msg.contains("read back") && msg.contains("restored the 9 setting(s) already written"),
        "{msg}"
    );
    assert!(pools.stored().unwrap().is_none(), "a failed apply is not the configuration in force");
    drop(pools);
    assert_eq!(n.settings(), boot);
}

#[test]
fn a_write_the_simulated_kernel_refuses_is_caught_by_the_read_back_and_rolled_back() {
    // Mid-apply, another actor switches policy 15 to the performance governor; the kernel then
    // refuses our EPP write there (EBUSY; the simulator restores the old value), and only the
    // read-back can tell.
    let n = node(Profile::Intel2s);
    let boot = n.settings();
    let file =
        PoolsFile::parse("[shared]\nprofile = \"p\"\n[profiles.p]\nepp = \"power\"\n").unwrap();
    let mut pools = Pools::open(&n.root, &n.state_dir(), "test", |_| Ok(())).unwrap();
    let (sim, root) = (n.sim.clone(), n.root.clone());
    let mut first = true;
    pools.set_after_write(Box::new(move || {
        if first {
            first = false;
            std::fs::write(root.path(policy(15, "scaling_governor")), "performance\n").unwrap();
        }
        sim.lock().unwrap().enforce_sysfs_rules().unwrap();
    }));
    let e = pools.apply(&file).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(
            "policy15 energy_performance_preference: wrote \"power\" but read back \"performance\""
        ),
        "{msg}"
    );
    assert!(msg.contains("restored the 15 setting(s) already written"), "{msg}");
    drop(pools);
    let mut now = n.settings();
    // The other actor's change stays; everything powerstack wrote is back.
    assert_eq!(now.remove(&policy(15, "scaling_governor")).as_deref(), Some("performance"));
    assert_eq!(
        now.remove(&policy(15, "energy_performance_preference")).as_deref(),
        Some("performance")
    );
    let mut boot = boot;
    boot.remove(&policy(15, "scaling_governor"));
    boot.remove(&policy(15, "energy_performance_preference"));
    assert_eq!(now, boot);
}

#[test]
fn bad_files_are_one_error_naming_the_pool_cpu_or_field_and_nothing_is_written() {
    let n = node(Profile::Intel2s);
    let boot = n.settings();
    let base = EXAMPLE.to_string();
    let cases: Vec<(String, &str)> = vec![
        (
            base.replace("profile = \"latency\"", "profile = \"nope\""),
            "pool latency: profile \"nope\" is not defined",
        ),
        (
            base.replace("cpus = \"4-5,12-13\"", "cpus = \"3-5\""),
            "cpu 3 is in two pools: fast and latency",
        ),
        (base.replace("cpus = \"0,8\"", "cpus = \"0,99\""), "pool reserved: cpu 99 does not exist"),
        (
            base.replace("min_khz = 2400000", "min_khz = 3800000"),
            "profile performance, min_khz (policy1): 3800000 kHz is outside the hardware range 1000000..3700000 kHz",
        ),
        (
            base.replace("max_khz = 2000000", "max_khz = 1500000")
                .replace("min_khz = 1000000", "min_khz = 1800000"),
            "min_khz 1800000 is above max_khz 1500000",
        ),
        (
            base.replace("epp = \"power\"", "epp = \"turbo\""),
            "epp (policy6): \"turbo\" is not one this CPU lists",
        ),
        (
            base.replace("epp = \"performance\"", "epp = \"power\""),
            "cannot be set under the performance governor",
        ),
        (
            base.replace("governor = \"powersave\"", "governor = \"ondemand\""),
            "governor \"ondemand\" is not available",
        ),
        (
            base.replace("cstates = { C6 = false }", "cstates = { C7 = false }"),
            "cpu 1 has no C-state C7",
        ),
        (
            base.replace(
                "min_khz = 1200000\nmax_khz = 2000000",
                "min_khz = 1200000\nmax_khz = 9000000",
            ),
            "uncore[0] (package 0): max_khz 9000000 kHz is outside the hardware range",
        ),
        (
            base.replace("package = 0", "package = 5"),
            "uncore[0] (package 5): no such uncore domain",
        ),
        (base.replace("[shared]", "[shard]"), "unknown field"),
    ];
    for (text, expect) in cases {
        assert_ne!(text, base, "the case {expect:?} must change the example");
        let err = match PoolsFile::parse(&text) {
            Err(e) => e,
            Ok(file) => n.pools().apply(&file).unwrap_err(),
        };
        let msg = err.to_string();
        assert_eq!(msg.lines().count(), 1, "{msg}");
        assert!(msg.contains(expect), "expected {expect:?} in {msg:?}");
    }
    assert_eq!(n.settings(), boot, "nothing written");
}

#[test]
fn a_reserved_cpu_cannot_go_straight_to_an_exclusive_pool() {
    let n = node(Profile::Intel2s);
    let first = PoolsFile::parse(EXAMPLE).unwrap();
    n.pools().apply(&first).unwrap();
    let before = n.settings();
    // CPU 8 is reserved; put it in "fast" directly.
    let moved = PoolsFile::parse(
        &EXAMPLE
            .replace("cpus = \"0,8\"", "cpus = \"0\"")
            .replace("cpus = \"1-3,9-11\"", "cpus = \"1-3,8-11\""),
    )
    .unwrap();
    let e = n.pools().apply(&moved).unwrap_err();
    assert!(e.to_string().contains("cpu 8 cannot move from pool reserved to pool fast directly: move it to the shared pool first"), "{e}");
    assert_eq!(n.settings(), before);
    // Through the shared pool it is fine.
    let shared = PoolsFile::parse(&EXAMPLE.replace("cpus = \"0,8\"", "cpus = \"0\"")).unwrap();
    n.pools().apply(&shared).unwrap();
    n.pools().apply(&moved).unwrap();
    assert_eq!(n.read(&policy(8, "scaling_governor")), "performance");
}

#[test]
fn features_the_node_lacks_are_errors_before_anything_is_written() {
    // amd-2s: no intel_uncore_frequency.
    let n = node(Profile::Amd2s);
    let boot = n.settings();
    let file = PoolsFile::parse("[[uncore]]\npackage = 0\nmax_khz = 2000000\n").unwrap();
    let e = n.pools().apply(&file).unwrap_err();
    assert!(e.to_string().contains("no intel_uncore_frequency driver"), "{e}");
    // cray-ex: acpi-cpufreq, no EPP.
    let c = node(Profile::CrayEx);
    let file =
        PoolsFile::parse("[shared]\nprofile = \"p\"\n[profiles.p]\nepp = \"power\"\n").unwrap();
    let e = c.pools().apply(&file).unwrap_err();
    assert!(e.to_string().contains("has no energy_performance_preference"), "{e}");
    // Per-core-type ranges on a node that is not hybrid.
    let file = PoolsFile::parse(
        "[shared]\nprofile = \"p\"\n[profiles.p.core_types.e_core]\nmax_khz = 2000000\n",
    )
    .unwrap();
    let e = n.pools().apply(&file).unwrap_err();
    assert!(e.to_string().contains("not hybrid"), "{e}");
    assert_eq!(n.settings(), boot);
}

#[test]
fn concurrent_callers_take_turns_without_deadlock() {
    let n = Arc::new(node(Profile::Intel2s));
    let a = PoolsFile::parse(EXAMPLE).unwrap();
    let b =
        PoolsFile::parse("[shared]\nprofile = \"p\"\n[profiles.p]\nmax_khz = 3000000\n").unwrap();
    let (tx, rx) = mpsc::channel::<(usize, Result<(), String>)>();
    let mut threads = Vec::new();
    for (i, f) in [a, b].into_iter().enumerate() {
        let (n, tx) = (n.clone(), tx.clone());
        threads.push(std::thread::spawn(move || {
            for _ in 0..3 {
                let mut p = Pools::open(&n.root, &n.state_dir(), "test", |_| Ok(())).unwrap();
                // Both files are valid from any state the other leaves (no reserved -> exclusive
                // move): b has no exclusive pools and no reserved CPUs.
                let r = p.apply(&f);
                tx.send((i, r.map(|_| ()).map_err(|e| e.to_string()))).unwrap();
            }
        }));
    }
    drop(tx);
    let mut results = Vec::new();
    while let Ok(r) = rx.recv_timeout(Duration::from_secs(60)) {
        results.push(r);
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(results.len(), 6, "every call finished: {results:?}");
    // Every move between the two files is allowed (exclusive <-> shared <-> reserved), so every
    // call succeeds, one at a time.
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
}

#[test]
fn per_core_type_ranges_on_a_hybrid_node() {
    let n = node(Profile::IntelHybrid);
    let file = PoolsFile::parse(
        "[shared]\nprofile = \"p\"\n[profiles.p]\nmax_khz = 4000000\n[profiles.p.core_types.e_core]\nmax_khz = 3000000\n",
    )
    .unwrap();
    n.pools().apply(&file).unwrap();
    assert_eq!(n.read(&policy(0, "scaling_max_freq")), "4000000", "P-core");
    assert_eq!(n.read(&policy(8, "scaling_max_freq")), "3000000", "E-core");
    // 5 GHz is within a P-core's range but above an E-core's: refused naming the E-core policy.
    let too_high =
        PoolsFile::parse("[shared]\nprofile = \"p\"\n[profiles.p]\nmax_khz = 5000000\n").unwrap();
    let e = n.pools().apply(&too_high).unwrap_err();
    assert!(
        e.to_string()
            .contains("(policy8): 5000000 kHz is outside the hardware range 800000..4300000"),
        "{e}"
    );
}

#[test]
fn offline_cpus_and_tpmi_uncore() {
    let n = node(Profile::IntelOffline);
    let e = n
        .pools()
        .apply(&PoolsFile::parse("[[exclusive]]\nname = \"x\"\ncpus = \"6\"\n").unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("cpu 6 is offline"), "{e}");
    // An uncore limit for package 1 goes to its TPMI domains, rounded to 100 MHz.
    let file = PoolsFile::parse("[[uncore]]\npackage = 1\nmin_khz = 1250000\nmax_khz = 2050000\n")
        .unwrap();
    let applied = n.pools().apply(&file).unwrap();
    let targets: Vec<&str> = applied.writes.iter().map(|w| w.what.as_str()).collect();
    assert!(targets.iter().all(|t| t.starts_with("uncore0")), "{targets:?}");
    let tpmi = n
        .pools()
        .topology()
        .uncore
        .iter()
        .filter(|d| d.package == 1 && d.layout == powerstack_freq::UncoreLayout::Tpmi)
        .map(|d| d.name.clone())
        .collect::<Vec<_>>();
    assert!(!tpmi.is_empty());
    for d in tpmi {
        let base = format!("sys/devices/system/cpu/intel_uncore_frequency/{d}");
        assert_eq!(n.read(&format!("{base}/min_freq_khz")), "1200000");
        assert_eq!(n.read(&format!("{base}/max_freq_khz")), "2000000");
    }
    // And it is idempotent with the rounding.
    assert!(n.pools().apply(&file).unwrap().writes.is_empty());
}
