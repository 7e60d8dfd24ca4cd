//! PATCH: `If-Match` checked against the ETag (412 when it differs, 428 when required and
//! missing), only writable properties merged (others 400), ranges checked (400), and the change
//! made at once, after a task monitor completes, or at the next reset.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::state::{LimitTiming, Shared, Task, error, is_error_only, json_response, lock};

/// Properties a PATCH may set.
const WRITABLE: [&str; 5] =
    ["SetPoint", "ControlMode", "LimitInWatts", "LimitException", "CorrectionInMs"];
/// Objects and arrays a PATCH may go into.
const CONTAINERS: [&str; 3] = ["PowerControl", "PowerLimit", "PowerLimitWatts"];
/// Where task monitors are.
pub const TASK_MONITORS: &str = "/redfish/v1/TaskService/TaskMonitors";

/// Merges `patch` into `target`; the error names the first property that may not be written.
fn merge(target: &mut Value, patch: &Value, at: &str) -> Result<(), String> {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                let here = if at.is_empty() { key.clone() } else { format!("{at}/{key}") };
                if WRITABLE.contains(&key.as_str()) {
                    check_type(key, value).map_err(|e| format!("{here}: {e}"))?;
                    target.insert(key.clone(), value.clone());
                } else if CONTAINERS.contains(&key.as_str()) {
                    let inner =
                        target.get_mut(key).ok_or_else(|| format!("{here} does not exist"))?;
                    merge(inner, value, &here)?;
                } else {
                    return Err(format!("{here} is not writable"));
                }
            }
            Ok(())
        }
        (Value::Array(target), Value::Array(patch)) => {
            if patch.len() > target.len() {
                return Err(format!("{at} has {} members, not {}", target.len(), patch.len()));
            }
            for (i, (item, change)) in target.iter_mut().zip(patch).enumerate() {
                merge(item, change, &format!("{at}/{i}"))?;
            }
            Ok(())
        }
        _ => Err(format!("{at} has another type")),
    }
}

fn check_type(key: &str, value: &Value) -> Result<(), String> {
    let ok = match key {
        "SetPoint" | "CorrectionInMs" => value.is_number(),
        "LimitInWatts" => value.is_number() || value.is_null(),
        "ControlMode" => {
            matches!(value.as_str(), Some("Automatic" | "Override" | "Manual" | "Disabled"))
        }
        _ => value.is_string(),
    };
    if ok { Ok(()) } else { Err(format!("{value} is not a valid value")) }
}

fn number(doc: &Value, pointer: &str) -> Option<f64> {
    doc.pointer(pointer).and_then(Value::as_f64)
}

/// The first set point outside its range, in words.
fn out_of_range(doc: &Value) -> Option<String> {
    let outside = |value: f64, min: Option<f64>, max: Option<f64>| {
        (min.is_some_and(|m| value < m) || max.is_some_and(|m| value > m))
            .then(|| format!("{value} is outside {min:?}..{max:?}"))
    };
    if let Some(set_point) = doc.get("SetPoint").and_then(Value::as_f64)
        && doc.get("ControlMode").and_then(Value::as_str) != Some("Disabled")
    {
        let min = number(doc, "/AllowableMin").or_else(|| number(doc, "/SettingRangeMin"));
        let max = number(doc, "/AllowableMax").or_else(|| number(doc, "/SettingRangeMax"));
        if let Some(why) = outside(set_point, min, max) {
            return Some(format!("SetPoint {why}"));
        }
    }
    if let Some(excerpt) = doc.get("PowerLimitWatts")
        && let Some(why) = out_of_range(excerpt)
    {
        return Some(why);
    }
    let controls = doc.get("PowerControl").and_then(Value::as_array).into_iter().flatten();
    for control in controls {
        let Some(limit) = number(control, "/PowerLimit/LimitInWatts") else { continue };
        let min = number(control, "/Oem/Cray/PowerLimit/Min");
        let max = number(control, "/Oem/Cray/PowerLimit/Max")
            .or_else(|| number(control, "/PowerCapacityWatts"));
        if let Some(why) = outside(limit, min, max) {
            return Some(format!("LimitInWatts {why}"));
        }
    }
    None
}

fn reset_required_message() -> Value {
    json!([{"MessageId": "Base.1.16.ResetRequired",
            "Message": "In order to apply changes, recover from errors, or other reasons, the component requires a reset.",
            "Severity": "Warning"}])
}

/// Answers a PATCH of `path`.
pub(crate) fn patch(shared: &Shared, path: &str, headers: &HeaderMap, body: &Bytes) -> Response {
    let Some(current) = shared.document(path, false).filter(|d| !is_error_only(d)) else {
        return error(StatusCode::NOT_FOUND, "Base.1.0.ResourceMissingAtURI", path);
    };
    if shared.faults.take_stale_etag(path) {
        shared.bump_generation(path);
    }
    let served = serde_json::to_vec(&current).unwrap_or_default();
    let tag = shared.etag(path, &served);
    match headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        None if shared.options.require_if_match => {
            let why = "this resource is written with If-Match and its ETag only";
            return error(StatusCode::PRECONDITION_REQUIRED, "Base.1.0.PreconditionRequired", why);
        }
        Some(given) if given != "*" && given != tag => {
            let why = "the resource has changed since its ETag was read";
            return error(StatusCode::PRECONDITION_FAILED, "Base.1.0.PreconditionFailed", why);
        }
        _ => {}
    }
    let Ok(change) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, "Base.1.0.MalformedJSON", "the body is not JSON");
    };
    let mut doc = current.clone();
    if let Err(why) = merge(&mut doc, &change, "") {
        return error(StatusCode::BAD_REQUEST, "Base.1.0.PropertyNotWritable", &why);
    }
    if let Some(why) = out_of_range(&doc) {
        return error(StatusCode::BAD_REQUEST, "Base.1.0.PropertyValueOutOfRange", &why);
    }
    if let Some(polls) = shared.options.patch_task_polls {
        return start_task(shared, polls, Some((path.to_string(), doc)));
    }
    match shared.options.limit_timing {
        LimitTiming::Immediate => {
            lock(&shared.tree).insert(path, doc.clone());
            json_response(StatusCode::OK, &doc)
        }
        timing => {
            lock(&shared.after_reset).push((path.to_string(), doc));
            let mut answer = current;
            if timing == LimitTiming::AfterResetAnnounced {
                answer["@Message.ExtendedInfo"] = reset_required_message();
            }
            json_response(StatusCode::OK, &answer)
        }
    }
}

/// A task that completes after `polls` GETs of its monitor (then makes `change`): the `202`
/// answer with the monitor's `Location`.
pub(crate) fn start_task(shared: &Shared, polls: u32, change: Option<(String, Value)>) -> Response {
    let mut tasks = lock(&shared.tasks);
    tasks.push(Task { remaining_polls: polls, change, done: false });
    let monitor = format!("{TASK_MONITORS}/{}", tasks.len());
    let mut response = json_response(StatusCode::ACCEPTED, &task_doc(tasks.len(), "Running"));
    if let Ok(location) = header::HeaderValue::from_str(&monitor) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn task_doc(id: usize, state: &str) -> Value {
    json!({"@odata.id": format!("/redfish/v1/TaskService/Tasks/{id}"), "Id": id.to_string(),
           "TaskState": state, "Messages": []})
}

/// A GET of a task monitor: 202 while the task runs, then the change is made and 200.
pub(crate) fn task_monitor(shared: &Shared, path: &str) -> Option<Response> {
    let id: usize = path.strip_prefix(TASK_MONITORS)?.strip_prefix('/')?.parse().ok()?;
    let mut tasks = lock(&shared.tasks);
    let Some(task) = id.checked_sub(1).and_then(|i| tasks.get_mut(i)) else {
        return Some(error(StatusCode::NOT_FOUND, "Base.1.0.ResourceMissingAtURI", path));
    };
    if task.remaining_polls > 0 {
        task.remaining_polls -= 1;
        return Some(json_response(StatusCode::ACCEPTED, &task_doc(id, "Running")));
    }
    if !task.done {
        task.done = true;
        if let Some((path, doc)) = &task.change {
            lock(&shared.tree).insert(path, doc.clone());
        }
    }
    Some(json_response(StatusCode::OK, &task_doc(id, "Completed")))
}

/// Makes the changes that waited for a reset.
pub(crate) fn apply_after_reset(shared: &Shared) {
    let pending = std::mem::take(&mut *lock(&shared.after_reset));
    let mut tree = lock(&shared.tree);
    for (path, doc) in pending {
        tree.insert(&path, doc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_writable_properties_merge() {
        let mut doc = json!({"SetPoint": 1, "Id": "x", "PowerControl": [{"PowerLimit": {"LimitInWatts": 5}}, {}]});
        merge(&mut doc, &json!({"SetPoint": 3, "ControlMode": "Automatic"}), "").unwrap();
        assert_eq!(doc["SetPoint"], 3);
        merge(&mut doc, &json!({"PowerControl": [{"PowerLimit": {"LimitInWatts": null}}]}), "")
            .unwrap();
        assert!(doc["PowerControl"][0]["PowerLimit"]["LimitInWatts"].is_null());
        assert_eq!(merge(&mut doc, &json!({"Id": "y"}), ""), Err("Id is not writable".into()));
        assert!(merge(&mut doc, &json!({"ControlMode": "Sometimes"}), "").is_err());
        assert!(merge(&mut doc, &json!({"PowerControl": [{}, {}, {}]}), "").is_err());
    }

    #[test]
    fn ranges_are_checked() {
        let control = json!({"SetPoint": 90, "AllowableMin": 100, "ControlMode": "Automatic"});
        assert!(out_of_range(&control).is_some());
        let off = json!({"SetPoint": 0, "SettingRangeMin": 764, "ControlMode": "Disabled"});
        assert_eq!(out_of_range(&off), None);
        let legacy = json!({"PowerControl": [{"PowerCapacityWatts": 800, "PowerLimit": {"LimitInWatts": 900}}]});
        assert!(out_of_range(&legacy).is_some());
    }
}
