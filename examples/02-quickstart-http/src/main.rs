//! # Example 02: client and server over HTTP
//!
//! Starts an embedded [`HttpServer`] on a free port of 127.0.0.1, connects one
//! client [`SyncManager`] to it through an [`HttpTransport`], and syncs in
//! both directions. Then it stops the server: the next sync fails with error
//! code `unavailable` while the client's events stay safe in its store, and
//! after a restart on the same address the sync resumes where it stopped.
//!
//! Run it with `cargo run -p example-02-quickstart-http`.

use std::sync::Arc;
use std::time::Duration;

use sync_core::{ErrorCode, EventStore, NewEvent};
use sync_manager::{SyncManager, SyncResult};
use sync_server::SyncService;
use sync_store_sqlite::{SqliteConfig, SqliteStore};
use sync_transport_http::{HttpServer, HttpTransport};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;

    // The server: a SyncService over its own store, served over HTTP. Keep the
    // service in an Arc so a restarted server serves the same store.
    let service = Arc::new(SyncService::new(SqliteStore::open(SqliteConfig::new(dir.path().join("server.db"))).await?));
    let server = HttpServer::new(service.clone()).bind("127.0.0.1:0").await?;
    let address = server.local_addr();
    println!("server listening on {}", server.base_url());

    // The client: its own store, a transport to the server, short timeouts
    // so a dead server is noticed quickly.
    let transport = HttpTransport::new(server.base_url())?.timeout(Duration::from_secs(2));
    let client = SyncManager::builder(SqliteStore::open(SqliteConfig::new(dir.path().join("client.db"))).await?)
        .transport(transport)
        .timeout(Duration::from_secs(2))
        .build()?;
    println!("client node {}\n", client.store().node_id());

    client
        .append(vec![
            NewEvent::new("note.added", "note-1", "hello from the client"),
            NewEvent::new("note.added", "note-2", "a second note"),
        ])
        .await?;
    // Something the server knows that the client does not (another client wrote it, say).
    service.store().append(vec![NewEvent::new("note.added", "note-3", "welcome, says the server")]).await?;

    let first = client.sync().await?;
    report("first sync", &first);
    println!("server head is now {}", service.store().head().await?);

    println!("\nstopping the server");
    server.shutdown().await;
    client.append(vec![NewEvent::new("note.added", "note-4", "written while offline")]).await?;
    match client.sync().await {
        Err(e) if e.code() == ErrorCode::Unavailable => println!("sync failed as expected: [{}] {e}", e.code()),
        Err(e) => return Err(format!("expected code unavailable, got [{}] {e}", e.code()).into()),
        Ok(result) => return Err(format!("a sync against a stopped server succeeded: {result:?}").into()),
    }

    println!("\nrestarting the server on {address}");
    let server = HttpServer::new(service.clone()).bind(address).await?;
    let second = client.sync().await?;
    report("sync after restart", &second);

    let on_server = service.store().version_vector().await?.get(client.store().node_id());
    println!("server holds {on_server} events from this client");
    server.shutdown().await;
    if (first.pushed, first.pulled, second.pushed, on_server) != (2, 1, 1, 3) {
        return Err("the client and the server disagree".into());
    }
    Ok(())
}

fn report(what: &str, r: &SyncResult) {
    println!(
        "{what}: pushed {}, pulled {}, duplicates {}, rejected {} in {} ms",
        r.pushed,
        r.pulled,
        r.push_duplicates,
        r.rejected.len(),
        r.duration.as_millis()
    );
}
