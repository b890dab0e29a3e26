//! The wire protocol between nodes, as values. Names follow Kafka's APIs (Fetch,
//! OffsetsForLeaderEpoch, AlterPartition, BrokerHeartbeat, Produce, Metadata) and its
//! error codes; fields are the ones each mechanism needs, not Kafka's full schemas.

use crate::types::{
    BrokerEpoch, BrokerId, Epoch, Generation, GroupId, MemberId, Offset, PartitionEpoch,
    PartitionId, PartitionSet, ProducerEpoch, ProducerId, Sequence, SimTime, TxnId, Value,
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
    /// A batch or marker of an older producer epoch than the partition has seen: a
    /// zombie instance of a transactional producer (KIP-98 fencing).
    InvalidProducerEpoch,
    /// Transaction coordinator errors (KIP-98).
    NotCoordinator,
    CoordinatorNotAvailable,
    ConcurrentTransactions,
    ProducerFenced,
    InvalidTxnState,
    /// Group coordinator errors: the classic group protocol's generation and member
    /// fencing (also of offset commits, KIP-447 for transactional ones), KIP-345's
    /// static members, KIP-447's `RequireStable`.
    IllegalGeneration,
    UnknownMemberId,
    FencedInstanceId,
    UnstableOffsetCommit,
    /// The group is rebalancing: rejoin (a Heartbeat, SyncGroup or OffsetCommit answer).
    RebalanceInProgress,
    /// A joining member supports none of the group's protocols (assignors).
    InconsistentGroupProtocol,
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
            ErrorCode::InvalidProducerEpoch => "INVALID_PRODUCER_EPOCH",
            ErrorCode::NotCoordinator => "NOT_COORDINATOR",
            ErrorCode::CoordinatorNotAvailable => "COORDINATOR_NOT_AVAILABLE",
            ErrorCode::ConcurrentTransactions => "CONCURRENT_TRANSACTIONS",
            ErrorCode::ProducerFenced => "PRODUCER_FENCED",
            ErrorCode::InvalidTxnState => "INVALID_TXN_STATE",
            ErrorCode::IllegalGeneration => "ILLEGAL_GENERATION",
            ErrorCode::UnknownMemberId => "UNKNOWN_MEMBER_ID",
            ErrorCode::FencedInstanceId => "FENCED_INSTANCE_ID",
            ErrorCode::UnstableOffsetCommit => "UNSTABLE_OFFSET_COMMIT",
            ErrorCode::RebalanceInProgress => "REBALANCE_IN_PROGRESS",
            ErrorCode::InconsistentGroupProtocol => "INCONSISTENT_GROUP_PROTOCOL",
        }
    }
}

/// The idempotent-producer stamp of a batch (KIP-98).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerStamp {
    pub producer_id: ProducerId,
    /// Bumped by InitProducerId for a transactional id: an older epoch is a zombie.
    pub producer_epoch: ProducerEpoch,
    pub base_sequence: Sequence,
    /// The batch belongs to a transaction: invisible to `read_committed` consumers until
    /// its commit marker, and skipped by them after an abort marker.
    pub transactional: bool,
}

/// A control record (KIP-98 transaction marker), written by the partition leader when
/// the transaction coordinator ends a transaction: it carries no user value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Commit,
    Abort,
}

/// An aborted transaction's range in one partition's log: the producer's records in
/// `first_offset..=last_offset` (`last_offset` is the abort marker) are to be skipped by
/// `read_committed` consumers (Kafka's `.txnindex`, sent as `AbortedTransactions` in
/// Fetch responses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: ProducerId,
    pub first_offset: Offset,
    pub last_offset: Offset,
}

/// One record as stored in a replica's log and shipped in fetch responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub value: Value,
    /// The leader epoch of the leader that appended it (KIP-101).
    pub epoch: Epoch,
    /// Idempotence stamp of the record's batch; `sequence` is the record's own.
    pub producer: Option<(ProducerStamp, Sequence)>,
    /// A transaction marker (then `value` is 0 and `producer` names the transaction's
    /// producer id and epoch).
    pub control: Option<Control>,
    /// An entry of a coordinator's log: the transaction log (`__transaction_state`) or
    /// the group metadata and offsets (`__consumer_offsets`). The name predates the
    /// group coordinator; it is kept so that the `txn_state: None` of every data record
    /// stays as it is.
    pub txn_state: Option<CoordinatorEntry>,
}

/// One record of an internal topic, as written by the coordinator that owns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoordinatorEntry {
    /// `__transaction_state`: the transaction coordinator's state of one transactional id.
    Txn(TxnLogEntry),
    /// `__consumer_offsets`: a change to a consumer group.
    Group(GroupLogEntry),
}

/// One record of `__consumer_offsets` (Kafka's `GroupMetadataValue` and
/// `OffsetCommitValue`). Entries are replayed in log order; a new leader rebuilds the
/// groups from them alone.
///
/// Simplification: Kafka writes a group's metadata as one `GroupMetadataValue` record
/// holding every member; records here are small `Copy` values, so the coordinator
/// appends one [`GroupLogEntry::Member`] per member followed by the
/// [`GroupLogEntry::Generation`] that closes the set (one append: a truncation can cut
/// only its tail, and the set counts only once its closing record is committed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupLogEntry {
    /// One member of `group` in `generation`, with its assignment.
    Member {
        group: GroupId,
        generation: Generation,
        member: MemberId,
        /// `group.instance.id` of a static member (KIP-345).
        instance: Option<u32>,
        assignment: PartitionSet,
        /// Its subscription's owned partitions and their generation (KIP-429/KIP-792),
        /// as it joined this generation: a new coordinator compares a rejoin with it.
        owned: PartitionSet,
        owned_generation: Option<Generation>,
        session_timeout_ms: u32,
        rebalance_timeout_ms: u32,
    },
    /// The group's metadata: its generation, selected protocol and leader, and the
    /// `members` [`GroupLogEntry::Member`] records just before this one (none: the
    /// group is empty).
    Generation {
        group: GroupId,
        generation: Generation,
        protocol: Option<ProtocolName>,
        leader: Option<MemberId>,
        members: u32,
    },
    /// An offset commit: plain (OffsetCommit, no producer stamp: committed once the
    /// record is), or transactional (KIP-98: the record carries the producer's stamp,
    /// `transactional: true`, and that producer's commit or abort marker in this
    /// partition decides it; until then the offset is pending).
    Offset {
        group: GroupId,
        partition: PartitionId,
        offset: Offset,
    },
}

/// A group protocol's name (an assignor: `range`, `cooperative-sticky`, ...) stored
/// inline, so that a [`GroupLogEntry`] stays `Copy`. Names are at most
/// [`ProtocolName::CAPACITY`] bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolName {
    len: u8,
    bytes: [u8; ProtocolName::CAPACITY],
}

impl ProtocolName {
    pub const CAPACITY: usize = 23;

    /// `None` for a name longer than [`ProtocolName::CAPACITY`] bytes.
    pub fn new(name: &str) -> Option<ProtocolName> {
        let len = name.len();
        if len > Self::CAPACITY {
            return None;
        }
        let mut bytes = [0; Self::CAPACITY];
        bytes[..len].copy_from_slice(name.as_bytes());
        Some(ProtocolName {
            len: len as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).expect("built from a str")
    }
}

impl std::fmt::Debug for ProtocolName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// KIP-447's `ConsumerGroupMetadata`: who commits offsets inside a transaction (sent
/// with TxnOffsetCommit v3+), so the group coordinator can fence a zombie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    pub generation: Generation,
    pub member: MemberId,
    /// `group.instance.id` of a static member.
    pub instance: Option<u32>,
}

/// One member as the group leader learns it from its JoinGroup response: member id,
/// `group.instance.id`, and its subscription's owned partitions with the generation
/// they were owned in (KIP-429; the input topic is the only subscribed topic).
pub type JoinedMember = (MemberId, Option<u32>, Vec<PartitionId>, Option<Generation>);

/// A successful JoinGroup: the generation the member is in, and who leads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    pub generation: Generation,
    /// The member's id (assigned by the coordinator to a new member).
    pub member: MemberId,
    pub leader: MemberId,
    /// The protocol (assignor) the coordinator selected among the members' choices.
    pub protocol: String,
    /// Every member with its subscription: for the leader only (empty for the others).
    pub members: Vec<JoinedMember>,
}

/// The states of a transaction at its coordinator (Kafka's `TransactionState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TxnStatus {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnStatus {
    /// A decision is being written out as markers: no new request may start.
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort)
    }
}

/// One record of `__transaction_state` (Kafka's `TransactionLogValue`): the whole
/// state of one transactional id; the latest entry wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnLogEntry {
    pub transactional_id: TxnId,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub status: TxnStatus,
    pub partitions: PartitionSet,
    /// When the ongoing transaction started (for `transaction.timeout.ms`).
    pub started_at: SimTime,
    pub timeout_ms: u64,
}

impl Record {
    /// A record of user data (not a control record).
    pub fn is_data(&self) -> bool {
        self.control.is_none()
    }
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
        /// `isolation.level=read_committed`: read up to the last stable offset.
        read_committed: bool,
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
        /// The producer's `transactional.id` (Kafka's request-level field): a leader
        /// verifies a transactional batch with its coordinator (KIP-890 part 1).
        transactional_id: Option<TxnId>,
        acks_all: bool,
        acks_none: bool,
        batches: Vec<ProduceBatch>,
    },
    ProduceResponse {
        correlation: u64,
        results: Vec<ProduceResult>,
    },
    // ---- transactions (KIP-98) ----
    /// From a transaction coordinator to a partition leader: append a commit or abort
    /// marker for the producer's transaction to each partition (as `acks=all`).
    WriteTxnMarkers {
        correlation: u64,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        control: Control,
        partitions: Vec<PartitionId>,
    },
    WriteTxnMarkersResponse {
        correlation: u64,
        producer_id: ProducerId,
        results: Vec<ProduceResult>,
    },
    /// To the coordinator of `transactional_id`: fence older instances (bump the epoch,
    /// abort their open transaction) and get the producer id and epoch.
    InitProducerId {
        correlation: u64,
        transactional_id: TxnId,
        transaction_timeout_ms: u64,
    },
    InitProducerIdResponse {
        correlation: u64,
        result: Result<(ProducerId, ProducerEpoch), ErrorCode>,
    },
    /// Register partitions in the transaction before producing to them. With
    /// `verify_only` (KIP-890 part 1, sent by a partition leader before it appends a
    /// transactional batch) nothing is added: the answer says whether the partition is
    /// already in the producer's ongoing transaction (`INVALID_TXN_STATE` if not).
    AddPartitionsToTxn {
        correlation: u64,
        transactional_id: TxnId,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        partitions: PartitionSet,
        verify_only: bool,
    },
    /// `sendOffsetsToTransaction`, step 1: add the group's `__consumer_offsets`
    /// partition to the transaction, so the commit or abort marker reaches it.
    AddOffsetsToTxn {
        correlation: u64,
        transactional_id: TxnId,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        group: GroupId,
    },
    /// Commit (`commit`) or abort the transaction. `transaction_version_2`: the client
    /// speaks KIP-890 part 2 (EndTxn v5+), so the transaction ends under a bumped epoch
    /// that the response hands back; an older client keeps its epoch.
    EndTxn {
        correlation: u64,
        transactional_id: TxnId,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        commit: bool,
        transaction_version_2: bool,
    },
    /// The answer to AddPartitionsToTxn and AddOffsetsToTxn.
    TxnResponse {
        correlation: u64,
        result: Result<(), ErrorCode>,
    },
    /// The answer to EndTxn: the producer epoch for the next transaction (KIP-890
    /// part 2 bumps it at the end of every transaction).
    EndTxnResponse {
        correlation: u64,
        result: Result<ProducerEpoch, ErrorCode>,
    },
    // ---- consumer groups: Kafka's classic group protocol (KIP-62, KIP-345, KIP-447) ----
    /// Join (or rejoin) `group`. `member` is `None` for a new member: the coordinator
    /// assigns its id in the answer (simplification: Kafka >= 2.2 first answers
    /// MEMBER_ID_REQUIRED with the id, KIP-394, and the member joins again with it).
    /// `instance` is `group.instance.id` (KIP-345 static membership): a new member id
    /// for a known instance replaces the older one, which is fenced from then on.
    /// `protocols` are the member's assignors in its order of preference; `owned` its
    /// owned partitions and the generation it owned them in (KIP-429's subscription).
    /// The answer waits until the rebalance's join phase completes.
    JoinGroup {
        correlation: u64,
        group: GroupId,
        member: Option<MemberId>,
        instance: Option<u32>,
        session_timeout_ms: u64,
        rebalance_timeout_ms: u64,
        protocols: Vec<String>,
        owned: Vec<PartitionId>,
        owned_generation: Option<Generation>,
    },
    JoinGroupResponse {
        correlation: u64,
        result: Result<Joined, ErrorCode>,
    },
    /// The second phase of a rebalance: the leader sends every member's assignment,
    /// the others none; every member is answered with its own assignment once the
    /// leader's is stored.
    SyncGroup {
        correlation: u64,
        group: GroupId,
        generation: Generation,
        member: MemberId,
        instance: Option<u32>,
        assignments: Vec<(MemberId, Vec<PartitionId>)>,
    },
    SyncGroupResponse {
        correlation: u64,
        result: Result<Vec<PartitionId>, ErrorCode>,
    },
    /// Keeps the member's session alive (`session.timeout.ms`); REBALANCE_IN_PROGRESS
    /// tells it to rejoin.
    Heartbeat {
        correlation: u64,
        group: GroupId,
        generation: Generation,
        member: MemberId,
        instance: Option<u32>,
    },
    HeartbeatResponse {
        correlation: u64,
        result: Result<(), ErrorCode>,
    },
    /// The member leaves the group (a rebalance follows).
    LeaveGroup {
        correlation: u64,
        group: GroupId,
        member: MemberId,
        instance: Option<u32>,
    },
    LeaveGroupResponse {
        correlation: u64,
        result: Result<(), ErrorCode>,
    },
    /// Commit offsets outside a transaction. A group member sends its generation and
    /// member id and is fenced by them (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID,
    /// FENCED_INSTANCE_ID); a client outside group management (assign mode) sends
    /// none (Kafka's generation -1), accepted only while the group has no members.
    OffsetCommit {
        correlation: u64,
        group: GroupId,
        generation: Option<Generation>,
        member: Option<MemberId>,
        instance: Option<u32>,
        /// Per partition: the next offset to consume.
        offsets: Vec<(PartitionId, Offset)>,
    },
    OffsetCommitResponse {
        correlation: u64,
        result: Result<(), ErrorCode>,
    },
    /// `sendOffsetsToTransaction`, step 2, to the group coordinator: the offsets stay
    /// pending until the transaction's marker reaches `__consumer_offsets`. Carries the
    /// consumer's group metadata so a zombie is fenced (KIP-447); a client before
    /// KIP-447 (TxnOffsetCommit v0-v2, Kafka Streams' `exactly_once`) sends none.
    TxnOffsetCommit {
        correlation: u64,
        transactional_id: TxnId,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        group: GroupId,
        group_metadata: Option<ConsumerGroupMetadata>,
        /// Per partition: the next offset to consume.
        offsets: Vec<(PartitionId, Offset)>,
    },
    TxnOffsetCommitResponse {
        correlation: u64,
        result: Result<(), ErrorCode>,
    },
    /// The group's committed offsets for `partitions`. With `require_stable`
    /// (KIP-447) a partition with a pending transactional commit is answered
    /// `UNSTABLE_OFFSET_COMMIT` instead of its older committed offset.
    OffsetFetch {
        correlation: u64,
        group: GroupId,
        partitions: PartitionSet,
        require_stable: bool,
    },
    /// Per partition: the committed offset (`None`: nothing committed yet).
    OffsetFetchResponse {
        correlation: u64,
        result: Result<Vec<(PartitionId, Option<Offset>)>, ErrorCode>,
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
    /// The last stable offset (below it, every transaction is decided); `None` when
    /// the high watermark is withheld.
    pub last_stable_offset: Option<Offset>,
    /// For a `read_committed` fetch: the aborted transactions overlapping `records`.
    pub aborted: Vec<AbortedTxn>,
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
                | Message::WriteTxnMarkers { .. }
                | Message::InitProducerId { .. }
                | Message::AddPartitionsToTxn { .. }
                | Message::EndTxn { .. }
                | Message::AddOffsetsToTxn { .. }
                | Message::JoinGroup { .. }
                | Message::SyncGroup { .. }
                | Message::Heartbeat { .. }
                | Message::LeaveGroup { .. }
                | Message::OffsetCommit { .. }
                | Message::TxnOffsetCommit { .. }
                | Message::OffsetFetch { .. }
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
            Message::WriteTxnMarkers { .. } => "WriteTxnMarkers",
            Message::WriteTxnMarkersResponse { .. } => "WriteTxnMarkersResponse",
            Message::InitProducerId { .. } => "InitProducerId",
            Message::InitProducerIdResponse { .. } => "InitProducerIdResponse",
            Message::AddPartitionsToTxn { .. } => "AddPartitionsToTxn",
            Message::EndTxn { .. } => "EndTxn",
            Message::TxnResponse { .. } => "TxnResponse",
            Message::EndTxnResponse { .. } => "EndTxnResponse",
            Message::AddOffsetsToTxn { .. } => "AddOffsetsToTxn",
            Message::JoinGroup { .. } => "JoinGroup",
            Message::JoinGroupResponse { .. } => "JoinGroupResponse",
            Message::SyncGroup { .. } => "SyncGroup",
            Message::SyncGroupResponse { .. } => "SyncGroupResponse",
            Message::Heartbeat { .. } => "Heartbeat",
            Message::HeartbeatResponse { .. } => "HeartbeatResponse",
            Message::LeaveGroup { .. } => "LeaveGroup",
            Message::LeaveGroupResponse { .. } => "LeaveGroupResponse",
            Message::OffsetCommit { .. } => "OffsetCommit",
            Message::OffsetCommitResponse { .. } => "OffsetCommitResponse",
            Message::TxnOffsetCommit { .. } => "TxnOffsetCommit",
            Message::TxnOffsetCommitResponse { .. } => "TxnOffsetCommitResponse",
            Message::OffsetFetch { .. } => "OffsetFetch",
            Message::OffsetFetchResponse { .. } => "OffsetFetchResponse",
        }
    }
}
