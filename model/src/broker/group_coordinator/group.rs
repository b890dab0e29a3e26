//! One consumer group at its coordinator: Kafka's classic group protocol (the
//! `GroupMetadata` state machine and the parts of `GroupCoordinator` that move it).
//!
//! States (Kafka's names): `Empty` (no members), `PreparingRebalance` (the join phase:
//! members (re)send JoinGroup, their answers wait), `CompletingRebalance` (the
//! generation is bumped and the joins answered; waiting for the leader's SyncGroup),
//! `Stable` (assignment stored and handed out). A join of a new member or a changed
//! one, a leader's rejoin, a leave or an expired session starts a rebalance; the join
//! phase ends when every member has rejoined or the largest `rebalance_timeout_ms` of
//! the members has passed (dynamic members that did not rejoin are then removed; static
//! ones stay until their session expires, as in Kafka); the first rebalance of an
//! empty group waits `group.initial.rebalance.delay.ms` (extended while new members
//! keep joining, up to the rebalance time-out). KIP-345: a static member that rejoins
//! with a new member id takes its instance's place, without a rebalance when the group
//! is Stable, and the old id is fenced (`FENCED_INSTANCE_ID`).
//!
//! Driving contract: the broker calls one method per request ([`Group::join`],
//! [`Group::sync`], [`Group::heartbeat`], [`Group::leave`], and the offset-commit
//! checks) and [`Group::on_deadline`] once [`Group::next_deadline`] is due, with `now`
//! and an [`Outbox`] for the answers. The group never writes its log itself: a method
//! that must persist the group returns a [`Store`], which the broker appends to
//! `__consumer_offsets` and reports back ([`Group::on_sync_stored`],
//! [`Group::on_static_join_stored`]). Simplification: a group unloaded with its
//! partition is dropped (Kafka marks it `Dead` first); there is no `Dead` state.

use super::log::{StoredGroup, StoredMember};
use crate::message::{ErrorCode, Joined, JoinedMember, Message, ProtocolName};
use crate::outbox::Outbox;
use crate::types::{Generation, MemberId, NodeId, PartitionId, PartitionSet, SimTime};
use std::collections::BTreeMap;

/// Kafka's group states (`Dead` left out: see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

/// A request parked until the group can answer it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiter {
    pub client: NodeId,
    pub correlation: u64,
}

/// What the coordinator's configuration and switches say about every group.
#[derive(Clone, Copy, Debug, Default)]
pub struct GroupSettings {
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay_ms: u64,
    /// The `static-member-duplicate` switch (KAFKA-8500).
    pub static_member_duplicate: bool,
}

/// A JoinGroup request, as the group needs it.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    pub waiter: Waiter,
    pub member: Option<MemberId>,
    pub instance: Option<u32>,
    pub session_timeout_ms: u64,
    pub rebalance_timeout_ms: u64,
    pub protocols: Vec<String>,
    pub owned: Vec<PartitionId>,
    pub owned_generation: Option<Generation>,
}

#[derive(Clone, Debug)]
pub struct Member {
    /// `group.instance.id` of a static member (KIP-345).
    pub instance: Option<u32>,
    /// Assignors, in the member's order of preference.
    pub protocols: Vec<String>,
    pub owned: Vec<PartitionId>,
    pub owned_generation: Option<Generation>,
    pub session_timeout_ms: u64,
    pub rebalance_timeout_ms: u64,
    /// The partitions of the last stored assignment.
    pub assignment: Vec<PartitionId>,
    /// The session expires then, unless the member is heard from first.
    pub session_deadline: SimTime,
    /// Its JoinGroup, waiting for the join phase to end.
    pub awaiting_join: Option<Waiter>,
    /// Its SyncGroup, waiting for the leader's assignment to be stored.
    pub awaiting_sync: Option<Waiter>,
}

impl Member {
    fn new(now: SimTime, req: &JoinRequest) -> Member {
        Member {
            instance: req.instance,
            protocols: req.protocols.clone(),
            owned: req.owned.clone(),
            owned_generation: req.owned_generation,
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            assignment: Vec::new(),
            session_deadline: now.plus_ms(req.session_timeout_ms),
            awaiting_join: Some(req.waiter),
            awaiting_sync: None,
        }
    }

    /// A member with a request parked is alive (Kafka's `shouldKeepAlive`): its session
    /// does not expire meanwhile.
    fn is_parked(&self) -> bool {
        self.awaiting_join.is_some() || self.awaiting_sync.is_some()
    }

    /// Same subscription as `req` (Kafka's `matches`): a rejoin without change.
    fn matches(&self, req: &JoinRequest) -> bool {
        self.protocols == req.protocols
            && self.owned == req.owned
            && self.owned_generation == req.owned_generation
    }

    fn update(&mut self, req: &JoinRequest) {
        self.protocols = req.protocols.clone();
        self.owned = req.owned.clone();
        self.owned_generation = req.owned_generation;
        self.session_timeout_ms = req.session_timeout_ms;
        self.rebalance_timeout_ms = req.rebalance_timeout_ms;
        self.awaiting_join = Some(req.waiter);
    }

    fn heard_from(&mut self, now: SimTime) {
        self.session_deadline = now.plus_ms(self.session_timeout_ms);
    }
}

/// Kafka's `InitialDelayedJoin`: the first rebalance of an empty group.
#[derive(Clone, Copy, Debug)]
struct InitialDelay {
    deadline: SimTime,
    /// What is left of the rebalance time-out for further extensions.
    remaining_ms: u64,
}

/// A write of the group's metadata to `__consumer_offsets` the group asks for.
#[derive(Clone, Debug)]
pub enum Store {
    /// The leader's SyncGroup (Kafka writes the group on it): once stored, the group is
    /// Stable and every member's SyncGroup is answered with its assignment.
    Sync {
        generation: Generation,
        assignment: BTreeMap<MemberId, Vec<PartitionId>>,
        stored: StoredGroup,
    },
    /// A static member replaced its instance's older member in a Stable group
    /// (KIP-345): its JoinGroup is answered once stored; a failed write reverts it.
    StaticJoin {
        instance: u32,
        /// The member it replaced (`None` with `static-member-duplicate`: it was added
        /// beside it), as it was.
        replaced: Option<(MemberId, Box<Member>)>,
        member: MemberId,
        answer: Joined,
        stored: StoredGroup,
    },
    /// The group became empty at the end of a rebalance.
    Emptied { stored: StoredGroup },
}

impl Store {
    pub fn stored(&self) -> &StoredGroup {
        match self {
            Store::Sync { stored, .. }
            | Store::StaticJoin { stored, .. }
            | Store::Emptied { stored } => stored,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Group {
    pub state: GroupState,
    pub generation: Generation,
    /// The protocol (assignor) selected for the current generation.
    pub protocol: Option<String>,
    pub leader: Option<MemberId>,
    pub members: BTreeMap<MemberId, Member>,
    /// Static members: `group.instance.id` -> its current member id.
    pub static_members: BTreeMap<u32, MemberId>,
    /// PreparingRebalance: the join phase ends then at the latest.
    join_deadline: Option<SimTime>,
    initial_delay: Option<InitialDelay>,
    /// A new member joined during the initial delay (Kafka's `newMemberAdded`).
    new_member_added: bool,
    settings: GroupSettings,
}

fn answer_join(out: &mut Outbox, waiter: Waiter, result: Result<Joined, ErrorCode>) {
    out.send(
        waiter.client,
        Message::JoinGroupResponse {
            correlation: waiter.correlation,
            result,
        },
    );
}

fn answer_sync(out: &mut Outbox, waiter: Waiter, result: Result<Vec<PartitionId>, ErrorCode>) {
    out.send(
        waiter.client,
        Message::SyncGroupResponse {
            correlation: waiter.correlation,
            result,
        },
    );
}

/// Protocol names a group accepts: at least one, each storable in the log.
fn valid_protocols(protocols: &[String]) -> bool {
    !protocols.is_empty() && protocols.iter().all(|p| ProtocolName::new(p).is_some())
}

impl Group {
    pub fn new(settings: GroupSettings) -> Group {
        Group {
            state: GroupState::Empty,
            generation: Generation::default(),
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            join_deadline: None,
            initial_delay: None,
            new_member_added: false,
            settings,
        }
    }

    /// The group as a new coordinator loads it from its log: Stable with the stored
    /// members and assignments (Empty without members), each member with a fresh
    /// session, as Kafka's loader schedules their heartbeats anew.
    ///
    /// Each member's subscription is restored as far as it is stored: its owned
    /// partitions and their generation (so that a cooperative member that revoked
    /// something since is seen as changed, and its rejoin rebalances).
    /// Simplification: the protocol list is not stored; each member is taken to support
    /// the selected protocol only.
    pub fn load(now: SimTime, stored: &StoredGroup, settings: GroupSettings) -> Group {
        let mut group = Group::new(settings);
        group.generation = stored.generation;
        group.protocol = stored.protocol.map(|p| p.as_str().to_string());
        group.leader = stored.leader;
        for m in &stored.members {
            let assignment: Vec<PartitionId> = m.assignment.iter().collect();
            let member = Member {
                instance: m.instance,
                protocols: group.protocol.iter().cloned().collect(),
                owned: m.owned.iter().collect(),
                owned_generation: m.owned_generation,
                session_timeout_ms: u64::from(m.session_timeout_ms),
                rebalance_timeout_ms: u64::from(m.rebalance_timeout_ms),
                assignment,
                session_deadline: now.plus_ms(u64::from(m.session_timeout_ms)),
                awaiting_join: None,
                awaiting_sync: None,
            };
            if let Some(i) = m.instance {
                group.static_members.insert(i, m.member);
            }
            group.members.insert(m.member, member);
        }
        if !group.members.is_empty() {
            group.state = GroupState::Stable;
        }
        group
    }

    /// The metadata to store: generation, protocol, leader, and every member with its
    /// assignment (`assignment` overrides the members' own).
    pub fn stored(&self, assignment: Option<&BTreeMap<MemberId, Vec<PartitionId>>>) -> StoredGroup {
        let members = self
            .members
            .iter()
            .map(|(&id, m)| {
                let partitions = match assignment {
                    Some(a) => a.get(&id).map_or(&[][..], Vec::as_slice),
                    None => &m.assignment[..],
                };
                StoredMember {
                    member: id,
                    instance: m.instance,
                    assignment: partitions
                        .iter()
                        .copied()
                        .filter(|p| p.0 < PartitionSet::MAX)
                        .collect(),
                    owned: m
                        .owned
                        .iter()
                        .copied()
                        .filter(|p| p.0 < PartitionSet::MAX)
                        .collect(),
                    owned_generation: m.owned_generation,
                    session_timeout_ms: u32::try_from(m.session_timeout_ms).unwrap_or(u32::MAX),
                    rebalance_timeout_ms: u32::try_from(m.rebalance_timeout_ms).unwrap_or(u32::MAX),
                }
            })
            .collect();
        StoredGroup {
            generation: self.generation,
            protocol: self.protocol.as_deref().and_then(ProtocolName::new),
            leader: self.leader,
            members,
        }
    }

    /// The largest rebalance time-out of the members (Kafka's `rebalanceTimeoutMs`).
    fn rebalance_timeout_ms(&self) -> u64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    /// Protocols every current member supports.
    fn candidate_protocols(&self) -> Vec<&str> {
        let Some(first) = self.members.values().next() else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(String::as_str)
            .filter(|p| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|q| q == p))
            })
            .collect()
    }

    /// Can a member with `protocols` join (Kafka's `supportsProtocols`)?
    fn supports_protocols(&self, protocols: &[String]) -> bool {
        self.members.is_empty()
            || self
                .candidate_protocols()
                .iter()
                .any(|c| protocols.iter().any(|p| p == c))
    }

    /// Kafka's `selectProtocol`: each member votes for the first protocol of its own
    /// list that every member supports; the most votes win. Kafka breaks a tie
    /// arbitrarily (hash order); here the name first in byte order wins.
    fn select_protocol(&self) -> String {
        let candidates = self.candidate_protocols();
        let mut votes: BTreeMap<&str, u32> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(choice) = m
                .protocols
                .iter()
                .find(|p| candidates.contains(&p.as_str()))
            {
                *votes.entry(choice).or_default() += 1;
            }
        }
        let most = votes.values().copied().max().unwrap_or(0);
        let winner = votes.iter().find(|(_, &n)| n == most).map(|(&p, _)| p);
        debug_assert!(winner.is_some(), "members joined with a common protocol");
        winner.unwrap_or_default().to_string()
    }

    /// Kafka's `validateCurrentMember`: with a `group.instance.id`, the instance must be
    /// known (UNKNOWN_MEMBER_ID) and `member` one of its members, not a replaced one
    /// (FENCED_INSTANCE_ID); without, `member` must be a member (UNKNOWN_MEMBER_ID).
    pub fn validate_member(
        &self,
        member: MemberId,
        instance: Option<u32>,
    ) -> Result<(), ErrorCode> {
        let is_member = self.members.get(&member);
        match instance {
            Some(i) if !self.static_members.contains_key(&i) => Err(ErrorCode::UnknownMemberId),
            // With `static-member-duplicate` an instance has several members, each of
            // which passes.
            Some(i) if is_member.is_some_and(|m| m.instance == Some(i)) => Ok(()),
            Some(_) => Err(ErrorCode::FencedInstanceId),
            None if is_member.is_some() => Ok(()),
            None => Err(ErrorCode::UnknownMemberId),
        }
    }

    // ---- JoinGroup ----

    /// JoinGroup. `fresh` is the id for a new member (when `req.member` is `None`).
    pub fn join(
        &mut self,
        now: SimTime,
        req: JoinRequest,
        fresh: MemberId,
        out: &mut Outbox,
    ) -> Option<Store> {
        if !valid_protocols(&req.protocols) || !self.supports_protocols(&req.protocols) {
            answer_join(out, req.waiter, Err(ErrorCode::InconsistentGroupProtocol));
            return None;
        }
        match (req.member, req.instance) {
            (Some(id), _) => self.join_known(now, id, req, out),
            (None, Some(i)) if self.static_members.contains_key(&i) => {
                if self.settings.static_member_duplicate {
                    self.add_beside_static_member(now, i, fresh, req, out)
                } else {
                    self.replace_static_member(now, i, fresh, req, out)
                }
            }
            (None, _) => self.add_member(now, fresh, req, out),
        }
    }

    /// The answer to a member of the current generation (the leader's lists every
    /// member with its subscription).
    fn joined(&self, member: MemberId, with_members: bool) -> Joined {
        let members = if with_members {
            self.members
                .iter()
                .map(|(&id, m)| -> JoinedMember {
                    (id, m.instance, m.owned.clone(), m.owned_generation)
                })
                .collect()
        } else {
            Vec::new()
        };
        Joined {
            generation: self.generation,
            member,
            leader: self.leader.unwrap_or(member),
            protocol: self.protocol.clone().unwrap_or_default(),
            members,
        }
    }

    /// Kafka's `doCurrentMemberJoinGroup`.
    fn join_known(
        &mut self,
        now: SimTime,
        id: MemberId,
        req: JoinRequest,
        out: &mut Outbox,
    ) -> Option<Store> {
        if let Err(e) = self.validate_member(id, req.instance) {
            answer_join(out, req.waiter, Err(e));
            return None;
        }
        let member = &self.members[&id];
        let unchanged = member.matches(&req);
        let is_leader = self.leader == Some(id);
        match self.state {
            GroupState::Empty => {
                debug_assert!(false, "an empty group has no member to validate");
                answer_join(out, req.waiter, Err(ErrorCode::UnknownMemberId));
                None
            }
            GroupState::PreparingRebalance => {
                self.member_mut(id).update(&req);
                self.try_complete_join(now, out)
            }
            // A retry of a join whose answer was lost: the current generation.
            GroupState::CompletingRebalance if unchanged => {
                answer_join(out, req.waiter, Ok(self.joined(id, is_leader)));
                None
            }
            // A follower rejoining unchanged: the current generation, no rebalance.
            GroupState::Stable if unchanged && !is_leader => {
                self.member_mut(id).heard_from(now);
                answer_join(out, req.waiter, Ok(self.joined(id, false)));
                None
            }
            // A changed member, or the leader (Kafka lets the leader force a rebalance).
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.member_mut(id).update(&req);
                self.prepare_rebalance(now, out);
                self.try_complete_join(now, out)
            }
        }
    }

    fn member_mut(&mut self, id: MemberId) -> &mut Member {
        self.members.get_mut(&id).expect("a validated member")
    }

    /// Kafka's `addMemberAndRebalance`.
    fn add_member(
        &mut self,
        now: SimTime,
        id: MemberId,
        req: JoinRequest,
        out: &mut Outbox,
    ) -> Option<Store> {
        debug_assert!(!self.members.contains_key(&id), "member ids are fresh");
        if self.state == GroupState::PreparingRebalance && self.generation == Generation(0) {
            self.new_member_added = true;
        }
        if self.leader.is_none() {
            self.leader = Some(id);
        }
        if let Some(i) = req.instance {
            self.static_members.insert(i, id);
        }
        self.members.insert(id, Member::new(now, &req));
        self.maybe_prepare_rebalance(now, out);
        self.try_complete_join(now, out)
    }

    /// Kafka's `updateStaticMemberAndRebalance` (KIP-345): the new member id takes the
    /// instance's place; the old one is fenced (its parked requests too).
    fn replace_static_member(
        &mut self,
        now: SimTime,
        instance: u32,
        id: MemberId,
        req: JoinRequest,
        out: &mut Outbox,
    ) -> Option<Store> {
        let old = self.static_members[&instance];
        let current_leader = self.leader;
        let mut member = self
            .members
            .remove(&old)
            .expect("a static member is a member");
        let replaced = Box::new(Member {
            awaiting_join: None,
            awaiting_sync: None,
            ..member.clone()
        });
        if let Some(w) = member.awaiting_join.take() {
            answer_join(out, w, Err(ErrorCode::FencedInstanceId));
        }
        if let Some(w) = member.awaiting_sync.take() {
            answer_sync(out, w, Err(ErrorCode::FencedInstanceId));
        }
        member.update(&req);
        member.heard_from(now);
        self.members.insert(id, member);
        self.static_members.insert(instance, id);
        if self.leader == Some(old) {
            self.leader = Some(id);
        }
        match self.state {
            GroupState::Stable if self.protocol.as_deref() == Some(&*self.select_protocol()) => {
                // No rebalance: the member gets the instance's assignment. The answer
                // names the leader as it was, so that the new member (even if it took
                // the leader's place) does not compute an assignment a Stable group
                // would not hand out.
                let mut answer = self.joined(id, false);
                answer.leader = current_leader.unwrap_or(id);
                Some(Store::StaticJoin {
                    instance,
                    replaced: Some((old, replaced)),
                    member: id,
                    answer,
                    stored: self.stored(None),
                })
            }
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, out);
                self.try_complete_join(now, out)
            }
            GroupState::PreparingRebalance => self.try_complete_join(now, out),
            GroupState::Empty => {
                debug_assert!(false, "an empty group has no static member");
                None
            }
        }
    }

    /// `static-member-duplicate` (KAFKA-8500): the new member of a known instance is
    /// added beside the old one, which stays a member of the instance; in a Stable group
    /// it gets the instance's assignment at once, so both own it.
    fn add_beside_static_member(
        &mut self,
        now: SimTime,
        instance: u32,
        id: MemberId,
        req: JoinRequest,
        out: &mut Outbox,
    ) -> Option<Store> {
        if self.state != GroupState::Stable {
            return self.add_member(now, id, req, out);
        }
        let old = self.static_members[&instance];
        let mut member = Member::new(now, &req);
        member.assignment = self.members[&old].assignment.clone();
        self.members.insert(id, member);
        self.static_members.insert(instance, id);
        Some(Store::StaticJoin {
            instance,
            replaced: None,
            member: id,
            answer: self.joined(id, false),
            stored: self.stored(None),
        })
    }

    /// The write of a static member's join completed (`result`): answer it, or revert.
    pub fn on_static_join_stored(
        &mut self,
        now: SimTime,
        store: Store,
        result: Result<(), ErrorCode>,
        out: &mut Outbox,
    ) {
        let Store::StaticJoin {
            instance,
            replaced,
            member: id,
            answer,
            ..
        } = store
        else {
            return;
        };
        let waiter = self
            .members
            .get_mut(&id)
            .and_then(|m| m.awaiting_join.take());
        if let Err(e) = result {
            if self.static_members.get(&instance) == Some(&id) {
                self.members.remove(&id);
                self.static_members.remove(&instance);
                if let Some((old, member)) = replaced {
                    self.members.insert(old, *member);
                    self.static_members.insert(instance, old);
                    if self.leader == Some(id) {
                        self.leader = Some(old);
                    }
                } else if let Some((&other, _)) = self
                    .members
                    .iter()
                    .find(|(_, m)| m.instance == Some(instance))
                {
                    self.static_members.insert(instance, other);
                }
            }
            if let Some(w) = waiter {
                answer_join(out, w, Err(e));
            }
            return;
        }
        if let Some(w) = waiter {
            self.member_mut(id).heard_from(now);
            answer_join(out, w, Ok(answer));
        }
    }

    // ---- rebalance ----

    /// Kafka's `maybePrepareRebalance`.
    fn maybe_prepare_rebalance(&mut self, now: SimTime, out: &mut Outbox) {
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now, out);
        }
    }

    /// Start the join phase: members awaiting their SyncGroup answer are told to rejoin
    /// (REBALANCE_IN_PROGRESS); the phase ends when all have rejoined, or at the
    /// deadline (the initial delay of an empty group, else the rebalance time-out).
    fn prepare_rebalance(&mut self, now: SimTime, out: &mut Outbox) {
        if self.state == GroupState::CompletingRebalance {
            self.propagate_assignment_error(ErrorCode::RebalanceInProgress, out);
        }
        let delay = self.settings.initial_rebalance_delay_ms;
        if self.state == GroupState::Empty && delay > 0 {
            self.initial_delay = Some(InitialDelay {
                deadline: now.plus_ms(delay),
                remaining_ms: self.rebalance_timeout_ms().saturating_sub(delay),
            });
            self.new_member_added = false;
        } else {
            self.join_deadline = Some(now.plus_ms(self.rebalance_timeout_ms()));
        }
        self.state = GroupState::PreparingRebalance;
    }

    /// Kafka's `resetAndPropagateAssignmentError`: assignments dropped, every parked
    /// SyncGroup answered with `error`.
    fn propagate_assignment_error(&mut self, error: ErrorCode, out: &mut Outbox) {
        for m in self.members.values_mut() {
            m.assignment.clear();
            if let Some(w) = m.awaiting_sync.take() {
                answer_sync(out, w, Err(error));
            }
        }
    }

    /// End the join phase if every member has rejoined (an initial delay always runs
    /// its course).
    fn try_complete_join(&mut self, now: SimTime, out: &mut Outbox) -> Option<Store> {
        let all_joined = self.members.values().all(|m| m.awaiting_join.is_some());
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay.is_none()
            && all_joined
        {
            self.complete_join(now, out)
        } else {
            None
        }
    }

    /// Kafka's `onCompleteJoin`: dynamic members that did not rejoin are removed, a
    /// rejoined member leads if the leader did not rejoin, the generation is bumped and
    /// every parked JoinGroup answered (the leader's with the members).
    fn complete_join(&mut self, now: SimTime, out: &mut Outbox) -> Option<Store> {
        debug_assert_eq!(self.state, GroupState::PreparingRebalance);
        self.initial_delay = None;
        self.join_deadline = None;
        self.members
            .retain(|_, m| m.awaiting_join.is_some() || m.instance.is_some());
        if !self.leader.is_some_and(|l| self.members.contains_key(&l)) {
            self.leader = self.members.keys().next().copied();
        }
        let joined: Vec<MemberId> = self
            .members
            .iter()
            .filter(|(_, m)| m.awaiting_join.is_some())
            .map(|(&id, _)| id)
            .collect();
        if joined.is_empty() && !self.members.is_empty() {
            // Only static members that did not rejoin: wait for them (or their
            // sessions) another rebalance time-out, as Kafka does.
            self.join_deadline = Some(now.plus_ms(self.rebalance_timeout_ms()));
            return None;
        }
        if !self.leader.is_some_and(|l| joined.contains(&l)) {
            self.leader = joined.first().copied();
        }
        self.generation = Generation(self.generation.0 + 1);
        if self.members.is_empty() {
            self.protocol = None;
            self.state = GroupState::Empty;
            return Some(Store::Emptied {
                stored: self.stored(None),
            });
        }
        self.protocol = Some(self.select_protocol());
        self.state = GroupState::CompletingRebalance;
        let leader = self.leader.expect("a joined member leads");
        let answers: Vec<(Waiter, Joined)> = joined
            .iter()
            .filter_map(|&id| {
                let waiter = self.members[&id].awaiting_join?;
                Some((waiter, self.joined(id, id == leader)))
            })
            .collect();
        for (waiter, answer) in answers {
            answer_join(out, waiter, Ok(answer));
        }
        for m in self.members.values_mut() {
            m.awaiting_join = None;
            m.heard_from(now);
        }
        None
    }

    /// Kafka's `removeMemberAndUpdateGroup` (a leave or an expired session): its parked
    /// requests are answered UNKNOWN_MEMBER_ID and the group rebalances.
    fn remove_member(&mut self, now: SimTime, id: MemberId, out: &mut Outbox) -> Option<Store> {
        let m = self.members.remove(&id)?;
        if let Some(w) = m.awaiting_join {
            answer_join(out, w, Err(ErrorCode::UnknownMemberId));
        }
        if let Some(w) = m.awaiting_sync {
            answer_sync(out, w, Err(ErrorCode::UnknownMemberId));
        }
        if let Some(i) = m.instance {
            if self.static_members.get(&i) == Some(&id) {
                self.static_members.remove(&i);
                // With `static-member-duplicate` another member may hold the instance.
                if let Some((&other, _)) = self.members.iter().find(|(_, o)| o.instance == Some(i))
                {
                    self.static_members.insert(i, other);
                }
            }
        }
        if self.leader == Some(id) {
            self.leader = self.members.keys().next().copied();
        }
        match self.state {
            GroupState::Empty => None,
            GroupState::PreparingRebalance => self.try_complete_join(now, out),
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, out);
                self.try_complete_join(now, out)
            }
        }
    }

    /// When [`Group::on_deadline`] is next due: the earliest session expiry of a member
    /// without a parked request, or the end of the join phase.
    pub fn next_deadline(&self) -> Option<SimTime> {
        let sessions = self
            .members
            .values()
            .filter(|m| !m.is_parked())
            .map(|m| m.session_deadline);
        let join = match self.initial_delay {
            Some(d) => Some(d.deadline),
            None => self.join_deadline,
        };
        sessions.chain(join).min()
    }

    /// Expire sessions and end a join phase whose deadline passed.
    pub fn on_deadline(&mut self, now: SimTime, out: &mut Outbox) -> Vec<Store> {
        let mut stores = Vec::new();
        let expired: Vec<MemberId> = self
            .members
            .iter()
            .filter(|(_, m)| !m.is_parked() && m.session_deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            stores.extend(self.remove_member(now, id, out));
        }
        if self.state != GroupState::PreparingRebalance {
            return stores;
        }
        match self.initial_delay {
            Some(d) if d.deadline > now => {}
            // New members kept coming: wait again, within the rebalance time-out.
            Some(d) if self.new_member_added && d.remaining_ms > 0 => {
                let delay = self.settings.initial_rebalance_delay_ms.min(d.remaining_ms);
                self.initial_delay = Some(InitialDelay {
                    deadline: now.plus_ms(delay),
                    remaining_ms: d.remaining_ms - delay,
                });
                self.new_member_added = false;
            }
            Some(_) => stores.extend(self.complete_join(now, out)),
            None if self.join_deadline.is_some_and(|t| t <= now) => {
                stores.extend(self.complete_join(now, out));
            }
            None => {}
        }
        stores
    }

    // ---- SyncGroup, Heartbeat, LeaveGroup ----

    /// SyncGroup (Kafka's `doSyncGroup`): in CompletingRebalance the answer waits; the
    /// leader's request carries the assignment, which is to be stored (members it
    /// leaves out get none). In Stable the member gets its assignment at once.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        now: SimTime,
        waiter: Waiter,
        generation: Generation,
        member: MemberId,
        instance: Option<u32>,
        assignments: Vec<(MemberId, Vec<PartitionId>)>,
        out: &mut Outbox,
    ) -> Option<Store> {
        let refused = self.validate_member(member, instance).and_then(|()| {
            if generation != self.generation {
                return Err(ErrorCode::IllegalGeneration);
            }
            match self.state {
                GroupState::Empty => Err(ErrorCode::UnknownMemberId),
                GroupState::PreparingRebalance => Err(ErrorCode::RebalanceInProgress),
                GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
            }
        });
        if let Err(e) = refused {
            answer_sync(out, waiter, Err(e));
            return None;
        }
        if self.state == GroupState::Stable {
            let m = self.member_mut(member);
            m.heard_from(now);
            let assignment = m.assignment.clone();
            answer_sync(out, waiter, Ok(assignment));
            return None;
        }
        self.member_mut(member).awaiting_sync = Some(waiter);
        if self.leader != Some(member) {
            return None;
        }
        let mut assignment: BTreeMap<MemberId, Vec<PartitionId>> =
            self.members.keys().map(|&id| (id, Vec::new())).collect();
        for (id, partitions) in assignments {
            if let Some(slot) = assignment.get_mut(&id) {
                *slot = partitions;
            }
        }
        let stored = self.stored(Some(&assignment));
        Some(Store::Sync {
            generation,
            assignment,
            stored,
        })
    }

    /// The leader's assignment of `generation` was stored (or not): hand it out and be
    /// Stable, or make everyone rejoin. Nothing if the group moved on meanwhile.
    pub fn on_sync_stored(
        &mut self,
        now: SimTime,
        generation: Generation,
        assignment: BTreeMap<MemberId, Vec<PartitionId>>,
        result: Result<(), ErrorCode>,
        out: &mut Outbox,
    ) -> Option<Store> {
        if self.state != GroupState::CompletingRebalance || self.generation != generation {
            return None;
        }
        if let Err(e) = result {
            self.propagate_assignment_error(e, out);
            self.prepare_rebalance(now, out);
            return self.try_complete_join(now, out);
        }
        for (id, m) in &mut self.members {
            m.assignment = assignment.get(id).cloned().unwrap_or_default();
            if let Some(w) = m.awaiting_sync.take() {
                m.heard_from(now);
                answer_sync(out, w, Ok(m.assignment.clone()));
            }
        }
        self.state = GroupState::Stable;
        None
    }

    /// Heartbeat: the session starts over; REBALANCE_IN_PROGRESS during the join phase.
    pub fn heartbeat(
        &mut self,
        now: SimTime,
        generation: Generation,
        member: MemberId,
        instance: Option<u32>,
    ) -> Result<(), ErrorCode> {
        self.validate_member(member, instance)?;
        if generation != self.generation {
            return Err(ErrorCode::IllegalGeneration);
        }
        if self.state == GroupState::Empty {
            return Err(ErrorCode::UnknownMemberId);
        }
        self.member_mut(member).heard_from(now);
        match self.state {
            GroupState::PreparingRebalance => Err(ErrorCode::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// LeaveGroup: the member is removed and the group rebalances.
    pub fn leave(
        &mut self,
        now: SimTime,
        member: MemberId,
        instance: Option<u32>,
        out: &mut Outbox,
    ) -> Result<Option<Store>, ErrorCode> {
        self.validate_member(member, instance)?;
        Ok(self.remove_member(now, member, out))
    }

    // ---- offset commits ----

    /// Kafka's `validateOffsetCommit`: a commit that names a generation, member or
    /// instance must come from a current member of the current generation; one that
    /// names none (a client outside group management) is accepted, outside a
    /// transaction only while the group is empty.
    pub fn validate_offset_commit(
        &self,
        generation: Option<Generation>,
        member: Option<MemberId>,
        instance: Option<u32>,
        transactional: bool,
    ) -> Result<(), ErrorCode> {
        if generation.is_none() && member.is_none() && instance.is_none() {
            return if transactional || self.state == GroupState::Empty {
                Ok(())
            } else {
                Err(ErrorCode::UnknownMemberId)
            };
        }
        let member = member.ok_or(ErrorCode::UnknownMemberId)?;
        self.validate_member(member, instance)?;
        if generation != Some(self.generation) {
            return Err(ErrorCode::IllegalGeneration);
        }
        Ok(())
    }

    /// A plain OffsetCommit that passed validation: refused while the group waits for
    /// its assignment (Kafka's REBALANCE_IN_PROGRESS), else the committing member's
    /// session starts over.
    pub fn accept_offset_commit(
        &mut self,
        now: SimTime,
        member: Option<MemberId>,
    ) -> Result<(), ErrorCode> {
        if self.state == GroupState::CompletingRebalance {
            return Err(ErrorCode::RebalanceInProgress);
        }
        if let Some(m) = member.and_then(|id| self.members.get_mut(&id)) {
            m.heard_from(now);
        }
        Ok(())
    }

    /// Internal consistency (checked after every event in debug builds).
    pub fn check_invariants(&self) {
        for (&i, id) in &self.static_members {
            debug_assert!(
                self.members.get(id).is_some_and(|m| m.instance == Some(i)),
                "static member {i} maps to a member of the instance"
            );
        }
        if let Some(l) = self.leader {
            debug_assert!(self.members.contains_key(&l), "the leader is a member");
        }
        if self.state == GroupState::Empty {
            debug_assert!(self.members.is_empty(), "an empty group has no members");
        } else if self.members.is_empty() {
            debug_assert_eq!(
                self.state,
                GroupState::PreparingRebalance,
                "a group without members is empty or ends its join phase"
            );
        }
    }
}
