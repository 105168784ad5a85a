//! The transport conformance suite: one async function per rule of the
//! client/server contract. Run them all with [`crate::transport_suite!`].
//!
//! Each case builds a [`SyncService`] over a [`MemoryStore`], hands it to the
//! factory to serve over the real transport (real sockets), and drives the
//! factory's client [`Transport`] against it.

use std::future::Future;

use sync_core::raw::Replica;
use sync_core::{Cursor, ErrorCode, Event, EventStore, Filter, Hlc, NewEvent, NodeId, PushStatus, Transport};
use sync_server::{Principal, ServerLimits, StaticTokens, SyncService};

use sync_store_memory::MemoryStore;

/// Serves a [`SyncService`] over a transport and connects clients to it.
pub trait TransportFactory: Send + Sync {
    /// The client side.
    type Transport: Transport;
    /// Whatever keeps the server running (dropped at the end of a case).
    type Server: Send + Sync;

    /// Starts serving `service` (on 127.0.0.1, port 0 for socket transports).
    fn serve(&self, service: SyncService<MemoryStore>) -> impl Future<Output = Self::Server> + Send;

    /// A client of `server` that sends `token` as its bearer token.
    fn connect(&self, server: &Self::Server, token: Option<&str>) -> impl Future<Output = Self::Transport> + Send;
}

/// The tokens every case's server accepts.
const OPS: &str = "token-ops";
const ALICE: &str = "token-alice";

fn service(store: &MemoryStore, limits: ServerLimits) -> SyncService<MemoryStore> {
    let tokens = StaticTokens::new().with(OPS, Principal::unrestricted("ops")).with(
        ALICE,
        Principal { name: "alice".into(), tenant: Some("acme".into()), aggregate_prefixes: vec!["todo-".into()] },
    );
    SyncService::new(store.clone()).with_authorizer(tokens).with_limits(limits)
}

async fn setup<F: TransportFactory>(f: &F, limits: ServerLimits) -> (MemoryStore, F::Server, F::Transport) {
    let store = MemoryStore::new();
    let server = f.serve(service(&store, limits)).await;
    let client = f.connect(&server, Some(OPS)).await;
    (store, server, client)
}

fn events(n: usize, kind: &str, agg: &str, tenant: &str) -> Vec<Event> {
    let mut book = Replica::new(NodeId::random());
    (0..n)
        .map(|i| {
            let e =
                NewEvent::new(kind, format!("{agg}{}", i % 3), format!("payload {i}")).with_metadata("tenant", tenant);
            book.stamp(e, Hlc::now_ms()).expect("valid")
        })
        .collect()
}

async fn pull_all<T: Transport>(t: &T, filter: &Filter, limit: usize) -> (Vec<Event>, Cursor) {
    let (mut cursor, mut out) = (Cursor::START, Vec::new());
    loop {
        let page = t.pull(&cursor, limit, filter).await.expect("pull");
        out.extend(page.events);
        cursor = page.next;
        if !page.has_more {
            return (out, cursor);
        }
    }
}

/// `peer_id` names the server's store, with a token or without one: the
/// sync manager keys its checkpoints by it.
pub async fn peer_id_names_the_server_store<F: TransportFactory>(f: &F) {
    let (store, server, client) = setup(f, ServerLimits::default()).await;
    assert_eq!(client.peer_id().await.expect("peer id"), store.node_id());
    let anonymous = f.connect(&server, None).await;
    assert_eq!(anonymous.peer_id().await.expect("peer id without a token"), store.node_id());
}

/// Pushed events come back from a pull, headers intact.
pub async fn push_then_pull_round_trips<F: TransportFactory>(f: &F) {
    let (store, _server, client) = setup(f, ServerLimits::default()).await;
    let sent = events(5, "todo.renamed", "todo-", "acme");
    let ack = client.push(sent.clone()).await.expect("push");
    assert_eq!(ack.results.len(), 5);
    assert!(ack.results.iter().zip(&sent).all(|(r, e)| r.id == e.id && r.status == PushStatus::Accepted));
    let (got, next) = pull_all(&client, &Filter::default(), 100).await;
    assert_eq!(got, sent);
    assert_eq!(next, store.head().await.unwrap());
    let nothing = client.pull(&next, 100, &Filter::default()).await.unwrap();
    assert!(nothing.events.is_empty() && !nothing.has_more && nothing.next == next);
}

/// Pushing the same events twice stores them once and says so.
pub async fn duplicate_push_is_acknowledged_as_duplicate<F: TransportFactory>(f: &F) {
    let (store, _server, client) = setup(f, ServerLimits::default()).await;
    let sent = events(3, "k", "todo-", "acme");
    client.push(sent[..2].to_vec()).await.unwrap();
    let ack = client.push(sent.clone()).await.unwrap();
    let statuses: Vec<_> = ack.results.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [PushStatus::Duplicate, PushStatus::Duplicate, PushStatus::Accepted]);
    assert_eq!(store.head().await.unwrap().seq_for(store.node_id()).unwrap(), 3);
}

/// Pages honour `limit` and chain by cursor.
pub async fn pulls_paginate<F: TransportFactory>(f: &F) {
    let (_store, _server, client) = setup(f, ServerLimits::default()).await;
    let sent = events(25, "k", "todo-", "acme");
    client.push(sent.clone()).await.unwrap();
    let first = client.pull(&Cursor::START, 10, &Filter::default()).await.unwrap();
    assert_eq!((first.events.len(), first.has_more), (10, true));
    let second = client.pull(&first.next, 10, &Filter::default()).await.unwrap();
    assert_eq!(second.events, sent[10..20]);
    let third = client.pull(&second.next, 10, &Filter::default()).await.unwrap();
    assert_eq!((third.events.as_slice(), third.has_more), (&sent[20..], false));
}

/// An interrupted pull resumes from its last cursor with a new connection,
/// with nothing repeated or skipped.
pub async fn interrupted_pull_resumes_from_its_cursor<F: TransportFactory>(f: &F) {
    let (_store, server, client) = setup(f, ServerLimits::default()).await;
    let sent = events(30, "k", "todo-", "acme");
    client.push(sent.clone()).await.unwrap();
    let page = client.pull(&Cursor::START, 12, &Filter::default()).await.unwrap();
    let saved = page.next.to_string();
    drop(client);
    let fresh = f.connect(&server, Some(OPS)).await;
    let resume: Cursor = saved.parse().unwrap();
    let mut got = page.events;
    let (rest, _) = {
        let (mut cursor, mut out) = (resume, Vec::new());
        loop {
            let p = fresh.pull(&cursor, 7, &Filter::default()).await.unwrap();
            out.extend(p.events);
            cursor = p.next;
            if !p.has_more {
                break (out, cursor);
            }
        }
    };
    got.extend(rest);
    assert_eq!(got, sent);
}

/// Filters travel to the server and are applied there.
pub async fn filters_are_applied_by_the_server<F: TransportFactory>(f: &F) {
    let (_store, _server, client) = setup(f, ServerLimits::default()).await;
    let a = events(6, "order.placed", "order-", "acme");
    let b = events(6, "order.paid", "user-", "globex");
    client.push(a.clone()).await.unwrap();
    client.push(b.clone()).await.unwrap();
    let (paid, _) = pull_all(&client, &Filter::default().kind("order.paid"), 4).await;
    assert_eq!(paid, b);
    let (orders, _) = pull_all(&client, &Filter::default().aggregate_prefix("order-"), 4).await;
    assert_eq!(orders, a);
    let (globex, _) = pull_all(&client, &Filter::default().metadata("tenant", "globex").kind("order.paid"), 100).await;
    assert_eq!(globex, b);
    let multi = Filter::default().kind("order.paid").kind("order.placed").aggregate_prefix("user-");
    let (users, _) = pull_all(&client, &multi, 100).await;
    assert_eq!(users, b);
    let (not_a, _) = pull_all(&client, &Filter::default().exclude_origin(a[0].origin.node), 3).await;
    assert_eq!(not_a, b, "exclude_origin leaves out one node's events");
}

/// Errors arrive with their stable codes.
pub async fn errors_carry_stable_codes<F: TransportFactory>(f: &F) {
    let limits = ServerLimits { max_batch_events: 4, ..ServerLimits::default() };
    let (store, server, client) = setup(f, limits).await;
    let foreign = Cursor::new(NodeId::random(), 3);
    let code = |r: sync_core::Result<_>| r.map(|_: sync_core::Page| ()).unwrap_err().code();
    assert_eq!(code(client.pull(&foreign, 10, &Filter::default()).await), ErrorCode::BadCursor);
    assert_eq!(code(client.pull(&Cursor::START, 0, &Filter::default()).await), ErrorCode::InvalidInput);
    let err = client.push(events(5, "k", "todo-", "acme")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooLarge);

    let anonymous = f.connect(&server, None).await;
    assert_eq!(code(anonymous.pull(&Cursor::START, 10, &Filter::default()).await), ErrorCode::Unauthorized);
    assert_eq!(anonymous.push(events(1, "k", "todo-", "acme")).await.unwrap_err().code(), ErrorCode::Unauthorized);
    let stranger = f.connect(&server, Some("not-a-token")).await;
    assert_eq!(code(stranger.pull(&Cursor::START, 10, &Filter::default()).await), ErrorCode::Unauthorized);

    let alice = f.connect(&server, Some(ALICE)).await;
    let other_tenant = Filter::default().metadata("tenant", "globex");
    assert_eq!(code(alice.pull(&Cursor::START, 10, &other_tenant).await), ErrorCode::Forbidden);
    let mut mixed = events(2, "k", "todo-", "acme");
    mixed.extend(events(1, "k", "todo-", "globex"));
    mixed.extend(events(1, "k", "user-", "acme"));
    let ack = alice.push(mixed).await.unwrap();
    let codes: Vec<_> = ack.results.iter().map(|r| (r.status, r.code)).collect();
    assert_eq!(
        codes,
        [
            (PushStatus::Accepted, None),
            (PushStatus::Accepted, None),
            (PushStatus::Rejected, Some(ErrorCode::Forbidden)),
            (PushStatus::Rejected, Some(ErrorCode::Forbidden)),
        ]
    );
    let mut bad = events(2, "k", "todo-", "acme");
    bad[1].clock = sync_core::VectorClock::new();
    let ack = client.push(bad).await.unwrap();
    assert_eq!((ack.results[1].status, ack.results[1].code), (PushStatus::Rejected, Some(ErrorCode::InvalidInput)));
    assert!(ack.results[1].reason.is_some());
    // only the three valid, in-scope events were stored
    assert_eq!(store.head().await.unwrap().seq_for(store.node_id()).unwrap(), 3);
}

/// Expands to one `#[test]` per rule of the transport contract, each run
/// against the given [`TransportFactory`].
#[macro_export]
macro_rules! transport_suite {
    ($factory:expr) => {
        $crate::transport_suite!(@cases $factory;
            peer_id_names_the_server_store,
            push_then_pull_round_trips,
            duplicate_push_is_acknowledged_as_duplicate,
            pulls_paginate,
            interrupted_pull_resumes_from_its_cursor,
            filters_are_applied_by_the_server,
            errors_carry_stable_codes,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::__run(async {
                    let factory = $factory;
                    $crate::transport_suite::$case(&factory).await
                });
            }
        )*
    };
}
