//! [`RedbStore`]: a synckit [`EventStore`](sync_core::EventStore) on
//! [redb](https://docs.rs/redb), a pure-Rust embedded key-value store. One
//! file, no server, no C dependency: the store for clients and single-node
//! servers.
//!
//! - **Durability.** Each `append` / `apply` / `set_checkpoint` is one redb
//!   write transaction, fsynced before it returns (with the default
//!   [`Durability::Immediate`]), so an acknowledged batch survives `kill -9`.
//! - **Atomic batches.** A batch with one invalid event aborts its
//!   transaction: nothing of it is written, no counter is used up.
//! - **Change feed.** Events are keyed by a local sequence number assigned in
//!   commit order; readers work on committed snapshots, so paging by cursor
//!   never skips or repeats an event, even while other tasks write.
//! - **Async.** redb is synchronous; every transaction runs on tokio's
//!   blocking pool (`spawn_blocking`), so the store needs a tokio runtime.
//!
//! ```
//! use sync_core::{Cursor, EventStore, Filter, NewEvent};
//! use sync_store_redb::{RedbConfig, RedbStore};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let store = RedbStore::open(RedbConfig::new(dir.path().join("events.redb"))).await?;
//! store.append(vec![NewEvent::new("note.added", "note-1", "hi")]).await?;
//! let page = store.load(&Cursor::START, 100, &Filter::default(), None).await?;
//! assert_eq!(page.events.len(), 1);
//! # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
//! ```

mod config;
mod error;
mod store;

pub use config::{Durability, RedbConfig};
pub use error::{Error, Result};
pub use store::{CacheStats, RedbStore};
