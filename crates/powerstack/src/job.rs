//! `powerstack job ...`: mark jobs on a node agent, and query a job on many agents at once.
//!
//! `job query` asks every agent in parallel; a node that does not answer, or answers an error, is
//! a row saying so, never a failed query. The exit status is 3 when any row is not `Complete`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use powerstack_agent::client::{self, Addr};
use powerstack_agent::hostlist;
use powerstack_api::job::{DataPresence, JobResultV1};
use powerstack_model::duration::parse_duration;
use serde_json::{Map, Value, json};

use crate::cli::{AgentConnArgs, JobCommand, JobFormat, JobQueryArgs};
use crate::output::{self, emit};

/// The most agents asked at the same time.
const MAX_PARALLEL: usize = 64;

/// What a figure is when it cannot be given (as in the agent's documents).
const NOT_MEASURED: f64 = -1.0;

/// `powerstack job ...`.
pub fn run(cmd: &JobCommand) -> anyhow::Result<()> {
    match cmd {
        JobCommand::Begin(a) => {
            let user = match &a.user {
                Some(u) => u.clone(),
                None => login_name(),
            };
            let body = json!({ "user": user, "app": a.app }).to_string();
            mark(&a.conn, &a.id, "begin", Some(&body))
        }
        JobCommand::End(a) => mark(&a.conn, &a.id, "end", None),
        JobCommand::Query(a) => query(a),
    }
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

fn parse_timeout(text: &str) -> anyhow::Result<Duration> {
    let d = parse_duration(text).map_err(|e| anyhow::anyhow!("--timeout: {e}"))?;
    if d < Duration::from_millis(1) || d > Duration::from_secs(3600) {
        bail!("--timeout {text}: must be between 1ms and 1h");
    }
    Ok(d)
}

fn read_token(path: Option<&Path>) -> anyhow::Result<Option<String>> {
    let Some(p) = path else { return Ok(None) };
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("reading the token file {}", p.display()))?;
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

/// One agent to ask: the name it is shown under until it answers, and its address.
struct Target {
    label: String,
    addr: Addr,
}

/// The outcome for one node.
enum Outcome {
    /// A result document (kept as received, and parsed).
    Answer(Box<(Map<String, Value>, JobResultV1)>),
    /// Anything else: the status text.
    Failed(String),
}

struct Row {
    target: Target,
    outcome: Outcome,
}

impl Row {
    fn hostname(&self) -> &str {
        match &self.outcome {
            Outcome::Answer(a) if !a.1.hostname.is_empty() => &a.1.hostname,
            _ => &self.target.label,
        }
    }
    fn result(&self) -> Option<&JobResultV1> {
        match &self.outcome {
            Outcome::Answer(a) => Some(&a.1),
            Outcome::Failed(_) => None,
        }
    }
    fn presence(&self) -> DataPresence {
        self.result().map_or(DataPresence::None, |r| r.data_presence)
    }
    fn status(&self) -> String {
        match &self.outcome {
            Outcome::Answer(a) if a.1.running => "ok (running)".into(),
            Outcome::Answer(_) => "ok".into(),
            Outcome::Failed(s) => s.clone(),
        }
    }
}

fn targets(a: &JobQueryArgs) -> anyhow::Result<Vec<Target>> {
    let mut out = Vec::new();
    if let Some(expr) = &a.nodes {
        for host in hostlist::expand(expr)? {
            let hp = if host.contains(':') {
                format!("[{host}]:{}", a.port)
            } else {
                format!("{host}:{}", a.port)
            };
            let addr = Addr::parse(&hp).with_context(|| format!("node {host:?} in --nodes"))?;
            out.push(Target { label: host, addr });
        }
    }
    for text in &a.agents {
        if text.trim().is_empty() {
            bail!("--agents: empty address in the list");
        }
        let addr = Addr::parse(text)?;
        out.push(Target { label: addr.host(), addr });
    }
    if out.is_empty() {
        bail!("no agent to ask: give --agents or --nodes");
    }
    Ok(out)
}

/// Asks one agent for the job.
fn ask(addr: &Addr, path: &str, token: Option<&str>, timeout: Duration) -> Outcome {
    let r = match client::request(addr, "GET", path, None, token, timeout) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("unreachable: {e}")),
    };
    if r.status == 404 {
        return Outcome::Failed("no such job".into());
    }
    if !r.is_success() {
        return Outcome::Failed(format!("error {}: {}", r.status, r.message()));
    }
    let map = match serde_json::from_str::<Value>(&r.body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Outcome::Failed("invalid answer: not a JSON object".into()),
        Err(e) => return Outcome::Failed(format!("invalid answer: {e}")),
    };
    match serde_json::from_value::<JobResultV1>(Value::Object(map.clone())) {
        Ok(doc) => Outcome::Answer(Box::new((map, doc))),
        Err(e) => Outcome::Failed(format!("invalid answer: {e}")),
    }
}

/// Asks every target, at most [`MAX_PARALLEL`] at a time; rows in target order.
fn ask_all(targets: Vec<Target>, path: &str, token: Option<&str>, timeout: Duration) -> Vec<Row> {
    let n = targets.len();
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Outcome)>();
    std::thread::scope(|s| {
        for _ in 0..n.min(MAX_PARALLEL) {
            let tx = tx.clone();
            let (next, targets) = (&next, &targets);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(t) = targets.get(i) else { break };
                    if tx.send((i, ask(&t.addr, path, token, timeout))).is_err() {
                        break;
                    }
                }
            });
        }
    });
    drop(tx);
    let mut outcomes: Vec<Option<Outcome>> = (0..n).map(|_| None).collect();
    for (i, o) in rx {
        outcomes[i] = Some(o);
    }
    targets
        .into_iter()
        .zip(outcomes)
        .map(|(target, o)| Row {
            target,
            outcome: o.unwrap_or_else(|| Outcome::Failed("unreachable: not asked".into())),
        })
        .collect()
}

/// A figure that may be missing (negative).
fn known(x: f64) -> Option<f64> {
    (x.is_finite() && x >= 0.0).then_some(x)
}

/// Sum of the known figures; `-1` when none is known.
fn sum_known(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut any = false;
    let mut total = 0.0;
    for v in values.into_iter().filter_map(known) {
        any = true;
        total += v;
    }
    if any { total } else { NOT_MEASURED }
}

/// The figures of one class (`cpu_power_`, `mem_power_`, `gpu_power_`) by index.
fn class(r: &JobResultV1, prefix: &str) -> BTreeMap<u32, f64> {
    r.domain_power
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.parse::<u32>().ok()?, *v)))
        .collect()
}

/// Flux's single column for a class: the sum over its devices; 0 when the node has none, `-1`
/// when none of them could be measured.
fn class_sum(r: &JobResultV1, prefix: &str) -> f64 {
    let c = class(r, prefix);
    if c.is_empty() { 0.0 } else { sum_known(c.values().copied()) }
}

/// The TOTAL row.
struct Total {
    node_power: f64,
    energy_joules: f64,
    domain_power: BTreeMap<String, f64>,
    start: u64,
    end: u64,
    samples: u64,
    presence: DataPresence,
    answered: usize,
    nodes: usize,
}

fn total(rows: &[Row]) -> Total {
    let answered: Vec<&JobResultV1> = rows.iter().filter_map(Row::result).collect();
    let mut domain: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in &answered {
        for (k, v) in &r.domain_power {
            domain.entry(k.clone()).or_default().push(*v);
        }
    }
    let covered: Vec<&&JobResultV1> = answered.iter().filter(|r| r.result_end_time > 0).collect();
    let presence = if rows.iter().all(|r| r.presence() == DataPresence::Complete) {
        DataPresence::Complete
    } else if answered.iter().any(|r| r.data_presence != DataPresence::None) {
        DataPresence::Partial
    } else {
        DataPresence::None
    };
    Total {
        node_power: sum_known(answered.iter().map(|r| r.node_power)),
        energy_joules: sum_known(answered.iter().map(|r| r.energy_joules)),
        domain_power: domain.into_iter().map(|(k, v)| (k, sum_known(v))).collect(),
        start: covered.iter().map(|r| r.result_start_time).min().unwrap_or(0),
        end: covered.iter().map(|r| r.result_end_time).max().unwrap_or(0),
        samples: answered.iter().map(|r| r.samples).sum(),
        presence,
        answered: answered.len(),
        nodes: rows.len(),
    }
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
    let path = format!("/v1/jobs/{segment}");
    let rows = ask_all(targets, &path, token.as_deref(), timeout);
    let total = total(&rows);
    let text = match format {
        JobFormat::Table => table(&a.job, &rows, &total),
        JobFormat::Csv => csv(&rows, &total),
        JobFormat::Json => json_doc(&a.job, &rows, &total).to_string(),
    };
    if total.presence != DataPresence::Complete {
        output::mark_partial();
    }
    emit(&text)
}

/// A number for CSV and tables: up to 3 decimals, no trailing zeros; `-1` when missing.
fn num(x: f64) -> String {
    match known(x) {
        None => "-1".into(),
        Some(v) => {
            let s = format!("{v:.3}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s.is_empty() { "0".into() } else { s.to_string() }
        }
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// How many `cpu_power_N` columns: every socket any node reported, at least two.
fn cpu_columns(rows: &[Row]) -> u32 {
    rows.iter()
        .filter_map(Row::result)
        .filter_map(|r| class(r, "cpu_power_").keys().max().map(|m| m + 1))
        .max()
        .unwrap_or(0)
        .max(2)
}

fn csv(rows: &[Row], t: &Total) -> String {
    let ncpu = cpu_columns(rows);
    let mut out = String::from("hostname,node_power");
    for i in 0..ncpu {
        let _ = write!(out, ",cpu_power_{i}");
    }
    out.push_str(",gpu_power,mem_power,result_start_time,result_end_time,data_presence");
    out.push_str(",energy_joules,peak_node_power,samples,status\n");
    let mut line = |host: &str,
                    node: f64,
                    cpus: &BTreeMap<u32, f64>,
                    gpu: f64,
                    mem: f64,
                    start: u64,
                    end: u64,
                    presence: DataPresence,
                    energy: f64,
                    peak: f64,
                    samples: u64,
                    status: &str| {
        let _ = write!(out, "{},{}", csv_field(host), num(node));
        for i in 0..ncpu {
            let _ = write!(out, ",{}", num(cpus.get(&i).copied().unwrap_or(NOT_MEASURED)));
        }
        let _ = writeln!(
            out,
            ",{},{},{start},{end},{},{},{},{samples},{}",
            num(gpu),
            num(mem),
            presence.as_str(),
            num(energy),
            num(peak),
            csv_field(status)
        );
    };
    for row in rows {
        let status = row.status();
        match row.result() {
            Some(r) => line(
                row.hostname(),
                r.node_power,
                &class(r, "cpu_power_"),
                class_sum(r, "gpu_power_"),
                class_sum(r, "mem_power_"),
                r.result_start_time,
                r.result_end_time,
                r.data_presence,
                r.energy_joules,
                r.peak_node_power,
                r.samples,
                &status,
            ),
            None => line(
                row.hostname(),
                NOT_MEASURED,
                &BTreeMap::new(),
                NOT_MEASURED,
                NOT_MEASURED,
                0,
                0,
                DataPresence::None,
                NOT_MEASURED,
                NOT_MEASURED,
                0,
                &status,
            ),
        }
    }
    let cpus: BTreeMap<u32, f64> = t
        .domain_power
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("cpu_power_")?.parse().ok()?, *v)))
        .collect();
    let class_total = |prefix: &str| {
        let has = rows.iter().filter_map(Row::result).any(|r| !class(r, prefix).is_empty());
        let v = t.domain_power.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| *v);
        if has {
            sum_known(v)
        } else if t.answered > 0 {
            0.0
        } else {
            NOT_MEASURED
        }
    };
    let (gpu, mem) = (class_total("gpu_power_"), class_total("mem_power_"));
    line(
        "TOTAL",
        t.node_power,
        &cpus,
        gpu,
        mem,
        t.start,
        t.end,
        t.presence,
        t.energy_joules,
        NOT_MEASURED,
        t.samples,
        &total_status(t),
    );
    out
}

fn total_status(t: &Total) -> String {
    if t.answered == t.nodes {
        format!("results from all {} nodes", t.nodes)
    } else {
        format!("results from {} of {} nodes", t.answered, t.nodes)
    }
}

fn json_doc(job: &str, rows: &[Row], t: &Total) -> Value {
    let nodes: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut m = match &row.outcome {
                Outcome::Answer(a) => a.0.clone(),
                Outcome::Failed(_) => {
                    let mut m = Map::new();
                    m.insert("hostname".into(), json!(row.hostname()));
                    m.insert("job_id".into(), json!(job));
                    m.insert("node_power".into(), json!(NOT_MEASURED));
                    m.insert("energy_joules".into(), json!(NOT_MEASURED));
                    m.insert("peak_node_power".into(), json!(NOT_MEASURED));
                    m.insert("result_start_time".into(), json!(0));
                    m.insert("result_end_time".into(), json!(0));
                    m.insert("samples".into(), json!(0));
                    m.insert("data_presence".into(), json!(DataPresence::None.as_str()));
                    m
                }
            };
            m.insert("agent".into(), json!(row.target.addr.to_string()));
            m.insert("status".into(), json!(row.status()));
            Value::Object(m)
        })
        .collect();
    let mut total = Map::new();
    total.insert("hostname".into(), json!("TOTAL"));
    total.insert("node_power".into(), json!(t.node_power));
    total.insert("energy_joules".into(), json!(t.energy_joules));
    for (k, v) in &t.domain_power {
        total.insert(k.clone(), json!(v));
    }
    total.insert("result_start_time".into(), json!(t.start));
    total.insert("result_end_time".into(), json!(t.end));
    total.insert("samples".into(), json!(t.samples));
    total.insert("data_presence".into(), json!(t.presence.as_str()));
    total.insert("nodes".into(), json!(t.nodes));
    total.insert("nodes_answered".into(), json!(t.answered));
    json!({ "job_id": job, "nodes": nodes, "total": total })
}

/// A figure for the table: 2 decimals, `-` when missing.
fn cell(x: f64, digits: usize) -> String {
    known(x).map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

fn table(job: &str, rows: &[Row], t: &Total) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Job {job} on {} node(s): {}", t.nodes, total_status(t));
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
    let mut line = |host: &str, r: Option<&JobResultV1>, status: &str, extra: [f64; 6]| {
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
                r.node_power,
                r.peak_node_power,
                r.energy_joules,
                class_sum(r, "cpu_power_"),
                class_sum(r, "mem_power_"),
                class_sum(r, "gpu_power_"),
            ],
            None => [NOT_MEASURED; 6],
        };
        line(row.hostname(), row.result(), &row.status(), figures);
    }
    let sum_class = |prefix: &str| {
        sum_known(t.domain_power.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| *v))
    };
    let _ = writeln!(
        out,
        "{:<width$} {:<8} {:>10} {:>10} {:>14} {:>9} {:>9} {:>9} {:>8} {:>9}",
        "TOTAL",
        t.presence.as_str(),
        cell(t.node_power, 2),
        "-",
        cell(t.energy_joules, 3),
        cell(sum_class("cpu_power_"), 2),
        cell(sum_class("mem_power_"), 2),
        cell(sum_class("gpu_power_"), 2),
        t.samples,
        secs(t.start, t.end),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(num(410.5), "410.5");
        assert_eq!(num(4105.0), "4105");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(-1.0), "-1");
        assert_eq!(num(f64::NAN), "-1");
        assert_eq!(num(1.23456), "1.235");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("x\"y,"), "\"x\"\"y,\"");
    }

    #[test]
    fn sums_skip_missing_figures() {
        assert_eq!(sum_known([1.0, -1.0, 2.5]), 3.5);
        assert_eq!(sum_known([-1.0, -1.0]), -1.0);
        assert_eq!(sum_known([]), -1.0);
    }

    #[test]
    fn job_ids_are_checked() {
        assert_eq!(job_segment("f2Xy:1.a_b-c").unwrap(), "f2Xy:1.a_b-c");
        assert!(job_segment("").is_err());
        assert!(job_segment("a/b").is_err());
        assert!(job_segment("a b").is_err());
    }
}
