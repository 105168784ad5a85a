//! Cursors: opaque positions in one store's change feed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::NodeId;
use crate::error::{Error, Result};

/// A position in one store's change feed: the store's id and a position
/// that only that store interprets. [`Cursor::START`] is valid for every store.
///
/// The position is the store's own: an insertion sequence number for SQLite
/// and redb, possibly several numbers packed together for a store whose
/// order needs them. It need not be dense; it only grows along the feed, and
/// once a cursor is handed out no event can later appear before it.
///
/// The text form is opaque to clients: `0` for the start, otherwise
/// `<32 hex store id>.<decimal position>`. Anything else is rejected as
/// malformed, and a cursor of another store is rejected as foreign by
/// [`Cursor::position_for`].
///
/// ```
/// use sync_core::{Cursor, NodeId};
/// let store = NodeId::random();
/// let c = Cursor::new(store, 42);
/// let parsed: Cursor = c.to_string().parse().unwrap();
/// assert_eq!(parsed.position_for(store).unwrap(), 42);
/// assert!(parsed.position_for(NodeId::random()).is_err());
/// assert!("garbage".parse::<Cursor>().is_err());
/// assert_eq!(Cursor::START.position_for(store).unwrap(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Cursor {
    store: Option<NodeId>,
    position: u128,
}

impl Cursor {
    /// The beginning of any store's feed.
    pub const START: Cursor = Cursor { store: None, position: 0 };

    /// The cursor at `position` of `store`'s feed; position 0 is
    /// [`Cursor::START`].
    pub fn new(store: NodeId, position: u128) -> Self {
        match position {
            0 => Cursor::START,
            position => Cursor { store: Some(store), position },
        }
    }

    /// The store this cursor belongs to; `None` for [`Cursor::START`].
    pub fn store(&self) -> Option<NodeId> {
        self.store
    }

    /// True for [`Cursor::START`].
    pub fn is_start(&self) -> bool {
        self.store.is_none()
    }

    /// The position, after checking the cursor belongs to `store`.
    pub fn position_for(&self, store: NodeId) -> Result<u128> {
        match self.store {
            None => Ok(0),
            Some(found) if found == store => Ok(self.position),
            Some(found) => Err(Error::ForeignCursor { expected: store, found }),
        }
    }

    /// The position as a 64-bit sequence number, for stores whose positions
    /// are one: a larger position is not one of theirs.
    pub fn seq_for(&self, store: NodeId) -> Result<u64> {
        let position = self.position_for(store)?;
        u64::try_from(position).map_err(|_| Error::MalformedCursor {
            input: self.to_string(),
            reason: "position out of range for this store".into(),
        })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.store {
            None => f.write_str("0"),
            Some(store) => write!(f, "{store}.{}", self.position),
        }
    }
}

impl FromStr for Cursor {
    type Err = Error;
    fn from_str(input: &str) -> Result<Self> {
        let malformed =
            |reason: &str| Error::MalformedCursor { input: input.chars().take(80).collect(), reason: reason.into() };
        if input == "0" {
            return Ok(Cursor::START);
        }
        let (store, position) =
            input.split_once('.').ok_or_else(|| malformed("expected `0` or `<store>.<position>`"))?;
        if store.len() != 32 || !store.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Err(malformed("store id must be 32 lowercase hex digits"));
        }
        let store: NodeId = store.parse().map_err(|_| malformed("bad store id"))?;
        if position.is_empty()
            || !position.bytes().all(|b| b.is_ascii_digit())
            || (position.len() > 1 && position.starts_with('0'))
        {
            return Err(malformed("position must be a decimal number without leading zeros"));
        }
        let position: u128 = position.parse().map_err(|_| malformed("position out of range"))?;
        if position == 0 {
            return Err(malformed("position 0 is written `0`"));
        }
        Ok(Cursor { store: Some(store), position })
    }
}

impl From<Cursor> for String {
    fn from(c: Cursor) -> String {
        c.to_string()
    }
}

impl TryFrom<String> for Cursor {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbled_forms() {
        let store = NodeId::random();
        let good = Cursor::new(store, 7).to_string();
        for bad in [
            "",
            "1",
            "x.1",
            &format!("{store}."),
            &format!("{store}.-1"),
            &format!("{store}.01"),
            &format!("{store}.0"),
            &format!("{store}.1.2"),
            &format!("{}.1", store.to_string().to_uppercase()),
            &format!("{store}.999999999999999999999999999999999999999999"),
            &good[1..],
        ] {
            let err = bad.parse::<Cursor>().unwrap_err();
            assert_eq!(err.code(), crate::ErrorCode::BadCursor, "{bad:?}");
        }
        assert_eq!(good.parse::<Cursor>().unwrap(), Cursor::new(store, 7));
    }

    #[test]
    fn positions_wider_than_a_seq_round_trip() {
        let store = NodeId::random();
        let wide = Cursor::new(store, (7u128 << 64) | 9);
        assert_eq!(wide.to_string().parse::<Cursor>().unwrap(), wide);
        assert_eq!(wide.position_for(store).unwrap(), (7u128 << 64) | 9);
        assert_eq!(wide.seq_for(store).unwrap_err().code(), crate::ErrorCode::BadCursor);
        assert_eq!(Cursor::new(store, 5).seq_for(store).unwrap(), 5);
    }
}
