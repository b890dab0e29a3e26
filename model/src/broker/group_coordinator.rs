//! The group coordinator: Kafka's classic consumer-group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup; generations; KIP-345 static members), the committed offsets
//! of each group (OffsetCommit, OffsetFetch with KIP-447's `RequireStable`) and the
//! transactional offset commits of KIP-98 (`sendOffsetsToTransaction`, fenced by
//! KIP-447). The group `g` is coordinated by the leader of `__consumer_offsets`
//! partition [`crate::config::Config::consumer_offsets_partition`]`(g)`.
//!
//! Two layers, as in Kafka. The *live* groups ([`group::Group`], Kafka's in-memory
//! `GroupMetadata`) are the authority while we coordinate: requests are checked
//! against them and move them at once, so a member is fenced from the moment its
//! replacement joins. The *log* of the partition makes them durable: the group's
//! metadata (generation, protocol, leader, members with their instance ids and
//! assignments) is written when a rebalance completes (the leader's SyncGroup), when a
//! static member replaces another, and when the group empties; offsets when committed.
//! Every write is acks=all (`min.insync.replicas` applies) and answered once committed.
//! The committed state is the replay of the log up to the high watermark
//! ([`log::OffsetsPartition`]): a transactional offset commit is appended as a
//! transactional batch of its producer, so the partition's transaction index and LSO
//! account for it, and the producer's marker (written here by the transaction
//! coordinator, which AddOffsetsToTxn told to) decides it during the same replay. A new
//! leader arrives at the same state from its log alone, and loads a live group from it
//! on first use (each member with a fresh session), so members of the stored
//! generation go on heartbeating and committing across a failover.
//!
//! Driving contract: the broker dispatches the group requests here;
//! `load_groups`/`unload_groups` follow the leadership of the partitions;
//! `catch_up_groups` runs after every event (and before every request) to apply what
//! became committed, and `arm_group_tick` after every event arms [`Timer::GroupTick`]
//! for the earliest group deadline (session expiry, end of a join phase), on which
//! `on_group_tick` runs.
//!
//! Simplifications against Kafka's group coordinator, each marked `Simplification:`
//! where it is made: a new member gets its id in the first JoinGroup answer (no
//! KIP-394 MEMBER_ID_REQUIRED round trip); no pending-sync time-out, no group size
//! limit, no session time-out bounds (`group.min/max.session.timeout.ms`); the members'
//! subscriptions are not stored; loading ends when the high watermark covers the log,
//! and is answered COORDINATOR_NOT_AVAILABLE; OffsetCommit and OffsetFetch errors are
//! per request, not per partition.

mod group;
mod log;

use super::coordinator::write_outcome;
use super::Broker;
use crate::bug::Bug;
use crate::message::{
    ConsumerGroupMetadata, CoordinatorEntry, ErrorCode, GroupLogEntry, Message, ProducerStamp,
    Record,
};
use crate::outbox::{Outbox, Timer};
use crate::types::{
    Generation, GroupId, MemberId, NodeId, Offset, PartitionId, PartitionSet, ProducerEpoch,
    ProducerId, SimTime,
};
use group::{Group, GroupSettings, Store};
use log::{offset_records, OffsetsPartition};
use std::collections::BTreeMap;

pub(super) use group::{JoinRequest, Waiter};

/// A TxnOffsetCommit request, as the coordinator needs it.
pub(super) struct TxnOffsetCommit {
    pub correlation: u64,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub group: GroupId,
    /// The consumer's group metadata; `None` from a client before KIP-447.
    pub group_metadata: Option<ConsumerGroupMetadata>,
    pub offsets: Vec<(PartitionId, Offset)>,
}

/// An OffsetCommit request, as the coordinator needs it.
pub(super) struct OffsetCommit {
    pub correlation: u64,
    pub group: GroupId,
    pub generation: Option<Generation>,
    pub member: Option<MemberId>,
    pub instance: Option<u32>,
    pub offsets: Vec<(PartitionId, Offset)>,
}

/// A SyncGroup, Heartbeat or LeaveGroup: who sends it.
#[derive(Clone, Copy, Debug)]
pub(super) struct MemberRequest {
    pub correlation: u64,
    pub group: GroupId,
    pub generation: Generation,
    pub member: MemberId,
    pub instance: Option<u32>,
}

/// What to do once a group-log write completes.
#[derive(Clone, Debug)]
enum AfterWrite {
    /// The group's metadata: tell the group (it answers its members).
    Store {
        partition: PartitionId,
        group: GroupId,
        store: Store,
    },
    OffsetCommit {
        client: NodeId,
        correlation: u64,
    },
    TxnOffsetCommit {
        client: NodeId,
        correlation: u64,
    },
}

/// One broker's group coordinator: the groups of the `__consumer_offsets` partitions
/// it leads.
#[derive(Clone, Debug, Default)]
pub struct GroupCoordinator {
    partitions: BTreeMap<PartitionId, OffsetsPartition>,
    /// Group-log appends waiting for the HW: write id -> what to do then.
    writes: BTreeMap<u64, AfterWrite>,
    /// When the armed [`Timer::GroupTick`] fires (one is enough).
    tick_armed: Option<SimTime>,
}

/// Member ids are `leader epoch * MEMBER_IDS_PER_EPOCH + n`: unique across the
/// coordinator's failovers (each leadership of the partition has its own epoch), and
/// readable in a history (`member-2000001`: the first member of epoch 2).
const MEMBER_IDS_PER_EPOCH: u64 = 1_000_000;

impl Broker {
    /// Are we the loaded coordinator of `group`? Loading lasts until the high watermark
    /// reaches the start of our leader epoch: before that, our log's tail may hold
    /// entries the previous leader committed that we cannot tell committed yet.
    ///
    /// Simplification: Kafka's loader reads the log to its end and answers
    /// COORDINATOR_LOAD_IN_PROGRESS meanwhile (a code the model does not have: the
    /// clients retry COORDINATOR_NOT_AVAILABLE alike); here the state is the replay of
    /// the committed prefix only, so loading is waiting for the high watermark.
    fn group_coordinator(&mut self, group: GroupId) -> Result<PartitionId, ErrorCode> {
        let p = self.coordinator_partition(self.config.offsets_topic_partitions, |c| {
            c.consumer_offsets_partition(group)
        })?;
        debug_assert!(self.group.partitions.contains_key(&p), "loaded as leader");
        if self.replicas[p.index()]
            .client_visible_high_watermark(false)
            .is_none()
        {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        self.catch_up_group_partition(p);
        Ok(p)
    }

    fn group_settings(&self) -> GroupSettings {
        GroupSettings {
            initial_rebalance_delay_ms: self.config.group_initial_rebalance_delay_ms,
            static_member_duplicate: self.bug(Bug::StaticMemberDuplicate),
        }
    }

    /// The live group `group` of partition `p` (loaded), loaded from its stored
    /// metadata on first use.
    fn live_group(&mut self, now: SimTime, p: PartitionId, group: GroupId) -> &mut Group {
        let settings = self.group_settings();
        let loaded = self.group.partitions.get_mut(&p).expect("loaded");
        loaded
            .live
            .entry(group)
            .or_insert_with(|| match loaded.groups.get(&group) {
                Some(meta) => Group::load(now, &meta.stored, settings),
                None => Group::new(settings),
            })
    }

    /// A member id never handed out before for a group of `p`.
    fn fresh_member_id(&mut self, p: PartitionId) -> MemberId {
        let epoch = self.replicas[p.index()].leader_epoch().map_or(0, |e| e.0);
        let loaded = self.group.partitions.get_mut(&p).expect("loaded");
        loaded.members_created += 1;
        let n = u64::from(loaded.members_created);
        debug_assert!(
            n < MEMBER_IDS_PER_EPOCH,
            "member ids of one epoch exhausted"
        );
        MemberId(u64::from(epoch) * MEMBER_IDS_PER_EPOCH + n)
    }

    /// KIP-447's `RequireStable`: has `group` a transactional commit for `partition`
    /// whose marker is not committed (pending in the committed state, or still in the
    /// uncommitted tail of the log)?
    fn has_unstable_offset(&self, p: PartitionId, group: GroupId, partition: PartitionId) -> bool {
        let loaded = &self.group.partitions[&p];
        let pending = loaded
            .groups
            .get(&group)
            .is_some_and(|g| g.pending.values().any(|o| o.contains_key(&partition)));
        pending
            || self.replicas[p.index()]
                .log
                .read(loaded.applied, usize::MAX)
                .iter()
                .any(|r| {
                    r.producer.is_some()
                        && matches!(r.txn_state, Some(CoordinatorEntry::Group(GroupLogEntry::Offset {
                        group: g, partition: q, ..
                    })) if g == group && q == partition)
                })
    }

    /// JoinGroup (see [`group::Group::join`]).
    pub(super) fn on_join_group(
        &mut self,
        now: SimTime,
        group: GroupId,
        req: JoinRequest,
        out: &mut Outbox,
    ) {
        let p = match self.group_coordinator(group) {
            Ok(p) => p,
            Err(e) => {
                let answer = Message::JoinGroupResponse {
                    correlation: req.waiter.correlation,
                    result: Err(e),
                };
                return out.send(req.waiter.client, answer);
            }
        };
        let fresh = match req.member {
            Some(known) => known,
            None => self.fresh_member_id(p),
        };
        let store = self.live_group(now, p, group).join(now, req, fresh, out);
        self.store_groups(now, p, group, store, out);
    }

    /// SyncGroup (see [`group::Group::sync`]).
    pub(super) fn on_sync_group(
        &mut self,
        now: SimTime,
        client: NodeId,
        req: MemberRequest,
        assignments: Vec<(MemberId, Vec<PartitionId>)>,
        out: &mut Outbox,
    ) {
        let p = match self.group_coordinator(req.group) {
            Ok(p) => p,
            Err(e) => {
                let answer = Message::SyncGroupResponse {
                    correlation: req.correlation,
                    result: Err(e),
                };
                return out.send(client, answer);
            }
        };
        let waiter = Waiter {
            client,
            correlation: req.correlation,
        };
        let store = self.live_group(now, p, req.group).sync(
            now,
            waiter,
            req.generation,
            req.member,
            req.instance,
            assignments,
            out,
        );
        self.store_groups(now, p, req.group, store, out);
    }

    /// Heartbeat (see [`group::Group::heartbeat`]).
    pub(super) fn on_heartbeat(
        &mut self,
        now: SimTime,
        client: NodeId,
        req: MemberRequest,
        out: &mut Outbox,
    ) {
        let result = self.group_coordinator(req.group).and_then(|p| {
            self.live_group(now, p, req.group).heartbeat(
                now,
                req.generation,
                req.member,
                req.instance,
            )
        });
        let answer = Message::HeartbeatResponse {
            correlation: req.correlation,
            result,
        };
        out.send(client, answer);
    }

    /// LeaveGroup (see [`group::Group::leave`]).
    pub(super) fn on_leave_group(
        &mut self,
        now: SimTime,
        client: NodeId,
        req: MemberRequest,
        out: &mut Outbox,
    ) {
        let result = self.group_coordinator(req.group).and_then(|p| {
            let store =
                self.live_group(now, p, req.group)
                    .leave(now, req.member, req.instance, out)?;
            self.store_groups(now, p, req.group, store, out);
            Ok(())
        });
        let answer = Message::LeaveGroupResponse {
            correlation: req.correlation,
            result,
        };
        out.send(client, answer);
    }

    /// OffsetCommit: fenced by generation and member (ILLEGAL_GENERATION,
    /// UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID; none of it with the
    /// `no-commit-generation-fence` switch), refused with REBALANCE_IN_PROGRESS while
    /// the group waits for its assignment; appended and answered once committed.
    pub(super) fn on_offset_commit(
        &mut self,
        now: SimTime,
        client: NodeId,
        req: OffsetCommit,
        out: &mut Outbox,
    ) {
        let answer = |result| Message::OffsetCommitResponse {
            correlation: req.correlation,
            result,
        };
        let fence = !self.bug(Bug::NoCommitGenerationFence);
        let accepted = self.group_coordinator(req.group).and_then(|p| {
            let g = self.live_group(now, p, req.group);
            if fence {
                g.validate_offset_commit(req.generation, req.member, req.instance, false)?;
            }
            g.accept_offset_commit(now, req.member)?;
            Ok(p)
        });
        let p = match accepted {
            Ok(p) => p,
            Err(e) => return out.send(client, answer(Err(e))),
        };
        if req.offsets.is_empty() {
            return out.send(client, answer(Ok(())));
        }
        let records = offset_records(req.group, &req.offsets, None);
        let then = AfterWrite::OffsetCommit {
            client,
            correlation: req.correlation,
        };
        self.write_group_log(now, p, &records, then, out);
    }

    /// TxnOffsetCommit (KIP-98, fenced by KIP-447): a client that sends its group
    /// metadata must be a current member of the current generation (see
    /// [`group::Group::validate_offset_commit`]). The offsets are appended as a
    /// transactional batch of the producer and stay pending until its marker; the
    /// answer waits for the append to be committed.
    ///
    /// Simplification: one record per offset, appended together but replicated record
    /// by record (Kafka writes one batch); the `transactional_id` is not checked
    /// against the transaction coordinator (Kafka neither, before KIP-890).
    pub(super) fn on_txn_offset_commit(
        &mut self,
        now: SimTime,
        client: NodeId,
        req: TxnOffsetCommit,
        out: &mut Outbox,
    ) {
        let answer = |result| Message::TxnOffsetCommitResponse {
            correlation: req.correlation,
            result,
        };
        let fence = !self.bug(Bug::NoTxnOffsetGenerationFence);
        let accepted = self.group_coordinator(req.group).and_then(|p| {
            // A client before KIP-447 sends no group metadata: nothing to fence by.
            if let (true, Some(m)) = (fence, req.group_metadata) {
                self.live_group(now, p, req.group).validate_offset_commit(
                    Some(m.generation),
                    Some(m.member),
                    m.instance,
                    true,
                )?;
            }
            Ok(p)
        });
        let p = match accepted {
            Ok(p) => p,
            Err(e) => return out.send(client, answer(Err(e))),
        };
        if req.offsets.is_empty() {
            return out.send(client, answer(Ok(())));
        }
        let stamp = ProducerStamp {
            producer_id: req.producer_id,
            producer_epoch: req.producer_epoch,
            base_sequence: 0,
            transactional: true,
        };
        let records = offset_records(req.group, &req.offsets, Some(stamp));
        let then = AfterWrite::TxnOffsetCommit {
            client,
            correlation: req.correlation,
        };
        self.write_group_log(now, p, &records, then, out);
    }

    /// OffsetFetch: the group's committed offsets. With `require_stable` (KIP-447) a
    /// requested partition with an undecided transactional commit makes the answer
    /// UNSTABLE_OFFSET_COMMIT (the client retries), unless the `no-require-stable`
    /// switch ignores the flag.
    ///
    /// Simplification: errors answer the whole request (Kafka has an error code per
    /// partition, and a top-level one).
    pub(super) fn on_offset_fetch(
        &mut self,
        client: NodeId,
        correlation: u64,
        group: GroupId,
        partitions: PartitionSet,
        require_stable: bool,
        out: &mut Outbox,
    ) {
        let require_stable = require_stable && !self.bug(Bug::NoRequireStable);
        let result = self.group_coordinator(group).and_then(|p| {
            if require_stable
                && partitions
                    .iter()
                    .any(|q| self.has_unstable_offset(p, group, q))
            {
                return Err(ErrorCode::UnstableOffsetCommit);
            }
            let committed = self.group.partitions[&p].groups.get(&group);
            Ok(partitions
                .iter()
                .map(|q| (q, committed.and_then(|g| g.offsets.get(&q).copied())))
                .collect())
        });
        out.send(
            client,
            Message::OffsetFetchResponse {
                correlation,
                result,
            },
        );
    }

    /// Write what the group asked to store.
    fn store_groups(
        &mut self,
        now: SimTime,
        p: PartitionId,
        group: GroupId,
        stores: impl IntoIterator<Item = Store>,
        out: &mut Outbox,
    ) {
        for store in stores {
            let records = store.stored().records(group);
            let then = AfterWrite::Store {
                partition: p,
                group,
                store,
            };
            self.write_group_log(now, p, &records, then, out);
        }
    }

    fn write_group_log(
        &mut self,
        now: SimTime,
        p: PartitionId,
        records: &[Record],
        then: AfterWrite,
        out: &mut Outbox,
    ) {
        let write = self.append_internal(now, p, records, out);
        self.group.writes.insert(write, then);
    }

    /// A group-log append completed: answer the request that made it, or tell the
    /// group (the committed state already includes it, see `drain_coordinator_writes`).
    pub(super) fn on_group_log_written(
        &mut self,
        now: SimTime,
        write: u64,
        result: Result<Offset, ErrorCode>,
        out: &mut Outbox,
    ) {
        let Some(then) = self.group.writes.remove(&write) else {
            return;
        };
        let outcome = write_outcome(result);
        match then {
            AfterWrite::Store {
                partition,
                group,
                store,
            } => self.on_group_stored(now, partition, group, store, outcome, out),
            AfterWrite::OffsetCommit {
                client,
                correlation,
            } => out.send(
                client,
                Message::OffsetCommitResponse {
                    correlation,
                    result: outcome,
                },
            ),
            AfterWrite::TxnOffsetCommit {
                client,
                correlation,
            } => out.send(
                client,
                Message::TxnOffsetCommitResponse {
                    correlation,
                    result: outcome,
                },
            ),
        }
    }

    /// A write of `group`'s metadata completed. A group unloaded meanwhile has already
    /// answered its parked requests (NOT_COORDINATOR).
    fn on_group_stored(
        &mut self,
        now: SimTime,
        p: PartitionId,
        group: GroupId,
        store: Store,
        outcome: Result<(), ErrorCode>,
        out: &mut Outbox,
    ) {
        let Some(g) = self
            .group
            .partitions
            .get_mut(&p)
            .and_then(|loaded| loaded.live.get_mut(&group))
        else {
            return;
        };
        let next = match store {
            Store::Sync {
                generation,
                assignment,
                ..
            } => g.on_sync_stored(now, generation, assignment, outcome, out),
            Store::StaticJoin { .. } => {
                g.on_static_join_stored(now, store, outcome, out);
                None
            }
            // Kafka only logs a failed write of an emptied group.
            Store::Emptied { .. } => None,
        };
        self.store_groups(now, p, group, next, out);
    }

    /// The earliest group deadline passed (or a timer armed for an earlier one fired):
    /// expire sessions, end join phases.
    pub(super) fn on_group_tick(&mut self, now: SimTime, out: &mut Outbox) {
        if self.group.tick_armed.is_some_and(|t| t <= now) {
            self.group.tick_armed = None;
        }
        let due: Vec<(PartitionId, GroupId)> = self
            .group
            .partitions
            .iter()
            .flat_map(|(&p, loaded)| {
                loaded
                    .live
                    .iter()
                    .filter(|(_, g)| g.next_deadline().is_some_and(|t| t <= now))
                    .map(move |(&group, _)| (p, group))
            })
            .collect();
        for (p, group) in due {
            let stores = self.live_group(now, p, group).on_deadline(now, out);
            self.store_groups(now, p, group, stores, out);
        }
    }

    /// Arm [`Timer::GroupTick`] for the earliest deadline of the live groups, unless a
    /// timer armed for it (or earlier) is pending.
    pub(super) fn arm_group_tick(&mut self, now: SimTime, out: &mut Outbox) {
        let next = self
            .group
            .partitions
            .values()
            .flat_map(|loaded| loaded.live.values())
            .filter_map(Group::next_deadline)
            .min();
        let Some(at) = next.map(|t| t.max(now)) else {
            return;
        };
        if self.group.tick_armed.is_some_and(|t| t <= at && t >= now) {
            return;
        }
        self.group.tick_armed = Some(at);
        out.timer(at.since(now), Timer::GroupTick);
    }

    /// We became leader of `__consumer_offsets` partition `p`: rebuild its groups by
    /// replaying its log up to the high watermark (the rest follows as it commits).
    pub(super) fn load_groups(&mut self, p: PartitionId) {
        self.group.partitions.insert(p, OffsetsPartition::default());
        self.catch_up_group_partition(p);
    }

    /// We lost leadership of `p`: forget its groups (the new leader loads them), and
    /// answer their parked JoinGroup and SyncGroup requests NOT_COORDINATOR (Kafka's
    /// `onGroupUnloaded`). Writes in flight are answered when they fail.
    pub(super) fn unload_groups(&mut self, p: PartitionId, out: &mut Outbox) {
        let Some(loaded) = self.group.partitions.remove(&p) else {
            return;
        };
        for m in loaded.live.values().flat_map(|g| g.members.values()) {
            if let Some(w) = m.awaiting_join {
                let result = Err(ErrorCode::NotCoordinator);
                let answer = Message::JoinGroupResponse {
                    correlation: w.correlation,
                    result,
                };
                out.send(w.client, answer);
            }
            if let Some(w) = m.awaiting_sync {
                let result = Err(ErrorCode::NotCoordinator);
                let answer = Message::SyncGroupResponse {
                    correlation: w.correlation,
                    result,
                };
                out.send(w.client, answer);
            }
        }
    }

    /// Apply what became committed in every partition we coordinate.
    pub(super) fn catch_up_groups(&mut self) {
        for (p, loaded) in &mut self.group.partitions {
            loaded.catch_up(&self.replicas[p.index()]);
        }
    }

    fn catch_up_group_partition(&mut self, p: PartitionId) {
        if let Some(loaded) = self.group.partitions.get_mut(&p) {
            loaded.catch_up(&self.replicas[p.index()]);
        }
    }

    /// The live groups' own invariants.
    pub(super) fn check_group_invariants(&self) {
        for loaded in self.group.partitions.values() {
            for g in loaded.live.values() {
                g.check_invariants();
            }
        }
    }
}

#[cfg(test)]
mod tests;
