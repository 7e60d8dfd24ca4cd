//! The commands: glue between arguments, the hardware layer and the wire formats.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use powerstack_api::v1::{EnergyV1, PowerV1};
use powerstack_api::{prometheus, table, variorum};
use powerstack_model::PowerReport;
use powerstack_model::duration::parse_duration;
use powerstack_sim::faults::{PmFault, PmFaults};
use powerstack_sim::{LoadPattern, Profile, SimNode, SimOptions};

use crate::cli::{Format, NodeArgs, ReadArgs, SimCommand, SimCreateArgs, SimRunArgs};
use crate::node;
use crate::output::{self, emit};
use crate::signals;

fn interval(text: &str) -> anyhow::Result<Duration> {
    let d = parse_duration(text).map_err(|e| anyhow::anyhow!("--interval: {e}"))?;
    if !powerstack_node::read::READ_INTERVAL.contains(&d) {
        bail!("--interval {text}: must be between 1ms and 1h");
    }
    Ok(d)
}

fn json_line<T: serde::Serialize>(doc: &T) -> anyhow::Result<String> {
    serde_json::to_string(doc).context("encoding JSON")
}

fn variorum_text(value: &serde_json::Value, stream: bool) -> String {
    if stream { value.to_string() } else { variorum::to_pretty(value) }
}

/// Prints discovery warnings on stderr for formats that have no place for them.
fn warn_stderr(lines: &[String]) {
    for w in lines {
        eprintln!("warning: {w}");
    }
}

/// Moves the warnings of the last sample into `warnings`; any of them makes the run partial.
fn take_sampling_warnings(platform: &mut powerstack_hw::Platform, warnings: &mut Vec<String>) {
    let failed = platform.take_warnings();
    if !failed.is_empty() {
        output::mark_partial();
    }
    warnings.extend(failed.into_iter().map(|w| w.to_string()));
}

/// How many readings to print: one, N (`--count`), or until stopped (`--watch`).
fn readings(args: &ReadArgs) -> anyhow::Result<(bool, u64)> {
    if args.count == Some(0) {
        bail!("--count must be at least 1");
    }
    let stream = args.watch || args.count.is_some();
    Ok((stream, args.count.unwrap_or(if stream { u64::MAX } else { 1 })))
}

/// `powerstack power`.
pub fn power(args: &ReadArgs) -> anyhow::Result<()> {
    let interval = interval(&args.interval)?;
    let (stream, count) = readings(args)?;
    let fmt = output::format(args.node.format);
    // Before the node opens: a simulated node runs on a thread, which must inherit the mask.
    signals::catch(None, || {})?;
    let mut node = node::open(&args.node)?;
    let mut warnings = std::mem::take(&mut node.warnings);
    if matches!(fmt, Format::Variorum | Format::VariorumFlat | Format::Prometheus) {
        warn_stderr(&warnings);
        warnings.clear();
    }
    let platform = &mut node.discovery.platform;
    let mut prev = platform.sample_at_steps(powerstack_hw::platform::STEP_WAIT);
    let mut deadline = Instant::now();
    let mut printed = 0u64;
    for n in 0..count {
        deadline += interval;
        signals::sleep_until(deadline);
        if signals::stopped() {
            break;
        }
        let cur = platform.sample_at_steps(powerstack_hw::platform::STEP_WAIT);
        let cur = platform.until_moved(&prev, cur);
        let report = PowerReport::between(platform.catalog(), &prev, &cur);
        take_sampling_warnings(platform, &mut warnings);
        let catalog = platform.catalog();
        let text = match fmt {
            Format::Json => json_line(&PowerV1::new(&node.origin, catalog, &report, &warnings))?,
            Format::Table => table::power(&PowerV1::new(&node.origin, catalog, &report, &warnings)),
            Format::Variorum => {
                variorum_text(&variorum::power(&node.origin.hostname, catalog, &report), stream)
            }
            Format::VariorumFlat => variorum_text(
                &variorum::power_flat(&node.origin.hostname, catalog, &report),
                stream,
            ),
            Format::Prometheus => prometheus::power(&node.origin, catalog, &report),
        };
        if matches!(fmt, Format::Variorum | Format::VariorumFlat | Format::Prometheus) {
            warn_stderr(&warnings);
        }
        warnings.clear();
        if stream && fmt == Format::Table && n > 0 {
            emit("")?;
        }
        emit(&text)?;
        printed += 1;
        prev = cur;
    }
    all_read_or_interrupted(args, printed, count)
}

/// `powerstack energy`.
pub fn energy(args: &ReadArgs) -> anyhow::Result<()> {
    let interval = interval(&args.interval)?;
    let (stream, count) = readings(args)?;
    let fmt = output::format(args.node.format);
    // Before the node opens: a simulated node runs on a thread, which must inherit the mask.
    signals::catch(None, || {})?;
    let mut node = node::open(&args.node)?;
    let mut warnings = std::mem::take(&mut node.warnings);
    let platform = &mut node.discovery.platform;
    let mut deadline = Instant::now();
    let mut printed = 0u64;
    for n in 0..count {
        if n > 0 {
            deadline += interval;
            signals::sleep_until(deadline);
            if signals::stopped() {
                break;
            }
        }
        let snap = platform.sample();
        let joules = snap.joules();
        take_sampling_warnings(platform, &mut warnings);
        let catalog = platform.catalog();
        let doc = EnergyV1::new(&node.origin, catalog, &joules, snap.unix_us, &warnings);
        let text = match fmt {
            Format::Json => json_line(&doc)?,
            Format::Table => table::energy(&doc),
            Format::Variorum => variorum_text(
                &variorum::energy(&node.origin.hostname, catalog, &joules, snap.unix_us),
                stream,
            ),
            Format::Prometheus => prometheus::energy(&node.origin, catalog, &joules),
            Format::VariorumFlat => {
                bail!("--format variorum-flat exists for power only; use variorum or json")
            }
        };
        if matches!(fmt, Format::Variorum | Format::Prometheus) {
            warn_stderr(&warnings);
        }
        warnings.clear();
        if stream && fmt == Format::Table && n > 0 {
            emit("")?;
        }
        emit(&text)?;
        printed += 1;
    }
    all_read_or_interrupted(args, printed, count)
}

/// An error when a stop signal ended a reading before the `count` readings asked were printed
/// (exit status 128 + the signal); `--watch` without `--count` ends normally on one.
fn all_read_or_interrupted(args: &ReadArgs, printed: u64, count: u64) -> anyhow::Result<()> {
    if printed == count || !signals::stopped() || (args.watch && args.count.is_none()) {
        return Ok(());
    }
    let what = if count == 1 {
        "the reading was not finished; nothing was printed".to_string()
    } else {
        format!("{printed} of the {count} readings asked were printed")
    };
    bail!("{}", signals::interrupted(&what))
}

/// `powerstack domains`.
pub fn domains(args: &NodeArgs) -> anyhow::Result<()> {
    let fmt = output::format(args.format);
    let mut node = node::open(args)?;
    let doc = node.domains();
    let now = doc.timestamp_us;
    let warnings = doc.warnings.clone();
    let text = match fmt {
        Format::Json => json_line(&doc)?,
        Format::Table => table::domains(&doc),
        Format::Variorum => {
            warn_stderr(&warnings);
            variorum::to_pretty(&node.variorum_domain_info(now))
        }
        Format::VariorumFlat | Format::Prometheus => {
            bail!("--format {fmt} is not available for domains; use table, json or variorum")
        }
    };
    emit(&text)
}

/// `powerstack topology`.
pub fn topology(args: &NodeArgs) -> anyhow::Result<()> {
    let fmt = output::format(args.format);
    let node = node::open(args)?;
    let doc = powerstack_node::topology::document(&node.origin, &node.discovery);
    let text = match fmt {
        Format::Json => json_line(&doc)?,
        Format::Table => table::topology(&doc),
        _ => bail!("--format {fmt} is not available for topology; use table or json"),
    };
    emit(&text)
}

/// `powerstack sim ...`.
pub fn sim(cmd: &SimCommand) -> anyhow::Result<()> {
    match cmd {
        SimCommand::Profiles => {
            let mut s = String::new();
            for p in Profile::ALL {
                s.push_str(&format!("{:<14} {}\n", p.as_str(), p.description()));
            }
            emit(&s)
        }
        SimCommand::Create(a) => sim_create(a),
        SimCommand::Run(a) => sim_run(a),
        SimCommand::Cluster(a) => crate::sim_cluster::run(a),
    }
}

fn load(value: f64) -> anyhow::Result<f64> {
    if !value.is_finite() || !(0.0..=1.0).contains(&value) {
        bail!("--load {value}: must be between 0 and 1");
    }
    Ok(value)
}

fn sim_create(a: &SimCreateArgs) -> anyhow::Result<()> {
    let profile: Profile = a.profile.parse().map_err(|e| anyhow::anyhow!("--profile: {e}"))?;
    let pattern: LoadPattern = a.pattern.parse().map_err(|e| anyhow::anyhow!("--pattern: {e}"))?;
    let opts = SimOptions {
        load: load(a.load)?,
        pattern,
        shuffle_indices: a.shuffle_indices,
        mmio_duplicate: a.mmio_duplicate,
        omit_dram: a.omit_dram,
        nvml_library: a.nvml_mock.clone(),
        nvml_latency: a.nvml_latency.parse().map_err(|e| anyhow::anyhow!("--nvml-latency: {e}"))?,
        nvml_update_ms: a.nvml_update_ms,
        pm_faults: pm_faults(&a.pm_faults)?,
    };
    SimNode::create(&a.dir, profile, opts).with_context(|| {
        format!("creating a simulated {} root in {}", profile.as_str(), a.dir.display())
    })?;
    emit(&format!(
        "created a simulated {} node in {}\nanimate it with: powerstack sim run {}\nread it with:    powerstack power --root {}",
        profile.as_str(),
        a.dir.display(),
        a.dir.display(),
        a.dir.display()
    ))
}

/// The `--pm-fault` values, together.
fn pm_faults(given: &[String]) -> anyhow::Result<PmFaults> {
    given.iter().try_fold(PmFaults::default(), |all, f| {
        let fault: PmFault = f.parse().map_err(|e| anyhow::anyhow!("--pm-fault: {e}"))?;
        Ok(all.with(fault))
    })
}

fn sim_run(a: &SimRunArgs) -> anyhow::Result<()> {
    let tick = parse_duration(&a.tick).map_err(|e| anyhow::anyhow!("--tick: {e}"))?;
    if tick < Duration::from_micros(100) || tick > Duration::from_secs(10) {
        bail!("--tick {}: must be between 100us and 10s", a.tick);
    }
    let duration = a
        .duration
        .as_deref()
        .map(|d| parse_duration(d).map_err(|e| anyhow::anyhow!("--duration: {e}")))
        .transpose()?;
    let mut sim = SimNode::open(&a.dir)
        .with_context(|| format!("opening the simulated root {}", a.dir.display()))?;
    if let Some(l) = a.load {
        sim.set_load(load(l)?);
    }
    signals::catch(duration, || {})?;
    let faults = sim.options().pm_faults.list();
    let faults = if faults.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = faults.iter().map(ToString::to_string).collect();
        format!(" with pm_counters faults {}", names.join(", "))
    };
    let said = format!(
        "animating the simulated {} node in {} every {:?}{faults}; Ctrl-C to stop",
        sim.profile().as_str(),
        a.dir.display(),
        tick
    );
    if let Some(d) = duration {
        std::thread::spawn(move || {
            std::thread::sleep(d);
            signals::stop_flag().store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
    // Said once the animation runs (and answers a written limit), not before a refusal.
    let mut say = Some(said);
    sim.run_realtime_with(tick, signals::stop_flag(), |_, _| {
        if let Some(line) = say.take() {
            eprintln!("{line}");
        }
    })
    .context("running the simulator")?;
    Ok(())
}
