//! [`Ledger`]: the bookkeeping of a store that keeps it in memory.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::raw::{Known, append_plan, apply_plan};
use crate::{Event, EventId, Hlc, Limits, NewEvent, NodeId, VectorClock};

/// The bookkeeping of a store's log held in memory: stored ids, aggregate
/// clocks, origin counters and the HLC. It answers the [`Known`] lookups of
/// the batch rule, and [`Ledger::insert`] takes in each stored event, both
/// when a batch commits and when a store rebuilds the ledger from its log
/// on open. The result is the same either way: every value is a merge over
/// the stored events.
///
/// ```
/// use sync_core::raw::{Ledger, append_plan};
/// use sync_core::{Limits, NewEvent, NodeId};
/// let me = NodeId::random();
/// let mut ledger = Ledger::default();
/// let plan = append_plan(me, &Limits::default(), vec![NewEvent::new("k", "agg", vec![])], 1, &mut ledger)?;
/// for event in &plan.rows {
///     ledger.insert(event);
/// }
/// assert_eq!(ledger.clock("agg").unwrap().get(me), 1);
/// assert_eq!(ledger.version_vector().get(me), 1);
/// # Ok::<_, sync_core::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    ids: HashSet<EventId>,
    clocks: HashMap<String, VectorClock>,
    counters: HashMap<NodeId, u64>,
    hlc: Hlc,
}

impl Ledger {
    /// Takes in one stored event.
    pub fn insert(&mut self, event: &Event) {
        self.ids.insert(event.id);
        match self.clocks.get_mut(&event.aggregate_id) {
            Some(clock) => clock.merge(&event.clock),
            None => {
                self.clocks.insert(event.aggregate_id.clone(), event.clock.clone());
            }
        }
        let counter = self.counters.entry(event.origin.node).or_insert(0);
        *counter = (*counter).max(event.origin.counter);
        self.hlc = self.hlc.max(event.hlc);
    }

    /// True when `id` is stored.
    pub fn contains(&self, id: EventId) -> bool {
        self.ids.contains(&id)
    }

    /// The clock of one aggregate, if it has events.
    pub fn clock(&self, aggregate_id: &str) -> Option<&VectorClock> {
        self.clocks.get(aggregate_id)
    }

    /// The highest counter per origin node.
    pub fn version_vector(&self) -> VectorClock {
        self.counters.iter().map(|(n, c)| (*n, *c)).collect()
    }
}

impl Known for Ledger {
    fn stored(&mut self, ids: &[EventId]) -> Result<HashSet<EventId>> {
        Ok(ids.iter().filter(|id| self.ids.contains(id)).copied().collect())
    }

    fn clocks(&mut self, aggregates: &[&str]) -> Result<HashMap<String, VectorClock>> {
        Ok(aggregates.iter().filter_map(|a| Some(((*a).to_owned(), self.clocks.get(*a)?.clone()))).collect())
    }

    fn counters(&mut self, nodes: &[NodeId]) -> Result<HashMap<NodeId, u64>> {
        Ok(nodes.iter().filter_map(|n| Some((*n, *self.counters.get(n)?))).collect())
    }

    fn hlc(&mut self) -> Result<Hlc> {
        Ok(self.hlc)
    }
}

/// A replica that lives only in memory: a node id and its [`Ledger`],
/// running every batch through the batch rule. For tests and simulations
/// that need events stamped as a real replica stamps them.
///
/// ```
/// use sync_core::raw::Replica;
/// use sync_core::{NewEvent, NodeId};
/// let mut a = Replica::new(NodeId::random());
/// let mut b = Replica::new(NodeId::random());
/// let first = a.stamp(NewEvent::new("k", "agg", vec![]), 1_000)?;
/// b.observe(&first)?;
/// let second = b.stamp(NewEvent::new("k", "agg", vec![]), 1_000)?;
/// assert!(first.clock.happened_before(&second.clock));
/// # Ok::<_, sync_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Replica {
    node: NodeId,
    limits: Limits,
    ledger: Ledger,
}

impl Replica {
    /// An empty replica of `node` with default [`Limits`].
    pub fn new(node: NodeId) -> Self {
        Replica { node, limits: Limits::default(), ledger: Ledger::default() }
    }

    /// Stamps one local event at wall-clock time `now_ms` and keeps it.
    pub fn stamp(&mut self, event: NewEvent, now_ms: u64) -> Result<Event> {
        let plan = append_plan(self.node, &self.limits, vec![event], now_ms, &mut self.ledger)?;
        let event = plan.rows.into_iter().next().ok_or_else(|| Error::invalid("the event is stored already"))?;
        self.ledger.insert(&event);
        Ok(event)
    }

    /// Takes in an event of another replica (a duplicate changes nothing).
    pub fn observe(&mut self, event: &Event) -> Result<()> {
        let plan = apply_plan(&self.limits, vec![event.clone()], Hlc::now_ms(), &mut self.ledger)?;
        for event in &plan.rows {
            self.ledger.insert(event);
        }
        Ok(())
    }

    /// What this replica holds.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }
}
