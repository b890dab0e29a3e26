//! Exactly-once processing (`scenarios.md`): the consume-transform-produce application
//! processes every input once in committed output through instance crashes, stalls
//! past `transaction.timeout.ms` and zombies beside their replacements, under both
//! `processing.guarantee` modes; a produce request held past its transaction's abort
//! never reaches a reader (KIP-890).

mod common;

use sim::run::{RunResult, TxnSummary};

/// What the tests keep of one run.
struct Seen {
    seed: u64,
    ok: bool,
    forbidden: Vec<String>,
    allowed: Vec<String>,
    txns: TxnSummary,
}

fn seen(result: RunResult) -> Seen {
    Seen {
        seed: result.seed,
        ok: result.ok,
        forbidden: common::forbidden(&result),
        allowed: result
            .anomalies
            .iter()
            .filter(|a| a.allowed)
            .map(|a| a.kind.clone())
            .collect(),
        txns: result
            .stats
            .transactions
            .expect("a consume-transform-produce run reports its transactions"),
    }
}

/// Runs `seeds` of `scenario` with the correct broker; every run must pass, commit
/// transactions, write one output per input and hold exactly-once.
fn sweep_ok(scenario: &str, seeds: std::ops::Range<u64>) -> Vec<Seen> {
    let runs = common::run_seeds(seeds, |seed| common::options(scenario, seed, &[]), seen);
    for run in &runs {
        let repro = common::repro(scenario, run.seed, &[]);
        assert!(run.ok, "{repro}: {:?}", run.forbidden);
        let t = run.txns;
        assert!(t.committed > 0, "{repro}: no transaction committed");
        assert!(t.exactly_once_held, "{repro}: exactly-once reported broken");
        assert_eq!(
            t.inputs_consumed, t.outputs_committed,
            "{repro}: one output per input"
        );
        // Kafka does not isolate writes (G0); nothing else is allowed here.
        assert!(
            run.allowed.iter().all(|kind| kind == "G0"),
            "{repro}: {:?}",
            run.allowed
        );
    }
    runs
}

#[test]
fn exactly_once_holds_through_crashes_stalls_and_zombies() {
    let runs = sweep_ok("exactly-once", 0..8);
    let total = |f: fn(&TxnSummary) -> u64| runs.iter().map(|r| f(&r.txns)).sum::<u64>();
    // The faults did their work: instances were replaced, zombies were fenced (by the
    // producer epoch or the group generation) and transactions were aborted.
    assert!(
        runs.iter().any(|r| r.txns.instances > 2),
        "no replacement started"
    );
    assert!(total(|t| t.zombies_fenced) > 0, "no zombie was ever fenced");
    assert!(total(|t| t.aborted) > 0, "no transaction aborted");
}

#[test]
fn exactly_once_alpha_holds_with_producer_fencing_alone() {
    let runs = sweep_ok("exactly-once-alpha", 0..6);
    assert!(runs.iter().map(|r| r.txns.zombies_fenced).sum::<u64>() > 0);
}

#[test]
fn a_produce_held_past_its_abort_never_reaches_a_reader() {
    // Each held request times out, so its transaction is aborted: the transaction log
    // shows aborts, and no reader ever sees the held records (no G1a), nor does the
    // last stable offset stall (no lso-stuck, no unseen).
    let runs = sweep_ok("hanging-transaction", 0..6);
    for run in &runs {
        assert!(
            run.txns.aborted > 0,
            "seed {}: no transaction aborted by a held request",
            run.seed
        );
    }
}
