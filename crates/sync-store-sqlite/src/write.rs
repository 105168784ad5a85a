//! The write path: one `BEGIN IMMEDIATE` transaction per batch, and
//! [`Derived`], the in-memory mirror of the bookkeeping that spares a batch
//! from reading and writing one row per aggregate or origin it touches.
//!
//! A local batch is stamped from the mirror while `BEGIN IMMEDIATE` waits
//! for the write lock, then inserted with multi-row statements; one more
//! statement bumps a write counter and sets the HLC, answering the new
//! counter; the mirror takes the batch in while `COMMIT` runs. Aggregate
//! clocks, origin counters and the aggregate index are written in bulk by
//! the batch that makes the unfolded tail reach [`FOLD_EVERY`] events (see
//! `schema.rs`); until then the tail of the log holds what they miss.
//!
//! The mirror is trusted only while the stored write counter is the one it
//! saw last: any other writer (another process, another `SqliteStore` on the
//! same file) bumps it. A batch that finds the counter moved rolls back and
//! starts over from the tables and the tail of the log, which hold the
//! whole truth; so does every batch after a failed commit, and every remote
//! batch reads the counter before it starts.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use sqlx::sqlite::SqliteConnection;
use sqlx::{Arguments, Row, Sqlite, Transaction};
use sync_core::{AppendOutcome, ClockBook, Event, EventId, Hlc, NewEvent, NodeId, VectorClock};

use crate::body::Bodies;
use crate::error::storage;
use crate::schema::{FOLD_EVERY, MAX_INSERT_ROWS, MAX_LIST, padded};
use crate::store::{SqliteStore, decode_clock, decode_hlc, distinct, encode_hlc, origin_row, sixteen, to_i64, to_u64};

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
    clocks: HashMap<String, Known>,
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
struct Known {
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
                self.clocks.insert(aggregate.clone(), Known { clock, dirty: true });
                self.dirty.push(aggregate);
            }
        }
    }

    /// Takes a batch in. Called while its COMMIT runs: if that fails, the
    /// caller forgets the mirror.
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

    /// Stamps a local batch from the mirror alone, if it holds all that is
    /// needed; `Err` hands the events back when it does not.
    fn stamp_cached(
        &self,
        node: NodeId,
        limits: sync_core::Limits,
        bodies: Bodies,
        unique: Vec<NewEvent>,
    ) -> Result<sync_core::Result<(WriteState, Staged<'static>)>, Vec<NewEvent>> {
        let Some(state) = self.state else {
            return Err(unique);
        };
        let Some(counter) = self.counter(node) else {
            return Err(unique);
        };
        let mut book = ClockBook::new(node, state.hlc, limits);
        for e in &unique {
            if !book.aggregates.contains_key(&e.aggregate_id) {
                match self.clock(&e.aggregate_id) {
                    Some(clock) => {
                        book.aggregates.insert(e.aggregate_id.clone(), clock.clone());
                    }
                    // A new aggregate, or one the cache lost: ask the table.
                    None => return Err(unique),
                }
            }
        }
        book.origins.insert(node, counter);
        let stamped = stamp_all(book, vec![(node, counter)], unique, &HashSet::new()).and_then(|mut staged| {
            staged.bodies = Some(encode_all(bodies, &staged.events)?);
            Ok((state, staged))
        });
        Ok(stamped)
    }
}

/// Stamps every event not in `stored`.
fn stamp_all(
    mut book: ClockBook,
    origins_before: Vec<(NodeId, u64)>,
    unique: Vec<NewEvent>,
    stored: &HashSet<EventId>,
) -> sync_core::Result<Staged<'static>> {
    let now = Hlc::now_ms();
    let mut events = Vec::with_capacity(unique.len());
    for e in unique {
        if !stored.contains(&e.id) {
            events.push(Cow::Owned(book.stamp(e, now)?));
        }
    }
    Ok(Staged { events, bodies: None, source: None, book, origins_before })
}

/// The bodies of `events` in one buffer (one allocation, not one per
/// event) and where each ends.
fn encode_all(bodies: Bodies, events: &[Cow<'_, Event>]) -> sync_core::Result<(Vec<u8>, Vec<usize>)> {
    let mut buf = Vec::with_capacity(events.len() * 128);
    let mut ends = Vec::with_capacity(events.len());
    for e in events {
        buf = bodies.encode_into(e, buf)?;
        ends.push(buf.len());
    }
    Ok((buf, ends))
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

/// A batch after stamping or observing: what to insert and write back.
struct Staged<'a> {
    events: Vec<Cow<'a, Event>>,
    /// The bodies of `events`, one after the other, and where each ends;
    /// `None` until encoded.
    bodies: Option<(Vec<u8>, Vec<usize>)>,
    source: Option<&'a str>,
    book: ClockBook,
    /// Origin counters as stored before the batch.
    origins_before: Vec<(NodeId, u64)>,
}

/// How [`SqliteStore::write_staged`] ended.
enum Written<'a> {
    /// Ready to commit; the events are handed back to be dropped while
    /// COMMIT runs.
    Done(Update, Vec<Cow<'a, Event>>),
    /// Some ids were stored already (only with `skip_known`).
    Known(Vec<Cow<'a, Event>>),
    /// Another writer committed since the state the batch was built on.
    Stale(Vec<Cow<'a, Event>>),
}

impl SqliteStore {
    async fn begin_write(&self) -> sync_core::Result<Transaction<'static, Sqlite>> {
        // IMMEDIATE takes the write lock now, so no other writer can slip in
        // between what the batch reads and what it writes.
        self.inner.pool.begin_with("BEGIN IMMEDIATE").await.map_err(storage("starting a write transaction"))
    }

    /// Appends local events (see [`sync_core::EventStore::append`]).
    pub(crate) async fn write_local(&self, events: Vec<NewEvent>) -> sync_core::Result<AppendOutcome> {
        let node = self.inner.node;
        let limits = self.inner.limits;
        let bodies = self.inner.bodies;
        let mut derived = self.inner.writer.lock().await;
        let order: Vec<EventId> = events.iter().map(|e| e.id).collect();
        let mut seen = HashSet::with_capacity(order.len());
        let mut repeats = Vec::new();
        let mut unique = Vec::with_capacity(order.len());
        for e in events {
            if seen.insert(e.id) {
                unique.push(e);
            } else {
                repeats.push(e.id);
            }
        }
        // Local ids are nearly always new: insert first, and look up stored
        // ids only when the insert says some were there.
        let mut check_stored = false;
        loop {
            // Stamp from the mirror while BEGIN waits for the write lock.
            let (tx, cached) = if check_stored {
                (self.begin_write().await, Err(unique))
            } else {
                let mirror = &*derived;
                tokio::join!(self.begin_write(), async { mirror.stamp_cached(node, limits, bodies, unique) })
            };
            let mut tx = tx?;
            let (state, staged, stored) = match cached {
                Ok(Ok((state, staged))) => (state, staged, HashSet::new()),
                Ok(Err(e)) => {
                    rollback(tx).await;
                    return Err(e);
                }
                Err(events) => match self.stage_local(&mut tx, &mut derived, events, check_stored).await {
                    Ok(staged) => staged,
                    Err(e) => {
                        rollback(tx).await;
                        return Err(e);
                    }
                },
            };
            let inserted: Vec<EventId> = staged.events.iter().map(|e| e.id).collect();
            let written = self.write_staged(&mut tx, &derived, state, staged, !check_stored, None).await;
            match written {
                Ok(Written::Done(update, events)) => {
                    let finish = async {
                        derived.commit(update);
                        drop(events);
                        local_outcome(&order, repeats, inserted, &stored)
                    };
                    let (committed, outcome) = tokio::join!(tx.commit(), finish);
                    return match committed {
                        Ok(()) => Ok(outcome),
                        Err(e) => {
                            derived.state = None;
                            Err(sync_core::Error::storage("committing a batch", e))
                        }
                    };
                }
                Ok(Written::Known(events)) => {
                    rollback(tx).await;
                    unique = events.into_iter().map(|e| unstamp(e.into_owned())).collect();
                    check_stored = true;
                }
                Ok(Written::Stale(events)) => {
                    rollback(tx).await;
                    unique = events.into_iter().map(|e| unstamp(e.into_owned())).collect();
                    derived.state = None;
                }
                Err(e) => {
                    rollback(tx).await;
                    return Err(e);
                }
            }
        }
    }

    /// Adds remote events (see [`sync_core::EventStore::apply`]).
    pub(crate) async fn write_remote(&self, events: &[Event], source: &str) -> sync_core::Result<AppendOutcome> {
        let mut derived = self.inner.writer.lock().await;
        let mut tx = self.begin_write().await?;
        let result = self.remote_in(&mut tx, &mut derived, events, source).await;
        match result {
            Ok((out, update)) => {
                let (committed, ()) = tokio::join!(tx.commit(), async { derived.commit(update) });
                match committed {
                    Ok(()) => Ok(out),
                    Err(e) => {
                        derived.state = None;
                        Err(sync_core::Error::storage("committing a batch", e))
                    }
                }
            }
            Err(e) => {
                rollback(tx).await;
                Err(e)
            }
        }
    }

    /// Stamps a local batch from the tables (and the mirror, synced first).
    async fn stage_local(
        &self,
        conn: &mut SqliteConnection,
        derived: &mut Derived,
        unique: Vec<NewEvent>,
        check_stored: bool,
    ) -> sync_core::Result<(WriteState, Staged<'static>, HashSet<EventId>)> {
        let node = self.inner.node;
        let state = self.sync_derived(conn, derived).await?;
        let stored = if check_stored {
            let ids: Vec<EventId> = unique.iter().map(|e| e.id).collect();
            self.stored_ids(conn, &ids).await?
        } else {
            HashSet::new()
        };
        let aggregates = distinct(unique.iter().map(|e| e.aggregate_id.as_str()));
        let (book, origins_before) = self.book(conn, derived, state, &aggregates, &[node]).await?;
        let staged = stamp_all(book, origins_before, unique, &stored)?;
        Ok((state, staged, stored))
    }

    async fn remote_in(
        &self,
        conn: &mut SqliteConnection,
        derived: &mut Derived,
        events: &[Event],
        source: &str,
    ) -> sync_core::Result<(AppendOutcome, Update)> {
        let state = self.sync_derived(conn, derived).await?;
        // Pulled batches often repeat what is stored: look first.
        let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
        let stored = self.stored_ids(conn, &ids).await?;
        let aggregates = distinct(events.iter().map(|e| e.aggregate_id.as_str()));
        let origins = distinct(events.iter().map(|e| e.origin.node));
        let (mut book, origins_before) = self.book(conn, derived, state, &aggregates, &origins).await?;
        // Like the reference store: every event is validated before anything
        // is written, and only the events to be inserted teach the book.
        let mut out = AppendOutcome::default();
        let mut insert = Vec::with_capacity(events.len());
        let mut seen = HashSet::with_capacity(events.len());
        for e in events {
            if stored.contains(&e.id) || !seen.insert(e.id) {
                book.check(e)?;
                out.duplicates.push(e.id);
            } else {
                if book.observe(e)? {
                    out.concurrent.push(e.id);
                }
                out.inserted.push(e.id);
                insert.push(Cow::Borrowed(e));
            }
        }
        let staged = Staged { events: insert, bodies: None, source: Some(source), book, origins_before };
        let derived = &*derived;
        match self.write_staged(conn, derived, state, staged, false, Some(derived)).await? {
            Written::Done(update, _) => Ok((out, update)),
            // Neither can happen: the ids were looked up and the state read
            // inside this transaction.
            Written::Known(_) | Written::Stale(_) => {
                Err(sync_core::Error::storage("applying events", "the store changed under a write transaction"))
            }
        }
    }

    /// The stored write state, after making `derived` match it: if another
    /// writer committed since the mirror was last synced, the mirror is
    /// rebuilt from the tables and the unfolded tail of the log.
    async fn sync_derived(&self, conn: &mut SqliteConnection, derived: &mut Derived) -> sync_core::Result<WriteState> {
        let state = self.read_write_state(conn).await?;
        if derived.state == Some(state) {
            return Ok(state);
        }
        *derived = Derived::default();
        let rows = sqlx::query(&self.inner.sql.tail)
            .bind(to_i64(state.folded, "last fold")?)
            .fetch_all(&mut *conn)
            .await
            .map_err(storage("reading the unfolded log"))?;
        let mut clocks: HashMap<String, VectorClock> = HashMap::new();
        let mut counters: HashMap<NodeId, u64> = HashMap::new();
        for row in rows {
            let seq: i64 = row.try_get(0).map_err(storage("reading the unfolded log"))?;
            let aggregate: String = row.try_get(1).map_err(storage("reading the unfolded log"))?;
            let bytes: &[u8] = row.try_get(2).map_err(storage("reading the unfolded log"))?;
            let (origin, clock) = self.inner.bodies.decode_header(bytes)?;
            clocks.entry(aggregate.clone()).or_default().merge(&clock);
            let counter = counters.entry(origin.node).or_default();
            *counter = (*counter).max(origin.counter);
            derived.tail.push((aggregate, to_u64(seq, "seq")?));
        }
        // Current = stored row merged with what the tail adds.
        let aggregates: Vec<&str> = clocks.keys().map(String::as_str).collect();
        let mut stored = self.clock_rows(conn, &aggregates).await?;
        for (aggregate, mut clock) in clocks {
            if let Some(row) = stored.remove(&aggregate) {
                clock.merge(&row);
            }
            derived.set_dirty(aggregate, clock);
        }
        let nodes: Vec<NodeId> = counters.keys().copied().collect();
        let stored = self.origin_rows(conn, &nodes).await?;
        for (node, counter) in counters {
            derived.raise_dirty(node, counter.max(stored.get(&node).copied().unwrap_or(0)));
        }
        derived.state = Some(state);
        Ok(state)
    }

    async fn read_write_state(&self, conn: &mut SqliteConnection) -> sync_core::Result<WriteState> {
        let rows = sqlx::query(&self.inner.sql.get_write_state)
            .fetch_all(&mut *conn)
            .await
            .map_err(storage("reading the write state"))?;
        let mut state = WriteState { hlc: Hlc::ZERO, writes: 0, folded: 0 };
        for row in rows {
            let key: &str = row.try_get(0).map_err(storage("reading the write state"))?;
            match key {
                "hlc" => {
                    let bytes: &[u8] = row.try_get(1).map_err(storage("reading the HLC"))?;
                    state.hlc = decode_hlc(bytes)?;
                }
                "writes" => {
                    state.writes = row.try_get(1).map_err(storage("reading the write counter"))?;
                }
                _ => {
                    let folded: i64 = row.try_get(1).map_err(storage("reading the last fold"))?;
                    state.folded = to_u64(folded, "last fold")?;
                }
            }
        }
        Ok(state)
    }

    /// A [`ClockBook`] holding what the batch touches, as the reference
    /// store builds it, and the origin counters it starts from.
    async fn book(
        &self,
        conn: &mut SqliteConnection,
        derived: &mut Derived,
        state: WriteState,
        aggregates: &[&str],
        origins: &[NodeId],
    ) -> sync_core::Result<(ClockBook, Vec<(NodeId, u64)>)> {
        let mut book = ClockBook::new(self.inner.node, state.hlc, self.inner.limits);
        let mut missing = Vec::new();
        for aggregate in aggregates {
            match derived.clock(aggregate) {
                Some(clock) => {
                    book.aggregates.insert((*aggregate).to_owned(), clock.clone());
                }
                None => missing.push(*aggregate),
            }
        }
        if !missing.is_empty() {
            // Rows read inside our transaction before any write of ours are
            // committed state, so they may enter the cache at once.
            for (aggregate, clock) in self.clock_rows(conn, &missing).await? {
                book.aggregates.insert(aggregate.clone(), clock.clone());
                derived.clocks.insert(aggregate, Known { clock, dirty: false });
            }
        }
        let missing: Vec<NodeId> = origins.iter().copied().filter(|n| derived.counter(*n).is_none()).collect();
        if !missing.is_empty() {
            let mut found = self.origin_rows(conn, &missing).await?;
            for node in missing {
                // Absent: zero, like the reference store.
                let counter = found.remove(&node).unwrap_or(0);
                derived.origins.insert(node, Counter { counter, dirty: false });
            }
        }
        let before: Vec<(NodeId, u64)> = origins.iter().map(|n| (*n, derived.counter(*n).unwrap_or(0))).collect();
        book.origins = before.iter().copied().collect();
        Ok((book, before))
    }

    /// The stored clock rows of `aggregates` (those that have one).
    async fn clock_rows(
        &self,
        conn: &mut SqliteConnection,
        aggregates: &[&str],
    ) -> sync_core::Result<HashMap<String, VectorClock>> {
        let mut clocks = HashMap::with_capacity(aggregates.len());
        for chunk in aggregates.chunks(MAX_LIST) {
            let n = padded(chunk.len());
            let mut query = sqlx::query(self.inner.sql.get_aggregates(n));
            for i in 0..n {
                query = query.bind(chunk[i.min(chunk.len() - 1)]);
            }
            let rows = query.fetch_all(&mut *conn).await.map_err(storage("reading aggregate clocks"))?;
            for row in rows {
                let aggregate: String = row.try_get(0).map_err(storage("reading aggregate clocks"))?;
                let clock: &[u8] = row.try_get(1).map_err(storage("reading aggregate clocks"))?;
                clocks.insert(aggregate, decode_clock(clock)?);
            }
        }
        Ok(clocks)
    }

    /// The stored counters of `nodes` (those that have one).
    async fn origin_rows(
        &self,
        conn: &mut SqliteConnection,
        nodes: &[NodeId],
    ) -> sync_core::Result<HashMap<NodeId, u64>> {
        let mut counters = HashMap::with_capacity(nodes.len());
        for chunk in nodes.chunks(MAX_LIST) {
            let bytes: Vec<[u8; 16]> = chunk.iter().map(|n| n.to_bytes()).collect();
            let n = padded(bytes.len());
            let mut query = sqlx::query(self.inner.sql.get_origins(n));
            for i in 0..n {
                query = query.bind(&bytes[i.min(bytes.len() - 1)][..]);
            }
            let rows = query.fetch_all(&mut *conn).await.map_err(storage("reading origin counters"))?;
            for row in rows {
                let (node, counter) = origin_row(&row, 0)?;
                counters.insert(node, counter);
            }
        }
        Ok(counters)
    }

    /// Which of `ids` the log holds already.
    async fn stored_ids(&self, conn: &mut SqliteConnection, ids: &[EventId]) -> sync_core::Result<HashSet<EventId>> {
        let mut found = HashSet::new();
        for chunk in ids.chunks(MAX_LIST) {
            let bytes: Vec<[u8; 16]> = chunk.iter().map(|id| id.to_bytes()).collect();
            let n = padded(bytes.len());
            let mut query = sqlx::query(self.inner.sql.existing_ids(n));
            for i in 0..n {
                query = query.bind(&bytes[i.min(bytes.len() - 1)][..]);
            }
            let rows = query.fetch_all(&mut *conn).await.map_err(storage("looking up event ids"))?;
            for row in rows {
                let id: &[u8] = row.try_get(0).map_err(storage("reading an event id"))?;
                found.insert(EventId::from_bytes(sixteen(id, "event id")?));
            }
        }
        Ok(found)
    }

    /// Inserts the staged events and writes back the bookkeeping, checking
    /// that no other writer committed since `state`. With `skip_known`, ids
    /// stored already are skipped, and if there were any the batch comes
    /// back as [`Written::Known`]. `compare` is the mirror to keep only the
    /// clocks that changed against (remote batches); without it every clock
    /// of the book counts as changed, as in a local batch, where every
    /// aggregate is stamped.
    async fn write_staged<'a>(
        &self,
        conn: &mut SqliteConnection,
        derived: &Derived,
        state: WriteState,
        staged: Staged<'a>,
        skip_known: bool,
        compare: Option<&Derived>,
    ) -> sync_core::Result<Written<'a>> {
        let Staged { events, bodies, source, book, origins_before } = staged;
        let (bodies, ends) = match bodies {
            Some(encoded) => encoded,
            None => encode_all(self.inner.bodies, &events)?,
        };
        let hlc = book.hlc;
        let (book_clocks, book_origins) = (book.aggregates, book.origins);
        // Sorting out what changed overlaps the first insert statement.
        let mut changes = Some(async move {
            let clocks: Vec<(String, VectorClock)> = match compare {
                Some(mirror) => book_clocks.into_iter().filter(|(a, c)| mirror.clock(a) != Some(c)).collect(),
                None => book_clocks.into_iter().collect(),
            };
            let origins: Vec<(NodeId, u64)> = book_origins
                .into_iter()
                .filter(|(node, counter)| {
                    origins_before.iter().find(|(n, _)| n == node).is_none_or(|(_, before)| before < counter)
                })
                .collect();
            (clocks, origins)
        });
        let mut changed = None;
        let mut seqs = Vec::with_capacity(events.len());
        let mut start = 0;
        for (chunk, chunk_ends) in events.chunks(MAX_INSERT_ROWS).zip(ends.chunks(MAX_INSERT_ROWS)) {
            let ids: Vec<[u8; 16]> = chunk.iter().map(|e| e.id.to_bytes()).collect();
            let mut args = sqlx::sqlite::SqliteArguments::default();
            args.reserve(5 * chunk.len(), 0);
            for ((e, id), &end) in chunk.iter().zip(&ids).zip(chunk_ends) {
                bind_event(&mut args, id, e, source, &bodies[start..end])
                    .map_err(|e| sync_core::Error::storage("binding events", e))?;
                start = end;
            }
            let sql = self.inner.sql.insert_events(chunk.len(), skip_known);
            let query = sqlx::query_with(&sql, args);
            let done = match changes.take() {
                Some(work) => {
                    let (done, result) = tokio::join!(query.execute(&mut *conn), work);
                    changed = Some(result);
                    done
                }
                None => query.execute(&mut *conn).await,
            };
            let done = done.map_err(storage("inserting events"))?;
            if done.rows_affected() != chunk.len() as u64 {
                if skip_known {
                    return Ok(Written::Known(events));
                }
                return Err(sync_core::Error::storage(
                    "inserting events",
                    format!("{} of {} rows inserted", done.rows_affected(), chunk.len()),
                ));
            }
            // The rows of one statement get consecutive seqs: AUTOINCREMENT
            // hands out the largest seq ever used + 1, and we hold the lock.
            let last = to_u64(done.last_insert_rowid(), "seq")?;
            seqs.extend(last + 1 - chunk.len() as u64..=last);
        }
        let (clocks, origins) = match (changed, changes) {
            (Some(changed), _) => changed,
            (None, Some(work)) => work.await,
            (None, None) => unreachable!("the changes are sorted out exactly once"),
        };
        let head = seqs.last().copied();
        let fold = head.filter(|head| head.saturating_sub(state.folded) >= FOLD_EVERY);
        // Pairing each aggregate with its seq overlaps the bookkeeping
        // write, unless the fold needs it first.
        let pair = || -> Vec<(String, u64)> {
            events.iter().zip(&seqs).map(|(e, seq)| (e.aggregate_id.clone(), *seq)).collect()
        };
        let mut paired = None;
        if fold.is_some() {
            paired = Some(pair());
        }

        if let (Some(head), Some(seqs)) = (fold, &paired) {
            self.fold(conn, derived, &clocks, &origins, seqs, head).await?;
        }

        // Bump the write counter and set the HLC in one statement, which
        // answers the new counter; pair aggregates with seqs meanwhile.
        let hlc_bytes = encode_hlc(hlc);
        let query = sqlx::query(&self.inner.sql.put_state).bind(&hlc_bytes[..]);
        let rows = match paired {
            Some(_) => query.fetch_all(&mut *conn).await,
            None => {
                let (rows, seqs) = tokio::join!(query.fetch_all(&mut *conn), async { pair() });
                paired = Some(seqs);
                rows
            }
        };
        let rows = rows.map_err(storage("writing the bookkeeping"))?;
        let mut writes = None;
        for row in rows {
            let key: &str = row.try_get(0).map_err(storage("writing the bookkeeping"))?;
            if key == "writes" {
                writes = Some(row.try_get::<i64, _>(1).map_err(storage("writing the bookkeeping"))?);
            }
        }
        if writes != Some(state.writes + 1) {
            return Ok(Written::Stale(events));
        }
        let state = WriteState { hlc, writes: state.writes + 1, folded: fold.unwrap_or(state.folded) };
        Ok(Written::Done(
            Update { state, clocks, seqs: paired.unwrap_or_default(), origins, folded: fold.is_some() },
            events,
        ))
    }

    /// Writes the aggregate index rows and the clocks of everything changed
    /// since the last fold, this batch included, and records the fold.
    async fn fold(
        &self,
        conn: &mut SqliteConnection,
        derived: &Derived,
        clocks: &[(String, VectorClock)],
        origins: &[(NodeId, u64)],
        seqs: &[(String, u64)],
        head: u64,
    ) -> sync_core::Result<()> {
        let sql = &self.inner.sql;
        // Group the tail by aggregate. A stable sort keeps each aggregate's
        // seqs ascending.
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
        for chunk in rows.chunks(MAX_LIST) {
            let n = padded(chunk.len());
            let mut query = sqlx::query(sql.put_index(n));
            for i in 0..n {
                let (aggregate, list) = &chunk[i.min(chunk.len() - 1)];
                query = query.bind(fold).bind(*aggregate).bind(list.as_str());
            }
            query.execute(&mut *conn).await.map_err(storage("folding the aggregate index"))?;
        }
        sqlx::query(&sql.add_fold)
            .bind(fold)
            .execute(&mut *conn)
            .await
            .map_err(storage("folding the aggregate index"))?;

        let fresh: HashSet<&str> = clocks.iter().map(|(a, _)| a.as_str()).collect();
        let older = derived
            .dirty
            .iter()
            .filter(|a| !fresh.contains(a.as_str()))
            .filter_map(|a| derived.clock(a).map(|c| (a.as_str(), c)));
        let all: Vec<(&str, &VectorClock)> = clocks.iter().map(|(a, c)| (a.as_str(), c)).chain(older).collect();
        self.put_clocks(conn, &all).await?;

        // Counters only rise, so writing an older value of a node this
        // batch raised again does no harm.
        let counters: Vec<(NodeId, u64)> = derived
            .dirty_origins
            .iter()
            .filter_map(|n| derived.counter(*n).map(|c| (*n, c)))
            .chain(origins.iter().copied())
            .collect();
        self.put_counters(conn, &counters).await
    }

    async fn put_counters(&self, conn: &mut SqliteConnection, counters: &[(NodeId, u64)]) -> sync_core::Result<()> {
        for chunk in counters.chunks(MAX_LIST) {
            let nodes: Vec<[u8; 16]> = chunk.iter().map(|(n, _)| n.to_bytes()).collect();
            let n = padded(chunk.len());
            let mut query = sqlx::query(self.inner.sql.put_origins(n));
            for i in 0..n {
                let i = i.min(chunk.len() - 1);
                query = query.bind(&nodes[i][..]).bind(to_i64(chunk[i].1, "origin counter")?);
            }
            query.execute(&mut *conn).await.map_err(storage("writing origin counters"))?;
        }
        Ok(())
    }

    async fn put_clocks(&self, conn: &mut SqliteConnection, clocks: &[(&str, &VectorClock)]) -> sync_core::Result<()> {
        for chunk in clocks.chunks(MAX_LIST) {
            let encoded: Vec<Vec<u8>> = chunk
                .iter()
                .map(|(_, clock)| sync_core::Codec::Postcard.encode(*clock))
                .collect::<sync_core::Result<_>>()?;
            let n = padded(chunk.len());
            let mut query = sqlx::query(self.inner.sql.put_aggregates(n));
            for i in 0..n {
                let i = i.min(chunk.len() - 1);
                query = query.bind(chunk[i].0).bind(&encoded[i][..]);
            }
            query.execute(&mut *conn).await.map_err(storage("writing aggregate clocks"))?;
        }
        Ok(())
    }
}

/// Binds the columns of one event row.
fn bind_event<'q>(
    args: &mut sqlx::sqlite::SqliteArguments<'q>,
    id: &'q [u8; 16],
    event: &'q Event,
    source: Option<&'q str>,
    body: &'q [u8],
) -> Result<(), sqlx::error::BoxDynError> {
    args.add(&id[..])?;
    args.add(event.aggregate_id.as_str())?;
    args.add(event.kind.as_str())?;
    args.add(source)?;
    args.add(body)
}

async fn rollback(tx: Transaction<'static, Sqlite>) {
    // If the rollback itself fails, dropping the connection rolls back
    // anyway; the error that made us roll back is the useful one.
    let _ = tx.rollback().await;
}

/// The outcome of a local batch, in batch order like the reference store:
/// repeats within the batch and ids stored before are duplicates.
fn local_outcome(
    order: &[EventId],
    repeats: Vec<EventId>,
    inserted: Vec<EventId>,
    stored: &HashSet<EventId>,
) -> AppendOutcome {
    let duplicates = if stored.is_empty() {
        repeats
    } else {
        let mut seen = HashSet::with_capacity(order.len());
        order.iter().filter(|id| !seen.insert(**id) || stored.contains(id)).copied().collect()
    };
    AppendOutcome { inserted, duplicates, concurrent: Vec::new() }
}

/// The application's part of a stamped event, to stamp it again.
fn unstamp(e: Event) -> NewEvent {
    NewEvent { id: e.id, kind: e.kind, aggregate_id: e.aggregate_id, data: e.data, metadata: e.metadata }
}
