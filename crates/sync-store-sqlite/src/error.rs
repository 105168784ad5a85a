//! Errors of opening a store: configuration, connection and schema.
//!
//! Once open, the [`EventStore`](sync_core::EventStore) methods return
//! [`sync_core::Error`], with driver failures as
//! [`sync_core::Error::Storage`].

use std::path::PathBuf;

use snafu::Snafu;
use sync_core::ErrorCode;

/// Result with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why [`SqliteStore::open`](crate::SqliteStore::open) failed.
///
/// Match on [`Error::code`]: codes are stable, variants may be added.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// The table prefix is not a plain SQL identifier.
    #[snafu(display("invalid table prefix {prefix:?}: {reason}; expected [A-Za-z_][A-Za-z0-9_]*"))]
    InvalidTablePrefix {
        /// The prefix as configured (cut at 80 characters).
        prefix: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A setting out of range (pool sizes, ...).
    #[snafu(display("invalid SQLite store configuration: {reason}"))]
    InvalidConfig {
        /// What was expected and what came.
        reason: String,
    },

    /// The database file could not be opened.
    #[snafu(display("cannot open SQLite database {}: {source}", path.display()))]
    Connect {
        /// The database file.
        path: PathBuf,
        /// The driver's error.
        source: rusqlite::Error,
    },

    /// The connection pool could not open its
    /// [`min_connections`](crate::SqliteConfig::min_connections).
    #[snafu(display("cannot open the connection pool of SQLite database {}: {source}", path.display()))]
    Pool {
        /// The database file.
        path: PathBuf,
        /// The pool's error.
        source: r2d2::Error,
    },

    /// Creating or upgrading the tables failed.
    #[snafu(display("cannot migrate SQLite store schema to version {version}: {source}"))]
    Migrate {
        /// The schema version being applied.
        version: i64,
        /// The driver's error.
        source: rusqlite::Error,
    },

    /// The file was written by a newer version of this crate.
    #[snafu(display("SQLite store schema is version {found}, this build supports up to {supported}"))]
    SchemaTooNew {
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },

    /// The store's bookkeeping rows hold something unexpected.
    #[snafu(display("SQLite store metadata {key:?} is corrupt: {reason}"))]
    CorruptMeta {
        /// The metadata key.
        key: &'static str,
        /// What was found.
        reason: String,
    },
}

impl Error {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidTablePrefix { .. } | Error::InvalidConfig { .. } => ErrorCode::InvalidInput,
            Error::Connect { .. }
            | Error::Pool { .. }
            | Error::Migrate { .. }
            | Error::SchemaTooNew { .. }
            | Error::CorruptMeta { .. } => ErrorCode::Storage,
        }
    }
}

impl From<Error> for sync_core::Error {
    /// Keeps the code: configuration mistakes become
    /// [`sync_core::Error::InvalidInput`], the rest [`sync_core::Error::Storage`].
    fn from(e: Error) -> Self {
        match e.code() {
            ErrorCode::InvalidInput => sync_core::Error::invalid(e.to_string()),
            _ => sync_core::Error::storage("opening the SQLite store", e),
        }
    }
}

/// Maps a driver or pool error of a trait method to [`sync_core::Error::Storage`].
pub(crate) fn storage<E>(action: &'static str) -> impl FnOnce(E) -> sync_core::Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |e| sync_core::Error::storage(action, e)
}
