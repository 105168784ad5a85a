//! # Example 05: background auto-sync
//!
//! Two clients sync with one HTTP server in the background, at different
//! intervals (alice every 200 ms, bob every 350 ms), with
//! [`SyncManager::start_auto_sync`]. Alice records a sensor reading every
//! 150 ms; bob adds a note. Each client's [`SyncManager::subscribe`] stream
//! is turned into live statistics. When both hold every event, the
//! auto-sync tasks are stopped gracefully with [`AutoSync::stop`] (a sync in
//! flight finishes first) and the totals are printed. Runs in about 1.5 s.
//!
//! Run it with `cargo run -p example-05-realtime-autosync`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sync_core::{EventStore, NewEvent};
use sync_manager::{AutoSync, SyncManager, SyncResult};
use sync_server::SyncService;
use sync_store_sqlite::{SqliteConfig, SqliteStore};
use sync_transport_http::{HttpServer, HttpTransport};
use tokio::sync::broadcast::{Receiver, error::RecvError};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;
type Client = SyncManager<SqliteStore, HttpTransport>;

const READINGS: usize = 6;

#[tokio::main]
async fn main() -> BoxResult<()> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let server_store = SqliteStore::open(SqliteConfig::new(dir.path().join("server.db"))).await?;
    let server = HttpServer::new(Arc::new(SyncService::new(server_store))).bind("127.0.0.1:0").await?;
    let url = server.base_url();

    let alice = client(dir.path(), "alice", &url, Duration::from_millis(200)).await?;
    let bob = client(dir.path(), "bob", &url, Duration::from_millis(350)).await?;
    // Subscribe before starting, so no result is missed.
    let alice_stats = tokio::spawn(statistics("alice", alice.subscribe(), started));
    let bob_stats = tokio::spawn(statistics("bob", bob.subscribe(), started));
    let background: [AutoSync; 2] = [alice.start_auto_sync(), bob.start_auto_sync()];
    println!("auto-sync started: alice every 200 ms, bob every 350 ms");

    bob.append(vec![NewEvent::new("note.added", "sensor-1", "calibrated today")]).await?;
    for i in 1..=READINGS {
        alice.append(vec![NewEvent::new("reading.taken", "sensor-1", format!("{} °C", 20 + i))]).await?;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    // Wait (at most 2 s) until both replicas hold every event.
    let total = READINGS as u64 + 1;
    let deadline = Instant::now() + Duration::from_secs(2);
    while held(&alice).await? < total || held(&bob).await? < total {
        if Instant::now() > deadline {
            return Err("the replicas did not converge within 2 s".into());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for task in background {
        task.stop().await;
    }
    println!("[{:>5.2}s] both replicas hold all {total} events; auto-sync stopped", started.elapsed().as_secs_f64());

    let (alice_view, bob_view) = (alice.view("sensor-1").await?, bob.view("sensor-1").await?);
    if alice_view != bob_view {
        return Err("the replicas hold the same events but show different views".into());
    }
    // Dropping the last handles closes the result streams, which ends the statistics tasks.
    drop((alice, bob));
    for (name, stats) in [("alice", alice_stats.await?), ("bob", bob_stats.await?)] {
        println!("{name:<5} totals: {} syncs, pushed {}, pulled {}", stats.syncs, stats.pushed, stats.pulled);
    }
    println!("converged: both show the same {} entries for sensor-1", alice_view.entries.len());
    server.shutdown().await;
    Ok(())
}

async fn client(dir: &Path, name: &str, url: &str, every: Duration) -> BoxResult<Client> {
    let store = SqliteStore::open(SqliteConfig::new(dir.join(format!("{name}.db")))).await?;
    let transport = HttpTransport::new(url)?.timeout(Duration::from_secs(2));
    let manager = SyncManager::builder(store)
        .transport(transport)
        .sync_interval(every)
        .backoff(Duration::from_millis(100), Duration::from_secs(1))
        .build()?;
    Ok(manager)
}

/// How many events a replica holds: the sum of its version vector.
async fn held(client: &Client) -> BoxResult<u64> {
    Ok(client.store().version_vector().await?.iter().map(|(_, counter)| counter).sum())
}

#[derive(Debug, Default)]
struct Stats {
    syncs: usize,
    pushed: usize,
    pulled: usize,
}

/// Prints every sync result of one client and adds them up until the stream closes.
async fn statistics(name: &'static str, mut results: Receiver<SyncResult>, started: Instant) -> Stats {
    let mut stats = Stats::default();
    loop {
        match results.recv().await {
            Ok(r) => {
                stats.syncs += 1;
                stats.pushed += r.pushed;
                stats.pulled += r.pulled;
                let at = started.elapsed().as_secs_f64();
                let took = r.duration.as_millis();
                println!(
                    "[{at:>5.2}s] {name:<5} sync #{}: pushed {}, pulled {} ({took} ms)",
                    stats.syncs, r.pushed, r.pulled
                );
            }
            Err(RecvError::Lagged(missed)) => println!("{name}: missed {missed} results (slow reader)"),
            Err(RecvError::Closed) => return stats,
        }
    }
}
