//! WAL checkpoints off the writer's path.
//!
//! SQLite normally checkpoints inside the commit that makes the WAL pass
//! 1,000 pages: that commit copies the WAL into the database file and
//! fsyncs both, and the batch waits for it (about a third of a remote
//! batch's time in `cargo xtask bench sync`). The store turns that off
//! (`wal_autocheckpoint = 0` on its connections) and runs a `PASSIVE`
//! checkpoint on a blocking thread of its own once batches have written
//! about [`CHECKPOINT_BYTES`] since the last one. A passive checkpoint never
//! blocks readers or writers; committed batches are in the WAL already, so
//! durability is the same.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;

/// Bytes written between checkpoints: SQLite's default of 1,000 pages.
pub(crate) const CHECKPOINT_BYTES: u64 = 1000 * 4096;

/// Counts what batches write and says when to checkpoint.
#[derive(Debug, Default)]
pub(crate) struct Checkpointer {
    written: AtomicU64,
    /// Held while a checkpoint runs (and by `close`, to wait for it).
    running: Mutex<()>,
}

impl Checkpointer {
    /// Counts `bytes` written to the WAL (roughly: rows, not pages).
    pub(crate) fn wrote(&self, bytes: u64) {
        self.written.fetch_add(bytes, Ordering::Relaxed);
    }

    /// True, once, when enough was written since the last checkpoint.
    pub(crate) fn due(&self) -> bool {
        self.written.load(Ordering::Relaxed) >= CHECKPOINT_BYTES && self.written.swap(0, Ordering::Relaxed) > 0
    }

    /// Runs a passive checkpoint on `conn` unless one is running. Errors
    /// are dropped, as SQLite drops those of its automatic checkpoints:
    /// the next one retries, and a failing disk fails the next commit.
    pub(crate) fn run(&self, conn: &Connection) {
        let Ok(_running) = self.running.try_lock() else { return };
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }

    /// Waits for a running checkpoint to end.
    pub(crate) fn wait(&self) {
        drop(self.running.lock());
    }
}
