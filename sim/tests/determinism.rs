//! Determinism (`design/architecture.md`: same seed, same scenario, same build =>
//! byte-identical history, trace and report): for every scenario in
//! `sim::run::scenario_list()`, a few seeds are run twice with the history and the trace
//! kept, and the two runs must agree line for line, in trace hash, in anomalies and in
//! protocol counts; different seeds must give different traces.
//!
//! That the sweep JSON does not depend on `--jobs` is checked against the binary in
//! `cli.rs` (`sweep_json_does_not_depend_on_jobs`).

mod common;

use std::collections::BTreeMap;

use sim::run::{RunOptions, RunResult};

const SEEDS: [u64; 3] = [0, 1, 7];

fn kept(scenario: &str, seed: u64) -> RunOptions {
    RunOptions {
        keep_history: true,
        keep_trace: true,
        ..common::options(scenario, seed, &[])
    }
}

/// The first line where two line lists differ, for a readable failure.
fn first_difference(first: &[String], second: &[String]) -> Option<String> {
    if let Some(position) = first.iter().zip(second).position(|(a, b)| a != b) {
        return Some(format!(
            "line {position}:\n  first:  {}\n  second: {}",
            first[position], second[position]
        ));
    }
    (first.len() != second.len())
        .then(|| format!("lengths differ: {} vs {}", first.len(), second.len()))
}

fn assert_same_run(first: &RunResult, second: &RunResult) {
    let what = format!("{} seed {}", first.scenario, first.seed);
    let history_one = first.history.as_deref().expect("history kept");
    let history_two = second.history.as_deref().expect("history kept");
    assert!(!history_one.is_empty(), "{what}: empty history");
    if let Some(difference) = first_difference(history_one, history_two) {
        panic!("{what}: the two histories differ at {difference}");
    }
    let trace_one = first.trace.as_deref().expect("trace kept");
    let trace_two = second.trace.as_deref().expect("trace kept");
    assert!(!trace_one.is_empty(), "{what}: empty trace");
    if let Some(difference) = first_difference(trace_one, trace_two) {
        panic!("{what}: the two traces differ at {difference}");
    }
    assert_eq!(first.trace_hash, second.trace_hash, "{what}: trace hash");
    assert_eq!(first.anomalies, second.anomalies, "{what}: anomalies");
    assert_eq!(first.ok, second.ok, "{what}: verdict");
    assert_eq!(first.events, second.events, "{what}: event count");
    assert_eq!(
        first.sim_time_ms, second.sim_time_ms,
        "{what}: simulated time"
    );
    assert_eq!(first.ops, second.ops, "{what}: op counts");
    assert_eq!(first.stats, second.stats, "{what}: protocol counts");
}

#[test]
fn every_scenario_repeats_itself_exactly() {
    let scenarios = sim::run::scenario_list();
    assert!(
        scenarios.len() >= 6,
        "expected the six replication scenarios, got {scenarios:?}"
    );
    for (scenario, _) in scenarios {
        // seed -> trace hash, to compare across seeds below.
        let mut hashes: BTreeMap<u64, String> = BTreeMap::new();
        for seed in SEEDS {
            let first = common::run(&kept(scenario, seed));
            let second = common::run(&kept(scenario, seed));
            assert_same_run(&first, &second);
            hashes.insert(seed, first.trace_hash.clone());
        }
        let distinct: std::collections::BTreeSet<&String> = hashes.values().collect();
        assert_eq!(
            distinct.len(),
            SEEDS.len(),
            "{scenario}: different seeds gave the same trace hash: {hashes:?}"
        );
    }
}

#[test]
fn keeping_the_trace_does_not_change_the_run() {
    // The trace hash is computed whether or not the trace is kept; keeping the history
    // and the trace must not perturb the run itself.
    for (scenario, _) in sim::run::scenario_list() {
        let bare = common::run(&common::options(scenario, 3, &[]));
        let full = common::run(&kept(scenario, 3));
        assert!(bare.history.is_none() && bare.trace.is_none());
        assert_eq!(bare.trace_hash, full.trace_hash, "{scenario} seed 3");
        assert_eq!(bare.events, full.events, "{scenario} seed 3");
        assert_eq!(bare.anomalies, full.anomalies, "{scenario} seed 3");
    }
}

#[test]
fn a_bug_switch_changes_the_run_but_stays_deterministic() {
    let opts = RunOptions {
        bugs: vec!["hw-truncation".to_string()],
        ..kept("broker-failure", 5)
    };
    let first = common::run(&opts);
    let second = common::run(&opts);
    assert_same_run(&first, &second);
    let correct = common::run(&common::options("broker-failure", 5, &[]));
    assert_ne!(
        first.trace_hash, correct.trace_hash,
        "hw-truncation should change what broker-failure seed 5 does"
    );
}
