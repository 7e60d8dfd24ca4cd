//! `powerstack agent` and `powerstack up`: glue around `powerstack_agent::run`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use powerstack_agent::config::AgentConfig;
use powerstack_agent::run::{Ready, run};
use powerstack_agent::{Shared, Stop};
use powerstack_api::table;
use powerstack_api::v1::{Origin, PowerV1};
use powerstack_model::duration::parse_duration;
use powerstack_model::{PowerReport, Snapshot, Value};

use crate::cli::{AgentArgs, UpArgs};
use crate::node::{self, SimRoot};
use crate::{output, signals};

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
    run(&config, node::hostname(), simulated, stop, |ready: &Ready| {
        for n in &ready.notes {
            eprintln!("note: {n}");
        }
        eprintln!("{}", where_line(ready));
    })?;
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
    if let Some(d) = &a.push_interval {
        let interval = parse_duration(d).map_err(|e| anyhow::anyhow!("--push-interval: {e}"))?;
        config.push_interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    }
    Ok(())
}

fn where_line(ready: &Ready) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &ready.socket {
        parts.push(format!("socket {}", s.display()));
    }
    if let Some(a) = &ready.listen {
        parts.push(format!("API http://{a}/v1/power  metrics http://{a}/metrics"));
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

/// Node power over the last second of the ring, as a table.
fn live_table(shared: &Shared) -> Option<String> {
    let ring = shared.ring.lock().ok()?;
    let (t1, v1) = ring.newest()?;
    let target = t1.saturating_sub(1_000_000);
    let i0 = ring.last_at_or_before(target).unwrap_or(0);
    let (t0, v0) = ring.get(i0)?;
    if t1 <= t0 {
        return None;
    }
    let snap = |t: u64, v: &[u64]| Snapshot {
        mono_ns: t * 1000,
        unix_us: t as i64,
        values: v
            .iter()
            .zip(&shared.domains)
            .map(|(ticks, d)| Value::Energy {
                total_ticks: *ticks,
                joules: *ticks as f64 * d.joules_per_tick,
                hw_time_us: None,
            })
            .collect(),
    };
    let (a, b) = (snap(t0, v0), snap(t1, v1));
    drop(ring);
    let catalog = shared.catalog();
    let report = PowerReport::between(&catalog, &a, &b);
    let origin = Origin { hostname: shared.hostname.clone(), simulated: shared.simulated.clone() };
    Some(table::power(&PowerV1::new(&origin, &catalog, &report, &[])))
}

/// `powerstack up`.
pub fn up(a: &UpArgs) -> anyhow::Result<()> {
    let duration = a
        .duration
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--duration: {e}"))?;
    // First: no other thread may exist yet (a simulated node runs on one).
    let stop = stop_on_signals(duration)?;
    let sim = node::simulation_for(&a.simulate, &a.root)?;
    let root = sim.as_ref().map(|s| s.root.clone()).unwrap_or_else(|| a.root.clone());
    let simulated = node::simulated_label(sim.as_ref(), &root);
    // A private directory (mode 0700, the caller's) for the socket and, unless this is a real
    // node run as root, the journal and the job windows, so nothing of it is left behind.
    let state = tempfile::Builder::new()
        .prefix("powerstack-up-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .context("creating a state directory")?;
    let state_dir = if simulated.is_none() && powerstack_cap::trust::effective_uid() == 0 {
        "/var/lib/powerstack".into()
    } else {
        state.path().to_path_buf()
    };
    let socket = a.socket.clone().unwrap_or_else(|| state.path().join("agent.sock"));
    let config = AgentConfig {
        rate_hz: a.rate_hz,
        buffer_samples: 36_000,
        socket: socket.to_string_lossy().into_owned(),
        listen: a.listen.clone(),
        // The caller may write through the socket (root always may).
        allow_users: vec![caller_uid().to_string()],
        state_dir,
        root,
        ..AgentConfig::default()
    };
    let (tx, rx) = std::sync::mpsc::channel::<Arc<Shared>>();
    let agent_stop = stop.clone();
    let handle = std::thread::spawn(move || {
        run(&config, node::hostname(), simulated, agent_stop, |ready: &Ready| {
            for n in &ready.notes {
                eprintln!("note: {n}");
            }
            eprintln!("{}", where_line(ready));
            if let Some(s) = &ready.socket {
                eprintln!(
                    "jobs and caps: export POWERSTACK_AGENT={} (or pass --agent with it)",
                    s.display()
                );
            }
            eprintln!("Ctrl-C to stop");
            let _ = tx.send(ready.shared.clone());
        })
    });
    let shared = match rx.recv() {
        Ok(s) => s,
        Err(_) => {
            // The agent ended before it was ready: its error says why.
            return match handle.join() {
                Ok(Err(e)) => Err(e.into()),
                _ => bail!("the agent stopped before it was ready"),
            };
        }
    };
    while !stop.wait_timeout(Duration::from_secs(1)) {
        if let Some(t) = live_table(&shared)
            && let Err(e) = output::emit(&t)
        {
            // The reader went away: stop the agent (which restores its limits) first.
            stop.stop();
            let _ = handle.join();
            return Err(e);
        }
    }
    match handle.join() {
        Ok(r) => r.map_err(Into::into),
        Err(_) => bail!("the agent thread panicked"),
    }
}

fn caller_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}
