//! The batch rule: what a store writes for one `append` or `apply` batch.
//!
//! One rule for every store, so that no two stores can differ in it:
//!
//! 1. an id repeated within the batch, or already stored, is a duplicate:
//!    it is reported and changes nothing;
//! 2. every other event is validated against the store's [`Limits`];
//!    one invalid event refuses the whole batch;
//! 3. a local event gets the next counter of this node, its aggregate's
//!    clock with that counter, and the next HLC;
//! 4. a remote event keeps its header and teaches the store: its
//!    aggregate's clock merges its clock, its origin's counter rises to its
//!    dot, and the store's HLC rises to its HLC. It is *concurrent* when
//!    its clock does not cover what the store held of its aggregate.
//!
//! The rule does no I/O: the store answers the lookups of [`Known`] and
//! writes the [`Plan`] in one transaction.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::{AppendOutcome, Causality, Dot, Event, EventId, Hlc, Limits, NewEvent, NodeId, VectorClock};

/// What a store already holds, as far as one batch needs to know. Each
/// method is called at most once per batch, with distinct keys, so a store
/// on a database can answer each with one query.
pub trait Known {
    /// Which of `ids` are stored.
    fn stored(&mut self, ids: &[EventId]) -> Result<HashSet<EventId>>;

    /// The stored clock of each of `aggregates` that has events.
    fn clocks(&mut self, aggregates: &[&str]) -> Result<HashMap<String, VectorClock>>;

    /// The highest stored counter of each of `nodes` that has events.
    fn counters(&mut self, nodes: &[NodeId]) -> Result<HashMap<NodeId, u64>>;

    /// The last HLC the store issued or observed ([`Hlc::ZERO`] when empty).
    fn hlc(&mut self) -> Result<Hlc>;
}

/// What one batch writes, in one transaction: the rows and the
/// bookkeeping that goes with them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Plan {
    /// The events to insert, in batch order (local ones stamped). The feed
    /// must hold them in this order.
    pub rows: Vec<Event>,
    /// The new clock of every aggregate whose clock changed.
    pub clocks: Vec<(String, VectorClock)>,
    /// The new highest counter of every origin whose counter rose.
    pub counters: Vec<(NodeId, u64)>,
    /// The store's HLC after the batch.
    pub hlc: Hlc,
    /// What to answer the caller.
    pub outcome: AppendOutcome,
}

/// Plans a local batch ([`EventStore::append`](crate::EventStore::append))
/// of the store whose node is `node`, at wall-clock time `now_ms`.
///
/// ```
/// use sync_core::raw::{Ledger, append_plan};
/// use sync_core::{Limits, NewEvent, NodeId};
/// let me = NodeId::random();
/// let mut ledger = Ledger::default();
/// let a = NewEvent::new("k", "agg", vec![]);
/// let plan = append_plan(me, &Limits::default(), vec![a.clone(), a.clone()], 1_000, &mut ledger).unwrap();
/// assert_eq!(plan.rows.len(), 1);
/// assert_eq!(plan.outcome.duplicates, [a.id]);
/// assert_eq!(plan.rows[0].origin.counter, 1);
/// assert_eq!(plan.counters, [(me, 1)]);
/// ```
pub fn append_plan(
    node: NodeId,
    limits: &Limits,
    events: Vec<NewEvent>,
    now_ms: u64,
    known: &mut impl Known,
) -> Result<Plan> {
    let (fresh, duplicates) = split_fresh(events, |e| e.id, known)?;
    let mut plan = Plan::start(known.hlc()?, duplicates);
    if fresh.is_empty() {
        return Ok(plan);
    }
    let aggregates = distinct(fresh.iter().map(|e| e.aggregate_id.as_str()));
    let mut clocks = known.clocks(&aggregates)?;
    let aggregates: Vec<String> = aggregates.into_iter().map(str::to_owned).collect();
    let mut counter = known.counters(&[node])?.get(&node).copied().unwrap_or(0);
    for event in fresh {
        limits.check_new(&event)?;
        counter = counter
            .checked_add(1)
            .filter(|c| *c <= crate::MAX_COUNTER)
            .ok_or_else(|| Error::invalid(format!("node {node} has used up its counters ({})", crate::MAX_COUNTER)))?;
        let clock = clock_of(&mut clocks, &event.aggregate_id);
        clock.set(node, counter);
        clock.check_limit(limits.max_clock_entries)?;
        let clock = clock.clone();
        plan.hlc = plan.hlc.tick(now_ms);
        plan.outcome.inserted.push(event.id);
        plan.rows.push(event.stamp(Dot { node, counter }, clock, plan.hlc));
    }
    // Every touched aggregate got a new entry: all of them changed.
    plan.clocks = aggregates
        .into_iter()
        .map(|a| {
            let clock = clocks.remove(&a).unwrap_or_default();
            (a, clock)
        })
        .collect();
    plan.counters = vec![(node, counter)];
    Ok(plan)
}

/// Plans a remote batch ([`EventStore::apply`](crate::EventStore::apply)) at
/// wall-clock time `now_ms`. Duplicates are validated too, but teach the
/// store nothing: a forged copy of a stored id would otherwise inflate its
/// clocks.
pub fn apply_plan(limits: &Limits, events: Vec<Event>, now_ms: u64, known: &mut impl Known) -> Result<Plan> {
    let mut unique = HashSet::with_capacity(events.len());
    let is_first: Vec<bool> = events.iter().map(|e| unique.insert(e.id)).collect();
    let ids: Vec<EventId> = unique.into_iter().collect();
    let stored = if ids.is_empty() { HashSet::new() } else { known.stored(&ids)? };
    let fresh: Vec<bool> = events.iter().zip(&is_first).map(|(e, first)| *first && !stored.contains(&e.id)).collect();
    let new = || events.iter().zip(&fresh).filter(|(_, fresh)| **fresh).map(|(e, _)| e);
    let aggregates = distinct(new().map(|e| e.aggregate_id.as_str()));
    let origins = distinct(new().map(|e| e.origin.node));
    // Each with whether the batch changed it.
    let mut clocks: HashMap<String, (VectorClock, bool)> = match aggregates.is_empty() {
        true => HashMap::new(),
        false => known.clocks(&aggregates)?.into_iter().map(|(a, c)| (a, (c, false))).collect(),
    };
    let mut counters: HashMap<NodeId, (u64, bool)> = match origins.is_empty() {
        true => HashMap::new(),
        false => known.counters(&origins)?.into_iter().map(|(n, c)| (n, (c, false))).collect(),
    };
    let aggregates: Vec<String> = aggregates.into_iter().map(str::to_owned).collect();
    let mut plan = Plan::start(known.hlc()?, Vec::new());
    let mut rows = Vec::with_capacity(events.len());
    for (event, fresh) in events.into_iter().zip(fresh) {
        limits.check_remote(&event, now_ms)?;
        if !fresh {
            plan.outcome.duplicates.push(event.id);
            continue;
        }
        if !clocks.contains_key(&event.aggregate_id) {
            clocks.insert(event.aggregate_id.clone(), (VectorClock::new(), false));
        }
        let (clock, changed) = clocks.get_mut(&event.aggregate_id).expect("inserted just above");
        let causality = clock.compare(&event.clock);
        if !matches!(causality, Causality::Before | Causality::Equal) {
            plan.outcome.concurrent.push(event.id);
        }
        if matches!(causality, Causality::Before | Causality::Concurrent) {
            clock.merge(&event.clock);
            clock.check_limit(limits.max_clock_entries)?;
            *changed = true;
        }
        let (counter, raised) = counters.entry(event.origin.node).or_insert((0, false));
        if event.origin.counter > *counter {
            (*counter, *raised) = (event.origin.counter, true);
        }
        plan.hlc = plan.hlc.observe(event.hlc);
        plan.outcome.inserted.push(event.id);
        rows.push(event);
    }
    plan.rows = rows;
    plan.clocks = aggregates
        .into_iter()
        .filter_map(|a| match clocks.remove(&a) {
            Some((clock, true)) => Some((a, clock)),
            _ => None,
        })
        .collect();
    plan.counters = origins
        .into_iter()
        .filter_map(|n| counters.get(&n).filter(|(_, raised)| *raised).map(|(c, _)| (n, *c)))
        .collect();
    Ok(plan)
}

impl Plan {
    fn start(hlc: Hlc, duplicates: Vec<EventId>) -> Plan {
        let outcome = AppendOutcome { duplicates, ..AppendOutcome::default() };
        Plan { rows: Vec::new(), clocks: Vec::new(), counters: Vec::new(), hlc, outcome }
    }
}

/// Splits a batch into the events to insert and the ids of the duplicates
/// (repeated in the batch, or stored), both in batch order.
fn split_fresh<T>(
    events: Vec<T>,
    id: impl Fn(&T) -> EventId,
    known: &mut impl Known,
) -> Result<(Vec<T>, Vec<EventId>)> {
    let mut seen = HashSet::with_capacity(events.len());
    let unique: Vec<EventId> = events.iter().map(&id).filter(|i| seen.insert(*i)).collect();
    let stored = if unique.is_empty() { HashSet::new() } else { known.stored(&unique)? };
    seen.clear();
    let (mut fresh, mut duplicates) = (Vec::with_capacity(events.len()), Vec::new());
    for event in events {
        let i = id(&event);
        if seen.insert(i) && !stored.contains(&i) { fresh.push(event) } else { duplicates.push(i) }
    }
    Ok((fresh, duplicates))
}

/// The clock of `aggregate` in `clocks`, empty if it has none yet (without
/// copying the id of an aggregate already there: a batch looks up one per
/// event).
fn clock_of<'a>(clocks: &'a mut HashMap<String, VectorClock>, aggregate: &str) -> &'a mut VectorClock {
    if !clocks.contains_key(aggregate) {
        clocks.insert(aggregate.to_owned(), VectorClock::new());
    }
    clocks.get_mut(aggregate).expect("inserted just above")
}

/// Distinct values in first-seen order.
fn distinct<T: Copy + Eq + std::hash::Hash>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items.filter(|x| seen.insert(*x)).collect()
}
