//! The producer sweep shared by `nonmonotonic-send`, `int-nonmonotonic-send` and
//! `int-send-skip`.
//!
//! Source: Jepsen's `jepsen.tests.kafka` (`nonmonotonic-send-cases` and
//! `int-send-skip+nonmonotonic-cases`). Replays the sends of `ok` and `info` completions
//! in history order and tracks, per process and key, the dense position of the last
//! value sent (its first position in the version order). A send that lands at or before
//! the previous one of the same process and key is a [`SendStep`] back; inside one
//! operation, a send landing further than the next dense position is a step that
//! skips. Sends whose
//! position is unknown (never acknowledged, never read) cannot be placed and are passed
//! over; `fail` sends never happened.

use crate::analysis::{Analysis, KeyFacts, KeyId, Outcome, ValueId};
use crate::fxhash::FxHashMap;
use crate::history::Value;

/// One send placed in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SendPoint {
    pub position: u32,
    pub value: ValueId,
    /// The completion of the operation that sent it.
    pub op: u64,
}

/// A send of one process that landed at or before its previous send to the same key,
/// or (inside one operation) past the next position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SendStep {
    pub process: u64,
    pub key: KeyId,
    pub from: SendPoint,
    pub to: SendPoint,
    /// Both sends belong to the same operation.
    pub internal: bool,
}

impl SendStep {
    /// The later send landed at or before the earlier one.
    pub fn is_nonmonotonic(&self) -> bool {
        self.to.position <= self.from.position
    }

    /// The later send landed past the position right after the earlier one.
    pub fn is_skip(&self) -> bool {
        u64::from(self.to.position) > u64::from(self.from.position) + 1
    }

    /// The offsets of both sends, for [`crate::Anomaly::at`].
    pub fn offsets(&self, key: &KeyFacts) -> Vec<u64> {
        [self.from.position, self.to.position]
            .iter()
            .filter_map(|&position| key.order.offset_at(position))
            .collect()
    }

    /// The values of both sends.
    pub fn values(&self, key: &KeyFacts) -> Vec<Value> {
        vec![
            key.value_of(self.from.value).clone(),
            key.value_of(self.to.value).clone(),
        ]
    }
}

/// Finds every backward [`SendStep`], and every internal one that skips, in history
/// order.
pub(crate) fn sweep(analysis: &Analysis) -> Vec<SendStep> {
    let mut steps = Vec::new();
    let mut last_sent: FxHashMap<(u64, KeyId), SendPoint> = FxHashMap::default();
    for send_op in &analysis.send_ops {
        let Some(op) = send_op.completion else {
            continue;
        };
        if !matches!(send_op.outcome, Outcome::Ok | Outcome::Info) {
            continue;
        }
        for send in analysis.sends.get(send_op.sends.clone()).unwrap_or(&[]) {
            let Some(position) = analysis.value(send.key, send.value).first_position() else {
                continue;
            };
            let point = SendPoint {
                position,
                value: send.value,
                op,
            };
            if let Some(previous) = last_sent.insert((send_op.process, send.key), point) {
                let step = SendStep {
                    process: send_op.process,
                    key: send.key,
                    from: previous,
                    to: point,
                    internal: previous.op == op,
                };
                if step.is_nonmonotonic() || (step.internal && step.is_skip()) {
                    steps.push(step);
                }
            }
        }
    }
    steps
}
