//! Client operations as the clients see them, for the recorder. The simulator turns
//! these into history lines (`../shared/design/history.md`) with index and time; the
//! model only says what the client invoked and how it completed.

use crate::types::{Generation, GroupId, MemberId, Offset, PartitionId, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Send,
    Poll,
    Assign,
    /// A producer transaction (polls and sends; consume-transform-produce).
    Txn,
    /// A consumer subscribes (`assigned` names a partition of each topic).
    Subscribe,
    /// A consumer-group offset commit outside a transaction (`offsets`, `group`).
    Commit,
    Crash,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// What one poll returned: per partition, the records in order.
pub type PollReads = Vec<(PartitionId, Vec<(Offset, Value)>)>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MicroOp {
    /// A send; `offset` known only on an ok completion.
    Send {
        partition: PartitionId,
        value: Value,
        offset: Option<Offset>,
    },
    /// A poll; `reads` is `None` on invoke.
    Poll { reads: Option<PollReads> },
}

/// One history event of one client process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEvent {
    pub process: u64,
    pub outcome: Outcome,
    pub kind: OpKind,
    pub mops: Vec<MicroOp>,
    /// For `assign`: the partitions now assigned.
    pub assigned: Vec<PartitionId>,
    pub error: Option<&'static str>,
    /// For `txn`: the input offsets committed inside the transaction (the next offset
    /// to consume per input partition), as `sendOffsetsToTransaction` sent them.
    pub offsets: Vec<(PartitionId, Offset)>,
    /// The consumer group the operation ran under.
    pub group: Option<GroupMetadata>,
}

/// The consumer group an operation ran under, with the generation and member id when
/// its commits carry them (KIP-447).
pub type GroupMetadata = (GroupId, Option<(Generation, MemberId)>);

impl HistoryEvent {
    /// An `assign` operation (a client setting its own assignment, or seeking), which
    /// completes at once: its invoke and its ok.
    pub fn assign(
        process: u64,
        assigned: Vec<PartitionId>,
        group: Option<GroupMetadata>,
    ) -> [HistoryEvent; 2] {
        [Outcome::Invoke, Outcome::Ok].map(|outcome| HistoryEvent {
            process,
            outcome,
            kind: OpKind::Assign,
            mops: Vec::new(),
            assigned: assigned.clone(),
            error: None,
            offsets: Vec::new(),
            group,
        })
    }
}
