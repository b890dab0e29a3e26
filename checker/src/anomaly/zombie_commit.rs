//! `zombie-commit`: an offset commit from a fenced generation was accepted.
//!
//! Source: Kafka's group coordinator (`ILLEGAL_GENERATION`; KIP-447 extends the check to
//! `TxnOffsetCommit`): once a rebalance has produced generation `g`, a commit carrying
//! an older generation comes from a member that missed the rebalance (a zombie), and
//! the coordinator must reject it, or the zombie's stale position overwrites the new
//! owner's. Judged from `ok` `commit` operations and `ok` transactions with `offsets`
//! that carry a `generation` (the operation's, or its invoke's): it must not be lower
//! than the highest generation of any `ok` assign or subscribe of the same group that
//! completed before the commit was invoked (the coordinator had moved on by then).

use crate::analysis::{Analysis, GroupEvent, GroupId, Outcome};
use crate::fxhash::FxHashMap;
use crate::Anomaly;

pub const KIND: &str = "zombie-commit";

/// The highest generation of a group after one assignment, in history order.
#[derive(Clone, Copy)]
struct Seen {
    op: u64,
    generation: i64,
    /// The assignment that first showed `generation`.
    assignment: u64,
}

pub(crate) fn detect(analysis: &Analysis, found: &mut Vec<Anomaly>) {
    let mut seen: FxHashMap<GroupId, Vec<Seen>> = FxHashMap::default();
    for event in &analysis.groups.events {
        match event {
            GroupEvent::Membership(membership) if membership.outcome == Outcome::Ok => {
                let (Some(group), Some(generation)) = (membership.group, membership.generation)
                else {
                    continue;
                };
                let history = seen.entry(group).or_default();
                let highest = match history.last() {
                    Some(last) if last.generation >= generation => *last,
                    _ => Seen {
                        op: membership.op,
                        generation,
                        assignment: membership.op,
                    },
                };
                history.push(Seen {
                    op: membership.op,
                    ..highest
                });
            }
            GroupEvent::Commit(commit) if commit.outcome == Outcome::Ok => {
                let Some(generation) = commit.generation else {
                    continue;
                };
                let Some(history) = seen.get(&commit.group) else {
                    continue;
                };
                let invoke = commit.invoke.unwrap_or(commit.op);
                let before = history.partition_point(|step| step.op < invoke);
                let Some(newest) = before.checked_sub(1).map(|step| history[step]) else {
                    continue;
                };
                if generation < newest.generation {
                    found.push(describe(analysis, commit, generation, newest));
                }
            }
            _ => {}
        }
    }
}

fn describe(
    analysis: &Analysis,
    commit: &crate::analysis::Commit,
    generation: i64,
    newest: Seen,
) -> Anomaly {
    let how = if commit.txn.is_some() {
        "transactional offset commit"
    } else {
        "offset commit"
    };
    let offsets: Vec<String> = commit
        .offsets
        .iter()
        .map(|&(key, offset)| format!("{} -> {offset}", analysis.keys[key as usize].name))
        .collect();
    let detail = format!(
        "op {} (process {}), an {how} for group {} carrying generation {generation} ({}), was accepted, although op {} had already assigned partitions of generation {} before the commit was invoked. The coordinator must fence a member of an older generation (ILLEGAL_GENERATION); accepting its commit lets a zombie overwrite the new owner's position.",
        commit.op,
        commit.process,
        analysis.groups.name(commit.group),
        offsets.join(", "),
        newest.assignment,
        newest.generation,
    );
    let mut ops = vec![commit.op, newest.assignment];
    ops.extend(commit.invoke);
    let offsets = commit.offsets.iter().map(|&(_, offset)| offset).collect();
    let anomaly = match commit.offsets.first() {
        Some(&(key, _)) => Anomaly::new(KIND, &analysis.keys[key as usize].name, detail, ops),
        None => Anomaly::spanning_keys(KIND, detail, ops),
    };
    anomaly.at(offsets, Vec::new())
}

#[cfg(test)]
mod tests {
    use crate::history::{OpType, OpValue, F};
    use crate::testkit::History;

    fn group_assign(history: &mut History, process: u64, generation: i64) -> u64 {
        let op = history.assign(process, &["k-0"]);
        let last = history.last_mut();
        last.group = Some("g".into());
        last.generation = Some(generation);
        last.member = Some(format!("m{process}"));
        op
    }

    fn commit(history: &mut History, process: u64, generation: i64) -> u64 {
        let op = history.commit(process, "k-0", 0);
        history.last_mut().generation = Some(generation);
        op
    }

    #[test]
    fn a_commit_of_an_older_generation_after_a_rebalance_is_a_zombie_commit() {
        let mut history = History::new();
        group_assign(&mut history, 1, 1);
        let newer = group_assign(&mut history, 2, 2);
        let zombie = commit(&mut history, 1, 1);
        let report = history.check();
        assert_eq!(
            report.summary(),
            vec![("zombie-commit", "k-0", vec![newer, zombie - 1, zombie])],
            "{report:?}"
        );
    }

    #[test]
    fn a_commit_invoked_before_the_rebalance_completed_is_not_a_zombie() {
        let mut history = History::new();
        group_assign(&mut history, 1, 1);
        let value = OpValue::Commit {
            group: "g".into(),
            offsets: vec![("k-0".into(), 0)],
        };
        history.push(OpType::Invoke, 1, F::Commit, value.clone());
        group_assign(&mut history, 2, 2);
        history.push(OpType::Ok, 1, F::Commit, value);
        history.last_mut().generation = Some(1);
        commit(&mut history, 2, 2);
        assert!(history.check().anomalies.is_empty());
    }
}
