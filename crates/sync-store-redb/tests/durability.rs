//! What redb's durability options do across `kill -9`. The store suite's
//! crash case (tests/conformance.rs) checks the default; these tests check
//! `Durability::None` and `close`, with the child-process harness of
//! `sync_testkit::crash`.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use sync_core::{Cursor, EventId, EventStore, Filter, NewEvent};
use sync_store_redb::{Durability, RedbConfig, RedbStore};
use sync_testkit::crash;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

/// In a child of `crash::run_until_killed` (argument `<mode> <path>`):
/// `none` appends batches of 10 with `Durability::None` until killed,
/// reporting each acknowledged batch; `close` appends 5 such batches,
/// closes the store, reports `closed` and waits to be killed.
fn write_if_child(test: &str) {
    let Some(spec) = crash::child_arg() else {
        return;
    };
    let (mode, path) = spec.split_once(' ').expect("`<mode> <path>`");
    runtime().block_on(async {
        let store = RedbStore::open(RedbConfig::new(path).durability(Durability::None)).await.expect("open");
        let batches = if mode == "close" { 5 } else { 100_000 };
        for b in 0..batches {
            let batch: Vec<NewEvent> =
                (0..10).map(|i| NewEvent::new("crash.test", format!("agg-{}", i % 3), format!("{b}.{i}"))).collect();
            let ids: Vec<EventId> = batch.iter().map(|e| e.id).collect();
            store.append(batch).await.expect("append");
            crash::report_acked(&ids);
        }
        store.close().await.expect("close");
        crash::report("closed");
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    panic!("{test}: the child was not killed");
}

fn write_then_kill(test: &str, mode: &str, path: &Path, enough: impl FnMut(usize, &str) -> bool) -> Vec<EventId> {
    crash::run_until_killed(test, &format!("{mode} {}", path.display()), enough)
}

fn stored_ids(config: RedbConfig) -> (HashSet<EventId>, usize) {
    runtime().block_on(async {
        let store = RedbStore::open(config).await.expect("reopen after kill -9");
        let page = store.load(&Cursor::START, usize::MAX / 32, &Filter::default(), None).await.expect("load");
        let head = store.head().await.expect("head");
        assert_eq!(page.next, head, "the feed ends at the head after recovery");
        // The per-aggregate chains agree with the feed after recovery.
        for aggregate in ["agg-0", "agg-1", "agg-2"] {
            let chain: Vec<EventId> = store
                .load_aggregate(aggregate, &Cursor::START)
                .await
                .expect("load aggregate")
                .iter()
                .map(|e| e.id)
                .collect();
            let in_feed: Vec<EventId> =
                page.events.iter().filter(|e| e.aggregate_id == aggregate).map(|e| e.id).collect();
            assert_eq!(chain, in_feed, "{aggregate}");
        }
        let count = page.events.len();
        (page.events.into_iter().map(|e| e.id).collect(), count)
    })
}

/// `Durability::None` trades invariant 3 for speed: acknowledged commits
/// that were never followed by a durable one are gone after kill -9.
#[test]
fn durability_none_loses_unflushed_commits_on_kill_9() {
    const TEST: &str = "durability_none_loses_unflushed_commits_on_kill_9";
    write_if_child(TEST);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let acked = write_then_kill(TEST, "none", &path, |acks, _| acks >= 500);
    let (stored, _) = stored_ids(RedbConfig::new(&path));
    let kept = acked.iter().filter(|id| stored.contains(id)).count();
    assert!(kept < acked.len(), "expected lost events without fsync, all {kept} survived");
}

/// `close` makes `Durability::None` commits durable.
#[test]
fn close_makes_durability_none_commits_durable() {
    const TEST: &str = "close_makes_durability_none_commits_durable";
    write_if_child(TEST);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let acked = write_then_kill(TEST, "close", &path, |_, line| line == "closed");
    assert_eq!(acked.len(), 50);
    let (stored, _) = stored_ids(RedbConfig::new(&path));
    assert!(acked.iter().all(|id| stored.contains(id)));
}
