//! Manager options whose effect needs a real transport.

use std::sync::Arc;

use sync_core::{ErrorCode, NewEvent};
use sync_manager::SyncManager;
use sync_server::{ServerLimits, SyncService};
use sync_testkit::MemoryStore;
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
