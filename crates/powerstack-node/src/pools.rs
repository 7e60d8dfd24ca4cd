//! The frequency pools documents (`powerstack.pools.v1`, `powerstack.pools-change.v1`) built
//! from a pools session: what `pools show` and `pools capabilities` answer, and what a change
//! (apply, create, delete, move, set-profile, reset) reports.

use std::path::Path;

use powerstack_api::Origin;
use powerstack_api::pools::{
    DriftV1, POOLS_CHANGE_SCHEMA, POOLS_SCHEMA, PolicyStateV1, PoolV1, PoolsChangeV1, PoolsV1,
    SettingWriteV1, UncoreStateV1,
};
use powerstack_api::v1::HeaderV1;
use powerstack_freq::{Assignment, FreqError, FreqTopology, Live, Policy, Pools, PoolsFile, State};
use powerstack_model::cpulist::format_cpulist;

/// The pools of `file` and their CPUs on this node (none without a file, or when the file no
/// longer fits the node).
pub fn pool_list(pools: &Pools<'_>, file: Option<&PoolsFile>) -> Vec<PoolV1> {
    let Some(file) = file else { return Vec::new() };
    let Ok(assignment) = powerstack_freq::plan::assign(pools.topology(), file) else {
        return Vec::new();
    };
    let cpus_of = |name: &str| {
        let ids: Vec<u32> =
            assignment.iter().filter(|(_, p)| p.to_string() == name).map(|(c, _)| *c).collect();
        format_cpulist(&ids)
    };
    let mut out = vec![
        PoolV1 {
            name: "reserved".into(),
            kind: "reserved".into(),
            cpus: cpus_of("reserved"),
            profile: None,
        },
        PoolV1 {
            name: "shared".into(),
            kind: "shared".into(),
            cpus: cpus_of("shared"),
            profile: file.shared.profile.clone(),
        },
    ];
    out.extend(file.exclusive.iter().map(|p| PoolV1 {
        name: p.name.clone(),
        kind: "exclusive".into(),
        cpus: cpus_of(&p.name),
        profile: p.profile.clone(),
    }));
    out
}

/// What a change did (or, on a dry run, would do): its writes, the pools of `file` after it
/// (none for a reset), and what was recovered from an interrupted run first.
pub fn change_document(
    origin: &Origin,
    pools: &Pools<'_>,
    command: &str,
    dry_run: bool,
    writes: &[powerstack_freq::Write],
    file: Option<&PoolsFile>,
    recovered: Vec<String>,
) -> PoolsChangeV1 {
    PoolsChangeV1 {
        header: HeaderV1::new(POOLS_CHANGE_SCHEMA, origin),
        command: command.to_string(),
        dry_run,
        writes: writes
            .iter()
            .map(|w| SettingWriteV1 {
                what: w.what.clone(),
                path: w.path.clone(),
                before: w.current.clone(),
                after: w.value.clone(),
            })
            .collect(),
        pools: pool_list(pools, file),
        recovered,
    }
}

/// What `pools show` answers: the capability report, the pools in force, each policy's and
/// uncore domain's settings now, and the drift from the configuration in force. With
/// `capabilities_only`, the capability report alone (`pools capabilities`).
pub fn show_document(
    origin: &Origin,
    pools: &Pools<'_>,
    capabilities_only: bool,
) -> Result<PoolsV1, FreqError> {
    let topo = pools.topology();
    let mut warnings: Vec<String> = topo.warnings.clone();
    if let Some(p) = pools.journal().and_then(|j| j.in_progress()) {
        warnings.push(format!(
            "a previous run (pid {}, {}) was interrupted while writing; the next pools or cap change restores the originals",
            p.pid, p.via
        ));
    }
    let stored = pools.stored()?;
    let (drift, assignment) = match &stored {
        Some(f) => match pools.plan(f) {
            Ok(plan) => (drift_of(&plan.writes), Some(plan.assignment)),
            Err(e) => {
                warnings.push(format!("the configuration in force no longer fits this node: {e}"));
                (Vec::new(), None)
            }
        },
        None => (Vec::new(), None),
    };
    let live = Live::new(pools.root(), pools.journal());
    let settings = Settings { topo, base: pools.root().base(), live: &live };
    let (policies, uncore) = if capabilities_only {
        (Vec::new(), Vec::new())
    } else {
        let policies = topo.policies.iter().map(|p| settings.policy(p, assignment.as_ref()));
        (policies.collect(), settings.uncore())
    };
    Ok(PoolsV1 {
        header: HeaderV1::new(POOLS_SCHEMA, origin),
        configured: stored.is_some(),
        capabilities: topo.capability_report(),
        pools: if capabilities_only { Vec::new() } else { pool_list(pools, stored.as_ref()) },
        policies,
        uncore,
        drift,
        warnings,
    })
}

/// The writes that would make sysfs match the configuration in force, as drift.
fn drift_of(writes: &[powerstack_freq::Write]) -> Vec<DriftV1> {
    writes
        .iter()
        .map(|w| DriftV1 {
            what: w.what.clone(),
            actual: w.current.clone(),
            expected: w.value.clone(),
        })
        .collect()
}

/// Reads the settings in force now.
struct Settings<'a> {
    topo: &'a FreqTopology,
    base: &'a Path,
    live: &'a Live<'a>,
}

impl Settings<'_> {
    /// An attribute of a directory under the root, as a path relative to the root.
    fn rel(&self, dir: &Path, attr: &str) -> String {
        let d = dir.strip_prefix(self.base).unwrap_or(dir);
        format!("{}/{attr}", d.to_string_lossy().trim_start_matches('/'))
    }

    fn khz(&self, dir: &Path, attr: &str) -> Option<u64> {
        self.live.current(&self.rel(dir, attr)).and_then(|v| v.parse().ok())
    }

    /// A policy's settings, read through its first online CPU (its pool, core type, C-states).
    fn policy(&self, p: &Policy, assignment: Option<&Assignment>) -> PolicyStateV1 {
        let topo = self.topo;
        let first = p.cpus.iter().copied().find(|c| topo.cpu(*c).is_some_and(|i| i.online));
        PolicyStateV1 {
            policy: p.id,
            cpus: format_cpulist(&p.cpus),
            pool: first.and_then(|c| assignment.and_then(|a| a.get(&c)).map(|x| x.to_string())),
            core_type: first
                .and_then(|c| topo.cpu(c))
                .map(|c| c.core_type.as_str().to_string())
                .unwrap_or_else(|| "uniform".into()),
            governor: self.live.current(&self.rel(&p.dir, "scaling_governor")),
            min_khz: self.khz(&p.dir, "scaling_min_freq"),
            max_khz: self.khz(&p.dir, "scaling_max_freq"),
            epp: p.epp_choices.as_ref().and_then(|_| {
                self.live.current(&self.rel(&p.dir, "energy_performance_preference"))
            }),
            disabled_cstates: first.map(|c| self.disabled_cstates(c)).unwrap_or_default(),
        }
    }

    /// The C-states disabled on `cpu`, by name.
    fn disabled_cstates(&self, cpu: u32) -> Vec<String> {
        let Some(states) = self.topo.idle_states.get(&cpu) else { return Vec::new() };
        states
            .iter()
            .filter(|s| {
                let disable =
                    format!("sys/devices/system/cpu/cpu{cpu}/cpuidle/state{}/disable", s.index);
                self.live.current(&disable).as_deref() == Some("1")
            })
            .map(|s| s.name.clone())
            .collect()
    }

    /// Each uncore domain's limits.
    fn uncore(&self) -> Vec<UncoreStateV1> {
        self.topo
            .uncore
            .iter()
            .map(|u| UncoreStateV1 {
                name: u.name.clone(),
                package: u.package,
                min_khz: self.khz(&u.dir, "min_freq_khz"),
                max_khz: self.khz(&u.dir, "max_freq_khz"),
            })
            .collect()
    }
}
