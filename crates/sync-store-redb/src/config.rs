//! [`RedbConfig`]: where the database lives and how it commits.

use std::path::PathBuf;

use sync_core::Limits;

/// How far a commit has reached the disk when `append` / `apply` returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Every commit is fsynced before it is acknowledged (redb's
    /// `Durability::Immediate`). An acknowledged batch survives a process
    /// crash (kill -9) and, on hardware that honours fsync, a power loss.
    /// This is what synckit's invariant 3 needs, so it is the default.
    #[default]
    Immediate,
    /// Commits are visible at once but written without fsync and without
    /// moving redb's commit slot (redb's `Durability::None`). They reach the
    /// disk at [`EventStore::close`](sync_core::EventStore::close), at the
    /// next [`Durability::Immediate`] commit, or when the last handle is
    /// dropped cleanly. A crash loses everything since then, which breaks
    /// invariant 3: use it only for bulk imports that can be redone.
    None,
}

/// Options for [`RedbStore::open`](crate::RedbStore::open).
///
/// ```
/// use sync_store_redb::{Durability, RedbConfig};
/// let config = RedbConfig::new("events.redb")
///     .durability(Durability::Immediate)
///     .cache_size(16 << 20);
/// assert_eq!(config.cache_size, 16 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedbConfig {
    /// The database file; created when missing (its directory must exist).
    pub path: PathBuf,
    /// When a commit is acknowledged; see [`Durability`].
    pub durability: Durability,
    /// Most memory in bytes that redb may use to cache pages (reads and
    /// pending writes together). Default [`RedbConfig::DEFAULT_CACHE_SIZE`].
    pub cache_size: usize,
    /// Validation limits applied to every appended or applied event.
    pub limits: Limits,
}

impl RedbConfig {
    /// 64 MiB. redb's own default is 1 GiB, a lot for a store embedded in a
    /// client application; servers with large stores should raise it.
    pub const DEFAULT_CACHE_SIZE: usize = 64 << 20;

    /// Defaults for the database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RedbConfig {
            path: path.into(),
            durability: Durability::default(),
            cache_size: Self::DEFAULT_CACHE_SIZE,
            limits: Limits::default(),
        }
    }

    /// Sets [`RedbConfig::durability`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets [`RedbConfig::cache_size`] in bytes.
    pub fn cache_size(mut self, bytes: usize) -> Self {
        self.cache_size = bytes;
        self
    }

    /// Sets [`RedbConfig::limits`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}
