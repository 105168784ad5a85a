//! `cargo xtask`: the project's automation, written in Rust so that it runs
//! wherever cargo does (rust-analyzer's pattern). Every command prints each
//! step before it runs and stops at the first failure with a non-zero exit.
//!
//! - `cargo xtask test`: format check, clippy with `-D warnings` (and on
//!   each feature of `sync-transport-http` alone), the tests (cargo-nextest
//!   when installed) and the doctests.
//! - `cargo xtask bench [NAME]`: the release-mode benchmarks of
//!   `crates/sync-bench` (all of them without NAME); each prints a table and
//!   writes `target/bench/NAME.json`.
//! - `cargo xtask ci`: exactly what CI runs: `test`, `cargo deny`, then every
//!   example crate under `examples/`.

use std::env;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use serde_json::Value;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test          fmt --check, clippy -D warnings, tests (nextest if installed), doctests
  bench [NAME]  run the sync-bench benchmarks in release mode (all without NAME)
  ci            what CI runs: test, cargo deny, every example under examples/";

/// The error of a step: a message for the user.
type Result<T = (), E = String> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["test"] => test(),
        ["bench"] => bench(None),
        ["bench", name] => bench(Some(name)),
        ["ci"] => ci(),
        ["help" | "-h" | "--help"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn test() -> Result {
    run(cargo(&["fmt", "--all", "--check"]))?;
    run(cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    // Each half of the HTTP crate builds alone: a client-only user compiles
    // no server.
    for feature in ["client", "server"] {
        let args = ["clippy", "-p", "sync-transport-http", "--no-default-features", "--features", feature];
        run(cargo(&[&args[..], &["--", "-D", "warnings"]].concat()))?;
    }
    if has_cargo_subcommand("nextest") {
        run(cargo(&["nextest", "run", "--workspace"]))?;
    } else {
        println!("xtask: cargo-nextest is not installed, using cargo test");
        // The same targets nextest runs; doctests follow as their own step.
        run(cargo(&["test", "--workspace", "--lib", "--bins", "--tests"]))?;
    }
    run(cargo(&["test", "--workspace", "--doc"]))
}

fn bench(name: Option<&str>) -> Result {
    let mut cmd = cargo(&["run", "--release", "--package", "sync-bench", "--"]);
    cmd.args(name);
    run(cmd)
}

fn ci() -> Result {
    test()?;
    deny()?;
    examples()?;
    println!("xtask: ci passed");
    Ok(())
}

/// Dependency policy from `deny.toml`.
///
/// `advisories` is left out by default: it fetches the RustSec database from
/// GitHub, and our CI machines reach only package registries. Set
/// `XTASK_DENY_ADVISORIES=1` where GitHub is reachable to check it too.
fn deny() -> Result {
    if !has_cargo_subcommand("deny") {
        if env::var("CI").is_ok_and(|v| v == "true") {
            run(cargo(&["install", "--locked", "cargo-deny"]))?;
        } else {
            println!("xtask: skipping cargo deny: not installed (cargo install --locked cargo-deny)");
            return Ok(());
        }
    }
    let mut cmd = cargo(&["deny", "check", "bans", "licenses", "sources"]);
    if env::var("XTASK_DENY_ADVISORIES").is_ok_and(|v| v == "1") {
        cmd.arg("advisories");
    }
    run(cmd)
}

/// Runs every binary of every workspace package whose manifest lives under
/// `examples/`.
fn examples() -> Result {
    let metadata = cargo_metadata()?;
    let examples_dir = Path::new(metadata["workspace_root"].as_str().unwrap_or_default()).join("examples");
    let mut ran = 0;
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let manifest = Path::new(package["manifest_path"].as_str().unwrap_or_default());
        if !manifest.starts_with(&examples_dir) {
            continue;
        }
        let name = package["name"].as_str().unwrap_or_default();
        let bins = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["kind"].as_array().is_some_and(|k| k.contains(&"bin".into())))
            .filter_map(|t| t["name"].as_str());
        for bin in bins {
            run(cargo(&["run", "--package", name, "--bin", bin]))?;
            ran += 1;
        }
    }
    println!("xtask: ran {ran} example binaries");
    Ok(())
}

/// `cargo metadata` for the workspace members only.
fn cargo_metadata() -> Result<Value> {
    let output = cargo(&["metadata", "--format-version", "1", "--no-deps"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo metadata failed ({})", output.status));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("cargo metadata output: {e}"))
}

/// A cargo command run from the workspace root, with the cargo that runs xtask.
fn cargo(args: &[&str]) -> Command {
    let program = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(workspace_root());
    cmd
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn has_cargo_subcommand(name: &str) -> bool {
    cargo(&[name, "--version"]).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Runs one step, printing it first and its duration after.
fn run(mut cmd: Command) -> Result {
    let line = std::iter::once("cargo".to_owned())
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ");
    println!("\n==> {line}");
    // Our line must come before the child's output when both go to a pipe.
    std::io::stdout().flush().ok();
    let start = Instant::now();
    let status = cmd.status().map_err(|e| format!("cannot start `{line}`: {e}"))?;
    if !status.success() {
        return Err(format!("`{line}` failed ({status})"));
    }
    println!("==> ok in {:.1}s: {line}", start.elapsed().as_secs_f64());
    Ok(())
}
