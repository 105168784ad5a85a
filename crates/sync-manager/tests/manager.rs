//! Sync manager behaviour over the in-process transport: every option has
//! an observable effect here.

use std::sync::Arc;
use std::time::Duration;

use sync_core::{
    AdditiveMerge, Cursor, ErrorCode, Event, EventStore, Filter, LastWriteWins, NewEvent, NodeId, Page, PushAck,
    PushStatus, Resolution, Result, Transport, ViewEntry,
};
use sync_manager::{BuildError, Phase, Progress, SyncManager};
use sync_server::{Principal, SyncService};
use sync_store_memory::MemoryStore;
use sync_testkit::{FlakyTransport, InProcessTransport};

type Server = Arc<SyncService<MemoryStore>>;

fn server() -> Server {
    Arc::new(SyncService::new(MemoryStore::new()))
}

fn client(server: &Server) -> InProcessTransport<MemoryStore> {
    InProcessTransport::new(server.clone(), "server")
}

fn edits(agg: &str, kind: &str, n: usize) -> Vec<NewEvent> {
    (0..n).map(|i| NewEvent::new(kind, agg, format!("{agg} {kind} {i}"))).collect()
}

async fn ids<S: EventStore>(store: &S) -> Vec<sync_core::EventId> {
    let mut ids: Vec<_> = store
        .load(&Cursor::START, 100_000, &Filter::default(), None)
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.id)
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn local_only_manager_syncs_nothing() {
    let m = SyncManager::builder(MemoryStore::new()).build().unwrap();
    m.append(edits("a", "k", 2)).await.unwrap();
    assert_eq!(m.sync().await.unwrap(), Default::default());
}

#[tokio::test]
async fn two_offline_clients_converge_and_report_the_conflict() {
    let server = server();
    let a = SyncManager::builder(MemoryStore::new()).transport(client(&server)).build().unwrap();
    let b = SyncManager::builder(MemoryStore::new()).transport(client(&server)).build().unwrap();
    a.append(vec![NewEvent::new("title.set", "doc-1", "from a")]).await.unwrap();
    b.append(vec![NewEvent::new("title.set", "doc-1", "from b")]).await.unwrap();
    b.append(edits("doc-2", "k", 3)).await.unwrap();

    let ra = a.sync().await.unwrap();
    assert_eq!((ra.pushed, ra.pulled, ra.conflicts_resolved), (1, 0, 0));
    let rb = b.sync().await.unwrap();
    assert_eq!((rb.pushed, rb.pulled, rb.conflicts_resolved), (4, 1, 1));
    assert_eq!(rb.conflicts[0].conflict.aggregate_id, "doc-1");
    let ra = a.sync().await.unwrap();
    assert_eq!((ra.pushed, ra.pulled, ra.conflicts_resolved), (0, 4, 1), "a sees the conflict when it arrives");

    assert_eq!(ids(a.store()).await, ids(b.store()).await);
    let (va, vb) = (a.view("doc-1").await.unwrap(), b.view("doc-1").await.unwrap());
    assert_eq!(va, vb);
    let ViewEntry::Event(winner) = &va.entries[0] else { panic!("LWW keeps one event") };
    assert_eq!(va.entries.len(), 1);
    assert_eq!(va.conflicts[0].resolution, Resolution::Winner(winner.id));

    // nothing left to exchange, and nothing pulled is pushed back
    let again = a.sync().await.unwrap();
    assert_eq!((again.pushed, again.push_duplicates, again.pulled), (0, 0, 0));
}

#[tokio::test]
async fn interrupted_pull_resumes_from_its_last_page() {
    let server = server();
    let writer = SyncManager::builder(MemoryStore::new()).transport(client(&server)).build().unwrap();
    writer.append(edits("a", "k", 50)).await.unwrap();
    writer.sync().await.unwrap();

    let flaky = Arc::new(FlakyTransport::new(client(&server)));
    let reader = SyncManager::builder(MemoryStore::new()).transport(flaky.clone()).batch_size(10).build().unwrap();
    // Call 0 asks the server's id; nothing to push (no call); pulls are
    // calls 1, 2 and 3, then call 4 fails.
    flaky.fail_from_call(4);
    let err = reader.sync().await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable);
    assert_eq!(ids(reader.store()).await.len(), 30, "three pages were applied before the network dropped");
    flaky.fail_from_call(usize::MAX);
    let r = reader.sync().await.unwrap();
    assert_eq!(r.pulled, 20, "the resumed pull fetches only the missing pages");
    assert_eq!(flaky.calls(), 5 + 2, "5 calls before (one failed), then pages 4 and 5 (the id is known)");
    assert_eq!(ids(reader.store()).await, ids(writer.store()).await);
}

#[tokio::test]
async fn a_replaced_server_gets_a_checkpoint_of_its_own() {
    let old = server();
    let m = SyncManager::builder(MemoryStore::new()).transport(FlakyTransport::new(client(&old))).build().unwrap();
    let other = SyncManager::builder(MemoryStore::new()).transport(client(&old)).build().unwrap();
    other.append(edits("a", "k", 3)).await.unwrap();
    other.sync().await.unwrap();
    m.sync().await.unwrap();
    let old_key = old.store().node_id().to_string();
    let cp = m.store().checkpoint(&old_key).await.unwrap();
    assert!(!cp.pulled.is_start());

    // The server is replaced by one with another store; its name is the same.
    let new = server();
    let seed = SyncManager::builder(MemoryStore::new()).transport(client(&new)).build().unwrap();
    seed.append(edits("b", "k", 2)).await.unwrap();
    seed.sync().await.unwrap();
    let m2 = SyncManager::builder(m.store().clone()).transport(client(&new)).build().unwrap();
    let r = m2.sync().await.unwrap();
    // Nothing of the old server's progress applies: the new one is sent
    // everything, the three events once pulled from the old one included.
    assert!(!r.resynced);
    assert_eq!((r.pushed, r.push_duplicates, r.pulled), (3, 0, 2));
    assert_eq!(ids(new.store()).await, ids(m.store()).await);
    assert_eq!(m.store().checkpoint(&old_key).await.unwrap(), cp, "the old server's checkpoint is kept");
}

#[tokio::test]
async fn a_cursor_the_server_no_longer_knows_triggers_a_resync_from_the_start() {
    let server = server();
    let m = SyncManager::builder(MemoryStore::new()).transport(client(&server)).build().unwrap();
    let other = SyncManager::builder(MemoryStore::new()).transport(client(&server)).build().unwrap();
    other.append(edits("a", "k", 3)).await.unwrap();
    other.sync().await.unwrap();
    m.append(edits("b", "k", 2)).await.unwrap();
    m.sync().await.unwrap();
    // The checkpoint claims a position the server never handed out (as
    // after a restore of the server from an older copy).
    let key = server.store().node_id().to_string();
    let mut cp = m.store().checkpoint(&key).await.unwrap();
    cp.pulled = Cursor::new(server.store().node_id(), 1_000);
    m.store().set_checkpoint(&key, &cp).await.unwrap();
    let r = m.sync().await.unwrap();
    assert!(r.resynced);
    // Everything is sent and fetched again; the server had it all.
    assert_eq!((r.pushed, r.push_duplicates, r.pulled), (0, 5, 0));
    assert_eq!(ids(server.store()).await, ids(m.store()).await);
}

/// After a bulk pull the push checkpoint stands at the head: the next push
/// walks nothing. A page that lands after unpushed local events leaves it.
#[tokio::test]
async fn pulled_pages_move_the_push_checkpoint_when_nothing_waits() {
    let server = server();
    let writer = SyncManager::builder(MemoryStore::new()).transport(client(&server)).build().unwrap();
    writer.append(edits("a", "k", 1_000)).await.unwrap();
    writer.sync().await.unwrap();

    let reader = SyncManager::builder(MemoryStore::new()).transport(client(&server)).batch_size(100).build().unwrap();
    assert_eq!(reader.sync().await.unwrap().pulled, 1_000);
    let status = reader.peer_status().await.unwrap().unwrap();
    assert_eq!(status.checkpoint.pushed, reader.store().head().await.unwrap());
    assert_eq!(status.waiting_to_push, 0);

    // A local event not pushed yet: pulled pages land after it.
    reader.append(edits("b", "k", 1)).await.unwrap();
    writer.append(edits("c", "k", 5)).await.unwrap();
    writer.sync().await.unwrap();
    assert_eq!(reader.pull().await.unwrap().pulled, 5);
    let status = reader.peer_status().await.unwrap().unwrap();
    assert_ne!(status.checkpoint.pushed, reader.store().head().await.unwrap());
    assert_eq!(status.waiting_to_push, 1, "the local event still goes out");
    assert_eq!(reader.push().await.unwrap().pushed, 1);
}

/// Pushed pages that land right at the pull checkpoint move it: the next
/// pull does not walk our own events on the server. Another writer's
/// events in between stop it, and are pulled.
#[tokio::test]
async fn acknowledged_pushes_move_the_pull_checkpoint_over_our_own_events() {
    let server = server();
    let m = SyncManager::builder(MemoryStore::new()).transport(client(&server)).batch_size(100).build().unwrap();
    m.append(edits("a", "k", 1_000)).await.unwrap();
    assert_eq!(m.push().await.unwrap().pushed, 1_000);
    let status = m.peer_status().await.unwrap().unwrap();
    assert_eq!(status.checkpoint.pulled, server.store().head().await.unwrap());

    let other = SyncManager::builder(MemoryStore::new()).transport(client(&server)).build().unwrap();
    other.append(edits("b", "k", 3)).await.unwrap();
    other.sync().await.unwrap();
    m.append(edits("c", "k", 2)).await.unwrap();
    let r = m.sync().await.unwrap();
    assert_eq!((r.pushed, r.pulled), (2, 3), "the other writer's events are pulled");
    assert_eq!(ids(server.store()).await, ids(m.store()).await);
}

#[tokio::test]
async fn a_checkpoint_kept_under_the_peer_name_is_taken_over() {
    let server = server();
    let m = SyncManager::builder(MemoryStore::new()).transport(client(&server)).build().unwrap();
    m.append(edits("a", "k", 3)).await.unwrap();
    // An earlier version kept the checkpoint under the peer's name.
    let head = m.store().head().await.unwrap();
    let legacy = sync_core::Checkpoint { pushed: head, pulled: Cursor::START };
    m.store().set_checkpoint("server", &legacy).await.unwrap();
    assert_eq!(m.peer_status().await.unwrap().unwrap().waiting_to_push, 0);
    let r = m.sync().await.unwrap();
    assert_eq!(r.pushed, 0, "what the old checkpoint covers is not sent again");
    let key = server.store().node_id().to_string();
    assert_eq!(m.store().checkpoint(&key).await.unwrap().pushed, head);
}

#[tokio::test]
async fn filter_limits_what_is_pushed_and_pulled() {
    let server = server();
    let a = SyncManager::builder(MemoryStore::new()).transport(client(&server)).build().unwrap();
    a.append(edits("user-1", "user.renamed", 2)).await.unwrap();
    a.append(edits("order-1", "order.placed", 3)).await.unwrap();
    a.sync().await.unwrap();
    let orders = Filter::default().aggregate_prefix("order-");
    let b = SyncManager::builder(MemoryStore::new()).transport(client(&server)).filter(orders).build().unwrap();
    b.append(edits("user-9", "user.renamed", 1)).await.unwrap();
    b.append(edits("order-9", "order.placed", 1)).await.unwrap();
    let r = b.sync().await.unwrap();
    assert_eq!((r.pushed, r.pulled), (1, 3));
    let pulled = b.store().load(&Cursor::START, 100, &Filter::default(), None).await.unwrap().events;
    assert!(
        pulled.iter().filter(|e| e.origin.node != b.store().node_id()).all(|e| e.aggregate_id.starts_with("order-"))
    );
}

/// Passes everything through and records the size of each push.
struct PushSizes {
    inner: InProcessTransport<MemoryStore>,
    sizes: std::sync::Mutex<Vec<usize>>,
}

impl Transport for PushSizes {
    fn peer(&self) -> &str {
        self.inner.peer()
    }
    async fn peer_id(&self) -> Result<NodeId> {
        self.inner.peer_id().await
    }
    async fn push(&self, events: Vec<Event>) -> Result<PushAck> {
        self.sizes.lock().unwrap().push(events.len());
        self.inner.push(events).await
    }
    async fn pull(&self, after: &Cursor, limit: usize, filter: &Filter) -> Result<Page> {
        self.inner.pull(after, limit, filter).await
    }
}

#[tokio::test]
async fn batch_size_sets_request_sizes() {
    let server = server();
    let spy = Arc::new(PushSizes { inner: client(&server), sizes: Default::default() });
    let m = SyncManager::builder(MemoryStore::new()).transport(spy.clone()).batch_size(7).push_only().build().unwrap();
    m.append(edits("a", "k", 20)).await.unwrap();
    assert_eq!(m.sync().await.unwrap().pushed, 20);
    let sizes = spy.sizes.lock().unwrap().clone();
    assert_eq!(sizes.iter().sum::<usize>(), 20);
    assert!(sizes.iter().all(|n| (1..=7).contains(n)), "pushes of at most 7: {sizes:?}");
    // Pages of 12 (7/8 of two pushes' worth), each cut in even pieces.
    assert_eq!(sizes, [6, 6, 4, 4]);
}

#[tokio::test]
async fn push_only_and_pull_only_modes() {
    let server = server();
    let seed = SyncManager::builder(MemoryStore::new()).transport(client(&server)).build().unwrap();
    seed.append(edits("s", "k", 2)).await.unwrap();
    seed.sync().await.unwrap();
    let push_only = SyncManager::builder(MemoryStore::new()).transport(client(&server)).push_only().build().unwrap();
    push_only.append(edits("p", "k", 1)).await.unwrap();
    let r = push_only.sync().await.unwrap();
    assert_eq!((r.pushed, r.pulled), (1, 0));
    let pull_only = SyncManager::builder(MemoryStore::new()).transport(client(&server)).pull_only().build().unwrap();
    pull_only.append(edits("q", "k", 1)).await.unwrap();
    let r = pull_only.sync().await.unwrap();
    assert_eq!((r.pushed, r.pulled), (0, 3));
    // explicit push() still pushes
    assert_eq!(pull_only.push().await.unwrap().pushed, 1);
}

/// A transport to a peer that tells its id but never answers a push or pull.
struct Hanging;

impl Transport for Hanging {
    fn peer(&self) -> &str {
        "hanging"
    }
    async fn peer_id(&self) -> Result<NodeId> {
        Ok(NodeId::from_bytes([7; 16]))
    }
    async fn push(&self, _: Vec<Event>) -> Result<PushAck> {
        std::future::pending().await
    }
    async fn pull(&self, _: &Cursor, _: usize, _: &Filter) -> Result<Page> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn timeout_bounds_each_request() {
    let m =
        SyncManager::builder(MemoryStore::new()).transport(Hanging).timeout(Duration::from_secs(2)).build().unwrap();
    let err = m.sync().await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Timeout);
    assert_eq!(err.to_string(), "timed out after 2000 ms while pull");
}

#[tokio::test]
async fn validator_rejects_bad_events_before_they_are_stored() {
    let m = SyncManager::builder(MemoryStore::new())
        .validator(|e| if e.data.is_empty() { Err("empty payload".into()) } else { Ok(()) })
        .build()
        .unwrap();
    let err = m.append(vec![NewEvent::new("k", "a", "ok"), NewEvent::new("k", "a", "")]).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert!(err.to_string().contains("empty payload"));
    assert!(ids(m.store()).await.is_empty());
}

#[tokio::test]
async fn rejected_events_are_reported_and_not_retried() {
    let server = server();
    let scoped = client(&server).with_principal(Principal {
        name: "alice".into(),
        tenant: None,
        aggregate_prefixes: vec!["todo-".into()],
    });
    let m = SyncManager::builder(MemoryStore::new()).transport(scoped).build().unwrap();
    m.append(edits("todo-1", "k", 2)).await.unwrap();
    m.append(edits("secret-1", "k", 1)).await.unwrap();
    let r = m.sync().await.unwrap();
    assert_eq!(r.pushed, 2);
    assert_eq!(r.rejected.len(), 1);
    assert_eq!((r.rejected[0].status, r.rejected[0].code), (PushStatus::Rejected, Some(ErrorCode::Forbidden)));
    assert!(m.sync().await.unwrap().rejected.is_empty(), "the checkpoint moved past it");
}

/// Records the manager's progress each time a request goes out.
struct ProgressSpy<T> {
    inner: T,
    progress: Arc<std::sync::OnceLock<tokio::sync::watch::Receiver<Progress>>>,
    seen: Arc<std::sync::Mutex<Vec<Progress>>>,
}

impl<T: Transport> ProgressSpy<T> {
    fn record(&self) {
        if let Some(p) = self.progress.get() {
            self.seen.lock().unwrap().push(*p.borrow());
        }
    }
}

impl<T: Transport> Transport for ProgressSpy<T> {
    fn peer(&self) -> &str {
        self.inner.peer()
    }
    async fn peer_id(&self) -> Result<NodeId> {
        self.inner.peer_id().await
    }
    async fn push(&self, events: Vec<Event>) -> Result<PushAck> {
        self.record();
        self.inner.push(events).await
    }
    async fn pull(&self, after: &Cursor, limit: usize, filter: &Filter) -> Result<Page> {
        self.record();
        self.inner.pull(after, limit, filter).await
    }
}

#[tokio::test]
async fn subscribers_and_progress_see_each_sync() {
    let server = server();
    let (progress, seen) = (Arc::default(), Arc::default());
    let spy = ProgressSpy { inner: client(&server), progress: Arc::clone(&progress), seen: Arc::clone(&seen) };
    let m = SyncManager::builder(MemoryStore::new()).transport(spy).batch_size(5).build().unwrap();
    progress.set(m.progress()).unwrap();
    let mut results = m.subscribe();
    m.append(edits("a", "k", 12)).await.unwrap();
    let r = m.sync().await.unwrap();
    assert_eq!(results.recv().await.unwrap(), r);
    let pushed: Vec<_> = seen.lock().unwrap().iter().map(|p| (p.phase, p.pushed)).collect();
    // One aggregate, so one lane: a page of 8 goes out as two pushes of 4,
    // the last 4 as one (before each: 0, 4, 8 done), then one pull after 12
    // were pushed, which brings nothing back: our own events are not pulled
    assert_eq!(pushed, [(Phase::Idle, 0), (Phase::Pushing, 4), (Phase::Pushing, 8), (Phase::Pushing, 12)]);
    assert_eq!(r.pulled, 0);
    assert_eq!(m.progress().borrow().phase, Phase::Idle, "reset when the sync ends");
}

#[tokio::test]
async fn resolver_decides_the_view() {
    let server = server();
    let a =
        SyncManager::builder(MemoryStore::new()).transport(client(&server)).resolver(AdditiveMerge).build().unwrap();
    let b =
        SyncManager::builder(MemoryStore::new()).transport(client(&server)).resolver(LastWriteWins).build().unwrap();
    a.append(vec![NewEvent::new("item.added", "cart", "apple")]).await.unwrap();
    b.append(vec![NewEvent::new("item.added", "cart", "pear")]).await.unwrap();
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    a.sync().await.unwrap();
    assert_eq!(a.view("cart").await.unwrap().entries.len(), 2, "additive keeps both");
    assert_eq!(b.view("cart").await.unwrap().entries.len(), 1, "LWW keeps one");
}

#[tokio::test(start_paused = true)]
async fn auto_sync_retries_with_backoff_then_returns_to_the_interval() {
    let server = server();
    let flaky = Arc::new(FlakyTransport::new(client(&server)));
    let m = SyncManager::builder(MemoryStore::new())
        .transport(flaky.clone())
        .sync_interval(Duration::from_secs(60))
        .backoff(Duration::from_secs(4), Duration::from_secs(8))
        .build()
        .unwrap();
    flaky.fail_from_call(0);
    let auto = m.start_auto_sync();
    let settle = || async {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    };
    settle().await;
    assert_eq!(flaky.calls(), 1, "first attempt at once");
    // retry 1 waits 2..4 s, retry 2 waits 4..8 s (jittered doubling, capped at 8 s)
    tokio::time::advance(Duration::from_millis(1_999)).await;
    settle().await;
    assert_eq!(flaky.calls(), 1, "not before half the minimum backoff");
    tokio::time::advance(Duration::from_millis(2_001)).await;
    settle().await;
    assert_eq!(flaky.calls(), 2);
    flaky.fail_from_call(usize::MAX);
    tokio::time::advance(Duration::from_secs(8)).await;
    settle().await;
    // A sync with nothing to push: the server's id, then one pull.
    assert_eq!(flaky.calls(), 2 + 2, "second retry within the capped backoff; it succeeds");
    tokio::time::advance(Duration::from_secs(59)).await;
    settle().await;
    assert_eq!(flaky.calls(), 4, "after a success, the interval applies");
    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(flaky.calls(), 5, "one pull: the server's id is known by now");
    auto.stop().await;
    tokio::time::advance(Duration::from_secs(600)).await;
    settle().await;
    assert_eq!(flaky.calls(), 5, "stopped");
}

#[test]
fn bad_settings_are_refused() {
    let b = || SyncManager::builder(MemoryStore::new());
    assert_eq!(b().batch_size(0).build().err(), Some(BuildError::ZeroBatchSize));
    assert_eq!(b().timeout(Duration::ZERO).build().err(), Some(BuildError::ZeroDuration { what: "timeout" }));
    assert!(matches!(
        b().backoff(Duration::from_secs(9), Duration::from_secs(1)).build(),
        Err(BuildError::BackoffRange { .. })
    ));
}

#[tokio::test]
async fn pulled_events_the_local_store_refuses_are_skipped_and_reported() {
    let server = server();
    let writer = SyncManager::builder(MemoryStore::new()).transport(client(&server)).build().unwrap();
    writer
        .append(vec![
            NewEvent::new("k", "a", "ok"),
            NewEvent::new("k", "b", "far too large"),
            NewEvent::new("k", "c", "ok"),
        ])
        .await
        .unwrap();
    writer.sync().await.unwrap();
    let strict = MemoryStore::open(
        sync_store_memory::MemoryConfig::new().limits(sync_core::Limits { max_data_bytes: 4, ..Default::default() }),
    );
    let reader = SyncManager::builder(strict).transport(client(&server)).build().unwrap();
    let r = reader.sync().await.unwrap();
    assert_eq!(r.pulled, 2);
    assert_eq!(r.refused.len(), 1);
    assert_eq!(r.refused[0].code, ErrorCode::TooLarge);
    assert_eq!(reader.sync().await.unwrap().refused.len(), 0, "the checkpoint moved past it");
}

/// A transport whose pushes take a while, recording how many run at once,
/// and failing the push numbered `fail` (counting from 0).
struct SlowPushes<T> {
    inner: T,
    fail: usize,
    calls: std::sync::atomic::AtomicUsize,
    running: std::sync::atomic::AtomicUsize,
    most_running: std::sync::atomic::AtomicUsize,
}

impl<T: Transport> Transport for SlowPushes<T> {
    fn peer(&self) -> &str {
        self.inner.peer()
    }
    async fn peer_id(&self) -> Result<NodeId> {
        self.inner.peer_id().await
    }
    async fn push(&self, events: Vec<Event>) -> Result<PushAck> {
        use std::sync::atomic::Ordering::SeqCst;
        let call = self.calls.fetch_add(1, SeqCst);
        let running = self.running.fetch_add(1, SeqCst) + 1;
        self.most_running.fetch_max(running, SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let out = if call == self.fail {
            Err(sync_core::Error::Unavailable { message: format!("push {call} dropped") })
        } else {
            self.inner.push(events).await
        };
        self.running.fetch_sub(1, SeqCst);
        out
    }
    async fn pull(&self, after: &Cursor, limit: usize, filter: &Filter) -> Result<Page> {
        self.inner.pull(after, limit, filter).await
    }
}

/// Pages that share an aggregate go one at a time, so the peer's feed holds
/// the aggregate's events in our order, even where a later push would
/// overtake an earlier one.
#[tokio::test]
async fn pages_of_one_aggregate_are_pushed_in_order() {
    let server = server();
    let slow = Arc::new(SlowPushes {
        inner: client(&server),
        fail: usize::MAX,
        calls: Default::default(),
        running: Default::default(),
        most_running: Default::default(),
    });
    let m = SyncManager::builder(MemoryStore::new()).transport(slow.clone()).batch_size(2).push_only().build().unwrap();
    m.append(edits("a", "k", 10)).await.unwrap();
    assert_eq!(m.sync().await.unwrap().pushed, 10);
    assert_eq!(slow.most_running.load(std::sync::atomic::Ordering::SeqCst), 1, "one push at a time");
    let order = |events: Vec<Event>| events.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let ours = m.store().load_aggregate("a", &Cursor::START).await.unwrap();
    let theirs = server.store().load_aggregate("a", &Cursor::START).await.unwrap();
    assert_eq!(order(theirs), order(ours));
}

#[tokio::test]
async fn two_pushes_run_at_once_and_the_checkpoint_follows_the_acknowledged_prefix() {
    let server = server();
    let slow = Arc::new(SlowPushes {
        inner: client(&server),
        fail: 2,
        calls: Default::default(),
        running: Default::default(),
        most_running: Default::default(),
    });
    let m = SyncManager::builder(MemoryStore::new()).transport(slow.clone()).batch_size(1).push_only().build().unwrap();
    // Every event its own aggregate: pushes may travel two at a time. A
    // page read from the store holds two pushes' worth (two events).
    m.append((0..10).map(|i| NewEvent::new("k", format!("a{i}"), format!("{i}"))).collect()).await.unwrap();

    // Pushes 0 and 1 (page 0) are acknowledged, push 2 (page 1) fails;
    // push 3 may have been stored meanwhile, but the checkpoint stays
    // after page 0.
    let err = m.sync().await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
    assert_eq!(slow.most_running.load(std::sync::atomic::Ordering::SeqCst), 2, "a window of two pushes");
    let (node, key) = (m.store().node_id(), server.store().node_id().to_string());
    assert_eq!(m.store().checkpoint(&key).await.unwrap().pushed, Cursor::new(node, 2));
    let stored = ids(server.store()).await.len();
    assert!(stored == 2 || stored == 3, "{stored}");

    // The next sync sends pages 1 to 4; whatever push 3 left is a duplicate.
    let r = m.sync().await.unwrap();
    assert_eq!(r.pushed + r.push_duplicates, 8, "{r:?}");
    assert_eq!(r.pushed, 10 - stored);
    assert_eq!(ids(server.store()).await, ids(m.store()).await);
    assert_eq!(m.store().checkpoint(&key).await.unwrap().pushed, Cursor::new(node, 10));
}
