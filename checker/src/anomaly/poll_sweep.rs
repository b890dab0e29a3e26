//! The consumer sweep shared by `poll-skip`, `nonmonotonic-poll` and their `int-`
//! (within one operation) forms.
//!
//! Source: Jepsen's `jepsen.tests.kafka` (`poll-skip+nonmonotonic-cases` and
//! `int-poll-skip+nonmonotonic-cases`). Replays every `ok` read in history order and
//! tracks, per process and key, the dense position of the last record read. Each next
//! record should sit at the very next dense position; any other step is a [`PollJump`].
//! A reset forgets the process's positions for the keys it drops (an `ok`/`info`
//! assign keeps the keys it still assigns, a subscribe the keys of its topics;
//! `seek_to_beginning` forgets all), and keys in a completion's `rebalance_log` are not compared in
//! that operation (their assignment changed during it). Reads of `info`/`fail`
//! operations are not replayed: they place values in the version order, but nobody
//! consumed them. After an `info` a client continues as a new process, so it starts
//! fresh.

use crate::analysis::{Analysis, ConsumerEvent, KeyFacts, KeyId, ValueId};
use crate::fxhash::FxHashMap;
use crate::history::Value;

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

/// The offsets of a jump's two records, for [`crate::Anomaly::at`].
pub(crate) fn jump_offsets(key: &KeyFacts, jump: &PollJump) -> Vec<u64> {
    [jump.from.position, jump.to.position]
        .iter()
        .filter_map(|&position| key.order.offset_at(position))
        .collect()
}

/// The values of a jump's two records.
pub(crate) fn jump_values(key: &KeyFacts, jump: &PollJump) -> Vec<Value> {
    vec![
        key.value_of(jump.from.value).clone(),
        key.value_of(jump.to.value).clone(),
    ]
}

/// No read yet (a cursor slot's `position`).
const UNREAD: u32 = u32::MAX;

/// Finds every [`PollJump`] of the history, in history order. Per process, the last
/// read of each key sits in a vector indexed by key, and each record's position comes
/// from its value's facts, so the sweep does one hash lookup per operation, not per
/// record.
pub(crate) fn sweep(analysis: &Analysis) -> Vec<PollJump> {
    let mut jumps = Vec::new();
    let key_count = analysis.keys.len();
    let unread = ReadPoint {
        position: UNREAD,
        value: 0,
        op: 0,
    };
    let mut slot_of: FxHashMap<u64, usize> = FxHashMap::default();
    let mut cursors: Vec<Vec<ReadPoint>> = Vec::new();
    for event in &analysis.consumer_events {
        match event {
            ConsumerEvent::Reset { process, keep } => {
                let Some(&slot) = slot_of.get(process) else {
                    continue;
                };
                for (key, point) in cursors[slot].iter_mut().enumerate() {
                    if point.position != UNREAD
                        && !keep.keeps(analysis, key as KeyId, &analysis.keys[key].name)
                    {
                        point.position = UNREAD;
                    }
                }
            }
            ConsumerEvent::Read {
                op,
                process,
                records,
                exempt,
                ..
            } => {
                let exempt = analysis.exempt_keys.get(exempt.clone()).unwrap_or(&[]);
                let records = analysis.read_records.get(records.clone()).unwrap_or(&[]);
                let slot = *slot_of.entry(*process).or_insert_with(|| {
                    cursors.push(vec![unread; key_count]);
                    cursors.len() - 1
                });
                let cursor = &mut cursors[slot];
                for record in records {
                    let Some(position) = analysis.record_position(record) else {
                        continue;
                    };
                    let point = ReadPoint {
                        position,
                        value: record.value,
                        op: *op,
                    };
                    let previous = std::mem::replace(&mut cursor[record.key as usize], point);
                    if previous.position == UNREAD || exempt.binary_search(&record.key).is_ok() {
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
