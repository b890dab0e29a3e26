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
//!   process whose latest assign or subscribe named `g`, or that commits for `g`;
//! - the group's committed offset `c` for a key is the highest it committed;
//! - the records that count are the committed records of the key (written by an
//!   operation that happened, or returned by an `ok` read and not written by a failed
//!   one) at offsets in `[L, c)`, where `L`, where the group started, is the lower of its
//!   first committed offset and the lowest offset a member read (records before it
//!   predate the group: `auto.offset.reset=latest`, a seek).
//!
//! One anomaly per group and key, listing the records no member was given.

use std::collections::BTreeMap;

use super::{committed_records, describe_missing};
use crate::analysis::{Analysis, ConsumerEvent, GroupEvent, GroupId, KeyId, Outcome};
use crate::fxhash::FxHashMap;
use crate::Anomaly;

pub const KIND: &str = "uncommitted-gap";

/// The `ok` commits of one group and key.
struct Committed {
    /// The highest committed offset and the op that committed it.
    highest: (u64, u64),
    /// The first committed offset, in history order.
    first: u64,
}

pub(crate) fn detect(analysis: &Analysis, found: &mut Vec<Anomaly>) {
    let mut committed: BTreeMap<(GroupId, KeyId), Committed> = BTreeMap::new();
    let mut committers: FxHashMap<u64, Vec<GroupId>> = FxHashMap::default();
    for event in &analysis.groups.events {
        let GroupEvent::Commit(commit) = event else {
            continue;
        };
        if commit.txn.is_some() || commit.outcome != Outcome::Ok {
            continue;
        }
        let groups = committers.entry(commit.process).or_default();
        if !groups.contains(&commit.group) {
            groups.push(commit.group);
        }
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
    let returned = member_reads(analysis, &committed, &committers);
    for ((group, key_id), committed) in committed {
        let empty = Positions::default();
        let reads = returned.get(&(group, key_id)).unwrap_or(&empty);
        report_gaps(analysis, group, key_id, &committed, reads, found);
    }
}

/// The dense positions of one key returned to members of one group: a bitset, and the
/// lowest position.
#[derive(Default)]
struct Positions {
    bits: Vec<u64>,
    lowest: Option<u32>,
}

impl Positions {
    fn insert(&mut self, position: u32) {
        let word = position as usize / 64;
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        self.bits[word] |= 1 << (position % 64);
        self.lowest = Some(self.lowest.map_or(position, |lowest| lowest.min(position)));
    }

    fn contains(&self, position: u32) -> bool {
        self.bits
            .get(position as usize / 64)
            .is_some_and(|word| word & (1 << (position % 64)) != 0)
    }
}

/// Positions of each committed (group, key) returned to a member of the group. Per
/// operation one lookup finds the reader's groups; per record, a vector indexed by key
/// finds the bitset, and the record's value gives its position.
fn member_reads(
    analysis: &Analysis,
    committed: &BTreeMap<(GroupId, KeyId), Committed>,
    committers: &FxHashMap<u64, Vec<GroupId>>,
) -> BTreeMap<(GroupId, KeyId), Positions> {
    let group_count = analysis.groups.names.len();
    let key_count = analysis.keys.len();
    // Per group, per key: the slot of a committed (group, key) in `positions`.
    let mut slots: Vec<Vec<Option<usize>>> = vec![vec![None; key_count]; group_count];
    let mut positions: Vec<Positions> = Vec::new();
    let mut names: Vec<(GroupId, KeyId)> = Vec::new();
    for &(group, key) in committed.keys() {
        if let Some(slot) = slots
            .get_mut(group as usize)
            .and_then(|keys| keys.get_mut(key as usize))
        {
            *slot = Some(positions.len());
            positions.push(Positions::default());
            names.push((group, key));
        }
    }
    let mut current_group: FxHashMap<u64, GroupId> = FxHashMap::default();
    let mut events = analysis.groups.events.iter().peekable();
    let mut groups: Vec<GroupId> = Vec::new();
    for event in &analysis.consumer_events {
        let ConsumerEvent::Read {
            op,
            process,
            records,
            ..
        } = event
        else {
            continue;
        };
        while let Some(group_event) = events.next_if(|group_event| group_event.op() < *op) {
            let GroupEvent::Membership(membership) = group_event else {
                continue;
            };
            match membership.group {
                Some(group) => {
                    current_group.insert(membership.process, group);
                }
                None if !membership.subscribe => {
                    current_group.remove(&membership.process);
                }
                None => {}
            }
        }
        groups.clear();
        groups.extend(current_group.get(process));
        for &group in committers.get(process).map(Vec::as_slice).unwrap_or(&[]) {
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        for &group in &groups {
            let Some(keys) = slots.get(group as usize) else {
                continue;
            };
            for record in analysis.read_records.get(records.clone()).unwrap_or(&[]) {
                let Some(slot) = keys.get(record.key as usize).copied().flatten() else {
                    continue;
                };
                if let Some(position) = analysis.record_position(record) {
                    positions[slot].insert(position);
                }
            }
        }
    }
    names.into_iter().zip(positions).collect()
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
    use crate::history::{OpType, OpValue, F};
    use crate::testkit::History;

    fn commit(history: &mut History, process: u64, key: &str, offset: u64) -> u64 {
        let value = OpValue::Commit {
            group: "g".into(),
            offsets: vec![(key.into(), offset)],
        };
        history.push(OpType::Invoke, process, F::Commit, value.clone());
        history.push(OpType::Ok, process, F::Commit, value)
    }

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
        let committing = commit(&mut history, 1, "k-0", 3);
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
        commit(&mut history, 2, "k-0", 3);
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
        commit(&mut history, 1, "k-0", 4);
        history.poll_ok(7, "k-0", &[(0, 10), (1, 11), (2, 12), (3, 13)]);
        assert!(history.check().anomalies.is_empty());
    }
}
