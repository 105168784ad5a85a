//! A synckit [`EventStore`](sync_core::EventStore) in one SQLite file, via
//! rusqlite and an r2d2 connection pool (SQLite is compiled in; no system
//! library, no `DATABASE_URL`). Calls run on tokio's blocking pool.
//!
//! - One `BEGIN IMMEDIATE` write transaction per `append` / `apply` batch,
//!   with one prepared insert per event; a rejected batch writes nothing.
//! - Bookkeeping per batch, not per event: aggregate clocks and origin
//!   counters come from an in-memory mirror checked against a write counter,
//!   and the per-aggregate index and clocks are written in bulk every 32,768
//!   events instead of one B-tree insert per event.
//! - WAL with `synchronous = NORMAL` by default: an acknowledged batch
//!   survives a crash of the process. [`Durability::Full`] adds an fsync per
//!   commit for power-loss safety.
//! - The schema is embedded and created or upgraded at open; every table
//!   name carries a configurable prefix.
//! - [`SqliteStore::pool`] hands out the pool for the application's own
//!   tables; `rusqlite`, `r2d2` and `r2d2_sqlite` are re-exported so that
//!   their versions match.
//!
//! Run `sync_testkit::store_suite!` on it, as `tests/conformance.rs` does.
//!
//! ```
//! use sync_core::{EventStore, NewEvent};
//! use sync_store_sqlite::{SqliteConfig, SqliteStore};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let store = SqliteStore::open(SqliteConfig::new(dir.path().join("app.db"))).await?;
//! let out = store.append(vec![NewEvent::new("todo.added", "todo-1", "milk")]).await?;
//! assert_eq!(out.inserted.len(), 1);
//! # Ok::<_, sync_core::Error>(()) }).unwrap();
//! ```

mod body;
mod checkpoint;
mod config;
mod error;
mod schema;
mod store;
mod write;

pub use config::{DEFAULT_TABLE_PREFIX, Durability, SqliteConfig};
pub use error::{Error, Result};
pub use store::{Pool, SqliteStore};
pub use {r2d2, r2d2_sqlite, rusqlite};
