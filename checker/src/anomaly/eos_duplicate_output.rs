//! `eos-duplicate-output`: consume-transform-produce processed one input record in two
//! committed transactions that both produced output.
//!
//! Source: Kafka's exactly-once semantics (KIP-98, KIP-447; see `eos` for the model).
//! Each input record's outputs must commit once: a second committed transaction of the
//! same group that processed the record again means the first one's offset commit was
//! lost or ignored (e.g. a zombie producer not fenced, or offsets committed outside the
//! transaction). One anomaly per pair of transactions and input key, listing the
//! records both processed.

use super::eos::processed;
use super::EXAMPLES_MAX;
use crate::analysis::{Analysis, GroupId, KeyId};
use crate::Anomaly;
use std::collections::BTreeMap;

pub const KIND: &str = "eos-duplicate-output";

pub(crate) fn detect(analysis: &Analysis, found: &mut Vec<Anomaly>) {
    let producing = |txn: usize| {
        analysis.txns[txn]
            .send_op
            .is_some_and(|send_op| !analysis.send_ops[send_op].sends.is_empty())
    };
    let records: Vec<_> = processed(analysis)
        .into_iter()
        .filter(|record| producing(record.txn))
        .collect();
    // (group, key, first txn, second txn) -> input offsets both processed.
    let mut pairs: BTreeMap<(GroupId, KeyId, usize, usize), Vec<u64>> = BTreeMap::new();
    for run in records.chunk_by(|a, b| (a.group, a.key, a.offset) == (b.group, b.key, b.offset)) {
        if let [first, second, ..] = run {
            pairs
                .entry((first.group, first.key, first.txn, second.txn))
                .or_default()
                .push(first.offset);
        }
    }
    for ((group, key, first, second), offsets) in pairs {
        let key = &analysis.keys[key as usize];
        let (first, second) = (&analysis.txns[first], &analysis.txns[second]);
        let values: Vec<_> = offsets
            .iter()
            .take(EXAMPLES_MAX)
            .filter_map(|&offset| {
                let position = key.order.position(offset)?;
                let value = *key.order.first_value_at.get(position as usize)?;
                Some(key.value_of(value).clone())
            })
            .collect();
        let listed: Vec<String> = offsets
            .iter()
            .take(EXAMPLES_MAX)
            .map(u64::to_string)
            .collect();
        let more = match offsets.len().saturating_sub(EXAMPLES_MAX) {
            0 => String::new(),
            extra => format!(" and {extra} more"),
        };
        let detail = format!(
            "input records of {} at offsets {}{more} were processed by two committed transactions of group {}: op {} (process {}) and op {} (process {}), both of which sent output. With exactly-once processing each input record's output commits once, together with the offset that marks it consumed.",
            key.name,
            listed.join(", "),
            analysis.groups.name(group),
            first.completion,
            first.process,
            second.completion,
            second.process,
        );
        let mut ops = vec![first.completion, second.completion];
        ops.extend(first.invoke);
        ops.extend(second.invoke);
        let offsets = offsets.into_iter().take(EXAMPLES_MAX).collect();
        found.push(Anomaly::new(KIND, &key.name, detail, ops).at(offsets, values));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::history::{Mop, OpType, OpValue, Value, F};
    use crate::testkit::History;

    /// A consume-transform-produce transaction: reads `input` of in-0, writes `output`
    /// to out-0 at `output_offset`, commits `next` for in-0.
    pub(crate) fn process(
        history: &mut History,
        process: u64,
        typ: OpType,
        input: &[(u64, i64)],
        output: i64,
        output_offset: u64,
        next: u64,
    ) -> u64 {
        history.push(
            OpType::Invoke,
            process,
            F::Txn,
            OpValue::Mops(vec![Mop::poll(), Mop::send("out-0", output)]),
        );
        let records = input
            .iter()
            .map(|&(offset, value)| (offset, Value::Int(value)))
            .collect();
        let op = history.push(
            typ,
            process,
            F::Txn,
            OpValue::Mops(vec![
                Mop::polled(vec![("in-0".into(), records)]),
                Mop::send_at("out-0", output_offset, output),
            ]),
        );
        history.last_mut().offsets = Some(vec![("in-0".into(), next)]);
        history.last_mut().group = Some("app".into());
        op
    }

    fn inputs(history: &mut History) {
        for offset in 0..4u64 {
            history.send(9, OpType::Ok, "in-0", offset as i64, Some(offset));
        }
    }

    #[test]
    fn an_input_record_processed_by_two_committed_transactions_is_reported() {
        let mut history = History::new();
        inputs(&mut history);
        let first = process(&mut history, 1, OpType::Ok, &[(0, 0), (1, 1)], 100, 0, 2);
        // The next transaction starts again at offset 1: record 1 is processed twice.
        let second = process(
            &mut history,
            2,
            OpType::Ok,
            &[(1, 1), (2, 2), (3, 3)],
            101,
            1,
            4,
        );
        history.poll(8, OpType::Ok, &[("out-0", &[(0, 100), (1, 101)])]);
        let report = history.check();
        assert_eq!(
            report.summary(),
            vec![(
                "eos-duplicate-output",
                "in-0",
                vec![first - 1, first, second - 1, second]
            )],
            "{report:?}"
        );
        assert_eq!(report.anomalies[0].offsets, [1]);
    }

    #[test]
    fn a_record_reprocessed_after_an_aborted_transaction_is_not_a_duplicate() {
        let mut history = History::new();
        inputs(&mut history);
        process(&mut history, 1, OpType::Ok, &[(0, 0), (1, 1)], 100, 0, 2);
        // Aborted: its output (offset 1) is invisible; the retry processes 2..3 again.
        process(&mut history, 1, OpType::Fail, &[(2, 2), (3, 3)], 101, 1, 4);
        process(&mut history, 1, OpType::Ok, &[(2, 2), (3, 3)], 102, 3, 4);
        history.poll(8, OpType::Ok, &[("out-0", &[(0, 100), (3, 102)])]);
        assert!(history.check().anomalies.is_empty());
    }

    #[test]
    fn records_polled_beyond_the_committed_offset_are_left_for_the_next_transaction() {
        let mut history = History::new();
        inputs(&mut history);
        // Polls 0..2 but commits only up to 2: record 2 is the next one's.
        process(
            &mut history,
            1,
            OpType::Ok,
            &[(0, 0), (1, 1), (2, 2)],
            100,
            0,
            2,
        );
        process(&mut history, 2, OpType::Ok, &[(2, 2), (3, 3)], 101, 1, 4);
        history.poll(8, OpType::Ok, &[("out-0", &[(0, 100), (1, 101)])]);
        assert!(history.check().anomalies.is_empty());
    }
}
