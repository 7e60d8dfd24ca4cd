//! Credentials: the basic-auth header, and what a Redfish session is (its login and renewal are
//! `Bmc::session_token`, in `client`).

use base64::Engine as _;
use hyper::header::HeaderValue;

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
