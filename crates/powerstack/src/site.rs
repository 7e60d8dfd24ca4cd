//! `powerstack site serve`: glue around `powerstack_site::start`.

use std::time::Duration;

use anyhow::Context;
use powerstack_site::{Ready, SiteConfig};

use crate::agent::stop_on_signals;
use crate::cli::{SiteCommand, SiteServeArgs};

/// `powerstack site ...`.
pub fn run(c: &SiteCommand) -> anyhow::Result<()> {
    match c {
        SiteCommand::Serve(a) => serve(a),
        SiteCommand::Transition(a) => crate::site_tasks::transition(a),
        SiteCommand::PowerCap(c) => crate::site_tasks::power_cap(c),
        SiteCommand::Task(c) => crate::site_tasks::task(c),
        SiteCommand::Bound(a) => crate::site_bound::bound(a),
        SiteCommand::Decisions(a) => crate::site_bound::decisions(a),
        SiteCommand::Admit(a) => crate::site_bound::admit(a),
    }
}

/// The configuration of `site serve`: the file, then the flags over it.
pub fn config_of(a: &SiteServeArgs) -> anyhow::Result<SiteConfig> {
    let mut config = match &a.config {
        Some(p) => SiteConfig::load(p)?,
        None => SiteConfig::default(),
    };
    if let Some(v) = &a.listen {
        config.listen = v.clone();
    }
    if let Some(v) = &a.database {
        config.database = v.clone();
    }
    if let Some(v) = &a.state_dir {
        config.state_dir = v.clone();
    }
    if a.tokens.is_some() {
        config.tokens_file = a.tokens.clone();
    }
    if a.tls_cert.is_some() {
        config.tls_cert_file = a.tls_cert.clone();
        config.tls_key_file = a.tls_key.clone();
    }
    if a.insecure_plain_http {
        config.insecure_plain_http = true;
    }
    Ok(config)
}

/// The line that says where the service is.
pub fn where_line(ready: &Ready) -> String {
    let access = if ready.open {
        "no tokens: every caller is an administrator (loopback only)"
    } else {
        "bearer tokens required"
    };
    format!(
        "powerstack site on {url}: dashboard {url}/; database {db}; routes /v1/nodes, /v1/jobs, /v1/site/power, /v1/transitions, /v1/power-cap, /metrics; {access}",
        url = ready.url(),
        db = ready.database
    )
}

fn serve(a: &SiteServeArgs) -> anyhow::Result<()> {
    // First: no other thread may exist yet.
    let stop = stop_on_signals(None)?;
    let config = config_of(a)?;
    // One connection per agent: thousands of them.
    let _ = powerstack_agent::serve::raise_open_files_limit();
    let running = powerstack_site::start(&config).context("starting the site service")?;
    for w in &running.ready().warnings {
        eprintln!("warning: {w}");
    }
    eprintln!("{}", where_line(running.ready()));
    while !stop.wait_timeout(Duration::from_secs(3600)) {}
    running.stop().context("stopping the site service")?;
    Ok(())
}
