//! Power transitions: one `ComputerSystem.Reset`, then `PowerState` polled until the
//! transition is confirmed or the deadline passes; a graceful one escalates to the forced one
//! only when asked.

use std::time::{Duration, Instant};

use hyper::header;
use hyper::{Method, StatusCode};
use serde_json::Value;

use crate::client::Bmc;
use crate::error::Error;
use crate::session::path_of;
use crate::systems::{
    PowerState, System, Transition, TransitionOptions, TransitionOutcome, check_allowed,
};

/// The states seen, each change once: `On → PoweringOff → Off`.
fn seen_text(seen: &[PowerState]) -> String {
    let names: Vec<&str> = seen.iter().map(PowerState::as_str).collect();
    if names.is_empty() { "nothing".into() } else { names.join(" → ") }
}

/// The state a restarted system was in before, when not `On`.
fn was(before: Option<&PowerState>) -> &str {
    before.map_or("?", PowerState::as_str)
}

/// What has been seen of one transition so far.
#[derive(Default)]
struct Watch {
    seen: Vec<PowerState>,
    left_on: bool,
    task_done: bool,
    /// The state read before the reset was sent, when it was not `On`: a restart then cannot
    /// be seen leaving `On`, and is confirmed only once `On`.
    before: Option<PowerState>,
}

impl Watch {
    fn see(&mut self, state: PowerState) {
        self.left_on |= state != PowerState::On;
        if self.seen.last() != Some(&state) {
            self.seen.push(state);
        }
    }

    fn last(&self) -> Option<&PowerState> {
        self.seen.last()
    }

    /// Whether polling can stop: the transition is confirmed (and, for a restart, back on).
    fn done(&self, transition: Transition) -> bool {
        let last = self.last();
        match transition {
            Transition::On => last == Some(&PowerState::On),
            Transition::ForceOff | Transition::GracefulShutdown => last == Some(&PowerState::Off),
            _ if self.before.is_some() => last == Some(&PowerState::On),
            _ => (self.left_on || self.task_done) && last == Some(&PowerState::On),
        }
    }

    fn confirmed(&self, transition: Transition) -> bool {
        let left = self.before.is_none() && (self.left_on || self.task_done);
        self.done(transition) || (transition.is_restart() && left)
    }
}

impl Bmc {
    /// Sends the transition's reset and polls `PowerState` until it is confirmed or
    /// `options.deadline_ms` passes; an unconfirmed graceful transition is followed by the
    /// forced one when `options.escalate`. Resets the BMC does not allow are refused before
    /// anything is sent (the forced one too, when escalation is asked).
    pub async fn transition(
        &self,
        system_id: &str,
        transition: Transition,
        options: &TransitionOptions,
    ) -> Result<TransitionOutcome, Error> {
        let system = self.find_system(system_id).await?;
        check_allowed(&system.power, &transition.reset_type())?;
        let forced = transition.forced().filter(|_| options.escalate);
        if let Some(forced) = forced {
            check_allowed(&system.power, &forced.reset_type())?;
        }
        let first = self.one_transition(&system, transition, options).await?;
        let Some(forced) = forced.filter(|_| !first.confirmed) else { return Ok(first) };
        let second = self.one_transition(&system, forced, options).await?;
        Ok(TransitionOutcome {
            escalated: true,
            note: format!("{}; escalated: {}", first.note, second.note),
            ..second
        })
    }

    async fn one_transition(
        &self,
        system: &System,
        transition: Transition,
        options: &TransitionOptions,
    ) -> Result<TransitionOutcome, Error> {
        let answer = self.post_reset(system, &transition.reset_type()).await?;
        let mut task = (answer.status == StatusCode::ACCEPTED)
            .then(|| answer.header(header::LOCATION).map(path_of))
            .flatten();
        let started = Instant::now();
        let deadline = started + Duration::from_millis(options.deadline_ms);
        let before = system.power.power_state.clone().filter(|s| *s != PowerState::On);
        let mut watch = Watch { before, ..Watch::default() };
        loop {
            tokio::time::sleep(Duration::from_millis(options.poll_interval_ms)).await;
            watch.see(self.state_at(&system.power.uri).await?);
            if let Some(monitor) = &task
                && self.task_finished(monitor).await?
            {
                watch.task_done = true;
                task = None;
            }
            if watch.done(transition) || Instant::now() >= deadline {
                break;
            }
        }
        let confirmed = watch.confirmed(transition);
        let seen = seen_text(&watch.seen);
        let elapsed_ms = started.elapsed().as_millis();
        let note = match (confirmed, transition.is_restart()) {
            (true, true) if watch.before.is_some() => format!(
                "{transition} sent; the system was {} before, and is On (seen: {seen})",
                was(watch.before.as_ref())
            ),
            (false, true) if watch.before.is_some() => format!(
                "{transition} sent, not confirmed: the system was {} before, and not On within {elapsed_ms} ms (seen: {seen})",
                was(watch.before.as_ref())
            ),
            (true, true) if watch.left_on => format!("{transition} sent; left On (seen: {seen})"),
            (true, true) => format!("{transition} sent; the BMC's task completed (seen: {seen})"),
            (true, false) => format!("{transition} sent; confirmed (seen: {seen})"),
            (false, true) => format!(
                "{transition} sent, not confirmable: PowerState never left On and no task completed within {elapsed_ms} ms (seen: {seen})"
            ),
            (false, false) => {
                format!("{transition} sent; not confirmed within {elapsed_ms} ms (seen: {seen})")
            }
        };
        Ok(TransitionOutcome {
            final_state: watch.last().cloned(),
            confirmed,
            escalated: false,
            note,
        })
    }

    /// Whether the task at `monitor` has completed (an error when it failed).
    async fn task_finished(&self, monitor: &str) -> Result<bool, Error> {
        let answer = self.send(Method::GET, monitor, None, &[]).await?;
        if answer.status == StatusCode::ACCEPTED {
            return Ok(false);
        }
        if !answer.status.is_success() {
            return Err(answer.into_error(monitor));
        }
        let doc = answer.json(monitor).unwrap_or(Value::Null);
        Ok(matches!(doc.get("TaskState").and_then(Value::as_str), None | Some("Completed")))
    }
}
