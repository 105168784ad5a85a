//! Convergence under random schedules (DESIGN invariants 2, 5 and 6):
//! clients edit shared aggregates while offline and sync in random order,
//! over a transport that lets pushes in flight overtake each other; once
//! everyone has synced twice, all hold the same events and show the same
//! resolved view of every aggregate, and no feed holds an event before one
//! of its aggregate that it causally follows. The same property on real sqlite and
//! redb files over HTTP lives in the `synckit-integration` crate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use sync_core::{
    ByKind, Cursor, Event, EventStore, Filter, FirstWriteWins, LastWriteWins, NewEvent, NodeId, Page, PushAck,
    Resolution, Result, Transport, resolver_fn,
};
use sync_manager::SyncManager;
use sync_server::SyncService;
use sync_store_memory::MemoryStore;
use sync_testkit::InProcessTransport;

#[derive(Debug, Clone)]
enum Step {
    Edit { client: usize, aggregate: usize, kind: usize },
    Sync { client: usize },
}

fn step(clients: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..clients, 0..3usize, 0..2usize).prop_map(|(client, aggregate, kind)| Step::Edit { client, aggregate, kind }),
        1 => (0..clients).prop_map(|client| Step::Sync { client }),
    ]
}

fn resolver() -> ByKind {
    // kind 0: last writer wins; kind 1: merge by concatenating in order
    ByKind::new(LastWriteWins)
        .kind("k0", LastWriteWins)
        .kind(
            "k1",
            resolver_fn(|c| {
                Resolution::Merged(c.events.iter().flat_map(|e| e.data.to_vec()).collect::<Vec<_>>().into())
            }),
        )
        .kind("k2", FirstWriteWins)
}

/// The in-process transport, but each push first yields a pseudo-random
/// number of times (0 to 3), so that of two pushes in flight either may
/// reach the server first.
struct Overtaking {
    inner: InProcessTransport<MemoryStore>,
    state: AtomicU64,
}

impl Transport for Overtaking {
    fn peer(&self) -> &str {
        self.inner.peer()
    }
    async fn peer_id(&self) -> Result<NodeId> {
        self.inner.peer_id().await
    }
    async fn push(&self, events: Vec<Event>) -> Result<PushAck> {
        let mut x = self.state.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        x ^= x >> 29;
        for _ in 0..x % 4 {
            tokio::task::yield_now().await;
        }
        self.inner.push(events).await
    }
    async fn pull(&self, after: &Cursor, limit: usize, filter: &Filter) -> Result<Page> {
        self.inner.pull(after, limit, filter).await
    }
}

/// Invariant 6: in feed order, no event comes before an event of its
/// aggregate that it causally follows.
fn assert_causal_order(feed: &[Event], whose: &str) {
    for (i, later) in feed.iter().enumerate() {
        for earlier in &feed[..i] {
            assert!(
                earlier.aggregate_id != later.aggregate_id || !later.clock.happened_before(&earlier.clock),
                "{whose}: {} (clock {:?}) is in the feed before its cause {} (clock {:?})",
                earlier.id,
                earlier.clock,
                later.id,
                later.clock
            );
        }
    }
}

async fn run(clients: usize, steps: Vec<Step>, batch_size: usize) {
    let server = Arc::new(SyncService::new(MemoryStore::new()));
    let managers: Vec<_> = (0..clients)
        .map(|c| {
            SyncManager::builder(MemoryStore::new())
                .transport(Overtaking {
                    inner: InProcessTransport::new(server.clone(), "server"),
                    state: AtomicU64::new(c as u64),
                })
                .resolver(resolver())
                .batch_size(batch_size)
                .build()
                .unwrap()
        })
        .collect();
    let mut conflicts_seen = vec![0; clients];
    for (i, s) in steps.into_iter().enumerate() {
        match s {
            Step::Edit { client, aggregate, kind } => {
                let e = NewEvent::new(format!("k{kind}"), format!("agg-{aggregate}"), format!("{client}:{i};"));
                managers[client].append(vec![e]).await.unwrap();
            }
            Step::Sync { client } => {
                conflicts_seen[client] += managers[client].sync().await.unwrap().conflicts_resolved;
            }
        }
    }
    for _ in 0..2 {
        for m in &managers {
            m.sync().await.unwrap();
        }
    }
    let feed = |store: MemoryStore| async move {
        store.load(&Cursor::START, 1 << 20, &Filter::default(), None).await.unwrap().events
    };
    assert_causal_order(&feed(server.store().clone()).await, "server");
    for (i, m) in managers.iter().enumerate() {
        assert_causal_order(&feed(m.store().clone()).await, &format!("client {i}"));
    }
    let all = |store: MemoryStore| async move {
        let mut events = feed(store).await;
        events.sort_by_key(|e| e.id);
        events
    };
    let reference = all(managers[0].store().clone()).await;
    assert_eq!(reference, all(server.store().clone()).await, "server holds every event");
    for m in &managers[1..] {
        assert_eq!(all(m.store().clone()).await, reference, "same event set everywhere");
    }
    for aggregate in 0..3 {
        let id = format!("agg-{aggregate}");
        let view = managers[0].view(&id).await.unwrap();
        for m in &managers[1..] {
            assert_eq!(m.view(&id).await.unwrap(), view, "same resolved view of {id}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_under_random_schedules(
        steps in proptest::collection::vec(step(3), 1..40),
        batch_size in 1usize..6,
    ) {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run(3, steps, batch_size));
    }
}

#[tokio::test]
async fn a_larger_fixed_scenario_converges() {
    // 6 clients, 600 steps, deterministic pseudo-random schedule
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n) as usize
    };
    let steps = (0..600)
        .map(|_| {
            if next(4) == 0 {
                Step::Sync { client: next(6) }
            } else {
                Step::Edit { client: next(6), aggregate: next(3), kind: next(3) }
            }
        })
        .collect();
    run(6, steps, 4).await;
}
