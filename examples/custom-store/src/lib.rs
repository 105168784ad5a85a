//! # Writing your own synckit storage backend
//!
//! This crate is a complete, deliberately small [`EventStore`]: [`FileStore`]
//! keeps the log in one append-only file of JSON lines and its indexes in
//! memory. Copy it as the starting point of a backend for your database.
//!
//! ## What a store must do
//!
//! The contract is written on [`EventStore`]; these are the parts people get
//! wrong, and how this crate does them:
//!
//! 1. **Plan every batch with the batch rule of [`sync_core::raw`].**
//!    [`append_plan`] (local `append`) and [`apply_plan`] (remote `apply`)
//!    dedupe, validate, stamp and observe; they ask the store what it holds
//!    through the [`Known`](sync_core::raw::Known) lookups and return the
//!    [`Plan`](sync_core::raw::Plan): the rows to write, the bookkeeping that
//!    goes with them, and the outcome to answer. Never invent counters or
//!    clocks yourself. This store keeps its bookkeeping in memory, in a
//!    [`Ledger`], which answers the lookups; a store on a database answers
//!    them with queries inside its write transaction.
//! 2. **Batches are atomic.** Write the plan's rows and bookkeeping in one
//!    transaction, or nothing if planning failed. Here one batch is one line
//!    of the file, so it is in the log entirely or not at all.
//! 3. **The log is a set.** The plan leaves out ids already stored or
//!    repeated in the batch, and lists them in [`AppendOutcome::duplicates`].
//! 4. **Acknowledged means durable.** Return `Ok` only once the batch would
//!    survive `kill -9`. Here: `write` then `File::sync_data` per batch.
//! 5. **A change feed.** Every stored event gets a position that only grows
//!    (here its line number in the feed); `load` pages through
//!    [`page_from_scan`], so paging, filtering, cursor checks and `has_more`
//!    behave exactly like every other store. Keep the `source` peer of
//!    applied events: `load` can skip them. After each commit, advance a
//!    [`FeedSignal`]: it answers `wait_past` for live readers.
//! 6. **Node id and checkpoints are persistent** and survive reopen.
//!
//! ## Crash safety of this file format
//!
//! Each record is written as one line, JSON text followed by `\n`, with a
//! single write and then an fsync. JSON escapes newlines inside strings, so
//! `\n` only ends a record: a line that ends in `\n` was written whole. A
//! crash in the middle of a write leaves an unterminated last line; that
//! batch was never acknowledged, so [`FileStore::open`] cuts it off. A
//! terminated line that does not parse is real damage and fails the open.
//!
//! Everything except the node id and the checkpoints (clocks, counters,
//! HLC, the id index) is derived from the events, so the open simply replays
//! the file into the [`Ledger`]: the same `State::index` function handles
//! both replayed and new records.
//!
//! ## Checking your store
//!
//! Add `sync-testkit` as a dev-dependency, implement
//! [`StoreFactory`](https://docs.rs/sync-testkit) for your store (open a
//! fresh empty store; close and reopen one), and put one line in
//! `tests/conformance.rs`:
//!
//! ```text
//! sync_testkit::store_suite!(MyFactory::new());
//! ```
//!
//! Each rule of the contract becomes its own test; run them with
//! `cargo test -p custom-store` (see this crate's `tests/conformance.rs`).
//!
//! ## Limits of this example
//!
//! It keeps every event in memory and scans them for `load_aggregate`; a
//! writer holds the lock during its fsync. Real backends index on disk and
//! let readers run beside the writer. The file is never compacted.
//!
//! ```
//! use custom_store::FileStore;
//! use sync_core::{Cursor, EventStore, Filter, NewEvent};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let store = FileStore::open(dir.path().join("events.jsonl")).await?;
//! store.append(vec![NewEvent::new("note.added", "note-1", "hi")]).await?;
//! let page = store.load(&Cursor::START, 10, &Filter::default(), None).await?;
//! assert_eq!(page.events.len(), 1);
//! # Ok::<_, sync_core::Error>(()) }).unwrap();
//! ```

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use sync_core::raw::{FeedSignal, Ledger, ScanRow, append_plan, apply_plan, page_from_scan};
use sync_core::{
    AppendOutcome, Checkpoint, Cursor, Error, Event, EventStore, FeedSpan, Filter, Hlc, Limits, NewEvent, NodeId, Page,
    Result, VectorClock,
};

/// One line of the file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Record {
    /// The first line: this replica's id.
    Node { id: NodeId },
    /// One appended or applied batch; `source` is `None` for local appends.
    Batch { source: Option<String>, events: Vec<Event> },
    /// The sync progress with a peer; the last one for a peer wins.
    Checkpoint { peer: String, checkpoint: Checkpoint },
}

/// An [`EventStore`] in one append-only JSON-lines file. Clones share the
/// store. See the [crate docs](crate) for how it works.
#[derive(Clone, Debug)]
pub struct FileStore {
    node: NodeId,
    path: PathBuf,
    signal: FeedSignal,
    state: Arc<Mutex<State>>,
}

impl FileStore {
    /// Opens the store in `path`, creating the file (and a node id) if it
    /// does not exist, and cutting off a batch torn by a crash.
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || State::open(&path)).await
        };
        let state = opened.map_err(|e| Error::storage("opening the store", e))??;
        let signal = FeedSignal::new(state.node, state.rows.len() as u128);
        Ok(FileStore { node: state.node, path, signal, state: Arc::new(Mutex::new(state)) })
    }

    /// The file of this store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state changes only after a successful write, in code that does
        // not panic, so a poisoned lock still guards a consistent state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a writing operation on tokio's blocking pool: file writes and
    /// fsync block the thread, which must not be an async worker.
    /// Wakes `wait_past` callers once the operation returns.
    async fn write<T: Send + 'static>(&self, op: impl FnOnce(&mut State) -> Result<T> + Send + 'static) -> Result<T> {
        let state = Arc::clone(&self.state);
        let signal = self.signal.clone();
        tokio::task::spawn_blocking(move || {
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            let result = op(&mut state);
            signal.advance(state.rows.len() as u128);
            result
        })
        .await
        .map_err(|e| Error::storage("writing to the store", e))?
    }
}

/// The file, plus in-memory indexes rebuilt from it on open.
#[derive(Debug)]
struct State {
    node: NodeId,
    limits: Limits,
    log: Log,
    rows: Vec<ScanRow>, // rows[i].position == i + 1
    ledger: Ledger,
    checkpoints: HashMap<String, Checkpoint>,
}

impl State {
    fn open(path: &Path) -> Result<State> {
        let (mut log, records) = Log::open(path)?;
        let mut records = records.into_iter();
        let node = match records.next() {
            Some(Record::Node { id }) => id,
            Some(_) => return Err(corrupt(path, "the first line is not the node id")),
            None => {
                let id = NodeId::random();
                log.append(&Record::Node { id })?;
                id
            }
        };
        let mut state = State {
            node,
            limits: Limits::default(),
            log,
            rows: Vec::new(),
            ledger: Ledger::default(),
            checkpoints: HashMap::new(),
        };
        for record in records {
            state.index(record);
        }
        Ok(state)
    }

    /// Adds a record to the in-memory indexes. Used for replay on open and
    /// after each write, so both always agree.
    fn index(&mut self, record: Record) {
        match record {
            Record::Node { .. } => {}
            Record::Checkpoint { peer, checkpoint } => {
                self.checkpoints.insert(peer, checkpoint);
            }
            Record::Batch { source, events } => {
                for event in events {
                    self.ledger.insert(&event);
                    let position = self.rows.len() as u128 + 1;
                    self.rows.push(ScanRow { position, source: source.clone(), event });
                }
            }
        }
    }

    /// Makes `record` durable, then indexes it.
    fn commit(&mut self, record: Record) -> Result<()> {
        self.log.append(&record)?;
        self.index(record);
        Ok(())
    }

    fn append(&mut self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        // `?` refuses the whole batch: nothing was written yet.
        let plan = append_plan(self.node, &self.limits, events, Hlc::now_ms(), &mut self.ledger)?;
        self.write_plan(plan.rows, None, plan.outcome)
    }

    fn apply(&mut self, events: Vec<Event>, source: String) -> Result<AppendOutcome> {
        let plan = apply_plan(&self.limits, events, Hlc::now_ms(), &mut self.ledger)?;
        self.write_plan(plan.rows, Some(source), plan.outcome)
    }

    /// Writes a planned batch as one record and says where it landed in
    /// the feed (one writer at a time: right after the head).
    fn write_plan(
        &mut self,
        rows: Vec<Event>,
        source: Option<String>,
        outcome: AppendOutcome,
    ) -> Result<AppendOutcome> {
        let mut outcome = outcome;
        if rows.is_empty() {
            return Ok(outcome);
        }
        let before = self.rows.len() as u128;
        self.commit(Record::Batch { source, events: rows })?;
        outcome.span = FeedSpan::between(self.node, before, self.rows.len() as u128);
        Ok(outcome)
    }
}

/// The append-only file.
#[derive(Debug)]
struct Log {
    path: PathBuf,
    file: File,
    /// Bytes of whole records: where the next record starts.
    len: u64,
    /// Set when a failed write could not be undone: the file may end in a
    /// partial line, and appending after it would corrupt the log.
    broken: bool,
}

impl Log {
    /// Opens (or creates) the file and reads its records, cutting off a
    /// torn last line.
    fn open(path: &Path) -> Result<(Log, Vec<Record>)> {
        let io = |e| Error::storage(format!("opening {}", path.display()), e);
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;

        let (mut records, mut len) = (Vec::new(), 0);
        for (number, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
            let Some(json) = line.strip_suffix(b"\n") else {
                break; // torn by a crash mid-write: never acknowledged
            };
            let record =
                serde_json::from_slice(json).map_err(|e| corrupt(path, format!("line {}: {e}", number + 1)))?;
            records.push(record);
            len += line.len();
        }
        if len < bytes.len() {
            file.set_len(len as u64).map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        let log = Log { path: path.to_owned(), file, len: len as u64, broken: false };
        Ok((log, records))
    }

    /// Writes one record as one line and waits until it is on disk.
    fn append(&mut self, record: &Record) -> Result<()> {
        let action = || format!("writing to {}", self.path.display());
        if self.broken {
            return Err(Error::storage(action(), "an earlier write failed and could not be undone; reopen the store"));
        }
        let mut line = serde_json::to_vec(record).map_err(|e| Error::storage(action(), e))?;
        line.push(b'\n');
        let written = self.file.write_all(&line).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Remove whatever part of the line reached the file, so the
            // next record does not land behind half a line.
            self.broken = self.file.set_len(self.len).is_err();
            return Err(Error::storage(action(), e));
        }
        self.len += line.len() as u64;
        Ok(())
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
    Error::storage(format!("reading {}", path.display()), format!("the file is damaged: {}", reason.into()))
}

impl EventStore for FileStore {
    fn node_id(&self) -> NodeId {
        self.node
    }

    async fn append(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        self.write(move |state| state.append(events)).await
    }

    async fn apply(&self, events: Vec<Event>, source: &str) -> Result<AppendOutcome> {
        let source = source.to_owned();
        self.write(move |state| state.apply(events, source)).await
    }

    async fn load(&self, after: &Cursor, limit: usize, filter: &Filter, skip_source: Option<&str>) -> Result<Page> {
        let head = async { Ok(self.lock().rows.len() as u128) };
        page_from_scan(self.node, after, limit, filter, skip_source, head, |after, n| {
            let state = self.lock();
            let start = usize::try_from(after).map_or(state.rows.len(), |a| a.min(state.rows.len()));
            let rows = state.rows[start..].iter().take(n).cloned().collect();
            std::future::ready(Ok(rows))
        })
        .await
    }

    async fn load_aggregate(&self, aggregate_id: &str, after: &Cursor) -> Result<Vec<Event>> {
        let after = after.position_for(self.node)?;
        Ok(self
            .lock()
            .rows
            .iter()
            .filter(|row| row.position > after && row.event.aggregate_id == aggregate_id)
            .map(|row| row.event.clone())
            .collect())
    }

    async fn aggregate_clock(&self, aggregate_id: &str) -> Result<VectorClock> {
        Ok(self.lock().ledger.clock(aggregate_id).cloned().unwrap_or_default())
    }

    async fn head(&self) -> Result<Cursor> {
        Ok(Cursor::new(self.node, self.lock().rows.len() as u128))
    }

    async fn wait_past(&self, after: &Cursor) -> Result<()> {
        self.signal.wait_past(after).await
    }

    async fn version_vector(&self) -> Result<VectorClock> {
        Ok(self.lock().ledger.version_vector())
    }

    async fn checkpoint(&self, peer: &str) -> Result<Checkpoint> {
        Ok(self.lock().checkpoints.get(peer).copied().unwrap_or_default())
    }

    async fn set_checkpoint(&self, peer: &str, checkpoint: &Checkpoint) -> Result<()> {
        let record = Record::Checkpoint { peer: peer.to_owned(), checkpoint: *checkpoint };
        self.write(move |state| state.commit(record)).await
    }

    /// Every write was synced before it returned: nothing left to flush.
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}
