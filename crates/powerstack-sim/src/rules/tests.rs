//! The rules' unit tests.

use super::*;
use attr::{Attr, decide_pair, kstrtobool};

#[test]
fn a_shortening_write_caught_half_way_is_judged_by_its_first_line() {
    // "performance" written in place over "balance_performance": until the writer trims the
    // file, the stale tail of the longer value follows the newline.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("energy_performance_preference");
    std::fs::write(&path, "balance_performance\n").unwrap();
    let a = Attr::load(path.clone()).unwrap();
    std::fs::write(&path, "performance\nrformance\n").unwrap();
    assert_eq!(a.written().as_deref(), Some("performance"));
}

#[test]
fn a_write_landing_after_the_judgement_is_never_written_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("max_freq_khz");
    std::fs::write(&path, "2400000\n").unwrap();
    let mut a = Attr::load(path.clone()).unwrap();
    let read = || std::fs::read_to_string(&path).unwrap();
    // Judged (to be rounded down to 100 MHz), then written again before the rewrite.
    std::fs::write(&path, "2050000\n").unwrap();
    assert_eq!(a.written().as_deref(), Some("2050000"));
    std::fs::write(&path, "1900000\n").unwrap();
    a.accept("2000000".into()).unwrap();
    assert_eq!(read(), "1900000\n");
    // The same for a refusal, and for a value the kernel sets itself.
    std::fs::write(&path, "9000000\n").unwrap();
    let w = a.written().unwrap();
    std::fs::write(&path, "1800000\n").unwrap();
    a.refuse(&mut Vec::new(), "package_00_die_00", &w, "outside").unwrap();
    assert_eq!(read(), "1800000\n");
    a.force("1700000").unwrap();
    assert_eq!(read(), "1800000\n");
    // Untouched since judged: rewritten.
    let w = a.written().unwrap();
    assert_eq!(w, "1800000");
    a.accept("1800000".into()).unwrap();
    a.force("1700000").unwrap();
    assert_eq!(read(), "1700000\n");
}

#[test]
fn pairs_are_decided_like_the_kernel_would_in_order() {
    let names = ("min", "max");
    // Both at once when ordered, even if max first would not be.
    assert_eq!(
        decide_pair((Some(3000), Some(3500)), 1000, 2000, names),
        (Some(Ok(3000)), Some(Ok(3500)))
    );
    // Max first, then min against the new max.
    assert_eq!(
        decide_pair((Some(2500), Some(2000)), 1000, 3000, names),
        (Some(Err("above max 2000".into())), Some(Ok(2000)))
    );
    assert_eq!(
        decide_pair((None, Some(500)), 1000, 3000, names),
        (None, Some(Err("below min 1000".into())))
    );
}

#[test]
fn without_inotify_every_call_reads_everything() {
    let dir = tempfile::tempdir().unwrap();
    let pol = dir.path().join(CPU).join("cpufreq/policy0");
    std::fs::create_dir_all(&pol).unwrap();
    for (f, v) in [
        ("related_cpus", "0"),
        ("affected_cpus", "0"),
        ("scaling_driver", "intel_pstate"),
        ("cpuinfo_min_freq", "1000000"),
        ("cpuinfo_max_freq", "3000000"),
        ("scaling_available_governors", "performance powersave"),
        ("scaling_min_freq", "1000000"),
        ("scaling_max_freq", "3000000"),
        ("scaling_governor", "powersave"),
        ("scaling_cur_freq", "2000000"),
    ] {
        std::fs::write(pol.join(f), format!("{v}\n")).unwrap();
    }
    let mut rules = Rules::load(dir.path());
    assert!(rules.watch.is_some(), "inotify works here");
    assert!(rules.enforce().unwrap().is_empty());
    rules.watch = None;
    std::fs::write(pol.join("scaling_max_freq"), "4000000").unwrap();
    let e = rules.enforce().unwrap();
    assert_eq!(e, ["cpu0 scaling_max_freq 4000000 outside 1000000..3000000: restored 3000000"]);
    assert_eq!(std::fs::read_to_string(pol.join("scaling_max_freq")).unwrap(), "3000000\n");
}

#[test]
fn booleans_follow_kstrtobool() {
    for (v, b) in [("1", true), ("y", true), ("on", true), ("0", false), ("N", false)] {
        assert_eq!(kstrtobool(v), Some(b), "{v}");
    }
    for v in ["2", "", "o", "true", "-1"] {
        assert_eq!(kstrtobool(v), None, "{v}");
    }
}
