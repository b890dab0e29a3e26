//! One log's transaction index (KIP-98): the first offset of every open transaction,
//! which bounds the last stable offset (LSO), and the offset range of every aborted
//! transaction, which `read_committed` consumers skip (Kafka's producer-state
//! `ongoingTxns` and the `.txnindex` file).
//!
//! It lives inside [`crate::log::Log`] and is derived from the records alone, so it is
//! the same on every replica with the same prefix, and truncation or a crash (which
//! both cut the log) simply rebuild it from what is left.

use crate::message::{AbortedTxn, Control, Record};
use crate::types::{Offset, ProducerId};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnIndex {
    /// Open transactions: producer id -> offset of its first record in this log.
    ongoing: BTreeMap<ProducerId, Offset>,
    /// Aborted transactions, in the order of their abort markers (so by `last_offset`).
    aborted: Vec<AbortedTxn>,
}

impl TxnIndex {
    /// Account for `record` appended at `offset`.
    pub fn on_append(&mut self, offset: Offset, record: &Record) {
        let Some((stamp, _)) = record.producer else {
            return;
        };
        match record.control {
            None if stamp.transactional => {
                self.ongoing.entry(stamp.producer_id).or_insert(offset);
            }
            None => {}
            Some(control) => {
                // A marker with no open transaction here (a retried marker, or one for
                // a partition that got no record) ends nothing.
                if let Some(first) = self.ongoing.remove(&stamp.producer_id) {
                    if control == Control::Abort {
                        self.aborted.push(AbortedTxn {
                            producer_id: stamp.producer_id,
                            first_offset: first,
                            last_offset: offset,
                        });
                    }
                }
            }
        }
    }

    pub fn rebuild(records: &[Record]) -> TxnIndex {
        let mut index = TxnIndex::default();
        for (i, r) in records.iter().enumerate() {
            index.on_append(Offset(i as u64), r);
        }
        index
    }

    /// The first offset of the oldest open transaction: the LSO is at most this.
    pub fn first_unstable_offset(&self) -> Option<Offset> {
        self.ongoing.values().min().copied()
    }

    /// Is `producer`'s transaction open in this log (it has records and no marker yet)?
    pub fn is_ongoing(&self, producer: ProducerId) -> bool {
        self.ongoing.contains_key(&producer)
    }

    /// Aborted transactions with a record in `from..to`.
    pub fn aborted_overlapping(&self, from: Offset, to: Offset) -> Vec<AbortedTxn> {
        // `aborted` is sorted by last_offset: skip those that ended before `from`.
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ProducerStamp;
    use crate::types::{Epoch, ProducerEpoch};

    fn rec(pid: u64, transactional: bool, control: Option<Control>) -> Record {
        Record {
            value: 0,
            epoch: Epoch(1),
            producer: Some((
                ProducerStamp {
                    producer_id: ProducerId(pid),
                    producer_epoch: ProducerEpoch(0),
                    base_sequence: 0,
                    transactional,
                },
                0,
            )),
            control,
            txn_state: None,
        }
    }

    #[test]
    fn open_transaction_bounds_the_lso_until_its_marker() {
        let mut idx = TxnIndex::default();
        idx.on_append(Offset(0), &rec(1, false, None));
        assert_eq!(
            idx.first_unstable_offset(),
            None,
            "idempotent, not transactional"
        );
        idx.on_append(Offset(1), &rec(2, true, None));
        idx.on_append(Offset(2), &rec(3, true, None));
        idx.on_append(Offset(3), &rec(2, true, None));
        assert_eq!(idx.first_unstable_offset(), Some(Offset(1)));
        idx.on_append(Offset(4), &rec(2, true, Some(Control::Commit)));
        assert_eq!(idx.first_unstable_offset(), Some(Offset(2)));
        idx.on_append(Offset(5), &rec(3, true, Some(Control::Abort)));
        assert_eq!(idx.first_unstable_offset(), None);
        assert_eq!(
            idx.aborted_overlapping(Offset(0), Offset(10)),
            vec![AbortedTxn {
                producer_id: ProducerId(3),
                first_offset: Offset(2),
                last_offset: Offset(5)
            }]
        );
        assert!(idx.aborted_overlapping(Offset(6), Offset(10)).is_empty());
        assert!(idx.aborted_overlapping(Offset(0), Offset(2)).is_empty());
    }

    #[test]
    fn a_marker_without_records_ends_nothing_and_rebuild_agrees() {
        let records = vec![
            rec(7, true, Some(Control::Abort)),
            rec(7, true, None),
            rec(8, true, None),
            rec(7, true, Some(Control::Abort)),
        ];
        let idx = TxnIndex::rebuild(&records);
        assert_eq!(idx.first_unstable_offset(), Some(Offset(2)));
        assert_eq!(idx.aborted_overlapping(Offset(0), Offset(4)).len(), 1);
        assert!(idx.is_ongoing(ProducerId(8)));
        assert!(!idx.is_ongoing(ProducerId(7)));
    }
}
