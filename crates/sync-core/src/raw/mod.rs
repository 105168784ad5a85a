//! The store author's API: what a crate implementing
//! [`EventStore`](crate::EventStore) builds on, apart from what applications
//! use (OpenDAL keeps its backend API under `raw` the same way).
//!
//! A store is the I/O around three pieces:
//!
//! - the batch rule, [`append_plan`] and [`apply_plan`]: given a batch, the
//!   answers of the store's [`Known`] lookups and the time, they return the
//!   [`Plan`] to write in one transaction (rows, aggregate clocks, origin
//!   counters, HLC) and the outcome to answer;
//! - the feed, [`page_from_scan`]: paging, filtering and cursor checks over
//!   the store's raw scan;
//! - the signal, [`FeedSignal`]: wakes whoever waits for the feed to move.
//!
//! [`Ledger`] is the bookkeeping for stores that keep it in memory, and
//! [`Replica`] a whole replica in memory, for tests and simulations.
//!
//! `sync-testkit`'s `store_suite!` checks the result against the contract.

mod batch;
mod feed;
mod ledger;

pub use batch::{Known, Plan, append_plan, apply_plan};
pub use feed::{FeedSignal, ScanRow, page_from_scan};
pub use ledger::{Ledger, Replica};
