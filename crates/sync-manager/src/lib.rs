//! The sync manager: the glue between a store, a transport and a conflict
//! resolver.
//!
//! Build one with [`SyncManager::builder`], append local events through it,
//! and call [`SyncManager::sync`] (or start [`SyncManager::start_auto_sync`])
//! whenever a connection may exist. Each sync pushes the local events the
//! peer has not acknowledged, then pulls the peer's new events page by page;
//! both directions keep a checkpoint in the store, keyed by the peer's store
//! id (not the spelling of its address), so a sync costs
//! O(events that differ) and an interrupted one resumes where it stopped.
//!
//! ```
//! use sync_core::{LastWriteWins, NewEvent};
//! use sync_manager::SyncManager;
//! use sync_store_memory::MemoryStore;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // Local only: no transport.
//! let manager = SyncManager::builder(MemoryStore::new()).resolver(LastWriteWins).build()?;
//! manager.append(vec![NewEvent::new("todo.created", "todo-1", "buy milk")]).await?;
//! let view = manager.view("todo-1").await?;
//! assert_eq!(view.entries.len(), 1);
//! # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
//! ```

mod auto;
mod error;
mod live;
mod manager;

pub use auto::AutoSync;
pub use error::BuildError;
pub use manager::{Builder, NoTransport, PeerStatus, Phase, Progress, Refused, SyncManager, SyncResult};
