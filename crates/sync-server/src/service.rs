//! [`SyncService`]: push and pull, independent of any transport.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sync_core::{
    Cursor, Error, ErrorCode, Event, EventStore, Filter, Hlc, Limits, Page, PushAck, PushResult, PushStatus, Result,
    apply_or_each,
};
use tracing::{debug, warn};

use crate::auth::{AllowAll, Authorizer, Principal};

/// Limits every transport enforces for the service. Defaults are safe for a
/// public endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Most events in one push (default 10,000).
    pub max_batch_events: usize,
    /// Most events in one pull page; larger `limit`s are lowered to this (default 5,000).
    pub max_page_events: usize,
    /// Largest request body as received, compressed or not (default 16 MiB).
    pub max_body_bytes: usize,
    /// Largest request body after decompression (default 64 MiB).
    pub max_decompressed_bytes: usize,
    /// Longest a push or pull may take before it fails with a timeout (default 30 s).
    pub request_timeout: Duration,
    /// Per-event validation (sizes, clock entries).
    pub events: Limits,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_batch_events: 10_000,
            max_page_events: 5_000,
            max_body_bytes: 16 << 20,
            max_decompressed_bytes: 64 << 20,
            request_timeout: Duration::from_secs(30),
            events: Limits::default(),
        }
    }
}

/// The server side of sync: validates, authorizes and applies pushes
/// idempotently, serves pulls from the store's change feed, and tells live
/// transports when the feed moves ([`SyncService::wait_past`]). Transports (HTTP, WebSocket, gRPC) are thin
/// adapters over it.
///
/// ```
/// use sync_core::raw::Replica;
/// use sync_core::{Cursor, Filter, Hlc, NewEvent, NodeId, PushStatus};
/// use sync_server::{Principal, SyncService};
/// use sync_store_memory::MemoryStore;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let service = SyncService::new(MemoryStore::new());
/// let client = Principal::unrestricted("client");
/// let mut book = Replica::new(NodeId::random());
/// let event = book.stamp(NewEvent::new("note.added", "note-1", "hi"), Hlc::now_ms())?;
/// let ack = service.push(&client, vec![event.clone()]).await?;
/// assert_eq!(ack.results[0].status, PushStatus::Accepted);
/// let again = service.push(&client, vec![event]).await?;
/// assert_eq!(again.results[0].status, PushStatus::Duplicate);
/// let page = service.pull(&client, &Cursor::START, 100, &Filter::default()).await?;
/// assert_eq!(page.events.len(), 1);
/// # Ok::<_, sync_core::Error>(()) }).unwrap();
/// ```
pub struct SyncService<S> {
    store: S,
    authorizer: Arc<dyn Authorizer>,
    limits: ServerLimits,
}

impl<S: EventStore> SyncService<S> {
    /// A service over `store` that lets everyone in ([`AllowAll`]) with default limits.
    pub fn new(store: S) -> Self {
        SyncService { store, authorizer: Arc::new(AllowAll), limits: ServerLimits::default() }
    }

    /// Uses `authorizer` to authenticate requests.
    pub fn with_authorizer(mut self, authorizer: impl Authorizer) -> Self {
        self.authorizer = Arc::new(authorizer);
        self
    }

    /// Uses `limits` instead of the defaults.
    pub fn with_limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits transports must enforce.
    pub fn limits(&self) -> &ServerLimits {
        &self.limits
    }

    /// The store behind the service.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Authenticates the bearer token of a request.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Principal> {
        self.authorizer.authenticate(token).map_err(|denied| {
            let message = match denied {
                crate::Denied::MissingToken => "missing bearer token",
                crate::Denied::UnknownToken => "unknown bearer token",
            };
            Error::Remote { code: ErrorCode::Unauthorized, message: message.into() }
        })
    }

    /// Stores pushed events and answers per event. Events outside the
    /// principal's scope or failing validation are rejected one by one; the
    /// rest are applied in one atomic batch. If the store fails, the whole
    /// push fails — an error is never reported as accepted.
    pub async fn push(&self, principal: &Principal, events: Vec<Event>) -> Result<PushAck> {
        if events.len() > self.limits.max_batch_events {
            return Err(Error::Remote {
                code: ErrorCode::TooLarge,
                message: format!("push has {} events, limit is {}", events.len(), self.limits.max_batch_events),
            });
        }
        let started = Instant::now();
        let mut results: Vec<PushResult> = Vec::with_capacity(events.len());
        let mut accepted = Vec::with_capacity(events.len());
        let now = Hlc::now_ms();
        for event in events {
            let verdict = match principal.check(&event) {
                Err(why) => Err((ErrorCode::Forbidden, why)),
                Ok(()) => self.limits.events.check_remote(&event, now).map_err(|e| (e.code(), e.to_string())),
            };
            match verdict {
                Ok(()) => {
                    results.push(PushResult { id: event.id, status: PushStatus::Accepted, code: None, reason: None });
                    accepted.push(event);
                }
                Err((code, reason)) => results.push(PushResult {
                    id: event.id,
                    status: PushStatus::Rejected,
                    code: Some(code),
                    reason: Some(reason),
                }),
            }
        }
        // The store may refuse events the service passed (its own limits are
        // stricter, or a merged aggregate clock outgrew its limit): those are
        // rejected one by one, so the client does not retry them forever.
        let reject = |id, e: Error| {
            for r in results.iter_mut().filter(|r| r.id == id && r.status == PushStatus::Accepted) {
                *r = PushResult { id, status: PushStatus::Rejected, code: Some(e.code()), reason: Some(e.to_string()) };
            }
        };
        let outcome = self.timed("push", apply_or_each(&self.store, accepted, &principal.name, reject)).await?;
        // The first copy of each inserted id is the accepted one; any other
        // copy (already stored, or repeated in this batch) is a duplicate.
        let mut fresh: std::collections::HashSet<_> = outcome.inserted.iter().copied().collect();
        for r in results.iter_mut().filter(|r| r.status == PushStatus::Accepted) {
            if !fresh.remove(&r.id) {
                r.status = PushStatus::Duplicate;
            }
        }
        metrics::counter!("synckit_server_push_events_total", "status" => "accepted")
            .increment(outcome.inserted.len() as u64);
        metrics::counter!("synckit_server_push_events_total", "status" => "duplicate")
            .increment(outcome.duplicates.len() as u64);
        let rejected = results.iter().filter(|r| r.status == PushStatus::Rejected).count();
        metrics::counter!("synckit_server_push_events_total", "status" => "rejected").increment(rejected as u64);
        metrics::histogram!("synckit_server_push_seconds").record(started.elapsed().as_secs_f64());
        if rejected > 0 {
            warn!(principal = %principal.name, rejected, "push had rejected events");
        }
        debug!(principal = %principal.name, inserted = outcome.inserted.len(), duplicates = outcome.duplicates.len(), rejected, "push");
        Ok(PushAck { results, span: outcome.span })
    }

    /// One page of the change feed after `after`, narrowed to the
    /// principal's scope. `limit` is lowered to `max_page_events`.
    pub async fn pull(&self, principal: &Principal, after: &Cursor, limit: usize, filter: &Filter) -> Result<Page> {
        if limit == 0 {
            return Err(Error::invalid("limit must be at least 1"));
        }
        let started = Instant::now();
        let limit = limit.min(self.limits.max_page_events);
        let filter = principal.narrow(filter)?;
        let mut page = self.timed("pull", self.store.load(after, limit, &filter, None)).await?;
        page.events.retain(|e| principal.allows(e));
        metrics::counter!("synckit_server_pull_events_total").increment(page.events.len() as u64);
        metrics::histogram!("synckit_server_pull_seconds").record(started.elapsed().as_secs_f64());
        Ok(page)
    }

    /// Resolves once the store's feed holds an event after `after`, whoever
    /// wrote it: a push through this service, a manager or another service
    /// sharing the store, or (for stores that hear of them) another process.
    /// Live transports wait on this, then [`SyncService::pull`]. A cursor of
    /// another store is a `bad_cursor` error.
    pub async fn wait_past(&self, after: &Cursor) -> Result<()> {
        self.store.wait_past(after).await
    }

    async fn timed<T>(&self, action: &str, fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        let limit = self.limits.request_timeout;
        tokio::time::timeout(limit, fut)
            .await
            .map_err(|_| Error::Timeout { action: action.into(), millis: limit.as_millis() as u64 })?
    }
}
