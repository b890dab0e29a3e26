//! The consume-transform-produce model shared by `eos-duplicate-output` and
//! `eos-lost-output`.
//!
//! Source: Kafka's exactly-once semantics (KIP-98, KIP-447): an application polls input
//! records, sends the outputs it computes and commits the input offsets inside one
//! transaction (`sendOffsetsToTransaction`), so each input record's outputs commit
//! exactly once, together with the offset that marks the record consumed. The model:
//! - an *EOS transaction* is a `txn` carrying `offsets` (its group's next input offset
//!   per input key); its group is its `group` field, else the group of its process's
//!   latest assign or subscribe, else the unnamed group;
//! - it is *committed* when it completed `ok`, or its outcome is unknown and an `ok`
//!   read saw one of its outputs (Jepsen's rule for `info`);
//! - the *input keys* of a group are the keys in any of its EOS transactions' `offsets`;
//! - a committed EOS transaction *processed* input record (key, offset) when one of its
//!   polls returned it and, if it committed an offset for that key, the record lies
//!   below that offset (a record polled but not covered by the commit is left for the
//!   next transaction).

use crate::analysis::{Analysis, GroupId, KeyId};
use crate::fxhash::FxHashSet;

/// One input record processed by one committed EOS transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Processed {
    pub group: GroupId,
    pub key: KeyId,
    pub offset: u64,
    /// Index into `Analysis::txns`.
    pub txn: usize,
}

/// Every record processed by a committed EOS transaction, sorted by (group, key,
/// offset, transaction) without repeats.
pub(crate) fn processed(analysis: &Analysis) -> Vec<Processed> {
    let input_keys = input_keys(analysis);
    if input_keys.is_empty() {
        return Vec::new();
    }
    let mut processed = Vec::new();
    for (index, txn) in analysis.txns.iter().enumerate() {
        if txn.offsets.is_empty() || !analysis.txn_committed(txn) {
            continue;
        }
        for record in analysis.txn_reads.get(txn.reads.clone()).unwrap_or(&[]) {
            if !input_keys.contains(&(txn.group, record.key)) {
                continue;
            }
            let covered = txn
                .offsets
                .iter()
                .find(|(key, _)| *key == record.key)
                .is_none_or(|&(_, next)| record.offset < next);
            if covered {
                processed.push(Processed {
                    group: txn.group,
                    key: record.key,
                    offset: record.offset,
                    txn: index,
                });
            }
        }
    }
    processed.sort_unstable();
    processed.dedup();
    processed
}

/// (group, key) of every key named in an EOS transaction's `offsets`.
pub(crate) fn input_keys(analysis: &Analysis) -> FxHashSet<(GroupId, KeyId)> {
    analysis
        .txns
        .iter()
        .flat_map(|txn| txn.offsets.iter().map(move |&(key, _)| (txn.group, key)))
        .collect()
}
