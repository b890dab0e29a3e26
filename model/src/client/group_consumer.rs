//! The subscribe-mode consumer: a `KafkaConsumer` that subscribes to `orders` as a
//! member of a consumer group in Kafka's classic group protocol, and the application
//! loop around it: poll, process the batch (which takes simulated time), commit.
//!
//! Membership (the classic `ConsumerCoordinator`, as in Kafka 3.x):
//! JoinGroup (the member's `partition.assignment.strategy`, its owned partitions and
//! their generation, KIP-429/KIP-792) -> the leader runs the assignor
//! ([`super::group::assign`]) -> SyncGroup -> OffsetFetch for the partitions it did not
//! own before (the committed offset, or `auto.offset.reset`) -> fetch. Heartbeats go out
//! every `heartbeat.interval.ms` from the heartbeat "thread", also while the app
//! processes; what they learn (`REBALANCE_IN_PROGRESS`, `ILLEGAL_GENERATION`,
//! `UNKNOWN_MEMBER_ID`, `FENCED_INSTANCE_ID`) takes effect at the next `poll()`, as in
//! Kafka. A batch that takes longer than `max.poll.interval.ms` makes the heartbeat
//! thread leave the group (LeaveGroup for a dynamic member; a static member just stops,
//! KIP-345) and the member rejoins at its next poll.
//!
//! Protocols: an eager assignor (`range`, `roundrobin`) revokes everything before
//! rejoining (`onJoinPrepare`); `cooperative-sticky` (KIP-429) keeps its partitions
//! while rejoining, revokes only what the new assignment leaves out, and rejoins at
//! once so that a follow-up rebalance hands those out.
//!
//! Commits: `enable.auto.commit=true` commits the consumed positions (everything
//! `poll()` returned) every `auto.commit.interval.ms`, and synchronously before a
//! revocation. `enable.auto.commit=false` is the manual pattern of the design guide:
//! process the batch, then `commitSync()` its positions (or, with `commit=async`,
//! `commitAsync()`: the loop goes on without waiting, and a failed commit is not
//! retried).
//!
//! Simplification (README, fidelity): the auto-commit timer runs beside processing,
//! as in an application that hands each batch to a worker and keeps polling (the
//! classic consumer commits only inside `poll()`, which is at-least-once only if every
//! record `poll()` returned is processed before the next call: Kafka's own warning in
//! the `KafkaConsumer` docs). Its commits are recorded under their own process id (the
//! consumer's process + [`AUTO_COMMIT_PROCESS_OFFSET`]), since they overlap the
//! application's batch. `auto.offset.reset=latest` takes the high watermark a Fetch
//! reports (there is no ListOffsets request).
//!
//! Stale claims: a member that was fenced (a poll time-out, an expired session) stops
//! consuming its partitions (`onPartitionsLost`) but its next JoinGroup still claims
//! them as owned, with the generation it held them in, as Kafka's consumer did from
//! 2.4 until KAFKA-13406. KIP-792's generation in the subscription is what lets the
//! assignor tell such a claim from a current one (KAFKA-12984); the
//! `stale-owned-partitions` switch believes it.
//!
//! History: `subscribe` once; every change of the partitions the member holds as an
//! `assign` with `group`, `generation`, `member` (eager: `[]` with the old generation
//! before rejoining; cooperative: the new assignment, which drops what it revokes;
//! a fenced member's lost partitions as `[]` without a generation); one `poll`
//! operation per batch, invoked when `poll()` returns it and completed `ok` when it has
//! been processed (a process that crashes mid-batch completes it `ok` with the records
//! it had processed, one after the other; the rest were never processed, and with
//! nothing processed it completes `info`); one `commit` per offset commit, `ok`, `fail`
//! (refused) or `info`.

use super::consumer::fetched_records;
use super::group::{assign, Assignor, AssignorFaults, MemberSubscription};
use super::heartbeat::Heartbeats;
use super::metadata::MetadataCache;
use super::requests::Requests;
use super::wake::WakeUp;
use crate::bug::Bug;
use crate::config::{CommitStrategy, Config, OffsetReset};
use crate::history::{HistoryEvent, MicroOp, OpKind, Outcome};
use crate::message::{ErrorCode, FetchData, Joined, Message};
use crate::outbox::{Outbox, Timer};
use crate::rng::ModelRng;
use crate::types::{
    BrokerId, ClientId, Generation, GroupId, MemberId, NodeId, Offset, PartitionId, PartitionSet,
    SimTime, Value,
};
use std::collections::BTreeMap;

/// Records per partition, in offset order: a batch `poll()` returned.
type Batch = BTreeMap<PartitionId, Vec<(Offset, Value)>>;

/// A consumer's JoinGroup waits up to the rebalance time-out: its request time-out is
/// that plus this (Kafka's `JOIN_GROUP_TIMEOUT_LAPSE`).
const JOIN_GROUP_TIMEOUT_LAPSE_MS: u64 = 5_000;

/// The auto-commits of consumer process `p` are recorded as process `p` plus this.
pub const AUTO_COMMIT_PROCESS_OFFSET: u64 = 1 << 11;

/// Who one consumer instance is.
#[derive(Clone, Copy, Debug)]
pub struct MemberSpec {
    pub group: GroupId,
    /// `group.instance.id` (KIP-345 static membership), or a dynamic member.
    pub instance: Option<u32>,
    /// Simulated processing time per record of a batch.
    pub processing_ms_per_record: u64,
    /// Pause after a poll that returned nothing.
    pub poll_interval_ms: u64,
    /// Process ids are `process_base + k * process_stride`, k = 0, 1, ...
    pub process_base: u64,
    pub process_stride: u64,
}

/// Where the application loop is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Eager revocation or a rebalance pending: commit what was consumed first
    /// (`enable.auto.commit`), then join.
    CommitBeforeJoin,
    /// Waiting for the rebalance to complete (eager, or a member without a valid
    /// membership): `poll()` returns nothing meanwhile.
    Rejoining,
    /// OffsetFetch for newly assigned partitions.
    FetchOffsets,
    /// `auto.offset.reset=latest`: learn the high watermark of partitions with no
    /// committed offset.
    ResetLatest,
    Poll,
    Processing,
    /// Manual `commitSync()` after processing.
    Commit,
    Done,
}

/// The two requests of a rebalance on the member's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JoinPhase {
    Join,
    Sync,
}

/// An offset commit in flight or being retried.
#[derive(Clone, Debug)]
struct PendingCommit {
    process: u64,
    offsets: Vec<(PartitionId, Offset)>,
    generation: Generation,
    member: MemberId,
}

/// What the members did, for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemberStats {
    pub batches: u64,
    pub records: u64,
    pub commits_ok: u64,
    pub commits_failed: u64,
    pub rebalances: u64,
    /// Time spent rebalancing (from leaving the poll loop to rejoin until SyncGroup
    /// answered), in all and the longest, in ms.
    pub rebalance_ms: u64,
    pub rebalance_ms_max: u64,
    /// Times the member left because a batch outlasted `max.poll.interval.ms`.
    pub poll_timeouts: u64,
}

impl MemberStats {
    pub fn plus(self, o: MemberStats) -> MemberStats {
        MemberStats {
            batches: self.batches + o.batches,
            records: self.records + o.records,
            commits_ok: self.commits_ok + o.commits_ok,
            commits_failed: self.commits_failed + o.commits_failed,
            rebalances: self.rebalances + o.rebalances,
            rebalance_ms: self.rebalance_ms + o.rebalance_ms,
            rebalance_ms_max: self.rebalance_ms_max.max(o.rebalance_ms_max),
            poll_timeouts: self.poll_timeouts + o.poll_timeouts,
        }
    }
}

pub struct GroupConsumer {
    pub id: ClientId,
    config: Config,
    spec: MemberSpec,
    /// The group's `__consumer_offsets` partition, whose leader coordinates it.
    coordinator: PartitionId,
    assignor: Assignor,
    rng: ModelRng,
    meta: MetadataCache,
    process: u64,
    /// The process id of the asynchronous commits (a new one after an `info` commit).
    auto_process: u64,
    step: Step,
    /// Requests of the current step.
    inflight: Requests,
    member: Option<MemberId>,
    generation: Generation,
    /// The partitions the member holds (its last assignment minus what it revoked).
    pub owned: Vec<PartitionId>,
    /// Whether `owned` came from a SyncGroup the member is still in the generation of.
    owned_valid: bool,
    /// The generation `owned` was assigned in (KIP-792's owned generation).
    owned_generation: Generation,
    /// What its subscription claims as owned (KIP-429) and the generation it got them
    /// in (KIP-792): its last assignment, kept after it was fenced (see the module's
    /// note on stale claims), emptied by an eager revocation.
    claimed: Vec<PartitionId>,
    claimed_generation: Option<Generation>,
    /// A rebalance in progress on the member's side: its phase and the request in
    /// flight (none: send it at the next wake-up).
    joining: Option<(JoinPhase, Option<(u64, BrokerId)>)>,
    /// A cooperative member's new assignment, applied at its next `poll()`.
    synced: Option<(Generation, Vec<PartitionId>)>,
    sync_assignments: Vec<(MemberId, Vec<PartitionId>)>,
    /// Positions of owned partitions that are known (fetched offsets or reset).
    pub positions: BTreeMap<PartitionId, Offset>,
    /// Owned partitions waiting for a position.
    unpositioned: Vec<PartitionId>,
    /// Records fetched but not yet returned by `poll()`.
    polled: Batch,
    /// The batch being processed, and since when.
    batch: Option<Batch>,
    batch_started: SimTime,
    /// When the application last called `poll()` (for `max.poll.interval.ms`).
    last_poll: SimTime,
    /// The heartbeat thread's timer and the Heartbeat in flight.
    heartbeats: Heartbeats,
    /// The heartbeat thread learnt the group moved on: rejoin at the next poll.
    rejoin: bool,
    /// A newer process took our `group.instance.id`: exit at the next poll.
    instance_fenced: bool,
    /// The `commitSync()` in flight (main process) and the asynchronous commit in flight
    /// (auto-commit or `commitAsync()`, under `auto_process`).
    commit: Option<(u64, PendingCommit)>,
    auto_commit: Option<(u64, PendingCommit)>,
    /// The positions last committed (auto-commit skips a commit with nothing new).
    last_committed: BTreeMap<PartitionId, Offset>,
    next_id: u64,
    /// Runs the application loop again after a delay.
    wake: WakeUp,
    pub exited: bool,
    /// `close()` was called: leave at the next poll.
    closing: bool,
    /// A loss of partitions waits to be recorded until the open operation completes.
    loss_unrecorded: bool,
    /// When the rebalance in progress began on this member's side.
    rebalance_started: Option<SimTime>,
    /// Extra processing time of the next batch (a slow batch, `Fault::AppSlowBatch`).
    slow_next_ms: u64,
    pub stats: MemberStats,
}

impl GroupConsumer {
    pub fn new(id: ClientId, config: &Config, spec: MemberSpec, seed: u64) -> GroupConsumer {
        GroupConsumer {
            id,
            config: config.clone(),
            spec,
            coordinator: config.consumer_offsets_partition(spec.group),
            assignor: config.partition_assignment_strategy,
            rng: ModelRng::new(seed),
            meta: MetadataCache::new(config.total_partitions(), config.brokers),
            process: spec.process_base,
            auto_process: spec.process_base + AUTO_COMMIT_PROCESS_OFFSET,
            step: Step::Poll,
            inflight: Requests::default(),
            member: None,
            generation: Generation::default(),
            owned: Vec::new(),
            owned_valid: false,
            owned_generation: Generation::default(),
            claimed: Vec::new(),
            claimed_generation: None,
            joining: None,
            synced: None,
            sync_assignments: Vec::new(),
            positions: BTreeMap::new(),
            unpositioned: Vec::new(),
            polled: BTreeMap::new(),
            batch: None,
            batch_started: SimTime::ZERO,
            last_poll: SimTime::ZERO,
            heartbeats: Heartbeats::default(),
            rejoin: false,
            instance_fenced: false,
            commit: None,
            auto_commit: None,
            last_committed: BTreeMap::new(),
            next_id: 0,
            wake: WakeUp::default(),
            exited: false,
            closing: false,
            slow_next_ms: 0,
            rebalance_started: None,
            loss_unrecorded: false,
            stats: MemberStats::default(),
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn auto_commit_enabled(&self) -> bool {
        self.config.commit == CommitStrategy::Auto
    }

    /// Nothing processed and uncommitted, nothing in flight: the run may end.
    /// An instance that left or exited waits for nothing (an asynchronous commit it
    /// left in flight ends `info` with the run).
    pub fn is_idle(&self) -> bool {
        self.exited || (self.batch.is_none() && self.commit.is_none() && self.auto_commit.is_none())
    }

    pub fn start(&mut self, now: SimTime, out: &mut Outbox) {
        self.last_poll = now;
        let topic = PartitionId(0);
        self.record(OpKind::Subscribe, Outcome::Invoke, vec![topic], out);
        self.record(OpKind::Subscribe, Outcome::Ok, vec![topic], out);
        let c = self.next_id();
        self.meta.refresh(now, c, &mut self.rng, out);
        if self.auto_commit_enabled() {
            out.timer_ms(self.config.auto_commit_interval_ms, Timer::AutoCommit);
        }
        self.wake.arm(now, 0, out);
    }

    /// An event for the history; `assigned` is the partition list of `assign`, or a
    /// partition of each subscribed topic for `subscribe`.
    fn record(&self, kind: OpKind, outcome: Outcome, assigned: Vec<PartitionId>, out: &mut Outbox) {
        out.record(HistoryEvent {
            process: self.process,
            outcome,
            kind,
            mops: Vec::new(),
            assigned,
            error: None,
            offsets: Vec::new(),
            group: Some((self.spec.group, None)),
        });
    }

    /// The member now holds exactly `owned`: an `assign` with the generation, or none
    /// after it was fenced (its partitions are lost, not handed over).
    fn record_owned(&self, fenced: bool, out: &mut Outbox) {
        let metadata = match (fenced, self.member) {
            (false, Some(member)) => Some((self.owned_generation, member)),
            _ => None,
        };
        for event in HistoryEvent::assign(
            self.process,
            self.owned.clone(),
            Some((self.spec.group, metadata)),
        ) {
            out.record(event);
        }
    }

    fn go(&mut self, now: SimTime, step: Step, out: &mut Outbox) {
        self.step = step;
        self.inflight.clear();
        self.run_step(now, out);
    }

    /// Leader of `p`, or a metadata refresh and `None` (retry later).
    fn leader_of(&mut self, now: SimTime, p: PartitionId, out: &mut Outbox) -> Option<BrokerId> {
        self.meta
            .leader_or_refresh(now, p, &mut self.next_id, &mut self.rng, out)
    }

    /// Send a request of the current step, built around a fresh correlation id.
    fn send(
        &mut self,
        to: BrokerId,
        partition: Option<PartitionId>,
        msg: impl FnOnce(u64) -> Message,
        timeout_ms: u64,
        out: &mut Outbox,
    ) -> u64 {
        let c = self.next_id();
        self.inflight
            .send(c, to, partition, msg(c), timeout_ms, out);
        c
    }

    /// `poll()` as the application calls it: coordinator work first (what heartbeats
    /// learnt, a pending rejoin, positions to reset), then the records fetched, or a
    /// fetch.
    fn poll(&mut self, now: SimTime, out: &mut Outbox) {
        self.last_poll = now;
        if self.instance_fenced {
            return self.exit(out);
        }
        if let Some((generation, assigned)) = self.synced.take() {
            if self.apply_assignment(generation, assigned, out) {
                return self.go(now, Step::FetchOffsets, out);
            }
        }
        let invalid = self.closing || self.member.is_none() || !self.owned_valid;
        if (invalid || self.rejoin) && self.joining.is_none() {
            self.rejoin = false;
            if invalid || !self.assignor.is_cooperative() {
                return self.go(now, Step::CommitBeforeJoin, out);
            }
            // KIP-429: a cooperative member rejoins in the background and goes on
            // consuming what it owns; the new assignment applies at a later poll.
            self.start_join(now, out);
        }
        if !self.unpositioned.is_empty() {
            return self.reset_positions(now, out);
        }
        if let Some(batch) = self.take_polled() {
            return self.process(now, batch, out);
        }
        for p in self.owned.clone() {
            if let Some(&position) = self.positions.get(&p) {
                self.send_fetch(now, p, Some(position), out);
            }
        }
        if self.inflight.is_empty() {
            self.wake.arm(now, self.spec.poll_interval_ms, out);
        }
    }

    /// Fetch `p` from its leader (unknown: refresh the metadata, the step retries).
    /// From `position`: a poll's fetch, of up to `max.poll.records` at the leader epoch
    /// the member knows; none: a fetch of no records that only learns the high
    /// watermark, for `auto.offset.reset=latest` (there is no ListOffsets request).
    fn send_fetch(
        &mut self,
        now: SimTime,
        p: PartitionId,
        position: Option<Offset>,
        out: &mut Outbox,
    ) {
        let Some(leader) = self.leader_of(now, p, out) else {
            return;
        };
        let (fetch_offset, current_leader_epoch, max_records) = match position {
            Some(offset) => (
                offset,
                self.meta.leader(p).map(|(_, e)| e),
                self.config.max_poll_records,
            ),
            None => (Offset::ZERO, None, 0),
        };
        let read_committed = self.config.read_committed;
        let timeout = self.config.fetch_max_wait_ms + self.config.request_timeout_ms;
        self.send(
            leader,
            Some(p),
            |correlation| Message::Fetch {
                correlation,
                replica: None,
                partition: p,
                fetch_offset,
                current_leader_epoch,
                max_records,
                read_committed,
            },
            timeout,
            out,
        );
    }

    /// Up to `max.poll.records` of what fetches brought, partition by partition.
    fn take_polled(&mut self) -> Option<Batch> {
        let mut room = self.config.max_poll_records as usize;
        let mut batch = BTreeMap::new();
        for (&p, records) in self.polled.iter_mut() {
            if room == 0 {
                break;
            }
            let n = records.len().min(room);
            room -= n;
            batch.insert(p, records.drain(..n).collect::<Vec<_>>());
        }
        self.polled.retain(|_, r| !r.is_empty());
        (!batch.is_empty()).then_some(batch)
    }

    /// The consumed position of `p`: the next record `poll()` returns (fetched records
    /// not yet returned do not count).
    fn consumed(&self, p: PartitionId) -> Option<Offset> {
        match self.polled.get(&p).and_then(|r| r.first()) {
            Some(&(offset, _)) => Some(offset),
            None => self.positions.get(&p).copied(),
        }
    }

    /// The consumed positions of the partitions this member holds.
    pub fn consumed_positions(&self) -> impl Iterator<Item = (PartitionId, Offset)> + '_ {
        self.owned
            .iter()
            .filter_map(|&p| self.consumed(p).map(|o| (p, o)))
    }

    /// Consumed positions of owned partitions not yet committed.
    fn uncommitted_positions(&self) -> Vec<(PartitionId, Offset)> {
        self.consumed_positions()
            .filter(|(p, o)| self.last_committed.get(p) != Some(o))
            .collect()
    }

    /// `poll()` returned a batch: the application processes it.
    fn process(&mut self, now: SimTime, batch: Batch, out: &mut Outbox) {
        let records: usize = batch.values().map(Vec::len).sum();
        self.record_batch(Outcome::Invoke, None, None, out);
        self.batch = Some(batch);
        self.batch_started = now;
        self.step = Step::Processing;
        let ms = self.spec.processing_ms_per_record * records as u64;
        out.timer_ms(
            ms + std::mem::take(&mut self.slow_next_ms),
            Timer::Processed,
        );
    }

    fn record_batch(
        &self,
        outcome: Outcome,
        reads: Option<Batch>,
        error: Option<&'static str>,
        out: &mut Outbox,
    ) {
        out.record(HistoryEvent {
            process: self.process,
            outcome,
            kind: OpKind::Poll,
            mops: vec![MicroOp::Poll {
                reads: reads.map(|b| b.into_iter().collect()),
            }],
            assigned: Vec::new(),
            error,
            offsets: Vec::new(),
            group: Some((self.spec.group, None)),
        });
    }

    /// The batch is processed: record it, then `commitSync()` (manual) and poll again.
    fn processed(&mut self, now: SimTime, out: &mut Outbox) {
        let Some(batch) = self.batch.take() else {
            return;
        };
        self.stats.batches += 1;
        self.stats.records += batch.values().map(|r| r.len() as u64).sum::<u64>();
        self.record_batch(Outcome::Ok, Some(batch), None, out);
        self.flush_loss(out);
        if self.config.commit == CommitStrategy::ManualAsync {
            self.commit_async(now, out);
            return self.go(now, Step::Poll, out);
        }
        let offsets = self.uncommitted_positions();
        match self.member {
            // A member that left the group meanwhile (poll time-out) gets
            // CommitFailedException without asking the coordinator.
            Some(member)
                if !self.auto_commit_enabled() && self.owned_valid && !offsets.is_empty() =>
            {
                let pending = self.pending_commit(self.process, offsets, member);
                self.record_commit(&pending, Outcome::Invoke, None, out);
                self.commit = Some((0, pending));
                self.go(now, Step::Commit, out);
            }
            _ => self.go(now, Step::Poll, out),
        }
    }

    fn pending_commit(
        &self,
        process: u64,
        offsets: Vec<(PartitionId, Offset)>,
        member: MemberId,
    ) -> PendingCommit {
        PendingCommit {
            process,
            offsets,
            generation: self.generation,
            member,
        }
    }

    fn record_commit(
        &self,
        c: &PendingCommit,
        outcome: Outcome,
        error: Option<&'static str>,
        out: &mut Outbox,
    ) {
        out.record(HistoryEvent {
            process: c.process,
            outcome,
            kind: OpKind::Commit,
            mops: Vec::new(),
            assigned: Vec::new(),
            error,
            offsets: c.offsets.clone(),
            group: Some((self.spec.group, Some((c.generation, c.member)))),
        });
    }

    fn offset_commit(spec: MemberSpec, correlation: u64, c: &PendingCommit) -> Message {
        Message::OffsetCommit {
            correlation,
            group: spec.group,
            generation: Some(c.generation),
            member: Some(c.member),
            instance: spec.instance,
            offsets: c.offsets.clone(),
        }
    }

    fn run_step(&mut self, now: SimTime, out: &mut Outbox) {
        if self.exited {
            return;
        }
        self.drive_join(now, out);
        if !self.inflight.is_empty() {
            return;
        }
        let group = self.spec.group;
        match self.step {
            Step::Poll => self.poll(now, out),
            Step::Processing | Step::Rejoining | Step::Done => {}
            Step::CommitBeforeJoin => {
                // onJoinPrepare: an auto-committing member commits what it consumed
                // (synchronously) before it revokes.
                if self.commit.is_some() {
                    return self.send_commit(now, out);
                }
                let offsets = self.uncommitted_positions();
                match self.member {
                    Some(member)
                        if self.auto_commit_enabled()
                            && self.owned_valid
                            && !offsets.is_empty() =>
                    {
                        let pending = self.pending_commit(self.process, offsets, member);
                        self.record_commit(&pending, Outcome::Invoke, None, out);
                        self.commit = Some((0, pending));
                        self.send_commit(now, out);
                    }
                    _ => self.begin_join(now, out),
                }
            }
            Step::Commit => self.send_commit(now, out),
            Step::FetchOffsets => {
                let Some(to) = self.leader_of(now, self.coordinator, out) else {
                    return self.wake.arm(now, self.config.retry_backoff_ms, out);
                };
                let partitions: PartitionSet = self.unpositioned.iter().copied().collect();
                let require_stable = self.config.read_committed;
                let timeout = self.config.request_timeout_ms;
                self.send(
                    to,
                    None,
                    |correlation| Message::OffsetFetch {
                        correlation,
                        group,
                        partitions,
                        require_stable,
                    },
                    timeout,
                    out,
                );
            }
            Step::ResetLatest => {
                for p in self.unpositioned.clone() {
                    self.send_fetch(now, p, None, out);
                }
                if self.inflight.is_empty() {
                    self.wake.arm(now, self.config.retry_backoff_ms, out);
                }
            }
        }
    }

    /// Send (or resend) the pending `commitSync()`.
    fn send_commit(&mut self, now: SimTime, out: &mut Outbox) {
        let Some((_, pending)) = self.commit.clone() else {
            return;
        };
        let Some(to) = self.leader_of(now, self.coordinator, out) else {
            return self.wake.arm(now, self.config.retry_backoff_ms, out);
        };
        let (timeout, spec) = (self.config.request_timeout_ms, self.spec);
        let correlation = self.send(
            to,
            None,
            |correlation| Self::offset_commit(spec, correlation, &pending),
            timeout,
            out,
        );
        if let Some(c) = self.commit.as_mut() {
            c.0 = correlation;
        }
    }

    /// Start a rebalance on this member's side (`onJoinPrepare`), waiting for it: an
    /// eager member revokes everything first.
    fn begin_join(&mut self, now: SimTime, out: &mut Outbox) {
        if self.closing {
            return self.leave(now, out);
        }
        if !self.assignor.is_cooperative() {
            self.claimed.clear();
        }
        if !self.assignor.is_cooperative() && !self.owned.is_empty() {
            self.owned.clear();
            self.positions.clear();
            self.polled.clear();
            self.record_owned(self.member.is_none(), out);
        }
        self.unpositioned.clear();
        self.go(now, Step::Rejoining, out);
        self.start_join(now, out);
    }

    fn start_join(&mut self, now: SimTime, out: &mut Outbox) {
        self.stats.rebalances += 1;
        self.rebalance_started.get_or_insert(now);
        self.joining = Some((JoinPhase::Join, None));
        self.drive_join(now, out);
    }

    /// Send the rebalance's current request (JoinGroup, then SyncGroup) unless one is
    /// in flight.
    fn drive_join(&mut self, now: SimTime, out: &mut Outbox) {
        let Some((phase, None)) = self.joining else {
            return;
        };
        let Some(to) = self.leader_of(now, self.coordinator, out) else {
            return self.wake.arm(now, self.config.retry_backoff_ms, out);
        };
        let correlation = self.next_id();
        let (group, member, instance) = (self.spec.group, self.member, self.spec.instance);
        let (msg, timeout) = match phase {
            JoinPhase::Join => {
                let cooperative = self.assignor.is_cooperative();
                let (owned, owned_generation) = if cooperative {
                    (self.claimed.clone(), self.claimed_generation)
                } else {
                    (Vec::new(), None)
                };
                let rebalance_timeout_ms = self.config.max_poll_interval_ms;
                let msg = Message::JoinGroup {
                    correlation,
                    group,
                    member,
                    instance,
                    session_timeout_ms: self.config.session_timeout_ms,
                    rebalance_timeout_ms,
                    protocols: vec![self.assignor.name().to_string()],
                    owned,
                    owned_generation,
                };
                let timeout = self
                    .config
                    .request_timeout_ms
                    .max(rebalance_timeout_ms + JOIN_GROUP_TIMEOUT_LAPSE_MS);
                (msg, timeout)
            }
            JoinPhase::Sync => {
                let msg = Message::SyncGroup {
                    correlation,
                    group,
                    generation: self.generation,
                    member: member.unwrap_or(MemberId(0)),
                    instance,
                    assignments: self.sync_assignments.clone(),
                };
                (msg, self.config.request_timeout_ms)
            }
        };
        out.send(NodeId::Broker(to), msg);
        out.timer_ms(timeout, Timer::RequestTimeout(correlation));
        self.joining = Some((phase, Some((correlation, to))));
    }

    /// The phase of the rebalance request `correlation` answers, if it is the one in
    /// flight.
    fn join_request(&self, correlation: u64) -> Option<JoinPhase> {
        match self.joining {
            Some((phase, Some((c, _)))) if c == correlation => Some(phase),
            _ => None,
        }
    }

    /// The JoinGroup answer: the leader runs the assignor over every member's
    /// subscription (the coordinator picked the protocol all members support).
    fn on_joined(&mut self, now: SimTime, joined: Joined, out: &mut Outbox) {
        self.member = Some(joined.member);
        self.generation = joined.generation;
        self.sync_assignments = Vec::new();
        if joined.leader == joined.member {
            let assignor = Assignor::parse(&joined.protocol).unwrap_or(self.assignor);
            let members: Vec<MemberSubscription> = joined
                .members
                .iter()
                .map(
                    |(member, instance, owned, owned_generation)| MemberSubscription {
                        member: *member,
                        instance: *instance,
                        owned: owned.clone(),
                        owned_generation: owned_generation.filter(|g| *g < joined.generation),
                    },
                )
                .collect();
            let faults = AssignorFaults {
                assign_before_revoke: self.config.has_bug(Bug::CooperativeAssignBeforeRevoke),
                trust_stale_owned: self.config.has_bug(Bug::StaleOwnedPartitions),
            };
            let partitions: Vec<PartitionId> =
                (0..self.config.partitions).map(PartitionId).collect();
            self.sync_assignments =
                assign(assignor, &partitions, &members, joined.generation, faults)
                    .into_iter()
                    .collect();
        }
        self.joining = Some((JoinPhase::Sync, None));
        self.drive_join(now, out);
    }

    /// SyncGroup gave this member its assignment: the rebalance is over on its side.
    /// A member waiting in `poll()` applies it now; a cooperative member that went on
    /// consuming applies it at its next poll.
    fn on_synced(&mut self, now: SimTime, assigned: Vec<PartitionId>, out: &mut Outbox) {
        self.joining = None;
        // The heartbeat thread runs again (Kafka enables it once JoinGroup answers): a
        // tick during the rebalance did not re-arm it, and a cooperative member applies
        // its assignment only at its next poll, maybe after a long batch.
        self.heartbeats.arm(self.config.heartbeat_interval_ms, out);
        if let Some(started) = self.rebalance_started.take() {
            let ms = now.since(started).as_ms();
            self.stats.rebalance_ms += ms;
            self.stats.rebalance_ms_max = self.stats.rebalance_ms_max.max(ms);
        }
        if self.step == Step::Rejoining {
            let next = if self.apply_assignment(self.generation, assigned, out) {
                Step::FetchOffsets
            } else {
                Step::Poll
            };
            return self.go(now, next, out);
        }
        self.synced = Some((self.generation, assigned));
        if self.step == Step::Poll && self.inflight.is_empty() {
            self.wake.arm(now, 0, out);
        }
    }

    /// The member now holds `assigned` (of `generation`): what it no longer has is
    /// revoked (cooperative: then it rejoins at once so that a follow-up rebalance
    /// hands those out, KIP-429). Returns whether some partition needs a position.
    fn apply_assignment(
        &mut self,
        generation: Generation,
        assigned: Vec<PartitionId>,
        out: &mut Outbox,
    ) -> bool {
        // What it claimed (a fenced member's stale claims included) and is not given
        // any more: the assignor withholds such a partition until this member rejoins
        // without it (KIP-429).
        let revoked: Vec<PartitionId> = self
            .claimed
            .iter()
            .chain(&self.owned)
            .copied()
            .filter(|p| !assigned.contains(p))
            .collect();
        for p in &revoked {
            self.positions.remove(p);
            self.polled.remove(p);
        }
        self.unpositioned = assigned
            .iter()
            .copied()
            .filter(|p| !self.positions.contains_key(p))
            .collect();
        self.claimed = assigned.clone();
        self.claimed_generation = Some(generation);
        self.owned = assigned;
        self.owned_valid = true;
        self.owned_generation = generation;
        self.record_owned(false, out);
        self.heartbeats.arm(self.config.heartbeat_interval_ms, out);
        if self.assignor.is_cooperative() && !revoked.is_empty() {
            self.rejoin = true;
        }
        !self.unpositioned.is_empty()
    }

    /// A rebalance request failed.
    fn join_failed(&mut self, now: SimTime, error: ErrorCode, out: &mut Outbox) {
        use ErrorCode::*;
        match error {
            FencedInstanceId => self.exit(out),
            UnknownMemberId | IllegalGeneration => {
                self.lose_membership(error, out);
                if self.step == Step::Rejoining {
                    self.go(now, Step::Poll, out);
                }
            }
            // Another rebalance began: join it.
            RebalanceInProgress => {
                self.joining = Some((JoinPhase::Join, None));
                self.drive_join(now, out);
            }
            // The coordinator moved or did not answer: find it again, join again.
            _ => {
                self.meta.invalidate(self.coordinator);
                self.joining = Some((JoinPhase::Join, None));
                self.wake.arm(now, self.config.retry_backoff_ms, out);
            }
        }
    }

    fn on_offsets_fetched(
        &mut self,
        now: SimTime,
        committed: Vec<(PartitionId, Option<Offset>)>,
        out: &mut Outbox,
    ) {
        for (p, offset) in committed {
            if let (Some(o), true) = (offset, self.unpositioned.contains(&p)) {
                self.positions.insert(p, o);
                self.last_committed.insert(p, o);
            }
        }
        self.unpositioned
            .retain(|p| !self.positions.contains_key(p));
        self.reset_positions(now, out);
    }

    /// Partitions without a committed offset (or whose position fell off the log)
    /// start where `auto.offset.reset` says.
    fn reset_positions(&mut self, now: SimTime, out: &mut Outbox) {
        if self.unpositioned.is_empty() {
            return self.go(now, Step::Poll, out);
        }
        match self.config.auto_offset_reset {
            OffsetReset::Earliest => {
                for p in std::mem::take(&mut self.unpositioned) {
                    self.positions.insert(p, Offset::ZERO);
                }
                self.go(now, Step::Poll, out)
            }
            OffsetReset::Latest => self.go(now, Step::ResetLatest, out),
        }
    }

    fn on_fetch(&mut self, p: PartitionId, result: Result<FetchData, ErrorCode>, out: &mut Outbox) {
        if self.step == Step::ResetLatest {
            match result.map(|d| d.high_watermark) {
                Ok(Some(hw)) if self.unpositioned.contains(&p) => {
                    self.positions.insert(p, hw);
                    self.unpositioned.retain(|&q| q != p);
                }
                _ => self.meta.invalidate(p),
            }
            return;
        }
        let Some(&position) = self.positions.get(&p) else {
            return;
        };
        match result {
            Ok(data) if data.base_offset == position => {
                let (records, next) = fetched_records(&data, position);
                if !records.is_empty() {
                    self.polled.entry(p).or_default().extend(records);
                }
                self.positions.insert(p, next);
            }
            Ok(_) => {}
            Err(ErrorCode::OffsetOutOfRange) => {
                // auto.offset.reset at the next poll; recorded as a seek (an assign).
                self.positions.remove(&p);
                self.polled.remove(&p);
                self.unpositioned.push(p);
                self.record_owned(false, out);
            }
            Err(_) => self.meta.invalidate(p),
        }
    }

    /// The heartbeat thread: a Heartbeat every `heartbeat.interval.ms` while the member
    /// has an assignment, and the poll time-out (`max.poll.interval.ms`).
    fn heartbeat(&mut self, now: SimTime, out: &mut Outbox) {
        self.heartbeats.fired();
        let Some(member) = self.member else { return };
        if self.joining.is_some() || self.step == Step::Done || !self.owned_valid {
            return;
        }
        if self.step == Step::Processing
            && now.since(self.last_poll) >= SimTime::from_ms(self.config.max_poll_interval_ms)
        {
            return self.leave_on_poll_timeout(now, member, out);
        }
        self.heartbeats.arm(self.config.heartbeat_interval_ms, out);
        if self.heartbeats.is_inflight() {
            return;
        }
        let Some(to) = self.leader_of(now, self.coordinator, out) else {
            return;
        };
        let correlation = self.next_id();
        let beat = Message::Heartbeat {
            correlation,
            group: self.spec.group,
            generation: self.generation,
            member,
            instance: self.spec.instance,
        };
        let timeout = self.config.request_timeout_ms;
        self.heartbeats.send(correlation, to, beat, timeout, out);
    }

    /// The batch outlasted `max.poll.interval.ms`: the heartbeat thread leaves the group
    /// (a static member only stops heartbeating, KIP-345) and forgets its generation;
    /// the member rejoins at its next poll.
    fn leave_on_poll_timeout(&mut self, now: SimTime, member: MemberId, out: &mut Outbox) {
        self.stats.poll_timeouts += 1;
        if self.spec.instance.is_none() {
            self.send_leave_group(now, member, out);
            self.member = None;
        }
        self.lose_partitions(out);
    }

    /// The coordinator says the member is out of its generation: `ILLEGAL_GENERATION`
    /// (rejoin under the same member id) or `UNKNOWN_MEMBER_ID` (rejoin as a new
    /// member); either way its partitions are lost.
    fn lose_membership(&mut self, error: ErrorCode, out: &mut Outbox) {
        if error == ErrorCode::UnknownMemberId {
            self.member = None;
        }
        self.lose_partitions(out);
    }

    /// The member is no longer in the generation it owned its partitions in
    /// (`onPartitionsLost`): drop them without committing, and rejoin.
    fn lose_partitions(&mut self, out: &mut Outbox) {
        self.owned_valid = false;
        // A rebalance it was in, or an assignment it had not applied yet, belongs to
        // the membership it just lost.
        self.joining = None;
        self.synced = None;
        self.rebalance_started = None;
        if !self.owned.is_empty() {
            self.owned.clear();
            self.positions.clear();
            self.polled.clear();
            self.unpositioned.clear();
            self.record_loss(out);
        }
        self.rejoin = true;
    }

    fn on_heartbeat_response(&mut self, result: Result<(), ErrorCode>, out: &mut Outbox) {
        use ErrorCode::*;
        self.heartbeats.done();
        match result {
            Ok(()) => {}
            Err(FencedInstanceId) => self.instance_fenced = true,
            Err(RebalanceInProgress) => self.rejoin = true,
            Err(e @ (IllegalGeneration | UnknownMemberId)) => self.lose_membership(e, out),
            Err(_) => self.meta.invalidate(self.coordinator),
        }
    }

    /// LeaveGroup for a dynamic member (fire and forget: if it is lost, the session
    /// time-out removes the member).
    fn send_leave_group(&mut self, now: SimTime, member: MemberId, out: &mut Outbox) {
        if let Some(to) = self.leader_of(now, self.coordinator, out) {
            let correlation = self.next_id();
            out.send(
                NodeId::Broker(to),
                Message::LeaveGroup {
                    correlation,
                    group: self.spec.group,
                    member,
                    instance: None,
                },
            );
        }
    }

    /// `close()`: at the next poll, commit what was consumed (auto-commit), then leave
    /// the group (a static member does not send LeaveGroup, KIP-345) and stop.
    pub fn close(&mut self) {
        self.closing = true;
    }

    /// The next batch takes `ms` longer to process.
    pub fn slow_next_batch(&mut self, ms: u64) {
        self.slow_next_ms += ms;
    }

    fn leave(&mut self, now: SimTime, out: &mut Outbox) {
        if let (Some(member), None) = (self.member, self.spec.instance) {
            self.send_leave_group(now, member, out);
        }
        self.exited = true;
        self.step = Step::Done;
        self.inflight.clear();
        if !self.owned.is_empty() {
            self.owned.clear();
            self.record_owned(false, out);
        }
    }

    /// A newer process holds our `group.instance.id`: this one is a zombie and exits.
    /// Its open batch and commit end `info` (it holds nothing after them); otherwise
    /// its loss of its partitions is recorded.
    fn exit(&mut self, out: &mut Outbox) {
        let open = self.op_open();
        self.abandon(false, out);
        if !open && !self.owned.is_empty() {
            self.owned.clear();
            self.record_owned(true, out);
        }
        self.inflight.clear();
        self.joining = None;
    }

    /// The main process has an operation open (a batch being processed, a commit).
    fn op_open(&self) -> bool {
        self.batch.is_some() || self.commit.is_some()
    }

    /// The member lost its partitions: recorded as an `assign []` without generation,
    /// once its open operation (if any) completes, since one process has one operation
    /// open at a time.
    fn record_loss(&mut self, out: &mut Outbox) {
        if self.op_open() {
            self.loss_unrecorded = true;
        } else {
            self.record_owned(true, out);
        }
    }

    /// After an operation of the main process completed: a loss that happened during
    /// it is recorded now.
    fn flush_loss(&mut self, out: &mut Outbox) {
        if self.loss_unrecorded && !self.op_open() {
            self.loss_unrecorded = false;
            debug_assert!(
                self.owned.is_empty(),
                "nothing is assigned during an operation"
            );
            self.record_owned(true, out);
        }
    }

    /// The answer to an offset commit (manual, before a join, or auto).
    fn on_commit_response(
        &mut self,
        now: SimTime,
        correlation: u64,
        result: Result<(), ErrorCode>,
        out: &mut Outbox,
    ) {
        use ErrorCode::*;
        if self
            .auto_commit
            .as_ref()
            .is_some_and(|(c, _)| *c == correlation)
        {
            let (_, pending) = self.auto_commit.take().expect("checked");
            return self.finish_commit(&pending, result, out);
        }
        if self.commit.as_ref().is_none_or(|(c, _)| *c != correlation) {
            return;
        }
        self.inflight.remove(correlation);
        if let Err(NotCoordinator | CoordinatorNotAvailable | RequestTimedOut | NetworkException) =
            result
        {
            // commitSync() retries until it has an answer.
            self.meta.invalidate(self.coordinator);
            return self.wake.arm(now, self.config.retry_backoff_ms, out);
        }
        let (_, pending) = self.commit.take().expect("checked");
        self.finish_commit(&pending, result, out);
        match result {
            Err(FencedInstanceId) => self.instance_fenced = true,
            Err(e @ (IllegalGeneration | UnknownMemberId)) => self.lose_membership(e, out),
            Err(RebalanceInProgress) if self.joining.is_none() => self.rejoin = true,
            _ => {}
        }
        if self.step == Step::CommitBeforeJoin {
            self.begin_join(now, out)
        } else {
            self.go(now, Step::Poll, out)
        }
    }

    fn finish_commit(
        &mut self,
        pending: &PendingCommit,
        result: Result<(), ErrorCode>,
        out: &mut Outbox,
    ) {
        match result {
            Ok(()) => {
                self.stats.commits_ok += 1;
                for &(p, o) in &pending.offsets {
                    self.last_committed.insert(p, o);
                }
                self.record_commit(pending, Outcome::Ok, None, out);
            }
            Err(e) => {
                self.stats.commits_failed += 1;
                // A refused commit certainly did not happen; a lost answer might have.
                let outcome = match e {
                    ErrorCode::RequestTimedOut | ErrorCode::NetworkException => Outcome::Info,
                    _ => Outcome::Fail,
                };
                self.record_commit(pending, outcome, Some(e.name()), out);
                if outcome == Outcome::Info && pending.process == self.auto_process {
                    // The commit may still land: the next one is another process's.
                    self.auto_process += self.spec.process_stride;
                }
            }
        }
        self.flush_loss(out);
    }

    /// `auto.commit.interval.ms` elapsed: commit the consumed positions asynchronously.
    fn auto_commit_tick(&mut self, now: SimTime, out: &mut Outbox) {
        out.timer_ms(self.config.auto_commit_interval_ms, Timer::AutoCommit);
        self.commit_async(now, out);
    }

    /// Commit the consumed positions without waiting for the answer (an auto-commit,
    /// or the application's `commitAsync()`). At most one is in flight: a later one
    /// overtaking an earlier one could move the committed offset back, which is why
    /// Kafka's `commitAsync()` does not retry; here the next one simply covers both.
    fn commit_async(&mut self, now: SimTime, out: &mut Outbox) {
        if self.auto_commit.is_some() || self.commit.is_some() || !self.owned_valid {
            return;
        }
        let Some(member) = self.member else { return };
        let offsets = self.uncommitted_positions();
        if offsets.is_empty() {
            return;
        }
        let Some(to) = self.leader_of(now, self.coordinator, out) else {
            return;
        };
        let pending = self.pending_commit(self.auto_process, offsets, member);
        let correlation = self.next_id();
        self.record_commit(&pending, Outcome::Invoke, None, out);
        out.send(
            NodeId::Broker(to),
            Self::offset_commit(self.spec, correlation, &pending),
        );
        out.timer_ms(
            self.config.request_timeout_ms,
            Timer::RequestTimeout(correlation),
        );
        self.auto_commit = Some((correlation, pending));
    }

    pub fn handle_timeout(&mut self, now: SimTime, timer: Timer, out: &mut Outbox) {
        if self.exited {
            return;
        }
        match timer {
            Timer::Workload => {
                self.wake.forget();
                self.run_step(now, out);
            }
            Timer::Processed => self.processed(now, out),
            Timer::Heartbeat => self.heartbeat(now, out),
            Timer::AutoCommit => self.auto_commit_tick(now, out),
            Timer::RequestTimeout(c) => {
                self.meta.on_timeout(c);
                if self.heartbeats.awaits(c) {
                    self.heartbeats.done();
                }
                if self.join_request(c).is_some() {
                    self.join_failed(now, ErrorCode::RequestTimedOut, out);
                }
                if self.auto_commit.as_ref().is_some_and(|(a, _)| *a == c) {
                    let (_, pending) = self.auto_commit.take().expect("checked");
                    self.finish_commit(&pending, Err(ErrorCode::RequestTimedOut), out);
                }
                if let Some(p) = self.inflight.remove(c) {
                    self.on_request_failed(now, c, p, ErrorCode::RequestTimedOut, out);
                }
            }
            _ => {}
        }
    }

    /// A request of the current step got no answer (time-out, connection closed).
    fn on_request_failed(
        &mut self,
        now: SimTime,
        correlation: u64,
        partition: Option<PartitionId>,
        error: ErrorCode,
        out: &mut Outbox,
    ) {
        match partition {
            Some(p) => {
                self.meta.invalidate(p);
                if self.inflight.is_empty() {
                    self.go(now, self.step, out);
                }
            }
            None if self.commit.as_ref().is_some_and(|(c, _)| *c == correlation) => {
                self.meta.invalidate(self.coordinator);
                self.wake.arm(now, self.config.retry_backoff_ms, out);
            }
            None => self.on_error(now, error, out),
        }
    }

    /// An error of a coordinator request (JoinGroup, SyncGroup, OffsetFetch).
    fn on_error(&mut self, now: SimTime, error: ErrorCode, out: &mut Outbox) {
        use ErrorCode::*;
        match error {
            FencedInstanceId => self.exit(out),
            UnknownMemberId | IllegalGeneration => {
                self.lose_membership(error, out);
                self.go(now, Step::CommitBeforeJoin, out);
            }
            RebalanceInProgress => {
                self.rejoin = true;
                self.go(now, Step::Poll, out)
            }
            _ => {
                self.meta.invalidate(self.coordinator);
                self.wake.arm(now, self.config.retry_backoff_ms, out);
            }
        }
    }

    /// Is `correlation` a request of the current step? (It is no longer awaited.)
    fn take(&mut self, correlation: u64) -> bool {
        self.inflight.remove(correlation).is_some()
    }

    pub fn handle_message(&mut self, now: SimTime, _from: NodeId, msg: Message, out: &mut Outbox) {
        if self.exited && !matches!(msg, Message::MetadataResponse { .. }) {
            return;
        }
        match msg {
            Message::MetadataResponse {
                correlation,
                partitions,
            } => {
                self.meta.on_response(correlation, &partitions);
            }
            Message::ConnectionClosed { broker } => {
                self.meta.forget_broker(broker);
                if self.heartbeats.sent_to(broker) {
                    self.heartbeats.done();
                }
                if matches!(self.joining, Some((_, Some((_, b))))  if b == broker) {
                    self.join_failed(now, ErrorCode::NetworkException, out);
                }
                for (c, p) in self.inflight.sent_to(broker) {
                    if self.inflight.remove(c).is_some() {
                        self.on_request_failed(now, c, p, ErrorCode::NetworkException, out);
                    }
                }
            }
            Message::JoinGroupResponse {
                correlation,
                result,
            } if self.join_request(correlation) == Some(JoinPhase::Join) => match result {
                Ok(joined) => self.on_joined(now, joined, out),
                Err(e) => self.join_failed(now, e, out),
            },
            Message::SyncGroupResponse {
                correlation,
                result,
            } if self.join_request(correlation) == Some(JoinPhase::Sync) => match result {
                Ok(partitions) => self.on_synced(now, partitions, out),
                Err(e) => self.join_failed(now, e, out),
            },
            Message::OffsetFetchResponse {
                correlation,
                result,
            } if self.take(correlation) => match result {
                Ok(committed) => self.on_offsets_fetched(now, committed, out),
                Err(e) => self.on_error(now, e, out),
            },
            Message::HeartbeatResponse {
                correlation,
                result,
            } if self.heartbeats.awaits(correlation) => self.on_heartbeat_response(result, out),
            Message::OffsetCommitResponse {
                correlation,
                result,
            } => self.on_commit_response(now, correlation, result, out),
            Message::FetchResponse {
                correlation,
                partition,
                result,
            } if self.take(correlation) => {
                self.on_fetch(partition, result, out);
                if self.inflight.is_empty() {
                    match self.step {
                        Step::ResetLatest if self.unpositioned.is_empty() => {
                            self.go(now, Step::Poll, out)
                        }
                        Step::ResetLatest => self.wake.arm(now, self.config.retry_backoff_ms, out),
                        _ => {
                            let delay = if self.polled.is_empty() {
                                self.spec.poll_interval_ms
                            } else {
                                0
                            };
                            self.wake.arm(now, delay, out);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The process crashes at `now`. The records of its batch processed so far (one
    /// after the other, each taking its processing time) had their effects: the batch
    /// completes `ok` with them, and the rest of it was never processed. Then its open
    /// commits end `info` and the crash is recorded.
    pub fn crash(&mut self, now: SimTime, out: &mut Outbox) {
        if let Some(mut batch) = self.batch.take() {
            let per_record = self.spec.processing_ms_per_record.max(1);
            let mut left = (now.since(self.batch_started).as_ms() / per_record) as usize;
            let mut done = Batch::new();
            for (&p, records) in batch.iter_mut() {
                let n = left.min(records.len());
                if n > 0 {
                    done.insert(p, records.drain(..n).collect());
                }
                left -= n;
            }
            if done.is_empty() {
                self.batch = Some(batch);
            } else {
                self.stats.batches += 1;
                self.stats.records += done.values().map(|r| r.len() as u64).sum::<u64>();
                self.record_batch(Outcome::Ok, Some(done), None, out);
            }
        }
        self.abandon(true, out);
    }

    /// The run ends, or the process crashes (`crash` also records the crash): its
    /// open batch (not processed) and commits end `info`.
    pub fn abandon(&mut self, crash: bool, out: &mut Outbox) {
        // After an `info` completion the process does nothing more, not even a crash.
        let crash_op = crash && !self.op_open();
        if let Some(batch) = self.batch.take() {
            self.record_batch(Outcome::Info, Some(batch), crash.then_some("CRASH"), out);
        }
        for (_, pending) in [self.commit.take(), self.auto_commit.take()]
            .into_iter()
            .flatten()
        {
            self.record_commit(&pending, Outcome::Info, crash.then_some("CRASH"), out);
        }
        if crash_op {
            self.record(OpKind::Crash, Outcome::Invoke, Vec::new(), out);
            self.record(OpKind::Crash, Outcome::Info, Vec::new(), out);
        }
        self.step = Step::Done;
        self.exited = true;
    }
}

#[cfg(test)]
#[path = "group_consumer_tests.rs"]
mod tests;
