//! Vector clocks: causality between events of one aggregate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::NodeId;
use crate::error::{Error, Result};

/// How two clocks relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Causality {
    /// Every entry of `self` is <= the other's, and they differ.
    Before,
    /// Every entry of `self` is >= the other's, and they differ.
    After,
    /// Same entries.
    Equal,
    /// Neither saw the other.
    Concurrent,
}

/// Default limit on entries in one clock. A clock holds one entry per node
/// that wrote the aggregate, so this bounds writers per aggregate.
pub const DEFAULT_MAX_CLOCK_ENTRIES: usize = 256;

/// Node -> counter. Missing entries are zero.
///
/// ```
/// use sync_core::{Causality, NodeId, VectorClock};
/// let (a, b) = (NodeId::random(), NodeId::random());
/// let mut x = VectorClock::new();
/// x.increment(a);
/// let mut y = x.clone();
/// y.increment(b);
/// assert_eq!(x.compare(&y), Causality::Before);
/// x.increment(a);
/// assert_eq!(x.compare(&y), Causality::Concurrent);
/// x.merge(&y);
/// assert_eq!(x.compare(&y), Causality::After);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VectorClock(BTreeMap<NodeId, u64>);

impl VectorClock {
    /// The empty clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter of `node` (zero when absent).
    pub fn get(&self, node: NodeId) -> u64 {
        self.0.get(&node).copied().unwrap_or(0)
    }

    /// Sets the counter of `node`; zero removes the entry.
    pub fn set(&mut self, node: NodeId, counter: u64) {
        if counter == 0 {
            self.0.remove(&node);
        } else {
            self.0.insert(node, counter);
        }
    }

    /// Adds one to `node`'s counter and returns the new value.
    pub fn increment(&mut self, node: NodeId) -> u64 {
        let c = self.0.entry(node).or_insert(0);
        *c += 1;
        *c
    }

    /// Pointwise maximum with `other`.
    pub fn merge(&mut self, other: &VectorClock) {
        for (&node, &counter) in &other.0 {
            let c = self.0.entry(node).or_insert(0);
            *c = (*c).max(counter);
        }
    }

    /// How `self` relates to `other`.
    pub fn compare(&self, other: &VectorClock) -> Causality {
        let mut less = false;
        let mut greater = false;
        for node in self.0.keys().chain(other.0.keys()) {
            let (a, b) = (self.get(*node), other.get(*node));
            less |= a < b;
            greater |= a > b;
        }
        match (less, greater) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (true, true) => Causality::Concurrent,
        }
    }

    /// True when `self` happened before `other`.
    pub fn happened_before(&self, other: &VectorClock) -> bool {
        self.compare(other) == Causality::Before
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no entry is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries, ordered by node.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.0.iter().map(|(n, c)| (*n, *c))
    }

    /// Fails with [`Error::ClockTooLarge`] when the clock has more than `limit` entries.
    pub fn check_limit(&self, limit: usize) -> Result<()> {
        if self.0.len() > limit {
            return Err(Error::ClockTooLarge { entries: self.0.len(), limit });
        }
        Ok(())
    }
}

impl FromIterator<(NodeId, u64)> for VectorClock {
    fn from_iter<I: IntoIterator<Item = (NodeId, u64)>>(iter: I) -> Self {
        let mut clock = VectorClock::new();
        for (n, c) in iter {
            clock.set(n, c);
        }
        clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nodes() -> Vec<NodeId> {
        (1..=4u8).map(|i| NodeId::from_bytes([i; 16])).collect()
    }

    fn clock() -> impl Strategy<Value = VectorClock> {
        proptest::collection::vec(0u64..5, 4).prop_map(|cs| nodes().into_iter().zip(cs).collect())
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in clock(), b in clock()) {
            let mut ab = a.clone(); ab.merge(&b);
            let mut ba = b.clone(); ba.merge(&a);
            prop_assert_eq!(ab, ba);
        }

        #[test]
        fn merge_is_associative(a in clock(), b in clock(), c in clock()) {
            let mut l = a.clone(); l.merge(&b); l.merge(&c);
            let mut bc = b.clone(); bc.merge(&c);
            let mut r = a.clone(); r.merge(&bc);
            prop_assert_eq!(l, r);
        }

        #[test]
        fn merge_is_idempotent(a in clock()) {
            let mut m = a.clone(); m.merge(&a);
            prop_assert_eq!(m, a);
        }

        #[test]
        fn compare_agrees_with_merge(a in clock(), b in clock()) {
            let mut m = a.clone(); m.merge(&b);
            let expected = match (m == b, m == a) {
                (true, true) => Causality::Equal,
                (true, false) => Causality::Before,
                (false, true) => Causality::After,
                (false, false) => Causality::Concurrent,
            };
            prop_assert_eq!(a.compare(&b), expected);
            // and compare is antisymmetric
            let flipped = match expected {
                Causality::Before => Causality::After,
                Causality::After => Causality::Before,
                other => other,
            };
            prop_assert_eq!(b.compare(&a), flipped);
        }
    }

    #[test]
    fn limit_gives_clear_error() {
        let c: VectorClock = nodes().into_iter().map(|n| (n, 1)).collect();
        assert!(c.check_limit(4).is_ok());
        let err = c.check_limit(3).unwrap_err();
        assert_eq!(err.to_string(), "vector clock has 4 entries, limit is 3");
    }

    #[test]
    fn zero_entries_are_absent() {
        let n = nodes()[0];
        let mut c = VectorClock::new();
        c.set(n, 0);
        assert!(c.is_empty());
        assert_eq!(c, VectorClock::new());
    }
}
