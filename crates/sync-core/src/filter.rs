//! Filters: which events a pull or a push carries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Event, NodeId};

/// A serializable event predicate. Every set part must match; an empty
/// filter matches everything. Sent to the server on pull (see
/// `docs/protocol.md`) and applied locally on push.
///
/// ```
/// use sync_core::{Filter, NewEvent, Dot, NodeId, VectorClock, Hlc};
/// let f = Filter::default().aggregate_prefix("todo-").kind("todo.created").metadata("tenant", "acme");
/// let e = NewEvent::new("todo.created", "todo-1", vec![])
///     .with_metadata("tenant", "acme")
///     .stamp(Dot { node: NodeId::random(), counter: 1 }, VectorClock::new(), Hlc::ZERO);
/// assert!(f.matches(&e));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Only aggregates whose id starts with this.
    #[serde(default)]
    pub aggregate_prefix: Option<String>,
    /// Only these kinds (empty: all kinds).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Only events whose metadata has each of these key/value pairs.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Leave out events that this node appended. A client pulls with its own
    /// node id here so its pushed events do not travel back to it.
    #[serde(default)]
    pub exclude_origin: Option<NodeId>,
}

impl Filter {
    /// Requires the aggregate id to start with `prefix`.
    pub fn aggregate_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.aggregate_prefix = Some(prefix.into());
        self
    }

    /// Adds `kind` to the accepted kinds.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kinds.push(kind.into());
        self
    }

    /// Requires metadata `key` to equal `value`.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Leaves out events appended by `node`.
    pub fn exclude_origin(mut self, node: NodeId) -> Self {
        self.exclude_origin = Some(node);
        self
    }

    /// Does `event` pass?
    pub fn matches(&self, event: &Event) -> bool {
        self.aggregate_prefix.as_deref().is_none_or(|p| event.aggregate_id.starts_with(p))
            && (self.kinds.is_empty() || self.kinds.contains(&event.kind))
            && self.metadata.iter().all(|(k, v)| event.metadata.get(k) == Some(v))
            && self.exclude_origin != Some(event.origin.node)
    }
}
