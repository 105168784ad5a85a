//! Conflicts and their deterministic resolution.
//!
//! A conflict is the set of *heads* of one conflict key `(aggregate_id, kind)`
//! when there are two or more: the events of that key that no other event of
//! that key happened after (the multi-value register rule). A later event
//! that saw them all ends the conflict. Resolution never writes anything: the
//! [`resolved_view`] is a pure function of the event set, so every replica
//! holding the same events shows the same view.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;

use crate::{Event, EventId, NodeId};

/// Concurrent heads of one conflict key, sorted by `(hlc, node, id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The aggregate.
    pub aggregate_id: String,
    /// The event kind.
    pub kind: String,
    /// Two or more concurrent events, oldest first by `(hlc, node, id)`.
    pub events: Vec<Event>,
}

impl Conflict {
    /// The ids of the conflicting events, in order.
    pub fn ids(&self) -> Vec<EventId> {
        self.events.iter().map(|e| e.id).collect()
    }
}

/// What a resolver decided for one conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// This event wins; the others are hidden from the view. An id outside
    /// the conflict is treated as [`Resolution::KeepAll`], so a faulty
    /// resolver never hides data.
    Winner(EventId),
    /// All events stay in the view.
    KeepAll,
    /// One value replaces the whole set in the view.
    Merged(Bytes),
}

/// Decides conflicts. Must be a deterministic function of the conflict it is
/// given (which arrives sorted), so that every replica agrees.
pub trait ConflictResolver: Send + Sync {
    /// The resolution of `conflict`.
    fn resolve(&self, conflict: &Conflict) -> Resolution;
}

impl<R: ConflictResolver + ?Sized> ConflictResolver for Arc<R> {
    fn resolve(&self, conflict: &Conflict) -> Resolution {
        (**self).resolve(conflict)
    }
}

impl<R: ConflictResolver + ?Sized> ConflictResolver for Box<R> {
    fn resolve(&self, conflict: &Conflict) -> Resolution {
        (**self).resolve(conflict)
    }
}

/// The event with the greatest `(hlc, node, id)` wins.
#[derive(Debug, Clone, Copy, Default)]
pub struct LastWriteWins;

impl ConflictResolver for LastWriteWins {
    fn resolve(&self, c: &Conflict) -> Resolution {
        c.events.last().map_or(Resolution::KeepAll, |e| Resolution::Winner(e.id))
    }
}

/// The event with the smallest `(hlc, node, id)` wins.
#[derive(Debug, Clone, Copy, Default)]
pub struct FirstWriteWins;

impl ConflictResolver for FirstWriteWins {
    fn resolve(&self, c: &Conflict) -> Resolution {
        c.events.first().map_or(Resolution::KeepAll, |e| Resolution::Winner(e.id))
    }
}

/// Keeps every concurrent event (for additive data: counters, sets, logs).
#[derive(Debug, Clone, Copy, Default)]
pub struct AdditiveMerge;

impl ConflictResolver for AdditiveMerge {
    fn resolve(&self, _: &Conflict) -> Resolution {
        Resolution::KeepAll
    }
}

/// A resolver made from a closure.
///
/// ```
/// use sync_core::{resolver_fn, Resolution};
/// // The longest payload wins; ties fall to the later event.
/// let longest = resolver_fn(|c| {
///     let e = c.events.iter().rev().max_by_key(|e| e.data.len()).unwrap();
///     Resolution::Winner(e.id)
/// });
/// # let _ = longest;
/// ```
pub fn resolver_fn<F>(f: F) -> FnResolver<F>
where
    F: Fn(&Conflict) -> Resolution + Send + Sync,
{
    FnResolver(f)
}

/// See [`resolver_fn`].
#[derive(Clone, Copy)]
pub struct FnResolver<F>(F);

impl<F> ConflictResolver for FnResolver<F>
where
    F: Fn(&Conflict) -> Resolution + Send + Sync,
{
    fn resolve(&self, c: &Conflict) -> Resolution {
        (self.0)(c)
    }
}

/// Picks a resolver by event kind, with a default for the other kinds.
///
/// ```
/// use sync_core::{AdditiveMerge, ByKind, LastWriteWins};
/// let resolver = ByKind::new(LastWriteWins).kind("cart.item_added", AdditiveMerge);
/// # let _ = resolver;
/// ```
pub struct ByKind {
    default: Box<dyn ConflictResolver>,
    kinds: HashMap<String, Box<dyn ConflictResolver>>,
}

impl ByKind {
    /// `default` resolves every kind not registered with [`ByKind::kind`].
    pub fn new(default: impl ConflictResolver + 'static) -> Self {
        ByKind { default: Box::new(default), kinds: HashMap::new() }
    }

    /// Uses `resolver` for events of `kind`.
    pub fn kind(mut self, kind: impl Into<String>, resolver: impl ConflictResolver + 'static) -> Self {
        self.kinds.insert(kind.into(), Box::new(resolver));
        self
    }
}

impl ConflictResolver for ByKind {
    fn resolve(&self, c: &Conflict) -> Resolution {
        self.kinds.get(&c.kind).unwrap_or(&self.default).resolve(c)
    }
}

/// The conflicts among `events` (any order, duplicates ignored), sorted by
/// key; each conflict's events sorted by `(hlc, node, id)`.
pub fn find_conflicts(events: &[Event]) -> Vec<Conflict> {
    let mut by_key: BTreeMap<(&str, &str), Vec<&Event>> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for e in events {
        if seen.insert(e.id) {
            by_key.entry((&e.aggregate_id, &e.kind)).or_default().push(e);
        }
    }
    let mut out = Vec::new();
    for ((aggregate_id, kind), group) in by_key {
        let mut heads = heads(&group);
        if heads.len() >= 2 {
            heads.sort_by_key(|e| e.order_key());
            out.push(Conflict {
                aggregate_id: aggregate_id.to_owned(),
                kind: kind.to_owned(),
                events: heads.into_iter().cloned().collect(),
            });
        }
    }
    out
}

/// The events of `group` that no other event of `group` happened after.
///
/// An event's clock holds its own dot (`clock[origin.node] == origin.counter`)
/// and the dots of every event of its aggregate its origin knew, so `e`
/// happened before `f` exactly when `f.clock[e.origin.node] >= e.origin.counter`.
/// Keeping the two largest entries per node makes this linear.
fn heads<'a>(group: &[&'a Event]) -> Vec<&'a Event> {
    // node -> (largest entry, its event), second largest entry
    let mut top: HashMap<NodeId, ((u64, EventId), u64)> = HashMap::new();
    for f in group {
        for (node, counter) in f.clock.iter() {
            let slot = top.entry(node).or_insert(((0, f.id), 0));
            if counter > slot.0.0 {
                slot.1 = slot.0.0;
                slot.0 = (counter, f.id);
            } else if counter > slot.1 {
                slot.1 = counter;
            }
        }
    }
    group
        .iter()
        .filter(|e| {
            // Stored events always carry their own dot; an event that does
            // not is treated as a head rather than a panic.
            let Some(&((max, holder), second)) = top.get(&e.origin.node) else { return true };
            let best_other = if holder == e.id { second } else { max };
            best_other < e.origin.counter
        })
        .copied()
        .collect()
}

/// One entry of a [`View`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewEntry {
    /// An event shown as is.
    Event(Event),
    /// The merged value that replaces a conflict set.
    Merged {
        /// The aggregate.
        aggregate_id: String,
        /// The kind.
        kind: String,
        /// The merged data.
        data: Bytes,
        /// The events it replaces.
        replaces: Vec<EventId>,
    },
}

/// A conflict and how it was resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedConflict {
    /// The conflict.
    pub conflict: Conflict,
    /// The resolver's answer.
    pub resolution: Resolution,
}

/// The resolved view of a set of events (usually one aggregate).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    /// Events in causal order (ties by `(hlc, node, id)`) with each conflict
    /// set replaced by its resolution.
    pub entries: Vec<ViewEntry>,
    /// The conflicts found and their resolutions.
    pub conflicts: Vec<ResolvedConflict>,
}

/// The resolved view of `events`: a pure function of the set (order and
/// duplicates of the input do not matter).
///
/// ```
/// use sync_core::raw::Replica;
/// use sync_core::{resolved_view, LastWriteWins, NewEvent, NodeId, ViewEntry};
/// // Two replicas rename the same todo while offline.
/// let mut a = Replica::new(NodeId::random());
/// let mut b = Replica::new(NodeId::random());
/// let ea = a.stamp(NewEvent::new("renamed", "todo-1", "milk"), 1_000).unwrap();
/// let eb = b.stamp(NewEvent::new("renamed", "todo-1", "bread"), 2_000).unwrap();
/// let view = resolved_view(&[ea, eb.clone()], &LastWriteWins);
/// assert_eq!(view.conflicts.len(), 1);
/// assert_eq!(view.entries, vec![ViewEntry::Event(eb)]);
/// ```
pub fn resolved_view(events: &[Event], resolver: &dyn ConflictResolver) -> View {
    let conflicts: Vec<ResolvedConflict> = find_conflicts(events)
        .into_iter()
        .map(|conflict| {
            let resolution = match resolver.resolve(&conflict) {
                Resolution::Winner(id) if !conflict.events.iter().any(|e| e.id == id) => Resolution::KeepAll,
                other => other,
            };
            ResolvedConflict { conflict, resolution }
        })
        .collect();

    // What each conflicted event becomes in the view.
    enum Fate<'a> {
        Hidden,
        MergedHere(&'a ResolvedConflict),
    }
    let mut fate: HashMap<EventId, Fate<'_>> = HashMap::new();
    for rc in &conflicts {
        match &rc.resolution {
            Resolution::Winner(w) => {
                for e in rc.conflict.events.iter().filter(|e| e.id != *w) {
                    fate.insert(e.id, Fate::Hidden);
                }
            }
            Resolution::KeepAll => {}
            Resolution::Merged(_) => {
                let (last, rest) = rc.conflict.events.split_last().expect("a conflict has two or more events");
                for e in rest {
                    fate.insert(e.id, Fate::Hidden);
                }
                fate.insert(last.id, Fate::MergedHere(rc));
            }
        }
    }

    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| e.order_key());
    sorted.dedup_by_key(|e| e.id);
    let entries = sorted
        .into_iter()
        .filter_map(|e| match fate.get(&e.id) {
            None => Some(ViewEntry::Event(e.clone())),
            Some(Fate::Hidden) => None,
            Some(Fate::MergedHere(rc)) => {
                let Resolution::Merged(data) = &rc.resolution else { unreachable!("only merged sets are placed") };
                Some(ViewEntry::Merged {
                    aggregate_id: rc.conflict.aggregate_id.clone(),
                    kind: rc.conflict.kind.clone(),
                    data: data.clone(),
                    replaces: rc.conflict.ids(),
                })
            }
        })
        .collect();
    View { entries, conflicts }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewEvent;
    use crate::raw::Replica;
    use proptest::prelude::*;

    /// Three replicas editing two aggregates, syncing at random points:
    /// each step is (replica, aggregate, kind, sync-with-replica?).
    fn history(steps: &[(usize, usize, usize, Option<usize>)]) -> Vec<Event> {
        let nodes: Vec<NodeId> = (1..=3u8).map(|i| NodeId::from_bytes([i; 16])).collect();
        let mut books: Vec<Replica> = nodes.iter().map(|n| Replica::new(*n)).collect();
        let mut known: Vec<Vec<Event>> = vec![Vec::new(); 3];
        let mut all = Vec::new();
        for (i, &(r, agg, kind, sync)) in steps.iter().enumerate() {
            if let Some(other) = sync {
                let theirs = known[other].clone();
                for e in &theirs {
                    if !known[r].iter().any(|k| k.id == e.id) {
                        books[r].observe(e).unwrap();
                        known[r].push(e.clone());
                    }
                }
            }
            let id = EventId::from_bytes([i as u8 + 1; 16]);
            let e = books[r]
                .stamp(
                    NewEvent::new(format!("k{kind}"), format!("a{agg}"), vec![i as u8]).with_id(id),
                    1_000 + (i as u64 % 3),
                )
                .unwrap();
            known[r].push(e.clone());
            all.push(e);
        }
        all
    }

    fn steps() -> impl Strategy<Value = Vec<(usize, usize, usize, Option<usize>)>> {
        proptest::collection::vec((0..3usize, 0..2usize, 0..2usize, proptest::option::of(0..3usize)), 1..14)
    }

    fn merger() -> impl ConflictResolver {
        resolver_fn(|c: &Conflict| {
            Resolution::Merged(c.events.iter().flat_map(|e| e.data.to_vec()).collect::<Vec<u8>>().into())
        })
    }

    proptest! {
        #[test]
        fn every_resolver_is_order_independent(steps in steps(), seed in any::<u64>()) {
            let events = history(&steps);
            let mut shuffled = events.clone();
            // deterministic shuffle from the seed, plus a duplicate
            let mut s = seed;
            for i in (1..shuffled.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            shuffled.push(events[0].clone());
            let resolvers: Vec<Box<dyn ConflictResolver>> = vec![
                Box::new(LastWriteWins), Box::new(FirstWriteWins), Box::new(AdditiveMerge), Box::new(merger()),
                Box::new(ByKind::new(LastWriteWins).kind("k1", FirstWriteWins)),
            ];
            for r in &resolvers {
                prop_assert_eq!(resolved_view(&events, r.as_ref()), resolved_view(&shuffled, r.as_ref()));
            }
        }

        #[test]
        fn heads_match_the_quadratic_definition(steps in steps()) {
            let events = history(&steps);
            let found = find_conflicts(&events);
            let mut keys: BTreeMap<(String, String), Vec<&Event>> = BTreeMap::new();
            for e in &events { keys.entry((e.aggregate_id.clone(), e.kind.clone())).or_default().push(e); }
            let mut expected = Vec::new();
            for ((a, k), group) in keys {
                let mut heads: Vec<Event> = group.iter()
                    .filter(|e| !group.iter().any(|f| e.clock.happened_before(&f.clock)))
                    .map(|e| (*e).clone()).collect();
                if heads.len() >= 2 {
                    heads.sort_by_key(|e| e.order_key());
                    expected.push(Conflict { aggregate_id: a, kind: k, events: heads });
                }
            }
            prop_assert_eq!(found, expected);
        }
    }

    #[test]
    fn a_later_event_that_saw_both_ends_the_conflict() {
        // replica 0 and 1 write concurrently, then 0 syncs from 1 and writes again
        let events = history(&[(0, 0, 0, None), (1, 0, 0, None), (0, 0, 0, Some(1))]);
        assert!(find_conflicts(&events[..2]).len() == 1);
        assert!(find_conflicts(&events).is_empty());
    }

    #[test]
    fn builtin_resolutions() {
        let events = history(&[(0, 0, 0, None), (1, 0, 0, None), (2, 0, 0, None)]);
        let c = &find_conflicts(&events)[0];
        assert_eq!(c.events.len(), 3);
        assert_eq!(LastWriteWins.resolve(c), Resolution::Winner(c.events[2].id));
        assert_eq!(FirstWriteWins.resolve(c), Resolution::Winner(c.events[0].id));
        assert_eq!(AdditiveMerge.resolve(c), Resolution::KeepAll);
        let merged = resolved_view(&events, &merger());
        assert_eq!(merged.entries.len(), 1);
        assert!(matches!(&merged.entries[0], ViewEntry::Merged { replaces, .. } if replaces.len() == 3));
        let faulty = resolver_fn(|_| Resolution::Winner(EventId::from_bytes([0xff; 16])));
        assert_eq!(resolved_view(&events, &faulty).entries.len(), 3, "an unknown winner hides nothing");
    }
}
