//! Why a request to an agent failed, in one line naming its address.

use std::io;
use std::time::Duration;

/// Why a request failed. Every message is one line naming the agent's address.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address could not be parsed.
    #[error("invalid agent address {addr:?}: {why}")]
    InvalidAddr {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        why: String,
    },
    /// The method, path, token or body cannot be sent as given.
    #[error("invalid request to agent {addr}: {why}")]
    InvalidRequest {
        /// The agent.
        addr: String,
        /// What is wrong.
        why: String,
    },
    /// The host name does not resolve.
    #[error("cannot resolve agent {addr}: {why}")]
    Resolve {
        /// The agent.
        addr: String,
        /// The resolver's answer.
        why: String,
    },
    /// Nothing listens there.
    #[error("connection refused by {addr}: is `powerstack agent` running{}?", there(.addr))]
    Refused {
        /// The agent.
        addr: String,
    },
    /// The Unix socket does not exist.
    #[error("{addr} does not exist: is `powerstack agent` running?")]
    NoSocket {
        /// The socket path.
        addr: String,
    },
    /// Not allowed to connect to the socket.
    #[error("permission denied connecting to {addr}: ask an administrator for access to the agent")]
    Permission {
        /// The socket path.
        addr: String,
    },
    /// No complete answer before the deadline.
    #[error("agent {addr} did not answer within {}", fmt_duration(*.after))]
    Timeout {
        /// The agent.
        addr: String,
        /// The time allowed.
        after: Duration,
    },
    /// Any other I/O failure.
    #[error("agent {addr}: {source}")]
    Io {
        /// The agent.
        addr: String,
        /// The failure.
        source: io::Error,
    },
    /// TLS failed: the certificate, the name, or a peer that does not speak it; trying again
    /// will not help.
    #[error("TLS with {addr} failed: {why}")]
    Tls {
        /// The peer.
        addr: String,
        /// What failed and what to do.
        why: String,
    },
    /// The answer is not a valid HTTP/1.x response.
    #[error("agent {addr} sent an invalid HTTP response: {why}")]
    Protocol {
        /// The agent.
        addr: String,
        /// What is wrong with it.
        why: String,
    },
}

fn there(addr: &str) -> &'static str {
    if addr.contains('/') { "" } else { " there" }
}

/// Formats a duration the way it is written on the command line: `2s`, `1.5s`, `250ms`.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        format!("{}µs", d.as_micros())
    } else if ms < 1000 {
        format!("{ms}ms")
    } else {
        // Seconds with as few decimals as needed (at most 3): 2s, 1.5s, 1.234s.
        let s = format!("{:.3}", d.as_secs_f64());
        format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
    }
}
