//! From a pools file to the exact sysfs writes, in a safe order: validate everything first.
//!
//! Every online CPU belongs to exactly one pool: reserved (listed), an exclusive pool (listed), or
//! shared (the rest). Reserved CPUs, and CPUs of a pool without a profile, keep their boot-time
//! settings: if powerstack changed them before, the planner writes the recorded originals back.
//! Settings are written per cpufreq policy (all its CPUs share them), C-states per CPU, uncore
//! per domain. Only values that differ from what is in sysfs now are written, so applying the
//! same file twice writes nothing the second time.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use powerstack_model::cpulist::{format_cpulist, parse_cpulist};

use crate::FreqError;
use crate::config::{KhzRange, PoolsFile, ProfileSpec};
use crate::topology::{CoreType, FreqTopology, Policy};

/// A pool, by kind and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PoolRef {
    /// The reserved pool.
    Reserved,
    /// The shared pool.
    Shared,
    /// An exclusive pool, by name.
    Exclusive(String),
}

impl fmt::Display for PoolRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolRef::Reserved => f.write_str("reserved"),
            PoolRef::Shared => f.write_str("shared"),
            PoolRef::Exclusive(n) => f.write_str(n),
        }
    }
}

/// Which pool every online CPU is in.
pub type Assignment = BTreeMap<u32, PoolRef>;

/// One sysfs write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// The attribute, relative to the root.
    pub path: String,
    /// The value to write.
    pub value: String,
    /// What is in sysfs now.
    pub current: String,
    /// For people: `policy3 scaling_max_freq`, `cpu5 C6 disable`, `uncore00 max_freq_khz`.
    pub what: String,
}

/// The result of planning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Which pool every online CPU ends up in.
    pub assignment: Assignment,
    /// The writes, in the order to make them.
    pub writes: Vec<Write>,
}

/// Reads an attribute's current value and its boot-time value (the journal's original when
/// powerstack wrote it before, else the current value). Paths are relative to the root.
pub trait State {
    /// The current first line of the attribute, `None` when unreadable.
    fn current(&self, path: &str) -> Option<String>;
    /// The value before powerstack first wrote the attribute, if it did.
    fn original(&self, path: &str) -> Option<String>;
    /// The boot-time value: the original when journaled, else the current one.
    fn boot(&self, path: &str) -> Option<String> {
        self.original(path).or_else(|| self.current(path))
    }
}

fn invalid(msg: impl Into<String>) -> FreqError {
    FreqError::Invalid(msg.into())
}

const RESERVED_NAMES: [&str; 2] = ["reserved", "shared"];

/// Decides which pool every online CPU is in, checking the file's CPU lists and names.
pub fn assign(topo: &FreqTopology, file: &PoolsFile) -> Result<Assignment, FreqError> {
    let known: BTreeSet<u32> = topo.cpus.iter().map(|c| c.id).collect();
    let online: BTreeSet<u32> = topo.online_cpus().into_iter().collect();
    let list = |pool: &str, text: &str| -> Result<Vec<u32>, FreqError> {
        let cpus = parse_cpulist(text).map_err(|e| invalid(format!("pool {pool}: cpus: {e}")))?;
        for c in &cpus {
            if !known.contains(c) {
                return Err(invalid(format!(
                    "pool {pool}: cpu {c} does not exist on this node (CPUs {})",
                    format_cpulist(&known.iter().copied().collect::<Vec<_>>())
                )));
            }
            if !online.contains(c) {
                return Err(invalid(format!(
                    "pool {pool}: cpu {c} is offline; bring it online or leave it out"
                )));
            }
        }
        Ok(cpus)
    };
    let mut assignment = Assignment::new();
    let mut place = |cpu: u32, pool: PoolRef| -> Result<(), FreqError> {
        if let Some(other) = assignment.get(&cpu) {
            return Err(invalid(format!("cpu {cpu} is in two pools: {other} and {pool}")));
        }
        assignment.insert(cpu, pool);
        Ok(())
    };
    for c in list("reserved", &file.reserved.cpus)? {
        place(c, PoolRef::Reserved)?;
    }
    let mut names = BTreeSet::new();
    for p in &file.exclusive {
        if p.name.is_empty() || RESERVED_NAMES.contains(&p.name.as_str()) {
            return Err(invalid(format!("exclusive pool name {:?} is not allowed", p.name)));
        }
        if !names.insert(p.name.as_str()) {
            return Err(invalid(format!("exclusive pool {} is defined twice", p.name)));
        }
        for c in list(&p.name, &p.cpus)? {
            place(c, PoolRef::Exclusive(p.name.clone()))?;
        }
    }
    for c in online {
        assignment.entry(c).or_insert(PoolRef::Shared);
    }
    Ok(assignment)
}

/// Checks the moves between two assignments against the pool rules: reserved ↔ shared and shared
/// ↔ exclusive only (a reserved CPU cannot go straight to an exclusive pool, nor an exclusive CPU
/// to another exclusive pool or to reserved).
pub fn check_moves(before: &Assignment, after: &Assignment) -> Result<(), FreqError> {
    for (cpu, to) in after {
        let Some(from) = before.get(cpu) else { continue };
        let ok = match (from, to) {
            (a, b) if a == b => true,
            (PoolRef::Reserved, PoolRef::Shared) | (PoolRef::Shared, PoolRef::Reserved) => true,
            (PoolRef::Shared, PoolRef::Exclusive(_)) | (PoolRef::Exclusive(_), PoolRef::Shared) => {
                true
            }
            _ => false,
        };
        if !ok {
            let hint = match (from, to) {
                (PoolRef::Reserved, PoolRef::Exclusive(_)) => "move it to the shared pool first",
                (PoolRef::Exclusive(_), _) => "move it back to the shared pool first",
                _ => "moves go reserved <-> shared <-> exclusive",
            };
            return Err(invalid(format!(
                "cpu {cpu} cannot move from pool {from} to pool {to} directly: {hint}"
            )));
        }
    }
    Ok(())
}

/// The profile of a pool, by name, if it has one.
fn profile_of<'a>(
    file: &'a PoolsFile,
    pool: &PoolRef,
) -> Result<Option<(&'a str, &'a ProfileSpec)>, FreqError> {
    let name = match pool {
        PoolRef::Reserved => return Ok(None),
        PoolRef::Shared => file.shared.profile.as_deref(),
        PoolRef::Exclusive(n) => file.exclusive(n).and_then(|p| p.profile.as_deref()),
    };
    let Some(name) = name else { return Ok(None) };
    let spec = file.profiles.get(name).ok_or_else(|| {
        let known: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
        invalid(format!(
            "pool {pool}: profile {name:?} is not defined (profiles: {})",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        ))
    })?;
    Ok(Some((name, spec)))
}

/// Relative path of an attribute of a directory under the root.
fn rel(topo_root: &std::path::Path, dir: &std::path::Path, attr: &str) -> String {
    let d = dir.strip_prefix(topo_root).unwrap_or(dir);
    let d = d.to_string_lossy();
    let d = d.trim_start_matches('/');
    format!("{d}/{attr}")
}

/// Plans the writes that make sysfs match `file`. `previous` is the assignment in force (the last
/// file applied), for the move rules. `root` is the hardware root's base directory.
pub fn plan(
    topo: &FreqTopology,
    root: &std::path::Path,
    file: &PoolsFile,
    previous: Option<&Assignment>,
    state: &dyn State,
) -> Result<Plan, FreqError> {
    let assignment = assign(topo, file)?;
    if let Some(before) = previous {
        check_moves(before, &assignment)?;
    }
    // Profiles used must exist; every profile is checked against every policy it would touch.
    for p in &file.exclusive {
        profile_of(file, &PoolRef::Exclusive(p.name.clone()))?;
    }
    profile_of(file, &PoolRef::Shared)?;
    for (name, spec) in &file.profiles {
        for key in spec.core_types.keys() {
            if !["p_core", "e_core"].contains(&key.as_str()) {
                return Err(invalid(format!(
                    "profile {name}: core_types.{key}: core types are p_core and e_core"
                )));
            }
            if !topo.capabilities.hybrid {
                return Err(invalid(format!(
                    "profile {name}: core_types.{key}: this node is not hybrid (no P-cores and E-cores)"
                )));
            }
        }
    }

    let mut writes = Vec::new();
    for policy in &topo.policies {
        let online: Vec<u32> =
            policy.cpus.iter().copied().filter(|c| assignment.contains_key(c)).collect();
        let Some(&first) = online.first() else { continue };
        let pool = &assignment[&first];
        if let Some(c) = online.iter().find(|c| &assignment[*c] != pool) {
            return Err(invalid(format!(
                "cpu {first} (pool {pool}) and cpu {c} (pool {}) share cpufreq policy{}: frequency is set per policy, so they must be in the same pool",
                assignment[c], policy.id
            )));
        }
        let core_type = topo.cpu(first).map(|c| c.core_type).unwrap_or(CoreType::Uniform);
        let profile = profile_of(file, pool)?;
        plan_policy(root, policy, pool, profile, core_type, state, &mut writes)?;
    }
    for (&cpu, pool) in &assignment {
        let profile = profile_of(file, pool)?;
        plan_cstates(topo, cpu, pool, profile, state, &mut writes)?;
    }
    plan_uncore(topo, root, file, state, &mut writes)?;
    Ok(Plan { assignment, writes })
}

fn plan_policy(
    root: &std::path::Path,
    policy: &Policy,
    pool: &PoolRef,
    profile: Option<(&str, &ProfileSpec)>,
    core_type: CoreType,
    state: &dyn State,
    writes: &mut Vec<Write>,
) -> Result<(), FreqError> {
    let path = |a: &str| rel(root, &policy.dir, a);
    let who = |field: &str| match profile {
        Some((name, _)) => format!("pool {pool}, profile {name}, {field} (policy{})", policy.id),
        None => format!("pool {pool} {field} (policy{})", policy.id),
    };
    let spec = profile.map(|p| p.1);
    let range = khz_range(spec, core_type);
    let gov_path = path("scaling_governor");
    let governor = policy_governor(policy, spec, &gov_path, state, &who)?;
    // Frequencies.
    let khz = |p: &str| state.boot(p).and_then(|v| v.parse::<u64>().ok());
    let min_path = path("scaling_min_freq");
    let max_path = path("scaling_max_freq");
    let min = range.min_khz.or_else(|| khz(&min_path));
    let max = range.max_khz.or_else(|| khz(&max_path));
    for (field, v) in [("min_khz", range.min_khz), ("max_khz", range.max_khz)] {
        if let Some(v) = v
            && !(policy.cpuinfo_min_khz..=policy.cpuinfo_max_khz).contains(&v)
        {
            return Err(invalid(format!(
                "{}: {v} kHz is outside the hardware range {}..{} kHz",
                who(field),
                policy.cpuinfo_min_khz,
                policy.cpuinfo_max_khz
            )));
        }
    }
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        return Err(invalid(format!("{}: min_khz {lo} is above max_khz {hi}", who("min_khz"))));
    }
    let epp_path = path("energy_performance_preference");
    let epp = policy_epp(policy, spec, &governor, &epp_path, state, &who)?;

    let mut push = |p: String, value: String, attr: &str| {
        let current = state.current(&p).unwrap_or_default();
        if current != value {
            writes.push(Write {
                path: p,
                value,
                current,
                what: format!("policy{} {attr}", policy.id),
            });
        }
    };
    // Governor before EPP (a governor change can reset EPP); raise max before min going up, lower
    // min before max going down.
    push(gov_path, governor, "scaling_governor");
    let cur_min = state.current(&min_path).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let freq =
        [(min_path.clone(), min, "scaling_min_freq"), (max_path.clone(), max, "scaling_max_freq")];
    let order: [usize; 2] = if max.unwrap_or(u64::MAX) >= cur_min { [1, 0] } else { [0, 1] };
    for i in order {
        let (p, v, attr) = &freq[i];
        if let Some(v) = v {
            push(p.clone(), v.to_string(), attr);
        }
    }
    if let Some(e) = epp {
        push(epp_path, e, "energy_performance_preference");
    }
    Ok(())
}

/// The frequency range a profile asks of a policy whose CPUs are of `core_type`: the core type's
/// own range where the profile has one, else the profile's.
fn khz_range(spec: Option<&ProfileSpec>, core_type: CoreType) -> KhzRange {
    spec.map(|s| {
        let by_type = s.core_types.get(core_type.as_str()).copied();
        KhzRange {
            min_khz: by_type.and_then(|r| r.min_khz).or(s.min_khz),
            max_khz: by_type.and_then(|r| r.max_khz).or(s.max_khz),
        }
    })
    .unwrap_or(KhzRange { min_khz: None, max_khz: None })
}

/// The governor a policy gets: the profile's, when the policy offers it, else the boot-time one.
fn policy_governor(
    policy: &Policy,
    spec: Option<&ProfileSpec>,
    gov_path: &str,
    state: &dyn State,
    who: &dyn Fn(&str) -> String,
) -> Result<String, FreqError> {
    match spec.and_then(|s| s.governor.clone()) {
        Some(g) => {
            if !policy.governors.contains(&g) {
                return Err(invalid(format!(
                    "{}: governor {g:?} is not available (scaling_available_governors: {})",
                    who("governor"),
                    policy.governors.join(" ")
                )));
            }
            Ok(g)
        }
        None => Ok(state.boot(gov_path).unwrap_or_default()),
    }
}

/// The EPP a policy gets under `governor`: the profile's, when the policy offers it and the
/// governor allows it, else the boot-time one (`performance` under the performance governor);
/// `None` for a policy without EPP.
fn policy_epp(
    policy: &Policy,
    spec: Option<&ProfileSpec>,
    governor: &str,
    epp_path: &str,
    state: &dyn State,
    who: &dyn Fn(&str) -> String,
) -> Result<Option<String>, FreqError> {
    Ok(match (spec.and_then(|s| s.epp.clone()), &policy.epp_choices) {
        (Some(e), None) => {
            return Err(invalid(format!(
                "{}: {e:?} asked for, but the {} driver has no energy_performance_preference here",
                who("epp"),
                policy.driver
            )));
        }
        (Some(e), Some(choices)) => {
            if !choices.contains(&e) {
                return Err(invalid(format!(
                    "{}: {e:?} is not one this CPU lists ({})",
                    who("epp"),
                    choices.join(" ")
                )));
            }
            if governor == "performance" && e != "performance" {
                return Err(invalid(format!(
                    "{}: {e:?} cannot be set under the performance governor (the kernel refuses it); use epp = \"performance\" or another governor",
                    who("epp")
                )));
            }
            Some(e)
        }
        // Under the performance governor the kernel pins EPP to performance.
        (None, Some(_)) if governor == "performance" => Some("performance".to_string()),
        (None, Some(_)) => state.boot(epp_path),
        (None, None) => None,
    })
}

fn plan_cstates(
    topo: &FreqTopology,
    cpu: u32,
    pool: &PoolRef,
    profile: Option<(&str, &ProfileSpec)>,
    state: &dyn State,
    writes: &mut Vec<Write>,
) -> Result<(), FreqError> {
    let wanted = profile.map(|(_, s)| &s.cstates);
    let states = topo.idle_states.get(&cpu).cloned().unwrap_or_default();
    if let Some((name, spec)) = profile
        && !spec.cstates.is_empty()
    {
        if topo.capabilities.idle_driver.is_none() {
            return Err(invalid(format!(
                "pool {pool}, profile {name}, cstates: this node has no cpuidle driver, so C-states cannot be controlled"
            )));
        }
        for s in spec.cstates.keys() {
            if !states.iter().any(|st| &st.name == s) {
                let names: Vec<&str> = states.iter().map(|st| st.name.as_str()).collect();
                return Err(invalid(format!(
                    "pool {pool}, profile {name}, cstates.{s}: cpu {cpu} has no C-state {s} (it has {})",
                    names.join(", ")
                )));
            }
        }
    }
    for st in &states {
        let p = format!("sys/devices/system/cpu/cpu{cpu}/cpuidle/state{}/disable", st.index);
        let value = match wanted.and_then(|w| w.get(&st.name)) {
            Some(enabled) => if *enabled { "0" } else { "1" }.to_string(),
            None => match state.boot(&p) {
                Some(v) => v,
                None => continue,
            },
        };
        let current = state.current(&p).unwrap_or_default();
        if current != value {
            writes.push(Write {
                path: p,
                value,
                current,
                what: format!("cpu{cpu} {} disable", st.name),
            });
        }
    }
    Ok(())
}

fn plan_uncore(
    topo: &FreqTopology,
    root: &std::path::Path,
    file: &PoolsFile,
    state: &dyn State,
    writes: &mut Vec<Write>,
) -> Result<(), FreqError> {
    if !file.uncore.is_empty() && topo.uncore.is_empty() {
        return Err(invalid(
            "uncore: this node has no intel_uncore_frequency driver (sys/devices/system/cpu/intel_uncore_frequency)",
        ));
    }
    let domains = topo.preferred_uncore();
    let mut wanted: BTreeMap<usize, (Option<u64>, Option<u64>)> = BTreeMap::new();
    for (n, spec) in file.uncore.iter().enumerate() {
        let what = match spec.die {
            Some(d) => format!("uncore[{n}] (package {}, die {d})", spec.package),
            None => format!("uncore[{n}] (package {})", spec.package),
        };
        let matched: Vec<usize> = domains
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                d.package == spec.package && spec.die.is_none_or(|die| d.die == Some(die))
            })
            .map(|(i, _)| i)
            .collect();
        if matched.is_empty() {
            let have: Vec<&str> = domains.iter().map(|d| d.name.as_str()).collect();
            return Err(invalid(format!(
                "{what}: no such uncore domain (this node has {})",
                have.join(", ")
            )));
        }
        for &i in &matched {
            let d = domains[i];
            for (field, v) in [("min_khz", spec.min_khz), ("max_khz", spec.max_khz)] {
                if let Some(v) = v
                    && !(d.initial_min_khz..=d.initial_max_khz).contains(&v)
                {
                    return Err(invalid(format!(
                        "{what}: {field} {v} kHz is outside the hardware range {}..{} kHz of {}",
                        d.initial_min_khz, d.initial_max_khz, d.name
                    )));
                }
            }
            if let (Some(lo), Some(hi)) = (spec.min_khz, spec.max_khz)
                && lo > hi
            {
                return Err(invalid(format!("{what}: min_khz {lo} is above max_khz {hi}")));
            }
            // The driver works in 100 MHz ratios: plan what it will store.
            let round = |v: u64| v / 100_000 * 100_000;
            wanted.insert(i, (spec.min_khz.map(round), spec.max_khz.map(round)));
        }
    }
    for (i, d) in domains.iter().enumerate() {
        let min_path = rel(root, &d.dir, "min_freq_khz");
        let max_path = rel(root, &d.dir, "max_freq_khz");
        let (want_min, want_max) = wanted.get(&i).copied().unwrap_or((None, None));
        let boot = |p: &str| state.boot(p).and_then(|v| v.parse::<u64>().ok());
        let min = want_min.or_else(|| boot(&min_path));
        let max = want_max.or_else(|| boot(&max_path));
        let cur_min = state.current(&min_path).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let items = [(min_path, min, "min_freq_khz"), (max_path, max, "max_freq_khz")];
        let order: [usize; 2] = if max.unwrap_or(u64::MAX) >= cur_min { [1, 0] } else { [0, 1] };
        for k in order {
            let (p, v, attr) = &items[k];
            let Some(v) = v else { continue };
            let current = state.current(p).unwrap_or_default();
            if current != v.to_string() {
                writes.push(Write {
                    path: p.clone(),
                    value: v.to_string(),
                    current,
                    what: format!("{} {attr}", d.name),
                });
            }
        }
    }
    Ok(())
}
