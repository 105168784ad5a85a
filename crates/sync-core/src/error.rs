//! The one error type of the traits in this crate, and its stable [`ErrorCode`].

use serde::{Deserialize, Serialize};
use snafu::Snafu;

use crate::NodeId;

/// A boxed error from a backend (database driver, socket, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a store, a transport or the sync loop.
///
/// Match on [`Error::code`] rather than on variants: codes are stable, variants
/// may be added.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub))]
#[non_exhaustive]
pub enum Error {
    /// An event or request that breaks a rule of the data model.
    #[snafu(display("invalid input: {reason}"))]
    InvalidInput {
        /// What was expected and what came.
        reason: String,
    },

    /// Something is bigger than its configured limit.
    #[snafu(display("{what} is {size} bytes, limit is {limit} bytes"))]
    TooLarge {
        /// What was measured ("event data", "request body", ...).
        what: String,
        /// The measured size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },

    /// A vector clock has more entries than allowed.
    #[snafu(display("vector clock has {entries} entries, limit is {limit}"))]
    ClockTooLarge {
        /// Entries in the clock.
        entries: usize,
        /// The configured limit.
        limit: usize,
    },

    /// A cursor that could not be parsed.
    #[snafu(display("malformed cursor {input:?}: {reason}"))]
    MalformedCursor {
        /// The input as received.
        input: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A cursor made by another store (the peer was replaced or restored).
    /// The cure is a resync from the start, which is cheap: applying an
    /// event twice is a no-op.
    #[snafu(display("cursor belongs to store {found}, this store is {expected}"))]
    ForeignCursor {
        /// This store's id.
        expected: NodeId,
        /// The id in the cursor.
        found: NodeId,
    },

    /// A cursor of this store past its head: the store did not hand it out
    /// as it is now (it was restored from an older copy, say). The cure is
    /// the same as for a foreign cursor, a resync from the start.
    #[snafu(display("cursor {cursor} is past this store's head {head}"))]
    CursorPastHead {
        /// The cursor as received, in its text form.
        cursor: String,
        /// The store's head, in its text form.
        head: String,
    },

    /// Bytes that do not decode as the expected message.
    #[snafu(display("cannot decode {format} body: {message}"))]
    Decode {
        /// "json" or "postcard".
        format: &'static str,
        /// The decoder's message.
        message: String,
    },

    /// The store backend failed (I/O, database, corruption).
    #[snafu(display("storage failed while {action}: {source}"))]
    Storage {
        /// What the store was doing.
        action: String,
        /// The backend's error.
        source: BoxError,
    },

    /// The peer could not be reached or the connection broke.
    #[snafu(display("peer unavailable: {message}"))]
    Unavailable {
        /// What failed.
        message: String,
    },

    /// The operation did not finish within its timeout.
    #[snafu(display("timed out after {millis} ms while {action}"))]
    Timeout {
        /// What was running.
        action: String,
        /// The timeout.
        millis: u64,
    },

    /// The peer answered with an error.
    #[snafu(display("peer answered {code}: {message}"))]
    Remote {
        /// The code the peer sent.
        code: ErrorCode,
        /// The peer's message.
        message: String,
    },

    /// The transport cannot do this (for example, live subscribe over plain HTTP).
    #[snafu(display("not supported by this transport: {what}"))]
    Unsupported {
        /// The operation.
        what: String,
    },
}

impl Error {
    /// The stable code of this error, used to pick HTTP / gRPC statuses.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidInput { .. } | Error::ClockTooLarge { .. } => ErrorCode::InvalidInput,
            Error::TooLarge { .. } => ErrorCode::TooLarge,
            Error::MalformedCursor { .. } | Error::ForeignCursor { .. } | Error::CursorPastHead { .. } => {
                ErrorCode::BadCursor
            }
            Error::Decode { .. } => ErrorCode::Malformed,
            Error::Storage { .. } => ErrorCode::Storage,
            Error::Unavailable { .. } => ErrorCode::Unavailable,
            Error::Timeout { .. } => ErrorCode::Timeout,
            Error::Remote { code, .. } => *code,
            Error::Unsupported { .. } => ErrorCode::Unsupported,
        }
    }

    /// Wraps a backend error as [`Error::Storage`].
    pub fn storage(action: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Storage { action: action.into(), source: source.into() }
    }

    /// True when the input was refused (an event breaks a rule or a limit),
    /// as opposed to a failure: sending the same input again cannot succeed.
    pub fn is_refusal(&self) -> bool {
        matches!(self.code(), ErrorCode::InvalidInput | ErrorCode::TooLarge)
    }

    /// Builds [`Error::InvalidInput`].
    pub fn invalid(reason: impl Into<String>) -> Self {
        Error::InvalidInput { reason: reason.into() }
    }
}

/// Stable, transport-independent error codes. The wire form is the
/// snake_case name (`"invalid_input"`, ...), see `docs/protocol.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request or an event breaks a rule (HTTP 400).
    InvalidInput,
    /// The body does not decode (HTTP 400).
    Malformed,
    /// The cursor is garbled or belongs to another store (HTTP 400).
    BadCursor,
    /// No or unknown credentials (HTTP 401).
    Unauthorized,
    /// Credentials valid, but not for this scope (HTTP 403).
    Forbidden,
    /// Body, event or batch over its limit (HTTP 413).
    TooLarge,
    /// Content-Type or Content-Encoding not accepted (HTTP 415).
    UnsupportedMediaType,
    /// Nothing at this path (HTTP 404).
    NotFound,
    /// The operation took too long (HTTP 408 / 504).
    Timeout,
    /// The peer cannot be reached or is shutting down (HTTP 503).
    Unavailable,
    /// The store failed (HTTP 500).
    Storage,
    /// The transport cannot do this.
    Unsupported,
    /// Anything else (HTTP 500).
    Internal,
}

impl ErrorCode {
    /// The wire name, e.g. `"bad_cursor"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::Malformed => "malformed",
            ErrorCode::BadCursor => "bad_cursor",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Storage => "storage",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
