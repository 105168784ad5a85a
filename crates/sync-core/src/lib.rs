//! The core of synckit: the data model, vector clocks, hybrid logical
//! clocks, cursors, filters, conflict resolution, the wire codec and the
//! traits ([`EventStore`], [`Transport`], [`ConflictResolver`]) that store and
//! transport crates implement. No I/O lives here.
//!
//! Store authors find the batch rule and the feed helpers in [`raw`].
//!
//! ```
//! use sync_core::raw::{Ledger, append_plan};
//! use sync_core::{Codec, Event, Hlc, Limits, NewEvent, NodeId};
//! let note = NewEvent::new("note.added", "note-1", "hello");
//! let plan = append_plan(NodeId::random(), &Limits::default(), vec![note], Hlc::now_ms(), &mut Ledger::default())?;
//! let event = &plan.rows[0];
//! let wire = Codec::Postcard.encode(event)?;
//! assert_eq!(&Codec::Postcard.decode::<Event>(&wire)?, event);
//! # Ok::<_, sync_core::Error>(())
//! ```

mod clock;
mod codec;
mod cursor;
mod error;
mod event;
mod filter;
mod hlc;
mod id;
pub mod raw;
mod resolve;
mod store;
mod transport;

pub use clock::{Causality, DEFAULT_MAX_CLOCK_ENTRIES, VectorClock};
pub use codec::Codec;
pub use cursor::Cursor;
pub use error::{BoxError, Error, ErrorCode, Result};
pub use event::{Dot, Event, NewEvent};
pub use filter::Filter;
pub use hlc::Hlc;
pub use id::{EventId, NodeId};
pub use resolve::{
    AdditiveMerge, ByKind, Conflict, ConflictResolver, FirstWriteWins, FnResolver, LastWriteWins, Resolution,
    ResolvedConflict, View, ViewEntry, find_conflicts, resolved_view, resolver_fn,
};
pub use store::{
    AppendOutcome, Checkpoint, EventStore, FeedSpan, Limits, MAX_COUNTER, MAX_PAGE_BYTES, Page, apply_or_each,
};
pub use transport::{CompressRequests, Live, PushAck, PushResult, PushStatus, Subscribe, Transport};

#[cfg(test)]
mod codec_tests {
    use super::*;
    use proptest::prelude::*;

    fn event() -> impl Strategy<Value = Event> {
        (
            any::<[u8; 16]>(),
            "[a-z.]{1,12}",
            "\\PC{1,16}",
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::collection::btree_map("[a-z]{1,6}", "\\PC{0,8}", 0..3),
            proptest::collection::vec((any::<[u8; 16]>(), 1u64..1000), 1..4),
            any::<u64>(),
            any::<u32>(),
        )
            .prop_map(|(id, kind, agg, data, metadata, clock, wall_ms, logical)| {
                let clock: VectorClock = clock.into_iter().map(|(n, c)| (NodeId::from_bytes(n), c)).collect();
                let (node, counter) = clock.iter().next().unwrap();
                Event {
                    id: EventId::from_bytes(id),
                    kind,
                    aggregate_id: agg,
                    data: data.into(),
                    metadata,
                    origin: Dot { node, counter },
                    clock,
                    hlc: Hlc { wall_ms, logical },
                }
            })
    }

    proptest! {
        #[test]
        fn events_round_trip_in_both_codecs(events in proptest::collection::vec(event(), 0..5), after in any::<[u8; 16]>(), seq in any::<u64>()) {
            let page = Page { events, next: Cursor::new(NodeId::from_bytes(after), seq.into()), has_more: seq % 2 == 0 };
            for codec in [Codec::Postcard, Codec::Json] {
                let bytes = codec.encode(&page).unwrap();
                prop_assert_eq!(&codec.decode::<Page>(&bytes).unwrap(), &page);
            }
        }

        #[test]
        fn postcard_rejects_truncation(e in event(), cut in any::<prop::sample::Index>()) {
            let bytes = Codec::Postcard.encode(&e).unwrap();
            let n = cut.index(bytes.len());
            prop_assert!(Codec::Postcard.decode::<Event>(&bytes[..n]).is_err());
        }
    }

    #[test]
    fn json_shape_is_readable() {
        let node = NodeId::from_bytes([1; 16]);
        let e = NewEvent::new("note.added", "note-1", "hi").with_id(EventId::from_bytes([2; 16])).stamp(
            Dot { node, counter: 1 },
            [(node, 1)].into_iter().collect(),
            Hlc { wall_ms: 5, logical: 0 },
        );
        let json: serde_json::Value = serde_json::from_slice(&Codec::Json.encode(&e).unwrap()).unwrap();
        assert_eq!(json["data"], "aGk=");
        assert_eq!(json["id"], "02020202-0202-0202-0202-020202020202");
        assert_eq!(json["clock"]["01010101010101010101010101010101"], 1);
        assert_eq!(json["origin"]["node"], "01010101010101010101010101010101");
    }

    #[test]
    fn postcard_rejects_trailing_bytes() {
        let mut bytes = Codec::Postcard.encode(&7u32).unwrap();
        bytes.push(0);
        assert_eq!(Codec::Postcard.decode::<u32>(&bytes).unwrap_err().code(), ErrorCode::Malformed);
    }
}
