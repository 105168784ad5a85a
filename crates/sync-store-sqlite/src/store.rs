//! [`SqliteStore`]: the [`EventStore`] implementation.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use snafu::ResultExt;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sync_core::{
    AppendOutcome, Checkpoint, Codec, Cursor, Event, EventStore, Filter, Hlc, Limits, NewEvent, NodeId, Page, ScanRow,
    VectorClock, page_from_scan,
};
use tokio::sync::Mutex;

use crate::body::Bodies;
use crate::config::{Durability, SqliteConfig};
use crate::error::{ConnectSnafu, CorruptMetaSnafu, MigrateSnafu, Result, SchemaTooNewSnafu, storage};
use crate::schema::{LATEST_VERSION, Sql};
use crate::write::Derived;

const META_SCHEMA_VERSION: &str = "schema_version";
const META_NODE_ID: &str = "node_id";

/// An [`EventStore`] in one SQLite file, through a sqlx connection pool.
///
/// Every `append` / `apply` batch is one `BEGIN IMMEDIATE` transaction with
/// multi-row inserts; once it returns `Ok`, the batch survives a crash of
/// the process (and, with [`Durability::Full`], power loss). Clones share the
/// pool. Several stores can live in one file under different
/// [table prefixes](SqliteConfig::table_prefix).
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: SqlitePool,
    path: PathBuf,
    pub(crate) node: NodeId,
    pub(crate) limits: Limits,
    pub(crate) bodies: Bodies,
    pub(crate) sql: Sql,
    /// Held by each batch for its whole transaction. Batches of this
    /// process queue here rather than in SQLite's busy handler, which polls
    /// with sleeps of up to 100 ms; other processes writing the same file
    /// are still serialized by `BEGIN IMMEDIATE` and the busy timeout.
    pub(crate) writer: Mutex<Derived>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the store described by `config`: opens the pool,
    /// creates or upgrades the tables, and creates the node id on first open.
    ///
    /// ```
    /// use sync_core::{Cursor, EventStore, Filter, NewEvent};
    /// use sync_store_sqlite::{SqliteConfig, SqliteStore};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("app.db");
    /// let store = SqliteStore::open(SqliteConfig::new(&path)).await?;
    /// let node = store.node_id();
    /// store.append(vec![NewEvent::new("note.added", "note-1", "hi")]).await?;
    /// store.close().await?;
    ///
    /// let store = SqliteStore::open(SqliteConfig::new(&path)).await?;
    /// assert_eq!(store.node_id(), node);
    /// let page = store.load(&Cursor::START, 10, &Filter::default(), None).await?;
    /// assert_eq!(page.events[0].data, "hi");
    /// # Ok::<_, sync_core::Error>(()) }).unwrap();
    /// ```
    pub async fn open(config: SqliteConfig) -> Result<SqliteStore> {
        config.validate()?;
        let sql = Sql::new(&config.table_prefix);
        let connect = SqliteConnectOptions::new()
            .filename(&config.path)
            .create_if_missing(true)
            .journal_mode(if config.wal { SqliteJournalMode::Wal } else { SqliteJournalMode::Delete })
            .synchronous(match config.durability {
                Durability::Normal => SqliteSynchronous::Normal,
                Durability::Full => SqliteSynchronous::Full,
            })
            .busy_timeout(config.busy_timeout)
            // Rows cross from the connection's worker thread through a
            // channel; sqlx's default of 50 makes a feed page of thousands of
            // events bounce between the threads.
            .row_buffer_size(1024);
        let pool = SqlitePoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(config.min_connections)
            .acquire_timeout(config.acquire_timeout)
            .idle_timeout(config.idle_timeout)
            .max_lifetime(config.max_lifetime)
            // The connections live in this process: a liveness ping before
            // every use would only add a round trip to the worker thread.
            .test_before_acquire(false)
            .connect_with(connect)
            .await
            .context(ConnectSnafu { path: &config.path })?;
        let node = match migrate(&pool, &sql).await {
            Ok(node) => node,
            Err(e) => {
                pool.close().await;
                return Err(e);
            }
        };
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                pool,
                path: config.path,
                node,
                limits: config.limits,
                bodies: Bodies { node },
                sql,
                writer: Mutex::new(Derived::default()),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The connection pool, for inspection and for the application's own
    /// tables in the same file. Never write the store's tables through it:
    /// the store keeps their bookkeeping in memory and only notices writes
    /// made by another `SqliteStore`.
    pub fn pool(&self) -> &SqlitePool {
        &self.inner.pool
    }

    /// Up to `n` rows with `seq > after`, in seq order: the scan behind
    /// [`EventStore::load`].
    ///
    /// Invariant 4 (a pull from a cursor sees every later event exactly once,
    /// even with concurrent writers) holds because SQLite serializes write
    /// transactions: a batch takes the single write lock at `BEGIN
    /// IMMEDIATE`, its seqs are assigned above every committed seq while it
    /// holds the lock, and readers only see committed snapshots. So a seq
    /// that becomes visible is always greater than every seq visible
    /// before it; no gap can fill in later, unlike sequences in PostgreSQL.
    async fn scan(&self, after: u64, n: usize) -> sync_core::Result<Vec<ScanRow>> {
        let rows = sqlx::query(&self.inner.sql.scan)
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(storage("reading the event feed"))?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get(0).map_err(storage("reading the event feed"))?;
                let source: Option<String> = row.try_get(1).map_err(storage("reading the event feed"))?;
                Ok(ScanRow { seq: to_u64(seq, "seq")?, source, event: event_row(self.inner.bodies, row, 2)? })
            })
            .collect()
    }
}

impl EventStore for SqliteStore {
    fn node_id(&self) -> NodeId {
        self.inner.node
    }

    async fn append(&self, events: Vec<NewEvent>) -> sync_core::Result<AppendOutcome> {
        if events.is_empty() {
            return Ok(AppendOutcome::default());
        }
        self.write_local(events).await
    }

    async fn apply(&self, events: Vec<Event>, source: &str) -> sync_core::Result<AppendOutcome> {
        if events.is_empty() {
            return Ok(AppendOutcome::default());
        }
        self.write_remote(&events, source).await
    }

    async fn load(
        &self,
        after: &Cursor,
        limit: usize,
        filter: &Filter,
        skip_source: Option<&str>,
    ) -> sync_core::Result<Page> {
        page_from_scan(self.inner.node, after, limit, filter, skip_source, |seq, n| self.scan(seq, n)).await
    }

    async fn load_aggregate(&self, aggregate_id: &str, after: &Cursor) -> sync_core::Result<Vec<Event>> {
        let after = after.seq_for(self.inner.node)?;
        let rows = sqlx::query(&self.inner.sql.load_aggregate)
            .bind(aggregate_id)
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(storage("reading an aggregate"))?;
        rows.iter().map(|row| event_row(self.inner.bodies, row, 1)).collect()
    }

    /// One lookup of the stored clock, merged with the clocks of the
    /// aggregate's events not folded yet.
    async fn aggregate_clock(&self, aggregate_id: &str) -> sync_core::Result<VectorClock> {
        let rows = sqlx::query(&self.inner.sql.aggregate_clock)
            .bind(aggregate_id)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(storage("reading an aggregate clock"))?;
        let mut clock = VectorClock::new();
        for row in rows {
            let tag: i64 = row.try_get(0).map_err(storage("reading an aggregate clock"))?;
            let bytes: &[u8] = row.try_get(1).map_err(storage("reading an aggregate clock"))?;
            if tag == 0 {
                clock.merge(&decode_clock(bytes)?);
            } else {
                clock.merge(&self.inner.bodies.decode_header(bytes)?.1);
            }
        }
        Ok(clock)
    }

    async fn head(&self) -> sync_core::Result<Cursor> {
        let seq: i64 = sqlx::query_scalar(&self.inner.sql.head)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(storage("reading the head"))?;
        Ok(Cursor::new(self.inner.node, to_u64(seq, "seq")?))
    }

    /// The stored counters merged with the origins of the events not folded
    /// yet (at most a few tens of thousands, read in one snapshot).
    async fn version_vector(&self) -> sync_core::Result<VectorClock> {
        let rows = sqlx::query(&self.inner.sql.version_vector)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(storage("reading the version vector"))?;
        let mut vector = VectorClock::new();
        for row in rows {
            let tag: i64 = row.try_get(0).map_err(storage("reading the version vector"))?;
            let (node, counter) = if tag == 0 {
                origin_row(&row, 1)?
            } else {
                let body: &[u8] = row.try_get(1).map_err(storage("reading the version vector"))?;
                let (origin, _) = self.inner.bodies.decode_header(body)?;
                (origin.node, origin.counter)
            };
            if counter > vector.get(node) {
                vector.set(node, counter);
            }
        }
        Ok(vector)
    }

    async fn checkpoint(&self, peer: &str) -> sync_core::Result<Checkpoint> {
        let row: Option<(String, String)> = sqlx::query_as(&self.inner.sql.get_checkpoint)
            .bind(peer)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(storage("reading a checkpoint"))?;
        let Some((pushed, pulled)) = row else {
            return Ok(Checkpoint::default());
        };
        let parse =
            |text: &str| text.parse::<Cursor>().map_err(|e| sync_core::Error::storage("reading a checkpoint", e));
        Ok(Checkpoint { pushed: parse(&pushed)?, pulled: parse(&pulled)? })
    }

    async fn set_checkpoint(&self, peer: &str, checkpoint: &Checkpoint) -> sync_core::Result<()> {
        sqlx::query(&self.inner.sql.put_checkpoint)
            .bind(peer)
            .bind(checkpoint.pushed.to_string())
            .bind(checkpoint.pulled.to_string())
            .execute(&self.inner.pool)
            .await
            .map_err(storage("writing a checkpoint"))?;
        Ok(())
    }

    /// Waits for running operations, then closes every connection (in WAL
    /// mode the last one checkpoints the WAL into the main file). Every
    /// clone of this store is closed; later calls fail with a storage error.
    async fn close(&self) -> sync_core::Result<()> {
        self.inner.pool.close().await;
        Ok(())
    }
}

/// Creates or upgrades the schema and returns the node id, creating it on
/// first open. One `BEGIN IMMEDIATE` transaction, so stores opened at the
/// same time on one file agree on the result.
async fn migrate(pool: &SqlitePool, sql: &Sql) -> Result<NodeId> {
    let latest = LATEST_VERSION;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.context(MigrateSnafu { version: latest })?;
    // On error the transaction is dropped, which rolls it back.
    let node = migrate_in(&mut tx, sql).await?;
    tx.commit().await.context(MigrateSnafu { version: latest })?;
    Ok(node)
}

async fn migrate_in(conn: &mut SqliteConnection, sql: &Sql) -> Result<NodeId> {
    let latest = LATEST_VERSION;
    sqlx::query(&sql.create_meta).execute(&mut *conn).await.context(MigrateSnafu { version: latest })?;
    let found: Option<i64> = sqlx::query_scalar(&sql.get_meta)
        .bind(META_SCHEMA_VERSION)
        .fetch_optional(&mut *conn)
        .await
        .context(MigrateSnafu { version: latest })?;
    let mut version = found.unwrap_or(0);
    if version > latest {
        return SchemaTooNewSnafu { found: version, supported: latest }.fail();
    }
    while version < latest {
        for statement in sql.migration(version) {
            // Runs once: not worth a place in the statement cache.
            sqlx::query(&statement)
                .persistent(false)
                .execute(&mut *conn)
                .await
                .context(MigrateSnafu { version: version + 1 })?;
        }
        version += 1;
    }
    if found != Some(latest) {
        sqlx::query(&sql.put_meta)
            .bind(META_SCHEMA_VERSION)
            .bind(latest)
            .execute(&mut *conn)
            .await
            .context(MigrateSnafu { version: latest })?;
    }
    let stored: Option<Vec<u8>> = sqlx::query_scalar(&sql.get_meta)
        .bind(META_NODE_ID)
        .fetch_optional(&mut *conn)
        .await
        .context(MigrateSnafu { version: latest })?;
    match stored {
        Some(bytes) => {
            let bytes: [u8; 16] = bytes.as_slice().try_into().map_err(|_| {
                CorruptMetaSnafu { key: META_NODE_ID, reason: format!("expected 16 bytes, found {}", bytes.len()) }
                    .build()
            })?;
            Ok(NodeId::from_bytes(bytes))
        }
        None => {
            let node = NodeId::random();
            sqlx::query(&sql.put_meta)
                .bind(META_NODE_ID)
                .bind(&node.to_bytes()[..])
                .execute(&mut *conn)
                .await
                .context(MigrateSnafu { version: latest })?;
            Ok(node)
        }
    }
}

/// Distinct values in first-seen order.
pub(crate) fn distinct<T: Copy + Eq + std::hash::Hash>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items.filter(|x| seen.insert(*x)).collect()
}

/// The origin node and counter in columns `at` and `at + 1` of `row`.
pub(crate) fn origin_row(row: &sqlx::sqlite::SqliteRow, at: usize) -> sync_core::Result<(NodeId, u64)> {
    let node: &[u8] = row.try_get(at).map_err(storage("reading origin counters"))?;
    let counter: i64 = row.try_get(at + 1).map_err(storage("reading origin counters"))?;
    Ok((NodeId::from_bytes(sixteen(node, "origin node id")?), to_u64(counter, "origin counter")?))
}

pub(crate) fn decode_clock(bytes: &[u8]) -> sync_core::Result<VectorClock> {
    Codec::Postcard.decode(bytes).map_err(|e| sync_core::Error::storage("decoding an aggregate clock", e))
}

/// The event in columns `at..at + 4` of `row`: id, aggregate id, kind, body.
fn event_row(bodies: Bodies, row: &sqlx::sqlite::SqliteRow, at: usize) -> sync_core::Result<Event> {
    let id: &[u8] = row.try_get(at).map_err(storage("reading events"))?;
    let aggregate_id: String = row.try_get(at + 1).map_err(storage("reading events"))?;
    let kind: String = row.try_get(at + 2).map_err(storage("reading events"))?;
    let bytes: &[u8] = row.try_get(at + 3).map_err(storage("reading events"))?;
    bodies.decode(id, aggregate_id, kind, bytes)
}

/// The HLC as 12 bytes: wall milliseconds and logical counter, big endian.
pub(crate) fn encode_hlc(hlc: Hlc) -> [u8; 12] {
    let mut out = [0; 12];
    out[..8].copy_from_slice(&hlc.wall_ms.to_be_bytes());
    out[8..].copy_from_slice(&hlc.logical.to_be_bytes());
    out
}

pub(crate) fn decode_hlc(bytes: &[u8]) -> sync_core::Result<Hlc> {
    let bytes: [u8; 12] =
        bytes.try_into().map_err(|_| corrupt(format!("stored HLC has {} bytes, expected 12", bytes.len())))?;
    let (wall, logical) = bytes.split_at(8);
    Ok(Hlc {
        wall_ms: u64::from_be_bytes(wall.try_into().unwrap_or_default()),
        logical: u32::from_be_bytes(logical.try_into().unwrap_or_default()),
    })
}

pub(crate) fn sixteen(bytes: &[u8], what: &str) -> sync_core::Result<[u8; 16]> {
    bytes.try_into().map_err(|_| corrupt(format!("stored {what} has {} bytes, expected 16", bytes.len())))
}

pub(crate) fn to_u64(value: i64, what: &str) -> sync_core::Result<u64> {
    u64::try_from(value).map_err(|_| corrupt(format!("stored {what} is negative: {value}")))
}

pub(crate) fn to_i64(value: u64, what: &str) -> sync_core::Result<i64> {
    i64::try_from(value)
        .map_err(|_| sync_core::Error::invalid(format!("{what} {value} does not fit SQLite's 64-bit signed integers")))
}

fn corrupt(message: String) -> sync_core::Error {
    sync_core::Error::storage("reading the store", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hlc_round_trips_in_twelve_bytes() {
        let hlc = Hlc { wall_ms: 1_700_000_000_123, logical: 7 };
        assert_eq!(decode_hlc(&encode_hlc(hlc)).unwrap(), hlc);
        assert!(decode_hlc(&[0; 11]).is_err());
    }

    #[test]
    fn distinct_keeps_first_seen_order() {
        assert_eq!(distinct(["b", "a", "b", "c", "a"].into_iter()), ["b", "a", "c"]);
    }
}
