//! The transaction coordinator (KIP-98), hosted by the leader of each
//! `__transaction_state` partition for the transactional ids that hash to it.
//!
//! Its state is the transaction log: every transition is first appended to the
//! partition as a [`TxnLogEntry`] (acks=all, `min.insync.replicas` applies) and takes
//! effect only once committed, so a new leader rebuilds exactly the decided state from
//! its log ([`Broker::load_transactions`]) and finishes what the old one started
//! (markers of a prepared commit or abort are sent again).
//!
//! Flow of one transaction: InitProducerId (bumps the epoch, fencing older instances;
//! an open transaction of the previous instance is aborted first) ->
//! AddPartitionsToTxn (Ongoing) -> produce (the partition leader verifies the first
//! batch with an AddPartitionsToTxn `verify_only`, KIP-890 part 1) -> EndTxn
//! (PrepareCommit/PrepareAbort under epoch + 1, KIP-890 part 2, answered with that
//! epoch once written) -> WriteTxnMarkers of the new epoch to every partition's leader
//! -> CompleteCommit/CompleteAbort. The producer runs its next transaction at the new
//! epoch, so a delayed write of the old one is refused everywhere. A transaction open
//! longer than `transaction.timeout.ms` is aborted with a bumped epoch too.
//!
//! Simplifications (README, fidelity): the client computes the coordinator partition
//! itself instead of sending FindCoordinator (the broker would compute the same hash);
//! the producer id is derived from the transactional id instead of allocated by a
//! producer-id block manager.

use super::coordinator::write_outcome;
use super::Broker;
use crate::bug::Bug;
use crate::message::{
    Control, CoordinatorEntry, ErrorCode, Message, ProduceResult, Record, TxnLogEntry, TxnStatus,
};
use crate::outbox::{Outbox, Timer};
use crate::types::{
    GroupId, NodeId, Offset, PartitionId, PartitionSet, ProducerEpoch, ProducerId, SimTime, TxnId,
};
use std::collections::BTreeMap;

/// How often the coordinator looks for timed-out transactions and markers to resend
/// (Kafka: `transaction.abort.timed.out.transaction.cleanup.interval.ms` is 10 s; the
/// markers channel retries continuously. One short period serves both here).
pub const TXN_TICK_MS: u64 = 500;

/// The producer id of a transactional id (stable across its instances and epochs).
pub fn producer_id_of(id: TxnId) -> ProducerId {
    ProducerId((1 << 48) | u64::from(id.0))
}

/// The epoch after `e`. Simplification: Kafka allocates a new producer id when the
/// epoch would overflow (KIP-890 part 2 bumps it once per transaction); the model's
/// runs are far too short to get there.
fn next_epoch(e: ProducerEpoch) -> ProducerEpoch {
    debug_assert!(e.0 < u16::MAX, "producer epoch overflow");
    ProducerEpoch(e.0.wrapping_add(1))
}

/// What to do once a transaction-log write is committed.
#[derive(Clone, Copy, Debug)]
pub(super) enum AfterWrite {
    /// Answer InitProducerId with the entry's producer id and epoch.
    InitProducerId { client: NodeId, correlation: u64 },
    /// Answer AddPartitionsToTxn or AddOffsetsToTxn.
    Respond { client: NodeId, correlation: u64 },
    /// Answer EndTxn with the epoch for the next transaction.
    EndTxn { client: NodeId, correlation: u64 },
    /// A prepared abort or commit of the coordinator's own (time-out, fencing):
    /// nobody to answer.
    Nothing,
}

/// Which response type a coordinator error goes back in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TxnApi {
    InitProducerId,
    Other,
}

/// A transaction as the coordinator knows it.
#[derive(Clone, Debug)]
struct TxnMeta {
    /// The committed state.
    entry: TxnLogEntry,
    /// The `__transaction_state` partition holding it.
    log_partition: PartitionId,
    /// A transition is being written: other requests get CONCURRENT_TRANSACTIONS.
    writing: bool,
    /// Partitions still without their marker (while preparing).
    markers_pending: PartitionSet,
    /// The WriteTxnMarkers requests in flight: correlation -> when sent.
    markers_inflight: BTreeMap<u64, SimTime>,
}

/// One broker's coordinator state: the transactions of the log partitions it leads.
#[derive(Clone, Debug, Default)]
pub struct TxnCoordinator {
    txns: BTreeMap<TxnId, TxnMeta>,
    /// Transaction-log appends waiting for the HW: delayed-produce id -> (entry, then).
    writes: BTreeMap<u64, (TxnLogEntry, AfterWrite)>,
    /// WriteTxnMarkers correlation -> the transaction it serves.
    marker_requests: BTreeMap<u64, TxnId>,
    tick_armed: bool,
}

impl Broker {
    fn txn_error(correlation: u64, api: TxnApi, e: ErrorCode) -> Message {
        match api {
            TxnApi::InitProducerId => Message::InitProducerIdResponse {
                correlation,
                result: Err(e),
            },
            TxnApi::Other => Message::TxnResponse {
                correlation,
                result: Err(e),
            },
        }
    }

    /// Are we the (loaded) coordinator of `id`? The partition must be ours as leader.
    fn coordinates(&self, id: TxnId) -> Result<PartitionId, ErrorCode> {
        self.coordinator_partition(self.config.transaction_state_partitions, |c| {
            c.transaction_state_partition(id)
        })
    }

    pub(super) fn on_init_producer_id(
        &mut self,
        now: SimTime,
        client: NodeId,
        correlation: u64,
        id: TxnId,
        timeout_ms: u64,
        out: &mut Outbox,
    ) {
        let p = match self.coordinates(id) {
            Ok(p) => p,
            Err(e) => {
                return out.send(
                    client,
                    Self::txn_error(correlation, TxnApi::InitProducerId, e),
                )
            }
        };
        let current = self.txn.txns.get(&id).cloned();
        let next = match current {
            Some(m) if m.writing || m.entry.status.is_preparing() => {
                return out.send(
                    client,
                    Self::txn_error(
                        correlation,
                        TxnApi::InitProducerId,
                        ErrorCode::ConcurrentTransactions,
                    ),
                );
            }
            // The historical bug: the new instance gets the same epoch, the previous
            // one is not fenced and its open transaction stays open (both write into it).
            Some(m) if self.bug(Bug::NoProducerFencing) => {
                return out.send(
                    client,
                    Message::InitProducerIdResponse {
                        correlation,
                        result: Ok((m.entry.producer_id, m.entry.producer_epoch)),
                    },
                );
            }
            Some(m) if m.entry.status == TxnStatus::Ongoing => {
                // The previous instance left a transaction open: abort it with a bumped
                // epoch (fencing that instance); the caller retries until it is done.
                self.prepare_end(now, id, false, true, AfterWrite::Nothing, out);
                return out.send(
                    client,
                    Self::txn_error(
                        correlation,
                        TxnApi::InitProducerId,
                        ErrorCode::ConcurrentTransactions,
                    ),
                );
            }
            Some(m) => TxnLogEntry {
                producer_epoch: next_epoch(m.entry.producer_epoch),
                status: TxnStatus::Empty,
                partitions: PartitionSet::default(),
                timeout_ms,
                ..m.entry
            },
            None => TxnLogEntry {
                transactional_id: id,
                producer_id: producer_id_of(id),
                producer_epoch: ProducerEpoch(0),
                status: TxnStatus::Empty,
                partitions: PartitionSet::default(),
                started_at: now,
                timeout_ms,
            },
        };
        self.txn.txns.entry(id).or_insert_with(|| TxnMeta {
            entry: next,
            log_partition: p,
            writing: false,
            markers_pending: PartitionSet::default(),
            markers_inflight: BTreeMap::new(),
        });
        self.write_txn_log(
            now,
            next,
            AfterWrite::InitProducerId {
                client,
                correlation,
            },
            out,
        );
    }

    /// Check a client's request against the transaction's producer id and epoch.
    fn check_txn_request(
        &self,
        id: TxnId,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
    ) -> Result<&TxnMeta, ErrorCode> {
        self.coordinates(id)?;
        let m = self.txn.txns.get(&id).ok_or(ErrorCode::InvalidTxnState)?;
        if m.entry.producer_id != producer_id || epoch < m.entry.producer_epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        if epoch > m.entry.producer_epoch {
            return Err(ErrorCode::InvalidTxnState);
        }
        if m.writing || m.entry.status.is_preparing() {
            return Err(ErrorCode::ConcurrentTransactions);
        }
        Ok(m)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_add_partitions_to_txn(
        &mut self,
        now: SimTime,
        client: NodeId,
        correlation: u64,
        id: TxnId,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        partitions: PartitionSet,
        verify_only: bool,
        out: &mut Outbox,
    ) {
        let entry = match self.check_txn_request(id, producer_id, epoch) {
            Ok(m) => m.entry,
            Err(e) => return out.send(client, Self::txn_error(correlation, TxnApi::Other, e)),
        };
        let already_in = entry.status == TxnStatus::Ongoing
            && entry.partitions.union(partitions) == entry.partitions;
        // KIP-890 part 1: a partition leader asks before it appends the first batch of a
        // transaction; nothing is added, the partitions must already be in it.
        if already_in || verify_only {
            return out.send(
                client,
                Message::TxnResponse {
                    correlation,
                    result: if already_in {
                        Ok(())
                    } else {
                        Err(ErrorCode::InvalidTxnState)
                    },
                },
            );
        }
        let started_at = if entry.status == TxnStatus::Ongoing {
            entry.started_at
        } else {
            now
        };
        let next = TxnLogEntry {
            status: TxnStatus::Ongoing,
            partitions: if entry.status == TxnStatus::Ongoing {
                entry.partitions.union(partitions)
            } else {
                partitions
            },
            started_at,
            ..entry
        };
        self.write_txn_log(
            now,
            next,
            AfterWrite::Respond {
                client,
                correlation,
            },
            out,
        );
    }

    /// KIP-890 part 2: every transaction of a client that speaks it (transaction
    /// version 2) ends under a bumped epoch (its markers carry it, so a delayed write
    /// of the old epoch is refused by the partitions), unless a switch brings back the
    /// broker before KIP-890: `late-write-joins-next-txn` (no bump), or `hanging-txn`,
    /// the broker before either part (with the bump alone the delayed write it lets
    /// through would still be fenced by the marker's epoch).
    fn bumps_epoch_per_txn(&self, transaction_version_2: bool) -> bool {
        transaction_version_2 && !self.bug(Bug::LateWriteJoinsNextTxn) && !self.bug(Bug::HangingTxn)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_end_txn(
        &mut self,
        now: SimTime,
        client: NodeId,
        transaction_version_2: bool,
        correlation: u64,
        id: TxnId,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        commit: bool,
        out: &mut Outbox,
    ) {
        let bump = self.bumps_epoch_per_txn(transaction_version_2);
        let decided = |status| match status {
            TxnStatus::PrepareCommit | TxnStatus::CompleteCommit => Some(true),
            TxnStatus::PrepareAbort | TxnStatus::CompleteAbort => Some(false),
            _ => None,
        };
        // A retry of the EndTxn that ended the previous transaction (one epoch behind
        // its bumped epoch): answered with the new epoch if the decision matches (it is
        // durable once prepared, even while the markers or the completion are being
        // written). A time-out abort counts too, as in Kafka's transaction version 2.
        let retry = self.txn.txns.get(&id).and_then(|m| {
            let e = m.entry;
            let behind = epoch.0.checked_add(1) == Some(e.producer_epoch.0);
            (bump && behind && e.producer_id == producer_id)
                .then_some(decided(e.status))
                .flatten()
                .map(|d| (d, e.producer_epoch))
        });
        let result = match retry {
            Some((d, new_epoch)) if self.coordinates(id).is_ok() => {
                if d == commit {
                    Ok(new_epoch)
                } else {
                    Err(ErrorCode::InvalidTxnState)
                }
            }
            _ => match self.check_txn_request(id, producer_id, epoch) {
                Err(e) => Err(e),
                Ok(m) if m.entry.status == TxnStatus::Ongoing => {
                    let then = AfterWrite::EndTxn {
                        client,
                        correlation,
                    };
                    return self.prepare_end(now, id, commit, bump, then, out);
                }
                // Nothing was added: an empty transaction ends at once. With the bump,
                // a completed state at the request's epoch is such an empty
                // transaction; without it, it may also be a retry of the last EndTxn
                // (then the decision must match).
                Ok(m) => match (m.entry.status, decided(m.entry.status)) {
                    (TxnStatus::Empty, _) => Ok(m.entry.producer_epoch),
                    (_, Some(d)) if bump || d == commit => Ok(m.entry.producer_epoch),
                    _ => Err(ErrorCode::InvalidTxnState),
                },
            },
        };
        out.send(
            client,
            Message::EndTxnResponse {
                correlation,
                result,
            },
        );
    }

    /// Write PrepareCommit/PrepareAbort (with `bump`, under the next epoch, which the
    /// markers carry: every EndTxn under KIP-890 part 2, and the aborts that fence the
    /// producer, a time-out or a new instance); the markers follow once it is committed.
    fn prepare_end(
        &mut self,
        now: SimTime,
        id: TxnId,
        commit: bool,
        bump: bool,
        then: AfterWrite,
        out: &mut Outbox,
    ) {
        let Some(m) = self.txn.txns.get(&id) else {
            return;
        };
        let entry = m.entry;
        let next = TxnLogEntry {
            status: if commit {
                TxnStatus::PrepareCommit
            } else {
                TxnStatus::PrepareAbort
            },
            producer_epoch: if bump {
                next_epoch(entry.producer_epoch)
            } else {
                entry.producer_epoch
            },
            ..entry
        };
        self.write_txn_log(now, next, then, out);
    }

    /// Append `entry` to the transaction's log partition; `then` runs once committed.
    fn write_txn_log(
        &mut self,
        now: SimTime,
        entry: TxnLogEntry,
        then: AfterWrite,
        out: &mut Outbox,
    ) {
        let p = self
            .config
            .transaction_state_partition(entry.transactional_id);
        if let Some(m) = self.txn.txns.get_mut(&entry.transactional_id) {
            m.writing = true;
        }
        let record = Record {
            value: 0,
            epoch: Default::default(),
            producer: None,
            control: None,
            txn_state: Some(CoordinatorEntry::Txn(entry)),
        };
        let write = self.append_internal(now, p, &[record], out);
        self.txn.writes.insert(write, (entry, then));
        // The tick times out Ongoing transactions: it must run from the first one on,
        // also if this coordinator never sent a marker (a producer that dies in its
        // first transaction).
        self.arm_txn_tick(out);
    }

    /// A transaction-log append completed (committed, or failed: then the coordinator
    /// keeps its previous state, and a lost leadership unloads it anyway).
    pub(super) fn on_txn_log_written(
        &mut self,
        now: SimTime,
        write: u64,
        result: Result<Offset, ErrorCode>,
        out: &mut Outbox,
    ) {
        let Some((entry, then)) = self.txn.writes.remove(&write) else {
            return;
        };
        let id = entry.transactional_id;
        let Some(m) = self.txn.txns.get_mut(&id) else {
            return;
        };
        m.writing = false;
        let error = write_outcome(result).err();
        if error.is_none() {
            m.entry = entry;
            if entry.status.is_preparing() {
                m.markers_pending = entry.partitions;
                m.markers_inflight.clear();
            }
        }
        match (then, error) {
            (
                AfterWrite::InitProducerId {
                    client,
                    correlation,
                },
                e,
            ) => out.send(
                client,
                Message::InitProducerIdResponse {
                    correlation,
                    result: match e {
                        None => Ok((entry.producer_id, entry.producer_epoch)),
                        Some(e) => Err(e),
                    },
                },
            ),
            (
                AfterWrite::Respond {
                    client,
                    correlation,
                },
                e,
            ) => out.send(
                client,
                Message::TxnResponse {
                    correlation,
                    result: e.map_or(Ok(()), Err),
                },
            ),
            (
                AfterWrite::EndTxn {
                    client,
                    correlation,
                },
                e,
            ) => out.send(
                client,
                Message::EndTxnResponse {
                    correlation,
                    result: match e {
                        None => Ok(entry.producer_epoch),
                        Some(e) => Err(e),
                    },
                },
            ),
            (AfterWrite::Nothing, _) => {}
        }
        if error.is_none() && entry.status.is_preparing() {
            self.send_markers(now, id, out);
        }
    }

    /// Send WriteTxnMarkers for the partitions still without their marker, one request
    /// per partition leader.
    fn send_markers(&mut self, now: SimTime, id: TxnId, out: &mut Outbox) {
        let Some(m) = self.txn.txns.get(&id) else {
            return;
        };
        let entry = m.entry;
        if m.markers_pending.is_empty() {
            return self.complete_txn(now, id, out);
        }
        let control = if entry.status == TxnStatus::PrepareCommit {
            Control::Commit
        } else {
            Control::Abort
        };
        let mut by_leader: BTreeMap<NodeId, Vec<PartitionId>> = BTreeMap::new();
        for p in m.markers_pending.iter() {
            // A partition without a known leader is retried on the next tick.
            if let Some(leader) = self.replicas[p.index()]
                .state
                .as_ref()
                .and_then(|s| s.leader)
            {
                by_leader.entry(NodeId::Broker(leader)).or_default().push(p);
            }
        }
        for (leader, partitions) in by_leader {
            let correlation = self.next_correlation();
            self.txn.marker_requests.insert(correlation, id);
            if let Some(m) = self.txn.txns.get_mut(&id) {
                m.markers_inflight.insert(correlation, now);
            }
            out.send(
                leader,
                Message::WriteTxnMarkers {
                    correlation,
                    producer_id: entry.producer_id,
                    producer_epoch: entry.producer_epoch,
                    control,
                    partitions,
                },
            );
        }
        self.arm_txn_tick(out);
    }

    pub(super) fn on_write_txn_markers_response(
        &mut self,
        now: SimTime,
        correlation: u64,
        results: Vec<ProduceResult>,
        out: &mut Outbox,
    ) {
        let Some(id) = self.txn.marker_requests.remove(&correlation) else {
            return;
        };
        let Some(m) = self.txn.txns.get_mut(&id) else {
            return;
        };
        m.markers_inflight.remove(&correlation);
        for r in &results {
            // INVALID_PRODUCER_EPOCH: a newer epoch's marker is already there, so this
            // transaction is over in that partition.
            if matches!(r.result, Ok(_) | Err(ErrorCode::InvalidProducerEpoch)) {
                m.markers_pending.remove(r.partition);
            }
        }
        if m.markers_pending.is_empty() && m.markers_inflight.is_empty() && !m.writing {
            self.complete_txn(now, id, out);
        }
        // Failed partitions are retried on the next tick.
    }

    fn complete_txn(&mut self, now: SimTime, id: TxnId, out: &mut Outbox) {
        let Some(m) = self.txn.txns.get(&id) else {
            return;
        };
        if m.writing || !m.entry.status.is_preparing() {
            return;
        }
        let entry = m.entry;
        let next = TxnLogEntry {
            status: if entry.status == TxnStatus::PrepareCommit {
                TxnStatus::CompleteCommit
            } else {
                TxnStatus::CompleteAbort
            },
            partitions: PartitionSet::default(),
            ..entry
        };
        self.write_txn_log(now, next, AfterWrite::Nothing, out);
    }

    fn arm_txn_tick(&mut self, out: &mut Outbox) {
        if !self.txn.tick_armed {
            self.txn.tick_armed = true;
            out.timer_ms(TXN_TICK_MS, Timer::TxnTick);
        }
    }

    /// Abort transactions open past their `transaction.timeout.ms` (bumping the epoch,
    /// KIP-890's fencing of the timed-out producer) and resend markers that failed or
    /// went unanswered.
    pub(super) fn on_txn_tick(&mut self, now: SimTime, out: &mut Outbox) {
        self.txn.tick_armed = false;
        let request_timeout = SimTime::from_ms(self.config.request_timeout_ms);
        let ids: Vec<TxnId> = self.txn.txns.keys().copied().collect();
        for id in ids {
            let m = &self.txn.txns[&id];
            if m.writing {
                continue;
            }
            let e = m.entry;
            if e.status == TxnStatus::Ongoing
                && now.since(e.started_at) > SimTime::from_ms(e.timeout_ms)
            {
                self.prepare_end(now, id, false, true, AfterWrite::Nothing, out);
            } else if e.status.is_preparing() {
                let m = self.txn.txns.get_mut(&id).expect("present");
                m.markers_inflight
                    .retain(|_, sent| now.since(*sent) < request_timeout);
                if m.markers_inflight.is_empty() {
                    self.send_markers(now, id, out);
                }
            }
        }
        if !self.txn.txns.is_empty() {
            self.arm_txn_tick(out);
        }
    }

    /// We became leader of a `__transaction_state` partition: rebuild the state of its
    /// transactional ids from the log (the latest entry of each wins), and finish the
    /// prepared ones.
    pub(super) fn load_transactions(&mut self, now: SimTime, p: PartitionId, out: &mut Outbox) {
        let mut latest: BTreeMap<TxnId, TxnLogEntry> = BTreeMap::new();
        for r in self.replicas[p.index()].log.records() {
            if let Some(CoordinatorEntry::Txn(e)) = r.txn_state {
                latest.insert(e.transactional_id, e);
            }
        }
        let mut preparing = Vec::new();
        for (id, entry) in latest {
            if entry.status.is_preparing() {
                preparing.push(id);
            }
            self.txn.txns.insert(
                id,
                TxnMeta {
                    entry,
                    log_partition: p,
                    writing: false,
                    markers_pending: if entry.status.is_preparing() {
                        entry.partitions
                    } else {
                        PartitionSet::default()
                    },
                    markers_inflight: BTreeMap::new(),
                },
            );
        }
        for id in preparing {
            self.send_markers(now, id, out);
        }
        self.arm_txn_tick(out);
    }

    /// We lost leadership of `p`: forget its transactions (the new leader loads them).
    pub(super) fn unload_transactions(&mut self, p: PartitionId) {
        self.txn.txns.retain(|_, m| m.log_partition != p);
        let live = &self.txn.txns;
        self.txn
            .marker_requests
            .retain(|_, id| live.contains_key(id));
    }

    /// The coordinator's committed state of `id`, if it coordinates it.
    pub fn txn_state(&self, id: TxnId) -> Option<TxnLogEntry> {
        self.txn.txns.get(&id).map(|m| m.entry)
    }

    /// AddOffsetsToTxn (`sendOffsetsToTransaction`, step 1): AddPartitionsToTxn for the
    /// group's `__consumer_offsets` partition, so that the transaction's marker reaches
    /// the offsets its TxnOffsetCommit leaves pending there.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_add_offsets_to_txn(
        &mut self,
        now: SimTime,
        client: NodeId,
        correlation: u64,
        id: TxnId,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        group: GroupId,
        out: &mut Outbox,
    ) {
        if self.config.offsets_topic_partitions == 0 {
            let e = ErrorCode::CoordinatorNotAvailable;
            return out.send(client, Self::txn_error(correlation, TxnApi::Other, e));
        }
        let partitions = [self.config.consumer_offsets_partition(group)]
            .into_iter()
            .collect();
        self.on_add_partitions_to_txn(
            now,
            client,
            correlation,
            id,
            producer_id,
            epoch,
            partitions,
            false,
            out,
        );
    }
}
