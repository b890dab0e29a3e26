//! The follower side: truncation through the leader's end offset for our last epoch
//! (KIP-101 with KIP-279's epoch in the answer), then fetching from the leader with our
//! current leader epoch (KIP-320).

use super::replica::{FollowerPhase, FollowerState, Role};
use super::Broker;
use crate::bug::Bug;
use crate::message::{ErrorCode, FetchData, Message};
use crate::outbox::{Note, Outbox, Timer};
use crate::types::{BrokerId, Epoch, NodeId, Offset, PartitionId, SimTime};

impl Broker {
    pub(super) fn become_follower(
        &mut self,
        now: SimTime,
        p: PartitionId,
        leader: BrokerId,
        out: &mut Outbox,
    ) {
        let hw_divergence = self.bug(Bug::HwDivergence);
        let always = self.bug(Bug::HwTruncation);
        let r = &mut self.replicas[p.index()];
        let hw_truncation = always || (hw_divergence && r.fresh_from_start);
        r.fresh_from_start = false;
        let phase = if hw_truncation {
            // Pre KIP-101: trust the local high watermark as the committed prefix.
            let hw = r.high_watermark;
            if let Some((from, to)) = r.truncate_to(hw) {
                out.note(Note::Truncated {
                    partition: p,
                    from,
                    to,
                });
            }
            FollowerPhase::Fetching
        } else {
            match r.log.latest_epoch() {
                Some(asked) => FollowerPhase::Truncating { asked },
                None => FollowerPhase::Fetching,
            }
        };
        r.role = Role::Follower(FollowerState {
            leader,
            phase,
            inflight: None,
            hw_confirmed: false,
            watchdog_armed: false,
        });
        self.send_follower_request(now, p, out);
    }

    /// Send the next OffsetsForLeaderEpoch or Fetch for `p`, per the follower's phase.
    fn send_follower_request(&mut self, now: SimTime, p: PartitionId, out: &mut Outbox) {
        let correlation = self.next_correlation();
        let me = self.id;
        let unfenced = self.bug(Bug::UnfencedFetch);
        let max_records = self.config.replica_fetch_max_records();
        let socket_timeout_ms = self.config.replica_socket_timeout_ms;
        let r = &mut self.replicas[p.index()];
        let current_leader_epoch = if unfenced { None } else { r.leader_epoch() };
        let leo = r.log.log_end_offset();
        let Role::Follower(f) = &mut r.role else {
            return;
        };
        f.inflight = Some((correlation, now));
        let msg = match f.phase {
            FollowerPhase::Truncating { asked } => Message::OffsetsForLeaderEpoch {
                correlation,
                partition: p,
                current_leader_epoch,
                leader_epoch: asked,
            },
            FollowerPhase::Fetching => Message::Fetch {
                correlation,
                replica: Some(me),
                partition: p,
                fetch_offset: leo,
                current_leader_epoch,
                max_records,
                read_committed: false,
            },
        };
        out.send(NodeId::Broker(f.leader), msg);
        if !f.watchdog_armed {
            f.watchdog_armed = true;
            out.timer_ms(socket_timeout_ms, Timer::ReplicaTimeout(p));
        }
    }

    /// The watchdog: resend a request unanswered for the socket timeout, else re-arm
    /// for the time the current one has left.
    pub(super) fn on_replica_timeout(&mut self, now: SimTime, p: PartitionId, out: &mut Outbox) {
        let Some(r) = self.replicas.get_mut(p.index()) else {
            return;
        };
        let Role::Follower(f) = &mut r.role else {
            return;
        };
        f.watchdog_armed = false;
        let Some((_, sent)) = f.inflight else {
            return;
        };
        let deadline = sent.plus_ms(self.config.replica_socket_timeout_ms);
        if now >= deadline {
            self.send_follower_request(now, p, out);
        } else {
            f.watchdog_armed = true;
            out.timer(deadline.since(now), Timer::ReplicaTimeout(p));
        }
    }

    /// Retry after a backoff, or resend after the socket timeout.
    pub(super) fn on_replica_fetch_timer(
        &mut self,
        now: SimTime,
        p: PartitionId,
        out: &mut Outbox,
    ) {
        let Some(r) = self.replicas.get(p.index()) else {
            return;
        };
        let Role::Follower(f) = &r.role else { return };
        if f.inflight.is_none() {
            self.send_follower_request(now, p, out);
        }
    }

    /// Take the answer to our request `correlation` for `p`, if it is the one we await.
    fn take_inflight(&mut self, p: PartitionId, correlation: u64) -> bool {
        let Some(r) = self.replicas.get_mut(p.index()) else {
            return false;
        };
        let Role::Follower(f) = &mut r.role else {
            return false;
        };
        if f.inflight.map(|(c, _)| c) != Some(correlation) {
            return false;
        }
        f.inflight = None;
        true
    }

    /// Our leader's connection broke: drop what is in flight and retry after the backoff.
    pub(super) fn on_leader_disconnected(&mut self, broker: BrokerId, out: &mut Outbox) {
        for i in 0..self.replicas.len() {
            let Role::Follower(f) = &mut self.replicas[i].role else {
                continue;
            };
            if f.leader == broker && f.inflight.is_some() {
                f.inflight = None;
                self.back_off(PartitionId(i as u32), out);
            }
        }
    }

    fn back_off(&mut self, p: PartitionId, out: &mut Outbox) {
        out.timer_ms(self.config.replica_fetch_backoff_ms, Timer::ReplicaFetch(p));
    }

    pub(super) fn on_offsets_for_leader_epoch_response(
        &mut self,
        now: SimTime,
        correlation: u64,
        p: PartitionId,
        result: Result<Option<(Epoch, Offset)>, ErrorCode>,
        out: &mut Outbox,
    ) {
        if !self.take_inflight(p, correlation) {
            return;
        }
        let lineage_blind = self.bug(Bug::EpochLookupNoLineage);
        let r = &mut self.replicas[p.index()];
        let Role::Follower(f) = &r.role else { return };
        if !matches!(f.phase, FollowerPhase::Truncating { .. }) {
            return;
        }
        let answer = match result {
            Ok(answer) => answer,
            Err(_) => return self.back_off(p, out),
        };
        let (truncate_to, next_phase) = match answer {
            // UNDEFINED: fall back to the high watermark (Kafka does the same).
            None => (r.high_watermark, FollowerPhase::Fetching),
            // Before KIP-279 the answer was a bare offset: truncate to it and fetch.
            Some((_, leader_end)) if lineage_blind => (
                leader_end.min(r.log.log_end_offset()),
                FollowerPhase::Fetching,
            ),
            Some((leader_epoch, leader_end)) => match r.log.end_offset_for_epoch(leader_epoch) {
                Some((ours, our_end)) if ours == leader_epoch => {
                    (leader_end.min(our_end), FollowerPhase::Fetching)
                }
                // We do not have the leader's epoch: cut to the end of our epoch below
                // it and ask again for that one (KIP-279).
                Some((ours, our_end)) => (our_end, FollowerPhase::Truncating { asked: ours }),
                None => (
                    leader_end.min(r.log.log_end_offset()),
                    FollowerPhase::Fetching,
                ),
            },
        };
        if let Some((from, to)) = r.truncate_to(truncate_to) {
            out.note(Note::Truncated {
                partition: p,
                from,
                to,
            });
        }
        if let Role::Follower(f) = &mut r.role {
            f.phase = match next_phase {
                FollowerPhase::Truncating { .. } if r.log.latest_epoch().is_none() => {
                    FollowerPhase::Fetching
                }
                other => other,
            };
        }
        self.send_follower_request(now, p, out);
    }

    pub(super) fn on_fetch_response(
        &mut self,
        now: SimTime,
        correlation: u64,
        p: PartitionId,
        result: Result<FetchData, ErrorCode>,
        out: &mut Outbox,
    ) {
        if !self.take_inflight(p, correlation) {
            return;
        }
        let pre_kip_101 = self.bug(Bug::HwTruncation) || self.bug(Bug::HwDivergence);
        let r = &mut self.replicas[p.index()];
        let Some(epoch) = r.log.latest_epoch().or(r.leader_epoch()) else {
            return;
        };
        let Role::Follower(f) = &mut r.role else {
            return;
        };
        match result {
            Ok(data) => {
                if data.base_offset == r.log.log_end_offset() {
                    for record in data.records {
                        r.log.append(record);
                    }
                }
                self.maybe_flush_by_count(p);
                let r = &mut self.replicas[p.index()];
                let Role::Follower(f) = &mut r.role else {
                    return;
                };
                if let Some(hw) = data.high_watermark {
                    r.high_watermark = hw.min(r.log.log_end_offset());
                    f.hw_confirmed = true;
                }
                self.send_follower_request(now, p, out);
            }
            Err(ErrorCode::OffsetOutOfRange) if pre_kip_101 => {
                // Pre KIP-101: truncate to the local HW again and retry until the
                // leader's log has grown past it (keeping whatever lies below the HW).
                let hw = r.high_watermark;
                if let Some((from, to)) = r.truncate_to(hw) {
                    out.note(Note::Truncated {
                        partition: p,
                        from,
                        to,
                    });
                }
                self.back_off(p, out);
            }
            Err(ErrorCode::OffsetOutOfRange) => {
                // Our log is longer than the leader's: go back through truncation.
                f.phase = FollowerPhase::Truncating { asked: epoch };
                self.send_follower_request(now, p, out);
            }
            Err(_) => self.back_off(p, out),
        }
    }
}
