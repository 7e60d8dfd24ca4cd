//! Running the service: the database opened and migrated, the listener bound, the HTTP server,
//! the control-task runner, the BMC telemetry poller and the maintenance loop (settling ended jobs, partitions ahead,
//! retention) on a runtime of their own thread, so that a synchronous caller (the CLI, `powerstack up`, a test) starts it,
//! learns its address, and stops it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::access::Tokens;
use crate::bound::agents::CapPath;
use crate::bound::{BoundShared, LoopSettings};
use crate::config::SiteConfig;
use crate::control::{NodeControl, controller_for};
use crate::db::Db;
use crate::http::{AppState, Counters, TaskApi, app, now_us};
use crate::report::{ReportSettings, settle};
use crate::store::partitions::DAY_US;
use crate::store::{IngestLimits, Ingester, Store, StoreError, TaskBounds};
use crate::tasks::{RunnerSettings, run as run_tasks};
use crate::telemetry::{self, Telemetry};
use crate::tls;

/// How often ended jobs are looked at for settling.
const SETTLE_EVERY: Duration = Duration::from_secs(2);
/// How often partitions and retention are looked after.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);

/// Where the started service is.
#[derive(Clone, Debug)]
pub struct Ready {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its database, without a password.
    pub database: String,
    /// Whether it runs without tokens (every caller an administrator, loopback only).
    pub open: bool,
    /// Whether it speaks TLS (https).
    pub https: bool,
    /// Anything worth a warning at start.
    pub warnings: Vec<String>,
}

impl Ready {
    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }

    /// Its URL, `SCHEME://IP:PORT`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme(), self.addr)
    }
}

/// A running service.
#[derive(Debug)]
pub struct Running {
    ready: Ready,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<Result<(), StoreError>>>,
}

impl Running {
    /// Where it is.
    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// Stops it: no new connection, requests in flight finished, the database closed.
    pub fn stop(mut self) -> Result<(), StoreError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), StoreError> {
        let _ = self.stop.send(true);
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(StoreError::Unavailable("the site's thread panicked".into()))
            }),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Starts the service of `config` (validated here) and returns once it listens; control tasks
/// go through the controller of its BMCs ([`controller_for`]).
pub fn start(config: &SiteConfig) -> Result<Running, StoreError> {
    config.validate()?;
    let control = controller_for(&config.bmcs()?)?;
    start_with_control(config, control)
}

/// What the control tasks need: the routes' settings and the runner's.
fn task_parts(config: &SiteConfig) -> Result<(TaskApi, RunnerSettings), StoreError> {
    let bmc_nodes = config.bmcs()?.into_iter().map(|b| b.node).collect();
    let api = TaskApi {
        bmc_nodes,
        bounds: TaskBounds {
            max_tasks: config.tasks_max,
            expiry_us: config.task_expiry_s.saturating_mul(1_000_000),
        },
        default_deadline_s: config.transition_deadline_s,
        wake: Arc::new(Notify::new()),
        ops: Arc::default(),
    };
    let runner = RunnerSettings {
        concurrency: config.task_concurrency,
        poll: Duration::from_millis(config.task_poll_ms),
        lease_us: config.task_lease_s.saturating_mul(1_000_000),
        default_deadline_s: config.transition_deadline_s,
        call_timeout: Duration::from_secs(config.task_call_timeout_s),
    };
    Ok((api, runner))
}

/// Ingest limits, report settings, staleness (µs) and retention (raw, rollups; µs).
fn state_parts(config: &SiteConfig) -> (IngestLimits, ReportSettings, u64, (u64, u64)) {
    (
        IngestLimits {
            max_ahead_us: config.max_clock_ahead_s * 1_000_000,
            ..IngestLimits::default()
        },
        ReportSettings {
            peak_window_us: config.peak_window_ms * 1000,
            settle_after_us: config.settle_after_s * 1_000_000,
        },
        (config.stale_after_s * 1e6) as u64,
        (config.raw_retention_days * DAY_US, config.rollup_retention_days * DAY_US),
    )
}

/// The bound's shared state: its settings and the cap path to agents and `control`'s BMCs.
fn bound_shared(
    config: &SiteConfig,
    control: Arc<dyn NodeControl>,
) -> Result<Arc<BoundShared>, StoreError> {
    let bmc_nodes = config.bmcs()?.into_iter().map(|b| b.node).collect();
    let path = CapPath::new(&config.bound, control)?;
    let settings = LoopSettings {
        config: config.bound.clone(),
        bmc_nodes,
        stale_after_us: (config.stale_after_s * 1e6) as u64,
        owner: crate::tasks::new_id(),
    };
    Ok(Arc::new(BoundShared::new(settings, path)))
}

/// [`start`] with control tasks driven through `control` (a test's fake, an embedding's own).
pub fn start_with_control(
    config: &SiteConfig,
    control: Arc<dyn NodeControl>,
) -> Result<Running, StoreError> {
    config.validate()?;
    let (task_api, runner) = task_parts(config)?;
    let bound = bound_shared(config, control.clone())?;
    let telemetry = Telemetry::from_config(config)?;
    let url = config.database_url()?;
    let tokens = config.tokens_file.as_deref().map(Tokens::load).transpose()?;
    let addr = config.listen_addr()?;
    let tls = config.tls_files()?.map(|(cert, key)| tls::server_config(cert, key)).transpose()?;
    let state_parts = state_parts(config);
    let (stop, stopped) = watch::channel(false);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<Ready, StoreError>>();
    let open = tokens.is_none();
    let https = tls.is_some();
    let thread = std::thread::Builder::new()
        .name("powerstack-site".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .thread_name("powerstack-site-worker")
                .enable_all()
                .build()
                .map_err(|e| StoreError::Config(format!("cannot start the site's runtime: {e}")))?;
            rt.block_on(async move {
                let (limits, report, stale_after_us, retention) = state_parts;
                let setup = async {
                    let db = Db::open(&url).await?;
                    let store = Store::new(db);
                    let warnings = store.ensure_partitions(now_us()).await?;
                    let listener = tokio::net::TcpListener::bind(addr)
                        .await
                        .map_err(|e| StoreError::Config(format!("cannot listen on {addr}: {e}")))?;
                    let bound =
                        listener.local_addr().map_err(|e| StoreError::Config(e.to_string()))?;
                    Ok::<_, StoreError>((
                        store,
                        listener,
                        Ready { addr: bound, database: url.display(), open, https, warnings },
                    ))
                };
                let (store, listener, ready) = match setup.await {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = ready_tx.send(Err(StoreError::Config(e.to_string())));
                        return Err(e);
                    }
                };
                let ingester = Ingester::spawn(store.clone(), limits);
                let (ops, wake) = (task_api.ops.clone(), task_api.wake.clone());
                let tasks = run_tasks(store.clone(), control, runner, ops, wake, stopped.clone());
                let (polls, bmc_reads) =
                    telemetry::spawn(telemetry, store.clone(), ingester.clone(), stopped.clone());
                let bound_loop = crate::bound::run(store.clone(), bound.clone(), stopped.clone());
                let workers = [tokio::spawn(tasks), tokio::spawn(bound_loop), polls];
                let state = Arc::new(AppState {
                    store: store.clone(),
                    tokens,
                    ingester,
                    report,
                    stale_after_us,
                    counters: Counters::default(),
                    tasks: task_api,
                    bmc_reads,
                    bound,
                });
                let _ = ready_tx.send(Ok(ready));
                let upkeep =
                    tokio::spawn(maintain(store.clone(), report, retention, stopped.clone()));
                let served = serve(listener, tls, state, stopped).await;
                upkeep.abort();
                // The runner and the loops end their leases before the database closes.
                for w in workers {
                    let _ = w.await;
                }
                store.db().close().await;
                served.map_err(|e| StoreError::Config(format!("serving: {e}")))
            })
        })
        .map_err(|e| StoreError::Config(format!("cannot start the site's thread: {e}")))?;
    match ready_rx.recv() {
        Ok(Ok(ready)) => Ok(Running { ready, stop, thread: Some(thread) }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => Err(not_ready(thread)),
    }
}

/// Why the site's thread ended before it was ready.
fn not_ready(thread: JoinHandle<Result<(), StoreError>>) -> StoreError {
    thread
        .join()
        .unwrap_or_else(|_| Err(StoreError::Unavailable("the site's thread panicked".into())))
        .err()
        .unwrap_or_else(|| StoreError::Unavailable("the site stopped before it was ready".into()))
}

/// Serves the API on `listener`, in TLS with `tls`, until `stopped` turns true; the requests in
/// flight are finished.
async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<AppState>,
    mut stopped: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let router = app(state.clone());
    match tls {
        Some(config) => {
            tls::serve(listener, config, router, state, stopped).await;
            Ok(())
        }
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        }
    }
}

/// The maintenance loop: settles ended jobs every [`SETTLE_EVERY`], looks after partitions and
/// retention every [`HOUSEKEEPING_EVERY`]; a failure is a warning line (once until it changes).
async fn maintain(
    store: Store,
    report: ReportSettings,
    retention: (u64, u64),
    mut stopped: watch::Receiver<bool>,
) {
    let mut last_warning = String::new();
    let mut next_housekeeping = tokio::time::Instant::now() + HOUSEKEEPING_EVERY;
    loop {
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => return,
            () = tokio::time::sleep(SETTLE_EVERY) => {}
        }
        let now = now_us();
        let mut result = match store.roll_up(now).await {
            Ok(_) => settle(&store, now, &report, 100).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if result.is_ok() && tokio::time::Instant::now() >= next_housekeeping {
            next_housekeeping += HOUSEKEEPING_EVERY;
            result = async {
                for w in store.ensure_partitions(now).await? {
                    eprintln!("warning: site: {w}");
                }
                store
                    .expire(now.saturating_sub(retention.0), now.saturating_sub(retention.1))
                    .await?;
                Ok(())
            }
            .await;
        }
        match result {
            Ok(()) => last_warning.clear(),
            Err(e) => {
                let w = e.to_string();
                if w != last_warning {
                    eprintln!("warning: site: {w}");
                    last_warning = w;
                }
            }
        }
    }
}
