//! The leader's idempotence window (KIP-98): for each producer id, the last five
//! batches it appended, so a retried batch is answered with its original offset instead
//! of being appended twice, and a gap in sequences is refused.

use crate::message::Record;
use crate::types::{Offset, ProducerId, Sequence};
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
    /// The producer id is unknown and the batch does not start a sequence: the log
    /// lost this producer's state (KIP-360's UNKNOWN_PRODUCER_ID).
    UnknownProducer,
}

#[derive(Clone, Debug)]
pub struct ProducerStateTable {
    producers: BTreeMap<ProducerId, VecDeque<BatchMeta>>,
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

    pub fn check(&self, producer: ProducerId, base: Sequence, count: u32) -> SequenceCheck {
        let Some(batches) = self.producers.get(&producer) else {
            // A producer the log has never seen must start at sequence 0.
            return if base == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::UnknownProducer
            };
        };
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
        base: Sequence,
        count: u32,
        base_offset: Offset,
    ) {
        let batches = self.producers.entry(producer).or_default();
        batches.push_back(BatchMeta {
            base_sequence: base,
            last_sequence: base + count.saturating_sub(1),
            base_offset,
        });
        while batches.len() > self.batches_to_retain {
            batches.pop_front();
        }
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
            let mut j = i + 1;
            while j < records.len()
                && records[j].producer.is_some_and(|(s, _)| s == stamp)
                && records[j].epoch == records[i].epoch
            {
                j += 1;
            }
            table.record_batch(
                stamp.producer_id,
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

    #[test]
    fn retry_is_a_duplicate_and_gap_is_refused() {
        let p = ProducerId(1);
        let mut t = ProducerStateTable::default();
        assert_eq!(t.check(p, 0, 2), SequenceCheck::Append);
        t.record_batch(p, 0, 2, Offset(10));
        assert_eq!(
            t.check(p, 0, 2),
            SequenceCheck::Duplicate {
                base_offset: Offset(10),
                end_offset: Offset(12)
            }
        );
        assert_eq!(t.check(p, 3, 1), SequenceCheck::OutOfOrder);
        assert_eq!(t.check(p, 2, 1), SequenceCheck::Append);
        assert_eq!(t.check(ProducerId(2), 4, 1), SequenceCheck::UnknownProducer);
    }

    #[test]
    fn window_keeps_five_batches() {
        let p = ProducerId(1);
        let mut t = ProducerStateTable::default();
        for i in 0..7 {
            t.record_batch(p, i, 1, Offset(u64::from(i)));
        }
        assert_eq!(
            t.check(p, 1, 1),
            SequenceCheck::OutOfOrder,
            "evicted from the window"
        );
        assert!(matches!(t.check(p, 2, 1), SequenceCheck::Duplicate { .. }));
    }

    #[test]
    fn a_window_of_one_forgets_the_batch_before_the_last() {
        // Kafka 0.11's broker (before KAFKA-5494): only the last batch is remembered,
        // so a retry of the one before it is no longer recognised as a duplicate.
        let p = ProducerId(1);
        let mut t = ProducerStateTable::with_batches_to_retain(1);
        t.record_batch(p, 0, 1, Offset(0));
        t.record_batch(p, 1, 1, Offset(1));
        assert_eq!(t.check(p, 0, 1), SequenceCheck::OutOfOrder);
        assert!(matches!(t.check(p, 1, 1), SequenceCheck::Duplicate { .. }));
    }
}
