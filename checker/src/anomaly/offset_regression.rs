//! `offset-regression`: a group's committed offset for a partition went backwards
//! without an explicit reset.
//!
//! Source: ours (invariants.md), after Kafka's consumer contract: a committed offset
//! marks everything before it consumed, so committing a lower one re-delivers records
//! to whoever resumes from it (a zombie member's late commit, a coordinator that lost
//! an offset commit). Judged from `ok` `commit` operations and `ok` transactions
//! carrying `offsets`, in real-time order: a commit B regresses when its offset is
//! below the group's highest committed offset for that key among commits that
//! completed before B was invoked (commits that overlap in time may legally be applied
//! in either order). An `ok`/`info` assign with `seek_to_beginning` by a member of the
//! group (naming the group, or a process whose latest assign or subscribe did) resets
//! the keys it assigns (all keys of the group if it names none): a rewind on purpose.

use super::op_list;
use crate::analysis::{Analysis, GroupEvent, GroupId, KeyId, Outcome};
use crate::fxhash::FxHashMap;
use crate::Anomaly;

pub const KIND: &str = "offset-regression";

/// One step of a (group, key)'s committed offset, in completion order.
#[derive(Clone, Copy)]
struct Step {
    op: u64,
    /// The highest committed offset after this step and the op that committed it;
    /// `None` after a reset.
    highest: Option<(u64, u64)>,
}

pub(crate) fn detect(analysis: &Analysis, found: &mut Vec<Anomaly>) {
    let mut steps: FxHashMap<(GroupId, KeyId), Vec<Step>> = FxHashMap::default();
    let mut process_group: FxHashMap<u64, GroupId> = FxHashMap::default();
    for event in &analysis.groups.events {
        match event {
            GroupEvent::Membership(membership)
                if matches!(membership.outcome, Outcome::Ok | Outcome::Info) =>
            {
                if let Some(group) = membership.group {
                    process_group.insert(membership.process, group);
                }
                let group = membership
                    .group
                    .or_else(|| process_group.get(&membership.process).copied());
                let (Some(group), true) = (group, membership.seek_to_beginning) else {
                    continue;
                };
                let keys: Vec<KeyId> = if membership.keys.is_empty() {
                    steps
                        .keys()
                        .filter(|(of, _)| *of == group)
                        .map(|&(_, key)| key)
                        .collect()
                } else {
                    membership.keys.clone()
                };
                for key in keys {
                    steps.entry((group, key)).or_default().push(Step {
                        op: membership.op,
                        highest: None,
                    });
                }
            }
            GroupEvent::Commit(commit) if commit.outcome == Outcome::Ok => {
                let invoke = commit.invoke.unwrap_or(commit.op);
                for &(key, offset) in &commit.offsets {
                    let history = steps.entry((commit.group, key)).or_default();
                    let before = history.partition_point(|step| step.op < invoke);
                    let reset_since = history[before..].iter().any(|step| step.highest.is_none());
                    let highest = before.checked_sub(1).and_then(|step| history[step].highest);
                    if let (Some((high, high_op)), false) = (highest, reset_since) {
                        if offset < high {
                            found.push(describe(analysis, commit, key, offset, high, high_op));
                        }
                    }
                    let current = history.last().and_then(|step| step.highest);
                    let highest = match current {
                        Some((high, high_op)) if high >= offset => (high, high_op),
                        _ => (offset, commit.op),
                    };
                    history.push(Step {
                        op: commit.op,
                        highest: Some(highest),
                    });
                }
            }
            _ => {}
        }
    }
}

fn describe(
    analysis: &Analysis,
    commit: &crate::analysis::Commit,
    key: KeyId,
    offset: u64,
    high: u64,
    high_op: u64,
) -> Anomaly {
    let key = &analysis.keys[key as usize];
    let how = if commit.txn.is_some() {
        "transaction"
    } else {
        "commit"
    };
    let mut ops = vec![high_op, commit.op];
    ops.extend(commit.invoke);
    let detail = format!(
        "group {} had committed offset {high} of {} ({}) before {how} op {} (process {}) was invoked, and that {how} committed offset {offset}, lower, with no seek to the beginning by the group in between. A committed offset marks everything before it consumed; moving it back re-delivers records {offset}..{} to whoever resumes from it.",
        analysis.groups.name(commit.group),
        key.name,
        op_list(&[high_op]),
        commit.op,
        commit.process,
        high.saturating_sub(1),
    );
    Anomaly::new(KIND, &key.name, detail, ops).at(vec![high, offset], Vec::new())
}

#[cfg(test)]
mod tests {
    use crate::history::{OpType, OpValue, F};
    use crate::testkit::History;

    #[test]
    fn a_lower_commit_after_a_higher_one_is_a_regression() {
        let mut history = History::new();
        let high = history.commit(1, "k-0", 5);
        let low = history.commit(2, "k-0", 3);
        let report = history.check();
        assert_eq!(
            report.summary(),
            vec![("offset-regression", "k-0", vec![high, low - 1, low])],
            "{report:?}"
        );
        assert_eq!(report.anomalies[0].offsets, [5, 3]);
    }

    #[test]
    fn overlapping_commits_and_a_seek_to_the_beginning_are_no_regression() {
        let mut history = History::new();
        // Process 2's commit of 3 was invoked before process 1's commit of 5 completed.
        let value = |offset| OpValue::Commit {
            group: "g".into(),
            offsets: vec![("k-0".into(), offset)],
        };
        history.push(OpType::Invoke, 2, F::Commit, value(3));
        history.commit(1, "k-0", 5);
        history.push(OpType::Ok, 2, F::Commit, value(3));
        // A member of g rewinds on purpose.
        history.assign(1, &["k-0"]);
        history.last_mut().group = Some("g".into());
        history.last_mut().seek_to_beginning = true;
        history.commit(1, "k-0", 0);
        assert!(history.check().anomalies.is_empty());
    }
}
