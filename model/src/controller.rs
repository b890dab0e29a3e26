//! The controller: broker registrations and sessions, fencing, leader election from the
//! ISR, AlterPartition, and publishing partition state with epochs so that brokers can
//! reject stale decisions.
//!
//! Simplification (README, fidelity): one active KRaft controller whose metadata is
//! durable and which does not crash in these scenarios; Kafka runs a Raft quorum of
//! three whose metadata log is itself replicated. Brokers learn metadata by push on
//! every change and by the full image in every heartbeat response (KRaft brokers fetch
//! the metadata log), so a lost push is repaired within one heartbeat interval.

use crate::config::Config;
use crate::message::{ErrorCode, Message, PartitionState};
use crate::outbox::{Note, Outbox, Timer};
use crate::types::{BrokerEpoch, BrokerId, Epoch, NodeId, PartitionEpoch, PartitionId, SimTime};
use std::collections::BTreeMap;

/// How often the controller looks for expired broker sessions.
const SESSION_CHECK_MS: u64 = 500;

#[derive(Clone, Debug)]
pub struct BrokerSession {
    pub broker_epoch: BrokerEpoch,
    pub last_heartbeat: SimTime,
    pub fenced: bool,
    /// The broker asked for a controlled shutdown: it leads nothing and joins no ISR.
    pub shutting_down: bool,
}

pub struct Controller {
    config: Config,
    /// Bumped every time a standby takes over (KRaft: the quorum leader's epoch).
    pub controller_epoch: u32,
    pub partitions: Vec<PartitionState>,
    pub brokers: BTreeMap<BrokerId, BrokerSession>,
    /// The topic is created once every broker has registered and is unfenced.
    pub topic_created: bool,
}

impl Controller {
    pub fn new(config: &Config) -> Controller {
        let partitions = config
            .partition_table()
            .into_iter()
            .enumerate()
            .map(|(i, spec)| PartitionState {
                partition: PartitionId(i as u32),
                isr: spec.replicas.clone(),
                replicas: spec.replicas,
                leader: None,
                leader_epoch: Epoch(0),
                partition_epoch: PartitionEpoch(0),
            })
            .collect();
        Controller {
            config: config.clone(),
            controller_epoch: 1,
            partitions,
            brokers: BTreeMap::new(),
            topic_created: false,
        }
    }

    pub fn start(&mut self, _now: SimTime, out: &mut Outbox) {
        out.timer_ms(SESSION_CHECK_MS, Timer::SessionCheck);
    }

    /// The active controller died and a standby of the quorum takes over with the same
    /// committed metadata and a higher controller epoch. Simplification (README,
    /// fidelity): decisions are committed as they are made, so none is lost in the
    /// failover. Like KRaft's new active controller it gives every registered broker a
    /// fresh session (it has no heartbeat history of its own), then publishes the full
    /// image so brokers learn the new epoch.
    pub fn fail_over(&mut self, now: SimTime, out: &mut Outbox) {
        self.controller_epoch += 1;
        for s in self.brokers.values_mut() {
            s.last_heartbeat = now;
        }
        self.start(now, out);
        if self.topic_created {
            self.publish(self.partitions.clone(), out);
        }
    }

    fn unfenced(&self, b: BrokerId) -> bool {
        self.brokers.get(&b).is_some_and(|s| !s.fenced)
    }

    /// May lead or join an ISR: unfenced and not shutting down.
    fn eligible(&self, b: BrokerId) -> bool {
        self.brokers
            .get(&b)
            .is_some_and(|s| !s.fenced && !s.shutting_down)
    }

    pub fn handle_message(&mut self, now: SimTime, from: NodeId, msg: Message, out: &mut Outbox) {
        match msg {
            Message::BrokerRegistration {
                broker,
                broker_epoch,
            } => {
                let known = self.brokers.get(&broker).map(|s| s.broker_epoch);
                if known == Some(broker_epoch) {
                    // A retried registration (the answer was lost): answer again.
                    self.respond_heartbeat(from, broker_epoch, out);
                    return;
                }
                if known.is_some_and(|k| k > broker_epoch) {
                    return;
                }
                // A new incarnation may have lost its unflushed tail: fence it (out of
                // every ISR, leadership moved) until it heartbeats, then it must catch
                // up to rejoin ISRs through its leaders (KIP-631 broker epochs).
                let was_unfenced = self.unfenced(broker);
                self.brokers.insert(
                    broker,
                    BrokerSession {
                        broker_epoch,
                        last_heartbeat: now,
                        fenced: true,
                        shutting_down: false,
                    },
                );
                if was_unfenced {
                    out.note(Note::BrokerFenced {
                        broker,
                        fenced: true,
                    });
                }
                self.remove_from_partitions(broker, out);
                self.respond_heartbeat(from, broker_epoch, out);
            }
            Message::BrokerHeartbeat {
                broker,
                broker_epoch,
                want_shutdown,
            } => {
                let Some(s) = self.brokers.get_mut(&broker) else {
                    return;
                };
                if s.broker_epoch != broker_epoch {
                    return;
                }
                s.last_heartbeat = now;
                let begin_shutdown = want_shutdown && !s.shutting_down;
                s.shutting_down |= want_shutdown;
                if s.fenced && !want_shutdown {
                    s.fenced = false;
                    out.note(Note::BrokerFenced {
                        broker,
                        fenced: false,
                    });
                    self.on_broker_unfenced(broker, out);
                }
                if begin_shutdown {
                    // Controlled shutdown: move its leaderships and take it out of
                    // every ISR before it stops, so no election waits for a timeout.
                    self.remove_from_partitions(broker, out);
                }
                self.respond_heartbeat(from, broker_epoch, out);
            }
            Message::AlterPartition {
                broker,
                broker_epoch,
                partition,
                leader_epoch,
                partition_epoch,
                new_isr,
            } => {
                let result = self.alter_partition(
                    broker,
                    broker_epoch,
                    partition,
                    leader_epoch,
                    partition_epoch,
                    new_isr.clone(),
                    out,
                );
                out.send(
                    from,
                    Message::AlterPartitionResponse {
                        partition,
                        proposed: new_isr,
                        result,
                    },
                );
            }
            _ => {}
        }
    }

    pub fn handle_timeout(&mut self, now: SimTime, timer: Timer, out: &mut Outbox) {
        if timer != Timer::SessionCheck {
            return;
        }
        let timeout = SimTime::from_ms(self.config.broker_session_timeout_ms);
        let expired: Vec<BrokerId> = self
            .brokers
            .iter()
            .filter(|(_, s)| !s.fenced && now.since(s.last_heartbeat) > timeout)
            .map(|(&b, _)| b)
            .collect();
        for b in expired {
            if let Some(s) = self.brokers.get_mut(&b) {
                s.fenced = true;
            }
            out.note(Note::BrokerFenced {
                broker: b,
                fenced: true,
            });
            self.remove_from_partitions(b, out);
        }
        out.timer_ms(SESSION_CHECK_MS, Timer::SessionCheck);
    }

    fn respond_heartbeat(&self, to: NodeId, broker_epoch: BrokerEpoch, out: &mut Outbox) {
        let (fenced, shutdown_ready) = match to {
            NodeId::Broker(b) => (
                !self.unfenced(b),
                self.brokers.get(&b).is_some_and(|s| s.shutting_down)
                    && self.partitions.iter().all(|p| p.leader != Some(b)),
            ),
            _ => (true, false),
        };
        out.send(
            to,
            Message::BrokerHeartbeatResponse {
                broker_epoch,
                controller_epoch: self.controller_epoch,
                fenced,
                shutdown_ready,
                partitions: if self.topic_created {
                    self.partitions.clone()
                } else {
                    Vec::new()
                },
            },
        );
    }

    fn publish(&self, changed: Vec<PartitionState>, out: &mut Outbox) {
        if changed.is_empty() || !self.topic_created {
            return;
        }
        for &b in self.brokers.keys() {
            out.send(
                NodeId::Broker(b),
                Message::PartitionChange {
                    controller_epoch: self.controller_epoch,
                    states: changed.clone(),
                },
            );
        }
    }

    /// A fenced broker leaves every ISR (unless it is the last member, which keeps the
    /// partition's durability claim) and every leadership.
    fn remove_from_partitions(&mut self, broker: BrokerId, out: &mut Outbox) {
        if !self.topic_created {
            return;
        }
        let mut changed = Vec::new();
        for i in 0..self.partitions.len() {
            let s = &self.partitions[i];
            let in_isr = s.isr.contains(&broker);
            let is_leader = s.leader == Some(broker);
            if !in_isr && !is_leader {
                continue;
            }
            let shutting_down = self
                .brokers
                .get(&broker)
                .is_some_and(|x| x.shutting_down && !x.fenced);
            let successor = s.isr.iter().any(|&x| x != broker && self.eligible(x));
            if shutting_down && is_leader && !successor {
                // No one to hand over to: it keeps leading until it stops.
                continue;
            }
            let mut next = s.clone();
            if in_isr && s.isr.len() > 1 {
                next.isr.retain(|&b| b != broker);
                out.note(Note::IsrChanged {
                    partition: next.partition,
                    isr: next.isr.clone(),
                    shrink: true,
                });
            }
            next.partition_epoch.0 += 1;
            if is_leader {
                self.elect(&mut next, out);
            }
            self.partitions[i] = next.clone();
            changed.push(next);
        }
        self.publish(changed, out);
    }

    /// Choose a leader for `s` (whose leader is gone): the first unfenced ISR member in
    /// replica order, else (only with `unclean.leader.election.enable`) any unfenced
    /// replica, else none.
    fn elect(&self, s: &mut PartitionState, out: &mut Outbox) {
        let clean = s
            .replicas
            .iter()
            .copied()
            .find(|b| s.isr.contains(b) && self.eligible(*b));
        let (leader, unclean) = match clean {
            Some(b) => (Some(b), false),
            None if self.config.unclean_leader_election_enable => {
                (s.replicas.iter().copied().find(|b| self.eligible(*b)), true)
            }
            None => (None, false),
        };
        if let (Some(b), true) = (leader, unclean) {
            s.isr = vec![b];
        }
        if leader.is_some() || s.leader.is_some() {
            s.leader_epoch.0 += 1;
        }
        s.leader = leader;
        out.note(Note::LeaderElected {
            partition: s.partition,
            leader,
            epoch: s.leader_epoch,
            isr: s.isr.clone(),
            unclean: unclean && leader.is_some(),
        });
    }

    fn on_broker_unfenced(&mut self, _broker: BrokerId, out: &mut Outbox) {
        if !self.topic_created {
            let all = (0..self.config.brokers).all(|b| self.unfenced(BrokerId(b)));
            if all {
                self.create_topic(out);
            }
            return;
        }
        let mut changed = Vec::new();
        for i in 0..self.partitions.len() {
            if self.partitions[i].leader.is_some() {
                continue;
            }
            let mut next = self.partitions[i].clone();
            self.elect(&mut next, out);
            if next.leader.is_some() {
                next.partition_epoch.0 += 1;
                self.partitions[i] = next.clone();
                changed.push(next);
            }
        }
        self.publish(changed, out);
    }

    fn create_topic(&mut self, out: &mut Outbox) {
        self.topic_created = true;
        for s in &mut self.partitions {
            s.leader = s.replicas.first().copied();
            s.leader_epoch = Epoch(1);
            s.partition_epoch = PartitionEpoch(1);
            out.note(Note::LeaderElected {
                partition: s.partition,
                leader: s.leader,
                epoch: s.leader_epoch,
                isr: s.isr.clone(),
                unclean: false,
            });
        }
        self.publish(self.partitions.clone(), out);
    }

    #[allow(clippy::too_many_arguments)]
    fn alter_partition(
        &mut self,
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
        p: PartitionId,
        leader_epoch: Epoch,
        partition_epoch: PartitionEpoch,
        new_isr: Vec<BrokerId>,
        out: &mut Outbox,
    ) -> Result<PartitionState, ErrorCode> {
        let session_ok = self
            .brokers
            .get(&broker)
            .is_some_and(|s| s.broker_epoch == broker_epoch);
        if !session_ok {
            return Err(ErrorCode::StaleBrokerEpoch);
        }
        let s = self
            .partitions
            .get(p.index())
            .ok_or(ErrorCode::NotLeaderOrFollower)?;
        if s.leader != Some(broker) {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        if leader_epoch != s.leader_epoch {
            return Err(ErrorCode::FencedLeaderEpoch);
        }
        if partition_epoch != s.partition_epoch {
            return Err(ErrorCode::InvalidUpdateVersion);
        }
        if !new_isr.contains(&broker) || new_isr.iter().any(|b| !s.replicas.contains(b)) {
            return Err(ErrorCode::InvalidUpdateVersion);
        }
        let added_fenced = new_isr
            .iter()
            .any(|b| !s.isr.contains(b) && !self.eligible(*b));
        if added_fenced {
            return Err(ErrorCode::IneligibleReplica);
        }
        let mut next = s.clone();
        let shrink = new_isr.len() < next.isr.len();
        next.isr = new_isr;
        next.partition_epoch.0 += 1;
        out.note(Note::IsrChanged {
            partition: p,
            isr: next.isr.clone(),
            shrink,
        });
        self.partitions[p.index()] = next.clone();
        self.publish(vec![next.clone()], out);
        Ok(next)
    }

    /// The controller's invariant: a leader is always in the ISR.
    pub fn check_invariants(&self) {
        for s in &self.partitions {
            if let Some(l) = s.leader {
                debug_assert!(
                    s.isr.contains(&l),
                    "{:?}: leader {l} not in ISR {:?}",
                    s.partition,
                    s.isr
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controller() -> Controller {
        Controller::new(&Config::default())
    }

    fn join(c: &mut Controller, now: SimTime, b: u32, epoch: u64, out: &mut Outbox) {
        let from = NodeId::Broker(BrokerId(b));
        let broker_epoch = BrokerEpoch(epoch);
        c.handle_message(
            now,
            from,
            Message::BrokerRegistration {
                broker: BrokerId(b),
                broker_epoch,
            },
            out,
        );
        c.handle_message(
            now,
            from,
            Message::BrokerHeartbeat {
                broker: BrokerId(b),
                broker_epoch,
                want_shutdown: false,
            },
            out,
        );
    }

    fn cluster() -> (Controller, Outbox) {
        let mut c = controller();
        let mut out = Outbox::default();
        for b in 0..3 {
            join(&mut c, SimTime::ZERO, b, 1, &mut out);
        }
        (c, out)
    }

    #[test]
    fn topic_is_created_with_preferred_leaders_once_every_broker_is_up() {
        let mut c = controller();
        let mut out = Outbox::default();
        join(&mut c, SimTime::ZERO, 0, 1, &mut out);
        join(&mut c, SimTime::ZERO, 1, 1, &mut out);
        assert!(!c.topic_created, "two of three brokers are not enough");
        join(&mut c, SimTime::ZERO, 2, 1, &mut out);
        assert!(c.topic_created);
        for s in &c.partitions {
            assert_eq!(s.leader, Some(s.replicas[0]));
            assert_eq!(s.isr.len(), 3);
            assert_eq!(s.leader_epoch, Epoch(1));
        }
    }

    #[test]
    fn expired_session_fences_the_broker_and_elects_from_the_isr() {
        let (mut c, mut out) = cluster();
        // Brokers 1 and 2 keep heartbeating; broker 0 falls silent.
        let later = SimTime::from_ms(10_000);
        for b in 1..3 {
            c.handle_message(
                later,
                NodeId::Broker(BrokerId(b)),
                Message::BrokerHeartbeat {
                    broker: BrokerId(b),
                    broker_epoch: BrokerEpoch(1),
                    want_shutdown: false,
                },
                &mut out,
            );
        }
        c.handle_timeout(later, Timer::SessionCheck, &mut out);
        let p0 = &c.partitions[0];
        assert_eq!(
            p0.leader,
            Some(BrokerId(1)),
            "next ISR member in replica order"
        );
        assert_eq!(p0.leader_epoch, Epoch(2));
        assert!(
            !p0.isr.contains(&BrokerId(0)),
            "a fenced broker leaves the ISR"
        );
        c.check_invariants();
    }

    #[test]
    fn alter_partition_rejects_stale_epochs_and_fenced_replicas() {
        let (mut c, mut out) = cluster();
        let leader = BrokerId(0);
        let ask =
            |c: &mut Controller, partition_epoch: u32, isr: Vec<BrokerId>, out: &mut Outbox| {
                c.alter_partition(
                    leader,
                    BrokerEpoch(1),
                    PartitionId(0),
                    Epoch(1),
                    PartitionEpoch(partition_epoch),
                    isr,
                    out,
                )
            };
        assert_eq!(
            ask(&mut c, 0, vec![BrokerId(0), BrokerId(1)], &mut out),
            Err(ErrorCode::InvalidUpdateVersion),
            "built on an old partition epoch"
        );
        let shrunk =
            ask(&mut c, 1, vec![BrokerId(0), BrokerId(1)], &mut out).expect("valid shrink");
        assert_eq!(shrunk.partition_epoch, PartitionEpoch(2));
        // Broker 2 re-registers (a new incarnation): it is fenced until it heartbeats.
        c.handle_message(
            SimTime::ZERO,
            NodeId::Broker(BrokerId(2)),
            Message::BrokerRegistration {
                broker: BrokerId(2),
                broker_epoch: BrokerEpoch(2),
            },
            &mut out,
        );
        assert_eq!(
            ask(
                &mut c,
                2,
                vec![BrokerId(0), BrokerId(1), BrokerId(2)],
                &mut out
            ),
            Err(ErrorCode::IneligibleReplica)
        );
    }

    #[test]
    fn unclean_election_only_when_enabled() {
        for unclean in [false, true] {
            let config = Config {
                unclean_leader_election_enable: unclean,
                ..Config::default()
            };
            let mut c = Controller::new(&config);
            let mut out = Outbox::default();
            for b in 0..3 {
                join(&mut c, SimTime::ZERO, b, 1, &mut out);
            }
            // The ISR of partition 0 is just its leader; then the leader goes away.
            c.alter_partition(
                BrokerId(0),
                BrokerEpoch(1),
                PartitionId(0),
                Epoch(1),
                PartitionEpoch(1),
                vec![BrokerId(0)],
                &mut out,
            )
            .unwrap();
            join(&mut c, SimTime::ZERO, 0, 2, &mut out);
            c.handle_message(
                SimTime::ZERO,
                NodeId::Broker(BrokerId(0)),
                Message::BrokerRegistration {
                    broker: BrokerId(0),
                    broker_epoch: BrokerEpoch(3),
                },
                &mut out,
            );
            let p0 = &c.partitions[0];
            if unclean {
                assert_eq!(
                    p0.leader,
                    Some(BrokerId(1)),
                    "an out-of-sync replica is elected"
                );
                assert_eq!(p0.isr, vec![BrokerId(1)]);
            } else {
                assert_eq!(p0.leader, None, "offline rather than lose committed data");
                assert_eq!(p0.isr, vec![BrokerId(0)]);
            }
        }
    }

    #[test]
    fn controlled_shutdown_moves_leadership_first() {
        let (mut c, mut out) = cluster();
        c.handle_message(
            SimTime::ZERO,
            NodeId::Broker(BrokerId(0)),
            Message::BrokerHeartbeat {
                broker: BrokerId(0),
                broker_epoch: BrokerEpoch(1),
                want_shutdown: true,
            },
            &mut out,
        );
        assert!(c.partitions.iter().all(|s| s.leader != Some(BrokerId(0))));
        assert!(c.partitions.iter().all(|s| !s.isr.contains(&BrokerId(0))));
        let ready = out.messages.iter().rev().find_map(|(to, m)| match (to, m) {
            (
                NodeId::Broker(BrokerId(0)),
                Message::BrokerHeartbeatResponse { shutdown_ready, .. },
            ) => Some(*shutdown_ready),
            _ => None,
        });
        assert_eq!(ready, Some(true));
    }
}
