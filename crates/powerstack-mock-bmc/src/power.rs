//! `ComputerSystem.Reset` and a power state machine per system: `PoweringOn`/`PoweringOff` for
//! a configurable time and number of reads, and a graceful request that can be made to never
//! finish.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use crate::state::{Machine, Options, Shared, Step, error, lock, respond};

/// How a reset action's target ends.
pub const RESET_SUFFIX: &str = "/Actions/ComputerSystem.Reset";

impl Machine {
    fn new(state: &str) -> Machine {
        Machine { steps: Default::default(), settled: state.to_string() }
    }

    /// The state now; a `read` counts towards the end of the current step.
    pub(crate) fn state(&mut self, _options: &Options, read: bool) -> String {
        let now = Instant::now();
        while let Some(step) = self.steps.front_mut() {
            if step.reads_left == 0 && now >= step.until {
                self.steps.pop_front();
                continue;
            }
            if read {
                step.reads_left = step.reads_left.saturating_sub(1);
            }
            return step.state.to_string();
        }
        self.settled.clone()
    }

    fn start(&mut self, reset: &str, options: &Options) {
        let now = Instant::now();
        let step = |state, k: u32| Step {
            state,
            until: now + Duration::from_millis(options.transition_ms) * k,
            reads_left: options.transition_reads,
        };
        let never = options.graceful_never_finishes;
        let current = self.state(options, false);
        let (steps, settled) = match reset {
            "GracefulShutdown" | "GracefulRestart" if never => return,
            "ForceOff" | "Off" | "GracefulShutdown" => (vec![step("PoweringOff", 1)], "Off"),
            "On" | "ForceOn" => (vec![step("PoweringOn", 1)], "On"),
            "ForceRestart" | "GracefulRestart" | "PowerCycle" => {
                (vec![step("PoweringOff", 1), step("PoweringOn", 2)], "On")
            }
            "PushPowerButton" if current == "Off" => (vec![step("PoweringOn", 1)], "On"),
            "PushPowerButton" => (vec![step("PoweringOff", 1)], "Off"),
            _ => return,
        };
        self.steps = steps.into();
        self.settled = settled.to_string();
    }
}

/// The reset types a system allows: its `AllowableValues`, else its `ActionInfo`'s.
fn allowed_resets(shared: &Shared, system: &Value) -> Vec<String> {
    let action = system.pointer("/Actions/#ComputerSystem.Reset");
    let strings = |v: Option<&Value>| -> Vec<String> {
        let items = v.and_then(Value::as_array).into_iter().flatten();
        items.filter_map(Value::as_str).map(str::to_string).collect()
    };
    let listed = strings(action.and_then(|a| a.get("ResetType@Redfish.AllowableValues")));
    if !listed.is_empty() {
        return listed;
    }
    let info = action.and_then(|a| a.get("@Redfish.ActionInfo")).and_then(Value::as_str);
    let Some(info) = info.and_then(|uri| lock(&shared.tree).get(uri).cloned()) else {
        return Vec::new();
    };
    let parameters = info.get("Parameters").and_then(Value::as_array).into_iter().flatten();
    let reset =
        parameters.into_iter().find(|p| p.get("Name").and_then(Value::as_str) == Some("ResetType"));
    strings(reset.and_then(|p| p.get("AllowableValues")))
}

/// Answers a POST of `ComputerSystem.Reset` at `path`.
pub(crate) fn reset(shared: &Shared, path: &str, body: &Bytes) -> Response {
    let system = path.strip_suffix(RESET_SUFFIX).unwrap_or(path);
    let Some(doc) = shared.document(system, false) else {
        return error(StatusCode::NOT_FOUND, "Base.1.0.ResourceMissingAtURI", system);
    };
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let Some(reset) = request.get("ResetType").and_then(Value::as_str) else {
        let why = "ResetType is missing";
        return error(StatusCode::BAD_REQUEST, "Base.1.0.ActionParameterMissing", why);
    };
    let allowed = allowed_resets(shared, &doc);
    if !allowed.is_empty() && !allowed.iter().any(|a| a == reset) {
        let why = format!("ResetType {reset} is not one of {}", allowed.join(", "));
        return error(StatusCode::BAD_REQUEST, "Base.1.0.ActionParameterValueNotInList", &why);
    }
    let state = doc.get("PowerState").and_then(Value::as_str).unwrap_or("On").to_string();
    lock(&shared.machines)
        .entry(system.to_string())
        .or_insert_with(|| Machine::new(&state))
        .start(reset, &shared.options);
    respond(StatusCode::NO_CONTENT, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_goes_off_and_on_in_reads() {
        let options = Options { transition_reads: 1, ..Options::default() };
        let mut machine = Machine::new("On");
        machine.start("ForceRestart", &options);
        let seen: Vec<String> = (0..4).map(|_| machine.state(&options, true)).collect();
        assert_eq!(seen, ["PoweringOff", "PoweringOn", "On", "On"]);
        let never = Options { graceful_never_finishes: true, ..options };
        machine.start("GracefulShutdown", &never);
        assert_eq!(machine.state(&never, true), "On");
    }
}
