//! The aggregate index and aggregate clocks are written in bulk ("folded")
//! every 32,768 events, and the in-memory mirror of the bookkeeping is
//! rebuilt whenever another writer got in first. These tests cross several
//! folds, reopen in between and write through two stores on one file, then
//! check every aggregate answer against a plain scan of the log.

use std::collections::HashMap;

use sync_core::raw::Replica;
use sync_core::{Cursor, Event, EventStore, Filter, Hlc, NewEvent, NodeId, VectorClock};
use sync_store_sqlite::{SqliteConfig, SqliteStore};

const AGGREGATES: usize = 300;

async fn open(path: &std::path::Path) -> SqliteStore {
    SqliteStore::open(SqliteConfig::new(path)).await.expect("open")
}

async fn all_events(store: &SqliteStore) -> Vec<Event> {
    store.load(&Cursor::START, usize::MAX / 32, &Filter::default(), None).await.expect("load").events
}

fn local_batch(batch: usize, size: usize) -> Vec<NewEvent> {
    (0..size)
        .map(|i| {
            let n = batch * size + i;
            // A skewed pattern: a few hot aggregates and a long tail.
            let agg = if n.is_multiple_of(3) { n % 7 } else { (n * 31) % AGGREGATES };
            NewEvent::new("test.k", format!("agg-{agg:03}"), format!("{n}"))
        })
        .collect()
}

/// Every aggregate read agrees with a scan of the whole log, from the start
/// and from cursors all along it (before, across and after folds).
async fn check_aggregates(store: &SqliteStore) {
    let events = all_events(store).await;
    let node = store.node_id();
    let mut by_aggregate: HashMap<&str, Vec<(u64, &Event)>> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        by_aggregate.entry(e.aggregate_id.as_str()).or_default().push((i as u64 + 1, e));
    }
    let head = events.len() as u64;
    let mut checked = 0;
    for (agg, list) in by_aggregate.iter().step_by(17) {
        let mut clock = VectorClock::new();
        for (_, e) in list {
            clock.merge(&e.clock);
        }
        assert_eq!(store.aggregate_clock(agg).await.unwrap(), clock, "clock of {agg}");
        for after in (0..=head).step_by(9_001).chain([head]) {
            let got: Vec<_> = store
                .load_aggregate(agg, &Cursor::new(node, after.into()))
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect();
            let want: Vec<_> = list.iter().filter(|(seq, _)| *seq > after).map(|(_, e)| e.id).collect();
            assert_eq!(got, want, "{agg} after {after}");
        }
        checked += 1;
    }
    assert!(checked > 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_agree_with_the_log_across_folds_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.db");
    let mut store = open(&path).await;
    let remote = NodeId::random();
    let mut remote_book = Replica::new(remote);
    for batch in 0..72 {
        store.append(local_batch(batch, 1_000)).await.unwrap();
        if batch % 8 == 3 {
            // A peer that saw everything of a few aggregates, then wrote.
            for agg in ["agg-000", "agg-001", "agg-150"] {
                for e in store.load_aggregate(agg, &Cursor::START).await.unwrap() {
                    remote_book.observe(&e).unwrap();
                }
            }
            let remote_events: Vec<Event> = (0..50)
                .map(|i| {
                    remote_book
                        .stamp(NewEvent::new("remote.k", format!("agg-{:03}", i % 3 * 75), "r"), Hlc::now_ms())
                        .unwrap()
                })
                .collect();
            let out = store.apply(remote_events, "peer").await.unwrap();
            assert_eq!(out.inserted.len(), 50);
        }
        if batch == 30 || batch == 50 {
            check_aggregates(&store).await;
            let path = store.path().to_owned();
            store.close().await.unwrap();
            store = open(&path).await;
        }
    }
    check_aggregates(&store).await;

    // Local counters stayed dense through folds and reopens, and every local
    // event follows all earlier events of its aggregate.
    let events = all_events(&store).await;
    assert!(events.len() > 2 * 32_768 + 1_000, "several folds happened");
    let me = store.node_id();
    let counters: Vec<u64> = events.iter().filter(|e| e.origin.node == me).map(|e| e.origin.counter).collect();
    assert_eq!(counters, (1..=72_000).collect::<Vec<u64>>());
    let mut seen: HashMap<&str, VectorClock> = HashMap::new();
    for e in &events {
        let before = seen.entry(e.aggregate_id.as_str()).or_default();
        if e.origin.node == me {
            assert!(before.happened_before(&e.clock), "{}", e.aggregate_id);
        }
        before.merge(&e.clock);
    }
    let vv = store.version_vector().await.unwrap();
    assert_eq!((vv.get(me), vv.get(remote)), (72_000, 9 * 50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_take_turns_without_losing_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = open(&path).await;
    let b = open(&path).await;
    assert_eq!(a.node_id(), b.node_id(), "one file, one replica");
    // Each store's cache goes stale every time the other one writes.
    for round in 0..40 {
        let (first, second) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        first.append(local_batch(round, 97)).await.unwrap();
        second.append(local_batch(round + 1_000, 89)).await.unwrap();
    }
    // A burst from one side crosses a fold; the other side then continues.
    for round in 0..340 {
        a.append(local_batch(round + 2_000, 100)).await.unwrap();
    }
    b.append(local_batch(9_999, 10)).await.unwrap();

    let events = all_events(&a).await;
    assert_eq!(events, all_events(&b).await);
    let counters: Vec<u64> = events.iter().map(|e| e.origin.counter).collect();
    assert_eq!(counters, (1..=events.len() as u64).collect::<Vec<u64>>());
    assert!(events.windows(2).all(|w| w[0].hlc < w[1].hlc));
    let mut seen: HashMap<&str, VectorClock> = HashMap::new();
    for e in &events {
        let before = seen.entry(e.aggregate_id.as_str()).or_default();
        assert!(before.happened_before(&e.clock), "{}", e.aggregate_id);
        before.merge(&e.clock);
    }
    for (agg, clock) in &seen {
        assert_eq!(&a.aggregate_clock(agg).await.unwrap(), clock);
        assert_eq!(&b.aggregate_clock(agg).await.unwrap(), clock);
    }
    check_aggregates(&b).await;
}
