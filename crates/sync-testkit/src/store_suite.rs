//! The store conformance suite: one async function per rule of the
//! [`EventStore`] contract. Run them all with [`crate::store_suite!`].

use std::collections::HashSet;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use sync_core::raw::Replica;
use sync_core::{Cursor, ErrorCode, Event, EventId, EventStore, Filter, Hlc, Limits, NewEvent, NodeId, VectorClock};

/// Makes stores for the suite. Stores must use [`Limits::default`].
pub trait StoreFactory: Send + Sync {
    /// The store under test.
    type Store: EventStore;

    /// Opens a new, empty store at a fresh location.
    fn open(&self) -> impl Future<Output = Self::Store> + Send;

    /// Closes `store` and opens the same location again.
    fn reopen(&self, store: Self::Store) -> impl Future<Output = Self::Store> + Send;

    /// Opens the store kept in the directory `dir`, creating it there if
    /// there is none. The crash case opens it in a child process, kills the
    /// child, and opens it again in the test's own process.
    fn open_in(&self, dir: &Path) -> impl Future<Output = Self::Store> + Send;

    /// What the store cannot do: the cases that need it check nothing and
    /// say so on stderr.
    fn lacks(&self) -> &'static [Capability] {
        &[]
    }
}

/// A property some stores lack, declared by [`StoreFactory::lacks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Capability {
    /// Acknowledged events survive the process (a memory store lacks it).
    Durable,
}

/// True when the store lacks `capability`; says so on stderr.
fn lacking<F: StoreFactory>(f: &F, capability: Capability, case: &str) -> bool {
    let lacks = f.lacks().contains(&capability);
    if lacks {
        eprintln!("store_suite: {case} checks nothing: the store lacks {capability:?}");
    }
    lacks
}

fn ev(agg: &str, n: usize) -> NewEvent {
    NewEvent::new("test.changed", agg, format!("{agg}#{n}"))
}

/// Events made by another replica, with a proper header.
fn remote_events(node: NodeId, specs: &[(&str, &str)]) -> Vec<Event> {
    let mut book = Replica::new(node);
    specs
        .iter()
        .map(|(kind, agg)| book.stamp(NewEvent::new(*kind, *agg, "remote"), Hlc::now_ms()).expect("valid"))
        .collect()
}

async fn all_events<S: EventStore>(store: &S) -> Vec<Event> {
    store.load(&Cursor::START, usize::MAX / 32, &Filter::default(), None).await.expect("load").events
}

/// The node id is created once and survives reopen.
pub async fn node_id_is_kept_across_reopen<F: StoreFactory>(f: &F) {
    let store = f.open().await;
    let id = store.node_id();
    assert_ne!(id, f.open().await.node_id(), "two stores must not share a node id");
    let store = f.reopen(store).await;
    assert_eq!(store.node_id(), id);
}

/// Local appends get dense counters, aggregate-scoped clocks and rising HLCs.
pub async fn append_stamps_dots_clocks_and_hlc<F: StoreFactory>(f: &F) {
    let store = f.open().await;
    let me = store.node_id();
    let out = store.append(vec![ev("a", 1), ev("b", 1), ev("a", 2)]).await.unwrap();
    assert_eq!(out.inserted.len(), 3);
    assert!(out.duplicates.is_empty());
    let events = all_events(&store).await;
    let counters: Vec<u64> = events.iter().map(|e| e.origin.counter).collect();
    assert_eq!(counters, [1, 2, 3]);
    assert!(events.iter().all(|e| e.origin.node == me && e.clock.get(me) == e.origin.counter));
    assert!(events.windows(2).all(|w| w[0].hlc < w[1].hlc), "HLC must rise");
    assert_eq!(events[0].clock.compare(&events[2].clock), sync_core::Causality::Before);
    assert_eq!(events[1].clock.len(), 1, "clocks are scoped to their aggregate");
    assert_eq!(out.inserted, events.iter().map(|e| e.id).collect::<Vec<_>>());
    let more = store.append(vec![ev("a", 3)]).await.unwrap();
    let last = store.load_aggregate("a", &Cursor::START).await.unwrap().pop().unwrap();
    assert_eq!((more.inserted[0], last.origin.counter), (last.id, 4));
}

/// The log is a set keyed by id: repeats are duplicates, never copies.
pub async fn duplicates_are_reported_and_not_stored<F: StoreFactory>(f: &F) {
    let store = f.open().await;
    let e = ev("a", 1);
    store.append(vec![e.clone()]).await.unwrap();
    let again = store.append(vec![e.clone(), ev("a", 2)]).await.unwrap();
    assert_eq!(again.duplicates, [e.id]);
    assert_eq!(again.inserted.len(), 1);
    let twin = ev("a", 3);
    let within = store.append(vec![twin.clone(), twin.clone()]).await.unwrap();
    assert_eq!((within.inserted.len(), within.duplicates.as_slice()), (1, [twin.id].as_slice()));

    let remote = remote_events(NodeId::random(), &[("k", "a"), ("k", "b")]);
    let first = store.apply(remote.clone(), "peer").await.unwrap();
    assert_eq!(first.inserted.len(), 2);
    let second = store.apply(remote.clone(), "peer").await.unwrap();
    assert_eq!((second.inserted.len(), second.duplicates.len()), (0, 2));
    // our own stored events coming back from a peer are duplicates too
    let own = all_events(&store).await.into_iter().take(2).collect::<Vec<_>>();
    assert_eq!(store.apply(own, "peer").await.unwrap().duplicates.len(), 2);

    let events = all_events(&store).await;
    assert_eq!(events.len(), 5);
    assert_eq!(events.iter().map(|e| e.id).collect::<HashSet<_>>().len(), 5);
    let page = store.load(&Cursor::START, 100, &Filter::default(), None).await.unwrap();
    assert_eq!(page.next, store.head().await.unwrap(), "duplicates do not move the head");
}

/// An outcome's span covers the batch's events and nothing else, from the
/// head before it to the head after it; a batch that inserts nothing has none.
pub async fn outcomes_say_where_the_batch_landed<F: StoreFactory>(f: &F) {
    let store = f.open().await;
    store.append(vec![ev("a", 0)]).await.unwrap();
    let before = store.head().await.unwrap();
    let batch: Vec<NewEvent> = (1..4).map(|i| ev("a", i)).collect();
    let out = store.append(batch.clone()).await.unwrap();
    let span = out.span.expect("a span for inserted events");
    assert_eq!((span.after, span.head), (before, store.head().await.unwrap()));
    let page = store.load(&span.after, 100, &Filter::default(), None).await.unwrap();
    assert_eq!(page.events.iter().map(|e| e.id).collect::<Vec<_>>(), out.inserted);
    assert_eq!(page.next, span.head);
    assert_eq!(store.append(batch).await.unwrap().span, None, "only duplicates: no span");
    let remote = remote_events(NodeId::random(), &[("k", "a"), ("k", "b")]);
    let before = store.head().await.unwrap();
    let out = store.apply(remote.clone(), "p").await.unwrap();
    let span = out.span.expect("a span for applied events");
    assert_eq!((span.after, span.head), (before, store.head().await.unwrap()));
    assert_eq!(store.apply(remote, "p").await.unwrap().span, None);
}

/// Paging by cursor visits every event once, in feed order (positions need
/// not be dense).
pub async fn cursor_pages_return_every_event_once_in_order<F: StoreFactory>(f: &F) {
    let store = f.open().await;
    assert_eq!(store.head().await.unwrap(), Cursor::START);
    let empty = store.load(&Cursor::START, 10, &Filter::default(), None).await.unwrap();
    assert!(empty.events.is_empty() && !empty.has_more && empty.next == Cursor::START);
    let mut ids = Vec::new();
    for b in 0..5 {
        let batch: Vec<NewEvent> = (0..50).map(|i| ev(&format!("agg-{}", i % 7), b * 50 + i)).collect();
        ids.extend(batch.iter().map(|e| e.id));
        store.append(batch).await.unwrap();
    }
    for limit in [1, 7, 50, 250, 1000] {
        let (mut cursor, mut seen, mut pages) = (Cursor::START, Vec::new(), 0);
        loop {
            let page = store.load(&cursor, limit, &Filter::default(), None).await.unwrap();
            assert!(page.events.len() <= limit);
            seen.extend(page.events.iter().map(|e| e.id));
            cursor = page.next;
            pages += 1;
            if !page.has_more {
                break;
            }
        }
        assert_eq!(seen, ids, "limit {limit}");
        assert_eq!(pages, 250usize.div_ceil(limit), "a page only ends the feed when it is the last");
        assert_eq!(cursor, store.head().await.unwrap());
    }
    // a cursor survives its text form
    let page = store.load(&Cursor::START, 100, &Filter::default(), None).await.unwrap();
    let parsed: Cursor = page.next.to_string().parse().unwrap();
    let rest = store.load(&parsed, 1000, &Filter::default(), None).await.unwrap();
    assert_eq!(rest.events.first().map(|e| e.id), Some(ids[100]));
}

/// Pages of large events stop at `MAX_PAGE_BYTES`, whatever the limit.
pub async fn pages_of_large_events_are_bounded_in_bytes<F: StoreFactory>(f: &F) {
    let store = f.open().await;
    let big = Limits::default().max_data_bytes;
    let count = sync_core::MAX_PAGE_BYTES / big + 4;
    let batch: Vec<NewEvent> = (0..count).map(|i| NewEvent::new("blob", format!("b{i}"), vec![i as u8; big])).collect();
    let ids: Vec<EventId> = batch.iter().map(|e| e.id).collect();
    store.append(batch).await.unwrap();
    let first = store.load(&Cursor::START, 1000, &Filter::default(), None).await.unwrap();
    assert!(first.has_more && first.events.len() < count, "the page stopped early: {}", first.events.len());
    let data: usize = first.events.iter().map(|e| e.data.len()).sum();
    assert!(data <= sync_core::MAX_PAGE_BYTES + big, "{data} bytes in one page");
    let rest = store.load(&first.next, 1000, &Filter::default(), None).await.unwrap();
    assert!(!rest.has_more);
    let seen: Vec<EventId> = first.events.iter().chain(&rest.events).map(|e| e.id).collect();
    assert_eq!(seen, ids);
}

/// Cursors of other stores or past the head, and zero limits, are typed
/// errors.
pub async fn bad_cursors_and_limits_are_rejected<F: StoreFactory>(f: &F) {
    let store = f.open().await;
    store.append(vec![ev("a", 1)]).await.unwrap();
    let foreign = Cursor::new(NodeId::random(), 1);
    let err = store.load(&foreign, 10, &Filter::default(), None).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadCursor);
    let err = store.load_aggregate("a", &foreign).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadCursor);
    let err = store.load(&Cursor::START, 0, &Filter::default(), None).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    // A cursor past the head was not handed out by this store as it is now
    // (restored from an older copy, say): never a silent empty page.
    let head = store.head().await.unwrap();
    let ahead = Cursor::new(store.node_id(), head.position_for(store.node_id()).unwrap() + 1_000);
    let err = store.load(&ahead, 10, &Filter::default(), None).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadCursor, "{err}");
    assert_eq!(store.load(&head, 10, &Filter::default(), None).await.unwrap().events.len(), 0);
    assert_eq!(store.wait_past(&foreign).await.unwrap_err().code(), ErrorCode::BadCursor);
}

/// `wait_past` resolves at once behind the head, and wakes on the next
/// write through another handle (a clone) of the store; a duplicate, which
/// adds nothing, wakes no one.
pub async fn wait_past_wakes_on_writes<F: StoreFactory>(f: &F) {
    let store = Arc::new(f.open().await);
    let timeout = std::time::Duration::from_secs(10);
    store.append(vec![ev("a", 1)]).await.unwrap();
    tokio::time::timeout(timeout, store.wait_past(&Cursor::START)).await.expect("behind the head").unwrap();
    for remote in [false, true] {
        let head = store.head().await.unwrap();
        let mut waiter = tokio::spawn({
            let store = store.clone();
            async move { store.wait_past(&head).await }
        });
        let duplicate = all_events(&*store).await.pop().unwrap();
        store.apply(vec![duplicate], "p").await.unwrap();
        let early = tokio::time::timeout(std::time::Duration::from_millis(50), &mut waiter).await;
        assert!(early.is_err(), "woke with nothing new");
        if remote {
            store.apply(remote_events(NodeId::random(), &[("k", "a")]), "p").await.unwrap();
        } else {
            store.append(vec![ev("a", 2)]).await.unwrap();
        }
        tokio::time::timeout(timeout, waiter).await.expect("woken by the write").unwrap().unwrap();
        assert_eq!(store.load(&head, 10, &Filter::default(), None).await.unwrap().events.len(), 1);
    }
}

/// Prefix, kind and metadata filters; the cursor moves past skipped events.
pub async fn filters_select_events<F: StoreFactory>(f: &F) {
    let store = f.open().await;
    let mut batch = Vec::new();
    for i in 0..60 {
        let kind = if i % 2 == 0 { "order.placed" } else { "order.paid" };
        let tenant = if i % 3 == 0 { "acme" } else { "globex" };
        let agg = if i % 4 == 0 { format!("user-{i}") } else { format!("order-{i}") };
        batch.push(NewEvent::new(kind, agg, vec![i as u8]).with_metadata("tenant", tenant));
    }
    store.append(batch.clone()).await.unwrap();
    let filters = [
        Filter::default().aggregate_prefix("user-"),
        Filter::default().kind("order.paid"),
        Filter::default().metadata("tenant", "acme"),
        Filter::default().kind("order.placed").metadata("tenant", "acme").aggregate_prefix("order-"),
        Filter::default().kind("nothing"),
    ];
    for filter in filters {
        let expected: Vec<EventId> = batch
            .iter()
            .filter(|e| {
                filter.aggregate_prefix.as_deref().is_none_or(|p| e.aggregate_id.starts_with(p))
                    && (filter.kinds.is_empty() || filter.kinds.contains(&e.kind))
                    && filter.metadata.iter().all(|(k, v)| e.metadata.get(k) == Some(v))
            })
            .map(|e| e.id)
            .collect();
        let (mut cursor, mut got) = (Cursor::START, Vec::new());
        loop {
            let page = store.load(&cursor, 4, &filter, None).await.unwrap();
            assert!(page.events.iter().all(|e| filter.matches(e)));
            got.extend(page.events.iter().map(|e| e.id));
            cursor = page.next;
            if !page.has_more {
                break;
            }
        }
        assert_eq!(got, expected, "{filter:?}");
        assert_eq!(cursor, store.head().await.unwrap(), "the cursor passes skipped events");
    }
}

/// `skip_source` leaves out what was applied from that peer, and nothing else.
pub async fn skip_source_leaves_out_events_from_that_peer<F: StoreFactory>(f: &F) {
    let store = f.open().await;
    store.append(vec![ev("a", 1)]).await.unwrap();
    let from_server = remote_events(NodeId::random(), &[("k", "a"), ("k", "b")]);
    let from_other = remote_events(NodeId::random(), &[("k", "c")]);
    store.apply(from_server.clone(), "server").await.unwrap();
    store.apply(from_other.clone(), "other").await.unwrap();
    store.append(vec![ev("a", 2)]).await.unwrap();
    let page = store.load(&Cursor::START, 100, &Filter::default(), Some("server")).await.unwrap();
    assert_eq!(page.events.len(), 3);
    assert!(page.events.iter().all(|e| from_server.iter().all(|s| s.id != e.id)));
    assert_eq!(page.next, store.head().await.unwrap());
    let all = store.load(&Cursor::START, 100, &Filter::default(), Some("nobody")).await.unwrap();
    assert_eq!(all.events.len(), 5);
}

/// `load_aggregate` returns one aggregate's events, optionally after a cursor.
pub async fn load_aggregate_returns_one_aggregate<F: StoreFactory>(f: &F) {
    let store = f.open().await;
    store.append((0..10).map(|i| ev(if i % 2 == 0 { "even" } else { "odd" }, i)).collect()).await.unwrap();
    let mid = store.head().await.unwrap();
    store.apply(remote_events(NodeId::random(), &[("k", "even")]), "p").await.unwrap();
    store.append(vec![ev("even", 10)]).await.unwrap();
    let even = store.load_aggregate("even", &Cursor::START).await.unwrap();
    assert_eq!(even.len(), 7);
    assert!(even.iter().all(|e| e.aggregate_id == "even"));
    assert_eq!(store.load_aggregate("even", &mid).await.unwrap().len(), 2);
    assert!(store.load_aggregate("nothing", &Cursor::START).await.unwrap().is_empty());
    assert!(store.load_aggregate("eve", &Cursor::START).await.unwrap().is_empty(), "ids match exactly");
}

/// Checkpoints are kept per peer and survive reopen.
pub async fn checkpoints_are_per_peer_and_durable<F: StoreFactory>(f: &F) {
    let store = f.open().await;
    assert_eq!(store.checkpoint("a").await.unwrap(), Default::default());
    let remote = NodeId::random();
    let cp_a = sync_core::Checkpoint { pushed: Cursor::new(store.node_id(), 3), pulled: Cursor::new(remote, 9) };
    let cp_b = sync_core::Checkpoint { pushed: Cursor::START, pulled: Cursor::new(remote, 1) };
    store.set_checkpoint("a", &cp_a).await.unwrap();
    store.set_checkpoint("http://b.example/", &cp_b).await.unwrap();
    let store = f.reopen(store).await;
    assert_eq!(store.checkpoint("a").await.unwrap(), cp_a);
    assert_eq!(store.checkpoint("http://b.example/").await.unwrap(), cp_b);
    let newer = sync_core::Checkpoint { pulled: Cursor::new(remote, 10), ..cp_a };
    store.set_checkpoint("a", &newer).await.unwrap();
    assert_eq!(store.checkpoint("a").await.unwrap(), newer);
}

/// The version vector holds the highest counter per origin.
pub async fn version_vector_tracks_every_origin<F: StoreFactory>(f: &F) {
    let store = f.open().await;
    assert_eq!(store.version_vector().await.unwrap(), VectorClock::new());
    store.append(vec![ev("a", 1), ev("b", 1)]).await.unwrap();
    let other = NodeId::random();
    let remote = remote_events(other, &[("k", "a"), ("k", "z"), ("k", "a")]);
    // out of order delivery still yields the max
    store.apply(vec![remote[2].clone(), remote[0].clone()], "p").await.unwrap();
    let vv = store.version_vector().await.unwrap();
    assert_eq!((vv.get(store.node_id()), vv.get(other), vv.len()), (2, 3, 2));
    let store = f.reopen(store).await;
    assert_eq!(store.version_vector().await.unwrap(), vv);
}

/// Applied events keep their header, and later local edits see them.
pub async fn apply_keeps_the_header_and_merges_clocks<F: StoreFactory>(f: &F) {
    let store = f.open().await;
    let remote = remote_events(NodeId::random(), &[("k", "doc")]);
    store.apply(remote.clone(), "p").await.unwrap();
    assert_eq!(all_events(&store).await, remote);
    store.append(vec![ev("doc", 1)]).await.unwrap();
    let local = store.load_aggregate("doc", &Cursor::START).await.unwrap().pop().unwrap();
    assert!(remote[0].clock.happened_before(&local.clock), "a local edit after a pull must follow it");
    assert!(local.hlc > remote[0].hlc, "HLC observes remote events");
    assert_eq!(local.origin.counter, 1, "remote events do not use our counter");
}

/// `apply` lists the inserted events that are concurrent with what the
/// store held of their aggregate, and only those.
pub async fn apply_reports_concurrent_events<F: StoreFactory>(f: &F) {
    let store = f.open().await;
    store.append(vec![ev("doc", 1)]).await.unwrap();
    let local = all_events(&store).await.remove(0);
    // a peer that never saw our edit: concurrent
    let blind = remote_events(NodeId::random(), &[("k", "doc"), ("k", "doc")]);
    // a peer that saw it: not concurrent
    let mut book = Replica::new(NodeId::random());
    book.observe(&local).unwrap();
    let informed = book.stamp(NewEvent::new("k", "doc", "after"), Hlc::now_ms()).unwrap();
    let elsewhere = remote_events(NodeId::random(), &[("k", "other")]);
    let batch = vec![informed.clone(), elsewhere[0].clone(), blind[0].clone(), blind[1].clone()];
    let out = store.apply(batch.clone(), "p").await.unwrap();
    assert_eq!(out.inserted.len(), 4);
    assert_eq!(out.concurrent, [blind[0].id, blind[1].id]);
    let again = store.apply(batch, "p").await.unwrap();
    assert!(again.concurrent.is_empty(), "duplicates are never reported concurrent");
    // A forged copy of a stored id teaches nothing: clocks and the version
    // vector stay as they were.
    let (clock, vv) = (store.aggregate_clock("doc").await.unwrap(), store.version_vector().await.unwrap());
    let mut forged = informed.clone();
    let stranger = NodeId::random();
    forged.clock.set(stranger, 7);
    let out = store.apply(vec![forged], "p").await.unwrap();
    assert_eq!(out.duplicates, [informed.id]);
    assert_eq!(store.aggregate_clock("doc").await.unwrap(), clock);
    assert_eq!(store.version_vector().await.unwrap(), vv);
    assert!(store.append(vec![ev("doc", 2)]).await.unwrap().concurrent.is_empty());
}

/// A batch with one bad event is rejected with a typed error and writes nothing.
pub async fn rejected_batch_writes_nothing<F: StoreFactory>(f: &F) {
    let store = f.open().await;
    store.append(vec![ev("a", 0)]).await.unwrap();
    let before = (all_events(&store).await, store.version_vector().await.unwrap(), store.head().await.unwrap());
    let limits = Limits::default();
    let bad_local: Vec<(NewEvent, ErrorCode)> = vec![
        (NewEvent::new("k", "", "x"), ErrorCode::InvalidInput),
        (NewEvent::new("", "a", "x"), ErrorCode::InvalidInput),
        (NewEvent::new("k", "a", vec![0u8; limits.max_data_bytes + 1]), ErrorCode::TooLarge),
        (NewEvent::new("k", "a".repeat(limits.max_name_bytes + 1), "x"), ErrorCode::TooLarge),
    ];
    for (bad, code) in bad_local {
        let err = store.append(vec![ev("a", 1), ev("new-agg", 1), bad]).await.unwrap_err();
        assert_eq!(err.code(), code, "{err}");
    }
    let other = NodeId::random();
    let good = remote_events(other, &[("k", "a")]);
    let mut wrong_origin = remote_events(other, &[("k", "a")]).remove(0);
    wrong_origin.origin.counter += 5;
    let mut huge_clock = remote_events(other, &[("k", "a")]).remove(0);
    for _ in 0..limits.max_clock_entries {
        huge_clock.clock.set(NodeId::random(), 1);
    }
    let mut empty_agg = remote_events(other, &[("k", "a")]).remove(0);
    empty_agg.aggregate_id.clear();
    let mut huge_counter = remote_events(other, &[("k", "a")]).remove(0);
    huge_counter.origin.counter = sync_core::MAX_COUNTER + 1;
    huge_counter.clock.set(other, sync_core::MAX_COUNTER + 1);
    let mut from_the_future = remote_events(other, &[("k", "a")]).remove(0);
    from_the_future.hlc.wall_ms = Hlc::now_ms() + limits.max_clock_skew_ms + 60_000;
    for (bad, code) in [
        (wrong_origin, ErrorCode::InvalidInput),
        (huge_clock, ErrorCode::InvalidInput),
        (empty_agg, ErrorCode::InvalidInput),
        (huge_counter, ErrorCode::InvalidInput),
        (from_the_future, ErrorCode::InvalidInput),
    ] {
        let err = store.apply(vec![good[0].clone(), bad], "p").await.unwrap_err();
        assert_eq!(err.code(), code, "{err}");
    }
    let after = (all_events(&store).await, store.version_vector().await.unwrap(), store.head().await.unwrap());
    assert_eq!(before, after, "a rejected batch must change nothing");
    // counters were not consumed by the rejected batches
    store.append(vec![ev("a", 2)]).await.unwrap();
    let last = all_events(&store).await.pop().unwrap();
    assert_eq!(last.origin.counter, 2);
}

/// Tasks append concurrently while a reader pages by cursor: the reader sees
/// every event exactly once, in feed order.
pub async fn concurrent_appends_while_paging_lose_nothing<F: StoreFactory>(f: &F) {
    const WRITERS: usize = 4;
    const BATCHES: usize = 25;
    const PER_BATCH: usize = 20;
    let store = Arc::new(f.open().await);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for b in 0..BATCHES {
                let batch: Vec<NewEvent> = (0..PER_BATCH).map(|i| ev(&format!("w{w}"), b * PER_BATCH + i)).collect();
                ids.extend(batch.iter().map(|e| e.id));
                store.append(batch).await.expect("append");
                tokio::task::yield_now().await;
            }
            ids
        }));
    }
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let (mut cursor, mut seen) = (Cursor::START, Vec::new());
            while seen.len() < WRITERS * BATCHES * PER_BATCH {
                let page = store.load(&cursor, 13, &Filter::default(), None).await.expect("load");
                seen.extend(page.events.iter().map(|e| e.id));
                cursor = page.next;
                if page.events.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            }
            seen
        })
    };
    let mut written = HashSet::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    let seen =
        tokio::time::timeout(std::time::Duration::from_secs(60), reader).await.expect("reader finished").unwrap();
    assert_eq!(seen.len(), written.len(), "no event repeated or lost");
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), written);
    assert_eq!(seen, all_events(&*store).await.iter().map(|e| e.id).collect::<Vec<_>>(), "feed order");
}

/// Everything appended and applied is there after reopen.
pub async fn events_survive_reopen<F: StoreFactory>(f: &F) {
    let store = f.open().await;
    store.append((0..20).map(|i| ev("a", i)).collect()).await.unwrap();
    store.apply(remote_events(NodeId::random(), &[("k", "a")]), "p").await.unwrap();
    let before = all_events(&store).await;
    let head = store.head().await.unwrap();
    let store = f.reopen(store).await;
    assert_eq!(all_events(&store).await, before);
    assert_eq!(store.head().await.unwrap(), head);
    store.append(vec![ev("a", 20)]).await.unwrap();
    let last = all_events(&store).await.pop().unwrap();
    assert_eq!(last.origin.counter, 21, "the counter continues after reopen");
    assert!(last.hlc > before.last().unwrap().hlc);
}

/// Invariant 3: whatever `append` acknowledged survives `kill -9`. A child
/// process (this test, re-run by [`crate::crash`]) appends batches to the
/// store in one directory until it is killed; the store is then opened in
/// this process and must hold every acknowledged event and no half batch.
/// `test` is this case's path as libtest names it (the macro passes it).
pub async fn acknowledged_batches_survive_kill_9<F: StoreFactory>(f: &F, test: &str) {
    const BATCH: usize = 40;
    if let Some(dir) = crate::crash::child_arg() {
        let store = f.open_in(Path::new(&dir)).await;
        for n in 0usize.. {
            let batch: Vec<NewEvent> = (0..BATCH).map(|i| ev(&format!("doc-{}", i % 7), n * BATCH + i)).collect();
            let ids: Vec<EventId> = batch.iter().map(|e| e.id).collect();
            assert_eq!(store.append(batch).await.expect("child: append").inserted.len(), BATCH);
            crate::crash::report_acked(&ids);
        }
    }
    if lacking(f, Capability::Durable, "acknowledged_batches_survive_kill_9") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let arg = dir.path().to_str().expect("a UTF-8 temp dir").to_owned();
    let (mut acked, mut node) = (HashSet::new(), None);
    for kill_after in [3, 11, 25] {
        let test = test.to_owned();
        let arg = arg.clone();
        let child = tokio::task::spawn_blocking(move || {
            crate::crash::run_until_killed(&test, &arg, |acks, _| acks >= kill_after * BATCH)
        });
        acked.extend(child.await.expect("crash child"));
        let store = f.open_in(dir.path()).await;
        assert_eq!(*node.get_or_insert(store.node_id()), store.node_id(), "the node id survives kill -9");
        let events = all_events(&store).await;
        let stored: HashSet<EventId> = events.iter().map(|e| e.id).collect();
        let lost = acked.difference(&stored).count();
        assert_eq!(lost, 0, "{lost} of {} acknowledged events lost after kill -9", acked.len());
        assert_eq!(events.len() % BATCH, 0, "a batch was half written: {} events", events.len());
        let counters: Vec<u64> = events.iter().map(|e| e.origin.counter).collect();
        assert_eq!(counters, (1..=events.len() as u64).collect::<Vec<_>>(), "counters stay dense across crashes");
        let page = store.load(&Cursor::START, usize::MAX / 32, &Filter::default(), None).await.unwrap();
        assert_eq!(page.next, store.head().await.unwrap(), "the feed ends at the head after recovery");
        store.close().await.expect("close");
    }
}
