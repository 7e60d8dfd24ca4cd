//! `powerstack pools ...`: glue between the arguments and `powerstack-freq`.

use anyhow::{Context, bail};
use powerstack_api::pools::PoolsChangeV1;
use powerstack_api::table;
use powerstack_freq::{FreqError, Pools, PoolsFile, ProfileRequest};
use powerstack_node::pools::{change_document, show_document};

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
        bail!("--format {f} is not available for pools; use table or json");
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
            let doc =
                change_document(&origin, &pools, command, true, &plan.writes, Some(&file), vec![]);
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
        &change_document(&origin, &pools, command, false, &writes, Some(&file), recovered),
    )
}

/// `powerstack pools ...`.
pub fn run(cmd: &PoolsCommand) -> anyhow::Result<()> {
    // Before the node opens: a simulated node runs on a thread, which must inherit the mask.
    signals::catch(None, || {})?;
    match cmd {
        PoolsCommand::Apply(a) => {
            let text = powerstack_file::read_to_string(
                &a.file,
                "pools file",
                powerstack_file::TEXT_MAX_BYTES,
            )?;
            let file = PoolsFile::parse(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", a.file.display()))?;
            change(&a.common, "apply", |_| Ok(file))
        }
        PoolsCommand::Reset(c) => reset(c),
        PoolsCommand::Show(c) => show(c, false),
        PoolsCommand::Capabilities(c) => show(c, true),
        PoolsCommand::Create(a) => {
            edit(&a.common, "create", |f| f.create_pool(&a.name, &a.cpus, a.profile.as_deref()))
        }
        PoolsCommand::Delete(a) => edit(&a.common, "delete", |f| f.delete_pool(&a.name)),
        PoolsCommand::Move(a) => edit(&a.common, "move", |f| f.move_cpus(&a.cpus, &a.to)),
        PoolsCommand::SetProfile(a) => {
            let request = ProfileRequest {
                name: a.profile.clone(),
                min_khz: a.min_khz,
                max_khz: a.max_khz,
                governor: a.governor.clone(),
                epp: a.epp.clone(),
                cstates: a.cstate.clone(),
            };
            edit(&a.common, "set-profile", |f| f.set_profile(&a.pool, &request))
        }
    }
}

/// A change that edits the configuration in force (an empty one when there is none).
fn edit(
    common: &ControlArgs,
    command: &str,
    rule: impl FnOnce(&mut PoolsFile) -> Result<(), FreqError>,
) -> anyhow::Result<()> {
    change(common, command, |stored| {
        let mut f = stored.unwrap_or_default();
        rule(&mut f)?;
        Ok(f)
    })
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
            let doc =
                change_document(&origin, &pools, "reset", common.dry_run, &writes, None, vec![]);
            return print_change(format, &doc);
        }
    }
    signals::check("nothing was written")?;
    let (mut pools, recovered) = open(&mut node, &state)?;
    stop_on_signals(&mut pools);
    let writes = pools.reset().map_err(stopped)?.writes;
    print_change(
        format,
        &change_document(&origin, &pools, "reset", false, &writes, None, recovered),
    )
}

fn show(common: &ControlArgs, capabilities_only: bool) -> anyhow::Result<()> {
    let format = format_of(common)?;
    let node = node::open(&common.node)?;
    let state = node.state(&common.state_dir);
    let pools = Pools::open_read(&node.root, &state)?;
    let doc = show_document(&node.origin, &pools, capabilities_only)?;
    match format {
        Format::Json => emit(&serde_json::to_string(&doc).context("encoding JSON")?),
        _ => emit(&table::pools(&doc)),
    }
}
