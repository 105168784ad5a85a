//! Invariant 3: whatever `append` acknowledged survives `kill -9`.
//!
//! The test re-executes its own binary as a child (`--exact child_writer`
//! with [`CHILD_DB`] set). The child appends batches forever and prints each
//! batch's ids to stdout after `append` returned Ok. The parent reads those
//! acknowledgements, kills the child with SIGKILL at some point, reopens the
//! file and checks that every acknowledged id is there and that no batch was
//! half written.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use sync_core::{Cursor, EventId, EventStore, Filter, NewEvent};
use sync_store_sqlite::{Durability, SqliteConfig, SqliteStore};

/// Set in the child's environment: the database file to write.
const CHILD_DB: &str = "SYNCKIT_SQLITE_DURABILITY_CHILD_DB";
/// Set to `full` in the child's environment for [`Durability::Full`].
const CHILD_DURABILITY: &str = "SYNCKIT_SQLITE_DURABILITY_CHILD_SYNC";
const BATCH: usize = 40;
const ACK: &str = "ACK ";

fn config(path: &Path, durability: Durability) -> SqliteConfig {
    SqliteConfig::new(path).durability(durability)
}

/// The writer half. Run alone (as in a normal test run) it does nothing.
#[test]
fn child_writer() {
    let Some(path) = std::env::var_os(CHILD_DB) else {
        return;
    };
    let durability = match std::env::var(CHILD_DURABILITY).as_deref() {
        Ok("full") => Durability::Full,
        _ => Durability::Normal,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let store = SqliteStore::open(config(Path::new(&path), durability)).await.expect("child: open");
        for n in 0usize.. {
            let batch: Vec<NewEvent> =
                (0..BATCH).map(|i| NewEvent::new("crash.test", format!("doc-{}", i % 7), format!("{n}/{i}"))).collect();
            let ids: Vec<String> = batch.iter().map(|e| e.id.to_string()).collect();
            let out = store.append(batch).await.expect("child: append");
            assert_eq!(out.inserted.len(), BATCH);
            // Written straight to the file descriptor (not through the test
            // harness's capture) and flushed: a line exists only after Ok.
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{ACK}{}", ids.join(",")).expect("child: stdout");
            stdout.flush().expect("child: flush");
        }
    });
}

/// Runs the child until it has acknowledged `kill_after` batches, kills it
/// with SIGKILL, and returns every id it acknowledged (including lines still
/// in the pipe at the kill).
fn crash_child(path: &Path, durability: Durability, kill_after: usize) -> Vec<EventId> {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_DB, path)
        .env(CHILD_DURABILITY, if durability == Durability::Full { "full" } else { "normal" })
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let mut lines = BufReader::new(child.stdout.take().expect("child stdout")).lines();
    let mut acked = Vec::new();
    let mut batches = 0;
    while batches < kill_after {
        let line = lines
            .next()
            .expect("child ended before acknowledging enough batches (see its stderr)")
            .expect("read child stdout");
        if let Some(ids) = line.strip_prefix(ACK) {
            acked.extend(ids.split(',').map(|id| id.parse::<EventId>().expect("id")));
            batches += 1;
        }
    }
    // std's kill is SIGKILL on unix: no destructor, no flush, no close.
    child.kill().expect("kill child");
    let status = child.wait().expect("wait child");
    assert!(!status.success(), "the child was killed, not finished");
    // Acknowledgements already in the pipe were given before the kill.
    for line in lines {
        let line = line.expect("read child stdout");
        if let Some(ids) = line.strip_prefix(ACK) {
            acked.extend(ids.split(',').map(|id| id.parse::<EventId>().expect("id")));
        }
    }
    acked
}

async fn check_after_crashes(durability: Durability) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("crash.db");
    let mut acked_total = HashSet::new();
    let mut node = None;
    for kill_after in [3, 11, 25] {
        let acked = crash_child(&path, durability, kill_after);
        assert!(acked.len() >= kill_after * BATCH);
        acked_total.extend(acked);

        let store = SqliteStore::open(config(&path, durability)).await.expect("reopen after kill");
        assert_eq!(*node.get_or_insert(store.node_id()), store.node_id());
        let page = store.load(&Cursor::START, usize::MAX / 32, &Filter::default(), None).await.expect("load");
        let stored: HashSet<EventId> = page.events.iter().map(|e| e.id).collect();
        eprintln!(
            "{durability:?}: killed after {kill_after} acknowledged batches; {} ids acknowledged in all, {} stored",
            acked_total.len(),
            stored.len()
        );
        let lost: Vec<_> = acked_total.difference(&stored).collect();
        assert!(lost.is_empty(), "{} acknowledged events lost after kill -9, e.g. {:?}", lost.len(), lost.first());
        assert_eq!(page.events.len() % BATCH, 0, "a batch was half written: {} events", page.events.len());
        let counters: Vec<u64> = page.events.iter().map(|e| e.origin.counter).collect();
        let dense: Vec<u64> = (1..=page.events.len() as u64).collect();
        assert_eq!(counters, dense, "counters stay dense across crashes");
        assert_eq!(store.head().await.expect("head"), Cursor::new(store.node_id(), page.events.len() as u64));
        store.close().await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_batches_survive_kill_9() {
    check_after_crashes(Durability::Normal).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_batches_survive_kill_9_with_full_sync() {
    check_after_crashes(Durability::Full).await;
}
