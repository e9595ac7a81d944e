//! The domain's error: a kind (which the HTTP layer maps to a status), a stable
//! machine-readable code, and a message that tells the administrator what happened and
//! what to do.

use russet_store::StoreError;
use serde_json::Value;

/// What sort of failure, independent of any transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or a value is not acceptable.
    Invalid,
    /// An uploaded file or value is too large.
    TooLarge,
    NotFound,
    /// It existed but can no longer be used (an expired or revoked link).
    Gone,
    /// The request conflicts with the current state; nothing was changed.
    Conflict,
    /// A dependency (the database, Apple) cannot be reached; try again later.
    Unavailable,
    /// Apple refused the request (terms not signed, token revoked, validation…).
    Upstream,
    /// Refused for who is asking: a failed sign-in, a locked or disabled account.
    Forbidden,
    /// Too soon: a limit on how often something may happen (see `retry_after`).
    RateLimited,
    /// A bug or damaged data; details are in the server log.
    Internal,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CoreError {
    pub kind: ErrorKind,
    /// Stable, snake_case; clients may match on it.
    pub code: &'static str,
    pub message: String,
    /// Extra machine-readable facts (never secrets).
    pub details: Option<Value>,
    /// Seconds after which trying again makes sense.
    pub retry_after: Option<u64>,
}

impl CoreError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        CoreError {
            kind,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, code, message)
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Concurrent => CoreError::conflict(
                "concurrent_change",
                "the record was changed by another request at the same time; nothing was changed by this one: \
                 read it again and retry",
            ),
            StoreError::Constraint { constraint } => CoreError::conflict(
                "constraint",
                format!("the change conflicts with existing data ({constraint}); nothing was changed"),
            ),
            StoreError::Connect { .. } => CoreError::new(ErrorKind::Unavailable, "database_unavailable", e.to_string()),
            StoreError::Crypto(_) | StoreError::MasterKeyMismatch { .. } => {
                tracing::error!(error = %e, "stored secret unusable");
                CoreError::new(ErrorKind::Internal, "secret_unreadable", e.to_string())
            }
            other => {
                tracing::error!(error = %other, "storage failure");
                CoreError::new(
                    ErrorKind::Internal,
                    "internal",
                    "an internal storage error occurred; nothing was changed. The server log has the details",
                )
            }
        }
    }
}
