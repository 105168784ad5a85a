//! The SQLite store passes the whole store suite, on real files.

use std::sync::atomic::{AtomicUsize, Ordering};

use sync_core::EventStore;
use sync_store_sqlite::{SqliteConfig, SqliteStore};
use sync_testkit::StoreFactory;

/// Opens stores in files of one temporary directory, removed with the factory.
struct TempFiles {
    dir: tempfile::TempDir,
    next: AtomicUsize,
}

impl TempFiles {
    fn new() -> Self {
        TempFiles { dir: tempfile::tempdir().expect("temp dir"), next: AtomicUsize::new(0) }
    }
}

impl StoreFactory for TempFiles {
    type Store = SqliteStore;

    async fn open(&self) -> SqliteStore {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("store-{n}.db"));
        SqliteStore::open(SqliteConfig::new(path)).await.expect("open store")
    }

    async fn reopen(&self, store: SqliteStore) -> SqliteStore {
        let path = store.path().to_owned();
        store.close().await.expect("close store");
        drop(store);
        SqliteStore::open(SqliteConfig::new(path)).await.expect("reopen store")
    }
}

sync_testkit::store_suite!(TempFiles::new());
