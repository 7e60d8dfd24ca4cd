//! The one error of the site's store and service; [`StoreError::status`] is its HTTP status.

/// Why a store operation failed; [`StoreError::status`] is its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A setting cannot be used.
    #[error("{0}")]
    Config(String),
    /// The database cannot be reached or failed: try again later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// What was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts what is stored.
    #[error("{0}")]
    Conflict(String),
    /// The request is well-formed but cannot be stored.
    #[error("{0}")]
    Invalid(String),
    /// Too much is kept or running already: try again later.
    #[error("{0}")]
    Busy(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Unavailable(format!("applying the schema migrations: {e}"))
    }
}

impl StoreError {
    /// The HTTP status this error answers.
    pub fn status(&self) -> u16 {
        match self {
            StoreError::Config(_) => 500,
            StoreError::Unavailable(_) => 503,
            StoreError::NotFound(_) => 404,
            StoreError::Conflict(_) => 409,
            StoreError::Invalid(_) => 422,
            StoreError::Busy(_) => 429,
        }
    }
}
