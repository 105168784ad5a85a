//! Live sync over the in-process transport's subscription, on paused time:
//! the sync interval is an hour, so whatever arrives within a second came
//! through the live path, not through polling.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use sync_core::{
    Cursor, Event, EventStore, Filter, Live, NewEvent, NodeId, Page, PushAck, Result, Subscribe, Transport,
};
use sync_manager::{SyncManager, SyncResult};
use sync_server::SyncService;
use sync_store_memory::MemoryStore;
use sync_testkit::InProcessTransport;
use tokio::sync::broadcast::Receiver;
use tokio::time::Instant;

type Server = Arc<SyncService<MemoryStore>>;
const HOUR: Duration = Duration::from_secs(3600);

fn server() -> Server {
    Arc::new(SyncService::new(MemoryStore::new()))
}

/// Passes everything through; each subscription ends after `items` items
/// (a connection that drops), and subscriptions are counted.
struct Cutting {
    inner: InProcessTransport<MemoryStore>,
    items: usize,
    subscriptions: AtomicUsize,
}

impl Cutting {
    fn new(server: &Server, items: usize) -> Arc<Self> {
        Arc::new(Cutting { inner: InProcessTransport::new(server.clone(), "server"), items, subscriptions: 0.into() })
    }
}

impl Transport for Cutting {
    fn peer(&self) -> &str {
        self.inner.peer()
    }
    async fn peer_id(&self) -> Result<NodeId> {
        self.inner.peer_id().await
    }
    async fn push(&self, events: Vec<Event>) -> Result<PushAck> {
        self.inner.push(events).await
    }
    async fn pull(&self, after: &Cursor, limit: usize, filter: &Filter) -> Result<Page> {
        self.inner.pull(after, limit, filter).await
    }
}

impl Subscribe for Cutting {
    type Subscription = Pin<Box<dyn futures_util::Stream<Item = Result<Live>> + Send>>;
    async fn subscribe(&self, after: &Cursor, filter: &Filter) -> Result<Self::Subscription> {
        self.subscriptions.fetch_add(1, Ordering::SeqCst);
        Ok(Box::pin(self.inner.subscribe(after, filter).await?.take(self.items)))
    }
}

fn live_client(transport: Arc<Cutting>) -> sync_manager::Builder<MemoryStore, Arc<Cutting>> {
    SyncManager::builder(MemoryStore::new())
        .transport(transport)
        .sync_interval(HOUR)
        .backoff(Duration::from_millis(10), Duration::from_millis(40))
}

/// The next result that satisfies `done`.
async fn until(results: &mut Receiver<SyncResult>, done: impl Fn(&SyncResult) -> bool) -> SyncResult {
    loop {
        let result = results.recv().await.expect("results");
        if done(&result) {
            return result;
        }
    }
}

async fn held<S: EventStore>(store: &S) -> usize {
    store.load(&Cursor::START, 100_000, &Filter::default(), None).await.unwrap().events.len()
}

#[tokio::test(start_paused = true)]
async fn appends_reach_the_other_client_at_once_without_polling() {
    let server = server();
    let alice = live_client(Cutting::new(&server, usize::MAX)).build().unwrap();
    let bob = live_client(Cutting::new(&server, usize::MAX)).build().unwrap();
    let (mut alice_results, mut bob_results) = (alice.subscribe(), bob.subscribe());
    let tasks = [alice.start_live_sync(), bob.start_live_sync()];
    until(&mut alice_results, |_| true).await;
    until(&mut bob_results, |_| true).await;

    let started = Instant::now();
    alice.append(vec![NewEvent::new("note.added", "n1", "through the manager")]).await.unwrap();
    assert_eq!(until(&mut alice_results, |r| r.pushed > 0).await.pushed, 1, "pushed right after the append");
    assert_eq!(until(&mut bob_results, |r| r.pulled > 0).await.pulled, 1, "pulled as soon as the feed moved");
    // A write through the store itself, not the manager, goes out too.
    alice.store().append(vec![NewEvent::new("note.added", "n2", "straight to the store")]).await.unwrap();
    assert_eq!(until(&mut bob_results, |r| r.pulled > 0).await.pulled, 1);
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}: that was polling", started.elapsed());
    assert_eq!(held(bob.store()).await, 2);
    for task in tasks {
        task.stop().await;
    }
}

#[tokio::test(start_paused = true)]
async fn appends_within_the_debounce_go_out_in_one_push() {
    let server = server();
    let alice =
        live_client(Cutting::new(&server, usize::MAX)).push_debounce(Duration::from_millis(300)).build().unwrap();
    let mut results = alice.subscribe();
    let task = alice.start_live_sync();
    until(&mut results, |_| true).await;
    let started = Instant::now();
    alice.append(vec![NewEvent::new("k", "a", "1")]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    alice.append(vec![NewEvent::new("k", "a", "2")]).await.unwrap();
    let push = until(&mut results, |r| r.pushed > 0).await;
    assert_eq!(push.pushed, 2, "one push for both appends");
    assert!(started.elapsed() >= Duration::from_millis(300), "pushed before the debounce: {:?}", started.elapsed());
    task.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_subscription_is_resumed_from_the_checkpoint_without_loss() {
    let server = server();
    let transport = Cutting::new(&server, 1);
    let reader = live_client(transport.clone()).build().unwrap();
    let writer = SyncManager::builder(MemoryStore::new())
        .transport(InProcessTransport::new(server.clone(), "server"))
        .build()
        .unwrap();
    let mut results = reader.subscribe();
    let task = reader.start_live_sync();
    until(&mut results, |_| true).await;
    for round in 0..5 {
        writer.append((0..3).map(|i| NewEvent::new("k", "a", format!("{round}.{i}"))).collect()).await.unwrap();
        writer.sync().await.unwrap();
        while held(reader.store()).await < 3 * (round + 1) {
            until(&mut results, |r| r.pulled > 0).await;
        }
    }
    assert_eq!(held(reader.store()).await, 15, "nothing lost, nothing twice");
    let subscriptions = transport.subscriptions.load(Ordering::SeqCst);
    assert!(subscriptions >= 2, "the subscription was cut and resumed: {subscriptions} subscriptions");
    task.stop().await;
}

#[tokio::test(start_paused = true)]
async fn push_only_live_sync_does_not_subscribe_and_pull_only_does_not_push() {
    let server = server();
    let transport = Cutting::new(&server, usize::MAX);
    let pusher = live_client(transport.clone()).push_only().build().unwrap();
    let mut results = pusher.subscribe();
    let task = pusher.start_live_sync();
    until(&mut results, |_| true).await;
    pusher.append(vec![NewEvent::new("k", "a", "x")]).await.unwrap();
    assert_eq!(until(&mut results, |r| r.pushed > 0).await.pushed, 1);
    assert_eq!(transport.subscriptions.load(Ordering::SeqCst), 0);
    task.stop().await;

    let puller = live_client(Cutting::new(&server, usize::MAX)).pull_only().build().unwrap();
    let mut results = puller.subscribe();
    let task = puller.start_live_sync();
    assert_eq!(until(&mut results, |_| true).await.pulled, 1);
    puller.append(vec![NewEvent::new("k", "a", "stays here")]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(held(server.store()).await, 1, "a pull-only client keeps its events");
    task.stop().await;
}
