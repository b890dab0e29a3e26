//! KIP-890 part 1: a partition leader verifies a transactional batch with the
//! transaction coordinator before it appends it, when the batch would open a
//! transaction at the partition.
//!
//! Why: before KIP-890 a produce delayed in the network past its transaction's end
//! (the client timed out and aborted, the markers were written) was appended anyway and
//! opened a transaction no coordinator knew of: nothing would ever write its marker, so
//! the partition's last stable offset hung and `read_committed` consumers stalled. Now
//! the leader holds such a batch, asks the coordinator (`AddPartitionsToTxn` with
//! `verify_only`) whether the partition is in the producer's ongoing transaction at
//! that epoch, and appends it only on yes. Later batches of the same transaction find
//! it open in the partition's transaction index and need no question.
//!
//! As in Kafka, a marker written for the producer while a verification is in flight
//! voids it (Kafka's `VerificationGuard`): the answer may predate the end of the
//! transaction that the marker records.
//!
//! Simplification: Kafka batches the verifications of many produce requests per
//! coordinator (`AddPartitionsToTxnManager`) and translates the retriable coordinator
//! errors into NOT_ENOUGH_REPLICAS for older clients; here each batch that needs it
//! sends its own request, and the producer gets the coordinator's error as it is
//! (NETWORK_EXCEPTION when the coordinator did not answer in `request.timeout.ms` or the
//! connection closed). A Produce without a `transactional.id` is not verified (Kafka
//! refuses transactional records without one).

use super::replica::Role;
use super::Broker;
use crate::bug::Bug;
use crate::message::{ErrorCode, Message, ProduceBatch, ProducerStamp};
use crate::outbox::Outbox;
use crate::types::{BrokerId, NodeId, PartitionId, ProducerId, SimTime, TxnId};
use std::collections::BTreeMap;

/// A Produce request held until its verifications are answered.
#[derive(Clone, Debug)]
pub(super) struct HeldProduce {
    pub client: NodeId,
    pub correlation: u64,
    pub acks_all: bool,
    pub acks_none: bool,
    pub batches: Vec<ProduceBatch>,
    /// Per batch: why it is refused (verification failed or voided), if it is.
    pub refused: Vec<Option<ErrorCode>>,
    /// Verifications still unanswered.
    waiting: usize,
    pub deadline: SimTime,
}

/// An `AddPartitionsToTxn` with `verify_only` in flight.
#[derive(Clone, Copy, Debug)]
struct Verification {
    held: u64,
    batch: usize,
    coordinator: NodeId,
}

/// The leader's verifications in flight and the produces they hold.
#[derive(Clone, Debug, Default)]
pub struct Verifications {
    pub(super) held: BTreeMap<u64, HeldProduce>,
    pending: BTreeMap<u64, Verification>,
}

impl Broker {
    /// The stamp of `batch` if appending it would open a transaction at its partition:
    /// transactional, and no transaction of that producer id and epoch is open there.
    fn opens_transaction(&self, batch: &ProduceBatch) -> Option<ProducerStamp> {
        let stamp = batch.producer.filter(|s| s.transactional)?;
        let r = self.replicas.get(batch.partition.index())?;
        // Not the leader: the append refuses it anyway.
        let Role::Leader(l) = &r.role else {
            return None;
        };
        let open = r.log.txn_index().is_ongoing(stamp.producer_id)
            && l.producer_state.epoch(stamp.producer_id) == Some(stamp.producer_epoch);
        (!open).then_some(stamp)
    }

    /// The coordinator of `id` as this broker's metadata knows it: the leader of its
    /// `__transaction_state` partition.
    fn coordinator_of(&self, id: TxnId) -> Option<NodeId> {
        if self.config.transaction_state_partitions == 0 {
            return None;
        }
        let p = self.config.transaction_state_partition(id);
        let leader = self.replicas.get(p.index())?.state.as_ref()?.leader?;
        Some(NodeId::Broker(leader))
    }

    /// Produce: append at once, or first verify the batches that open a transaction
    /// (unless the `hanging-txn` switch skips it, as brokers before KIP-890 did).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_produce(
        &mut self,
        now: SimTime,
        client: NodeId,
        correlation: u64,
        transactional_id: Option<TxnId>,
        acks_all: bool,
        acks_none: bool,
        batches: Vec<ProduceBatch>,
        out: &mut Outbox,
    ) {
        let mut held = HeldProduce {
            client,
            correlation,
            acks_all,
            acks_none,
            refused: vec![None; batches.len()],
            batches,
            waiting: 0,
            deadline: now.plus_ms(self.config.request_timeout_ms),
        };
        // Allocated with the first verification only: unverified produces keep the
        // broker's correlation numbering as it was.
        let mut held_id = None;
        let txn = transactional_id.filter(|_| !self.bug(Bug::HangingTxn));
        for (i, batch) in held.batches.iter().enumerate() {
            let (Some(txn), Some(stamp)) = (txn, self.opens_transaction(batch)) else {
                continue;
            };
            let Some(coordinator) = self.coordinator_of(txn) else {
                held.refused[i] = Some(ErrorCode::CoordinatorNotAvailable);
                continue;
            };
            let held_id = *held_id.get_or_insert_with(|| self.next_correlation());
            let c = self.next_correlation();
            out.send(
                coordinator,
                Message::AddPartitionsToTxn {
                    correlation: c,
                    transactional_id: txn,
                    producer_id: stamp.producer_id,
                    producer_epoch: stamp.producer_epoch,
                    partitions: [batch.partition].into_iter().collect(),
                    verify_only: true,
                },
            );
            self.verifications.pending.insert(
                c,
                Verification {
                    held: held_id,
                    batch: i,
                    coordinator,
                },
            );
            held.waiting += 1;
        }
        let Some(held_id) = held_id else {
            return self.append_produce(now, held, out);
        };
        self.verifications.held.insert(held_id, held);
        self.arm_produce_timeouts(out);
    }

    /// The coordinator answered a verification.
    pub(super) fn on_verification_response(
        &mut self,
        now: SimTime,
        correlation: u64,
        result: Result<(), ErrorCode>,
        out: &mut Outbox,
    ) {
        // As Kafka's AddPartitionsToTxnManager: PRODUCER_FENCED is no Produce error;
        // the partition's own word for a fenced epoch is INVALID_PRODUCER_EPOCH.
        let error = result.err().map(|e| match e {
            ErrorCode::ProducerFenced => ErrorCode::InvalidProducerEpoch,
            e => e,
        });
        if let Some(v) = self.verifications.pending.remove(&correlation) {
            self.settle_verification(now, v, error, out);
        }
    }

    fn settle_verification(
        &mut self,
        now: SimTime,
        v: Verification,
        error: Option<ErrorCode>,
        out: &mut Outbox,
    ) {
        let Some(h) = self.verifications.held.get_mut(&v.held) else {
            return;
        };
        if let Some(e) = error {
            h.refused[v.batch].get_or_insert(e);
        }
        h.waiting -= 1;
        if h.waiting == 0 {
            let h = self.verifications.held.remove(&v.held).expect("present");
            self.append_produce(now, h, out);
        }
    }

    /// Fail the verifications in flight that `which` selects, as unanswered (the
    /// request timed out, or the connection to the coordinator closed).
    pub(super) fn fail_verifications(
        &mut self,
        now: SimTime,
        which: impl Fn(NodeId, &HeldProduce) -> bool,
        out: &mut Outbox,
    ) {
        let Verifications { held, pending } = &self.verifications;
        let failed: Vec<u64> = pending
            .iter()
            .filter(|(_, v)| held.get(&v.held).is_some_and(|h| which(v.coordinator, h)))
            .map(|(&c, _)| c)
            .collect();
        for c in failed {
            let v = self.verifications.pending.remove(&c).expect("present");
            self.settle_verification(now, v, Some(ErrorCode::NetworkException), out);
        }
    }

    /// The connection to `broker` closed: verifications it was answering are lost.
    pub(super) fn on_coordinator_disconnected(
        &mut self,
        now: SimTime,
        broker: BrokerId,
        out: &mut Outbox,
    ) {
        self.fail_verifications(now, |c, _| c == NodeId::Broker(broker), out);
    }

    /// Void the verifications in flight of batches for `p` (of `producer` only, if
    /// given): a marker ended the producer's transaction there, or we lost leadership.
    /// Their batches are refused with `error` when the answer comes.
    pub(super) fn void_verifications(
        &mut self,
        p: PartitionId,
        producer: Option<ProducerId>,
        error: ErrorCode,
    ) {
        let Verifications { held, pending } = &mut self.verifications;
        for v in pending.values() {
            let Some(h) = held.get_mut(&v.held) else {
                continue;
            };
            let b = &h.batches[v.batch];
            let of_producer =
                producer.is_none_or(|pid| b.producer.is_some_and(|s| s.producer_id == pid));
            if b.partition == p && of_producer {
                h.refused[v.batch].get_or_insert(error);
            }
        }
    }
}
