//! `unseen`: writes known to have happened that no `ok` read returned by the end of
//! the history.
//!
//! Source: Jepsen's `jepsen.tests.kafka` (`unseen`, the final count of acknowledged but
//! never polled messages). A run ends with drain polls, so whatever is still unseen then
//! was not readable. Writes that are `lost-write` (something after them was read) are
//! reported there and not here, so the two are disjoint: unseen writes are those with no
//! known position, or positioned after everything any `ok` read reached.
//!
//! One anomaly per key with the count and a few example values. Scenarios without a
//! drain phase that reads every partition to its end allow this kind.

use super::{at_position, op_list, EXAMPLES_MAX};
use crate::analysis::{Analysis, Outcome, ValueId};
use crate::Anomaly;

pub const KIND: &str = "unseen";

/// Example values spelled out per key (fewer than lost writes: these are usually many).
const UNSEEN_EXAMPLES_MAX: usize = EXAMPLES_MAX / 2;

pub(crate) fn detect(analysis: &Analysis, found: &mut Vec<Anomaly>) {
    for key in &analysis.keys {
        let bound = key.read_bound();
        let mut unseen: Vec<(Option<u32>, ValueId)> = key
            .values
            .iter()
            .enumerate()
            .filter(|(_, facts)| facts.happened_send().is_some() && facts.first_ok_read().is_none())
            .filter(|(_, facts)| match (facts.last_position(), bound) {
                (Some(position), Some(bound)) => position > bound.position,
                _ => true,
            })
            .map(|(id, facts)| (facts.last_position(), id as ValueId))
            .collect();
        if unseen.is_empty() {
            continue;
        }
        // Known positions first, in log order; then unknown ones by first appearance.
        unseen.sort_by_key(|&(position, value)| (position.is_none(), position, value));
        let mut ops = Vec::new();
        let mut examples = Vec::new();
        let mut offsets = Vec::new();
        let mut values = Vec::new();
        for &(position, value) in unseen.iter().take(UNSEEN_EXAMPLES_MAX) {
            let facts = &key.values[value as usize];
            let Some(send) = facts
                .happened_send()
                .and_then(|send| analysis.sends.get(send))
            else {
                continue;
            };
            let send_op = &analysis.send_ops[send.send_op];
            ops.push(send_op.op());
            offsets.extend(position.and_then(|position| key.order.offset_at(position)));
            values.push(facts.value.clone());
            let how = match send_op.outcome {
                Outcome::Ok => "acknowledged by op",
                _ => "sent with unknown outcome by op",
            };
            examples.push(format!(
                "value {} at {} ({how} {})",
                facts.value,
                at_position(key, position),
                send_op.op()
            ));
        }
        let more = match unseen.len().saturating_sub(UNSEEN_EXAMPLES_MAX) {
            0 => String::new(),
            extra => format!(" and {extra} more"),
        };
        let reached = match bound {
            Some(bound) => format!(
                "the furthest any ok read reached is {} (value {}, {})",
                at_position(key, Some(bound.position)),
                key.value_of(bound.value),
                op_list(&[bound.op])
            ),
            None => "no ok read returned anything from it".to_owned(),
        };
        let detail = format!(
            "{} write(s) known to have happened on {} were never returned by any ok read by the end of the history: {}{more}. Nothing after them was read either ({reached}), so they may simply not have been polled yet; a run whose final drain reads every partition to its end must see them.",
            unseen.len(),
            key.name,
            examples.join(", "),
        );
        found.push(Anomaly::new(KIND, &key.name, detail, ops).at(offsets, values));
    }
}

#[cfg(test)]
mod tests {
    use crate::history::OpType;
    use crate::testkit::History;

    #[test]
    fn acknowledged_writes_never_read_are_unseen_once_per_key() {
        let mut history = History::new();
        history.send(1, OpType::Ok, "k-0", 10, Some(0));
        let first = history.send(1, OpType::Ok, "k-0", 11, Some(1));
        let second = history.send(1, OpType::Ok, "k-0", 12, Some(2));
        history.poll_ok(2, "k-0", &[(0, 10)]);
        let report = history.check();
        assert_eq!(
            report.summary(),
            vec![("unseen", "k-0", vec![first, second])],
            "{report:?}"
        );
        assert!(report.anomalies[0].detail.starts_with("2 write(s)"));
    }

    #[test]
    fn an_acknowledged_write_without_offset_is_unseen_when_never_read() {
        let mut history = History::new();
        let acked = history.send(1, OpType::Ok, "k-0", 10, None);
        let report = history.check();
        assert_eq!(report.summary(), vec![("unseen", "k-0", vec![acked])]);
    }

    #[test]
    fn a_write_read_by_an_info_poll_only_is_still_unseen_but_a_read_one_is_not() {
        let mut history = History::new();
        let acked = history.send(1, OpType::Ok, "k-0", 10, Some(0));
        history.send(1, OpType::Ok, "k-1", 20, Some(0));
        history.poll(2, OpType::Info, &[("k-0", &[(0, 10)])]);
        history.poll_ok(3, "k-1", &[(0, 20)]);
        let report = history.check();
        assert_eq!(report.summary(), vec![("unseen", "k-0", vec![acked])]);
    }
}
