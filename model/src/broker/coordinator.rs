//! What the broker's two coordinators share. The transaction coordinator
//! (`__transaction_state`) and the group coordinator (`__consumer_offsets`) are each
//! hosted by the leader of the internal partition their key hashes to; each keeps its
//! state in that partition's log, written as acks=all through `append_internal`, loads
//! it when the broker becomes the partition's leader and drops it when the leadership
//! is lost (the next leader loads it from its own replica of the log).

use super::Broker;
use crate::config::Config;
use crate::message::ErrorCode;
use crate::outbox::Outbox;
use crate::types::{Offset, PartitionId, SimTime};

/// The answer a coordinator gives for one of its log writes: the partition's error
/// mapped as Kafka's coordinators map it (a lost leadership means the client must look
/// for the new coordinator; a write that did not reach `min.insync.replicas` or timed
/// out means "try again"; a fenced producer epoch is the producer's own error).
pub(super) fn write_outcome(result: Result<Offset, ErrorCode>) -> Result<(), ErrorCode> {
    match result {
        Ok(_) => Ok(()),
        Err(ErrorCode::NotLeaderOrFollower) => Err(ErrorCode::NotCoordinator),
        Err(ErrorCode::InvalidProducerEpoch) => Err(ErrorCode::InvalidProducerEpoch),
        Err(_) => Err(ErrorCode::CoordinatorNotAvailable),
    }
}

impl Broker {
    /// The partition of an internal topic of `count` partitions whose leader
    /// coordinates a key (`partition_of` hashes it), if we are that leader.
    pub(super) fn coordinator_partition(
        &self,
        count: u32,
        partition_of: impl FnOnce(&Config) -> PartitionId,
    ) -> Result<PartitionId, ErrorCode> {
        if count == 0 {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        let p = partition_of(&self.config);
        if self.replicas[p.index()].is_leader() {
            Ok(p)
        } else {
            Err(ErrorCode::NotCoordinator)
        }
    }

    /// We became leader of `p`: if it is a coordinator's partition, load its state.
    pub(super) fn load_coordinator(&mut self, now: SimTime, p: PartitionId, out: &mut Outbox) {
        if self.config.is_transaction_state(p) {
            self.load_transactions(now, p, out);
        } else if self.config.is_consumer_offsets(p) {
            self.load_groups(p);
        }
    }

    /// We lost the leadership of `p`: its coordinator forgets what it loaded from it.
    pub(super) fn unload_coordinator(&mut self, p: PartitionId, out: &mut Outbox) {
        if self.config.is_transaction_state(p) {
            self.unload_transactions(p);
        } else if self.config.is_consumer_offsets(p) {
            self.unload_groups(p, out);
        }
    }

    /// Run the coordinators' part of the internal-log appends that completed during
    /// this event (they complete deep inside the produce path, without `now`). The
    /// group coordinator first applies what became committed, so that an answer
    /// reflects its own write, and at the end arms its timer for the groups' next
    /// deadline.
    pub(super) fn drain_coordinator_writes(&mut self, now: SimTime, out: &mut Outbox) {
        self.catch_up_groups();
        while !self.coordinator_writes_done.is_empty() {
            for (write, result) in std::mem::take(&mut self.coordinator_writes_done) {
                self.on_txn_log_written(now, write, result, out);
                self.on_group_log_written(now, write, result, out);
            }
            self.catch_up_groups();
        }
        self.arm_group_tick(now, out);
    }
}
