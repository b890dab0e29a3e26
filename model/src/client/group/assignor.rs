//! The partition assignors a consumer group leader runs (`partition.assignment.strategy`):
//! Kafka's `RangeAssignor`, `RoundRobinAssignor` and `CooperativeStickyAssignor` (KIP-429),
//! for a group whose members all subscribe to one topic.
//!
//! Why they matter to a simulation about safety: the assignment is where a partition can
//! end up with two consumers. The eager protocol avoids that by making every member revoke
//! everything before it rejoins. The cooperative protocol (KIP-429) lets members keep
//! consuming across a rebalance, so the assignor itself must never hand a partition to a
//! new owner while the old one still holds it, and must not believe a member's claim to a
//! partition the group has since given to someone else (KIP-792, KAFKA-12984).
//! [`AssignorFaults`] turns each of those two rules off (`bugs.md`, consumer groups).
//!
//! Simplifications: one topic, to which every member subscribes; no rack awareness
//! (KIP-881); no user data: the generation a member's owned partitions belong to travels
//! as the subscription's `generation_id` (ConsumerProtocolSubscription v2, KIP-792); the
//! eager `StickyAssignor` is not modelled.

use std::collections::{BTreeMap, BTreeSet};

use crate::types::{Generation, MemberId, PartitionId};

/// `partition.assignment.strategy`: the assignor names a member offers in JoinGroup.
/// The coordinator picks one every member supports; the leader runs it ([`assign`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Assignor {
    /// `RangeAssignor`: each member gets a contiguous range of the topic's partitions.
    /// Eager. Kafka's default (first in the default list since 3.0).
    Range,
    /// `RoundRobinAssignor`: partitions dealt one at a time around the members. Eager.
    RoundRobin,
    /// `CooperativeStickyAssignor` (KIP-429, Kafka 2.4): members keep what they own as far
    /// as balance allows, and a partition changes hands over two rebalances.
    CooperativeSticky,
}

impl Assignor {
    pub const ALL: [Assignor; 3] = [
        Assignor::Range,
        Assignor::RoundRobin,
        Assignor::CooperativeSticky,
    ];

    /// The protocol name in JoinGroup (`ConsumerPartitionAssignor.name()`).
    pub const fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// The assignor with that protocol name, if we model it.
    pub fn parse(name: &str) -> Option<Assignor> {
        Assignor::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Whether an assignor is eager (revoke everything before rejoining) or cooperative
    /// (KIP-429: `RebalanceProtocol.COOPERATIVE`, revoke only what the new assignment
    /// takes away, then rejoin so that a follow-up rebalance hands it out).
    pub const fn is_cooperative(self) -> bool {
        matches!(self, Assignor::CooperativeSticky)
    }
}

/// One member as the group leader sees it in the JoinGroup response
/// (ConsumerProtocolSubscription).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSubscription {
    pub member: MemberId,
    /// `group.instance.id` of a static member (KIP-345); it orders the eager assignors.
    pub instance: Option<u32>,
    /// `owned_partitions` (KIP-429): what the member holds as it rejoins. Eager members
    /// send none (they revoked everything); the eager assignors ignore it.
    pub owned: Vec<PartitionId>,
    /// `generation_id` (KIP-792): the generation in which `owned` was assigned. `None` is
    /// a member that does not say (Kafka's `DEFAULT_GENERATION`, older than any).
    pub owned_generation: Option<Generation>,
}

/// Assignor bugs that bugs.md reintroduces (the caller maps its switches to these).
/// Both only affect [`Assignor::CooperativeSticky`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AssignorFaults {
    /// `cooperative-assign-before-revoke`: a partition that moves is given to its new
    /// owner in the same rebalance in which the old owner is told to revoke it.
    pub assign_before_revoke: bool,
    /// `stale-owned-partitions` (KAFKA-12984): every claim in `owned` is believed, whatever
    /// its generation; two claims to one partition are settled by member order.
    pub trust_stale_owned: bool,
}

/// The leader's assignment for `generation`: every member gets an entry (possibly empty),
/// each list sorted, no partition twice.
///
/// Driving contract: the group leader calls this with the members of the JoinGroup
/// response it received as leader, and `generation` from that response; it sends the
/// result in SyncGroup. With a cooperative assignor, a member whose assignment lacks a
/// partition it owns revokes that partition and rejoins, and the rebalance that follows
/// (the next call, with the member no longer owning it) hands the partition out.
///
/// `partitions` is the topic's partition list (order and duplicates do not matter). Owned
/// partitions the topic does not have are ignored (Kafka drops topics that no longer
/// exist). Member ids must be unique, and owned generations older than `generation`:
/// anything else is caller misuse and panics.
pub fn assign(
    assignor: Assignor,
    partitions: &[PartitionId],
    members: &[MemberSubscription],
    generation: Generation,
    faults: AssignorFaults,
) -> BTreeMap<MemberId, Vec<PartitionId>> {
    let order = member_order(members);
    let distinct: BTreeSet<MemberId> = order.iter().copied().collect();
    assert_eq!(distinct.len(), members.len(), "duplicate member id");
    for m in members {
        assert!(
            m.owned_generation.is_none_or(|g| g < generation),
            "owned partitions from generation {:?}, assigning {generation:?}",
            m.owned_generation
        );
    }
    let mut topic = partitions.to_vec();
    topic.sort_unstable();
    topic.dedup();
    if order.is_empty() {
        return BTreeMap::new();
    }
    let lists = match assignor {
        Assignor::Range => range(&topic, order.len()),
        Assignor::RoundRobin => round_robin(&topic, order.len()),
        Assignor::CooperativeSticky => cooperative_sticky(&topic, members, &order, faults),
    };
    debug_assert_eq!(lists.len(), order.len());
    check(assignor, &topic, &lists, faults);
    order.into_iter().zip(lists).collect()
}

/// Kafka's member order for the eager assignors (`AbstractPartitionAssignor.MemberInfo`):
/// static members first, by `group.instance.id`, so that a restarted static member gets
/// the same partitions back (KIP-345); then dynamic members by member id. Two processes
/// with one instance id (KAFKA-8500) are ordered by member id, to stay deterministic.
fn member_order(members: &[MemberSubscription]) -> Vec<MemberId> {
    let mut keys: Vec<(bool, Option<u32>, MemberId)> = members
        .iter()
        .map(|m| (m.instance.is_none(), m.instance, m.member))
        .collect();
    keys.sort_unstable();
    keys.into_iter().map(|(_, _, member)| member).collect()
}

/// `RangeAssignor` for one topic: contiguous ranges in member order; the first
/// `n % m` members get one partition more.
fn range(topic: &[PartitionId], member_count: usize) -> Vec<Vec<PartitionId>> {
    let quota = topic.len() / member_count;
    let extra = topic.len() % member_count;
    let mut lists = Vec::with_capacity(member_count);
    let mut start = 0;
    for rank in 0..member_count {
        let length = quota + usize::from(rank < extra);
        lists.push(topic[start..start + length].to_vec());
        start += length;
    }
    debug_assert_eq!(start, topic.len());
    lists
}

/// `RoundRobinAssignor` with one topic: partition `i` goes to the `i % m`-th member.
fn round_robin(topic: &[PartitionId], member_count: usize) -> Vec<Vec<PartitionId>> {
    let mut lists = vec![Vec::new(); member_count];
    for (i, &p) in topic.iter().enumerate() {
        lists[i % member_count].push(p);
    }
    lists
}

/// `CooperativeStickyAssignor`: the sticky assignment, then KIP-429's adjustment that
/// keeps every moving partition back for one rebalance (`adjustAssignment`).
fn cooperative_sticky(
    topic: &[PartitionId],
    members: &[MemberSubscription],
    order: &[MemberId],
    faults: AssignorFaults,
) -> Vec<Vec<PartitionId>> {
    let ownership = Ownership::believed(topic, members, order, faults);
    let mut lists = sticky(topic, order.len(), &ownership);
    if !faults.assign_before_revoke {
        ownership.withhold_transfers(&mut lists);
    }
    lists
}

/// Who the assignor believes holds each partition as the members rejoin. Members are
/// named by rank in member order.
struct Ownership {
    /// The believed current owner of each partition someone believably claims.
    owner: BTreeMap<PartitionId, usize>,
    /// Partitions claimed by several members of the same newest generation: no claim is
    /// believed, and nobody gets the partition this round, so every claimant revokes it
    /// before it is handed out (Kafka's `partitionsWithMultiplePreviousOwners`).
    contested: BTreeSet<PartitionId>,
}

impl Ownership {
    /// A claim is believed only if it is from the newest generation among the claims to
    /// that partition: a member that missed a rebalance still lists what it held before,
    /// and the group has since given it to someone else (KIP-792, KAFKA-12984). This is
    /// the rule of Kafka's general sticky path (newest generation per partition); its
    /// path for equal subscriptions is stricter and drops every claim of a member older
    /// than the group's newest generation. With `trust_stale_owned`, every claim is
    /// believed and the first claimant in member order wins.
    fn believed(
        topic: &[PartitionId],
        members: &[MemberSubscription],
        order: &[MemberId],
        faults: AssignorFaults,
    ) -> Ownership {
        let rank: BTreeMap<MemberId, usize> =
            order.iter().enumerate().map(|(r, &m)| (m, r)).collect();
        // Partition -> claimant rank -> the claim's generation (`None` is the oldest).
        let mut claims: BTreeMap<PartitionId, BTreeMap<usize, Option<Generation>>> =
            BTreeMap::new();
        for m in members {
            for &p in m.owned.iter().filter(|p| topic.binary_search(p).is_ok()) {
                let claimants = claims.entry(p).or_default();
                claimants.insert(rank[&m.member], m.owned_generation);
            }
        }
        let mut ownership = Ownership {
            owner: BTreeMap::new(),
            contested: BTreeSet::new(),
        };
        for (p, claimants) in claims {
            debug_assert!(!claimants.is_empty());
            let newest = claimants.values().max().copied().flatten();
            let mut believable = claimants
                .iter()
                .filter(|&(_, &g)| faults.trust_stale_owned || g == newest)
                .map(|(&r, _)| r);
            let first = believable.next().expect("the newest claim is believable");
            if faults.trust_stale_owned || believable.next().is_none() {
                ownership.owner.insert(p, first);
            } else {
                ownership.contested.insert(p);
            }
        }
        debug_assert!(ownership
            .owner
            .keys()
            .all(|p| !ownership.contested.contains(p)));
        ownership
    }

    /// KIP-429's second phase: a partition assigned to anyone but its believed owner is
    /// taken out of the assignment. The old owner, not finding it in its own assignment,
    /// revokes it and rejoins; the next rebalance gives it out once nobody holds it.
    fn withhold_transfers(&self, lists: &mut [Vec<PartitionId>]) {
        for (rank, list) in lists.iter_mut().enumerate() {
            list.retain(|p| match self.owner.get(p) {
                Some(&owner) => owner == rank,
                None => !self.contested.contains(p),
            });
        }
    }
}

/// The sticky assignment when every member subscribes to the same topics (Kafka's
/// `ConstrainedAssignmentBuilder`): balance means each member holds `floor(n/m)` or
/// `ceil(n/m)` partitions, at most `n % m` of them the larger number. In member order,
/// each member keeps its lowest owned partitions up to its quota (the larger one while
/// such places are left); every other partition goes, in partition order, to the member
/// holding fewest (the first in member order on a tie).
fn sticky(
    topic: &[PartitionId],
    member_count: usize,
    ownership: &Ownership,
) -> Vec<Vec<PartitionId>> {
    let quota_min = topic.len() / member_count;
    let mut over_quota_places = topic.len() % member_count;
    let mut lists = vec![Vec::new(); member_count];
    // Sorted per member, since the map iterates in partition order.
    for (&p, &owner) in &ownership.owner {
        lists[owner].push(p);
    }
    for list in &mut lists {
        let mut quota = quota_min;
        if list.len() > quota_min && over_quota_places > 0 {
            over_quota_places -= 1;
            quota += 1;
        }
        list.truncate(quota);
    }
    let kept: BTreeSet<PartitionId> = lists.iter().flatten().copied().collect();
    for &p in topic.iter().filter(|p| !kept.contains(p)) {
        let fewest = (0..member_count)
            .min_by_key(|&r| lists[r].len())
            .expect("at least one member");
        lists[fewest].push(p);
    }
    for list in &mut lists {
        list.sort_unstable();
    }
    lists
}

/// The assignment's invariants: lists sorted, no partition twice, only the topic's
/// partitions; the eager assignors (and a cooperative one without its second phase)
/// give out everything, balanced; no one ever gets more than `ceil(n/m)`.
fn check(
    assignor: Assignor,
    topic: &[PartitionId],
    lists: &[Vec<PartitionId>],
    faults: AssignorFaults,
) {
    let mut seen = BTreeSet::new();
    for list in lists {
        debug_assert!(list.windows(2).all(|w| w[0] < w[1]), "unsorted {list:?}");
        for p in list {
            debug_assert!(topic.binary_search(p).is_ok(), "{p:?} not in the topic");
            debug_assert!(seen.insert(*p), "{p:?} assigned twice");
        }
    }
    let quota_max = topic.len().div_ceil(lists.len());
    debug_assert!(lists.iter().all(|l| l.len() <= quota_max));
    if !assignor.is_cooperative() || faults.assign_before_revoke {
        debug_assert_eq!(seen.len(), topic.len(), "partitions left out");
        let quota_min = topic.len() / lists.len();
        debug_assert!(lists.iter().all(|l| l.len() >= quota_min));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_FAULTS: AssignorFaults = AssignorFaults {
        assign_before_revoke: false,
        trust_stale_owned: false,
    };

    fn ps(ids: &[u32]) -> Vec<PartitionId> {
        ids.iter().map(|&p| PartitionId(p)).collect()
    }

    fn topic(n: u32) -> Vec<PartitionId> {
        (0..n).map(PartitionId).collect()
    }

    /// A member that owns `owned`, assigned in generation `owned_generation`.
    fn member(id: u64, owned: &[u32], owned_generation: u32) -> MemberSubscription {
        MemberSubscription {
            member: MemberId(id),
            instance: None,
            owned: ps(owned),
            owned_generation: Some(Generation(owned_generation)),
        }
    }

    fn new_member(id: u64) -> MemberSubscription {
        MemberSubscription {
            member: MemberId(id),
            instance: None,
            owned: Vec::new(),
            owned_generation: None,
        }
    }

    fn of(assignment: &BTreeMap<MemberId, Vec<PartitionId>>, id: u64) -> Vec<u32> {
        assignment[&MemberId(id)].iter().map(|p| p.0).collect()
    }

    /// Every member, after the rebalance, owns what it was assigned, in `generation`.
    fn after(
        members: &[MemberSubscription],
        assignment: &BTreeMap<MemberId, Vec<PartitionId>>,
        generation: Generation,
    ) -> Vec<MemberSubscription> {
        members
            .iter()
            .map(|m| MemberSubscription {
                owned: assignment[&m.member].clone(),
                owned_generation: Some(generation),
                ..m.clone()
            })
            .collect()
    }

    #[test]
    fn names_round_trip_and_only_cooperative_sticky_is_cooperative() {
        for a in Assignor::ALL {
            assert_eq!(Assignor::parse(a.name()), Some(a));
        }
        assert_eq!(Assignor::parse("sticky"), None);
        assert!(Assignor::CooperativeSticky.is_cooperative());
        assert!(!Assignor::Range.is_cooperative());
        assert!(!Assignor::RoundRobin.is_cooperative());
    }

    #[test]
    fn range_splits_seven_partitions_over_three_members() {
        // Kafka's RangeAssignor javadoc example: the first 7 % 3 members get one more.
        let members = [new_member(30), new_member(10), new_member(20)];
        let a = assign(
            Assignor::Range,
            &topic(7),
            &members,
            Generation(1),
            NO_FAULTS,
        );
        assert_eq!(of(&a, 10), [0, 1, 2]);
        assert_eq!(of(&a, 20), [3, 4]);
        assert_eq!(of(&a, 30), [5, 6]);
    }

    #[test]
    fn roundrobin_deals_partitions_in_member_order() {
        let members = [new_member(30), new_member(10), new_member(20)];
        let a = assign(
            Assignor::RoundRobin,
            &topic(7),
            &members,
            Generation(1),
            NO_FAULTS,
        );
        assert_eq!(of(&a, 10), [0, 3, 6]);
        assert_eq!(of(&a, 20), [1, 4]);
        assert_eq!(of(&a, 30), [2, 5]);
    }

    #[test]
    fn static_members_come_first_ordered_by_instance_id() {
        // AbstractPartitionAssignorTest.testMemberInfoSortingSomeGroupInstanceId: static
        // members by group.instance.id, then dynamic ones by member id.
        let mut members = [new_member(1), new_member(2), new_member(3)];
        members[1].instance = Some(8);
        members[2].instance = Some(7);
        let a = assign(
            Assignor::Range,
            &topic(3),
            &members,
            Generation(1),
            NO_FAULTS,
        );
        assert_eq!(of(&a, 3), [0]);
        assert_eq!(of(&a, 2), [1]);
        assert_eq!(of(&a, 1), [2]);
    }

    #[test]
    fn more_members_than_partitions_leaves_some_empty() {
        let members = [new_member(1), new_member(2), new_member(3)];
        for assignor in Assignor::ALL {
            let a = assign(assignor, &topic(1), &members, Generation(1), NO_FAULTS);
            assert_eq!(a.len(), 3, "{assignor:?}: every member has an entry");
            assert_eq!(of(&a, 1), [0]);
            assert!(of(&a, 2).is_empty() && of(&a, 3).is_empty());
        }
    }

    #[test]
    fn sticky_keeps_owned_partitions_when_a_member_joins() {
        // Two members share six partitions in generation 1; a third joins. Range would
        // reshuffle (member 2 would get [2, 3]); sticky moves only one partition each.
        let members = [
            member(1, &[0, 1, 2], 1),
            member(2, &[3, 4, 5], 1),
            new_member(3),
        ];
        let first = assign(
            Assignor::CooperativeSticky,
            &topic(6),
            &members,
            Generation(2),
            NO_FAULTS,
        );
        let second = assign(
            Assignor::CooperativeSticky,
            &topic(6),
            &after(&members, &first, Generation(2)),
            Generation(3),
            NO_FAULTS,
        );
        assert_eq!(of(&second, 1), [0, 1]);
        assert_eq!(of(&second, 2), [3, 4]);
        assert_eq!(of(&second, 3), [2, 5]);
    }

    #[test]
    fn cooperative_move_takes_two_rounds() {
        // KIP-429: in the first rebalance the moving partitions are only revoked from
        // their owners; nobody gets them until the owners rejoin without them.
        let members = [
            member(1, &[0, 1, 2], 1),
            member(2, &[3, 4, 5], 1),
            new_member(3),
        ];
        let first = assign(
            Assignor::CooperativeSticky,
            &topic(6),
            &members,
            Generation(2),
            NO_FAULTS,
        );
        assert_eq!(of(&first, 1), [0, 1]);
        assert_eq!(of(&first, 2), [3, 4]);
        assert!(of(&first, 3).is_empty(), "2 and 5 are still owned");
        let second = assign(
            Assignor::CooperativeSticky,
            &topic(6),
            &after(&members, &first, Generation(2)),
            Generation(3),
            NO_FAULTS,
        );
        assert_eq!(
            of(&second, 3),
            [2, 5],
            "the follow-up rebalance completes the move"
        );
    }

    #[test]
    fn assign_before_revoke_hands_out_a_partition_its_owner_still_holds() {
        // cooperative-assign-before-revoke: member 3 gets 2 and 5 at once, while members
        // 1 and 2 consume them until they process their own (revoking) assignment.
        let members = [
            member(1, &[0, 1, 2], 1),
            member(2, &[3, 4, 5], 1),
            new_member(3),
        ];
        let faults = AssignorFaults {
            assign_before_revoke: true,
            ..NO_FAULTS
        };
        let a = assign(
            Assignor::CooperativeSticky,
            &topic(6),
            &members,
            Generation(2),
            faults,
        );
        assert_eq!(of(&a, 3), [2, 5]);
        assert!(
            members[0].owned.contains(&PartitionId(2)),
            "still owned by 1"
        );
        assert!(
            members[1].owned.contains(&PartitionId(5)),
            "still owned by 2"
        );
    }

    /// Member 1 was dropped from the group after generation 1, in which it held
    /// partition 0; member 2 took both partitions in generation 2. Member 1 rejoins still
    /// claiming partition 0 from generation 1.
    fn rejoin_with_a_stale_claim() -> [MemberSubscription; 2] {
        [member(1, &[0], 1), member(2, &[0, 1], 2)]
    }

    #[test]
    fn a_stale_claim_is_not_believed() {
        let members = rejoin_with_a_stale_claim();
        let a = assign(
            Assignor::CooperativeSticky,
            &topic(2),
            &members,
            Generation(3),
            NO_FAULTS,
        );
        // Member 2 (the owner) keeps 0 and revokes 1; member 1 gets 1 next round.
        assert!(of(&a, 1).is_empty());
        assert_eq!(of(&a, 2), [0]);
        let next = assign(
            Assignor::CooperativeSticky,
            &topic(2),
            &after(&members, &a, Generation(3)),
            Generation(4),
            NO_FAULTS,
        );
        assert_eq!(of(&next, 1), [1]);
        assert_eq!(of(&next, 2), [0]);
    }

    #[test]
    fn trust_stale_owned_gives_a_partition_to_two_generations() {
        // stale-owned-partitions (KAFKA-12984): member 1's generation-1 claim to 0 wins by
        // member order, so generation 3 gives 0 to member 1 while member 2, its owner
        // since generation 2, still consumes it.
        let members = rejoin_with_a_stale_claim();
        let faults = AssignorFaults {
            trust_stale_owned: true,
            ..NO_FAULTS
        };
        let a = assign(
            Assignor::CooperativeSticky,
            &topic(2),
            &members,
            Generation(3),
            faults,
        );
        assert_eq!(of(&a, 1), [0], "given to member 1 in generation 3");
        assert!(
            members[1].owned.contains(&PartitionId(0)),
            "and held by member 2 from generation 2"
        );
        assert_eq!(of(&a, 2), [1]);
    }

    #[test]
    fn a_partition_claimed_twice_in_one_generation_waits_a_round() {
        let members = [member(1, &[0, 1], 1), member(2, &[1], 1)];
        let a = assign(
            Assignor::CooperativeSticky,
            &topic(2),
            &members,
            Generation(2),
            NO_FAULTS,
        );
        assert_eq!(of(&a, 1), [0]);
        assert!(of(&a, 2).is_empty(), "both claimants revoke 1 first");
    }

    #[test]
    fn a_claim_without_generation_loses_to_one_with() {
        let mut legacy = member(1, &[0], 0);
        legacy.owned_generation = None;
        let members = [legacy, member(2, &[0], 1), new_member(3)];
        let a = assign(
            Assignor::CooperativeSticky,
            &topic(3),
            &members,
            Generation(2),
            NO_FAULTS,
        );
        assert_eq!(of(&a, 2), [0]);
        assert_eq!(of(&a, 1), [1]);
        assert_eq!(of(&a, 3), [2]);
    }

    #[test]
    fn claims_outside_the_topic_are_ignored() {
        let members = [member(1, &[5, 9], 1), new_member(2)];
        let a = assign(
            Assignor::CooperativeSticky,
            &topic(2),
            &members,
            Generation(2),
            NO_FAULTS,
        );
        assert_eq!(of(&a, 1), [0]);
        assert_eq!(of(&a, 2), [1]);
    }

    #[test]
    fn no_members_no_assignment() {
        for assignor in Assignor::ALL {
            assert!(assign(assignor, &topic(3), &[], Generation(1), NO_FAULTS).is_empty());
        }
    }

    #[test]
    #[should_panic(expected = "owned partitions from generation")]
    fn owned_generation_must_be_older_than_the_assignment() {
        let members = [member(1, &[0], 2)];
        assign(
            Assignor::CooperativeSticky,
            &topic(1),
            &members,
            Generation(2),
            NO_FAULTS,
        );
    }

    mod properties {
        use super::*;
        use proptest::collection::btree_map;
        use proptest::prelude::*;

        /// The generation the properties assign; random claims are older.
        const GENERATION: Generation = Generation(4);

        /// Up to 10 partitions and 1 to 5 members with random (overlapping) claims of
        /// random generations, some to partitions the topic does not have, some static.
        fn group() -> impl Strategy<Value = (Vec<PartitionId>, Vec<MemberSubscription>)> {
            let member = (
                proptest::option::of(0u32..4),
                any::<u16>(),
                any::<u16>(),
                proptest::option::of(0u32..4),
            );
            (0u32..10, btree_map(0u64..16, member, 1..6)).prop_map(|(n, members)| {
                let members = members
                    .into_iter()
                    .map(|(id, (instance, a, b, generation))| MemberSubscription {
                        member: MemberId(id),
                        instance,
                        // Two masks and-ed: each member claims about a quarter.
                        owned: (0..12)
                            .filter(|p| (a & b) & (1 << p) != 0)
                            .map(PartitionId)
                            .collect(),
                        owned_generation: generation.map(Generation),
                    })
                    .collect();
                (topic(n), members)
            })
        }

        /// The believed owner of `p`, computed independently: the only claimant of the
        /// newest generation among its claims.
        fn trusted_owner(p: PartitionId, members: &[MemberSubscription]) -> Option<MemberId> {
            let claims: Vec<&MemberSubscription> =
                members.iter().filter(|m| m.owned.contains(&p)).collect();
            let newest = claims.iter().map(|m| m.owned_generation).max()?;
            let mut at_newest = claims.iter().filter(|m| m.owned_generation == newest);
            match (at_newest.next(), at_newest.next()) {
                (Some(m), None) => Some(m.member),
                _ => None,
            }
        }

        fn counts(a: &BTreeMap<MemberId, Vec<PartitionId>>) -> BTreeMap<PartitionId, usize> {
            let mut counts = BTreeMap::new();
            for p in a.values().flatten() {
                *counts.entry(*p).or_insert(0) += 1;
            }
            counts
        }

        fn is_balanced(a: &BTreeMap<MemberId, Vec<PartitionId>>) -> bool {
            let sizes = a.values().map(Vec::len);
            sizes.clone().max().unwrap_or(0) - sizes.min().unwrap_or(0) <= 1
        }

        fn exactly_once(a: &BTreeMap<MemberId, Vec<PartitionId>>, topic: &[PartitionId]) -> bool {
            let counts = counts(a);
            counts.len() == topic.len() && topic.iter().all(|p| counts.get(p) == Some(&1))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(96))]

            #[test]
            fn no_partition_goes_to_two_members((topic, members) in group()) {
                for assignor in Assignor::ALL {
                    let a = assign(assignor, &topic, &members, GENERATION, NO_FAULTS);
                    prop_assert_eq!(a.len(), members.len());
                    prop_assert!(counts(&a).values().all(|&c| c == 1), "{:?}: {:?}", assignor, a);
                }
            }

            #[test]
            fn eager_assignors_give_out_every_partition_once_balanced((topic, members) in group()) {
                for assignor in [Assignor::Range, Assignor::RoundRobin] {
                    let a = assign(assignor, &topic, &members, GENERATION, NO_FAULTS);
                    prop_assert!(exactly_once(&a, &topic), "{:?}: {:?}", assignor, a);
                    prop_assert!(is_balanced(&a), "{:?}: {:?}", assignor, a);
                }
            }

            #[test]
            fn the_result_does_not_depend_on_the_members_order((topic, members) in group()) {
                let reversed: Vec<MemberSubscription> = members.iter().rev().cloned().collect();
                for assignor in Assignor::ALL {
                    prop_assert_eq!(
                        assign(assignor, &topic, &members, GENERATION, NO_FAULTS),
                        assign(assignor, &topic, &reversed, GENERATION, NO_FAULTS)
                    );
                }
            }

            #[test]
            fn cooperative_never_gives_a_partition_another_member_owns((topic, members) in group()) {
                let a = assign(Assignor::CooperativeSticky, &topic, &members, GENERATION, NO_FAULTS);
                for (member, list) in &a {
                    for &p in list {
                        let claimed = members.iter().any(|m| m.owned.contains(&p));
                        let owner = trusted_owner(p, &members);
                        // Owned by another, or claimed in one generation by several.
                        prop_assert!(!claimed || owner == Some(*member), "{:?} to {:?}: {:?}", p, member, a);
                    }
                }
            }

            #[test]
            fn cooperative_keeps_what_balance_allows((topic, members) in group()) {
                // Stickiness: a believed owner keeps at least floor(n/m) of what it owns.
                let a = assign(Assignor::CooperativeSticky, &topic, &members, GENERATION, NO_FAULTS);
                let quota_min = topic.len() / members.len();
                for m in &members {
                    let owned = topic.iter().filter(|&&p| trusted_owner(p, &members) == Some(m.member)).count();
                    let kept = a[&m.member].iter().filter(|&&p| trusted_owner(p, &members) == Some(m.member)).count();
                    prop_assert!(kept >= owned.min(quota_min), "{:?} kept {} of {}: {:?}", m.member, kept, owned, a);
                }
            }

            #[test]
            fn cooperative_converges_in_two_rounds((topic, members) in group()) {
                let first = assign(Assignor::CooperativeSticky, &topic, &members, GENERATION, NO_FAULTS);
                let next = Generation(GENERATION.0 + 1);
                let rejoined = after(&members, &first, GENERATION);
                let second = assign(Assignor::CooperativeSticky, &topic, &rejoined, next, NO_FAULTS);
                prop_assert!(exactly_once(&second, &topic), "{:?} then {:?}", first, second);
                prop_assert!(is_balanced(&second), "{:?} then {:?}", first, second);
                for (member, list) in &first {
                    prop_assert!(list.iter().all(|p| second[member].contains(p)), "round two moves nothing");
                }
            }

            #[test]
            fn assign_before_revoke_is_complete_in_one_round((topic, members) in group()) {
                // What the bug trades safety for: no follow-up rebalance is needed.
                let faults = AssignorFaults { assign_before_revoke: true, ..NO_FAULTS };
                let a = assign(Assignor::CooperativeSticky, &topic, &members, GENERATION, faults);
                prop_assert!(exactly_once(&a, &topic), "{:?}", a);
                prop_assert!(is_balanced(&a), "{:?}", a);
            }
        }
    }
}
