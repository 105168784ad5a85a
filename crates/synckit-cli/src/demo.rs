//! `synckit demo`: two offline replicas edit one shopping list, sync through
//! an embedded server on a free port, and converge.

use std::sync::Arc;

use snafu::{ResultExt, Whatever, whatever};
use sync_core::{
    AdditiveMerge, ByKind, Cursor, EventStore, Filter, LastWriteWins, NewEvent, Resolution, View, ViewEntry,
};
use sync_manager::{SyncManager, SyncResult};
use sync_server::SyncService;
use sync_store_redb::{RedbConfig, RedbStore};
use sync_store_sqlite::{SqliteConfig, SqliteStore};
use sync_transport_http::{HttpServer, HttpTransport};

use crate::describe;

const LIST: &str = "list-1";

fn resolver() -> ByKind {
    // The title is a register: the last writer wins. Items accumulate.
    ByKind::new(LastWriteWins).kind("item.added", AdditiveMerge)
}

pub(crate) async fn run() -> Result<(), Whatever> {
    let dir = tempfile::tempdir().whatever_context("cannot create a temporary directory")?;
    println!("synckit demo: two offline clients, one server (files in {})\n", dir.path().display());

    let server_store = SqliteStore::open(SqliteConfig::new(dir.path().join("server.db")))
        .await
        .whatever_context("cannot open the server store")?;
    let server = HttpServer::new(Arc::new(SyncService::new(server_store)))
        .bind("127.0.0.1:0")
        .await
        .whatever_context("cannot start the embedded server")?;
    println!("server  listening on {} (SQLite store)", server.base_url());

    let alice_store = SqliteStore::open(SqliteConfig::new(dir.path().join("alice.db")))
        .await
        .whatever_context("cannot open alice's store")?;
    let bob_store = RedbStore::open(RedbConfig::new(dir.path().join("bob.redb")))
        .await
        .whatever_context("cannot open bob's store")?;
    let connect = || HttpTransport::new(server.base_url()).whatever_context("bad server URL");
    let alice = SyncManager::builder(alice_store)
        .transport(connect()?)
        .resolver(resolver())
        .build()
        .whatever_context("alice")?;
    let bob =
        SyncManager::builder(bob_store).transport(connect()?).resolver(resolver()).build().whatever_context("bob")?;
    println!("alice   node {} (SQLite store)", alice.store().node_id());
    println!("bob     node {} (redb store)\n", bob.store().node_id());

    println!("-- both offline, editing {LIST} --");
    let edit = |kind: &str, data: &str| NewEvent::new(kind, LIST, data.to_owned());
    alice.append(vec![edit("title.set", "Groceries"), edit("item.added", "milk")]).await.whatever_context("append")?;
    println!("alice   title.set \"Groceries\", item.added \"milk\"");
    bob.append(vec![edit("title.set", "Weekend shopping"), edit("item.added", "bread")])
        .await
        .whatever_context("append")?;
    println!("bob     title.set \"Weekend shopping\", item.added \"bread\"\n");

    println!("-- back online --");
    report("alice", &alice.sync().await.whatever_context("alice's sync failed")?);
    report("bob", &bob.sync().await.whatever_context("bob's sync failed")?);
    report("alice", &alice.sync().await.whatever_context("alice's sync failed")?);

    println!("\n-- what each now sees --");
    let alice_view = alice.view(LIST).await.whatever_context("alice's view")?;
    let bob_view = bob.view(LIST).await.whatever_context("bob's view")?;
    show("alice", &alice_view);
    show("bob", &bob_view);

    let ids = |store: Vec<sync_core::Event>| {
        let mut ids: Vec<_> = store.into_iter().map(|e| e.id).collect();
        ids.sort();
        ids
    };
    let all = Filter::default();
    let alice_events = ids(alice.store().load(&Cursor::START, 1000, &all, None).await.whatever_context("read")?.events);
    let bob_events = ids(bob.store().load(&Cursor::START, 1000, &all, None).await.whatever_context("read")?.events);
    if alice_events != bob_events || alice_view != bob_view {
        whatever!("the replicas did not converge: this is a bug, please report it");
    }
    println!("\nconverged: both hold the same {} events and show the same resolved list", alice_events.len());
    server.shutdown().await;
    Ok(())
}

fn report(who: &str, r: &SyncResult) {
    println!("{who:<7} sync: pushed {}, pulled {}, new conflicts {}", r.pushed, r.pulled, r.conflicts_resolved);
    for c in &r.conflicts {
        let how = match &c.resolution {
            Resolution::Winner(id) => {
                let winner = c.conflict.events.iter().find(|e| e.id == *id).expect("winner is in the set");
                format!("last write wins: {:?}", String::from_utf8_lossy(&winner.data))
            }
            Resolution::KeepAll => "additive: keep all".to_owned(),
            Resolution::Merged(data) => format!("merged into {:?}", String::from_utf8_lossy(data)),
        };
        let values: Vec<_> =
            c.conflict.events.iter().map(|e| format!("{:?}", String::from_utf8_lossy(&e.data))).collect();
        println!("          conflict on {}: {} -> {how}", c.conflict.kind, values.join(" vs "));
    }
}

fn show(who: &str, view: &View) {
    println!("{who}:");
    for entry in &view.entries {
        match entry {
            ViewEntry::Event(e) => println!("  {}", describe(e)),
            ViewEntry::Merged { kind, data, .. } => println!("  (merged {kind}) {}", String::from_utf8_lossy(data)),
        }
    }
}
