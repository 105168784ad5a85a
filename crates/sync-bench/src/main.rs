//! synckit benchmarks. `cargo xtask bench [NAME]` runs this program in
//! release mode: one benchmark by name, or all of them without a name. Each
//! prints a table and writes `target/bench/NAME.json` (see [`report`]).
//!
//! Benchmarks are programs, never timed assertions inside tests: the figures
//! depend on the machine, so they are reported, not checked.

mod append;
mod report;
mod sync;

use std::process::ExitCode;

/// Errors end the benchmark with a message; there is nothing to recover.
type BoxResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// A benchmark: runs, prints its table and writes its JSON report.
type Bench = fn() -> BoxResult;

/// Every benchmark, by name, in the order a full run takes them.
const BENCHES: &[(&str, Bench)] = &[("append", append::run), ("sync", sync::run)];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let names: Vec<&str> = BENCHES.iter().map(|(name, _)| *name).collect();
    let selected: Vec<_> = match args.as_slice() {
        [] => BENCHES.iter().collect(),
        [name] => match BENCHES.iter().find(|(n, _)| n == name) {
            Some(bench) => vec![bench],
            None => {
                eprintln!("sync-bench: no benchmark {name:?}; known: {}", names.join(", "));
                return ExitCode::FAILURE;
            }
        },
        _ => {
            eprintln!("usage: sync-bench [NAME]   (known: {})", names.join(", "));
            return ExitCode::FAILURE;
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("sync-bench: warning: debug build, figures mean little; use `cargo xtask bench`");
    }
    for (name, run) in selected {
        println!("== bench {name}");
        if let Err(e) = run() {
            eprintln!("sync-bench {name}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
