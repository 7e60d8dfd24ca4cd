//! The limit and cap files when others write them while the simulator syncs.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::profile::Profile;
use crate::rapl::limit_reg;

const LIMIT: &str = "constraint_0_power_limit_uw";

/// Package 0's zone (PL1 150 W, PL2 180 W, both enabled) with its register in the model.
fn package_zone(dir: &Path, locked: bool) -> (LimitSync, Shared) {
    let mut reg = limit_reg(150, true, 0x0A, Some((180, true, 0x01)));
    if locked {
        reg |= 1 << lock_bit(0x610);
    }
    let key = (0, 0x610);
    let shared = Shared {
        root: dir.to_path_buf(),
        profile: Profile::Intel2s,
        comps: Vec::new(),
        counters: Vec::new(),
        regs: BTreeMap::from([(key, Reg::Rw(reg))]),
        dirty: BTreeSet::new(),
    };
    let z = ZoneLimits::decode(reg, 2);
    let out = |name: &str, v: u64| OutFile::create(dir.join(name), &format!("{v}\n"), 0o644);
    let sync = LimitSync {
        role: CapRole::Package(0),
        reg: RegRef::Msr(key),
        n: 2,
        enabled: out("enabled", u64::from(z.enabled)).unwrap(),
        limit: vec![
            out(LIMIT, z.c[0].limit_uw).unwrap(),
            out("constraint_1_power_limit_uw", z.c[1].limit_uw).unwrap(),
        ],
        window: vec![
            out("constraint_0_time_window_us", z.c[0].window_us).unwrap(),
            out("constraint_1_time_window_us", z.c[1].window_us).unwrap(),
        ],
        last: z,
    };
    (sync, shared)
}

/// One sync with `content` written to `path` by someone else between resolve and apply.
fn sync_racing(l: &mut LimitSync, s: &mut Shared, path: &Path, content: &str) {
    let r = l.resolve(s);
    std::fs::write(path, content).unwrap();
    l.apply(s, &r).unwrap();
}

fn sync(l: &mut LimitSync, s: &mut Shared) -> ZoneLimits {
    let r = l.resolve(s);
    l.apply(s, &r).unwrap();
    r.target
}

#[test]
fn a_limit_written_between_resolve_and_apply_is_kept_and_taken_next() {
    let dir = tempfile::tempdir().unwrap();
    let (mut l, mut s) = package_zone(dir.path(), false);
    let path = dir.path().join(LIMIT);
    // Another process writes while the simulator is between reading the files and
    // rewriting them: its write is neither undone nor lost.
    sync_racing(&mut l, &mut s, &path, "90000000\n");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "90000000\n");
    assert_eq!(sync(&mut l, &mut s).c[0].limit_uw, 90_000_000);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "90000000\n");
}

#[test]
fn only_values_the_register_cannot_hold_are_rewritten_and_only_while_still_there() {
    let dir = tempfile::tempdir().unwrap();
    let (mut l, mut s) = package_zone(dir.path(), false);
    let path = dir.path().join(LIMIT);
    let read = || std::fs::read_to_string(&path).unwrap();
    // Quantised to the 1/8 W power unit, and shown so.
    std::fs::write(&path, "90100000\n").unwrap();
    assert_eq!(sync(&mut l, &mut s).c[0].limit_uw, 90_000_000);
    assert_eq!(read(), "90000000\n");
    // Not a number: the limit in force is shown again.
    std::fs::write(&path, "lots\n").unwrap();
    sync(&mut l, &mut s);
    assert_eq!(read(), "90000000\n");
    // An empty file is a write in progress: left alone.
    std::fs::write(&path, "").unwrap();
    sync(&mut l, &mut s);
    assert_eq!(read(), "");
    // A value needing a rewrite, replaced by a valid one before the rewrite: the valid one
    // stays, and is taken at the next sync.
    std::fs::write(&path, "70100000\n").unwrap();
    sync_racing(&mut l, &mut s, &path, "80000000\n");
    assert_eq!(read(), "80000000\n");
    assert_eq!(sync(&mut l, &mut s).c[0].limit_uw, 80_000_000);
}

#[test]
fn a_locked_register_reverts_the_file_unless_written_again_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let (mut l, mut s) = package_zone(dir.path(), true);
    let path = dir.path().join(LIMIT);
    std::fs::write(&path, "50000000\n").unwrap();
    assert_eq!(sync(&mut l, &mut s).c[0].limit_uw, 150_000_000);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "150000000\n");
    std::fs::write(&path, "50000000\n").unwrap();
    sync_racing(&mut l, &mut s, &path, "60000000\n");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "60000000\n");
    // Judged at the next sync: refused too.
    assert_eq!(sync(&mut l, &mut s).c[0].limit_uw, 150_000_000);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "150000000\n");
}

#[test]
fn a_cap_written_while_the_simulator_normalises_the_file_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("power1_cap");
    let file = OutFile::create(path.clone(), "0\n", 0o644).unwrap();
    let kind =
        CtlKind::Microwatts { min: 10_000_000, max: 300_000_000, quantum: 1_000_000, round: false };
    let mut c = Control::new(CapRole::Gpu, kind, file, 0);
    std::fs::write(&path, "100500000\n").unwrap();
    let (seen, v) = c.judge();
    std::fs::write(&path, "120000000\n").unwrap();
    c.settle(seen, v).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "120000000\n");
    assert_eq!(c.sync().unwrap(), 120_000_000);
    // Alone, the same write is truncated to the driver's step and shown so.
    std::fs::write(&path, "100500000\n").unwrap();
    assert_eq!(c.sync().unwrap(), 100_000_000);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "100000000\n");
}

#[test]
fn a_shortening_write_caught_half_way_is_taken_and_never_rewritten() {
    // Writing 90 W over 150 W in place (`pwrite`, then `set_len`) shows "90000000\n\n" for a
    // moment. That is the new value, not one to normalise: rewriting the file then raced the
    // writer (a simulator delayed between its last check and its write put 90 W back over the
    // writer's next write, 150 W, once in a few CI runs).
    let dir = tempfile::tempdir().unwrap();
    let (mut l, mut s) = package_zone(dir.path(), false);
    let path = dir.path().join(LIMIT);
    std::fs::write(&path, "90000000\n\n").unwrap();
    assert_eq!(sync(&mut l, &mut s).c[0].limit_uw, 90_000_000);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "90000000\n\n", "left to its writer");
    // Nor a cap file.
    let cap = dir.path().join("power1_cap");
    let file = OutFile::create(cap.clone(), "300000000\n", 0o644).unwrap();
    let kind =
        CtlKind::Microwatts { min: 10_000_000, max: 300_000_000, quantum: 1_000_000, round: false };
    let mut c = Control::new(CapRole::Gpu, kind, file, 300_000_000);
    std::fs::write(&cap, "90000000\n0\n").unwrap();
    assert_eq!(c.sync().unwrap(), 90_000_000);
    assert_eq!(std::fs::read_to_string(&cap).unwrap(), "90000000\n0\n");
}
