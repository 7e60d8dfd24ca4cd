//! Prometheus text exposition format (version 0.0.4) of a power report.
//!
//! Metric names follow `powerstack_<what>_<unit>[_total]` in base units. The output passes
//! `promtool check metrics`.

use std::fmt::Write as _;

use powerstack_model::{DomainInfo, PowerReport};

use crate::v1::{Origin, node_source_name};

/// Escapes a label value.
pub fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn labels(info: &DomainInfo) -> String {
    let mut s = format!("domain=\"{}\",index=\"{}\"", info.id.kind, info.id.index);
    if let Some(die) = info.id.die {
        let _ = write!(s, ",die=\"{die}\"");
    }
    s
}

/// Writes a metric family's `# HELP` and `# TYPE` lines.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The `powerstack_energy_joules_total` family: one series per domain with a counter.
fn energy_family(
    out: &mut String,
    catalog: &[DomainInfo],
    joules: impl IntoIterator<Item = Option<f64>>,
) {
    family(
        out,
        "powerstack_energy_joules_total",
        "counter",
        "Energy counted by a domain's hardware counter, extended across wraps, in joules.",
    );
    for (info, j) in catalog.iter().zip(joules) {
        if let Some(j) = j {
            let _ = writeln!(out, "powerstack_energy_joules_total{{{}}} {j}", labels(info));
        }
    }
}

/// Renders the energy counters (`powerstack energy`): `joules` by catalog index, `None` for a
/// domain without a counter.
pub fn energy(catalog: &[DomainInfo], joules: &[Option<f64>]) -> String {
    let mut out = String::new();
    energy_family(&mut out, catalog, joules.iter().copied());
    out
}

/// Renders a power report.
pub fn power(origin: &Origin, catalog: &[DomainInfo], report: &PowerReport) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "powerstack_power_watts",
        "gauge",
        "Mean power of a domain over the last interval, in watts.",
    );
    for (info, d) in catalog.iter().zip(&report.domains) {
        if let Some(w) = d.power_watts {
            let _ = writeln!(out, "powerstack_power_watts{{{}}} {w}", labels(info));
        }
    }
    energy_family(&mut out, catalog, report.domains.iter().map(|d| d.energy_joules));
    if let Some(node) = &report.node {
        family(
            &mut out,
            "powerstack_node_power_watts",
            "gauge",
            "Node power over the last interval, in watts.",
        );
        let _ = writeln!(
            out,
            "powerstack_node_power_watts{{source=\"{}\"}} {}",
            escape(&node_source_name(catalog, &node.source)),
            node.watts
        );
    }
    let limits: Vec<String> = catalog
        .iter()
        .flat_map(|info| {
            info.limits.iter().filter_map(move |l| {
                l.limit_watts.map(|w| {
                    format!(
                        "powerstack_power_limit_watts{{{},constraint=\"{}\"}} {w}",
                        labels(info),
                        escape(&l.name)
                    )
                })
            })
        })
        .collect();
    if !limits.is_empty() {
        family(
            &mut out,
            "powerstack_power_limit_watts",
            "gauge",
            "Power limit in force on a domain, in watts.",
        );
        for l in limits {
            let _ = writeln!(out, "{l}");
        }
    }
    family(
        &mut out,
        "powerstack_interval_seconds",
        "gauge",
        "Length of the measurement interval, in seconds.",
    );
    let _ = writeln!(out, "powerstack_interval_seconds {}", report.interval_s);
    simulated(&mut out, origin.simulated.as_deref());
    out
}

/// The `powerstack_simulated` family: 1 with the simulator profile as a label when the readings
/// come from simulated hardware, else 0 (with an empty profile).
pub fn simulated(out: &mut String, profile: Option<&str>) {
    family(
        out,
        "powerstack_simulated",
        "gauge",
        "1 when the readings come from simulated hardware (label: simulator profile), else 0.",
    );
    let flag = u8::from(profile.is_some());
    let label = escape(profile.unwrap_or(""));
    let _ = writeln!(out, "powerstack_simulated{{profile=\"{label}\"}} {flag}");
}
