//! [`MemoryStore`]: the batch rule and the feed helpers of `sync_core::raw`,
//! over a vector of rows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use sync_core::raw::{FeedSignal, Ledger, Plan, ScanRow, append_plan, apply_plan, page_from_scan};
use sync_core::{
    AppendOutcome, Checkpoint, Cursor, Event, EventStore, FeedSpan, Filter, Hlc, NewEvent, NodeId, Page, Result,
    VectorClock,
};

use crate::MemoryConfig;

/// An [`EventStore`] in memory. Clones share the same log; nothing survives
/// the process. Feed positions are dense: the `n`th event is at `n`.
#[derive(Clone, Debug)]
pub struct MemoryStore {
    node: NodeId,
    config: MemoryConfig,
    signal: FeedSignal,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// `rows[i].position == i + 1`.
    rows: Vec<ScanRow>,
    ledger: Ledger,
    checkpoints: HashMap<String, Checkpoint>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store with a fresh node id and the default options.
    pub fn new() -> Self {
        Self::open(MemoryConfig::default())
    }

    /// An empty store with a fresh node id and the given options.
    pub fn open(config: MemoryConfig) -> Self {
        let node = NodeId::random();
        MemoryStore { node, config, signal: FeedSignal::new(node, 0), inner: Arc::default() }
    }

    /// The options this store was opened with.
    pub fn config(&self) -> &MemoryConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics between the first and the last change of a batch
        // (`commit`), so a poisoned lock still guards a whole state.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes a planned batch: cannot fail.
    fn commit(&self, inner: &mut Inner, plan: Plan, source: Option<&str>) -> AppendOutcome {
        let before = inner.rows.len() as u128;
        for event in plan.rows {
            inner.ledger.insert(&event);
            let position = inner.rows.len() as u128 + 1;
            inner.rows.push(ScanRow { position, source: source.map(str::to_owned), event });
        }
        let head = inner.rows.len() as u128;
        self.signal.advance(head);
        let mut outcome = plan.outcome;
        outcome.span = FeedSpan::between(self.node, before, head);
        outcome
    }
}

impl EventStore for MemoryStore {
    fn node_id(&self) -> NodeId {
        self.node
    }

    async fn append(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        let mut inner = self.lock();
        let plan = append_plan(self.node, &self.config.limits, events, Hlc::now_ms(), &mut inner.ledger)?;
        Ok(self.commit(&mut inner, plan, None))
    }

    async fn apply(&self, events: Vec<Event>, source: &str) -> Result<AppendOutcome> {
        let mut inner = self.lock();
        let plan = apply_plan(&self.config.limits, events, Hlc::now_ms(), &mut inner.ledger)?;
        Ok(self.commit(&mut inner, plan, Some(source)))
    }

    async fn load(&self, after: &Cursor, limit: usize, filter: &Filter, skip_source: Option<&str>) -> Result<Page> {
        let head = async { Ok(self.lock().rows.len() as u128) };
        page_from_scan(self.node, after, limit, filter, skip_source, head, |after, n| {
            let inner = self.lock();
            let start = usize::try_from(after).unwrap_or(usize::MAX).min(inner.rows.len());
            let rows = inner.rows[start..].iter().take(n).cloned().collect();
            std::future::ready(Ok(rows))
        })
        .await
    }

    async fn load_aggregate(&self, aggregate_id: &str, after: &Cursor) -> Result<Vec<Event>> {
        let from = usize::try_from(after.position_for(self.node)?).unwrap_or(usize::MAX);
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
        Ok(self.lock().ledger.clock(aggregate_id).cloned().unwrap_or_default())
    }

    async fn head(&self) -> Result<Cursor> {
        Ok(Cursor::new(self.node, self.lock().rows.len() as u128))
    }

    async fn wait_past(&self, after: &Cursor) -> Result<()> {
        self.signal.wait_past(after).await
    }

    async fn version_vector(&self) -> Result<VectorClock> {
        Ok(self.lock().ledger.version_vector())
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
