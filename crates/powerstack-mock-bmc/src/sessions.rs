//! Redfish sessions: a login creates one (`X-Auth-Token`, `Location`); it expires after a number
//! of requests or on demand (then its requests are 401); DELETE ends it.

use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::state::{Live, Sessions, Shared, error, json_response, lock, respond};

/// Where sessions are created.
pub const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";

impl Sessions {
    /// Whether `token` is a live session; counts the request, and expires the session when it
    /// has had `max_requests`.
    pub(crate) fn admit(&mut self, token: &str, max_requests: Option<u32>) -> bool {
        let Some(live) = self.live.get_mut(token) else { return false };
        if max_requests.is_some_and(|m| live.requests >= m) {
            self.live.remove(token);
            return false;
        }
        live.requests += 1;
        true
    }

    pub(crate) fn expire_all(&mut self) {
        self.live.clear();
    }

    pub(crate) fn open(&self) -> usize {
        self.live.len()
    }
}

/// Answers a login.
pub(crate) fn login(shared: &Shared, body: &Bytes) -> Response {
    let given: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |key: &str| given.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    let (user, password) = (field("UserName"), field("Password"));
    if let Some((u, p)) = &shared.options.credentials
        && (*u != user || *p != password)
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "Base.1.0.NoValidSession",
            "wrong user or password",
        );
    }
    let mut sessions = lock(&shared.sessions);
    sessions.created += 1;
    let id = sessions.created;
    let token = format!("mock-token-{id}-{:08x}", id.wrapping_mul(0x9e37_79b9));
    sessions.live.insert(token.clone(), Live { id, requests: 0 });
    let location = format!("{SESSIONS}/{id}");
    let doc = json!({"@odata.id": location, "Id": id.to_string(), "UserName": user});
    let mut response = json_response(StatusCode::CREATED, &doc);
    for (name, value) in [("x-auth-token", token), (header::LOCATION.as_str(), location)] {
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// Answers a DELETE of a session.
pub(crate) fn logout(shared: &Shared, path: &str) -> Response {
    let id: Option<u32> = path.rsplit('/').next().and_then(|id| id.parse().ok());
    let mut sessions = lock(&shared.sessions);
    let token = sessions.live.iter().find(|(_, l)| Some(l.id) == id).map(|(t, _)| t.clone());
    match token {
        Some(token) => {
            sessions.live.remove(&token);
            respond(StatusCode::NO_CONTENT, Vec::new())
        }
        None => error(StatusCode::NOT_FOUND, "Base.1.0.ResourceMissingAtURI", path),
    }
}
