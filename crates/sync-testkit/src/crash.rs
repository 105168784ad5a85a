//! A harness for crash tests: the test re-runs its own binary as a child
//! process that writes to a store and reports what was acknowledged, kills
//! the child with SIGKILL (no destructor, no flush, no close), and checks
//! the store afterwards. The store suite's crash case uses it, and store
//! crates use it for their own durability options.
//!
//! ```no_run
//! use sync_testkit::crash;
//! #[test]
//! fn writer_survives_kill_9() {
//!     if let Some(path) = crash::child_arg() {
//!         // In the child: open the store at `path`, append, and after each
//!         // acknowledged batch call `crash::report_acked(&ids)`.
//!         return;
//!     }
//!     let acked = crash::run_until_killed("writer_survives_kill_9", "/tmp/store.db", |acks, _| acks >= 100);
//!     // Reopen /tmp/store.db and check that every id in `acked` is there.
//! # let _ = acked;
//! }
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use sync_core::EventId;

/// The environment variable that carries the parent's argument to the child.
const CHILD: &str = "SYNCKIT_TESTKIT_CRASH_CHILD";
const ACK: &str = "synckit-ack ";

/// The argument given to [`run_until_killed`] when this process is its
/// child; `None` in an ordinary test run.
pub fn child_arg() -> Option<String> {
    std::env::var(CHILD).ok()
}

/// In the child: reports ids whose write was acknowledged, as one line
/// written straight to stdout and flushed, so a line exists only after the
/// acknowledgement.
pub fn report_acked(ids: &[EventId]) {
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    report(&format!("{ACK}{}", ids.join(",")));
}

/// In the child: reports a line of its own (a phase reached, say), which the
/// parent's `enough` sees.
pub fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    // libtest may have printed `test name ... ` without a newline.
    writeln!(out, "\n{line}").expect("the parent is gone");
    out.flush().expect("the parent is gone");
}

/// Runs the test `test` (its path as libtest names it) of the current test
/// binary as a child with `arg`, reads its reports until `enough(acked ids,
/// line)` holds, kills it with SIGKILL, and returns every id it reported
/// acknowledged, including lines still in the pipe at the kill.
///
/// Panics if the child ends before `enough` holds.
pub fn run_until_killed(test: &str, arg: &str, mut enough: impl FnMut(usize, &str) -> bool) -> Vec<EventId> {
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, arg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let mut lines = BufReader::new(child.stdout.take().expect("child stdout")).lines();
    let mut acked = Vec::new();
    let read = |line: &str, acked: &mut Vec<EventId>| {
        if let Some(ids) = line.strip_prefix(ACK) {
            acked.extend(ids.split(',').filter(|s| !s.is_empty()).map(|id| id.parse::<EventId>().expect("event id")));
        }
    };
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| {
                panic!("the child ended before it was killed, after {} acks (see its stderr)", acked.len())
            })
            .expect("read child stdout");
        read(&line, &mut acked);
        if enough(acked.len(), &line) {
            break;
        }
    }
    // std's kill is SIGKILL on Unix.
    child.kill().expect("kill the child");
    let status = child.wait().expect("wait for the child");
    assert!(!status.success(), "the child was killed, not finished");
    for line in lines {
        read(&line.expect("read child stdout"), &mut acked);
    }
    acked
}
