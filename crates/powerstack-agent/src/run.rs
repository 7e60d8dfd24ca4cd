//! Running the agent: restore what a crashed agent left, start the sampler, serve, and on stop
//! put back every limit this agent changed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use powerstack_api::v1::Origin;
use powerstack_cap::{Capper, Holder, NodeId, StateDir};
use powerstack_hw::{DiscoverOptions, Root, Selection, discover_with};

use crate::access::{Access, AccessPolicy};
use crate::config::AgentConfig;
use crate::http::Controls;
use crate::push::Pusher;
use crate::sampler::{self, Sources};
use crate::serve::{self, ConnectionLimits, Server};
use crate::state::Shared;
use crate::stop::Stop;

mod jobs;
mod site;

/// The journal `via` prefix of every write the agent makes: what it restores at stop and at start.
pub const AGENT_VIA: &str = "powerstack agent";

/// An error starting or running the agent: one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AgentError(pub String);

/// Where the agent listens, once it does.
#[derive(Clone, Debug)]
pub struct Ready {
    /// The Unix socket.
    pub socket: Option<PathBuf>,
    /// The TCP address actually bound.
    pub listen: Option<std::net::SocketAddr>,
    /// The shared state (ring, jobs, stats).
    pub shared: Arc<Shared>,
    /// What discovery and the start-up restore had to say.
    pub notes: Vec<String>,
}

/// Runs the agent until `stop` is given (the caller maps SIGTERM/SIGINT to it). The settings and
/// the sources are checked first; then the state directory is locked for the agent's life, and
/// limits an earlier agent left are restored, before the sampler starts and before anything
/// listens; `ready` is called once the listeners are bound. On return, every limit this agent
/// changed has been restored. A `stop` given during the start ends it at the next step (before
/// the lock is taken, before the sampler starts), without `ready` being called: `Ok` too.
///
/// Between samples nothing wakes: the servers wait for `stop` without polling, and the sampler
/// threads check it once per tick.
pub fn run(
    config: &AgentConfig,
    hostname: String,
    simulated: Option<String>,
    stop: Stop,
    ready: impl FnOnce(&Ready) + Send,
) -> Result<(), AgentError> {
    config.validate().map_err(|e| AgentError(e.to_string()))?;
    let root = Root::new(&config.root);
    // The node the state directory's files (journal, job windows) must belong to.
    let node = NodeId::new(&root, simulated.as_deref());
    // Files no one but this user or root could have written: the state directory and its files.
    powerstack_cap::trust::check_state_dir(&config.state_dir)
        .map_err(|e| AgentError(e.to_string()))?;
    // The jobs an earlier agent kept (read only: a file that cannot be used stops the start).
    let (jobs_file, kept) =
        jobs::open(config, node.clone()).map_err(|e| AgentError(e.to_string()))?;
    let selection: Selection =
        config.source.parse().map_err(|e: String| AgentError(format!("source: {e}")))?;
    let options = DiscoverOptions::from(config.provider_options());
    let mut notes = Vec::new();
    let limits = open_files(&mut notes);

    // Everything that can be refused is checked before the state directory is touched.
    let discovery = discover_with(&root, &selection, &options);
    let origin = Origin { hostname: hostname.clone(), simulated: simulated.clone() };
    let push = site::settings(config, &origin, &discovery)?;
    let mut control = discovery.platform;
    let (sources, warnings) = Sources::open(&root, &selection, &options);
    notes.extend(warnings);
    if sources.columns() == 0 {
        return Err(no_source(config, &notes));
    }
    let token = match &config.token_file {
        Some(p) => Some(crate::access::load_token(p).map_err(|e| AgentError(e.to_string()))?),
        None => None,
    };

    // The agent may write at any time: it holds the state directory's lock for its life, taken
    // before anything is restored (a second agent, or a command, is turned away untouched). A
    // stop before it is had, or while waiting for a command holding it, ends the start.
    let mut state = StateDir::new(&config.state_dir, node);
    let held = state.hold(&Holder::agent(AGENT_VIA, &api_of(config)));
    if stop.is_stopped() {
        return Ok(());
    }
    held.map_err(|e| AgentError(e.to_string()))?;
    restore_at_start(&mut control, &root, &state, &mut notes)?;
    if stop.is_stopped() {
        return Ok(());
    }

    let shared = Shared::new(
        hostname,
        simulated,
        sources.domains.clone(),
        config.rate_hz,
        config.buffer_samples,
        config.peak_window_ms.saturating_mul(1000),
    );
    let shared = shared.with_jobs(kept.jobs, jobs_file);
    let shared = Arc::new(if push.is_some() { shared.with_site() } else { shared });
    let controls = Arc::new(controls(config, control, root.clone(), state, &mut notes));
    let policy = AccessPolicy {
        allow_users: config.allow_users.clone(),
        allow_groups: config.allow_groups.clone(),
        token,
        socket: (!config.socket.is_empty()).then(|| PathBuf::from(&config.socket)),
    };

    // The sampler threads check their own flag once per tick; it is set once serving ends.
    let sampling_done = Arc::new(AtomicBool::new(false));
    let (sampler, standing) = start_threads(config, sources, &shared, &controls, &sampling_done)?;

    // Serve only once every column has data (the slow sources' first readings included): a job
    // marked at once is then covered from its beginning.
    let first = std::time::Instant::now();
    while shared.settled_us.load(Ordering::Relaxed) == 0
        && first.elapsed() < Duration::from_secs(5)
        && !stop.is_stopped()
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    notes.extend(jobs::resume(&shared, kept.stopped_cleanly));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| AgentError(format!("starting the runtime: {e}")))?;
    // The pusher's spool is under the state directory, whose lock this agent holds.
    let pusher = match push.map(|p| Pusher::start(p, shared.clone(), stop.clone())).transpose() {
        Ok(p) => p.map(|(pusher, said)| {
            notes.extend(said);
            pusher
        }),
        Err(e) => {
            sampling_done.store(true, Ordering::Relaxed);
            sampler.join();
            let _ = standing.join();
            return Err(AgentError(e.to_string()));
        }
    };
    let access = Access::new(policy);
    let app = crate::http::app(shared.clone(), Some(controls.clone()), access.clone());
    let server = Server::new(app, access, limits);
    let served =
        runtime.block_on(serve(config, shared.clone(), server, stop.clone(), notes, ready));
    // The servers have ended their connections; a task still running (a cap being written, off
    // the async threads) is not waited for here: the restore below waits for its lock.
    runtime.shutdown_timeout(serve::SHUTDOWN_GRACE);

    stop.stop();
    sampling_done.store(true, Ordering::Relaxed);
    sampler.join();
    // No re-split after the limits are put back.
    let _ = standing.join();
    let restored = restore(&controls);
    // The pusher saw the stop too: its last push has a short deadline.
    if let Some(p) = pusher {
        p.join();
    }
    let jobs_kept =
        jobs::keep_at_stop(&shared, served.is_ok()).map_err(|e| AgentError(e.to_string()));
    served?;
    restored?;
    jobs_kept
}

async fn serve(
    config: &AgentConfig,
    shared: Arc<Shared>,
    server: Server,
    stop: Stop,
    notes: Vec<String>,
    ready: impl FnOnce(&Ready) + Send,
) -> Result<(), AgentError> {
    let shutdown = move || {
        let stop = stop.clone();
        async move { stop.stopped().await }
    };
    let mut tasks = Vec::new();
    let mut socket = None;
    if !config.socket.is_empty() {
        let path = PathBuf::from(&config.socket);
        let listener = serve::bind_unix(&path).map_err(|e| AgentError(e.to_string()))?;
        socket = Some(path.clone());
        tasks.push(tokio::spawn(server.clone().serve_unix(listener, path, shutdown())));
    }
    let mut listen = None;
    if !config.listen.is_empty() {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|e| AgentError(format!("cannot listen on {}: {e}", config.listen)))?;
        listen = listener.local_addr().ok();
        tasks.push(tokio::spawn(server.clone().serve_tcp(listener, shutdown())));
    }
    ready(&Ready { socket, listen, shared, notes });
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(AgentError(e.to_string())),
            Err(e) => return Err(AgentError(format!("server task: {e}"))),
        }
    }
    Ok(())
}

/// Starts the sampler, then the standing node cap's thread (which reads what the sampler
/// stores); both stop once `done` is set.
fn start_threads(
    config: &AgentConfig,
    sources: Sources,
    shared: &Arc<Shared>,
    controls: &Arc<Controls>,
    done: &Arc<AtomicBool>,
) -> Result<(sampler::Sampler, std::thread::JoinHandle<()>), AgentError> {
    let sampler = sampler::start(sources, shared.clone(), config.rate_hz, done.clone())
        .map_err(|e| AgentError(format!("starting the sampler: {e}")))?;
    match crate::resplit::start(shared.clone(), controls.clone(), done.clone()) {
        Ok(standing) => Ok((sampler, standing)),
        Err(e) => {
            done.store(true, Ordering::Relaxed);
            sampler.join();
            Err(AgentError(format!("starting the standing node cap's thread: {e}")))
        }
    }
}

/// The capping side: `control` with the journal in `state`, and the node cap an earlier agent
/// kept standing (split again once there are samples), said in `notes`.
fn controls(
    config: &AgentConfig,
    control: powerstack_hw::Platform,
    root: Root,
    state: StateDir,
    notes: &mut Vec<String>,
) -> Controls {
    let controls =
        Controls::new(control, root, state).with_resplit_watts(config.node_cap_resplit_watts);
    match controls.standing.load(&config.state_dir) {
        Ok(Some(cap)) => notes.push(format!(
            "a node cap of {} W stands (kept in {}): applied again once the node is measured",
            cap.node_watts,
            config.state_dir.join(crate::standing::FILE).display()
        )),
        Ok(None) => {}
        Err(e) => notes.push(format!("{e}: no node cap stands")),
    }
    controls
}

/// Raises the soft open-file limit to the hard one and derives the connection limits from what
/// it got; says both in `notes`.
fn open_files(notes: &mut Vec<String>) -> ConnectionLimits {
    let soft = match serve::raise_open_files_limit() {
        Ok((before, after)) => {
            if after > before {
                notes.push(format!("open files: soft limit raised from {before} to {after}"));
            } else {
                notes.push(format!("open files: soft limit {after} (the hard limit)"));
            }
            after
        }
        Err(e) => {
            notes.push(format!("open files: cannot read the limit ({e}); assuming 1024"));
            1024
        }
    };
    let limits = ConnectionLimits::for_open_files(soft);
    notes.push(format!(
        "connections: at most {} ({} per caller; the last {} kept for root and the users allowed to write)",
        limits.total, limits.per_peer, limits.reserved
    ));
    limits
}

/// Where the agent takes cap changes, for the message of a caller turned away by its lock.
/// The error of a node where no power source can be read.
fn no_source(config: &AgentConfig, notes: &[String]) -> AgentError {
    let why = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join("; ")) };
    AgentError(format!(
        "no readable power source under {}{why}: run as root, check --root, or use --simulate auto",
        config.root.display()
    ))
}

fn api_of(config: &AgentConfig) -> String {
    let mut at = Vec::new();
    if !config.socket.is_empty() {
        at.push(format!("socket {}", config.socket));
    }
    if !config.listen.is_empty() {
        at.push(format!("http://{}", config.listen));
    }
    at.join(", ")
}

/// Puts back what an earlier agent left: an interrupted write session, and every limit an agent
/// set and did not put back.
fn restore_at_start(
    control: &mut powerstack_hw::Platform,
    root: &Root,
    state: &StateDir,
    notes: &mut Vec<String>,
) -> Result<(), AgentError> {
    let (mut capper, recovered) =
        Capper::open(control, root, state, AGENT_VIA).map_err(|e| AgentError(e.to_string()))?;
    notes.extend(capper.notes().iter().cloned());
    if let Some(r) = recovered {
        notes.push(format!(
            "an earlier run died while writing: restored {} limit(s) and {} setting(s)",
            r.restored.len(),
            r.files_restored.len()
        ));
    }
    let r = capper.reset_written_by(AGENT_VIA).map_err(|e| AgentError(e.to_string()))?;
    if !r.restored.is_empty() {
        notes.push(format!(
            "restored {} limit(s) an earlier agent had set and not put back",
            r.restored.len()
        ));
    }
    for (k, why) in &r.failed {
        notes.push(format!("could not restore {k}: {why}"));
    }
    Ok(())
}

/// Puts back every limit this agent changed.
fn restore(controls: &Controls) -> Result<(), AgentError> {
    let mut platform = controls
        .platform
        .lock()
        .map_err(|_| AgentError("control platform lock poisoned".into()))?;
    let (mut capper, _) = Capper::open(&mut platform, &controls.root, &controls.state, AGENT_VIA)
        .map_err(|e| AgentError(format!("restoring limits at exit: {e}")))?;
    let r = capper
        .reset_written_by(AGENT_VIA)
        .map_err(|e| AgentError(format!("restoring limits at exit: {e}")))?;
    if let Some((k, why)) = r.failed.first() {
        return Err(AgentError(format!(
            "could not restore {k} at exit: {why}; run `powerstack cap reset`"
        )));
    }
    Ok(())
}
