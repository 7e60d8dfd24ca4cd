//! The control-task runner: a background task of `site serve` that claims pending node
//! operations under a lease, at most `task_concurrency` at once (claiming more as soon as one
//! ends), and drives them through a
//! [`NodeControl`]. Every request is marked sent (committed) before it goes out and is never sent
//! again: an operation taken over after a restart, or from a replica whose lease ran out, or
//! whose answer was lost, is settled by reading the node's state.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use powerstack_api::site_tasks::{
    PowerLimitControlV1, TaskKindV1, TaskNodeResultV1, TaskNodeStateV1, TransitionOperationV1,
};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use crate::clock::now_us;
use crate::control::{ControlError, NodeControl, NodeLimits, PowerState, Transition};
use crate::store::{Claimed, Gate, Store, StoreError};

/// How often expired tasks are looked for.
const EXPIRE_EVERY: Duration = Duration::from_secs(60);

/// How the runner works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunnerSettings {
    /// Node operations at once.
    pub concurrency: usize,
    /// How often power states are read and pending work looked for.
    pub poll: Duration,
    /// How long a claim lasts unless renewed, µs.
    pub lease_us: u64,
    /// A transition's deadline when its request gives none, s.
    pub default_deadline_s: u64,
    /// How long one call to a node's BMC may take; a request not answered by then is settled
    /// by reading the node, as a lost answer.
    pub call_timeout: Duration,
}

/// Node operations this replica finished, by outcome.
#[derive(Debug, Default)]
pub struct OpCounters {
    /// Succeeded.
    pub succeeded: AtomicU64,
    /// Failed.
    pub failed: AtomicU64,
    /// Aborted before they began.
    pub aborted: AtomicU64,
}

/// What one node operation ended in.
#[derive(Clone, Debug, PartialEq)]
struct Outcome {
    state: TaskNodeStateV1,
    reason: String,
    result: TaskNodeResultV1,
}

fn succeeded(reason: impl Into<String>, result: TaskNodeResultV1) -> Outcome {
    Outcome { state: TaskNodeStateV1::Succeeded, reason: reason.into(), result }
}

fn failed(reason: impl Into<String>, result: TaskNodeResultV1) -> Outcome {
    Outcome { state: TaskNodeStateV1::Failed, reason: reason.into(), result }
}

/// A node whose task was aborted before its request went out.
fn aborted() -> Option<Outcome> {
    let reason = "aborted before it began: nothing was sent".to_string();
    Some(Outcome { state: TaskNodeStateV1::Aborted, reason, result: TaskNodeResultV1::default() })
}

struct Ctx {
    store: Store,
    control: Arc<dyn NodeControl>,
    owner: String,
    settings: RunnerSettings,
    counters: Arc<OpCounters>,
}

/// A random id (a UUID, version 4), for tasks and for a runner's claims.
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    if powerstack_client::tls::provider().secure_random.fill(&mut b).is_err() {
        // No system randomness: the clock and the process still make the id unique here.
        let t = now_us().to_le_bytes();
        b[..8].copy_from_slice(&t);
        b[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// Runs until `stopped` turns true: claims work whenever `wake` is notified, a node operation
/// ends, or every poll,
/// renews its leases, expires old tasks. On stop, the operations in flight are dropped and
/// their leases ended, so that the next runner takes them over at once (reading, not sending),
/// and the controller closes what it holds open at the BMCs.
pub async fn run(
    store: Store,
    control: Arc<dyn NodeControl>,
    settings: RunnerSettings,
    counters: Arc<OpCounters>,
    wake: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    let ctx = Arc::new(Ctx { store, control, owner: new_id(), settings, counters });
    let permits = Arc::new(Semaphore::new(settings.concurrency));
    let mut workers = JoinSet::new();
    let renew_every = Duration::from_micros(settings.lease_us / 3).max(Duration::from_millis(10));
    let mut next_renew = tokio::time::Instant::now() + renew_every;
    let mut next_expire = tokio::time::Instant::now();
    let mut last_warning = String::new();
    loop {
        while workers.try_join_next().is_some() {}
        let step = async {
            let now = now_us();
            if tokio::time::Instant::now() >= next_renew {
                next_renew = tokio::time::Instant::now() + renew_every;
                ctx.store.renew_leases(&ctx.owner, now + ctx.settings.lease_us).await?;
            }
            if tokio::time::Instant::now() >= next_expire {
                next_expire = tokio::time::Instant::now() + EXPIRE_EVERY;
                ctx.store.expire_tasks(now).await?;
            }
            let free = permits.available_permits();
            let lease = now + ctx.settings.lease_us;
            let claimed = ctx.store.claim_task_nodes(&ctx.owner, free, now, lease).await?;
            for c in claimed {
                let Ok(permit) = permits.clone().acquire_owned().await else { break };
                let ctx = ctx.clone();
                workers.spawn(async move {
                    work(&ctx, c).await;
                    drop(permit);
                });
            }
            Ok::<(), StoreError>(())
        };
        match step.await {
            Ok(()) => last_warning.clear(),
            Err(e) => {
                let w = e.to_string();
                if w != last_warning {
                    eprintln!("warning: site: control tasks: {w}");
                    last_warning = w;
                }
            }
        }
        // A node operation that ends frees its permit: pending work is claimed for it at once.
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => break,
            () = wake.notified() => {}
            Some(_) = workers.join_next(), if !workers.is_empty() => {}
            () = tokio::time::sleep(settings.poll.min(renew_every)) => {}
        }
    }
    workers.abort_all();
    while workers.join_next().await.is_some() {}
    let _ = ctx.store.release_leases(&ctx.owner, None).await;
    ctx.control.close().await;
}

/// One node operation, start to end; a database failure ends this replica's claim on it.
async fn work(ctx: &Ctx, c: Claimed) {
    let outcome = match c.kind {
        TaskKindV1::Transition => transition(ctx, &c).await,
        TaskKindV1::PowerCap => power_cap(ctx, &c).await,
        TaskKindV1::PowerCapSnapshot => snapshot(ctx, &c).await,
    };
    let recorded = match outcome {
        Ok(Some(o)) => ctx
            .store
            .finish_task_node(&c, &ctx.owner, o.state, Some(&o.reason), Some(&o.result), now_us())
            .await
            .map(|done| done.then_some(o.state)),
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    match recorded {
        Ok(Some(TaskNodeStateV1::Succeeded)) => {
            ctx.counters.succeeded.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Some(TaskNodeStateV1::Failed)) => {
            ctx.counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Some(TaskNodeStateV1::Aborted)) => {
            ctx.counters.aborted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(_) => {}
        Err(e) => {
            eprintln!("warning: site: task {} node {}: {e}", c.task_id, c.node);
            let _ = ctx.store.release_leases(&ctx.owner, Some((&c.task_id, &c.node))).await;
        }
    }
}

/// What a transition operation sends, what escalates it, the state that confirms it, and
/// whether a node already there is done without a request.
fn plan(op: TransitionOperationV1) -> (Transition, Option<Transition>, PowerState, bool) {
    use TransitionOperationV1 as O;
    match op {
        O::On => (Transition::On, None, PowerState::On, true),
        O::Off => (Transition::GracefulShutdown, Some(Transition::ForceOff), PowerState::Off, true),
        O::ForceOff => (Transition::ForceOff, None, PowerState::Off, true),
        O::Restart => {
            (Transition::GracefulRestart, Some(Transition::ForceRestart), PowerState::On, false)
        }
        O::ForceRestart => (Transition::ForceRestart, None, PowerState::On, false),
        O::PowerCycle => (Transition::PowerCycle, None, PowerState::On, false),
    }
}

fn state_result(state: Option<PowerState>) -> TaskNodeResultV1 {
    TaskNodeResultV1 { power_state: state.map(|s| s.as_str().to_string()), ..Default::default() }
}

/// `call`, a request, or, when it does not end within the call timeout, a lost answer.
async fn bounded<T>(
    ctx: &Ctx,
    call: impl Future<Output = Result<T, ControlError>>,
) -> Result<T, ControlError> {
    within(ctx, call, |s| ControlError::OutcomeUnknown(format!("no answer within {s} s"))).await
}

/// `call`, a read, or, when it does not end within the call timeout, a failure saying so (a
/// read changes nothing: no answer to it is not a lost answer).
async fn bounded_read<T>(
    ctx: &Ctx,
    call: impl Future<Output = Result<T, ControlError>>,
) -> Result<T, ControlError> {
    let why = |s| ControlError::Failed(format!("no answer within {s} s; the BMC is slow or down"));
    within(ctx, call, why).await
}

/// `call`, or `timed_out(the timeout in s)` when it does not end within the call timeout.
async fn within<T>(
    ctx: &Ctx,
    call: impl Future<Output = Result<T, ControlError>>,
    timed_out: impl FnOnce(f64) -> ControlError,
) -> Result<T, ControlError> {
    let limit = ctx.settings.call_timeout;
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| Err(timed_out(limit.as_secs_f64())))
}

/// How a wait for a power state ended short of it: the last state read (`None`: unreadable),
/// its text, and whether the node was seen other than on since the request.
type Short = (Option<PowerState>, String, bool);

/// Reads `node`'s power state until it is `target` (`Ok`) or `until_us` passes (`Err`). With
/// `restart`, on counts only once the node was seen other than on (off, powering off or on):
/// a restart shows itself by leaving on.
async fn wait_for(
    ctx: &Ctx,
    node: &str,
    target: PowerState,
    restart: bool,
    until_us: u64,
) -> Result<PowerState, Short> {
    let mut left_on = false;
    loop {
        let last = match bounded_read(ctx, ctx.control.power_state(node)).await {
            Ok(s) if s == target && (!restart || left_on) => return Ok(s),
            Ok(s) => {
                left_on |= s != PowerState::On;
                (Some(s), s.as_str().to_string())
            }
            Err(e) => (None, format!("unreadable ({e})")),
        };
        let now = now_us();
        if now >= until_us {
            return Err((last.0, last.1, left_on));
        }
        let left = Duration::from_micros(until_us - now);
        tokio::time::sleep(ctx.settings.poll.min(left)).await;
    }
}

/// A restart request the BMC took while the node was seen on throughout: it may have restarted
/// without its power state showing it (a warm restart), or not at all.
fn unconfirmable(name: &str, deadline_s: u64, lost: bool) -> Outcome {
    let took = if lost { "the answer was lost" } else { "accepted" };
    let why = format!(
        "{name}: {took}; not confirmable: the node was on at every read over the {deadline_s} s \
         deadline (a warm restart does not show in the power state)"
    );
    succeeded(why, state_result(Some(PowerState::On)))
}

async fn transition(ctx: &Ctx, c: &Claimed) -> Result<Option<Outcome>, StoreError> {
    let Some(op) = c.params.operation else {
        return Ok(Some(failed("the task names no operation", TaskNodeResultV1::default())));
    };
    let (first, escalation, target, skip_at_target) = plan(op);
    // A restart, power cycle included, ends where it began: on.
    let restart = !skip_at_target;
    let deadline_s = c.params.deadline_s.unwrap_or(ctx.settings.default_deadline_s);
    let deadline_us = deadline_s.saturating_mul(1_000_000);
    if let Some(sent) = c.sent_at_us {
        // Sent before this runner took it over: never again; the node says what happened.
        return Ok(Some(match wait_for(ctx, &c.node, target, false, sent + deadline_us).await {
            Ok(s) if restart => succeeded(
                "sent before the service stopped; the node is on now (whether it restarted \
                 cannot be told from its power state)",
                state_result(Some(s)),
            ),
            Ok(s) => succeeded("confirmed after restart", state_result(Some(s))),
            Err((s, seen, _)) => failed(
                format!("the service stopped after sending; the node is now {seen}"),
                state_result(s),
            ),
        }));
    }
    if skip_at_target {
        match bounded_read(ctx, ctx.control.power_state(&c.node)).await {
            Ok(s) if s == target => {
                let why = format!("already {}: nothing was sent", s.as_str());
                return Ok(Some(succeeded(why, state_result(Some(s)))));
            }
            Ok(_) => {}
            Err(e) => {
                let why = format!("reading the power state: {e}; nothing was sent");
                return Ok(Some(failed(why, state_result(None))));
            }
        }
    }
    let escalate = c.params.escalate.unwrap_or(false);
    let (mut request, mut attempt, mut previous) = (first, c.attempt + 1, None);
    loop {
        match ctx.store.mark_sent(c, &ctx.owner, attempt, now_us()).await? {
            Gate::Send => {}
            Gate::Lost => return Ok(None),
            Gate::Aborted if attempt == 1 => return Ok(aborted()),
            Gate::Aborted => {
                let why = format!(
                    "not {} within the {deadline_s} s deadline; not escalated: the task was aborted",
                    target.as_str()
                );
                return Ok(Some(failed(why, state_result(None))));
            }
        }
        let sent = now_us();
        // The request as the BMC got it (`Off` for a graceful shutdown on HPE Cray EX).
        let (lost, name) = match bounded(ctx, ctx.control.send_transition(&c.node, request)).await {
            Ok(name) => (false, name),
            Err(ControlError::OutcomeUnknown(_)) => (true, format!("{request:?}")),
            Err(e @ ControlError::Unsupported(_)) => {
                let why = format!("{request:?}: {e}");
                return refused(ctx, c, attempt, previous, why).await.map(Some);
            }
            Err(e) => {
                return Ok(Some(failed(format!("{request:?}: {e}"), state_result(None))));
            }
        };
        previous = Some(sent);
        match wait_for(ctx, &c.node, target, restart, sent + deadline_us).await {
            Ok(s) => {
                let why = if lost {
                    format!("{name}: the answer was lost; the node is {}", s.as_str())
                } else {
                    format!("{name}: confirmed {}", s.as_str())
                };
                return Ok(Some(succeeded(why, state_result(Some(s)))));
            }
            Err((Some(PowerState::On), _, false)) if restart => {
                return Ok(Some(unconfirmable(&name, deadline_s, lost)));
            }
            Err(_) if escalate && attempt == 1 && escalation.is_some() => {
                request = escalation.unwrap_or(request);
                attempt += 1;
            }
            Err((s, seen, _)) => {
                let why = format!(
                    "{name}: not {} within the {deadline_s} s deadline; the node is {seen}",
                    target.as_str()
                );
                return Ok(Some(failed(why, state_result(s))));
            }
        }
    }
}

/// Request number `attempt`, refused by the controller before it went out: its sent mark is
/// taken back (the node's record keeps the request before it, sent at `previous_us`, if any),
/// and the node fails saying so.
async fn refused(
    ctx: &Ctx,
    c: &Claimed,
    attempt: u32,
    previous_us: Option<u64>,
    why: String,
) -> Result<Outcome, StoreError> {
    ctx.store.unmark_sent(c, &ctx.owner, attempt, previous_us).await?;
    let what = if previous_us.is_none() { "nothing was sent" } else { "it was not sent" };
    Ok(failed(format!("{why}; {what}"), TaskNodeResultV1::default()))
}

fn limits_result(l: &NodeLimits) -> TaskNodeResultV1 {
    TaskNodeResultV1 {
        limit_watts: l.own_limit_watts(),
        limits: l
            .controls
            .iter()
            .map(|c| PowerLimitControlV1 {
                name: c.name.clone(),
                limit_watts: c.limit_watts,
                min_watts: c.min_watts,
                max_watts: c.max_watts,
            })
            .collect(),
        ..Default::default()
    }
}

/// Whether two limits are the same (both none, or within half a watt).
fn same_limit(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => (x - y).abs() < 0.5,
        _ => false,
    }
}

fn limit_text(w: Option<f64>) -> String {
    w.map_or_else(|| "no limit".to_string(), |w| format!("{w} W"))
}

/// Reads `node`'s limits after a request whose outcome is not known: whether it holds `target`.
async fn confirm_limit(ctx: &Ctx, node: &str, target: Option<f64>, how: &str) -> Outcome {
    match bounded_read(ctx, ctx.control.read_limits(node)).await {
        Ok(l) if same_limit(l.own_limit_watts(), target) => {
            succeeded(format!("{how}: the limit is {}", limit_text(target)), limits_result(&l))
        }
        Ok(l) => failed(
            format!("{how}; the node's limit is now {}", limit_text(l.own_limit_watts())),
            limits_result(&l),
        ),
        Err(e) => failed(format!("{how}; the limit cannot be read: {e}"), Default::default()),
    }
}

async fn power_cap(ctx: &Ctx, c: &Claimed) -> Result<Option<Outcome>, StoreError> {
    let target = c.params.limit_watts.flatten();
    if c.sent_at_us.is_some() {
        let o = confirm_limit(ctx, &c.node, target, "the service stopped after sending").await;
        if o.state == TaskNodeStateV1::Succeeded {
            return Ok(Some(succeeded("confirmed after restart", o.result)));
        }
        return Ok(Some(o));
    }
    let limits = match bounded_read(ctx, ctx.control.read_limits(&c.node)).await {
        Ok(l) => l,
        Err(e) => {
            let why = format!("reading the limits: {e}; nothing was sent");
            return Ok(Some(failed(why, Default::default())));
        }
    };
    if let (Some(w), Some(own)) = (target, limits.controls.first()) {
        let below = own.min_watts.is_some_and(|m| w < m);
        let above = own.max_watts.is_some_and(|m| w > m);
        if below || above {
            let why = format!(
                "{w} W is outside the node's range, {} to {}: nothing was sent",
                limit_text(own.min_watts),
                limit_text(own.max_watts)
            );
            return Ok(Some(failed(why, limits_result(&limits))));
        }
    }
    match ctx.store.mark_sent(c, &ctx.owner, 1, now_us()).await? {
        Gate::Send => {}
        Gate::Aborted => return Ok(aborted()),
        Gate::Lost => return Ok(None),
    }
    Ok(Some(match bounded(ctx, ctx.control.set_limit(&c.node, target)).await {
        Ok(r) => {
            let result = TaskNodeResultV1 {
                limit_watts: r.limit_watts,
                pending_reset: Some(r.pending_reset),
                ..Default::default()
            };
            if !same_limit(r.limit_watts, target) {
                let why = format!(
                    "{} written, {} read back",
                    limit_text(target),
                    limit_text(r.limit_watts)
                );
                failed(why, result)
            } else if r.pending_reset {
                succeeded("set; it takes effect at the node's next reset", result)
            } else {
                succeeded("set and read back", result)
            }
        }
        Err(ControlError::OutcomeUnknown(_)) => {
            confirm_limit(ctx, &c.node, target, "the answer was lost").await
        }
        Err(e @ ControlError::Unsupported(_)) => refused(ctx, c, 1, None, e.to_string()).await?,
        Err(e) => failed(format!("{e}"), Default::default()),
    }))
}

async fn snapshot(ctx: &Ctx, c: &Claimed) -> Result<Option<Outcome>, StoreError> {
    // Reading is safe to repeat: a snapshot taken over reads again.
    match ctx.store.mark_sent(c, &ctx.owner, 1, now_us()).await? {
        Gate::Send => {}
        Gate::Aborted => return Ok(aborted()),
        Gate::Lost => return Ok(None),
    }
    Ok(Some(match bounded_read(ctx, ctx.control.read_limits(&c.node)).await {
        Ok(l) => succeeded("read", limits_result(&l)),
        Err(e) => failed(format!("reading the limits: {e}"), Default::default()),
    }))
}
