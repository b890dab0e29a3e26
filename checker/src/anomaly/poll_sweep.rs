//! The consumer sweep shared by `poll-skip`, `nonmonotonic-poll` and their `int-`
//! (within one operation) forms.
//!
//! Source: Jepsen's `jepsen.tests.kafka` (`poll-skip+nonmonotonic-cases` and
//! `int-poll-skip+nonmonotonic-cases`). Replays every `ok` read in history order and
//! tracks, per process and key, the dense position of the last record read. Each next
//! record should sit at the very next dense position; any other step is a [`PollJump`].
//! A reset (an `ok`/`info` assign or subscribe, or `seek_to_beginning`) forgets the
//! process's positions, and keys in a completion's `rebalance_log` are not compared in
//! that operation (their assignment changed during it). Reads of `info`/`fail`
//! operations are not replayed: they place values in the version order, but nobody
//! consumed them. After an `info` a client continues as a new process, so it starts
//! fresh.

use crate::analysis::{Analysis, ConsumerEvent, KeyId, ValueId};
use crate::fxhash::FxHashMap;

/// One record read: where it sits and which op read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReadPoint {
    pub position: u32,
    pub value: ValueId,
    pub op: u64,
}

/// Two successive reads of one key by one process that are not adjacent in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PollJump {
    pub process: u64,
    pub key: KeyId,
    pub from: ReadPoint,
    pub to: ReadPoint,
    /// Both records were returned by the same operation.
    pub internal: bool,
}

impl PollJump {
    /// The next read skipped over values (it landed past the next position).
    pub fn is_skip(&self) -> bool {
        u64::from(self.to.position) > u64::from(self.from.position) + 1
    }

    /// The next read went back to or before what was already read.
    pub fn is_nonmonotonic(&self) -> bool {
        self.to.position <= self.from.position
    }
}

/// Finds every [`PollJump`] of the history, in history order.
pub(crate) fn sweep(analysis: &Analysis) -> Vec<PollJump> {
    let mut jumps = Vec::new();
    let mut cursors: FxHashMap<u64, FxHashMap<KeyId, ReadPoint>> = FxHashMap::default();
    for event in &analysis.consumer_events {
        match event {
            ConsumerEvent::Reset { process } => {
                if let Some(cursor) = cursors.get_mut(process) {
                    cursor.clear();
                }
            }
            ConsumerEvent::Read {
                op,
                process,
                records,
                exempt,
            } => {
                let exempt = analysis.exempt_keys.get(exempt.clone()).unwrap_or(&[]);
                let records = analysis.read_records.get(records.clone()).unwrap_or(&[]);
                let cursor = cursors.entry(*process).or_default();
                for record in records {
                    let Some(position) = analysis.keys[record.key as usize]
                        .order
                        .position(record.offset)
                    else {
                        continue;
                    };
                    let point = ReadPoint {
                        position,
                        value: record.value,
                        op: *op,
                    };
                    let previous = cursor.insert(record.key, point);
                    let Some(previous) = previous else {
                        continue;
                    };
                    if exempt.binary_search(&record.key).is_ok() {
                        continue;
                    }
                    let jump = PollJump {
                        process: *process,
                        key: record.key,
                        from: previous,
                        to: point,
                        internal: previous.op == *op,
                    };
                    if jump.is_skip() || jump.is_nonmonotonic() {
                        jumps.push(jump);
                    }
                }
            }
        }
    }
    jumps
}
