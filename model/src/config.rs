//! Cluster and client configuration, with Kafka's own config names. `--set KEY=VALUE`
//! goes through [`Config::set`]; [`Config::validate`] rejects impossible combinations
//! (e.g. `min.insync.replicas` above the replication factor) before a run starts.

use crate::bug::Bug;
use crate::client::group::Assignor;
use crate::types::{BrokerId, GroupId, PartitionId, PartitionSet, TxnId};
use std::collections::BTreeSet;
use std::fmt;

/// Producer `acks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    None,
    Leader,
    All,
}

impl Acks {
    pub fn name(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

/// One topic-partition and its assigned replicas (the first is the preferred leader).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionSpec {
    pub topic: String,
    pub partition: u32,
    pub replicas: Vec<BrokerId>,
}

impl PartitionSpec {
    /// The history key of the partition, `"<topic>-<partition>"`.
    pub fn key(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

/// How a consumer group's members commit their offsets: the three strategies of the
/// design guide's "consumer crash mid-batch".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitStrategy {
    /// `enable.auto.commit=true`: the consumed positions every `auto.commit.interval.ms`.
    Auto,
    /// `enable.auto.commit=false`: `commitSync()` after processing each batch.
    Manual,
    /// `enable.auto.commit=false`: `commitAsync()` after processing each batch (the
    /// poll loop does not wait for the answer, nor retry a failed commit).
    ManualAsync,
    /// Consume-transform-produce: the offsets committed inside the transaction that
    /// writes the batch's output (the slots run the transactional application).
    Transactional,
}

/// `auto.offset.reset` (Kafka's `none`, an error, is not modelled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Every knob a scenario or `--set` may turn. Field names mirror Kafka's keys
/// (`min.insync.replicas` -> `min_insync_replicas`); durations are in milliseconds as in
/// Kafka, converted to `SimTime` where used.
#[derive(Clone, Debug)]
pub struct Config {
    // --- cluster shape ---
    pub brokers: u32,
    pub topic: String,
    pub partitions: u32,
    pub replication_factor: u32,
    /// Partitions of the output topic `processed-orders` of consume-transform-produce
    /// (0: the topic does not exist).
    pub output_partitions: u32,
    /// `transaction.state.log.num.partitions` (Kafka: 50; 0 here means the cluster runs
    /// no transactions and the topic does not exist). Its replication factor and min ISR
    /// are the cluster's (`transaction.state.log.replication.factor=3`,
    /// `transaction.state.log.min.isr=2` by default in Kafka, as here).
    pub transaction_state_partitions: u32,
    /// `offsets.topic.num.partitions` (Kafka: 50; 0 here means no `__consumer_offsets`
    /// topic and no group coordinator). Replication factor and min ISR are the
    /// cluster's, as for `__transaction_state`.
    pub offsets_topic_partitions: u32,
    // --- broker ---
    pub min_insync_replicas: u32,
    pub unclean_leader_election_enable: bool,
    pub replica_lag_time_max_ms: u64,
    pub replica_fetch_wait_max_ms: u64,
    pub replica_fetch_backoff_ms: u64,
    /// `replica.socket.timeout.ms`: how long a follower waits for an answer to a fetch
    /// (or end-offset) request before sending it again. Kafka requires it to be at
    /// least `replica.fetch.wait.max.ms`.
    pub replica_socket_timeout_ms: u64,
    pub broker_heartbeat_interval_ms: u64,
    pub broker_session_timeout_ms: u64,
    /// `log.flush.interval.ms`: `None` is Kafka's default (never fsync explicitly; the OS
    /// writes dirty pages back "eventually", modelled by `os_flush_interval_ms`).
    pub log_flush_interval_ms: Option<u64>,
    /// `log.flush.interval.messages`: fsync once this many records are unflushed
    /// (`None`, Kafka's default, leaves it to time).
    pub log_flush_interval_messages: Option<u64>,
    /// Not a Kafka key: the period of the OS's dirty-page write-back (Linux's
    /// `vm.dirty_writeback_centisecs`/`dirty_expire_centisecs`, ~5-30 s).
    pub os_flush_interval_ms: u64,
    /// `replica.fetch.max.bytes`: how much one follower fetch returns. Records have no
    /// size here; each counts as [`RECORD_BYTES`].
    pub replica_fetch_max_bytes: u64,
    /// `replica.high.watermark.checkpoint.interval.ms`.
    pub replica_high_watermark_checkpoint_interval_ms: u64,
    /// `group.initial.rebalance.delay.ms`: the first rebalance of an empty group waits
    /// this long (and again, up to the rebalance time-out, while new members keep
    /// joining) so that members starting together land in one generation.
    pub group_initial_rebalance_delay_ms: u64,
    // --- producer ---
    pub acks: Acks,
    pub enable_idempotence: bool,
    /// Whether `enable.idempotence` was set explicitly. As in Kafka 3.x, idempotence is
    /// on by default but silently dropped when `acks` is set to 0 or 1, and an explicit
    /// `enable.idempotence=true` with such `acks` is a configuration error.
    pub idempotence_explicit: bool,
    pub linger_ms: u64,
    pub batch_size_records: u32,
    pub max_in_flight_requests_per_connection: u32,
    pub retry_backoff_ms: u64,
    pub request_timeout_ms: u64,
    pub delivery_timeout_ms: u64,
    pub metadata_max_age_ms: u64,
    // --- consumer ---
    pub fetch_max_wait_ms: u64,
    pub max_poll_records: u32,
    /// `isolation.level=read_committed`: read up to the last stable offset and skip
    /// aborted transactions (KIP-98); `read_uncommitted` (Kafka's default) reads up to
    /// the high watermark.
    pub read_committed: bool,
    /// `session.timeout.ms`: a group member not heard from (Heartbeat) this long is
    /// removed from the group by the coordinator.
    pub session_timeout_ms: u64,
    /// `heartbeat.interval.ms`: how often a group member sends Heartbeat.
    pub heartbeat_interval_ms: u64,
    /// `max.poll.interval.ms`: also the member's rebalance time-out (how long the
    /// coordinator waits for it to rejoin during a rebalance).
    pub max_poll_interval_ms: u64,
    /// `partition.assignment.strategy` of the subscribe-mode consumers: one assignor
    /// (Kafka's default list is `[range, cooperative-sticky]`, of which the group uses
    /// `range` until every member lists only `cooperative-sticky`).
    pub partition_assignment_strategy: Assignor,
    /// How the subscribe-mode consumers commit (`--set commit=...`, or Kafka's
    /// `enable.auto.commit=true|false` for the first two).
    pub commit: CommitStrategy,
    pub auto_commit_interval_ms: u64,
    /// `auto.offset.reset`: where a member starts on a partition without a committed
    /// offset (or whose position fell off the log).
    pub auto_offset_reset: OffsetReset,
    // --- transactions ---
    /// `transaction.timeout.ms`: the coordinator aborts a transaction open longer.
    pub transaction_timeout_ms: u64,
    /// Kafka Streams' `processing.guarantee` for the consume-transform-produce
    /// application: `exactly_once_v2` (KIP-447, the default) or the older
    /// `exactly_once` (one `transactional.id` per task, fenced by the producer epoch
    /// alone: offsets committed without group metadata, read without `RequireStable`).
    pub exactly_once_v2: bool,
    // --- reintroduced bugs ---
    pub bugs: BTreeSet<Bug>,
}

impl Default for Config {
    /// The defaults of `scenarios.md`: 3 brokers, `orders` with 6 partitions and RF 3,
    /// `acks=all`, `min.insync.replicas=2`, idempotence on, Kafka's default timeouts.
    fn default() -> Config {
        Config {
            brokers: 3,
            topic: "orders".to_string(),
            partitions: 6,
            output_partitions: 0,
            transaction_state_partitions: 0,
            offsets_topic_partitions: 0,
            replication_factor: 3,
            min_insync_replicas: 2,
            unclean_leader_election_enable: false,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_backoff_ms: 1_000,
            replica_socket_timeout_ms: 30_000,
            broker_heartbeat_interval_ms: 2_000,
            broker_session_timeout_ms: 9_000,
            log_flush_interval_ms: None,
            log_flush_interval_messages: None,
            os_flush_interval_ms: 5_000,
            replica_high_watermark_checkpoint_interval_ms: 5_000,
            replica_fetch_max_bytes: 1_048_576,
            group_initial_rebalance_delay_ms: 3_000,
            acks: Acks::All,
            enable_idempotence: true,
            idempotence_explicit: false,
            linger_ms: 5,
            batch_size_records: 16,
            max_in_flight_requests_per_connection: 5,
            retry_backoff_ms: 100,
            request_timeout_ms: 30_000,
            delivery_timeout_ms: 120_000,
            metadata_max_age_ms: 300_000,
            fetch_max_wait_ms: 500,
            max_poll_records: 500,
            read_committed: false,
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 3_000,
            max_poll_interval_ms: 300_000,
            partition_assignment_strategy: Assignor::Range,
            commit: CommitStrategy::Auto,
            auto_commit_interval_ms: 5_000,
            auto_offset_reset: OffsetReset::Latest,
            transaction_timeout_ms: 60_000,
            exactly_once_v2: true,
            bugs: BTreeSet::new(),
        }
    }
}

/// The size every record is taken to have, to turn byte limits into record counts
/// (the workload's records are small integers; Kafka's limits are in bytes).
pub const RECORD_BYTES: u64 = 1_024;

/// The output topic of consume-transform-produce (the payments example of the guide).
pub const OUTPUT_TOPIC: &str = "processed-orders";

/// Kafka's internal topic holding the transaction coordinators' state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Kafka's internal topic holding the group coordinators' state (committed offsets).
pub const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The keys `--set` accepts, for the error message on an unknown one.
pub const SETTABLE_KEYS: &[&str] = &[
    "brokers",
    "partitions",
    "replication.factor",
    "min.insync.replicas",
    "unclean.leader.election.enable",
    "replica.lag.time.max.ms",
    "replica.fetch.wait.max.ms",
    "replica.socket.timeout.ms",
    "broker.heartbeat.interval.ms",
    "broker.session.timeout.ms",
    "log.flush.interval.ms",
    "log.flush.interval.messages",
    "acks",
    "enable.idempotence",
    "linger.ms",
    "max.in.flight.requests.per.connection",
    "retry.backoff.ms",
    "request.timeout.ms",
    "delivery.timeout.ms",
    "fetch.max.wait.ms",
    "max.poll.records",
    "replica.fetch.max.bytes",
    "isolation.level",
    "transaction.timeout.ms",
    "processing.guarantee",
    "group.initial.rebalance.delay.ms",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "partition.assignment.strategy",
    "enable.auto.commit",
    "commit",
    "auto.commit.interval.ms",
    "auto.offset.reset",
];

fn parse_u64(key: &str, value: &str) -> Result<u64, ConfigError> {
    value.parse::<u64>().map_err(|_| {
        ConfigError(format!(
            "--set {key}={value}: expected a non-negative integer"
        ))
    })
}

fn parse_u32(key: &str, value: &str) -> Result<u32, ConfigError> {
    value.parse::<u32>().map_err(|_| {
        ConfigError(format!(
            "--set {key}={value}: expected a non-negative integer"
        ))
    })
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError(format!(
            "--set {key}={value}: expected true or false"
        ))),
    }
}

impl Config {
    /// Apply one `--set KEY=VALUE` override. Unknown keys and unparsable values are errors.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key {
            "brokers" => self.brokers = parse_u32(key, value)?,
            "partitions" => self.partitions = parse_u32(key, value)?,
            "replication.factor" => self.replication_factor = parse_u32(key, value)?,
            "min.insync.replicas" => self.min_insync_replicas = parse_u32(key, value)?,
            "unclean.leader.election.enable" => {
                self.unclean_leader_election_enable = parse_bool(key, value)?
            }
            "replica.lag.time.max.ms" => self.replica_lag_time_max_ms = parse_u64(key, value)?,
            "replica.fetch.wait.max.ms" => self.replica_fetch_wait_max_ms = parse_u64(key, value)?,
            "replica.socket.timeout.ms" => self.replica_socket_timeout_ms = parse_u64(key, value)?,
            "broker.heartbeat.interval.ms" => {
                self.broker_heartbeat_interval_ms = parse_u64(key, value)?
            }
            "broker.session.timeout.ms" => self.broker_session_timeout_ms = parse_u64(key, value)?,
            "log.flush.interval.ms" => self.log_flush_interval_ms = Some(parse_u64(key, value)?),
            "log.flush.interval.messages" => {
                self.log_flush_interval_messages = Some(parse_u64(key, value)?.max(1))
            }
            "acks" => {
                self.acks = match value {
                    "0" => Acks::None,
                    "1" => Acks::Leader,
                    "all" | "-1" => Acks::All,
                    _ => {
                        return Err(ConfigError(format!(
                            "--set acks={value}: expected 0, 1, all or -1"
                        )))
                    }
                };
                if self.acks != Acks::All && !self.idempotence_explicit {
                    self.enable_idempotence = false;
                }
            }
            "enable.idempotence" => {
                self.enable_idempotence = parse_bool(key, value)?;
                self.idempotence_explicit = true;
            }
            "linger.ms" => self.linger_ms = parse_u64(key, value)?,
            "max.in.flight.requests.per.connection" => {
                self.max_in_flight_requests_per_connection = parse_u32(key, value)?
            }
            "retry.backoff.ms" => self.retry_backoff_ms = parse_u64(key, value)?,
            "request.timeout.ms" => self.request_timeout_ms = parse_u64(key, value)?,
            "delivery.timeout.ms" => self.delivery_timeout_ms = parse_u64(key, value)?,
            "fetch.max.wait.ms" => self.fetch_max_wait_ms = parse_u64(key, value)?,
            "max.poll.records" => self.max_poll_records = parse_u32(key, value)?,
            "replica.fetch.max.bytes" => self.replica_fetch_max_bytes = parse_u64(key, value)?,
            "transaction.timeout.ms" => self.transaction_timeout_ms = parse_u64(key, value)?,
            "group.initial.rebalance.delay.ms" => {
                self.group_initial_rebalance_delay_ms = parse_u64(key, value)?
            }
            "session.timeout.ms" => self.session_timeout_ms = parse_u64(key, value)?,
            "heartbeat.interval.ms" => self.heartbeat_interval_ms = parse_u64(key, value)?,
            "max.poll.interval.ms" => self.max_poll_interval_ms = parse_u64(key, value)?,
            "partition.assignment.strategy" => {
                self.partition_assignment_strategy = Assignor::parse(value).ok_or_else(|| {
                    ConfigError(format!(
                        "--set partition.assignment.strategy={value}: expected range, roundrobin or cooperative-sticky"
                    ))
                })?
            }
            "enable.auto.commit" => {
                self.commit = if parse_bool(key, value)? {
                    CommitStrategy::Auto
                } else {
                    CommitStrategy::Manual
                }
            }
            "commit" => {
                self.commit = match value {
                    "auto" => CommitStrategy::Auto,
                    "manual" => CommitStrategy::Manual,
                    "async" => CommitStrategy::ManualAsync,
                    "transactional" => CommitStrategy::Transactional,
                    _ => {
                        return Err(ConfigError(format!(
                            "--set commit={value}: expected auto, manual, async or transactional"
                        )))
                    }
                }
            }
            "auto.commit.interval.ms" => self.auto_commit_interval_ms = parse_u64(key, value)?,
            "auto.offset.reset" => {
                self.auto_offset_reset = match value {
                    "earliest" => OffsetReset::Earliest,
                    "latest" => OffsetReset::Latest,
                    _ => {
                        return Err(ConfigError(format!(
                            "--set auto.offset.reset={value}: expected earliest or latest"
                        )))
                    }
                }
            }
            "processing.guarantee" => {
                self.exactly_once_v2 = match value {
                    "exactly_once_v2" => true,
                    "exactly_once" => false,
                    _ => {
                        return Err(ConfigError(format!(
                            "--set processing.guarantee={value}: expected exactly_once_v2 or exactly_once"
                        )))
                    }
                };
            }
            "isolation.level" => {
                self.read_committed = match value {
                    "read_committed" => true,
                    "read_uncommitted" => false,
                    _ => {
                        return Err(ConfigError(format!(
                    "--set isolation.level={value}: expected read_committed or read_uncommitted"
                )))
                    }
                }
            }
            _ => {
                return Err(ConfigError(format!(
                    "--set {key}: unknown config key (known: {})",
                    SETTABLE_KEYS.join(", ")
                )))
            }
        }
        Ok(())
    }

    /// Reject configurations Kafka would refuse or that make the run meaningless.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.brokers == 0 || self.brokers > 64 {
            return err(format!("brokers={} must be between 1 and 64", self.brokers));
        }
        if (self.transaction_state_partitions > 0 || self.offsets_topic_partitions > 0)
            && self.total_partitions() > PartitionSet::MAX
        {
            return err(format!(
                "a cluster with transactions has at most {} partitions in all (it has {})",
                PartitionSet::MAX,
                self.total_partitions()
            ));
        }
        if self.partitions == 0 || self.partitions > 4096 {
            return err(format!(
                "partitions={} must be between 1 and 4096",
                self.partitions
            ));
        }
        if self.replication_factor == 0 || self.replication_factor > self.brokers {
            return err(format!(
                "replication.factor={} must be between 1 and the broker count ({})",
                self.replication_factor, self.brokers
            ));
        }
        if self.min_insync_replicas == 0 || self.min_insync_replicas > self.replication_factor {
            return err(format!(
                "min.insync.replicas={} is impossible with replication.factor={}",
                self.min_insync_replicas, self.replication_factor
            ));
        }
        if self.broker_heartbeat_interval_ms == 0
            || self.broker_session_timeout_ms <= self.broker_heartbeat_interval_ms
        {
            return err(format!(
                "broker.session.timeout.ms={} must exceed broker.heartbeat.interval.ms={} (> 0)",
                self.broker_session_timeout_ms, self.broker_heartbeat_interval_ms
            ));
        }
        if self.replica_lag_time_max_ms == 0 {
            return err("replica.lag.time.max.ms must be > 0".to_string());
        }
        if self.replica_socket_timeout_ms < self.replica_fetch_wait_max_ms.max(1) {
            return err(format!(
                "replica.socket.timeout.ms={} must be at least replica.fetch.wait.max.ms={} (and > 0)",
                self.replica_socket_timeout_ms, self.replica_fetch_wait_max_ms
            ));
        }
        if self.max_in_flight_requests_per_connection == 0 {
            return err("max.in.flight.requests.per.connection must be >= 1".to_string());
        }
        if self.enable_idempotence && self.max_in_flight_requests_per_connection > 5 {
            return err(format!(
                "enable.idempotence=true requires max.in.flight.requests.per.connection <= 5 (got {})",
                self.max_in_flight_requests_per_connection
            ));
        }
        if self.enable_idempotence && self.acks != Acks::All {
            return err(format!(
                "enable.idempotence=true requires acks=all (got acks={}); set enable.idempotence=false",
                self.acks.name()
            ));
        }
        if self.request_timeout_ms == 0 || self.delivery_timeout_ms < self.request_timeout_ms {
            return err(format!(
                "delivery.timeout.ms={} must be >= request.timeout.ms={} (> 0)",
                self.delivery_timeout_ms, self.request_timeout_ms
            ));
        }
        if self.replica_fetch_max_bytes < RECORD_BYTES {
            return err(format!(
                "replica.fetch.max.bytes={} is smaller than one record ({RECORD_BYTES} bytes)",
                self.replica_fetch_max_bytes
            ));
        }
        if self.heartbeat_interval_ms == 0 || self.heartbeat_interval_ms >= self.session_timeout_ms
        {
            return err(format!(
                "heartbeat.interval.ms={} must be below session.timeout.ms={} (and > 0)",
                self.heartbeat_interval_ms, self.session_timeout_ms
            ));
        }
        if self.commit == CommitStrategy::Auto && self.auto_commit_interval_ms == 0 {
            // Kafka's 0 means "at every poll()"; here auto-commit runs on its own timer,
            // which would fire forever at one instant.
            return err(
                "auto.commit.interval.ms must be > 0 with enable.auto.commit=true".to_string(),
            );
        }
        if self.max_poll_interval_ms == 0 || self.max_poll_interval_ms > u64::from(u32::MAX) {
            return err(format!(
                "max.poll.interval.ms={} must be between 1 and {}",
                self.max_poll_interval_ms,
                u32::MAX
            ));
        }
        if self.session_timeout_ms > u64::from(u32::MAX) {
            return err(format!(
                "session.timeout.ms={} must be at most {}",
                self.session_timeout_ms,
                u32::MAX
            ));
        }
        if self.max_poll_records == 0 || self.batch_size_records == 0 {
            return err("max.poll.records must be >= 1".to_string());
        }
        Ok(())
    }

    /// The partition table: the `partitions` partitions of the input topic, then those
    /// of `processed-orders`, `__transaction_state` and `__consumer_offsets` when they
    /// exist; replicas
    /// assigned round-robin as Kafka's default assignment does (the n-th partition of
    /// the table starts at broker n mod brokers).
    pub fn partition_table(&self) -> Vec<PartitionSpec> {
        let topics = [
            (self.topic.as_str(), self.partitions),
            (OUTPUT_TOPIC, self.output_partitions),
            (TRANSACTION_STATE_TOPIC, self.transaction_state_partitions),
            (CONSUMER_OFFSETS_TOPIC, self.offsets_topic_partitions),
        ];
        let mut table = Vec::new();
        for (topic, count) in topics {
            for partition in 0..count {
                let n = table.len() as u32;
                table.push(PartitionSpec {
                    topic: topic.to_string(),
                    partition,
                    replicas: (0..self.replication_factor)
                        .map(|r| BrokerId((n + r) % self.brokers))
                        .collect(),
                });
            }
        }
        table
    }

    /// Every partition of the table (input, output and internal topics).
    pub fn total_partitions(&self) -> u32 {
        self.internal_start() + self.transaction_state_partitions + self.offsets_topic_partitions
    }

    /// The first partition of the internal topics (after input and output).
    fn internal_start(&self) -> u32 {
        self.partitions + self.output_partitions
    }

    pub fn partition_ids(&self) -> impl Iterator<Item = PartitionId> {
        (0..self.total_partitions()).map(PartitionId)
    }

    /// The `__transaction_state` partition whose leader coordinates `id` (Kafka:
    /// `abs(transactionalId.hashCode) % transaction.state.log.num.partitions`).
    pub fn transaction_state_partition(&self, id: TxnId) -> PartitionId {
        debug_assert!(self.transaction_state_partitions > 0);
        let n = crate::client::partition_for_key(
            id.0.to_string().as_bytes(),
            self.transaction_state_partitions,
        );
        PartitionId(self.internal_start() + n)
    }

    /// Is `p` a partition of `__transaction_state`?
    pub fn is_transaction_state(&self, p: PartitionId) -> bool {
        p.0 >= self.internal_start()
            && p.0 < self.internal_start() + self.transaction_state_partitions
    }

    /// The `__consumer_offsets` partition whose leader coordinates `group` (Kafka:
    /// `abs(groupId.hashCode) % offsets.topic.num.partitions`).
    pub fn consumer_offsets_partition(&self, group: GroupId) -> PartitionId {
        debug_assert!(self.offsets_topic_partitions > 0);
        let n = crate::client::partition_for_key(
            group.name().as_bytes(),
            self.offsets_topic_partitions,
        );
        PartitionId(self.internal_start() + self.transaction_state_partitions + n)
    }

    /// Is `p` a partition of `__consumer_offsets`?
    pub fn is_consumer_offsets(&self, p: PartitionId) -> bool {
        p.0 >= self.internal_start() + self.transaction_state_partitions
            && p.0 < self.total_partitions()
    }

    /// Is `p` a partition of an internal topic (not read by the workload's consumers)?
    pub fn is_internal(&self, p: PartitionId) -> bool {
        p.0 >= self.internal_start()
    }

    /// Records one follower fetch may return (`replica.fetch.max.bytes`).
    pub fn replica_fetch_max_records(&self) -> u32 {
        (self.replica_fetch_max_bytes / RECORD_BYTES).clamp(1, u64::from(u32::MAX)) as u32
    }

    pub fn has_bug(&self, bug: Bug) -> bool {
        self.bugs.contains(&bug)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_isr_above_rf_is_rejected() {
        let mut c = Config::default();
        c.set("min.insync.replicas", "4").unwrap();
        let e = c.validate().unwrap_err();
        assert!(e.0.contains("min.insync.replicas=4"), "{e}");
    }

    #[test]
    fn unknown_key_and_bad_value_are_errors() {
        let mut c = Config::default();
        assert!(c
            .set("no.such.key", "1")
            .unwrap_err()
            .0
            .contains("unknown config key"));
        assert!(c.set("acks", "2").is_err());
        assert!(c.set("linger.ms", "-3").is_err());
        c.set("acks", "1").unwrap();
        assert_eq!(c.acks, Acks::Leader);
    }

    #[test]
    fn replica_socket_timeout_below_the_fetch_wait_is_rejected() {
        let mut c = Config::default();
        c.set("replica.socket.timeout.ms", "3000").unwrap();
        c.validate().unwrap();
        c.set("replica.socket.timeout.ms", "100").unwrap();
        let e = c.validate().unwrap_err();
        assert!(e.0.contains("replica.socket.timeout.ms=100"), "{e}");
    }

    #[test]
    fn defaults_are_valid_and_replicas_spread() {
        let c = Config::default();
        c.validate().unwrap();
        let t = c.partition_table();
        assert_eq!(t.len(), 6);
        assert_eq!(t[1].replicas, vec![BrokerId(1), BrokerId(2), BrokerId(0)]);
        assert_eq!(t[1].key(), "orders-1");
    }

    #[test]
    fn consumer_group_keys_parse_and_refuse_nonsense() {
        let mut c = Config::default();
        c.set("partition.assignment.strategy", "roundrobin")
            .unwrap();
        assert_eq!(c.partition_assignment_strategy, Assignor::RoundRobin);
        c.set("enable.auto.commit", "false").unwrap();
        assert_eq!(c.commit, CommitStrategy::Manual);
        c.set("commit", "transactional").unwrap();
        assert_eq!(c.commit, CommitStrategy::Transactional);
        c.set("auto.offset.reset", "earliest").unwrap();
        assert_eq!(c.auto_offset_reset, OffsetReset::Earliest);
        for (key, value) in [
            ("partition.assignment.strategy", "sticky"),
            ("commit", "sometimes"),
            ("auto.offset.reset", "none"),
            ("enable.auto.commit", "yes"),
        ] {
            let e = c.set(key, value).unwrap_err();
            assert!(e.0.contains(key), "{e}");
        }
    }

    #[test]
    fn a_zero_auto_commit_interval_is_refused_only_with_auto_commit() {
        let mut c = Config::default();
        c.set("auto.commit.interval.ms", "0").unwrap();
        let e = c.validate().unwrap_err();
        assert!(e.0.contains("auto.commit.interval.ms"), "{e}");
        c.set("enable.auto.commit", "false").unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn every_settable_key_is_accepted() {
        // SETTABLE_KEYS (shown in the error message) and `set` must agree.
        for key in SETTABLE_KEYS {
            let mut c = Config::default();
            let value = match *key {
                "acks" => "all",
                "isolation.level" => "read_committed",
                "processing.guarantee" => "exactly_once",
                "unclean.leader.election.enable" | "enable.idempotence" | "enable.auto.commit" => {
                    "true"
                }
                "partition.assignment.strategy" => "cooperative-sticky",
                "auto.offset.reset" => "earliest",
                "commit" => "manual",
                _ => "40000",
            };
            assert!(c.set(key, value).is_ok(), "--set {key}={value} refused");
        }
    }
}
