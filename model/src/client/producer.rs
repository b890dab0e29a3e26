//! The producer client: `linger.ms` batching per partition, the idempotent producer's
//! sequence numbers (KIP-98), at most `max.in.flight.requests.per.connection` requests
//! per broker, retries with `retry.backoff.ms` on retriable errors and timeouts until
//! `delivery.timeout.ms`, and metadata refresh when a leader moves.
//!
//! History: each send *operation* holds a few sends (micro-ops) invoked together by one
//! process; it completes `ok` when every record was acknowledged (with offsets), `fail`
//! when every record definitely was not written, and `info` otherwise (unknown outcome:
//! the process then continues under a new process id, as Jepsen's clients do).
//!
//! Simplification (README, fidelity): one Produce request per batch; an expired batch
//! bumps the producer epoch of its partition only (encoded in the producer id), which
//! stands in for KIP-360's epoch bump.

use super::metadata::MetadataCache;
use super::partition_for_key;
use crate::config::{Acks, Config};
use crate::history::{HistoryEvent, MicroOp, OpKind, Outcome};
use crate::message::{ErrorCode, Message, ProduceBatch, ProducerStamp};
use crate::outbox::{Outbox, Timer};
use crate::rng::ModelRng;
use crate::types::{
    BrokerId, ClientId, NodeId, Offset, PartitionId, ProducerEpoch, ProducerId, Sequence, SimTime,
    Value,
};
use std::collections::{BTreeMap, VecDeque};

/// The workload one producer client runs.
#[derive(Clone, Debug)]
pub struct ProducerWorkload {
    pub threads: u32,
    pub send_interval_ms: u64,
    pub sends_per_op_max: u32,
    pub keyed: bool,
    pub customers: u32,
    /// Values are `counter * value_stride + value_offset`: unique across producers.
    pub value_stride: u64,
    pub value_offset: u64,
    /// Process ids are `process_base + thread + k * process_stride`.
    pub process_base: u64,
    pub process_stride: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RecordOutcome {
    Pending,
    /// Appended; the offset is unknown when only a later batch's acknowledgement
    /// proved it (sequence numbers are appended in order).
    Written(Option<Offset>),
    NotWritten,
    Unknown,
}

#[derive(Clone, Debug)]
struct Operation {
    process: u64,
    records: Vec<(PartitionId, Value, RecordOutcome)>,
    error: Option<&'static str>,
}

#[derive(Clone, Debug)]
struct Thread {
    process: u64,
    op: Option<Operation>,
    next_at: SimTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BatchState {
    /// Accepting records until `linger.ms` or the size limit.
    Open,
    Ready,
    Inflight(u64),
    Backoff(SimTime),
}

#[derive(Clone, Debug)]
struct Batch {
    partition: PartitionId,
    /// (value, thread index, record index in the thread's operation).
    records: Vec<(Value, usize, usize)>,
    stamp: Option<ProducerStamp>,
    created: SimTime,
    state: BatchState,
    /// Some attempt may have been appended (timeout, or error after append).
    maybe_appended: bool,
    last_error: Option<ErrorCode>,
}

#[derive(Clone, Debug)]
struct PartitionQueue {
    /// Producer epoch of this partition (bumped when a batch expires).
    epoch: u32,
    next_sequence: Sequence,
    /// Highest sequence acknowledged in the current epoch.
    acked_sequence: Option<Sequence>,
    batches: VecDeque<u64>,
}

/// The producer id of a client's partition epoch: the client id in the high half, the
/// epoch in the low half (standing in for InitProducerId and KIP-360's epoch bump).
fn producer_id(client: ClientId, epoch: u32) -> ProducerId {
    ProducerId((u64::from(client.0) << 32) | u64::from(epoch))
}

/// Set `timer` for `at` unless one already fires at or before it.
fn arm(armed: &mut Option<SimTime>, now: SimTime, at: SimTime, timer: Timer, out: &mut Outbox) {
    if armed.is_some_and(|t| t <= at && t >= now) {
        return;
    }
    *armed = Some(at);
    out.timer(at.since(now), timer);
}

pub struct Producer {
    pub id: ClientId,
    config: Config,
    workload: ProducerWorkload,
    rng: ModelRng,
    meta: MetadataCache,
    threads: Vec<Thread>,
    queues: Vec<PartitionQueue>,
    batches: BTreeMap<u64, Batch>,
    /// correlation -> (broker, batch id, sent at).
    inflight: BTreeMap<u64, (BrokerId, u64, SimTime)>,
    next_id: u64,
    value_counter: u64,
    round_robin: u32,
    /// When the pending Workload / Retry timers fire: one of each is enough.
    workload_armed: Option<SimTime>,
    retry_armed: Option<SimTime>,
    timeouts_armed: Option<SimTime>,
    linger_armed: Option<SimTime>,
    pub stopped: bool,
}

impl Producer {
    pub fn new(id: ClientId, config: &Config, workload: ProducerWorkload, seed: u64) -> Producer {
        let threads = (0..workload.threads)
            .map(|t| Thread {
                process: workload.process_base + u64::from(t),
                op: None,
                next_at: SimTime::ZERO,
            })
            .collect();
        Producer {
            id,
            config: config.clone(),
            meta: MetadataCache::new(config.total_partitions(), config.brokers),
            queues: (0..config.partitions)
                .map(|_| PartitionQueue {
                    epoch: 0,
                    next_sequence: 0,
                    acked_sequence: None,
                    batches: VecDeque::new(),
                })
                .collect(),
            workload,
            rng: ModelRng::new(seed),
            threads,
            batches: BTreeMap::new(),
            inflight: BTreeMap::new(),
            next_id: 0,
            value_counter: 0,
            round_robin: 0,
            workload_armed: None,
            retry_armed: None,
            timeouts_armed: None,
            linger_armed: None,
            stopped: false,
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn start(&mut self, now: SimTime, out: &mut Outbox) {
        let c = self.next_id();
        self.meta.refresh(now, c, &mut self.rng, out);
        for i in 0..self.threads.len() {
            let wait = self.rng.below(self.workload.send_interval_ms.max(1) * 2);
            self.threads[i].next_at = now.plus_ms(wait);
        }
        self.arm_workload(now, out);
    }

    /// No new operations from now on; the ones in flight finish.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// No operation in flight.
    pub fn is_idle(&self) -> bool {
        self.threads.iter().all(|t| t.op.is_none())
    }

    fn arm_workload(&mut self, now: SimTime, out: &mut Outbox) {
        if self.stopped {
            return;
        }
        if let Some(next) = self
            .threads
            .iter()
            .filter(|t| t.op.is_none())
            .map(|t| t.next_at)
            .min()
        {
            arm(
                &mut self.workload_armed,
                now,
                next.max(now),
                Timer::Workload,
                out,
            );
        }
    }

    pub fn handle_timeout(&mut self, now: SimTime, timer: Timer, out: &mut Outbox) {
        match timer {
            Timer::Workload => {
                if self.workload_armed.is_some_and(|t| t <= now) {
                    self.workload_armed = None;
                }
                for i in 0..self.threads.len() {
                    if !self.stopped
                        && self.threads[i].op.is_none()
                        && self.threads[i].next_at <= now
                    {
                        self.start_operation(now, i, out);
                    }
                }
                self.arm_workload(now, out);
            }
            Timer::Linger => {
                if self.linger_armed.is_some_and(|t| t <= now) {
                    self.linger_armed = None;
                }
                let linger = SimTime::from_ms(self.config.linger_ms);
                let mut next: Option<SimTime> = None;
                for q in &self.queues {
                    let Some(b) = q.batches.back().and_then(|id| self.batches.get_mut(id)) else {
                        continue;
                    };
                    if b.state != BatchState::Open {
                        continue;
                    }
                    let due = b.created.plus(linger);
                    if due <= now {
                        b.state = BatchState::Ready;
                    } else {
                        next = Some(next.map_or(due, |n| n.min(due)));
                    }
                }
                if let Some(due) = next {
                    arm(&mut self.linger_armed, now, due, Timer::Linger, out);
                }
            }
            Timer::RequestTimeout(c) => {
                self.meta.on_timeout(c);
            }
            Timer::RequestTimeouts => {
                if self.timeouts_armed.is_some_and(|t| t <= now) {
                    self.timeouts_armed = None;
                }
                let timeout = SimTime::from_ms(self.config.request_timeout_ms);
                let expired: Vec<u64> = self
                    .inflight
                    .iter()
                    .filter(|(_, (_, _, sent))| now.since(*sent) >= timeout)
                    .map(|(&c, _)| c)
                    .collect();
                for c in expired {
                    if let Some((_, id, _)) = self.inflight.remove(&c) {
                        self.retry_later(now, id, None, true);
                    }
                }
                if let Some(first) = self.inflight.values().map(|(_, _, sent)| *sent).min() {
                    arm(
                        &mut self.timeouts_armed,
                        now,
                        first.plus(timeout),
                        Timer::RequestTimeouts,
                        out,
                    );
                }
            }
            Timer::Retry if self.retry_armed.is_some_and(|t| t <= now) => {
                self.retry_armed = None;
            }
            _ => {}
        }
        self.expire_batches(now, out);
        self.drain(now, out);
    }

    pub fn handle_message(&mut self, now: SimTime, _from: NodeId, msg: Message, out: &mut Outbox) {
        match msg {
            Message::ConnectionClosed { broker } => {
                // Every request in flight to it is lost; it may have been appended.
                let lost: Vec<u64> = self
                    .inflight
                    .iter()
                    .filter(|(_, (b, _, _))| *b == broker)
                    .map(|(&c, _)| c)
                    .collect();
                for c in lost {
                    if let Some((_, id, _)) = self.inflight.remove(&c) {
                        self.retry_later(now, id, Some(ErrorCode::NetworkException), true);
                    }
                }
                self.meta.forget_broker(broker);
            }
            Message::MetadataResponse {
                correlation,
                partitions,
            } => {
                self.meta.on_response(correlation, &partitions);
            }
            Message::ProduceResponse {
                correlation,
                results,
            } => {
                let Some((_, id, _)) = self.inflight.remove(&correlation) else {
                    return;
                };
                for r in results {
                    match r.result {
                        Ok(base) => self.complete_batch(now, id, Ok(Some(base)), out),
                        Err(e) => {
                            let retriable = !matches!(e, ErrorCode::OffsetOutOfRange);
                            let appended = matches!(
                                e,
                                ErrorCode::NotEnoughReplicasAfterAppend
                                    | ErrorCode::RequestTimedOut
                            );
                            if matches!(
                                e,
                                ErrorCode::NotLeaderOrFollower
                                    | ErrorCode::FencedLeaderEpoch
                                    | ErrorCode::UnknownLeaderEpoch
                                    | ErrorCode::LeaderNotAvailable
                            ) {
                                self.meta.invalidate(r.partition);
                            }
                            if e == ErrorCode::OutOfOrderSequenceNumber && self.acked_after(id) {
                                // A later sequence of this epoch was acknowledged, and the
                                // broker appends sequences only in order: this batch is in
                                // the log, out of the dedupe window. Its offset is unknown.
                                self.complete_batch(now, id, Ok(None), out);
                                continue;
                            }
                            if matches!(
                                e,
                                ErrorCode::OutOfOrderSequenceNumber | ErrorCode::UnknownProducerId
                            ) {
                                self.maybe_reset_sequence(id);
                            }
                            if retriable {
                                self.retry_later(now, id, Some(e), appended);
                            } else {
                                self.complete_batch(now, id, Err(e), out);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        self.expire_batches(now, out);
        self.drain(now, out);
    }

    /// Was a sequence after this batch's already acknowledged in the same epoch?
    fn acked_after(&self, id: u64) -> bool {
        let Some(b) = self.batches.get(&id) else {
            return false;
        };
        let Some(stamp) = b.stamp else { return false };
        let q = &self.queues[b.partition.index()];
        stamp.producer_id == producer_id(self.id, q.epoch)
            && q.acked_sequence.is_some_and(|a| a >= stamp.base_sequence)
    }

    /// A sequence error on the oldest unacknowledged batch of its partition means the
    /// broker lost this producer's earlier batches (an unclean election or a lossy
    /// crash): bump the partition's producer epoch and start its sequence again, as
    /// KIP-360 does. An error on a later batch just waits for the earlier one's retry.
    fn maybe_reset_sequence(&mut self, id: u64) {
        let Some(p) = self.batches.get(&id).map(|b| b.partition) else {
            return;
        };
        let q = &mut self.queues[p.index()];
        if q.batches.front() != Some(&id) {
            return;
        }
        q.epoch += 1;
        q.next_sequence = 0;
        q.acked_sequence = None;
        for bid in q.batches.iter() {
            if let Some(b) = self.batches.get_mut(bid) {
                if *bid == id || !matches!(b.state, BatchState::Inflight(_)) {
                    b.stamp = None;
                }
            }
        }
    }

    fn retry_later(
        &mut self,
        now: SimTime,
        id: u64,
        error: Option<ErrorCode>,
        maybe_appended: bool,
    ) {
        let backoff = self.config.retry_backoff_ms;
        if let Some(b) = self.batches.get_mut(&id) {
            b.state = BatchState::Backoff(now.plus_ms(backoff));
            b.maybe_appended |= maybe_appended;
            b.last_error = error.or(Some(ErrorCode::RequestTimedOut));
        }
    }

    fn start_operation(&mut self, now: SimTime, thread: usize, out: &mut Outbox) {
        let n = self
            .rng
            .between(1, u64::from(self.workload.sends_per_op_max.max(1))) as usize;
        let mut records = Vec::with_capacity(n);
        for _ in 0..n {
            let p = if self.workload.keyed {
                let customer = self.rng.below(u64::from(self.workload.customers.max(1)));
                partition_for_key(
                    format!("customer-{customer}").as_bytes(),
                    self.config.partitions,
                )
            } else {
                self.round_robin = (self.round_robin + 1) % self.config.partitions;
                self.round_robin
            };
            let value =
                self.value_counter * self.workload.value_stride + self.workload.value_offset;
            self.value_counter += 1;
            records.push((PartitionId(p), value, RecordOutcome::Pending));
        }
        let process = self.threads[thread].process;
        out.record(HistoryEvent {
            process,
            outcome: Outcome::Invoke,
            kind: OpKind::Send,
            mops: records
                .iter()
                .map(|&(partition, value, _)| MicroOp::Send {
                    partition,
                    value,
                    offset: None,
                })
                .collect(),
            assigned: Vec::new(),
            error: None,
            offsets: Vec::new(),
            group: None,
        });
        for (i, &(p, value, _)) in records.iter().enumerate() {
            self.add_to_batch(now, p, value, thread, i, out);
        }
        self.threads[thread].op = Some(Operation {
            process,
            records,
            error: None,
        });
    }

    fn add_to_batch(
        &mut self,
        now: SimTime,
        p: PartitionId,
        value: Value,
        thread: usize,
        index: usize,
        out: &mut Outbox,
    ) {
        let limit = self.config.batch_size_records as usize;
        let open = self.queues[p.index()]
            .batches
            .back()
            .copied()
            .filter(|id| self.batches[id].state == BatchState::Open);
        let id = match open {
            Some(id) => id,
            None => {
                let id = self.next_id();
                self.batches.insert(
                    id,
                    Batch {
                        partition: p,
                        records: Vec::new(),
                        stamp: None,
                        created: now,
                        state: if self.config.linger_ms == 0 {
                            BatchState::Ready
                        } else {
                            BatchState::Open
                        },
                        maybe_appended: false,
                        last_error: None,
                    },
                );
                self.queues[p.index()].batches.push_back(id);
                if self.config.linger_ms > 0 {
                    let due = now.plus_ms(self.config.linger_ms);
                    arm(&mut self.linger_armed, now, due, Timer::Linger, out);
                }
                id
            }
        };
        let b = self.batches.get_mut(&id).expect("just found");
        b.records.push((value, thread, index));
        if b.records.len() >= limit {
            b.state = BatchState::Ready;
        }
    }

    /// In-flight requests to one broker (the per-connection limit).
    fn inflight_to(&self, broker: BrokerId) -> usize {
        self.inflight
            .values()
            .filter(|(b, _, _)| *b == broker)
            .count()
    }

    /// Send what can be sent: per partition in queue order (a batch goes only when every
    /// earlier one is in flight, which keeps sequence order), within the in-flight limit.
    fn drain(&mut self, now: SimTime, out: &mut Outbox) {
        let max_inflight = self.config.max_in_flight_requests_per_connection as usize;
        let mut need_metadata = self.meta.is_stale(now, self.config.metadata_max_age_ms);
        let mut wake: Option<SimTime> = None;
        for pi in 0..self.queues.len() {
            // Index rather than iterate: `send_batch` mutates the batch, never the queue.
            for k in 0..self.queues[pi].batches.len() {
                // An idempotent producer keeps at most max.in.flight unacknowledged
                // batches per partition, so a retry of the oldest always falls inside
                // the broker's five-batch window (KIP-98).
                if self.config.enable_idempotence && k >= max_inflight {
                    break;
                }
                let id = self.queues[pi].batches[k];
                let state = self.batches[&id].state;
                match state {
                    BatchState::Inflight(_) => continue,
                    BatchState::Open => break,
                    BatchState::Backoff(until) if until > now => {
                        wake = Some(wake.map_or(until, |w| w.min(until)));
                        break;
                    }
                    BatchState::Ready | BatchState::Backoff(_) => {}
                }
                let p = PartitionId(pi as u32);
                let Some((leader, _)) = self.meta.leader(p) else {
                    need_metadata = true;
                    let retry = now.plus_ms(self.config.retry_backoff_ms);
                    wake = Some(wake.map_or(retry, |w| w.min(retry)));
                    break;
                };
                if self.inflight_to(leader) >= max_inflight {
                    break;
                }
                self.send_batch(now, id, leader, out);
            }
        }
        if need_metadata {
            let c = self.next_id();
            self.meta.refresh(now, c, &mut self.rng, out);
        }
        if let Some(w) = wake {
            arm(&mut self.retry_armed, now, w, Timer::Retry, out);
        }
    }

    fn send_batch(&mut self, now: SimTime, id: u64, leader: BrokerId, out: &mut Outbox) {
        let correlation = self.next_id();
        let idempotent = self.config.enable_idempotence;
        let b = self.batches.get(&id).expect("batch exists");
        let p = b.partition;
        let stamp = match (idempotent, b.stamp) {
            (false, _) => None,
            (true, Some(s)) => Some(s),
            (true, None) => {
                let q = &mut self.queues[p.index()];
                let s = ProducerStamp {
                    producer_id: producer_id(self.id, q.epoch),
                    producer_epoch: ProducerEpoch::default(),
                    base_sequence: q.next_sequence,
                    transactional: false,
                };
                q.next_sequence += b.records.len() as u32;
                Some(s)
            }
        };
        let b = self.batches.get_mut(&id).expect("batch exists");
        b.stamp = stamp;
        b.state = BatchState::Inflight(correlation);
        let batch = ProduceBatch {
            partition: p,
            producer: stamp,
            values: b.records.iter().map(|r| r.0).collect(),
        };
        let acks = self.config.acks;
        out.send(
            NodeId::Broker(leader),
            Message::Produce {
                transactional_id: None,
                correlation,
                acks_all: acks == Acks::All,
                acks_none: acks == Acks::None,
                batches: vec![batch],
            },
        );
        if acks == Acks::None {
            // acks=0: nothing comes back; the client cannot know whether it landed.
            if let Some(b) = self.batches.get_mut(&id) {
                b.maybe_appended = true;
            }
            self.complete_batch(now, id, Err(ErrorCode::RequestTimedOut), out);
            return;
        }
        self.inflight.insert(correlation, (leader, id, now));
        let deadline = now.plus_ms(self.config.request_timeout_ms);
        if self.timeouts_armed.is_none() {
            arm(
                &mut self.timeouts_armed,
                now,
                deadline,
                Timer::RequestTimeouts,
                out,
            );
        }
    }

    /// Batches older than `delivery.timeout.ms` (and not in flight) expire. The partition's
    /// producer epoch is bumped and every other waiting batch of it expires too, since
    /// their sequence numbers no longer follow on.
    fn expire_batches(&mut self, now: SimTime, out: &mut Outbox) {
        let timeout = SimTime::from_ms(self.config.delivery_timeout_ms);
        for pi in 0..self.queues.len() {
            let expired = self.queues[pi].batches.iter().any(|id| {
                let b = &self.batches[id];
                !matches!(b.state, BatchState::Inflight(_)) && now.since(b.created) >= timeout
            });
            if !expired {
                continue;
            }
            // Completing a batch removes it from the queue: take the ids first.
            let ids: Vec<u64> = self.queues[pi].batches.iter().copied().collect();
            for id in ids {
                if let BatchState::Inflight(c) = self.batches[&id].state {
                    self.inflight.remove(&c);
                    self.batches.get_mut(&id).expect("exists").maybe_appended = true;
                }
                let err = self.batches[&id]
                    .last_error
                    .unwrap_or(ErrorCode::RequestTimedOut);
                self.complete_batch(now, id, Err(err), out);
            }
            let q = &mut self.queues[pi];
            q.epoch += 1;
            q.next_sequence = 0;
            q.acked_sequence = None;
            q.acked_sequence = None;
        }
    }

    fn complete_batch(
        &mut self,
        now: SimTime,
        id: u64,
        result: Result<Option<Offset>, ErrorCode>,
        out: &mut Outbox,
    ) {
        let Some(b) = self.batches.remove(&id) else {
            return;
        };
        if let (Ok(_), Some(stamp)) = (result, b.stamp) {
            let q = &mut self.queues[b.partition.index()];
            if stamp.producer_id == producer_id(self.id, q.epoch) {
                let last = stamp.base_sequence + b.records.len() as u32 - 1;
                q.acked_sequence = Some(q.acked_sequence.map_or(last, |a| a.max(last)));
            }
        }
        self.queues[b.partition.index()]
            .batches
            .retain(|&x| x != id);
        for (i, &(_, thread, index)) in b.records.iter().enumerate() {
            let outcome = match result {
                Ok(Some(base)) => RecordOutcome::Written(Some(Offset(base.0 + i as u64))),
                Ok(None) => RecordOutcome::Written(None),
                Err(_) if b.maybe_appended => RecordOutcome::Unknown,
                Err(_) => RecordOutcome::NotWritten,
            };
            if let Some(op) = self.threads[thread].op.as_mut() {
                op.records[index].2 = outcome;
                if let Err(e) = result {
                    op.error = Some(e.name());
                }
            }
        }
        let threads: Vec<usize> = b.records.iter().map(|r| r.1).collect();
        for t in threads {
            self.maybe_complete_operation(now, t, out);
        }
    }

    fn maybe_complete_operation(&mut self, now: SimTime, thread: usize, out: &mut Outbox) {
        let done = self.threads[thread]
            .op
            .as_ref()
            .is_some_and(|op| op.records.iter().all(|r| r.2 != RecordOutcome::Pending));
        if !done {
            return;
        }
        let op = self.threads[thread].op.take().expect("checked");
        let all_written = op
            .records
            .iter()
            .all(|r| matches!(r.2, RecordOutcome::Written(_)));
        let none_written = op.records.iter().all(|r| r.2 == RecordOutcome::NotWritten);
        let outcome = if all_written {
            Outcome::Ok
        } else if none_written {
            Outcome::Fail
        } else {
            Outcome::Info
        };
        out.record(HistoryEvent {
            process: op.process,
            outcome,
            kind: OpKind::Send,
            mops: op
                .records
                .iter()
                .map(|&(partition, value, o)| MicroOp::Send {
                    partition,
                    value,
                    offset: match o {
                        RecordOutcome::Written(off) => off,
                        _ => None,
                    },
                })
                .collect(),
            assigned: Vec::new(),
            error: if all_written { None } else { op.error },
            offsets: Vec::new(),
            group: None,
        });
        let t = &mut self.threads[thread];
        if outcome == Outcome::Info {
            t.process += self.workload.process_stride;
        }
        let wait = self.rng.below(self.workload.send_interval_ms.max(1) * 2);
        t.next_at = now.plus_ms(wait);
        self.arm_workload(now, out);
    }

    /// The run is over: every operation still pending completes as `info`.
    pub fn abandon(&mut self, out: &mut Outbox) {
        self.stopped = true;
        for t in 0..self.threads.len() {
            if let Some(op) = self.threads[t].op.as_mut() {
                for r in op
                    .records
                    .iter_mut()
                    .filter(|r| r.2 == RecordOutcome::Pending)
                {
                    r.2 = RecordOutcome::Unknown;
                }
                op.error = Some("RUN_ENDED");
            }
            self.maybe_complete_operation(SimTime::ZERO, t, out);
        }
    }
}
