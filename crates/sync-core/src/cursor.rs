//! Cursors: opaque positions in one store's change feed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::NodeId;
use crate::error::{Error, Result};

/// A position in one store's change feed: the store's id and a local
/// sequence number (insertion order). [`Cursor::START`] is valid for every store.
///
/// The text form is opaque to clients: `0` for the start, otherwise
/// `<32 hex store id>.<seq>`. Anything else is rejected as malformed, and a
/// cursor of another store is rejected as foreign by [`Cursor::seq_for`].
///
/// ```
/// use sync_core::{Cursor, NodeId};
/// let store = NodeId::random();
/// let c = Cursor::new(store, 42);
/// let parsed: Cursor = c.to_string().parse().unwrap();
/// assert_eq!(parsed.seq_for(store).unwrap(), 42);
/// assert!(parsed.seq_for(NodeId::random()).is_err());
/// assert!("garbage".parse::<Cursor>().is_err());
/// assert_eq!(Cursor::START.seq_for(store).unwrap(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Cursor {
    store: Option<NodeId>,
    seq: u64,
}

impl Cursor {
    /// The beginning of any store's feed.
    pub const START: Cursor = Cursor { store: None, seq: 0 };

    /// The position after `seq` in `store`'s feed.
    pub fn new(store: NodeId, seq: u64) -> Self {
        if seq == 0 { Cursor::START } else { Cursor { store: Some(store), seq } }
    }

    /// The store this cursor belongs to; `None` for [`Cursor::START`].
    pub fn store(&self) -> Option<NodeId> {
        self.store
    }

    /// True for [`Cursor::START`].
    pub fn is_start(&self) -> bool {
        self.store.is_none()
    }

    /// The sequence number, after checking the cursor belongs to `store`.
    pub fn seq_for(&self, store: NodeId) -> Result<u64> {
        match self.store {
            None => Ok(0),
            Some(found) if found == store => Ok(self.seq),
            Some(found) => Err(Error::ForeignCursor { expected: store, found }),
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.store {
            None => f.write_str("0"),
            Some(store) => write!(f, "{store}.{}", self.seq),
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
        let (store, seq) = input.split_once('.').ok_or_else(|| malformed("expected `0` or `<store>.<seq>`"))?;
        if store.len() != 32 || !store.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Err(malformed("store id must be 32 lowercase hex digits"));
        }
        let store: NodeId = store.parse().map_err(|_| malformed("bad store id"))?;
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) || (seq.len() > 1 && seq.starts_with('0')) {
            return Err(malformed("seq must be a decimal number without leading zeros"));
        }
        let seq: u64 = seq.parse().map_err(|_| malformed("seq out of range"))?;
        if seq == 0 {
            return Err(malformed("seq 0 is written `0`"));
        }
        Ok(Cursor { store: Some(store), seq })
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
            &format!("{store}.99999999999999999999999"),
            &good[1..],
        ] {
            let err = bad.parse::<Cursor>().unwrap_err();
            assert_eq!(err.code(), crate::ErrorCode::BadCursor, "{bad:?}");
        }
        assert_eq!(good.parse::<Cursor>().unwrap(), Cursor::new(store, 7));
    }
}
