//! Events: what applications append and replicas exchange.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{EventId, Hlc, NodeId, VectorClock};

/// The origin of an event: the node that appended it and that node's dense
/// counter (1, 2, 3, ... over all its events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// The appending node.
    pub node: NodeId,
    /// Its counter for this event.
    pub counter: u64,
}

/// An event as the application writes it, before a store stamps it.
///
/// ```
/// use sync_core::NewEvent;
/// let e = NewEvent::new("todo.renamed", "todo-1", b"buy milk".to_vec())
///     .with_metadata("tenant", "acme");
/// assert_eq!(e.metadata["tenant"], "acme");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Unique id; [`NewEvent::new`] makes a fresh UUIDv7.
    pub id: EventId,
    /// The event type, e.g. `"todo.renamed"`.
    pub kind: String,
    /// The entity the event belongs to. Must not be empty.
    pub aggregate_id: String,
    /// Opaque payload.
    pub data: Bytes,
    /// Free-form string metadata (tenant, priority, ...); filters can match on it.
    pub metadata: BTreeMap<String, String>,
}

impl NewEvent {
    /// An event with a fresh id and no metadata.
    pub fn new(kind: impl Into<String>, aggregate_id: impl Into<String>, data: impl Into<Bytes>) -> Self {
        NewEvent {
            id: EventId::new(),
            kind: kind.into(),
            aggregate_id: aggregate_id.into(),
            data: data.into(),
            metadata: BTreeMap::new(),
        }
    }

    /// An event whose data is `value` encoded as JSON.
    pub fn json<T: Serialize>(
        kind: impl Into<String>,
        aggregate_id: impl Into<String>,
        value: &T,
    ) -> crate::Result<Self> {
        let data = serde_json::to_vec(value).map_err(|e| crate::Error::invalid(format!("event data: {e}")))?;
        Ok(Self::new(kind, aggregate_id, data))
    }

    /// Adds one metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Uses `id` instead of the generated one (for idempotent retries).
    pub fn with_id(mut self, id: EventId) -> Self {
        self.id = id;
        self
    }

    /// The stamped event.
    pub fn stamp(self, origin: Dot, clock: VectorClock, hlc: Hlc) -> Event {
        Event {
            id: self.id,
            kind: self.kind,
            aggregate_id: self.aggregate_id,
            data: self.data,
            metadata: self.metadata,
            origin,
            clock,
            hlc,
        }
    }
}

/// A stored event: the application's fields plus the replication header
/// (`origin`, `clock`, `hlc`) that the appending store filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id (UUIDv7).
    pub id: EventId,
    /// The event type.
    pub kind: String,
    /// The entity it belongs to.
    pub aggregate_id: String,
    /// Opaque payload; base64 in JSON, raw bytes in postcard.
    #[serde(with = "data_serde")]
    pub data: Bytes,
    /// String metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The appending node and its counter.
    pub origin: Dot,
    /// Causal history within the aggregate: the merge of the clocks of every
    /// event of this aggregate the origin knew, with `clock[origin.node] == origin.counter`.
    pub clock: VectorClock,
    /// Hybrid logical time of the append.
    pub hlc: Hlc,
}

impl Event {
    /// Decodes `data` as JSON.
    pub fn data_json<T: serde::de::DeserializeOwned>(&self) -> crate::Result<T> {
        serde_json::from_slice(&self.data).map_err(|e| crate::Error::Decode { format: "json", message: e.to_string() })
    }

    /// The total-order key used to break ties: `(hlc, node, id)`.
    pub fn order_key(&self) -> (Hlc, NodeId, EventId) {
        (self.hlc, self.origin.node, self.id)
    }

    /// Rough size in bytes, used for limits.
    pub fn approx_size(&self) -> usize {
        self.data.len()
            + self.kind.len()
            + self.aggregate_id.len()
            + self.metadata.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
            + self.clock.len() * 24
            + 64
    }
}

/// `data` is raw bytes for binary formats and base64 text for JSON.
mod data_serde {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(data: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.serialize_str(&STANDARD.encode(data)) } else { s.serialize_bytes(data) }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            STANDARD.decode(text.as_bytes()).map(Bytes::from).map_err(serde::de::Error::custom)
        } else {
            let bytes = serde_bytes::ByteBuf::deserialize(d)?;
            Ok(Bytes::from(bytes.into_vec()))
        }
    }
}
