//! The leader's idempotence window (KIP-98): for each producer id, the last five
//! batches it appended, so a retried batch is answered with its original offset instead
//! of being appended twice, and a gap in sequences is refused.

use crate::message::Record;
use crate::types::{Offset, ProducerEpoch, ProducerId, Sequence};
use std::collections::{BTreeMap, VecDeque};

/// Kafka keeps the metadata of the last 5 batches per producer
/// (`ProducerStateEntry.NUM_BATCHES_TO_RETAIN`), matching `max.in.flight <= 5`.
pub const BATCHES_TO_RETAIN: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchMeta {
    base_sequence: Sequence,
    last_sequence: Sequence,
    base_offset: Offset,
}

/// Outcome of checking a batch against the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Next in sequence: append it.
    Append,
    /// Already appended at this base offset; answer with it (and wait for it to commit).
    Duplicate {
        base_offset: Offset,
        end_offset: Offset,
    },
    /// A gap or an old batch outside the window.
    OutOfOrder,
    /// An older producer epoch than the partition has seen: a fenced zombie.
    Fenced,
    /// The producer id is unknown and the batch does not start a sequence: the log
    /// lost this producer's state (KIP-360's UNKNOWN_PRODUCER_ID).
    UnknownProducer,
}

/// One producer id's state: its current epoch and the window of its last batches
/// (of that epoch).
#[derive(Clone, Debug, Default)]
struct ProducerEntry {
    epoch: ProducerEpoch,
    batches: VecDeque<BatchMeta>,
}

#[derive(Clone, Debug)]
pub struct ProducerStateTable {
    producers: BTreeMap<ProducerId, ProducerEntry>,
    /// Batches remembered per producer: [`BATCHES_TO_RETAIN`], or 1 with the
    /// `dedup-window-1` switch (Kafka 0.11's broker, before KAFKA-5494).
    batches_to_retain: usize,
}

impl Default for ProducerStateTable {
    fn default() -> ProducerStateTable {
        ProducerStateTable::with_batches_to_retain(BATCHES_TO_RETAIN)
    }
}

impl ProducerStateTable {
    /// An empty table that remembers `batches_to_retain` (at least 1) batches per producer.
    pub fn with_batches_to_retain(batches_to_retain: usize) -> ProducerStateTable {
        assert!(
            batches_to_retain >= 1,
            "the window holds at least the last batch"
        );
        ProducerStateTable {
            producers: BTreeMap::new(),
            batches_to_retain,
        }
    }

    pub fn check(
        &self,
        producer: ProducerId,
        epoch: ProducerEpoch,
        base: Sequence,
        count: u32,
    ) -> SequenceCheck {
        let Some(entry) = self.producers.get(&producer) else {
            // A producer the log has never seen must start at sequence 0.
            return if base == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::UnknownProducer
            };
        };
        if epoch < entry.epoch {
            return SequenceCheck::Fenced;
        }
        // A new epoch (or an epoch with no batch yet, after a marker bumped it) starts
        // its sequences again at 0.
        if epoch > entry.epoch || entry.batches.is_empty() {
            return if base == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder
            };
        }
        let batches = &entry.batches;
        let last = count.saturating_sub(1) + base;
        if let Some(b) = batches.iter().find(|b| b.base_sequence == base) {
            if b.last_sequence == last {
                return SequenceCheck::Duplicate {
                    base_offset: b.base_offset,
                    end_offset: Offset(b.base_offset.0 + u64::from(count)),
                };
            }
            return SequenceCheck::OutOfOrder;
        }
        match batches.back() {
            Some(latest) if base == latest.last_sequence.wrapping_add(1) => SequenceCheck::Append,
            _ => SequenceCheck::OutOfOrder,
        }
    }

    pub fn record_batch(
        &mut self,
        producer: ProducerId,
        epoch: ProducerEpoch,
        base: Sequence,
        count: u32,
        base_offset: Offset,
    ) {
        let entry = self.producers.entry(producer).or_default();
        if epoch > entry.epoch {
            *entry = ProducerEntry {
                epoch,
                batches: VecDeque::new(),
            };
        }
        let batches = &mut entry.batches;
        batches.push_back(BatchMeta {
            base_sequence: base,
            last_sequence: base + count.saturating_sub(1),
            base_offset,
        });
        while batches.len() > self.batches_to_retain {
            batches.pop_front();
        }
    }

    /// A transaction marker of `epoch` was appended: the producer's epoch is at least
    /// that now (a coordinator that fenced a zombie wrote its abort with a bumped epoch,
    /// KIP-890 part 2), and a later batch of a newer epoch starts at sequence 0.
    pub fn record_marker(&mut self, producer: ProducerId, epoch: ProducerEpoch) {
        let entry = self.producers.entry(producer).or_default();
        if epoch > entry.epoch {
            *entry = ProducerEntry {
                epoch,
                batches: VecDeque::new(),
            };
        }
    }

    /// The producer's current epoch, if the log has seen it.
    pub fn epoch(&self, producer: ProducerId) -> Option<ProducerEpoch> {
        self.producers.get(&producer).map(|e| e.epoch)
    }

    /// Rebuild from a log (on becoming leader, after truncation or restart), as Kafka
    /// rebuilds its producer state from snapshots and the log.
    pub fn rebuild(records: &[Record], batches_to_retain: usize) -> ProducerStateTable {
        let mut table = ProducerStateTable::with_batches_to_retain(batches_to_retain);
        let mut i = 0;
        while i < records.len() {
            let Some((stamp, _)) = records[i].producer else {
                i += 1;
                continue;
            };
            if records[i].control.is_some() {
                table.record_marker(stamp.producer_id, stamp.producer_epoch);
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j < records.len()
                && records[j].producer.is_some_and(|(s, _)| s == stamp)
                && records[j].control.is_none()
                && records[j].epoch == records[i].epoch
            {
                j += 1;
            }
            table.record_batch(
                stamp.producer_id,
                stamp.producer_epoch,
                stamp.base_sequence,
                (j - i) as u32,
                Offset(i as u64),
            );
            i = j;
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E0: ProducerEpoch = ProducerEpoch(0);

    #[test]
    fn retry_is_a_duplicate_and_gap_is_refused() {
        let p = ProducerId(1);
        let mut t = ProducerStateTable::default();
        assert_eq!(t.check(p, E0, 0, 2), SequenceCheck::Append);
        t.record_batch(p, E0, 0, 2, Offset(10));
        assert_eq!(
            t.check(p, E0, 0, 2),
            SequenceCheck::Duplicate {
                base_offset: Offset(10),
                end_offset: Offset(12)
            }
        );
        assert_eq!(t.check(p, E0, 3, 1), SequenceCheck::OutOfOrder);
        assert_eq!(t.check(p, E0, 2, 1), SequenceCheck::Append);
        assert_eq!(
            t.check(ProducerId(2), E0, 4, 1),
            SequenceCheck::UnknownProducer
        );
    }

    #[test]
    fn window_keeps_five_batches() {
        let p = ProducerId(1);
        let mut t = ProducerStateTable::default();
        for i in 0..7 {
            t.record_batch(p, E0, i, 1, Offset(u64::from(i)));
        }
        assert_eq!(
            t.check(p, E0, 1, 1),
            SequenceCheck::OutOfOrder,
            "evicted from the window"
        );
        assert!(matches!(
            t.check(p, E0, 2, 1),
            SequenceCheck::Duplicate { .. }
        ));
    }

    #[test]
    fn an_older_epoch_is_fenced_and_a_newer_one_restarts_at_zero() {
        let p = ProducerId(1);
        let mut t = ProducerStateTable::default();
        t.record_batch(p, ProducerEpoch(3), 0, 2, Offset(0));
        assert_eq!(t.check(p, ProducerEpoch(2), 2, 1), SequenceCheck::Fenced);
        assert_eq!(
            t.check(p, ProducerEpoch(4), 2, 1),
            SequenceCheck::OutOfOrder
        );
        assert_eq!(t.check(p, ProducerEpoch(4), 0, 1), SequenceCheck::Append);
        // A marker of a bumped epoch (the coordinator fenced the old instance): the
        // old instance's next batch is refused, the new one starts at 0.
        t.record_marker(p, ProducerEpoch(5));
        assert_eq!(t.check(p, ProducerEpoch(3), 2, 1), SequenceCheck::Fenced);
        assert_eq!(t.check(p, ProducerEpoch(5), 0, 1), SequenceCheck::Append);
        assert_eq!(t.epoch(p), Some(ProducerEpoch(5)));
    }

    #[test]
    fn a_window_of_one_forgets_the_batch_before_the_last() {
        // Kafka 0.11's broker (before KAFKA-5494): only the last batch is remembered,
        // so a retry of the one before it is no longer recognised as a duplicate.
        let p = ProducerId(1);
        let mut t = ProducerStateTable::with_batches_to_retain(1);
        t.record_batch(p, E0, 0, 1, Offset(0));
        t.record_batch(p, E0, 1, 1, Offset(1));
        assert_eq!(t.check(p, E0, 0, 1), SequenceCheck::OutOfOrder);
        assert!(matches!(
            t.check(p, E0, 1, 1),
            SequenceCheck::Duplicate { .. }
        ));
    }
}
