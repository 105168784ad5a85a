//! The `synckit` binary end to end: real processes, files and sockets.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

fn synckit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synckit")).args(args).output().expect("run synckit")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(store: &str, tokens: Option<&str>) -> Server {
    let mut args = vec!["serve", "--store", store, "--listen", "127.0.0.1:0"];
    if let Some(t) = tokens {
        args.extend(["--tokens", t]);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_synckit"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    Server(child, url)
}

#[test]
fn demo_runs_and_converges() {
    let out = stdout(&synckit(&["demo"]));
    assert!(out.contains("conflict on title.set"), "{out}");
    assert!(out.contains("converged: both hold the same 4 events"), "{out}");
    // no arguments means the demo
    assert!(stdout(&synckit(&[])).contains("converged"));
}

#[test]
fn append_sync_log_status_between_two_stores() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&format!("redb:{}", dir.path().join("server.redb").display()), None);
    let a = format!("sqlite:{}", dir.path().join("a.db").display());
    let b = format!("redb:{}", dir.path().join("b.redb").display());

    let out = stdout(&synckit(&[
        "append",
        "--store",
        &a,
        "--kind",
        "todo.added",
        "--aggregate",
        "todo-1",
        "--data",
        "milk",
        "--meta",
        "tenant=acme",
    ]));
    assert!(out.starts_with("appended "), "{out}");
    stdout(&synckit(&[
        "append",
        "--store",
        &a,
        "--kind",
        "todo.added",
        "--aggregate",
        "todo-2",
        "--data",
        "bulk",
        "--count",
        "2500",
    ]));

    let status = stdout(&synckit(&["status", "--store", &a, "--server", &server.1]));
    assert!(status.contains("waiting to push: 2501 events"), "{status}");

    let out =
        stdout(&synckit(&["sync", "--store", &a, "--server", &server.1, "--codec", "json", "--compression", "gzip"]));
    assert!(out.starts_with("pushed 2501 (already there: 0), pulled 0"), "{out}");
    let status = stdout(&synckit(&["status", "--store", &a, "--server", &server.1]));
    assert!(status.contains("waiting to push: 0 events"), "{status}");
    // Another spelling of the same server: the same checkpoint.
    let by_name = server.1.replace("127.0.0.1", "localhost");
    let status = stdout(&synckit(&["status", "--store", &a, "--server", &by_name]));
    assert!(status.contains("waiting to push: 0 events"), "{status}");

    let out = stdout(&synckit(&["sync", "--store", &b, "--server", &server.1, "--batch-size", "100"]));
    assert!(out.starts_with("pushed 0 (already there: 0), pulled 2501"), "{out}");

    let log = stdout(&synckit(&["log", "--store", &b, "--aggregate", "todo-1"]));
    assert!(log.contains("milk") && log.contains("1 events, 0 conflicts"), "{log}");
    let json = stdout(&synckit(&["log", "--store", &b, "--limit", "3", "--json"]));
    let lines: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    // Feed order is kept per aggregate only (pushes of other aggregates may
    // overtake): look the event up.
    let json = stdout(&synckit(&["log", "--store", &b, "--limit", "3000", "--json"]));
    let todo = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["aggregate_id"] == "todo-1")
        .expect("todo-1 was pulled");
    assert_eq!(todo["metadata"]["tenant"], "acme");
}

#[test]
fn tokens_are_enforced_by_serve() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.json");
    std::fs::write(&tokens, r#"{"s3cret": {"name": "alice", "aggregate_prefixes": ["todo-"]}}"#).unwrap();
    let server = serve("memory:", Some(tokens.to_str().unwrap()));
    let a = format!("sqlite:{}", dir.path().join("a.db").display());
    stdout(&synckit(&["append", "--store", &a, "--kind", "k", "--aggregate", "todo-1"]));
    stdout(&synckit(&["append", "--store", &a, "--kind", "k", "--aggregate", "secret-1"]));

    let denied = synckit(&["sync", "--store", &a, "--server", &server.1]);
    assert!(!denied.status.success());
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(err.contains("unauthorized"), "{err}");

    let out = stdout(&synckit(&["sync", "--store", &a, "--server", &server.1, "--token", "s3cret"]));
    assert!(out.contains("pushed 1") && out.contains("rejected 1"), "{out}");
    assert!(out.contains("forbidden"), "{out}");
}

#[test]
fn bad_arguments_are_explained() {
    let out = synckit(&["append", "--store", "memory:", "--kind", "k", "--aggregate", "a"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a store that outlives the command"));
    let out = synckit(&["log", "--store", "nosuch"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected sqlite:PATH, redb:PATH or memory:"));
    let dir = tempfile::tempdir().unwrap();
    let a = format!("sqlite:{}", dir.path().join("a.db").display());
    let out = synckit(&["append", "--store", &a, "--kind", "k", "--aggregate", ""]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("aggregate id is empty"));
}
