//! The wire protocol between nodes, as values. Names follow Kafka's APIs (Fetch,
//! OffsetsForLeaderEpoch, AlterPartition, BrokerHeartbeat, Produce, Metadata) and its
//! error codes; fields are the ones each mechanism needs, not Kafka's full schemas.

use crate::types::{
    BrokerEpoch, BrokerId, Epoch, Offset, PartitionEpoch, PartitionId, ProducerId, Sequence, Value,
};

/// Kafka error codes, as data in responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorCode {
    NotLeaderOrFollower,
    FencedLeaderEpoch,
    UnknownLeaderEpoch,
    NotEnoughReplicas,
    NotEnoughReplicasAfterAppend,
    OffsetOutOfRange,
    OutOfOrderSequenceNumber,
    RequestTimedOut,
    InvalidUpdateVersion,
    IneligibleReplica,
    StaleBrokerEpoch,
    NotController,
    LeaderNotAvailable,
    UnknownProducerId,
    /// Client-side: the connection broke with the request in flight.
    NetworkException,
}

impl ErrorCode {
    /// Kafka's name, as written into the history's `error` field.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::NotLeaderOrFollower => "NOT_LEADER_OR_FOLLOWER",
            ErrorCode::FencedLeaderEpoch => "FENCED_LEADER_EPOCH",
            ErrorCode::UnknownLeaderEpoch => "UNKNOWN_LEADER_EPOCH",
            ErrorCode::NotEnoughReplicas => "NOT_ENOUGH_REPLICAS",
            ErrorCode::NotEnoughReplicasAfterAppend => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
            ErrorCode::OffsetOutOfRange => "OFFSET_OUT_OF_RANGE",
            ErrorCode::OutOfOrderSequenceNumber => "OUT_OF_ORDER_SEQUENCE_NUMBER",
            ErrorCode::RequestTimedOut => "REQUEST_TIMED_OUT",
            ErrorCode::InvalidUpdateVersion => "INVALID_UPDATE_VERSION",
            ErrorCode::IneligibleReplica => "INELIGIBLE_REPLICA",
            ErrorCode::StaleBrokerEpoch => "STALE_BROKER_EPOCH",
            ErrorCode::NotController => "NOT_CONTROLLER",
            ErrorCode::LeaderNotAvailable => "LEADER_NOT_AVAILABLE",
            ErrorCode::NetworkException => "NETWORK_EXCEPTION",
            ErrorCode::UnknownProducerId => "UNKNOWN_PRODUCER_ID",
        }
    }
}

/// The idempotent-producer stamp of a batch (KIP-98).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerStamp {
    pub producer_id: ProducerId,
    pub base_sequence: Sequence,
}

/// One record as stored in a replica's log and shipped in fetch responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub value: Value,
    /// The leader epoch of the leader that appended it (KIP-101).
    pub epoch: Epoch,
    /// Idempotence stamp of the record's batch; `sequence` is the record's own.
    pub producer: Option<(ProducerStamp, Sequence)>,
}

/// The controller's view of one partition, as published in the metadata log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub partition: PartitionId,
    pub replicas: Vec<BrokerId>,
    pub leader: Option<BrokerId>,
    pub leader_epoch: Epoch,
    pub isr: Vec<BrokerId>,
    pub partition_epoch: PartitionEpoch,
}

impl PartitionState {
    /// Is `self` a newer decision than `other` for the same partition?
    pub fn newer_than(&self, other: &PartitionState) -> bool {
        (self.leader_epoch, self.partition_epoch) > (other.leader_epoch, other.partition_epoch)
    }
}

/// A batch of records for one partition in a Produce request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProduceBatch {
    pub partition: PartitionId,
    pub producer: Option<ProducerStamp>,
    pub values: Vec<Value>,
}

/// Per-partition outcome of a Produce request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProduceResult {
    pub partition: PartitionId,
    /// Base offset of the batch, or the error.
    pub result: Result<Offset, ErrorCode>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    // ---- broker <-> controller (KIP-631) ----
    BrokerRegistration {
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
    },
    BrokerHeartbeat {
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
        want_shutdown: bool,
    },
    /// Also carries the metadata image (every partition's state): the broker applies
    /// whatever is newer than what it has, so a lost push is repaired by the next beat.
    BrokerHeartbeatResponse {
        broker_epoch: BrokerEpoch,
        controller_epoch: u32,
        fenced: bool,
        shutdown_ready: bool,
        partitions: Vec<PartitionState>,
    },
    /// Pushed by the controller on every change.
    PartitionChange {
        controller_epoch: u32,
        states: Vec<PartitionState>,
    },
    AlterPartition {
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
        partition: PartitionId,
        leader_epoch: Epoch,
        partition_epoch: PartitionEpoch,
        new_isr: Vec<BrokerId>,
    },
    AlterPartitionResponse {
        partition: PartitionId,
        /// The ISR the request proposed, so the leader can tell which of its
        /// proposals this answers (an earlier one may be answered late).
        proposed: Vec<BrokerId>,
        result: Result<PartitionState, ErrorCode>,
    },
    // ---- replication ----
    /// `replica` is `None` for a consumer fetch. `current_leader_epoch` is KIP-320's
    /// fencing field; `last_fetched_epoch` lets the leader check the fetch offset.
    Fetch {
        correlation: u64,
        replica: Option<BrokerId>,
        partition: PartitionId,
        fetch_offset: Offset,
        current_leader_epoch: Option<Epoch>,
        max_records: u32,
    },
    FetchResponse {
        correlation: u64,
        partition: PartitionId,
        result: Result<FetchData, ErrorCode>,
    },
    /// KIP-101/KIP-279: "what is your end offset for `leader_epoch`?"
    OffsetsForLeaderEpoch {
        correlation: u64,
        partition: PartitionId,
        current_leader_epoch: Option<Epoch>,
        leader_epoch: Epoch,
    },
    OffsetsForLeaderEpochResponse {
        correlation: u64,
        partition: PartitionId,
        /// (largest epoch <= the requested one the leader knows, its end offset);
        /// `Ok(None)` is Kafka's UNDEFINED_EPOCH_OFFSET.
        result: Result<Option<(Epoch, Offset)>, ErrorCode>,
    },
    /// Not a Kafka API: the network's word that the connection to `broker` broke (its
    /// process died, or refused a connection). Requests in flight to it are lost; the
    /// receiver fails them at once instead of waiting for its request timeout, as a
    /// Kafka client does on a disconnect (NetworkException).
    ConnectionClosed {
        broker: BrokerId,
    },
    // ---- clients ----
    MetadataRequest {
        correlation: u64,
    },
    MetadataResponse {
        correlation: u64,
        partitions: Vec<(PartitionId, Option<BrokerId>, Epoch)>,
    },
    Produce {
        correlation: u64,
        acks_all: bool,
        acks_none: bool,
        batches: Vec<ProduceBatch>,
    },
    ProduceResponse {
        correlation: u64,
        results: Vec<ProduceResult>,
    },
}

/// The records and high watermark of a successful fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchData {
    pub leader_epoch: Epoch,
    /// Offset of `records[0]`.
    pub base_offset: Offset,
    pub records: Vec<Record>,
    /// The leader's high watermark; `None` while a new leader has not yet committed an
    /// offset of its own epoch and so does not know the true HW (clients then wait).
    pub high_watermark: Option<Offset>,
    pub log_end_offset: Offset,
}

impl Message {
    /// Is this a request that expects a response (so a dead peer means a disconnect)?
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            Message::Fetch { .. }
                | Message::OffsetsForLeaderEpoch { .. }
                | Message::MetadataRequest { .. }
                | Message::Produce { .. }
        )
    }

    /// Short API name for traces.
    pub fn api(&self) -> &'static str {
        match self {
            Message::BrokerRegistration { .. } => "BrokerRegistration",
            Message::BrokerHeartbeat { .. } => "BrokerHeartbeat",
            Message::BrokerHeartbeatResponse { .. } => "BrokerHeartbeatResponse",
            Message::PartitionChange { .. } => "PartitionChange",
            Message::AlterPartition { .. } => "AlterPartition",
            Message::AlterPartitionResponse { .. } => "AlterPartitionResponse",
            Message::Fetch { .. } => "Fetch",
            Message::FetchResponse { .. } => "FetchResponse",
            Message::OffsetsForLeaderEpoch { .. } => "OffsetsForLeaderEpoch",
            Message::OffsetsForLeaderEpochResponse { .. } => "OffsetsForLeaderEpochResponse",
            Message::ConnectionClosed { .. } => "ConnectionClosed",
            Message::MetadataRequest { .. } => "Metadata",
            Message::MetadataResponse { .. } => "MetadataResponse",
            Message::Produce { .. } => "Produce",
            Message::ProduceResponse { .. } => "ProduceResponse",
        }
    }
}
