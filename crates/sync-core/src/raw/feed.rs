//! The change feed: paging a store's raw scan, and waking those who wait
//! for the feed to move.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::{Cursor, Event, Filter, MAX_PAGE_BYTES, NodeId, Page};

/// Rows asked of a store's scan at once, so a page of large events never
/// loads far more than it returns.
const MAX_SCAN_ROWS: usize = 1024;

/// One row of a store's raw feed scan, for [`page_from_scan`].
#[derive(Debug, Clone)]
pub struct ScanRow {
    /// The row's position in the feed (see [`Cursor`]).
    pub position: u128,
    /// The peer the event was applied from; `None` for local appends.
    pub source: Option<String>,
    /// The event.
    pub event: Event,
}

/// Builds a [`Page`] for [`EventStore::load`](crate::EventStore::load) from a
/// raw scan, so that every store pages, filters, checks cursors and reports
/// `has_more` the same way.
///
/// `head` reads the store's head position; it is awaited only when the scan
/// finds nothing after the cursor, to tell the end of the feed from a
/// cursor past it. Such a cursor was not handed out by this store as it is
/// now (it was restored from an older copy, say) and is refused with
/// [`Error::CursorPastHead`], never answered with an empty page. (Positions
/// only grow, so the head read after the scan is at least the one the scan
/// saw.) `scan(after, n)` must return up to `n` rows
/// with positions above `after`, in feed order. Scanning stops when `limit`
/// events matched, when the page holds [`MAX_PAGE_BYTES`], or after a budget
/// of rows (so a very selective filter gives short pages, never a long
/// stall); `next` always moves past every row examined.
pub async fn page_from_scan<F, Fut>(
    store: NodeId,
    after: &Cursor,
    limit: usize,
    filter: &Filter,
    skip_source: Option<&str>,
    head: impl Future<Output = Result<u128>>,
    mut scan: F,
) -> Result<Page>
where
    F: FnMut(u128, usize) -> Fut,
    Fut: Future<Output = Result<Vec<ScanRow>>>,
{
    if limit == 0 {
        return Err(Error::invalid("page limit must be at least 1"));
    }
    let start = after.position_for(store)?;
    let (mut last, mut head) = (start, Some(head));
    let budget = limit.saturating_mul(16).max(4096);
    let (mut scanned, mut bytes) = (0usize, 0usize);
    let mut events = Vec::new();
    loop {
        let chunk = (limit - events.len()).min(budget - scanned).min(MAX_SCAN_ROWS).saturating_add(1);
        let rows = scan(last, chunk).await?;
        if let Some(head) = head.take().filter(|_| rows.is_empty() && start > 0) {
            let head = head.await?;
            if start > head {
                return Err(Error::CursorPastHead {
                    cursor: after.to_string(),
                    head: Cursor::new(store, head).to_string(),
                });
            }
            return Ok(Page { events, next: *after, has_more: false });
        }
        let exhausted = rows.len() < chunk;
        for row in rows {
            if events.len() == limit || scanned == budget || bytes >= MAX_PAGE_BYTES {
                return Ok(Page { events, next: Cursor::new(store, last), has_more: true });
            }
            scanned += 1;
            last = row.position;
            let from_skipped = skip_source.is_some() && row.source.as_deref() == skip_source;
            if !from_skipped && filter.matches(&row.event) {
                bytes += row.event.approx_size();
                events.push(row.event);
            }
        }
        if exhausted {
            return Ok(Page { events, next: Cursor::new(store, last), has_more: false });
        }
    }
}

/// Tells waiters that a store's feed moved: what a store returns from
/// [`EventStore::wait_past`](crate::EventStore::wait_past). Clones share one
/// signal; a store keeps one for all its handles in the process and calls
/// [`FeedSignal::advance`] after every commit that adds events. A store that
/// learns of other processes' writes (PostgreSQL's `LISTEN`) advances it
/// from there too.
///
/// ```
/// use sync_core::raw::FeedSignal;
/// use sync_core::{Cursor, NodeId};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = NodeId::random();
/// let signal = FeedSignal::new(store, 0);
/// let waiter = tokio::spawn({
///     let signal = signal.clone();
///     async move { signal.wait_past(&Cursor::START).await }
/// });
/// signal.advance(1); // a commit added the event at position 1
/// waiter.await.unwrap()?;
/// assert_eq!(signal.head(), Cursor::new(store, 1));
/// # Ok::<_, sync_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct FeedSignal {
    store: NodeId,
    head: Arc<watch::Sender<u128>>,
}

impl FeedSignal {
    /// A signal for `store`, whose feed now reaches `head`.
    pub fn new(store: NodeId, head: u128) -> Self {
        FeedSignal { store, head: Arc::new(watch::Sender::new(head)) }
    }

    /// Records that the feed reaches `head` and wakes whoever waits for
    /// less. A lower position than the current one is ignored.
    pub fn advance(&self, head: u128) {
        self.head.send_if_modified(|current| {
            let moved = head > *current;
            if moved {
                *current = head;
            }
            moved
        });
    }

    /// The head as last advanced.
    pub fn head(&self) -> Cursor {
        Cursor::new(self.store, *self.head.borrow())
    }

    /// Resolves once the feed holds an event after `after`: at once if it
    /// already does. A cursor of another store is an error.
    pub async fn wait_past(&self, after: &Cursor) -> Result<()> {
        let after = after.position_for(self.store)?;
        let mut head = self.head.subscribe();
        // The sender lives as long as `self`, so the wait cannot see it closed.
        let _ = head.wait_for(|head| *head > after).await;
        Ok(())
    }
}
