//! # Example 01: a local-only replica
//!
//! A [`SyncManager`] built without a transport keeps an offline event log in
//! a SQLite file. This example appends events, reads the log back, shows the
//! resolved view of one aggregate, and calls `sync()`, which has no peer to
//! talk to and returns an empty result. Everything lives in a temporary
//! directory that is removed at the end.
//!
//! Run it with `cargo run -p example-01-quickstart-local`.

use sync_core::{Cursor, EventStore, Filter, LastWriteWins, NewEvent, ViewEntry};
use sync_manager::{SyncManager, SyncResult};
use sync_store_sqlite::{SqliteConfig, SqliteStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("todos.db");
    let store = SqliteStore::open(SqliteConfig::new(&path)).await?;
    println!("opened {} as node {}", path.display(), store.node_id());

    // No `.transport(..)`: this manager cannot reach the network at all.
    let manager = SyncManager::builder(store)
        .resolver(LastWriteWins)
        .validator(|e| if e.data.is_empty() { Err("a todo needs a text".into()) } else { Ok(()) })
        .build()?;

    let created = NewEvent::new("todo.created", "todo-1", "buy milk");
    let outcome = manager
        .append(vec![
            created.clone(),
            NewEvent::new("todo.renamed", "todo-1", "buy oat milk"),
            NewEvent::new("todo.created", "todo-2", "water the plants"),
            NewEvent::new("todo.done", "todo-2", "yes"),
        ])
        .await?;
    println!("appended {} events", outcome.inserted.len());

    // The log is a set keyed by event id: appending the same event again is a no-op.
    let again = manager.append(vec![created]).await?;
    println!("appended the first event again: {} inserted, {} duplicate", again.inserted.len(), again.duplicates.len());

    // The validator runs before the store sees anything.
    let refused = manager.append(vec![NewEvent::new("todo.created", "todo-3", "")]).await;
    if let Err(e) = &refused {
        println!("validator refused an empty todo: [{}] {e}", e.code());
    }

    println!("\nthe whole log, in insertion order:");
    let page = manager.store().load(&Cursor::START, 100, &Filter::default(), None).await?;
    for e in &page.events {
        println!("  #{} {:<13} {:<7} {:?}", e.origin.counter, e.kind, e.aggregate_id, String::from_utf8_lossy(&e.data));
    }
    println!("head cursor: {}", manager.store().head().await?);

    println!("\nresolved view of todo-1:");
    let view = manager.view("todo-1").await?;
    for entry in &view.entries {
        if let ViewEntry::Event(e) = entry {
            println!("  {:<13} {:?}", e.kind, String::from_utf8_lossy(&e.data));
        }
    }
    println!("conflicts: {} (a single replica never conflicts with itself)", view.conflicts.len());

    let result = manager.sync().await?;
    println!("\nsync(): pushed {}, pulled {} (local only, nothing to do)", result.pushed, result.pulled);

    if page.events.len() != 4 || view.entries.len() != 2 || refused.is_ok() || result != SyncResult::default() {
        return Err("the local log does not hold what was appended".into());
    }
    manager.store().close().await?;
    Ok(())
}
