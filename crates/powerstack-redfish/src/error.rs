//! Errors: one line each, naming the resource.

/// Why a document could not be understood (the parsing is pure: no URI here, the caller adds it).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// The document is not a JSON object.
    #[error("the document is not a JSON object")]
    NotAnObject,
    /// A property has the wrong type.
    #[error("property {property} is not {expected}")]
    WrongType {
        /// The property path.
        property: String,
        /// What it should be.
        expected: &'static str,
    },
    /// A required property is absent.
    #[error("property {0} is missing")]
    Missing(String),
    /// A reading is in units this client does not know.
    #[error("property {property} is in unknown units {units:?}")]
    UnknownUnits {
        /// The property path.
        property: String,
        /// The units given.
        units: String,
    },
}

/// What went wrong reading a BMC.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The BMC's URL is not usable.
    #[error("BMC URL {url:?} is not usable: {reason}; give http://HOST[:PORT]")]
    Url {
        /// The URL given.
        url: String,
        /// Why.
        reason: String,
    },
    /// The request could not be sent or its answer not received.
    #[error("GET {uri} failed: {reason}; check the BMC is reachable")]
    Transport {
        /// The resource.
        uri: String,
        /// Why.
        reason: String,
    },
    /// No answer within the per-request timeout.
    #[error("GET {uri} timed out after {timeout_ms} ms; the BMC is slow or down")]
    Timeout {
        /// The resource.
        uri: String,
        /// The timeout.
        timeout_ms: u64,
    },
    /// The BMC refused the credentials.
    #[error("GET {uri}: the BMC refused the credentials (401); check user and password")]
    Unauthorized {
        /// The resource.
        uri: String,
    },
    /// The BMC answered with an error status (other than 404, which is an absent resource).
    #[error("GET {uri} answered {status}{}", retry_after_s.map(|s| format!(", retry after {s} s")).unwrap_or_default())]
    Status {
        /// The resource.
        uri: String,
        /// The HTTP status.
        status: u16,
        /// The `Retry-After` header, seconds.
        retry_after_s: Option<u64>,
    },
    /// A resource that must exist does not (404).
    #[error("GET {uri}: no such resource (404)")]
    NotFound {
        /// The resource.
        uri: String,
    },
    /// The answer is not JSON.
    #[error("GET {uri}: the answer is not JSON: {reason}")]
    Malformed {
        /// The resource.
        uri: String,
        /// The parser's message.
        reason: String,
    },
    /// The answer is JSON but not the document expected.
    #[error("GET {uri}: {source}")]
    Document {
        /// The resource.
        uri: String,
        /// What is wrong with it.
        source: ParseError,
    },
}

impl Error {
    /// The resource the error is about (empty for a bad URL).
    pub fn uri(&self) -> &str {
        match self {
            Error::Url { .. } => "",
            Error::Transport { uri, .. }
            | Error::Timeout { uri, .. }
            | Error::Unauthorized { uri }
            | Error::Status { uri, .. }
            | Error::NotFound { uri }
            | Error::Malformed { uri, .. }
            | Error::Document { uri, .. } => uri,
        }
    }
}
