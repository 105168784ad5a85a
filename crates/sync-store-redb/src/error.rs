//! Errors of the redb store.

use std::path::PathBuf;

use snafu::Snafu;
use sync_core::ErrorCode;

/// Result with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong inside the redb store.
///
/// [`RedbStore::open`](crate::RedbStore::open) returns it directly; the
/// [`EventStore`](sync_core::EventStore) methods wrap it in
/// [`sync_core::Error::Storage`] with the action that failed. Match on
/// [`Error::code`], not on variants.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened or created as a redb database.
    #[snafu(display("cannot open redb database {}: {source}", path.display()))]
    Open {
        /// The database file.
        path: PathBuf,
        /// redb's error.
        source: redb::DatabaseError,
    },

    /// A transaction could not be started.
    #[snafu(display("cannot begin a redb transaction: {source}"))]
    Begin {
        /// redb's error.
        source: redb::TransactionError,
    },

    /// The durability of a write transaction could not be set.
    #[snafu(display("cannot set the durability of a redb transaction: {source}"))]
    SetDurability {
        /// redb's error.
        source: redb::SetDurabilityError,
    },

    /// A table could not be opened.
    #[snafu(display("cannot open redb table {table}: {source}"))]
    OpenTable {
        /// The table.
        table: &'static str,
        /// redb's error.
        source: redb::TableError,
    },

    /// Reading or writing a table failed.
    #[snafu(display("redb failed on table {table}: {source}"))]
    Table {
        /// The table.
        table: &'static str,
        /// redb's error.
        source: redb::StorageError,
    },

    /// A write transaction could not be committed.
    #[snafu(display("cannot commit a redb transaction: {source}"))]
    Commit {
        /// redb's error.
        source: redb::CommitError,
    },

    /// A stored value does not decode: the file is damaged or was written by
    /// an incompatible version.
    #[snafu(display("stored {what} does not decode: {source}"))]
    Corrupt {
        /// What was read ("event 17", "clock of aggregate x", ...).
        what: String,
        /// The decoder's error.
        source: sync_core::Error,
    },

    /// A value could not be encoded for storage.
    #[snafu(display("cannot encode {what}: {source}"))]
    Encode {
        /// What was written.
        what: &'static str,
        /// The encoder's error.
        source: sync_core::Error,
    },

    /// The blocking task running a transaction panicked or was cancelled.
    #[snafu(display("the redb task failed: {source}"))]
    Task {
        /// tokio's error.
        source: tokio::task::JoinError,
    },
}

impl Error {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Task { .. } => ErrorCode::Internal,
            Error::Open { .. }
            | Error::Begin { .. }
            | Error::SetDurability { .. }
            | Error::OpenTable { .. }
            | Error::Table { .. }
            | Error::Commit { .. }
            | Error::Corrupt { .. }
            | Error::Encode { .. } => ErrorCode::Storage,
        }
    }
}
