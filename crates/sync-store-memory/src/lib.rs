//! [`MemoryStore`]: a synckit [`EventStore`](sync_core::EventStore) that keeps
//! everything in memory. It is the reference for the store contract (every
//! rule comes from `sync_core::raw`, with no I/O around it), and the store for
//! tests, demos and local-only use. Nothing survives the process.
//!
//! ```
//! use sync_core::{Cursor, EventStore, Filter, NewEvent};
//! use sync_store_memory::MemoryStore;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! store.append(vec![NewEvent::new("note.added", "note-1", "hi")]).await?;
//! let page = store.load(&Cursor::START, 10, &Filter::default(), None).await?;
//! assert_eq!(page.events.len(), 1);
//! # Ok::<_, sync_core::Error>(()) }).unwrap();
//! ```

mod config;
mod store;

pub use config::MemoryConfig;
pub use store::MemoryStore;
