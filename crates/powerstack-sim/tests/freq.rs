//! The simulator's frequency-control files: the kernel's rules on writes to cpufreq, cpuidle and
//! uncore attributes (refused writes restored, accepted ones shown as the kernel shows them), and
//! the layouts of the intel-hybrid and intel-offline profiles. Deterministic, no sleeping.

use std::fs;
use std::path::Path;
use std::time::Duration;

use powerstack_hw::{CpuTopology, Root};
use powerstack_model::{DomainId, DomainKind};
use powerstack_sim::{Profile, SimNode, SimOptions};

const CPU: &str = "sys/devices/system/cpu";
const UNCORE: &str = "sys/devices/system/cpu/intel_uncore_frequency";

fn read(root: &Path, rel: &str) -> String {
    fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn write(root: &Path, rel: &str, content: &str) {
    fs::write(root.join(rel), content).unwrap_or_else(|e| panic!("{rel}: {e}"));
}

fn create(profile: Profile) -> (tempfile::TempDir, SimNode) {
    let dir = tempfile::tempdir().unwrap();
    let node = SimNode::create(dir.path(), profile, SimOptions::default()).unwrap();
    (dir, node)
}

fn pol(cpu: u32, file: &str) -> String {
    format!("{CPU}/cpufreq/policy{cpu}/{file}")
}

/// Writes `content` to `rel`, enforces, and returns the refusals.
fn try_write(node: &mut SimNode, rel: &str, content: &str) -> Vec<String> {
    write(node.root(), rel, content);
    node.enforce_sysfs_rules().unwrap()
}

// ---------------------------------------------------------------------------------------------
// cpufreq

#[test]
fn scaling_limits_outside_the_hardware_range_are_restored() {
    let (dir, mut node) = create(Profile::Intel2s);
    let r = dir.path();
    assert_eq!(
        try_write(&mut node, &pol(3, "scaling_min_freq"), "9000000"),
        vec!["cpu3 scaling_min_freq 9000000 outside 1000000..3700000: restored 1000000"]
    );
    assert_eq!(read(r, &pol(3, "scaling_min_freq")), "1000000\n");
    let e = try_write(&mut node, &pol(3, "scaling_max_freq"), "999999\n");
    assert_eq!(e, vec!["cpu3 scaling_max_freq 999999 outside 1000000..3700000: restored 3700000"]);
    assert_eq!(read(r, &pol(3, "scaling_max_freq")), "3700000\n");
    let e = try_write(&mut node, &pol(3, "scaling_max_freq"), "fast");
    assert_eq!(e, vec!["cpu3 scaling_max_freq fast is not a decimal kHz: restored 3700000"]);
    // Accepted values stay, and the current frequency follows (powersave: the midpoint).
    assert!(try_write(&mut node, &pol(3, "scaling_max_freq"), "2000000\n").is_empty());
    assert!(try_write(&mut node, &pol(3, "scaling_min_freq"), "1200000").is_empty());
    assert_eq!(read(r, &pol(3, "scaling_max_freq")), "2000000\n");
    assert_eq!(read(r, &pol(3, "scaling_min_freq")).trim(), "1200000");
    assert_eq!(read(r, &pol(3, "scaling_cur_freq")), "1600000\n");
    // Other policies are untouched; nothing changed, nothing to say.
    assert_eq!(read(r, &pol(2, "scaling_max_freq")), "3700000\n");
    assert!(node.enforce_sysfs_rules().unwrap().is_empty());
}

#[test]
fn min_above_max_is_refused_and_an_ordered_pair_is_taken_at_once() {
    let (dir, mut node) = create(Profile::Intel2s);
    let r = dir.path();
    assert!(try_write(&mut node, &pol(0, "scaling_max_freq"), "2000000").is_empty());
    let e = try_write(&mut node, &pol(0, "scaling_min_freq"), "2500000");
    assert_eq!(
        e,
        vec!["cpu0 scaling_min_freq 2500000 above scaling_max_freq 2000000: restored 1000000"]
    );
    let e = try_write(&mut node, &pol(0, "scaling_max_freq"), "1000000");
    assert!(e.is_empty(), "max = min is fine: {e:?}");
    assert!(
        try_write(&mut node, &pol(0, "scaling_min_freq"), "1500000")[0]
            .contains("above scaling_max_freq 1000000")
    );
    // Both written before the next check: taken together when the new pair is ordered, though
    // the new min is above the old max.
    write(r, &pol(0, "scaling_min_freq"), "3000000");
    write(r, &pol(0, "scaling_max_freq"), "3500000");
    assert!(node.enforce_sysfs_rules().unwrap().is_empty());
    assert_eq!(read(r, &pol(0, "scaling_cur_freq")), "3250000\n");
    // An unordered pair: the max first (refused: below the min in force), then the min.
    write(r, &pol(0, "scaling_min_freq"), "2500000");
    write(r, &pol(0, "scaling_max_freq"), "2000000");
    let e = node.enforce_sysfs_rules().unwrap();
    assert_eq!(
        e,
        vec!["cpu0 scaling_max_freq 2000000 below scaling_min_freq 3000000: restored 3500000"]
    );
    assert_eq!(read(r, &pol(0, "scaling_max_freq")), "3500000\n");
    assert_eq!(read(r, &pol(0, "scaling_min_freq")), "2500000");
}

#[test]
fn the_governor_must_be_available_and_sets_the_current_frequency() {
    let (dir, mut node) = create(Profile::Intel2s);
    let r = dir.path();
    let e = try_write(&mut node, &pol(5, "scaling_governor"), "ondemand");
    assert_eq!(
        e,
        vec!["cpu5 scaling_governor ondemand not in [performance powersave]: restored powersave"]
    );
    assert_eq!(read(r, &pol(5, "scaling_governor")), "powersave\n");
    assert_eq!(read(r, &pol(5, "scaling_cur_freq")), "2350000\n");
    assert!(try_write(&mut node, &pol(5, "scaling_governor"), "performance\n").is_empty());
    assert_eq!(read(r, &pol(5, "scaling_cur_freq")), "3700000\n");
    // acpi-cpufreq has more governors; powersave pins its minimum.
    let (dir, mut cray) = create(Profile::CrayEx);
    assert!(try_write(&mut cray, &pol(1, "scaling_governor"), "powersave").is_empty());
    assert_eq!(read(dir.path(), &pol(1, "scaling_cur_freq")), "1500000\n");
    assert_eq!(read(dir.path(), &pol(1, "cpuinfo_cur_freq")), "1500000\n");
}

#[test]
fn the_performance_governor_pins_epp_and_leaving_it_puts_the_old_one_back() {
    for profile in [Profile::Intel2s, Profile::Amd2s, Profile::IntelHybrid] {
        let (dir, mut node) = create(profile);
        let r = dir.path();
        let epp = pol(2, "energy_performance_preference");
        assert!(try_write(&mut node, &epp, "balance_power").is_empty(), "{profile}");
        assert!(try_write(&mut node, &pol(2, "scaling_governor"), "performance").is_empty());
        assert_eq!(read(r, &epp), "performance\n", "{profile}");
        // EBUSY for anything but performance while the governor is performance.
        let e = try_write(&mut node, &epp, "power");
        assert_eq!(
            e,
            vec![
                "cpu2 energy_performance_preference power refused while scaling_governor is performance (EBUSY): restored performance"
            ],
            "{profile}"
        );
        assert!(try_write(&mut node, &epp, "performance").is_empty());
        assert!(try_write(&mut node, &pol(2, "scaling_governor"), "powersave").is_empty());
        assert_eq!(read(r, &epp), "balance_power\n", "{profile}: the EPP from before is back");
        // A governor and an EPP written together: the governor first.
        write(r, &pol(2, "scaling_governor"), "performance");
        write(r, &epp, "balance_performance");
        let e = node.enforce_sysfs_rules().unwrap();
        assert_eq!(e.len(), 1, "{profile}: {e:?}");
        assert_eq!(read(r, &epp), "performance\n");
    }
}

#[test]
fn epp_takes_the_listed_strings_and_on_intel_numbers() {
    let (dir, mut node) = create(Profile::Intel2s);
    let r = dir.path();
    let epp = pol(4, "energy_performance_preference");
    let e = try_write(&mut node, &epp, "turbo");
    assert_eq!(
        e,
        vec![
            "cpu4 energy_performance_preference turbo not in [default performance balance_performance balance_power power] or 0..255: restored balance_performance"
        ]
    );
    assert!(try_write(&mut node, &epp, "256")[0].contains("or 0..255"));
    // intel_pstate shows known numbers by name, others as numbers; `default` as what it is.
    for (w, shown) in [
        ("100", "100"),
        ("192", "balance_power"),
        ("0", "performance"),
        ("default", "balance_performance"),
        ("power", "power"),
    ] {
        assert!(try_write(&mut node, &epp, w).is_empty(), "{w}");
        assert_eq!(read(r, &epp).trim(), shown, "{w}");
    }
    // amd-pstate-epp takes strings only.
    let (dir, mut amd) = create(Profile::Amd2s);
    let e = try_write(&mut amd, &epp, "100");
    assert_eq!(
        e,
        vec![
            "cpu4 energy_performance_preference 100 not in [default performance balance_performance balance_power power]: restored balance_performance"
        ]
    );
    assert_eq!(read(dir.path(), &epp), "balance_performance\n");
}

#[test]
fn setspeed_needs_the_userspace_governor() {
    let (_dir, mut node) = create(Profile::Intel2s);
    let e = try_write(&mut node, &pol(1, "scaling_setspeed"), "2000000");
    assert_eq!(
        e,
        vec![
            "cpu1 scaling_setspeed 2000000 refused: the powersave governor has no setspeed (EINVAL): restored <unsupported>"
        ]
    );
    let (dir, mut cray) = create(Profile::CrayEx);
    let r = dir.path();
    assert!(try_write(&mut cray, &pol(1, "scaling_governor"), "userspace").is_empty());
    assert_eq!(read(r, &pol(1, "scaling_setspeed")), "2000000\n");
    // The table frequency at or above the target, shown as what the CPU runs at.
    assert!(try_write(&mut cray, &pol(1, "scaling_setspeed"), "1600000").is_empty());
    assert_eq!(read(r, &pol(1, "scaling_setspeed")), "1700000\n");
    assert_eq!(read(r, &pol(1, "scaling_cur_freq")), "1700000\n");
    assert!(try_write(&mut cray, &pol(1, "scaling_governor"), "performance").is_empty());
    assert_eq!(read(r, &pol(1, "scaling_setspeed")), "<unsupported>\n");
}

#[test]
fn an_offline_cpus_policy_refuses_every_write() {
    let (dir, mut node) = create(Profile::IntelOffline);
    let r = dir.path();
    let e = try_write(&mut node, &pol(6, "scaling_max_freq"), "2000000");
    assert_eq!(
        e,
        vec![
            "cpu6 scaling_max_freq 2000000 refused: policy6 is inactive (its CPUs are offline): restored 3900000"
        ]
    );
    assert_eq!(read(r, &pol(6, "scaling_max_freq")), "3900000\n");
    assert!(try_write(&mut node, &pol(5, "scaling_max_freq"), "2000000").is_empty());
}

// ---------------------------------------------------------------------------------------------
// cpuidle and globals

#[test]
fn cpuidle_disable_takes_booleans_only() {
    let (dir, mut node) = create(Profile::Intel2s);
    let r = dir.path();
    let d = format!("{CPU}/cpu7/cpuidle/state3/disable");
    let e = try_write(&mut node, &d, "2");
    assert_eq!(e, vec!["cpu7 state3 (C6) disable 2 is not 0 or 1 (EINVAL): restored 0"]);
    assert_eq!(read(r, &d), "0\n");
    assert!(try_write(&mut node, &d, "1").is_empty());
    assert_eq!(read(r, &d), "1");
    // kstrtobool spellings are shown as 0 or 1.
    assert!(try_write(&mut node, &d, "n").is_empty());
    assert_eq!(read(r, &d), "0\n");
    assert!(try_write(&mut node, &d, "on").is_empty());
    assert_eq!(read(r, &d), "1\n");
    assert!(try_write(&mut node, &d, "").is_empty(), "an empty file is a write in progress");
    assert_eq!(read(r, &d), "");
    assert!(try_write(&mut node, &d, "x")[0].ends_with("restored 1"));
    assert_eq!(read(r, &format!("{CPU}/cpu6/cpuidle/state3/disable")), "0\n");
}

#[test]
fn global_attributes_follow_the_kernel() {
    let (dir, mut node) = create(Profile::Intel2s);
    let r = dir.path();
    let gov = format!("{CPU}/cpuidle/current_governor");
    let e = try_write(&mut node, &gov, "fast");
    assert_eq!(
        e,
        vec!["cpuidle current_governor fast not in [ladder menu teo] (EINVAL): restored menu"]
    );
    assert!(try_write(&mut node, &gov, "teo").is_empty());
    assert_eq!(read(r, &format!("{CPU}/cpuidle/current_governor_ro")), "teo\n");
    let pct = |f: &str| format!("{CPU}/intel_pstate/{f}");
    assert!(try_write(&mut node, &pct("max_perf_pct"), "150").is_empty());
    assert_eq!(read(r, &pct("max_perf_pct")), "100\n", "clamped");
    assert!(try_write(&mut node, &pct("min_perf_pct"), "5").is_empty());
    assert_eq!(read(r, &pct("min_perf_pct")), "27\n", "clamped to the hardware minimum");
    assert!(try_write(&mut node, &pct("no_turbo"), "7").is_empty());
    assert_eq!(read(r, &pct("no_turbo")), "1\n");
    assert!(try_write(&mut node, &pct("no_turbo"), "off")[0].contains("no_turbo off"));
    let (dir, mut cray) = create(Profile::CrayEx);
    let boost = format!("{CPU}/cpufreq/boost");
    assert_eq!(
        try_write(&mut cray, &boost, "2"),
        vec!["cpufreq boost 2 is not 0 or 1 (EINVAL): restored 1"]
    );
    assert!(try_write(&mut cray, &boost, "0").is_empty());
    assert_eq!(read(dir.path(), &boost), "0");
    // What the simulator cannot do is refused rather than left written.
    let (dir, mut node) = create(Profile::IntelOffline);
    let e = try_write(&mut node, &format!("{CPU}/cpu6/online"), "1");
    assert_eq!(e, vec!["cpu6 online 1 refused: the simulator does not do this: restored 0"]);
    assert_eq!(read(dir.path(), &format!("{CPU}/cpu6/online")), "0\n");
    let e = try_write(&mut node, &format!("{CPU}/intel_pstate/status"), "passive");
    assert_eq!(
        e,
        vec![
            "intel_pstate status passive refused: the simulator does not do this: restored active"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// uncore

#[test]
fn uncore_limits_are_checked_and_stored_in_100_mhz_steps() {
    let (dir, mut node) = create(Profile::Intel2s);
    let r = dir.path();
    let u = |f: &str| format!("{UNCORE}/package_01_die_00/{f}");
    assert_eq!(read(r, &u("current_freq_khz")), "1800000\n");
    assert!(try_write(&mut node, &u("min_freq_khz"), "1250000").is_empty());
    assert_eq!(read(r, &u("min_freq_khz")), "1200000\n", "rounded down");
    assert!(try_write(&mut node, &u("max_freq_khz"), "2399999").is_empty());
    assert_eq!(read(r, &u("max_freq_khz")), "2300000\n");
    assert_eq!(read(r, &u("current_freq_khz")), "1700000\n");
    let e = try_write(&mut node, &u("min_freq_khz"), "1100000");
    assert_eq!(
        e,
        vec!["package_01_die_00 min_freq_khz 1100000 outside 1200000..2400000: restored 1200000"]
    );
    let e = try_write(&mut node, &u("max_freq_khz"), "2500000");
    assert!(e[0].contains("outside 1200000..2400000"), "{e:?}");
    // The order is checked on the rounded values: 2350000 is 2300000, the max.
    assert!(try_write(&mut node, &u("min_freq_khz"), "2350000").is_empty());
    assert_eq!(read(r, &u("min_freq_khz")), "2300000\n");
    assert_eq!(read(r, &u("current_freq_khz")), "2300000\n");
    let e = try_write(&mut node, &u("min_freq_khz"), "2400000");
    assert_eq!(
        e,
        vec!["package_01_die_00 min_freq_khz 2400000 above max_freq_khz 2300000: restored 2300000"]
    );
    assert_eq!(read(r, &format!("{UNCORE}/package_00_die_00/max_freq_khz")), "2400000\n");
}

#[test]
fn tpmi_package_writes_reach_every_cluster_and_cluster_writes_only_theirs() {
    let (dir, mut node) = create(Profile::IntelOffline);
    let r = dir.path();
    let f = |d: &str, f: &str| format!("{UNCORE}/{d}/{f}");
    let max = |d: &str| read(r, &f(d, "max_freq_khz"));
    assert!(try_write(&mut node, &f("package_00_die_00", "max_freq_khz"), "2050000").is_empty());
    assert_eq!(max("package_00_die_00"), "2000000\n");
    assert_eq!((max("uncore00"), max("uncore01")), ("2000000\n".into(), "2000000\n".into()));
    assert_eq!((max("uncore02"), max("uncore03")), ("2500000\n".into(), "2500000\n".into()));
    assert_eq!(read(r, &f("uncore00", "current_freq_khz")), "1400000\n");
    assert_eq!(read(r, &f("uncore02", "current_freq_khz")), "1600000\n");
    // A cluster alone.
    assert!(try_write(&mut node, &f("uncore01", "max_freq_khz"), "1500000\n").is_empty());
    assert_eq!((max("uncore00"), max("uncore01")), ("2000000\n".into(), "1500000\n".into()));
    // A package-level min above a cluster's max is refused.
    let e = try_write(&mut node, &f("package_00_die_00", "min_freq_khz"), "1800000");
    assert_eq!(
        e,
        vec!["package_00_die_00 min_freq_khz 1800000 above max_freq_khz 1500000: restored 800000"]
    );
    assert_eq!(read(r, &f("uncore00", "min_freq_khz")), "800000\n");
    assert!(
        try_write(&mut node, &f("uncore03", "min_freq_khz"), "700000")[0]
            .contains("outside 800000..2500000")
    );
    // A package-level max and a cluster's written together: the package first.
    write(r, &f("package_01_die_00", "max_freq_khz"), "2200000");
    write(r, &f("uncore03", "max_freq_khz"), "1900000");
    assert!(node.enforce_sysfs_rules().unwrap().is_empty());
    assert_eq!((max("uncore02"), max("uncore03")), ("2200000\n".into(), "1900000\n".into()));
    // ELC.
    let e = try_write(&mut node, &f("uncore02", "elc_high_threshold_percent"), "150");
    assert_eq!(
        e,
        vec!["uncore02 elc_high_threshold_percent 150 outside 0..100 (percent): restored 95"]
    );
    assert!(
        try_write(&mut node, &f("package_01_die_00", "elc_floor_freq_khz"), "1234567").is_empty()
    );
    assert_eq!(read(r, &f("uncore03", "elc_floor_freq_khz")), "1200000\n");
    assert!(
        try_write(&mut node, &f("uncore03", "elc_high_threshold_enable"), "2")[0]
            .contains("is not 0 or 1")
    );
}

// ---------------------------------------------------------------------------------------------
// When rules run.

#[test]
fn advance_enforces_and_keeps_the_refusals() {
    let (dir, mut node) = create(Profile::Intel2s);
    let r = dir.path();
    write(r, &pol(3, "scaling_min_freq"), "9000000");
    write(r, &format!("{UNCORE}/package_00_die_00/min_freq_khz"), "1750000");
    node.advance(Duration::from_millis(10)).unwrap();
    assert_eq!(read(r, &pol(3, "scaling_min_freq")), "1000000\n");
    assert_eq!(read(r, &format!("{UNCORE}/package_00_die_00/min_freq_khz")), "1700000\n");
    assert_eq!(
        node.take_refusals(),
        vec!["cpu3 scaling_min_freq 9000000 outside 1000000..3700000: restored 1000000"]
    );
    assert!(node.take_refusals().is_empty());
    node.advance(Duration::from_millis(10)).unwrap();
    assert!(node.take_refusals().is_empty());
}

#[test]
fn open_takes_the_values_on_disk_as_accepted() {
    let (dir, mut node) = create(Profile::Intel2s);
    let r = dir.path();
    assert!(try_write(&mut node, &pol(2, "scaling_max_freq"), "2500000").is_empty());
    assert!(try_write(&mut node, &pol(2, "scaling_governor"), "performance").is_empty());
    drop(node);
    let mut node = SimNode::open(r).unwrap();
    assert!(node.enforce_sysfs_rules().unwrap().is_empty());
    let e = try_write(&mut node, &pol(2, "scaling_min_freq"), "3000000");
    assert_eq!(
        e,
        vec!["cpu2 scaling_min_freq 3000000 above scaling_max_freq 2500000: restored 1000000"]
    );
    assert!(
        try_write(&mut node, &pol(2, "energy_performance_preference"), "power")[0]
            .contains("EBUSY")
    );
    // Leaving performance after a reopen puts back the firmware default.
    assert!(try_write(&mut node, &pol(2, "scaling_governor"), "powersave").is_empty());
    assert_eq!(read(r, &pol(2, "energy_performance_preference")), "balance_performance\n");
}

// ---------------------------------------------------------------------------------------------
// Layouts.

#[test]
fn intel_hybrid_layout_follows_the_kernel() {
    let (dir, mut node) = create(Profile::IntelHybrid);
    let r = dir.path();
    let model = powerstack_hw::topology::parse_cpuinfo(&read(r, "proc/cpuinfo")).unwrap();
    assert_eq!((model.family, model.model), (6, 0xB7));
    assert!(read(r, "proc/cpuinfo").contains(" hybrid_cpu"));
    assert_eq!(read(r, "sys/devices/cpu_core/cpus"), "0-7\n");
    assert_eq!(read(r, "sys/devices/cpu_atom/cpus"), "8-15\n");
    assert!(r.join("sys/bus/event_source/devices/cpu_atom/cpus").is_file());
    for c in 0..16u32 {
        let d = format!("{CPU}/cpu{c}");
        let p = c < 8;
        assert_eq!(read(r, &format!("{d}/cpu_capacity")), if p { "1024\n" } else { "633\n" });
        let sib = read(r, &format!("{d}/topology/thread_siblings_list"));
        let want = if p { format!("{}-{}\n", c & !1, c | 1) } else { format!("{c}\n") };
        assert_eq!(sib, want, "cpu{c}");
        let (max, base) = if p { (5_800_000, 3_000_000) } else { (4_300_000, 2_200_000) };
        assert_eq!(read(r, &format!("{d}/cpufreq/cpuinfo_max_freq")), format!("{max}\n"));
        assert_eq!(read(r, &format!("{d}/cpufreq/cpuinfo_min_freq")), "800000\n");
        assert_eq!(read(r, &format!("{d}/cpufreq/base_frequency")), format!("{base}\n"));
        assert_eq!(read(r, &format!("{d}/cpufreq/related_cpus")), format!("{c}\n"));
        assert_eq!(read(r, &format!("{d}/cpuidle/state5/name")), "C10\n");
        assert_eq!(read(r, &format!("{d}/topology/physical_package_id")), "0\n");
    }
    let ids: Vec<String> = [0, 1, 2, 7, 8, 15]
        .iter()
        .map(|c| read(r, &format!("{CPU}/cpu{c}/topology/core_id")).trim().to_string())
        .collect();
    assert_eq!(ids, ["0", "0", "4", "12", "16", "23"]);
    let names: Vec<String> = (0..6)
        .map(|k| read(r, &format!("{CPU}/cpu9/cpuidle/state{k}/name")).trim().to_string())
        .collect();
    assert_eq!(names, ["POLL", "C1", "C1E", "C6", "C8", "C10"]);
    assert_eq!(read(r, &format!("{CPU}/cpuidle/current_driver")), "intel_idle\n");
    assert_eq!(
        read(r, &format!("{CPU}/cpu12/cpufreq/energy_performance_preference")),
        "balance_performance\n"
    );
    assert!(!r.join(UNCORE).exists(), "client parts have no uncore frequency control");
    let (topo, warnings) = CpuTopology::discover(&Root::new(r));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!((topo.cpus.len(), topo.packages(), topo.cores_of(0)), (16, vec![0], 12));
    // Client powercap: package-0 with core and uncore, psys.
    let z = "sys/class/powercap";
    for (zone, name) in [
        ("intel-rapl:0", "package-0"),
        ("intel-rapl:0:0", "core"),
        ("intel-rapl:0:1", "uncore"),
        ("intel-rapl:1", "psys"),
    ] {
        assert_eq!(read(r, &format!("{z}/{zone}/name")), format!("{name}\n"));
    }
    for (c, name, uw) in [
        (0, "long_term", 125_000_000),
        (1, "short_term", 253_000_000),
        (2, "peak_power", 380_000_000),
    ] {
        let p = format!("{z}/intel-rapl:0/constraint_{c}");
        assert_eq!(read(r, &format!("{p}_name")), format!("{name}\n"));
        assert_eq!(read(r, &format!("{p}_power_limit_uw")), format!("{uw}\n"));
    }
    assert_eq!(read(r, &format!("{z}/intel-rapl:1/enabled")), "0\n");
    assert!(!r.join("dev/cpu").exists());
    // Power: 15–253 W, capped at PL1 125 W; core 70 %, uncore 10 %, psys + 25 W.
    node.set_load(0.25);
    node.advance(Duration::from_secs(1)).unwrap();
    let w = |k, i| node.true_power_watts(DomainId::new(k, i)).unwrap();
    let pkg = w(DomainKind::Package, 0);
    assert_eq!(pkg, 74.5);
    assert!((w(DomainKind::Core, 0) - 0.7 * pkg).abs() < 1e-9);
    assert!((w(DomainKind::Uncore, 0) - 0.1 * pkg).abs() < 1e-9);
    assert_eq!(w(DomainKind::Platform, 0), pkg + 25.0);
    node.set_load(1.0);
    node.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(node.true_power_watts(DomainId::new(DomainKind::Package, 0)), Some(125.0));
    let mut domains = node.domains();
    domains.sort();
    assert_eq!(domains.len(), 4);
}

#[test]
fn intel_offline_layout_follows_the_kernel() {
    let (dir, mut node) = create(Profile::IntelOffline);
    let r = dir.path();
    let model = powerstack_hw::topology::parse_cpuinfo(&read(r, "proc/cpuinfo")).unwrap();
    assert_eq!(
        (model.family, model.model, model.name.as_str()),
        (6, 0xAD, "Intel(R) Xeon(R) 6960P")
    );
    assert_eq!(read(r, "proc/cpuinfo").matches("processor\t: ").count(), 12);
    assert_eq!(read(r, &format!("{CPU}/online")), "0-5,8-13\n");
    assert_eq!(read(r, &format!("{CPU}/offline")), "6-7,14-15\n");
    assert_eq!(read(r, &format!("{CPU}/possible")), "0-15\n");
    assert_eq!(read(r, &format!("{CPU}/present")), "0-15\n");
    for c in [6, 7, 14, 15] {
        let d = r.join(format!("{CPU}/cpu{c}"));
        assert_eq!(read(r, &format!("{CPU}/cpu{c}/online")), "0\n");
        let entries: Vec<String> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(entries, ["online"], "cpu{c}");
        assert_eq!(read(r, &pol(c, "related_cpus")), format!("{c}\n"));
        assert_eq!(read(r, &pol(c, "affected_cpus")), "\n");
    }
    assert_eq!(read(r, &format!("{CPU}/cpu5/online")), "1\n");
    assert_eq!(read(r, &format!("{CPU}/cpu13/topology/thread_siblings_list")), "5,13\n");
    assert_eq!(read(r, &format!("{CPU}/cpu4/topology/core_siblings_list")), "4-5,12-13\n");
    assert_eq!(read(r, &pol(5, "affected_cpus")), "5\n");
    assert_eq!(read(r, &pol(5, "cpuinfo_max_freq")), "3900000\n");
    assert_eq!(read(r, &pol(5, "base_frequency")), "2700000\n");
    assert_eq!(read(r, "sys/devices/system/node/node1/cpulist"), "4-5,12-13\n");
    assert_eq!(read(r, &format!("{CPU}/cpu13/cpuidle/state3/name")), "C6\n");
    assert!(!r.join(format!("{CPU}/cpu13/cpuidle/state4")).exists());
    let (topo, _) = CpuTopology::discover(&Root::new(r));
    assert_eq!(topo.cpus.iter().filter(|c| c.online).count(), 12);
    // TPMI uncore: two clusters per package, package-level entries without current_freq_khz.
    for (n, pkg, cluster) in [(0, 0, 0), (1, 0, 1), (2, 1, 0), (3, 1, 1)] {
        let d = format!("{UNCORE}/uncore{n:02}");
        for (f, v) in [
            ("package_id", pkg.to_string()),
            ("domain_id", "0".into()),
            ("fabric_cluster_id", cluster.to_string()),
            ("die_id", "0".into()),
            ("agent_types", "core cache memory io".into()),
            ("initial_min_freq_khz", "800000".into()),
            ("initial_max_freq_khz", "2500000".into()),
            ("min_freq_khz", "800000".into()),
            ("max_freq_khz", "2500000".into()),
            ("current_freq_khz", "1600000".into()),
            ("elc_floor_freq_khz", "800000".into()),
            ("elc_low_threshold_percent", "10".into()),
            ("elc_high_threshold_percent", "95".into()),
            ("elc_high_threshold_enable", "1".into()),
        ] {
            assert_eq!(read(r, &format!("{d}/{f}")), format!("{v}\n"), "{d}/{f}");
        }
    }
    for p in ["package_00_die_00", "package_01_die_00"] {
        let d = r.join(format!("{UNCORE}/{p}"));
        assert!(d.join("max_freq_khz").is_file() && d.join("elc_floor_freq_khz").is_file());
        assert!(!d.join("current_freq_khz").exists() && !d.join("package_id").exists());
    }
    // powercap: packages with dram, psys; 90–350 W per package.
    for (zone, name) in [
        ("intel-rapl:0", "package-0"),
        ("intel-rapl:0:0", "dram"),
        ("intel-rapl:1", "package-1"),
        ("intel-rapl:1:0", "dram"),
        ("intel-rapl:2", "psys"),
    ] {
        assert_eq!(read(r, &format!("sys/class/powercap/{zone}/name")), format!("{name}\n"));
    }
    assert_eq!(
        read(r, "sys/class/powercap/intel-rapl:0/constraint_0_power_limit_uw"),
        "350000000\n"
    );
    assert!(!r.join("dev/cpu").exists());
    node.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(node.true_power_watts(DomainId::new(DomainKind::Package, 1)), Some(220.0));
    assert_eq!(node.true_power_watts(DomainId::new(DomainKind::Memory, 0)), Some(30.0));
    assert_eq!(node.true_power_watts(DomainId::new(DomainKind::Platform, 0)), Some(560.0));
}

#[test]
fn server_profiles_have_what_frequency_pools_need() {
    for (profile, driver, idle) in [
        (Profile::Intel2s, "intel_pstate", "intel_idle"),
        (Profile::Amd2s, "amd-pstate-epp", "acpi_idle"),
    ] {
        let (dir, _node) = create(profile);
        let r = dir.path();
        assert_eq!(read(r, &format!("{CPU}/cpuidle/current_driver")), format!("{idle}\n"));
        for c in 0..16 {
            assert_eq!(read(r, &pol(c, "related_cpus")), format!("{c}\n"));
            assert_eq!(read(r, &pol(c, "affected_cpus")), format!("{c}\n"));
            assert_eq!(read(r, &pol(c, "scaling_driver")), format!("{driver}\n"));
            assert_eq!(read(r, &pol(c, "scaling_available_governors")), "performance powersave\n");
            assert_eq!(
                read(r, &pol(c, "energy_performance_available_preferences")),
                "default performance balance_performance balance_power power\n"
            );
            let st = format!("{CPU}/cpu{c}/cpuidle/state1");
            assert_eq!(read(r, &format!("{st}/default_status")), "enabled\n");
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(r.join(format!("{st}/disable"))).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
    }
}
