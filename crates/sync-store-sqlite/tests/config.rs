//! Every [`SqliteConfig`] option has an effect, shown on a real file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sync_core::raw::Replica;
use sync_core::{ErrorCode, EventStore, Hlc, Limits, NewEvent, NodeId};
use sync_store_sqlite::rusqlite::{self, Connection};
use sync_store_sqlite::{Durability, Error, SqliteConfig, SqliteStore};

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.db");
    (dir, path)
}

async fn open(config: SqliteConfig) -> SqliteStore {
    SqliteStore::open(config).await.expect("open store")
}

/// Runs `f` on a connection of the store's pool, on a blocking thread.
async fn with_pooled<T: Send + 'static>(
    store: &SqliteStore,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
) -> T {
    let pool = store.pool().expect("open store");
    tokio::task::spawn_blocking(move || f(&pool.get().expect("pooled connection")).expect("query"))
        .await
        .expect("blocking task")
}

async fn pragma_text(store: &SqliteStore, name: &'static str) -> String {
    with_pooled(store, move |conn| conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))).await
}

async fn pragma_int(store: &SqliteStore, name: &'static str) -> i64 {
    with_pooled(store, move |conn| conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))).await
}

/// A connection outside the store's pool, as another process would have.
fn outsider(path: &Path) -> Connection {
    Connection::open(path).expect("outside connection")
}

fn events(n: usize) -> Vec<NewEvent> {
    (0..n).map(|i| NewEvent::new("test.k", format!("agg-{i}"), "x")).collect()
}

#[tokio::test]
async fn wal_and_synchronous_normal_are_the_default() {
    let (_dir, path) = temp_db();
    let store = open(SqliteConfig::new(&path)).await;
    assert_eq!(pragma_text(&store, "journal_mode").await, "wal");
    assert_eq!(pragma_int(&store, "synchronous").await, 1, "NORMAL");
    store.append(events(3)).await.unwrap();
    assert!(path.with_extension("db-wal").exists(), "commits go to the WAL");
}

#[tokio::test]
async fn full_durability_sets_synchronous_full() {
    let (_dir, path) = temp_db();
    let store = open(SqliteConfig::new(&path).durability(Durability::Full)).await;
    assert_eq!(pragma_text(&store, "journal_mode").await, "wal");
    assert_eq!(pragma_int(&store, "synchronous").await, 2, "FULL");
    store.append(events(3)).await.unwrap();
}

#[tokio::test]
async fn wal_off_uses_the_rollback_journal() {
    let (_dir, path) = temp_db();
    let store = open(SqliteConfig::new(&path).wal(false)).await;
    assert_eq!(pragma_text(&store, "journal_mode").await, "delete");
    store.append(events(5)).await.unwrap();
    assert_eq!(store.head().await.unwrap(), sync_core::Cursor::new(store.node_id(), 5));
    assert!(!path.with_extension("db-wal").exists());
}

#[tokio::test]
async fn table_prefix_names_every_table() {
    let (_dir, path) = temp_db();
    let store = open(SqliteConfig::new(&path).table_prefix("app_sync_")).await;
    store.append(events(2)).await.unwrap();
    let names: Vec<(String, String)> = with_pooled(&store, |conn| {
        conn.prepare("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect()
    })
    .await;
    let tables: BTreeSet<&str> =
        names.iter().filter(|(kind, _)| kind == "table").map(|(_, name)| name.as_str()).collect();
    assert_eq!(
        tables,
        BTreeSet::from([
            "app_sync_aggregate_index",
            "app_sync_aggregates",
            "app_sync_checkpoints",
            "app_sync_events",
            "app_sync_folds",
            "app_sync_meta",
            "app_sync_origins",
        ])
    );
    assert!(names.iter().all(|(_, name)| name.starts_with("app_sync_")), "{names:?}");

    // Another prefix in the same file is another store.
    let other = open(SqliteConfig::new(&path)).await;
    assert_ne!(other.node_id(), store.node_id());
    assert_eq!(other.head().await.unwrap(), sync_core::Cursor::START);
    let default_tables: i64 = with_pooled(&other, |conn| {
        conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'synckit\\_%' ESCAPE '\\'",
            [],
            |row| row.get(0),
        )
    })
    .await;
    assert_eq!(default_tables, 7, "the default prefix is synckit_");
}

#[tokio::test]
async fn invalid_table_prefixes_are_rejected_before_touching_the_file() {
    let (_dir, path) = temp_db();
    for bad in ["", "9lives", "my-app", "x; DROP TABLE y", "naïve"] {
        let err = SqliteStore::open(SqliteConfig::new(&path).table_prefix(bad)).await.unwrap_err();
        assert!(matches!(err, Error::InvalidTablePrefix { .. }), "{bad:?}: {err}");
        assert_eq!(err.code(), ErrorCode::InvalidInput);
        assert!(err.to_string().contains("[A-Za-z_][A-Za-z0-9_]*"), "{err}");
        assert_eq!(sync_core::Error::from(err).code(), ErrorCode::InvalidInput);
    }
    assert!(!path.exists(), "nothing is created for a bad config");
}

#[tokio::test]
async fn busy_timeout_bounds_the_wait_for_another_writer() {
    let (_dir, path) = temp_db();
    // Both stores open (and migrate) before the outside lock is taken.
    let impatient = open(SqliteConfig::new(&path).busy_timeout(Duration::from_millis(200))).await;
    let patient = open(SqliteConfig::new(&path).busy_timeout(Duration::from_secs(20))).await;
    assert_eq!(pragma_int(&impatient, "busy_timeout").await, 200);
    assert_eq!(pragma_int(&patient, "busy_timeout").await, 20_000);

    let other = outsider(&path);
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let start = Instant::now();
    let err = impatient.append(events(1)).await.unwrap_err();
    let waited = start.elapsed();
    assert_eq!(err.code(), ErrorCode::Storage, "{err}");
    assert!(err.to_string().contains("locked"), "{err}");
    assert!(waited >= Duration::from_millis(150) && waited < Duration::from_secs(3), "{waited:?}");

    // A patient store waits for the lock to be released.
    let writer = tokio::spawn({
        let patient = patient.clone();
        async move { patient.append(events(1)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!writer.is_finished(), "waits while the lock is held");
    other.execute_batch("COMMIT").unwrap();
    assert_eq!(writer.await.unwrap().unwrap().inserted.len(), 1);
}

#[tokio::test]
async fn pool_sizes_are_applied() {
    let (_dir, path) = temp_db();
    let lazy = open(SqliteConfig::new(&path)).await;
    let pool = lazy.pool().unwrap();
    assert_eq!(pool.max_size(), 4);
    assert_eq!(pool.state().connections, 0, "connections open when first needed");
    lazy.head().await.unwrap();
    assert_eq!(pool.state().connections, 1);

    let store = open(SqliteConfig::new(&path).max_connections(3).min_connections(2)).await;
    let pool = store.pool().unwrap();
    assert_eq!(pool.max_size(), 3);
    assert_eq!(pool.state().connections, 2, "min connections open at start");
    let held = tokio::task::spawn_blocking(move || [pool.get().unwrap(), pool.get().unwrap(), pool.get().unwrap()])
        .await
        .unwrap();
    let pool = store.pool().unwrap();
    assert_eq!(pool.state().connections, 3);
    assert!(pool.try_get().is_none(), "no fourth connection");
    drop(held);
    assert!(pool.try_get().is_some());
}

#[tokio::test]
async fn acquire_timeout_bounds_the_wait_for_a_connection() {
    let (_dir, path) = temp_db();
    let store = open(SqliteConfig::new(&path).max_connections(1).acquire_timeout(Duration::from_millis(200))).await;
    let pool = store.pool().unwrap();
    assert_eq!(pool.connection_timeout(), Duration::from_millis(200));
    let held = tokio::task::spawn_blocking(move || pool.get().unwrap()).await.unwrap();
    let start = Instant::now();
    let err = store.head().await.unwrap_err();
    let waited = start.elapsed();
    assert_eq!(err.code(), ErrorCode::Storage, "{err}");
    assert!(waited >= Duration::from_millis(150) && waited < Duration::from_secs(3), "{waited:?}");
    drop(held);
    store.head().await.unwrap();
}

#[tokio::test]
async fn a_closed_store_refuses_calls_and_releases_its_connections() {
    let (_dir, path) = temp_db();
    let store = open(SqliteConfig::new(&path).min_connections(2)).await;
    store.append(events(1)).await.unwrap();
    let clone = store.clone();
    store.close().await.unwrap();
    assert!(clone.pool().is_none());
    let err = clone.head().await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Storage, "{err}");
    assert!(err.to_string().contains("closed"), "{err}");
    assert!(clone.append(events(1)).await.is_err());
    // Every connection closes (a connection r2d2 just opened on its own
    // thread may take a moment): the last one checkpoints and removes the WAL.
    let deadline = Instant::now() + Duration::from_secs(5);
    while path.with_extension("db-wal").exists() {
        assert!(Instant::now() < deadline, "a connection stayed open after close");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn limits_are_enforced() {
    let (_dir, path) = temp_db();
    let limits = Limits { max_data_bytes: 8, ..Limits::default() };
    let strict = open(SqliteConfig::new(&path).limits(limits)).await;
    let err = strict.append(vec![NewEvent::new("k", "a", "123456789")]).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooLarge, "{err}");
    strict.append(vec![NewEvent::new("k", "a", "12345678")]).await.unwrap();
    let mut book = Replica::new(NodeId::random());
    let remote = book.stamp(NewEvent::new("k", "a", "123456789"), Hlc::now_ms()).unwrap();
    let err = strict.apply(vec![remote.clone()], "peer").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooLarge, "{err}");
    strict.close().await.unwrap();

    let lenient = open(SqliteConfig::new(&path)).await;
    lenient.apply(vec![remote], "peer").await.unwrap();
    lenient.append(vec![NewEvent::new("k", "a", "123456789")]).await.unwrap();
}

#[tokio::test]
async fn a_schema_from_a_newer_build_is_refused() {
    let (_dir, path) = temp_db();
    open(SqliteConfig::new(&path)).await.close().await.unwrap();
    let conn = outsider(&path);
    conn.execute("UPDATE synckit_meta SET value = 99 WHERE key = 'schema_version'", []).unwrap();
    drop(conn);
    let err = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap_err();
    assert!(matches!(err, Error::SchemaTooNew { found: 99, .. }), "{err}");
    assert_eq!(err.code(), ErrorCode::Storage);
}

#[tokio::test]
async fn bad_pool_settings_are_rejected() {
    let (_dir, path) = temp_db();
    let err = SqliteStore::open(SqliteConfig::new(&path).max_connections(0)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput, "{err}");
    let err = SqliteStore::open(SqliteConfig::new(&path).max_connections(1).min_connections(2)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err}");
    let err = SqliteStore::open(SqliteConfig::new(&path).acquire_timeout(Duration::ZERO)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err}");
    assert!(!path.exists(), "nothing is created for a bad config");
}

#[tokio::test]
async fn an_unopenable_path_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("store.db");
    let start = Instant::now();
    let err = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5), "not after the acquire timeout");
}

#[tokio::test]
async fn wal_checkpoints_run_beside_the_writer() {
    let (_dir, path) = temp_db();
    let store = open(SqliteConfig::new(&path)).await;
    let db_size = || std::fs::metadata(&path).map_or(0, |m| m.len());
    let before = db_size();
    // ~6 MB of events: past the checkpoint mark (~4 MB) once.
    for batch in 0..6 {
        let events = (0..1000).map(|i| NewEvent::new("test.k", format!("agg-{batch}-{i}"), vec![7u8; 1000])).collect();
        store.append(events).await.unwrap();
    }
    assert!(path.with_extension("db-wal").metadata().unwrap().len() > 4 << 20, "the batches went to the WAL");
    // The commits did not copy the WAL into the database file (SQLite's
    // automatic checkpoint is off); a checkpoint beside them does.
    let deadline = Instant::now() + Duration::from_secs(20);
    while db_size() < before + (2 << 20) {
        assert!(Instant::now() < deadline, "no checkpoint copied the WAL: database file {} bytes", db_size());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store.close().await.unwrap();
}

#[tokio::test]
async fn many_small_commits_keep_the_wal_small() {
    let (_dir, path) = temp_db();
    let store = open(SqliteConfig::new(&path)).await;
    let wal = path.with_extension("db-wal");
    let mut largest = 0;
    // Each commit writes a few whole pages for very few bytes of events:
    // the WAL's own size, not the events', decides when to checkpoint.
    for i in 0..3_000 {
        store.append(events(1)).await.unwrap();
        let checkpoint = sync_core::Checkpoint { pushed: store.head().await.unwrap(), ..Default::default() };
        store.set_checkpoint(&format!("peer-{}", i % 7), &checkpoint).await.unwrap();
        largest = largest.max(wal.metadata().map_or(0, |m| m.len()));
    }
    // 6,000 commits of 2 to 4 pages each would be ~50 MB of WAL unchecked;
    // checkpoints start at 1,000 pages (4 MB).
    assert!(largest < 16 << 20, "the WAL grew to {largest} bytes");
    store.close().await.unwrap();
}
