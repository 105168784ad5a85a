//! Conformance suites for synckit backends.
//!
//! - [`store_suite!`] checks an [`EventStore`](sync_core::EventStore) against
//!   the store contract (dedup, cursors, filters, checkpoints, atomic batches,
//!   concurrent writers, change-feed wake-ups, and a `kill -9` crash case run
//!   in a child process through [`crash`]). A store declares what it cannot
//!   do with [`StoreFactory::lacks`].
//! - [`transport_suite!`] checks a client [`Transport`](sync_core::Transport)
//!   and its server half against the protocol contract (round trip, paging,
//!   resume, duplicates, filters, error codes).
//!
//! A store crate runs the whole store suite with one line in a test file:
//!
//! ```text
//! // tests/conformance.rs
//! sync_testkit::store_suite!(my_store::testing::Factory::new());
//! ```
//!
//! where the factory implements [`StoreFactory`]. Each case becomes its own
//! `#[test]`, so failures name the broken rule.

pub mod crash;
mod in_process;
pub mod store_suite;
pub mod transport_suite;

pub use in_process::{FlakyTransport, InProcessTransport};
pub use store_suite::{Capability, StoreFactory};
pub use transport_suite::TransportFactory;

/// The test path libtest gives `case` in the module `module` (as
/// `module_path!()` spells it, crate name first).
#[doc(hidden)]
pub fn __test_path(module: &str, case: &str) -> String {
    match module.split_once("::") {
        Some((_crate, path)) => format!("{path}::{case}"),
        None => case.to_owned(),
    }
}

#[doc(hidden)]
pub fn __run<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// Expands to one `#[test]` per rule of the [`EventStore`](sync_core::EventStore)
/// contract, each run against stores made by the given [`StoreFactory`].
#[macro_export]
macro_rules! store_suite {
    ($factory:expr) => {
        $crate::store_suite!(@cases $factory;
            node_id_is_kept_across_reopen,
            append_stamps_dots_clocks_and_hlc,
            duplicates_are_reported_and_not_stored,
            outcomes_say_where_the_batch_landed,
            cursor_pages_return_every_event_once_in_order,
            bad_cursors_and_limits_are_rejected,
            pages_of_large_events_are_bounded_in_bytes,
            filters_select_events,
            skip_source_leaves_out_events_from_that_peer,
            load_aggregate_returns_one_aggregate,
            wait_past_wakes_on_writes,
            checkpoints_are_per_peer_and_durable,
            version_vector_tracks_every_origin,
            apply_keeps_the_header_and_merges_clocks,
            apply_reports_concurrent_events,
            rejected_batch_writes_nothing,
            concurrent_appends_while_paging_lose_nothing,
            events_survive_reopen,
        );
        #[test]
        fn acknowledged_batches_survive_kill_9() {
            let test = $crate::__test_path(module_path!(), "acknowledged_batches_survive_kill_9");
            $crate::__run(async {
                let factory = $factory;
                $crate::store_suite::acknowledged_batches_survive_kill_9(&factory, &test).await
            });
        }
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::__run(async {
                    let factory = $factory;
                    $crate::store_suite::$case(&factory).await
                });
            }
        )*
    };
}
