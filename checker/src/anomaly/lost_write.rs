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
        .filter(|(_, facts)| facts.happened_send().is_some() && facts.first_ok_read().is_none())
        .filter_map(|(id, facts)| {
            let position = facts.last_position()?;
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
    let mut offsets = Vec::new();
    let mut values = Vec::new();
    for &(position, value) in lost.iter().take(EXAMPLES_MAX) {
        let facts = &key.values[value as usize];
        let Some(send) = facts
            .happened_send()
            .and_then(|send| analysis.sends.get(send))
        else {
            continue;
        };
        let send_op = &analysis.send_ops[send.send_op];
        ops.push(send_op.op());
        offsets.extend(key.order.offset_at(position));
        values.push(facts.value.clone());
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
    Anomaly::new(KIND, &key.name, detail, ops).at(offsets, values)
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

    /// An unknown-outcome operation whose values went to k-0 (offset 0, seen only by a
    /// failed poll) and k-1 (read); then k-0 moved on without value 10.
    type Listed = Vec<(String, String, Vec<u64>)>;

    fn partly_read(f: crate::F) -> (Listed, u64, u64) {
        let mut history = History::new();
        let mops = || {
            crate::OpValue::Mops(vec![
                crate::Mop::send("k-0", 10),
                crate::Mop::send("k-1", 20),
            ])
        };
        history.push(OpType::Invoke, 1, f, mops());
        let info = history.push(OpType::Info, 1, f, mops());
        history.send(2, OpType::Ok, "k-0", 11, Some(1));
        history.poll(3, OpType::Fail, &[("k-0", &[(0, 10)])]);
        let reader = history.poll(4, OpType::Ok, &[("k-0", &[(1, 11)]), ("k-1", &[(0, 20)])]);
        let report = history.check();
        let summary = report
            .summary()
            .into_iter()
            .filter(|(kind, _, _)| *kind == "lost-write")
            .map(|(kind, key, ops)| (kind.to_string(), key.to_string(), ops))
            .collect();
        (summary, info, reader)
    }

    #[test]
    fn a_partly_read_info_txn_proves_its_unread_write() {
        // A transaction's records commit together: value 20 was read, so 10 happened too.
        let (lost, info, reader) = partly_read(crate::F::Txn);
        assert_eq!(
            lost,
            vec![("lost-write".into(), "k-0".into(), vec![info, reader])]
        );
    }

    #[test]
    fn a_partly_read_info_send_does_not_prove_its_unread_write() {
        // A plain send's records succeed or fail on their own: reading 20 says nothing
        // about 10, which stays unknown, neither lost nor unseen.
        let (lost, _, _) = partly_read(crate::F::Send);
        assert!(lost.is_empty(), "{lost:?}");
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
