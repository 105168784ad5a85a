//! Transports without a network, for deterministic tests of sync logic.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sync_core::{Cursor, Error, Event, EventStore, Filter, NodeId, Page, PushAck, Result, Transport};
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
