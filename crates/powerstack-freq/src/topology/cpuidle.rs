//! cpuidle: each online CPU's own C-states.

use std::collections::BTreeMap;
use std::path::Path;

use powerstack_hw::topology::sysfs::{Sysfs, numbered};

use super::CpuInfo;

/// One cpuidle state of a CPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdleState {
    /// K of `stateK`.
    pub index: u32,
    /// `name` (`POLL`, `C1`, `C1E`, `C6`).
    pub name: String,
    /// `desc`.
    pub desc: String,
    /// Exit latency, µs.
    pub latency_us: u64,
    /// Target residency, µs.
    pub residency_us: u64,
}
pub(super) fn discover_idle(
    ctx: &mut Sysfs<'_>,
    base: &Path,
    cpus: &[CpuInfo],
    driver: bool,
) -> BTreeMap<u32, Vec<IdleState>> {
    let mut out = BTreeMap::new();
    for cpu in cpus.iter().filter(|c| c.online) {
        let dir = base.join(format!("cpu{}/cpuidle", cpu.id));
        if !dir.is_dir() {
            if driver {
                ctx.warn(&dir, "missing: this CPU's C-states cannot be controlled");
            }
            continue;
        }
        let mut states = Vec::new();
        for (name, path) in ctx.list(&dir) {
            let Some(index) = numbered(&name, "state") else { continue };
            if !path.is_dir() {
                continue;
            }
            let name_path = path.join("name");
            let Some(state_name) = ctx.required(&name_path) else { continue };
            if state_name.is_empty() {
                ctx.warn(&name_path, "empty: state skipped");
                continue;
            }
            let desc = ctx.optional(&path.join("desc")).unwrap_or_default();
            let latency_us = ctx.req_num::<u64>(&path.join("latency")).unwrap_or(0);
            let residency_us = ctx.req_num::<u64>(&path.join("residency")).unwrap_or(0);
            states.push(IdleState { index, name: state_name, desc, latency_us, residency_us });
        }
        states.sort_by_key(|s| s.index);
        if !states.is_empty() {
            out.insert(cpu.id, states);
        }
    }
    out
}
