//! The SQLite store passes the whole store suite, on real files, and its
//! crash case once more with `Durability::Full`.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use sync_core::EventStore;
use sync_store_sqlite::{Durability, SqliteConfig, SqliteStore};
use sync_testkit::StoreFactory;

/// Opens stores in files of one temporary directory, removed with the
/// factory, with the given durability.
struct TempFiles {
    dir: tempfile::TempDir,
    next: AtomicUsize,
    durability: Durability,
}

impl TempFiles {
    fn new() -> Self {
        Self::with(Durability::default())
    }

    fn with(durability: Durability) -> Self {
        TempFiles { dir: tempfile::tempdir().expect("temp dir"), next: AtomicUsize::new(0), durability }
    }

    fn config(&self, path: impl AsRef<Path>) -> SqliteConfig {
        SqliteConfig::new(path.as_ref()).durability(self.durability)
    }
}

impl StoreFactory for TempFiles {
    type Store = SqliteStore;

    async fn open(&self) -> SqliteStore {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("store-{n}.db"));
        SqliteStore::open(self.config(path)).await.expect("open store")
    }

    async fn open_in(&self, dir: &Path) -> SqliteStore {
        SqliteStore::open(self.config(dir.join("store.db"))).await.expect("open store")
    }

    async fn reopen(&self, store: SqliteStore) -> SqliteStore {
        let path = store.path().to_owned();
        store.close().await.expect("close store");
        drop(store);
        SqliteStore::open(self.config(path)).await.expect("reopen store")
    }
}

sync_testkit::store_suite!(TempFiles::new());

/// `Durability::Full` (an fsync per commit) survives `kill -9` as the
/// default does; what it adds, power-loss safety, no test here can show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_batches_survive_kill_9_with_full_sync() {
    let factory = TempFiles::with(Durability::Full);
    let test = "acknowledged_batches_survive_kill_9_with_full_sync";
    sync_testkit::store_suite::acknowledged_batches_survive_kill_9(&factory, test).await;
}
