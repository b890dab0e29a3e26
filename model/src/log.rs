//! One replica's append-only log: records stamped with leader epochs, the leader-epoch
//! cache (KIP-101), a durability mark (what an fsync has made survive a crash), and a
//! chained hash per offset so monitors can compare two replicas' prefixes in O(1).

use crate::message::{Control, Record};
use crate::txn_index::TxnIndex;
use crate::types::{Epoch, Offset};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct Log {
    records: Vec<Record>,
    /// `prefix_hash[i]` = hash of records `0..=i`: equal prefixes, equal hashes.
    prefix_hash: Vec<u64>,
    /// Leader-epoch cache: epoch -> start offset (Kafka's `leader-epoch-checkpoint`).
    epochs: BTreeMap<Epoch, Offset>,
    /// Records below this offset survive a crash.
    flushed: Offset,
    /// Open and aborted transactions of these records.
    txn_index: TxnIndex,
}

fn mix(prev: u64, r: &Record, offset: u64) -> u64 {
    let mut h = prev ^ 0x9E37_79B9_7F4A_7C15;
    let control = match r.control {
        None => 0,
        Some(Control::Commit) => 1,
        Some(Control::Abort) => 2,
    };
    for x in [r.value, u64::from(r.epoch.0), offset, control] {
        h = (h ^ x).wrapping_mul(0x0100_0000_01B3).rotate_left(29);
    }
    h
}

impl Log {
    pub fn log_end_offset(&self) -> Offset {
        Offset(self.records.len() as u64)
    }

    pub fn flushed_offset(&self) -> Offset {
        self.flushed
    }

    pub fn record(&self, offset: Offset) -> Option<&Record> {
        self.records.get(offset.index())
    }

    /// Records from `from` (inclusive), at most `max`.
    pub fn read(&self, from: Offset, max: usize) -> &[Record] {
        let start = from.index().min(self.records.len());
        let end = start.saturating_add(max).min(self.records.len());
        &self.records[start..end]
    }

    /// Hash of the prefix `0..end` (0 for the empty prefix).
    pub fn prefix_hash(&self, end: Offset) -> u64 {
        if end.0 == 0 {
            0
        } else {
            self.prefix_hash[end.index() - 1]
        }
    }

    /// The latest epoch in the cache.
    pub fn latest_epoch(&self) -> Option<Epoch> {
        self.epochs.keys().next_back().copied()
    }

    pub fn epoch_start_offset(&self, epoch: Epoch) -> Option<Offset> {
        self.epochs.get(&epoch).copied()
    }

    /// KIP-101/KIP-279 `endOffsetForEpoch`, with Kafka's semantics: for the latest epoch,
    /// (epoch, LEO); otherwise the largest epoch `<= requested` this log knows (or the
    /// requested one, if it knows none that old) and the start offset of the next higher
    /// epoch. `None` is `UNDEFINED_EPOCH_OFFSET`: the requested epoch is newer than any.
    pub fn end_offset_for_epoch(&self, requested: Epoch) -> Option<(Epoch, Offset)> {
        if self.latest_epoch() == Some(requested) {
            return Some((requested, self.log_end_offset()));
        }
        let (_, &higher_start) = self
            .epochs
            .range((
                std::ops::Bound::Excluded(requested),
                std::ops::Bound::Unbounded,
            ))
            .next()?;
        let floor = self.epochs.range(..=requested).next_back().map(|(&e, _)| e);
        Some((floor.unwrap_or(requested), higher_start))
    }

    /// A leader of `epoch` records where its epoch starts (Kafka assigns the epoch start
    /// offset when the replica becomes leader, before it appends anything).
    ///
    /// Epochs only grow in a log: a correct broker never leads an epoch older than one
    /// its log already has. Only a reintroduced bug (`stale-controller`) gets here with
    /// one; the cache then stays as it is, and the monitors report the regression.
    pub fn assign_epoch_start(&mut self, epoch: Epoch, start: Offset) {
        if self.latest_epoch().is_none_or(|e| e <= epoch) {
            self.epochs.entry(epoch).or_insert(start);
        }
    }

    pub fn append(&mut self, record: Record) -> Offset {
        let offset = self.log_end_offset();
        if self.latest_epoch().is_none_or(|e| e < record.epoch) {
            self.epochs.insert(record.epoch, offset);
        }
        let prev = self.prefix_hash.last().copied().unwrap_or(0);
        self.prefix_hash.push(mix(prev, &record, offset.0));
        self.txn_index.on_append(offset, &record);
        self.records.push(record);
        offset
    }

    /// Remove every record at or above `to`; also drop epoch entries starting there
    /// (Kafka's `truncateFromEnd`). Truncation is durable at once (a file truncate).
    pub fn truncate_to(&mut self, to: Offset) {
        self.epochs.retain(|_, start| *start < to);
        if to >= self.log_end_offset() {
            return;
        }
        self.records.truncate(to.index());
        self.prefix_hash.truncate(to.index());
        self.flushed = self.flushed.min(to);
        self.txn_index = TxnIndex::rebuild(&self.records);
    }

    /// An fsync requested when the log ended at `upto` completed.
    pub fn mark_flushed(&mut self, upto: Offset) {
        self.flushed = self.flushed.max(upto.min(self.log_end_offset()));
    }

    /// A crash: only what was flushed survives. The epoch cache is rebuilt from the
    /// surviving records (an epoch assigned but with no flushed record is forgotten).
    pub fn crash(&mut self) {
        let keep = self.flushed;
        self.records.truncate(keep.index());
        self.prefix_hash.truncate(keep.index());
        self.txn_index = TxnIndex::rebuild(&self.records);
        self.epochs.clear();
        let mut last: Option<Epoch> = None;
        for (i, r) in self.records.iter().enumerate() {
            if last != Some(r.epoch) {
                self.epochs.insert(r.epoch, Offset(i as u64));
                last = Some(r.epoch);
            }
        }
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    pub fn txn_index(&self) -> &TxnIndex {
        &self.txn_index
    }

    /// Kafka's last stable offset for a log whose high watermark is `hw`: below it
    /// every transaction is decided (no open transaction starts below it).
    pub fn last_stable_offset(&self, hw: Offset) -> Offset {
        self.txn_index
            .first_unstable_offset()
            .map_or(hw, |first| first.min(hw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(value: u64, epoch: u32) -> Record {
        Record {
            value,
            epoch: Epoch(epoch),
            producer: None,
            control: None,
            txn_state: None,
        }
    }

    #[test]
    fn end_offset_for_epoch_follows_kip_279() {
        let mut log = Log::default();
        log.append(rec(1, 1));
        log.append(rec(2, 1));
        log.append(rec(3, 3));
        // Epoch 2 was never in this log: the answer is epoch 1 and its end, offset 2.
        assert_eq!(
            log.end_offset_for_epoch(Epoch(2)),
            Some((Epoch(1), Offset(2)))
        );
        assert_eq!(
            log.end_offset_for_epoch(Epoch(3)),
            Some((Epoch(3), Offset(3)))
        );
        assert_eq!(
            log.end_offset_for_epoch(Epoch(0)),
            Some((Epoch(0), Offset(0)))
        );
        assert_eq!(log.end_offset_for_epoch(Epoch(4)), None);
    }

    #[test]
    fn crash_keeps_only_the_flushed_prefix() {
        let mut log = Log::default();
        log.append(rec(1, 1));
        log.append(rec(2, 1));
        log.mark_flushed(Offset(1));
        log.append(rec(3, 2));
        log.crash();
        assert_eq!(log.log_end_offset(), Offset(1));
        assert_eq!(log.latest_epoch(), Some(Epoch(1)));
    }

    #[test]
    fn prefix_hash_tells_divergence() {
        let mut a = Log::default();
        let mut b = Log::default();
        a.append(rec(1, 1));
        b.append(rec(1, 1));
        assert_eq!(a.prefix_hash(Offset(1)), b.prefix_hash(Offset(1)));
        a.append(rec(2, 1));
        b.append(rec(9, 1));
        assert_ne!(a.prefix_hash(Offset(2)), b.prefix_hash(Offset(2)));
        b.truncate_to(Offset(1));
        b.append(rec(2, 1));
        assert_eq!(a.prefix_hash(Offset(2)), b.prefix_hash(Offset(2)));
    }
}
