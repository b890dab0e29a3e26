//! Newtypes for the quantities the broker reasons about. Mixing an offset with an epoch
//! is the kind of mistake that silently breaks KIP-101 truncation, so each has a type.

use std::fmt;

/// Simulated time in integer nanoseconds since the start of the run. Never a float,
/// never the wall clock: time enters the model only as the `now` argument.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct SimTime(pub u64);

impl SimTime {
    pub const ZERO: SimTime = SimTime(0);
    pub const fn from_ms(ms: u64) -> SimTime {
        SimTime(ms * 1_000_000)
    }
    pub const fn from_us(us: u64) -> SimTime {
        SimTime(us * 1_000)
    }
    pub const fn as_ms(self) -> u64 {
        self.0 / 1_000_000
    }
    pub const fn plus_ms(self, ms: u64) -> SimTime {
        SimTime(self.0 + ms * 1_000_000)
    }
    pub const fn plus(self, d: SimTime) -> SimTime {
        SimTime(self.0 + d.0)
    }
    /// Time elapsed since `earlier`, saturating at zero.
    pub const fn since(self, earlier: SimTime) -> SimTime {
        SimTime(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:03}s",
            self.0 / 1_000_000_000,
            (self.0 / 1_000_000) % 1000
        )
    }
}

/// `broker.id` / `node.id` of a broker.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct BrokerId(pub u32);

impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b{}", self.0)
    }
}

/// One client instance (producer or consumer); its history process ids are derived from it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ClientId(pub u32);

/// An addressable node of the simulated world.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum NodeId {
    Broker(BrokerId),
    /// The (single, simplified) KRaft controller. See README, fidelity.
    Controller,
    Client(ClientId),
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeId::Broker(b) => write!(f, "{b}"),
            NodeId::Controller => write!(f, "ctl"),
            NodeId::Client(c) => write!(f, "c{}", c.0),
        }
    }
}

/// A position in a partition's log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset(pub u64);

impl Offset {
    pub const ZERO: Offset = Offset(0);
    pub const fn next(self) -> Offset {
        Offset(self.0 + 1)
    }
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A partition's leader epoch: bumped by the controller on every leader election
/// (KIP-101 stamps it on every batch; KIP-320 puts it in every fetch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub u32);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{}", self.0)
    }
}

/// A partition's partition epoch: bumped on every change of leader *or* ISR, so an
/// AlterPartition built on stale state is rejected (KIP-497, KRaft).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionEpoch(pub u32);

/// Index of a topic-partition in the cluster's partition table (`Cluster::partitions`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct PartitionId(pub u32);

impl PartitionId {
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Idempotent producer id (KIP-98).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProducerId(pub u64);

/// A producer id's epoch (KIP-98): InitProducerId for a `transactional.id` bumps it,
/// fencing every older instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProducerEpoch(pub u16);

/// A `transactional.id` (an application instance's stable name across restarts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxnId(pub u32);

/// A consumer group (`group.id`), by index: the history names it `group-N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub u32);

impl GroupId {
    /// The `group.id` as the history writes it.
    pub fn name(self) -> String {
        format!("group-{}", self.0)
    }
}

/// A group member's `member.id`, unique per client process incarnation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId(pub u64);

/// A consumer group's generation: bumped by every membership change (rebalance). Offset
/// commits carry it, so a member of an older generation (a zombie) is refused (KIP-447).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(pub u32);

/// A set of partitions of the partition table (at most 64 partitions: the simulated
/// clusters are small). Used where Kafka stores a list of topic-partitions, in the
/// transaction log entries, so that a record stays a small `Copy` value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionSet(pub u64);

impl PartitionSet {
    pub const MAX: u32 = 64;

    pub fn insert(&mut self, p: PartitionId) {
        debug_assert!(p.0 < Self::MAX);
        self.0 |= 1 << p.0;
    }

    pub fn remove(&mut self, p: PartitionId) {
        if p.0 < Self::MAX {
            self.0 &= !(1 << p.0);
        }
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, other: PartitionSet) -> PartitionSet {
        PartitionSet(self.0 | other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = PartitionId> {
        (0..Self::MAX)
            .filter(move |&i| self.0 & (1 << i) != 0)
            .map(PartitionId)
    }
}

impl FromIterator<PartitionId> for PartitionSet {
    fn from_iter<I: IntoIterator<Item = PartitionId>>(iter: I) -> PartitionSet {
        let mut set = PartitionSet::default();
        for p in iter {
            set.insert(p);
        }
        set
    }
}

/// Sequence number of a record from one producer to one partition (KIP-98).
pub type Sequence = u32;

/// A record's payload: the workload writes integers unique per partition.
pub type Value = u64;

/// A broker incarnation: bumped on every restart, so the controller can tell a
/// restarted broker from a delayed message of its previous life (KIP-631 broker epoch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BrokerEpoch(pub u64);
