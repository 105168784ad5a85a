//! [`SqliteConfig`]: where the database lives and how it is opened.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sync_core::Limits;

use crate::error::{InvalidConfigSnafu, InvalidTablePrefixSnafu, Result};

/// How hard a commit works to survive a crash.
///
/// Both levels keep every acknowledged batch through a crash of the process
/// (`kill -9`, panic, OOM kill): with WAL, a commit has reached the operating
/// system before `append` returns. They differ on power loss or a kernel crash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// `PRAGMA synchronous = NORMAL`: no fsync per commit in WAL mode (the WAL
    /// is synced at checkpoints). Survives a process crash; the last commits
    /// may be lost on power loss, but the database stays consistent. The default.
    #[default]
    Normal,
    /// `PRAGMA synchronous = FULL`: an fsync per commit, so acknowledged
    /// batches also survive power loss. Each commit costs one fsync
    /// (~150 µs on a fast SSD, far more on slow disks).
    Full,
}

/// The settings of a [`SqliteStore`](crate::SqliteStore), built with chained
/// methods from [`SqliteConfig::new`].
///
/// ```
/// use std::time::Duration;
/// use sync_store_sqlite::{Durability, SqliteConfig};
/// let config = SqliteConfig::new("app.db")
///     .durability(Durability::Full)
///     .max_connections(8)
///     .busy_timeout(Duration::from_secs(10))
///     .table_prefix("sync_");
/// assert_eq!(config.path().to_str(), Some("app.db"));
/// ```
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    pub(crate) path: PathBuf,
    pub(crate) wal: bool,
    pub(crate) durability: Durability,
    pub(crate) max_connections: u32,
    pub(crate) min_connections: u32,
    pub(crate) acquire_timeout: Duration,
    pub(crate) busy_timeout: Duration,
    pub(crate) table_prefix: String,
    pub(crate) limits: Limits,
}

/// The table prefix used unless [`SqliteConfig::table_prefix`] says otherwise.
pub const DEFAULT_TABLE_PREFIX: &str = "synckit_";

impl SqliteConfig {
    /// Settings for the database file at `path` (created if missing), with
    /// the defaults: WAL, [`Durability::Normal`], 4 connections at most
    /// (opened when first needed, then kept), 30 s acquire timeout, 5 s busy
    /// timeout, table prefix [`DEFAULT_TABLE_PREFIX`] and [`Limits::default`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            path: path.into(),
            wal: true,
            durability: Durability::Normal,
            max_connections: 4,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(5),
            table_prefix: DEFAULT_TABLE_PREFIX.to_owned(),
            limits: Limits::default(),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write-ahead logging (`journal_mode=WAL`, the default) or, with `false`,
    /// the rollback journal (`journal_mode=DELETE`). WAL lets readers run
    /// while a batch is written and makes commits cheaper; turn it off only
    /// for file systems without shared memory support (some network mounts).
    pub fn wal(mut self, on: bool) -> Self {
        self.wal = on;
        self
    }

    /// How hard a commit works to survive a crash (default [`Durability::Normal`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Most connections the pool opens (default 4). Writes are serialized
    /// anyway; more connections let more reads run in parallel.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// Connections opened by [`SqliteStore::open`](crate::SqliteStore::open)
    /// instead of when first needed (default 0). Open fails if it cannot
    /// open them within the acquire timeout.
    pub fn min_connections(mut self, n: u32) -> Self {
        self.min_connections = n;
        self
    }

    /// How long an operation waits for a free connection before failing
    /// with a storage error (default 30 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// How long a statement waits for a lock held by another connection or
    /// process (SQLite's `busy_timeout`, default 5 s) before failing.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Prefix of every table the store creates (default
    /// [`DEFAULT_TABLE_PREFIX`]), so several stores or the application's own
    /// tables can share one file. Must match `[A-Za-z_][A-Za-z0-9_]*`;
    /// [`SqliteStore::open`](crate::SqliteStore::open) rejects anything else.
    pub fn table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.table_prefix = prefix.into();
        self
    }

    /// The validation limits applied to every appended or applied event.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Checks the settings that SQLite or the pool would reject later, or
    /// that would be unsafe to splice into SQL (the table prefix).
    pub(crate) fn validate(&self) -> Result<()> {
        validate_prefix(&self.table_prefix)?;
        if self.max_connections == 0 {
            return InvalidConfigSnafu { reason: "max_connections must be at least 1" }.fail();
        }
        if self.acquire_timeout.is_zero() {
            return InvalidConfigSnafu { reason: "acquire_timeout must be longer than zero" }.fail();
        }
        if self.min_connections > self.max_connections {
            return InvalidConfigSnafu {
                reason: format!(
                    "min_connections ({}) is greater than max_connections ({})",
                    self.min_connections, self.max_connections
                ),
            }
            .fail();
        }
        Ok(())
    }
}

/// Table names are spliced into SQL text (SQLite cannot bind identifiers),
/// so the prefix is restricted to a plain identifier.
fn validate_prefix(prefix: &str) -> Result<()> {
    let mut chars = prefix.chars();
    let reason = match chars.next() {
        None => Some("it is empty"),
        Some(c) if !(c.is_ascii_alphabetic() || c == '_') => Some("it must start with an ASCII letter or `_`"),
        Some(_) if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            Some("it may only contain ASCII letters, digits and `_`")
        }
        Some(_) => None,
    };
    match reason {
        Some(reason) => InvalidTablePrefixSnafu { prefix: prefix.chars().take(80).collect::<String>(), reason }.fail(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_plain_identifiers() {
        for good in ["a", "_", "synckit_", "App2_", "x_1_y"] {
            assert!(validate_prefix(good).is_ok(), "{good}");
        }
        for bad in ["", "1a", "a-b", "a b", "é", "a;DROP TABLE x;--", "a\"b", "ab."] {
            let err = validate_prefix(bad).unwrap_err();
            assert_eq!(err.code(), sync_core::ErrorCode::InvalidInput, "{bad}");
            assert!(err.to_string().contains("table prefix"), "{err}");
        }
    }

    #[test]
    fn pool_sizes_are_checked() {
        let base = SqliteConfig::new("x.db");
        assert!(base.clone().validate().is_ok());
        assert!(base.clone().max_connections(0).validate().is_err());
        assert!(base.clone().acquire_timeout(Duration::ZERO).validate().is_err());
        let err = base.max_connections(2).min_connections(3).validate().unwrap_err();
        assert!(err.to_string().contains("min_connections (3)"), "{err}");
    }
}
