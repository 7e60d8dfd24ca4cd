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

/// What went wrong talking to a BMC.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The BMC's URL or the way to reach it is not usable.
    #[error("BMC URL {url:?} is not usable: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// Why, and what to give instead.
        reason: String,
    },
    /// The request could not be sent or its answer not received (a GET, or a request that
    /// certainly was not processed).
    #[error("{uri}: request failed: {reason}; check the BMC is reachable")]
    Transport {
        /// The resource.
        uri: String,
        /// Why.
        reason: String,
    },
    /// No answer within the per-request timeout.
    #[error("{uri}: no answer within {timeout_ms} ms; the BMC is slow or down")]
    Timeout {
        /// The resource.
        uri: String,
        /// The timeout.
        timeout_ms: u64,
    },
    /// A request that changes something (POST, PATCH, DELETE) was sent and its answer was lost:
    /// the BMC may or may not have acted on it. It is not resent; read the state back.
    #[error(
        "{method} {uri}: the answer was lost ({reason}); the BMC may or may not have acted on it: read the state back before trying again"
    )]
    OutcomeUnknown {
        /// The method.
        method: String,
        /// The resource.
        uri: String,
        /// What happened.
        reason: String,
    },
    /// The BMC refused the credentials (after one new login, with sessions).
    #[error("{uri}: the BMC refused the credentials (401); check user and password")]
    Unauthorized {
        /// The resource.
        uri: String,
    },
    /// The BMC answered with an error status (other than 404, which is an absent resource).
    #[error("{uri} answered {status}{}{}", retry_after_s.map(|s| format!(", retry after {s} s")).unwrap_or_default(), message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        /// The resource.
        uri: String,
        /// The HTTP status.
        status: u16,
        /// The `Retry-After` header, seconds.
        retry_after_s: Option<u64>,
        /// The Redfish error's message, when the answer has one.
        message: Option<String>,
    },
    /// A resource that must exist does not (404).
    #[error("{uri}: no such resource (404)")]
    NotFound {
        /// The resource.
        uri: String,
    },
    /// The answer is not JSON.
    #[error("{uri}: the answer is not JSON: {reason}")]
    Malformed {
        /// The resource.
        uri: String,
        /// The parser's message.
        reason: String,
    },
    /// The answer is JSON but not the document expected.
    #[error("{uri}: {source}")]
    Document {
        /// The resource.
        uri: String,
        /// What is wrong with it.
        source: ParseError,
    },
    /// The request was refused before anything was sent (a value out of range, a set point in
    /// percent, a reset the BMC does not allow, no such chassis, limit or system).
    #[error("{0}; nothing was sent")]
    Refused(String),
    /// A task the BMC started for a request ended without completing, or did not end in time.
    #[error("task {uri}: {reason}")]
    Task {
        /// The task monitor.
        uri: String,
        /// Its state and messages.
        reason: String,
    },
}

impl Error {
    /// The resource the error is about (empty for a bad URL or a refusal).
    pub fn uri(&self) -> &str {
        match self {
            Error::Url { .. } | Error::Refused(_) => "",
            Error::Transport { uri, .. }
            | Error::Timeout { uri, .. }
            | Error::OutcomeUnknown { uri, .. }
            | Error::Unauthorized { uri }
            | Error::Status { uri, .. }
            | Error::NotFound { uri }
            | Error::Malformed { uri, .. }
            | Error::Document { uri, .. }
            | Error::Task { uri, .. } => uri,
        }
    }
}
