//! Where an agent listens: a Unix socket path or `host:port`.

use std::fmt;
use std::path::PathBuf;

use crate::error::ClientError;

/// The agent's Unix socket when no address is given.
pub const DEFAULT_SOCKET: &str = "/run/powerstack/agent.sock";
/// Where an agent listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addr {
    /// A Unix socket path.
    Unix(PathBuf),
    /// `host:port` (`[v6]:port` for IPv6 literals).
    Tcp(String),
}

impl Default for Addr {
    /// The default Unix socket, [`DEFAULT_SOCKET`].
    fn default() -> Self {
        Addr::Unix(PathBuf::from(DEFAULT_SOCKET))
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Unix(p) => write!(f, "{}", p.display()),
            Addr::Tcp(hp) => f.write_str(hp),
        }
    }
}

impl Addr {
    /// Parses an agent address: a path containing `/` (a Unix socket, `unix:` prefix allowed),
    /// `host:port`, or `[v6]:port`.
    pub fn parse(text: &str) -> Result<Addr, ClientError> {
        let bad = |why: &str| ClientError::InvalidAddr { addr: text.to_string(), why: why.into() };
        let t = text.trim();
        if t.is_empty() {
            return Err(bad("empty address"));
        }
        if t.chars().any(|c| c.is_control()) {
            return Err(bad("control character in address"));
        }
        if let Some(path) = t.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad("empty socket path"));
            }
            return Ok(Addr::Unix(PathBuf::from(path)));
        }
        if t.contains('/') {
            return Ok(Addr::Unix(PathBuf::from(t)));
        }
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let (v6, after) =
                rest.split_once(']').ok_or_else(|| bad("expected [IPv6 address]:port"))?;
            let port =
                after.strip_prefix(':').ok_or_else(|| bad("expected [IPv6 address]:port"))?;
            if v6.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address between the brackets"));
            }
            (v6, port)
        } else {
            let (host, port) = t.rsplit_once(':').ok_or_else(|| {
                bad("expected host:port, [IPv6 address]:port, or a socket path containing '/'")
            })?;
            if host.contains(':') {
                return Err(bad("IPv6 addresses go between brackets: [addr]:port"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(bad("empty host name"));
        }
        if host.chars().any(char::is_whitespace) {
            return Err(bad("whitespace in host name"));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => Ok(Addr::Tcp(t.to_string())),
            _ => Err(bad("the port must be a number from 1 to 65535")),
        }
    }

    /// The host part of a TCP address (brackets removed), or the socket path.
    pub fn host(&self) -> String {
        match self {
            Addr::Unix(p) => p.display().to_string(),
            Addr::Tcp(hp) => {
                let host = hp.rsplit_once(':').map_or(hp.as_str(), |(h, _)| h);
                host.trim_start_matches('[').trim_end_matches(']').to_string()
            }
        }
    }
}
