//! WAL checkpoints off the writer's path.
//!
//! SQLite normally checkpoints inside the commit that makes the WAL pass
//! 1,000 pages: that commit copies the WAL into the database file and
//! fsyncs both, and the batch waits for it (about a third of a remote
//! batch's time in `cargo xtask bench sync`). The store's connections
//! register their own WAL hook instead ([`on_commit`]; it replaces SQLite's
//! automatic checkpoint), which notes the WAL's size for the thread that
//! committed. After each store call, a WAL that grew by [`CHECKPOINT_PAGES`]
//! since the last checkpoint starts a `PASSIVE` checkpoint on a blocking
//! thread of its own: it blocks
//! no reader and no writer, and committed batches are in the WAL already,
//! so durability is the same. But a checkpoint that runs while writes go on
//! leaves the newest pages behind, and the WAL only starts over from its
//! beginning after a checkpoint that copied all of it; so once the WAL
//! holds [`INLINE_CHECKPOINT_PAGES`] (also if checkpoints fail, or after
//! writes through [`SqliteStore::pool`](crate::SqliteStore::pool) that no
//! store call follows), no more background checkpoints start and the
//! committing connection checkpoints itself, as SQLite would: being the
//! only checkpointer then, it copies all of the WAL (most of it copied
//! already), and the next write starts the WAL over.

use std::cell::Cell;
use std::os::raw::c_int;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use rusqlite::Connection;
use rusqlite::hooks::Wal;

/// WAL growth that starts a background checkpoint: SQLite's default mark.
pub(crate) const CHECKPOINT_PAGES: c_int = 1000;

/// WAL size (12 MB) at which the committing connection checkpoints itself.
pub(crate) const INLINE_CHECKPOINT_PAGES: c_int = 3 * CHECKPOINT_PAGES;

thread_local! {
    /// The largest WAL size commits on this thread reported since the last
    /// [`take_wal_pages`].
    static WAL_PAGES: Cell<c_int> = const { Cell::new(0) };
}

/// The WAL hook of every store connection (see the module docs).
pub(crate) fn on_commit(wal: &Wal, pages: c_int) -> rusqlite::Result<()> {
    WAL_PAGES.set(WAL_PAGES.get().max(pages));
    if pages >= INLINE_CHECKPOINT_PAGES {
        // An error here would fail a statement whose commit succeeded;
        // the next commit tries again.
        let _ = wal.checkpoint();
    }
    Ok(())
}

/// The WAL size commits on this thread reported since the last call.
pub(crate) fn take_wal_pages() -> c_int {
    WAL_PAGES.replace(0)
}

/// One background checkpoint at a time, for every [`CHECKPOINT_PAGES`]
/// pages the WAL grows.
#[derive(Debug, Default)]
pub(crate) struct Checkpointer {
    /// A checkpoint task was started and has not ended.
    scheduled: AtomicBool,
    /// The WAL's size when the last checkpoint was scheduled. The WAL only
    /// starts over from its beginning once a checkpoint copied all of it
    /// and a new write begins; under steady writes it keeps its size, so
    /// what counts is how much was added since.
    scheduled_at: AtomicI32,
    /// Held while a checkpoint runs, and by `close` while it drops the pool.
    running: Mutex<()>,
}

impl Checkpointer {
    /// True, for one caller, when a WAL of `pages` should be checkpointed
    /// and no checkpoint task is under way; that caller must then call
    /// [`Checkpointer::run`].
    pub(crate) fn due(&self, pages: c_int) -> bool {
        let before = self.scheduled_at.load(Ordering::Acquire);
        // A WAL smaller than before has started over.
        let added = if pages >= before { pages - before } else { pages };
        // A WAL this large is for the writer to checkpoint (see the module
        // docs): a background checkpoint running then would make it fail.
        let writers_turn = pages >= INLINE_CHECKPOINT_PAGES;
        if added < CHECKPOINT_PAGES || writers_turn || self.scheduled.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.scheduled_at.store(pages, Ordering::Release);
        true
    }

    /// Runs a passive checkpoint on the connection `connect` gives (none
    /// once the store is closed). Errors are dropped, as SQLite drops those
    /// of its automatic checkpoints: the next one retries, and a failing
    /// disk fails the next commit.
    pub(crate) fn run<C: std::ops::Deref<Target = Connection>>(&self, connect: impl FnOnce() -> Option<C>) {
        {
            let _running = self.running.lock();
            if let Some(conn) = connect() {
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
        }
        self.scheduled.store(false, Ordering::Release);
    }

    /// Runs `f` (dropping the pool) with no checkpoint running or starting.
    pub(crate) fn exclusive(&self, f: impl FnOnce()) {
        let _running = self.running.lock();
        f();
    }
}
