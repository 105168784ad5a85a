//! `RedbStore` passes the whole store conformance suite, on real files.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use sync_core::EventStore;
use sync_store_redb::{RedbConfig, RedbStore};
use sync_testkit::StoreFactory;

/// Opens each store in a fresh file of one temporary directory.
struct RedbFactory {
    dir: tempfile::TempDir,
    opened: AtomicUsize,
}

impl RedbFactory {
    fn new() -> Self {
        RedbFactory { dir: tempfile::tempdir().expect("temp dir"), opened: AtomicUsize::new(0) }
    }
}

impl StoreFactory for RedbFactory {
    type Store = RedbStore;

    async fn open(&self) -> RedbStore {
        let n = self.opened.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("store-{n}.redb"));
        RedbStore::open(RedbConfig::new(path)).await.expect("open")
    }

    async fn open_in(&self, dir: &Path) -> RedbStore {
        RedbStore::open(RedbConfig::new(dir.join("store.redb"))).await.expect("open")
    }

    async fn reopen(&self, store: RedbStore) -> RedbStore {
        let config = store.config().clone();
        store.close().await.expect("close");
        // redb locks the file: the old handle must be gone before reopening.
        drop(store);
        RedbStore::open(config).await.expect("reopen")
    }
}

sync_testkit::store_suite!(RedbFactory::new());
