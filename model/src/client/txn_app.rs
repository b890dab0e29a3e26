//! The consume-transform-produce application of the design guide's payments example:
//! it reads `orders`, writes one record to `processed-orders` per input record, and
//! commits the input offsets inside the same transaction (KIP-98 transactions,
//! `sendOffsetsToTransaction` with the consumer group metadata of KIP-447). Each
//! instance is a static member of its group (KIP-345, `group.instance.id` = its slot)
//! in Kafka's classic group protocol, and consumes the input partitions of its slot.
//!
//! One loop per transaction, the way a Kafka Streams-like app drives a
//! `KafkaProducer` and a `read_committed` `KafkaConsumer`:
//! JoinGroup -> SyncGroup -> InitProducerId (fences older instances of this
//! `transactional.id`) -> OffsetFetch with `RequireStable` (positions = the committed
//! offsets) -> poll -> AddPartitionsToTxn -> Produce (transactional, idempotent) ->
//! AddOffsetsToTxn -> TxnOffsetCommit (with the group metadata) -> EndTxn(commit).
//! EndTxn answers the epoch of the next transaction (KIP-890 part 2).
//!
//! Group membership: the first JoinGroup carries no member id (the coordinator assigns
//! one) and the slot's partitions as owned; the leader's SyncGroup hands every member
//! the partitions of its instance's slot (`p % slots == slot`, the `range`-like static
//! assignment the app always had), the others' send none; every member then consumes
//! the partitions SyncGroup returned. A Heartbeat goes out every
//! `heartbeat.interval.ms` once the member has its assignment (not while it joins), as
//! the consumer's heartbeat thread does; like that thread's errors, what a heartbeat
//! learns takes effect at the next poll, after the open transaction:
//! `REBALANCE_IN_PROGRESS`, `ILLEGAL_GENERATION` and `UNKNOWN_MEMBER_ID` rejoin,
//! `FENCED_INSTANCE_ID` exits.
//!
//! Errors of the loop's own requests: retriable ones (coordinator moved or loading,
//! `CONCURRENT_TRANSACTIONS`, leader moved, timeouts) retry the step after
//! `retry.backoff.ms` until the transaction has been open for `delivery.timeout.ms`;
//! abortable ones abort the transaction (EndTxn(abort)) and rewind to the committed
//! offsets; a group fence (`ILLEGAL_GENERATION`, `UNKNOWN_MEMBER_ID`,
//! `REBALANCE_IN_PROGRESS`) aborts and rejoins (after `UNKNOWN_MEMBER_ID` as a new
//! member); `FENCED_INSTANCE_ID` means a newer instance took the slot: this one (a
//! zombie) exits. A fenced producer (`PRODUCER_FENCED`, `INVALID_PRODUCER_EPOCH`)
//! rejoins and re-initialises its producer, as an app that recreates its
//! `KafkaProducer` (Kafka Streams' rejoin after a `TaskMigratedException`).
//!
//! History: one `txn` operation per transaction: its poll, its sends and the input
//! `offsets` it commits. `ok` = EndTxn(commit) succeeded; `fail` = certainly aborted
//! (our EndTxn(abort) succeeded, or we were fenced before ever asking to commit: only
//! our own EndTxn(commit) can commit our transaction); `info` = unknown (the commit was
//! sent but its answer lost, or the process crashed). After `info` the instance goes
//! on under a new process id. Every (re)start of consumption from the committed offsets
//! is recorded as an `assign` (a seek), so re-reading is not a reordering.
//!
//! `processing.guarantee` (Kafka Streams' names): `exactly_once_v2` (KIP-447) sends
//! the group generation and member id with TxnOffsetCommit and fetches offsets with
//! `RequireStable`, so a zombie is fenced by the group even under a fresh
//! `transactional.id`; `exactly_once` (before KIP-447) sends neither and relies on the
//! producer epoch alone: a replacement's InitProducerId under the same
//! `transactional.id` aborts the zombie's transaction before the replacement reads the
//! offsets.
//!
//! Simplification (README, fidelity): one request per step (the Kafka client pipelines
//! AddPartitionsToTxn with the first produce); one batch per output partition per
//! transaction; the leader assigns each member its instance's slot (a static
//! assignment, not one of Kafka's assignors, though the app announces `range`).

use super::consumer::fetched_records;
use super::heartbeat::Heartbeats;
use super::metadata::MetadataCache;
use super::requests::Requests;
use super::wake::WakeUp;
use crate::config::Config;
use crate::history::{GroupMetadata, HistoryEvent, MicroOp, OpKind, Outcome};
use crate::message::{
    ConsumerGroupMetadata, ErrorCode, Joined, Message, ProduceBatch, ProducerStamp,
};
use crate::outbox::{Outbox, Timer};
use crate::rng::ModelRng;
use crate::types::{
    BrokerId, ClientId, Generation, GroupId, MemberId, NodeId, Offset, PartitionId, PartitionSet,
    ProducerEpoch, ProducerId, Sequence, SimTime, TxnId, Value,
};
use std::collections::BTreeMap;

/// The assignor the app announces in JoinGroup (its assignment is the static slot one).
const PROTOCOL: &str = "range";

/// A consumer's JoinGroup waits up to the rebalance time-out: its request time-out is
/// that plus this (Kafka's `JOIN_GROUP_TIMEOUT_LAPSE`).
const JOIN_GROUP_TIMEOUT_LAPSE_MS: u64 = 5_000;

/// Kafka's `TransactionManager` retries an AddPartitionsToTxn refused with
/// CONCURRENT_TRANSACTIONS (the previous transaction still completing) this soon.
const CONCURRENT_TRANSACTIONS_BACKOFF_MS: u64 = 20;

/// Who one application instance is.
#[derive(Clone, Copy, Debug)]
pub struct AppSpec {
    pub group: GroupId,
    /// `group.instance.id`: the slot this instance fills (input partitions
    /// `p % slots == slot`).
    pub slot: u32,
    pub slots: u32,
    /// `transactional.id`: the slot's (a restarted instance fences its predecessor
    /// through InitProducerId) or a fresh one per instance (KIP-447 style: zombies are
    /// fenced by the group generation instead).
    pub transactional_id: TxnId,
    /// Pause between empty polls.
    pub poll_interval_ms: u64,
    /// Process ids are `process_base + k * process_stride`, k = 0, 1, ...
    pub process_base: u64,
    pub process_stride: u64,
    /// Output values are `value_base + counter` (unique per instance).
    pub value_base: Value,
}

/// The steps of the loop; each sends its request(s) and waits for the answer(s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Join,
    Sync,
    InitProducerId,
    FetchOffsets,
    Poll,
    AddPartitions,
    Produce,
    AddOffsets,
    CommitOffsets,
    EndTxn {
        commit: bool,
    },
    /// Stopped (end of the run) or exited (fenced instance).
    Done,
}

/// The open transaction.
#[derive(Clone, Debug)]
struct Txn {
    reads: BTreeMap<PartitionId, Vec<(Offset, Value)>>,
    /// The offsets to commit: per input partition, the position after the poll.
    offsets: BTreeMap<PartitionId, Offset>,
    /// Per output partition: (base sequence, values, base offset once acknowledged).
    batches: BTreeMap<PartitionId, (Sequence, Vec<Value>, Option<Offset>)>,
    started: SimTime,
    /// EndTxn(commit) was sent: from then on, only its answer tells the outcome.
    commit_sent: bool,
    error: Option<&'static str>,
}

/// What the instances did, for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppStats {
    pub committed: u64,
    pub aborted: u64,
    pub unknown: u64,
    /// Times this instance learnt it was fenced (producer epoch or group instance).
    pub fenced: u64,
    /// Input records read by committed transactions, and the outputs they committed.
    pub inputs_committed: u64,
    pub outputs_committed: u64,
}

impl AppStats {
    /// The sum of two instances' figures.
    pub fn plus(self, other: AppStats) -> AppStats {
        AppStats {
            committed: self.committed + other.committed,
            aborted: self.aborted + other.aborted,
            unknown: self.unknown + other.unknown,
            fenced: self.fenced + other.fenced,
            inputs_committed: self.inputs_committed + other.inputs_committed,
            outputs_committed: self.outputs_committed + other.outputs_committed,
        }
    }
}

pub struct TxnApp {
    pub id: ClientId,
    config: Config,
    spec: AppSpec,
    rng: ModelRng,
    meta: MetadataCache,
    process: u64,
    step: Step,
    /// Requests of the current step in flight.
    inflight: Requests,
    /// Our member id, once the coordinator gave us one.
    member: Option<MemberId>,
    generation: Generation,
    /// The partitions the last SyncGroup gave us.
    assignment: Option<Vec<PartitionId>>,
    /// The leader's assignment to send with SyncGroup (empty for a follower).
    sync_assignments: Vec<(MemberId, Vec<PartitionId>)>,
    /// The heartbeat thread's timer and the Heartbeat in flight.
    heartbeats: Heartbeats,
    producer: Option<(ProducerId, ProducerEpoch)>,
    /// Next sequence per output partition under the current epoch. A sequence that
    /// may have been sent is never given out again under the same epoch.
    sequences: BTreeMap<PartitionId, Sequence>,
    positions: BTreeMap<PartitionId, Offset>,
    /// Records of the poll in progress.
    polled: BTreeMap<PartitionId, Vec<(Offset, Value)>>,
    txn: Option<Txn>,
    next_id: u64,
    value_counter: u64,
    /// Runs the current step again after a delay.
    wake: WakeUp,
    pub stats: AppStats,
    stopping: bool,
    /// The group generation moved on (or is moving on): rejoin once the open
    /// transaction is over.
    rejoin: bool,
    /// A heartbeat learnt that a newer instance took the slot: exit once the open
    /// transaction is over.
    instance_fenced: bool,
    /// A newer instance took the slot (FENCED_INSTANCE_ID): this one has exited.
    pub exited: bool,
}

impl TxnApp {
    pub fn new(id: ClientId, config: &Config, spec: AppSpec, seed: u64) -> TxnApp {
        TxnApp {
            id,
            config: config.clone(),
            spec,
            rng: ModelRng::new(seed),
            meta: MetadataCache::new(config.total_partitions(), config.brokers),
            process: spec.process_base,
            step: Step::Join,
            inflight: Requests::default(),
            member: None,
            generation: Generation::default(),
            assignment: None,
            sync_assignments: Vec::new(),
            heartbeats: Heartbeats::default(),
            producer: None,
            sequences: BTreeMap::new(),
            positions: BTreeMap::new(),
            polled: BTreeMap::new(),
            txn: None,
            next_id: 0,
            value_counter: 0,
            wake: WakeUp::default(),
            stats: AppStats::default(),
            stopping: false,
            rejoin: false,
            instance_fenced: false,
            exited: false,
        }
    }

    /// The input partitions of slot `slot` of `slots`.
    fn slot_partitions(&self, slot: u32) -> Vec<PartitionId> {
        (0..self.config.partitions)
            .filter(|p| p % self.spec.slots == slot)
            .map(PartitionId)
            .collect()
    }

    /// The input partitions this instance consumes: those SyncGroup assigned it (its
    /// slot's until it has an assignment).
    pub fn inputs(&self) -> Vec<PartitionId> {
        match &self.assignment {
            Some(assigned) => assigned.clone(),
            None => self.slot_partitions(self.spec.slot),
        }
    }

    /// The output partition of an input partition (`processed-orders` is keyed like
    /// `orders`: same customer, same partition number modulo its size).
    fn output_of(&self, input: PartitionId) -> PartitionId {
        PartitionId(self.config.partitions + input.0 % self.config.output_partitions)
    }

    /// No transaction open and nothing in flight (the run may end).
    pub fn is_idle(&self) -> bool {
        self.txn.is_none()
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn start(&mut self, now: SimTime, out: &mut Outbox) {
        let c = self.next_id();
        self.meta.refresh(now, c, &mut self.rng, out);
        self.wake.arm(now, self.config.retry_backoff_ms, out);
    }

    /// Leader of `p`, or a metadata refresh and `None` (retry later).
    fn leader_of(&mut self, now: SimTime, p: PartitionId, out: &mut Outbox) -> Option<BrokerId> {
        self.meta
            .leader_or_refresh(now, p, &mut self.next_id, &mut self.rng, out)
    }

    fn send(
        &mut self,
        to: BrokerId,
        partition: Option<PartitionId>,
        msg: impl FnOnce(u64) -> Message,
        out: &mut Outbox,
    ) {
        let timeout_ms = self.config.request_timeout_ms;
        self.send_with_timeout(to, partition, msg, timeout_ms, out);
    }

    fn send_with_timeout(
        &mut self,
        to: BrokerId,
        partition: Option<PartitionId>,
        msg: impl FnOnce(u64) -> Message,
        timeout_ms: u64,
        out: &mut Outbox,
    ) {
        let c = self.next_id();
        self.inflight
            .send(c, to, partition, msg(c), timeout_ms, out);
    }

    /// Send the current step's request(s) (unless already in flight).
    fn run_step(&mut self, now: SimTime, out: &mut Outbox) {
        if !self.inflight.is_empty() {
            return;
        }
        if self.step == Step::Poll && self.group_news(out) {
            self.step = Step::Join;
        }
        if self.step == Step::Done {
            return;
        }
        let id = self.spec.transactional_id;
        let group = self.spec.group;
        let to = match self.coordinator_partition() {
            Some(p) => match self.leader_of(now, p, out) {
                Some(b) => b,
                None => return self.wake.arm(now, self.config.retry_backoff_ms, out),
            },
            None => BrokerId(0),
        };
        let (producer_id, producer_epoch) = self
            .producer
            .unwrap_or((ProducerId(0), ProducerEpoch::default()));
        match self.step {
            Step::Join => {
                // This join answers any rejoin request so far.
                self.rejoin = false;
                let member = self.member;
                let instance = Some(self.spec.slot);
                let session_timeout_ms = self.config.session_timeout_ms;
                let rebalance_timeout_ms = self.config.max_poll_interval_ms;
                let owned = self.slot_partitions(self.spec.slot);
                let owned_generation = self.assignment.as_ref().map(|_| self.generation);
                let timeout_ms = self
                    .config
                    .request_timeout_ms
                    .max(rebalance_timeout_ms + JOIN_GROUP_TIMEOUT_LAPSE_MS);
                self.send_with_timeout(
                    to,
                    None,
                    |correlation| Message::JoinGroup {
                        correlation,
                        group,
                        member,
                        instance,
                        session_timeout_ms,
                        rebalance_timeout_ms,
                        protocols: vec![PROTOCOL.to_string()],
                        owned,
                        owned_generation,
                    },
                    timeout_ms,
                    out,
                );
            }
            Step::Sync => {
                let (generation, member) = (self.generation, self.member.unwrap_or(MemberId(0)));
                let instance = Some(self.spec.slot);
                let assignments = self.sync_assignments.clone();
                self.send(
                    to,
                    None,
                    |correlation| Message::SyncGroup {
                        correlation,
                        group,
                        generation,
                        member,
                        instance,
                        assignments,
                    },
                    out,
                );
            }
            Step::InitProducerId => {
                let transaction_timeout_ms = self.config.transaction_timeout_ms;
                self.send(
                    to,
                    None,
                    |correlation| Message::InitProducerId {
                        correlation,
                        transactional_id: id,
                        transaction_timeout_ms,
                    },
                    out,
                );
            }
            Step::FetchOffsets => {
                let partitions: PartitionSet = self.inputs().into_iter().collect();
                // KIP-447 clients (read_committed) ask for stable offsets only.
                let require_stable = self.config.exactly_once_v2;
                self.send(
                    to,
                    None,
                    |correlation| Message::OffsetFetch {
                        correlation,
                        group,
                        partitions,
                        require_stable,
                    },
                    out,
                );
            }
            Step::Poll => self.poll(now, out),
            Step::AddPartitions => {
                let partitions: PartitionSet = self
                    .txn
                    .as_ref()
                    .map(|t| t.batches.keys().copied().collect())
                    .unwrap_or_default();
                self.send(
                    to,
                    None,
                    |correlation| Message::AddPartitionsToTxn {
                        correlation,
                        transactional_id: id,
                        producer_id,
                        producer_epoch,
                        partitions,
                        verify_only: false,
                    },
                    out,
                );
            }
            Step::Produce => self.produce(now, out),
            Step::AddOffsets => {
                self.send(
                    to,
                    None,
                    |correlation| Message::AddOffsetsToTxn {
                        correlation,
                        transactional_id: id,
                        producer_id,
                        producer_epoch,
                        group,
                    },
                    out,
                );
            }
            Step::CommitOffsets => {
                let offsets: Vec<(PartitionId, Offset)> = self
                    .txn
                    .as_ref()
                    .map(|t| t.offsets.iter().map(|(&p, &o)| (p, o)).collect())
                    .unwrap_or_default();
                let group_metadata = self.config.exactly_once_v2.then(|| ConsumerGroupMetadata {
                    generation: self.generation,
                    member: self.member.unwrap_or(MemberId(0)),
                    instance: Some(self.spec.slot),
                });
                self.send(
                    to,
                    None,
                    |correlation| Message::TxnOffsetCommit {
                        correlation,
                        transactional_id: id,
                        producer_id,
                        producer_epoch,
                        group,
                        group_metadata,
                        offsets,
                    },
                    out,
                );
            }
            Step::EndTxn { commit } => {
                if commit {
                    if let Some(t) = self.txn.as_mut() {
                        t.commit_sent = true;
                    }
                }
                // Transaction version 2 (KIP-890 part 2) came with Kafka 4.0, which
                // no longer has Streams' `exactly_once`: only a v2 client speaks it.
                let transaction_version_2 = self.config.exactly_once_v2;
                self.send(
                    to,
                    None,
                    |correlation| Message::EndTxn {
                        correlation,
                        transactional_id: id,
                        producer_id,
                        producer_epoch,
                        commit,
                        transaction_version_2,
                    },
                    out,
                );
            }
            Step::Done => {}
        }
    }

    /// The internal partition whose leader coordinates the current step: the group's
    /// `__consumer_offsets` partition or the `__transaction_state` partition of our
    /// `transactional.id` (`None` for steps that talk to data partitions).
    fn coordinator_partition(&self) -> Option<PartitionId> {
        match self.step {
            Step::Join | Step::Sync | Step::FetchOffsets | Step::CommitOffsets => {
                Some(self.config.consumer_offsets_partition(self.spec.group))
            }
            Step::InitProducerId | Step::AddPartitions | Step::AddOffsets | Step::EndTxn { .. } => {
                Some(
                    self.config
                        .transaction_state_partition(self.spec.transactional_id),
                )
            }
            Step::Poll | Step::Produce | Step::Done => None,
        }
    }

    /// Fetch every input partition from its position (`read_committed`).
    fn poll(&mut self, now: SimTime, out: &mut Outbox) {
        self.polled.clear();
        for p in self.inputs() {
            let Some(leader) = self.leader_of(now, p, out) else {
                continue;
            };
            let fetch_offset = self.positions.get(&p).copied().unwrap_or(Offset::ZERO);
            let current_leader_epoch = self.meta.leader(p).map(|(_, e)| e);
            let max_records = self.config.max_poll_records;
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
                    read_committed: true,
                },
                out,
            );
        }
        if self.inflight.is_empty() {
            self.wake.arm(now, self.spec.poll_interval_ms, out);
        }
    }

    /// Send the batches not yet acknowledged, one Produce per partition.
    fn produce(&mut self, now: SimTime, out: &mut Outbox) {
        let Some((producer_id, producer_epoch)) = self.producer else {
            return;
        };
        let pending: Vec<(PartitionId, Sequence, Vec<Value>)> = self
            .txn
            .as_ref()
            .map(|t| {
                t.batches
                    .iter()
                    .filter(|(_, b)| b.2.is_none())
                    .map(|(&p, b)| (p, b.0, b.1.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let transactional_id = Some(self.spec.transactional_id);
        for (p, base_sequence, values) in pending {
            let Some(leader) = self.leader_of(now, p, out) else {
                continue;
            };
            let batch = ProduceBatch {
                partition: p,
                producer: Some(ProducerStamp {
                    producer_id,
                    producer_epoch,
                    base_sequence,
                    transactional: true,
                }),
                values,
            };
            self.send(
                leader,
                Some(p),
                |correlation| Message::Produce {
                    correlation,
                    transactional_id,
                    acks_all: true,
                    acks_none: false,
                    batches: vec![batch],
                },
                out,
            );
        }
        if self.inflight.is_empty() {
            self.wake.arm(now, self.config.retry_backoff_ms, out);
        }
    }

    fn history(
        &self,
        outcome: Outcome,
        mops: Vec<MicroOp>,
        offsets: Vec<(PartitionId, Offset)>,
        error: Option<&'static str>,
    ) -> HistoryEvent {
        HistoryEvent {
            process: self.process,
            outcome,
            kind: OpKind::Txn,
            mops,
            assigned: Vec::new(),
            error,
            offsets,
            group: Some(self.group_metadata()),
        }
    }

    /// The group, and the generation and member id its commits carry (none before
    /// KIP-447), for the history.
    fn group_metadata(&self) -> GroupMetadata {
        let metadata = (self.generation, self.member.unwrap_or(MemberId(0)));
        (
            self.spec.group,
            self.config.exactly_once_v2.then_some(metadata),
        )
    }

    /// The poll returned records: begin a transaction over them.
    fn begin_txn(&mut self, now: SimTime, out: &mut Outbox) {
        let reads = std::mem::take(&mut self.polled);
        let mut batches: BTreeMap<PartitionId, (Sequence, Vec<Value>, Option<Offset>)> =
            BTreeMap::new();
        for (&p, records) in &reads {
            let output = self.output_of(p);
            for _ in records {
                self.value_counter += 1;
                let value = self.spec.value_base + self.value_counter;
                let seq = self.sequences.get(&output).copied().unwrap_or(0);
                batches
                    .entry(output)
                    .or_insert((seq, Vec::new(), None))
                    .1
                    .push(value);
            }
        }
        for (&p, b) in &batches {
            self.sequences.insert(p, b.0 + b.1.len() as Sequence);
        }
        let offsets: BTreeMap<PartitionId, Offset> =
            reads.keys().map(|&p| (p, self.positions[&p])).collect();
        let txn = Txn {
            reads,
            offsets,
            batches,
            started: now,
            commit_sent: false,
            error: None,
        };
        let mut mops = vec![MicroOp::Poll { reads: None }];
        mops.extend(Self::sends(&txn, false));
        let event = self.history(
            Outcome::Invoke,
            mops,
            txn.offsets.iter().map(|(&p, &o)| (p, o)).collect(),
            None,
        );
        out.record(event);
        self.txn = Some(txn);
        self.step = Step::AddPartitions;
        self.run_step(now, out);
    }

    /// The sends of a transaction as micro-ops (with offsets once committed).
    fn sends(txn: &Txn, with_offsets: bool) -> impl Iterator<Item = MicroOp> + '_ {
        txn.batches
            .iter()
            .flat_map(move |(&partition, (_, values, base))| {
                values
                    .iter()
                    .enumerate()
                    .map(move |(i, &value)| MicroOp::Send {
                        partition,
                        value,
                        offset: base
                            .filter(|_| with_offsets)
                            .map(|b| Offset(b.0 + i as u64)),
                    })
            })
    }

    /// The transaction ended (or its outcome is lost): record it.
    fn complete_txn(&mut self, outcome: Outcome, out: &mut Outbox) {
        let Some(txn) = self.txn.take() else { return };
        let mut mops = vec![MicroOp::Poll {
            reads: Some(txn.reads.iter().map(|(&p, r)| (p, r.clone())).collect()),
        }];
        mops.extend(Self::sends(&txn, outcome == Outcome::Ok));
        let event = self.history(
            outcome,
            mops,
            txn.offsets.iter().map(|(&p, &o)| (p, o)).collect(),
            txn.error,
        );
        out.record(event);
        match outcome {
            Outcome::Ok => {
                self.stats.committed += 1;
                self.stats.inputs_committed +=
                    txn.reads.values().map(|r| r.len() as u64).sum::<u64>();
                self.stats.outputs_committed +=
                    txn.batches.values().map(|b| b.1.len() as u64).sum::<u64>();
            }
            Outcome::Fail => self.stats.aborted += 1,
            _ => {
                self.stats.unknown += 1;
                self.process += self.spec.process_stride;
            }
        }
    }

    /// Record that consumption (re)starts from the committed offsets.
    fn record_seek(&self, out: &mut Outbox) {
        let group = Some(self.group_metadata());
        for event in HistoryEvent::assign(self.process, self.inputs(), group) {
            out.record(event);
        }
    }

    /// Move to `step` and run it now.
    fn go(&mut self, now: SimTime, step: Step, out: &mut Outbox) {
        self.step = step;
        self.inflight.clear();
        if self.stopping && self.txn.is_none() {
            self.step = Step::Done;
            return;
        }
        self.run_step(now, out);
    }

    /// Abort the open transaction (or, without one, go on with `then`).
    fn abort(&mut self, now: SimTime, error: ErrorCode, out: &mut Outbox) {
        if let Some(t) = self.txn.as_mut() {
            t.error.get_or_insert(error.name());
            if t.commit_sent {
                // Asked to commit and told something else: the outcome is unknown.
                self.give_up_txn(error.name(), out);
                return self.restart(now, out);
            }
        }
        self.go(now, Step::EndTxn { commit: false }, out);
    }

    /// Record the open transaction as ended without our knowing how: only our own
    /// EndTxn(commit) can commit it, so it is certainly aborted (`fail`) if we never
    /// sent one, and unknown (`info`) if we did.
    fn give_up_txn(&mut self, error: &'static str, out: &mut Outbox) {
        let Some(t) = self.txn.as_mut() else { return };
        t.error.get_or_insert(error);
        let outcome = if t.commit_sent {
            Outcome::Info
        } else {
            Outcome::Fail
        };
        self.complete_txn(outcome, out);
    }

    /// Our producer or group membership was fenced, or our transaction taken from us:
    /// start over from JoinGroup (which tells a zombie it is one).
    fn restart(&mut self, now: SimTime, out: &mut Outbox) {
        self.producer = None;
        self.go(now, Step::Join, out);
    }

    fn fenced(&mut self, now: SimTime, error: ErrorCode, out: &mut Outbox) {
        self.stats.fenced += 1;
        self.give_up_txn(error.name(), out);
        self.restart(now, out);
    }

    /// A newer instance owns the slot: abort what we can and exit.
    fn exit_fenced(&mut self, error: ErrorCode, out: &mut Outbox) {
        self.stats.fenced += 1;
        self.give_up_txn(error.name(), out);
        self.exited = true;
        self.step = Step::Done;
        self.inflight.clear();
        self.heartbeats.done();
    }

    /// At a poll (no transaction open): act on what the heartbeats learnt, as the
    /// consumer raises its heartbeat thread's news in `poll()`. Returns whether to
    /// rejoin; an instance another one replaced exits.
    fn group_news(&mut self, out: &mut Outbox) -> bool {
        if self.instance_fenced {
            self.exit_fenced(ErrorCode::FencedInstanceId, out);
            return false;
        }
        std::mem::take(&mut self.rejoin)
    }

    /// A JoinGroup answer: the member's id and generation; the leader works out every
    /// member's assignment (its instance's slot), then SyncGroup.
    fn on_joined(&mut self, now: SimTime, joined: Joined, out: &mut Outbox) {
        self.member = Some(joined.member);
        self.generation = joined.generation;
        self.sync_assignments = if joined.leader == joined.member {
            joined
                .members
                .iter()
                .map(|&(id, instance, ..)| {
                    let partitions = instance.map(|slot| self.slot_partitions(slot));
                    (id, partitions.unwrap_or_default())
                })
                .collect()
        } else {
            Vec::new()
        };
        self.go(now, Step::Sync, out);
    }

    /// Send a Heartbeat (one at a time) while the member has its assignment; re-armed
    /// by the next SyncGroup once it stops (joining, done).
    fn heartbeat(&mut self, now: SimTime, out: &mut Outbox) {
        self.heartbeats.fired();
        let Some(member) = self.member else { return };
        if matches!(self.step, Step::Join | Step::Sync | Step::Done) {
            return;
        }
        self.heartbeats.arm(self.config.heartbeat_interval_ms, out);
        if self.heartbeats.is_inflight() {
            return;
        }
        let group = self.spec.group;
        let coordinator = self.config.consumer_offsets_partition(group);
        let Some(to) = self.leader_of(now, coordinator, out) else {
            return;
        };
        let correlation = self.next_id();
        let beat = Message::Heartbeat {
            correlation,
            group,
            generation: self.generation,
            member,
            instance: Some(self.spec.slot),
        };
        let timeout = self.config.request_timeout_ms;
        self.heartbeats.send(correlation, to, beat, timeout, out);
    }

    /// A Heartbeat answer: what it says takes effect at the next poll.
    fn on_heartbeat_response(&mut self, result: Result<(), ErrorCode>) {
        use ErrorCode::*;
        self.heartbeats.done();
        match result {
            Ok(()) => {}
            Err(FencedInstanceId) => self.instance_fenced = true,
            Err(RebalanceInProgress | IllegalGeneration | UnknownMemberId) => self.rejoin = true,
            Err(_) => self
                .meta
                .invalidate(self.config.consumer_offsets_partition(self.spec.group)),
        }
    }

    /// A retriable error: try the step again after the backoff, unless the transaction
    /// has been open too long (`delivery.timeout.ms`): then abort it.
    fn retry(&mut self, now: SimTime, error: ErrorCode, out: &mut Outbox) {
        let expired = self.txn.as_ref().is_some_and(|t| {
            !t.commit_sent
                && now.since(t.started) >= SimTime::from_ms(self.config.delivery_timeout_ms)
        });
        if expired && !matches!(self.step, Step::EndTxn { commit: false }) {
            return self.abort(now, error, out);
        }
        self.wake.arm(now, self.config.retry_backoff_ms, out);
    }

    /// Route an error of the current step.
    fn on_error(
        &mut self,
        now: SimTime,
        error: ErrorCode,
        partition: Option<PartitionId>,
        out: &mut Outbox,
    ) {
        use ErrorCode::*;
        let aborting = self.step == Step::EndTxn { commit: false };
        match error {
            _ if aborting
                && !is_retriable(error)
                && !matches!(
                    error,
                    ProducerFenced | InvalidProducerEpoch | FencedInstanceId
                ) =>
            {
                // The abort itself was refused: the transaction is not ours to end any
                // more (the coordinator ended it); start over.
                self.give_up_txn(error.name(), out);
                self.restart(now, out)
            }
            ProducerFenced | InvalidProducerEpoch => self.fenced(now, error, out),
            FencedInstanceId => self.exit_fenced(error, out),
            IllegalGeneration | UnknownMemberId | RebalanceInProgress => {
                if error == UnknownMemberId {
                    // The coordinator does not know us (any more): join as a new member.
                    self.member = None;
                }
                self.rejoin = true;
                if self.txn.is_some() {
                    self.abort(now, error, out)
                } else {
                    self.go(now, Step::Join, out)
                }
            }
            NotCoordinator
            | CoordinatorNotAvailable
            | NotLeaderOrFollower
            | FencedLeaderEpoch
            | UnknownLeaderEpoch
            | LeaderNotAvailable
            | NetworkException
            | RequestTimedOut => {
                let p = partition.or(self.coordinator_partition());
                if let Some(p) = p {
                    self.meta.invalidate(p);
                }
                self.retry(now, error, out)
            }
            // The coordinator is completing the previous transaction: Kafka's client
            // retries AddPartitionsToTxn after 20 ms instead of `retry.backoff.ms`.
            ConcurrentTransactions if self.step == Step::AddPartitions => {
                self.wake.arm(now, CONCURRENT_TRANSACTIONS_BACKOFF_MS, out)
            }
            ConcurrentTransactions
            | UnstableOffsetCommit
            | NotEnoughReplicas
            | NotEnoughReplicasAfterAppend => self.retry(now, error, out),
            _ => {
                if self.txn.is_some() {
                    self.abort(now, error, out)
                } else {
                    self.retry(now, error, out)
                }
            }
        }
    }

    pub fn handle_timeout(&mut self, now: SimTime, timer: Timer, out: &mut Outbox) {
        match timer {
            Timer::Workload => {
                self.wake.fired(now);
                if self.step == Step::Poll && self.stopping {
                    return self.go(now, Step::Done, out);
                }
                self.run_step(now, out);
            }
            Timer::Heartbeat => self.heartbeat(now, out),
            Timer::RequestTimeout(c) if self.heartbeats.awaits(c) => {
                self.on_heartbeat_response(Err(ErrorCode::RequestTimedOut));
            }
            Timer::RequestTimeout(c) => {
                self.meta.on_timeout(c);
                if let Some(partition) = self.inflight.remove(c) {
                    self.on_failed_request(now, partition, ErrorCode::RequestTimedOut, out);
                }
            }
            _ => {}
        }
    }

    /// A request got no answer (time-out, connection closed).
    fn on_failed_request(
        &mut self,
        now: SimTime,
        partition: Option<PartitionId>,
        error: ErrorCode,
        out: &mut Outbox,
    ) {
        match self.step {
            // A poll goes on with what the other partitions return.
            Step::Poll => {
                if let Some(p) = partition {
                    self.meta.invalidate(p);
                }
                self.poll_answered(now, out);
            }
            // Other produce requests may still be in flight: wait for them.
            Step::Produce if !self.inflight.is_empty() => {
                if let Some(p) = partition {
                    self.meta.invalidate(p);
                }
            }
            _ => self.on_error(now, error, partition, out),
        }
    }

    pub fn handle_message(&mut self, now: SimTime, _from: NodeId, msg: Message, out: &mut Outbox) {
        if self.step == Step::Done && !matches!(msg, Message::MetadataResponse { .. }) {
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
                    self.on_heartbeat_response(Err(ErrorCode::NetworkException));
                }
                for (c, p) in self.inflight.sent_to(broker) {
                    if self.inflight.remove(c).is_some() {
                        self.on_failed_request(now, p, ErrorCode::NetworkException, out);
                    }
                }
            }
            Message::JoinGroupResponse {
                correlation,
                result,
            } if self.take(correlation) => match result {
                Ok(joined) => self.on_joined(now, joined, out),
                Err(e) => self.on_error(now, e, None, out),
            },
            Message::SyncGroupResponse {
                correlation,
                result,
            } if self.take(correlation) => match result {
                Ok(partitions) => {
                    self.assignment = Some(partitions);
                    self.heartbeats.arm(self.config.heartbeat_interval_ms, out);
                    let next = if self.producer.is_some() {
                        Step::FetchOffsets
                    } else {
                        Step::InitProducerId
                    };
                    self.go(now, next, out);
                }
                Err(e) => self.on_error(now, e, None, out),
            },
            Message::HeartbeatResponse {
                correlation,
                result,
            } if self.heartbeats.awaits(correlation) => self.on_heartbeat_response(result),
            Message::InitProducerIdResponse {
                correlation,
                result,
            } if self.take(correlation) => match result {
                Ok(producer) => {
                    self.producer = Some(producer);
                    self.sequences.clear();
                    self.go(now, Step::FetchOffsets, out);
                }
                Err(e) => self.on_error(now, e, None, out),
            },
            Message::OffsetFetchResponse {
                correlation,
                result,
            } if self.take(correlation) => match result {
                Ok(committed) => {
                    self.positions = self
                        .inputs()
                        .into_iter()
                        .map(|p| (p, Offset::ZERO))
                        .collect();
                    for (p, offset) in committed {
                        if let (Some(o), true) = (offset, self.positions.contains_key(&p)) {
                            self.positions.insert(p, o);
                        }
                    }
                    self.record_seek(out);
                    self.go(now, Step::Poll, out);
                }
                Err(e) => self.on_error(now, e, None, out),
            },
            Message::FetchResponse {
                correlation,
                partition,
                result,
            } if self.take(correlation) => {
                match result {
                    Ok(data) => {
                        let position = self
                            .positions
                            .get(&partition)
                            .copied()
                            .unwrap_or(Offset::ZERO);
                        if data.base_offset == position {
                            let (records, next) = fetched_records(&data, position);
                            if !records.is_empty() {
                                self.polled.entry(partition).or_default().extend(records);
                            }
                            self.positions.insert(partition, next);
                        }
                    }
                    Err(_) => self.meta.invalidate(partition),
                }
                self.poll_answered(now, out);
            }
            Message::TxnResponse {
                correlation,
                result,
            } if self.take(correlation) => match result {
                Ok(()) => {
                    let next = if self.step == Step::AddPartitions {
                        Step::Produce
                    } else {
                        Step::CommitOffsets
                    };
                    self.go(now, next, out);
                }
                Err(e) => self.on_error(now, e, None, out),
            },
            Message::ProduceResponse {
                correlation,
                results,
            } => {
                let Some(partition) = self.inflight.remove(correlation) else {
                    return;
                };
                let result = results
                    .first()
                    .map_or(Err(ErrorCode::NetworkException), |r| r.result);
                match result {
                    Ok(base) => {
                        if let (Some(t), Some(p)) = (self.txn.as_mut(), partition) {
                            if let Some(b) = t.batches.get_mut(&p) {
                                b.2 = Some(base);
                            }
                        }
                        if self.inflight.is_empty() {
                            let all = self
                                .txn
                                .as_ref()
                                .is_some_and(|t| t.batches.values().all(|b| b.2.is_some()));
                            if all {
                                self.go(now, Step::AddOffsets, out);
                            } else {
                                self.retry(now, ErrorCode::RequestTimedOut, out);
                            }
                        }
                    }
                    Err(e) => {
                        if let Some(p) = partition {
                            self.meta.invalidate(p);
                        }
                        if self.inflight.is_empty() || !is_retriable(e) {
                            self.inflight.clear();
                            self.on_error(now, e, partition, out);
                        }
                    }
                }
            }
            Message::TxnOffsetCommitResponse {
                correlation,
                result,
            } if self.take(correlation) => match result {
                Ok(()) => self.go(now, Step::EndTxn { commit: true }, out),
                Err(e) => self.on_error(now, e, None, out),
            },
            Message::EndTxnResponse {
                correlation,
                result,
            } if self.take(correlation) => match result {
                Ok(epoch) => {
                    let commit = self.step == Step::EndTxn { commit: true };
                    // A batch of the aborted transaction without an answer may still
                    // arrive: an epoch bump is what fences it (KIP-890 part 2 does it in
                    // EndTxn; an older client asks InitProducerId for it, KIP-360).
                    let unanswered = self
                        .txn
                        .as_ref()
                        .is_some_and(|t| t.batches.values().any(|b| b.2.is_none()));
                    if let Some((_, current)) = self.producer.as_mut() {
                        if *current != epoch {
                            *current = epoch;
                            self.sequences.clear();
                        } else if !commit && unanswered && !self.config.exactly_once_v2 {
                            self.producer = None;
                        }
                    }
                    if commit {
                        self.complete_txn(Outcome::Ok, out);
                        self.go(now, Step::Poll, out);
                    } else {
                        self.complete_txn(Outcome::Fail, out);
                        if self.instance_fenced {
                            return self.exit_fenced(ErrorCode::FencedInstanceId, out);
                        }
                        // Rewind to the committed offsets (after rejoining the group if
                        // its generation moved on).
                        let next = if std::mem::take(&mut self.rejoin) {
                            Step::Join
                        } else if self.producer.is_none() {
                            Step::InitProducerId
                        } else {
                            Step::FetchOffsets
                        };
                        self.go(now, next, out);
                    }
                }
                Err(e) => self.on_error(now, e, None, out),
            },
            _ => {}
        }
    }

    /// Is `correlation` the current step's request? (It is no longer in flight.)
    fn take(&mut self, correlation: u64) -> bool {
        self.inflight.remove(correlation).is_some()
    }

    /// A fetch of the poll was answered (or failed): once all are, go on.
    fn poll_answered(&mut self, now: SimTime, out: &mut Outbox) {
        if !self.inflight.is_empty() {
            return;
        }
        if self.polled.is_empty() {
            self.wake.arm(now, self.spec.poll_interval_ms, out);
        } else {
            self.begin_txn(now, out);
        }
    }

    /// The run is over: finish the open transaction, start no new one.
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    /// The process crashed (or the run ended): the open transaction's outcome is
    /// unknown to it; it sends nothing more.
    pub fn crash(&mut self, out: &mut Outbox) {
        // Before EndTxn(commit) was sent the transaction can only be aborted (by the
        // coordinator's time-out or the next instance's InitProducerId).
        self.give_up_txn("CLIENT_CRASHED", out);
        self.step = Step::Done;
        self.inflight.clear();
    }
}

/// Errors after which the same request may simply be sent again.
fn is_retriable(e: ErrorCode) -> bool {
    use ErrorCode::*;
    matches!(
        e,
        NotLeaderOrFollower
            | FencedLeaderEpoch
            | UnknownLeaderEpoch
            | LeaderNotAvailable
            | NotEnoughReplicas
            | NotEnoughReplicasAfterAppend
            | RequestTimedOut
            | NetworkException
            | NotCoordinator
            | CoordinatorNotAvailable
            | ConcurrentTransactions
            | UnstableOffsetCommit
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{FetchData, ProduceResult, Record};
    use crate::types::Epoch;

    const GROUP: GroupId = GroupId(0);

    fn config() -> Config {
        Config {
            partitions: 2,
            output_partitions: 1,
            transaction_state_partitions: 1,
            offsets_topic_partitions: 1,
            ..Config::default()
        }
    }

    fn app() -> TxnApp {
        let spec = AppSpec {
            group: GROUP,
            slot: 0,
            slots: 1,
            transactional_id: TxnId(0),
            poll_interval_ms: 100,
            process_base: 7,
            process_stride: 100,
            value_base: 1_000,
        };
        TxnApp::new(ClientId(0), &config(), spec, 1)
    }

    /// A fake cluster: broker 0 leads everything and answers every request of `out`
    /// successfully (input partition 0 holds two records at offsets 5 and 6); the app
    /// handles the answers. Returns the history events recorded meanwhile.
    fn serve(app: &mut TxnApp, out: &mut Outbox, rounds: usize) -> Vec<HistoryEvent> {
        serve_with(app, out, rounds, &|_| None)
    }

    /// As `serve`, but `special` answers the requests it chooses instead.
    fn serve_with(
        app: &mut TxnApp,
        out: &mut Outbox,
        rounds: usize,
        special: &dyn Fn(&Message) -> Option<Message>,
    ) -> Vec<HistoryEvent> {
        let mut history = Vec::new();
        for _ in 0..rounds {
            if out.messages.is_empty() {
                // Waiting on a timer (a retry, the next poll): fire it.
                app.handle_timeout(SimTime::from_ms(1), Timer::Workload, out);
            }
            let requests: Vec<Message> = out.messages.drain(..).map(|(_, m)| m).collect();
            history.append(&mut out.history);
            for request in requests {
                if let Some(answer) = special(&request).or_else(|| answer(request)) {
                    app.handle_message(
                        SimTime::from_ms(1),
                        NodeId::Broker(BrokerId(0)),
                        answer,
                        out,
                    );
                }
            }
        }
        history.append(&mut out.history);
        history
    }

    fn answer(request: Message) -> Option<Message> {
        let record = |value| Record {
            value,
            epoch: Epoch(1),
            producer: None,
            control: None,
            txn_state: None,
        };
        Some(match request {
            Message::MetadataRequest { correlation } => Message::MetadataResponse {
                correlation,
                partitions: (0..5)
                    .map(|p| (PartitionId(p), Some(BrokerId(0)), Epoch(1)))
                    .collect(),
            },
            // The app is the group's only member, and its leader.
            Message::JoinGroup {
                correlation,
                instance,
                owned,
                owned_generation,
                ..
            } => Message::JoinGroupResponse {
                correlation,
                result: Ok(Joined {
                    generation: Generation(3),
                    member: MemberId(1),
                    leader: MemberId(1),
                    protocol: PROTOCOL.to_string(),
                    members: vec![(MemberId(1), instance, owned, owned_generation)],
                }),
            },
            // Each member gets what the leader assigned it.
            Message::SyncGroup {
                correlation,
                member,
                assignments,
                ..
            } => Message::SyncGroupResponse {
                correlation,
                result: Ok(assignments
                    .into_iter()
                    .find(|(m, _)| *m == member)
                    .map(|(_, partitions)| partitions)
                    .unwrap_or_default()),
            },
            Message::Heartbeat { correlation, .. } => Message::HeartbeatResponse {
                correlation,
                result: Ok(()),
            },
            Message::InitProducerId { correlation, .. } => Message::InitProducerIdResponse {
                correlation,
                result: Ok((ProducerId(9), ProducerEpoch(0))),
            },
            Message::OffsetFetch { correlation, .. } => Message::OffsetFetchResponse {
                correlation,
                result: Ok(vec![(PartitionId(0), Some(Offset(5)))]),
            },
            Message::Fetch {
                correlation,
                partition,
                fetch_offset,
                ..
            } => Message::FetchResponse {
                correlation,
                partition,
                result: Ok(FetchData {
                    leader_epoch: Epoch(1),
                    base_offset: fetch_offset,
                    records: if partition == PartitionId(0) && fetch_offset == Offset(5) {
                        vec![record(50), record(60)]
                    } else {
                        Vec::new()
                    },
                    high_watermark: Some(Offset(7)),
                    log_end_offset: Offset(7),
                    last_stable_offset: Some(Offset(7)),
                    aborted: Vec::new(),
                }),
            },
            Message::AddPartitionsToTxn { correlation, .. }
            | Message::AddOffsetsToTxn { correlation, .. } => Message::TxnResponse {
                correlation,
                result: Ok(()),
            },
            Message::Produce {
                correlation,
                batches,
                ..
            } => Message::ProduceResponse {
                correlation,
                results: vec![ProduceResult {
                    partition: batches[0].partition,
                    result: Ok(Offset(40)),
                }],
            },
            Message::TxnOffsetCommit { correlation, .. } => Message::TxnOffsetCommitResponse {
                correlation,
                result: Ok(()),
            },
            Message::EndTxn {
                correlation,
                producer_epoch,
                ..
            } => Message::EndTxnResponse {
                correlation,
                result: Ok(ProducerEpoch(producer_epoch.0 + 1)),
            },
            _ => return None,
        })
    }

    /// Start the app and let it run until its first transaction's EndTxn is sent.
    fn until_commit_sent(app: &mut TxnApp, out: &mut Outbox) -> Vec<HistoryEvent> {
        app.start(SimTime::ZERO, out);
        app.handle_timeout(SimTime::from_ms(100), Timer::Workload, out);
        let mut history = Vec::new();
        while !out
            .messages
            .iter()
            .any(|(_, m)| matches!(m, Message::EndTxn { .. }))
        {
            history.extend(serve(app, out, 1));
            assert!(history.len() < 50, "no transaction reached EndTxn");
        }
        history
    }

    #[test]
    fn a_committed_transaction_records_its_reads_sends_and_offsets() {
        let (mut app, mut out) = (app(), Outbox::default());
        let mut history = until_commit_sent(&mut app, &mut out);
        let commit = out.messages.iter().find_map(|(_, m)| match m {
            Message::EndTxn {
                commit,
                producer_epoch,
                transaction_version_2,
                ..
            } => Some((*commit, *producer_epoch, *transaction_version_2)),
            _ => None,
        });
        assert_eq!(commit, Some((true, ProducerEpoch(0), true)));
        history.extend(serve(&mut app, &mut out, 1));
        let kinds: Vec<(OpKind, Outcome)> = history.iter().map(|e| (e.kind, e.outcome)).collect();
        assert_eq!(
            kinds,
            [
                (OpKind::Assign, Outcome::Invoke),
                (OpKind::Assign, Outcome::Ok),
                (OpKind::Txn, Outcome::Invoke),
                (OpKind::Txn, Outcome::Ok),
            ]
        );
        let ok = &history[3];
        let output = PartitionId(2);
        assert_eq!(
            ok.mops,
            vec![
                MicroOp::Poll {
                    reads: Some(vec![(
                        PartitionId(0),
                        vec![(Offset(5), 50), (Offset(6), 60)]
                    )])
                },
                MicroOp::Send {
                    partition: output,
                    value: 1_001,
                    offset: Some(Offset(40))
                },
                MicroOp::Send {
                    partition: output,
                    value: 1_002,
                    offset: Some(Offset(41))
                },
            ]
        );
        assert_eq!(
            ok.offsets,
            vec![(PartitionId(0), Offset(7))],
            "the next offset to read"
        );
        assert_eq!(ok.group, Some((GROUP, Some((Generation(3), MemberId(1))))));
        assert_eq!(app.stats.committed, 1);
        assert_eq!(
            app.producer,
            Some((ProducerId(9), ProducerEpoch(1))),
            "KIP-890: next epoch"
        );
        assert!(
            app.sequences.is_empty(),
            "a new epoch restarts the sequences"
        );
    }

    #[test]
    fn a_crash_is_unknown_once_the_commit_was_sent_and_an_abort_before() {
        let (mut app, mut out) = (app(), Outbox::default());
        until_commit_sent(&mut app, &mut out);
        app.crash(&mut out);
        let last = out.history.last().expect("the open transaction completes");
        assert_eq!((last.kind, last.outcome), (OpKind::Txn, Outcome::Info));
        assert_eq!(last.error, Some("CLIENT_CRASHED"));

        let (mut app, mut out) = (self::app(), Outbox::default());
        app.start(SimTime::ZERO, &mut out);
        app.handle_timeout(SimTime::from_ms(100), Timer::Workload, &mut out);
        while !out
            .messages
            .iter()
            .any(|(_, m)| matches!(m, Message::TxnOffsetCommit { .. }))
        {
            serve(&mut app, &mut out, 1);
        }
        out.history.clear();
        app.crash(&mut out);
        assert_eq!(
            out.history[0].outcome,
            Outcome::Fail,
            "only our EndTxn(commit) could commit"
        );
    }

    #[test]
    fn a_fenced_instance_aborts_and_exits() {
        let (mut app, mut out) = (app(), Outbox::default());
        app.start(SimTime::ZERO, &mut out);
        app.handle_timeout(SimTime::from_ms(100), Timer::Workload, &mut out);
        let mut commit = None;
        for _ in 0..20 {
            if commit.is_some() {
                break;
            }
            commit = out.messages.iter().find_map(|(_, m)| match m {
                Message::TxnOffsetCommit { correlation, .. } => Some(*correlation),
                _ => None,
            });
            if commit.is_none() {
                serve(&mut app, &mut out, 1);
            }
        }
        out.messages.clear();
        out.history.clear();
        let fenced = Message::TxnOffsetCommitResponse {
            correlation: commit.unwrap(),
            result: Err(ErrorCode::FencedInstanceId),
        };
        app.handle_message(
            SimTime::from_ms(2),
            NodeId::Broker(BrokerId(0)),
            fenced,
            &mut out,
        );
        assert!(app.exited);
        assert_eq!(app.stats.fenced, 1);
        assert_eq!(out.history[0].outcome, Outcome::Fail);
        assert_eq!(out.history[0].error, Some("FENCED_INSTANCE_ID"));
        assert!(out.messages.is_empty(), "a zombie sends nothing more");
    }

    /// The requests of `kind` (by API name) among `out`'s messages.
    fn sent<'a>(out: &'a Outbox, api: &str) -> Vec<&'a Message> {
        out.messages
            .iter()
            .map(|(_, m)| m)
            .filter(|m| m.api() == api)
            .collect()
    }

    #[test]
    fn the_leader_assigns_every_member_its_slot_and_each_consumes_what_sync_gave() {
        // Slot 0 of 2 leads a group whose other member is instance 1.
        let spec = AppSpec {
            slots: 2,
            ..app().spec
        };
        let mut app = TxnApp::new(ClientId(0), &config(), spec, 1);
        let mut out = Outbox::default();
        app.start(SimTime::ZERO, &mut out);
        let two_members = |m: &Message| match m {
            Message::JoinGroup { correlation, .. } => Some(Message::JoinGroupResponse {
                correlation: *correlation,
                result: Ok(Joined {
                    generation: Generation(5),
                    member: MemberId(1),
                    leader: MemberId(1),
                    protocol: PROTOCOL.to_string(),
                    members: vec![
                        (MemberId(1), Some(0), vec![PartitionId(0)], None),
                        (MemberId(2), Some(1), vec![PartitionId(1)], None),
                    ],
                }),
            }),
            _ => None,
        };
        while sent(&out, "SyncGroup").is_empty() {
            serve_with(&mut app, &mut out, 1, &two_members);
        }
        let sync = sent(&out, "SyncGroup")[0].clone();
        let Message::SyncGroup {
            generation,
            member,
            instance,
            assignments,
            ..
        } = sync
        else {
            unreachable!()
        };
        assert_eq!(
            (generation, member, instance),
            (Generation(5), MemberId(1), Some(0))
        );
        assert_eq!(
            assignments,
            vec![
                (MemberId(1), vec![PartitionId(0)]),
                (MemberId(2), vec![PartitionId(1)]),
            ],
            "each instance gets its slot's partitions"
        );
        // The coordinator hands out something else: the app consumes that.
        let other = |m: &Message| match m {
            Message::SyncGroup { correlation, .. } => Some(Message::SyncGroupResponse {
                correlation: *correlation,
                result: Ok(vec![PartitionId(1)]),
            }),
            _ => None,
        };
        while sent(&out, "OffsetFetch").is_empty() {
            serve_with(&mut app, &mut out, 1, &other);
        }
        assert!(matches!(
            sent(&out, "OffsetFetch")[0],
            Message::OffsetFetch { partitions, .. }
                if *partitions == [PartitionId(1)].into_iter().collect::<PartitionSet>()
        ));
        assert_eq!(app.inputs(), vec![PartitionId(1)]);
    }

    /// Start the app, open its first transaction up to EndTxn(commit), and have a
    /// heartbeat answered `error` meanwhile; returns what the app did next.
    fn heartbeat_news_during_a_transaction(
        error: ErrorCode,
    ) -> (TxnApp, Outbox, Vec<HistoryEvent>) {
        let (mut app, mut out) = (app(), Outbox::default());
        until_commit_sent(&mut app, &mut out);
        let mut beat = Outbox::default();
        app.handle_timeout(SimTime::from_ms(3_000), Timer::Heartbeat, &mut beat);
        let correlation = match sent(&beat, "Heartbeat")[..] {
            [Message::Heartbeat {
                correlation,
                generation,
                member,
                instance,
                ..
            }] => {
                assert_eq!(
                    (*generation, *member, *instance),
                    (Generation(3), MemberId(1), Some(0))
                );
                *correlation
            }
            _ => panic!("one Heartbeat: {:?}", beat.messages),
        };
        assert!(
            beat.timers.iter().any(|&(_, t)| t == Timer::Heartbeat),
            "the next one is armed"
        );
        let answer = Message::HeartbeatResponse {
            correlation,
            result: Err(error),
        };
        app.handle_message(
            SimTime::from_ms(3_001),
            NodeId::Broker(BrokerId(0)),
            answer,
            &mut out,
        );
        assert!(!app.exited, "nothing happens before the transaction ends");
        // EndTxn(commit) is answered: the transaction commits, then the news acts.
        let history = serve(&mut app, &mut out, 1);
        (app, out, history)
    }

    #[test]
    fn a_rebalance_learnt_from_a_heartbeat_rejoins_after_the_open_transaction() {
        let (app, out, history) =
            heartbeat_news_during_a_transaction(ErrorCode::RebalanceInProgress);
        let last = history.last().expect("the transaction completed");
        assert_eq!((last.kind, last.outcome), (OpKind::Txn, Outcome::Ok));
        assert_eq!(app.step, Step::Join);
        match sent(&out, "JoinGroup")[..] {
            [Message::JoinGroup {
                member,
                instance,
                owned,
                owned_generation,
                protocols,
                ..
            }] => {
                assert_eq!(*member, Some(MemberId(1)), "rejoins as itself");
                assert_eq!(*instance, Some(0));
                assert_eq!(owned, &vec![PartitionId(0), PartitionId(1)]);
                assert_eq!(*owned_generation, Some(Generation(3)));
                assert_eq!(protocols, &vec![PROTOCOL.to_string()]);
            }
            _ => panic!("one JoinGroup: {:?}", out.messages),
        }
    }

    #[test]
    fn a_fenced_instance_learnt_from_a_heartbeat_exits_after_the_open_transaction() {
        let (app, out, history) = heartbeat_news_during_a_transaction(ErrorCode::FencedInstanceId);
        let outcomes: Vec<(OpKind, Outcome)> =
            history.iter().map(|e| (e.kind, e.outcome)).collect();
        assert_eq!(
            outcomes,
            [(OpKind::Txn, Outcome::Ok)],
            "committed, then exited"
        );
        assert!(app.exited);
        assert_eq!(app.stats.fenced, 1);
        assert!(out.messages.is_empty(), "a zombie sends nothing more");
    }

    #[test]
    fn an_unknown_member_rejoins_as_a_new_one() {
        // UNKNOWN_MEMBER_ID on the join (the coordinator lost the member): forget the
        // member id and join again without one.
        let (mut app, mut out) = (app(), Outbox::default());
        app.start(SimTime::ZERO, &mut out);
        for _ in 0..10 {
            if app.step == Step::Poll {
                break;
            }
            serve(&mut app, &mut out, 1);
        }
        assert_eq!(app.member, Some(MemberId(1)));
        // Rejoin (as after a fenced producer), with no transaction open.
        out.messages.clear();
        app.step = Step::Join;
        app.inflight.clear();
        app.run_step(SimTime::from_ms(5), &mut out);
        let correlation = match sent(&out, "JoinGroup").last() {
            Some(Message::JoinGroup {
                correlation,
                member,
                ..
            }) => {
                assert_eq!(*member, Some(MemberId(1)));
                *correlation
            }
            other => panic!("a JoinGroup: {other:?}"),
        };
        out.messages.clear();
        let answer = Message::JoinGroupResponse {
            correlation,
            result: Err(ErrorCode::UnknownMemberId),
        };
        app.handle_message(
            SimTime::from_ms(6),
            NodeId::Broker(BrokerId(0)),
            answer,
            &mut out,
        );
        match sent(&out, "JoinGroup")[..] {
            [Message::JoinGroup { member, .. }] => assert_eq!(*member, None),
            _ => panic!("one JoinGroup: {:?}", out.messages),
        }
    }
}
