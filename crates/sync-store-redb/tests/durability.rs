//! Crash tests: a child process appends and reports every acknowledged
//! event, the test kills it with SIGKILL and reopens the file.
//!
//! The child is this same test binary, re-run with `--exact child_writer`
//! and the environment variable [`CHILD`] set to `<mode> <path>`.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use sync_core::{Cursor, EventId, EventStore, Filter, NewEvent};
use sync_store_redb::{Durability, RedbConfig, RedbStore};

const CHILD: &str = "SYNCKIT_REDB_CRASH_CHILD";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

/// The writer process of the tests below; returns at once when run as an
/// ordinary test.
///
/// Modes: `immediate` / `none` append batches of 10 until killed, printing
/// `ack <id>` for every event of each batch whose append returned Ok.
/// `close` appends 5 batches with `Durability::None`, closes the store,
/// prints `closed` and waits to be killed.
#[test]
fn child_writer() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let (mode, path) = spec.split_once(' ').expect("`<mode> <path>`");
    let durability = match mode {
        "immediate" => Durability::Immediate,
        _ => Durability::None,
    };
    runtime().block_on(async {
        let config = RedbConfig::new(path).with_durability(durability);
        let store = RedbStore::open(config).await.expect("open");
        let batches = if mode == "close" { 5 } else { 100_000 };
        let mut out = std::io::stdout().lock();
        // libtest has printed `test child_writer ... ` without a newline:
        // end that line so every ack starts its own.
        writeln!(out).expect("parent gone");
        for b in 0..batches {
            let batch: Vec<NewEvent> =
                (0..10).map(|i| NewEvent::new("crash.test", format!("agg-{}", i % 3), format!("{b}.{i}"))).collect();
            let ids: Vec<EventId> = batch.iter().map(|e| e.id).collect();
            store.append(batch).await.expect("append");
            for id in ids {
                writeln!(out, "ack {id}").expect("parent gone");
            }
            out.flush().expect("parent gone");
        }
        if mode == "close" {
            store.close().await.expect("close");
            writeln!(out, "closed").expect("parent gone");
            out.flush().expect("parent gone");
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    });
}

/// Starts the writer, reads its acknowledgements until `enough` says so,
/// kills it with SIGKILL and returns the acknowledged ids.
fn write_then_kill(mode: &str, path: &Path, enough: impl Fn(usize, &str) -> bool) -> Vec<EventId> {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD, format!("{mode} {}", path.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn writer");
    let stdout = child.stdout.take().expect("stdout");
    let mut acked = Vec::new();
    let mut stopped = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child output");
        if let Some(id) = line.strip_prefix("ack ") {
            acked.push(id.parse().expect("event id"));
        }
        if enough(acked.len(), &line) {
            stopped = true;
            break;
        }
    }
    // Child::kill sends SIGKILL on Unix: no destructor, no flush, no close.
    child.kill().expect("kill writer");
    let status = child.wait().expect("wait for writer");
    assert!(stopped, "the writer ended on its own ({status}) after {} acks", acked.len());
    acked
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

/// Invariant 3: with the default durability, every acknowledged event is
/// there after the writer is killed mid-stream.
#[test]
fn acknowledged_appends_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let acked = write_then_kill("immediate", &path, |acks, _| acks >= 3_000);
    let (stored, count) = stored_ids(RedbConfig::new(&path));
    assert_eq!(stored.len(), count, "no event stored twice");
    let lost: Vec<_> = acked.iter().filter(|id| !stored.contains(id)).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged events lost", lost.len(), acked.len());
}

/// `Durability::None` trades invariant 3 for speed: acknowledged commits
/// that were never followed by a durable one are gone after kill -9.
#[test]
fn durability_none_loses_unflushed_commits_on_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let acked = write_then_kill("none", &path, |acks, _| acks >= 500);
    let (stored, _) = stored_ids(RedbConfig::new(&path));
    let kept = acked.iter().filter(|id| stored.contains(id)).count();
    assert!(kept < acked.len(), "expected lost events without fsync, all {kept} survived");
}

/// `close` makes `Durability::None` commits durable.
#[test]
fn close_makes_durability_none_commits_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let acked = write_then_kill("close", &path, |_, line| line == "closed");
    assert_eq!(acked.len(), 50);
    let (stored, _) = stored_ids(RedbConfig::new(&path));
    assert!(acked.iter().all(|id| stored.contains(id)));
}
