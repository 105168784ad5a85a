//! Transports without a network, for deterministic tests of sync logic.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_core::Stream;
use sync_core::{Cursor, Error, Event, EventStore, Filter, Live, NodeId, Page, PushAck, Result, Subscribe, Transport};
use sync_server::{Principal, SyncService};

/// A client [`Transport`] that calls a [`SyncService`] in the same process:
/// the whole protocol minus the wire. Sync logic tests and property tests
/// use it to run thousands of schedules quickly; the transport suites cover
/// the wire.
///
/// ```
/// use std::sync::Arc;
/// use sync_core::{Cursor, Filter, Transport};
/// use sync_server::SyncService;
/// use sync_store_memory::MemoryStore;
/// use sync_testkit::InProcessTransport;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let server = Arc::new(SyncService::new(MemoryStore::new()));
/// let client = InProcessTransport::new(server, "server");
/// let page = client.pull(&Cursor::START, 10, &Filter::default()).await?;
/// assert!(page.events.is_empty());
/// # Ok::<_, sync_core::Error>(()) }).unwrap();
/// ```
pub struct InProcessTransport<S> {
    service: Arc<SyncService<S>>,
    principal: Principal,
    peer: String,
}

impl<S: EventStore> InProcessTransport<S> {
    /// A client of `service` named `peer`, acting as an unrestricted principal.
    pub fn new(service: Arc<SyncService<S>>, peer: impl Into<String>) -> Self {
        let peer = peer.into();
        InProcessTransport { service, principal: Principal::unrestricted(format!("client-of-{peer}")), peer }
    }

    /// Acts as `principal` instead.
    pub fn with_principal(mut self, principal: Principal) -> Self {
        self.principal = principal;
        self
    }
}

impl<S: EventStore> Transport for InProcessTransport<S> {
    fn peer(&self) -> &str {
        &self.peer
    }

    async fn peer_id(&self) -> Result<NodeId> {
        Ok(self.service.store().node_id())
    }

    async fn push(&self, events: Vec<Event>) -> Result<PushAck> {
        self.service.push(&self.principal, events).await
    }

    async fn pull(&self, after: &Cursor, limit: usize, filter: &Filter) -> Result<Page> {
        self.service.pull(&self.principal, after, limit, filter).await
    }
}

/// Most events in one `Live::Events` item of an in-process subscription.
const LIVE_PAGE: usize = 1_000;

/// The live feed of the service, as a wire transport would carry it: wait
/// until the feed moves past the cursor, pull what the principal may see,
/// and hand it over as one `Events` item; a pull that finds only events
/// outside the filter moves the cursor and waits again.
impl<S: EventStore> Subscribe for InProcessTransport<S> {
    type Subscription = Pin<Box<dyn Stream<Item = Result<Live>> + Send>>;

    async fn subscribe(&self, after: &Cursor, filter: &Filter) -> Result<Self::Subscription> {
        let (service, principal, filter) = (self.service.clone(), self.principal.clone(), filter.clone());
        // A cursor or filter the service refuses fails the subscription
        // itself, as it fails a pull.
        service.pull(&principal, after, 1, &filter).await?;
        let items = futures_util::stream::unfold(Some(*after), move |cursor| {
            let (service, principal, filter) = (service.clone(), principal.clone(), filter.clone());
            async move {
                let mut after = cursor?;
                loop {
                    if let Err(e) = service.wait_past(&after).await {
                        return Some((Err(e), None));
                    }
                    match service.pull(&principal, &after, LIVE_PAGE, &filter).await {
                        Err(e) => return Some((Err(e), None)),
                        Ok(page) if page.events.is_empty() => after = page.next,
                        Ok(page) => {
                            let next = page.next;
                            return Some((Ok(Live::Events { after, page }), Some(next)));
                        }
                    }
                }
            }
        });
        Ok(Box::pin(items))
    }
}

/// Wraps a transport and fails calls on demand: a network that drops out.
/// Fault tests use it to interrupt syncs at exact points.
pub struct FlakyTransport<T> {
    inner: T,
    calls: AtomicUsize,
    fail_from: AtomicUsize,
}

impl<T: Transport> FlakyTransport<T> {
    /// Passes every call through until told otherwise.
    pub fn new(inner: T) -> Self {
        FlakyTransport { inner, calls: AtomicUsize::new(0), fail_from: AtomicUsize::new(usize::MAX) }
    }

    /// Calls numbered `n` and later (counting from 0 over every call) fail
    /// with [`Error::Unavailable`]; `usize::MAX` heals the network.
    pub fn fail_from_call(&self, n: usize) {
        self.fail_from.store(n, Ordering::SeqCst);
    }

    /// Calls made so far, failed ones included.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n >= self.fail_from.load(Ordering::SeqCst) {
            return Err(Error::Unavailable { message: format!("network down (call {n})") });
        }
        Ok(())
    }
}

impl<T: Transport> Transport for FlakyTransport<T> {
    fn peer(&self) -> &str {
        self.inner.peer()
    }

    async fn peer_id(&self) -> Result<NodeId> {
        self.check()?;
        self.inner.peer_id().await
    }

    async fn push(&self, events: Vec<Event>) -> Result<PushAck> {
        self.check()?;
        self.inner.push(events).await
    }

    async fn pull(&self, after: &Cursor, limit: usize, filter: &Filter) -> Result<Page> {
        self.check()?;
        self.inner.pull(after, limit, filter).await
    }
}

/// Subscribing counts as a call; a subscription already open is not cut.
impl<T: Subscribe> Subscribe for FlakyTransport<T> {
    type Subscription = T::Subscription;

    async fn subscribe(&self, after: &Cursor, filter: &Filter) -> Result<Self::Subscription> {
        self.check()?;
        self.inner.subscribe(after, filter).await
    }
}
