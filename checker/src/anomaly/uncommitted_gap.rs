//! `uncommitted-gap`: a group committed offset `c` for a partition, but a record below
//! `c` was never returned to any member of the group (at-least-once broken).
//!
//! Source: Kafka's consumer contract (the committed offset is "the offset of the next
//! message the application will consume", `KafkaConsumer#commitSync`): a group that
//! commits `c` claims to have consumed everything before it, and a member that takes
//! over resumes at `c`, so a record below `c` that no member was ever given is never
//! consumed. Judged from `ok` `commit` operations (transactional offset commits are
//! judged by `eos-lost-output`):
//! - a *member read* of group `g` is a record returned by an `ok` poll or txn of a
//!   process whose latest assign or subscribe named `g`, or that commits for `g`
//!   (`member_reads`);
//! - the group's committed offset `c` for a key is the highest it committed;
//! - the records that count are the committed records of the key (written by an
//!   operation that happened, or returned by an `ok` read and not written by a failed
//!   one) at offsets in `[L, c)`, where `L`, where the group started, is the lower of its
//!   first committed offset and the lowest offset a member read (records before it
//!   predate the group: `auto.offset.reset=latest`, a seek).
//!
//! One anomaly per group and key, listing the records no member was given.

use std::collections::BTreeMap;

use super::member_reads::{self, Given, Positions};
use super::{committed_records, describe_missing};
use crate::analysis::{Analysis, GroupId, KeyId};
use crate::Anomaly;

pub const KIND: &str = "uncommitted-gap";

/// The `ok` commits of one group and key.
struct Committed {
    /// The highest committed offset and the op that committed it.
    highest: (u64, u64),
    /// The first committed offset, in history order.
    first: u64,
}

pub(crate) fn detect(analysis: &Analysis, given: &Given, found: &mut Vec<Anomaly>) {
    let mut committed: BTreeMap<(GroupId, KeyId), Committed> = BTreeMap::new();
    for commit in member_reads::plain_commits(analysis) {
        for &(key, offset) in &commit.offsets {
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
    if committed.is_empty() {
        return;
    }
    let empty = Positions::default();
    for ((group, key_id), committed) in committed {
        let reads = given.positions(group, key_id).unwrap_or(&empty);
        report_gaps(analysis, group, key_id, &committed, reads, found);
    }
}

fn report_gaps(
    analysis: &Analysis,
    group: GroupId,
    key_id: KeyId,
    committed: &Committed,
    reads: &Positions,
    found: &mut Vec<Anomaly>,
) {
    let key = &analysis.keys[key_id as usize];
    let lowest_read = reads
        .lowest
        .and_then(|position| key.order.offset_at(position))
        .unwrap_or(u64::MAX);
    let lowest = lowest_read.min(committed.first);
    let (highest, commit_op) = committed.highest;
    let start = key.order.offsets.partition_point(|&offset| offset < lowest);
    let end = key
        .order
        .offsets
        .partition_point(|&offset| offset < highest);
    if start >= end {
        return;
    }
    let records = committed_records(analysis, key_id);
    let gaps: Vec<(u64, usize)> = (start..end)
        .filter_map(|position| {
            let value = records[position]?;
            (!reads.contains(position as u32))
                .then_some((key.order.offsets[position], value as usize))
        })
        .collect();
    if gaps.is_empty() {
        return;
    }
    let missing = describe_missing(analysis, key, commit_op, &gaps);
    let detail = format!(
        "group {} committed offset {highest} of {} (op {commit_op}), but {} record(s) below it were never returned to any member of the group by an ok poll: {}. A committed offset says everything before it was consumed; a member taking over resumes there, so these records are never consumed (at-least-once broken).",
        analysis.groups.name(group),
        key.name,
        gaps.len(),
        missing.text,
    );
    found.push(
        Anomaly::new(KIND, &key.name, detail, missing.ops).at(missing.offsets, missing.values),
    );
}

#[cfg(test)]
mod tests {
    use crate::history::OpType;
    use crate::testkit::History;

    fn group_assign(history: &mut History, process: u64, keys: &[&str], generation: i64) -> u64 {
        let op = history.assign(process, keys);
        let last = history.last_mut();
        last.group = Some("g".into());
        last.generation = Some(generation);
        last.member = Some(format!("m{process}"));
        op
    }

    fn log(history: &mut History) -> Vec<u64> {
        (0..4u64)
            .map(|offset| history.send(9, OpType::Ok, "k-0", 10 + offset as i64, Some(offset)))
            .collect()
    }

    #[test]
    fn a_commit_past_a_record_no_member_read_is_a_gap() {
        let mut history = History::new();
        let sends = log(&mut history);
        group_assign(&mut history, 1, &["k-0"], 1);
        history.poll_ok(1, "k-0", &[(0, 10), (1, 11)]);
        // The member commits 3 though it read only up to 1: record 2 is skipped.
        let committing = history.commit(1, "k-0", 3);
        history.poll_ok(7, "k-0", &[(0, 10), (1, 11), (2, 12), (3, 13)]);
        let report = history.check();
        assert_eq!(
            report.summary(),
            vec![("uncommitted-gap", "k-0", vec![sends[2], committing])],
            "{report:?}"
        );
        assert_eq!(report.anomalies[0].offsets, [2]);
    }

    #[test]
    fn records_read_by_another_member_before_a_rebalance_are_no_gap() {
        let mut history = History::new();
        log(&mut history);
        group_assign(&mut history, 1, &["k-0"], 1);
        history.poll_ok(1, "k-0", &[(0, 10), (1, 11)]);
        group_assign(&mut history, 1, &[], 2);
        group_assign(&mut history, 2, &["k-0"], 2);
        history.poll_ok(2, "k-0", &[(2, 12)]);
        history.commit(2, "k-0", 3);
        history.poll_ok(7, "k-0", &[(0, 10), (1, 11), (2, 12), (3, 13)]);
        let report = history.check();
        assert!(report.anomalies.is_empty(), "{report:?}");
    }

    #[test]
    fn records_before_the_group_started_are_no_gap() {
        let mut history = History::new();
        log(&mut history);
        // auto.offset.reset=latest: the group starts at offset 2.
        group_assign(&mut history, 1, &["k-0"], 1);
        history.poll_ok(1, "k-0", &[(2, 12), (3, 13)]);
        history.commit(1, "k-0", 4);
        history.poll_ok(7, "k-0", &[(0, 10), (1, 11), (2, 12), (3, 13)]);
        assert!(history.check().anomalies.is_empty());
    }
}
