//! Shrinking: a failing seed of `hw-truncation` shrinks to a plan with fewer faults and
//! fewer operations that still fails with the same anomaly kind, and its replay file
//! round-trips through JSON and replays to the same result.

mod common;

use sim::shrink::{self, ReplayFile};

#[test]
fn a_failing_hw_truncation_seed_shrinks_and_replays() {
    let opts = common::options("broker-failure", 0, &["hw-truncation"]);
    let shrunk = shrink::shrink(&opts, 150)
        .expect("valid options")
        .expect("seed 0 of broker-failure fails with hw-truncation");
    assert!(
        shrunk.shrunk.faults < shrunk.original.faults,
        "fewer faults"
    );
    assert!(
        shrunk.shrunk.operations < shrunk.original.operations,
        "fewer operations"
    );
    assert!(shrunk.runs <= 151);

    let file = ReplayFile::from_options(&shrunk.options).expect("a shrunk run has a plan");
    let json = serde_json::to_string_pretty(&file).expect("serializable");
    let back: ReplayFile = serde_json::from_str(&json).expect("deserializable");
    assert_eq!(back, file);

    let replayed = common::run(&back.into_options());
    assert!(
        replayed
            .anomalies
            .iter()
            .any(|a| !a.allowed && a.kind == shrunk.kind),
        "the replay still fails with {}",
        shrunk.kind
    );
    let again = common::run(&shrunk.options);
    assert_eq!(
        replayed.trace_hash, again.trace_hash,
        "a replay is deterministic"
    );
}

#[test]
fn a_passing_run_has_nothing_to_shrink() {
    let opts = common::options("broker-failure", 0, &[]);
    assert!(shrink::shrink(&opts, 10).expect("valid options").is_none());
}

#[test]
fn an_impossible_plan_is_a_setup_error() {
    let mut file = ReplayFile::from_options(&sim::run::RunOptions {
        plan: Some(sim::run::RunPlan {
            faults: Vec::new(),
            workload: scenarios::Workload {
                consumers: 0,
                ..scenarios::Workload::default()
            },
            phases: scenarios::by_name("broker-failure").expect("exists").phases,
        }),
        ..common::options("broker-failure", 0, &[])
    })
    .expect("has a plan");
    file.seed = 1;
    let error = sim::run::run(&file.into_options()).expect_err("zero consumers is refused");
    assert!(error.0.contains("consumers"), "{error}");
}

#[test]
fn a_plan_with_app_instances_needs_the_transaction_topics() {
    // A replay file may carry any workload: consume-transform-produce instances in a
    // scenario without processed-orders and the internal topics are refused, not run.
    let scenario = scenarios::by_name("broker-failure").expect("known scenario");
    let mut plan = sim::run::draw_plan(&scenario, &scenario.config, 0);
    plan.workload.apps = 2;
    let opts = sim::run::RunOptions {
        plan: Some(plan),
        ..common::options("broker-failure", 0, &[])
    };
    let error = sim::run::run(&opts).expect_err("an invalid plan is refused");
    assert!(error.0.starts_with("invalid run plan: apps"), "{}", error.0);
}
