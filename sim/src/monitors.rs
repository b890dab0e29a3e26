//! Broker monitors (`invariants.md`, "Broker monitors"): white-box checks on the model's
//! state after every event, for promises clients cannot see directly. They mirror the
//! invariants of the TLA+ specifications of Kafka replication (`StrongIsr`,
//! `LeaderCompleteness`, `NoCommittedRecordLostGlobally`), and one liveness bound of
//! transactions (`lso-stuck`, KIP-890's hanging transaction).

use crate::run::RunAnomaly;
use model::broker::replica::{FollowerPhase, Role};
use model::broker::{Broker, TXN_TICK_MS};
use model::config::Config;
use model::controller::Controller;
use model::outbox::Note;
use model::types::{BrokerId, Epoch, Offset, PartitionId, SimTime};
use std::collections::BTreeMap;

/// How many occurrences of one kind are listed (the count is kept).
const LISTED_PER_KIND: usize = 3;

/// What the monitors look at in one replica: if none of it changed, nothing to check.
type Fingerprint = (Offset, Offset, Option<Epoch>, u8, u64);

fn fingerprint(r: &model::broker::replica::Replica) -> Fingerprint {
    let (role, extra) = match &r.role {
        Role::Offline => (0, 0),
        Role::Leader(l) => (1, l.epoch_start_offset.0),
        Role::Follower(f) => (
            2 + u8::from(f.hw_confirmed) * 2 + u8::from(f.phase == FollowerPhase::Fetching),
            u64::from(f.leader.0),
        ),
    };
    (
        r.log.log_end_offset(),
        r.high_watermark,
        r.leader_epoch(),
        role,
        extra ^ r.log.prefix_hash(r.log.log_end_offset()),
    )
}

/// `lso-stuck`: a partition's last stable offset seen below its HW, unchanged since
/// `since` under the same `generation` (see [`Monitors::txn_generation`]).
#[derive(Clone, Copy)]
struct StuckLso {
    lso: Offset,
    generation: u64,
    since: SimTime,
    reported: bool,
}

/// How long a partition's LSO may stay at one offset below its HW before `lso-stuck`:
/// `transaction.timeout.ms` plus the time the coordinator takes to abort a timed-out
/// transaction. The oldest open transaction began at the coordinator
/// (AddPartitionsToTxn) no later than its first record here, so it times out at most
/// `transaction.timeout.ms` after the LSO stopped on that record; the coordinator
/// notices at its next tick (`TXN_TICK_MS`). The abort is two acks=all writes, the
/// PrepareAbort to the transaction log and then the markers, each resent at a tick once
/// `request.timeout.ms` passed unanswered: three rounds of `request.timeout.ms` plus a
/// tick cover both and one lost attempt. A stall of the leader or the coordinator
/// shorter than `broker.session.timeout.ms` delays it without moving leadership (a
/// longer one moves it, which restarts the clock): one session more.
fn lso_stuck_bound(config: &Config) -> SimTime {
    SimTime::from_ms(
        config.transaction_timeout_ms
            + TXN_TICK_MS
            + 3 * (config.request_timeout_ms + TXN_TICK_MS)
            + config.broker_session_timeout_ms,
    )
}

#[derive(Default)]
struct Committed {
    /// Length and prefix hash of the longest prefix ever exposed as committed.
    len: Offset,
    hash: u64,
}

pub struct Monitors {
    keys: Vec<String>,
    min_insync_replicas: u32,
    /// Per partition: epoch -> the broker that acted as its leader.
    leaders: Vec<BTreeMap<Epoch, BrokerId>>,
    /// Per (broker, partition): the leader epoch last seen in this incarnation.
    seen_epochs: BTreeMap<(BrokerId, usize), Epoch>,
    committed: Vec<Committed>,
    /// (partition, broker, committed length) already reported as missing from an ISR member.
    reported_missing: std::collections::BTreeSet<(usize, BrokerId, Offset)>,
    /// Per (broker, partition): the replica state at its last check.
    fingerprints: Vec<Option<Fingerprint>>,
    /// Per partition: its LSO while below the HW (`lso-stuck`).
    stuck_lso: Vec<Option<StuckLso>>,
    lso_stuck_bound: SimTime,
    /// The `__transaction_state` partitions: their coordinators end transactions.
    txn_state_partitions: Vec<usize>,
    found: BTreeMap<&'static str, (u64, Vec<RunAnomaly>)>,
}

impl Monitors {
    pub fn new(keys: Vec<String>, config: &Config) -> Monitors {
        let n = keys.len();
        let brokers = config.brokers as usize;
        Monitors {
            min_insync_replicas: config.min_insync_replicas,
            stuck_lso: vec![None; n],
            lso_stuck_bound: lso_stuck_bound(config),
            txn_state_partitions: (0..n)
                .filter(|&p| config.is_transaction_state(PartitionId(p as u32)))
                .collect(),
            keys,
            leaders: vec![BTreeMap::new(); n],
            seen_epochs: BTreeMap::new(),
            committed: (0..n).map(|_| Committed::default()).collect(),
            reported_missing: std::collections::BTreeSet::new(),
            fingerprints: vec![None; n * brokers],
            found: BTreeMap::new(),
        }
    }

    fn report(&mut self, kind: &'static str, p: usize, event: u64, detail: String) {
        let partition = Some(self.keys[p].clone());
        let entry = self.found.entry(kind).or_default();
        entry.0 += 1;
        if entry.1.len() < LISTED_PER_KIND {
            entry.1.push(RunAnomaly {
                kind: kind.to_string(),
                partition,
                detail,
                ops: vec![event],
                allowed: false,
            });
        }
    }

    /// A broker crashed: its view of epochs starts again with the next incarnation.
    pub fn on_crash(&mut self, b: BrokerId) {
        let n = self.keys.len();
        for slot in &mut self.fingerprints[b.0 as usize * n..(b.0 as usize + 1) * n] {
            *slot = None;
        }
        self.seen_epochs.retain(|(broker, _), _| *broker != b);
    }

    pub fn on_note(&mut self, event: u64, from: Option<BrokerId>, note: &Note) {
        if let Note::AckedAll {
            partition,
            isr_size,
            offset_end,
        } = note
        {
            if *isr_size < self.min_insync_replicas {
                let detail = format!(
                    "broker {} acknowledged an acks=all write ending at offset {} of {} with an ISR of {} although min.insync.replicas={}",
                    from.map(|b| b.to_string()).unwrap_or_default(),
                    offset_end,
                    self.keys[partition.index()],
                    isr_size,
                    self.min_insync_replicas
                );
                self.report("isr-below-min-acked", partition.index(), event, detail);
            }
        }
    }

    /// Checks after an event handled by broker `b` at `now`.
    pub fn after_broker_event(
        &mut self,
        event: u64,
        now: SimTime,
        b: &Broker,
        brokers: &[Broker],
        controller: &Controller,
    ) {
        for (p, r) in b.replicas.iter().enumerate() {
            // Time passes without the replica changing: checked on every event.
            self.check_lso(event, now, p, b, controller);
            // Only a replica whose state moved can break an invariant here; checks that
            // involve other replicas also run on their own events.
            let print = fingerprint(r);
            let slot = &mut self.fingerprints[b.id.0 as usize * self.keys.len() + p];
            if *slot == Some(print) {
                continue;
            }
            *slot = Some(print);
            if r.high_watermark > r.log.log_end_offset() {
                let detail = format!(
                    "{}: replica on {} has HW {} above its LEO {}",
                    self.keys[p],
                    b.id,
                    r.high_watermark,
                    r.log.log_end_offset()
                );
                self.report("hw-above-leo", p, event, detail);
            }
            if let Some(epoch) = r.leader_epoch() {
                if let Some(&seen) = self.seen_epochs.get(&(b.id, p)) {
                    if epoch < seen {
                        let detail = format!(
                            "{}: {} went from leader epoch {} back to {}",
                            self.keys[p], b.id, seen, epoch
                        );
                        self.report("epoch-regression", p, event, detail);
                    }
                }
                self.seen_epochs.insert((b.id, p), epoch);
            }
            if let (Role::Leader(_), Some(epoch)) = (&r.role, r.leader_epoch()) {
                let first = *self.leaders[p].entry(epoch).or_insert(b.id);
                if first != b.id {
                    let detail = format!(
                        "{}: both {} and {} acted as leader in epoch {}",
                        self.keys[p], first, b.id, epoch
                    );
                    self.report("two-leaders", p, event, detail);
                }
                // Only the leader the controller currently recognises speaks for the
                // partition; a deposed leader that has not heard yet serves stale reads.
                let current = controller.partitions[p].leader == Some(b.id)
                    && controller.partitions[p].leader_epoch == epoch;
                if current {
                    self.check_committed(event, p, b);
                }
            }
            self.check_divergence(event, p, brokers);
            self.check_isr_completeness(event, p, brokers, controller);
        }
    }

    /// The leader's client-visible HW: it must never go back (`hw-regression`), and the
    /// leader must hold the committed prefix (else committed records were lost).
    fn check_committed(&mut self, event: u64, p: usize, leader: &Broker) {
        let r = &leader.replicas[p];
        let Some(hw) = leader.exposed_high_watermark(model::types::PartitionId(p as u32)) else {
            return;
        };
        let c = &self.committed[p];
        if hw < c.len {
            let detail = format!(
                "{}: the leader {} exposes HW {} after HW {} was exposed",
                self.keys[p], leader.id, hw, c.len
            );
            self.report("hw-regression", p, event, detail);
        } else if r.log.prefix_hash(c.len) != c.hash {
            let detail = format!(
                "{}: the leader {} does not hold the committed prefix of {} records: committed records were lost",
                self.keys[p], leader.id, c.len
            );
            self.report("committed-truncated", p, event, detail);
        }
        let c = &mut self.committed[p];
        c.len = hw;
        c.hash = r.log.prefix_hash(hw);
    }

    /// `lso-stuck`: on the partition's current leader, the LSO must not stay at one
    /// offset below the HW longer than [`lso_stuck_bound`]: a transaction nobody ends
    /// (KIP-890's hanging transaction). The clock runs only while transactions can end
    /// (see [`Monitors::txn_generation`]) and restarts when that generation moves.
    fn check_lso(
        &mut self,
        event: u64,
        now: SimTime,
        p: usize,
        b: &Broker,
        controller: &Controller,
    ) {
        let s = &controller.partitions[p];
        if s.leader != Some(b.id) || b.replicas[p].leader_epoch() != Some(s.leader_epoch) {
            return;
        }
        let below = b
            .exposed_high_watermark(PartitionId(p as u32))
            .map(|hw| (b.replicas[p].log.last_stable_offset(hw), hw))
            .filter(|(lso, hw)| lso < hw);
        let generation = below.and_then(|_| self.txn_generation(p, controller));
        let (Some((lso, hw)), Some(generation)) = (below, generation) else {
            self.stuck_lso[p] = None;
            return;
        };
        let mut w = match self.stuck_lso[p] {
            Some(w) if w.lso == lso && w.generation == generation => w,
            _ => StuckLso {
                lso,
                generation,
                since: now,
                reported: false,
            },
        };
        let stuck = now.since(w.since);
        if !w.reported && stuck > self.lso_stuck_bound {
            w.reported = true;
            let detail = format!(
                "{}: the last stable offset stayed at {lso} below the HW {hw} on leader {} for {} ms (bound: transaction.timeout.ms and the coordinator's abort, {} ms): a transaction no coordinator ends",
                self.keys[p],
                b.id,
                stuck.as_ms(),
                self.lso_stuck_bound.as_ms()
            );
            self.report("lso-stuck", p, event, detail);
        }
        self.stuck_lso[p] = Some(w);
    }

    /// What ending a transaction on `p` depends on: `p` and every
    /// `__transaction_state` partition must take acks=all writes (a leader, an ISR of
    /// at least `min.insync.replicas`), else `None`: no transaction can end now, and
    /// its LSO may legitimately wait. Otherwise the sum of their partition epochs,
    /// which moves with every leader or ISR change among them (a failover delays the
    /// abort; the clock restarts instead of raising a false alarm).
    fn txn_generation(&self, p: usize, controller: &Controller) -> Option<u64> {
        let mut generation = 0;
        for &q in self.txn_state_partitions.iter().chain([&p]) {
            let s = &controller.partitions[q];
            if s.leader.is_none() || (s.isr.len() as u32) < self.min_insync_replicas {
                return None;
            }
            generation += u64::from(s.partition_epoch.0);
        }
        Some(generation)
    }

    /// Two replicas that both consider offset `o` below their HW must hold the same
    /// record there (log matching). Followers count once they have the leader's HW.
    fn check_divergence(&mut self, event: u64, p: usize, brokers: &[Broker]) {
        let eligible = |b: &&Broker| {
            b.running
                && match &b.replicas[p].role {
                    Role::Leader(_) => true,
                    Role::Follower(f) => f.hw_confirmed && f.phase == FollowerPhase::Fetching,
                    Role::Offline => false,
                }
        };
        let replicas: Vec<&Broker> = brokers.iter().filter(eligible).collect();
        for i in 0..replicas.len() {
            for j in i + 1..replicas.len() {
                let (a, b) = (&replicas[i].replicas[p], &replicas[j].replicas[p]);
                let n = a.high_watermark.min(b.high_watermark);
                if a.log.prefix_hash(n) != b.log.prefix_hash(n) {
                    let detail = format!(
                        "{}: {} and {} hold different records below offset {} (both below their high watermarks)",
                        self.keys[p], replicas[i].id, replicas[j].id, n
                    );
                    self.report("divergent-replicas", p, event, detail);
                }
            }
        }
    }

    /// Every replica the controller keeps in the ISR (so it can become leader) and
    /// that is running in the incarnation the controller knows must hold the committed
    /// prefix (KIP-101's failure is a truncation of it).
    fn check_isr_completeness(
        &mut self,
        event: u64,
        p: usize,
        brokers: &[Broker],
        controller: &Controller,
    ) {
        let c = &self.committed[p];
        let (len, hash) = (c.len, c.hash);
        let state = &controller.partitions[p];
        for &m in &state.isr {
            let b = &brokers[m.0 as usize];
            let current = controller
                .brokers
                .get(&m)
                .is_some_and(|s| s.broker_epoch == b.broker_epoch && !s.fenced);
            if !b.running || !current {
                continue;
            }
            let r = &b.replicas[p];
            let missing = r.log.log_end_offset() < len || r.log.prefix_hash(len) != hash;
            if missing && self.reported_missing.insert((p, m, len)) {
                let detail = format!(
                    "{}: {} is in the ISR {:?} but no longer holds the {} committed records (its log ends at {})",
                    self.keys[p],
                    m,
                    state.isr.iter().map(|b| b.0).collect::<Vec<_>>(),
                    len,
                    r.log.log_end_offset()
                );
                self.report("committed-truncated", p, event, detail);
            }
        }
    }

    /// Checks after an event handled by the controller: the leader is in the ISR, and
    /// every ISR member — a member just added by an AlterPartition included — holds the
    /// committed prefix (`StrongIsr`): the controller must never admit a replica that
    /// could be elected without it.
    pub fn after_controller_event(
        &mut self,
        event: u64,
        controller: &Controller,
        brokers: &[Broker],
    ) {
        for (p, s) in controller.partitions.iter().enumerate() {
            self.check_isr_completeness(event, p, brokers, controller);
            if let Some(l) = s.leader {
                if !s.isr.contains(&l) {
                    let detail = format!(
                        "{}: leader {} is not in the ISR {:?}",
                        self.keys[p], l, s.isr
                    );
                    self.report("leader-not-in-isr", p, event, detail);
                }
            }
        }
    }

    /// Everything found: listed occurrences, each detail ending with the total count.
    pub fn into_anomalies(self) -> Vec<RunAnomaly> {
        let mut out = Vec::new();
        for (_, (count, mut listed)) in self.found {
            if count > listed.len() as u64 {
                if let Some(last) = listed.last_mut() {
                    last.detail
                        .push_str(&format!(" ({count} occurrences in all)"));
                }
            }
            out.extend(listed);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::message::{Control, Message, PartitionState, ProducerStamp, Record};
    use model::outbox::Outbox;
    use model::types::{BrokerEpoch, NodeId, PartitionEpoch, ProducerEpoch, ProducerId};

    const P: usize = 0;

    fn config() -> Config {
        Config {
            partitions: 1,
            transaction_state_partitions: 1,
            min_insync_replicas: 1,
            ..Config::default()
        }
    }

    fn txn_record(control: Option<Control>) -> Record {
        Record {
            value: 0,
            epoch: Epoch(1),
            producer: Some((
                ProducerStamp {
                    producer_id: ProducerId(7),
                    producer_epoch: ProducerEpoch(0),
                    base_sequence: 0,
                    transactional: true,
                },
                0,
            )),
            control,
            txn_state: None,
        }
    }

    /// Broker 0 leads every partition alone (as the controller says too); partition 0
    /// holds an open transaction's record and a plain record, both committed: LSO 0,
    /// HW 2.
    fn leader_with_open_txn(config: &Config) -> (Broker, Controller, Monitors) {
        let states: Vec<PartitionState> = config
            .partition_ids()
            .map(|p| PartitionState {
                partition: p,
                replicas: vec![BrokerId(0), BrokerId(1), BrokerId(2)],
                leader: Some(BrokerId(0)),
                leader_epoch: Epoch(1),
                isr: vec![BrokerId(0)],
                partition_epoch: PartitionEpoch(1),
            })
            .collect();
        let mut b = Broker::new(BrokerId(0), config);
        let mut out = Outbox::default();
        b.start(SimTime::ZERO, BrokerEpoch(1), &mut out);
        b.handle_message(
            SimTime::ZERO,
            NodeId::Controller,
            Message::BrokerHeartbeatResponse {
                broker_epoch: BrokerEpoch(1),
                controller_epoch: 1,
                fenced: false,
                shutdown_ready: false,
                partitions: states.clone(),
            },
            &mut out,
        );
        let r = &mut b.replicas[P];
        r.log.append(txn_record(None));
        r.log.append(Record {
            producer: None,
            ..txn_record(None)
        });
        r.high_watermark = Offset(2);
        let mut controller = Controller::new(config);
        controller.partitions = states;
        let keys = config.partition_table().iter().map(|s| s.key()).collect();
        (b, controller, Monitors::new(keys, config))
    }

    fn check(m: &mut Monitors, event: u64, at: SimTime, b: &Broker, controller: &Controller) {
        m.after_broker_event(event, at, b, std::slice::from_ref(b), controller);
    }

    fn lso_stuck_count(m: Monitors) -> usize {
        m.into_anomalies()
            .iter()
            .filter(|a| a.kind == "lso-stuck")
            .count()
    }

    #[test]
    fn an_lso_stuck_past_the_bound_is_flagged_once() {
        let c = config();
        let (b, controller, mut m) = leader_with_open_txn(&c);
        let bound = lso_stuck_bound(&c).as_ms();
        assert!(bound > c.transaction_timeout_ms);
        for (event, at) in [(1, 0), (2, bound), (3, bound + 1), (4, bound + 2)] {
            check(&mut m, event, SimTime::from_ms(at), &b, &controller);
        }
        assert_eq!(lso_stuck_count(m), 1);
    }

    #[test]
    fn a_transaction_aborted_in_time_or_a_failover_restarts_the_clock() {
        let c = config();
        let bound = lso_stuck_bound(&c).as_ms();
        // The coordinator aborts the transaction one tick after its time-out.
        let (mut b, controller, mut m) = leader_with_open_txn(&c);
        check(&mut m, 1, SimTime::ZERO, &b, &controller);
        let r = &mut b.replicas[P];
        r.log.append(txn_record(Some(Control::Abort)));
        r.high_watermark = Offset(3);
        let aborted = c.transaction_timeout_ms + TXN_TICK_MS;
        check(&mut m, 2, SimTime::from_ms(aborted), &b, &controller);
        check(&mut m, 3, SimTime::from_ms(2 * bound), &b, &controller);
        assert_eq!(lso_stuck_count(m), 0);

        // An ISR change (or a failover) half-way restarts the clock.
        let (b, mut controller, mut m) = leader_with_open_txn(&c);
        check(&mut m, 1, SimTime::ZERO, &b, &controller);
        controller.partitions[P].partition_epoch = PartitionEpoch(2);
        let half = bound / 2;
        check(&mut m, 2, SimTime::from_ms(half), &b, &controller);
        check(&mut m, 3, SimTime::from_ms(bound + 1), &b, &controller);
        // So does a span in which no transaction could end (ISR below min ISR).
        controller.partitions[P].isr.clear();
        check(&mut m, 4, SimTime::from_ms(half + bound), &b, &controller);
        controller.partitions[P].isr.push(BrokerId(0));
        check(
            &mut m,
            5,
            SimTime::from_ms(half + bound + 1),
            &b,
            &controller,
        );
        assert_eq!(lso_stuck_count(m), 0);
    }
}
