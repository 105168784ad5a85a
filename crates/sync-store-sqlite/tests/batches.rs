//! Batches larger than one statement: the insert chunks (and the rows read
//! back when a statement skipped some) must behave exactly like one big batch.

use std::collections::HashMap;

use sync_core::raw::Replica;
use sync_core::{Cursor, EventStore, Filter, Hlc, NewEvent, NodeId, VectorClock};
use sync_store_sqlite::{SqliteConfig, SqliteStore};

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(SqliteConfig::new(dir.path().join("s.db"))).await.expect("open");
    (dir, store)
}

#[tokio::test]
async fn big_batches_span_statements_and_keep_every_rule() {
    let (_dir, store) = store().await;
    // 2,500 events over 700 aggregates: insert statements of several sizes.
    let first: Vec<NewEvent> =
        (0..2_500).map(|i| NewEvent::new("k", format!("agg-{}", i % 700), format!("{i}"))).collect();
    let out = store.append(first.clone()).await.unwrap();
    assert_eq!(out.inserted.len(), 2_500);

    // The same events again, interleaved with new ones and an in-batch repeat.
    let mut again = first.clone();
    let fresh: Vec<NewEvent> = (0..13).map(|i| NewEvent::new("k", format!("new-{i}"), "n")).collect();
    again.splice(1_000..1_000, fresh.iter().cloned());
    again.push(fresh[0].clone());
    let out = store.append(again).await.unwrap();
    assert_eq!(out.inserted, fresh.iter().map(|e| e.id).collect::<Vec<_>>());
    assert_eq!(out.duplicates.len(), 2_501);

    let events = store.load(&Cursor::START, 10_000, &Filter::default(), None).await.unwrap().events;
    assert_eq!(events.len(), 2_513);
    let counters: Vec<u64> = events.iter().map(|e| e.origin.counter).collect();
    assert_eq!(counters, (1..=2_513).collect::<Vec<u64>>());
    assert!(events.windows(2).all(|w| w[0].hlc < w[1].hlc));

    // Each aggregate's stored clock is the merge of its events' clocks, and
    // each event's clock covers the earlier events of its aggregate.
    let mut merged: HashMap<&str, VectorClock> = HashMap::new();
    for e in &events {
        let seen = merged.entry(e.aggregate_id.as_str()).or_default();
        assert!(seen.happened_before(&e.clock), "{}", e.aggregate_id);
        seen.merge(&e.clock);
    }
    for (agg, clock) in &merged {
        assert_eq!(&store.aggregate_clock(agg).await.unwrap(), clock);
    }
    assert!(store.aggregate_clock("nothing").await.unwrap().is_empty());
    assert_eq!(store.version_vector().await.unwrap().get(store.node_id()), 2_513);
}

#[tokio::test]
async fn apply_of_many_origins_keeps_every_counter() {
    let (_dir, store) = store().await;
    // 600 origins (more than one look-up chunk), 3 events each.
    let mut batch = Vec::new();
    let mut expected = VectorClock::new();
    for o in 0..600 {
        let node = NodeId::random();
        let mut book = Replica::new(node);
        for i in 0..3 {
            batch.push(book.stamp(NewEvent::new("k", format!("doc-{}", (o + i) % 50), "r"), Hlc::now_ms()).unwrap());
        }
        expected.set(node, 3);
    }
    let out = store.apply(batch.clone(), "peer").await.unwrap();
    assert_eq!(out.inserted.len(), 1_800);
    assert_eq!(store.version_vector().await.unwrap(), expected);
    let out = store.apply(batch, "peer").await.unwrap();
    assert_eq!(out.duplicates.len(), 1_800);
    let page = store.load(&Cursor::START, 5_000, &Filter::default(), Some("peer")).await.unwrap();
    assert!(page.events.is_empty() && !page.has_more);
    assert_eq!(page.next, store.head().await.unwrap());
}

/// A "duplicate" whose header differs from the stored copy teaches nothing,
/// as in the reference store, before and after reopen: bookkeeping only ever
/// reflects stored events.
#[tokio::test]
async fn a_differing_duplicate_teaches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    let other = NodeId::random();
    let mut book = Replica::new(other);
    let first = book.stamp(NewEvent::new("k", "doc", "v1"), Hlc::now_ms()).unwrap();
    store.apply(vec![first.clone()], "peer").await.unwrap();
    // Same id, but a header from further along the peer's history.
    let mut twin = book.stamp(NewEvent::new("k", "doc", "v2"), Hlc::now_ms()).unwrap();
    for _ in 0..5 {
        twin = book.stamp(NewEvent::new("k", "doc", "v2"), Hlc::now_ms()).unwrap();
    }
    twin.id = first.id;
    let out = store.apply(vec![twin.clone()], "peer").await.unwrap();
    assert_eq!(out.duplicates, [first.id]);
    let check = async |store: &SqliteStore| {
        assert_eq!(store.version_vector().await.unwrap().get(other), first.origin.counter);
        assert_eq!(store.aggregate_clock("doc").await.unwrap(), first.clock);
        let events = store.load(&Cursor::START, 10, &Filter::default(), None).await.unwrap().events;
        assert_eq!(events, std::slice::from_ref(&first));
    };
    check(&store).await;
    store.close().await.unwrap();
    check(&SqliteStore::open(SqliteConfig::new(&path)).await.unwrap()).await;
}

/// Remote batches where part of every insert statement is stored already
/// (or repeated in the batch) take their seqs from the rows read back; a
/// wrong seq would show in the aggregate index written at the fold.
#[tokio::test]
async fn remote_batches_with_known_ids_keep_seqs_right_across_a_fold() {
    let (_dir, store) = store().await;
    let mut book = Replica::new(NodeId::random());
    let all: Vec<sync_core::Event> = (0..36_000)
        .map(|i| book.stamp(NewEvent::new("k", format!("doc-{}", i % 97), format!("{i}")), Hlc::now_ms()).unwrap())
        .collect();
    // Every third event arrives early; then every batch of 1,000 brings it
    // again, and repeats its own first event at the end.
    let early: Vec<_> = all.iter().step_by(3).cloned().collect();
    assert_eq!(store.apply(early.clone(), "peer").await.unwrap().inserted.len(), early.len());
    for (k, chunk) in all.chunks(1_000).enumerate() {
        let mut batch = chunk.to_vec();
        batch.push(chunk[0].clone());
        let out = store.apply(batch, "peer").await.unwrap();
        let early = |i: usize| (1_000 * k + i).is_multiple_of(3);
        let new: Vec<_> = chunk.iter().enumerate().filter(|(i, _)| !early(*i)).map(|(_, e)| e.id).collect();
        assert_eq!(out.inserted, new);
        assert_eq!(out.duplicates.len(), chunk.len() + 1 - new.len());
    }

    let feed = store.load(&Cursor::START, 100_000, &Filter::default(), None).await.unwrap().events;
    assert_eq!(feed.len(), all.len());
    let mut ids: Vec<_> = feed.iter().map(|e| e.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "each event once");
    for a in 0..97 {
        let aggregate = format!("doc-{a}");
        let expected: Vec<_> = feed.iter().filter(|e| e.aggregate_id == aggregate).cloned().collect();
        assert_eq!(store.load_aggregate(&aggregate, &Cursor::START).await.unwrap(), expected, "{aggregate}");
    }
}
