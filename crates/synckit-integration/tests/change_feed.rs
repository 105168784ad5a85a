//! The change-feed notification across handles: a write that does not go
//! through the server wakes the server's waiting readers.

use std::sync::Arc;
use std::time::Duration;

use sync_core::{EventStore, NewEvent};
use sync_manager::SyncManager;
use sync_server::SyncService;
use sync_store_sqlite::{SqliteConfig, SqliteStore};

const WAKE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_by_a_manager_sharing_the_servers_store_wakes_a_waiting_pull() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.db");
    let store = Arc::new(SqliteStore::open(SqliteConfig::new(&path)).await.unwrap());
    let service = Arc::new(SyncService::new(store.clone()));
    let local = SyncManager::builder(store.clone()).build().unwrap();

    let head = store.head().await.unwrap();
    let waiting = tokio::spawn({
        let service = service.clone();
        async move { service.wait_past(&head).await }
    });
    local.append(vec![NewEvent::new("note.added", "n1", "from the manager")]).await.unwrap();
    tokio::time::timeout(WAKE, waiting).await.expect("woken by the manager's append").unwrap().unwrap();

    // Another handle on the same file in this process wakes it too.
    let other = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    let head = store.head().await.unwrap();
    let waiting = tokio::spawn({
        let service = service.clone();
        async move { service.wait_past(&head).await }
    });
    other.append(vec![NewEvent::new("note.added", "n2", "from another handle")]).await.unwrap();
    tokio::time::timeout(WAKE, waiting).await.expect("woken by the other handle").unwrap().unwrap();
    let page = service
        .pull(&sync_server::Principal::unrestricted("c"), &head, 10, &sync_core::Filter::default())
        .await
        .unwrap();
    assert_eq!(page.events[0].data, "from another handle");
}
