//! `powerstack cap ...`: glue between the arguments and `powerstack-cap`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use powerstack_api::cap::CapResultV1;
use powerstack_api::table;
use powerstack_cap::{CapError, Policy};
use powerstack_hw::Platform;
use powerstack_model::DomainKind;
use powerstack_model::duration::parse_duration;
use powerstack_node::cap_session::{
    CapChange, DomainTarget, LimitChange, Measurement, NODE_MEASURE, SHOW_MEASURE, SessionError,
    end_standing_cap,
};

use crate::cli::{CapCommand, ControlArgs, Format};
use crate::node;
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

/// A change of the limits of every domain of `kind` (or of the one numbered `index`, or of one
/// die): each of `limits` on each.
fn domain_change(
    kind: DomainKind,
    index: Option<u32>,
    die: Option<u32>,
    limits: Vec<LimitChange>,
    clamp: bool,
) -> CapChange {
    CapChange::Domain { target: DomainTarget { kind, index, die }, limits, clamp }
}

fn limit(constraint: &str, limit_watts: f64, time_window_s: Option<f64>) -> LimitChange {
    LimitChange { constraint: Some(constraint.to_string()), limit_watts, time_window_s }
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
            let mut limits = vec![limit("long_term", long, window)];
            limits.extend(short.map(|s| limit("short_term", s, None)));
            let socket = domain_change(DomainKind::Package, a.socket, a.die, limits, a.clamp);
            change(&a.common, &socket, None)
        }
        CapCommand::Mem(a) => {
            let limits = vec![limit("long_term", watts(&a.watts)?, None)];
            change(
                &a.common,
                &domain_change(DomainKind::Memory, a.socket, a.die, limits, a.clamp),
                None,
            )
        }
        CapCommand::Gpu(a) => {
            let limits = vec![limit("cap", watts(&a.watts)?, None)];
            change(&a.common, &domain_change(DomainKind::Gpu, a.gpu, None, limits, a.clamp), None)
        }
        CapCommand::Node(a) => {
            let w = watts(&a.watts)?;
            let policy: Policy =
                a.policy.parse().map_err(|e: String| anyhow::anyhow!("--policy: {e}"))?;
            let node_cap = CapChange::node(w, policy, a.clamp).map_err(anyhow::Error::msg)?;
            let interval =
                parse_duration(&a.interval).map_err(|e| anyhow::anyhow!("--interval: {e}"))?;
            if !NODE_MEASURE.contains(&interval) {
                bail!("--interval {}: must be between 10ms and 60s", a.interval);
            }
            change(&a.common, &node_cap, Some(interval))
        }
        CapCommand::Show(a) => show(a),
        CapCommand::Reset(a) => reset(a),
    }
}

/// A cap session's error for the command line: a write session ended by SIGINT or SIGTERM says
/// so; other errors are as they are.
fn failed(e: SessionError) -> anyhow::Error {
    match e {
        SessionError::Cap(e @ CapError::Stopped { .. }) => {
            anyhow::anyhow!(signals::interrupted(&e.to_string()))
        }
        e => e.into(),
    }
}

/// Measures the node over `interval` for a node cap (Ctrl-C stops it, before anything is written).
fn measure(platform: &mut Platform, interval: Duration) -> anyhow::Result<Measurement> {
    if output::verbose() {
        eprintln!(
            "note: measuring the node for {interval:?} before splitting the cap (Ctrl-C stops without writing)"
        );
    }
    let measured = Measurement::take(platform, || signals::sleep_until(Instant::now() + interval));
    signals::check("nothing was written")?;
    Ok(measured)
}

/// The output format of a cap command, checked before anything is opened or written: only
/// `table` and `json` describe a change.
fn control_format(common: &ControlArgs, what: &str) -> anyhow::Result<Format> {
    let format = output::format(common.node.format);
    if !matches!(format, Format::Json | Format::Table) {
        bail!("--format {format} is not available for {what}; use table or json");
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

/// Plans (and unless `--dry-run`, applies) `change` on the node; a node cap measures the node over
/// `measure_for` first. Everything is validated before the state directory is locked or created,
/// so a refused change leaves no trace.
fn change(
    common: &ControlArgs,
    change: &CapChange,
    measure_for: Option<Duration>,
) -> anyhow::Result<()> {
    let format = control_format(common, "cap")?;
    let mut node = node::open(&common.node)?;
    let state = node.state(&common.state_dir);
    let measurement =
        measure_for.map(|interval| measure(&mut node.discovery.platform, interval)).transpose()?;
    let mut session = node.cap_session(&state);
    let prepared = session.prepare(change, measurement)?;
    if common.dry_run {
        return print_result(format, &prepared.doc);
    }
    signals::check("nothing was written")?;
    let mut pause = signals::TestPause::from_env();
    let committed =
        session.commit(prepared, &via(), &mut || pause.before_write()).map_err(failed)?;
    print_result(format, &committed.doc)
}

fn reset(common: &ControlArgs) -> anyhow::Result<()> {
    let format = control_format(common, "cap")?;
    let mut node = node::open(&common.node)?;
    let state = node.state(&common.state_dir);
    let mut session = node.cap_session(&state);
    if !common.dry_run {
        signals::check("nothing was written")?;
    }
    let mut pause = signals::TestPause::from_env();
    let done =
        session.reset(common.dry_run, &via(), &mut || pause.before_write()).map_err(failed)?;
    match done.into_result() {
        Ok(doc) => {
            if !common.dry_run {
                end_standing_cap(state.path()).map_err(anyhow::Error::msg)?;
            }
            print_result(format, &doc)
        }
        Err(e) => {
            // What was put back is printed before the failure, as when everything was.
            if let SessionError::NotRestored { doc, .. } = &e {
                print_result(format, doc)?;
            }
            Err(e.into())
        }
    }
}

fn show(common: &ControlArgs) -> anyhow::Result<()> {
    let format = control_format(common, "cap show")?;
    let mut node = node::open(&common.node)?;
    let state = node.state(&common.state_dir);
    // The node cap range counts the power that cannot be capped: measured over a short window.
    let platform = &mut node.discovery.platform;
    let report = platform.measure_with(|| signals::sleep_until(Instant::now() + SHOW_MEASURE));
    let _ = platform.take_warnings();
    let doc = node.cap_session(&state).show(Some(&report));
    if format == Format::Json {
        emit(&serde_json::to_string(&doc).context("encoding JSON")?)
    } else {
        emit(&table::caps(&doc))
    }
}
