//! The stored form of an event.
//!
//! Its id, aggregate id and kind live in columns of their own; the `body`
//! column holds the postcard of the rest, without repeating what is known:
//! the origin node is left out when it is this store's node (every local
//! append), and the clock is stored without the origin's own entry, which
//! always equals the origin counter (stamping makes it so, and
//! [`sync_core::Limits::check_remote`] rejects remote events where it does
//! not). A local event's header thus costs a few bytes instead of ~40.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sync_core::{Dot, Event, EventId, Hlc, NodeId, VectorClock};

use crate::store::sixteen;

#[derive(Serialize)]
struct BodyRef<'a> {
    #[serde(with = "serde_bytes")]
    data: &'a [u8],
    metadata: &'a BTreeMap<String, String>,
    /// `None`: this store's node.
    origin_node: Option<NodeId>,
    counter: u64,
    /// The clock less the origin's entry.
    others: Others<'a>,
    hlc: Hlc,
}

#[derive(Deserialize)]
struct Body {
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    metadata: BTreeMap<String, String>,
    origin_node: Option<NodeId>,
    counter: u64,
    others: VectorClock,
    hlc: Hlc,
}

/// The same fields, borrowing what it can: for reading only the header.
#[derive(Deserialize)]
struct BodyClock<'a> {
    #[serde(with = "serde_bytes", borrow)]
    _data: &'a [u8],
    #[serde(borrow)]
    _metadata: BTreeMap<&'a str, &'a str>,
    origin_node: Option<NodeId>,
    counter: u64,
    others: VectorClock,
    _hlc: Hlc,
}

/// Encodes and decodes bodies for the store whose node is `node`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bodies {
    pub(crate) node: NodeId,
}

impl Bodies {
    /// Appends the body of `event` to `buf`.
    pub(crate) fn encode_into(self, event: &Event, buf: Vec<u8>) -> sync_core::Result<Vec<u8>> {
        let Dot { node, counter } = event.origin;
        if event.clock.get(node) != counter {
            return Err(sync_core::Error::invalid(format!(
                "event {}: clock entry of its origin must equal the origin counter {counter}",
                event.id
            )));
        }
        let others = Others { clock: &event.clock, origin: node };
        let body = BodyRef {
            data: &event.data,
            metadata: &event.metadata,
            origin_node: (node != self.node).then_some(node),
            counter,
            others,
            hlc: event.hlc,
        };
        postcard::to_extend(&body, buf)
            .map_err(|e| sync_core::Error::invalid(format!("cannot encode event {}: {e}", event.id)))
    }

    /// The event from its columns and body.
    pub(crate) fn decode(self, id: &[u8], aggregate_id: String, kind: String, body: &[u8]) -> sync_core::Result<Event> {
        let body: Body = whole(body)?;
        let (origin, clock) = self.header(body.origin_node, body.counter, body.others);
        Ok(Event {
            id: EventId::from_bytes(sixteen(id, "event id")?),
            kind,
            aggregate_id,
            data: body.data.into(),
            metadata: body.metadata,
            origin,
            clock,
            hlc: body.hlc,
        })
    }

    /// Only the origin and the clock of a stored event.
    pub(crate) fn decode_header(self, body: &[u8]) -> sync_core::Result<(Dot, VectorClock)> {
        let body: BodyClock<'_> = whole(body)?;
        Ok(self.header(body.origin_node, body.counter, body.others))
    }

    fn header(self, node: Option<NodeId>, counter: u64, mut clock: VectorClock) -> (Dot, VectorClock) {
        let node = node.unwrap_or(self.node);
        clock.set(node, counter);
        (Dot { node, counter }, clock)
    }
}

/// A clock without the entry of `origin` (which it has), serialized like
/// a [`VectorClock`] so that it reads back as one.
struct Others<'a> {
    clock: &'a VectorClock,
    origin: NodeId,
}

impl Serialize for Others<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.clock.len() - 1))?;
        for (node, counter) in self.clock.iter() {
            if node != self.origin {
                map.serialize_entry(&node, &counter)?;
            }
        }
        map.end()
    }
}

fn whole<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> sync_core::Result<T> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(corrupt(format!("{} trailing bytes", rest.len()))),
        Err(e) => Err(corrupt(e.to_string())),
    }
}

fn corrupt(reason: String) -> sync_core::Error {
    sync_core::Error::storage("decoding a stored event", reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::NewEvent;
    use sync_core::raw::Replica;

    fn round_trip(bodies: Bodies, event: &Event) -> usize {
        let body = bodies.encode_into(event, Vec::new()).unwrap();
        let id = event.id.to_bytes();
        let back = bodies.decode(&id, event.aggregate_id.clone(), event.kind.clone(), &body).unwrap();
        assert_eq!(&back, event);
        assert_eq!(bodies.decode_header(&body).unwrap(), (event.origin, event.clock.clone()));
        let mut longer = body.clone();
        longer.push(0);
        assert!(bodies.decode(&id, "a".into(), "k".into(), &longer).is_err());
        assert!(bodies.decode_header(&body[..body.len() - 1]).is_err());
        body.len()
    }

    #[test]
    fn bodies_round_trip_and_reject_damage() {
        let (me, other) = (NodeId::random(), NodeId::random());
        let bodies = Bodies { node: me };
        let mine = Replica::new(me)
            .stamp(
                NewEvent::new("k.ind", "agg-1", vec![0, 1, 2, 255]).with_metadata("tenant", "acme"),
                1_700_000_000_000,
            )
            .unwrap();
        let local_len = round_trip(bodies, &mine);
        // A remote event that saw ours: two clock entries, foreign origin.
        let mut book = Replica::new(other);
        book.observe(&mine).unwrap();
        let theirs = book.stamp(NewEvent::new("k.ind", "agg-1", vec![7]), 1_700_000_000_001).unwrap();
        assert_eq!(theirs.clock.len(), 2);
        let remote_len = round_trip(bodies, &theirs);
        assert!(local_len + 16 < remote_len, "{local_len} vs {remote_len}");
        // Several bodies share one buffer.
        let one = bodies.encode_into(&mine, Vec::new()).unwrap();
        let two = bodies.encode_into(&mine, one.clone()).unwrap();
        assert_eq!(&two[one.len()..], &one[..]);
    }

    #[test]
    fn a_clock_that_misses_its_origin_is_refused() {
        let me = NodeId::random();
        let mut event = Replica::new(me).stamp(NewEvent::new("k", "a", "x"), 1).unwrap();
        event.clock.set(me, 7);
        assert!(Bodies { node: me }.encode_into(&event, Vec::new()).is_err());
    }
}
