//! Facts about transactions and consumer groups, gathered by the first pass for the
//! exactly-once and group anomalies (`eos-*`, `offset-regression`, `uncommitted-gap`,
//! `redelivered`, `zombie-commit`, `split-ownership`).
//!
//! Most histories have few of these events, so they live in their own small vectors
//! and cost nothing on the hot path of sends and polls.

use std::ops::Range;

use super::{KeyId, Outcome};

/// Dense id of an interned consumer group name.
pub(crate) type GroupId = u32;

/// The name the checker gives a transaction's group when neither the transaction nor
/// its process names one.
pub(crate) const GROUP_UNNAMED: &str = "";

/// An `ok` or `info` completion of `assign` or `subscribe`.
pub(crate) struct Membership {
    pub op: u64,
    pub process: u64,
    pub outcome: Outcome,
    pub subscribe: bool,
    pub group: Option<GroupId>,
    pub generation: Option<i64>,
    pub member: Option<String>,
    /// The partitions now assigned (empty for `subscribe`), sorted and deduplicated.
    pub keys: Vec<KeyId>,
    pub seek_to_beginning: bool,
}

/// A committed-offset claim: a `commit` completion, or a `txn` completion carrying
/// `offsets` (`sendOffsetsToTransaction`).
pub(crate) struct Commit {
    /// The completion.
    pub op: u64,
    pub invoke: Option<u64>,
    pub process: u64,
    pub outcome: Outcome,
    pub group: GroupId,
    /// Next offset to read, per key, in the order written.
    pub offsets: Vec<(KeyId, u64)>,
    pub generation: Option<i64>,
    /// The transaction that carried it (index into `Analysis::txns`).
    pub txn: Option<usize>,
}

/// One group-related event, in history order.
pub(crate) enum GroupEvent {
    Membership(Membership),
    Commit(Commit),
    /// The process crashed or completed `info`: it holds nothing any more.
    Gone {
        op: u64,
        process: u64,
    },
}

impl GroupEvent {
    /// The history index of the event (a completion, or a crash's invoke).
    pub fn op(&self) -> u64 {
        match self {
            GroupEvent::Membership(membership) => membership.op,
            GroupEvent::Commit(commit) => commit.op,
            GroupEvent::Gone { op, .. } => *op,
        }
    }
}

/// One completed `txn` operation.
pub(crate) struct TxnFacts {
    pub process: u64,
    pub invoke: Option<u64>,
    pub completion: u64,
    pub outcome: Outcome,
    /// Its sends (index into `Analysis::send_ops`), if it sent anything.
    pub send_op: Option<usize>,
    /// Every record its polls returned, whatever its outcome (range into
    /// `Analysis::txn_reads`).
    pub reads: Range<usize>,
    /// The input offsets it committed (`offsets`), empty if none.
    pub offsets: Vec<(KeyId, u64)>,
    pub group: GroupId,
}

/// A poll of an `ok` transaction that returned a value the same transaction had sent
/// earlier (before it committed).
pub(crate) struct PrecommittedRead {
    /// The transaction's completion.
    pub op: u64,
    pub invoke: Option<u64>,
    pub key: KeyId,
    /// Where the poll returned it.
    pub offset: u64,
    pub value: super::ValueId,
}

/// Interned group names and the group events.
#[derive(Default)]
pub(crate) struct Groups {
    pub names: Vec<String>,
    pub events: Vec<GroupEvent>,
}

impl Groups {
    /// The printable name of a group: `"(no group)"` for the unnamed one.
    pub fn name(&self, group: GroupId) -> &str {
        match self.names.get(group as usize).map(String::as_str) {
            Some(GROUP_UNNAMED) | None => "(no group)",
            Some(name) => name,
        }
    }
}
