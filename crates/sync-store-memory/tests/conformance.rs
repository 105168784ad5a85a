//! The store contract, checked on the in-memory store.

use std::path::Path;

use sync_store_memory::MemoryStore;
use sync_testkit::{Capability, StoreFactory};

struct Factory;

impl StoreFactory for Factory {
    type Store = MemoryStore;

    async fn open(&self) -> MemoryStore {
        MemoryStore::new()
    }

    /// A clone is the same log: what the reopen cases check on it.
    async fn reopen(&self, store: MemoryStore) -> MemoryStore {
        store
    }

    /// A memory store keeps nothing in a directory: each process has its own.
    async fn open_in(&self, _dir: &Path) -> MemoryStore {
        MemoryStore::new()
    }

    fn lacks(&self) -> &'static [Capability] {
        &[Capability::Durable]
    }
}

sync_testkit::store_suite!(Factory);
