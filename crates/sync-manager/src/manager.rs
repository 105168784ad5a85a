//! [`SyncManager`], its [`Builder`] and the push / pull loop.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use sync_core::{
    AppendOutcome, Checkpoint, CompressRequests, ConflictResolver, Cursor, Error, ErrorCode, Event, EventId,
    EventStore, FeedSpan, Filter, LastWriteWins, NewEvent, NodeId, Page, PushAck, PushResult, PushStatus,
    ResolvedConflict, Result, Transport, View, apply_or_each, resolved_view,
};
use tokio::sync::{Mutex, broadcast, watch};
use tracing::{Instrument, debug, info, info_span, warn};

/// Push requests in flight at once. Two keep the peer busy: it stores one
/// push while the next is encoded, sent and decoded.
const PUSH_WINDOW: usize = 2;

/// A page read for pushing holds this many pushes' worth of events and is
/// split into as many lanes by aggregate: pushes of different lanes share
/// no aggregate, so they may travel together (see
/// [`SyncManager::push_pages`]).
const PUSH_LANES: usize = PUSH_WINDOW;

/// One push request of [`SyncManager::push_pages`]: some events of one
/// page, of one lane.
struct Push {
    page: u64,
    id: u64,
    events: Vec<Event>,
    aggregates: HashSet<String>,
}

/// Events per page read for pushing: a little less than a push per lane,
/// so that a lane of many aggregates rarely needs a second, small push.
fn page_limit(batch_size: usize) -> usize {
    (batch_size.saturating_mul(PUSH_LANES).saturating_mul(7) / 8).max(batch_size)
}

/// The pushes of one page: each lane's events in feed order, in as few
/// pieces of at most `batch_size` as it takes, of equal size, with their
/// aggregates. Lanes share no aggregate. An empty page is one empty push,
/// which only moves the checkpoint.
fn lanes(events: Vec<Event>, batch_size: usize) -> Vec<(Vec<Event>, HashSet<String>)> {
    let mut lanes: [Vec<Event>; PUSH_LANES] = Default::default();
    for event in events {
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&event.aggregate_id, &mut hasher);
        lanes[(std::hash::Hasher::finish(&hasher) % PUSH_LANES as u64) as usize].push(event);
    }
    let mut pushes = Vec::new();
    for lane in lanes {
        let size = lane.len().div_ceil(lane.len().div_ceil(batch_size.max(1)).max(1)).max(1);
        let mut events = lane.into_iter().peekable();
        while events.peek().is_some() {
            let piece: Vec<Event> = events.by_ref().take(size).collect();
            let aggregates = piece.iter().map(|e| e.aggregate_id.clone()).collect();
            pushes.push((piece, aggregates));
        }
    }
    if pushes.is_empty() {
        pushes.push((Vec::new(), HashSet::new()));
    }
    pushes
}

use crate::error::{BuildError, ZeroBatchSizeSnafu, ZeroDurationSnafu};

/// Which directions a sync runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum SyncMode {
    /// Push, then pull.
    #[default]
    Both,
    /// Only send local events.
    PushOnly,
    /// Only receive the peer's events.
    PullOnly,
}

/// The transport of a local-only manager. It has no values, so a manager
/// built without [`Builder::transport`] can never reach the network.
#[derive(Debug, Clone, Copy)]
pub enum NoTransport {}

impl Transport for NoTransport {
    fn peer(&self) -> &str {
        match *self {}
    }
    async fn peer_id(&self) -> Result<sync_core::NodeId> {
        match *self {}
    }
    async fn push(&self, _: Vec<Event>) -> Result<PushAck> {
        match *self {}
    }
    async fn pull(&self, _: &Cursor, _: usize, _: &Filter) -> Result<Page> {
        match *self {}
    }
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncResult {
    /// Local events the peer stored now.
    pub pushed: usize,
    /// Local events the peer already had.
    pub push_duplicates: usize,
    /// Local events the peer refused (out of scope, invalid), with its reasons.
    /// They are not retried: the checkpoint moves past them.
    pub rejected: Vec<PushResult>,
    /// Peer events stored locally now.
    pub pulled: usize,
    /// Pulled events the local store refused (they break its limits); they
    /// are skipped so the rest of the feed still arrives.
    pub refused: Vec<Refused>,
    /// Conflict sets first seen in this sync (they contain a pulled event).
    pub conflicts_resolved: usize,
    /// Those conflicts and how the resolver decided them.
    pub conflicts: Vec<ResolvedConflict>,
    /// True when the peer no longer knew our pull cursor (it was replaced or
    /// restored): the pull restarted from the beginning of its feed, and
    /// (unless pull-only) every local event was pushed to it again.
    pub resynced: bool,
    /// Wall time of the sync.
    pub duration: Duration,
}

/// A pulled event the local store refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refused {
    /// The event.
    pub id: EventId,
    /// Why, as a stable code.
    pub code: ErrorCode,
    /// The store's message.
    pub reason: String,
}

/// Which part of a sync is running, for progress displays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Phase {
    /// No sync running.
    #[default]
    Idle,
    /// Sending local events.
    Pushing,
    /// Receiving peer events.
    Pulling,
}

/// Progress of the running sync, see [`SyncManager::progress`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// The current phase.
    pub phase: Phase,
    /// Events pushed so far in this sync.
    pub pushed: usize,
    /// Events received so far in this sync (new or not).
    pub pulled: usize,
}

type Validator = Box<dyn Fn(&NewEvent) -> std::result::Result<(), String> + Send + Sync>;

pub(crate) struct Options {
    pub(crate) filter: Filter,
    pub(crate) checkpoint_name: Option<String>,
    pub(crate) batch_size: usize,
    pub(crate) timeout: Duration,
    pub(crate) mode: SyncMode,
    pub(crate) interval: Duration,
    pub(crate) push_debounce: Duration,
    pub(crate) backoff: (Duration, Duration),
}

/// Configures a [`SyncManager`]; see [`SyncManager::builder`].
#[must_use]
pub struct Builder<S, T = NoTransport> {
    pub(crate) store: S,
    pub(crate) transport: Option<T>,
    resolver: Box<dyn ConflictResolver>,
    validator: Option<Validator>,
    options: Options,
}

impl<S: EventStore> Builder<S, NoTransport> {
    /// Syncs with a peer over `transport` (without one, the manager is local only).
    pub fn transport<T: Transport>(self, transport: T) -> Builder<S, T> {
        Builder {
            store: self.store,
            transport: Some(transport),
            resolver: self.resolver,
            validator: self.validator,
            options: self.options,
        }
    }
}

impl<S: EventStore, T: CompressRequests> Builder<S, T> {
    /// Compresses request bodies (for HTTP: zstd) or not. Only offered for
    /// transports that can compress.
    pub fn compression(mut self, enabled: bool) -> Self {
        self.transport = self.transport.map(|t| t.with_compression(enabled));
        self
    }
}

impl<S: EventStore, T: Transport> Builder<S, T> {
    /// How conflicts are resolved in views and reports (default [`LastWriteWins`]).
    pub fn resolver(mut self, resolver: impl ConflictResolver + 'static) -> Self {
        self.resolver = Box::new(resolver);
        self
    }

    /// Only events matching `filter` are pushed, and only those are asked for on pull.
    ///
    /// The checkpoints move past events the filter leaves out, so widening
    /// the filter later does not send or fetch them: give a manager with
    /// another filter its own [`Builder::checkpoint_name`].
    pub fn filter(mut self, filter: Filter) -> Self {
        self.options.filter = filter;
        self
    }

    /// Keeps this manager's progress with the peer apart from other
    /// managers' on the same store and peer (default: none, one checkpoint
    /// per peer). Managers with different filters need their own names.
    pub fn checkpoint_name(mut self, name: impl Into<String>) -> Self {
        self.options.checkpoint_name = Some(name.into());
        self
    }

    /// Events per push request and per pull page (default 500).
    pub fn batch_size(mut self, events: usize) -> Self {
        self.options.batch_size = events;
        self
    }

    /// Longest one push or pull request may take (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = timeout;
        self
    }

    /// Checks every event given to [`SyncManager::append`]; an `Err(reason)`
    /// rejects the whole batch with [`ErrorCode::InvalidInput`].
    pub fn validator(
        mut self,
        check: impl Fn(&NewEvent) -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.validator = Some(Box::new(check));
        self
    }

    /// Only push: pulled events are not requested.
    pub fn push_only(mut self) -> Self {
        self.options.mode = SyncMode::PushOnly;
        self
    }

    /// Only pull: local events stay local.
    pub fn pull_only(mut self) -> Self {
        self.options.mode = SyncMode::PullOnly;
        self
    }

    /// Time between syncs of [`SyncManager::start_auto_sync`] (default 30 s).
    pub fn sync_interval(mut self, interval: Duration) -> Self {
        self.options.interval = interval;
        self
    }

    /// How long live sync ([`SyncManager::start_live_sync`]) waits after a
    /// local append before it pushes, so that appends in quick succession
    /// go out in one push (default 5 ms; zero pushes at once).
    pub fn push_debounce(mut self, wait: Duration) -> Self {
        self.options.push_debounce = wait;
        self
    }

    /// Retry delays of auto-sync after a failure: doubles from `min` up to
    /// `max`, with jitter (defaults 1 s and 5 min).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.options.backoff = (min, max);
        self
    }

    /// Checks the settings and builds the manager.
    pub fn build(self) -> std::result::Result<SyncManager<S, T>, BuildError> {
        let o = &self.options;
        snafu::ensure!(o.batch_size > 0, ZeroBatchSizeSnafu);
        snafu::ensure!(!o.timeout.is_zero(), ZeroDurationSnafu { what: "timeout" });
        snafu::ensure!(!o.interval.is_zero(), ZeroDurationSnafu { what: "sync interval" });
        snafu::ensure!(!o.backoff.0.is_zero(), ZeroDurationSnafu { what: "backoff minimum" });
        if o.backoff.0 > o.backoff.1 {
            return Err(BuildError::BackoffRange {
                min_ms: o.backoff.0.as_millis() as u64,
                max_ms: o.backoff.1.as_millis() as u64,
            });
        }
        Ok(SyncManager {
            inner: Arc::new(Inner {
                store: self.store,
                transport: self.transport,
                resolver: self.resolver,
                validator: self.validator,
                options: self.options,
                running: Mutex::new(()),
                peer_id: std::sync::Mutex::new(None),
                results: broadcast::channel(64).0,
                progress: watch::channel(Progress::default()).0,
            }),
        })
    }
}

/// The sync progress with the peer, from [`SyncManager::peer_status`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerStatus {
    /// The key the checkpoint is kept under in the store: the peer's store
    /// id (and the manager's checkpoint name, if any).
    pub checkpoint_key: String,
    /// How far each direction got.
    pub checkpoint: Checkpoint,
    /// Local events a push would send now.
    pub waiting_to_push: usize,
}

/// Where a manager keeps its progress with one peer in the local store.
pub(crate) struct PeerKeys {
    /// The checkpoint's key: the peer's store id, plus the manager's
    /// checkpoint name if it has one.
    pub(crate) checkpoint: String,
    /// The source of events pulled from the peer (its store id), which
    /// pushes to it leave out.
    source: String,
}

/// Keeps a store in sync with one peer. Cheap to clone (shared state).
pub struct SyncManager<S, T = NoTransport> {
    pub(crate) inner: Arc<Inner<S, T>>,
}

impl<S, T> Clone for SyncManager<S, T> {
    fn clone(&self) -> Self {
        SyncManager { inner: self.inner.clone() }
    }
}

pub(crate) struct Inner<S, T> {
    pub(crate) store: S,
    pub(crate) transport: Option<T>,
    resolver: Box<dyn ConflictResolver>,
    validator: Option<Validator>,
    pub(crate) options: Options,
    running: Mutex<()>,
    /// The peer's store id, once asked; forgotten when the peer no longer
    /// knows our cursor (it may have been replaced).
    peer_id: std::sync::Mutex<Option<NodeId>>,
    results: broadcast::Sender<SyncResult>,
    progress: watch::Sender<Progress>,
}

impl<S: EventStore> SyncManager<S, NoTransport> {
    /// Starts configuring a manager over `store`.
    pub fn builder(store: S) -> Builder<S, NoTransport> {
        Builder {
            store,
            transport: None,
            resolver: Box::new(LastWriteWins),
            validator: None,
            options: Options {
                filter: Filter::default(),
                checkpoint_name: None,
                batch_size: 500,
                timeout: Duration::from_secs(30),
                mode: SyncMode::Both,
                interval: Duration::from_secs(30),
                push_debounce: Duration::from_millis(5),
                backoff: (Duration::from_secs(1), Duration::from_secs(300)),
            },
        }
    }
}

impl<S: EventStore, T: Transport> SyncManager<S, T> {
    /// The local store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// Appends local events after running the validator.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        if let Some(check) = &self.inner.validator {
            for e in &events {
                check(e).map_err(|reason| Error::invalid(format!("event {} rejected by validator: {reason}", e.id)))?;
            }
        }
        self.inner.store.append(events).await
    }

    /// The resolved view of one aggregate: its events in causal order with
    /// each conflict set replaced by the resolver's decision.
    pub async fn view(&self, aggregate_id: &str) -> Result<View> {
        let events = self.inner.store.load_aggregate(aggregate_id, &Cursor::START).await?;
        Ok(resolved_view(&events, self.inner.resolver.as_ref()))
    }

    /// Receives every [`SyncResult`] from now on (a slow receiver skips old ones).
    pub fn subscribe(&self) -> broadcast::Receiver<SyncResult> {
        self.inner.results.subscribe()
    }

    /// Watches the progress of the running sync.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.inner.progress.subscribe()
    }

    /// Closes the store (waits for a running sync to finish first).
    pub async fn close(&self) -> Result<()> {
        let _no_sync_running = self.inner.running.lock().await;
        self.inner.store.close().await
    }

    /// The sync progress with the peer, and how many local events a push
    /// would send now (those after the push checkpoint that pass the filter
    /// and did not come from the peer). Asks the peer for its id; local
    /// only, it answers `None`.
    pub async fn peer_status(&self) -> Result<Option<PeerStatus>> {
        let Some(transport) = &self.inner.transport else { return Ok(None) };
        let keys = self.peer_keys(transport).await?;
        let checkpoint = self.checkpoint(&keys, transport).await?;
        let (store, filter) = (&self.inner.store, &self.inner.options.filter);
        let (mut cursor, mut waiting) = (checkpoint.pushed, 0);
        loop {
            let page = store.load(&cursor, 5_000, filter, Some(&keys.source)).await?;
            waiting += page.events.len();
            cursor = page.next;
            if !page.has_more {
                break;
            }
        }
        Ok(Some(PeerStatus { checkpoint_key: keys.checkpoint, checkpoint, waiting_to_push: waiting }))
    }

    /// Pushes, then pulls (only one of them after [`Builder::push_only`] or
    /// [`Builder::pull_only`]). Local only: does nothing.
    pub async fn sync(&self) -> Result<SyncResult> {
        let mode = self.inner.options.mode;
        self.run(mode != SyncMode::PullOnly, mode != SyncMode::PushOnly, None).await
    }

    /// Only pushes (regardless of the mode).
    pub async fn push(&self) -> Result<SyncResult> {
        self.run(true, false, None).await
    }

    /// Only pulls (regardless of the mode).
    pub async fn pull(&self) -> Result<SyncResult> {
        self.run(false, true, None).await
    }

    /// Pulls, starting with `page` (the events after `after`, from a live
    /// subscription) if the pull checkpoint is at `after`.
    pub(crate) async fn pull_from(&self, after: Cursor, page: Page) -> Result<SyncResult> {
        self.run(false, true, Some((after, page))).await
    }

    async fn run(&self, push: bool, pull: bool, first: Option<(Cursor, Page)>) -> Result<SyncResult> {
        let Some(transport) = &self.inner.transport else { return Ok(SyncResult::default()) };
        let _one_at_a_time = self.inner.running.lock().await;
        let started = Instant::now();
        let peer = transport.peer();
        let span = info_span!("sync", peer, push, pull);
        let mut result = SyncResult::default();
        let outcome = async {
            let keys = self.peer_keys(transport).await?;
            let mut checkpoint = self.checkpoint(&keys, transport).await?;
            if push {
                self.push_pages(transport, &keys, &mut checkpoint, &mut result, Some(&keys.source)).await?;
            }
            if pull {
                self.pull_pages(transport, &keys, &mut checkpoint, &mut result, first).await?;
            }
            if result.resynced && push {
                // The peer was replaced or restored and may lack anything,
                // including what we once pulled from it: send everything again
                // (what it still has comes back as duplicates).
                self.push_pages(transport, &keys, &mut checkpoint, &mut result, None).await?;
            }
            Ok::<_, Error>(())
        }
        .instrument(span.clone())
        .await;
        self.inner.progress.send_replace(Progress::default());
        result.duration = started.elapsed();
        metrics::histogram!("synckit_sync_seconds").record(result.duration.as_secs_f64());
        if let Err(e) = outcome {
            metrics::counter!("synckit_sync_failures_total", "code" => e.code().as_str()).increment(1);
            span.in_scope(|| warn!(peer, error = %e, "sync failed"));
            return Err(e);
        }
        metrics::counter!("synckit_sync_pushed_events_total").increment(result.pushed as u64);
        metrics::counter!("synckit_sync_pulled_events_total").increment(result.pulled as u64);
        metrics::counter!("synckit_sync_conflicts_total").increment(result.conflicts_resolved as u64);
        span.in_scope(|| {
            info!(
                peer,
                pushed = result.pushed,
                pulled = result.pulled,
                conflicts = result.conflicts_resolved,
                rejected = result.rejected.len(),
                ms = result.duration.as_millis() as u64,
                "sync done"
            )
        });
        let _ = self.inner.results.send(result.clone());
        Ok(result)
    }

    /// Sends local events after the push checkpoint, skipping those that
    /// came from this peer. Each page read from the store goes out in
    /// pushes of at most `batch_size` events, one lane of aggregates after
    /// the other ([`lanes`]); up to [`PUSH_WINDOW`] pushes are in flight at
    /// once, so the peer stores one while the next travels, as long as they
    /// share no aggregate (pushes of different lanes never do). The
    /// checkpoint moves past a page only once every push of it and of the
    /// pages before it is acknowledged.
    async fn push_pages(
        &self,
        transport: &T,
        keys: &PeerKeys,
        cp: &mut Checkpoint,
        result: &mut SyncResult,
        skip_source: Option<&str>,
    ) -> Result<()> {
        let (store, o) = (&self.inner.store, &self.inner.options);
        let send = |push: Push| async move {
            let sent: Vec<EventId> = push.events.iter().map(|e| e.id).collect();
            let ack = match sent.is_empty() {
                true => None,
                false => Some(self.timed("push", transport.push(push.events)).await?),
            };
            Ok::<_, Error>((push.page, push.id, sent, ack))
        };
        // Where the next page starts (`None`: no more), the page being read,
        // the pushes read but not sent yet, the pages not wholly acknowledged
        // (number, cursor after it, pushes of it not acknowledged yet), and
        // the pushes in flight with their aggregates.
        let mut next = Some(cp.pushed);
        let mut loading: Option<Pin<Box<dyn Future<Output = Result<Page>> + Send + '_>>> = None;
        let mut queued: Vec<Push> = Vec::new();
        let mut pages: VecDeque<(u64, Cursor, usize)> = VecDeque::new();
        let mut inflight = FuturesUnordered::new();
        let mut busy: HashMap<u64, HashSet<String>> = HashMap::new();
        let (mut page_number, mut push_number) = (0u64, 0u64);
        // Where acknowledged pushes landed in the peer's feed, for the pull
        // checkpoint (acks may come for pushes the peer stored out of order).
        let mut spans = Vec::new();
        loop {
            // The peer may store two pushes in flight in either order, so a
            // push goes out only if it shares no aggregate with a push in
            // flight or with an earlier one still waiting: the peer's feed
            // then keeps every aggregate's events in our feed order, causes
            // before effects (invariant 6).
            let mut i = 0;
            while i < queued.len() && inflight.len() < PUSH_WINDOW {
                let clear = busy
                    .values()
                    .chain(queued[..i].iter().map(|p| &p.aggregates))
                    .all(|other| other.is_disjoint(&queued[i].aggregates));
                if clear {
                    let push = queued.remove(i);
                    busy.insert(push.id, push.aggregates.clone());
                    inflight.push(send(push));
                } else {
                    i += 1;
                }
            }
            // The next page is read while the last pushes of this one wait,
            // so the peer is not left idle while we read.
            if loading.is_none()
                && queued.len() <= 1
                && let Some(after) = next.take()
            {
                let limit = page_limit(o.batch_size);
                loading = Some(Box::pin(async move { store.load(&after, limit, &o.filter, skip_source).await }));
            }
            if loading.is_none() && queued.is_empty() && inflight.is_empty() {
                return Ok(());
            }
            tokio::select! {
                page = async { loading.as_mut().expect("branch enabled only while loading").await }, if loading.is_some() => {
                    loading = None;
                    let page = page?;
                    if page.has_more {
                        next = Some(page.next);
                    }
                    page_number += 1;
                    let pushes = lanes(page.events, o.batch_size);
                    pages.push_back((page_number, page.next, pushes.len()));
                    for (events, aggregates) in pushes {
                        push_number += 1;
                        queued.push(Push { page: page_number, id: push_number, events, aggregates });
                    }
                }
                Some(done) = inflight.next(), if !inflight.is_empty() => {
                    let (page, id, sent, ack) = done?;
                    busy.remove(&id);
                    if let Some(ack) = ack {
                        spans.extend(ack.span);
                        self.take_ack(ack, &sent, result)?;
                    }
                    if let Some(entry) = pages.iter_mut().find(|(number, _, _)| *number == page) {
                        entry.2 -= 1;
                    }
                    // The checkpoint moves over the pages wholly acknowledged,
                    // in order.
                    let pushed = cp.pushed;
                    while let Some(&(_, after, 0)) = pages.front() {
                        cp.pushed = after;
                        pages.pop_front();
                    }
                    // Our own events right at the pull checkpoint: the next
                    // pull need not walk them.
                    let pulled = cp.pulled;
                    while let Some(i) = spans.iter().position(|s: &FeedSpan| s.after == cp.pulled) {
                        cp.pulled = spans.swap_remove(i).head;
                    }
                    if cp.pushed != pushed || cp.pulled != pulled {
                        store.set_checkpoint(&keys.checkpoint, cp).await?;
                    }
                }
            }
        }
    }

    /// Counts a push acknowledgement into `result`; it must answer `sent`,
    /// in order.
    fn take_ack(&self, ack: PushAck, sent: &[EventId], result: &mut SyncResult) -> Result<()> {
        if ack.results.len() != sent.len() || ack.results.iter().zip(sent).any(|(r, id)| r.id != *id) {
            return Err(Error::invalid(format!(
                "peer acknowledged {} results for {} pushed events",
                ack.results.len(),
                sent.len()
            )));
        }
        for r in ack.results {
            match r.status {
                PushStatus::Accepted => result.pushed += 1,
                PushStatus::Duplicate => result.push_duplicates += 1,
                PushStatus::Rejected => {
                    warn!(id = %r.id, code = ?r.code, reason = r.reason.as_deref().unwrap_or(""), "peer rejected event");
                    result.rejected.push(r);
                }
            }
        }
        self.inner.progress.send_modify(|p| {
            p.phase = Phase::Pushing;
            p.pushed += sent.len();
        });
        Ok(())
    }

    /// Applies the peer's pages after the pull checkpoint; the checkpoint
    /// moves after each applied page, and the next page is fetched while the
    /// current one is applied. A cursor the peer no longer knows restarts the
    /// pull from the beginning (applying twice is a no-op).
    async fn pull_pages(
        &self,
        transport: &T,
        keys: &PeerKeys,
        cp: &mut Checkpoint,
        result: &mut SyncResult,
        first: Option<(Cursor, Page)>,
    ) -> Result<()> {
        let (store, o) = (&self.inner.store, &self.inner.options);
        let peer = transport.peer();
        let filter = self.pull_filter();
        let fetch = |after: Cursor| {
            let filter = &filter;
            async move { self.timed("pull", transport.pull(&after, o.batch_size, filter)).await }
        };
        let fetched = match first.filter(|(after, _)| *after == cp.pulled) {
            Some((_, page)) => Ok(page),
            None => fetch(cp.pulled).await,
        };
        let mut page = match fetched {
            Err(e) if e.code() == ErrorCode::BadCursor && !cp.pulled.is_start() => {
                warn!(peer, cursor = %cp.pulled, error = %e, "peer does not know our cursor; resyncing from the start");
                result.resynced = true;
                // Ask the peer's id again next time: if it was replaced,
                // its new id keys a checkpoint of its own.
                *self.inner.peer_id.lock().unwrap_or_else(PoisonError::into_inner) = None;
                // Both directions start over: the new peer knows neither.
                *cp = Checkpoint::default();
                store.set_checkpoint(&keys.checkpoint, cp).await?;
                fetch(Cursor::START).await?
            }
            other => other?,
        };
        let mut new_ids = HashSet::new();
        let mut suspects = BTreeSet::new();
        loop {
            let (next, has_more, received) = (page.next, page.has_more, page.events.len());
            let aggregates: std::collections::HashMap<_, _> =
                page.events.iter().map(|e| (e.id, e.aggregate_id.clone())).collect();
            let apply = async {
                if received == 0 {
                    Ok(None)
                } else {
                    self.apply_page(page.events, &keys.source, result).await.map(Some)
                }
            };
            let fetch_ahead = async { if has_more { Some(fetch(next).await) } else { None } };
            let (outcome, following) = tokio::join!(apply, fetch_ahead);
            if let Some(outcome) = outcome? {
                // The page landed right at the push checkpoint with nothing
                // between: it came from the peer, so the next push need not
                // walk it (O(events that differ) after a bulk pull).
                if let Some(span) = outcome.span.filter(|span| span.after == cp.pushed) {
                    cp.pushed = span.head;
                }
                result.pulled += outcome.inserted.len();
                suspects.extend(outcome.concurrent.iter().filter_map(|id| aggregates.get(id).cloned()));
                new_ids.extend(outcome.inserted);
                self.inner.progress.send_modify(|p| {
                    p.phase = Phase::Pulling;
                    p.pulled += received;
                });
            }
            cp.pulled = next;
            store.set_checkpoint(&keys.checkpoint, cp).await?;
            match following {
                Some(following) => page = following?,
                None => break,
            }
        }
        // Only aggregates where a pulled event was concurrent with what we
        // held can have a new conflict; a conflict is new when it contains
        // an event this sync inserted.
        for aggregate in suspects {
            let events = store.load_aggregate(&aggregate, &Cursor::START).await?;
            for rc in resolved_view(&events, self.inner.resolver.as_ref()).conflicts {
                if rc.conflict.events.iter().any(|e| new_ids.contains(&e.id)) {
                    debug!(aggregate = %rc.conflict.aggregate_id, kind = %rc.conflict.kind, resolution = ?rc.resolution, "conflict");
                    result.conflicts.push(rc);
                }
            }
        }
        result.conflicts_resolved = result.conflicts.len();
        Ok(())
    }

    /// What pulls ask for: the filter, without our own events, which are
    /// already here.
    pub(crate) fn pull_filter(&self) -> Filter {
        self.inner.options.filter.clone().exclude_origin(self.inner.store.node_id())
    }

    /// The keys of this manager's progress with the peer: its store id, so
    /// that every spelling of its address shares them.
    pub(crate) async fn peer_keys(&self, transport: &T) -> Result<PeerKeys> {
        let known = *self.inner.peer_id.lock().unwrap_or_else(PoisonError::into_inner);
        let id = match known {
            Some(id) => id,
            None => {
                let id = self.timed("asking the peer's id", transport.peer_id()).await?;
                *self.inner.peer_id.lock().unwrap_or_else(PoisonError::into_inner) = Some(id);
                id
            }
        };
        let checkpoint = match &self.inner.options.checkpoint_name {
            Some(name) => format!("{id}/{name}"),
            None => id.to_string(),
        };
        Ok(PeerKeys { checkpoint, source: id.to_string() })
    }

    /// The checkpoint under `keys`. A store written by an earlier version
    /// keeps it under the peer's address instead: that one is taken over
    /// (and written under the new key by the next step of the sync).
    async fn checkpoint(&self, keys: &PeerKeys, transport: &T) -> Result<Checkpoint> {
        let store = &self.inner.store;
        let checkpoint = store.checkpoint(&keys.checkpoint).await?;
        if checkpoint != Checkpoint::default() || self.inner.options.checkpoint_name.is_some() {
            return Ok(checkpoint);
        }
        store.checkpoint(transport.peer()).await
    }

    /// Applies one pulled page. If the local store refuses the batch (an
    /// event breaks its limits), the events are applied one at a time and the
    /// refused ones are skipped and reported, so one bad event cannot stop
    /// the pull for good.
    async fn apply_page(&self, events: Vec<Event>, peer: &str, result: &mut SyncResult) -> Result<AppendOutcome> {
        apply_or_each(&self.inner.store, events, peer, |id, e| {
            warn!(%id, error = %e, "local store refused a pulled event; skipping it");
            result.refused.push(Refused { id, code: e.code(), reason: e.to_string() });
        })
        .await
    }

    async fn timed<R>(&self, action: &str, fut: impl std::future::Future<Output = Result<R>>) -> Result<R> {
        let limit = self.inner.options.timeout;
        tokio::time::timeout(limit, fut)
            .await
            .map_err(|_| Error::Timeout { action: action.into(), millis: limit.as_millis() as u64 })?
    }
}
