//! `powerstack agent` and `powerstack up`: glue around `powerstack_agent::run`.

use std::time::Duration;

use powerstack_agent::Stop;
use powerstack_agent::config::AgentConfig;
use powerstack_agent::run::{Ready, run};
use powerstack_model::duration::parse_duration;

use crate::cli::AgentArgs;
use crate::node::{self, SimRoot};
use crate::signals;

/// A stop signal given by SIGINT or SIGTERM (or once `duration` has passed), taken without a
/// handler or polling (see [`signals::catch`]); call it before any other thread exists.
pub(crate) fn stop_on_signals(duration: Option<Duration>) -> anyhow::Result<Stop> {
    let stop = Stop::new();
    let given = stop.clone();
    signals::catch(duration, move || given.stop())?;
    Ok(stop)
}

/// `powerstack agent`.
pub fn agent(a: &AgentArgs) -> anyhow::Result<()> {
    // First: no other thread may exist yet (a simulated node runs on one).
    let stop = stop_on_signals(None)?;
    let mut config = match &a.config {
        Some(p) => AgentConfig::load(p)?,
        None => AgentConfig::default(),
    };
    if let Some(v) = a.rate_hz {
        config.rate_hz = v;
    }
    if let Some(v) = a.buffer_samples {
        config.buffer_samples = v;
    }
    if let Some(v) = &a.socket {
        config.socket = v.clone();
    }
    if let Some(v) = &a.listen {
        config.listen = v.clone();
    }
    if a.token_file.is_some() {
        config.token_file = a.token_file.clone();
    }
    config.allow_users.extend(a.allow_user.iter().cloned());
    config.allow_groups.extend(a.allow_group.iter().cloned());
    if let Some(v) = &a.state_dir {
        config.state_dir = v.clone();
    }
    if let Some(v) = &a.root {
        config.root = v.clone();
    }
    if let Some(v) = &a.source {
        config.source = v.clone();
    }
    if a.nvml_lib.is_some() {
        config.nvml_lib = a.nvml_lib.clone();
    }
    site_flags(a, &mut config)?;
    config.validate()?;
    let sim: Option<SimRoot> = node::simulation_for(&a.simulate, &config.root)?;
    if let Some(s) = &sim {
        config.root = s.root.clone();
    }
    let simulated = node::simulated_label(sim.as_ref(), &config.root);
    config.state_dir = powerstack_cap::state_dir_for(
        &config.state_dir,
        &powerstack_hw::Root::new(&config.root),
        simulated.is_some(),
    );
    let mut served = false;
    run(&config, node::hostname(), simulated, stop, |ready: &Ready| {
        served = true;
        for n in &ready.notes {
            eprintln!("note: {n}");
        }
        eprintln!("{}", where_line(ready));
    })?;
    if !served && let Some(sig) = signals::received() {
        eprintln!(
            "powerstack agent: stopped by {} during start-up, before serving",
            signals::name(sig)
        );
    }
    Ok(())
}

/// The site flags over the configuration file.
fn site_flags(a: &AgentArgs, config: &mut AgentConfig) -> anyhow::Result<()> {
    if a.site.is_some() {
        config.site = a.site.clone();
    }
    if a.node_name.is_some() {
        config.node_name = a.node_name.clone();
    }
    if a.site_token_file.is_some() {
        config.site_token_file = a.site_token_file.clone();
    }
    if a.advertise_url.is_some() {
        config.advertise_url = a.advertise_url.clone();
    }
    if a.site_ca.is_some() {
        config.site_ca_file = a.site_ca.clone();
    }
    if let Some(d) = &a.push_interval {
        let interval = parse_duration(d).map_err(|e| anyhow::anyhow!("--push-interval: {e}"))?;
        config.push_interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    }
    Ok(())
}

pub(crate) fn where_line(ready: &Ready) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &ready.socket {
        parts.push(format!("socket {}", s.display()));
    }
    if let Some(a) = &ready.listen {
        parts.push(format!(
            "dashboard http://{a}/  API http://{a}/v1/power  metrics http://{a}/metrics"
        ));
    }
    let sim = match &ready.shared.simulated {
        Some(p) => format!(" [SIMULATED {p}]"),
        None => String::new(),
    };
    format!(
        "powerstack agent on {}{sim}: {} domains at {} Hz; {}",
        ready.shared.hostname,
        ready.shared.domains.len(),
        ready.shared.rate_hz,
        parts.join("; ")
    )
}
