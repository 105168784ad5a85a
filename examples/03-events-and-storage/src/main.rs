//! # Example 03: typed events and the two embedded stores
//!
//! Application events are plain serde types, stored as JSON with
//! [`NewEvent::json`] and read back with
//! [`Event::data_json`](sync_core::Event::data_json). The same
//! code runs against a SQLite store and a redb store side by side: it pages
//! through the log with cursors, loads one aggregate and folds it into a
//! balance, prints the version vector and head, reopens both files to show
//! that the node id and the events persisted, and shows the typed errors
//! (an empty aggregate id is `ErrorCode::InvalidInput`, and rejects its
//! whole batch).
//!
//! Run it with `cargo run -p example-03-events-and-storage`.

use serde::{Deserialize, Serialize};
use sync_core::{Cursor, ErrorCode, EventStore, Filter, NewEvent};
use sync_store_redb::{RedbConfig, RedbStore};
use sync_store_sqlite::{SqliteConfig, SqliteStore};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The events of a bank account, as the application sees them.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Account {
    Opened { owner: String },
    Deposited { cents: i64 },
    Withdrawn { cents: i64 },
}

impl Account {
    fn event(&self, account: &str) -> sync_core::Result<NewEvent> {
        let kind = match self {
            Account::Opened { .. } => "account.opened",
            Account::Deposited { .. } => "account.deposited",
            Account::Withdrawn { .. } => "account.withdrawn",
        };
        NewEvent::json(kind, account, self)
    }
}

#[tokio::main]
async fn main() -> BoxResult<()> {
    let dir = tempfile::tempdir()?;
    let (sqlite_path, redb_path) = (dir.path().join("bank.db"), dir.path().join("bank.redb"));

    let sqlite = SqliteStore::open(SqliteConfig::new(&sqlite_path)).await?;
    let redb = RedbStore::open(RedbConfig::new(&redb_path)).await?;
    let sqlite_before = tour("sqlite", &sqlite).await?;
    let redb_before = tour("redb", &redb).await?;

    // Close, drop (redb locks its file while open) and reopen both.
    sqlite.close().await?;
    redb.close().await?;
    drop((sqlite, redb));
    let sqlite = SqliteStore::open(SqliteConfig::new(&sqlite_path)).await?;
    let redb = RedbStore::open(RedbConfig::new(&redb_path)).await?;
    println!("\n== reopened ==");
    let sqlite_after = summary("sqlite", &sqlite).await?;
    let redb_after = summary("redb", &redb).await?;
    if sqlite_before != sqlite_after || redb_before != redb_after {
        return Err("a store lost its node id or its events across a reopen".into());
    }
    sqlite.close().await?;
    redb.close().await?;
    Ok(())
}

/// Appends the same history to `store` and reads it back every way.
async fn tour<S: EventStore>(name: &str, store: &S) -> BoxResult<String> {
    println!("\n== {name}: node {} ==", store.node_id());
    let history = [
        ("acct-1", Account::Opened { owner: "alice".into() }),
        ("acct-2", Account::Opened { owner: "bob".into() }),
        ("acct-1", Account::Deposited { cents: 50_00 }),
        ("acct-2", Account::Deposited { cents: 3_00 }),
        ("acct-1", Account::Withdrawn { cents: 12_50 }),
    ];
    let events = history.iter().map(|(id, e)| e.event(id)).collect::<Result<Vec<_>, _>>()?;
    store.append(events).await?;

    // Page through the change feed, two events at a time.
    let mut cursor = Cursor::START;
    loop {
        let page = store.load(&cursor, 2, &Filter::default(), None).await?;
        let kinds: Vec<_> = page.events.iter().map(|e| format!("{}:{}", e.aggregate_id, e.kind)).collect();
        println!("page after {cursor} -> [{}]", kinds.join(", "));
        cursor = page.next;
        if !page.has_more {
            break;
        }
    }

    // One aggregate, decoded into typed events and folded into a balance.
    let mut balance = 0;
    for event in store.load_aggregate("acct-1", &Cursor::START).await? {
        let typed: Account = event.data_json()?;
        balance += match &typed {
            Account::Opened { .. } => 0,
            Account::Deposited { cents } => *cents,
            Account::Withdrawn { cents } => -cents,
        };
        println!("acct-1 event #{} of this node: {typed:?}", event.origin.counter);
    }
    // The aggregate's version: the merge of its events' vector clocks.
    let version = store.aggregate_clock("acct-1").await?.get(store.node_id());
    println!("acct-1 balance {}.{:02} at version {version}", balance / 100, balance % 100);

    // Typed errors: match on the stable code, not on the message.
    let bad = vec![Account::Deposited { cents: 1 }.event("acct-2")?, Account::Deposited { cents: 1 }.event("")?];
    match store.append(bad).await {
        Err(e) if e.code() == ErrorCode::InvalidInput => println!("empty aggregate id refused: [{}] {e}", e.code()),
        other => return Err(format!("expected invalid_input, got {other:?}").into()),
    }
    let acct2 = store.load_aggregate("acct-2", &Cursor::START).await?.len();
    println!("the batch was atomic: acct-2 still has {acct2} events");
    store.append(vec![NewEvent::new("note.added", "note-1", "not json")]).await?;
    let note = store.load_aggregate("note-1", &Cursor::START).await?.remove(0);
    match note.data_json::<Account>() {
        Err(e) if e.code() == ErrorCode::Malformed => {
            println!("a non-JSON payload does not decode: [{}] {e}", e.code())
        }
        other => return Err(format!("expected malformed, got {other:?}").into()),
    }
    summary(name, store).await
}

/// The node id, version vector and head: what must survive a reopen.
async fn summary<S: EventStore>(name: &str, store: &S) -> BoxResult<String> {
    let versions: Vec<_> = store.version_vector().await?.iter().map(|(n, c)| format!("{n}: {c}")).collect();
    let line =
        format!("node {}, version vector {{{}}}, head {}", store.node_id(), versions.join(", "), store.head().await?);
    println!("{name}: {line}");
    Ok(line)
}
