//! Helpers shared by the integration tests: run a range of seeds of one scenario through
//! the library API (`sim::run::run`), in parallel, and reduce each run to what a test
//! needs before the next one starts (histories and traces can be large).

#![allow(dead_code)]

use rayon::prelude::*;
use sim::run::{RunOptions, RunResult};

/// Options for one seed of `scenario` with `bugs` switched on.
pub fn options(scenario: &str, seed: u64, bugs: &[&str]) -> RunOptions {
    RunOptions {
        scenario: scenario.to_string(),
        seed,
        bugs: bugs.iter().map(|bug| bug.to_string()).collect(),
        ..RunOptions::default()
    }
}

/// Runs one configured seed; a setup error is a test failure.
pub fn run(opts: &RunOptions) -> RunResult {
    sim::run::run(opts).unwrap_or_else(|error| {
        panic!(
            "setup of {} seed {} failed: {error}",
            opts.scenario, opts.seed
        )
    })
}

/// Runs every seed of `seeds` (built by `make`), reducing each result with `reduce`;
/// the results come back in seed order.
pub fn run_seeds<T, M, R>(seeds: std::ops::Range<u64>, make: M, reduce: R) -> Vec<T>
where
    T: Send,
    M: Fn(u64) -> RunOptions + Sync,
    R: Fn(RunResult) -> T + Sync,
{
    seeds
        .collect::<Vec<u64>>()
        .into_par_iter()
        .map(|seed| reduce(run(&make(seed))))
        .collect()
}

/// The forbidden anomalies of a run, as `kind partition: detail` lines.
pub fn forbidden(result: &RunResult) -> Vec<String> {
    result
        .anomalies
        .iter()
        .filter(|anomaly| !anomaly.allowed)
        .map(|anomaly| {
            format!(
                "{} {}: {}",
                anomaly.kind,
                anomaly.partition.as_deref().unwrap_or("-"),
                anomaly.detail
            )
        })
        .collect()
}

/// The reproduce command for a seed, for assertion messages.
pub fn repro(scenario: &str, seed: u64, bugs: &[&str]) -> String {
    let mut line = format!("cargo run --release -p sim -- --seed {seed} --scenario {scenario}");
    for bug in bugs {
        line.push_str(&format!(" --bug {bug}"));
    }
    line
}
