//! The assign-mode consumer: fetches its partitions from their leaders (with the
//! leader epoch it knows, KIP-320), up to the high watermark (`read_uncommitted`),
//! tracks its positions, and records `assign` and `poll` operations.
//!
//! Truncation detection (KIP-320, client side): when a partition's leader epoch moves
//! past the one its position was validated under, the consumer asks the leader for the
//! end offset of the epoch of the last record it fetched; if that is below its
//! position, the log was truncated (unclean election, lossy crash) and it seeks back
//! to the divergence point, recorded as a new `assign` (a seek).
//!
//! Simplification (README, fidelity): on OFFSET_OUT_OF_RANGE (its position is past the
//! leader's log) it rewinds that partition to the beginning
//! (`auto.offset.reset=earliest`), also recorded as a new `assign`.

use super::metadata::MetadataCache;
use crate::config::Config;
use crate::history::{HistoryEvent, MicroOp, OpKind, Outcome};
use crate::message::{AbortedTxn, ErrorCode, FetchData, Message, Record};
use crate::outbox::{Outbox, Timer};
use crate::rng::ModelRng;
use crate::types::{ClientId, Epoch, NodeId, Offset, PartitionId, SimTime, Value};
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
struct Poll {
    started: SimTime,
    /// correlation -> partition of each fetch or position validation outstanding.
    pending: BTreeMap<u64, PartitionId>,
    reads: BTreeMap<PartitionId, Vec<(Offset, Value)>>,
}

pub struct Consumer {
    pub id: ClientId,
    config: Config,
    rng: ModelRng,
    process: u64,
    poll_interval_ms: u64,
    meta: MetadataCache,
    pub assigned: Vec<PartitionId>,
    pub positions: BTreeMap<PartitionId, Offset>,
    /// Per partition: the leader epoch of the last record fetched (KIP-320).
    last_fetched_epoch: BTreeMap<PartitionId, Epoch>,
    /// Per partition: the leader epoch the position was last validated under.
    validated_epoch: BTreeMap<PartitionId, Epoch>,
    poll: Option<Poll>,
    next_id: u64,
    /// Partitions whose position was moved (a seek): the next poll first records an
    /// assignment without them, then the full one again, so the history shows that the
    /// client itself reset its position there.
    needs_reassign: Vec<PartitionId>,
    /// Validation requests in flight: correlation -> the leader epoch validated under.
    validating: BTreeMap<u64, Epoch>,
    pub stopped: bool,
}

impl Consumer {
    pub fn new(
        id: ClientId,
        config: &Config,
        assigned: Vec<PartitionId>,
        process: u64,
        poll_interval_ms: u64,
        seed: u64,
    ) -> Consumer {
        Consumer {
            id,
            config: config.clone(),
            rng: ModelRng::new(seed),
            process,
            poll_interval_ms,
            meta: MetadataCache::new(config.total_partitions(), config.brokers),
            positions: assigned.iter().map(|&p| (p, Offset::ZERO)).collect(),
            last_fetched_epoch: BTreeMap::new(),
            validated_epoch: BTreeMap::new(),
            assigned,
            poll: None,
            next_id: 0,
            needs_reassign: Vec::new(),
            validating: BTreeMap::new(),
            stopped: false,
        }
    }

    /// KIP-320's client-side truncation detection, unless the historical bug is on.
    fn detects_truncation(&self) -> bool {
        !self
            .config
            .has_bug(crate::bug::Bug::ConsumerNoTruncationDetection)
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn start(&mut self, now: SimTime, out: &mut Outbox) {
        self.record_assign(out);
        let c = self.next_id();
        self.meta.refresh(now, c, &mut self.rng, out);
        out.timer_ms(self.poll_interval_ms, Timer::Workload);
    }

    fn record_assign(&mut self, out: &mut Outbox) {
        self.record_assignment(self.assigned.clone(), out);
    }

    fn record_assignment(&self, assigned: Vec<PartitionId>, out: &mut Outbox) {
        for event in HistoryEvent::assign(self.process, assigned, None) {
            out.record(event);
        }
    }

    /// Poll time-out: `fetch.max.wait.ms` plus a round trip allowance.
    fn poll_timeout_ms(&self) -> u64 {
        self.config.fetch_max_wait_ms + 1_000
    }

    pub fn handle_timeout(&mut self, now: SimTime, timer: Timer, out: &mut Outbox) {
        match timer {
            Timer::Workload => {
                if self.poll.as_ref().is_some_and(|p| {
                    now.since(p.started) >= SimTime::from_ms(self.poll_timeout_ms())
                }) {
                    self.complete_poll(now, out);
                }
                if self.poll.is_none() && !self.stopped {
                    self.start_poll(now, out);
                }
                if !self.stopped || self.poll.is_some() {
                    out.timer_ms(
                        self.poll_interval_ms.min(self.poll_timeout_ms()),
                        Timer::Workload,
                    );
                }
            }
            Timer::RequestTimeout(c) => {
                self.meta.on_timeout(c);
            }
            _ => {}
        }
    }

    fn start_poll(&mut self, now: SimTime, out: &mut Outbox) {
        if !self.needs_reassign.is_empty() {
            let moved = std::mem::take(&mut self.needs_reassign);
            let kept: Vec<PartitionId> = self
                .assigned
                .iter()
                .copied()
                .filter(|p| !moved.contains(p))
                .collect();
            self.record_assignment(kept, out);
            self.record_assign(out);
        }
        out.record(HistoryEvent {
            process: self.process,
            outcome: Outcome::Invoke,
            kind: OpKind::Poll,
            mops: vec![MicroOp::Poll { reads: None }],
            assigned: Vec::new(),
            error: None,
            offsets: Vec::new(),
            group: None,
        });
        let mut poll = Poll {
            started: now,
            pending: BTreeMap::new(),
            reads: BTreeMap::new(),
        };
        let mut need_metadata = false;
        for &p in &self.assigned.clone() {
            let Some((leader, epoch)) = self.meta.leader(p) else {
                need_metadata = true;
                continue;
            };
            let correlation = self.next_id();
            poll.pending.insert(correlation, p);
            let fetched = self.last_fetched_epoch.get(&p).copied();
            let validated = self.validated_epoch.get(&p).copied().unwrap_or_default();
            if let (Some(fetched), true) = (fetched, epoch > validated && self.detects_truncation())
            {
                // A new leader epoch: validate the position before fetching (KIP-320).
                out.send(
                    NodeId::Broker(leader),
                    Message::OffsetsForLeaderEpoch {
                        correlation,
                        partition: p,
                        current_leader_epoch: Some(epoch),
                        leader_epoch: fetched,
                    },
                );
                self.validating.insert(correlation, epoch);
                continue;
            }
            out.send(
                NodeId::Broker(leader),
                Message::Fetch {
                    correlation,
                    replica: None,
                    partition: p,
                    fetch_offset: self.positions[&p],
                    current_leader_epoch: Some(epoch),
                    max_records: self.config.max_poll_records,
                    read_committed: self.config.read_committed,
                },
            );
        }
        if need_metadata || self.meta.is_stale(now, self.config.metadata_max_age_ms) {
            let c = self.next_id();
            self.meta.refresh(now, c, &mut self.rng, out);
        }
        self.poll = Some(poll);
        self.complete_poll_if_answered(now, out);
    }

    /// Is `correlation` a request of the current poll? (It no longer waits for it.)
    fn take_pending(&mut self, correlation: u64) -> bool {
        self.poll
            .as_mut()
            .is_some_and(|poll| poll.pending.remove(&correlation).is_some())
    }

    /// The poll completes once every request it sent is answered.
    fn complete_poll_if_answered(&mut self, now: SimTime, out: &mut Outbox) {
        if self.poll.as_ref().is_some_and(|p| p.pending.is_empty()) {
            self.complete_poll(now, out);
        }
    }

    pub fn handle_message(&mut self, now: SimTime, _from: NodeId, msg: Message, out: &mut Outbox) {
        match msg {
            Message::ConnectionClosed { broker } => {
                self.meta.forget_broker(broker);
                let lost: Vec<u64> = self
                    .poll
                    .as_ref()
                    .map(|p| p.pending.keys().copied().collect())
                    .unwrap_or_default();
                let Some(poll) = self.poll.as_mut() else {
                    return;
                };
                for c in lost {
                    let p = poll.pending[&c];
                    if self.meta.leader(p).is_none() {
                        poll.pending.remove(&c);
                    }
                }
                self.complete_poll_if_answered(now, out);
            }
            Message::MetadataResponse {
                correlation,
                partitions,
            } => {
                self.meta.on_response(correlation, &partitions);
            }
            Message::OffsetsForLeaderEpochResponse {
                correlation,
                partition,
                result,
            } => {
                if !self.take_pending(correlation) {
                    return;
                }
                let epoch = self.validating.remove(&correlation);
                match (result, epoch) {
                    (Ok(answer), Some(epoch)) => {
                        let position = self.positions[&partition];
                        if let Some((_, end)) = answer.filter(|&(_, end)| end < position) {
                            // Truncated below our position: seek back to the divergence.
                            self.positions.insert(partition, end);
                            self.needs_reassign.push(partition);
                        }
                        self.validated_epoch.insert(partition, epoch);
                    }
                    _ => self.meta.invalidate(partition),
                }
                self.complete_poll_if_answered(now, out);
            }
            Message::FetchResponse {
                correlation,
                partition,
                result,
            } if self.take_pending(correlation) => {
                self.on_fetch_result(partition, result);
                self.complete_poll_if_answered(now, out);
            }
            _ => {}
        }
    }

    fn on_fetch_result(&mut self, p: PartitionId, result: Result<FetchData, ErrorCode>) {
        match result {
            Ok(data) => {
                let position = self.positions[&p];
                if data.base_offset != position || data.records.is_empty() {
                    return;
                }
                let (records, next) = fetched_records(&data, position);
                let poll = self.poll.as_mut().expect("polling");
                poll.reads.entry(p).or_default().extend(records);
                if let Some(last) = data.records.last() {
                    self.last_fetched_epoch.insert(p, last.epoch);
                }
                let validated = self.validated_epoch.entry(p).or_default();
                *validated = (*validated).max(data.leader_epoch);
                self.positions.insert(p, next);
            }
            Err(ErrorCode::OffsetOutOfRange) => {
                // auto.offset.reset=earliest. With KIP-320 the client knows it reset
                // (a seek, recorded as an assign); before it, the rewind was silent.
                self.positions.insert(p, Offset::ZERO);
                if self.detects_truncation() {
                    self.needs_reassign.push(p);
                }
            }
            Err(_) => self.meta.invalidate(p),
        }
    }

    fn complete_poll(&mut self, _now: SimTime, out: &mut Outbox) {
        let Some(poll) = self.poll.take() else { return };
        out.record(HistoryEvent {
            process: self.process,
            outcome: Outcome::Ok,
            kind: OpKind::Poll,
            mops: vec![MicroOp::Poll {
                reads: Some(poll.reads.into_iter().collect()),
            }],
            assigned: Vec::new(),
            error: None,
            offsets: Vec::new(),
            group: None,
        });
    }

    /// Stop polling after the current poll (the run is over).
    pub fn stop(&mut self, out: &mut Outbox) {
        self.stopped = true;
        if self.poll.is_some() {
            self.complete_poll(SimTime::ZERO, out);
        }
    }
}

/// What a fetch answered at `position` hands the application, and the position after
/// it: the data records with their offsets. Control records never reach the
/// application; a read_committed consumer also drops the records of aborted
/// transactions (the broker lists those only for it).
pub(super) fn fetched_records(
    data: &FetchData,
    position: Offset,
) -> (Vec<(Offset, Value)>, Offset) {
    let records = data
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| (Offset(position.0 + i as u64), r))
        .filter(|&(offset, r)| r.is_data() && !in_aborted_txn(&data.aborted, offset, r))
        .map(|(offset, r)| (offset, r.value))
        .collect();
    (records, Offset(position.0 + data.records.len() as u64))
}

/// Is the record at `offset` part of one of the `aborted` transactions?
fn in_aborted_txn(aborted: &[AbortedTxn], offset: Offset, r: &Record) -> bool {
    let Some((stamp, _)) = r.producer.filter(|(s, _)| s.transactional) else {
        return false;
    };
    aborted.iter().any(|a| {
        a.producer_id == stamp.producer_id && a.first_offset <= offset && offset <= a.last_offset
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ProducerStamp;
    use crate::types::{Epoch, ProducerEpoch, ProducerId};

    fn rec(pid: u64, transactional: bool) -> Record {
        Record {
            value: 1,
            epoch: Epoch(1),
            producer: Some((
                ProducerStamp {
                    producer_id: ProducerId(pid),
                    producer_epoch: ProducerEpoch(0),
                    base_sequence: 0,
                    transactional,
                },
                0,
            )),
            control: None,
            txn_state: None,
        }
    }

    #[test]
    fn a_fetch_hands_over_its_data_records_and_moves_past_every_record() {
        let marker = Record {
            control: Some(crate::message::Control::Abort),
            ..rec(3, true)
        };
        let data = FetchData {
            leader_epoch: Epoch(1),
            base_offset: Offset(4),
            records: vec![rec(3, true), rec(4, true), marker, rec(4, false)],
            high_watermark: Some(Offset(8)),
            log_end_offset: Offset(8),
            last_stable_offset: Some(Offset(8)),
            aborted: vec![AbortedTxn {
                producer_id: ProducerId(3),
                first_offset: Offset(4),
                last_offset: Offset(6),
            }],
        };
        let (records, next) = fetched_records(&data, Offset(4));
        assert_eq!(records, vec![(Offset(5), 1), (Offset(7), 1)]);
        assert_eq!(next, Offset(8));
    }

    #[test]
    fn only_the_aborted_producers_records_in_its_range_are_dropped() {
        let aborted = [AbortedTxn {
            producer_id: ProducerId(3),
            first_offset: Offset(4),
            last_offset: Offset(9),
        }];
        assert!(in_aborted_txn(&aborted, Offset(5), &rec(3, true)));
        assert!(
            !in_aborted_txn(&aborted, Offset(5), &rec(4, true)),
            "other producer"
        );
        assert!(
            !in_aborted_txn(&aborted, Offset(10), &rec(3, true)),
            "after the marker"
        );
        assert!(
            !in_aborted_txn(&aborted, Offset(3), &rec(3, true)),
            "before the txn"
        );
        assert!(
            !in_aborted_txn(&aborted, Offset(5), &rec(3, false)),
            "not transactional"
        );
    }
}
