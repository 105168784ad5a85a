//! The [`EventStore`] trait and the rules every store shares.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::clock::DEFAULT_MAX_CLOCK_ENTRIES;
use crate::error::{Error, Result};
use crate::{Cursor, Event, EventId, Filter, NewEvent, NodeId, VectorClock};

/// A durable, append-only, deduplicated event log with a change feed.
///
/// Contract (checked by `sync-testkit`'s `store_suite!`):
/// - the log is a grow-only set keyed by [`EventId`]: adding an id already
///   present is reported in [`AppendOutcome::duplicates`] and changes nothing;
/// - a batch follows the one batch rule of [`crate::raw::append_plan`] and
///   [`crate::raw::apply_plan`], and is atomic: if it is rejected, nothing
///   of it is written;
/// - once `append` / `apply` returns `Ok`, the events survive a process crash;
/// - the feed is a stable prefix: [`EventStore::load`] returns every event
///   after a cursor exactly once, in feed order, even while other tasks
///   append, and once a cursor is handed out no event can later appear
///   before it. Positions need not be dense;
/// - a cursor past the head, or of another store, is an error, never an
///   empty page;
/// - [`EventStore::wait_past`] wakes on every write through any handle of
///   the store in the process.
///
/// Store authors build on [`crate::raw`].
pub trait EventStore: Send + Sync + 'static {
    /// This replica's id, created on first open and kept across reopen.
    fn node_id(&self) -> NodeId;

    /// Appends local events: the store stamps each with its origin [`crate::Dot`],
    /// aggregate-scoped clock and HLC.
    fn append(&self, events: Vec<NewEvent>) -> impl Future<Output = Result<AppendOutcome>> + Send;

    /// Adds events made elsewhere, keeping their header. `source` names the
    /// peer they came from, so a push to that peer can skip them.
    fn apply(&self, events: Vec<Event>, source: &str) -> impl Future<Output = Result<AppendOutcome>> + Send;

    /// Up to `limit` events after `after` that pass `filter`, in feed
    /// order, leaving out those applied from `skip_source`.
    fn load(
        &self,
        after: &Cursor,
        limit: usize,
        filter: &Filter,
        skip_source: Option<&str>,
    ) -> impl Future<Output = Result<Page>> + Send;

    /// Every event of one aggregate after `after`, in feed order.
    fn load_aggregate(&self, aggregate_id: &str, after: &Cursor) -> impl Future<Output = Result<Vec<Event>>> + Send;

    /// The merge of the clocks of every event of one aggregate (empty if none).
    ///
    /// The default reads the whole aggregate; stores that keep the clock
    /// (they must, for the batch rule) should answer with one lookup.
    fn aggregate_clock(&self, aggregate_id: &str) -> impl Future<Output = Result<VectorClock>> + Send {
        async move {
            let mut clock = VectorClock::new();
            for e in self.load_aggregate(aggregate_id, &Cursor::START).await? {
                clock.merge(&e.clock);
            }
            Ok(clock)
        }
    }

    /// The cursor after the last event of the feed.
    fn head(&self) -> impl Future<Output = Result<Cursor>> + Send;

    /// Resolves once the feed holds an event after `after` (at once if it
    /// already does): writes through any handle of this store in the
    /// process wake it, and writes by other processes too where the store
    /// can learn of them. Stores answer it with a [`crate::raw::FeedSignal`].
    fn wait_past(&self, after: &Cursor) -> impl Future<Output = Result<()>> + Send;

    /// The highest counter held per origin node.
    fn version_vector(&self) -> impl Future<Output = Result<VectorClock>> + Send;

    /// The sync progress with `peer` ([`Checkpoint::default`] if never set).
    fn checkpoint(&self, peer: &str) -> impl Future<Output = Result<Checkpoint>> + Send;

    /// Records the sync progress with `peer`.
    fn set_checkpoint(&self, peer: &str, checkpoint: &Checkpoint) -> impl Future<Output = Result<()>> + Send;

    /// Flushes and releases the store.
    fn close(&self) -> impl Future<Output = Result<()>> + Send;
}

/// A shared store is a store: the server and a manager can hold one together.
impl<S: EventStore> EventStore for std::sync::Arc<S> {
    fn node_id(&self) -> NodeId {
        (**self).node_id()
    }
    fn append(&self, events: Vec<NewEvent>) -> impl Future<Output = Result<AppendOutcome>> + Send {
        (**self).append(events)
    }
    fn apply(&self, events: Vec<Event>, source: &str) -> impl Future<Output = Result<AppendOutcome>> + Send {
        (**self).apply(events, source)
    }
    fn load(
        &self,
        after: &Cursor,
        limit: usize,
        filter: &Filter,
        skip_source: Option<&str>,
    ) -> impl Future<Output = Result<Page>> + Send {
        (**self).load(after, limit, filter, skip_source)
    }
    fn load_aggregate(&self, aggregate_id: &str, after: &Cursor) -> impl Future<Output = Result<Vec<Event>>> + Send {
        (**self).load_aggregate(aggregate_id, after)
    }
    fn aggregate_clock(&self, aggregate_id: &str) -> impl Future<Output = Result<VectorClock>> + Send {
        (**self).aggregate_clock(aggregate_id)
    }
    fn head(&self) -> impl Future<Output = Result<Cursor>> + Send {
        (**self).head()
    }
    fn wait_past(&self, after: &Cursor) -> impl Future<Output = Result<()>> + Send {
        (**self).wait_past(after)
    }
    fn version_vector(&self) -> impl Future<Output = Result<VectorClock>> + Send {
        (**self).version_vector()
    }
    fn checkpoint(&self, peer: &str) -> impl Future<Output = Result<Checkpoint>> + Send {
        (**self).checkpoint(peer)
    }
    fn set_checkpoint(&self, peer: &str, checkpoint: &Checkpoint) -> impl Future<Output = Result<()>> + Send {
        (**self).set_checkpoint(peer, checkpoint)
    }
    fn close(&self) -> impl Future<Output = Result<()>> + Send {
        (**self).close()
    }
}

/// What an append or apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppendOutcome {
    /// Ids written by this call, in batch order.
    pub inserted: Vec<EventId>,
    /// Ids that were already present (or repeated within the batch).
    pub duplicates: Vec<EventId>,
    /// Inserted ids (of `apply`) whose clock did not cover everything the
    /// store already held of their aggregate when they were inserted. Every
    /// new conflict involves at least one of these, so the sync manager only
    /// inspects their aggregates.
    pub concurrent: Vec<EventId>,
    /// Where the inserted events landed in the feed, when they are all that
    /// lies in that stretch of it; `None` when nothing was inserted or the
    /// store cannot tell. The sync manager uses it to move its push
    /// checkpoint over events pulled from the peer it pushes to, so the
    /// next push does not walk them.
    pub span: Option<FeedSpan>,
}

/// A stretch of a store's feed that holds the events of one batch and
/// nothing else: every event after `after` up to `head` is the batch's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedSpan {
    /// The head right before the batch.
    pub after: Cursor,
    /// The head right after it.
    pub head: Cursor,
}

impl FeedSpan {
    /// The span of a batch that took `store`'s feed from position `before`
    /// to `head` with nothing else in between; `None` when the batch added
    /// nothing.
    ///
    /// ```
    /// use sync_core::{Cursor, FeedSpan, NodeId};
    /// let store = NodeId::random();
    /// let span = FeedSpan::between(store, 0, 3).unwrap();
    /// assert_eq!((span.after, span.head), (Cursor::START, Cursor::new(store, 3)));
    /// assert_eq!(FeedSpan::between(store, 3, 3), None);
    /// ```
    pub fn between(store: NodeId, before: u128, head: u128) -> Option<FeedSpan> {
        (head > before).then(|| FeedSpan { after: Cursor::new(store, before), head: Cursor::new(store, head) })
    }
}

/// One page of a change feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// The events, in feed order.
    pub events: Vec<Event>,
    /// Where the next page starts; pass it back as `after`.
    pub next: Cursor,
    /// True when events may exist after `next`.
    pub has_more: bool,
}

/// Sync progress with one peer, kept in the local store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Local feed position up to which events were acknowledged by the peer.
    pub pushed: Cursor,
    /// The peer's feed position up to which events were applied locally.
    pub pulled: Cursor,
}

/// Validation limits a store applies to every event it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest `data` payload in bytes (default 1 MiB).
    pub max_data_bytes: usize,
    /// Most entries in an event's vector clock (default 256).
    pub max_clock_entries: usize,
    /// Longest aggregate id, kind, or metadata key/value in bytes (default 1 KiB).
    pub max_name_bytes: usize,
    /// How far ahead of this machine's clock a remote event's HLC may be, in
    /// milliseconds (default one day). A timestamp from the far future would
    /// pin every later local timestamp to it and make last-write-wins pick it.
    pub max_clock_skew_ms: u64,
}

/// Largest counter a dot or clock entry may carry: stores keep counters in
/// signed 64-bit columns.
pub const MAX_COUNTER: u64 = i64::MAX as u64;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_data_bytes: 1 << 20,
            max_clock_entries: DEFAULT_MAX_CLOCK_ENTRIES,
            max_name_bytes: 1024,
            max_clock_skew_ms: 24 * 60 * 60 * 1000,
        }
    }
}

impl Limits {
    /// Checks a local event before stamping.
    pub fn check_new(&self, e: &NewEvent) -> Result<()> {
        self.check_fields(e.id, &e.kind, &e.aggregate_id, e.data.len(), &e.metadata)
    }

    /// Checks an event from a peer, including its header, at wall-clock
    /// time `now_ms` (see [`Limits::max_clock_skew_ms`]).
    pub fn check_remote(&self, e: &Event, now_ms: u64) -> Result<()> {
        self.check_fields(e.id, &e.kind, &e.aggregate_id, e.data.len(), &e.metadata)?;
        e.clock.check_limit(self.max_clock_entries)?;
        if e.origin.counter == 0 || e.clock.get(e.origin.node) != e.origin.counter {
            return Err(Error::invalid(format!(
                "event {}: clock entry of its origin must equal the origin counter {}",
                e.id, e.origin.counter
            )));
        }
        if let Some((node, counter)) = e.clock.iter().find(|(_, c)| *c > MAX_COUNTER) {
            return Err(Error::invalid(format!(
                "event {}: clock entry {counter} of {node} is above the largest counter {MAX_COUNTER}",
                e.id
            )));
        }
        let latest = now_ms.saturating_add(self.max_clock_skew_ms);
        if e.hlc.wall_ms > latest {
            return Err(Error::invalid(format!(
                "event {}: timestamp {} ms is more than {} ms ahead of this clock",
                e.id, e.hlc.wall_ms, self.max_clock_skew_ms
            )));
        }
        Ok(())
    }

    fn check_fields(
        &self,
        id: EventId,
        kind: &str,
        aggregate_id: &str,
        data_len: usize,
        metadata: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        if aggregate_id.is_empty() {
            return Err(Error::invalid(format!("event {id}: aggregate id is empty")));
        }
        if kind.is_empty() {
            return Err(Error::invalid(format!("event {id}: kind is empty")));
        }
        if data_len > self.max_data_bytes {
            return Err(Error::TooLarge {
                what: format!("data of event {id}"),
                size: data_len,
                limit: self.max_data_bytes,
            });
        }
        let longest =
            metadata.iter().flat_map(|(k, v)| [k.len(), v.len()]).chain([kind.len(), aggregate_id.len()]).max();
        if let Some(len) = longest.filter(|&l| l > self.max_name_bytes) {
            return Err(Error::TooLarge {
                what: format!("a name (aggregate id, kind or metadata) of event {id}"),
                size: len,
                limit: self.max_name_bytes,
            });
        }
        Ok(())
    }
}

/// Applies `events` as one batch; if the store refuses the batch because an
/// event breaks its rules ([`Error::is_refusal`]), applies them one at a time
/// instead, hands each refused event's id and reason to `refused`, and stores
/// the rest. Failures of the store itself are returned as they are. Servers
/// and clients use it so that one bad event cannot stall a sync for good.
pub async fn apply_or_each<S: EventStore + ?Sized>(
    store: &S,
    events: Vec<Event>,
    source: &str,
    mut refused: impl FnMut(EventId, Error),
) -> Result<AppendOutcome> {
    match store.apply(events.clone(), source).await {
        Err(e) if e.is_refusal() => {
            let mut outcome = AppendOutcome::default();
            for event in events {
                let id = event.id;
                match store.apply(vec![event], source).await {
                    // The one-by-one batches tell no span of the whole.
                    Ok(one) => {
                        outcome.inserted.extend(one.inserted);
                        outcome.duplicates.extend(one.duplicates);
                        outcome.concurrent.extend(one.concurrent);
                    }
                    Err(e) if e.is_refusal() => refused(id, e),
                    Err(e) => return Err(e),
                }
            }
            Ok(outcome)
        }
        other => other,
    }
}

/// A page stops growing once its events' data reach this many bytes (8 MiB),
/// whatever its event limit, so pages of large events stay within request
/// and response body limits. A page always holds at least one event.
pub const MAX_PAGE_BYTES: usize = 8 << 20;
