//! The client side of a sync protocol: [`Transport`].

use std::future::Future;

use futures_core::Stream;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::{Cursor, ErrorCode, Event, EventId, FeedSpan, Filter, NodeId, Page};

/// How a client reaches one peer (a server, usually). Implemented by
/// `sync-transport-http` and the other transport crates; the sync manager
/// drives it.
pub trait Transport: Send + Sync + 'static {
    /// A name for the peer in logs and messages (for HTTP: the base URL).
    fn peer(&self) -> &str;

    /// The id of the peer's store (its [`EventStore::node_id`](crate::EventStore::node_id)).
    /// The sync manager keys its checkpoints and the source of pulled
    /// events by it, so that two spellings of one peer's address share
    /// them, and a peer replaced behind the same address gets new ones.
    fn peer_id(&self) -> impl Future<Output = Result<NodeId>> + Send;

    /// Sends events; the peer stores them idempotently and answers per event.
    fn push(&self, events: Vec<Event>) -> impl Future<Output = Result<PushAck>> + Send;

    /// Reads one page of the peer's change feed after `after`.
    fn pull(&self, after: &Cursor, limit: usize, filter: &Filter) -> impl Future<Output = Result<Page>> + Send;
}

/// A transport that can compress what it sends. Lets the sync manager's
/// `compression(true)` switch it on; transports that cannot compress do not
/// implement it, so the option does not exist for them.
pub trait CompressRequests: Transport + Sized {
    /// This transport with request compression on or off.
    fn with_compression(self, enabled: bool) -> Self;
}

/// One item of a live subscription (see [`Subscribe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Live {
    /// The peer's feed moved past where the subscription stands: pull to
    /// get what is new. Transports that only wake clients send these.
    Moved,
    /// The events after `after`, as a page: the next item continues at
    /// `page.next`.
    Events {
        /// Where the page starts.
        after: Cursor,
        /// The events, and where the next page starts.
        page: Page,
    },
}

/// A transport that can follow the peer's feed live, beside [`Transport`]'s
/// push and pull. The sync manager's `start_live_sync` exists only for
/// transports that implement it.
///
/// The resume rule: a subscription from `after` yields only what lies after
/// `after` in the peer's feed, narrowed by `filter` like a pull, in feed
/// order; each `Events` item starts where the one before ended. The stream
/// ends (or yields an error) when the connection breaks. Subscribing again
/// from the last cursor applied, the pull checkpoint, loses nothing and
/// repeats nothing; applying an event twice would be a no-op anyway.
pub trait Subscribe: Transport {
    /// The stream of a subscription.
    type Subscription: Stream<Item = Result<Live>> + Send + Unpin + 'static;

    /// Follows the peer's feed after `after`.
    fn subscribe(&self, after: &Cursor, filter: &Filter) -> impl Future<Output = Result<Self::Subscription>> + Send;
}

impl<T: Subscribe> Subscribe for std::sync::Arc<T> {
    type Subscription = T::Subscription;

    fn subscribe(&self, after: &Cursor, filter: &Filter) -> impl Future<Output = Result<Self::Subscription>> + Send {
        (**self).subscribe(after, filter)
    }
}

impl<T: Transport> Transport for std::sync::Arc<T> {
    fn peer(&self) -> &str {
        (**self).peer()
    }

    fn peer_id(&self) -> impl Future<Output = Result<NodeId>> + Send {
        (**self).peer_id()
    }

    fn push(&self, events: Vec<Event>) -> impl Future<Output = Result<PushAck>> + Send {
        (**self).push(events)
    }

    fn pull(&self, after: &Cursor, limit: usize, filter: &Filter) -> impl Future<Output = Result<Page>> + Send {
        (**self).pull(after, limit, filter)
    }
}

/// The peer's answer to a push: one entry per pushed event, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushAck {
    /// Per-event outcome.
    pub results: Vec<PushResult>,
    /// Where the accepted events landed in the peer's feed, when they are
    /// all that lies in that stretch of it (see [`FeedSpan`]): a client
    /// whose pull cursor is `span.after` may move it to `span.head`, since
    /// all between is what it just pushed.
    #[serde(default)]
    pub span: Option<FeedSpan>,
}

impl PushAck {
    /// Number of events with `status`.
    pub fn count(&self, status: PushStatus) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }
}

/// The outcome of one pushed event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushResult {
    /// The event.
    pub id: EventId,
    /// What happened to it.
    pub status: PushStatus,
    /// For rejected events: why, as a stable code.
    #[serde(default)]
    pub code: Option<ErrorCode>,
    /// For rejected events: a human-readable reason.
    #[serde(default)]
    pub reason: Option<String>,
}

/// What the peer did with a pushed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushStatus {
    /// Stored now.
    Accepted,
    /// Already stored before; nothing changed.
    Duplicate,
    /// Not stored; see `code` and `reason`.
    Rejected,
}
