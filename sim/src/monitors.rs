//! Broker monitors (`invariants.md`, "Broker monitors"): white-box checks on the model's
//! state after every event, for promises clients cannot see directly. They mirror the
//! invariants of the TLA+ specifications of Kafka replication (`StrongIsr`,
//! `LeaderCompleteness`, `NoCommittedRecordLostGlobally`).

use crate::run::RunAnomaly;
use model::broker::replica::{FollowerPhase, Role};
use model::broker::Broker;
use model::controller::Controller;
use model::outbox::Note;
use model::types::{BrokerId, Epoch, Offset};
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
    found: BTreeMap<&'static str, (u64, Vec<RunAnomaly>)>,
}

impl Monitors {
    pub fn new(keys: Vec<String>, brokers: usize, min_insync_replicas: u32) -> Monitors {
        let n = keys.len();
        Monitors {
            keys,
            min_insync_replicas,
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

    /// Checks after an event handled by broker `b`.
    pub fn after_broker_event(
        &mut self,
        event: u64,
        b: &Broker,
        brokers: &[Broker],
        controller: &Controller,
    ) {
        for (p, r) in b.replicas.iter().enumerate() {
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
