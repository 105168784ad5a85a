//! [`MemoryStore`]: the in-memory reference [`EventStore`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use sync_core::{
    AppendOutcome, Checkpoint, ClockBook, Cursor, Event, EventId, EventStore, Filter, Hlc, Limits, NewEvent, NodeId,
    Page, Result, ScanRow, VectorClock, page_from_scan,
};

/// An [`EventStore`] that keeps everything in memory: the reference for the
/// trait contract, and a store for tests and local-only demos. Clones share
/// the same log. Nothing survives the process.
///
/// ```
/// use sync_core::{Cursor, EventStore, Filter, NewEvent};
/// use sync_testkit::MemoryStore;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// store.append(vec![NewEvent::new("note.added", "note-1", "hi")]).await?;
/// let page = store.load(&Cursor::START, 10, &Filter::default(), None).await?;
/// assert_eq!(page.events.len(), 1);
/// # Ok::<_, sync_core::Error>(()) }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct MemoryStore {
    node: NodeId,
    limits: Limits,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    rows: Vec<ScanRow>, // rows[i].seq == i + 1
    ids: HashMap<EventId, usize>,
    aggregates: HashMap<String, VectorClock>,
    origins: HashMap<NodeId, u64>,
    hlc: Hlc,
    checkpoints: HashMap<String, Checkpoint>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store with a fresh node id and default [`Limits`].
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// An empty store with the given limits.
    pub fn with_limits(limits: Limits) -> Self {
        MemoryStore { node: NodeId::random(), limits, inner: Arc::default() }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written batch:
        // batches are staged first and committed with infallible pushes.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn book(&self, inner: &Inner, events: impl Iterator<Item = (String, NodeId)>) -> ClockBook {
        let mut book = ClockBook::new(self.node, inner.hlc, self.limits);
        book.origins.insert(self.node, inner.origins.get(&self.node).copied().unwrap_or(0));
        for (agg, origin) in events {
            if let Some(c) = inner.aggregates.get(&agg) {
                book.aggregates.insert(agg, c.clone());
            }
            book.origins.insert(origin, inner.origins.get(&origin).copied().unwrap_or(0));
        }
        book
    }

    /// Writes staged, already validated events and the book: cannot fail.
    fn commit(inner: &mut Inner, staged: Vec<Event>, source: Option<&str>, book: ClockBook) -> AppendOutcome {
        let mut out = AppendOutcome::default();
        for event in staged {
            if inner.ids.contains_key(&event.id) {
                out.duplicates.push(event.id);
                continue;
            }
            let seq = inner.rows.len() as u64 + 1;
            inner.ids.insert(event.id, inner.rows.len());
            out.inserted.push(event.id);
            inner.rows.push(ScanRow { seq, source: source.map(str::to_owned), event });
        }
        inner.aggregates.extend(book.aggregates);
        for (node, counter) in book.origins {
            let c = inner.origins.entry(node).or_insert(0);
            *c = (*c).max(counter);
        }
        inner.hlc = inner.hlc.max(book.hlc);
        out
    }
}

impl EventStore for MemoryStore {
    fn node_id(&self) -> NodeId {
        self.node
    }

    async fn append(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        let mut inner = self.lock();
        let mut book = self.book(&inner, events.iter().map(|e| (e.aggregate_id.clone(), self.node)));
        let now = Hlc::now_ms();
        let mut staged = Vec::with_capacity(events.len());
        let mut dups = Vec::new();
        let mut batch_ids = std::collections::HashSet::new();
        for e in events {
            if inner.ids.contains_key(&e.id) || !batch_ids.insert(e.id) {
                dups.push(e.id);
                continue;
            }
            staged.push(book.stamp(e, now)?);
        }
        let mut out = Self::commit(&mut inner, staged, None, book);
        out.duplicates.extend(dups);
        Ok(out)
    }

    async fn apply(&self, events: Vec<Event>, source: &str) -> Result<AppendOutcome> {
        let mut inner = self.lock();
        let mut book = self.book(&inner, events.iter().map(|e| (e.aggregate_id.clone(), e.origin.node)));
        // Every event is validated; only those to be inserted teach the book.
        let (mut concurrent, mut batch) = (std::collections::HashSet::new(), std::collections::HashSet::new());
        for e in &events {
            if inner.ids.contains_key(&e.id) || !batch.insert(e.id) {
                book.check(e)?;
            } else if book.observe(e)? {
                concurrent.insert(e.id);
            }
        }
        let mut out = Self::commit(&mut inner, events, Some(source), book);
        out.concurrent = out.inserted.iter().filter(|id| concurrent.contains(id)).copied().collect();
        Ok(out)
    }

    async fn load(&self, after: &Cursor, limit: usize, filter: &Filter, skip_source: Option<&str>) -> Result<Page> {
        page_from_scan(self.node, after, limit, filter, skip_source, |after, n| {
            let inner = self.lock();
            let start = (after as usize).min(inner.rows.len());
            let rows = inner.rows[start..].iter().take(n).cloned().collect();
            std::future::ready(Ok(rows))
        })
        .await
    }

    async fn load_aggregate(&self, aggregate_id: &str, after: &Cursor) -> Result<Vec<Event>> {
        let from = after.seq_for(self.node)? as usize;
        let inner = self.lock();
        Ok(inner
            .rows
            .iter()
            .skip(from)
            .filter(|r| r.event.aggregate_id == aggregate_id)
            .map(|r| r.event.clone())
            .collect())
    }

    async fn aggregate_clock(&self, aggregate_id: &str) -> Result<VectorClock> {
        Ok(self.lock().aggregates.get(aggregate_id).cloned().unwrap_or_default())
    }

    async fn head(&self) -> Result<Cursor> {
        Ok(Cursor::new(self.node, self.lock().rows.len() as u64))
    }

    async fn version_vector(&self) -> Result<VectorClock> {
        Ok(self.lock().origins.iter().map(|(n, c)| (*n, *c)).collect())
    }

    async fn checkpoint(&self, peer: &str) -> Result<Checkpoint> {
        Ok(self.lock().checkpoints.get(peer).copied().unwrap_or_default())
    }

    async fn set_checkpoint(&self, peer: &str, checkpoint: &Checkpoint) -> Result<()> {
        self.lock().checkpoints.insert(peer.to_owned(), *checkpoint);
        Ok(())
    }

    async fn close(&self) -> Result<()> {
        Ok(())
    }
}
