//! [`SqliteStore`]: the [`EventStore`] implementation.
//!
//! Every call runs on tokio's blocking pool with a connection from an r2d2
//! pool: SQLite is synchronous, and a page of thousands of rows read on one
//! thread costs a fraction of handing each row across threads (see
//! `docs/architecture.md`, "SQLite through rusqlite").

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use snafu::ResultExt;
use sync_core::raw::{FeedSignal, ScanRow, page_from_scan};
use sync_core::{
    AppendOutcome, Checkpoint, Codec, Cursor, Event, EventStore, Filter, Hlc, Limits, NewEvent, NodeId, Page,
    VectorClock,
};

use crate::body::Bodies;
use crate::checkpoint::{self, Checkpointer};
use crate::config::{Durability, SqliteConfig};
use crate::error::{ConnectSnafu, CorruptMetaSnafu, MigrateSnafu, PoolSnafu, Result, SchemaTooNewSnafu, storage};
use crate::schema::{LATEST_VERSION, Sql};
use crate::write::Derived;

const META_SCHEMA_VERSION: &str = "schema_version";
const META_NODE_ID: &str = "node_id";

/// The connection pool type of a [`SqliteStore`].
pub type Pool = r2d2::Pool<SqliteConnectionManager>;

/// An [`EventStore`] in one SQLite file, through a pool of rusqlite
/// connections.
///
/// Every `append` / `apply` batch is one `BEGIN IMMEDIATE` transaction; once
/// it returns `Ok`, the batch survives a crash of the process (and, with
/// [`Durability::Full`], power loss). A call runs to its end on a blocking
/// thread even if its future is dropped (by a timeout, say): a batch whose
/// call timed out may still be stored, so retry with the same event ids
/// ([`NewEvent::id`]), which makes the retry a no-op if it was. Clones share the pool. Several stores
/// can live in one file under different
/// [table prefixes](SqliteConfig::table_prefix).
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// `None` once closed.
    pool: Mutex<Option<Pool>>,
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
    /// `None` without WAL.
    pub(crate) checkpoints: Option<Checkpointer>,
    /// Shared by every store of this process on the same file and prefix.
    pub(crate) signal: FeedSignal,
}

impl Inner {
    /// A pooled connection; blocks for up to the acquire timeout.
    pub(crate) fn connection(
        &self,
        action: &'static str,
    ) -> sync_core::Result<r2d2::PooledConnection<SqliteConnectionManager>> {
        let pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let pool = pool.ok_or_else(|| sync_core::Error::storage(action, "the store is closed"))?;
        pool.get().map_err(storage(action))
    }
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
        blocking(move || open_blocking(config)).await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The connection pool (`None` once [closed](EventStore::close)), for
    /// inspection and for the application's own tables in the same file.
    /// Its connections are synchronous: use them from a blocking thread
    /// ([`tokio::task::spawn_blocking`]). Never write the store's tables
    /// through it: the store keeps their bookkeeping in memory and only
    /// notices writes made by another `SqliteStore`.
    pub fn pool(&self) -> Option<Pool> {
        self.inner.pool.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Runs `f` with a pooled connection on tokio's blocking pool.
    pub(crate) async fn with_conn<T, F>(&self, action: &'static str, f: F) -> sync_core::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &mut Connection) -> sync_core::Result<T> + Send + 'static,
    {
        self.on_blocking_thread(move |inner| {
            let mut conn = inner.connection(action)?;
            f(inner, &mut conn)
        })
        .await
    }

    /// Runs `f` on tokio's blocking pool, then starts a WAL checkpoint if
    /// the commits it made grew the WAL enough: every store call that can
    /// write goes through here.
    pub(crate) async fn on_blocking_thread<T, F>(&self, f: F) -> sync_core::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> sync_core::Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let (result, wal_pages) = blocking(move || {
            let result = f(&inner);
            (result, checkpoint::take_wal_pages())
        })
        .await;
        self.checkpoint_if_due(wal_pages);
        result
    }

    /// Starts a WAL checkpoint on a blocking thread if the WAL has grown
    /// to `wal_pages` and none is under way (see `checkpoint.rs`).
    fn checkpoint_if_due(&self, wal_pages: std::os::raw::c_int) {
        if self.inner.checkpoints.as_ref().is_some_and(|c| c.due(wal_pages)) {
            let inner = Arc::clone(&self.inner);
            tokio::task::spawn_blocking(move || {
                if let Some(checkpoints) = &inner.checkpoints {
                    checkpoints.run(|| inner.connection("checkpointing the WAL").ok());
                }
            });
        }
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
    async fn scan(&self, after: u128, n: usize) -> sync_core::Result<Vec<ScanRow>> {
        const ACTION: &str = "reading the event feed";
        self.with_conn(ACTION, move |inner, conn| {
            let mut stmt = conn.prepare_cached(&inner.sql.scan).map_err(storage(ACTION))?;
            let mut rows = stmt
                .query(params![i64::try_from(after).unwrap_or(i64::MAX), i64::try_from(n).unwrap_or(i64::MAX)])
                .map_err(storage(ACTION))?;
            let mut out = Vec::with_capacity(n.min(4096));
            while let Some(row) = rows.next().map_err(storage(ACTION))? {
                let seq: i64 = row.get(0).map_err(storage(ACTION))?;
                let source: Option<String> = row.get(1).map_err(storage(ACTION))?;
                let event = event_row(inner.bodies, row, 2)?;
                out.push(ScanRow { position: to_u64(seq, "seq")?.into(), source, event });
            }
            Ok(out)
        })
        .await
    }
}

/// Runs `f` on tokio's blocking pool (SQLite calls block), passing a panic
/// on to the caller.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

fn open_blocking(config: SqliteConfig) -> Result<SqliteStore> {
    let sql = Sql::new(&config.table_prefix);
    let (busy_timeout, synchronous, wal) = (config.busy_timeout, config.durability, config.wal);
    let manager = SqliteConnectionManager::file(&config.path).with_init(move |conn| {
        conn.busy_timeout(busy_timeout)?;
        if wal {
            // Replaces SQLite's automatic checkpoint (`checkpoint.rs`).
            conn.wal_hook(Some(checkpoint::on_commit));
        }
        conn.pragma_update(
            None,
            "synchronous",
            match synchronous {
                Durability::Normal => "NORMAL",
                Durability::Full => "FULL",
            },
        )?;
        // Every statement of `Sql`, with room for the application's own.
        conn.set_prepared_statement_cache_capacity(64);
        Ok(())
    });
    // One connection outside the pool sets the journal mode (a property of
    // the file) and migrates; it fails fast on a bad path, where the pool
    // would retry until its acquire timeout.
    let mut first = r2d2::ManageConnection::connect(&manager).context(ConnectSnafu { path: &config.path })?;
    first
        .pragma_update(None, "journal_mode", if config.wal { "WAL" } else { "DELETE" })
        .context(ConnectSnafu { path: &config.path })?;
    let node = migrate(&mut first, &sql)?;
    let head: i64 = first.query_row(&sql.head, [], |row| row.get(0)).context(ConnectSnafu { path: &config.path })?;
    let signal = shared_signal(&config.path, &config.table_prefix, node, u128::try_from(head).unwrap_or(0));
    drop(first);
    let pool = r2d2::Pool::builder()
        .max_size(config.max_connections)
        // r2d2 would keep `min_idle` connections open from a thread of its
        // own, which could still hold the pool after `close`; the store
        // opens its `min_connections` here instead, and they stay open.
        .min_idle(Some(0))
        .connection_timeout(config.acquire_timeout)
        // An idle connection to a local file costs only its page cache:
        // it stays open until the store is closed.
        .idle_timeout(None)
        .max_lifetime(None)
        // The connections live in this process: a liveness check before
        // every use would only cost time.
        .test_on_check_out(false)
        .build_unchecked(manager);
    let opened: Vec<_> = (0..config.min_connections)
        .map(|_| pool.get())
        .collect::<std::result::Result<_, _>>()
        .context(PoolSnafu { path: &config.path })?;
    drop(opened);
    Ok(SqliteStore {
        inner: Arc::new(Inner {
            pool: Mutex::new(Some(pool)),
            path: config.path,
            node,
            limits: config.limits,
            bodies: Bodies { node },
            sql,
            writer: Mutex::new(Derived::default()),
            checkpoints: config.wal.then(Checkpointer::default),
            signal,
        }),
    })
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
        self.write_remote(events, source.to_owned()).await
    }

    async fn load(
        &self,
        after: &Cursor,
        limit: usize,
        filter: &Filter,
        skip_source: Option<&str>,
    ) -> sync_core::Result<Page> {
        let head = async { self.head().await?.position_for(self.inner.node) };
        page_from_scan(self.inner.node, after, limit, filter, skip_source, head, |seq, n| self.scan(seq, n)).await
    }

    async fn load_aggregate(&self, aggregate_id: &str, after: &Cursor) -> sync_core::Result<Vec<Event>> {
        const ACTION: &str = "reading an aggregate";
        let after = i64::try_from(after.seq_for(self.inner.node)?).unwrap_or(i64::MAX);
        let aggregate_id = aggregate_id.to_owned();
        self.with_conn(ACTION, move |inner, conn| {
            let mut stmt = conn.prepare_cached(&inner.sql.load_aggregate).map_err(storage(ACTION))?;
            let mut rows = stmt.query(params![aggregate_id, after]).map_err(storage(ACTION))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(storage(ACTION))? {
                out.push(event_row(inner.bodies, row, 1)?);
            }
            Ok(out)
        })
        .await
    }

    /// One lookup of the stored clock, merged with the clocks of the
    /// aggregate's events not folded yet.
    async fn aggregate_clock(&self, aggregate_id: &str) -> sync_core::Result<VectorClock> {
        const ACTION: &str = "reading an aggregate clock";
        let aggregate_id = aggregate_id.to_owned();
        self.with_conn(ACTION, move |inner, conn| {
            let mut stmt = conn.prepare_cached(&inner.sql.aggregate_clock).map_err(storage(ACTION))?;
            let mut rows = stmt.query(params![aggregate_id]).map_err(storage(ACTION))?;
            let mut clock = VectorClock::new();
            while let Some(row) = rows.next().map_err(storage(ACTION))? {
                let tag: i64 = row.get(0).map_err(storage(ACTION))?;
                let bytes = blob(row, 1).map_err(storage(ACTION))?;
                if tag == 0 {
                    clock.merge(&decode_clock(bytes)?);
                } else {
                    clock.merge(&inner.bodies.decode_header(bytes)?.1);
                }
            }
            Ok(clock)
        })
        .await
    }

    async fn head(&self) -> sync_core::Result<Cursor> {
        const ACTION: &str = "reading the head";
        let seq = self
            .with_conn(ACTION, |inner, conn| {
                conn.prepare_cached(&inner.sql.head)
                    .and_then(|mut stmt| stmt.query_row([], |row| row.get::<_, i64>(0)))
                    .map_err(storage(ACTION))
            })
            .await?;
        Ok(Cursor::new(self.inner.node, to_u64(seq, "seq")?.into()))
    }

    /// Wakes on commits of every store of this process on the same file
    /// and table prefix; writes by other processes are not seen.
    async fn wait_past(&self, after: &Cursor) -> sync_core::Result<()> {
        self.inner.signal.wait_past(after).await
    }

    /// The stored counters merged with the origins of the events not folded
    /// yet (at most a few tens of thousands, read in one snapshot).
    async fn version_vector(&self) -> sync_core::Result<VectorClock> {
        const ACTION: &str = "reading the version vector";
        self.with_conn(ACTION, |inner, conn| {
            let mut stmt = conn.prepare_cached(&inner.sql.version_vector).map_err(storage(ACTION))?;
            let mut rows = stmt.query([]).map_err(storage(ACTION))?;
            let mut vector = VectorClock::new();
            while let Some(row) = rows.next().map_err(storage(ACTION))? {
                let tag: i64 = row.get(0).map_err(storage(ACTION))?;
                let bytes = blob(row, 1).map_err(storage(ACTION))?;
                let (node, counter) = if tag == 0 {
                    let counter: i64 = row.get(2).map_err(storage(ACTION))?;
                    (NodeId::from_bytes(sixteen(bytes, "origin node id")?), to_u64(counter, "origin counter")?)
                } else {
                    let (origin, _) = inner.bodies.decode_header(bytes)?;
                    (origin.node, origin.counter)
                };
                if counter > vector.get(node) {
                    vector.set(node, counter);
                }
            }
            Ok(vector)
        })
        .await
    }

    async fn checkpoint(&self, peer: &str) -> sync_core::Result<Checkpoint> {
        const ACTION: &str = "reading a checkpoint";
        let peer = peer.to_owned();
        let row: Option<(String, String)> = self
            .with_conn(ACTION, move |inner, conn| {
                conn.prepare_cached(&inner.sql.get_checkpoint)
                    .and_then(|mut stmt| stmt.query_row([peer], |row| Ok((row.get(0)?, row.get(1)?))).optional())
                    .map_err(storage(ACTION))
            })
            .await?;
        let Some((pushed, pulled)) = row else {
            return Ok(Checkpoint::default());
        };
        let parse = |text: &str| text.parse::<Cursor>().map_err(|e| sync_core::Error::storage(ACTION, e));
        Ok(Checkpoint { pushed: parse(&pushed)?, pulled: parse(&pulled)? })
    }

    async fn set_checkpoint(&self, peer: &str, checkpoint: &Checkpoint) -> sync_core::Result<()> {
        const ACTION: &str = "writing a checkpoint";
        let values = (peer.to_owned(), checkpoint.pushed.to_string(), checkpoint.pulled.to_string());
        self.with_conn(ACTION, move |inner, conn| {
            conn.prepare_cached(&inner.sql.put_checkpoint)
                .and_then(|mut stmt| stmt.execute(params![values.0, values.1, values.2]))
                .map_err(storage(ACTION))?;
            Ok(())
        })
        .await
    }

    /// Waits for a running write and checkpoint, then releases the pool: idle connections
    /// close at once, busy ones when their operation ends (in WAL mode the
    /// last one checkpoints the WAL into the main file). Every clone of this
    /// store is closed; later calls fail with a storage error.
    async fn close(&self) -> sync_core::Result<()> {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            let _writer = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let drop_pool = || drop(inner.pool.lock().unwrap_or_else(PoisonError::into_inner).take());
            match &inner.checkpoints {
                Some(checkpoints) => checkpoints.exclusive(drop_pool),
                None => drop_pool(),
            }
            Ok(())
        })
        .await
    }
}

/// Creates or upgrades the schema and returns the node id, creating it on
/// first open. One `BEGIN IMMEDIATE` transaction, so stores opened at the
/// same time on one file agree on the result.
fn migrate(conn: &mut Connection, sql: &Sql) -> Result<NodeId> {
    let latest = LATEST_VERSION;
    let tx =
        conn.transaction_with_behavior(TransactionBehavior::Immediate).context(MigrateSnafu { version: latest })?;
    // On error the transaction is dropped, which rolls it back.
    tx.execute(&sql.create_meta, []).context(MigrateSnafu { version: latest })?;
    let found: Option<i64> = tx
        .query_row(&sql.get_meta, [META_SCHEMA_VERSION], |row| row.get(0))
        .optional()
        .context(MigrateSnafu { version: latest })?;
    let mut version = found.unwrap_or(0);
    if version > latest {
        return SchemaTooNewSnafu { found: version, supported: latest }.fail();
    }
    while version < latest {
        tx.execute_batch(&sql.migration(version)).context(MigrateSnafu { version: version + 1 })?;
        version += 1;
    }
    if found != Some(latest) {
        tx.execute(&sql.put_meta, params![META_SCHEMA_VERSION, latest]).context(MigrateSnafu { version: latest })?;
    }
    let stored: Option<Vec<u8>> = tx
        .query_row(&sql.get_meta, [META_NODE_ID], |row| row.get(0))
        .optional()
        .context(MigrateSnafu { version: latest })?;
    let node = match stored {
        Some(bytes) => {
            let bytes: [u8; 16] = bytes.as_slice().try_into().map_err(|_| {
                CorruptMetaSnafu { key: META_NODE_ID, reason: format!("expected 16 bytes, found {}", bytes.len()) }
                    .build()
            })?;
            NodeId::from_bytes(bytes)
        }
        None => {
            let node = NodeId::random();
            tx.execute(&sql.put_meta, params![META_NODE_ID, &node.to_bytes()[..]])
                .context(MigrateSnafu { version: latest })?;
            node
        }
    };
    tx.commit().context(MigrateSnafu { version: latest })?;
    Ok(node)
}

/// The feed signal of the store `node` in `path` under `prefix`, shared by
/// every `SqliteStore` of this process on it, so that a commit through any
/// of them wakes the waiters of all.
fn shared_signal(path: &Path, prefix: &str, node: NodeId, head: u128) -> FeedSignal {
    type Signals = Mutex<HashMap<(PathBuf, String, NodeId), FeedSignal>>;
    static SIGNALS: OnceLock<Signals> = OnceLock::new();
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mut signals = SIGNALS.get_or_init(Signals::default).lock().unwrap_or_else(PoisonError::into_inner);
    let signal = signals.entry((path, prefix.to_owned(), node)).or_insert_with(|| FeedSignal::new(node, head));
    signal.advance(head);
    signal.clone()
}

/// Column `at` of `row` as bytes, borrowed from the row.
pub(crate) fn blob<'r>(row: &'r Row<'_>, at: usize) -> rusqlite::Result<&'r [u8]> {
    row.get_ref(at)?
        .as_blob()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(at, rusqlite::types::Type::Blob, Box::new(e)))
}

pub(crate) fn decode_clock(bytes: &[u8]) -> sync_core::Result<VectorClock> {
    Codec::Postcard.decode(bytes).map_err(|e| sync_core::Error::storage("decoding an aggregate clock", e))
}

/// The event in columns `at..at + 4` of `row`: id, aggregate id, kind, body.
fn event_row(bodies: Bodies, row: &Row<'_>, at: usize) -> sync_core::Result<Event> {
    const ACTION: &str = "reading events";
    let id = blob(row, at).map_err(storage(ACTION))?;
    let aggregate_id: String = row.get(at + 1).map_err(storage(ACTION))?;
    let kind: String = row.get(at + 2).map_err(storage(ACTION))?;
    let bytes = blob(row, at + 3).map_err(storage(ACTION))?;
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
}
