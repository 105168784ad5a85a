//! Identifiers: [`NodeId`] for replicas, [`EventId`] for events.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// The 128-bit random id of a replica (a store). Created once and persisted
/// by the store; its text form is 32 lowercase hex digits.
///
/// ```
/// use sync_core::NodeId;
/// let id = NodeId::random();
/// assert_eq!(id.to_string().parse::<NodeId>().unwrap(), id);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(Uuid);

impl Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.collect_str(self) } else { self.0.serialize(s) }
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        if d.is_human_readable() {
            String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
        } else {
            Uuid::deserialize(d).map(NodeId)
        }
    }
}

impl NodeId {
    /// A fresh random id.
    pub fn random() -> Self {
        NodeId(Uuid::new_v4())
    }

    /// The id from its 16 bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        NodeId(Uuid::from_bytes(bytes))
    }

    /// The 16 bytes of the id.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.into_bytes()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.simple(), f)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0.simple())
    }
}

impl FromStr for NodeId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Uuid::try_parse(s).map(NodeId).map_err(|e| Error::invalid(format!("node id {s:?}: {e}")))
    }
}

/// The id of an event: a UUIDv7, so ids made later sort later and B-tree
/// inserts stay sequential.
///
/// ```
/// use sync_core::EventId;
/// let a = EventId::new();
/// let b = EventId::new();
/// assert!(a < b);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(Uuid);

impl EventId {
    /// A new UUIDv7 id, strictly greater than every id this process made before.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        EventId(Uuid::now_v7())
    }

    /// The id from its 16 bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        EventId(Uuid::from_bytes(bytes))
    }

    /// The 16 bytes of the id.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.into_bytes()
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl From<Uuid> for EventId {
    fn from(u: Uuid) -> Self {
        EventId(u)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.0)
    }
}

impl FromStr for EventId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Uuid::try_parse(s).map(EventId).map_err(|e| Error::invalid(format!("event id {s:?}: {e}")))
    }
}
