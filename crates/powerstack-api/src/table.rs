//! Human tables for a terminal.

use std::fmt::Write as _;

use crate::measure::MeasureV1;
use crate::v1::{ControlV1, DomainsV1, EnergyV1, PowerV1, TopologyV1, domain_name as name};

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}")).unwrap_or_else(|| "-".to_string())
}

fn banner(out: &mut String, what: &str, hostname: &str, simulated: &Option<String>) {
    let _ = write!(out, "{what} on {hostname}");
    if let Some(p) = simulated {
        let _ = write!(out, "  [SIMULATED hardware: profile {p}]");
    }
    out.push('\n');
}

/// Where the node figure comes from: `psys`, `sum of package-0 + memory-0`.
fn node_source(source: &Option<String>, parts: &[String]) -> String {
    match (source, parts.is_empty()) {
        (Some(s), true) => s.clone(),
        (Some(s), false) => format!("{s} of {}", parts.join(" + ")),
        (None, _) => "nothing measurable".into(),
    }
}

/// Power over one interval.
pub fn power(doc: &PowerV1) -> String {
    let mut out = String::new();
    banner(
        &mut out,
        &format!("Power over {:.0} ms", doc.interval_s * 1000.0),
        &doc.hostname,
        &doc.simulated_profile,
    );
    let _ = writeln!(
        out,
        "{:<18} {:>6} {:>11} {:>16}  SOURCE",
        "DOMAIN", "SOCKET", "POWER (W)", "ENERGY (J)"
    );
    for d in &doc.domains {
        let socket = d.socket.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<18} {:>6} {:>11} {:>16}  {}",
            name(&d.domain, d.index, d.die),
            socket,
            opt(d.power_watts, 2),
            opt(d.energy_joules, 3),
            source_text(&d.provider, &d.source)
        );
    }
    let src = node_source(&doc.node_source, &doc.node_parts);
    let _ = writeln!(
        out,
        "{:<18} {:>6} {:>11} {:>16}  {src}",
        "NODE",
        "",
        opt(doc.node_power_watts, 2),
        ""
    );
    for w in &doc.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// Energy counters.
pub fn energy(doc: &EnergyV1) -> String {
    let mut out = String::new();
    banner(&mut out, "Energy counters", &doc.hostname, &doc.simulated_profile);
    let _ = writeln!(out, "{:<18} {:>6} {:>18}  SOURCE", "DOMAIN", "SOCKET", "ENERGY (J)");
    for d in &doc.domains {
        let socket = d.socket.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<18} {:>6} {:>18}  {}",
            name(&d.domain, d.index, d.die),
            socket,
            opt(d.energy_joules, 6),
            source_text(&d.provider, &d.source)
        );
    }
    let _ = writeln!(
        out,
        "{:<18} {:>6} {:>18}  {}",
        "NODE",
        "",
        opt(doc.node_energy_joules, 6),
        doc.node_source.clone().unwrap_or_else(|| "nothing measurable".into())
    );
    for w in &doc.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// Domains and their controls.
pub fn domains(doc: &DomainsV1) -> String {
    let mut out = String::new();
    banner(&mut out, "Power domains", &doc.hostname, &doc.simulated_profile);
    let _ = writeln!(
        out,
        "{:<18} {:>6} {:<12} {:<11} CONTROLS",
        "DOMAIN", "SOCKET", "PROVIDER", "MEASURES"
    );
    for d in &doc.domains {
        let socket = d.socket.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
        let controls = if d.controls.is_empty() {
            "none".to_string()
        } else {
            d.controls
                .iter()
                .map(|ControlV1 { name, limit: c }| {
                    let mut s = format!("{name} {} W", opt(c.limit_watts, 1));
                    if c.min_watts.is_some() || c.max_watts.is_some() {
                        let _ = write!(s, " [{}..{}]", opt(c.min_watts, 1), opt(c.max_watts, 1));
                    }
                    if let Some(t) = c.time_window_s {
                        let _ = write!(s, " over {t:.3} s");
                    }
                    if c.enabled == Some(false) {
                        s.push_str(" (disabled)");
                    }
                    if c.locked {
                        s.push_str(" (locked)");
                    }
                    s
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let _ = writeln!(
            out,
            "{:<18} {:>6} {:<12} {:<11} {}",
            name(&d.domain, d.index, d.die),
            socket,
            d.provider,
            d.measurement,
            controls
        );
    }
    if !doc.sources.is_empty() {
        let _ = writeln!(out, "\n{:<12} {:<11} DETAIL", "SOURCE", "STATUS");
    }
    for s in &doc.sources {
        let detail = match (&s.detail, s.domains) {
            (Some(d), _) => d.clone(),
            (None, 1) => "1 domain".into(),
            (None, n) => format!("{n} domains"),
        };
        let _ = writeln!(out, "{:<12} {:<11} {detail}", s.source, s.status);
    }
    for w in &doc.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// CPU and GPU topology.
pub fn topology(doc: &TopologyV1) -> String {
    let mut out = String::new();
    banner(&mut out, "Topology", &doc.header.hostname, &doc.header.simulated_profile);
    if let Some(name) = &doc.cpu_model_name {
        let _ = writeln!(
            out,
            "CPU: {name} (vendor {}, family {}, model {:#x})",
            doc.cpu_vendor.as_deref().unwrap_or("?"),
            doc.cpu_family.unwrap_or(0),
            doc.cpu_model.unwrap_or(0)
        );
    }
    let _ = writeln!(
        out,
        "online CPUs: {}",
        if doc.online_cpus.is_empty() { "-" } else { &doc.online_cpus }
    );
    if !doc.offline_cpus.is_empty() {
        let _ = writeln!(out, "offline CPUs: {}", doc.offline_cpus);
    }
    for p in &doc.packages {
        let _ = writeln!(out, "package {}: {} cores, CPUs {}", p.id, p.cores, p.cpus);
    }
    for g in &doc.gpus {
        let socket = g.socket.map(|s| s.to_string()).unwrap_or_else(|| "unknown".into());
        let _ = writeln!(
            out,
            "gpu {}: socket {socket}, {}",
            g.index,
            source_text(&g.provider, &g.source)
        );
    }
    out
}

/// What a capping command did or would do.
pub fn cap_result(doc: &crate::cap::CapResultV1) -> String {
    let mut out = String::new();
    let what = if doc.dry_run {
        "Planned power limits (dry run: nothing written)"
    } else {
        "Power limits set"
    };
    banner(&mut out, what, &doc.header.hostname, &doc.header.simulated_profile);
    for r in &doc.recovered {
        let _ = writeln!(out, "recovered: {r}");
    }
    if let (Some(p), Some(cap)) = (&doc.policy, doc.node_cap_watts) {
        let _ = writeln!(
            out,
            "node cap {cap} W, policy {p}: {:.1} W charged first for what cannot be capped{}",
            doc.uncappable_watts.unwrap_or(0.0),
            if doc.clamped { "; below reach: the minimum was applied (--clamp)" } else { "" }
        );
    }
    let _ = writeln!(
        out,
        "{:<18} {:<11} {:>10} {:>10} {:>10}  SOURCE",
        "DOMAIN", "LIMIT", "BEFORE W", "NEW W", "READ W"
    );
    for w in &doc.writes {
        let _ = writeln!(
            out,
            "{:<18} {:<11} {:>10} {:>10.3} {:>10}  {}",
            name(&w.domain, w.index, None),
            w.constraint,
            opt(w.previous_watts, 3),
            w.requested_watts,
            opt(w.read_back_watts, 3),
            source_text(&w.provider, &w.source)
        );
    }
    if doc.writes.is_empty() {
        let _ = writeln!(out, "(nothing to write)");
    }
    if let Some(w) = doc.node_read_back_watts {
        let _ = writeln!(out, "node cap read back: {w:.1} W");
    }
    for w in &doc.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// The limits in force and who set them.
pub fn caps(doc: &crate::cap::CapsV1) -> String {
    let mut out = String::new();
    banner(&mut out, "Power limits", &doc.header.hostname, &doc.header.simulated_profile);
    let _ = writeln!(
        out,
        "{:<18} {:<11} {:>9} {:>21} {:>10} {:<8} SET BY",
        "DOMAIN", "LIMIT", "WATTS", "RANGE W", "WINDOW S", "STATE"
    );
    node_cap_range_line(&mut out, doc.node.as_ref());
    for c in &doc.controls {
        let state = match (c.limit.locked, c.limit.enabled) {
            (true, _) => "locked",
            (false, Some(false)) => "disabled",
            _ => "enabled",
        };
        let set_by = match &c.set_detail {
            Some(d) => format!("{} ({d})", c.set_by),
            None => c.set_by.clone(),
        };
        let _ = writeln!(
            out,
            "{:<18} {:<11} {:>9} {:>21} {:>10} {:<8} {}",
            name(&c.domain, c.index, None),
            c.constraint,
            opt(c.limit.limit_watts, 1),
            format!("{}..{}", opt(c.limit.min_watts, 1), opt(c.limit.max_watts, 1)),
            opt(c.limit.time_window_s, 3),
            state,
            set_by
        );
    }
    for w in &doc.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// The node cap range line of `cap show`, under the header (or why there is none).
fn node_cap_range_line(out: &mut String, node: Option<&crate::cap::NodeCapRangeV1>) {
    let _ = match node {
        Some(n) => writeln!(
            out,
            "{:<18} {:<11} {:>9.1} {:>21} {:>10} {:<8} {:.1} W uncappable{}",
            "node",
            "node cap",
            n.cap_in_force_watts,
            format!("{:.1}..{:.1}", n.min_watts, n.max_watts),
            "-",
            "in force",
            n.uncappable_watts,
            n.standing_watts.map(|w| format!(", {w:.1} W standing")).unwrap_or_default()
        ),
        None => writeln!(out, "node               node cap    (nothing can be capped)"),
    };
}

/// Frequency pools, the values in sysfs, and drift.
pub fn pools(doc: &crate::pools::PoolsV1) -> String {
    let mut out = String::new();
    banner(&mut out, "CPU frequency pools", &doc.header.hostname, &doc.header.simulated_profile);
    for (feature, status) in &doc.capabilities {
        let _ = writeln!(out, "{feature:<18} {status}");
    }
    if !doc.configured {
        let _ =
            writeln!(out, "no pool configuration applied: every CPU keeps its boot-time settings");
    }
    let _ = writeln!(out, "{:<14} {:<10} {:<16} PROFILE", "POOL", "KIND", "CPUS");
    for p in &doc.pools {
        let _ = writeln!(
            out,
            "{:<14} {:<10} {:<16} {}",
            p.name,
            p.kind,
            p.cpus,
            p.profile.as_deref().unwrap_or("-")
        );
    }
    let _ = writeln!(
        out,
        "{:<8} {:<8} {:<12} {:<8} {:<13} {:>9} {:>9} {:<20} C-STATES OFF",
        "POLICY", "CPUS", "POOL", "TYPE", "GOVERNOR", "MIN KHZ", "MAX KHZ", "EPP"
    );
    for p in &doc.policies {
        let n = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<8} {:<8} {:<12} {:<8} {:<13} {:>9} {:>9} {:<20} {}",
            format!("policy{}", p.policy),
            p.cpus,
            p.pool.as_deref().unwrap_or("-"),
            p.core_type,
            p.governor.as_deref().unwrap_or("-"),
            n(p.min_khz),
            n(p.max_khz),
            p.epp.as_deref().unwrap_or("-"),
            if p.disabled_cstates.is_empty() {
                "-".to_string()
            } else {
                p.disabled_cstates.join(",")
            }
        );
    }
    for u in &doc.uncore {
        let n = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "uncore {:<18} package {} {}..{} kHz",
            u.name,
            u.package,
            n(u.min_khz),
            n(u.max_khz)
        );
    }
    if doc.drift.is_empty() {
        if doc.configured {
            let _ = writeln!(out, "no drift: sysfs matches the configuration in force");
        }
    } else {
        let _ = writeln!(
            out,
            "DRIFT: {} setting(s) changed outside powerstack (pools apply puts them back):",
            doc.drift.len()
        );
        for d in &doc.drift {
            let _ = writeln!(out, "  {}: {} (configured {})", d.what, d.actual, d.expected);
        }
    }
    for w in &doc.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// What a pools change wrote.
pub fn pools_change(doc: &crate::pools::PoolsChangeV1) -> String {
    let mut out = String::new();
    let what = if doc.dry_run {
        "Planned frequency settings (dry run: nothing written)"
    } else {
        "Frequency settings written"
    };
    banner(&mut out, what, &doc.header.hostname, &doc.header.simulated_profile);
    for r in &doc.recovered {
        let _ = writeln!(out, "recovered: {r}");
    }
    if doc.writes.is_empty() {
        let _ = writeln!(out, "nothing to change: sysfs already matches");
    }
    for w in &doc.writes {
        let _ = writeln!(out, "{:<40} {:>22} -> {}", w.what, w.before, w.after);
    }
    for p in &doc.pools {
        let _ = writeln!(
            out,
            "pool {:<14} {:<10} cpus {:<16} profile {}",
            p.name,
            p.kind,
            p.cpus,
            p.profile.as_deref().unwrap_or("-")
        );
    }
    out
}

/// A domain's provider and source for a table: `powercap /sys/...`, or the source alone when it
/// names its provider already (`pm_counters energy`, not `pm_counters pm_counters energy`).
fn source_text(provider: &str, source: &str) -> String {
    match source.strip_prefix(provider) {
        Some(rest) if rest.is_empty() || rest.starts_with(' ') => source.to_string(),
        _ => format!("{provider} {source}"),
    }
}

/// `powerstack measure`: what the node used while a command ran, like `perf stat`'s summary.
pub fn measure(doc: &MeasureV1) -> String {
    let mut out = String::new();
    let what = format!("Energy of `{}`", doc.command.join(" "));
    banner(&mut out, &what, &doc.header.hostname, &doc.header.simulated_profile);
    let _ = writeln!(
        out,
        "{}, {:.3} s, {} samples every {:.0} ms",
        doc.ended(),
        doc.duration_s,
        doc.samples,
        doc.interval_s * 1000.0
    );
    let row = |name: &str, energy, mean, peak, source: &str| {
        format!(
            "{name:<18} {:>14} {:>12} {:>12}  {source}\n",
            opt(energy, 3),
            opt(mean, 2),
            opt(peak, 2)
        )
    };
    let _ = writeln!(
        out,
        "{:<18} {:>14} {:>12} {:>12}  SOURCE",
        "DOMAIN", "ENERGY (J)", "MEAN (W)", "PEAK (W)"
    );
    for d in &doc.domains {
        let source = source_text(&d.provider, &d.source);
        out.push_str(&row(&d.name(), d.energy_joules, d.mean_watts, d.peak_watts, &source));
    }
    let (energy, mean, peak) = (doc.node_energy_joules, doc.node_mean_watts, doc.node_peak_watts);
    out.push_str(&row("NODE", energy, mean, peak, &node_source(&doc.node_source, &doc.node_parts)));
    for w in &doc.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cap::{CAPS_SCHEMA, CapsV1, NodeCapRangeV1};
    use crate::v1::{HeaderV1, Origin};

    #[test]
    fn cap_show_prints_the_node_cap_range_or_that_nothing_can_be_capped() {
        let origin = Origin { hostname: "n01".into(), simulated: None };
        let mut doc = CapsV1 {
            header: HeaderV1::new(CAPS_SCHEMA, &origin),
            controls: Vec::new(),
            node: Some(NodeCapRangeV1 {
                min_watts: 180.25,
                max_watts: 420.0,
                uncappable_watts: 30.0,
                cap_in_force_watts: 330.0,
                standing_watts: None,
            }),
            warnings: Vec::new(),
        };
        let text = caps(&doc);
        let line = text.lines().find(|l| l.starts_with("node ")).unwrap_or_default();
        assert!(line.contains("node cap") && line.contains("330.0"), "{text}");
        assert!(line.contains("180.2..420.0") && line.contains("30.0 W uncappable"), "{text}");
        doc.node = None;
        assert!(caps(&doc).contains("(nothing can be capped)"));
    }

    #[test]
    fn a_source_that_names_its_provider_is_not_prefixed_again() {
        assert_eq!(source_text("pm_counters", "pm_counters energy"), "pm_counters energy");
        assert_eq!(
            source_text("powercap", "/sys/class/powercap/intel-rapl:0"),
            "powercap /sys/class/powercap/intel-rapl:0"
        );
        assert_eq!(source_text("hwmon", "hwmonitor"), "hwmon hwmonitor");
    }
}
