//! SyncService rules: scope, validation, limits, idempotency, waking live readers.

use std::time::Duration;

use sync_core::raw::Replica;
use sync_core::{
    AppendOutcome, Checkpoint, Cursor, ErrorCode, Event, EventStore, Filter, Hlc, Limits, NewEvent, NodeId, Page,
    PushStatus, Result, VectorClock,
};
use sync_server::{Principal, ServerLimits, StaticTokens, SyncService};
use sync_store_memory::MemoryStore;

fn events(specs: &[(&str, Option<&str>)]) -> Vec<Event> {
    let mut book = Replica::new(NodeId::random());
    specs
        .iter()
        .map(|(agg, tenant)| {
            let mut e = NewEvent::new("k", *agg, "x");
            if let Some(t) = tenant {
                e = e.with_metadata("tenant", *t);
            }
            book.stamp(e, Hlc::now_ms()).unwrap()
        })
        .collect()
}

fn alice() -> Principal {
    Principal { name: "alice".into(), tenant: Some("acme".into()), aggregate_prefixes: vec!["todo-".into()] }
}

#[tokio::test]
async fn pushes_outside_scope_are_rejected_per_event() {
    let service = SyncService::new(MemoryStore::new());
    let batch =
        events(&[("todo-1", Some("acme")), ("todo-2", Some("globex")), ("user-1", Some("acme")), ("todo-3", None)]);
    let ack = service.push(&alice(), batch.clone()).await.unwrap();
    let statuses: Vec<_> = ack.results.iter().map(|r| (r.status, r.code)).collect();
    assert_eq!(
        statuses,
        [
            (PushStatus::Accepted, None),
            (PushStatus::Rejected, Some(ErrorCode::Forbidden)),
            (PushStatus::Rejected, Some(ErrorCode::Forbidden)),
            (PushStatus::Rejected, Some(ErrorCode::Forbidden)),
        ]
    );
    assert!(ack.results[1].reason.as_deref().unwrap().contains("has tenant \"globex\""), "{:?}", ack.results[1]);
    assert!(ack.results[2].reason.as_deref().unwrap().contains("aggregate \"user-1\" is outside"));
    let all = service.pull(&Principal::unrestricted("ops"), &Cursor::START, 100, &Filter::default()).await.unwrap();
    assert_eq!(all.events, batch[..1]);
}

#[tokio::test]
async fn pulls_are_narrowed_to_scope() {
    let service = SyncService::new(MemoryStore::new());
    let ops = Principal::unrestricted("ops");
    let batch = events(&[("todo-1", Some("acme")), ("todo-2", Some("globex")), ("user-1", Some("acme"))]);
    service.push(&ops, batch.clone()).await.unwrap();
    let page = service.pull(&alice(), &Cursor::START, 100, &Filter::default()).await.unwrap();
    assert_eq!(page.events, batch[..1]);
    assert_eq!(page.next, service.store().head_cursor().await);
    // asking for another tenant is refused, not widened
    let sneaky = Filter::default().metadata("tenant", "globex");
    let err = service.pull(&alice(), &Cursor::START, 100, &sneaky).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
}

#[tokio::test]
async fn invalid_events_are_rejected_and_valid_ones_stored() {
    let service = SyncService::new(MemoryStore::new());
    let mut batch = events(&[("a", None), ("b", None)]);
    batch[1].origin.counter = 99;
    let ack = service.push(&Principal::unrestricted("c"), batch.clone()).await.unwrap();
    assert_eq!(ack.results[0].status, PushStatus::Accepted);
    assert_eq!((ack.results[1].status, ack.results[1].code), (PushStatus::Rejected, Some(ErrorCode::InvalidInput)));
    let again = service.push(&Principal::unrestricted("c"), batch[..1].to_vec()).await.unwrap();
    assert_eq!(again.results[0].status, PushStatus::Duplicate);
}

#[tokio::test]
async fn a_repeated_event_in_one_push_is_accepted_once() {
    let service = SyncService::new(MemoryStore::new());
    let e = events(&[("a", None)]).remove(0);
    let ack = service.push(&Principal::unrestricted("c"), vec![e.clone(), e]).await.unwrap();
    let statuses: Vec<_> = ack.results.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [PushStatus::Accepted, PushStatus::Duplicate]);
}

#[tokio::test]
async fn batch_and_page_limits_apply() {
    let limits = ServerLimits { max_batch_events: 2, max_page_events: 3, ..ServerLimits::default() };
    let service = SyncService::new(MemoryStore::new()).with_limits(limits);
    let p = Principal::unrestricted("c");
    let err = service.push(&p, events(&[("a", None), ("b", None), ("c", None)])).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooLarge);
    assert!(err.to_string().contains("3 events, limit is 2"), "{err}");
    for _ in 0..3 {
        service.push(&p, events(&[("a", None), ("b", None)])).await.unwrap();
    }
    let page = service.pull(&p, &Cursor::START, 1000, &Filter::default()).await.unwrap();
    assert_eq!((page.events.len(), page.has_more), (3, true));
    assert_eq!(
        service.pull(&p, &Cursor::START, 0, &Filter::default()).await.unwrap_err().code(),
        ErrorCode::InvalidInput
    );
}

#[tokio::test]
async fn events_the_store_refuses_are_rejected_one_by_one() {
    // The store is stricter than the service (it takes no payload at all):
    // the refused events are rejected per event, the others still stored.
    let store = MemoryStore::open(
        sync_store_memory::MemoryConfig::new().limits(Limits { max_data_bytes: 1, ..Limits::default() }),
    );
    let service = SyncService::new(store);
    let mut batch = events(&[("a", None), ("b", None), ("c", None)]);
    batch[0].data = "too big".into();
    batch[2].data = "too big".into();
    let ack = service.push(&Principal::unrestricted("c"), batch.clone()).await.unwrap();
    let statuses: Vec<_> = ack.results.iter().map(|r| (r.status, r.code)).collect();
    assert_eq!(
        statuses,
        [
            (PushStatus::Rejected, Some(ErrorCode::TooLarge)),
            (PushStatus::Accepted, None),
            (PushStatus::Rejected, Some(ErrorCode::TooLarge)),
        ]
    );
    let stored = service.pull(&Principal::unrestricted("c"), &Cursor::START, 10, &Filter::default()).await.unwrap();
    assert_eq!(stored.events, batch[1..2]);
}

/// A store on a disk that stalls: fault injection for the timeout.
struct StallingStore(MemoryStore);

impl EventStore for StallingStore {
    fn node_id(&self) -> NodeId {
        self.0.node_id()
    }
    async fn append(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        self.0.append(events).await
    }
    async fn apply(&self, events: Vec<Event>, source: &str) -> Result<AppendOutcome> {
        tokio::time::sleep(Duration::from_secs(5)).await;
        self.0.apply(events, source).await
    }
    async fn load(&self, after: &Cursor, limit: usize, filter: &Filter, skip: Option<&str>) -> Result<Page> {
        tokio::time::sleep(Duration::from_secs(5)).await;
        self.0.load(after, limit, filter, skip).await
    }
    async fn load_aggregate(&self, id: &str, after: &Cursor) -> Result<Vec<Event>> {
        self.0.load_aggregate(id, after).await
    }
    async fn head(&self) -> Result<Cursor> {
        self.0.head().await
    }
    async fn wait_past(&self, after: &Cursor) -> Result<()> {
        self.0.wait_past(after).await
    }
    async fn version_vector(&self) -> Result<VectorClock> {
        self.0.version_vector().await
    }
    async fn checkpoint(&self, peer: &str) -> Result<Checkpoint> {
        self.0.checkpoint(peer).await
    }
    async fn set_checkpoint(&self, peer: &str, cp: &Checkpoint) -> Result<()> {
        self.0.set_checkpoint(peer, cp).await
    }
    async fn close(&self) -> Result<()> {
        self.0.close().await
    }
}

#[tokio::test]
async fn request_timeout_applies() {
    let limits = ServerLimits { request_timeout: Duration::from_millis(50), ..ServerLimits::default() };
    let service = SyncService::new(StallingStore(MemoryStore::new())).with_limits(limits);
    let p = Principal::unrestricted("c");
    let err = service.push(&p, events(&[("a", None)])).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Timeout);
    assert_eq!(err.to_string(), "timed out after 50 ms while push");
    let err = service.pull(&p, &Cursor::START, 10, &Filter::default()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Timeout);
}

#[tokio::test]
async fn a_waiting_pull_wakes_on_new_events_from_any_writer() {
    let store = std::sync::Arc::new(MemoryStore::new());
    let service = std::sync::Arc::new(SyncService::new(store.clone()));
    let client = Principal::unrestricted("c");
    let batch = events(&[("a", None)]);
    let wait = |after: Cursor| {
        let service = service.clone();
        tokio::spawn(async move { service.wait_past(&after).await })
    };
    // A push through the service.
    let mut waiter = wait(Cursor::START);
    service.push(&client, batch.clone()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), &mut waiter).await.expect("woken by a push").unwrap().unwrap();
    // A duplicate push adds nothing and wakes no one.
    let head = service.store().head_cursor().await;
    let mut waiter = wait(head);
    service.push(&client, batch).await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(50), &mut waiter).await.is_err(), "woken by a duplicate");
    // A write that does not go through the service at all.
    store.append(vec![NewEvent::new("k", "b", "direct")]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), waiter).await.expect("woken by the store").unwrap().unwrap();
    let page = service.pull(&client, &head, 10, &Filter::default()).await.unwrap();
    assert_eq!(page.events[0].data, "direct");
    // A cursor of another store is refused, not waited on forever.
    let foreign = Cursor::new(NodeId::random(), 1);
    assert_eq!(service.wait_past(&foreign).await.unwrap_err().code(), ErrorCode::BadCursor);
}

#[tokio::test]
async fn tokens_authenticate() {
    let service = SyncService::new(MemoryStore::new()).with_authorizer(StaticTokens::new().with("t0k", alice()));
    assert_eq!(service.authenticate(Some("t0k")).unwrap(), alice());
    assert_eq!(service.authenticate(Some("nope")).unwrap_err().code(), ErrorCode::Unauthorized);
    assert_eq!(service.authenticate(None).unwrap_err().code(), ErrorCode::Unauthorized);
    assert!(StaticTokens::from_json("[1]").is_err());
    assert!(StaticTokens::from_json(r#"{"": {"name": "x"}}"#).is_err());
}

trait HeadCursor {
    async fn head_cursor(&self) -> Cursor;
}

impl HeadCursor for MemoryStore {
    async fn head_cursor(&self) -> Cursor {
        sync_core::EventStore::head(self).await.unwrap()
    }
}
