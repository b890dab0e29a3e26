//! `split-ownership`: two live members of one group owned the same partition at once.
//!
//! Source: Kafka's group protocol (one owner per partition per generation; KIP-429's
//! cooperative protocol: a partition moves only after its previous owner revoked it).
//! Judged from `ok` assign events that name a `group` and a `generation`; an owner is
//! the event's `member`, or its process when a member is missing.
//! 1. Same generation: two assignments of one group and generation, to different
//!    owners, both contain the partition, and both owners were live with it: each
//!    committed it (an `ok` commit, or an `ok` transaction whose `offsets` name it)
//!    in an operation invoked after the later of the two assignments. One generation
//!    has one assignment; but KIP-345 hands a static member's assignment to its
//!    restarted process (a new member id) within the same generation and fences the
//!    old member, which can no longer commit: that handover is not split (KAFKA-8500's
//!    duplicate static member, whose old process goes on committing, is).
//! 2. Late revoke by a live member: process A's latest assignment holds the
//!    partition; process B (a different owner) is assigned it in generation `gB`;
//!    *afterwards* A completes an assignment without it in a generation `gA >= gB`.
//!    A client records its revocation as an assign without the revoked partitions.
//!    Eager protocol: before it rejoins, with its old generation, so a live member's
//!    release precedes the new owner's assignment. Cooperative protocol (KIP-429): a
//!    member learns in generation `g+1` that it must give the partition up and records
//!    an assignment of `g+1` without it; the partition goes to another member only in
//!    `g+2`, which cannot form before that member rejoins. So a release in `gA >= gB`
//!    recorded after B got the partition in `gB` means that A, a member of `gB`, still
//!    held the partition when `gB` gave it to B: the assignor handed it over in the
//!    very rebalance in which its owner still held it (the
//!    `cooperative-assign-before-revoke` bug, or an assignor that believed a stale
//!    claim, `stale-owned-partitions`). A release in an older generation than B's is a
//!    member the group had already removed (a zombie, stalled or cut off past its
//!    session or rebalance time-out): not a member of `gB`, so not split; what the
//!    protocol promises against zombies is commit fencing (`zombie-commit`).
//!
//! A process that crashed or completed `info` holds nothing. Nor does one whose
//! assignment names the group but carries no generation: a fenced member that lost
//! its partitions (`onPartitionsLost`) is no longer live, so its release is not
//! checked; the protocol's promise against such a zombie is commit fencing, which
//! `zombie-commit` checks.

use std::collections::BTreeMap;

use crate::analysis::{Analysis, GroupEvent, GroupId, KeyId, Membership, Outcome};
use crate::fxhash::FxHashMap;
use crate::Anomaly;

pub const KIND: &str = "split-ownership";

/// One process's hold on a partition, from its latest assignment containing it.
#[derive(Clone, Debug)]
struct Hold {
    process: u64,
    member: Option<String>,
    generation: i64,
    op: u64,
}

fn same_owner(
    a_process: u64,
    a_member: Option<&str>,
    b_process: u64,
    b_member: Option<&str>,
) -> bool {
    // One process is one consumer, whatever member ids it had (a static member that
    // rejoins after losing its id gets a new one in the same generation, KIP-345).
    a_process == b_process
        || match (a_member, b_member) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
}

pub(crate) fn detect(analysis: &Analysis, found: &mut Vec<Anomaly>) {
    let assignments: Vec<&Membership> = analysis
        .groups
        .events
        .iter()
        .filter_map(|event| match event {
            GroupEvent::Membership(membership)
                if membership.outcome == Outcome::Ok
                    && !membership.subscribe
                    && membership.group.is_some()
                    && membership.generation.is_some() =>
            {
                Some(membership)
            }
            _ => None,
        })
        .collect();
    if assignments.is_empty() {
        return;
    }
    same_generation(analysis, &assignments, found);
    late_revokes(analysis, found);
}

/// An `ok` commit of a key: (process, invoke index, completion index).
type KeyCommit = (u64, u64, u64);

/// Per (group, key): the `ok` commits of it.
fn commits_by_key(analysis: &Analysis) -> FxHashMap<(GroupId, KeyId), Vec<KeyCommit>> {
    let mut commits: FxHashMap<(GroupId, KeyId), Vec<KeyCommit>> = FxHashMap::default();
    for event in &analysis.groups.events {
        if let GroupEvent::Commit(commit) = event {
            if commit.outcome != Outcome::Ok {
                continue;
            }
            let invoke = commit.invoke.unwrap_or(commit.op);
            for &(key, _) in &commit.offsets {
                commits.entry((commit.group, key)).or_default().push((
                    commit.process,
                    invoke,
                    commit.op,
                ));
            }
        }
    }
    commits
}

/// Rule 1: per (group, generation, key), the first pair of assignments to different
/// owners that both committed the key afterwards.
fn same_generation(analysis: &Analysis, assignments: &[&Membership], found: &mut Vec<Anomaly>) {
    let commits = commits_by_key(analysis);
    let mut by_generation: BTreeMap<(GroupId, i64, KeyId), Vec<&Membership>> = BTreeMap::new();
    for &assignment in assignments {
        let (Some(group), Some(generation)) = (assignment.group, assignment.generation) else {
            continue;
        };
        for &key in &assignment.keys {
            by_generation
                .entry((group, generation, key))
                .or_default()
                .push(assignment);
        }
    }
    for ((group, generation, key), owners) in by_generation {
        let key_commits = commits.get(&(group, key)).map_or(&[][..], Vec::as_slice);
        // The first commit of the key by `process` invoked after op `after`.
        let committed_after = |process: u64, after: u64| {
            key_commits
                .iter()
                .filter(|&&(p, invoke, _)| p == process && invoke > after)
                .map(|&(_, _, op)| op)
                .min()
        };
        let split = owners.iter().enumerate().find_map(|(i, first)| {
            owners[i + 1..].iter().find_map(|other| {
                if same_owner(
                    first.process,
                    first.member.as_deref(),
                    other.process,
                    other.member.as_deref(),
                ) {
                    return None;
                }
                let later = first.op.max(other.op);
                let first_commit = committed_after(first.process, later)?;
                let other_commit = committed_after(other.process, later)?;
                Some((first, other, first_commit, other_commit))
            })
        });
        let Some((first, other, first_commit, other_commit)) = split else {
            continue;
        };
        let key = &analysis.keys[key as usize];
        let detail = format!(
            "in group {}, generation {generation} assigned {} to {} (op {}) and to {} (op {}), and both went on committing it (ops {first_commit} and {other_commit}). A generation's assignment gives each partition to one member, so both consumed it at once.",
            analysis.groups.name(group),
            key.name,
            owner_text(first.process, first.member.as_deref()),
            first.op,
            owner_text(other.process, other.member.as_deref()),
            other.op,
        );
        found.push(Anomaly::new(
            KIND,
            &key.name,
            detail,
            vec![first.op, other.op, first_commit, other_commit],
        ));
    }
}

fn owner_text(process: u64, member: Option<&str>) -> String {
    match member {
        Some(member) => format!("member \"{member}\" (process {process})"),
        None => format!("process {process}"),
    }
}

/// Per process: its group and the keys of its latest assignment.
type Held = FxHashMap<u64, (GroupId, Vec<KeyId>)>;

/// Rule 2: replays assignments and crashes, tracking who holds each partition.
fn late_revokes(analysis: &Analysis, found: &mut Vec<Anomaly>) {
    let mut holders: FxHashMap<(GroupId, KeyId), Vec<Hold>> = FxHashMap::default();
    let mut held: Held = FxHashMap::default();
    for event in &analysis.groups.events {
        match event {
            GroupEvent::Gone { process, .. } => {
                release(&mut holders, &mut held, *process, |_, _, _| {});
            }
            GroupEvent::Membership(membership)
                if membership.outcome == Outcome::Ok && !membership.subscribe =>
            {
                let Some(group) = membership.group else {
                    continue;
                };
                let Some(generation) = membership.generation else {
                    // Fenced: its partitions are lost, not revoked.
                    release(&mut holders, &mut held, membership.process, |_, _, _| {});
                    continue;
                };
                release(
                    &mut holders,
                    &mut held,
                    membership.process,
                    |previous_group, key, holds| {
                        if previous_group == group && membership.keys.binary_search(&key).is_err() {
                            check_revoke(analysis, membership, generation, key, holds, found);
                        }
                    },
                );
                for &key in &membership.keys {
                    holders.entry((group, key)).or_default().push(Hold {
                        process: membership.process,
                        member: membership.member.clone(),
                        generation,
                        op: membership.op,
                    });
                }
                held.insert(membership.process, (group, membership.keys.clone()));
            }
            _ => {}
        }
    }
}

/// Drops every hold of `process`, first showing `dropped` (group, key, holders) each
/// partition it held.
fn release(
    holders: &mut FxHashMap<(GroupId, KeyId), Vec<Hold>>,
    held: &mut Held,
    process: u64,
    mut dropped: impl FnMut(GroupId, KeyId, &[Hold]),
) {
    let Some((group, keys)) = held.remove(&process) else {
        return;
    };
    for key in keys {
        if let Some(holds) = holders.get_mut(&(group, key)) {
            dropped(group, key, holds);
            holds.retain(|hold| hold.process != process);
        }
    }
}

/// `revoke` (generation `generation`) drops `key`: report another owner that was
/// assigned the key in the same or a newer generation while the revoking process
/// still held it.
fn check_revoke(
    analysis: &Analysis,
    revoke: &Membership,
    generation: i64,
    key: KeyId,
    holds: &[Hold],
    found: &mut Vec<Anomaly>,
) {
    let Some(own) = holds.iter().find(|hold| hold.process == revoke.process) else {
        return;
    };
    let taker = holds.iter().find(|hold| {
        hold.process != revoke.process
            && hold.generation <= generation
            // B got it while A held it, in a newer generation than A's hold: a
            // rebalance moved it. (Within one generation, KIP-345 hands a static
            // member's assignment to its restarted process, and the old one may release
            // it later as a fenced zombie: rule 1, with its evidence of commits, judges
            // one generation's two owners.)
            && hold.op > own.op
            && hold.generation > own.generation
            && !same_owner(
                hold.process,
                hold.member.as_deref(),
                revoke.process,
                revoke.member.as_deref(),
            )
    });
    let Some(taker) = taker else {
        return;
    };
    let key = &analysis.keys[key as usize];
    let detail = format!(
        "{} held {} since op {} (generation {}); {} was assigned it in generation {} by op {}; only afterwards did op {} release it from the first, in generation {generation}: the first was a member of the generation that gave the partition away. A member records its revocation before the partition moves: eager, before rejoining, with its old generation; cooperative (KIP-429), in the generation that takes the partition away, one before the generation that gives it to another member. So for a while both held it.",
        owner_text(revoke.process, revoke.member.as_deref()),
        key.name,
        own.op,
        own.generation,
        owner_text(taker.process, taker.member.as_deref()),
        taker.generation,
        taker.op,
        revoke.op,
    );
    found.push(Anomaly::new(
        KIND,
        &key.name,
        detail,
        vec![own.op, taker.op, revoke.op],
    ));
}

#[cfg(test)]
mod tests {
    use crate::history::{OpType, OpValue, F};
    use crate::testkit::History;

    fn group_assign(history: &mut History, process: u64, keys: &[&str], generation: i64) -> u64 {
        let op = history.assign(process, keys);
        let last = history.last_mut();
        last.group = Some("g".into());
        last.generation = Some(generation);
        last.member = Some(format!("m{process}"));
        op
    }

    /// An `ok` commit of `key` by `process` in generation `generation`.
    fn commit(history: &mut History, process: u64, key: &str, generation: i64) -> u64 {
        let op = history.commit(process, key, 1);
        history.last_mut().generation = Some(generation);
        op
    }

    /// The check finds nothing wrong with `history`.
    fn assert_no_anomaly(history: &History) {
        let report = history.check();
        assert!(report.anomalies.is_empty(), "{report:?}");
    }

    /// The check finds exactly one anomaly: `key` split between owners, shown by `ops`.
    fn assert_split(history: &History, key: &str, ops: Vec<u64>) {
        let report = history.check();
        assert_eq!(
            report.summary(),
            vec![("split-ownership", key, ops)],
            "{report:?}"
        );
    }

    #[test]
    fn one_generation_giving_a_partition_to_two_live_members_is_split() {
        let mut history = History::new();
        let first = group_assign(&mut history, 1, &["k-0", "k-1"], 3);
        let second = group_assign(&mut history, 2, &["k-1"], 3);
        let first_commit = commit(&mut history, 1, "k-1", 3);
        let second_commit = commit(&mut history, 2, "k-1", 3);
        assert_split(
            &history,
            "k-1",
            vec![first, second, first_commit, second_commit],
        );
    }

    #[test]
    fn a_static_handover_within_a_generation_is_not_split() {
        // KIP-345: a restarted static member takes its instance's assignment in the
        // same generation; the old process, fenced, commits nothing more (its
        // transaction fails) although it still believed itself the owner.
        let mut history = History::new();
        group_assign(&mut history, 1, &["k-0"], 2);
        commit(&mut history, 1, "k-0", 2);
        group_assign(&mut history, 2, &["k-0"], 2);
        commit(&mut history, 2, "k-0", 2);
        let zombie = OpValue::Commit {
            group: "g".into(),
            offsets: vec![("k-0".into(), 5)],
        };
        history.push(OpType::Invoke, 1, F::Commit, zombie.clone());
        history.push(OpType::Fail, 1, F::Commit, zombie);
        history.last_mut().error = Some("FENCED_INSTANCE_ID".into());
        commit(&mut history, 2, "k-0", 2);
        assert_no_anomaly(&history);
    }

    #[test]
    fn a_revoke_in_a_newer_generation_than_the_new_owners_is_split() {
        // The old owner was a member of generation 3 (it released in 3) while 2 had
        // already given its partition away.
        let mut history = History::new();
        let held = group_assign(&mut history, 1, &["k-0"], 1);
        let taken = group_assign(&mut history, 2, &["k-0"], 2);
        let revoke = group_assign(&mut history, 1, &[], 3);
        assert_split(&history, "k-0", vec![held, taken, revoke]);
    }

    #[test]
    fn a_release_by_the_member_that_took_over_a_static_slot_is_not_split() {
        // KIP-345: process 2 (the restarted static member) takes process 1's
        // assignment in generation 1 and later revokes it; process 1's older hold is a
        // handover, not a taking.
        let mut history = History::new();
        group_assign(&mut history, 1, &["k-0"], 1);
        group_assign(&mut history, 2, &["k-0"], 1);
        group_assign(&mut history, 2, &[], 1);
        assert_no_anomaly(&history);
    }

    #[test]
    fn one_process_under_two_member_ids_is_one_owner() {
        let mut history = History::new();
        group_assign(&mut history, 1, &["k-0"], 1);
        group_assign(&mut history, 1, &["k-0"], 1);
        history.last_mut().member = Some("m1-again".into());
        commit(&mut history, 1, "k-0", 1);
        assert_no_anomaly(&history);
    }

    #[test]
    fn a_replaced_static_members_late_release_in_the_same_generation_is_not_split() {
        let mut history = History::new();
        group_assign(&mut history, 1, &["k-0"], 1);
        // KIP-345: the replacement takes the slot in generation 1; the stalled old
        // process wakes and gives the partition up, still in generation 1.
        group_assign(&mut history, 2, &["k-0"], 1);
        group_assign(&mut history, 1, &[], 1);
        assert_no_anomaly(&history);
    }

    #[test]
    fn a_zombies_late_revoke_in_its_old_generation_is_not_split() {
        // A member stalled past its session: the group moved on to generation 3
        // without it; when it wakes it revokes, in its old generation 2. It was not a
        // member of generation 3 (commit fencing is what guards against it).
        let mut history = History::new();
        group_assign(&mut history, 1, &["k-0"], 1);
        group_assign(&mut history, 2, &["k-0"], 3);
        group_assign(&mut history, 1, &[], 2);
        assert_no_anomaly(&history);
    }

    #[test]
    fn a_cooperative_revoke_before_the_move_is_not_split() {
        let mut history = History::new();
        group_assign(&mut history, 1, &["k-0", "k-1"], 1);
        // Generation 2 takes k-0 from its owner; generation 3 gives it away.
        group_assign(&mut history, 1, &["k-1"], 2);
        group_assign(&mut history, 2, &["k-0"], 3);
        assert_no_anomaly(&history);
    }

    #[test]
    fn a_cooperative_move_in_the_revoking_generation_is_split() {
        // cooperative-assign-before-revoke: generation 2 both takes k-0 from its
        // owner and gives it to another member, who learns it first.
        let mut history = History::new();
        let held = group_assign(&mut history, 1, &["k-0", "k-1"], 1);
        let taken = group_assign(&mut history, 2, &["k-0"], 2);
        let revoke = group_assign(&mut history, 1, &["k-1"], 2);
        assert_split(&history, "k-0", vec![held, taken, revoke]);
    }

    #[test]
    fn an_eager_revoke_before_rejoining_is_not_split() {
        let mut history = History::new();
        group_assign(&mut history, 1, &["k-0"], 1);
        // Eager: the member gives everything up, with its old generation, then rejoins.
        group_assign(&mut history, 1, &[], 1);
        group_assign(&mut history, 2, &["k-0"], 2);
        group_assign(&mut history, 1, &["k-1"], 2);
        assert_no_anomaly(&history);
    }

    #[test]
    fn a_fenced_member_losing_its_partitions_holds_nothing() {
        let mut history = History::new();
        group_assign(&mut history, 1, &["k-0"], 1);
        group_assign(&mut history, 2, &["k-0"], 2);
        // onPartitionsLost: the group, no generation. Then it rejoins generation 2.
        history.assign(1, &[]);
        history.last_mut().group = Some("g".into());
        group_assign(&mut history, 1, &["k-1"], 2);
        assert_no_anomaly(&history);
    }

    #[test]
    fn a_crashed_owner_holds_nothing() {
        let mut history = History::new();
        group_assign(&mut history, 1, &["k-0"], 1);
        history.push(OpType::Invoke, 1, F::Crash, OpValue::Null);
        history.push(OpType::Info, 1, F::Crash, OpValue::Null);
        group_assign(&mut history, 2, &["k-0"], 2);
        assert_no_anomaly(&history);
    }
}
