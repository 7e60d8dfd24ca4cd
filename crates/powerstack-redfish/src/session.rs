//! Credentials: basic auth, and Redfish sessions (login, a new login after a 401, logout).

use base64::Engine as _;
use hyper::Method;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use serde_json::json;

use crate::client::Bmc;
use crate::error::Error;

/// The standard sessions collection, where a login is POSTed.
pub const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";

/// An open session: its token and where to DELETE it.
#[derive(Debug)]
pub(crate) struct Session {
    pub token: HeaderValue,
    pub location: Option<String>,
}

/// The `Authorization` header of basic auth; `None` when it cannot be a header value.
pub(crate) fn basic(user: &str, password: &str) -> Option<HeaderValue> {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {token}")).ok()
}

/// The path of a `Location` (which may be an absolute URL).
pub(crate) fn path_of(location: &str) -> String {
    if location.starts_with('/') {
        return location.to_string();
    }
    location
        .parse::<hyper::Uri>()
        .ok()
        .and_then(|u| u.path_and_query().map(|p| p.as_str().to_string()))
        .unwrap_or_else(|| location.to_string())
}

impl Bmc {
    /// The session's token, logging in when there is none or when the one there is `stale`
    /// (refused with a 401); concurrent callers wait for one login.
    pub(crate) async fn session_token(
        &self,
        user: &str,
        password: &str,
        stale: Option<&HeaderValue>,
    ) -> Result<HeaderValue, Error> {
        let mut current = self.session.lock().await;
        if let Some(session) = current.as_ref()
            && stale.is_none_or(|used| *used != session.token)
        {
            return Ok(session.token.clone());
        }
        let body = json!({"UserName": user, "Password": password});
        let body = Bytes::from(body.to_string());
        let answer = self.exchange(&Method::POST, SESSIONS, body, &[]).await?;
        if !answer.status.is_success() {
            return Err(answer.into_error(SESSIONS));
        }
        let token =
            answer.headers.get("x-auth-token").cloned().ok_or_else(|| Error::Malformed {
                uri: SESSIONS.into(),
                reason: "the login's answer has no X-Auth-Token header".into(),
            })?;
        let location = answer.header(header::LOCATION).map(path_of).or_else(|| {
            let doc = answer.json(SESSIONS).ok()?;
            doc.get("@odata.id").and_then(|v| v.as_str()).map(str::to_string)
        });
        *current = Some(Session { token: token.clone(), location });
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_become_paths() {
        assert_eq!(path_of("/redfish/v1/x"), "/redfish/v1/x");
        assert_eq!(
            path_of("https://bmc:443/redfish/v1/TaskMonitors/1"),
            "/redfish/v1/TaskMonitors/1"
        );
        assert_eq!(basic("root", "pw").unwrap(), "Basic cm9vdDpwdw==");
    }
}
