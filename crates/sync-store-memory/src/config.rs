//! [`MemoryConfig`]: the options of a [`MemoryStore`](crate::MemoryStore).

use sync_core::Limits;

/// Options of a [`MemoryStore`](crate::MemoryStore).
///
/// ```
/// use sync_core::Limits;
/// use sync_store_memory::{MemoryConfig, MemoryStore};
/// let limits = Limits { max_data_bytes: 1024, ..Limits::default() };
/// let store = MemoryStore::open(MemoryConfig::new().limits(limits));
/// assert_eq!(store.config().limits.max_data_bytes, 1024);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryConfig {
    /// Validation limits for every event the store takes (default [`Limits::default`]).
    pub limits: Limits,
}

impl MemoryConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `limits` to validate events.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}
