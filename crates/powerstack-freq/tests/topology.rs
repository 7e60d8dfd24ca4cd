//! Discovery of the frequency topology on hand-built sysfs trees and on simulator profiles.

use std::path::Path;

use powerstack_freq::topology::{CoreType, FreqTopology, UncoreLayout, discover};
use powerstack_hw::Root;

const CPU: &str = "sys/devices/system/cpu";

/// A hand-built tree in a temporary directory.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        Tree { dir: tempfile::tempdir().unwrap() }
    }

    fn root(&self) -> Root {
        Root::new(self.dir.path())
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `content` and a newline to `rel` (relative to the root), creating directories.
    fn file(&self, rel: &str, content: &str) -> &Tree {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("{content}\n")).unwrap();
        self
    }

    fn remove(&self, rel: &str) {
        let p = self.dir.path().join(rel);
        if p.is_dir() {
            std::fs::remove_dir_all(p).unwrap();
        } else {
            std::fs::remove_file(p).unwrap();
        }
    }

    fn symlink(&self, rel: &str, target: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
    }

    /// An online CPU with its topology; cpu0 gets no per-CPU `online` file, like the kernel.
    fn cpu(&self, id: u32, package: u32, core: u32, siblings: &str) -> &Tree {
        let d = format!("{CPU}/cpu{id}");
        self.file(&format!("{d}/topology/physical_package_id"), &package.to_string())
            .file(&format!("{d}/topology/die_id"), "0")
            .file(&format!("{d}/topology/core_id"), &core.to_string())
            .file(&format!("{d}/topology/thread_siblings_list"), siblings)
            .file(&format!("{d}/topology/core_cpus_list"), siblings);
        if id > 0 {
            self.file(&format!("{d}/online"), "1");
        }
        self
    }

    /// An offline CPU: the kernel removes its topology directory.
    fn offline_cpu(&self, id: u32) -> &Tree {
        self.file(&format!("{CPU}/cpu{id}/online"), "0")
    }

    /// `n` online CPUs without SMT, one package, plus the online list.
    fn simple_cpus(&self, n: u32) -> &Tree {
        for c in 0..n {
            self.cpu(c, 0, c, &c.to_string());
        }
        self.file(&format!("{CPU}/online"), &format!("0-{}", n - 1))
    }

    /// A policy `policyN` with `related_cpus`, driver, and range; EPP when `epp`.
    fn policy(&self, id: u32, related: &str, driver: &str, min: u64, max: u64, epp: bool) -> &Tree {
        let d = format!("{CPU}/cpufreq/policy{id}");
        self.file(&format!("{d}/related_cpus"), related)
            .file(&format!("{d}/affected_cpus"), related)
            .file(&format!("{d}/scaling_driver"), driver)
            .file(&format!("{d}/cpuinfo_min_freq"), &min.to_string())
            .file(&format!("{d}/cpuinfo_max_freq"), &max.to_string())
            .file(&format!("{d}/scaling_available_governors"), "performance powersave");
        if epp {
            self.file(
                &format!("{d}/energy_performance_available_preferences"),
                "default performance balance_performance balance_power power",
            );
        }
        self
    }

    /// One policy per CPU, linked from `cpuN/cpufreq` like the kernel does.
    fn policies_per_cpu(&self, n: u32, driver: &str, max: impl Fn(u32) -> u64, epp: bool) -> &Tree {
        for c in 0..n {
            self.policy(c, &c.to_string(), driver, 800_000, max(c), epp);
            self.symlink(&format!("{CPU}/cpu{c}/cpufreq"), &format!("../cpufreq/policy{c}"));
        }
        self
    }

    /// cpuidle states of one CPU: (name, latency, residency).
    fn idle(&self, cpu: u32, states: &[(&str, u64, u64)]) -> &Tree {
        for (k, (name, latency, residency)) in states.iter().enumerate() {
            let d = format!("{CPU}/cpu{cpu}/cpuidle/state{k}");
            self.file(&format!("{d}/name"), name)
                .file(&format!("{d}/desc"), &format!("{name} state"))
                .file(&format!("{d}/latency"), &latency.to_string())
                .file(&format!("{d}/residency"), &residency.to_string())
                .file(&format!("{d}/disable"), "0");
        }
        self
    }

    fn uncore_bounds(&self, dir: &str) -> &Tree {
        let d = format!("{CPU}/intel_uncore_frequency/{dir}");
        self.file(&format!("{d}/initial_min_freq_khz"), "800000")
            .file(&format!("{d}/initial_max_freq_khz"), "2500000")
            .file(&format!("{d}/min_freq_khz"), "800000")
            .file(&format!("{d}/max_freq_khz"), "2500000")
    }
}

fn report(t: &FreqTopology, feature: &str) -> String {
    t.capability_report()
        .into_iter()
        .find(|(f, _)| f == feature)
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("no {feature:?} line in {:?}", t.capability_report()))
}

fn has_warning(t: &FreqTopology, needle: &str) -> bool {
    t.warnings.iter().any(|w| w.contains(needle))
}

#[test]
fn online_list_forms_and_offline_cpus_without_topology() {
    let t = Tree::new();
    t.file(&format!("{CPU}/online"), "0-3,8,10-11");
    for c in [0, 1, 2, 3, 8, 10, 11] {
        t.cpu(c, c / 8, c % 8, &c.to_string());
    }
    for c in [4, 5, 6, 7, 9] {
        t.offline_cpu(c);
    }
    // Not CPUs: must be ignored.
    t.file(&format!("{CPU}/cpufreq/boost"), "1")
        .file(&format!("{CPU}/cpuidle/current_driver"), "none")
        .file(&format!("{CPU}/kernel_max"), "8191");
    let topo = discover(&t.root());
    assert_eq!(topo.cpus.len(), 12, "{:?}", topo.cpus);
    assert_eq!(topo.online_cpus(), vec![0, 1, 2, 3, 8, 10, 11]);
    assert_eq!(topo.offline_cpus(), vec![4, 5, 6, 7, 9]);
    let off = topo.cpu(5).unwrap();
    assert!(!off.online);
    assert_eq!((off.package, off.die, off.core), (None, None, None));
    assert_eq!(off.siblings, vec![5]);
    let on = topo.cpu(10).unwrap();
    assert!(on.online);
    assert_eq!((on.package, on.die, on.core), (Some(1), Some(0), Some(2)));
    assert!(topo.cpu(12).is_none());
    assert_eq!(topo.core_types(), vec![CoreType::Uniform]);
    // Offline CPUs without topology are normal, not warnings; only the absent cpufreq is.
    assert!(!topo.warnings.iter().any(|w| w.contains("topology")), "{:?}", topo.warnings);
    assert_eq!(report(&topo, "CPUs"), "7 online (0-3,8,10-11), 5 offline (4-7,9)");
    assert_eq!(topo.capabilities.idle_driver, None);
}

#[test]
fn without_an_online_list_each_cpus_online_file_decides_and_cpu0_is_online() {
    let t = Tree::new();
    t.cpu(0, 0, 0, "0").cpu(1, 0, 1, "1").offline_cpu(2);
    let topo = discover(&t.root());
    assert_eq!(topo.online_cpus(), vec![0, 1]);
    assert_eq!(topo.offline_cpus(), vec![2]);
}

#[test]
fn smt_siblings_from_thread_siblings_or_core_cpus_list() {
    let t = Tree::new();
    t.cpu(0, 0, 0, "0,2").cpu(1, 0, 1, "1,3").cpu(2, 0, 0, "0,2").cpu(3, 0, 1, "1,3");
    t.file(&format!("{CPU}/online"), "0-3");
    // A kernel with only core_cpus_list.
    t.remove(&format!("{CPU}/cpu3/topology/thread_siblings_list"));
    let topo = discover(&t.root());
    assert_eq!(topo.cpu(0).unwrap().siblings, vec![0, 2]);
    assert_eq!(topo.cpu(3).unwrap().siblings, vec![1, 3]);
}

#[test]
fn cpuidle_states_are_read_per_cpu_and_may_differ() {
    let t = Tree::new();
    t.simple_cpus(3).offline_cpu(3);
    t.file(&format!("{CPU}/online"), "0-2");
    t.file(&format!("{CPU}/cpuidle/current_driver"), "intel_idle");
    t.idle(0, &[("POLL", 0, 0), ("C1", 2, 2), ("C6", 133, 600)]);
    t.idle(1, &[("POLL", 0, 0), ("C1", 2, 2), ("C1E", 10, 20), ("C6", 133, 600)]);
    t.idle(2, &[("POLL", 0, 0), ("C1", 2, 2), ("C6", 170, 800)]);
    // An offline CPU's states are not read.
    t.idle(3, &[("POLL", 0, 0)]);
    let topo = discover(&t.root());
    assert_eq!(topo.capabilities.idle_driver.as_deref(), Some("intel_idle"));
    assert_eq!(topo.idle_states.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
    assert!(topo.idle_state(0, "C1E").is_none());
    let c1e = topo.idle_state(1, "C1E").unwrap();
    assert_eq!((c1e.index, c1e.latency_us, c1e.residency_us), (2, 10, 20));
    assert_eq!(c1e.desc, "C1E state");
    // Same name, another index and latency on another CPU.
    assert_eq!(topo.idle_state(1, "C6").unwrap().index, 3);
    assert_eq!(topo.idle_state(0, "C6").unwrap().index, 2);
    assert_eq!(topo.idle_state(2, "C6").unwrap().latency_us, 170);
    assert!(topo.idle_state(3, "POLL").is_none());
    assert_eq!(report(&topo, "C-states"), "intel_idle: POLL C1 C6 C1E (not the same on every CPU)");
}

#[test]
fn cpuidle_states_sort_by_number_not_by_name() {
    let t = Tree::new();
    t.simple_cpus(1);
    t.file(&format!("{CPU}/cpuidle/current_driver"), "intel_idle");
    let states: Vec<(String, u64, u64)> =
        (0..12).map(|k| (format!("S{k}"), k as u64, k as u64)).collect();
    let refs: Vec<(&str, u64, u64)> = states.iter().map(|(n, l, r)| (n.as_str(), *l, *r)).collect();
    t.idle(0, &refs);
    let topo = discover(&t.root());
    let idx: Vec<u32> = topo.idle_states[&0].iter().map(|s| s.index).collect();
    assert_eq!(idx, (0..12).collect::<Vec<u32>>());
}

#[test]
fn hybrid_from_the_pmu_cpu_lists_not_from_frequencies() {
    let t = Tree::new();
    // 4 P-cores with SMT (CPUs 0-7), 8 E-cores (CPUs 8-15).
    for c in 0..8 {
        let core = c / 2;
        t.cpu(c, 0, core, &format!("{},{}", core * 2, core * 2 + 1));
    }
    for c in 8..16 {
        t.cpu(c, 0, c, &c.to_string());
    }
    t.file(&format!("{CPU}/online"), "0-15");
    t.file("sys/devices/cpu_core/cpus", "0-7").file("sys/devices/cpu_atom/cpus", "8-15");
    // E-cores report the higher maximum here: the type must not come from frequencies.
    t.policies_per_cpu(16, "intel_pstate", |c| if c < 8 { 4_000_000 } else { 5_000_000 }, true);
    t.file(&format!("{CPU}/intel_pstate/status"), "active");
    let topo = discover(&t.root());
    assert!(topo.capabilities.hybrid);
    assert_eq!(topo.core_types(), vec![CoreType::Performance, CoreType::Efficiency]);
    assert_eq!(topo.cpus_of_type(CoreType::Performance), (0..8).collect::<Vec<_>>());
    assert_eq!(topo.cpus_of_type(CoreType::Efficiency), (8..16).collect::<Vec<_>>());
    assert_eq!(report(&topo, "hybrid"), "4 P-cores (CPUs 0-7), 8 E-cores (CPUs 8-15)");
    assert_eq!(
        report(&topo, "frequency scaling"),
        "intel_pstate (active), 16 policies, 800000..5000000 kHz"
    );
    assert!(topo.warnings.is_empty(), "{:?}", topo.warnings);
}

#[test]
fn hybrid_offline_cpus_left_out_of_the_pmu_list_take_their_type_from_capacity() {
    let t = Tree::new();
    t.simple_cpus(4);
    t.file(&format!("{CPU}/online"), "0-2");
    t.remove(&format!("{CPU}/cpu3/topology"));
    t.file(&format!("{CPU}/cpu3/online"), "0");
    for (c, cap) in [(0, 1024), (1, 1024), (2, 600), (3, 600)] {
        t.file(&format!("{CPU}/cpu{c}/cpu_capacity"), &cap.to_string());
    }
    t.file("sys/devices/cpu_core/cpus", "0-1").file("sys/devices/cpu_atom/cpus", "2");
    let topo = discover(&t.root());
    assert_eq!(topo.cpu(3).unwrap().core_type, CoreType::Efficiency);
    assert!(!has_warning(&topo, "core type"), "{:?}", topo.warnings);
}

#[test]
fn hybrid_from_cpu_capacity() {
    let t = Tree::new();
    t.simple_cpus(6);
    for (c, cap) in [(0, 1024), (1, 1024), (2, 512), (3, 512), (4, 300), (5, 1024)] {
        t.file(&format!("{CPU}/cpu{c}/cpu_capacity"), &cap.to_string());
    }
    let topo = discover(&t.root());
    assert!(topo.capabilities.hybrid);
    assert_eq!(topo.cpus_of_type(CoreType::Performance), vec![0, 1, 5]);
    assert_eq!(topo.cpus_of_type(CoreType::Efficiency), vec![2, 3, 4]);
    assert_eq!(topo.cpu(2).unwrap().capacity, Some(512));
    assert_eq!(report(&topo, "hybrid"), "3 P-cores (CPUs 0-1,5), 3 E-cores (CPUs 2-4)");
}

#[test]
fn equal_capacities_are_uniform() {
    let t = Tree::new();
    t.simple_cpus(4);
    for c in 0..4 {
        t.file(&format!("{CPU}/cpu{c}/cpu_capacity"), "1024");
    }
    let topo = discover(&t.root());
    assert!(!topo.capabilities.hybrid);
    assert_eq!(topo.core_types(), vec![CoreType::Uniform]);
    assert_eq!(report(&topo, "hybrid"), "no");
}

#[test]
fn favoured_cores_with_a_higher_max_frequency_stay_uniform() {
    // Turbo Boost Max 3.0: two favoured cores report 4.0 GHz, the others 3.7 GHz. Not hybrid.
    let t = Tree::new();
    t.simple_cpus(8);
    t.policies_per_cpu(
        8,
        "intel_pstate",
        |c| if c == 2 || c == 5 { 4_000_000 } else { 3_700_000 },
        true,
    );
    let topo = discover(&t.root());
    assert!(!topo.capabilities.hybrid);
    assert_eq!(topo.core_types(), vec![CoreType::Uniform]);
    assert!(topo.cpus.iter().all(|c| c.core_type == CoreType::Uniform));
    assert_eq!(report(&topo, "hybrid"), "no");
    assert_eq!(topo.policy_of(2).unwrap().cpuinfo_max_khz, 4_000_000);
    assert_eq!(topo.policy_of(3).unwrap().cpuinfo_max_khz, 3_700_000);
}

#[test]
fn a_policy_shared_by_several_cpus() {
    let t = Tree::new();
    t.simple_cpus(8);
    t.policy(0, "0-3", "acpi-cpufreq", 1_200_000, 2_400_000, false);
    t.policy(4, "4-7", "acpi-cpufreq", 1_200_000, 2_400_000, false);
    t.file(&format!("{CPU}/cpufreq/policy0/base_frequency"), "2000000");
    for c in 0..8 {
        let p = if c < 4 { 0 } else { 4 };
        t.symlink(&format!("{CPU}/cpu{c}/cpufreq"), &format!("../cpufreq/policy{p}"));
    }
    let topo = discover(&t.root());
    assert_eq!(topo.policies.len(), 2);
    let p = topo.policy_of(2).unwrap();
    assert_eq!((p.id, p.cpus.clone()), (0, vec![0, 1, 2, 3]));
    assert_eq!(p.driver, "acpi-cpufreq");
    assert_eq!(p.base_khz, Some(2_000_000));
    assert_eq!(p.governors, vec!["performance", "powersave"]);
    assert_eq!(p.epp_choices, None);
    assert!(p.dir.ends_with("cpufreq/policy0"));
    assert_eq!(topo.policy_of(6).unwrap().id, 4);
    assert_eq!(topo.cpu(7).unwrap().policy, Some(4));
    let ids: Vec<u32> = topo.policies_of(&[1, 2, 5]).iter().map(|p| p.id).collect();
    assert_eq!(ids, vec![0, 4]);
    assert_eq!(topo.capabilities.drivers, vec!["acpi-cpufreq"]);
    assert!(!topo.capabilities.epp);
    assert_eq!(
        report(&topo, "frequency scaling"),
        "acpi-cpufreq, 2 policies, 1200000..2400000 kHz"
    );
    assert_eq!(report(&topo, "EPP"), "no");
    assert!(topo.warnings.is_empty(), "{:?}", topo.warnings);
}

#[test]
fn policies_sort_by_number() {
    let t = Tree::new();
    t.simple_cpus(12);
    t.policies_per_cpu(12, "intel_pstate", |_| 3_000_000, true);
    let topo = discover(&t.root());
    let ids: Vec<u32> = topo.policies.iter().map(|p| p.id).collect();
    assert_eq!(ids, (0..12).collect::<Vec<u32>>());
    assert!(topo.capabilities.epp);
    assert_eq!(
        report(&topo, "EPP"),
        "yes: default performance balance_performance balance_power power"
    );
}

#[test]
fn a_cpus_cpufreq_directory_is_an_alternative_path_to_its_policy() {
    // An old layout: the policy lives in the owning CPU's `cpufreq` directory and the others link
    // to it; nothing under cpufreq/.
    let t = Tree::new();
    t.simple_cpus(2);
    let d = format!("{CPU}/cpu0/cpufreq");
    t.file(&format!("{d}/related_cpus"), "0-1")
        .file(&format!("{d}/scaling_driver"), "acpi-cpufreq")
        .file(&format!("{d}/cpuinfo_min_freq"), "1000000")
        .file(&format!("{d}/cpuinfo_max_freq"), "2000000")
        .file(&format!("{d}/scaling_available_governors"), "ondemand performance");
    t.symlink(&format!("{CPU}/cpu1/cpufreq"), "../cpu0/cpufreq");
    let topo = discover(&t.root());
    assert_eq!(topo.policies.len(), 1, "{:?}", topo.policies);
    assert_eq!(topo.policies[0].id, 0);
    assert_eq!(topo.policies[0].cpus, vec![0, 1]);
    assert_eq!(topo.policy_of(1).unwrap().id, 0);
    assert!(topo.warnings.is_empty(), "{:?}", topo.warnings);
}

#[test]
fn a_policy_reached_only_through_the_cpu_link_keeps_its_number() {
    let t = Tree::new();
    t.simple_cpus(1);
    let d = "sys/devices/elsewhere/policy7";
    t.file(&format!("{d}/related_cpus"), "0")
        .file(&format!("{d}/scaling_driver"), "cppc_cpufreq")
        .file(&format!("{d}/cpuinfo_min_freq"), "1000000")
        .file(&format!("{d}/cpuinfo_max_freq"), "2000000")
        .file(&format!("{d}/scaling_available_governors"), "schedutil");
    t.symlink(&format!("{CPU}/cpu0/cpufreq"), "../../../elsewhere/policy7");
    let topo = discover(&t.root());
    assert_eq!(topo.policy_of(0).unwrap().id, 7);
    assert_eq!(topo.capabilities.drivers, vec!["cppc_cpufreq"]);
}

#[test]
fn both_uncore_layouts() {
    let t = Tree::new();
    t.simple_cpus(2);
    for p in 0..2 {
        t.uncore_bounds(&format!("package_{p:02}_die_00"));
    }
    for n in 0..4u32 {
        let name = format!("uncore{n:02}");
        t.uncore_bounds(&name);
        let d = format!("{CPU}/intel_uncore_frequency/{name}");
        t.file(&format!("{d}/package_id"), &(n / 2).to_string())
            .file(&format!("{d}/domain_id"), &(n % 2).to_string())
            .file(&format!("{d}/fabric_cluster_id"), &(n % 2).to_string());
        if n == 3 {
            t.file(&format!("{d}/die_id"), "1");
        }
    }
    let topo = discover(&t.root());
    assert_eq!(topo.uncore.len(), 6, "{:?}", topo.uncore);
    let legacy: Vec<_> = topo.uncore.iter().filter(|u| u.layout == UncoreLayout::Legacy).collect();
    assert_eq!(legacy.len(), 2);
    assert_eq!((legacy[1].package, legacy[1].die), (1, Some(0)));
    assert_eq!(legacy[1].name, "package_01_die_00");
    let u3 = topo.uncore.iter().find(|u| u.name == "uncore03").unwrap();
    assert_eq!(u3.layout, UncoreLayout::Tpmi);
    assert_eq!((u3.package, u3.domain, u3.cluster, u3.die), (1, Some(1), Some(1), Some(1)));
    assert_eq!((u3.initial_min_khz, u3.initial_max_khz), (800_000, 2_500_000));
    assert_eq!(topo.uncore.iter().find(|u| u.name == "uncore02").unwrap().die, None);
    assert_eq!(topo.capabilities.uncore, vec![UncoreLayout::Tpmi, UncoreLayout::Legacy]);
    let preferred: Vec<&str> = topo.preferred_uncore().iter().map(|u| u.name.as_str()).collect();
    assert_eq!(preferred, vec!["uncore00", "uncore01", "uncore02", "uncore03"]);
    assert_eq!(report(&topo, "uncore"), "TPMI (4 domains) + legacy package/die (2)");
    assert!(!has_warning(&topo, "uncore"), "{:?}", topo.warnings);
}

#[test]
fn legacy_uncore_only() {
    let t = Tree::new();
    t.simple_cpus(1);
    t.uncore_bounds("package_00_die_00").uncore_bounds("package_00_die_01");
    let topo = discover(&t.root());
    assert_eq!(topo.capabilities.uncore, vec![UncoreLayout::Legacy]);
    assert_eq!(topo.preferred_uncore().len(), 2);
    assert_eq!(topo.uncore[1].die, Some(1));
    assert_eq!(report(&topo, "uncore"), "legacy package/die (2)");
}

#[test]
fn missing_cpufreq_is_reported_as_no_frequency_scaling() {
    let t = Tree::new();
    t.simple_cpus(4);
    let topo = discover(&t.root());
    assert_eq!(topo.cpus.len(), 4);
    assert!(topo.policies.is_empty());
    assert!(topo.cpus.iter().all(|c| c.policy.is_none()));
    assert!(topo.policy_of(0).is_none());
    assert!(topo.capabilities.drivers.is_empty());
    assert!(!topo.capabilities.epp);
    assert_eq!(topo.capabilities.pstate_status, None);
    assert!(report(&topo, "frequency scaling").starts_with("no: no cpufreq policies"));
    assert_eq!(report(&topo, "EPP"), "no");
    assert_eq!(report(&topo, "C-states"), "no: no cpuidle driver");
    assert_eq!(report(&topo, "uncore"), "no");
    assert!(has_warning(&topo, "no cpufreq policies"), "{:?}", topo.warnings);
}

#[test]
fn an_empty_root_gives_warnings_not_a_panic() {
    let t = Tree::new();
    let topo = discover(&t.root());
    assert!(topo.cpus.is_empty());
    assert!(topo.core_types().is_empty());
    assert!(has_warning(&topo, "no CPUs found"), "{:?}", topo.warnings);
    assert_eq!(report(&topo, "CPUs"), "0 online");
}

#[test]
fn garbage_in_files_becomes_warnings() {
    let t = Tree::new();
    t.simple_cpus(4);
    t.policies_per_cpu(4, "intel_pstate", |_| 3_000_000, false);
    t.file(&format!("{CPU}/cpuidle/current_driver"), "intel_idle");
    for c in 0..4 {
        t.idle(c, &[("POLL", 0, 0), ("C1", 2, 2)]);
    }
    t.uncore_bounds("package_00_die_00").uncore_bounds("uncore00");
    t.file(&format!("{CPU}/online"), "0-3,zz")
        .file(&format!("{CPU}/cpu1/online"), "maybe")
        .file(&format!("{CPU}/cpu1/topology/physical_package_id"), "-1")
        .file(&format!("{CPU}/cpu2/topology/thread_siblings_list"), "3-1")
        .file(&format!("{CPU}/cpu3/cpu_capacity"), "big")
        .file(&format!("{CPU}/cpufreq/policy1/cpuinfo_max_freq"), "fast")
        .file(&format!("{CPU}/cpufreq/policy2/related_cpus"), "two")
        .file(&format!("{CPU}/cpu1/cpuidle/state1/latency"), "")
        .file(&format!("{CPU}/intel_uncore_frequency/uncore00/package_id"), "x")
        .file(
            &format!("{CPU}/intel_uncore_frequency/package_00_die_00/initial_max_freq_khz"),
            "\u{fffd}",
        );
    std::fs::write(t.path().join(format!("{CPU}/cpu0/topology/core_id")), [0xff, 0xfe, b'\n'])
        .unwrap();
    let topo = discover(&t.root());
    for needle in [
        "/sys/devices/system/cpu/online: invalid CPU list",
        "cpu1/online: expected 0 or 1",
        "cpu1/topology/physical_package_id: expected an unsigned integer, found \"-1\"",
        "cpu2/topology/thread_siblings_list: invalid CPU list",
        "cpu3/cpu_capacity",
        "policy1/cpuinfo_max_freq: expected an unsigned integer, found \"fast\"",
        "policy2/related_cpus",
        "cpu1/cpuidle/state1/latency",
        "uncore00/package_id",
        "package_00_die_00/initial_max_freq_khz",
        "cpu0/topology/core_id",
    ] {
        assert!(has_warning(&topo, needle), "no warning with {needle:?} in {:#?}", topo.warnings);
    }
    // What could be read still is.
    assert_eq!(topo.cpus.len(), 4);
    assert_eq!(topo.cpu(1).unwrap().package, None);
    assert_eq!(topo.cpu(2).unwrap().package, Some(0));
    assert_eq!(topo.cpu(2).unwrap().siblings, vec![2]);
    assert_eq!(topo.policy_of(1).unwrap().cpuinfo_max_khz, 0);
    // policy2's related_cpus is garbage, but cpu2's cpufreq link still leads to it.
    assert_eq!(topo.cpu(2).unwrap().policy, Some(2));
    assert!(topo.uncore.is_empty(), "{:?}", topo.uncore);
    assert_eq!(topo.idle_state(1, "C1").unwrap().latency_us, 0);
    let _ = topo.capability_report();
}

#[test]
fn an_online_cpu_without_topology_is_a_warning() {
    let t = Tree::new();
    t.simple_cpus(2);
    t.remove(&format!("{CPU}/cpu1/topology"));
    let topo = discover(&t.root());
    assert!(topo.cpu(1).unwrap().online);
    assert_eq!(topo.cpu(1).unwrap().package, None);
    assert!(has_warning(&topo, "cpu1/topology: missing on an online CPU"), "{:?}", topo.warnings);
}

#[test]
fn full_capability_report_of_a_hybrid_desktop() {
    let t = Tree::new();
    for c in 0..8 {
        let core = c / 2;
        t.cpu(c, 0, core, &format!("{},{}", core * 2, core * 2 + 1));
    }
    for c in 8..16 {
        t.cpu(c, 0, c, &c.to_string());
    }
    t.file(&format!("{CPU}/online"), "0-15");
    t.file("sys/devices/cpu_core/cpus", "0-7").file("sys/devices/cpu_atom/cpus", "8-15");
    t.policies_per_cpu(16, "intel_pstate", |c| if c < 8 { 5_800_000 } else { 4_400_000 }, true);
    t.file(&format!("{CPU}/intel_pstate/status"), "active");
    t.file(&format!("{CPU}/cpuidle/current_driver"), "intel_idle");
    for c in 0..16 {
        t.idle(c, &[("POLL", 0, 0), ("C1", 1, 1), ("C1E", 2, 4), ("C6", 170, 600)]);
    }
    t.uncore_bounds("package_00_die_00");
    let topo = discover(&t.root());
    let got = topo.capability_report();
    let want: Vec<(String, String)> = [
        ("CPUs", "16 online (0-15)"),
        ("frequency scaling", "intel_pstate (active), 16 policies, 800000..5800000 kHz"),
        ("EPP", "yes: default performance balance_performance balance_power power"),
        ("C-states", "intel_idle: POLL C1 C1E C6"),
        ("uncore", "legacy package/die (1)"),
        ("hybrid", "4 P-cores (CPUs 0-7), 8 E-cores (CPUs 8-15)"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want);
    assert!(topo.warnings.is_empty(), "{:?}", topo.warnings);
}

mod garbage {
    use super::*;
    use proptest::prelude::*;

    const FILES: [&str; 10] = [
        "sys/devices/system/cpu/online",
        "sys/devices/system/cpu/cpu1/online",
        "sys/devices/system/cpu/cpu0/topology/core_id",
        "sys/devices/system/cpu/cpu1/topology/thread_siblings_list",
        "sys/devices/system/cpu/cpu0/cpu_capacity",
        "sys/devices/system/cpu/cpufreq/policy0/related_cpus",
        "sys/devices/system/cpu/cpufreq/policy1/cpuinfo_min_freq",
        "sys/devices/system/cpu/cpu0/cpuidle/state0/residency",
        "sys/devices/cpu_core/cpus",
        "sys/devices/system/cpu/intel_uncore_frequency/uncore00/package_id",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn arbitrary_file_contents_never_panic(
            which in 0..FILES.len(),
            content in proptest::collection::vec(any::<u8>(), 0..24),
        ) {
            let t = Tree::new();
            t.simple_cpus(2);
            t.policies_per_cpu(2, "intel_pstate", |_| 3_000_000, true);
            t.idle(0, &[("POLL", 0, 0)]);
            t.uncore_bounds("uncore00");
            t.file("sys/devices/system/cpu/intel_uncore_frequency/uncore00/package_id", "0");
            let p = t.path().join(FILES[which]);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, &content).unwrap();
            let topo = discover(&t.root());
            let _ = topo.capability_report();
            prop_assert_eq!(topo.cpus.len(), 2);
        }
    }
}

mod profiles {
    use super::*;
    use powerstack_sim::{Profile, SimNode, SimOptions};

    /// Every simulator profile that can be created without a mock library.
    fn each_profile(mut check: impl FnMut(&str, &FreqTopology)) -> usize {
        let mut checked = 0;
        for profile in Profile::ALL {
            if profile.uses_mock_nvml() {
                continue; // needs the mock NVML library
            }
            let dir = tempfile::tempdir().unwrap();
            let root_dir = dir.path().join("root");
            match SimNode::create(&root_dir, profile, SimOptions::default()) {
                Ok(_) => {}
                Err(e) => {
                    eprintln!("skipping {profile}: {e}");
                    continue;
                }
            }
            let topo = discover(&Root::new(&root_dir));
            check(profile.as_str(), &topo);
            checked += 1;
        }
        checked
    }

    /// Creates each profile once and checks it: every profile, then what is particular to some.
    #[test]
    fn simulator_profiles() {
        let mut seen = Vec::new();
        let n = each_profile(|name, topo| {
            seen.push(name.to_string());
            generic(name, topo);
            particular(name, topo);
        });
        assert!(n >= 2, "at least intel-2s and amd-2s");
        eprintln!("checked {seen:?}");
    }

    fn generic(name: &str, topo: &FreqTopology) {
        assert!(!topo.cpus.is_empty(), "{name}");
        assert!(topo.warnings.is_empty(), "{name}: {:#?}", topo.warnings);
        assert!(!topo.policies.is_empty(), "{name}");
        for cpu in topo.online_cpus() {
            assert!(topo.policy_of(cpu).is_some(), "{name}: cpu{cpu} has no policy");
            assert!(topo.idle_states.contains_key(&cpu), "{name}: cpu{cpu} has no C-states");
            let c = topo.cpu(cpu).unwrap();
            assert!(c.package.is_some() && c.core.is_some(), "{name}: cpu{cpu}");
        }
        assert!(topo.capabilities.idle_driver.is_some(), "{name}");
        assert_eq!(topo.capability_report().len(), 6, "{name}");
        let hybrid = name.contains("hybrid");
        assert_eq!(topo.capabilities.hybrid, hybrid, "{name}");
        if !hybrid {
            assert_eq!(topo.core_types(), vec![CoreType::Uniform], "{name}");
        } else {
            assert_eq!(
                topo.core_types(),
                vec![CoreType::Performance, CoreType::Efficiency],
                "{name}"
            );
        }
        if name.contains("offline") {
            assert!(!topo.offline_cpus().is_empty(), "{name}");
        }
    }

    fn particular(name: &str, topo: &FreqTopology) {
        match name {
            "intel-2s" => {
                // 2 packages x 4 cores x 2 threads.
                assert_eq!(topo.cpus.len(), 16);
                assert_eq!(topo.capabilities.drivers, vec!["intel_pstate"]);
                assert_eq!(topo.capabilities.pstate_status.as_deref(), Some("active"));
                assert!(topo.capabilities.epp);
                assert_eq!(topo.capabilities.idle_driver.as_deref(), Some("intel_idle"));
                assert_eq!(topo.capabilities.uncore, vec![UncoreLayout::Legacy]);
                assert_eq!(topo.uncore.len(), 2);
                assert_eq!(topo.policy_of(15).unwrap().base_khz, Some(2_400_000));
                assert_eq!(topo.idle_state(15, "C6").unwrap().latency_us, 133);
                let packages: std::collections::BTreeSet<_> =
                    topo.cpus.iter().map(|c| c.package).collect();
                assert_eq!(packages.len(), 2);
                assert_eq!(topo.cpu(0).unwrap().siblings.len(), 2);
                assert_eq!(report(topo, "C-states"), "intel_idle: POLL C1 C1E C6");
            }
            "amd-2s" => {
                assert_eq!(topo.capabilities.drivers, vec!["amd-pstate-epp"]);
                assert_eq!(topo.capabilities.pstate_status.as_deref(), Some("active"));
                assert!(topo.capabilities.epp);
                assert!(topo.uncore.is_empty());
                assert_eq!(report(topo, "uncore"), "no");
            }
            "intel-hybrid" => {
                assert_eq!(topo.cpus_of_type(CoreType::Performance), (0..8).collect::<Vec<_>>());
                assert_eq!(topo.cpus_of_type(CoreType::Efficiency), (8..16).collect::<Vec<_>>());
                assert_eq!(report(topo, "hybrid"), "4 P-cores (CPUs 0-7), 8 E-cores (CPUs 8-15)");
                let (p, e) = (topo.policy_of(0).unwrap(), topo.policy_of(8).unwrap());
                assert_ne!(p.cpuinfo_max_khz, e.cpuinfo_max_khz);
                assert_eq!(topo.cpu(1).unwrap().siblings, vec![0, 1]);
                assert!(topo.uncore.is_empty());
            }
            "intel-offline" => {
                assert_eq!(topo.offline_cpus(), vec![6, 7, 14, 15]);
                for c in topo.offline_cpus() {
                    let cpu = topo.cpu(c).unwrap();
                    assert_eq!((cpu.package, cpu.die, cpu.core), (None, None, None));
                    assert!(!topo.idle_states.contains_key(&c));
                }
                // An offline CPU's policy stays (related_cpus lists it).
                assert_eq!(topo.policy_of(7).map(|p| p.id), Some(7));
                assert_eq!(
                    topo.capabilities.uncore,
                    vec![UncoreLayout::Tpmi, UncoreLayout::Legacy]
                );
                assert_eq!(report(topo, "uncore"), "TPMI (4 domains) + legacy package/die (2)");
                assert_eq!(topo.preferred_uncore().len(), 4);
                assert_eq!(report(topo, "CPUs"), "12 online (0-5,8-13), 4 offline (6-7,14-15)");
            }
            _ => {}
        }
    }
}
