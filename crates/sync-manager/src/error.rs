//! Errors of building a manager.

use snafu::Snafu;

/// A [`crate::Builder`] setting that cannot work.
#[derive(Debug, Snafu, PartialEq, Eq)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum BuildError {
    /// `batch_size(0)`.
    #[snafu(display("batch size must be at least 1"))]
    ZeroBatchSize,
    /// A zero timeout or sync interval.
    #[snafu(display("{what} must be longer than zero"))]
    ZeroDuration {
        /// Which setting.
        what: &'static str,
    },
    /// Backoff minimum above its maximum.
    #[snafu(display("backoff minimum {min_ms} ms is above its maximum {max_ms} ms"))]
    BackoffRange {
        /// The minimum.
        min_ms: u64,
        /// The maximum.
        max_ms: u64,
    },
}
