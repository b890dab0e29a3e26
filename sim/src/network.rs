//! The simulated network: per-link latency drawn from the network stream, FIFO per
//! directed link (as a TCP connection is), optional loss, slow links, and directional
//! partitions. Messages are values; nothing touches a socket.

use crate::rng::SimRng;
use model::types::{NodeId, SimTime};
use scenarios::NetworkSpec;
use std::collections::{BTreeMap, BTreeSet};

/// A dense index per node: brokers first (at most 64, as `Config::validate` allows),
/// then the controller, then clients.
fn node_index(n: NodeId) -> usize {
    match n {
        NodeId::Broker(b) => b.0 as usize,
        NodeId::Controller => 64,
        NodeId::Client(c) => 65 + c.0 as usize,
    }
}

/// A dense index per directed link, for the FIFO bookkeeping on the hot path.
fn link_index(from: NodeId, to: NodeId) -> usize {
    let (a, b) = (node_index(from), node_index(to));
    // Cantor-style pairing keeps indices small for small node counts.
    let s = a + b;
    s * (s + 1) / 2 + b
}

/// What the network does with one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Lost,
    Once(SimTime),
    Twice(SimTime, SimTime),
}

pub struct Network {
    config: NetworkSpec,
    /// The scenario's own spec, restored by `heal`.
    baseline: NetworkSpec,
    rng: SimRng,
    /// Directed (from, to) pairs whose messages are dropped.
    blocked: BTreeSet<(NodeId, NodeId)>,
    /// Extra latency (µs) on a broker's links to other brokers.
    slow: BTreeMap<NodeId, u64>,
    /// Last scheduled delivery per directed link, for FIFO order.
    last_delivery: Vec<SimTime>,
}

impl Network {
    pub fn new(config: NetworkSpec, rng: SimRng) -> Network {
        Network {
            config,
            baseline: config,
            rng,
            blocked: BTreeSet::new(),
            slow: BTreeMap::new(),
            last_delivery: Vec::new(),
        }
    }

    /// When a message sent now from `from` to `to` arrives (possibly twice), or
    /// nothing if it is lost.
    pub fn schedule(&mut self, now: SimTime, from: NodeId, to: NodeId) -> Delivery {
        if self.rng.chance(self.config.drop_per_million, 1_000_000) {
            return Delivery::Lost;
        }
        let at = self.arrival(now, from, to);
        if self
            .rng
            .chance(self.config.duplicate_per_million, 1_000_000)
        {
            return Delivery::Twice(at, self.arrival(now, from, to));
        }
        Delivery::Once(at)
    }

    fn arrival(&mut self, now: SimTime, from: NodeId, to: NodeId) -> SimTime {
        let mut latency = self
            .rng
            .between(self.config.latency_us_min, self.config.latency_us_max);
        // Slow links model slow replication: only broker-to-broker traffic is slowed.
        if let (NodeId::Broker(_), NodeId::Broker(_)) = (from, to) {
            latency += self.slow.get(&from).copied().unwrap_or(0)
                + self.slow.get(&to).copied().unwrap_or(0);
        }
        let at = now.plus(SimTime::from_us(latency));
        if self.config.reorder {
            return at;
        }
        let link = link_index(from, to);
        if link >= self.last_delivery.len() {
            self.last_delivery.resize(link + 1, SimTime::ZERO);
        }
        let at = at.max(self.last_delivery[link]);
        self.last_delivery[link] = at;
        at
    }

    /// Is the link from `from` to `to` cut (checked at delivery time)?
    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        !self.blocked.is_empty() && self.blocked.contains(&(from, to))
    }

    pub fn block(&mut self, from: NodeId, to: NodeId) {
        if from != to {
            self.blocked.insert((from, to));
        }
    }

    /// Lose, duplicate (and maybe reorder) messages until `heal`.
    pub fn degrade(&mut self, drop_per_million: u64, duplicate_per_million: u64, reorder: bool) {
        self.config.drop_per_million = drop_per_million;
        self.config.duplicate_per_million = duplicate_per_million;
        self.config.reorder = reorder;
    }

    pub fn set_slow(&mut self, node: NodeId, extra_ms: u64) {
        self.slow.insert(node, extra_ms * 1_000);
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
        self.slow.clear();
        self.config = self.baseline;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::types::BrokerId;

    #[test]
    fn fifo_per_link_and_partitions_are_directional() {
        let mut n = Network::new(NetworkSpec::default(), SimRng::new(3, 1));
        let a = NodeId::Broker(BrokerId(0));
        let b = NodeId::Broker(BrokerId(1));
        let mut last = SimTime::ZERO;
        for i in 0..100 {
            let Delivery::Once(at) = n.schedule(SimTime(i), a, b) else {
                panic!("lossless network")
            };
            assert!(at >= last, "FIFO on one link");
            last = at;
        }
        n.block(a, b);
        assert!(n.is_blocked(a, b));
        assert!(!n.is_blocked(b, a), "one-way");
        n.heal();
        assert!(!n.is_blocked(a, b));
    }
}
