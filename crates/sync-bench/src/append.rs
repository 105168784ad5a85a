//! `append`: 1,000,000 local events appended in batches of 1,000, each batch
//! one call (one transaction), into every store, next to a raw-SQLite
//! baseline measured in the same run.
//!
//! The baseline writes the same rows (id, aggregate id, kind, data) as one
//! plain 1,000-row INSERT per transaction through the same driver
//! (rusqlite, on a blocking thread) with the same pragmas (WAL,
//! synchronous=NORMAL) into a table of similar shape, with SQLite's default
//! checkpoints (inside the commits; the stores run theirs beside the
//! writer, which shows in their close time). The ratio of a store to it is what the store's own work costs
//! (deduplication, stamping, bookkeeping, indexes) over writing the rows.
//!
//! Then single-event latency: on a fresh store per target, 2,000 appends of
//! one event each, one at a time (the way an app writes while offline),
//! each timed on its own; the raw baseline is a one-row INSERT per
//! transaction. The memory store shows what the async call and the batch
//! rule cost with no I/O at all.
//!
//! Only the append calls are timed: generating events happens between them.
//! Events have UUIDv7 ids, ~100 bytes of data, kind `bench.event`, and one of
//! 1,000 aggregate ids picked by a seeded pseudo-random sequence, so every
//! target gets the same aggregate pattern.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sync_core::{EventStore, NewEvent};
use sync_store_redb::{RedbConfig, RedbStore};
use sync_store_sqlite::{SqliteConfig, SqliteStore};

use crate::BoxResult;
use crate::report::{self, Table};

const EVENTS: usize = 1_000_000;
pub(crate) const BATCH: usize = 1_000;
const AGGREGATES: u64 = 1_000;
const DATA_BYTES: usize = 100;
const KIND: &str = "bench.event";

/// What one target took.
struct Timings {
    /// Time of each append call (or baseline transaction), in order.
    batches: Vec<Duration>,
    /// Time to close the store (flushes, WAL checkpoint).
    close: Duration,
}

/// The timings of one target and what it left on disk.
struct Measured {
    target: &'static str,
    timings: Timings,
    /// Bytes of every file the target left in its directory after closing.
    bytes_on_disk: u64,
}

impl Measured {
    fn total(&self) -> Duration {
        self.timings.batches.iter().sum()
    }

    fn events_per_sec(&self) -> f64 {
        EVENTS as f64 / self.total().as_secs_f64()
    }

    /// Events per second over one tenth of the run: the first shows an
    /// empty store, the last a store holding 900,000 events.
    fn tenth_events_per_sec(&self, last: bool) -> f64 {
        let batches = &self.timings.batches;
        let n = batches.len() / 10;
        let slice = if last { &batches[batches.len() - n..] } else { &batches[..n] };
        (n * BATCH) as f64 / slice.iter().sum::<Duration>().as_secs_f64()
    }

    /// The `q` quantile (0..=1) of the batch times, in milliseconds.
    fn batch_ms(&self, q: f64) -> f64 {
        let mut sorted = self.timings.batches.clone();
        sorted.sort();
        let index = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[index].as_secs_f64() * 1e3
    }
}

pub(crate) fn run() -> BoxResult {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let dir = tempfile::tempdir()?;
    println!(
        "{EVENTS} events, batches of {BATCH}, {AGGREGATES} aggregates, {DATA_BYTES} B data, in {}",
        dir.path().display()
    );

    let mut results = Vec::new();
    // Each store with its default settings, as an application gets it.
    let targets =
        [("raw sqlite (baseline)", Target::Baseline), ("SqliteStore", Target::Sqlite), ("RedbStore", Target::Redb)];
    for (i, (name, target)) in targets.into_iter().enumerate() {
        let path = dir.path().join(i.to_string());
        std::fs::create_dir(&path)?;
        println!("-- {name}");
        let timings = runtime.block_on(target.run(&path))?;
        results.push(Measured { target: name, timings, bytes_on_disk: dir_size(&path)? });
    }

    let baseline = results[0].events_per_sec();
    let mut table = Table::new(&[
        "target",
        "events/s",
        "vs baseline",
        "append s",
        "first 10% ev/s",
        "last 10% ev/s",
        "batch p50 ms",
        "batch p99 ms",
        "close ms",
        "disk MiB",
    ]);
    let mut rows = Vec::new();
    for m in &results {
        let ratio = m.events_per_sec() / baseline;
        table.row(vec![
            m.target.to_owned(),
            format!("{:.0}", m.events_per_sec()),
            format!("{ratio:.2}"),
            format!("{:.2}", m.total().as_secs_f64()),
            format!("{:.0}", m.tenth_events_per_sec(false)),
            format!("{:.0}", m.tenth_events_per_sec(true)),
            format!("{:.2}", m.batch_ms(0.5)),
            format!("{:.2}", m.batch_ms(0.99)),
            format!("{:.0}", m.timings.close.as_secs_f64() * 1e3),
            format!("{:.1}", m.bytes_on_disk as f64 / (1 << 20) as f64),
        ]);
        rows.push(json!({
            "target": m.target,
            "events_per_sec": m.events_per_sec(),
            "ratio_to_baseline": ratio,
            "append_secs": m.total().as_secs_f64(),
            "first_tenth_events_per_sec": m.tenth_events_per_sec(false),
            "last_tenth_events_per_sec": m.tenth_events_per_sec(true),
            "batch_ms": {
                "p50": m.batch_ms(0.5),
                "p99": m.batch_ms(0.99),
                "max": m.batch_ms(1.0),
            },
            "close_ms": m.timings.close.as_secs_f64() * 1e3,
            "bytes_on_disk": m.bytes_on_disk,
        }));
    }
    let machine = report::machine();
    println!();
    table.print();
    println!("\nmachine: {} cores, {}", machine["nproc"], machine["cpu_model"].as_str().unwrap_or("unknown"));
    let latency = single_event_latency(&runtime, dir.path())?;
    let report = json!({
        "bench": "append",
        "unix_time": report::unix_time(),
        "machine": machine,
        "config": {
            "events": EVENTS,
            "batch": BATCH,
            "aggregates": AGGREGATES,
            "data_bytes": DATA_BYTES,
            "kind": KIND,
        },
        "results": Value::Array(rows),
        "single_event_latency": latency,
    });
    let path = report::write_json("append", &report)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Single-event appends per latency target.
const SINGLE_APPENDS: usize = 2_000;

/// Times SINGLE_APPENDS one-event appends into a fresh store per target;
/// prints the table and returns its JSON rows.
fn single_event_latency(runtime: &tokio::runtime::Runtime, dir: &Path) -> BoxResult<Value> {
    let mut table = Table::new(&["single-event append", "appends", "p50 ms", "p99 ms", "max ms", "p50 vs baseline"]);
    let mut rows = Vec::new();
    let mut baseline_p50 = f64::NAN;
    let targets = [
        ("raw sqlite (baseline)", Some(Target::Baseline)),
        ("SqliteStore", Some(Target::Sqlite)),
        ("RedbStore", Some(Target::Redb)),
        ("MemoryStore", None),
    ];
    for (i, (name, target)) in targets.into_iter().enumerate() {
        let path = dir.join(format!("latency-{i}"));
        std::fs::create_dir(&path)?;
        let mut times = runtime.block_on(async {
            match target {
                Some(Target::Baseline) => single_baseline(&path).await,
                Some(Target::Sqlite) => {
                    single_appends(SqliteStore::open(SqliteConfig::new(path.join("store.db"))).await?).await
                }
                Some(Target::Redb) => {
                    single_appends(RedbStore::open(RedbConfig::new(path.join("store.redb"))).await?).await
                }
                None => single_appends(sync_store_memory::MemoryStore::new()).await,
            }
        })?;
        times.sort();
        let ms = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
        if i == 0 {
            baseline_p50 = ms(0.5);
        }
        table.row(vec![
            name.to_owned(),
            times.len().to_string(),
            format!("{:.3}", ms(0.5)),
            format!("{:.3}", ms(0.99)),
            format!("{:.3}", ms(1.0)),
            format!("{:.2}", ms(0.5) / baseline_p50),
        ]);
        rows.push(json!({
            "target": name,
            "appends": times.len(),
            "p50_ms": ms(0.5),
            "p99_ms": ms(0.99),
            "max_ms": ms(1.0),
            "p50_ratio_to_baseline": ms(0.5) / baseline_p50,
        }));
    }
    println!();
    table.print();
    Ok(Value::Array(rows))
}

/// The time of each of SINGLE_APPENDS one-event appends.
async fn single_appends(store: impl EventStore) -> BoxResult<Vec<Duration>> {
    let mut events = Events::new();
    let mut times = Vec::with_capacity(SINGLE_APPENDS);
    for _ in 0..SINGLE_APPENDS {
        let batch = events.next_batch(1);
        let start = Instant::now();
        store.append(batch).await?;
        times.push(start.elapsed());
    }
    store.close().await?;
    Ok(times)
}

/// One plain one-row INSERT per transaction, on a blocking thread.
async fn single_baseline(dir: &Path) -> BoxResult<Vec<Duration>> {
    let conn = baseline_connection(dir)?;
    let mut events = Events::new();
    let mut times = Vec::with_capacity(SINGLE_APPENDS);
    for _ in 0..SINGLE_APPENDS {
        let e = events.next_event();
        let conn = conn.clone();
        let start = Instant::now();
        tokio::task::spawn_blocking(move || -> rusqlite::Result<()> {
            let mut conn = conn.lock().expect("baseline connection");
            let tx = conn.transaction()?;
            tx.prepare_cached("INSERT INTO events (id, aggregate_id, kind, body) VALUES (?, ?, ?, ?)")?.execute(
                rusqlite::params![e.id.as_uuid().as_bytes().as_slice(), e.aggregate_id, e.kind, e.data.as_ref()],
            )?;
            tx.commit()
        })
        .await??;
        times.push(start.elapsed());
    }
    Ok(times)
}

/// The baseline's database: WAL, synchronous=NORMAL, one table.
fn baseline_connection(dir: &Path) -> BoxResult<std::sync::Arc<std::sync::Mutex<rusqlite::Connection>>> {
    let conn = rusqlite::Connection::open(dir.join("baseline.db"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute(
        "CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            id BLOB NOT NULL UNIQUE,
            aggregate_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            body BLOB NOT NULL
        )",
        [],
    )?;
    Ok(std::sync::Arc::new(std::sync::Mutex::new(conn)))
}

/// What the events are appended to.
enum Target {
    Baseline,
    Sqlite,
    Redb,
}

impl Target {
    /// Appends every event into a store opened in `dir`; returns the time of
    /// each batch and of closing.
    async fn run(self, dir: &Path) -> BoxResult<Timings> {
        match self {
            Target::Baseline => baseline(dir).await,
            Target::Sqlite => append_all(SqliteStore::open(SqliteConfig::new(dir.join("store.db"))).await?).await,
            Target::Redb => append_all(RedbStore::open(RedbConfig::new(dir.join("store.redb"))).await?).await,
        }
    }
}

/// Times `store.append` per batch, then `store.close`.
async fn append_all(store: impl EventStore) -> BoxResult<Timings> {
    let mut events = Events::new();
    let mut batches = Vec::with_capacity(EVENTS / BATCH);
    for _ in 0..EVENTS / BATCH {
        let batch = events.next_batch(BATCH);
        let start = Instant::now();
        let outcome = store.append(batch).await?;
        batches.push(start.elapsed());
        if outcome.inserted.len() != BATCH {
            return Err(format!(
                "a batch inserted {} of {BATCH} events ({} duplicates)",
                outcome.inserted.len(),
                outcome.duplicates.len()
            )
            .into());
        }
    }
    let start = Instant::now();
    store.close().await?;
    Ok(Timings { batches, close: start.elapsed() })
}

/// The same rows written with one plain multi-row INSERT per batch and
/// transaction, each batch on a blocking thread as the store's are.
async fn baseline(dir: &Path) -> BoxResult<Timings> {
    let conn = baseline_connection(dir)?;
    let insert =
        format!("INSERT INTO events (id, aggregate_id, kind, body) VALUES {}", vec!["(?, ?, ?, ?)"; BATCH].join(", "));
    let mut events = Events::new();
    let mut batches = Vec::with_capacity(EVENTS / BATCH);
    for _ in 0..EVENTS / BATCH {
        let batch = events.next_batch(BATCH);
        let start = Instant::now();
        let (conn, insert) = (conn.clone(), insert.clone());
        tokio::task::spawn_blocking(move || -> rusqlite::Result<()> {
            let mut conn = conn.lock().expect("baseline connection");
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(&insert)?;
                for (i, e) in batch.iter().enumerate() {
                    stmt.raw_bind_parameter(4 * i + 1, e.id.as_uuid().as_bytes().as_slice())?;
                    stmt.raw_bind_parameter(4 * i + 2, e.aggregate_id.as_str())?;
                    stmt.raw_bind_parameter(4 * i + 3, e.kind.as_str())?;
                    stmt.raw_bind_parameter(4 * i + 4, e.data.as_ref())?;
                }
                stmt.raw_execute()?;
            }
            tx.commit()
        })
        .await??;
        batches.push(start.elapsed());
    }
    let start = Instant::now();
    drop(conn);
    Ok(Timings { batches, close: start.elapsed() })
}

/// The event source: fresh UUIDv7 ids, a seeded aggregate sequence. The
/// `sync` benchmark fills its stores from it too.
pub(crate) struct Events {
    /// xorshift64 state: deterministic, so every target sees the same aggregates.
    state: u64,
    made: u64,
}

impl Events {
    pub(crate) fn new() -> Self {
        Events { state: 0x9E37_79B9_7F4A_7C15, made: 0 }
    }

    pub(crate) fn next_batch(&mut self, n: usize) -> Vec<NewEvent> {
        (0..n).map(|_| self.next_event()).collect()
    }

    pub(crate) fn next_event(&mut self) -> NewEvent {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.made += 1;
        let aggregate = format!("aggregate-{:04}", self.state % AGGREGATES);
        // A small JSON document of exactly DATA_BYTES bytes.
        let mut data = format!(r#"{{"n":{},"pad":""#, self.made).into_bytes();
        data.resize(DATA_BYTES - 2, b'x');
        data.extend_from_slice(br#""}"#);
        NewEvent::new(KIND, aggregate, data)
    }
}

/// Total size of the files directly in `dir`.
fn dir_size(dir: &Path) -> BoxResult<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}
