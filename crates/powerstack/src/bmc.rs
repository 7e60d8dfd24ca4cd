//! `powerstack bmc ...`: arguments in, `powerstack_redfish::BlockingBmc` calls, tables or JSON
//! out.

use std::time::{Duration, Instant};

use anyhow::bail;
use powerstack_model::duration::parse_duration;
use powerstack_redfish::{
    Auth, BlockingBmc, BmcConfig, ChassisReadings, Energy, EnergyMeter, Limit, LimitApplied,
    LimitRequest, SetPoint, Source, SystemPower, Transition, TransitionOptions, TransitionOutcome,
};
use serde_json::{Value, json};

use crate::cli::{BmcArgs, BmcCapArgs, BmcCommand, BmcEnergyArgs, BmcFormat, BmcTransitionArgs};
use crate::output::{self, emit};

/// The environment variable that may hold the BMC's password.
const PASSWORD_ENV: &str = "POWERSTACK_BMC_PASSWORD";

/// `powerstack bmc ...`.
pub fn run(a: &BmcArgs) -> anyhow::Result<()> {
    let config = config_of(a)?;
    let format = a.format.unwrap_or_else(|| match output::format(None) {
        crate::cli::Format::Table => BmcFormat::Table,
        _ => BmcFormat::Json,
    });
    let bmc = BlockingBmc::new(&config)?;
    match &a.command {
        BmcCommand::Power => power(&bmc, format),
        BmcCommand::Energy(e) => energy(&bmc, e, format),
        BmcCommand::Limits => limits(&bmc, format),
        BmcCommand::Cap(c) => cap(&bmc, c, format),
        BmcCommand::State => state(&bmc, format),
        BmcCommand::Transition(t) => transition(&bmc, t, format),
    }
}

fn duration(flag: &str, text: &str) -> anyhow::Result<Duration> {
    let d = parse_duration(text).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    if d < Duration::from_millis(1) {
        bail!("{flag} {text}: must be at least 1ms");
    }
    Ok(d)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The password: the first line of --password-file, else `POWERSTACK_BMC_PASSWORD`.
fn password(a: &BmcArgs) -> anyhow::Result<String> {
    if let Some(path) = &a.password_file {
        let text = powerstack_file::read_to_string(
            path,
            "password file",
            powerstack_file::TEXT_MAX_BYTES,
        )?;
        return Ok(text.lines().next().unwrap_or_default().to_string());
    }
    std::env::var(PASSWORD_ENV).map_err(|_| {
        anyhow::anyhow!("--user needs a password: give --password-file FILE or set {PASSWORD_ENV}")
    })
}

/// The client's configuration from the flags.
fn config_of(a: &BmcArgs) -> anyhow::Result<BmcConfig> {
    let auth = match &a.user {
        None if a.session => bail!("--session needs --user (and a password)"),
        None => Auth::None,
        Some(user) => {
            let password = password(a)?;
            let user = user.clone();
            if a.session {
                Auth::Session { user, password }
            } else {
                Auth::Basic { user, password }
            }
        }
    };
    let timeout = duration("--timeout", &a.timeout)?;
    Ok(BmcConfig {
        auth,
        ca_file: a.ca.clone(),
        insecure: a.insecure,
        timeout_ms: millis(timeout),
        ..BmcConfig::new(a.url.clone())
    })
}

/// Columns aligned on their widest cell; the first row is the header.
fn grid(rows: &[Vec<String>]) -> String {
    let mut widths = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let w = cell.chars().count();
            match widths.get_mut(i) {
                Some(width) => *width = w.max(*width),
                None => widths.push(w),
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn source_text(s: &Source) -> String {
    format!("{} {}", s.uri, s.property)
}

fn source_json(s: &Source) -> Value {
    json!({"uri": s.uri, "property": s.property})
}

/// Warnings for what the BMC could not give; the output is then partial (exit 3).
fn report_problems(problems: &[powerstack_redfish::Error]) {
    for problem in problems {
        eprintln!("warning: {problem}");
    }
    if !problems.is_empty() {
        output::mark_partial();
    }
}

fn energy_json(energy: Option<&Energy>) -> Value {
    match energy {
        Some(Energy::Counter { joules, source }) => {
            json!({"joules": joules, "source": source_json(source)})
        }
        Some(Energy::IntegrateFromPower) => json!("integrate_from_power"),
        None => Value::Null,
    }
}

fn chassis_power_json(c: &ChassisReadings) -> Value {
    let power: Vec<Value> = c
        .power
        .iter()
        .map(|p| json!({"watts": p.watts, "source": source_json(&p.source)}))
        .collect();
    let sensors: Vec<Value> = c
        .sensors
        .iter()
        .map(|s| {
            json!({"id": s.id, "kind": format!("{:?}", s.kind).to_lowercase(),
            "value": s.value, "physical_context": s.physical_context,
            "chassis_total": s.chassis_total, "source": source_json(&s.source)})
        })
        .collect();
    json!({"chassis": c.id, "uri": c.uri, "power_watts": c.power_watts(), "power": power,
           "energy": energy_json(c.energy.as_ref()), "capacity_watts": c.capacity_watts,
           "sensors": sensors})
}

fn power(bmc: &BlockingBmc, format: BmcFormat) -> anyhow::Result<()> {
    let readings = bmc.readings()?;
    report_problems(&readings.problems);
    if format == BmcFormat::Json {
        let chassis: Vec<Value> = readings.chassis.iter().map(chassis_power_json).collect();
        return emit(&json!({"chassis": chassis}).to_string());
    }
    let mut rows = vec![["CHASSIS", "WHAT", "VALUE", "SOURCE"].map(String::from).to_vec()];
    for c in &readings.chassis {
        for p in &c.power {
            rows.push(vec![
                c.id.clone(),
                "power".into(),
                format!("{} W", p.watts),
                source_text(&p.source),
            ]);
        }
        match &c.energy {
            Some(Energy::Counter { joules, source }) => rows.push(vec![
                c.id.clone(),
                "energy".into(),
                format!("{joules} J"),
                source_text(source),
            ]),
            Some(Energy::IntegrateFromPower) => rows.push(vec![
                c.id.clone(),
                "energy".into(),
                "no counter".into(),
                "integrate from power (label the result as integrated)".into(),
            ]),
            None => {}
        }
        for s in &c.sensors {
            let unit = if format!("{:?}", s.kind) == "Power" { "W" } else { "J" };
            let value = s.value.map_or_else(|| "-".into(), |v| format!("{v} {unit}"));
            rows.push(vec![
                c.id.clone(),
                format!("sensor {}", s.id),
                value,
                source_text(&s.source),
            ]);
        }
    }
    emit(&grid(&rows))
}

/// `bmc energy`: reads every `--interval` for `--duration` (the first reading at once, the last
/// at the end), one meter per chassis.
fn energy(bmc: &BlockingBmc, e: &BmcEnergyArgs, format: BmcFormat) -> anyhow::Result<()> {
    let window = duration("--duration", &e.duration)?;
    let interval = duration("--interval", &e.interval)?;
    if interval.is_zero() || window < interval {
        bail!("--interval must be above 0 and at most --duration");
    }
    let start = Instant::now();
    let mut meters: Vec<(String, EnergyMeter)> = Vec::new();
    let mut next = Duration::ZERO;
    loop {
        let readings = bmc.readings()?;
        let at = start.elapsed().as_secs_f64();
        report_problems(&readings.problems);
        for c in &readings.chassis {
            let i = match meters.iter().position(|(id, _)| *id == c.id) {
                Some(i) => i,
                None => {
                    meters.push((c.id.clone(), EnergyMeter::new()));
                    meters.len() - 1
                }
            };
            meters[i].1.add(at, c);
        }
        if next >= window {
            break;
        }
        next = (next + interval).min(window);
        std::thread::sleep(next.saturating_sub(start.elapsed()));
    }
    let windows: Vec<_> = meters.iter().map(|(id, m)| (id, m.energy())).collect();
    if format == BmcFormat::Json {
        let chassis: Vec<Value> = windows
            .iter()
            .map(|(id, w)| match w {
                Some(w) => json!({"chassis": id, "energy_joules": w.joules, "seconds": w.seconds,
                    "mean_watts": w.mean_watts, "method": w.method.as_str(), "readings": w.readings}),
                None => json!({"chassis": id, "energy_joules": null, "method": null}),
            })
            .collect();
        return emit(&json!({"chassis": chassis}).to_string());
    }
    let mut rows = vec![
        ["CHASSIS", "ENERGY", "MEAN POWER", "SECONDS", "READINGS", "METHOD"]
            .map(String::from)
            .to_vec(),
    ];
    for (id, w) in &windows {
        rows.push(match w {
            Some(w) => vec![
                id.to_string(),
                format!("{:.1} J", w.joules),
                format!("{:.1} W", w.mean_watts),
                format!("{:.1}", w.seconds),
                w.readings.to_string(),
                w.method.as_str().into(),
            ],
            None => vec![
                id.to_string(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "no energy counter and no power reading".into(),
            ],
        });
    }
    emit(&grid(&rows))
}

fn set_point_text(limit: &Limit) -> String {
    match limit.set_point {
        Some(SetPoint::Watts(w)) => format!("{w} W"),
        Some(SetPoint::Percent(p)) => format!("{p} %"),
        None => "-".into(),
    }
}

fn limit_json(chassis: &str, l: &Limit) -> Value {
    let (watts, percent) = match l.set_point {
        Some(SetPoint::Watts(w)) => (Some(w), None),
        Some(SetPoint::Percent(p)) => (None, Some(p)),
        None => (None, None),
    };
    json!({"chassis": chassis, "name": l.name, "dialect": format!("{:?}", l.dialect),
           "set_point_watts": watts, "set_point_percent": percent,
           "mode": l.mode.as_ref().map(|m| format!("{m:?}")), "enforced": l.enforced(),
           "min_watts": l.min_watts, "max_watts": l.max_watts,
           "physical_context": l.physical_context,
           "deviations": l.deviations.iter().map(|d| format!("{d:?}")).collect::<Vec<_>>(),
           "source": source_json(&l.source)})
}

fn limit_row(chassis: &str, l: &Limit) -> Vec<String> {
    let range = |v: Option<f64>| v.map_or_else(|| "?".into(), |v| v.to_string());
    let deviations: Vec<String> = l.deviations.iter().map(|d| format!("{d:?}")).collect();
    vec![
        chassis.to_string(),
        l.name.clone(),
        set_point_text(l),
        l.mode.as_ref().map_or_else(|| "-".into(), |m| format!("{m:?}")),
        if l.enforced() { "yes".into() } else { "no".into() },
        format!("{}-{} W", range(l.min_watts), range(l.max_watts)),
        format!("{:?}", l.dialect),
        if deviations.is_empty() { "-".into() } else { deviations.join(",") },
        source_text(&l.source),
    ]
}

const LIMIT_HEADER: [&str; 9] = [
    "CHASSIS",
    "LIMIT",
    "SET POINT",
    "MODE",
    "ENFORCED",
    "RANGE",
    "DIALECT",
    "DEVIATIONS",
    "SOURCE",
];

fn limits(bmc: &BlockingBmc, format: BmcFormat) -> anyhow::Result<()> {
    let readings = bmc.readings()?;
    report_problems(&readings.problems);
    let all =
        readings.chassis.iter().flat_map(|c| c.limits.iter().map(move |l| (c.id.as_str(), l)));
    if format == BmcFormat::Json {
        let limits: Vec<Value> = all.map(|(c, l)| limit_json(c, l)).collect();
        return emit(&json!({"limits": limits}).to_string());
    }
    let mut rows = vec![LIMIT_HEADER.map(String::from).to_vec()];
    rows.extend(all.map(|(c, l)| limit_row(c, l)));
    emit(&grid(&rows))
}

fn cap(bmc: &BlockingBmc, c: &BmcCapArgs, format: BmcFormat) -> anyhow::Result<()> {
    let watts = match c.watts.trim() {
        "off" => None,
        text => {
            let w: f64 = text.parse().map_err(|_| {
                anyhow::anyhow!("{text:?} is not a power limit: give watts (e.g. 450) or off")
            })?;
            Some(w)
        }
    };
    let request = LimitRequest { chassis_id: c.chassis.clone(), control: c.control.clone(), watts };
    let LimitApplied { limit, takes_effect_after_reset } = bmc.set_power_limit(&request)?;
    if format == BmcFormat::Json {
        let mut doc = limit_json("", &limit);
        doc["takes_effect_after_reset"] = json!(takes_effect_after_reset);
        return emit(&doc.to_string());
    }
    let mut text = grid(&[LIMIT_HEADER.map(String::from).to_vec(), limit_row("", &limit)]);
    if takes_effect_after_reset {
        text.push_str(
            "the BMC took the change, but it takes effect only after the node is reset\n",
        );
    }
    emit(&text)
}

fn system_json(s: &SystemPower) -> Value {
    json!({"id": s.id, "uri": s.uri, "power_state": s.power_state.as_ref().map(ToString::to_string),
           "allowed_resets": s.allowed_resets.iter().map(ToString::to_string).collect::<Vec<_>>()})
}

fn state(bmc: &BlockingBmc, format: BmcFormat) -> anyhow::Result<()> {
    let systems = bmc.systems()?;
    if format == BmcFormat::Json {
        let systems: Vec<Value> = systems.iter().map(system_json).collect();
        return emit(&json!({"systems": systems}).to_string());
    }
    let mut rows = vec![["SYSTEM", "POWER STATE", "ALLOWED RESETS"].map(String::from).to_vec()];
    for s in &systems {
        let allowed: Vec<String> = s.allowed_resets.iter().map(ToString::to_string).collect();
        rows.push(vec![
            s.id.clone(),
            s.power_state.as_ref().map_or_else(|| "-".into(), ToString::to_string),
            if allowed.is_empty() { "(not said)".into() } else { allowed.join(", ") },
        ]);
    }
    emit(&grid(&rows))
}

fn outcome_json(t: Transition, o: &TransitionOutcome) -> Value {
    json!({"transition": t.to_string(), "confirmed": o.confirmed, "escalated": o.escalated,
           "final_state": o.final_state.as_ref().map(ToString::to_string), "note": o.note})
}

fn transition(bmc: &BlockingBmc, t: &BmcTransitionArgs, format: BmcFormat) -> anyhow::Result<()> {
    let transition: Transition = t.transition.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    let options = TransitionOptions {
        deadline_ms: millis(duration("--deadline", &t.deadline)?),
        poll_interval_ms: millis(duration("--poll", &t.poll)?),
        escalate: t.escalate,
    };
    let system = t.system.as_deref().unwrap_or_default();
    let outcome = bmc.transition(system, transition, &options)?;
    if !outcome.confirmed {
        output::mark_partial();
    }
    if format == BmcFormat::Json {
        return emit(&outcome_json(transition, &outcome).to_string());
    }
    let state = outcome.final_state.as_ref().map_or_else(|| "-".into(), ToString::to_string);
    let verdict = if outcome.confirmed { "confirmed" } else { "NOT confirmed" };
    emit(&format!("{transition}: {verdict}; power state {state}\n{}\n", outcome.note))
}
