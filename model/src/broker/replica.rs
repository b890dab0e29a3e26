//! One broker's replica of one partition: its log, high watermark and role.

use crate::log::Log;
use crate::message::PartitionState;
use crate::producer_state::ProducerStateTable;
use crate::types::{BrokerId, Epoch, Offset, PartitionId, SimTime};
use std::collections::BTreeMap;

/// What the leader knows about one follower (Kafka's `Replica` fetch state).
#[derive(Clone, Debug)]
pub struct FollowerProgress {
    /// The follower's log end offset, as told by its last fetch offset.
    pub log_end_offset: Option<Offset>,
    /// Last time the follower was known to be caught up (`lastCaughtUpTimeMs`).
    pub last_caught_up: SimTime,
    pub last_fetch_time: SimTime,
    /// The leader's LEO at the follower's previous fetch.
    pub last_fetch_leader_leo: Offset,
}

/// An AlterPartition sent to the controller and not yet answered.
#[derive(Clone, Debug)]
pub struct PendingIsr {
    pub proposed: Vec<BrokerId>,
    pub sent_at: SimTime,
}

#[derive(Clone, Debug)]
pub struct LeaderState {
    pub followers: BTreeMap<BrokerId, FollowerProgress>,
    pub pending_isr: Option<PendingIsr>,
    /// Where this leader's epoch starts in the log: the HW is not exposed to clients
    /// until it reaches this offset (the new leader does not know the true HW before).
    pub epoch_start_offset: Offset,
    pub producer_state: ProducerStateTable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowerPhase {
    /// Waiting for the leader's end offset for `asked` (KIP-101 truncation).
    Truncating {
        asked: Epoch,
    },
    Fetching,
}

#[derive(Clone, Debug)]
pub struct FollowerState {
    pub leader: BrokerId,
    pub phase: FollowerPhase,
    /// Correlation id and send time of the request in flight, if any.
    pub inflight: Option<(u64, SimTime)>,
    /// True once a fetch response of this leader epoch gave us the leader's HW.
    pub hw_confirmed: bool,
    /// A `ReplicaTimeout` timer is pending for this partition.
    pub watchdog_armed: bool,
}

#[derive(Clone, Debug)]
pub enum Role {
    /// Not a replica, or the partition is offline or unknown to us.
    Offline,
    Leader(Box<LeaderState>),
    Follower(FollowerState),
}

#[derive(Clone, Debug)]
pub struct Replica {
    pub partition: PartitionId,
    pub log: Log,
    pub high_watermark: Offset,
    /// HW written by the last checkpoint (durable, `replication-offset-checkpoint`).
    pub high_watermark_checkpoint: Offset,
    /// The latest partition state learned from the controller.
    pub state: Option<PartitionState>,
    pub role: Role,
    /// No role taken since this incarnation started (the replica comes from a restart).
    pub fresh_from_start: bool,
}

impl Replica {
    pub fn new(partition: PartitionId) -> Replica {
        Replica {
            partition,
            log: Log::default(),
            high_watermark: Offset::ZERO,
            high_watermark_checkpoint: Offset::ZERO,
            state: None,
            role: Role::Offline,
            fresh_from_start: true,
        }
    }

    pub fn leader_epoch(&self) -> Option<Epoch> {
        self.state.as_ref().map(|s| s.leader_epoch)
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// The ISR as this replica last learned it (from the controller, or locally with
    /// the `local-isr-shrink` bug).
    pub fn isr(&self) -> &[BrokerId] {
        self.state.as_ref().map(|s| s.isr.as_slice()).unwrap_or(&[])
    }

    /// The HW a client may be told: a new leader withholds it until it has reached the
    /// start of its own epoch (until then its local HW may be behind the old leader's;
    /// Kafka answers OFFSET_NOT_AVAILABLE then, KIP-207).
    /// With `stale_ok` (the `hw-regress-on-failover` bug) the new leader exposes its
    /// local HW at once.
    pub fn client_visible_high_watermark(&self, stale_ok: bool) -> Option<Offset> {
        match &self.role {
            Role::Leader(l) if stale_ok || self.high_watermark >= l.epoch_start_offset => {
                Some(self.high_watermark)
            }
            _ => None,
        }
    }

    /// Truncate the log and keep the HW at or below the new end.
    pub fn truncate_to(&mut self, to: Offset) -> Option<(Offset, Offset)> {
        let from = self.log.log_end_offset();
        self.log.truncate_to(to);
        self.high_watermark = self.high_watermark.min(self.log.log_end_offset());
        (to < from).then_some((from, to))
    }

    /// `debug_assert!` the replica's own invariants (TigerBeetle style, after handlers).
    pub fn check_invariants(&self) {
        debug_assert!(
            self.high_watermark <= self.log.log_end_offset(),
            "{:?}: HW {} above LEO {}",
            self.partition,
            self.high_watermark,
            self.log.log_end_offset()
        );
        if let (Role::Leader(_), Some(s)) = (&self.role, &self.state) {
            debug_assert!(s.leader.is_some());
        }
    }
}
