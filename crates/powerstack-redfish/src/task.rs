//! Task monitors: a `202 Accepted` with a `Location` is polled until the task ends.

use std::time::{Duration, Instant};

use hyper::header;
use hyper::{Method, StatusCode};
use serde_json::Value;

use crate::client::{Answer, Bmc};
use crate::error::Error;
use crate::session::path_of;

/// The messages of a task (`Messages[].Message`), on one line.
fn messages(doc: &Value) -> String {
    let texts: Vec<&str> = doc
        .get("Messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("Message").and_then(Value::as_str))
        .collect();
    if texts.is_empty() { "no message".into() } else { texts.join("; ") }
}

impl Bmc {
    /// Follows the task monitor of a `202` answer (its `Location`) until the task ends, every
    /// `task_poll_interval_ms` for at most `task_deadline_ms`; the monitor's last answer. A
    /// `202` without a `Location` is returned as it is.
    pub(crate) async fn follow_task(&self, accepted: Answer) -> Result<Answer, Error> {
        let Some(monitor) = accepted.header(header::LOCATION).map(path_of) else {
            return Ok(accepted);
        };
        let deadline = Instant::now() + Duration::from_millis(self.task_deadline_ms);
        loop {
            if Instant::now() >= deadline {
                return Err(Error::Task {
                    uri: monitor,
                    reason: format!(
                        "not ended within {} ms; read the state back",
                        self.task_deadline_ms
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(self.task_poll_interval_ms)).await;
            let answer = self.send(Method::GET, &monitor, None, &[]).await?;
            if answer.status == StatusCode::ACCEPTED {
                continue;
            }
            if !answer.status.is_success() {
                return Err(answer.into_error(&monitor));
            }
            let doc = answer.json(&monitor).unwrap_or(Value::Null);
            match doc.get("TaskState").and_then(Value::as_str) {
                None | Some("Completed") => return Ok(answer),
                Some(state @ ("Exception" | "Killed" | "Cancelled" | "Interrupted")) => {
                    let reason = format!("ended {state}: {}", messages(&doc));
                    return Err(Error::Task { uri: monitor, reason });
                }
                Some(_) => {}
            }
        }
    }
}
