//! `FileStore` passes the whole store conformance suite.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use custom_store::FileStore;
use sync_core::EventStore;
use sync_testkit::StoreFactory;

/// Opens each store in a fresh file of one temporary directory.
struct FileFactory {
    dir: tempfile::TempDir,
    opened: AtomicUsize,
}

impl FileFactory {
    fn new() -> Self {
        FileFactory { dir: tempfile::tempdir().expect("temp dir"), opened: AtomicUsize::new(0) }
    }
}

impl StoreFactory for FileFactory {
    type Store = FileStore;

    async fn open(&self) -> FileStore {
        let n = self.opened.fetch_add(1, Ordering::Relaxed);
        FileStore::open(self.dir.path().join(format!("store-{n}.jsonl"))).await.expect("open")
    }

    async fn open_in(&self, dir: &Path) -> FileStore {
        FileStore::open(dir.join("store.jsonl")).await.expect("open")
    }

    async fn reopen(&self, store: FileStore) -> FileStore {
        let path = store.path().to_owned();
        store.close().await.expect("close");
        drop(store);
        FileStore::open(path).await.expect("reopen")
    }
}

sync_testkit::store_suite!(FileFactory::new());
