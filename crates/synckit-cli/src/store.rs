//! `--store` values: `sqlite:PATH`, `redb:PATH` or `memory:`.

use std::path::PathBuf;
use std::str::FromStr;

use snafu::{ResultExt, Whatever, whatever};
use sync_core::{
    AppendOutcome, Checkpoint, Cursor, Event, EventStore, Filter, NewEvent, NodeId, Page, Result, VectorClock,
};
use sync_store_memory::MemoryStore;
use sync_store_redb::{RedbConfig, RedbStore};
use sync_store_sqlite::{SqliteConfig, SqliteStore};

/// Where a store lives, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreSpec {
    Sqlite(PathBuf),
    Redb(PathBuf),
    Memory,
}

impl FromStr for StoreSpec {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let non_empty = |p: &str| {
            if p.is_empty() { Err(format!("{s:?} names no file")) } else { Ok(PathBuf::from(p)) }
        };
        match s.split_once(':') {
            Some(("sqlite", path)) => non_empty(path).map(StoreSpec::Sqlite),
            Some(("redb", path)) => non_empty(path).map(StoreSpec::Redb),
            Some(("memory", "")) => Ok(StoreSpec::Memory),
            _ => Err(format!("store {s:?}: expected sqlite:PATH, redb:PATH or memory:")),
        }
    }
}

impl StoreSpec {
    pub(crate) async fn open(&self) -> std::result::Result<AnyStore, Whatever> {
        Ok(match self {
            StoreSpec::Sqlite(path) => AnyStore::Sqlite(
                SqliteStore::open(SqliteConfig::new(path))
                    .await
                    .with_whatever_context(|_| format!("cannot open sqlite store {}", path.display()))?,
            ),
            StoreSpec::Redb(path) => AnyStore::Redb(
                RedbStore::open(RedbConfig::new(path))
                    .await
                    .with_whatever_context(|_| format!("cannot open redb store {}", path.display()))?,
            ),
            StoreSpec::Memory => AnyStore::Memory(MemoryStore::new()),
        })
    }

    /// For commands that make no sense on a fresh in-memory store.
    pub(crate) fn require_durable(&self, command: &str) -> std::result::Result<(), Whatever> {
        if *self == StoreSpec::Memory {
            whatever!("`{command}` needs a store that outlives the command: use sqlite:PATH or redb:PATH");
        }
        Ok(())
    }
}

/// One of the stores the CLI can open, chosen at run time.
pub(crate) enum AnyStore {
    Sqlite(SqliteStore),
    Redb(RedbStore),
    Memory(MemoryStore),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $e,
            AnyStore::Redb($s) => $e,
            AnyStore::Memory($s) => $e,
        }
    };
}

impl EventStore for AnyStore {
    fn node_id(&self) -> NodeId {
        each!(self, s => s.node_id())
    }
    async fn append(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        each!(self, s => s.append(events).await)
    }
    async fn apply(&self, events: Vec<Event>, source: &str) -> Result<AppendOutcome> {
        each!(self, s => s.apply(events, source).await)
    }
    async fn load(&self, after: &Cursor, limit: usize, filter: &Filter, skip_source: Option<&str>) -> Result<Page> {
        each!(self, s => s.load(after, limit, filter, skip_source).await)
    }
    async fn load_aggregate(&self, aggregate_id: &str, after: &Cursor) -> Result<Vec<Event>> {
        each!(self, s => s.load_aggregate(aggregate_id, after).await)
    }
    async fn aggregate_clock(&self, aggregate_id: &str) -> Result<VectorClock> {
        each!(self, s => s.aggregate_clock(aggregate_id).await)
    }
    async fn head(&self) -> Result<Cursor> {
        each!(self, s => s.head().await)
    }
    async fn wait_past(&self, after: &Cursor) -> Result<()> {
        each!(self, s => s.wait_past(after).await)
    }
    async fn version_vector(&self) -> Result<VectorClock> {
        each!(self, s => s.version_vector().await)
    }
    async fn checkpoint(&self, peer: &str) -> Result<Checkpoint> {
        each!(self, s => s.checkpoint(peer).await)
    }
    async fn set_checkpoint(&self, peer: &str, checkpoint: &Checkpoint) -> Result<()> {
        each!(self, s => s.set_checkpoint(peer, checkpoint).await)
    }
    async fn close(&self) -> Result<()> {
        each!(self, s => s.close().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_or_explain() {
        assert_eq!("sqlite:a.db".parse(), Ok(StoreSpec::Sqlite("a.db".into())));
        assert_eq!("redb:/tmp/x".parse(), Ok(StoreSpec::Redb("/tmp/x".into())));
        assert_eq!("memory:".parse(), Ok(StoreSpec::Memory));
        for bad in ["a.db", "sqlite:", "postgres:x", "memory:x"] {
            assert!(bad.parse::<StoreSpec>().is_err(), "{bad}");
        }
    }
}
