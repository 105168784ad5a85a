//! # Example 04: conflict resolution
//!
//! Three clients edit the same document while offline, then sync through one
//! HTTP server. Each field is its own event kind with its own resolver,
//! chosen per kind with [`ByKind`]:
//!
//! - `title.set`: the last write wins ([`LastWriteWins`]);
//! - `owner.set`: the first write wins ([`FirstWriteWins`]);
//! - `tag.added`: every tag stays ([`AdditiveMerge`]);
//! - `estimate.set`: the highest number wins (a custom [`resolver_fn`]);
//! - `fields.set`: JSON objects are merged key by key (a custom resolver
//!   answering [`Resolution::Merged`]).
//!
//! It prints what each sync found, how each conflict was decided, how the
//! four single resolvers would decide the same conflict, and checks that all
//! three replicas show the same resolved view. Resolution writes nothing: the
//! view is a pure function of the events, so replicas with the same events agree.
//!
//! Run it with `cargo run -p example-04-conflict-resolution`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sync_core::{
    AdditiveMerge, ByKind, Conflict, ConflictResolver, Cursor, Event, EventStore, FirstWriteWins, LastWriteWins,
    NewEvent, Resolution, ResolvedConflict, ViewEntry, resolved_view, resolver_fn,
};
use sync_manager::SyncManager;
use sync_server::SyncService;
use sync_store_sqlite::{SqliteConfig, SqliteStore};
use sync_transport_http::{HttpServer, HttpTransport};

const DOC: &str = "doc-1";

/// The highest estimate wins; on a tie, the later event (conflicts arrive sorted).
fn highest_estimate() -> impl ConflictResolver + 'static {
    resolver_fn(|c: &Conflict| {
        let best = c.events.iter().max_by_key(|e| e.data_json::<u64>().unwrap_or(0));
        best.map_or(Resolution::KeepAll, |e| Resolution::Winner(e.id))
    })
}

/// Merges JSON objects key by key; a later writer wins a key both set.
fn merge_fields() -> impl ConflictResolver + 'static {
    resolver_fn(|c: &Conflict| {
        let mut merged = serde_json::Map::new();
        for e in &c.events {
            if let Ok(Value::Object(fields)) = e.data_json::<Value>() {
                merged.extend(fields);
            }
        }
        Resolution::Merged(Value::Object(merged).to_string().into_bytes().into())
    })
}

fn resolver() -> ByKind {
    ByKind::new(LastWriteWins)
        .kind("owner.set", FirstWriteWins)
        .kind("tag.added", AdditiveMerge)
        .kind("estimate.set", highest_estimate())
        .kind("fields.set", merge_fields())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let server_store = SqliteStore::open(SqliteConfig::new(dir.path().join("server.db"))).await?;
    let server = HttpServer::new(Arc::new(SyncService::new(server_store))).bind("127.0.0.1:0").await?;
    let mut clients = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let store = SqliteStore::open(SqliteConfig::new(dir.path().join(format!("{name}.db")))).await?;
        let transport = HttpTransport::new(server.base_url())?;
        clients.push((name, SyncManager::builder(store).transport(transport).resolver(resolver()).build()?));
    }

    println!("-- offline: everyone edits {DOC} --");
    let edits = [
        (json!("Quarterly plan"), "urgent", 5, json!({"color": "red", "size": "L"})),
        (json!("Q3 plan"), "backend", 8, json!({"color": "blue"})),
        (json!("Plan for Q3"), "finance", 3, json!({"font": "serif"})),
    ];
    for ((name, client), (title, tag, estimate, fields)) in clients.iter().zip(edits) {
        let edit =
            |kind: &str, value: &Value| NewEvent::json(kind, DOC, value).map(|e| e.with_metadata("author", *name));
        let events = vec![
            edit("title.set", &title)?,
            edit("owner.set", &json!(name))?,
            edit("tag.added", &json!(tag))?,
            edit("estimate.set", &json!(estimate))?,
            edit("fields.set", &fields)?,
        ];
        client.append(events).await?;
        println!("{name:<6} title {title}, owner {name:?}, tag {tag:?}, estimate {estimate}, fields {fields}");
        // Distinct wall-clock times make "first" and "last" easy to follow.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    println!("\n-- back online: two sync rounds --");
    for round in 1..=2 {
        for (name, client) in &clients {
            let r = client.sync().await?;
            println!(
                "round {round}  {name:<6} pushed {}, pulled {:>2}, new conflicts {}",
                r.pushed, r.pulled, r.conflicts_resolved
            );
        }
    }

    let mut views = Vec::new();
    for (_, client) in &clients {
        views.push(client.view(DOC).await?);
    }
    println!("\n-- how the conflicts were resolved --");
    for rc in &views[0].conflicts {
        println!("{}", describe(rc));
    }

    println!("\n-- the estimate conflict under each single resolver --");
    let mut estimates = clients[0].1.store().load_aggregate(DOC, &Cursor::START).await?;
    estimates.retain(|e| e.kind == "estimate.set");
    let single: [(&str, Box<dyn ConflictResolver>); 4] = [
        ("last write wins", Box::new(LastWriteWins)),
        ("first write wins", Box::new(FirstWriteWins)),
        ("additive merge", Box::new(AdditiveMerge)),
        ("highest estimate", Box::new(highest_estimate())),
    ];
    for (label, r) in &single {
        let shown: Vec<_> = resolved_view(&estimates, r.as_ref()).entries.iter().map(show).collect();
        println!("{label:<17} -> {}", shown.join(", "));
    }

    println!("\n-- the resolved view of {DOC} --");
    for entry in &views[0].entries {
        println!("  {}", show(entry));
    }
    if views.iter().any(|v| v != &views[0]) {
        return Err("the replicas do not show the same view".into());
    }
    println!("converged: alice, bob and carol show the same {} entries", views[0].entries.len());
    server.shutdown().await;
    Ok(())
}

fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

fn author(e: &Event) -> &str {
    e.metadata.get("author").map_or("?", String::as_str)
}

fn describe(rc: &ResolvedConflict) -> String {
    let events = &rc.conflict.events;
    let values: Vec<_> = events.iter().map(|e| format!("{} {}", author(e), text(&e.data))).collect();
    let outcome = match &rc.resolution {
        Resolution::Winner(id) => {
            events.iter().find(|e| e.id == *id).map_or("?".into(), |e| format!("{} wins", author(e)))
        }
        Resolution::KeepAll => "all kept".into(),
        Resolution::Merged(data) => format!("merged into {}", text(data)),
    };
    format!("{:<13} {} -> {outcome}", rc.conflict.kind, values.join(" | "))
}

fn show(entry: &ViewEntry) -> String {
    match entry {
        ViewEntry::Event(e) => format!("{} = {} ({})", e.kind, text(&e.data), author(e)),
        ViewEntry::Merged { kind, data, replaces, .. } => {
            format!("{kind} = {} (merged from {})", text(data), replaces.len())
        }
    }
}
