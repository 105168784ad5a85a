//! Convergence on real parts: N clients, each on its own SQLite or redb
//! file, one HTTP server on 127.0.0.1; random offline periods, concurrent
//! edits to shared aggregates and random sync order. All end with the same
//! event set and the same resolved value per aggregate.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use sync_core::{
    AdditiveMerge, ByKind, Codec, Cursor, Event, EventStore, Filter, LastWriteWins, NewEvent, Resolution, resolver_fn,
};
use sync_manager::SyncManager;
use sync_server::SyncService;
use sync_store_redb::{RedbConfig, RedbStore};
use sync_store_sqlite::{SqliteConfig, SqliteStore};
use sync_transport_http::{HttpServer, HttpTransport, ServerHandle};

/// A client store: even clients on SQLite, odd ones on redb.
enum Replica {
    Sqlite(SyncManager<SqliteStore, HttpTransport>),
    Redb(SyncManager<RedbStore, HttpTransport>),
}

macro_rules! on {
    ($r:expr, $m:ident => $e:expr) => {
        match $r {
            Replica::Sqlite($m) => $e,
            Replica::Redb($m) => $e,
        }
    };
}

fn resolver() -> ByKind {
    ByKind::new(LastWriteWins).kind("tag.added", AdditiveMerge).kind(
        "counter.set",
        resolver_fn(|c| {
            // a merged value computed from the whole set: the longest payload
            let max = c.events.iter().map(|e| String::from_utf8_lossy(&e.data).len()).max().unwrap_or(0);
            Resolution::Merged(format!("max:{max}").into_bytes().into())
        }),
    )
}

async fn replica(i: usize, dir: &Path, url: &str) -> Replica {
    let codec = if i.is_multiple_of(2) { Codec::Postcard } else { Codec::Json };
    let transport = HttpTransport::new(url).unwrap().codec(codec);
    if i.is_multiple_of(2) {
        let store = SqliteStore::open(SqliteConfig::new(dir.join(format!("client-{i}.db")))).await.unwrap();
        Replica::Sqlite(
            SyncManager::builder(store).transport(transport).resolver(resolver()).batch_size(3).build().unwrap(),
        )
    } else {
        let store = RedbStore::open(RedbConfig::new(dir.join(format!("client-{i}.redb")))).await.unwrap();
        Replica::Redb(
            SyncManager::builder(store).transport(transport).resolver(resolver()).batch_size(3).build().unwrap(),
        )
    }
}

async fn all_events<S: EventStore>(store: &S) -> Vec<Event> {
    let mut events = store.load(&Cursor::START, 1 << 20, &Filter::default(), None).await.unwrap().events;
    events.sort_by_key(|e| e.id);
    events
}

#[derive(Debug, Clone)]
enum Step {
    Edit { client: usize, aggregate: usize, kind: usize },
    Sync { client: usize },
}

const KINDS: [&str; 3] = ["title.set", "tag.added", "counter.set"];

async fn run(clients: usize, steps: &[Step]) {
    let dir = tempfile::tempdir().unwrap();
    let server_store = SqliteStore::open(SqliteConfig::new(dir.path().join("server.db"))).await.unwrap();
    let service = Arc::new(SyncService::new(server_store));
    let server: ServerHandle = HttpServer::new(service.clone()).bind("127.0.0.1:0").await.unwrap();
    let mut replicas = Vec::new();
    for i in 0..clients {
        replicas.push(replica(i, dir.path(), &server.base_url()).await);
    }
    for (n, step) in steps.iter().enumerate() {
        match *step {
            Step::Edit { client, aggregate, kind } => {
                let e = NewEvent::new(KINDS[kind], format!("doc-{aggregate}"), "x".repeat(n % 7 + 1));
                on!(&replicas[client], m => m.append(vec![e]).await.unwrap());
            }
            Step::Sync { client } => {
                on!(&replicas[client], m => m.sync().await.unwrap());
            }
        }
    }
    for _ in 0..2 {
        for r in &replicas {
            on!(r, m => m.sync().await.unwrap());
        }
    }
    let expected = all_events(service.store()).await;
    for r in &replicas {
        assert_eq!(on!(r, m => all_events(m.store()).await), expected, "every replica holds the server's events");
    }
    for aggregate in 0..3 {
        let id = format!("doc-{aggregate}");
        let first = on!(&replicas[0], m => m.view(&id).await.unwrap());
        for r in &replicas[1..] {
            assert_eq!(on!(r, m => m.view(&id).await.unwrap()), first, "same resolved view of {id}");
        }
    }
    server.shutdown().await;
}

fn steps(clients: usize) -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        prop_oneof![
            3 => (0..clients, 0..3usize, 0..3usize).prop_map(|(client, aggregate, kind)| Step::Edit { client, aggregate, kind }),
            1 => (0..clients).prop_map(|client| Step::Sync { client }),
        ],
        1..30,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn replicas_on_files_converge_over_http(steps in steps(3)) {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(run(3, &steps));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_converge_in_a_fixed_larger_scenario() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n) as usize
    };
    let steps: Vec<Step> = (0..400)
        .map(|_| {
            if next(5) == 0 {
                Step::Sync { client: next(4) }
            } else {
                Step::Edit { client: next(4), aggregate: next(3), kind: next(3) }
            }
        })
        .collect();
    run(4, &steps).await;
}
