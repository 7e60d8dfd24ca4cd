//! HPE Cray `pm_counters` (cray-ex, and amd-mi250x's node): a power and an energy file per
//! component, the controller's `freshness`/`generation`/`startup`, and the node and accelerator
//! caps.

use powerstack_model::{DomainId, DomainKind};

use super::UNIX_START_US;
use crate::error::SimError;
use crate::io::{CapRole, Control, CtlKind, Device, Io};
use crate::model::{CRAY_ACCELS, Key};
use crate::msr::Shared;
use crate::options::SimOptions;
use crate::pm::{PmComp, PmCounters};
use crate::profile::Profile;
use crate::tree::{B, NUMBER_WIDTH, ck};

/// The `pm_counters` directory.
const PM_DIR: &str = "sys/cray/pm_counters";

/// The width of a pm_counters value file (`<value> <unit> <timestamp> us`): a 20-digit value and
/// a 16-digit timestamp.
const PM_WIDTH: usize = 44;

/// Writes the `pm_counters` of `profile` and the controller that updates them.
pub(super) fn build(
    b: &B<'_>,
    profile: Profile,
    opts: &SimOptions,
    s: &Shared,
    io: &mut Io,
) -> Result<(), SimError> {
    let ts = UNIX_START_US;
    // (component, domain removable by `remove_device`, file prefix, initial joules)
    let mut names: Vec<(Key, Option<DomainId>, String, u64)> = vec![
        (Key::Domain(DomainId::NODE), Some(DomainId::NODE), String::new(), 5_123_456),
        (
            Key::Domain(DomainId::new(DomainKind::Package, 0)),
            Some(DomainId::new(DomainKind::Package, 0)),
            "cpu_".into(),
            1_234_567,
        ),
        (
            Key::Domain(DomainId::new(DomainKind::Memory, 0)),
            Some(DomainId::new(DomainKind::Memory, 0)),
            "memory_".into(),
            234_567,
        ),
    ];
    for k in 0..CRAY_ACCELS {
        // amd-mi250x: accelK is module K (its GPU numbers are the GCDs, removed through hwmon).
        let (key, removable) = if profile == Profile::AmdMi250x {
            (Key::Module(k), None)
        } else {
            let id = DomainId::new(DomainKind::Gpu, k);
            (Key::Domain(id), Some(id))
        };
        names.push((key, removable, format!("accel{k}_"), 987_654 + 11_111 * u64::from(k)));
    }
    let mut comps = Vec::new();
    for (key, removable, prefix, offset) in names {
        let comp = ck(s, key);
        let w = s.comps.get(comp).map_or(0.0, |c| c.power);
        let (pr, er) = (format!("{PM_DIR}/{prefix}power"), format!("{PM_DIR}/{prefix}energy"));
        let power =
            b.counter(&pr, &format!("{} W {ts} us\n", w.round() as u64), 0o444, PM_WIDTH)?;
        let energy = b.counter(&er, &format!("{offset} J {ts} us\n"), 0o444, PM_WIDTH)?;
        io.devices.push(Device {
            ids: removable.into_iter().collect(),
            truncate: vec![b.p(&pr), b.p(&er)],
            remove: vec![b.p(&pr), b.p(&er)],
            removed: false,
        });
        comps.push(PmComp { comp, power, energy, offset_j: offset, since: 0.0 });
    }
    let startup_us = ts - 86_400_000_000;
    let control = [
        b.counter(&format!("{PM_DIR}/freshness"), "1\n", 0o444, NUMBER_WIDTH)?,
        b.counter(&format!("{PM_DIR}/generation"), "1\n", 0o444, NUMBER_WIDTH)?,
        b.counter(&format!("{PM_DIR}/startup"), &format!("{startup_us}\n"), 0o444, NUMBER_WIDTH)?,
    ];
    io.pm = Some(PmCounters::new(comps, control, startup_us, opts.pm_faults, ts * 1000));
    for (name, role) in [("power_cap", CapRole::Node), ("accel_power_cap", CapRole::Accel)] {
        let f = b.out(&format!("{PM_DIR}/{name}"), "0 W\n", 0o644)?;
        io.controls.push(Control::new(role, CtlKind::PmWatts, f, 0));
    }
    b.file(&format!("{PM_DIR}/raw_scan_hz"), "10\n", 0o444)?;
    b.file(&format!("{PM_DIR}/version"), "2\n", 0o444)?;
    Ok(())
}
