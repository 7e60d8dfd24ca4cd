//! The print calls, in Variorum's layouts (its Intel and GPU tags and columns), for the data
//! powerstack has: a tabular form (a header line per tag, then a line per domain, fields
//! separated by spaces) and a verbose form (`TAG Name: value, ...`). Written to the C program's
//! `stdout` (its stdio buffer, so the lines keep their place among the program's own). Variorum's
//! MSR `Offset` and `Bits` columns are `-`: powerstack reads the kernel's counters (or
//! simulated ones), not raw registers; a value that could not be read is `-`, never a number.

use std::ffi::{CString, c_int};

use powerstack_model::{DomainInfo, DomainKind};

use crate::node::{call, with_node};

/// One printed line: a tag and its named fields.
struct Row {
    tag: &'static str,
    fields: Vec<(&'static str, String)>,
}

/// A number as Variorum prints it (`%lf`), or `-` when unknown.
fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.6}")).unwrap_or_else(|| "-".into())
}

/// The rows in the tabular form: a header line before the first row of each tag.
fn tabular(rows: &[Row]) -> String {
    let mut out = String::new();
    let mut tags: Vec<&str> = rows.iter().map(|r| r.tag).collect();
    tags.dedup();
    for tag in tags {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.tag == tag).collect();
        let names: Vec<&str> = mine[0].fields.iter().map(|f| f.0).collect();
        out.push_str(&format!("{tag} {}\n", names.join(" ")));
        for r in mine {
            let values: Vec<&str> = r.fields.iter().map(|f| f.1.as_str()).collect();
            out.push_str(&format!("{tag} {}\n", values.join(" ")));
        }
    }
    out
}

/// The rows in the verbose form: `TAG Name: value, Name: value`.
fn verbose(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        let fields: Vec<String> = r.fields.iter().map(|(n, v)| format!("{n}: {v}")).collect();
        out.push_str(&format!("{} {}\n", r.tag, fields.join(", ")));
    }
    out
}

/// Writes `text` to the C program's `stdout`.
pub(crate) fn emit(text: &str) {
    let Ok(c) = CString::new(text) else { return };
    // SAFETY: a constant format taking one NUL-terminated string, which lives for the call.
    unsafe { libc::printf(c"%s".as_ptr(), c.as_ptr()) };
}

/// The domains Variorum's print calls report: sockets, memory and GPUs, in catalog order, with
/// their catalog index.
fn printed(catalog: &[DomainInfo]) -> impl Iterator<Item = (usize, &DomainInfo)> {
    catalog.iter().enumerate().filter(|(_, d)| {
        matches!(d.id.kind, DomainKind::Package | DomainKind::Memory | DomainKind::Gpu)
    })
}

/// The socket a GPU is attached to, or `-` when unknown.
fn gpu_socket(d: &DomainInfo) -> String {
    d.socket.map(|s| s.to_string()).unwrap_or_else(|| "-".into())
}

fn power_rows(long: bool) -> Result<Vec<Row>, powerstack::ffi::Failure> {
    with_node(|s| {
        let report = s.power();
        let since = s.since_first_s();
        let host = s.node.origin.hostname.clone();
        let catalog = s.node.discovery.platform.catalog();
        let mut rows = Vec::new();
        for (i, d) in printed(catalog) {
            let p = report.domains.get(i);
            let watts = num(p.and_then(|p| p.power_watts));
            let joules = num(p.and_then(|p| p.energy_joules));
            let (tag, socket) = match d.id.kind {
                DomainKind::Package => ("_PACKAGE_ENERGY_STATUS", d.id.index.to_string()),
                DomainKind::Memory => ("_DRAM_ENERGY_STATUS", d.id.index.to_string()),
                _ => {
                    let fields = vec![
                        ("Host", host.clone()),
                        ("Socket", gpu_socket(d)),
                        ("DeviceID", d.id.index.to_string()),
                        (if long { "Power" } else { "Power_W" }, watts),
                    ];
                    rows.push(Row { tag: "_GPU_POWER_USAGE", fields });
                    continue;
                }
            };
            let fields = if long {
                vec![
                    ("Host", host.clone()),
                    ("Socket", socket),
                    ("Energy", format!("{joules} J")),
                    ("Power", format!("{watts} W")),
                    ("Elapsed", format!("{} sec", num(Some(report.interval_s)))),
                    ("Timestamp", format!("{} sec", num(Some(since)))),
                ]
            } else {
                vec![
                    ("Offset", "-".into()),
                    ("Host", host.clone()),
                    ("Socket", socket),
                    ("Bits", "-".into()),
                    ("Energy_J", joules),
                    ("Power_W", watts),
                    ("Elapsed_sec", num(Some(report.interval_s))),
                    ("Timestamp_sec", num(Some(since))),
                ]
            };
            rows.push(Row { tag, fields });
        }
        Ok(rows)
    })
}

/// `variorum_print_power`: each socket's package and DRAM energy and power, and each GPU's
/// power, measured as `variorum_get_power_json` measures (never a first-call 0 W).
#[unsafe(no_mangle)]
pub extern "C" fn variorum_print_power() -> c_int {
    call("variorum_print_power", || power_rows(false).map(|r| emit(&tabular(&r))))
}

/// `variorum_print_verbose_power`: [`variorum_print_power`] as `Name: value` lines.
#[unsafe(no_mangle)]
pub extern "C" fn variorum_print_verbose_power() -> c_int {
    call("variorum_print_verbose_power", || power_rows(true).map(|r| emit(&verbose(&r))))
}

/// The limit named `name` of `d`: its value and time window.
fn limit(d: &DomainInfo, name: &str) -> (Option<f64>, Option<f64>) {
    d.limits
        .iter()
        .find(|l| l.name == name)
        .map(|l| (l.limit_watts, l.time_window_s))
        .unwrap_or((None, None))
}

fn limit_rows() -> Result<Vec<Row>, powerstack::ffi::Failure> {
    with_node(|s| {
        let platform = &mut s.node.discovery.platform;
        crate::node::warn(platform.refresh_limits().iter().map(ToString::to_string));
        let host = s.node.origin.hostname.clone();
        let mut rows = Vec::new();
        for (_, d) in printed(platform.catalog()).filter(|(_, d)| !d.limits.is_empty()) {
            let socket = d.id.index.to_string();
            let (tag, fields) = match d.id.kind {
                DomainKind::Package => {
                    let (pl1, tw1) = limit(d, "long_term");
                    let (pl2, tw2) = limit(d, "short_term");
                    let fields = vec![
                        ("Offset", "-".into()),
                        ("Host", host.clone()),
                        ("Socket", socket),
                        ("Bits", "-".into()),
                        ("PowerLimit1_W", num(pl1)),
                        ("TimeWindow1_sec", num(tw1)),
                        ("PowerLimit2_W", num(pl2)),
                        ("TimeWindow2_sec", num(tw2)),
                    ];
                    ("_PACKAGE_POWER_LIMIT", fields)
                }
                DomainKind::Memory => {
                    let (pl, tw) = limit(d, "long_term");
                    let fields = vec![
                        ("Offset", "-".into()),
                        ("Host", host.clone()),
                        ("Socket", socket),
                        ("Bits", "-".into()),
                        ("PowerLimit_W", num(pl)),
                        ("TimeWindow_sec", num(tw)),
                    ];
                    ("_DRAM_POWER_LIMIT", fields)
                }
                _ => {
                    let fields = vec![
                        ("Host", host.clone()),
                        ("Socket", gpu_socket(d)),
                        ("DeviceID", d.id.index.to_string()),
                        ("PowerLimit_W", num(limit(d, "cap").0)),
                    ];
                    ("_GPU_POWER_LIMIT", fields)
                }
            };
            rows.push(Row { tag, fields });
        }
        Ok(rows)
    })
}

/// `variorum_print_power_limit`: each socket's long- and short-term limits (PL1, PL2) with
/// their windows, each memory limit and each GPU cap, as the hardware holds them now.
#[unsafe(no_mangle)]
pub extern "C" fn variorum_print_power_limit() -> c_int {
    call("variorum_print_power_limit", || limit_rows().map(|r| emit(&tabular(&r))))
}

/// `variorum_print_verbose_power_limit`: [`variorum_print_power_limit`] as `Name: value` lines.
#[unsafe(no_mangle)]
pub extern "C" fn variorum_print_verbose_power_limit() -> c_int {
    call("variorum_print_verbose_power_limit", || limit_rows().map(|r| emit(&verbose(&r))))
}

fn energy_rows() -> Result<Vec<Row>, powerstack::ffi::Failure> {
    with_node(|s| {
        let platform = &mut s.node.discovery.platform;
        let joules = platform.sample().joules();
        crate::node::warn(platform.take_warnings().iter().map(ToString::to_string));
        let host = s.node.origin.hostname.clone();
        let rows = printed(platform.catalog())
            .map(|(i, d)| {
                let energy = num(joules.get(i).copied().flatten());
                let (tag, mut fields) = match d.id.kind {
                    DomainKind::Package => {
                        ("_PACKAGE_ENERGY", vec![("Socket", d.id.index.to_string())])
                    }
                    DomainKind::Memory => {
                        ("_DRAM_ENERGY", vec![("Socket", d.id.index.to_string())])
                    }
                    _ => (
                        "_GPU_ENERGY",
                        vec![("Socket", gpu_socket(d)), ("DeviceID", d.id.index.to_string())],
                    ),
                };
                fields.insert(0, ("Host", host.clone()));
                fields.push(("Energy_J", energy));
                Row { tag, fields }
            })
            .collect();
        Ok(rows)
    })
}

/// `variorum_print_energy`: each socket's package and DRAM energy and each GPU's, in joules
/// since the counters started (wrap-extended).
#[unsafe(no_mangle)]
pub extern "C" fn variorum_print_energy() -> c_int {
    call("variorum_print_energy", || energy_rows().map(|r| emit(&tabular(&r))))
}

/// `variorum_print_verbose_energy`: [`variorum_print_energy`] as `Name: value` lines.
#[unsafe(no_mangle)]
pub extern "C" fn variorum_print_verbose_energy() -> c_int {
    call("variorum_print_verbose_energy", || energy_rows().map(|r| emit(&verbose(&r))))
}
