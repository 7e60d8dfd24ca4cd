//! `powerstack cap ...`: glue between the arguments and `powerstack-cap`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use powerstack_api::cap::{CAP_SCHEMA, CapResultV1};
use powerstack_api::table;
use powerstack_cap::{CapError, Capper, Done, Policy, Request};
use powerstack_hw::Platform;
use powerstack_model::duration::parse_duration;
use powerstack_model::{DomainInfo, DomainKind, LimitWrite};
use powerstack_node::cap_report::{
    planned_reset_writes, recovered_lines, restored_writes, write_doc,
};

use crate::cli::{CapCommand, ControlArgs, Format};
use crate::node::{self, Node};
use crate::output::{self, emit};
use crate::signals;

/// Parses a power given on the command line. NaN, infinities and negative values parse here and
/// are refused by validation with the domain's range.
fn watts(text: &str) -> anyhow::Result<f64> {
    text.trim()
        .parse::<f64>()
        .map_err(|_| anyhow::anyhow!("invalid power {text:?}: expected watts, like 150 or 87.5"))
}

/// The command line, for the journal's "who set it".
fn via() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("powerstack {}", args.join(" "))
}

/// Catalog indices of the domains of `kind`, or of the one numbered `only`.
fn select(
    catalog: &[DomainInfo],
    kind: DomainKind,
    only: Option<u32>,
    what: &str,
) -> anyhow::Result<Vec<usize>> {
    let all: Vec<usize> =
        catalog.iter().enumerate().filter(|(_, d)| d.id.kind == kind).map(|(i, _)| i).collect();
    if all.is_empty() {
        bail!("this node has no {what} domain that powerstack can see");
    }
    match only {
        None => Ok(all),
        Some(n) => {
            let chosen: Vec<usize> =
                all.iter().copied().filter(|&i| catalog[i].id.index == n).collect();
            if chosen.is_empty() {
                let names: Vec<String> = all.iter().map(|&i| catalog[i].id.to_string()).collect();
                bail!("{kind}-{n} does not exist on this node; it has {}", names.join(", "));
            }
            Ok(chosen)
        }
    }
}

fn write(
    constraint: &str,
    limit_watts: f64,
    time_window_s: Option<f64>,
    enabled: Option<bool>,
) -> LimitWrite {
    LimitWrite { constraint: constraint.to_string(), limit_watts, time_window_s, enabled }
}

/// Node-cap details for the output.
#[derive(Default)]
struct NodeCap {
    policy: Option<String>,
    cap_watts: Option<f64>,
    uncappable_watts: Option<f64>,
    clamped: bool,
}

/// The requests with `--clamp`: each one below its control's lowest limit raised to it.
fn clamped(p: &Platform, mut reqs: Vec<Request>, clamp: bool) -> (Vec<Request>, NodeCap) {
    let clamped = clamp && powerstack_cap::clamp_to_lowest(p.catalog(), &mut reqs);
    (reqs, NodeCap { clamped, ..NodeCap::default() })
}

/// `powerstack cap ...`.
pub fn run(cmd: &CapCommand) -> anyhow::Result<()> {
    // Before the node opens: a simulated node runs on a thread, which must inherit the mask.
    signals::catch(None, || {})?;
    match cmd {
        CapCommand::Socket(a) => {
            let long = watts(&a.watts)?;
            let short = a.short_term.as_deref().map(watts).transpose()?;
            let window = a
                .time_window
                .as_deref()
                .map(|t| {
                    parse_duration(t)
                        .map(|d| d.as_secs_f64())
                        .map_err(|e| anyhow::anyhow!("--time-window: {e}"))
                })
                .transpose()?;
            change(&a.common, "socket", |p| {
                let mut reqs = Vec::new();
                for i in select(p.catalog(), DomainKind::Package, a.socket, "CPU package")? {
                    reqs.push(Request {
                        index: i,
                        write: write("long_term", long, window, Some(true)),
                    });
                    if let Some(s) = short {
                        reqs.push(Request { index: i, write: write("short_term", s, None, None) });
                    }
                }
                Ok(clamped(p, reqs, a.clamp))
            })
        }
        CapCommand::Mem(a) => {
            let w = watts(&a.watts)?;
            change(&a.common, "mem", |p| {
                let reqs = select(p.catalog(), DomainKind::Memory, a.socket, "memory")?
                    .into_iter()
                    .map(|i| Request { index: i, write: write("long_term", w, None, Some(true)) })
                    .collect();
                Ok(clamped(p, reqs, a.clamp))
            })
        }
        CapCommand::Gpu(a) => {
            let w = watts(&a.watts)?;
            change(&a.common, "gpu", |p| {
                let reqs = select(p.catalog(), DomainKind::Gpu, a.gpu, "GPU")?
                    .into_iter()
                    .map(|i| Request { index: i, write: write("cap", w, None, None) })
                    .collect();
                Ok(clamped(p, reqs, a.clamp))
            })
        }
        CapCommand::Node(a) => {
            let w = watts(&a.watts)?;
            if !w.is_finite() || w <= 0.0 {
                bail!("node cap {w} W is not a valid power limit: give a positive number of watts");
            }
            let policy: Policy =
                a.policy.parse().map_err(|e: String| anyhow::anyhow!("--policy: {e}"))?;
            let interval =
                parse_duration(&a.interval).map_err(|e| anyhow::anyhow!("--interval: {e}"))?;
            if interval < Duration::from_millis(10) || interval > Duration::from_secs(60) {
                bail!("--interval {}: must be between 10ms and 60s", a.interval);
            }
            change(&a.common, "node", |p| {
                if output::verbose() {
                    eprintln!(
                        "note: measuring the node for {} before splitting the cap (Ctrl-C stops without writing)",
                        a.interval
                    );
                }
                let report = p.measure_with(|| signals::sleep_until(Instant::now() + interval));
                signals::check("nothing was written")?;
                let plan = powerstack_cap::plan_node_cap(p.catalog(), &report, w, policy, a.clamp)?;
                Ok((
                    plan.requests,
                    NodeCap {
                        policy: Some(policy.as_str().to_string()),
                        cap_watts: Some(w),
                        uncappable_watts: Some(plan.allocation.uncappable_watts),
                        clamped: plan.allocation.clamped,
                    },
                ))
            })
        }
        CapCommand::Show(a) => show(a),
        CapCommand::Reset(a) => reset(a),
    }
}

/// A write session ended by SIGINT or SIGTERM says so; other errors are as they are.
fn stopped(e: CapError) -> anyhow::Error {
    match e {
        CapError::Stopped { .. } => anyhow::anyhow!(signals::interrupted(&e.to_string())),
        e => e.into(),
    }
}

fn result_doc(node: &Node, command: &str, dry_run: bool, cap: NodeCap) -> CapResultV1 {
    CapResultV1 {
        schema: CAP_SCHEMA.to_string(),
        hostname: node.origin.hostname.clone(),
        simulated: node.origin.simulated.is_some(),
        simulated_profile: node.origin.simulated.clone(),
        command: command.to_string(),
        dry_run,
        policy: cap.policy,
        node_cap_watts: cap.cap_watts,
        uncappable_watts: cap.uncappable_watts,
        clamped: cap.clamped,
        writes: Vec::new(),
        recovered: Vec::new(),
        warnings: Vec::new(),
    }
}

/// The output format of a cap command, checked before anything is opened or written: only
/// `table` and `json` describe a change.
fn control_format(common: &ControlArgs, what: &str) -> anyhow::Result<Format> {
    let format = output::format(common.node.format);
    if !matches!(format, Format::Json | Format::Table) {
        bail!("--format {format:?} is not available for {what}; use table or json");
    }
    Ok(format)
}

fn print_result(format: Format, doc: &CapResultV1) -> anyhow::Result<()> {
    if format == Format::Json {
        emit(&serde_json::to_string(doc).context("encoding JSON")?)
    } else {
        emit(&table::cap_result(doc))
    }
}

/// Plans (and unless `--dry-run`, applies) the requests built by `build` from the node's platform.
/// Everything is validated before the state directory is locked or created, so a refused change
/// leaves no trace.
fn change(
    common: &ControlArgs,
    command: &str,
    build: impl FnOnce(&mut Platform) -> anyhow::Result<(Vec<Request>, NodeCap)>,
) -> anyhow::Result<()> {
    let format = control_format(common, "cap")?;
    let mut node = node::open(&common.node)?;
    let state = node.state(&common.state_dir);
    let (requests, cap) = build(&mut node.discovery.platform)?;
    // What measuring the node (`cap node`) had to say: a domain that could not be read, a
    // counter that stopped (its power is then unknown to the split).
    let measured: Vec<String> =
        node.discovery.platform.take_warnings().iter().map(ToString::to_string).collect();
    let plan = powerstack_cap::plan(node.discovery.platform.catalog(), &requests)?;
    if common.dry_run {
        let mut doc = result_doc(&node, command, true, cap);
        doc.writes = plan
            .iter()
            .filter_map(|p| write_doc(node.discovery.platform.catalog(), p, None))
            .collect();
        doc.warnings = measured;
        return print_result(format, &doc);
    }
    let via = via();
    signals::check("nothing was written")?;
    let (done, recovered, notes) = {
        let platform = &mut node.discovery.platform;
        let (mut capper, recovered) = Capper::open(platform, &node.root, &state, &via)?;
        // Limits may have changed before the lock was had (a recovery, another writer): plan
        // again against the hardware's values, which the journal records as the originals.
        let _ = capper.platform().refresh_limits();
        let plan = capper.plan(&requests)?;
        let mut pause = signals::TestPause::from_env();
        let done: Vec<Done> =
            capper.apply_until(&plan, &mut || pause.before_write()).map_err(stopped)?;
        (done, recovered, capper.notes().to_vec())
    };
    let mut doc = result_doc(&node, command, false, cap);
    let catalog = node.discovery.platform.catalog();
    doc.writes =
        done.iter().filter_map(|d| write_doc(catalog, &d.planned, d.read_back_watts)).collect();
    if let Some(r) = &recovered {
        doc.recovered = recovered_lines(r);
    }
    doc.warnings = measured.into_iter().chain(notes).collect();
    print_result(format, &doc)
}

fn reset(common: &ControlArgs) -> anyhow::Result<()> {
    let format = control_format(common, "cap")?;
    let mut node = node::open(&common.node)?;
    let state = node.state(&common.state_dir);
    let journal = state.read()?;
    if let Some(j) = &journal {
        j.check_node(state.node())?;
    }
    if common.dry_run || journal.is_none() {
        // Without a journal there is nothing to restore: nothing is locked or created.
        let mut doc = result_doc(&node, "reset", common.dry_run, NodeCap::default());
        if let Some(journal) = &journal {
            doc.writes = planned_reset_writes(node.discovery.platform.catalog(), journal);
        }
        return print_result(format, &doc);
    }
    let via = via();
    signals::check("nothing was written")?;
    let (restored, recovered, notes) = {
        let (mut capper, recovered) =
            Capper::open(&mut node.discovery.platform, &node.root, &state, &via)?;
        let mut pause = signals::TestPause::from_env();
        let restored = capper.reset_until(&mut || pause.before_write()).map_err(stopped)?;
        (restored, recovered, capper.notes().to_vec())
    };
    let mut doc = result_doc(&node, "reset", false, NodeCap::default());
    if let Some(r) = &recovered {
        doc.recovered = recovered_lines(r);
    }
    let restored_keys =
        restored.restored.iter().chain(recovered.iter().flat_map(|r| r.restored.iter()));
    doc.writes.extend(restored_writes(node.discovery.platform.catalog(), restored_keys));
    doc.warnings = notes;
    for (k, why) in &restored.failed {
        doc.warnings.push(format!("could not restore {k}: {why}"));
    }
    print_result(format, &doc)?;
    if !restored.failed.is_empty() {
        bail!(
            "{} limit(s) could not be restored; they stay in the journal for the next reset",
            restored.failed.len()
        );
    }
    Ok(())
}

fn show(common: &ControlArgs) -> anyhow::Result<()> {
    let format = control_format(common, "cap show")?;
    let mut node = node::open(&common.node)?;
    let warnings: Vec<String> =
        node.discovery.platform.refresh_limits().into_iter().map(|w| w.to_string()).collect();
    let doc = powerstack_node::cap_report::caps_document(
        &node.origin,
        node.discovery.platform.catalog(),
        &node.state(&common.state_dir),
        warnings,
    );
    if format == Format::Json {
        emit(&serde_json::to_string(&doc).context("encoding JSON")?)
    } else {
        emit(&table::caps(&doc))
    }
}
