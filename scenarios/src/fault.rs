//! Faults as data: what the nemesis does and when.

use model::types::{BrokerId, NodeId, PartitionId, SimTime};

/// Whom a fault hits. `LeaderOf` is resolved when the fault fires, from the
/// controller's current view (the leader may have moved since the schedule was drawn).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Target {
    Broker(BrokerId),
    LeaderOf(PartitionId),
    /// A follower (not the leader) of the partition: the `n`-th in replica order.
    FollowerOf(PartitionId, u32),
}

/// A set of nodes for a network partition, resolved when the fault fires.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LinkSet {
    Nodes(Vec<NodeId>),
    /// The partition's leader.
    LeaderOf(PartitionId),
    /// The partition's leader and its first follower.
    LeaderAndFollowerOf(PartitionId),
    /// Every follower of the partition (replicas other than the leader).
    FollowersOf(PartitionId),
    /// One follower: the `n`-th replica (in replica order) that is not the leader.
    FollowerOf(PartitionId, u32),
    /// Every node not in the other side.
    Rest,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Fault {
    /// Hard crash: volatile state and the unsynced log tail are lost.
    Crash(Target),
    /// Clean shutdown: everything is flushed first, then the broker stops.
    Shutdown(Target),
    /// Restart every stopped broker matching the target (or this broker).
    Restart(BrokerId),
    /// Restart every broker that is down.
    RestartAll,
    /// Every broker crashes at once (power outage).
    CrashAll,
    /// The broker stops processing (GC-like stall) for `ms`, then resumes.
    Pause(Target, u64),
    /// Messages from `from` to `to` are dropped; `one_way` leaves `to -> from` working.
    Partition {
        from: LinkSet,
        to: LinkSet,
        one_way: bool,
    },
    /// Extra latency (ms) on the target's links to and from other brokers (replication
    /// traffic; its controller session and clients are not slowed).
    SlowLinks(Target, u64),
    /// Fsync latency (ms) of the target's disk.
    SlowDisk(Target, u64),
    /// Remove every partition, slow link and slow disk, and restore the network's
    /// own loss and duplication rates.
    HealNetwork,
    /// The network starts losing and duplicating messages at these rates (parts per
    /// million), and maybe reordering them, until the next `HealNetwork`.
    Degrade {
        drop_per_million: u64,
        duplicate_per_million: u64,
        /// Messages of one link may overtake each other (no FIFO), as requests on
        /// different connections do.
        reorder: bool,
    },
    /// The active controller crashes; a standby of the quorum takes over after this
    /// many milliseconds (the Raft election), with the committed metadata.
    CrashController(u64),
    /// The current instance of application slot `slot` crashes; a new instance starts
    /// `restart_after_ms` later, under the slot's `transactional.id` or, with
    /// `fresh_transactional_id`, a new one (KIP-447 style).
    AppCrash {
        slot: u32,
        restart_after_ms: u64,
        fresh_transactional_id: bool,
    },
    /// The current instance of application slot `slot` stalls (a GC pause) for `ms`,
    /// now or at a chosen point of its next transaction. With `replace_after_ms`, a new
    /// instance is started for the slot meanwhile (a supervisor that believed it dead):
    /// the stalled one comes back as a zombie.
    AppStall {
        slot: u32,
        ms: u64,
        when: StallWhen,
        replace_after_ms: Option<u64>,
        fresh_transactional_id: bool,
    },
    /// The next Produce request of application slot `slot`'s current instance is held
    /// in the network (a stuck connection) for `ms`, so it may arrive after its
    /// transaction ended. With `release_with_next`, it leaves earlier, when the
    /// instance sends its next request to the same partition (the connection
    /// unblocks): just ahead of the producer's next write there.
    DelayAppProduce {
        slot: u32,
        ms: u64,
        release_with_next: bool,
    },
    /// The current instance of consumer slot `slot` closes cleanly at its next poll
    /// (commits what auto-commit owes, LeaveGroup for a dynamic member); with
    /// `restart_after_ms`, a new instance joins that much later.
    AppClose {
        slot: u32,
        restart_after_ms: Option<u64>,
    },
    /// The next batch of consumer slot `slot`'s current instance takes `ms` longer to
    /// process (its poll loop is stuck; its heartbeat thread goes on): past
    /// `max.poll.interval.ms`, it leaves the group.
    AppSlowBatch { slot: u32, ms: u64 },
    /// No fault: the nemesis announces what it drew (the swarm parameters), for the
    /// fault timeline.
    Announce(String),
}

/// When an application stall strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StallWhen {
    Now,
    /// Just before the instance sends its next TxnOffsetCommit (outputs written,
    /// offsets not yet committed): KIP-447's generation fence decides.
    BeforeOffsetCommit,
    /// Just before it sends its next EndTxn(commit) (offsets pending at the group
    /// coordinator): KIP-447's `RequireStable` decides what a new owner reads.
    BeforeCommit,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FaultEvent {
    pub at: SimTime,
    pub fault: Fault,
}
