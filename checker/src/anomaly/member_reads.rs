//! Which records a consumer group's members were given, for the anomalies that judge
//! what a group consumed (`uncommitted-gap`, `redelivered`). One replay serves both.
//!
//! A *member read* of group `g` is a record returned by an `ok` poll or txn of a
//! process whose latest assign or subscribe named `g`, or that commits for `g` (an `ok`
//! commit outside a transaction): Kafka lets a manually assigned consumer commit for a
//! group (`assign` then `commitSync`), and its commits are the group's like any
//! member's. Polls of `fail`/`info` operations are not reads: the consumer may not
//! have processed what they returned (`history.md`).

use crate::analysis::{
    Analysis, Commit, ConsumerEvent, GroupEvent, GroupId, KeyId, Outcome, ReadRecord, ValueId,
};
use crate::fxhash::FxHashMap;

/// The `ok` commits outside a transaction, in history order (transactional offset
/// commits are the exactly-once anomalies' to judge).
pub(crate) fn plain_commits(analysis: &Analysis) -> impl Iterator<Item = &Commit> {
    analysis
        .groups
        .events
        .iter()
        .filter_map(|event| match event {
            GroupEvent::Commit(commit) if commit.txn.is_none() && commit.outcome == Outcome::Ok => {
                Some(commit)
            }
            _ => None,
        })
}

/// One `ok` operation's records, read for the groups its process was a member of.
pub(crate) struct MemberRead<'a> {
    /// The operation's completion.
    pub op: u64,
    pub process: u64,
    pub groups: &'a [GroupId],
    pub records: &'a [ReadRecord],
}

/// Calls `visit` with every member read, in history order. Per operation one lookup
/// finds the reader's groups; operations of processes in no group are skipped.
pub(crate) fn for_each(analysis: &Analysis, mut visit: impl FnMut(&MemberRead)) {
    let mut committers: FxHashMap<u64, Vec<GroupId>> = FxHashMap::default();
    for commit in plain_commits(analysis) {
        let groups = committers.entry(commit.process).or_default();
        if !groups.contains(&commit.group) {
            groups.push(commit.group);
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
        if groups.is_empty() {
            continue;
        }
        visit(&MemberRead {
            op: *op,
            process: *process,
            groups: &groups,
            records: analysis.read_records.get(records.clone()).unwrap_or(&[]),
        });
    }
}

/// What the members of each group were given.
pub(crate) struct Given {
    /// Per group, per key: the positions returned to its members.
    positions: Vec<Vec<Positions>>,
    /// Every member read of a record its group had already been given, in history
    /// order.
    pub again: Vec<Again>,
}

/// A member read of a record its group had been given before.
#[derive(Clone, Copy)]
pub(crate) struct Again {
    pub group: GroupId,
    pub key: KeyId,
    pub position: u32,
    pub value: ValueId,
    /// The re-reading operation's completion, and its process.
    pub op: u64,
    pub process: u64,
}

impl Given {
    /// Replays the member reads. Per record, vectors indexed by group and key find the
    /// bitset, and the record's value gives its position.
    pub fn replay(analysis: &Analysis) -> Given {
        let mut given = Given {
            positions: Vec::new(),
            again: Vec::new(),
        };
        if analysis.groups.events.is_empty() {
            return given;
        }
        given
            .positions
            .resize_with(analysis.groups.names.len(), || {
                let mut keys = Vec::new();
                keys.resize_with(analysis.keys.len(), Positions::default);
                keys
            });
        for_each(analysis, |read| {
            for &group in read.groups {
                let Some(keys) = given.positions.get_mut(group as usize) else {
                    continue;
                };
                for record in read.records {
                    let (Some(positions), Some(position)) = (
                        keys.get_mut(record.key as usize),
                        analysis.record_position(record),
                    ) else {
                        continue;
                    };
                    if !positions.insert(position) {
                        given.again.push(Again {
                            group,
                            key: record.key,
                            position,
                            value: record.value,
                            op: read.op,
                            process: read.process,
                        });
                    }
                }
            }
        });
        given
    }

    /// The positions of `key` returned to members of `group`, if any.
    pub fn positions(&self, group: GroupId, key: KeyId) -> Option<&Positions> {
        self.positions.get(group as usize)?.get(key as usize)
    }
}

/// A set of dense positions of one key (a bitset), and the lowest.
#[derive(Default)]
pub(crate) struct Positions {
    bits: Vec<u64>,
    pub lowest: Option<u32>,
}

impl Positions {
    /// Adds `position`; false when it was already there.
    pub fn insert(&mut self, position: u32) -> bool {
        let word = position as usize / 64;
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        let bit = 1 << (position % 64);
        let new = self.bits[word] & bit == 0;
        self.bits[word] |= bit;
        self.lowest = Some(self.lowest.map_or(position, |lowest| lowest.min(position)));
        new
    }

    pub fn contains(&self, position: u32) -> bool {
        self.bits
            .get(position as usize / 64)
            .is_some_and(|word| word & (1 << (position % 64)) != 0)
    }
}
