//! The one reader of the node's CPUs: every `cpuN` directory, online or not, with its package,
//! die, core, SMT siblings and capacity as the kernel gives them.

use std::collections::BTreeSet;
use std::path::Path;

use powerstack_model::cpulist::{format_cpulist, parse_cpulist};

use super::Cpu;
use super::sysfs::{Sysfs, numbered};
use crate::file::list_dir;

/// What [`read_cpus`] found, and the two failures that leave the CPU list unsure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuScan {
    /// Every CPU found, by number.
    pub cpus: Vec<Cpu>,
    /// Why the online list could not be parsed, when it could not (each CPU's own `online`
    /// file decides then).
    pub online_list_error: Option<String>,
    /// Why the CPU directory could not be listed, when it could not (no CPUs then).
    pub list_error: Option<String>,
}

/// Reads every CPU under `base` (`/sys/devices/system/cpu` under the root): the online list as a
/// kernel CPU list (any form, `0-3,8,10-11`), checked against each CPU's own `online` file, and
/// each CPU's topology. An offline CPU without a topology directory has no package, die or core
/// (`None`): unknown, never 0. What cannot be read is a warning in `sysfs`, never a failure.
pub fn read_cpus(sysfs: &mut Sysfs<'_>, base: &Path) -> CpuScan {
    let mut scan = CpuScan::default();
    let online_path = base.join("online");
    let online_list: Option<BTreeSet<u32>> = match sysfs.optional(&online_path) {
        Some(text) => match parse_cpulist(&text) {
            Ok(v) => Some(v.into_iter().collect()),
            Err(e) => {
                scan.online_list_error = Some(e.to_string());
                sysfs.warn(&online_path, e);
                None
            }
        },
        None => None,
    };
    let entries = match list_dir(base) {
        Ok(v) => v,
        Err(e) => {
            scan.list_error = Some(e.to_string());
            sysfs.warn_err(base, &e);
            Vec::new()
        }
    };
    for (name, dir) in entries {
        let Some(id) = numbered(&name, "cpu") else { continue };
        if !dir.is_dir() {
            continue;
        }
        let online = read_online(sysfs, id, &dir, &online_path, online_list.as_ref());
        scan.cpus.push(read_cpu(sysfs, id, online, &dir));
    }
    scan.cpus.sort_by_key(|c| c.id);
    if scan.cpus.is_empty() {
        sysfs.warn(base, "no cpuN directories: no CPUs found");
    } else if let Some(list) = &online_list {
        let missing: Vec<u32> = list
            .iter()
            .copied()
            .filter(|id| scan.cpus.binary_search_by_key(id, |c| c.id).is_err())
            .collect();
        if !missing.is_empty() {
            sysfs.warn(
                &online_path,
                format!("lists CPUs {} that have no cpuN directory", format_cpulist(&missing)),
            );
        }
    }
    scan
}

/// Whether CPU `id` is online: the online list when there is one (a CPU's own `online` file that
/// disagrees is a warning), else its own file, else online (CPU 0 usually has no `online` file:
/// it cannot be taken offline).
fn read_online(
    sysfs: &mut Sysfs<'_>,
    id: u32,
    dir: &Path,
    online_path: &Path,
    online_list: Option<&BTreeSet<u32>>,
) -> bool {
    let own_path = dir.join("online");
    let own = match sysfs.optional(&own_path).as_deref() {
        None => None,
        Some("1") => Some(true),
        Some("0") => Some(false),
        Some(other) => {
            sysfs.warn(&own_path, format!("expected 0 or 1, found {other:?}"));
            None
        }
    };
    match online_list {
        Some(list) => {
            let on = list.contains(&id);
            if own.is_some_and(|o| o != on) {
                let listed = if on { "online" } else { "offline" };
                let shown = sysfs.show(online_path);
                sysfs.warn(
                    &own_path,
                    format!("disagrees with {shown} (cpu{id} {listed}); using the list"),
                );
            }
            on
        }
        None => own.unwrap_or(true),
    }
}

/// One CPU's topology and capacity.
fn read_cpu(sysfs: &mut Sysfs<'_>, id: u32, online: bool, dir: &Path) -> Cpu {
    let topo = dir.join("topology");
    let (package, die, core, siblings) = if topo.is_dir() {
        let package = sysfs.req_num::<u32>(&topo.join("physical_package_id"));
        let die_path = topo.join("die_id");
        let die = if die_path.exists() { sysfs.req_num::<u32>(&die_path) } else { Some(0) };
        let core = sysfs.req_num::<u32>(&topo.join("core_id"));
        let mut siblings = None;
        for f in ["thread_siblings_list", "core_cpus_list"] {
            let p = topo.join(f);
            if let Some(text) = sysfs.optional(&p) {
                siblings = sysfs.cpulist(&p, &text);
                break;
            }
        }
        let mut siblings = siblings.unwrap_or_else(|| vec![id]);
        if !siblings.contains(&id) {
            siblings.push(id);
            siblings.sort_unstable();
        }
        (package, die, core, siblings)
    } else {
        if online {
            sysfs.warn(&topo, "missing on an online CPU: its package, die and core are unknown");
        }
        (None, None, None, vec![id])
    };
    let capacity = sysfs.opt_num::<u32>(&dir.join("cpu_capacity"));
    Cpu { id, online, package, die, core, siblings, capacity }
}
