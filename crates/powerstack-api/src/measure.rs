//! `powerstack measure`: the energy and the mean and peak power of a node and of each of its
//! domains while a command ran (`powerstack.measure.v1`), as JSON, CSV and Prometheus text. (Its
//! table is [`crate::table::measure`]; its Variorum form, [`crate::variorum::power`] of the mean
//! power.)

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::job_csv::{field, num_digits};
use crate::prometheus::{escape, family, simulated, value};
use crate::v1::HeaderV1;

/// Schema name of [`MeasureV1`].
pub const MEASURE_SCHEMA: &str = "powerstack.measure.v1";

/// `powerstack measure --format json`: a command's run, measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeasureV1 {
    /// Which document, and which node it speaks of.
    #[serde(flatten)]
    pub header: HeaderV1,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// The command's exit status, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended the command, when one did.
    pub signal: Option<i32>,
    /// The first reading (just before the command started), µs since the Unix epoch.
    pub start_us: i64,
    /// The last reading (just after it ended), µs since the Unix epoch.
    pub end_us: i64,
    /// Time between the first and the last reading, seconds (monotonic clock).
    pub duration_s: f64,
    /// How often power was sampled for the peaks, seconds.
    pub interval_s: f64,
    /// Readings taken, the first and the last included.
    pub samples: u64,
    /// Node energy over the run, joules; `null` when nothing measured it.
    pub node_energy_joules: Option<f64>,
    /// The node's mean power over the run, watts: its energy over the duration (a counter with
    /// hardware timestamps timed by them).
    pub node_mean_watts: Option<f64>,
    /// The highest node power over one sampling interval, watts.
    pub node_peak_watts: Option<f64>,
    /// Where the node figure comes from, as in `powerstack.power.v1`.
    pub node_source: Option<String>,
    /// With `node_source` = `sum`: the domains added up.
    pub node_parts: Vec<String>,
    /// Every domain.
    pub domains: Vec<DomainMeasureV1>,
    /// What could not be read, one line each.
    pub warnings: Vec<String>,
}

/// One domain in [`MeasureV1`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DomainMeasureV1 {
    /// Kind: `node`, `platform`, `package`, `core`, `uncore`, `memory`, `gpu`.
    pub domain: String,
    /// Socket number (per-socket kinds), GPU number (gpu) or 0.
    pub index: u32,
    /// Die within a multi-die package.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub die: Option<u32>,
    /// Socket the domain is attached to, when known.
    pub socket: Option<u32>,
    /// Energy over the run, joules: the difference of the counter (extended across wraps) at
    /// both ends, or, for a power sensor, its readings added up over time.
    pub energy_joules: Option<f64>,
    /// Mean power over the run, watts: the energy over the duration (a counter with hardware
    /// timestamps timed by them).
    pub mean_watts: Option<f64>,
    /// The highest power over one sampling interval, watts.
    pub peak_watts: Option<f64>,
    /// The provider that measured it.
    pub provider: String,
    /// Where the reading comes from.
    pub source: String,
}

impl DomainMeasureV1 {
    /// Its name: `package-0`, `package-0-die-1`, `node`, `platform`.
    pub fn name(&self) -> String {
        crate::v1::domain_name(&self.domain, self.index, self.die)
    }
}

impl MeasureV1 {
    /// How the command ended: `exit status N`, `killed by signal N`, or `status unknown`.
    pub fn ended(&self) -> String {
        match (self.exit_code, self.signal) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("killed by signal {s}{}", signal_name(s)),
            (None, None) => "status unknown".into(),
        }
    }
}

/// ` (SIGINT)` for the signals a person sends a command, else nothing.
fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => " (SIGHUP)",
        2 => " (SIGINT)",
        9 => " (SIGKILL)",
        15 => " (SIGTERM)",
        _ => "",
    }
}

/// CSV: `domain,energy_joules,mean_watts,peak_watts,duration_s,exit_code`, a row per domain and
/// the `node` row last; a figure that cannot be given is `-1` (as in `job query`'s CSV).
pub fn csv(doc: &MeasureV1) -> String {
    let mut out = String::from("domain,energy_joules,mean_watts,peak_watts,duration_s,exit_code\n");
    let exit = doc.exit_code.map_or_else(|| "-1".to_string(), |c| c.to_string());
    let figure = |v: Option<f64>| num_digits(v.unwrap_or(-1.0), 6);
    let rows =
        doc.domains.iter().map(|d| (d.name(), d.energy_joules, d.mean_watts, d.peak_watts)).chain(
            [(
                "NODE".to_string(),
                doc.node_energy_joules,
                doc.node_mean_watts,
                doc.node_peak_watts,
            )],
        );
    for (name, energy, mean, peak) in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{exit}",
            field(&name),
            figure(energy),
            figure(mean),
            figure(peak),
            num_digits(doc.duration_s, 6)
        );
    }
    out
}

/// One gauge family: `name{domain=...,index=...} value` for each domain that has a value, then
/// the node's (`domain="NODE"`).
fn gauges(
    out: &mut String,
    doc: &MeasureV1,
    name: &str,
    help: &str,
    of: impl Fn(&DomainMeasureV1) -> Option<f64>,
    node: Option<f64>,
) {
    family(out, name, "gauge", help);
    for d in &doc.domains {
        if let Some(v) = of(d) {
            let die = d.die.map(|die| format!(",die=\"{die}\"")).unwrap_or_default();
            let _ = writeln!(
                out,
                "{name}{{domain=\"{}\",index=\"{}\"{die}}} {}",
                escape(&d.domain),
                d.index,
                value(v)
            );
        }
    }
    if let Some(v) = node {
        let _ = writeln!(out, "{name}{{domain=\"NODE\",index=\"0\"}} {}", value(v));
    }
}

/// Prometheus text exposition (for a textfile collector): energy, mean and peak power of every
/// domain and of the node (`domain="NODE"`), the run's duration and the command's exit status.
pub fn prometheus(doc: &MeasureV1) -> String {
    let mut out = String::new();
    gauges(
        &mut out,
        doc,
        "powerstack_measure_energy_joules",
        "Energy used while the command ran, in joules.",
        |d| d.energy_joules,
        doc.node_energy_joules,
    );
    gauges(
        &mut out,
        doc,
        "powerstack_measure_mean_power_watts",
        "Mean power while the command ran, in watts.",
        |d| d.mean_watts,
        doc.node_mean_watts,
    );
    gauges(
        &mut out,
        doc,
        "powerstack_measure_peak_power_watts",
        "Highest power over one sampling interval while the command ran, in watts.",
        |d| d.peak_watts,
        doc.node_peak_watts,
    );
    family(&mut out, "powerstack_measure_duration_seconds", "gauge", "How long the command ran.");
    let _ = writeln!(out, "powerstack_measure_duration_seconds {}", value(doc.duration_s));
    if let Some(c) = doc.exit_code {
        family(&mut out, "powerstack_measure_exit_code", "gauge", "The command's exit status.");
        let _ = writeln!(out, "powerstack_measure_exit_code {c}");
    }
    simulated(&mut out, doc.header.simulated_profile.as_deref());
    out
}

#[cfg(test)]
mod tests;
