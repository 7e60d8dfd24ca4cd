//! `powerstack pools ...`: glue between the arguments and `powerstack-freq`.

use anyhow::{Context, bail};
use powerstack_api::pools::{
    DriftV1, POOLS_CHANGE_SCHEMA, POOLS_SCHEMA, PolicyStateV1, PoolV1, PoolsChangeV1, PoolsV1,
    SettingWriteV1, UncoreStateV1,
};
use powerstack_api::table;
use powerstack_freq::{ExclusivePool, FreqError, Live, Pools, PoolsFile, ProfileSpec, State};
use powerstack_model::cpulist::{format_cpulist, parse_cpulist};

use crate::cli::{ControlArgs, Format, PoolsCommand};
use crate::node::{self, Node};
use crate::output::emit;
use crate::signals;
use powerstack_cap::StateDir;

fn via() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("powerstack {}", args.join(" "))
}

fn format_of(common: &ControlArgs) -> anyhow::Result<Format> {
    let f = crate::output::format(common.node.format);
    if !matches!(f, Format::Json | Format::Table) {
        bail!("--format {f:?} is not available for pools; use table or json");
    }
    Ok(f)
}

/// Opens the pools session for writing: locks the node's state directory and repairs an
/// interrupted run, power limits included.
fn open<'a>(node: &'a mut Node, state: &StateDir) -> anyhow::Result<(Pools<'a>, Vec<String>)> {
    let mut recovered = Vec::new();
    let root = &node.root;
    let platform = &mut node.discovery.platform;
    let pools = Pools::open(root, state, &via(), |journal| {
        recovered.extend(journal.notes().iter().cloned());
        if let Some(r) = powerstack_cap::recover(journal, platform, root)? {
            recovered.extend(r.restored.iter().map(|k| format!("restored {k}")));
            recovered.extend(r.files_restored.iter().map(|p| format!("restored {p}")));
            recovered
                .extend(r.failed.iter().map(|(k, why)| format!("could not restore {k}: {why}")));
            recovered.extend(
                r.files_failed.iter().map(|(p, why)| format!("could not restore {p}: {why}")),
            );
        }
        Ok(())
    })?;
    Ok((pools, recovered))
}

/// Stops the session's writes on SIGINT or SIGTERM (and pauses where a test asks).
fn stop_on_signals(pools: &mut Pools<'_>) {
    let mut pause = signals::TestPause::from_env();
    pools.set_stop(Box::new(move || pause.before_write()));
}

/// A write session ended by SIGINT or SIGTERM says so; other errors are as they are.
fn stopped(e: FreqError) -> anyhow::Error {
    match e {
        FreqError::Stopped { .. } => anyhow::anyhow!(signals::interrupted(&e.to_string())),
        e => e.into(),
    }
}

fn pool_list(pools: &Pools<'_>, file: Option<&PoolsFile>) -> Vec<PoolV1> {
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

fn change_doc(
    origin: &powerstack_api::Origin,
    pools: &Pools<'_>,
    command: &str,
    dry_run: bool,
    writes: &[powerstack_freq::Write],
    file: Option<&PoolsFile>,
    recovered: Vec<String>,
) -> PoolsChangeV1 {
    PoolsChangeV1 {
        schema: POOLS_CHANGE_SCHEMA.to_string(),
        hostname: origin.hostname.clone(),
        simulated: origin.simulated.is_some(),
        simulated_profile: origin.simulated.clone(),
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

fn print_change(format: Format, doc: &PoolsChangeV1) -> anyhow::Result<()> {
    match format {
        Format::Json => emit(&serde_json::to_string(doc).context("encoding JSON")?),
        _ => emit(&table::pools_change(doc)),
    }
}

/// Plans (and unless `--dry-run`, applies) a new configuration built by `edit` from the one in
/// force. It is validated before the state directory is locked or created, so a refused change
/// leaves no trace.
fn change(
    common: &ControlArgs,
    command: &str,
    edit: impl FnOnce(Option<PoolsFile>) -> anyhow::Result<PoolsFile>,
) -> anyhow::Result<()> {
    let format = format_of(common)?;
    let mut node = node::open(&common.node)?;
    let origin = node.origin.clone();
    let state = node.state(&common.state_dir);
    let (stored, file) = {
        let pools = Pools::open_read(&node.root, &state)?;
        let stored = pools.stored()?;
        let file = edit(stored.clone())?;
        let plan = pools.plan(&file)?;
        if common.dry_run {
            let doc = change_doc(&origin, &pools, command, true, &plan.writes, Some(&file), vec![]);
            return print_change(format, &doc);
        }
        (stored, file)
    };
    signals::check("nothing was written")?;
    let (mut pools, recovered) = open(&mut node, &state)?;
    if pools.stored()? != stored {
        bail!("the configuration in force changed while this command ran: run it again");
    }
    stop_on_signals(&mut pools);
    let writes = pools.apply(&file).map_err(stopped)?.writes;
    print_change(
        format,
        &change_doc(&origin, &pools, command, false, &writes, Some(&file), recovered),
    )
}

/// `powerstack pools ...`.
pub fn run(cmd: &PoolsCommand) -> anyhow::Result<()> {
    // Before the node opens: a simulated node runs on a thread, which must inherit the mask.
    signals::catch(None, || {})?;
    match cmd {
        PoolsCommand::Apply(a) => {
            let text = std::fs::read_to_string(&a.file)
                .with_context(|| format!("reading {}", a.file.display()))?;
            let file = PoolsFile::parse(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", a.file.display()))?;
            change(&a.common, "apply", |_| Ok(file))
        }
        PoolsCommand::Reset(c) => reset(c),
        PoolsCommand::Show(c) => show(c, false),
        PoolsCommand::Capabilities(c) => show(c, true),
        PoolsCommand::Create(a) => change(&a.common, "create", |stored| {
            let mut f = stored.unwrap_or_default();
            if f.exclusive(&a.name).is_some() {
                bail!("pool {} already exists", a.name);
            }
            if let Some(p) = &a.profile
                && !f.profiles.contains_key(p)
            {
                bail!(
                    "profile {p:?} is not defined in the configuration in force; define it with `pools set-profile {} --min-khz ...` or in a pools file",
                    a.name
                );
            }
            // The CPUs leave the shared pool (moving from elsewhere is refused by the move rules).
            f.exclusive.push(ExclusivePool {
                name: a.name.clone(),
                cpus: a.cpus.clone(),
                profile: a.profile.clone(),
            });
            Ok(f)
        }),
        PoolsCommand::Delete(a) => change(&a.common, "delete", |stored| {
            let mut f = stored.unwrap_or_default();
            match a.name.as_str() {
                "reserved" | "shared" => bail!("the {} pool cannot be deleted", a.name),
                _ => {}
            }
            let before = f.exclusive.len();
            f.exclusive.retain(|p| p.name != a.name);
            if f.exclusive.len() == before {
                bail!("no pool {}; pools: {}", a.name, names(&f));
            }
            Ok(f)
        }),
        PoolsCommand::Move(a) => change(&a.common, "move", |stored| {
            let mut f = stored.unwrap_or_default();
            let cpus = parse_cpulist(&a.cpus).map_err(|e| anyhow::anyhow!("{e}"))?;
            if a.to != "reserved" && a.to != "shared" && f.exclusive(&a.to).is_none() {
                bail!("no pool {}; pools: {}", a.to, names(&f));
            }
            let without = |list: &str| -> anyhow::Result<String> {
                let mut v = parse_cpulist(list).map_err(|e| anyhow::anyhow!("{e}"))?;
                v.retain(|c| !cpus.contains(c));
                Ok(format_cpulist(&v))
            };
            f.reserved.cpus = without(&f.reserved.cpus)?;
            for p in &mut f.exclusive {
                p.cpus = without(&p.cpus)?;
            }
            let with = |list: &str| -> anyhow::Result<String> {
                let mut v = parse_cpulist(list).map_err(|e| anyhow::anyhow!("{e}"))?;
                v.extend(cpus.iter().copied());
                Ok(format_cpulist(&v))
            };
            match a.to.as_str() {
                "reserved" => f.reserved.cpus = with(&f.reserved.cpus)?,
                "shared" => {}
                name => {
                    if let Some(p) = f.exclusive.iter_mut().find(|p| p.name == name) {
                        p.cpus = with(&p.cpus)?;
                    }
                }
            }
            Ok(f)
        }),
        PoolsCommand::SetProfile(a) => change(&a.common, "set-profile", |stored| {
            let mut f = stored.unwrap_or_default();
            let inline = a.min_khz.is_some()
                || a.max_khz.is_some()
                || a.governor.is_some()
                || a.epp.is_some()
                || !a.cstate.is_empty();
            let name = match (&a.profile, inline) {
                (Some(_), true) => bail!("give a profile name or profile options, not both"),
                (Some(p), false) => {
                    if !f.profiles.contains_key(p) {
                        bail!(
                            "profile {p:?} is not defined in the configuration in force (profiles: {})",
                            f.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                        );
                    }
                    p.clone()
                }
                (None, true) => {
                    let mut spec = ProfileSpec {
                        min_khz: a.min_khz,
                        max_khz: a.max_khz,
                        governor: a.governor.clone(),
                        epp: a.epp.clone(),
                        ..Default::default()
                    };
                    for c in &a.cstate {
                        let (n, v) = c.split_once('=').ok_or_else(|| {
                            anyhow::anyhow!("--cstate {c}: expected NAME=on or NAME=off")
                        })?;
                        let on = match v {
                            "on" | "1" | "true" | "enabled" => true,
                            "off" | "0" | "false" | "disabled" => false,
                            _ => bail!("--cstate {c}: expected NAME=on or NAME=off"),
                        };
                        spec.cstates.insert(n.to_string(), on);
                    }
                    f.profiles.insert(a.pool.clone(), spec);
                    a.pool.clone()
                }
                (None, false) => bail!(
                    "give a profile name, or options such as --min-khz, --max-khz, --governor, --epp, --cstate"
                ),
            };
            match a.pool.as_str() {
                "reserved" => bail!("the reserved pool is never tuned: it cannot have a profile"),
                "shared" => f.shared.profile = Some(name),
                pool => match f.exclusive.iter_mut().find(|p| p.name == pool) {
                    Some(p) => p.profile = Some(name),
                    None => bail!("no pool {pool}; pools: {}", names(&f)),
                },
            }
            Ok(f)
        }),
    }
}

fn names(f: &PoolsFile) -> String {
    let mut v = vec!["reserved".to_string(), "shared".to_string()];
    v.extend(f.exclusive.iter().map(|p| p.name.clone()));
    v.join(", ")
}

fn reset(common: &ControlArgs) -> anyhow::Result<()> {
    let format = format_of(common)?;
    let mut node = node::open(&common.node)?;
    let origin = node.origin.clone();
    let state = node.state(&common.state_dir);
    {
        let pools = Pools::open_read(&node.root, &state)?;
        // Without a journal or a configuration in force there is nothing to reset: nothing is
        // locked or created.
        if common.dry_run || (pools.journal().is_none() && pools.stored()?.is_none()) {
            let writes = pools.plan_reset()?.writes;
            let doc = change_doc(&origin, &pools, "reset", common.dry_run, &writes, None, vec![]);
            return print_change(format, &doc);
        }
    }
    signals::check("nothing was written")?;
    let (mut pools, recovered) = open(&mut node, &state)?;
    stop_on_signals(&mut pools);
    let writes = pools.reset().map_err(stopped)?.writes;
    print_change(format, &change_doc(&origin, &pools, "reset", false, &writes, None, recovered))
}

fn show(common: &ControlArgs, capabilities_only: bool) -> anyhow::Result<()> {
    let format = format_of(common)?;
    let node = node::open(&common.node)?;
    let origin = node.origin.clone();
    let state = node.state(&common.state_dir);
    let doc = {
        let pools = Pools::open_read(&node.root, &state)?;
        let topo = pools.topology();
        let mut warnings: Vec<String> = topo.warnings.clone();
        if let Some(p) = pools.journal().and_then(|j| j.in_progress()) {
            warnings.push(format!(
                "a previous run (pid {}, {}) was interrupted while writing; the next pools or cap change restores the originals",
                p.pid, p.via
            ));
        }
        let stored = pools.stored()?;
        let root = pools.root();
        let live = Live::new(root, pools.journal());
        let (drift, assignment) = match &stored {
            Some(f) => match pools.plan(f) {
                Ok(plan) => (
                    plan.writes
                        .iter()
                        .map(|w| DriftV1 {
                            what: w.what.clone(),
                            actual: w.current.clone(),
                            expected: w.value.clone(),
                        })
                        .collect(),
                    Some(plan.assignment),
                ),
                Err(e) => {
                    warnings
                        .push(format!("the configuration in force no longer fits this node: {e}"));
                    (Vec::new(), None)
                }
            },
            None => (Vec::new(), None),
        };
        let rel = |dir: &std::path::Path, attr: &str| {
            let d = dir.strip_prefix(root.base()).unwrap_or(dir);
            format!("{}/{attr}", d.to_string_lossy().trim_start_matches('/'))
        };
        let policies = if capabilities_only {
            Vec::new()
        } else {
            topo.policies
                .iter()
                .map(|p| {
                    let first =
                        p.cpus.iter().copied().find(|c| topo.cpu(*c).is_some_and(|i| i.online));
                    let disabled = first
                        .and_then(|c| topo.idle_states.get(&c).map(|s| (c, s)))
                        .map(|(c, states)| {
                            states
                                .iter()
                                .filter(|s| {
                                    live.current(&format!(
                                        "sys/devices/system/cpu/cpu{c}/cpuidle/state{}/disable",
                                        s.index
                                    ))
                                    .as_deref()
                                        == Some("1")
                                })
                                .map(|s| s.name.clone())
                                .collect()
                        })
                        .unwrap_or_default();
                    PolicyStateV1 {
                        policy: p.id,
                        cpus: format_cpulist(&p.cpus),
                        pool: first.and_then(|c| {
                            assignment.as_ref().and_then(|a| a.get(&c)).map(|x| x.to_string())
                        }),
                        core_type: first
                            .and_then(|c| topo.cpu(c))
                            .map(|c| c.core_type.as_str().to_string())
                            .unwrap_or_else(|| "uniform".into()),
                        governor: live.current(&rel(&p.dir, "scaling_governor")),
                        min_khz: live
                            .current(&rel(&p.dir, "scaling_min_freq"))
                            .and_then(|v| v.parse().ok()),
                        max_khz: live
                            .current(&rel(&p.dir, "scaling_max_freq"))
                            .and_then(|v| v.parse().ok()),
                        epp: p.epp_choices.as_ref().and_then(|_| {
                            live.current(&rel(&p.dir, "energy_performance_preference"))
                        }),
                        disabled_cstates: disabled,
                    }
                })
                .collect()
        };
        let uncore = if capabilities_only {
            Vec::new()
        } else {
            topo.uncore
                .iter()
                .map(|u| UncoreStateV1 {
                    name: u.name.clone(),
                    package: u.package,
                    min_khz: live
                        .current(&rel(&u.dir, "min_freq_khz"))
                        .and_then(|v| v.parse().ok()),
                    max_khz: live
                        .current(&rel(&u.dir, "max_freq_khz"))
                        .and_then(|v| v.parse().ok()),
                })
                .collect()
        };
        PoolsV1 {
            schema: POOLS_SCHEMA.to_string(),
            hostname: String::new(),
            simulated: false,
            simulated_profile: None,
            configured: stored.is_some(),
            capabilities: topo.capability_report(),
            pools: if capabilities_only { Vec::new() } else { pool_list(&pools, stored.as_ref()) },
            policies,
            uncore,
            drift,
            warnings,
        }
    };
    let doc = PoolsV1 {
        hostname: origin.hostname.clone(),
        simulated: origin.simulated.is_some(),
        simulated_profile: origin.simulated.clone(),
        ..doc
    };
    match format {
        Format::Json => emit(&serde_json::to_string(&doc).context("encoding JSON")?),
        _ => emit(&table::pools(&doc)),
    }
}
