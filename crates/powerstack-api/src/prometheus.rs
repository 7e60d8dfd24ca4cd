//! Prometheus text exposition format (version 0.0.4) of a power report.
//!
//! Metric names follow `powerstack_<what>_<unit>[_total]` in base units. The output passes
//! `promtool check metrics`.

use std::fmt::Write as _;

use powerstack_model::{DomainInfo, PowerLimit, PowerReport};

use crate::v1::{Origin, node_source_name};

/// A sample value: rounded to the millionth of its unit (µJ, µW, µs: below any counter's
/// resolution), then in its shortest form, so that arithmetic's last bits (`3604865.2800000003`)
/// are not printed; `NaN`, `+Inf` and `-Inf` as Prometheus writes them.
pub fn value(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    // Past 2^53 µ-units a double holds no millionths to round.
    let rounded = if x.abs() < 9e9 { (x * 1e6).round() / 1e6 } else { x };
    // -0 prints as 0.
    format!("{}", rounded + 0.0)
}

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
            let _ =
                writeln!(out, "powerstack_energy_joules_total{{{}}} {}", labels(info), value(j));
        }
    }
}

/// Renders the energy counters (`powerstack energy`): `joules` by catalog index, `None` for a
/// domain without a counter; and whether they are simulated, as [`power`] says it.
pub fn energy(origin: &Origin, catalog: &[DomainInfo], joules: &[Option<f64>]) -> String {
    let mut out = String::new();
    energy_family(&mut out, catalog, joules.iter().copied());
    simulated(&mut out, origin.simulated.as_deref());
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
            let _ = writeln!(out, "powerstack_power_watts{{{}}} {}", labels(info), value(w));
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
            value(node.watts)
        );
    }
    limit_families(&mut out, catalog);
    family(
        &mut out,
        "powerstack_interval_seconds",
        "gauge",
        "Length of the measurement interval, in seconds.",
    );
    let _ = writeln!(out, "powerstack_interval_seconds {}", value(report.interval_s));
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

/// The limits: `powerstack_power_limit_watts` for each limit in force (a limit the hardware says
/// is disabled is set but not in force, and is not in it), and `powerstack_power_limit_enabled`
/// (1 or 0) for each limit whose enable the hardware reports.
fn limit_families(out: &mut String, catalog: &[DomainInfo]) {
    let series = |pick: &dyn Fn(&PowerLimit) -> Option<String>| -> Vec<String> {
        let mut lines = Vec::new();
        for info in catalog {
            for l in &info.limits {
                if let Some(v) = pick(l) {
                    let name = escape(&l.name);
                    lines.push(format!("{{{},constraint=\"{name}\"}} {v}", labels(info)));
                }
            }
        }
        lines
    };
    let in_force = series(&|l| match (l.limit_watts, l.enabled) {
        (Some(w), Some(true) | None) => Some(value(w)),
        _ => None,
    });
    let enabled = series(&|l| l.enabled.map(|e| u8::from(e).to_string()));
    for (name, help, lines) in [
        (
            "powerstack_power_limit_watts",
            "Power limit in force on a domain, in watts (a disabled limit is not in force).",
            in_force,
        ),
        (
            "powerstack_power_limit_enabled",
            "1 when a domain's power limit is enabled, 0 when it is set but disabled.",
            enabled,
        ),
    ] {
        if lines.is_empty() {
            continue;
        }
        family(out, name, "gauge", help);
        for l in lines {
            let _ = writeln!(out, "{name}{l}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_printed_without_the_last_bits_of_arithmetic() {
        assert_eq!(value(3_604_865.280_000_000_3), "3604865.28");
        assert_eq!(value(0.1 + 0.2), "0.3");
        assert_eq!(value(150.0), "150");
        assert_eq!(value(-0.0), "0");
        assert_eq!(value(1e-9), "0");
        assert_eq!(value(0.000_061_035), "0.000061");
        assert_eq!(value(1.5e12), "1500000000000");
        assert_eq!(value(f64::NAN), "NaN");
        assert_eq!(value(f64::INFINITY), "+Inf");
        assert_eq!(value(f64::NEG_INFINITY), "-Inf");
    }
}
