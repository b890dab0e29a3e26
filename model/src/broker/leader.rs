//! The leader side of a partition: produce (acks, `min.insync.replicas`, idempotence;
//! transactional batches verified first, see `verification.rs`), serving fetches, the
//! high watermark (min LEO over the maximal ISR, KIP-497), and ISR changes proposed to
//! the controller through AlterPartition.

use super::replica::{FollowerProgress, LeaderState, PendingIsr, Role};
use super::verification::HeldProduce;
use super::Broker;
use crate::bug::Bug;
use crate::message::{
    Control, ErrorCode, FetchData, Message, PartitionState, ProduceBatch, ProduceResult,
    ProducerStamp, Record,
};
use crate::outbox::{Note, Outbox, Timer};
use crate::producer_state::{ProducerStateTable, SequenceCheck, BATCHES_TO_RETAIN};
use crate::types::{
    BrokerId, Epoch, NodeId, Offset, PartitionId, ProducerEpoch, ProducerId, SimTime,
};

pub(super) struct FetchRequest {
    pub correlation: u64,
    pub replica: Option<BrokerId>,
    pub partition: PartitionId,
    pub fetch_offset: Offset,
    pub current_leader_epoch: Option<Epoch>,
    pub max_records: u32,
    pub read_committed: bool,
}

/// What a delayed append answers when it completes.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Produce,
    /// WriteTxnMarkers from a transaction coordinator (markers are written as acks=all).
    TxnMarkers {
        producer_id: ProducerId,
    },
    /// The broker's own append to an internal topic (a coordinator's log): completes
    /// inside the broker.
    Internal {
        write: u64,
    },
}

/// A produce (or a transaction-marker write) waiting for its records to reach the high
/// watermark (Kafka's `DelayedProduce`).
#[derive(Clone, Debug)]
pub struct DelayedProduce {
    client: NodeId,
    correlation: u64,
    reply: Reply,
    deadline: SimTime,
    /// Per partition: the offset the HW must reach, or the final result.
    parts: Vec<PendingPart>,
}

/// One partition of a delayed produce.
#[derive(Clone, Debug)]
struct PendingPart {
    partition: PartitionId,
    /// The leader epoch the batch was appended in: leadership lost, request failed.
    epoch: Epoch,
    /// The HW this batch needs before it is acknowledged.
    required_end: Offset,
    result: Result<Offset, ErrorCode>,
    done: bool,
}

impl PendingPart {
    fn fail(&mut self, error: ErrorCode) {
        self.result = Err(error);
        self.done = true;
    }
}

/// A fetch with nothing to return yet, answered on new data or after the wait.
#[derive(Clone, Debug)]
pub struct ParkedFetch {
    client: NodeId,
    request: FetchRequestOwned,
    deadline: SimTime,
}

#[derive(Clone, Debug)]
struct FetchRequestOwned {
    correlation: u64,
    replica: Option<BrokerId>,
    partition: PartitionId,
    fetch_offset: Offset,
    max_records: u32,
    read_committed: bool,
}

/// KIP-320 fencing of a request's leader epoch against ours.
fn epoch_check(requested: Option<Epoch>, ours: Epoch) -> Result<(), ErrorCode> {
    match requested {
        Some(e) if e < ours => Err(ErrorCode::FencedLeaderEpoch),
        Some(e) if e > ours => Err(ErrorCode::UnknownLeaderEpoch),
        _ => Ok(()),
    }
}

impl Broker {
    /// The leader's idempotence window: five batches per producer, or one with the
    /// `dedup-window-1` switch.
    fn batches_to_retain(&self) -> usize {
        if self.bug(Bug::DedupWindow1) {
            1
        } else {
            BATCHES_TO_RETAIN
        }
    }

    pub(super) fn become_leader(&mut self, now: SimTime, p: PartitionId, out: &mut Outbox) {
        let me = self.id;
        let batches_to_retain = self.batches_to_retain();
        let r = &mut self.replicas[p.index()];
        r.fresh_from_start = false;
        let state = r.state.clone().expect("leader has state");
        let leo = r.log.log_end_offset();
        r.log.assign_epoch_start(state.leader_epoch, leo);
        let followers = state
            .replicas
            .iter()
            .filter(|&&b| b != me)
            .map(|&b| {
                (
                    b,
                    FollowerProgress {
                        log_end_offset: None,
                        // ISR members get a fresh start (Kafka resets lastCaughtUpTime
                        // for in-sync replicas on a leader change).
                        last_caught_up: now,
                        last_fetch_time: now,
                        last_fetch_leader_leo: Offset::ZERO,
                    },
                )
            })
            .collect();
        r.role = Role::Leader(Box::new(LeaderState {
            followers,
            pending_isr: None,
            epoch_start_offset: leo,
            producer_state: ProducerStateTable::rebuild(r.log.records(), batches_to_retain),
        }));
        self.fail_parked_fetches(p, out);
        self.maybe_advance_high_watermark(now, p, out);
        self.load_coordinator(now, p, out);
    }

    /// The controller published a new ISR (same leader epoch): drop a matching pending
    /// change and recompute the HW.
    pub(super) fn on_isr_update(&mut self, now: SimTime, p: PartitionId, out: &mut Outbox) {
        let r = &mut self.replicas[p.index()];
        let isr = r.isr().to_vec();
        if let Role::Leader(l) = &mut r.role {
            if l.pending_isr
                .as_ref()
                .is_some_and(|pend| pend.proposed == isr)
            {
                l.pending_isr = None;
            }
        }
        self.maybe_advance_high_watermark(now, p, out);
    }

    /// Fail everything waiting on our leadership of `p` (we lost it).
    pub(super) fn fail_leader_requests(&mut self, p: PartitionId, out: &mut Outbox) {
        self.unload_coordinator(p, out);
        self.void_verifications(p, None, ErrorCode::NotLeaderOrFollower);
        let ids: Vec<u64> = self.delayed_produces.keys().copied().collect();
        for id in ids {
            let done = {
                let d = self.delayed_produces.get_mut(&id).expect("present");
                for part in d.parts.iter_mut().filter(|x| x.partition == p && !x.done) {
                    part.fail(ErrorCode::NotLeaderOrFollower);
                }
                d.parts.iter().all(|x| x.done)
            };
            if done {
                self.finish_produce(id, out);
            }
        }
        self.fail_parked_fetches(p, out);
    }

    fn fail_parked_fetches(&mut self, p: PartitionId, out: &mut Outbox) {
        let ids: Vec<u64> = self
            .parked_fetches
            .iter()
            .filter(|(_, f)| f.request.partition == p)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            let f = self.parked_fetches.remove(&id).expect("present");
            out.send(
                f.client,
                Message::FetchResponse {
                    correlation: f.request.correlation,
                    partition: p,
                    result: Err(ErrorCode::NotLeaderOrFollower),
                },
            );
        }
    }

    /// The maximal ISR (KIP-497): the ISR plus replicas whose addition is pending. A
    /// pending shrink keeps the current ISR until the controller commits it.
    fn maximal_isr(&self, p: PartitionId) -> Vec<BrokerId> {
        let r = &self.replicas[p.index()];
        let mut isr = r.isr().to_vec();
        if let Role::Leader(l) = &r.role {
            if let Some(pend) = l
                .pending_isr
                .as_ref()
                .filter(|_| !self.bug(Bug::NoMaximalIsr))
            {
                if !self.bug(Bug::LocalIsrShrink) || pend.proposed.len() > isr.len() {
                    for b in &pend.proposed {
                        if !isr.contains(b) {
                            isr.push(*b);
                        }
                    }
                }
            }
        }
        isr
    }

    /// HW = min LEO over the maximal ISR; it only moves forward on the leader.
    pub(super) fn maybe_advance_high_watermark(
        &mut self,
        now: SimTime,
        p: PartitionId,
        out: &mut Outbox,
    ) {
        let isr = self.maximal_isr(p);
        let me = self.id;
        let r = &mut self.replicas[p.index()];
        let Role::Leader(l) = &r.role else { return };
        let mut hw = r.log.log_end_offset();
        for b in isr.iter().filter(|&&b| b != me) {
            match l.followers.get(b).and_then(|f| f.log_end_offset) {
                Some(leo) => hw = hw.min(leo),
                None => return,
            }
        }
        if hw > r.high_watermark {
            r.high_watermark = hw;
            self.complete_delayed_produces(now, p, out);
            self.wake_parked_fetches(p, false, out);
        }
    }

    pub(super) fn on_fetch(
        &mut self,
        now: SimTime,
        from: NodeId,
        req: FetchRequest,
        out: &mut Outbox,
    ) {
        let p = req.partition;
        let respond_err = |out: &mut Outbox, e: ErrorCode| {
            out.send(
                from,
                Message::FetchResponse {
                    correlation: req.correlation,
                    partition: p,
                    result: Err(e),
                },
            )
        };
        let Some(r) = self.replicas.get(p.index()) else {
            return respond_err(out, ErrorCode::NotLeaderOrFollower);
        };
        let (true, Some(epoch)) = (r.is_leader(), r.leader_epoch()) else {
            return respond_err(out, ErrorCode::NotLeaderOrFollower);
        };
        let requested_epoch = if self.bug(Bug::UnfencedFetch) {
            None
        } else {
            req.current_leader_epoch
        };
        if let Err(e) = epoch_check(requested_epoch, epoch) {
            return respond_err(out, e);
        }
        if req.fetch_offset > r.log.log_end_offset() {
            return respond_err(out, ErrorCode::OffsetOutOfRange);
        }
        if let Some(follower) = req.replica {
            self.update_follower_fetch_state(now, p, follower, req.fetch_offset);
            self.maybe_expand_isr(now, p, follower, out);
            self.maybe_advance_high_watermark(now, p, out);
        }
        let owned = FetchRequestOwned {
            correlation: req.correlation,
            replica: req.replica,
            partition: p,
            fetch_offset: req.fetch_offset,
            max_records: req.max_records,
            read_committed: req.read_committed,
        };
        if !self.try_answer_fetch(from, &owned, false, out) {
            let id = self.next_correlation();
            let wait = if req.replica.is_some() {
                self.config.replica_fetch_wait_max_ms
            } else {
                self.config.fetch_max_wait_ms
            };
            let deadline = now.plus_ms(wait);
            self.parked_fetches.insert(
                id,
                ParkedFetch {
                    client: from,
                    request: owned,
                    deadline,
                },
            );
            if self.fetch_wait_armed.is_none_or(|t| t > deadline) {
                self.fetch_wait_armed = Some(deadline);
                out.timer(deadline.since(now), Timer::FetchWaits);
            }
        }
    }

    /// Answer a fetch if it has records (or `force`); false if it should wait.
    fn try_answer_fetch(
        &self,
        client: NodeId,
        req: &FetchRequestOwned,
        force: bool,
        out: &mut Outbox,
    ) -> bool {
        let r = &self.replicas[req.partition.index()];
        let Some(epoch) = r.leader_epoch().filter(|_| r.is_leader()) else {
            out.send(
                client,
                Message::FetchResponse {
                    correlation: req.correlation,
                    partition: req.partition,
                    result: Err(ErrorCode::NotLeaderOrFollower),
                },
            );
            return true;
        };
        let visible_hw = r.client_visible_high_watermark(self.bug(Bug::HwRegressOnFailover));
        let lso = visible_hw.map(|hw| r.log.last_stable_offset(hw));
        // Replicas read up to the LEO; consumers up to the HW (read_uncommitted) or the
        // last stable offset (read_committed, KIP-98).
        let end = match req.replica {
            Some(_) => r.log.log_end_offset(),
            None if self.bug(Bug::ReadBeyondHw) => r.log.log_end_offset(),
            None if req.read_committed && !self.bug(Bug::ReadUncommittedLeak) => {
                lso.unwrap_or(Offset::ZERO)
            }
            None => visible_hw.unwrap_or(Offset::ZERO),
        };
        let available = end.0.saturating_sub(req.fetch_offset.0);
        if available == 0 && !force {
            return false;
        }
        let n = available.min(u64::from(req.max_records)) as usize;
        let records: Vec<Record> = if n == 0 {
            Vec::new()
        } else {
            r.log.read(req.fetch_offset, n).to_vec()
        };
        let aborted = if req.read_committed && req.replica.is_none() {
            r.log
                .txn_index()
                .aborted_overlapping(req.fetch_offset, Offset(req.fetch_offset.0 + n as u64))
        } else {
            Vec::new()
        };
        out.send(
            client,
            Message::FetchResponse {
                correlation: req.correlation,
                partition: req.partition,
                result: Ok(FetchData {
                    leader_epoch: epoch,
                    base_offset: req.fetch_offset,
                    records,
                    high_watermark: visible_hw.or(if req.replica.is_some() {
                        Some(r.high_watermark)
                    } else {
                        None
                    }),
                    log_end_offset: r.log.log_end_offset(),
                    last_stable_offset: lso,
                    aborted,
                }),
            },
        );
        true
    }

    /// New data (or a new HW, for consumers): answer parked fetches that now have some.
    fn wake_parked_fetches(&mut self, p: PartitionId, replicas_only: bool, out: &mut Outbox) {
        let ids: Vec<u64> = self
            .parked_fetches
            .iter()
            .filter(|(_, f)| {
                f.request.partition == p && (!replicas_only || f.request.replica.is_some())
            })
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            let f = &self.parked_fetches[&id];
            if self.try_answer_fetch(f.client, &f.request.clone(), false, out) {
                self.parked_fetches.remove(&id);
            }
        }
    }

    /// Answer (empty if need be) every parked fetch whose wait is over, then re-arm for
    /// the earliest one left (one timer per broker, not one per fetch).
    pub(super) fn on_fetch_waits(&mut self, now: SimTime, out: &mut Outbox) {
        if self.fetch_wait_armed.is_some_and(|t| t <= now) {
            self.fetch_wait_armed = None;
        }
        let due: Vec<u64> = self
            .parked_fetches
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            if let Some(f) = self.parked_fetches.remove(&id) {
                self.try_answer_fetch(f.client, &f.request, true, out);
            }
        }
        if let Some(next) = self.parked_fetches.values().map(|f| f.deadline).min() {
            if self.fetch_wait_armed.is_none_or(|t| t > next) {
                self.fetch_wait_armed = Some(next);
                out.timer(next.since(now), Timer::FetchWaits);
            }
        }
    }

    /// Kafka's `Replica.updateFetchState`: lastCaughtUpTime moves when the fetch reaches
    /// the leader's LEO now, or the LEO it had at the previous fetch.
    fn update_follower_fetch_state(
        &mut self,
        now: SimTime,
        p: PartitionId,
        follower: BrokerId,
        fetch_offset: Offset,
    ) {
        let r = &mut self.replicas[p.index()];
        let leo = r.log.log_end_offset();
        let Role::Leader(l) = &mut r.role else { return };
        let Some(f) = l.followers.get_mut(&follower) else {
            return;
        };
        if fetch_offset >= leo {
            f.last_caught_up = f.last_caught_up.max(now);
        } else if fetch_offset >= f.last_fetch_leader_leo {
            f.last_caught_up = f.last_caught_up.max(f.last_fetch_time);
        }
        f.log_end_offset = Some(fetch_offset);
        f.last_fetch_leader_leo = leo;
        f.last_fetch_time = now;
    }

    /// A follower rejoins the ISR once it has reached the HW *and* the start of the
    /// leader's epoch (so it holds everything this leader may have committed).
    fn maybe_expand_isr(
        &mut self,
        now: SimTime,
        p: PartitionId,
        follower: BrokerId,
        out: &mut Outbox,
    ) {
        let maximal = self.maximal_isr(p);
        let r = &self.replicas[p.index()];
        let Role::Leader(l) = &r.role else { return };
        if maximal.contains(&follower) || l.pending_isr.is_some() {
            return;
        }
        let Some(leo) = l.followers.get(&follower).and_then(|f| f.log_end_offset) else {
            return;
        };
        let early = self.bug(Bug::IsrExpandEarly);
        if leo < r.high_watermark || (leo < l.epoch_start_offset && !early) {
            return;
        }
        let mut proposed = r.isr().to_vec();
        proposed.push(follower);
        proposed.sort();
        self.send_alter_partition(now, p, proposed, out);
    }

    /// Every `replica.lag.time.max.ms / 2`: propose removing followers that have not
    /// caught up for `replica.lag.time.max.ms`.
    pub(super) fn check_isr(&mut self, now: SimTime, out: &mut Outbox) {
        let lag_max = SimTime::from_ms(self.config.replica_lag_time_max_ms);
        let me = self.id;
        for i in 0..self.replicas.len() {
            let p = PartitionId(i as u32);
            let r = &self.replicas[i];
            let Role::Leader(l) = &r.role else { continue };
            let stuck_pending = l.pending_isr.as_ref().is_some_and(|pend| {
                now.since(pend.sent_at) > SimTime::from_ms(self.config.request_timeout_ms)
            });
            if l.pending_isr.is_some() && !stuck_pending {
                continue;
            }
            let isr = r.isr().to_vec();
            let out_of_sync: Vec<BrokerId> = isr
                .iter()
                .copied()
                .filter(|&b| b != me)
                .filter(|b| {
                    l.followers
                        .get(b)
                        .is_some_and(|f| now.since(f.last_caught_up) > lag_max)
                })
                .collect();
            if out_of_sync.is_empty() {
                if stuck_pending {
                    // Re-send the unanswered proposal (the response may have been lost).
                    let proposed = l.pending_isr.as_ref().expect("pending").proposed.clone();
                    self.send_alter_partition(now, p, proposed, out);
                }
                continue;
            }
            let proposed: Vec<BrokerId> = isr
                .into_iter()
                .filter(|b| !out_of_sync.contains(b))
                .collect();
            if self.bug(Bug::LocalIsrShrink) {
                // The historical bug: shrink locally, no controller round trip.
                let r = &mut self.replicas[i];
                if let Some(s) = r.state.as_mut() {
                    s.isr = proposed;
                }
                self.maybe_advance_high_watermark(now, p, out);
                continue;
            }
            self.send_alter_partition(now, p, proposed, out);
        }
    }

    fn send_alter_partition(
        &mut self,
        now: SimTime,
        p: PartitionId,
        proposed: Vec<BrokerId>,
        out: &mut Outbox,
    ) {
        let broker = self.id;
        let broker_epoch = self.broker_epoch;
        let r = &mut self.replicas[p.index()];
        let Some(state) = r.state.clone() else { return };
        let Role::Leader(l) = &mut r.role else { return };
        l.pending_isr = Some(PendingIsr {
            proposed: proposed.clone(),
            sent_at: now,
        });
        out.send(
            NodeId::Controller,
            Message::AlterPartition {
                broker,
                broker_epoch,
                partition: p,
                leader_epoch: state.leader_epoch,
                partition_epoch: state.partition_epoch,
                new_isr: proposed,
            },
        );
    }

    pub(super) fn on_alter_partition_response(
        &mut self,
        now: SimTime,
        p: PartitionId,
        proposed: Vec<BrokerId>,
        result: Result<PartitionState, ErrorCode>,
        out: &mut Outbox,
    ) {
        let Some(r) = self.replicas.get_mut(p.index()) else {
            return;
        };
        if let Role::Leader(l) = &mut r.role {
            // Only the answer to the proposal still pending clears it: an older
            // proposal may be answered after a newer one was sent (KIP-497 depends on
            // the maximal ISR staying in force until *its* change is decided).
            if l.pending_isr
                .as_ref()
                .is_some_and(|pend| pend.proposed == proposed)
            {
                l.pending_isr = None;
            }
        }
        if let Ok(state) = result {
            self.apply_metadata(now, &[state], out);
        }
        self.maybe_advance_high_watermark(now, p, out);
    }

    /// Append a produce's batches (those not refused by their verification) and wait
    /// for them as its acks ask.
    pub(super) fn append_produce(&mut self, now: SimTime, h: HeldProduce, out: &mut Outbox) {
        let mut parts = Vec::with_capacity(h.batches.len());
        for (batch, refused) in h.batches.iter().zip(h.refused) {
            let p = batch.partition;
            let outcome = match refused {
                Some(e) => Err(e),
                None => self.append_batch(h.acks_all, batch, out),
            };
            if outcome == Err(ErrorCode::NotEnoughReplicas) {
                out.note(Note::ProduceRefused { partition: p });
            }
            parts.push(self.after_append(now, p, outcome, h.acks_all, out));
        }
        if h.acks_none {
            return;
        }
        self.await_replication(now, h.client, h.correlation, Reply::Produce, parts, out);
    }

    /// What every append path does after appending (or failing to) on `p`: flush by
    /// count, feed waiting followers, move the HW; returns the part of the delayed
    /// request that waits (if `wait`) for the records `base..end` to be replicated.
    fn after_append(
        &mut self,
        now: SimTime,
        p: PartitionId,
        appended: Result<(Offset, Offset), ErrorCode>,
        wait: bool,
        out: &mut Outbox,
    ) -> PendingPart {
        let epoch = self
            .replicas
            .get(p.index())
            .and_then(|r| r.leader_epoch())
            .unwrap_or_default();
        if p.index() < self.replicas.len() {
            self.maybe_flush_by_count(p);
            self.wake_parked_fetches(p, true, out);
            self.maybe_advance_high_watermark(now, p, out);
        }
        match appended {
            Ok((base, end)) => PendingPart {
                partition: p,
                epoch,
                required_end: end,
                result: Ok(base),
                done: !wait,
            },
            Err(e) => PendingPart {
                partition: p,
                epoch,
                required_end: Offset::ZERO,
                result: Err(e),
                done: true,
            },
        }
    }

    /// Hold the answer (`reply` to `client`) until every part is replicated (acks=all)
    /// or the request times out.
    fn await_replication(
        &mut self,
        now: SimTime,
        client: NodeId,
        correlation: u64,
        reply: Reply,
        parts: Vec<PendingPart>,
        out: &mut Outbox,
    ) {
        let id = self.next_correlation();
        self.delayed_produces.insert(
            id,
            DelayedProduce {
                client,
                correlation,
                reply,
                deadline: now.plus_ms(self.config.request_timeout_ms),
                parts,
            },
        );
        self.complete_delayed_produce(id, out);
        if self.delayed_produces.contains_key(&id) {
            self.arm_produce_timeouts(out);
        }
    }

    /// One timer for every request the leader holds (replication waits and
    /// verifications), armed for the earliest deadline.
    pub(super) fn arm_produce_timeouts(&mut self, out: &mut Outbox) {
        if !self.produce_timer_armed {
            self.produce_timer_armed = true;
            out.timer_ms(self.config.request_timeout_ms, Timer::ProduceTimeouts);
        }
    }

    /// WriteTxnMarkers (KIP-98): append a commit or abort marker for the producer's
    /// transaction to each partition we lead, then answer once the markers are
    /// committed (the coordinator completes the transaction only then). A marker of an
    /// older producer epoch than the partition has seen is refused.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_write_txn_markers(
        &mut self,
        now: SimTime,
        coordinator: NodeId,
        correlation: u64,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        control: Control,
        partitions: Vec<PartitionId>,
        out: &mut Outbox,
    ) {
        let mut parts = Vec::with_capacity(partitions.len());
        for p in partitions {
            let appended = self
                .append_marker(p, producer_id, producer_epoch, control)
                .map(|offset| (offset, Offset(offset.0 + 1)));
            if appended.is_ok() {
                // A verification answered before this end must not open a transaction.
                self.void_verifications(p, Some(producer_id), ErrorCode::InvalidTxnState);
            }
            parts.push(self.after_append(now, p, appended, true, out));
        }
        self.await_replication(
            now,
            coordinator,
            correlation,
            Reply::TxnMarkers { producer_id },
            parts,
            out,
        );
    }

    /// Append a coordinator's records to an internal partition we lead, together and as
    /// acks=all (refused below `min.insync.replicas`); returns the id of the write,
    /// whose completion lands in the coordinators (at the end of the event, so the
    /// caller may record what the id stands for after this returns).
    ///
    /// Records stamped by a producer (transactional offset commits) are checked as
    /// Kafka checks a coordinator's append: the producer epoch is fenced against the
    /// partition's producer state, the sequence is not looked at.
    pub(super) fn append_internal(
        &mut self,
        now: SimTime,
        p: PartitionId,
        records: &[Record],
        out: &mut Outbox,
    ) -> u64 {
        debug_assert!(!records.is_empty());
        let min_isr = self.config.min_insync_replicas as usize;
        let r = &mut self.replicas[p.index()];
        let isr_size = r.isr().len();
        let stamp = records[0].producer.map(|(s, _)| s);
        let appended = match (r.leader_epoch(), &mut r.role) {
            (Some(epoch), Role::Leader(l)) if isr_size >= min_isr => match stamp {
                Some(s)
                    if l.producer_state
                        .epoch(s.producer_id)
                        .is_some_and(|e| e > s.producer_epoch) =>
                {
                    Err(ErrorCode::InvalidProducerEpoch)
                }
                _ => {
                    let base = r.log.log_end_offset();
                    for record in records {
                        r.log.append(Record { epoch, ..*record });
                    }
                    if let Some(s) = stamp {
                        let count = records.len() as u32;
                        let (pid, pe) = (s.producer_id, s.producer_epoch);
                        l.producer_state
                            .record_batch(pid, pe, s.base_sequence, count, base);
                    }
                    Ok((base, r.log.log_end_offset()))
                }
            },
            (_, Role::Leader(_)) => Err(ErrorCode::NotEnoughReplicas),
            _ => Err(ErrorCode::NotLeaderOrFollower),
        };
        let part = self.after_append(now, p, appended, true, out);
        let write = self.next_correlation();
        self.await_replication(
            now,
            NodeId::Broker(self.id),
            write,
            Reply::Internal { write },
            vec![part],
            out,
        );
        write
    }

    fn append_marker(
        &mut self,
        p: PartitionId,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        control: Control,
    ) -> Result<Offset, ErrorCode> {
        let r = self
            .replicas
            .get_mut(p.index())
            .ok_or(ErrorCode::NotLeaderOrFollower)?;
        let epoch = r.leader_epoch().ok_or(ErrorCode::NotLeaderOrFollower)?;
        let Role::Leader(l) = &mut r.role else {
            return Err(ErrorCode::NotLeaderOrFollower);
        };
        if l.producer_state
            .epoch(producer_id)
            .is_some_and(|e| e > producer_epoch)
        {
            return Err(ErrorCode::InvalidProducerEpoch);
        }
        l.producer_state.record_marker(producer_id, producer_epoch);
        Ok(r.log.append(Record {
            value: 0,
            epoch,
            producer: Some((
                ProducerStamp {
                    producer_id,
                    producer_epoch,
                    base_sequence: 0,
                    transactional: true,
                },
                0,
            )),
            control: Some(control),
            txn_state: None,
        }))
    }

    /// Append one batch as leader; returns (base offset, end offset) to wait for.
    fn append_batch(
        &mut self,
        acks_all: bool,
        batch: &ProduceBatch,
        out: &mut Outbox,
    ) -> Result<(Offset, Offset), ErrorCode> {
        let min_isr = self.config.min_insync_replicas as usize;
        let ignore_min_isr = self.bug(Bug::IgnoreMinIsr);
        // Without KIP-98's check the stamp is carried into the log but never looked at.
        let stamp_checked = batch
            .producer
            .filter(|_| !self.bug(Bug::NoIdempotenceDedupe));
        let inflight_reorder = self.bug(Bug::InflightReorder);
        let r = self
            .replicas
            .get_mut(batch.partition.index())
            .ok_or(ErrorCode::NotLeaderOrFollower)?;
        let epoch = r.leader_epoch().ok_or(ErrorCode::NotLeaderOrFollower)?;
        let isr_len = r.isr().len();
        let Role::Leader(l) = &mut r.role else {
            return Err(ErrorCode::NotLeaderOrFollower);
        };
        if acks_all && isr_len < min_isr && !ignore_min_isr {
            return Err(ErrorCode::NotEnoughReplicas);
        }
        let count = batch.values.len() as u32;
        if let Some(stamp) = stamp_checked {
            match l.producer_state.check(
                stamp.producer_id,
                stamp.producer_epoch,
                stamp.base_sequence,
                count,
            ) {
                SequenceCheck::Append => {}
                // The historical bug: duplicates are still answered, but a sequence that
                // does not follow the last one is appended anyway.
                SequenceCheck::OutOfOrder if inflight_reorder => {}
                SequenceCheck::Duplicate {
                    base_offset,
                    end_offset,
                } => {
                    out.note(Note::SequenceChecked {
                        partition: batch.partition,
                        duplicate: true,
                    });
                    return Ok((base_offset, end_offset));
                }
                SequenceCheck::OutOfOrder => {
                    out.note(Note::SequenceChecked {
                        partition: batch.partition,
                        duplicate: false,
                    });
                    return Err(ErrorCode::OutOfOrderSequenceNumber);
                }
                SequenceCheck::UnknownProducer => return Err(ErrorCode::UnknownProducerId),
                SequenceCheck::Fenced => return Err(ErrorCode::InvalidProducerEpoch),
            }
        }
        let base = r.log.log_end_offset();
        for (i, &value) in batch.values.iter().enumerate() {
            r.log.append(Record {
                value,
                epoch,
                producer: batch
                    .producer
                    .map(|s: ProducerStamp| (s, s.base_sequence + i as u32)),
                control: None,
                txn_state: None,
            });
        }
        if let (Some(stamp), Role::Leader(l)) = (stamp_checked, &mut r.role) {
            l.producer_state.record_batch(
                stamp.producer_id,
                stamp.producer_epoch,
                stamp.base_sequence,
                count,
                base,
            );
        }
        Ok((base, r.log.log_end_offset()))
    }

    fn complete_delayed_produces(&mut self, _now: SimTime, p: PartitionId, out: &mut Outbox) {
        let ids: Vec<u64> = self
            .delayed_produces
            .iter()
            .filter(|(_, d)| d.parts.iter().any(|x| x.partition == p && !x.done))
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            self.complete_delayed_produce(id, out);
        }
    }

    /// Kafka's `checkEnoughReplicasReachOffset`: done when the HW passed the batch; then
    /// the ISR must still be at least `min.insync.replicas`.
    fn complete_delayed_produce(&mut self, id: u64, out: &mut Outbox) {
        let min_isr = self.config.min_insync_replicas as usize;
        let ignore_min_isr = self.bug(Bug::IgnoreMinIsr);
        let Some(d) = self.delayed_produces.get_mut(&id) else {
            return;
        };
        for part in d.parts.iter_mut().filter(|x| !x.done) {
            let r = &self.replicas[part.partition.index()];
            if !r.is_leader() || r.leader_epoch() != Some(part.epoch) {
                part.fail(ErrorCode::NotLeaderOrFollower);
            } else if r.high_watermark >= part.required_end {
                let isr_size = r.isr().len();
                if isr_size < min_isr && !ignore_min_isr {
                    part.result = Err(ErrorCode::NotEnoughReplicasAfterAppend);
                } else {
                    out.note(Note::AckedAll {
                        partition: part.partition,
                        isr_size: isr_size as u32,
                        offset_end: part.required_end,
                    });
                }
                part.done = true;
            }
        }
        if d.parts.iter().all(|x| x.done) {
            self.finish_produce(id, out);
        }
    }

    fn finish_produce(&mut self, id: u64, out: &mut Outbox) {
        let Some(d) = self.delayed_produces.remove(&id) else {
            return;
        };
        let results = d
            .parts
            .into_iter()
            .map(|part| ProduceResult {
                partition: part.partition,
                result: part.result,
            })
            .collect();
        let correlation = d.correlation;
        let response = match d.reply {
            Reply::Produce => Message::ProduceResponse {
                correlation,
                results,
            },
            Reply::TxnMarkers { producer_id } => Message::WriteTxnMarkersResponse {
                correlation,
                producer_id,
                results,
            },
            Reply::Internal { write } => {
                let result = results
                    .first()
                    .map_or(Err(ErrorCode::NotLeaderOrFollower), |r| r.result);
                self.coordinator_writes_done.push((write, result));
                return;
            }
        };
        out.send(d.client, response);
    }

    /// Expire every delayed produce past its deadline (REQUEST_TIMED_OUT) and every
    /// unanswered verification (NETWORK_EXCEPTION), then re-arm for the earliest left.
    pub(super) fn on_produce_timeouts(&mut self, now: SimTime, out: &mut Outbox) {
        // The timer stays marked armed while a failed verification releases its produce
        // (whose replication wait must not arm a second timer): re-armed below.
        self.fail_verifications(now, |_, h| h.deadline <= now, out);
        let expired: Vec<u64> = self
            .delayed_produces
            .iter()
            .filter(|(_, d)| d.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            if let Some(d) = self.delayed_produces.get_mut(&id) {
                for part in d.parts.iter_mut().filter(|x| !x.done) {
                    part.fail(ErrorCode::RequestTimedOut);
                }
                self.finish_produce(id, out);
            }
        }
        let deadlines = self.delayed_produces.values().map(|d| d.deadline);
        let held = self.verifications.held.values().map(|h| h.deadline);
        self.produce_timer_armed = false;
        if let Some(first) = deadlines.chain(held).min() {
            self.produce_timer_armed = true;
            out.timer(first.since(now), Timer::ProduceTimeouts);
        }
    }

    pub(super) fn on_offsets_for_leader_epoch(
        &mut self,
        from: NodeId,
        correlation: u64,
        p: PartitionId,
        current_leader_epoch: Option<Epoch>,
        requested: Epoch,
        out: &mut Outbox,
    ) {
        let result = (|| {
            let r = self
                .replicas
                .get(p.index())
                .ok_or(ErrorCode::NotLeaderOrFollower)?;
            let epoch = r
                .leader_epoch()
                .filter(|_| r.is_leader())
                .ok_or(ErrorCode::NotLeaderOrFollower)?;
            let fenced = if self.bug(Bug::UnfencedFetch) {
                None
            } else {
                current_leader_epoch
            };
            epoch_check(fenced, epoch)?;
            Ok(r.log.end_offset_for_epoch(requested))
        })();
        out.send(
            from,
            Message::OffsetsForLeaderEpochResponse {
                correlation,
                partition: p,
                result,
            },
        );
    }
}
