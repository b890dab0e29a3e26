//! A broker: the replicas it hosts, its session with the controller, and its disk.
//!
//! Driving contract (sans-IO): the simulator calls [`Broker::start`] once per
//! incarnation, then [`Broker::handle_message`], [`Broker::handle_timeout`] and
//! [`Broker::handle_disk`] as events arrive, each with `now` and an [`Outbox`] to fill.
//! On a hard crash it calls [`Broker::crash`] (only durable state survives: the flushed
//! log prefix and the HW checkpoint); on a clean shutdown [`Broker::shutdown`].

mod coordinator;
mod follower;
mod group_coordinator;
mod leader;
pub mod replica;
#[cfg(test)]
mod tests;
mod txn_coordinator;
mod verification;

use crate::bug::Bug;
use crate::config::Config;
use crate::message::{ErrorCode, Message, PartitionState};
use crate::outbox::{DiskCompletion, DiskOp, Outbox, Timer};
use crate::types::{BrokerEpoch, BrokerId, NodeId, Offset, PartitionId, SimTime};
use replica::{Replica, Role};
use std::collections::BTreeMap;

pub use group_coordinator::GroupCoordinator;
pub use leader::{DelayedProduce, ParkedFetch};
pub use txn_coordinator::{producer_id_of, TxnCoordinator, TXN_TICK_MS};

/// How long a controlled shutdown waits for the controller before stopping anyway
/// (Kafka: `controlled.shutdown.max.retries` x `controlled.shutdown.retry.backoff.ms`
/// plus request time-outs).
pub const CONTROLLED_SHUTDOWN_TIMEOUT_MS: u64 = 30_000;

pub struct Broker {
    pub id: BrokerId,
    config: Config,
    pub broker_epoch: BrokerEpoch,
    /// Whether the controller last told us we are fenced.
    pub fenced: bool,
    /// The controller has answered this incarnation's registration.
    registered: bool,
    /// The highest controller epoch heard from.
    controller_epoch_seen: u32,
    pub replicas: Vec<Replica>,
    /// Metadata for every partition (also those we do not host), for clients.
    next_correlation: u64,
    pending_fsync: BTreeMap<u64, Vec<(PartitionId, Offset, Offset)>>,
    delayed_produces: BTreeMap<u64, DelayedProduce>,
    parked_fetches: BTreeMap<u64, ParkedFetch>,
    produce_timer_armed: bool,
    fetch_wait_armed: Option<SimTime>,
    /// Controlled shutdown: when it was requested, and whether the controller has
    /// moved every leadership away.
    shutdown_requested: Option<SimTime>,
    shutdown_ready: bool,
    /// Is this incarnation running (false between crash and restart).
    pub running: bool,
    /// The transaction coordinator of the `__transaction_state` partitions we lead.
    txn: TxnCoordinator,
    /// The group coordinator of the `__consumer_offsets` partitions we lead.
    group: GroupCoordinator,
    /// Coordinator-log appends that completed, to be handled at the end of the event.
    coordinator_writes_done: Vec<(u64, Result<Offset, ErrorCode>)>,
    /// Transactional produces held for their coordinator's verification (KIP-890).
    verifications: verification::Verifications,
}

impl Broker {
    pub fn new(id: BrokerId, config: &Config) -> Broker {
        Broker {
            id,
            config: config.clone(),
            broker_epoch: BrokerEpoch(0),
            fenced: true,
            registered: false,
            controller_epoch_seen: 0,
            replicas: config.partition_ids().map(Replica::new).collect(),
            next_correlation: 0,
            pending_fsync: BTreeMap::new(),
            delayed_produces: BTreeMap::new(),
            parked_fetches: BTreeMap::new(),
            produce_timer_armed: false,
            fetch_wait_armed: None,
            shutdown_requested: None,
            shutdown_ready: false,
            running: false,
            txn: TxnCoordinator::default(),
            group: GroupCoordinator::default(),
            coordinator_writes_done: Vec::new(),
            verifications: Default::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn bug(&self, bug: Bug) -> bool {
        self.config.has_bug(bug)
    }

    fn next_correlation(&mut self) -> u64 {
        self.next_correlation += 1;
        self.next_correlation
    }

    /// Start a new incarnation: register with the controller and arm the timers.
    pub fn start(&mut self, _now: SimTime, broker_epoch: BrokerEpoch, out: &mut Outbox) {
        debug_assert!(!self.running);
        self.running = true;
        self.broker_epoch = broker_epoch;
        self.fenced = true;
        for r in &mut self.replicas {
            // The HW checkpoint may be ahead of a log that lost its tail.
            r.high_watermark = r.high_watermark_checkpoint.min(r.log.log_end_offset());
            r.fresh_from_start = true;
        }
        out.send(
            NodeId::Controller,
            Message::BrokerRegistration {
                broker: self.id,
                broker_epoch,
            },
        );
        out.timer_ms(
            self.config.broker_heartbeat_interval_ms,
            Timer::BrokerHeartbeat,
        );
        // Each broker's page cache is written back on its own schedule: stagger the
        // first flush by broker id so that brokers do not fsync in lockstep.
        let interval = self.flush_interval_ms();
        let phase = (u64::from(self.id.0) * 1_700) % interval;
        out.timer_ms(interval - phase, Timer::Flush);
        out.timer_ms(self.config.replica_lag_time_max_ms / 2, Timer::IsrCheck);
    }

    fn flush_interval_ms(&self) -> u64 {
        self.config
            .log_flush_interval_ms
            .unwrap_or(self.config.os_flush_interval_ms)
            .max(1)
    }

    /// Hard crash: volatile state is gone; the log keeps only its flushed prefix.
    pub fn crash(&mut self) {
        self.running = false;
        self.fenced = true;
        self.registered = false;
        self.pending_fsync.clear();
        self.delayed_produces.clear();
        self.parked_fetches.clear();
        self.produce_timer_armed = false;
        self.fetch_wait_armed = None;
        self.shutdown_requested = None;
        self.shutdown_ready = false;
        self.txn = TxnCoordinator::default();
        self.group = GroupCoordinator::default();
        self.coordinator_writes_done.clear();
        self.verifications = Default::default();
        for r in &mut self.replicas {
            r.log.crash();
            r.state = None;
            r.role = Role::Offline;
            r.high_watermark = r.high_watermark_checkpoint.min(r.log.log_end_offset());
        }
    }

    /// Ask the controller for a controlled shutdown (KIP-631): it moves this broker's
    /// leaderships away and takes it out of the ISRs; the broker stops once told so
    /// (see [`Broker::ready_to_stop`]).
    pub fn begin_controlled_shutdown(&mut self, now: SimTime, out: &mut Outbox) {
        if self.shutdown_requested.is_some() {
            return;
        }
        self.shutdown_requested = Some(now);
        out.send(
            NodeId::Controller,
            Message::BrokerHeartbeat {
                broker: self.id,
                broker_epoch: self.broker_epoch,
                want_shutdown: true,
            },
        );
    }

    /// The controller confirmed the shutdown, or it did not answer within
    /// `CONTROLLED_SHUTDOWN_TIMEOUT_MS` (Kafka gives up after its retries and stops).
    pub fn ready_to_stop(&self, now: SimTime) -> bool {
        match self.shutdown_requested {
            Some(since) => {
                self.shutdown_ready
                    || now.since(since) >= SimTime::from_ms(CONTROLLED_SHUTDOWN_TIMEOUT_MS)
            }
            None => false,
        }
    }

    /// Clean shutdown: flush everything and checkpoint the HW, then stop.
    pub fn shutdown(&mut self) {
        for r in &mut self.replicas {
            let leo = r.log.log_end_offset();
            r.log.mark_flushed(leo);
            r.high_watermark_checkpoint = r.high_watermark;
        }
        self.crash();
    }

    pub fn handle_message(&mut self, now: SimTime, from: NodeId, msg: Message, out: &mut Outbox) {
        debug_assert!(self.running);
        match msg {
            Message::BrokerHeartbeatResponse {
                broker_epoch,
                controller_epoch,
                fenced,
                shutdown_ready,
                partitions,
            } => {
                if !self.accept_controller(controller_epoch) {
                    return;
                }
                if broker_epoch == self.broker_epoch {
                    self.registered = true;
                    self.fenced = fenced;
                    self.shutdown_ready |= shutdown_ready && self.shutdown_requested.is_some();
                }
                self.apply_metadata(now, &partitions, out);
            }
            Message::PartitionChange {
                controller_epoch,
                states,
            } if self.accept_controller(controller_epoch) => {
                self.apply_metadata(now, &states, out);
            }
            Message::ConnectionClosed { broker } => {
                self.on_leader_disconnected(broker, out);
                self.on_coordinator_disconnected(now, broker, out);
            }
            Message::AlterPartitionResponse {
                partition,
                proposed,
                result,
            } => self.on_alter_partition_response(now, partition, proposed, result, out),
            Message::Fetch {
                correlation,
                replica,
                partition,
                fetch_offset,
                current_leader_epoch,
                max_records,
                read_committed,
            } => self.on_fetch(
                now,
                from,
                leader::FetchRequest {
                    correlation,
                    replica,
                    partition,
                    fetch_offset,
                    current_leader_epoch,
                    max_records,
                    read_committed,
                },
                out,
            ),
            Message::WriteTxnMarkers {
                correlation,
                producer_id,
                producer_epoch,
                control,
                partitions,
            } => self.on_write_txn_markers(
                now,
                from,
                correlation,
                producer_id,
                producer_epoch,
                control,
                partitions,
                out,
            ),
            Message::FetchResponse {
                correlation,
                partition,
                result,
            } => self.on_fetch_response(now, correlation, partition, result, out),
            Message::OffsetsForLeaderEpoch {
                correlation,
                partition,
                current_leader_epoch,
                leader_epoch,
            } => self.on_offsets_for_leader_epoch(
                from,
                correlation,
                partition,
                current_leader_epoch,
                leader_epoch,
                out,
            ),
            Message::OffsetsForLeaderEpochResponse {
                correlation,
                partition,
                result,
            } => {
                self.on_offsets_for_leader_epoch_response(now, correlation, partition, result, out)
            }
            Message::MetadataRequest { correlation } => {
                let partitions = self
                    .replicas
                    .iter()
                    .filter_map(|r| r.state.as_ref())
                    .map(|s| (s.partition, s.leader, s.leader_epoch))
                    .collect();
                out.send(
                    from,
                    Message::MetadataResponse {
                        correlation,
                        partitions,
                    },
                );
            }
            Message::Produce {
                correlation,
                transactional_id,
                acks_all,
                acks_none,
                batches,
            } => self.on_produce(
                now,
                from,
                correlation,
                transactional_id,
                acks_all,
                acks_none,
                batches,
                out,
            ),
            Message::TxnResponse {
                correlation,
                result,
            } => self.on_verification_response(now, correlation, result, out),
            Message::WriteTxnMarkersResponse {
                correlation,
                results,
                ..
            } => self.on_write_txn_markers_response(now, correlation, results, out),
            Message::InitProducerId {
                correlation,
                transactional_id,
                transaction_timeout_ms,
            } => self.on_init_producer_id(
                now,
                from,
                correlation,
                transactional_id,
                transaction_timeout_ms,
                out,
            ),
            Message::AddPartitionsToTxn {
                correlation,
                transactional_id,
                producer_id,
                producer_epoch,
                partitions,
                verify_only,
            } => self.on_add_partitions_to_txn(
                now,
                from,
                correlation,
                transactional_id,
                producer_id,
                producer_epoch,
                partitions,
                verify_only,
                out,
            ),
            Message::EndTxn {
                correlation,
                transactional_id,
                producer_id,
                producer_epoch,
                commit,
                transaction_version_2,
            } => self.on_end_txn(
                now,
                from,
                transaction_version_2,
                correlation,
                transactional_id,
                producer_id,
                producer_epoch,
                commit,
                out,
            ),
            Message::AddOffsetsToTxn {
                correlation,
                transactional_id,
                producer_id,
                producer_epoch,
                group,
            } => self.on_add_offsets_to_txn(
                now,
                from,
                correlation,
                transactional_id,
                producer_id,
                producer_epoch,
                group,
                out,
            ),
            Message::JoinGroup {
                correlation,
                group,
                member,
                instance,
                session_timeout_ms,
                rebalance_timeout_ms,
                protocols,
                owned,
                owned_generation,
            } => {
                let req = group_coordinator::JoinRequest {
                    waiter: group_coordinator::Waiter {
                        client: from,
                        correlation,
                    },
                    member,
                    instance,
                    session_timeout_ms,
                    rebalance_timeout_ms,
                    protocols,
                    owned,
                    owned_generation,
                };
                self.on_join_group(now, group, req, out)
            }
            Message::SyncGroup {
                correlation,
                group,
                generation,
                member,
                instance,
                assignments,
            } => {
                let req = group_coordinator::MemberRequest {
                    correlation,
                    group,
                    generation,
                    member,
                    instance,
                };
                self.on_sync_group(now, from, req, assignments, out)
            }
            Message::Heartbeat {
                correlation,
                group,
                generation,
                member,
                instance,
            } => {
                let req = group_coordinator::MemberRequest {
                    correlation,
                    group,
                    generation,
                    member,
                    instance,
                };
                self.on_heartbeat(now, from, req, out)
            }
            Message::LeaveGroup {
                correlation,
                group,
                member,
                instance,
            } => {
                // LeaveGroup carries no generation (Kafka's neither).
                let req = group_coordinator::MemberRequest {
                    correlation,
                    group,
                    generation: Default::default(),
                    member,
                    instance,
                };
                self.on_leave_group(now, from, req, out)
            }
            Message::OffsetCommit {
                correlation,
                group,
                generation,
                member,
                instance,
                offsets,
            } => self.on_offset_commit(
                now,
                from,
                group_coordinator::OffsetCommit {
                    correlation,
                    group,
                    generation,
                    member,
                    instance,
                    offsets,
                },
                out,
            ),
            Message::TxnOffsetCommit {
                correlation,
                transactional_id: _,
                producer_id,
                producer_epoch,
                group,
                group_metadata,
                offsets,
            } => self.on_txn_offset_commit(
                now,
                from,
                group_coordinator::TxnOffsetCommit {
                    correlation,
                    producer_id,
                    producer_epoch,
                    group,
                    group_metadata,
                    offsets,
                },
                out,
            ),
            Message::OffsetFetch {
                correlation,
                group,
                partitions,
                require_stable,
            } => self.on_offset_fetch(from, correlation, group, partitions, require_stable, out),
            // Requests meant for the controller or clients are ignored.
            _ => {}
        }
        self.drain_coordinator_writes(now, out);
        self.check_invariants();
    }

    pub fn handle_timeout(&mut self, now: SimTime, timer: Timer, out: &mut Outbox) {
        debug_assert!(self.running);
        match timer {
            Timer::BrokerHeartbeat if !self.registered => {
                // The registration (or its answer) was lost: register again.
                out.send(
                    NodeId::Controller,
                    Message::BrokerRegistration {
                        broker: self.id,
                        broker_epoch: self.broker_epoch,
                    },
                );
                out.timer_ms(
                    self.config.broker_heartbeat_interval_ms,
                    Timer::BrokerHeartbeat,
                );
            }
            Timer::BrokerHeartbeat => {
                out.send(
                    NodeId::Controller,
                    Message::BrokerHeartbeat {
                        broker: self.id,
                        broker_epoch: self.broker_epoch,
                        want_shutdown: self.shutdown_requested.is_some(),
                    },
                );
                out.timer_ms(
                    self.config.broker_heartbeat_interval_ms,
                    Timer::BrokerHeartbeat,
                );
            }
            Timer::Flush => {
                self.fsync(out);
                out.timer_ms(self.flush_interval_ms(), Timer::Flush);
            }
            Timer::IsrCheck => {
                self.check_isr(now, out);
                out.timer_ms(self.config.replica_lag_time_max_ms / 2, Timer::IsrCheck);
            }
            Timer::ReplicaFetch(p) => self.on_replica_fetch_timer(now, p, out),
            Timer::ReplicaTimeout(p) => self.on_replica_timeout(now, p, out),
            Timer::ProduceTimeouts => self.on_produce_timeouts(now, out),
            Timer::FetchWaits => self.on_fetch_waits(now, out),
            Timer::TxnTick => self.on_txn_tick(now, out),
            Timer::GroupTick => self.on_group_tick(now, out),
            _ => {}
        }
        self.drain_coordinator_writes(now, out);
        self.check_invariants();
    }

    pub fn handle_disk(&mut self, _now: SimTime, completion: DiskCompletion, _out: &mut Outbox) {
        let DiskCompletion::Fsynced { token } = completion;
        if let Some(marks) = self.pending_fsync.remove(&token) {
            for (p, upto, hw) in marks {
                let r = &mut self.replicas[p.index()];
                r.log.mark_flushed(upto);
                // The HW checkpoint is written with the flush (simplification: Kafka
                // writes it on its own 5 s timer); never above the durable log.
                r.high_watermark_checkpoint = hw.min(r.log.flushed_offset());
            }
        }
    }

    /// Ask the disk to make every log durable up to its current end (and the HW
    /// checkpoint with it); the completion marks what became durable.
    fn fsync(&mut self, out: &mut Outbox) {
        let token = self.next_correlation();
        let marks = self
            .replicas
            .iter()
            .map(|r| (r.partition, r.log.log_end_offset(), r.high_watermark))
            .collect();
        self.pending_fsync.insert(token, marks);
        out.disk.push(DiskOp::Fsync { token });
    }

    /// `log.flush.interval.messages`: Kafka flushes synchronously inside the append
    /// once this many records are unflushed, so they are durable before anything (an
    /// acknowledgement, a fetch response) follows. Simplification: the flush is
    /// instantaneous here (its latency is not charged to the append).
    pub(super) fn maybe_flush_by_count(&mut self, p: PartitionId) {
        let Some(limit) = self.config.log_flush_interval_messages else {
            return;
        };
        let r = &mut self.replicas[p.index()];
        let leo = r.log.log_end_offset();
        if leo.0 - r.log.flushed_offset().0 >= limit {
            r.log.mark_flushed(leo);
            r.high_watermark_checkpoint = r.high_watermark;
        }
    }

    /// Metadata from an older controller epoch than one already heard from is stale: a
    /// deposed controller's in-flight decision (KRaft: the quorum epoch fences it).
    fn accept_controller(&mut self, controller_epoch: u32) -> bool {
        if controller_epoch < self.controller_epoch_seen && !self.bug(Bug::StaleController) {
            return false;
        }
        self.controller_epoch_seen = controller_epoch;
        true
    }

    /// Apply partition states newer than what we know, and take the roles they give us.
    fn apply_metadata(&mut self, now: SimTime, states: &[PartitionState], out: &mut Outbox) {
        if !self.registered {
            // Until the controller has answered this incarnation's registration, what
            // it says about us describes our previous life (which may have led
            // partitions with data we lost): take no role from it.
            return;
        }
        for s in states {
            let Some(r) = self.replicas.get(s.partition.index()) else {
                continue;
            };
            let newer = match &r.state {
                None => true,
                // The historical bug: any state that differs is taken, stale or not.
                Some(old) if self.config.has_bug(Bug::StaleController) => old != s,
                Some(old) => s.newer_than(old),
            };
            if newer {
                self.apply_partition_state(now, s.clone(), out);
            }
        }
    }

    fn apply_partition_state(&mut self, now: SimTime, s: PartitionState, out: &mut Outbox) {
        let p = s.partition;
        let me = self.id;
        let r = &mut self.replicas[p.index()];
        let old_epoch = r.leader_epoch();
        let same_epoch = old_epoch == Some(s.leader_epoch);
        let hosted = s.replicas.contains(&me);
        r.state = Some(s.clone());
        if !hosted {
            r.role = Role::Offline;
            return;
        }
        match s.leader {
            Some(l) if l == me => {
                if same_epoch && r.is_leader() {
                    self.on_isr_update(now, p, out);
                } else {
                    self.become_leader(now, p, out);
                }
            }
            Some(l) => {
                let following_same =
                    same_epoch && matches!(&r.role, Role::Follower(f) if f.leader == l);
                if !following_same {
                    let was_leader = r.is_leader();
                    let skip = self.config.has_bug(Bug::SkipTruncateSameLeader)
                        && matches!(&r.role, Role::Follower(f) if f.leader == l);
                    if skip {
                        // KAFKA-7164: same leader broker, so no truncation, although its
                        // lineage may have changed between the epochs.
                        if let Role::Follower(f) = &mut r.role {
                            f.hw_confirmed = false;
                        }
                    } else {
                        self.become_follower(now, p, l, out);
                    }
                    if was_leader {
                        self.fail_leader_requests(p, out);
                    }
                }
            }
            None => {
                let was_leader = r.is_leader();
                r.role = Role::Offline;
                if was_leader {
                    self.fail_leader_requests(p, out);
                }
            }
        }
    }

    fn check_invariants(&self) {
        for r in &self.replicas {
            r.check_invariants();
        }
        self.check_group_invariants();
    }

    /// The high watermark this broker tells clients for `p`, if it leads it (see
    /// [`Replica::client_visible_high_watermark`]).
    pub fn exposed_high_watermark(&self, p: PartitionId) -> Option<Offset> {
        self.replicas[p.index()].client_visible_high_watermark(self.bug(Bug::HwRegressOnFailover))
    }
}
