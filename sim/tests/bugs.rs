//! The checker has teeth (bugs.md): with each reintroduced historical bug switched on,
//! the scenario named for it fails within a small seed range, with the anomaly the bug
//! is known to cause, and the same seed of the correct broker passes (so the failure
//! is the bug's, not the scenario's).

mod common;

use sim::run::RunResult;

/// The first seed of `seeds` on which `scenario` with `bug` fails, with its result.
fn first_failure(scenario: &str, bug: &str, seeds: std::ops::Range<u64>) -> (u64, RunResult) {
    for seed in seeds.clone() {
        let result = common::run(&common::options(scenario, seed, &[bug]));
        if !result.ok {
            return (seed, result);
        }
    }
    panic!("--bug {bug} was not caught by {scenario} in seeds {seeds:?}");
}

/// `bug` is caught by `scenario` within `seeds`, as one of `expected`.
fn caught(scenario: &str, bug: &str, seeds: std::ops::Range<u64>, expected: &[&str]) {
    let (seed, result) = first_failure(scenario, bug, seeds);
    assert_caught_as(scenario, bug, seed, &result, expected);
}

/// Asserts the failing run names `expected` among its forbidden anomalies, and that the
/// same seed without the bug is ok.
fn assert_caught_as(scenario: &str, bug: &str, seed: u64, result: &RunResult, expected: &[&str]) {
    let forbidden: Vec<&str> = result
        .anomalies
        .iter()
        .filter(|anomaly| !anomaly.allowed)
        .map(|anomaly| anomaly.kind.as_str())
        .collect();
    assert!(!forbidden.is_empty(), "not ok but no forbidden anomaly");
    assert!(
        expected.iter().any(|kind| forbidden.contains(kind)),
        "{}: expected one of {expected:?}, got {forbidden:?}",
        common::repro(scenario, seed, &[bug])
    );
    assert_eq!(result.bugs, vec![bug.to_string()]);
    let correct = common::run(&common::options(scenario, seed, &[]));
    assert!(
        correct.ok,
        "{} fails without the bug too: {:?}",
        common::repro(scenario, seed, &[]),
        common::forbidden(&correct)
    );
}

#[test]
fn hw_truncation_is_caught_by_broker_failure() {
    // Before KIP-101 a restarted follower truncated to its local high watermark and
    // could lose a committed record while staying in the ISR.
    caught(
        "broker-failure",
        "hw-truncation",
        0..20,
        &["committed-truncated"],
    );
}

#[test]
fn ignore_min_isr_is_caught_by_min_isr_unavailable() {
    // Before KAFKA-1555 an ISR of just the leader acknowledged acks=all writes.
    caught(
        "min-isr-unavailable",
        "ignore-min-isr",
        0..20,
        &["isr-below-min-acked"],
    );
}

#[test]
fn local_isr_shrink_is_caught_by_network_partition() {
    // A leader that shrinks the ISR without the controller keeps acknowledging alone
    // while isolated, as a new leader is elected on the other side.
    caught(
        "network-partition",
        "local-isr-shrink",
        0..60,
        &[
            "two-leaders",
            "lost-write",
            "inconsistent-offsets",
            "committed-truncated",
            "duplicate",
            "divergent-replicas",
            "nonmonotonic-send",
            "realtime-send-order",
        ],
    );
}

#[test]
fn isr_expand_early_is_caught_by_broker_failure() {
    // KAFKA-7128: a follower that rejoins at the new leader's stale HW, not at the
    // start of its epoch, is an ISR member without every committed record. Caught by
    // broker-failure's lagging-high-watermark failover (the leader's links slowed, its
    // followers cut off from each other, then the leader crashes and restarts).
    caught(
        "broker-failure",
        "isr-expand-early",
        0..100,
        &["committed-truncated", "lost-write"],
    );
}

#[test]
fn every_listed_bug_is_accounted_for_here() {
    // A new switch must get a test in this file.
    let tested = [
        "hw-truncation",
        "ignore-min-isr",
        "local-isr-shrink",
        "unfenced-fetch",
        "skip-truncate-same-leader",
        "no-maximal-isr",
        "hw-regress-on-failover",
        "read-beyond-hw",
        "epoch-lookup-no-lineage",
        "hw-divergence",
        "consumer-no-truncation-detection",
        "stale-controller",
        "isr-expand-early",
        "no-idempotence-dedupe",
        "inflight-reorder",
        "dedup-window-1",
        "no-producer-fencing",
        "hanging-txn",
        "late-write-joins-next-txn",
        "no-txn-offset-generation-fence",
        "no-require-stable",
        "read-uncommitted-leak",
        "no-commit-generation-fence",
        "static-member-duplicate",
        "cooperative-assign-before-revoke",
        "stale-owned-partitions",
    ];
    for (name, _, _) in sim::run::bug_list() {
        assert!(
            tested.contains(&name),
            "bug switch {name} has no test in sim/tests/bugs.rs"
        );
    }
}

#[test]
fn skip_truncate_same_leader_is_caught_by_network_partition() {
    // KAFKA-7164: a follower that sees a new epoch of the same leader keeps its suffix,
    // although the leader's lineage changed in between (leadership A -> B -> A).
    caught(
        "network-partition",
        "skip-truncate-same-leader",
        0..60,
        &["divergent-replicas", "committed-truncated"],
    );
}

#[test]
fn no_maximal_isr_is_caught_by_chaos() {
    // Before KIP-497 the HW could advance past a replica whose ISR addition was pending;
    // once the controller committed the addition, an ISR member lacked committed data.
    caught("chaos", "no-maximal-isr", 0..40, &["committed-truncated"]);
}

#[test]
fn hw_regress_on_failover_is_caught_by_broker_failure() {
    // A new leader that exposes its stale local HW makes the HW go backwards.
    caught(
        "broker-failure",
        "hw-regress-on-failover",
        0..10,
        &["hw-regression"],
    );
}

#[test]
fn read_beyond_hw_is_caught_by_network_partition() {
    // Consumers that read above the HW see records a failover later truncates.
    caught(
        "network-partition",
        "read-beyond-hw",
        0..20,
        &["inconsistent-offsets", "duplicate", "lost-write"],
    );
}

#[test]
fn an_unknown_bug_is_a_setup_error() {
    let error = sim::run::run(&common::options("broker-failure", 0, &["no-such-bug"]))
        .expect_err("an unknown bug name must be rejected");
    assert!(error.0.contains("no-such-bug"), "{error}");
}

#[test]
fn unfenced_fetch_is_caught_by_network_partition() {
    // Before KIP-320 a zombie follower that missed two epoch changes kept fetching
    // from the re-elected leader without truncating its stale tail (KAFKA-6880).
    caught(
        "network-partition",
        "unfenced-fetch",
        0..60,
        &["divergent-replicas", "committed-truncated"],
    );
}

#[test]
fn epoch_lookup_no_lineage_is_caught_by_chaos() {
    // Before KIP-279 the end offset for an epoch came without its epoch: after
    // back-to-back failovers a follower kept records of an epoch the leader never had.
    caught(
        "chaos",
        "epoch-lookup-no-lineage",
        0..80,
        &["divergent-replicas", "committed-truncated"],
    );
}

#[test]
fn hw_divergence_is_caught_by_power_outage() {
    // KIP-101's second scenario: after every broker lost its unsynced tail, a replica
    // that truncates to its checkpointed HW keeps records the new leader lost and
    // then overwrote.
    caught(
        "power-outage",
        "hw-divergence",
        0..40,
        &["divergent-replicas", "no-convergence"],
    );
}

#[test]
fn consumer_no_truncation_detection_is_caught_by_unclean_election() {
    // Before KIP-320's client side the consumer did not notice the truncation an unclean
    // election causes: its reset went unrecorded and its reads stepped back.
    caught(
        "unclean-election",
        "consumer-no-truncation-detection",
        0..10,
        &["nonmonotonic-poll", "poll-skip"],
    );
}

#[test]
fn stale_controller_is_caught_by_chaos() {
    // Brokers that take any metadata, whatever its controller or partition epoch, go
    // back an epoch when a reordering network delivers an old decision late.
    caught("chaos", "stale-controller", 0..60, &["epoch-regression"]);
}

#[test]
fn no_idempotence_dedupe_is_caught_by_idempotent_retry() {
    // Without KIP-98's (producer id, sequence) check, a batch the producer retries
    // after a lost or late response is appended a second time.
    caught(
        "idempotent-retry",
        "no-idempotence-dedupe",
        0..10,
        &["duplicate"],
    );
}

#[test]
fn inflight_reorder_is_caught_by_idempotent_retry() {
    // Without the sequence-gap check, a batch whose predecessor was lost is appended,
    // and the retried predecessor lands after it (two sends of one operation out of
    // order); a retry of a batch already out of the window is appended again.
    caught(
        "idempotent-retry",
        "inflight-reorder",
        0..10,
        &[
            "int-nonmonotonic-send",
            "nonmonotonic-send",
            "realtime-send-order",
            "duplicate",
        ],
    );
}

#[test]
fn inflight_reorder_reorders_the_sends_of_one_operation() {
    // The reordering itself, not only the duplicates it also causes: some seed shows
    // the later send of an operation landing before the earlier one.
    let reordered = (0..20).any(|seed| {
        common::run(&common::options(
            "idempotent-retry",
            seed,
            &["inflight-reorder"],
        ))
        .anomalies
        .iter()
        .any(|anomaly| !anomaly.allowed && anomaly.kind == "int-nonmonotonic-send")
    });
    assert!(
        reordered,
        "inflight-reorder never reordered two sends of one operation in idempotent-retry 0..20"
    );
}

#[test]
fn dedup_window_1_is_caught_by_idempotent_retry() {
    // KAFKA-5494: a broker that remembers only the last batch refuses the retry of an
    // older in-flight batch as out of order; the producer bumps its epoch and the batch
    // is appended again.
    caught("idempotent-retry", "dedup-window-1", 0..10, &["duplicate"]);
}

#[test]
fn no_producer_fencing_is_caught_by_exactly_once_alpha() {
    // Before KIP-447 only the producer epoch fences a zombie: a replacement whose
    // InitProducerId neither bumps the epoch nor aborts the zombie's transaction reads
    // the old offsets, shares the zombie's producer id and epoch, and the zombie's
    // commit goes through.
    caught(
        "exactly-once-alpha",
        "no-producer-fencing",
        0..20,
        &[
            "eos-duplicate-output",
            "lost-write",
            "torn-transaction",
            "poll-skip",
            "G1a",
        ],
    );
}

#[test]
fn hanging_txn_is_caught_by_hanging_transaction() {
    // Before KIP-890 a produce request held past its transaction's abort is appended
    // without asking the coordinator, and its records commit with a later transaction
    // of the producer (or hang the last stable offset).
    caught(
        "hanging-transaction",
        "hanging-txn",
        0..5,
        &["G1a", "lso-stuck", "unseen"],
    );
    // When the producer crashed right after the abort, nothing closes the held write's
    // transaction: the last stable offset hangs (the lso-stuck monitor).
    let hung = (0..20).find(|&seed| {
        common::run(&common::options(
            "hanging-transaction",
            seed,
            &["hanging-txn"],
        ))
        .anomalies
        .iter()
        .any(|anomaly| anomaly.kind == "lso-stuck" && !anomaly.allowed)
    });
    assert!(
        hung.is_some(),
        "no lso-stuck in hanging-transaction seeds 0..20"
    );
}

#[test]
fn late_write_joins_next_txn_is_caught_by_hanging_transaction() {
    // With verification but no epoch bump per transaction (KIP-890 part 1 only), the
    // held write of an aborted transaction passes verification once the producer's
    // next transaction added the partition, and commits with it.
    caught(
        "hanging-transaction",
        "late-write-joins-next-txn",
        0..5,
        &["G1a", "torn-transaction"],
    );
}

#[test]
fn no_txn_offset_generation_fence_is_caught_by_exactly_once() {
    // Before KIP-447 a transactional offset commit of an old generation is accepted.
    caught(
        "exactly-once",
        "no-txn-offset-generation-fence",
        0..5,
        &["zombie-commit", "eos-duplicate-output"],
    );
}

#[test]
fn no_require_stable_is_caught_by_exactly_once() {
    // A replacement that reads the committed offsets while the stalled instance's
    // transactional commit is pending reprocesses what that instance then commits.
    caught(
        "exactly-once",
        "no-require-stable",
        0..40,
        &["eos-duplicate-output"],
    );
}

#[test]
fn read_uncommitted_leak_is_caught_by_exactly_once() {
    // read_committed consumers served past the last stable offset read records of
    // transactions that then abort.
    caught(
        "exactly-once",
        "read-uncommitted-leak",
        0..10,
        &["G1a", "eos-duplicate-output"],
    );
}

#[test]
fn no_commit_generation_fence_is_caught_by_rebalance() {
    // A member stalled past its session (a zombie) commits its old position after the
    // group moved on; without the generation fence the coordinator takes it.
    caught(
        "rebalance",
        "no-commit-generation-fence",
        0..10,
        &["zombie-commit", "offset-regression"],
    );
}

#[test]
fn static_member_duplicate_is_caught_by_rebalance() {
    // KAFKA-8500: a static member's replacement does not fence the stalled original,
    // which wakes and goes on consuming and committing the instance's partitions.
    caught(
        "rebalance",
        "static-member-duplicate",
        0..30,
        &["split-ownership"],
    );
}

#[test]
fn cooperative_assign_before_revoke_is_caught_by_rebalance() {
    caught(
        "rebalance",
        "cooperative-assign-before-revoke",
        0..10,
        &["split-ownership"],
    );
}

#[test]
fn stale_owned_partitions_is_caught_by_rebalance() {
    // KAFKA-12984: a fenced member rejoins claiming the partitions it held in an older
    // generation; believed, they stay with it while their new owner still has them.
    caught(
        "rebalance",
        "stale-owned-partitions",
        0..30,
        &["split-ownership"],
    );
}
