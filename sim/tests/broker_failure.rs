//! `broker-failure` (scenarios.md): random hard crashes and restarts of brokers, leaders
//! included. Over seeds 0..50 of the correct broker, every run holds every invariant,
//! and every run actually exercises failover: at least one crash and one leader
//! election, ISR shrinks and re-expansions, and a measured failover time per election
//! that followed a leader loss.

mod common;

use sim::run::RunStats;

const SCENARIO: &str = "broker-failure";
const SEEDS: std::ops::Range<u64> = 0..50;

struct Seen {
    seed: u64,
    ok: bool,
    forbidden: Vec<String>,
    stats: RunStats,
    sends_ok: u64,
}

fn sweep() -> Vec<Seen> {
    common::run_seeds(
        SEEDS,
        |seed| common::options(SCENARIO, seed, &[]),
        |result| Seen {
            seed: result.seed,
            ok: result.ok,
            forbidden: common::forbidden(&result),
            sends_ok: result
                .ops
                .get("send")
                .and_then(|outcomes| outcomes.get("ok"))
                .copied()
                .unwrap_or(0),
            stats: result.stats,
        },
    )
}

#[test]
fn failover_loses_nothing_and_is_measured() {
    let runs = sweep();
    assert_eq!(runs.len() as u64, SEEDS.end - SEEDS.start);
    let mut problems = Vec::new();
    let mut shrinks = 0;
    let mut expands = 0;
    for run in &runs {
        let repro = common::repro(SCENARIO, run.seed, &[]);
        if !run.ok {
            problems.push(format!(
                "seed {} not ok ({repro}): {:?}",
                run.seed, run.forbidden
            ));
        }
        if run.stats.crashes == 0 {
            problems.push(format!("seed {}: no crash ({repro})", run.seed));
        }
        if run.stats.restarts == 0 {
            problems.push(format!("seed {}: no restart ({repro})", run.seed));
        }
        if run.stats.leader_elections == 0 {
            problems.push(format!("seed {}: no leader election ({repro})", run.seed));
        }
        if run.stats.failover_ms.is_empty() {
            problems.push(format!(
                "seed {}: no failover time recorded ({repro})",
                run.seed
            ));
        }
        if run.sends_ok == 0 {
            problems.push(format!("seed {}: no acknowledged send ({repro})", run.seed));
        }
        // A failover takes at least a network round trip and at most the broker session
        // timeout plus a heartbeat or two (9 s + 2 s); allow generous slack.
        for &ms in &run.stats.failover_ms {
            if ms == 0 || ms > 60_000 {
                problems.push(format!(
                    "seed {}: implausible failover time {ms} ms ({repro})",
                    run.seed
                ));
            }
        }
        shrinks += run.stats.isr_shrinks;
        expands += run.stats.isr_expands;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(shrinks > 0, "no ISR shrink in any seed");
    assert!(expands > 0, "no ISR expansion in any seed");
    let with_both = runs
        .iter()
        .filter(|run| run.stats.isr_shrinks > 0 && run.stats.isr_expands > 0)
        .count();
    assert!(
        with_both * 2 >= runs.len(),
        "only {with_both} of {} seeds both shrank and re-expanded an ISR",
        runs.len()
    );
}
