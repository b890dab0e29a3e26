//! Reintroduced historical bugs (`--bug NAME`, `../shared/design/bugs.md`). Each switch
//! turns one fixed behaviour back into the broken one; the safe configuration stays.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bug {
    /// Truncate to the local high watermark instead of asking the leader (pre KIP-101).
    HwTruncation,
    /// `acks=all` succeeds with an ISR smaller than `min.insync.replicas` (pre KAFKA-1555).
    IgnoreMinIsr,
    /// Fetch and OffsetsForLeaderEpoch carry no current leader epoch (pre KIP-320).
    UnfencedFetch,
    /// The leader shrinks its ISR on its own, without the controller's approval.
    LocalIsrShrink,
    /// A follower re-truncates only when the leader *id* changes, not on every new
    /// leader epoch (KAFKA-7164).
    SkipTruncateSameLeader,
    /// The end-offset-for-epoch answer is used as a bare offset, without its epoch
    /// (before KIP-279).
    EpochLookupNoLineage,
    /// A follower rejoins the ISR once it reaches the leader's HW, not also the start
    /// of the leader's epoch.
    IsrExpandEarly,
    /// The HW is computed over the current ISR while an expansion is pending (before
    /// KIP-497's maximal ISR).
    NoMaximalIsr,
    /// A new leader exposes its stale local HW before committing in its own epoch.
    HwRegressOnFailover,
    /// The leader serves consumers records above the high watermark.
    ReadBeyondHw,
    /// `hw-truncation` restricted to restart: after a crash, a replica truncates to its
    /// checkpointed HW (KIP-101's second scenario: both replicas lost their tails).
    HwDivergence,
    /// The consumer does not validate its position after a leader change, and after a
    /// truncation silently skips (before KIP-320's client side).
    ConsumerNoTruncationDetection,
    /// Brokers apply metadata whatever its controller epoch or partition epochs: a
    /// delayed, stale decision moves a broker back an epoch.
    StaleController,
    /// The leader ignores the idempotent producer's (producer id, sequence): every batch
    /// is appended, a retry after a lost response too (a broker without KIP-98).
    NoIdempotenceDedupe,
    /// The leader still recognises duplicates but no longer checks that a batch's
    /// sequence follows the last one: with 5 requests in flight, a batch whose
    /// predecessor was lost is appended, and the retried predecessor lands after it.
    InflightReorder,
    /// The leader remembers only the last batch per producer instead of five (Kafka
    /// 0.11, before KAFKA-5494): a retry of an older in-flight batch is not recognised.
    DedupWindow1,
    /// InitProducerId for a known `transactional.id` neither bumps the epoch nor aborts
    /// the previous instance's open transaction: a zombie keeps producing and commits.
    NoProducerFencing,
    /// A partition leader appends a transactional batch without asking the coordinator
    /// whether the partition is in an ongoing transaction (before KIP-890 part 1): a
    /// produce delayed past its transaction's abort opens a transaction nobody ends.
    /// It is the broker before KIP-890 as a whole, so the epoch is not bumped per
    /// transaction either: with part 2 alone, the abort marker's bumped epoch would
    /// still fence the delayed write.
    HangingTxn,
    /// The producer epoch is not bumped at the end of each transaction (before KIP-890
    /// part 2): a delayed write of an aborted transaction joins the next one.
    LateWriteJoinsNextTxn,
    /// TxnOffsetCommit is not checked against the group generation and member (before
    /// KIP-447): a zombie's transactional offset commit is accepted.
    NoTxnOffsetGenerationFence,
    /// OffsetFetch ignores `RequireStable` (before KIP-447): a new owner reads the old
    /// committed offset while a transactional offset commit is pending.
    NoRequireStable,
    /// A `read_committed` fetch is served up to the high watermark, past the last
    /// stable offset (records of undecided transactions leak).
    ReadUncommittedLeak,
    /// The group coordinator accepts an OffsetCommit without checking its generation
    /// and member (the classic protocol's fence, in OffsetCommit since its v1): a
    /// zombie's commit of an old position is accepted.
    NoCommitGenerationFence,
    /// A static member joining with a new member id does not fence the instance's
    /// older member (KAFKA-8500): both stay members of the instance and both are
    /// assigned its partitions.
    StaticMemberDuplicate,
    /// The cooperative-sticky assignor hands a moving partition to its new owner in the
    /// same rebalance in which its old owner is told to revoke it (KIP-429 holds it
    /// back for one rebalance): for a while both consume it.
    CooperativeAssignBeforeRevoke,
    /// The cooperative-sticky assignor believes every member's claimed owned
    /// partitions, whatever generation they are from (KAFKA-12984, fixed by KIP-792's
    /// generation in the subscription): a member that missed a rebalance keeps a
    /// partition the group gave to another.
    StaleOwnedPartitions,
    /// Test-only: the simulator panics inside the run on some seeds, to prove that a
    /// panic is caught and reported per seed. Not listed by `--list-bugs`.
    InjectedPanic,
}

/// Test-only switches, accepted by `--bug` but not listed (they break the simulator,
/// not the broker).
pub const TEST_BUGS: &[(Bug, &str)] = &[(Bug::InjectedPanic, "injected-panic")];

/// Name, source and one-line description of every switch, in `--list-bugs` order.
pub const ALL_BUGS: &[(Bug, &str, &str, &str)] = &[
    (
        Bug::HwTruncation,
        "hw-truncation",
        "KIP-101",
        "on becoming follower or restart, truncate to the local high watermark instead of the leader's end offset for the last epoch",
    ),
    (
        Bug::IgnoreMinIsr,
        "ignore-min-isr",
        "KAFKA-1555",
        "acks=all is acknowledged with an ISR of just the leader although min.insync.replicas=2",
    ),
    (
        Bug::UnfencedFetch,
        "unfenced-fetch",
        "KIP-320",
        "fetch and end-offset requests carry no current leader epoch; a follower that missed an epoch change keeps fetching without truncating",
    ),
    (
        Bug::LocalIsrShrink,
        "local-isr-shrink",
        "KIP-497",
        "the leader shrinks the ISR on its own, without the controller's approval (split brain under partition)",
    ),
    (
        Bug::HwDivergence,
        "hw-divergence",
        "KIP-101",
        "after a crash, a restarted replica truncates to its checkpointed high watermark instead of the leader's end offset for its last epoch (both replicas lost unsynced tails)",
    ),
    (
        Bug::ConsumerNoTruncationDetection,
        "consumer-no-truncation-detection",
        "KIP-320",
        "the consumer neither validates its position after a leader change nor knows when it was reset: after a truncation (unclean election) it silently skips or re-reads",
    ),
    (
        Bug::StaleController,
        "stale-controller",
        "KIP-631",
        "brokers accept leadership changes from an older controller epoch or with older partition epochs (stale metadata delivered late)",
    ),
    (
        Bug::SkipTruncateSameLeader,
        "skip-truncate-same-leader",
        "KAFKA-7164",
        "a follower truncates only when the leader id changes, not on every leader epoch change: a stale suffix is kept",
    ),
    (
        Bug::EpochLookupNoLineage,
        "epoch-lookup-no-lineage",
        "KIP-279",
        "the leader's end offset for an epoch is taken as a bare offset, without the epoch it belongs to: a follower keeps records of an epoch the leader never had",
    ),
    (
        Bug::IsrExpandEarly,
        "isr-expand-early",
        "KIP-101",
        "a follower rejoins the ISR as soon as it reaches the leader's HW, not the start offset of the leader's epoch",
    ),
    (
        Bug::NoMaximalIsr,
        "no-maximal-isr",
        "KIP-497",
        "the HW is computed over the current ISR while an ISR expansion is still pending at the controller",
    ),
    (
        Bug::HwRegressOnFailover,
        "hw-regress-on-failover",
        "KIP-207",
        "a new leader exposes its stale local HW before it has committed an offset in its own epoch",
    ),
    (
        Bug::ReadBeyondHw,
        "read-beyond-hw",
        "KIP-392",
        "the leader serves consumers records above the high watermark (phantom reads of data later truncated)",
    ),
    (
        Bug::NoIdempotenceDedupe,
        "no-idempotence-dedupe",
        "KIP-98",
        "the leader ignores the producer id and sequence number: a batch retried after a lost response is appended again",
    ),
    (
        Bug::InflightReorder,
        "inflight-reorder",
        "KIP-98",
        "no sequence-gap check with 5 requests in flight: a batch whose predecessor failed is appended anyway, and the retried predecessor lands after it",
    ),
    (
        Bug::DedupWindow1,
        "dedup-window-1",
        "KAFKA-5494",
        "the leader remembers 1 batch per producer instead of 5: a retry of an older in-flight batch is refused as out of order, and the producer's epoch bump appends it again",
    ),
    (
        Bug::NoProducerFencing,
        "no-producer-fencing",
        "KIP-98",
        "a second producer with the same transactional.id does not bump the epoch or abort the open transaction: the zombie's commit goes through",
    ),
    (
        Bug::HangingTxn,
        "hanging-txn",
        "KIP-890",
        "a transactional produce delayed past its transaction's abort is appended without verifying the transaction (nor an epoch bump per transaction to fence it): it opens a transaction nobody ends (last stable offset stuck)",
    ),
    (
        Bug::LateWriteJoinsNextTxn,
        "late-write-joins-next-txn",
        "KIP-890",
        "no producer epoch bump per transaction: the delayed write of an aborted transaction is appended into the next one and commits with it",
    ),
    (
        Bug::NoTxnOffsetGenerationFence,
        "no-txn-offset-generation-fence",
        "KIP-447",
        "transactional offset commits are not fenced by the consumer group generation: a zombie's commit of inputs already reprocessed is accepted",
    ),
    (
        Bug::NoRequireStable,
        "no-require-stable",
        "KIP-447",
        "OffsetFetch ignores RequireStable: a new owner reads the old committed offset while a transactional offset commit is pending",
    ),
    (
        Bug::ReadUncommittedLeak,
        "read-uncommitted-leak",
        "KIP-98",
        "a read_committed consumer is served records above the last stable offset (of undecided and aborted transactions)",
    ),
    (
        Bug::NoCommitGenerationFence,
        "no-commit-generation-fence",
        "OffsetCommit v1",
        "the group coordinator accepts offset commits from an old generation or a removed member: a zombie overwrites the new owner's position",
    ),
    (
        Bug::StaticMemberDuplicate,
        "static-member-duplicate",
        "KAFKA-8500",
        "two processes with one group.instance.id are both accepted as members: both are assigned the instance's partitions",
    ),
    (
        Bug::CooperativeAssignBeforeRevoke,
        "cooperative-assign-before-revoke",
        "KIP-429",
        "the cooperative-sticky assignor gives a moving partition to its new owner in the rebalance that tells its old owner to revoke it",
    ),
    (
        Bug::StaleOwnedPartitions,
        "stale-owned-partitions",
        "KAFKA-12984",
        "the cooperative-sticky assignor believes owned partitions claimed from an old generation: a member that missed a rebalance keeps a partition given to another",
    ),
];

impl Bug {
    pub fn name(self) -> &'static str {
        ALL_BUGS
            .iter()
            .map(|&(b, n, ..)| (b, n))
            .chain(TEST_BUGS.iter().copied())
            .find(|(b, _)| *b == self)
            .map(|(_, n)| n)
            .expect("every bug is listed")
    }

    pub fn parse(name: &str) -> Option<Bug> {
        ALL_BUGS
            .iter()
            .map(|&(b, n, ..)| (b, n))
            .chain(TEST_BUGS.iter().copied())
            .find(|(_, n)| *n == name)
            .map(|(b, _)| b)
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (bug, name, ..) in ALL_BUGS.iter() {
            assert_eq!(Bug::parse(name), Some(*bug));
            assert_eq!(bug.name(), *name);
        }
        assert_eq!(Bug::parse("no-such-bug"), None);
    }
}
