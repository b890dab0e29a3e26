//! `lost-write`: a write known to have happened was never returned by an `ok` read,
//! although some `ok` read returned a value positioned at or after it.
//!
//! Source: Jepsen's `jepsen.tests.kafka` (`lost-write-cases`). Known to have happened:
//! the send completed `ok`, or completed `info` and another value of the same operation
//! was read. Jepsen's bound: the highest *first* dense position of any value an `ok`
//! read returned; a write is lost when its *last* position is at or below that bound
//! (at: another value was read at its very offset, which `inconsistent-offsets` also
//! reports). Consumers read a partition in order, so a reader that reached the bound
//! passed every earlier record; a value no reader returned is gone from the log, e.g.
//! an acknowledged record truncated away by a leader change (KIP-101).
//!
//! One anomaly per key, listing the lost values; writes with no known position, or
//! positioned after everything read, are `unseen` instead.

use super::{at_position, op_list, EXAMPLES_MAX};
use crate::analysis::{Analysis, KeyFacts, Outcome, ReadBound, ValueId};
use crate::Anomaly;

pub const KIND: &str = "lost-write";

pub(crate) fn detect(analysis: &Analysis, found: &mut Vec<Anomaly>) {
    for key in &analysis.keys {
        let Some(bound) = key.read_bound() else {
            continue;
        };
        let mut lost = lost_values(key, bound);
        if lost.is_empty() {
            continue;
        }
        lost.sort_by_key(|&(position, value)| (position, value));
        found.push(describe(analysis, key, bound, &lost));
    }
}

/// Values of `key` lost under `bound`, as (last position, value).
pub(crate) fn lost_values(key: &KeyFacts, bound: ReadBound) -> Vec<(u32, ValueId)> {
    key.values
        .iter()
        .enumerate()
        .filter(|(_, facts)| facts.happened_send.is_some() && facts.first_ok_read.is_none())
        .filter_map(|(id, facts)| {
            let position = facts.last_position?;
            (position <= bound.position).then_some((position, id as ValueId))
        })
        .collect()
}

fn describe(
    analysis: &Analysis,
    key: &KeyFacts,
    bound: ReadBound,
    lost: &[(u32, ValueId)],
) -> Anomaly {
    let mut ops = vec![bound.op];
    let mut examples = Vec::new();
    for &(position, value) in lost.iter().take(EXAMPLES_MAX) {
        let facts = &key.values[value as usize];
        let Some(send) = facts
            .happened_send
            .and_then(|send| analysis.sends.get(send))
        else {
            continue;
        };
        let send_op = &analysis.send_ops[send.send_op];
        ops.push(send_op.op());
        let how = match send_op.outcome {
            Outcome::Ok => "acknowledged by op",
            _ => "sent with unknown outcome by op",
        };
        examples.push(format!(
            "value {} at {} ({how} {})",
            facts.value,
            at_position(key, Some(position)),
            send_op.op()
        ));
    }
    let more = match lost.len().saturating_sub(EXAMPLES_MAX) {
        0 => String::new(),
        extra => format!(" and {extra} more"),
    };
    let detail = format!(
        "{} write(s) known to have happened on {} were never returned by any ok read, although {} read value {} at {}, at or after each of them: {}{more}. A consumer reads a partition in order, so reaching that offset means passing these records; the log lost them (e.g. acknowledged records truncated by a leader change).",
        lost.len(),
        key.name,
        op_list(&[bound.op]),
        key.value_of(bound.value),
        at_position(key, Some(bound.position)),
        examples.join(", "),
    );
    Anomaly::new(KIND, &key.name, detail, ops)
}

#[cfg(test)]
mod tests {
    use crate::history::OpType;
    use crate::testkit::History;

    #[test]
    fn an_acknowledged_write_below_a_later_read_is_lost() {
        let mut history = History::new();
        history.send(1, OpType::Ok, "k-0", 10, Some(0));
        let lost = history.send(1, OpType::Ok, "k-0", 11, Some(1));
        history.send(1, OpType::Ok, "k-0", 12, Some(2));
        history.poll_ok(2, "k-0", &[(0, 10)]);
        let reader = history.poll_ok(3, "k-0", &[(2, 12)]);
        let report = history.check();
        // Process 2 stopped after offset 0 and never came back: 11 is not its skip.
        assert_eq!(
            report.summary(),
            vec![("lost-write", "k-0", vec![lost, reader])],
            "{report:?}"
        );
        assert!(report.anomalies[0].detail.contains("value 11 at offset 1"));
    }

    #[test]
    fn an_info_send_that_was_partly_read_counts_as_happened() {
        let mut history = History::new();
        history.push(
            OpType::Invoke,
            1,
            crate::F::Send,
            crate::OpValue::Mops(vec![
                crate::Mop::send("k-0", 10),
                crate::Mop::send("k-1", 20),
            ]),
        );
        let info = history.push(
            OpType::Info,
            1,
            crate::F::Send,
            crate::OpValue::Mops(vec![
                crate::Mop::send("k-0", 10),
                crate::Mop::send("k-1", 20),
            ]),
        );
        history.send(2, OpType::Ok, "k-0", 11, Some(1));
        // Offset 0 of k-0 holds 10 (a fail poll saw it), yet no ok read returns it.
        history.poll(3, OpType::Fail, &[("k-0", &[(0, 10)])]);
        let reader = history.poll(4, OpType::Ok, &[("k-0", &[(1, 11)]), ("k-1", &[(0, 20)])]);
        let report = history.check();
        assert_eq!(
            report.summary(),
            vec![("lost-write", "k-0", vec![info, reader])],
            "{report:?}"
        );
    }

    #[test]
    fn an_info_send_never_read_is_neither_lost_nor_unseen() {
        let mut history = History::new();
        history.send(1, OpType::Info, "k-0", 10, None);
        history.send(2, OpType::Ok, "k-0", 11, Some(1));
        history.poll_ok(3, "k-0", &[(1, 11)]);
        assert!(history.check().anomalies.is_empty());
    }

    #[test]
    fn a_failed_send_never_read_is_fine() {
        let mut history = History::new();
        history.send(1, OpType::Fail, "k-0", 10, None);
        history.send(2, OpType::Ok, "k-0", 11, Some(0));
        history.poll_ok(3, "k-0", &[(0, 11)]);
        assert!(history.check().anomalies.is_empty());
    }
}
