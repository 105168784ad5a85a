//! Every [`SqliteConfig`] option has an effect, shown on a real file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::{Connection, SqliteConnection, sqlite::SqliteConnectOptions};
use sync_core::{ClockBook, ErrorCode, EventStore, Hlc, Limits, NewEvent, NodeId};
use sync_store_sqlite::{Durability, Error, SqliteConfig, SqliteStore};

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.db");
    (dir, path)
}

async fn open(config: SqliteConfig) -> SqliteStore {
    SqliteStore::open(config).await.expect("open store")
}

async fn pragma_text(store: &SqliteStore, name: &str) -> String {
    let mut conn = store.pool().acquire().await.expect("acquire");
    let row: (String,) = sqlx::query_as(&format!("PRAGMA {name}")).fetch_one(&mut *conn).await.expect("pragma");
    row.0
}

async fn pragma_int(store: &SqliteStore, name: &str) -> i64 {
    let mut conn = store.pool().acquire().await.expect("acquire");
    sqlx::query_scalar(&format!("PRAGMA {name}")).fetch_one(&mut *conn).await.expect("pragma")
}

/// A connection outside the store's pool, as another process would have.
async fn outsider(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path)).await.expect("outside connection")
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
    let names: Vec<(String, String)> =
        sqlx::query_as("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
            .fetch_all(store.pool())
            .await
            .unwrap();
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
    let default_tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'synckit\\_%' ESCAPE '\\'",
    )
    .fetch_one(other.pool())
    .await
    .unwrap();
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

    let mut other = outsider(&path).await;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();
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
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    assert_eq!(writer.await.unwrap().unwrap().inserted.len(), 1);
}

#[tokio::test]
async fn pool_sizes_are_applied() {
    let (_dir, path) = temp_db();
    let store = open(SqliteConfig::new(&path).max_connections(3).min_connections(2)).await;
    let options = store.pool().options();
    assert_eq!((options.get_max_connections(), options.get_min_connections()), (3, 2));
    assert!(store.pool().size() >= 2, "min connections open at start");
    let held = [
        store.pool().acquire().await.unwrap(),
        store.pool().acquire().await.unwrap(),
        store.pool().acquire().await.unwrap(),
    ];
    assert_eq!(store.pool().size(), 3);
    assert!(store.pool().try_acquire().is_none(), "no fourth connection");
    drop(held);
}

#[tokio::test]
async fn acquire_timeout_bounds_the_wait_for_a_connection() {
    let (_dir, path) = temp_db();
    let store = open(SqliteConfig::new(&path).max_connections(1).acquire_timeout(Duration::from_millis(200))).await;
    assert_eq!(store.pool().options().get_acquire_timeout(), Duration::from_millis(200));
    let held = store.pool().acquire().await.unwrap();
    let start = Instant::now();
    let err = store.head().await.unwrap_err();
    let waited = start.elapsed();
    assert_eq!(err.code(), ErrorCode::Storage, "{err}");
    assert!(waited >= Duration::from_millis(150) && waited < Duration::from_secs(3), "{waited:?}");
    drop(held);
    store.head().await.unwrap();
}

/// True when the pool hands out the same connection as when the marker was
/// made (TEMP tables live and die with their connection).
async fn same_connection(store: &SqliteStore) -> bool {
    let mut conn = store.pool().acquire().await.unwrap();
    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM temp.sqlite_master WHERE name = 'marker'")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    found == 1
}

async fn mark_connection(store: &SqliteStore) {
    let mut conn = store.pool().acquire().await.unwrap();
    sqlx::query("CREATE TEMP TABLE marker (x)").execute(&mut *conn).await.unwrap();
}

#[tokio::test]
async fn idle_timeout_closes_idle_connections() {
    let (_dir, path) = temp_db();
    let base = SqliteConfig::new(&path).max_connections(1).max_lifetime(None);

    let kept = open(base.clone()).await;
    mark_connection(&kept).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(same_connection(&kept).await, "default idle timeout is minutes");
    kept.close().await.unwrap();

    let reaped = open(base.idle_timeout(Duration::from_millis(150))).await;
    assert_eq!(reaped.pool().options().get_idle_timeout(), Some(Duration::from_millis(150)));
    mark_connection(&reaped).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(reaped.pool().size(), 0, "the idle connection was closed");
    assert!(!same_connection(&reaped).await);
}

#[tokio::test]
async fn max_lifetime_retires_busy_connections() {
    let (_dir, path) = temp_db();
    // No idle timeout, and the connection is used every 20 ms: only its age
    // can retire it.
    let base = SqliteConfig::new(&path).max_connections(1).idle_timeout(None);
    for (lifetime, expect_retired) in [(None, false), (Some(Duration::from_millis(150)), true)] {
        let store = open(base.clone().max_lifetime(lifetime)).await;
        assert_eq!(store.pool().options().get_max_lifetime(), lifetime);
        mark_connection(&store).await;
        let mut retired = false;
        for _ in 0..35 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if !same_connection(&store).await {
                retired = true;
                break;
            }
        }
        assert_eq!(retired, expect_retired, "max_lifetime {lifetime:?}");
        store.close().await.unwrap();
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
    let mut book = ClockBook::new(NodeId::random(), Hlc::ZERO, Limits::default());
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
    let mut conn = outsider(&path).await;
    sqlx::query("UPDATE synckit_meta SET value = 99 WHERE key = 'schema_version'").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
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
}
