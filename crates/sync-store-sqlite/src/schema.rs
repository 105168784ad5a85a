//! The embedded schema, its migrations, and the SQL text of every statement
//! with the configured table prefix spliced in.
//!
//! Migrations are plain SQL run at open inside one `BEGIN IMMEDIATE`
//! transaction, versioned by the `schema_version` row of the `meta` table,
//! with the table prefix spliced in, so that stores with different
//! prefixes can share a file.

/// `{p}` stands for the table prefix. Index `i` upgrades version `i` to `i + 1`.
/// Never edit a released entry: add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the log, its bookkeeping and the checkpoints.
    //
    // `events`: `seq` is the feed order. AUTOINCREMENT: a seq is never handed
    // out twice, even if rows were deleted by hand, so cursors stay valid.
    // `id`, `aggregate_id`, `kind` and `source` are columns (for the unique
    // index, the fold, the skip-source rule and ad hoc SQL); `body` is the
    // postcard of the rest (see `body.rs`). The only indexes are seq (the
    // rowid) and the unique id.
    //
    // `aggregate_index` replaces an index on events (aggregate_id, seq),
    // which costs one B-tree insert at a random place per event: with many
    // aggregates a batch of 1,000 events dirtied hundreds of index pages and
    // appends fell to ~40k events/s. Instead, every FOLD_EVERY events the
    // store "folds" the new stretch of the log: one row per aggregate listing
    // the seqs of its events there ("12,15,40"), keyed by the fold first so
    // that the rows of a fold are appended together. `folds` lists the folds
    // by their last seq; events after the last one (the tail) are found by
    // scanning it, which is short.
    //
    // `aggregates` holds each aggregate's clock as of the last fold (or
    // later: clocks only grow, and the current clock is the merge of this row
    // with the clocks of the aggregate's events in the tail). `origins`
    // likewise holds the counters as of the last fold; the current version
    // vector adds the origins of the tail's events.
    r#"
    CREATE TABLE {p}events (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        id           BLOB NOT NULL UNIQUE,
        aggregate_id TEXT NOT NULL,
        kind         TEXT NOT NULL,
        source       TEXT,
        body         BLOB NOT NULL
    );
    CREATE TABLE {p}folds (
        last_seq INTEGER PRIMARY KEY
    );
    CREATE TABLE {p}aggregate_index (
        fold         INTEGER NOT NULL,
        aggregate_id TEXT NOT NULL,
        seqs         TEXT NOT NULL,
        PRIMARY KEY (fold, aggregate_id)
    ) WITHOUT ROWID;
    CREATE TABLE {p}aggregates (
        aggregate_id TEXT PRIMARY KEY NOT NULL,
        clock        BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE {p}origins (
        node    BLOB PRIMARY KEY NOT NULL,
        counter INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO {p}meta (key, value) VALUES ('writes', 0), ('hlc', zeroblob(12));
    CREATE TABLE {p}checkpoints (
        peer   TEXT PRIMARY KEY NOT NULL,
        pushed TEXT NOT NULL,
        pulled TEXT NOT NULL
    ) WITHOUT ROWID;
    "#,
];

/// How many events the unfolded tail of the log may hold before a batch
/// folds it into `aggregate_index` and `aggregates`. A fold costs a few
/// milliseconds whatever its size (one row per aggregate touched); a read of
/// one aggregate scans the tail at ~80 ns per event.
pub(crate) const FOLD_EVERY: u64 = 32_768;

/// Most rows per insert statement (5 variables each).
pub(crate) const MAX_INSERT_ROWS: usize = 256;

/// How many of `remaining` (at least 1) rows the next insert statement
/// takes: the largest power of two that fits, so that a few prepared
/// statements serve every batch.
pub(crate) fn insert_chunk(remaining: usize) -> usize {
    debug_assert!(remaining > 0);
    1 << remaining.min(MAX_INSERT_ROWS).ilog2()
}

/// The newest schema version this build writes.
pub(crate) const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// SQL text for one table prefix. Every statement is prepared once per
/// connection and kept in its statement cache.
#[derive(Debug)]
pub(crate) struct Sql {
    prefix: String,
    pub(crate) create_meta: String,
    pub(crate) get_meta: String,
    pub(crate) put_meta: String,
    pub(crate) scan: String,
    pub(crate) load_aggregate: String,
    pub(crate) head: String,
    pub(crate) aggregate_clock: String,
    pub(crate) get_write_state: String,
    pub(crate) put_state: String,
    pub(crate) tail: String,
    pub(crate) add_fold: String,
    pub(crate) version_vector: String,
    pub(crate) get_checkpoint: String,
    pub(crate) put_checkpoint: String,
    pub(crate) is_stored: String,
    pub(crate) get_aggregate: String,
    pub(crate) get_origin: String,
    pub(crate) put_aggregate: String,
    pub(crate) put_origin: String,
    pub(crate) put_index: String,
    /// Id and seq of the `?2` rows with the highest seqs up to `?1`.
    pub(crate) last_inserted: String,
    /// `insert_events[k]` inserts `2^k` rows (see [`Sql::insert_events`]).
    insert_events: Vec<String>,
}

impl Sql {
    /// `prefix` must already be validated as a plain identifier.
    pub(crate) fn new(prefix: &str) -> Self {
        let p = prefix;
        Sql {
            prefix: p.to_owned(),
            create_meta: format!(
                "CREATE TABLE IF NOT EXISTS {p}meta (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID"
            ),
            get_meta: format!("SELECT value FROM {p}meta WHERE key = ?"),
            put_meta: format!(
                "INSERT INTO {p}meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            ),
            scan: format!(
                "SELECT seq, source, id, aggregate_id, kind, body FROM {p}events \
                 WHERE seq > ? ORDER BY seq LIMIT ?"
            ),
            // The folded part through the index, then the tail; one
            // statement, so both parts come from one snapshot.
            load_aggregate: format!(
                "SELECT seq, id, aggregate_id, kind, body FROM ( \
                   SELECT e.seq AS seq, e.id AS id, e.aggregate_id AS aggregate_id, \
                          e.kind AS kind, e.body AS body \
                   FROM {p}folds AS f \
                   CROSS JOIN {p}aggregate_index AS a \
                   CROSS JOIN json_each('[' || a.seqs || ']') AS j \
                   CROSS JOIN {p}events AS e \
                   WHERE f.last_seq > ?2 AND a.fold = f.last_seq AND a.aggregate_id = ?1 \
                     AND j.value > ?2 AND e.seq = j.value \
                   UNION ALL \
                   SELECT seq, id, aggregate_id, kind, body FROM {p}events \
                   WHERE seq > max(?2, {FOLDED}) AND aggregate_id = ?1 \
                 ) ORDER BY seq",
                FOLDED = folded(p),
            ),
            head: format!("SELECT COALESCE(MAX(seq), 0) FROM {p}events"),
            // The stored clock (tag 0), then the tail events (tag 1).
            aggregate_clock: format!(
                "SELECT 0, clock FROM {p}aggregates WHERE aggregate_id = ?1 \
                 UNION ALL \
                 SELECT 1, body FROM {p}events WHERE seq > {FOLDED} AND aggregate_id = ?1",
                FOLDED = folded(p),
            ),
            get_write_state: format!(
                "SELECT key, value FROM {p}meta WHERE key IN ('hlc', 'writes') \
                 UNION ALL SELECT 'folded', {FOLDED}",
                FOLDED = folded(p),
            ),
            tail: format!("SELECT seq, aggregate_id, body FROM {p}events WHERE seq > ? ORDER BY seq"),
            add_fold: format!("INSERT INTO {p}folds (last_seq) VALUES (?)"),
            // The stored counters (tag 0), then the tail events (tag 1).
            version_vector: format!(
                "SELECT 0, node, counter FROM {p}origins \
                 UNION ALL \
                 SELECT 1, body, NULL FROM {p}events WHERE seq > {FOLDED}",
                FOLDED = folded(p),
            ),
            get_checkpoint: format!("SELECT pushed, pulled FROM {p}checkpoints WHERE peer = ?"),
            put_checkpoint: format!(
                "INSERT INTO {p}checkpoints (peer, pushed, pulled) VALUES (?, ?, ?) \
                 ON CONFLICT (peer) DO UPDATE SET pushed = excluded.pushed, pulled = excluded.pulled"
            ),
            is_stored: format!("SELECT 1 FROM {p}events WHERE id = ?"),
            get_aggregate: format!("SELECT clock FROM {p}aggregates WHERE aggregate_id = ?"),
            get_origin: format!("SELECT counter FROM {p}origins WHERE node = ?"),
            put_aggregate: format!(
                "INSERT INTO {p}aggregates (aggregate_id, clock) VALUES (?, ?) \
                 ON CONFLICT (aggregate_id) DO UPDATE SET clock = excluded.clock"
            ),
            // Counters only ever rise.
            put_origin: format!(
                "INSERT INTO {p}origins (node, counter) VALUES (?, ?) \
                 ON CONFLICT (node) DO UPDATE SET counter = max(counter, excluded.counter)"
            ),
            // Bumps the write counter and sets the HLC, answering both (so a
            // batch that trusted its cache learns whether another writer
            // came first): the only bookkeeping statement of most batches.
            put_state: format!(
                "INSERT INTO {p}meta (key, value) VALUES ('writes', 1), ('hlc', ?) \
                 ON CONFLICT (key) DO UPDATE SET \
                   value = CASE key WHEN 'writes' THEN value + 1 ELSE excluded.value END \
                 RETURNING key, value"
            ),
            put_index: format!("INSERT INTO {p}aggregate_index (fold, aggregate_id, seqs) VALUES (?, ?, ?)"),
            last_inserted: format!("SELECT id, seq FROM {p}events WHERE seq <= ? ORDER BY seq DESC LIMIT ?"),
            insert_events: (0..=MAX_INSERT_ROWS.trailing_zeros())
                .map(|k| {
                    let rows = vec!["(?, ?, ?, ?, ?)"; 1 << k].join(", ");
                    format!(
                        "INSERT INTO {p}events (id, aggregate_id, kind, source, body) VALUES {rows} \
                         ON CONFLICT (id) DO NOTHING"
                    )
                })
                .collect(),
        }
    }

    /// Inserts `n` event rows, `n` a power of two up to [`MAX_INSERT_ROWS`]
    /// (see [`insert_chunk`]), skipping ids stored already or repeated in
    /// the statement. One statement for many rows: SQLite's per-statement work (cursors,
    /// `AUTOINCREMENT` bookkeeping) costs as much as a row.
    pub(crate) fn insert_events(&self, n: usize) -> &str {
        debug_assert!(n.is_power_of_two() && n <= MAX_INSERT_ROWS, "{n} rows");
        &self.insert_events[n.trailing_zeros() as usize]
    }

    /// The SQL of the migration that upgrades `from` to `from + 1`.
    pub(crate) fn migration(&self, from: i64) -> String {
        MIGRATIONS[from as usize].replace("{p}", &self.prefix)
    }
}

/// The last seq folded, as an SQL expression (0 before the first fold).
fn folded(p: &str) -> String {
    format!("coalesce((SELECT max(last_seq) FROM {p}folds), 0)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_use_the_prefix() {
        let sql = Sql::new("x_");
        assert_eq!(sql.is_stored, "SELECT 1 FROM x_events WHERE id = ?");
        assert!(sql.insert_events(1).starts_with("INSERT INTO x_events"));
        assert_eq!(sql.insert_events(4).matches('?').count(), 20);
        assert_eq!(sql.insert_events(MAX_INSERT_ROWS).matches('?').count(), 5 * MAX_INSERT_ROWS);
        assert_eq!((insert_chunk(1), insert_chunk(3), insert_chunk(256), insert_chunk(5000)), (1, 2, 256, 256));
        assert_eq!(sql.put_state.matches('?').count(), 1);
        let migration = sql.migration(0);
        assert!(migration.trim_start().starts_with("CREATE TABLE x_events"), "{migration}");
        assert!(!migration.contains("{p}"));
    }
}
