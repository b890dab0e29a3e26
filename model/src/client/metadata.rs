//! A client's view of partition leadership, refreshed by Metadata requests to a random
//! broker (a broker answers from its own, possibly stale, metadata cache).

use crate::message::Message;
use crate::outbox::{Outbox, Timer};
use crate::rng::ModelRng;
use crate::types::{BrokerId, Epoch, NodeId, PartitionId, SimTime};

#[derive(Clone, Debug)]
pub struct MetadataCache {
    pub leaders: Vec<Option<(BrokerId, Epoch)>>,
    brokers: u32,
    inflight: Option<(u64, SimTime)>,
    last_refresh: Option<SimTime>,
}

/// Minimum pause between refreshes (Kafka's `retry.backoff.ms` governs it too).
const REFRESH_TIMEOUT_MS: u64 = 1_000;
/// Minimum pause between two refreshes (the clients' `retry.backoff.ms` default).
const REFRESH_BACKOFF_MS: u64 = 100;

impl MetadataCache {
    pub fn new(partitions: u32, brokers: u32) -> MetadataCache {
        MetadataCache {
            leaders: vec![None; partitions as usize],
            brokers,
            inflight: None,
            last_refresh: None,
        }
    }

    pub fn leader(&self, p: PartitionId) -> Option<(BrokerId, Epoch)> {
        self.leaders.get(p.index()).copied().flatten()
    }

    /// Ask a random broker for metadata, unless a request is already in flight
    /// (one that has not timed out).
    pub fn refresh(
        &mut self,
        now: SimTime,
        correlation: u64,
        rng: &mut ModelRng,
        out: &mut Outbox,
    ) {
        if let Some((_, sent)) = self.inflight {
            if now.since(sent) < SimTime::from_ms(REFRESH_TIMEOUT_MS) {
                return;
            }
        }
        // Kafka backs off `retry.backoff.ms` between metadata refreshes, so a client
        // whose brokers have not yet heard of a new leader does not spin.
        if self
            .last_refresh
            .is_some_and(|t| now.since(t) < SimTime::from_ms(REFRESH_BACKOFF_MS))
        {
            return;
        }
        let broker = BrokerId(rng.below(u64::from(self.brokers)) as u32);
        self.inflight = Some((correlation, now));
        self.last_refresh = Some(now);
        out.send(
            NodeId::Broker(broker),
            Message::MetadataRequest { correlation },
        );
        out.timer_ms(REFRESH_TIMEOUT_MS, Timer::RequestTimeout(correlation));
    }

    /// The leader of `p`, or `None` after asking for a refresh (see [`Self::refresh`])
    /// under the client's next correlation id, so that the caller retries later.
    /// `next_id` is the client's correlation counter: it moves only when the leader is
    /// unknown, even if no request goes out (one is in flight or backing off). Taking
    /// the counter and the rng rather than the client lets a call borrow the client's
    /// fields apart.
    pub fn leader_or_refresh(
        &mut self,
        now: SimTime,
        p: PartitionId,
        next_id: &mut u64,
        rng: &mut ModelRng,
        out: &mut Outbox,
    ) -> Option<BrokerId> {
        if let Some((leader, _)) = self.leader(p) {
            return Some(leader);
        }
        *next_id += 1;
        self.refresh(now, *next_id, rng, out);
        None
    }

    pub fn is_inflight(&self, correlation: u64) -> bool {
        self.inflight.map(|(c, _)| c) == Some(correlation)
    }

    pub fn on_timeout(&mut self, correlation: u64) -> bool {
        if self.is_inflight(correlation) {
            self.inflight = None;
            return true;
        }
        false
    }

    /// Take a response: newer leader epochs win; a stale broker cannot move us back.
    pub fn on_response(
        &mut self,
        correlation: u64,
        partitions: &[(PartitionId, Option<BrokerId>, Epoch)],
    ) -> bool {
        if !self.is_inflight(correlation) {
            return false;
        }
        self.inflight = None;
        for &(p, leader, epoch) in partitions {
            let Some(slot) = self.leaders.get_mut(p.index()) else {
                continue;
            };
            let newer = slot.is_none_or(|(_, e)| epoch >= e);
            if newer {
                *slot = leader.map(|l| (l, epoch));
            }
        }
        true
    }

    /// Forget a leader after an error that says it moved.
    pub fn invalidate(&mut self, p: PartitionId) {
        if let Some(slot) = self.leaders.get_mut(p.index()) {
            *slot = None;
        }
    }

    /// The broker went away: forget every leadership we attributed to it.
    pub fn forget_broker(&mut self, broker: BrokerId) {
        for slot in &mut self.leaders {
            if slot.is_some_and(|(b, _)| b == broker) {
                *slot = None;
            }
        }
        if self.inflight.is_some() {
            // The metadata request may have gone to it; allow another at once.
            self.inflight = None;
        }
    }

    pub fn is_stale(&self, now: SimTime, max_age_ms: u64) -> bool {
        self.last_refresh
            .is_none_or(|t| now.since(t) >= SimTime::from_ms(max_age_ms))
    }
}
