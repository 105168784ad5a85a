//! Manager options whose effect needs a real transport.

use std::sync::Arc;

use sync_core::{ErrorCode, EventStore, Filter, NewEvent};
use sync_manager::SyncManager;
use sync_server::{ServerLimits, SyncService};
use sync_store_memory::MemoryStore;
use sync_transport_http::{HttpServer, HttpTransport};

#[tokio::test]
async fn compression_shrinks_pushes_below_the_body_limit() {
    // 50 events of 1 KiB zeros: ~55 KiB as postcard, a few hundred bytes as zstd.
    let limits = ServerLimits { max_body_bytes: 8 << 10, ..ServerLimits::default() };
    let service = Arc::new(SyncService::new(MemoryStore::new()).with_limits(limits));
    let server = HttpServer::new(service).bind("127.0.0.1:0").await.unwrap();
    let events = || (0..50).map(|i| NewEvent::new("blob", format!("b{i}"), vec![0u8; 1024])).collect::<Vec<_>>();

    let plain = SyncManager::builder(MemoryStore::new())
        .transport(HttpTransport::new(server.base_url()).unwrap())
        .compression(false)
        .build()
        .unwrap();
    plain.append(events()).await.unwrap();
    assert_eq!(plain.push().await.unwrap_err().code(), ErrorCode::TooLarge);

    let packed = SyncManager::builder(MemoryStore::new())
        .transport(HttpTransport::new(server.base_url()).unwrap())
        .compression(true)
        .build()
        .unwrap();
    packed.append(events()).await.unwrap();
    assert_eq!(packed.push().await.unwrap().pushed, 50);
    server.shutdown().await;
}

#[tokio::test]
async fn checkpoint_names_keep_separate_checkpoints_for_managers_sharing_a_store() {
    let service = Arc::new(SyncService::new(MemoryStore::new()));
    let server = HttpServer::new(service.clone()).bind("127.0.0.1:0").await.unwrap();
    let store = MemoryStore::new(); // clones share one log
    let transport = || HttpTransport::new(server.base_url()).unwrap();
    let orders = SyncManager::builder(store.clone())
        .transport(transport())
        .checkpoint_name("orders")
        .filter(Filter::default().aggregate_prefix("order-"))
        .build()
        .unwrap();
    let everything = SyncManager::builder(store.clone()).transport(transport()).checkpoint_name("all").build().unwrap();
    orders
        .append(vec![NewEvent::new("user.renamed", "user-1", "x"), NewEvent::new("order.placed", "order-1", "y")])
        .await
        .unwrap();

    // The order lane goes first; its checkpoint moves past the user event it skipped.
    assert_eq!(orders.push().await.unwrap().pushed, 1);
    let key = format!("{}/orders", service.store().node_id());
    assert_eq!(store.checkpoint(&key).await.unwrap().pushed, store.head().await.unwrap());
    // The full lane has its own checkpoint, so the user event still goes out.
    let r = everything.push().await.unwrap();
    assert_eq!((r.pushed, r.push_duplicates), (1, 1));
    assert_eq!(service.store().head().await.unwrap().seq_for(service.store().node_id()).unwrap(), 2);
    server.shutdown().await;
}

/// Checkpoints are keyed by the server store's id: two spellings of one
/// server's address share them, so neither pushes nor pulls again what the
/// other did.
#[tokio::test]
async fn two_spellings_of_one_server_share_one_checkpoint() {
    let service = Arc::new(SyncService::new(MemoryStore::new()));
    let server = HttpServer::new(service.clone()).bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().port();
    let store = MemoryStore::new();
    let by_ip = SyncManager::builder(store.clone())
        .transport(HttpTransport::new(format!("http://127.0.0.1:{port}")).unwrap())
        .build()
        .unwrap();
    let by_name = SyncManager::builder(store.clone())
        .transport(HttpTransport::new(format!("http://localhost:{port}/")).unwrap())
        .build()
        .unwrap();
    by_ip.append((0..4).map(|i| NewEvent::new("k", format!("a{i}"), "x")).collect()).await.unwrap();
    assert_eq!(by_name.peer_status().await.unwrap().unwrap().waiting_to_push, 4);
    let first = by_ip.sync().await.unwrap();
    assert_eq!(first.pushed, 4);
    let status = by_name.peer_status().await.unwrap().unwrap();
    assert_eq!(status.waiting_to_push, 0, "the other spelling sees the same checkpoint");
    assert_eq!(status.checkpoint_key, service.store().node_id().to_string());
    let again = by_name.sync().await.unwrap();
    assert_eq!((again.pushed, again.push_duplicates, again.pulled), (0, 0, 0));
    server.shutdown().await;
}
