//! The site power bound at run time: which bound is in force ([`in_force`]), and the control
//! loop ([`run`]) that, every period on the one replica holding the loop's lease, builds the
//! policy's input from the store and the nodes ([`gather`]), runs the period shared with the
//! simulated cluster ([`powerstack_bound::Controller`]), writes the plan's two phases through the
//! agents and BMCs ([`apply`]), and records what it did. A bound set or cleared on the replica
//! holding the lease is acted on at once (`wake`); elsewhere within one period. The caps stay in
//! force when the service stops: the bound must hold while no controller runs. A cleared bound
//! raises every node the loop capped to its maximum.

pub mod admit;
pub mod agents;
pub mod apply;
pub mod gather;

use std::sync::Arc;
use std::time::Duration;

use powerstack_api::site_bound::BoundDecisionV1;
use tokio::sync::{Notify, watch};

pub use crate::config::bound::{BoundConfig, BoundWindow};

use crate::store::{Store, StoreError};
use agents::CapPath;
use gather::Ranges;

/// The bound in force and where it comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct InForce {
    /// The bound, W; `None`: no bound.
    pub watts: Option<f64>,
    /// The reserve, W.
    pub reserve_watts: f64,
    /// The policy.
    pub policy: String,
    /// `set`, `schedule`, `config` or `none`.
    pub source: &'static str,
    /// Who set it, for `set`.
    pub set_by: Option<String>,
    /// When, for `set`, µs since the Unix epoch.
    pub set_us: Option<u64>,
}

/// The bound in force at `now_us`: set > schedule > configured > none.
pub async fn in_force(
    store: &Store,
    config: &BoundConfig,
    now_us: u64,
) -> Result<InForce, StoreError> {
    let set = store.set_bound().await?;
    let base = InForce {
        watts: None,
        reserve_watts: config.reserve_watts,
        policy: config.policy.clone(),
        source: "none",
        set_by: None,
        set_us: None,
    };
    Ok(match (set, config.scheduled_watts(now_us), config.watts) {
        (Some(s), _, _) => InForce {
            watts: Some(s.watts),
            reserve_watts: s.reserve_watts.unwrap_or(config.reserve_watts),
            policy: s.policy.unwrap_or_else(|| config.policy.clone()),
            source: "set",
            set_by: Some(s.set_by),
            set_us: Some(s.set_us),
        },
        (None, Some(w), _) => InForce { watts: Some(w), source: "schedule", ..base },
        (None, None, Some(w)) => InForce { watts: Some(w), source: "config", ..base },
        (None, None, None) => base,
    })
}

/// What the loop needs besides the store.
#[derive(Debug)]
pub struct LoopSettings {
    /// `[bound]`.
    pub config: BoundConfig,
    /// The nodes with a BMC (capped through it when they have no agent control).
    pub bmc_nodes: Vec<String>,
    /// How old a node's newest sample may be and still count as measured, µs.
    pub stale_after_us: u64,
    /// This replica's name for the lease.
    pub owner: String,
}

/// What the loop did last, for `/metrics`.
#[derive(Debug, Default)]
pub struct LoopStatus {
    /// The newest decision this replica made.
    pub last: std::sync::Mutex<Option<BoundDecisionV1>>,
    /// Cap writes by outcome: confirmed, not applied, unknown.
    pub writes: [std::sync::atomic::AtomicU64; 3],
}

/// What the loop and the bound's routes share.
#[derive(Debug)]
pub struct BoundShared {
    /// The loop's settings.
    pub settings: LoopSettings,
    /// The cap path to agents and BMCs.
    pub path: Arc<CapPath>,
    /// Each node's cap range as last read.
    pub ranges: tokio::sync::Mutex<Ranges>,
    /// Wakes the loop (a bound set or cleared).
    pub wake: Notify,
    /// What the loop did last.
    pub status: LoopStatus,
}

impl BoundShared {
    /// The shared state of a site with `settings`, reaching nodes through `path`.
    pub fn new(settings: LoopSettings, path: CapPath) -> BoundShared {
        BoundShared {
            settings,
            path: Arc::new(path),
            ranges: tokio::sync::Mutex::default(),
            wake: Notify::new(),
            status: LoopStatus::default(),
        }
    }

    /// The period's input under `bound` (ranges read as due).
    pub async fn gather(
        &self,
        store: &Store,
        forced: &[String],
        bound: powerstack_bound::Bound,
        now_us: u64,
    ) -> Result<gather::Gathered, StoreError> {
        let mut ranges = self.ranges.lock().await;
        gather::gather(store, &self.path, &self.settings, &mut ranges, forced, bound, now_us).await
    }
}

/// The control loop's state between periods.
pub(crate) struct Loop {
    pub(crate) store: Store,
    pub(crate) shared: Arc<BoundShared>,
    pub(crate) controller: Option<powerstack_bound::Controller>,
    /// The bound, reserve and policy of the last period (a change is always recorded).
    pub(crate) last: Option<(Option<f64>, f64, String)>,
    /// Nodes whose write failed last period: their range is read again.
    pub(crate) failed: Vec<String>,
}

/// How long the loop's lease lasts unless renewed: three periods, at least 5 s (a replica stalled
/// for less keeps the loop; one that stops ends its lease at once).
pub fn lease_us(period: Duration) -> u64 {
    (3 * period.as_micros() as u64).max(5_000_000)
}

/// Runs the control loop until `stopped`.
pub async fn run(store: Store, shared: Arc<BoundShared>, mut stopped: watch::Receiver<bool>) {
    let period = Duration::from_secs_f64(shared.settings.config.period_s);
    let owner = shared.settings.owner.clone();
    let mut state = Loop {
        store: store.clone(),
        shared: shared.clone(),
        controller: None,
        last: None,
        failed: Vec::new(),
    };
    let mut complained = false;
    loop {
        let now = crate::clock::now_us();
        let lease_until = now + lease_us(period);
        match store.hold_bound_lease(&owner, now, lease_until).await {
            Ok(true) => match state.period(now).await {
                Ok(()) => complained = false,
                Err(e) if !complained => {
                    eprintln!("powerstack site: the bound's control period failed: {e}");
                    complained = true;
                }
                Err(_) => {}
            },
            Ok(false) => {
                // Another replica runs the loop; start afresh if this one takes it over.
                state.controller = None;
                state.last = None;
            }
            Err(e) if !complained => {
                eprintln!("powerstack site: the bound's lease cannot be taken: {e}");
                complained = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shared.wake.notified() => {}
            _ = stopped.changed() => break,
        }
        if *stopped.borrow() {
            break;
        }
    }
    let _ = store.release_bound_lease(&owner).await;
}
