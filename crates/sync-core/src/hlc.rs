//! Hybrid logical clock: wall-clock milliseconds plus a logical counter.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A hybrid logical timestamp. Ordered by `(wall_ms, logical)`; ties between
/// nodes are broken by the node id where a total order is needed.
///
/// A node's timestamps never go backwards, even when its wall clock does, and
/// an event stamped after observing another is greater than it, so sorting by
/// HLC respects causality.
///
/// ```
/// use sync_core::Hlc;
/// let a = Hlc::ZERO.tick(1_000);
/// let b = a.tick(900); // wall clock went back: still later
/// assert!(b > a);
/// let remote = Hlc { wall_ms: 5_000, logical: 3 };
/// assert!(b.observe(remote).tick(1_000) > remote);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch.
    pub wall_ms: u64,
    /// Counter for events within one millisecond.
    pub logical: u32,
}

impl Hlc {
    /// The smallest timestamp.
    pub const ZERO: Hlc = Hlc { wall_ms: 0, logical: 0 };

    /// The timestamp for a new local event, given the last one and the wall clock.
    pub fn tick(self, now_ms: u64) -> Hlc {
        if now_ms > self.wall_ms {
            Hlc { wall_ms: now_ms, logical: 0 }
        } else if self.logical == u32::MAX {
            Hlc { wall_ms: self.wall_ms.saturating_add(1), logical: 0 }
        } else {
            Hlc { wall_ms: self.wall_ms, logical: self.logical + 1 }
        }
    }

    /// The last timestamp after receiving `remote`: the next `tick` is greater than both.
    pub fn observe(self, remote: Hlc) -> Hlc {
        self.max(remote)
    }

    /// The wall clock in milliseconds since the Unix epoch.
    pub fn now_ms() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }
}
