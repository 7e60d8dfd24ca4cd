//! `powerstack job ...`: mark jobs on a node agent, and query a job on many agents at once; with
//! `--site`, record jobs at the site service and mark them on every node's agent ([`site`]), and
//! report a job from the site ([`report`]).
//!
//! `job query` asks every agent in parallel ([`powerstack_client::fanout`]); a node that does not
//! answer, or answers an error, is a row saying so, never a failed query. The exit status is 3
//! when any row is not `Complete`.

mod report;
mod site;

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use powerstack_agent::job::parse_peak_window_us;
use powerstack_api::agent::JobBeginV1;
use powerstack_api::job::{DataPresence, DeviceClass, JobResultV1, JobTotalV1, known};
use powerstack_api::job_csv::job_query_csv;
use powerstack_client::fanout::{self, NodeAnswer, Target, ask_all, query_document};
use powerstack_client::site::Site;
use powerstack_client::{self as client, Addr};
use powerstack_model::duration::parse_duration;

use crate::cli::{
    AgentConnArgs, JobCommand, JobFormat, JobQueryArgs, NodeAgentsArgs, SiteConnArgs,
};
use crate::output::{self, emit};

/// `powerstack job ...`.
pub fn run(cmd: &JobCommand) -> anyhow::Result<()> {
    match cmd {
        JobCommand::Begin(a) if a.site.site.is_some() => site::begin(a),
        JobCommand::Begin(a) => {
            site_only(
                &a.agents,
                &[
                    (a.account.is_some(), "--account"),
                    (!a.alloc.is_empty(), "--alloc"),
                    (a.power_watts.is_some(), "--power-watts"),
                    (a.priority.is_some(), "--priority"),
                ],
            )?;
            let body = serde_json::to_string(&begin_body(a.user.as_deref(), a.app.as_deref()))
                .context("encoding the begin body")?;
            mark(&a.conn, &a.id, "begin", Some(&body))
        }
        JobCommand::End(a) if a.site.site.is_some() => site::end(a),
        JobCommand::End(a) => {
            site_only(&a.agents, &[])?;
            mark(&a.conn, &a.id, "end", None)
        }
        JobCommand::Query(a) => query(a),
        JobCommand::Report(a) => report::run(a),
    }
}

/// The agent's begin body: the user (default: the caller's login name) and the application.
fn begin_body(user: Option<&str>, app: Option<&str>) -> JobBeginV1 {
    let user = user.map_or_else(login_name, str::to_string);
    JobBeginV1 { user: Some(user), app: app.map(str::to_string) }
}

/// Refuses the options that only mean something with --site (`given`: the command's own, each
/// whether given and its flag).
fn site_only(a: &NodeAgentsArgs, given: &[(bool, &str)]) -> anyhow::Result<()> {
    let agents = [(a.nodes.is_some(), "--nodes"), (a.no_agents, "--no-agents")];
    let given: Vec<&(bool, &str)> = agents.iter().chain(given).collect();
    if let Some((_, flag)) = given.iter().find(|(on, _)| *on) {
        bail!(
            "{flag} needs --site URL (or POWERSTACK_SITE): without it the job is marked on one agent only"
        );
    }
    Ok(())
}

/// The site of `--site` (or `POWERSTACK_SITE`), with the token of `--site-token-file` and the CA
/// of `--site-ca` (both read now), each call bounded by `timeout`.
pub(crate) fn connect_site(s: &SiteConnArgs, timeout: Duration) -> anyhow::Result<Site> {
    let Some(url) = s.site.as_deref().filter(|u| !u.trim().is_empty()) else {
        bail!("no site given: pass --site URL or set POWERSTACK_SITE");
    };
    let token = read_token(s.site_token_file.as_deref())?;
    Ok(Site::new(url, token, timeout)?.with_ca_file(s.site_ca.as_deref())?)
}

/// The caller's login name: `$USER`, else the password entry of the real uid, else the uid.
fn login_name() -> String {
    if let Ok(u) = std::env::var("USER")
        && !u.trim().is_empty()
    {
        return u;
    }
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives the use of `pwd`'s strings.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc == 0 && !out.is_null() && !pwd.pw_name.is_null() {
        // SAFETY: getpwuid_r succeeded, so pw_name is a NUL-terminated string inside `buf`.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        if let Ok(n) = name.to_str()
            && !n.is_empty()
        {
            return n.to_string();
        }
    }
    uid.to_string()
}

pub(crate) fn parse_timeout(text: &str) -> anyhow::Result<Duration> {
    let d = parse_duration(text).map_err(|e| anyhow::anyhow!("--timeout: {e}"))?;
    if d < Duration::from_millis(1) || d > Duration::from_secs(3600) {
        bail!("--timeout {text}: must be between 1ms and 1h");
    }
    Ok(d)
}

pub(crate) fn read_token(path: Option<&Path>) -> anyhow::Result<Option<String>> {
    let Some(p) = path else { return Ok(None) };
    let text = powerstack_file::read_to_string(p, "token file", powerstack_file::TEXT_MAX_BYTES)?;
    let token = text.trim();
    if token.is_empty() {
        bail!("the token file {} is empty", p.display());
    }
    if token.chars().any(|c| c.is_control() || c == ' ') {
        bail!("the token file {} holds more than one line or word", p.display());
    }
    Ok(Some(token.to_string()))
}

/// Checks a job id and returns it as a path segment.
fn job_segment(id: &str) -> anyhow::Result<String> {
    powerstack_agent::job::check_id(id)?;
    // Checked ids need no escaping, but stay safe if the rule ever widens.
    let mut s = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            s.push(b as char);
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    Ok(s)
}

/// `job begin` / `job end`: one POST, the agent's answer printed.
fn mark(conn: &AgentConnArgs, id: &str, what: &str, body: Option<&str>) -> anyhow::Result<()> {
    let segment = job_segment(id)?;
    let addr = Addr::parse(&conn.agent)?;
    let timeout = parse_timeout(&conn.timeout)?;
    let token = read_token(conn.token_file.as_deref())?;
    let path = format!("/v1/jobs/{segment}/{what}");
    let r = client::request(&addr, "POST", &path, body, token.as_deref(), timeout)?;
    if !r.is_success() {
        bail!("job {what} {id} on {addr}: {} (HTTP {})", r.message(), r.status);
    }
    let answer = r.body.trim();
    if answer.is_empty() {
        emit(&format!("job {id}: {what} marked on {addr}"))
    } else {
        emit(answer)
    }
}

/// The nodes to ask, in the order the command line gave them: `--nodes` and `--agents` each keep
/// their own order, and whichever of the two came first comes first.
fn targets(a: &JobQueryArgs) -> anyhow::Result<Vec<Target>> {
    let mut targets = fanout::targets(a.nodes.as_deref(), a.port, &a.agents)?;
    if agents_before_nodes(std::env::args()) {
        // fanout::targets puts the nodes first; the agents' part is the last `agents.len()`.
        let nodes = targets.len() - a.agents.len();
        targets.rotate_left(nodes);
    }
    Ok(targets)
}

/// Whether `--agents` comes before `--nodes` among `args` (the options only, up to `--`).
fn agents_before_nodes(args: impl IntoIterator<Item = String>) -> bool {
    for arg in args.into_iter().take_while(|a| a != "--") {
        let name = arg.split('=').next().unwrap_or_default();
        match name {
            "--agents" => return true,
            "--nodes" => return false,
            _ => {}
        }
    }
    false
}

/// A `--peak-window` checked before anything is asked, as the agents take it (`2s`, `500ms`).
fn peak_window(text: &str) -> anyhow::Result<String> {
    let us = parse_peak_window_us(text).map_err(|e| anyhow!("--peak-window: {e}"))?;
    Ok(format!("{us}us"))
}

/// `job query`.
fn query(a: &JobQueryArgs) -> anyhow::Result<()> {
    let segment = job_segment(&a.job)?;
    let timeout = parse_timeout(&a.timeout)?;
    let token = read_token(a.token_file.as_deref())?;
    let targets = targets(a)?;
    let format = a.format.unwrap_or_else(|| {
        if std::io::stdout().is_terminal() { JobFormat::Table } else { JobFormat::Json }
    });
    let path = match &a.peak_window {
        Some(w) => format!("/v1/jobs/{segment}?peak_window={}", peak_window(w)?),
        None => format!("/v1/jobs/{segment}"),
    };
    let rows = ask_all(targets, &path, token.as_deref(), timeout);
    let doc = query_document(&a.job, &rows);
    let text = match format {
        JobFormat::Table => table(&a.job, &rows, &doc.total),
        JobFormat::Csv => job_query_csv(&doc),
        JobFormat::Json => serde_json::to_string(&doc).context("encoding the job document")?,
    };
    if doc.total.data_presence != DataPresence::Complete {
        output::mark_partial();
    }
    emit(&text)
}

/// A figure for the table: `digits` decimals, `-` when missing.
fn cell(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

fn table(job: &str, rows: &[NodeAnswer], t: &JobTotalV1) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Job {job} on {} node(s): {}", t.nodes, t.status());
    let width = rows.iter().map(|r| r.hostname().chars().count()).max().unwrap_or(0).max(8);
    let _ = writeln!(
        out,
        "{:<width$} {:<8} {:>10} {:>10} {:>14} {:>9} {:>9} {:>9} {:>8} {:>9}  STATUS",
        "HOST",
        "DATA",
        "POWER (W)",
        "PEAK (W)",
        "ENERGY (J)",
        "CPU (W)",
        "MEM (W)",
        "GPU (W)",
        "SAMPLES",
        "TIME (s)",
    );
    let secs = |start: u64, end: u64| {
        if end > start { format!("{:.1}", (end - start) as f64 / 1e6) } else { "-".into() }
    };
    let mut line = |host: &str, r: Option<&JobResultV1>, status: &str, extra: [Option<f64>; 6]| {
        let (presence, samples, time) = match r {
            Some(r) => (
                r.data_presence.as_str(),
                r.samples.to_string(),
                secs(r.result_start_time, r.result_end_time),
            ),
            None => (DataPresence::None.as_str(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            out,
            "{host:<width$} {presence:<8} {:>10} {:>10} {:>14} {:>9} {:>9} {:>9} {samples:>8} {time:>9}  {status}",
            cell(extra[0], 2),
            cell(extra[1], 2),
            cell(extra[2], 3),
            cell(extra[3], 2),
            cell(extra[4], 2),
            cell(extra[5], 2),
        );
    };
    for row in rows {
        let figures = match row.result() {
            Some(r) => [
                known(r.node_power),
                known(r.peak_node_power),
                known(r.energy_joules),
                r.class_watts(DeviceClass::Cpu),
                r.class_watts(DeviceClass::Mem),
                r.class_watts(DeviceClass::Gpu),
            ],
            None => [None; 6],
        };
        line(row.hostname(), row.result(), &row.status(), figures);
    }
    let _ = writeln!(
        out,
        "{:<width$} {:<8} {:>10} {:>10} {:>14} {:>9} {:>9} {:>9} {:>8} {:>9}",
        "TOTAL",
        t.data_presence.as_str(),
        cell(known(t.node_power), 2),
        "-",
        cell(known(t.energy_joules), 3),
        cell(t.class_watts(DeviceClass::Cpu), 2),
        cell(t.class_watts(DeviceClass::Mem), 2),
        cell(t.class_watts(DeviceClass::Gpu), 2),
        t.samples,
        secs(t.result_start_time, t.result_end_time),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_of_agents_and_nodes_on_the_command_line_is_asked_first() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(agents_before_nodes(args(&["job", "query", "--agents", "a", "--nodes", "n"])));
        assert!(agents_before_nodes(args(&["job", "query", "--agents=a", "--nodes=n"])));
        assert!(!agents_before_nodes(args(&["job", "query", "--nodes", "n", "--agents", "a"])));
        assert!(!agents_before_nodes(args(&["job", "query", "--nodes", "n"])));
        assert!(!agents_before_nodes(args(&["job", "--", "--agents"])));
    }

    #[test]
    fn job_ids_are_checked() {
        assert_eq!(job_segment("f2Xy:1.a_b-c").unwrap(), "f2Xy:1.a_b-c");
        assert!(job_segment("").is_err());
        assert!(job_segment("a/b").is_err());
        assert!(job_segment("a b").is_err());
    }
}
