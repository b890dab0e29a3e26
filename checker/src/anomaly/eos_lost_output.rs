//! `eos-lost-output`: consume-transform-produce committed an input offset past a
//! record that no committed transaction processed.
//!
//! Source: Kafka's exactly-once semantics (KIP-98, KIP-447; see `eos` for the model).
//! For each group and input key: the group's committed offset `C` is the highest offset
//! committed by a committed EOS transaction or an `ok` `commit` of that group. Every
//! committed record of the key (written by an operation that happened, or returned by
//! an `ok` read and not written by a failed one) at an offset in `[L, C)` must have been
//! processed by a committed transaction of the group. `L`, where the group started
//! consuming, is the lower of its first committed offset and the lowest offset it
//! processed (records before it predate the group: `auto.offset.reset`, a seek). One
//! anomaly per group and key, listing the records left without output.

use std::collections::BTreeMap;

use super::eos::{input_keys, processed};
use super::{committed_records, describe_missing};
use crate::analysis::{Analysis, GroupEvent, GroupId, KeyId, Outcome};
use crate::Anomaly;

pub const KIND: &str = "eos-lost-output";

/// The committed offsets of one group and key.
struct Committed {
    /// The highest committed offset and the op that committed it.
    highest: (u64, u64),
    /// The first committed offset, in history order.
    first: u64,
}

pub(crate) fn detect(analysis: &Analysis, found: &mut Vec<Anomaly>) {
    let input_keys = input_keys(analysis);
    if input_keys.is_empty() {
        return;
    }
    let mut committed: BTreeMap<(GroupId, KeyId), Committed> = BTreeMap::new();
    for event in &analysis.groups.events {
        let GroupEvent::Commit(commit) = event else {
            continue;
        };
        let counts = match commit.txn {
            Some(txn) => analysis.txn_committed(&analysis.txns[txn]),
            None => commit.outcome == Outcome::Ok,
        };
        if !counts {
            continue;
        }
        for &(key, offset) in &commit.offsets {
            if !input_keys.contains(&(commit.group, key)) {
                continue;
            }
            committed
                .entry((commit.group, key))
                .and_modify(|known| {
                    if offset > known.highest.0 {
                        known.highest = (offset, commit.op);
                    }
                })
                .or_insert(Committed {
                    highest: (offset, commit.op),
                    first: offset,
                });
        }
    }
    let processed = processed(analysis);
    for ((group, key_id), committed) in committed {
        let start =
            processed.partition_point(|record| (record.group, record.key) < (group, key_id));
        let end = processed.partition_point(|record| (record.group, record.key) <= (group, key_id));
        let done: Vec<u64> = processed[start..end]
            .iter()
            .map(|record| record.offset)
            .collect();
        let lowest = done
            .first()
            .copied()
            .unwrap_or(u64::MAX)
            .min(committed.first);
        let key = &analysis.keys[key_id as usize];
        let (highest, commit_op) = committed.highest;
        let first_position = key.order.offsets.partition_point(|&offset| offset < lowest);
        let end_position = key
            .order
            .offsets
            .partition_point(|&offset| offset < highest);
        let records = committed_records(analysis, key_id);
        let lost: Vec<(u64, usize)> = (first_position..end_position)
            .filter_map(|position| {
                let offset = key.order.offsets[position];
                let value = records[position]?;
                done.binary_search(&offset)
                    .is_err()
                    .then_some((offset, value as usize))
            })
            .collect();
        if lost.is_empty() {
            continue;
        }
        let missing = describe_missing(analysis, key, commit_op, &lost);
        let detail = format!(
            "group {} committed input offset {highest} of {} (op {commit_op}), but {} committed input record(s) below it were processed by no committed transaction of the group: {}. With exactly-once processing, committing an offset means every record before it produced its output in a committed transaction.",
            analysis.groups.name(group),
            key.name,
            lost.len(),
            missing.text,
        );
        found.push(
            Anomaly::new(KIND, &key.name, detail, missing.ops).at(missing.offsets, missing.values),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::eos_duplicate_output::tests::process;
    use crate::history::OpType;
    use crate::testkit::History;

    fn inputs(history: &mut History) -> Vec<u64> {
        (0..4u64)
            .map(|offset| history.send(9, OpType::Ok, "in-0", offset as i64, Some(offset)))
            .collect()
    }

    #[test]
    fn a_commit_past_an_unprocessed_record_is_lost_output() {
        let mut history = History::new();
        let sends = inputs(&mut history);
        process(&mut history, 1, OpType::Ok, &[(0, 0), (1, 1)], 100, 0, 2);
        // Processes only record 3 but commits 4: record 2 has no output.
        let skipping = process(&mut history, 2, OpType::Ok, &[(3, 3)], 101, 1, 4);
        history.poll(
            8,
            OpType::Ok,
            &[("out-0", &[(0, 100), (1, 101)]), ("in-0", &[(2, 2)])],
        );
        let report = history.check();
        assert_eq!(
            report.summary(),
            vec![("eos-lost-output", "in-0", vec![sends[2], skipping])],
            "{report:?}"
        );
        assert_eq!(report.anomalies[0].offsets, [2]);
    }

    #[test]
    fn an_info_transaction_whose_output_was_read_counts_as_committed() {
        let mut history = History::new();
        inputs(&mut history);
        process(&mut history, 1, OpType::Ok, &[(0, 0), (1, 1)], 100, 0, 2);
        process(&mut history, 1, OpType::Info, &[(2, 2)], 101, 1, 3);
        process(&mut history, 2, OpType::Ok, &[(3, 3)], 102, 2, 4);
        // The drain: the info transaction's poll was not a read (history.md).
        history.poll(
            8,
            OpType::Ok,
            &[
                ("out-0", &[(0, 100), (1, 101), (2, 102)]),
                ("in-0", &[(0, 0), (1, 1), (2, 2), (3, 3)]),
            ],
        );
        let report = history.check();
        assert!(report.anomalies.is_empty(), "{report:?}");
    }
}
