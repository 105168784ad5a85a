//! The embedded schema, its migrations, and the SQL text of every statement
//! with the configured table prefix spliced in.
//!
//! Migrations are plain SQL run at open inside one `BEGIN IMMEDIATE`
//! transaction, versioned by the `schema_version` row of the `meta` table.
//! (`sqlx::migrate!` keeps one `_sqlx_migrations` table per file and cannot
//! substitute the table prefix, so two stores with different prefixes could
//! not share a file.)

use std::borrow::Cow;

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

/// The newest schema version this build writes.
pub(crate) const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// Bound variables per statement stay far below SQLite's limit (32766 in
/// the bundled build): 1000 event rows of 5 columns is 5000.
pub(crate) const MAX_INSERT_ROWS: usize = 1000;

/// IN-lists and bookkeeping upserts are padded to a power of two up to
/// this many entries, so that a few prepared statements serve every batch.
pub(crate) const MAX_LIST: usize = 512;

/// SQL text for one table prefix. The statements with a list of values
/// are built once per padded length (see [`padded`]), so that batches reuse
/// a few prepared statements from sqlx's per-connection cache.
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
    existing_ids: Vec<String>,
    get_aggregates: Vec<String>,
    get_origins: Vec<String>,
    put_aggregates: Vec<String>,
    put_origins: Vec<String>,
    put_index: Vec<String>,
    insert_events_full: String,
    insert_new_events_full: String,
}

/// Padded lengths: 1, 2, 4, ..., MAX_LIST.
fn by_length(build: impl Fn(usize) -> String) -> Vec<String> {
    (0..=MAX_LIST.trailing_zeros()).map(|k| build(1 << k)).collect()
}

fn pick(list: &[String], n: usize) -> &str {
    debug_assert!(n.is_power_of_two() && n <= MAX_LIST, "unpadded length {n}");
    &list[n.trailing_zeros() as usize]
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
            existing_ids: by_length(|n| in_list(&format!("SELECT id FROM {p}events WHERE id IN ("), n)),
            get_aggregates: by_length(|n| {
                in_list(&format!("SELECT aggregate_id, clock FROM {p}aggregates WHERE aggregate_id IN ("), n)
            }),
            get_origins: by_length(|n| in_list(&format!("SELECT node, counter FROM {p}origins WHERE node IN ("), n)),
            // A repeated row is harmless here (it sets the same value
            // again), which is what allows padding.
            put_aggregates: by_length(|n| {
                values(
                    &format!("INSERT INTO {p}aggregates (aggregate_id, clock) VALUES "),
                    "(?,?)",
                    n,
                    " ON CONFLICT (aggregate_id) DO UPDATE SET clock = excluded.clock",
                )
            }),
            // Counters only ever rise.
            put_origins: by_length(|n| {
                values(
                    &format!("INSERT INTO {p}origins (node, counter) VALUES "),
                    "(?,?)",
                    n,
                    " ON CONFLICT (node) DO UPDATE SET counter = max(counter, excluded.counter)",
                )
            }),
            // Bumps the write counter and sets the HLC, answering both (so a
            // batch that trusted its cache learns whether another writer
            // came first): the only bookkeeping statement of most batches.
            put_state: format!(
                "INSERT INTO {p}meta (key, value) VALUES ('writes', 1), ('hlc', ?) \
                 ON CONFLICT (key) DO UPDATE SET \
                   value = CASE key WHEN 'writes' THEN value + 1 ELSE excluded.value END \
                 RETURNING key, value"
            ),
            // One row per aggregate of a fold; a repeated row (padding) sets
            // the same value again.
            put_index: by_length(|n| {
                values(
                    &format!("INSERT INTO {p}aggregate_index (fold, aggregate_id, seqs) VALUES "),
                    "(?,?,?)",
                    n,
                    " ON CONFLICT (fold, aggregate_id) DO UPDATE SET seqs = excluded.seqs",
                )
            }),
            insert_events_full: insert_events(p, MAX_INSERT_ROWS, ""),
            insert_new_events_full: insert_events(p, MAX_INSERT_ROWS, IGNORE_KNOWN),
        }
    }

    /// The statements of the migration that upgrades `from` to `from + 1`
    /// (one statement per query: sqlx deprecates several in one).
    pub(crate) fn migration(&self, from: i64) -> Vec<String> {
        MIGRATIONS[from as usize]
            .split(';')
            .map(str::trim)
            .filter(|statement| !statement.is_empty())
            .map(|statement| statement.replace("{p}", &self.prefix))
            .collect()
    }

    /// `SELECT id FROM events WHERE id IN (n placeholders)`; `n` padded.
    pub(crate) fn existing_ids(&self, n: usize) -> &str {
        pick(&self.existing_ids, n)
    }

    /// The stored clocks of `n` aggregates; `n` padded.
    pub(crate) fn get_aggregates(&self, n: usize) -> &str {
        pick(&self.get_aggregates, n)
    }

    /// The stored counters of `n` origins; `n` padded.
    pub(crate) fn get_origins(&self, n: usize) -> &str {
        pick(&self.get_origins, n)
    }

    /// Sets the clocks of `n` aggregates; `n` padded.
    pub(crate) fn put_aggregates(&self, n: usize) -> &str {
        pick(&self.put_aggregates, n)
    }

    /// Raises the counters of `n` origins; `n` padded.
    pub(crate) fn put_origins(&self, n: usize) -> &str {
        pick(&self.put_origins, n)
    }

    /// Writes `n` aggregate index rows; `n` padded.
    pub(crate) fn put_index(&self, n: usize) -> &str {
        pick(&self.put_index, n)
    }

    /// Inserts `n` events (`1 <= n <= MAX_INSERT_ROWS`). With `skip_known`,
    /// rows whose id is stored already are skipped (and not counted in the
    /// rows affected); without, they fail the statement.
    pub(crate) fn insert_events(&self, n: usize, skip_known: bool) -> Cow<'_, str> {
        match (n == MAX_INSERT_ROWS, skip_known) {
            (true, false) => Cow::Borrowed(&self.insert_events_full),
            (true, true) => Cow::Borrowed(&self.insert_new_events_full),
            (false, false) => Cow::Owned(insert_events(&self.prefix, n, "")),
            (false, true) => Cow::Owned(insert_events(&self.prefix, n, IGNORE_KNOWN)),
        }
    }
}

const IGNORE_KNOWN: &str = " ON CONFLICT (id) DO NOTHING";

fn insert_events(p: &str, n: usize, tail: &str) -> String {
    values(&format!("INSERT INTO {p}events (id, aggregate_id, kind, source, body) VALUES "), "(?,?,?,?,?)", n, tail)
}

/// The last seq folded, as an SQL expression (0 before the first fold).
fn folded(p: &str) -> String {
    format!("coalesce((SELECT max(last_seq) FROM {p}folds), 0)")
}

fn in_list(head: &str, n: usize) -> String {
    let mut sql = String::with_capacity(head.len() + 2 * n + 1);
    sql.push_str(head);
    for i in 0..n {
        sql.push_str(if i == 0 { "?" } else { ",?" });
    }
    sql.push(')');
    sql
}

fn values(head: &str, tuple: &str, n: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + (tuple.len() + 1) * n + tail.len());
    sql.push_str(head);
    for i in 0..n {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(tuple);
    }
    sql.push_str(tail);
    sql
}

/// The padded length for a list of `n` entries (`1 <= n <= MAX_LIST`): the
/// next power of two, so at most ten statement shapes exist per list kind.
pub(crate) fn padded(n: usize) -> usize {
    n.next_power_of_two().min(MAX_LIST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_use_the_prefix_and_count_placeholders() {
        let sql = Sql::new("x_");
        assert_eq!(sql.existing_ids(4), "SELECT id FROM x_events WHERE id IN (?,?,?,?)");
        assert!(sql.insert_events(2, false).ends_with("VALUES (?,?,?,?,?),(?,?,?,?,?)"));
        assert!(sql.insert_events(3, true).ends_with("DO NOTHING"));
        assert_eq!(sql.insert_events(MAX_INSERT_ROWS, false).matches('?').count(), 5000);
        assert_eq!(sql.put_origins(MAX_LIST).matches('?').count(), 2 * MAX_LIST);
        assert_eq!(sql.put_state.matches('?').count(), 1);
        let migration = sql.migration(0);
        assert!(migration[0].starts_with("CREATE TABLE x_events"), "{migration:?}");
        assert!(migration.iter().all(|statement| !statement.contains("{p}") && !statement.contains(';')));
        assert_eq!((padded(1), padded(3), padded(512), padded(600)), (1, 4, 512, 512));
    }
}
