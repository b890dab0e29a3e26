//! Named scenarios: a cluster shape and configuration (Kafka's config names), a client
//! workload, a fault schedule drawn from the seed, and the anomalies the configuration
//! allows, each with its reason (`../shared/design/scenarios.md`).
//!
//! A scenario is data. The simulator draws the schedule through [`Draw`] from its fault
//! stream, applies `--set` overrides to the config, then runs: a safety phase with
//! faults, heal at `heal_at`, producers stop at `stop_producers_at`, then the drain
//! phase reads every partition to its end and the liveness check must pass by
//! `deadline`.

mod catalogue;
mod fault;

pub use catalogue::{all, by_name};
pub use fault::{Fault, FaultEvent, LinkSet, StallWhen, Target};

use model::config::Config;
use model::types::SimTime;

/// Integer randomness for drawing a schedule (implemented by the simulator's fault stream).
pub trait Draw {
    /// Uniform in `0..n`, `n > 0`.
    fn below(&mut self, n: u64) -> u64;
    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// True with probability `num/den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
}

/// The client side of a run.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Workload {
    /// Producer clients (each a KafkaProducer shared by `producer_threads` processes).
    pub producers: u32,
    pub producer_threads: u32,
    /// Mean pause between one process's send operations, in ms.
    pub send_interval_ms: u64,
    /// Sends (micro-ops) per send operation, at most.
    pub sends_per_op_max: u32,
    /// Keyed (customer id hashed to a partition) or round-robin without a key.
    pub keyed: bool,
    pub customers: u32,
    /// Assign-mode consumers; partitions are split among them round-robin.
    pub consumers: u32,
    /// Pause between a consumer's polls, in ms.
    pub poll_interval_ms: u64,
    /// Instances of the consume-transform-produce application (`orders` ->
    /// `processed-orders` with transactions; needs `output_partitions`, the
    /// transaction and offsets topics). 0: none.
    #[serde(default)]
    pub apps: u32,
    /// Subscribe-mode consumers of one group (slots after the apps'), committing as
    /// `commit` says (with `commit=transactional` they run the consume-transform-produce
    /// application instead). 0: none.
    #[serde(default)]
    pub group_consumers: u32,
    /// The first this many group consumer slots are static members (KIP-345,
    /// `group.instance.id` = the slot); the others are dynamic.
    #[serde(default)]
    pub static_members: u32,
    /// A group consumer's processing time per record, in ms.
    #[serde(default)]
    pub processing_ms_per_record: u64,
}

impl Workload {
    /// The application slots that run the consume-transform-produce application: the
    /// apps', and with `commit=transactional` the group consumers' too (those come
    /// first; the other slots run group consumers).
    pub fn txn_slots(&self, config: &Config) -> u32 {
        match config.commit {
            model::config::CommitStrategy::Transactional => self.apps + self.group_consumers,
            _ => self.apps,
        }
    }
}

impl Default for Workload {
    fn default() -> Workload {
        Workload {
            producers: 2,
            producer_threads: 2,
            send_interval_ms: 40,
            sends_per_op_max: 3,
            keyed: true,
            customers: 1000,
            consumers: 2,
            poll_interval_ms: 100,
            apps: 0,
            group_consumers: 0,
            static_members: 0,
            processing_ms_per_record: 0,
        }
    }
}

/// The network a scenario runs on. Links are FIFO per direction (TCP) unless
/// `reorder` is set; loss and duplication are per message, in parts per million.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkSpec {
    pub latency_us_min: u64,
    pub latency_us_max: u64,
    pub drop_per_million: u64,
    pub duplicate_per_million: u64,
    pub reorder: bool,
}

impl Default for NetworkSpec {
    /// A data-center LAN: 0.2-2 ms one way, no loss.
    fn default() -> NetworkSpec {
        NetworkSpec {
            latency_us_min: 200,
            latency_us_max: 2_000,
            drop_per_million: 0,
            duplicate_per_million: 0,
            reorder: false,
        }
    }
}

/// An anomaly kind the scenario's configuration is allowed to show, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowed {
    pub kind: &'static str,
    pub reason: &'static str,
}

/// The phases of a run, in simulated time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Phases {
    /// Faults happen before this; at this time everything is healed and restarted.
    pub heal_at: SimTime,
    /// Producers invoke no new operation after this.
    pub stop_producers_at: SimTime,
    /// The run must have converged and drained by this time, else `no-convergence`.
    pub deadline: SimTime,
}

pub struct Scenario {
    pub name: &'static str,
    pub description: &'static str,
    pub config: Config,
    pub workload: Workload,
    pub network: NetworkSpec,
    pub phases: Phases,
    /// Draws the fault schedule (called once per run, with the fault stream).
    pub faults: fn(&Config, &Phases, &mut dyn Draw) -> Vec<FaultEvent>,
    /// Anomaly kinds allowed by this scenario for a given (final) configuration.
    pub allowed: fn(&Config) -> Vec<Allowed>,
}

impl Scenario {
    /// The fault schedule for this configuration and fault stream, sorted by time.
    pub fn schedule(&self, config: &Config, draw: &mut dyn Draw) -> Vec<FaultEvent> {
        let mut events = (self.faults)(config, &self.phases, draw);
        events.sort_by_key(|e| e.at);
        events
    }
}

/// The scenarios that exercise a bug switch (`bugs.md`), in the order a mutation score
/// tries them: the fault the historical bug needs is in their schedule.
pub fn exercising(bug: model::bug::Bug) -> &'static [&'static str] {
    use model::bug::Bug;
    match bug {
        Bug::HwTruncation | Bug::HwRegressOnFailover => &["broker-failure", "chaos"],
        Bug::IgnoreMinIsr => &["min-isr-unavailable", "chaos"],
        Bug::HwDivergence => &["power-outage"],
        // Stale metadata needs a network that reorders (the swarm draws one).
        Bug::StaleController => &["chaos"],
        Bug::ConsumerNoTruncationDetection => &["unclean-election"],
        Bug::UnfencedFetch | Bug::SkipTruncateSameLeader => &["network-partition"],
        Bug::LocalIsrShrink | Bug::ReadBeyondHw => &["network-partition", "chaos"],
        Bug::NoMaximalIsr => &["network-partition", "min-isr-unavailable", "chaos"],
        // Back-to-back failovers: only the swarm combines them often enough.
        Bug::EpochLookupNoLineage => &["chaos"],
        Bug::IsrExpandEarly => &["chaos", "broker-failure"],
        // A retry after a lost or late response, with batches of the same producer in
        // flight behind it: idempotent-retry's whole point; the lossy, duplicating
        // networks of network-partition and chaos retry often enough too.
        Bug::NoIdempotenceDedupe | Bug::DedupWindow1 => {
            &["idempotent-retry", "network-partition", "chaos"]
        }
        Bug::InflightReorder => &["idempotent-retry", "network-partition"],
        // Zombies, stalls and restarted instances of a consume-transform-produce app.
        // Only the producer epoch fences a zombie when the client predates KIP-447.
        Bug::NoProducerFencing => &["exactly-once-alpha"],
        Bug::NoTxnOffsetGenerationFence | Bug::NoRequireStable | Bug::ReadUncommittedLeak => {
            &["exactly-once"]
        }
        // A transactional produce delayed past its transaction's abort.
        Bug::HangingTxn | Bug::LateWriteJoinsNextTxn => &["hanging-transaction"],
        // Members stalled past their session (zombies that still commit), static
        // members replaced while stalled, cooperative rebalances with members that
        // missed one.
        Bug::NoCommitGenerationFence
        | Bug::StaticMemberDuplicate
        | Bug::CooperativeAssignBeforeRevoke
        | Bug::StaleOwnedPartitions => &["rebalance"],
        Bug::InjectedPanic => &[],
    }
}
