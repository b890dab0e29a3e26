//! The group coordinator, minimal: static membership (KIP-345) with a generation, and
//! the committed offsets of each group, including transactional offset commits
//! (KIP-98's `sendOffsetsToTransaction`, fenced by KIP-447). The group `g` is
//! coordinated by the leader of `__consumer_offsets` partition
//! [`crate::config::Config::consumer_offsets_partition`]`(g)`.
//!
//! Its state is the log of that partition: every change is appended as a
//! [`GroupLogEntry`] (acks=all, `min.insync.replicas` applies), and the committed
//! state is the replay of the log up to the high watermark, entry by entry in log
//! order ([`OffsetsPartition::apply`]). A transactional offset commit is appended as a
//! transactional batch of its producer, so the partition's transaction index and LSO
//! account for it, and the producer's commit or abort marker (written to this partition
//! by the transaction coordinator, which AddOffsetsToTxn told to) decides it during the
//! same replay. A new leader therefore arrives at the same state from its log alone.
//!
//! Requests are checked against the *latest* membership: the committed one plus the
//! uncommitted tail of our log (our own appends, which a leader never truncates), so a
//! member is fenced from the moment the join that replaces it is appended, as Kafka
//! updates its in-memory group before the write completes. Answers wait for the write
//! to be committed.
//!
//! Driving contract: the broker dispatches JoinGroup, TxnOffsetCommit and OffsetFetch
//! here; `load_groups`/`unload_groups` follow the leadership of the partitions, and
//! `catch_up_groups` runs after every event (and before every request) to apply what
//! became committed.
//!
//! Simplifications against Kafka's group coordinator, each marked `Simplification:`
//! where it is made: static members only, each new member its own generation; no
//! rebalance, assignor, heartbeat or session time-out; transactional offset commits
//! only (there is no plain OffsetCommit yet); loading ends when the high watermark
//! covers the log, and is answered COORDINATOR_NOT_AVAILABLE; OffsetFetch errors are
//! per request, not per partition.

use super::coordinator::write_outcome;
use super::replica::Replica;
use super::Broker;
use crate::bug::Bug;
use crate::message::{
    Control, CoordinatorEntry, ErrorCode, GroupLogEntry, Message, ProducerStamp, Record,
};
use crate::outbox::Outbox;
use crate::types::{
    Generation, GroupId, MemberId, NodeId, Offset, PartitionId, PartitionSet, ProducerEpoch,
    ProducerId, SimTime,
};
use std::collections::{BTreeMap, BTreeSet};

/// A TxnOffsetCommit request, as the coordinator needs it.
pub(super) struct TxnOffsetCommit {
    pub correlation: u64,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub group: GroupId,
    /// The consumer's (generation, member id); `None` from a client before KIP-447.
    pub group_metadata: Option<(Generation, MemberId)>,
    pub offsets: Vec<(PartitionId, Offset)>,
}

/// Who the group's members are, and in which generation.
///
/// Simplification: static members only (KIP-345 `group.instance.id`), each of which
/// computes its own assignment from its instance number: no dynamic members, no
/// JoinGroup/SyncGroup barrier or assignor, no heartbeats, session time-outs or
/// LeaveGroup. The rebalancing issue adds the members' subscriptions and an assignor
/// here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Membership {
    /// Bumped by every join of a new member (see [`Broker::on_join_group`]).
    generation: Generation,
    /// Static members: `group.instance.id` -> its current member id.
    members: BTreeMap<u32, MemberId>,
    /// Member ids replaced by a newer member of their instance (zombies).
    fenced: BTreeSet<MemberId>,
}

impl Membership {
    /// The latest entry wins, as in Kafka's replay of the log. The coordinator only
    /// writes growing generations and newer members, but a log whose lineage a
    /// reintroduced replication bug mixed is taken as it is, not asserted on (the
    /// checker is to find what follows).
    fn apply_join(&mut self, instance: u32, member: MemberId, generation: Generation) {
        if let Some(old) = self.members.insert(instance, member) {
            if old != member {
                self.fenced.insert(old);
            }
        }
        self.generation = generation;
    }

    /// KIP-447: may `member` of `generation` commit offsets?
    fn check_commit(&self, member: MemberId, generation: Generation) -> Result<(), ErrorCode> {
        if !self.members.values().any(|&m| m == member) {
            return Err(if self.fenced.contains(&member) {
                ErrorCode::FencedInstanceId
            } else {
                ErrorCode::UnknownMemberId
            });
        }
        if generation != self.generation {
            return Err(ErrorCode::IllegalGeneration);
        }
        Ok(())
    }
}

/// One group's committed state.
#[derive(Clone, Debug, Default)]
struct GroupMeta {
    membership: Membership,
    /// Committed offsets: partition -> the next offset to consume.
    offsets: BTreeMap<PartitionId, Offset>,
    /// Transactional commits whose marker is not committed yet, by producer id.
    pending: BTreeMap<ProducerId, BTreeMap<PartitionId, Offset>>,
}

/// The state loaded from one `__consumer_offsets` partition we lead.
#[derive(Clone, Debug, Default)]
struct OffsetsPartition {
    /// The log is applied up to here (exclusive): the high watermark last seen.
    applied: Offset,
    groups: BTreeMap<GroupId, GroupMeta>,
}

impl OffsetsPartition {
    /// Apply the records of our replica `r` (we lead it) that its HW now covers.
    fn catch_up(&mut self, r: &Replica) {
        let p = r.partition;
        debug_assert!(r.is_leader(), "{p:?}: groups loaded by a non-leader");
        debug_assert!(
            self.applied <= r.high_watermark,
            "{p:?}: a leader's HW never goes back"
        );
        let count = r.high_watermark.0.saturating_sub(self.applied.0) as usize;
        for record in r.log.read(self.applied, count) {
            self.apply(record);
        }
        self.applied = r.high_watermark;
    }

    /// Replay one committed record of the partition.
    fn apply(&mut self, record: &Record) {
        let producer = record.producer.map(|(stamp, _)| stamp.producer_id);
        match (record.txn_state, record.control, producer) {
            (
                Some(CoordinatorEntry::Group(GroupLogEntry::Member {
                    group,
                    instance,
                    member,
                    generation,
                })),
                _,
                _,
            ) => self
                .groups
                .entry(group)
                .or_default()
                .membership
                .apply_join(instance, member, generation),
            (
                Some(CoordinatorEntry::Group(GroupLogEntry::Offset {
                    group,
                    partition,
                    offset,
                })),
                _,
                Some(producer),
            ) => {
                self.groups
                    .entry(group)
                    .or_default()
                    .pending
                    .entry(producer)
                    .or_default()
                    .insert(partition, offset);
            }
            // A marker decides the producer's pending commits of every group here.
            (None, Some(control), Some(producer)) => {
                for g in self.groups.values_mut() {
                    if let Some(decided) = g.pending.remove(&producer) {
                        if control == Control::Commit {
                            g.offsets.extend(decided);
                        }
                    }
                }
            }
            _ => debug_assert!(record.txn_state.is_none(), "only groups' entries here"),
        }
    }
}

/// What to answer once a group-log write completes.
#[derive(Clone, Copy, Debug)]
enum AfterWrite {
    JoinGroup {
        client: NodeId,
        correlation: u64,
        generation: Generation,
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
    /// Group-log appends waiting for the HW: write id -> what to answer.
    writes: BTreeMap<u64, AfterWrite>,
}

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

    /// The membership of `group` including the uncommitted tail of our log.
    fn latest_membership(&self, p: PartitionId, group: GroupId) -> Membership {
        let loaded = &self.group.partitions[&p];
        let mut membership = loaded
            .groups
            .get(&group)
            .map(|g| g.membership.clone())
            .unwrap_or_default();
        for record in self.replicas[p.index()]
            .log
            .read(loaded.applied, usize::MAX)
        {
            if let Some(CoordinatorEntry::Group(GroupLogEntry::Member {
                group: g,
                instance,
                member,
                generation,
            })) = record.txn_state
            {
                if g == group {
                    membership.apply_join(instance, member, generation);
                }
            }
        }
        membership
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
                    matches!(r.txn_state, Some(CoordinatorEntry::Group(GroupLogEntry::Offset {
                        group: g, partition: q, ..
                    })) if g == group && q == partition)
                })
    }

    /// JoinGroup for a static member (KIP-345): a member id older than the instance's
    /// current one is a zombie (FENCED_INSTANCE_ID); the instance's current member
    /// rejoining (after a fenced producer, an ILLEGAL_GENERATION) is answered the
    /// committed generation, unchanged; a new member is written with the next
    /// generation and answered with it once committed.
    ///
    /// Simplification: a new member of an instance starts a new generation. With static
    /// membership Kafka would hand a restarted instance its assignment without a
    /// rebalance (and keep the generation), but the bump is what exercises KIP-447's
    /// generation fence on a zombie's commits. A rejoin of the current member does not
    /// bump: otherwise every instance's rejoin would fence the others' commits in turn.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_join_group(
        &mut self,
        now: SimTime,
        client: NodeId,
        correlation: u64,
        group: GroupId,
        instance: u32,
        member: MemberId,
        out: &mut Outbox,
    ) {
        let answer = |result| Message::JoinGroupResponse {
            correlation,
            result,
        };
        let p = match self.group_coordinator(group) {
            Ok(p) => p,
            Err(e) => return out.send(client, answer(Err(e))),
        };
        let latest = self.latest_membership(p, group);
        if latest.members.get(&instance).is_some_and(|&m| m > member) {
            return out.send(client, answer(Err(ErrorCode::FencedInstanceId)));
        }
        let committed = self.group.partitions[&p]
            .groups
            .get(&group)
            .map(|g| &g.membership);
        if committed.is_some_and(|c| *c == latest && c.members.get(&instance) == Some(&member)) {
            return out.send(client, answer(Ok(latest.generation)));
        }
        let generation = Generation(latest.generation.0 + 1);
        let entry = GroupLogEntry::Member {
            group,
            instance,
            member,
            generation,
        };
        self.write_group_log(
            now,
            p,
            &[group_record(entry, None)],
            AfterWrite::JoinGroup {
                client,
                correlation,
                generation,
            },
            out,
        );
    }

    /// TxnOffsetCommit (KIP-98, fenced by KIP-447): the member must be a current member
    /// of the group (an older member of an instance is FENCED_INSTANCE_ID, anyone else
    /// UNKNOWN_MEMBER_ID) and its generation the group's (ILLEGAL_GENERATION). The
    /// offsets are appended as a transactional batch of the producer and stay pending
    /// until its marker; the answer waits for the append to be committed.
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
        let p = match self.group_coordinator(req.group) {
            Ok(p) => p,
            Err(e) => return out.send(client, answer(Err(e))),
        };
        // A client before KIP-447 sends no group metadata: nothing to fence by.
        if let (false, Some((generation, member))) = (
            self.bug(Bug::NoTxnOffsetGenerationFence),
            req.group_metadata,
        ) {
            let latest = self.latest_membership(p, req.group);
            if let Err(e) = latest.check_commit(member, generation) {
                return out.send(client, answer(Err(e)));
            }
        }
        if req.offsets.is_empty() {
            return out.send(client, answer(Ok(())));
        }
        let stamp = ProducerStamp {
            producer_id: req.producer_id,
            producer_epoch: req.producer_epoch,
            base_sequence: 0,
            transactional: true,
        };
        let records: Vec<Record> = req
            .offsets
            .iter()
            .zip(0..)
            .map(|(&(partition, offset), sequence)| {
                let entry = GroupLogEntry::Offset {
                    group: req.group,
                    partition,
                    offset,
                };
                group_record(entry, Some((stamp, sequence)))
            })
            .collect();
        self.write_group_log(
            now,
            p,
            &records,
            AfterWrite::TxnOffsetCommit {
                client,
                correlation: req.correlation,
            },
            out,
        );
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

    /// A group-log append completed: answer the request that made it (the committed
    /// state already includes it, see `drain_coordinator_writes`).
    pub(super) fn on_group_log_written(
        &mut self,
        write: u64,
        result: Result<Offset, ErrorCode>,
        out: &mut Outbox,
    ) {
        let Some(then) = self.group.writes.remove(&write) else {
            return;
        };
        let outcome = write_outcome(result);
        match then {
            AfterWrite::JoinGroup {
                client,
                correlation,
                generation,
            } => out.send(
                client,
                Message::JoinGroupResponse {
                    correlation,
                    result: outcome.map(|()| generation),
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

    /// We became leader of `__consumer_offsets` partition `p`: rebuild its groups by
    /// replaying its log up to the high watermark (the rest follows as it commits).
    pub(super) fn load_groups(&mut self, p: PartitionId) {
        self.group.partitions.insert(p, OffsetsPartition::default());
        self.catch_up_group_partition(p);
    }

    /// We lost leadership of `p`: forget its groups (the new leader loads them). Writes
    /// in flight are answered when they fail.
    pub(super) fn unload_groups(&mut self, p: PartitionId) {
        self.group.partitions.remove(&p);
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
}

/// A record of `__consumer_offsets` (its leader epoch is stamped by the append).
fn group_record(
    entry: GroupLogEntry,
    producer: Option<(ProducerStamp, crate::types::Sequence)>,
) -> Record {
    Record {
        value: 0,
        epoch: Default::default(),
        producer,
        control: None,
        txn_state: Some(CoordinatorEntry::Group(entry)),
    }
}

#[cfg(test)]
mod tests;
