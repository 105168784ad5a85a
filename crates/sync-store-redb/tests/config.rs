//! Every `RedbConfig` option has an effect.

use sync_core::{Cursor, ErrorCode, EventStore, Filter, Limits, NewEvent};
use sync_store_redb::{RedbConfig, RedbStore};

/// `path`: the store lives in that file (same node id and events after
/// reopen) and a path that cannot be created is a storage error naming it.
#[tokio::test]
async fn path_selects_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = RedbConfig::new(dir.path().join("a.redb"));
    let store = RedbStore::open(config.clone()).await.unwrap();
    let node = store.node_id();
    store.append(vec![NewEvent::new("k", "x", "1")]).await.unwrap();
    drop(store);
    assert!(config.path.is_file());

    let other = RedbStore::open(RedbConfig::new(dir.path().join("b.redb"))).await.unwrap();
    assert_ne!(other.node_id(), node);
    assert_eq!(other.head().await.unwrap(), Cursor::START);

    let again = RedbStore::open(config).await.unwrap();
    assert_eq!(again.node_id(), node);
    assert_eq!(again.head().await.unwrap(), Cursor::new(node, 1));

    let missing = dir.path().join("no-such-dir").join("c.redb");
    let err = RedbStore::open(RedbConfig::new(&missing)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Storage);
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}

/// The file is locked while a store has it open.
#[tokio::test]
async fn a_file_is_opened_by_one_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = RedbConfig::new(dir.path().join("a.redb"));
    let store = RedbStore::open(config.clone()).await.unwrap();
    let err = RedbStore::open(config.clone()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Storage);
    drop(store);
    RedbStore::open(config).await.unwrap();
}

/// `limits`: events over the configured limits are rejected.
#[tokio::test]
async fn limits_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits { max_data_bytes: 8, max_name_bytes: 4, ..Limits::default() };
    let tight = RedbStore::open(RedbConfig::new(dir.path().join("a.redb")).limits(limits)).await.unwrap();
    let roomy = RedbStore::open(RedbConfig::new(dir.path().join("b.redb"))).await.unwrap();
    for (event, code) in [
        (NewEvent::new("k", "x", vec![0u8; 9]), ErrorCode::TooLarge),
        (NewEvent::new("k", "agg-1", "ok"), ErrorCode::TooLarge),
    ] {
        let err = tight.append(vec![event.clone()]).await.unwrap_err();
        assert_eq!(err.code(), code, "{err}");
        roomy.append(vec![event]).await.unwrap();
    }
    tight.append(vec![NewEvent::new("k", "agg", vec![0u8; 8])]).await.unwrap();
}

/// `cache_size` bounds the memory redb keeps for pages.
#[tokio::test]
async fn cache_size_bounds_the_page_cache() {
    const SMALL: usize = 256 << 10;
    let dir = tempfile::tempdir().unwrap();
    let mut used = Vec::new();
    for (name, cache) in [("small.redb", SMALL), ("large.redb", 64 << 20)] {
        let config = RedbConfig::new(dir.path().join(name)).cache_size(cache);
        let store = RedbStore::open(config).await.unwrap();
        // about 4 MiB of events, then read them all back
        for b in 0..16 {
            let batch = (0..64).map(|i| NewEvent::new("k", format!("agg-{b}-{i}"), vec![7u8; 4096])).collect();
            store.append(batch).await.unwrap();
        }
        let all = store.load(&Cursor::START, 10_000, &Filter::default(), None).await.unwrap();
        assert_eq!(all.events.len(), 16 * 64);
        let stats = store.cache_stats();
        assert!(stats.used_bytes <= cache, "{name}: {stats:?}");
        used.push(stats);
    }
    assert!(used[0].evictions > 0, "a small cache evicts: {:?}", used[0]);
    assert!(used[1].used_bytes > SMALL, "a large cache keeps more: {:?}", used[1]);
}
