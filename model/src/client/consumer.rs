//! The assign-mode consumer: fetches its partitions from their leaders (with the
//! leader epoch it knows, KIP-320), up to the high watermark (`read_uncommitted`),
//! tracks its positions, and records `assign` and `poll` operations.
//!
//! Simplification (README, fidelity): on OFFSET_OUT_OF_RANGE (its position is past the
//! leader's log after a loss) it re-assigns its partitions and rewinds that partition
//! to the beginning (`auto.offset.reset=earliest`), recorded as a new `assign`; Kafka's
//! client would find the divergence point through OffsetsForLeaderEpoch.

use super::metadata::MetadataCache;
use crate::config::Config;
use crate::history::{HistoryEvent, MicroOp, OpKind, Outcome};
use crate::message::{ErrorCode, FetchData, Message};
use crate::outbox::{Outbox, Timer};
use crate::rng::ModelRng;
use crate::types::{ClientId, NodeId, Offset, PartitionId, SimTime, Value};
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
struct Poll {
    started: SimTime,
    /// correlation -> partition of each fetch still outstanding.
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
    poll: Option<Poll>,
    next_id: u64,
    needs_reassign: bool,
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
            meta: MetadataCache::new(config.partitions, config.brokers),
            positions: assigned.iter().map(|&p| (p, Offset::ZERO)).collect(),
            assigned,
            poll: None,
            next_id: 0,
            needs_reassign: false,
            stopped: false,
        }
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
        for outcome in [Outcome::Invoke, Outcome::Ok] {
            out.record(HistoryEvent {
                process: self.process,
                outcome,
                kind: OpKind::Assign,
                mops: Vec::new(),
                assigned: self.assigned.clone(),
                error: None,
            });
        }
    }

    /// Poll time-out: `fetch.max.wait.ms` plus a round trip allowance.
    fn poll_timeout_ms(&self) -> u64 {
        self.config.fetch_max_wait_ms + 1_000
    }

    pub fn is_polling(&self) -> bool {
        self.poll.is_some()
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
        if self.needs_reassign {
            self.needs_reassign = false;
            self.record_assign(out);
        }
        out.record(HistoryEvent {
            process: self.process,
            outcome: Outcome::Invoke,
            kind: OpKind::Poll,
            mops: vec![MicroOp::Poll { reads: None }],
            assigned: Vec::new(),
            error: None,
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
            out.send(
                NodeId::Broker(leader),
                Message::Fetch {
                    correlation,
                    replica: None,
                    partition: p,
                    fetch_offset: self.positions[&p],
                    current_leader_epoch: Some(epoch),
                    max_records: self.config.max_poll_records,
                },
            );
        }
        if need_metadata || self.meta.is_stale(now, self.config.metadata_max_age_ms) {
            let c = self.next_id();
            self.meta.refresh(now, c, &mut self.rng, out);
        }
        self.poll = Some(poll);
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
                if poll.pending.is_empty() {
                    self.complete_poll(now, out);
                }
            }
            Message::MetadataResponse {
                correlation,
                partitions,
            } => {
                self.meta.on_response(correlation, &partitions);
            }
            Message::FetchResponse {
                correlation,
                partition,
                result,
            } => {
                let Some(poll) = self.poll.as_mut() else {
                    return;
                };
                if poll.pending.remove(&correlation).is_none() {
                    return;
                }
                self.on_fetch_result(partition, result);
                if self.poll.as_ref().is_some_and(|p| p.pending.is_empty()) {
                    self.complete_poll(now, out);
                }
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
                let reads = self
                    .poll
                    .as_mut()
                    .expect("polling")
                    .reads
                    .entry(p)
                    .or_default();
                for (i, r) in data.records.iter().enumerate() {
                    reads.push((Offset(position.0 + i as u64), r.value));
                }
                self.positions
                    .insert(p, Offset(position.0 + data.records.len() as u64));
            }
            Err(ErrorCode::OffsetOutOfRange) => {
                self.positions.insert(p, Offset::ZERO);
                self.needs_reassign = true;
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
