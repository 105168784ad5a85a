//! The write path: one `BEGIN IMMEDIATE` transaction per batch, and
//! [`Derived`], the in-memory mirror of the bookkeeping that spares a batch
//! from reading and writing one row per aggregate or origin it touches.
//!
//! A local batch is stamped from the mirror, inserted with multi-row
//! statements, and one more statement bumps a write counter and sets the HLC,
//! answering the new counter; the mirror takes the batch in once `COMMIT`
//! succeeds. Aggregate clocks, origin counters and the aggregate index are
//! written in bulk by the batch that makes the unfolded tail reach
//! [`FOLD_EVERY`] events (see `schema.rs`); until then the tail of the log
//! holds what they miss.
//!
//! The mirror is trusted only while the stored write counter is the one it
//! saw last: any other writer (another process, another `SqliteStore` on the
//! same file) bumps it. A batch that finds the counter moved rolls back and
//! starts over from the tables and the tail of the log, which hold the
//! whole truth; so does every batch after a failed commit, and every remote
//! batch reads the counter before it starts.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use sync_core::raw::{Known, Plan, append_plan, apply_plan};
use sync_core::{AppendOutcome, Event, EventId, FeedSpan, Hlc, NewEvent, NodeId, VectorClock};

use crate::error::storage;
use crate::schema::{FOLD_EVERY, MAX_INSERT_ROWS, insert_chunk};
use crate::store::{Inner, SqliteStore, blob, decode_clock, decode_hlc, encode_hlc, sixteen, to_i64, to_u64};

/// Most clocks and origin counters kept in memory; past it, the cache
/// starts over at the next fold.
const CACHE_CAPACITY: usize = 1 << 16;

/// The in-memory mirror of the stored bookkeeping (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Derived {
    /// The stored values this mirror matches; `None` = unknown.
    state: Option<WriteState>,
    /// Current clocks of aggregates. Every aggregate changed since the last
    /// fold is here, marked dirty; the others equal their stored row.
    clocks: HashMap<String, CachedClock>,
    /// The dirty keys of `clocks`.
    dirty: Vec<String>,
    /// Aggregate and seq of every event after the last fold, in seq order.
    tail: Vec<(String, u64)>,
    /// Current origin counters (zero: known to be absent). Like `clocks`,
    /// every counter raised since the last fold is dirty; the others equal
    /// their stored row.
    origins: HashMap<NodeId, Counter>,
    /// The dirty keys of `origins`.
    dirty_origins: Vec<NodeId>,
}

#[derive(Debug)]
struct Counter {
    counter: u64,
    dirty: bool,
}

#[derive(Debug)]
struct CachedClock {
    clock: VectorClock,
    dirty: bool,
}

/// The stored values a batch builds on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WriteState {
    hlc: Hlc,
    writes: i64,
    folded: u64,
}

impl Derived {
    fn clock(&self, aggregate: &str) -> Option<&VectorClock> {
        self.clocks.get(aggregate).map(|k| &k.clock)
    }

    fn counter(&self, node: NodeId) -> Option<u64> {
        self.origins.get(&node).map(|c| c.counter)
    }

    fn raise_dirty(&mut self, node: NodeId, counter: u64) {
        let entry = self.origins.entry(node).or_insert(Counter { counter, dirty: false });
        entry.counter = entry.counter.max(counter);
        if !entry.dirty {
            entry.dirty = true;
            self.dirty_origins.push(node);
        }
    }

    fn set_dirty(&mut self, aggregate: String, clock: VectorClock) {
        match self.clocks.get_mut(&aggregate) {
            Some(known) => {
                known.clock = clock;
                if !known.dirty {
                    known.dirty = true;
                    self.dirty.push(aggregate);
                }
            }
            None => {
                self.clocks.insert(aggregate.clone(), CachedClock { clock, dirty: true });
                self.dirty.push(aggregate);
            }
        }
    }

    /// Takes a batch in, once its COMMIT succeeded.
    fn commit(&mut self, update: Update) {
        self.state = Some(update.state);
        for (aggregate, clock) in update.clocks {
            self.set_dirty(aggregate, clock);
        }
        self.tail.extend(update.seqs);
        for (node, counter) in update.origins {
            self.raise_dirty(node, counter);
        }
        if update.folded {
            // Everything dirty was just written: all of it is clean now.
            self.tail.clear();
            if self.clocks.len() > CACHE_CAPACITY {
                self.clocks.clear();
                self.dirty.clear();
            } else {
                for aggregate in self.dirty.drain(..) {
                    if let Some(known) = self.clocks.get_mut(&aggregate) {
                        known.dirty = false;
                    }
                }
            }
            if self.origins.len() > CACHE_CAPACITY {
                self.origins.clear();
                self.dirty_origins.clear();
            } else {
                for node in self.dirty_origins.drain(..) {
                    if let Some(counter) = self.origins.get_mut(&node) {
                        counter.dirty = false;
                    }
                }
            }
        }
    }
}

/// What the store holds, for the batch rule: the mirror first, the tables
/// on a miss. A row read inside the write transaction before any write of
/// ours is committed state, so it enters the mirror at once.
struct MirrorKnown<'a> {
    inner: &'a Inner,
    conn: &'a Connection,
    derived: &'a mut Derived,
    hlc: Hlc,
    stored: Stored,
}

/// How [`MirrorKnown`] answers which ids are stored.
enum Stored {
    /// None are: local ids nearly always are new, and the insert tells
    /// when one was not (the batch then starts over with `Look`).
    AssumeNone,
    /// Look them up.
    Look,
    /// These are: the insert of a remote batch skipped them.
    Given(HashSet<EventId>),
}

impl Known for MirrorKnown<'_> {
    fn stored(&mut self, ids: &[EventId]) -> sync_core::Result<HashSet<EventId>> {
        match &self.stored {
            Stored::AssumeNone => Ok(HashSet::new()),
            Stored::Look => stored_ids(self.inner, self.conn, ids),
            Stored::Given(stored) => Ok(ids.iter().filter(|id| stored.contains(id)).copied().collect()),
        }
    }

    fn clocks(&mut self, aggregates: &[&str]) -> sync_core::Result<HashMap<String, VectorClock>> {
        let mut clocks = HashMap::with_capacity(aggregates.len());
        for aggregate in aggregates {
            let clock = match self.derived.clock(aggregate) {
                Some(clock) => Some(clock.clone()),
                None => {
                    let row = clock_row(self.inner, self.conn, aggregate)?;
                    if let Some(clock) = &row {
                        let known = CachedClock { clock: clock.clone(), dirty: false };
                        self.derived.clocks.insert((*aggregate).to_owned(), known);
                    }
                    row
                }
            };
            if let Some(clock) = clock {
                clocks.insert((*aggregate).to_owned(), clock);
            }
        }
        Ok(clocks)
    }

    fn counters(&mut self, nodes: &[NodeId]) -> sync_core::Result<HashMap<NodeId, u64>> {
        let mut counters = HashMap::with_capacity(nodes.len());
        for node in nodes {
            let counter = match self.derived.counter(*node) {
                Some(counter) => counter,
                None => {
                    // Absent: zero, which the mirror keeps as "known absent".
                    let counter = origin_row(self.inner, self.conn, *node)?.unwrap_or(0);
                    self.derived.origins.insert(*node, Counter { counter, dirty: false });
                    counter
                }
            };
            if counter > 0 {
                counters.insert(*node, counter);
            }
        }
        Ok(counters)
    }

    fn hlc(&mut self) -> sync_core::Result<Hlc> {
        Ok(self.hlc)
    }
}

/// What a batch changed, taken into [`Derived`] once committed.
struct Update {
    state: WriteState,
    /// New clocks of the aggregates the batch changed.
    clocks: Vec<(String, VectorClock)>,
    /// Aggregate and seq of each inserted event, in seq order.
    seqs: Vec<(String, u64)>,
    /// New counters of the origins whose counter rose.
    origins: Vec<(NodeId, u64)>,
    /// True if the batch folded.
    folded: bool,
}

impl SqliteStore {
    /// Runs `f` on tokio's blocking pool, holding the writer (the mirror)
    /// and then a pooled connection.
    async fn with_writer<T, F>(&self, action: &'static str, f: F) -> sync_core::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &mut Connection, &mut Derived) -> sync_core::Result<T> + Send + 'static,
    {
        self.on_blocking_thread(move |inner| {
            let mut derived = inner.writer.lock().unwrap_or_else(|poisoned| {
                // A batch panicked halfway: forget the mirror, the tables
                // hold the truth.
                let mut derived = poisoned.into_inner();
                *derived = Derived::default();
                derived
            });
            inner.writer.clear_poison();
            let mut conn = inner.connection(action)?;
            f(inner, &mut conn, &mut derived)
        })
        .await
    }

    /// Appends local events (see [`sync_core::EventStore::append`]).
    pub(crate) async fn write_local(&self, events: Vec<NewEvent>) -> sync_core::Result<AppendOutcome> {
        self.with_writer("appending events", |inner, conn, derived| write_local(inner, conn, derived, events)).await
    }

    /// Adds remote events (see [`sync_core::EventStore::apply`]).
    pub(crate) async fn write_remote(&self, events: Vec<Event>, source: String) -> sync_core::Result<AppendOutcome> {
        self.with_writer("applying events", move |inner, conn, derived| {
            let tx = begin_write(conn)?;
            let (out, update) = remote_in(inner, &tx, derived, events, &source)?;
            commit(inner, tx, derived, update)?;
            Ok(out)
        })
        .await
    }
}

fn begin_write(conn: &mut Connection) -> sync_core::Result<Transaction<'_>> {
    // IMMEDIATE takes the write lock now, so no other writer can slip in
    // between what the batch reads and what it writes.
    conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage("starting a write transaction"))
}

/// Commits, then lets the mirror take the batch in and wakes the feed's
/// waiters. (Dropping a transaction without committing rolls it back.)
fn commit(inner: &Inner, tx: Transaction<'_>, derived: &mut Derived, update: Update) -> sync_core::Result<()> {
    match tx.commit() {
        Ok(()) => {
            if let Some((_, head)) = update.seqs.last() {
                inner.signal.advance(u128::from(*head));
            }
            derived.commit(update);
            Ok(())
        }
        Err(e) => {
            derived.state = None;
            Err(sync_core::Error::storage("committing a batch", e))
        }
    }
}

fn write_local(
    inner: &Inner,
    conn: &mut Connection,
    derived: &mut Derived,
    mut events: Vec<NewEvent>,
) -> sync_core::Result<AppendOutcome> {
    let order: Vec<EventId> = events.iter().map(|e| e.id).collect();
    // Local ids are nearly always new: plan as if none were stored, insert,
    // and look the ids up only when the insert says some were there.
    let mut stored = Stored::AssumeNone;
    loop {
        let look = matches!(stored, Stored::Look);
        let tx = begin_write(conn)?;
        let state = match derived.state {
            Some(state) if !look => state,
            _ => sync_derived(inner, &tx, derived)?,
        };
        let mut known = MirrorKnown { inner, conn: &tx, derived, hlc: state.hlc, stored };
        let plan = append_plan(inner.node, &inner.limits, events, Hlc::now_ms(), &mut known)?;
        let before = head_seq(inner, &tx)?;
        let Some(seqs) = insert_local(inner, &tx, &plan.rows)? else {
            if look {
                // The ids were looked up inside this transaction.
                return Err(sync_core::Error::storage("appending events", "an event id was stored twice"));
            }
            drop(tx);
            events = plan.rows.into_iter().map(unstamp).collect();
            stored = Stored::Look;
            continue;
        };
        let Plan { rows, clocks, counters, hlc, mut outcome, .. } = plan;
        outcome.span = span(inner, before, &seqs);
        match finish(inner, &tx, derived, state, clocks, counters, hlc, seqs)? {
            Some(update) => {
                commit(inner, tx, derived, update)?;
                return Ok(local_outcome(&order, outcome));
            }
            None => {
                // Another writer came first: start over from the tables.
                drop(tx);
                events = rows.into_iter().map(unstamp).collect();
                derived.state = None;
                stored = Stored::AssumeNone;
            }
        }
    }
}

/// Inserts a local batch in order and answers the aggregate and seq of
/// each event, or `None` if an id was stored already.
fn insert_local(inner: &Inner, conn: &Connection, events: &[Event]) -> sync_core::Result<Option<Vec<(String, u64)>>> {
    let seqs = insert_rows(inner, conn, events, None)?;
    Ok(events.iter().zip(seqs).map(|(e, seq)| Some((e.aggregate_id.clone(), seq?))).collect())
}

/// Inserts `events` in batch order, skipping ids stored already or
/// repeated, and answers the seq of each event (`None`: skipped).
fn insert_rows(
    inner: &Inner,
    conn: &Connection,
    events: &[Event],
    source: Option<&str>,
) -> sync_core::Result<Vec<Option<u64>>> {
    const ACTION: &str = "inserting events";
    let mut seqs = Vec::with_capacity(events.len());
    let mut body = Vec::with_capacity(MAX_INSERT_ROWS * 256);
    let mut ends = Vec::with_capacity(MAX_INSERT_ROWS);
    let mut full = None;
    let mut rest = events;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(insert_chunk(rest.len()));
        rest = tail;
        body.clear();
        ends.clear();
        for e in chunk {
            body = inner.bodies.encode_into(e, body)?;
            ends.push(body.len());
        }
        // The full-size statement is taken from the cache once per batch:
        // each trip through rusqlite's cache hashes its text and clears
        // its 1,280 bindings.
        let mut partial = None;
        let stmt = if chunk.len() == MAX_INSERT_ROWS {
            match &mut full {
                Some(stmt) => stmt,
                None => {
                    full.insert(conn.prepare_cached(inner.sql.insert_events(MAX_INSERT_ROWS)).map_err(storage(ACTION))?)
                }
            }
        } else {
            partial.insert(conn.prepare_cached(inner.sql.insert_events(chunk.len())).map_err(storage(ACTION))?)
        };
        let mut start = 0;
        for (i, (e, &end)) in chunk.iter().zip(&ends).enumerate() {
            let at = 5 * i;
            stmt.raw_bind_parameter(at + 1, &e.id.to_bytes()[..]).map_err(storage(ACTION))?;
            stmt.raw_bind_parameter(at + 2, e.aggregate_id.as_str()).map_err(storage(ACTION))?;
            stmt.raw_bind_parameter(at + 3, e.kind.as_str()).map_err(storage(ACTION))?;
            stmt.raw_bind_parameter(at + 4, source).map_err(storage(ACTION))?;
            stmt.raw_bind_parameter(at + 5, &body[start..end]).map_err(storage(ACTION))?;
            start = end;
        }
        let inserted = stmt.raw_execute().map_err(storage(ACTION))?;
        let last = to_u64(conn.last_insert_rowid(), "seq")?;
        if inserted == chunk.len() {
            // Every row went in: one statement's rows take consecutive
            // seqs (we hold the write lock), the last one's is known.
            seqs.extend((last + 1 - chunk.len() as u64..=last).map(Some));
        } else if inserted == 0 {
            seqs.extend(std::iter::repeat_n(None, chunk.len()));
        } else {
            // Some ids were there: the rows this statement inserted are the
            // `inserted` highest seqs up to `last`.
            let mut new = inserted_by_last_statement(inner, conn, last, inserted)?;
            seqs.extend(chunk.iter().map(|e| new.remove(&e.id)));
        }
    }
    Ok(seqs)
}

/// The ids and seqs of the `n` rows with the highest seqs up to `last`.
fn inserted_by_last_statement(
    inner: &Inner,
    conn: &Connection,
    last: u64,
    n: usize,
) -> sync_core::Result<HashMap<EventId, u64>> {
    const ACTION: &str = "inserting events";
    let mut stmt = conn.prepare_cached(&inner.sql.last_inserted).map_err(storage(ACTION))?;
    let mut rows = stmt.query(params![to_i64(last, "seq")?, n as i64]).map_err(storage(ACTION))?;
    let mut new = HashMap::with_capacity(n);
    while let Some(row) = rows.next().map_err(storage(ACTION))? {
        let id = EventId::from_bytes(sixteen(blob(row, 0).map_err(storage(ACTION))?, "event id")?);
        new.insert(id, to_u64(row.get(1).map_err(storage(ACTION))?, "seq")?);
    }
    Ok(new)
}

fn remote_in(
    inner: &Inner,
    conn: &Connection,
    derived: &mut Derived,
    events: Vec<Event>,
    source: &str,
) -> sync_core::Result<(AppendOutcome, Update)> {
    let state = sync_derived(inner, conn, derived)?;
    // Every row is inserted unless its id is stored (or came earlier in the
    // batch): the insert finds the stored ids, and the batch rule then sees
    // them as stored. If the rule refuses the batch, the caller's rollback
    // takes back every row, as if the whole batch had been validated first.
    let before = head_seq(inner, conn)?;
    let inserted = insert_rows(inner, conn, &events, Some(source))?;
    let (mut first, mut stored, mut seqs) = (HashSet::new(), HashSet::new(), Vec::new());
    for (e, seq) in events.iter().zip(inserted) {
        match seq {
            Some(seq) => seqs.push((e.aggregate_id.clone(), seq)),
            None if first.insert(e.id) => {
                stored.insert(e.id);
            }
            None => {}
        }
        first.insert(e.id);
    }
    let mut known = MirrorKnown { inner, conn, derived, hlc: state.hlc, stored: Stored::Given(stored) };
    let plan = apply_plan(&inner.limits, events, Hlc::now_ms(), &mut known)?;
    if plan.rows.len() != seqs.len() {
        return Err(sync_core::Error::storage("applying events", "the insert and the batch rule disagree"));
    }
    let Plan { clocks, counters, hlc, mut outcome, .. } = plan;
    outcome.span = span(inner, before, &seqs);
    match finish(inner, conn, derived, state, clocks, counters, hlc, seqs)? {
        Some(update) => Ok((outcome, update)),
        // The state was read inside this transaction.
        None => Err(sync_core::Error::storage("applying events", "the store changed under a write transaction")),
    }
}

/// The stored write state, after making `derived` match it: if another
/// writer committed since the mirror was last synced, the mirror is
/// rebuilt from the tables and the unfolded tail of the log.
fn sync_derived(inner: &Inner, conn: &Connection, derived: &mut Derived) -> sync_core::Result<WriteState> {
    const ACTION: &str = "reading the unfolded log";
    let state = read_write_state(inner, conn)?;
    if derived.state == Some(state) {
        return Ok(state);
    }
    *derived = Derived::default();
    let mut clocks: HashMap<String, VectorClock> = HashMap::new();
    let mut counters: HashMap<NodeId, u64> = HashMap::new();
    let mut stmt = conn.prepare_cached(&inner.sql.tail).map_err(storage(ACTION))?;
    let mut rows = stmt.query([to_i64(state.folded, "last fold")?]).map_err(storage(ACTION))?;
    while let Some(row) = rows.next().map_err(storage(ACTION))? {
        let seq: i64 = row.get(0).map_err(storage(ACTION))?;
        let aggregate: String = row.get(1).map_err(storage(ACTION))?;
        let (origin, clock) = inner.bodies.decode_header(blob(row, 2).map_err(storage(ACTION))?)?;
        clocks.entry(aggregate.clone()).or_default().merge(&clock);
        let counter = counters.entry(origin.node).or_default();
        *counter = (*counter).max(origin.counter);
        derived.tail.push((aggregate, to_u64(seq, "seq")?));
    }
    // Current = stored row merged with what the tail adds.
    for (aggregate, mut clock) in clocks {
        if let Some(row) = clock_row(inner, conn, &aggregate)? {
            clock.merge(&row);
        }
        derived.set_dirty(aggregate, clock);
    }
    for (node, counter) in counters {
        derived.raise_dirty(node, counter.max(origin_row(inner, conn, node)?.unwrap_or(0)));
    }
    derived.state = Some(state);
    Ok(state)
}

fn read_write_state(inner: &Inner, conn: &Connection) -> sync_core::Result<WriteState> {
    const ACTION: &str = "reading the write state";
    let mut stmt = conn.prepare_cached(&inner.sql.get_write_state).map_err(storage(ACTION))?;
    let mut rows = stmt.query([]).map_err(storage(ACTION))?;
    let mut state = WriteState { hlc: Hlc::ZERO, writes: 0, folded: 0 };
    while let Some(row) = rows.next().map_err(storage(ACTION))? {
        let key: String = row.get(0).map_err(storage(ACTION))?;
        match key.as_str() {
            "hlc" => state.hlc = decode_hlc(blob(row, 1).map_err(storage(ACTION))?)?,
            "writes" => state.writes = row.get(1).map_err(storage(ACTION))?,
            _ => state.folded = to_u64(row.get(1).map_err(storage(ACTION))?, "last fold")?,
        }
    }
    Ok(state)
}

/// The last seq of the feed, read inside the write transaction.
fn head_seq(inner: &Inner, conn: &Connection) -> sync_core::Result<u64> {
    let seq = conn
        .prepare_cached(&inner.sql.head)
        .and_then(|mut stmt| stmt.query_row([], |row| row.get::<_, i64>(0)))
        .map_err(storage("reading the head"))?;
    to_u64(seq, "seq")
}

/// The feed stretch of a batch inserted at `seqs` right after the head
/// `before`: the write lock keeps every other writer out of it.
fn span(inner: &Inner, before: u64, seqs: &[(String, u64)]) -> Option<FeedSpan> {
    let (_, head) = seqs.last()?;
    FeedSpan::between(inner.node, before.into(), (*head).into())
}

/// The stored clock row of `aggregate`, if it has one.
fn clock_row(inner: &Inner, conn: &Connection, aggregate: &str) -> sync_core::Result<Option<VectorClock>> {
    const ACTION: &str = "reading aggregate clocks";
    let mut stmt = conn.prepare_cached(&inner.sql.get_aggregate).map_err(storage(ACTION))?;
    let mut rows = stmt.query([aggregate]).map_err(storage(ACTION))?;
    match rows.next().map_err(storage(ACTION))? {
        Some(row) => Ok(Some(decode_clock(blob(row, 0).map_err(storage(ACTION))?)?)),
        None => Ok(None),
    }
}

/// The stored counter of `node`, if it has one.
fn origin_row(inner: &Inner, conn: &Connection, node: NodeId) -> sync_core::Result<Option<u64>> {
    const ACTION: &str = "reading origin counters";
    let counter: Option<i64> = conn
        .prepare_cached(&inner.sql.get_origin)
        .and_then(|mut stmt| stmt.query_row([&node.to_bytes()[..]], |row| row.get(0)).optional())
        .map_err(storage(ACTION))?;
    counter.map(|c| to_u64(c, "origin counter")).transpose()
}

/// Which of `ids` the log holds already.
fn stored_ids(inner: &Inner, conn: &Connection, ids: &[EventId]) -> sync_core::Result<HashSet<EventId>> {
    const ACTION: &str = "looking up event ids";
    let mut stmt = conn.prepare_cached(&inner.sql.is_stored).map_err(storage(ACTION))?;
    let mut found = HashSet::new();
    for id in ids {
        if stmt.exists([&id.to_bytes()[..]]).map_err(storage(ACTION))? {
            found.insert(*id);
        }
    }
    Ok(found)
}

/// Writes back the bookkeeping of a batch whose events are inserted
/// (`seqs`): the clocks and counters the batch rule changed and its HLC,
/// checking that no other writer committed since `state`; `None` if one did.
#[allow(clippy::too_many_arguments)]
fn finish(
    inner: &Inner,
    conn: &Connection,
    derived: &Derived,
    state: WriteState,
    clocks: Vec<(String, VectorClock)>,
    origins: Vec<(NodeId, u64)>,
    hlc: Hlc,
    seqs: Vec<(String, u64)>,
) -> sync_core::Result<Option<Update>> {
    const ACTION: &str = "writing the bookkeeping";
    let head = seqs.last().map(|(_, seq)| *seq);
    let fold = head.filter(|head| head.saturating_sub(state.folded) >= FOLD_EVERY);
    if let Some(head) = fold {
        write_fold(inner, conn, derived, &clocks, &origins, &seqs, head)?;
    }
    // Bump the write counter and set the HLC in one statement, which
    // answers the new counter.
    let mut stmt = conn.prepare_cached(&inner.sql.put_state).map_err(storage(ACTION))?;
    let mut rows = stmt.query([&encode_hlc(hlc)[..]]).map_err(storage(ACTION))?;
    let mut writes = None;
    while let Some(row) = rows.next().map_err(storage(ACTION))? {
        let key: String = row.get(0).map_err(storage(ACTION))?;
        if key == "writes" {
            writes = Some(row.get::<_, i64>(1).map_err(storage(ACTION))?);
        }
    }
    if writes != Some(state.writes + 1) {
        return Ok(None);
    }
    let state = WriteState { hlc, writes: state.writes + 1, folded: fold.unwrap_or(state.folded) };
    Ok(Some(Update { state, clocks, seqs, origins, folded: fold.is_some() }))
}

/// Writes the aggregate index rows and the clocks of everything changed
/// since the last fold, this batch included, and records the fold.
fn write_fold(
    inner: &Inner,
    conn: &Connection,
    derived: &Derived,
    clocks: &[(String, VectorClock)],
    origins: &[(NodeId, u64)],
    seqs: &[(String, u64)],
    head: u64,
) -> sync_core::Result<()> {
    const ACTION: &str = "folding the aggregate index";
    let sql = &inner.sql;
    // Group the tail by aggregate; sorting keeps each aggregate's seqs
    // ascending.
    let mut tail: Vec<(&str, u64)> = derived.tail.iter().chain(seqs).map(|(a, seq)| (a.as_str(), *seq)).collect();
    tail.sort_unstable();
    let mut rows: Vec<(&str, String)> = Vec::new();
    for (aggregate, seq) in tail {
        let list = match rows.last_mut() {
            Some((last, list)) if *last == aggregate => {
                list.push(',');
                list
            }
            _ => {
                rows.push((aggregate, String::new()));
                &mut rows.last_mut().expect("just pushed").1
            }
        };
        let _ = write!(list, "{seq}");
    }
    // Rows in key order, so the rows of this fold are appended together.
    let fold = to_i64(head, "seq")?;
    let mut put_index = conn.prepare_cached(&sql.put_index).map_err(storage(ACTION))?;
    for (aggregate, list) in &rows {
        put_index.execute(params![fold, aggregate, list]).map_err(storage(ACTION))?;
    }
    conn.prepare_cached(&sql.add_fold).and_then(|mut stmt| stmt.execute([fold])).map_err(storage(ACTION))?;

    let mut put_clock = conn.prepare_cached(&sql.put_aggregate).map_err(storage(ACTION))?;
    let fresh: HashSet<&str> = clocks.iter().map(|(a, _)| a.as_str()).collect();
    let older = derived
        .dirty
        .iter()
        .filter(|a| !fresh.contains(a.as_str()))
        .filter_map(|a| derived.clock(a).map(|c| (a.as_str(), c)));
    for (aggregate, clock) in clocks.iter().map(|(a, c)| (a.as_str(), c)).chain(older) {
        let clock = sync_core::Codec::Postcard.encode(clock)?;
        put_clock.execute(params![aggregate, clock]).map_err(storage("writing aggregate clocks"))?;
    }

    // Counters only rise, so writing an older value of a node this batch
    // raised again does no harm.
    let mut put_origin = conn.prepare_cached(&sql.put_origin).map_err(storage(ACTION))?;
    let counters = derived
        .dirty_origins
        .iter()
        .filter_map(|n| derived.counter(*n).map(|c| (*n, c)))
        .chain(origins.iter().copied());
    for (node, counter) in counters {
        put_origin
            .execute(params![&node.to_bytes()[..], to_i64(counter, "origin counter")?])
            .map_err(storage("writing origin counters"))?;
    }
    Ok(())
}

/// The outcome of a local batch over the whole of it (`order`): a batch
/// planned again after its insert found stored ids no longer holds its
/// repeats. Every id but the first copy of an inserted one is a duplicate,
/// in batch order.
fn local_outcome(order: &[EventId], mut outcome: AppendOutcome) -> AppendOutcome {
    if outcome.inserted.len() + outcome.duplicates.len() == order.len() {
        return outcome;
    }
    let mut fresh: HashSet<EventId> = outcome.inserted.iter().copied().collect();
    outcome.duplicates = order.iter().filter(|id| !fresh.remove(id)).copied().collect();
    outcome
}

/// The application's part of a stamped event, to stamp it again.
fn unstamp(e: Event) -> NewEvent {
    NewEvent { id: e.id, kind: e.kind, aggregate_id: e.aggregate_id, data: e.data, metadata: e.metadata }
}
