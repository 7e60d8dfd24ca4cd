//! `powerstack site transition`, `site power-cap set|snapshot`, `site task show|abort`: a control
//! task started (or found) at the site, then waited for with its progress on stderr (one line
//! refreshed on a terminal, a line per change when piped), and printed at the end. Exits
//! non-zero when a node failed.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use powerstack_api::site_tasks::{
    MAX_DEADLINE_S, PowerCapRequestV1, PowerCapSnapshotRequestV1, TaskStateV1, TaskV1,
    TransitionOperationV1, TransitionRequestV1, progress, task_table,
};
use powerstack_client::site::Site;
use powerstack_model::duration::parse_duration;

use crate::cli::{PowerCapCommand, SiteTransitionArgs, TaskCommand, TaskIdArgs, TaskOutputArgs};
use crate::job::{connect_site, parse_timeout};
use crate::output::emit;

/// How often a task is read while waited for.
const POLL: Duration = Duration::from_secs(1);

fn site_of(out: &TaskOutputArgs) -> anyhow::Result<Site> {
    connect_site(&out.site, parse_timeout(&out.timeout)?)
}

/// `site transition`.
pub fn transition(a: &SiteTransitionArgs) -> anyhow::Result<()> {
    let operation =
        TransitionOperationV1::parse(&a.operation.to_ascii_lowercase()).ok_or_else(|| {
            let all: Vec<&str> = TransitionOperationV1::ALL.iter().map(|o| o.as_str()).collect();
            anyhow!("operation {:?}: one of {}", a.operation, all.join(", "))
        })?;
    let deadline_s = a
        .deadline
        .as_deref()
        .map(|d| {
            let secs =
                parse_duration(d).map_err(|e| anyhow!("--deadline {d}: {e}"))?.as_secs_f64().ceil()
                    as u64;
            if !(1..=MAX_DEADLINE_S).contains(&secs) {
                bail!("--deadline {d}: 1s to 24h");
            }
            Ok(secs)
        })
        .transpose()?;
    let site = site_of(&a.out)?;
    let request = TransitionRequestV1 {
        operation,
        nodes: vec![a.nodes.clone()],
        deadline_s,
        escalate: Some(a.escalate),
    };
    let task = site.transition(&request)?;
    follow(&site, task, &a.out)
}

/// `site power-cap ...`.
pub fn power_cap(c: &PowerCapCommand) -> anyhow::Result<()> {
    match c {
        PowerCapCommand::Set(a) => {
            let limit_watts = parse_watts(&a.watts)?;
            let site = site_of(&a.out)?;
            let task =
                site.power_cap(&PowerCapRequestV1 { nodes: vec![a.nodes.clone()], limit_watts })?;
            follow(&site, task, &a.out)
        }
        PowerCapCommand::Snapshot(a) => {
            let site = site_of(&a.out)?;
            let task = site
                .power_cap_snapshot(&PowerCapSnapshotRequestV1 { nodes: vec![a.nodes.clone()] })?;
            follow(&site, task, &a.out)
        }
    }
}

/// `500`, `500W`, `500 W`, or `off` (`None`).
fn parse_watts(text: &str) -> anyhow::Result<Option<f64>> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let number = t.strip_suffix('W').or_else(|| t.strip_suffix('w')).unwrap_or(t).trim();
    match number.parse::<f64>() {
        Ok(w) if w.is_finite() && (1.0..=1e6).contains(&w) => Ok(Some(w)),
        _ => bail!("power limit {text:?}: watts from 1 to 1000000 (500, 500W), or off"),
    }
}

/// `site task ...`.
pub fn task(c: &TaskCommand) -> anyhow::Result<()> {
    match c {
        TaskCommand::Show(a) => {
            let site = site_of(&a.out)?;
            let task = site.find_task(&a.id)?;
            follow(&site, task, &a.out)
        }
        TaskCommand::Abort(TaskIdArgs { id, out }) => {
            let site = site_of(out)?;
            let found = site.find_task(id)?;
            let task = site.abort_task(found.kind, id)?;
            follow(&site, task, out)
        }
    }
}

/// Waits for `task` to finish (unless `--no-wait`), showing its progress, then prints it; an
/// error when a node failed.
fn follow(site: &Site, mut task: TaskV1, out: &TaskOutputArgs) -> anyhow::Result<()> {
    if out.no_wait {
        return emit(&task.id);
    }
    let err = std::io::stderr();
    let terminal = err.is_terminal();
    let mut shown = String::new();
    loop {
        let line = progress(&task);
        if line != shown {
            let mut e = err.lock();
            // On a terminal one line, rewritten; piped, a line per change.
            let _ = if terminal { write!(e, "\r{line}\x1b[K") } else { writeln!(e, "{line}") };
            let _ = e.flush();
            shown = line;
        }
        if task.state != TaskStateV1::Running {
            break;
        }
        std::thread::sleep(POLL);
        task = site.find_task(&task.id)?;
    }
    if terminal {
        eprintln!();
    }
    let text = if out.json {
        serde_json::to_string(&task).context("encoding the task")?
    } else {
        task_table(&task)
    };
    emit(&text)?;
    if task.counts.failed > 0 {
        bail!("{} of {} nodes failed (see REASON)", task.counts.failed, task.counts.total);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_watts_or_off() {
        assert_eq!(parse_watts("500").unwrap(), Some(500.0));
        assert_eq!(parse_watts("450.5W").unwrap(), Some(450.5));
        assert_eq!(parse_watts("OFF").unwrap(), None);
        let e = parse_watts("0").unwrap_err().to_string();
        assert!(e.contains("watts from 1 to 1000000"), "{e}");
        assert!(parse_watts("5kW").is_err());
    }
}
