//! Group coordinator tests. One broker leads the data partition (0),
//! `__transaction_state` (1) and `__consumer_offsets` (2) with `min.insync.replicas=1`,
//! so its own appends commit at once and the transaction coordinator's markers loop
//! back to itself; the failover tests hand the offsets partition's log to a second
//! broker that is then elected its leader. Clients are client nodes 1, 2, 3 (members)
//! and 9 (a transactional producer); time is given in ms per request.

use super::super::tests::{publish, started, state};
use super::super::Broker;
use crate::bug::Bug;
use crate::config::Config;
use crate::message::{ConsumerGroupMetadata, Control, ErrorCode, Joined, Message, PartitionState};
use crate::outbox::{Outbox, Timer};
use crate::types::{
    BrokerId, ClientId, Epoch, Generation, GroupId, MemberId, NodeId, Offset, PartitionId,
    PartitionSet, ProducerEpoch, ProducerId, SimTime, TxnId,
};

const DATA: PartitionId = PartitionId(0);
const OFFSETS: PartitionId = PartitionId(2);
const GROUP: GroupId = GroupId(0);
const TXN: TxnId = TxnId(1);
const A: NodeId = NodeId::Client(ClientId(1));
const B: NodeId = NodeId::Client(ClientId(2));
const C: NodeId = NodeId::Client(ClientId(3));
const PRODUCER: NodeId = NodeId::Client(ClientId(9));
const SESSION_MS: u64 = 45_000;
const REBALANCE_MS: u64 = 300_000;

fn group_config(offsets_topic_partitions: u32, bugs: &[Bug]) -> Config {
    Config {
        partitions: 1,
        transaction_state_partitions: 1,
        offsets_topic_partitions,
        min_insync_replicas: 1,
        // Most tests want a join answered at once; the delay has its own test.
        group_initial_rebalance_delay_ms: 0,
        bugs: bugs.iter().copied().collect(),
        ..Config::default()
    }
}

/// Publish that `b` leads partition `p` in `epoch` with this ISR.
fn lead(b: &mut Broker, p: PartitionId, epoch: u32, isr: &[u32], partition_epoch: u32) {
    let s = PartitionState {
        partition: p,
        ..state(b.id.0, epoch, isr, partition_epoch)
    };
    publish(b, s, &mut Outbox::default());
}

/// Broker 0 with `config`, leader of every partition with an ISR of itself.
fn coordinator_with(config: Config) -> Broker {
    assert_eq!(config.consumer_offsets_partition(GROUP), OFFSETS);
    let mut b = started(Broker::new(BrokerId(0), &config));
    for p in config.partition_ids() {
        lead(&mut b, p, 1, &[0], 1);
    }
    b
}

fn coordinator(bugs: &[Bug]) -> Broker {
    coordinator_with(group_config(1, bugs))
}

/// The follower `follower` of `__consumer_offsets` fetches at the end of the leader
/// `b`'s log (in `leader_epoch`), so the HW moves up to it; returns what `b` sent.
fn caught_up(b: &mut Broker, follower: u32, leader_epoch: u32) -> Outbox {
    let mut out = Outbox::default();
    let fetch = Message::Fetch {
        correlation: 1,
        replica: Some(BrokerId(follower)),
        partition: OFFSETS,
        fetch_offset: b.replicas[OFFSETS.index()].log.log_end_offset(),
        current_leader_epoch: Some(Epoch(leader_epoch)),
        max_records: 100,
        read_committed: false,
    };
    let from = NodeId::Broker(BrokerId(follower));
    b.handle_message(SimTime::from_ms(2), from, fetch, &mut out);
    out
}

/// Deliver `msg` from `from` at `at_ms`, loop what the broker sends itself (markers),
/// and return what it sent to clients.
fn exchange(b: &mut Broker, at_ms: u64, from: NodeId, msg: Message) -> Vec<(NodeId, Message)> {
    let now = SimTime::from_ms(at_ms);
    let mut out = Outbox::default();
    b.handle_message(now, from, msg, &mut out);
    to_clients(b, now, out)
}

/// The group timer fires at `at_ms`; returns what went to clients.
fn tick(b: &mut Broker, at_ms: u64) -> Vec<(NodeId, Message)> {
    let now = SimTime::from_ms(at_ms);
    let mut out = Outbox::default();
    b.handle_timeout(now, Timer::GroupTick, &mut out);
    to_clients(b, now, out)
}

fn to_clients(b: &mut Broker, now: SimTime, mut out: Outbox) -> Vec<(NodeId, Message)> {
    let me = NodeId::Broker(b.id);
    let mut to_client = Vec::new();
    while !out.messages.is_empty() {
        let mut next = Outbox::default();
        for (dest, m) in std::mem::take(&mut out.messages) {
            if dest == me {
                b.handle_message(now, me, m, &mut next);
            } else if matches!(dest, NodeId::Client(_)) {
                to_client.push((dest, m));
            }
        }
        out = next;
    }
    to_client
}

/// Send `msg` from `from` at `at_ms` and return the one answer it gets.
fn answer(b: &mut Broker, at_ms: u64, from: NodeId, msg: Message) -> Message {
    let mut answers = exchange(b, at_ms, from, msg);
    assert_eq!(answers.len(), 1, "one answer: {answers:?}");
    assert_eq!(answers[0].0, from, "answered to the sender");
    answers.remove(0).1
}

fn join_request(member: Option<MemberId>, instance: Option<u32>, rebalance_ms: u64) -> Message {
    Message::JoinGroup {
        correlation: 1,
        group: GROUP,
        member,
        instance,
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: rebalance_ms,
        protocols: vec!["range".to_string()],
        owned: Vec::new(),
        owned_generation: None,
    }
}

/// `node`'s JoinGroup answer among `answers`, if it got one.
fn join_answer(answers: &[(NodeId, Message)], node: NodeId) -> Option<Result<Joined, ErrorCode>> {
    answers.iter().find_map(|(to, m)| match m {
        Message::JoinGroupResponse { result, .. } if *to == node => Some(result.clone()),
        _ => None,
    })
}

/// `node`'s SyncGroup answer among `answers`, if it got one.
fn sync_answer(
    answers: &[(NodeId, Message)],
    node: NodeId,
) -> Option<Result<Vec<PartitionId>, ErrorCode>> {
    answers.iter().find_map(|(to, m)| match m {
        Message::SyncGroupResponse { result, .. } if *to == node => Some(result.clone()),
        _ => None,
    })
}

/// A member as its client knows itself.
#[derive(Clone, Copy, Debug)]
struct Member {
    node: NodeId,
    id: MemberId,
    instance: Option<u32>,
    generation: Generation,
}

impl Member {
    /// Update from a JoinGroup answer.
    fn joined(self, joined: &Joined) -> Member {
        Member {
            id: joined.member,
            generation: joined.generation,
            ..self
        }
    }
}

/// A new member joins; its answer (if the join phase ended) among the answers.
fn join_new(
    b: &mut Broker,
    at_ms: u64,
    node: NodeId,
    instance: Option<u32>,
) -> Vec<(NodeId, Message)> {
    exchange(b, at_ms, node, join_request(None, instance, REBALANCE_MS))
}

/// A known member rejoins.
fn rejoin(b: &mut Broker, at_ms: u64, m: Member) -> Vec<(NodeId, Message)> {
    exchange(
        b,
        at_ms,
        m.node,
        join_request(Some(m.id), m.instance, REBALANCE_MS),
    )
}

fn sync(
    b: &mut Broker,
    at_ms: u64,
    m: Member,
    assignments: Vec<(MemberId, Vec<PartitionId>)>,
) -> Vec<(NodeId, Message)> {
    let request = Message::SyncGroup {
        correlation: 2,
        group: GROUP,
        generation: m.generation,
        member: m.id,
        instance: m.instance,
        assignments,
    };
    exchange(b, at_ms, m.node, request)
}

fn heartbeat(b: &mut Broker, at_ms: u64, m: Member) -> Result<(), ErrorCode> {
    let request = Message::Heartbeat {
        correlation: 3,
        group: GROUP,
        generation: m.generation,
        member: m.id,
        instance: m.instance,
    };
    match answer(b, at_ms, m.node, request) {
        Message::HeartbeatResponse { result, .. } => result,
        other => panic!("Heartbeat answered {other:?}"),
    }
}

/// OffsetCommit of `offset` for `DATA`, by `m` (or by a client outside the group).
fn offset_commit(
    b: &mut Broker,
    at_ms: u64,
    m: Option<Member>,
    offset: u64,
) -> Result<(), ErrorCode> {
    let request = Message::OffsetCommit {
        correlation: 4,
        group: GROUP,
        generation: m.map(|m| m.generation),
        member: m.map(|m| m.id),
        instance: m.and_then(|m| m.instance),
        offsets: vec![(DATA, Offset(offset))],
    };
    let from = m.map_or(PRODUCER, |m| m.node);
    match answer(b, at_ms, from, request) {
        Message::OffsetCommitResponse { result, .. } => result,
        other => panic!("OffsetCommit answered {other:?}"),
    }
}

/// One member alone: joined (generation 1, the leader) and synced with `DATA`.
fn first_member(b: &mut Broker, node: NodeId, instance: Option<u32>) -> Member {
    let answers = join_new(b, 0, node, instance);
    let joined = join_answer(&answers, node)
        .expect("answered at once")
        .unwrap();
    assert_eq!(joined.leader, joined.member, "the first member leads");
    let m = Member {
        node,
        id: joined.member,
        instance,
        generation: Generation(0),
    }
    .joined(&joined);
    let answers = sync(b, 0, m, vec![(m.id, vec![DATA])]);
    assert_eq!(sync_answer(&answers, node), Some(Ok(vec![DATA])));
    m
}

/// Two members, Stable in generation 2: `a` leads (assigned `DATA`), `b` has nothing.
fn stable_pair(b: &mut Broker, instances: [Option<u32>; 2]) -> (Member, Member) {
    let a = first_member(b, A, instances[0]);
    let answers = join_new(b, 10, B, instances[1]);
    assert!(answers.is_empty(), "B waits for A to rejoin: {answers:?}");
    assert_eq!(heartbeat(b, 20, a), Err(ErrorCode::RebalanceInProgress));
    let answers = rejoin(b, 30, a);
    let joined_a = join_answer(&answers, A).expect("A answered").unwrap();
    let joined_b = join_answer(&answers, B).expect("B answered").unwrap();
    let a = a.joined(&joined_a);
    let m_b = Member {
        node: B,
        id: joined_b.member,
        instance: instances[1],
        generation: Generation(0),
    }
    .joined(&joined_b);
    assert!(
        sync(b, 40, m_b, Vec::new()).is_empty(),
        "B waits for the leader"
    );
    let answers = sync(b, 50, a, vec![(a.id, vec![DATA]), (m_b.id, Vec::new())]);
    assert_eq!(sync_answer(&answers, A), Some(Ok(vec![DATA])));
    assert_eq!(sync_answer(&answers, B), Some(Ok(Vec::new())));
    (a, m_b)
}

// ---- the join / sync protocol ----

#[test]
fn two_members_rebalance_and_the_leaders_assignment_reaches_both() {
    let mut b = coordinator(&[]);
    let a = first_member(&mut b, A, None);
    assert_eq!(a.generation, Generation(1));
    let log_end = b.replicas[OFFSETS.index()].log.log_end_offset();
    assert_eq!(
        log_end,
        Offset(2),
        "generation 1 stored: A's record and the close"
    );

    // B joins: A must rejoin before anyone is answered.
    assert!(join_new(&mut b, 10, B, None).is_empty());
    let answers = rejoin(&mut b, 30, a);
    let joined_a = join_answer(&answers, A).unwrap().unwrap();
    let joined_b = join_answer(&answers, B).unwrap().unwrap();
    assert_eq!(joined_a.generation, Generation(2));
    assert_eq!(joined_b.generation, Generation(2));
    assert_eq!(joined_a.leader, a.id, "the leader rejoined: it stays");
    assert_eq!(joined_b.leader, a.id);
    assert_eq!(joined_a.protocol, "range");
    let listed: Vec<MemberId> = joined_a.members.iter().map(|m| m.0).collect();
    assert_eq!(
        listed,
        vec![a.id, joined_b.member],
        "the leader learns every member"
    );
    assert!(joined_b.members.is_empty(), "a follower learns none");

    // Every SyncGroup waits for the leader's; the leader's assignment reaches both.
    let a = a.joined(&joined_a);
    let m_b = Member {
        node: B,
        id: joined_b.member,
        instance: None,
        generation: Generation(2),
    };
    assert!(sync(&mut b, 40, m_b, Vec::new()).is_empty());
    let answers = sync(
        &mut b,
        50,
        a,
        vec![(a.id, Vec::new()), (m_b.id, vec![DATA])],
    );
    assert_eq!(sync_answer(&answers, A), Some(Ok(Vec::new())));
    assert_eq!(sync_answer(&answers, B), Some(Ok(vec![DATA])));
    // Stable: a later SyncGroup is answered at once with the stored assignment.
    assert_eq!(
        sync_answer(&sync(&mut b, 60, m_b, Vec::new()), B),
        Some(Ok(vec![DATA]))
    );
    assert_eq!(heartbeat(&mut b, 70, a), Ok(()));
    assert_eq!(
        heartbeat(
            &mut b,
            70,
            Member {
                generation: Generation(1),
                ..a
            }
        ),
        Err(ErrorCode::IllegalGeneration)
    );
}

#[test]
fn a_heartbeat_during_a_rebalance_asks_the_member_to_rejoin() {
    let mut b = coordinator(&[]);
    let a = first_member(&mut b, A, None);
    assert_eq!(heartbeat(&mut b, 5, a), Ok(()));
    assert!(join_new(&mut b, 10, B, None).is_empty());
    assert_eq!(
        heartbeat(&mut b, 20, a),
        Err(ErrorCode::RebalanceInProgress)
    );
    // The generation has not moved yet: A's commits still count meanwhile.
    assert_eq!(offset_commit(&mut b, 25, Some(a), 3), Ok(()));
}

#[test]
fn an_expired_session_removes_the_member_and_rebalances() {
    let mut b = coordinator(&[]);
    let (a, m_b) = stable_pair(&mut b, [None, None]);
    // A heartbeats; B goes silent after its SyncGroup at 50 ms.
    for t in (3_000..=45_000).step_by(3_000) {
        assert_eq!(heartbeat(&mut b, t, a), Ok(()));
    }
    assert!(tick(&mut b, 45_049).is_empty(), "B's session has 1 ms left");
    assert!(
        tick(&mut b, 45_050).is_empty(),
        "B expires: nobody is waiting yet"
    );
    assert_eq!(
        heartbeat(&mut b, 45_100, m_b),
        Err(ErrorCode::UnknownMemberId)
    );
    assert_eq!(
        heartbeat(&mut b, 45_100, a),
        Err(ErrorCode::RebalanceInProgress)
    );
    let answers = rejoin(&mut b, 45_200, a);
    let joined = join_answer(&answers, A).unwrap().unwrap();
    assert_eq!(joined.generation, Generation(3));
    let listed: Vec<MemberId> = joined.members.iter().map(|m| m.0).collect();
    assert_eq!(listed, vec![a.id], "B is gone");
}

#[test]
fn the_rebalance_timeout_drops_a_dynamic_member_that_did_not_rejoin() {
    // B keeps heartbeating (so its session lives) but never rejoins; a static member
    // that does not rejoin stays (Kafka leaves it to its session time-out).
    let mut b = coordinator(&[]);
    let (a, m_b) = stable_pair(&mut b, [None, None]);
    let answers = exchange(&mut b, 100, C, join_request(None, Some(7), 10_000));
    assert!(answers.is_empty(), "C's join starts a rebalance");
    let answers = exchange(&mut b, 200, A, join_request(Some(a.id), None, 10_000));
    assert!(answers.is_empty(), "B has not rejoined");
    // The join phase ends 300 s after it began (the largest rebalance time-out of the
    // members then: B's); B's heartbeats keep its session alive meanwhile.
    for t in (3_000..=300_000).step_by(3_000) {
        assert_eq!(
            heartbeat(&mut b, t, m_b),
            Err(ErrorCode::RebalanceInProgress)
        );
    }
    assert!(tick(&mut b, 300_099).is_empty());
    let answers = tick(&mut b, 300_100);
    let joined_a = join_answer(&answers, A).unwrap().unwrap();
    let joined_c = join_answer(&answers, C).unwrap().unwrap();
    assert_eq!(joined_a.generation, Generation(3));
    assert_eq!(joined_c.generation, Generation(3));
    let listed: Vec<MemberId> = joined_a.members.iter().map(|m| m.0).collect();
    assert_eq!(listed, vec![a.id, joined_c.member], "B was removed");
    assert_eq!(
        heartbeat(&mut b, 300_200, m_b),
        Err(ErrorCode::UnknownMemberId)
    );

    // Now C (static) does not rejoin a rebalance A starts: it stays a member.
    let a = a.joined(&joined_a);
    let c = Member {
        node: C,
        id: joined_c.member,
        instance: Some(7),
        generation: Generation(3),
    };
    let answers = sync(&mut b, 300_300, a, vec![(a.id, vec![DATA])]);
    assert_eq!(sync_answer(&answers, A), Some(Ok(vec![DATA])));
    assert!(exchange(&mut b, 300_400, A, join_request(Some(a.id), None, 10_000)).is_empty());
    let answers = tick(&mut b, 310_400);
    let joined_a = join_answer(&answers, A).unwrap().unwrap();
    let listed: Vec<MemberId> = joined_a.members.iter().map(|m| m.0).collect();
    assert_eq!(listed, vec![a.id, c.id], "the static member stays");
    assert_eq!(
        heartbeat(&mut b, 310_500, c),
        Err(ErrorCode::IllegalGeneration)
    );
}

#[test]
fn the_first_rebalance_waits_the_initial_delay_while_members_keep_coming() {
    let config = Config {
        group_initial_rebalance_delay_ms: 3_000,
        ..group_config(1, &[])
    };
    let mut b = coordinator_with(config.clone());
    assert!(join_new(&mut b, 0, A, None).is_empty());
    assert!(join_new(&mut b, 1_000, B, None).is_empty());
    assert!(tick(&mut b, 2_999).is_empty());
    // B came during the delay: another delay.
    assert!(tick(&mut b, 3_000).is_empty());
    let answers = tick(&mut b, 6_000);
    let joined_a = join_answer(&answers, A).unwrap().unwrap();
    let joined_b = join_answer(&answers, B).unwrap().unwrap();
    assert_eq!(
        joined_a.generation,
        Generation(1),
        "one generation for both"
    );
    assert_eq!(joined_b.generation, Generation(1));
    assert_eq!(joined_a.members.len(), 2);

    // Alone, a member waits the delay once.
    let mut b = coordinator_with(config);
    assert!(join_new(&mut b, 0, A, None).is_empty());
    let answers = tick(&mut b, 3_000);
    assert_eq!(
        join_answer(&answers, A).unwrap().unwrap().generation,
        Generation(1)
    );
}

#[test]
fn the_group_timer_is_armed_for_the_earliest_deadline() {
    let mut b = coordinator(&[]);
    let mut out = Outbox::default();
    b.handle_message(
        SimTime::from_ms(100),
        A,
        join_request(None, None, REBALANCE_MS),
        &mut out,
    );
    assert!(
        out.messages.iter().any(|(to, _)| *to == A),
        "answered at once"
    );
    let armed: Vec<SimTime> = out
        .timers
        .iter()
        .filter(|(_, t)| *t == Timer::GroupTick)
        .map(|(d, _)| *d)
        .collect();
    assert_eq!(armed, vec![SimTime::from_ms(SESSION_MS)], "A's session");
}

// ---- static membership (KIP-345) ----

#[test]
fn a_restarted_static_member_takes_its_place_without_a_rebalance() {
    let mut b = coordinator(&[]);
    let (a, m_b) = stable_pair(&mut b, [Some(0), Some(1)]);
    // A restarts: a new process, the same group.instance.id, no member id.
    let answers = join_new(&mut b, 1_000, C, Some(0));
    let joined = join_answer(&answers, C)
        .expect("answered once stored")
        .unwrap();
    assert_eq!(joined.generation, Generation(2), "no new generation");
    assert_ne!(joined.member, a.id);
    assert_eq!(joined.leader, a.id, "the leader as it was: not the new id");
    assert!(joined.members.is_empty());
    let a2 = Member {
        node: C,
        id: joined.member,
        instance: Some(0),
        generation: Generation(2),
    };
    assert_eq!(
        sync_answer(&sync(&mut b, 1_100, a2, Vec::new()), C),
        Some(Ok(vec![DATA])),
        "the instance's assignment"
    );
    assert_eq!(heartbeat(&mut b, 1_200, m_b), Ok(()), "no rebalance");
    assert_eq!(heartbeat(&mut b, 1_200, a2), Ok(()));
    // The old process is a zombie from now on.
    assert_eq!(
        heartbeat(&mut b, 1_300, a),
        Err(ErrorCode::FencedInstanceId)
    );
    let answers = rejoin(&mut b, 1_300, a);
    assert_eq!(
        join_answer(&answers, A),
        Some(Err(ErrorCode::FencedInstanceId))
    );
    assert_eq!(
        offset_commit(&mut b, 1_300, Some(a), 5),
        Err(ErrorCode::FencedInstanceId)
    );
    assert_eq!(offset_commit(&mut b, 1_300, Some(a2), 5), Ok(()));
}

#[test]
fn with_static_member_duplicate_both_processes_of_an_instance_own_its_partitions() {
    // KAFKA-8500: the older member of the instance is not fenced.
    let mut b = coordinator(&[Bug::StaticMemberDuplicate]);
    let (a, m_b) = stable_pair(&mut b, [Some(0), Some(1)]);
    let answers = join_new(&mut b, 1_000, C, Some(0));
    let joined = join_answer(&answers, C).unwrap().unwrap();
    let a2 = Member {
        node: C,
        id: joined.member,
        instance: Some(0),
        generation: joined.generation,
    };
    assert_eq!(
        sync_answer(&sync(&mut b, 1_100, a2, Vec::new()), C),
        Some(Ok(vec![DATA]))
    );
    assert_eq!(
        sync_answer(&sync(&mut b, 1_100, a, Vec::new()), A),
        Some(Ok(vec![DATA])),
        "both own DATA"
    );
    assert_eq!(
        heartbeat(&mut b, 1_200, a),
        Ok(()),
        "the old member is not fenced"
    );
    assert_eq!(heartbeat(&mut b, 1_200, a2), Ok(()));
    assert_eq!(heartbeat(&mut b, 1_200, m_b), Ok(()));
    assert_eq!(offset_commit(&mut b, 1_300, Some(a), 5), Ok(()));
}

// ---- OffsetCommit fencing ----

#[test]
fn offset_commits_are_fenced_by_generation_and_member() {
    let mut b = coordinator(&[]);
    let (a, m_b) = stable_pair(&mut b, [Some(0), None]);
    let old_generation = Member {
        generation: Generation(1),
        ..a
    };
    let stranger = Member {
        id: MemberId(99),
        instance: None,
        ..m_b
    };
    assert_eq!(
        offset_commit(&mut b, 100, Some(old_generation), 5),
        Err(ErrorCode::IllegalGeneration)
    );
    assert_eq!(
        offset_commit(&mut b, 100, Some(stranger), 5),
        Err(ErrorCode::UnknownMemberId)
    );
    assert_eq!(
        offset_commit(&mut b, 100, None, 5),
        Err(ErrorCode::UnknownMemberId),
        "no member-less commits into a live group"
    );
    assert_eq!(
        offset_commit(
            &mut b,
            100,
            Some(Member {
                instance: Some(3),
                ..a
            }),
            5
        ),
        Err(ErrorCode::UnknownMemberId),
        "an unknown instance"
    );
    assert_eq!(offset_commit(&mut b, 100, Some(a), 5), Ok(()));

    // A static replacement fences the old member id.
    let answers = join_new(&mut b, 200, C, Some(0));
    assert!(join_answer(&answers, C).unwrap().is_ok());
    assert_eq!(
        offset_commit(&mut b, 300, Some(a), 6),
        Err(ErrorCode::FencedInstanceId)
    );

    // The replacement took the leader's place: its rejoin starts a rebalance, whose
    // join phase still takes commits of the current generation.
    let a2 = Member {
        node: C,
        id: join_answer(&answers, C).unwrap().unwrap().member,
        instance: Some(0),
        generation: Generation(2),
    };
    assert!(rejoin(&mut b, 400, a2).is_empty());
    assert_eq!(offset_commit(&mut b, 450, Some(m_b), 6), Ok(()));
    // While the group waits for the leader's SyncGroup: REBALANCE_IN_PROGRESS.
    let answers = rejoin(&mut b, 500, m_b);
    let joined = join_answer(&answers, B).unwrap().unwrap();
    assert_eq!(joined.generation, Generation(3));
    let m_b = m_b.joined(&joined);
    assert_eq!(
        offset_commit(&mut b, 600, Some(m_b), 7),
        Err(ErrorCode::RebalanceInProgress)
    );

    let log = &b.replicas[OFFSETS.index()].log;
    let offsets = log
        .records()
        .iter()
        .filter(|r| {
            matches!(
                r.txn_state,
                Some(crate::message::CoordinatorEntry::Group(
                    crate::message::GroupLogEntry::Offset { .. }
                ))
            )
        })
        .count();
    assert_eq!(offsets, 2, "only the accepted commits were written");
    assert_eq!(fetch_offset(&mut b, true), Ok(Some(Offset(6))));
}

#[test]
fn a_member_less_commit_is_accepted_while_the_group_is_empty() {
    // Kafka's assign-mode consumers commit with generation -1 and no member id.
    let mut b = coordinator(&[]);
    assert_eq!(offset_commit(&mut b, 0, None, 4), Ok(()));
    assert_eq!(fetch_offset(&mut b, true), Ok(Some(Offset(4))));
}

#[test]
fn without_the_commit_generation_fence_a_zombie_regresses_the_offset() {
    let mut b = coordinator(&[Bug::NoCommitGenerationFence]);
    let (a, _) = stable_pair(&mut b, [Some(0), None]);
    assert_eq!(offset_commit(&mut b, 100, Some(a), 9), Ok(()));
    // A zombie of generation 1, and an id nobody has, are both accepted.
    let zombie = Member {
        generation: Generation(1),
        ..a
    };
    assert_eq!(offset_commit(&mut b, 200, Some(zombie), 5), Ok(()));
    assert_eq!(
        fetch_offset(&mut b, false),
        Ok(Some(Offset(5))),
        "the offset went back"
    );
    let stranger = Member {
        id: MemberId(99),
        ..zombie
    };
    assert_eq!(offset_commit(&mut b, 300, Some(stranger), 3), Ok(()));
}

// ---- transactional offset commits (KIP-98, KIP-447) ----

/// The producer of `TXN` (a new instance each call: InitProducerId bumps its epoch).
fn init(b: &mut Broker) -> (ProducerId, ProducerEpoch) {
    let request = Message::InitProducerId {
        correlation: 2,
        transactional_id: TXN,
        transaction_timeout_ms: 60_000,
    };
    match answer(b, 1, PRODUCER, request) {
        Message::InitProducerIdResponse { result: Ok(p), .. } => p,
        other => panic!("InitProducerId answered {other:?}"),
    }
}

fn add_offsets(b: &mut Broker, (pid, epoch): (ProducerId, ProducerEpoch)) -> Result<(), ErrorCode> {
    let request = Message::AddOffsetsToTxn {
        correlation: 3,
        transactional_id: TXN,
        producer_id: pid,
        producer_epoch: epoch,
        group: GROUP,
    };
    match answer(b, 1, PRODUCER, request) {
        Message::TxnResponse { result, .. } => result,
        other => panic!("AddOffsetsToTxn answered {other:?}"),
    }
}

/// TxnOffsetCommit of `offset` for partition `DATA`, with `m`'s group metadata.
fn commit_request((pid, epoch): (ProducerId, ProducerEpoch), m: Member, offset: u64) -> Message {
    Message::TxnOffsetCommit {
        correlation: 4,
        transactional_id: TXN,
        producer_id: pid,
        producer_epoch: epoch,
        group: GROUP,
        group_metadata: Some(ConsumerGroupMetadata {
            generation: m.generation,
            member: m.id,
            instance: m.instance,
        }),
        offsets: vec![(DATA, Offset(offset))],
    }
}

fn commit_offset(
    b: &mut Broker,
    producer: (ProducerId, ProducerEpoch),
    m: Member,
    offset: u64,
) -> Result<(), ErrorCode> {
    match answer(b, 1, PRODUCER, commit_request(producer, m, offset)) {
        Message::TxnOffsetCommitResponse { result, .. } => result,
        other => panic!("TxnOffsetCommit answered {other:?}"),
    }
}

/// EndTxn; returns the producer for the next transaction.
fn end_txn(
    b: &mut Broker,
    (pid, epoch): (ProducerId, ProducerEpoch),
    commit: bool,
) -> (ProducerId, ProducerEpoch) {
    let request = Message::EndTxn {
        correlation: 5,
        transactional_id: TXN,
        producer_id: pid,
        producer_epoch: epoch,
        commit,
        transaction_version_2: true,
    };
    match answer(b, 1, PRODUCER, request) {
        Message::EndTxnResponse {
            result: Ok(next), ..
        } => (pid, next),
        other => panic!("EndTxn answered {other:?}"),
    }
}

/// AddOffsetsToTxn and TxnOffsetCommit of `offset` by member `m`.
fn send_offset(b: &mut Broker, producer: (ProducerId, ProducerEpoch), m: Member, offset: u64) {
    assert_eq!(add_offsets(b, producer), Ok(()));
    assert_eq!(commit_offset(b, producer, m, offset), Ok(()));
}

/// Static member `a` of instance 0 replaced by a new process (returned second), and a
/// producer whose transaction has the group's `__consumer_offsets` partition.
fn replaced_member(bugs: &[Bug]) -> (Broker, Member, Member, (ProducerId, ProducerEpoch)) {
    let mut b = coordinator(bugs);
    let a = first_member(&mut b, A, Some(0));
    let joined = join_answer(&join_new(&mut b, 1, C, Some(0)), C)
        .unwrap()
        .unwrap();
    let a2 = Member {
        node: C,
        instance: Some(0),
        ..a
    }
    .joined(&joined);
    let producer = init(&mut b);
    assert_eq!(add_offsets(&mut b, producer), Ok(()));
    (b, a, a2, producer)
}

/// Member `a` in generation 1; a first transaction committed offset 5, a second one
/// (whose producer is returned) leaves offset 9 pending.
fn committed_then_pending(bugs: &[Bug]) -> (Broker, (ProducerId, ProducerEpoch)) {
    let mut b = coordinator(bugs);
    let a = first_member(&mut b, A, Some(0));
    let producer = init(&mut b);
    send_offset(&mut b, producer, a, 5);
    let producer = end_txn(&mut b, producer, true);
    send_offset(&mut b, producer, a, 9);
    (b, producer)
}

/// The group's committed offset of partition `DATA`.
fn fetch_offset(b: &mut Broker, require_stable: bool) -> Result<Option<Offset>, ErrorCode> {
    let request = Message::OffsetFetch {
        correlation: 6,
        group: GROUP,
        partitions: [DATA].into_iter().collect::<PartitionSet>(),
        require_stable,
    };
    match answer(b, 1, PRODUCER, request) {
        Message::OffsetFetchResponse { result, .. } => result.map(|offsets| match offsets[..] {
            [(DATA, offset)] => offset,
            _ => panic!("OffsetFetch answered {offsets:?}"),
        }),
        other => panic!("OffsetFetch answered {other:?}"),
    }
}

#[test]
fn txn_offset_commit_is_fenced_by_member_and_generation() {
    // KIP-447: a zombie (replaced member, or stale generation) may not commit offsets.
    let (mut b, a, a2, producer) = replaced_member(&[]);
    let refused = [
        (a, ErrorCode::FencedInstanceId),
        (
            Member {
                id: MemberId(99),
                instance: None,
                ..a2
            },
            ErrorCode::UnknownMemberId,
        ),
        (
            Member {
                generation: Generation(0),
                ..a2
            },
            ErrorCode::IllegalGeneration,
        ),
    ];
    let log_end = b.replicas[OFFSETS.index()].log.log_end_offset();
    for (m, error) in refused {
        assert_eq!(commit_offset(&mut b, producer, m, 5), Err(error));
    }
    let log = &b.replicas[OFFSETS.index()].log;
    assert_eq!(log.log_end_offset(), log_end, "nothing refused was written");
    assert_eq!(commit_offset(&mut b, producer, a2, 5), Ok(()));
}

#[test]
fn without_the_txn_offset_generation_fence_a_zombie_commit_is_accepted() {
    let (mut b, a, _, producer) = replaced_member(&[Bug::NoTxnOffsetGenerationFence]);
    assert_eq!(commit_offset(&mut b, producer, a, 5), Ok(()));
}

#[test]
fn pending_offsets_become_committed_with_the_commit_marker() {
    let mut b = coordinator(&[]);
    let a = first_member(&mut b, A, Some(0));
    let producer = init(&mut b);
    assert_eq!(add_offsets(&mut b, producer), Ok(()));
    assert_eq!(
        b.txn_state(TXN).unwrap().partitions,
        [OFFSETS].into_iter().collect::<PartitionSet>(),
        "AddOffsetsToTxn put the group's __consumer_offsets partition in the transaction"
    );
    assert_eq!(commit_offset(&mut b, producer, a, 7), Ok(()));
    assert_eq!(
        fetch_offset(&mut b, false),
        Ok(None),
        "pending, not committed"
    );
    assert_eq!(
        fetch_offset(&mut b, true),
        Err(ErrorCode::UnstableOffsetCommit)
    );
    let r = &b.replicas[OFFSETS.index()];
    assert_eq!(
        r.log.last_stable_offset(r.high_watermark),
        Offset(2),
        "the transactional commit (after the group's 2 records) holds the LSO"
    );

    end_txn(&mut b, producer, true);
    let log = &b.replicas[OFFSETS.index()].log;
    assert_eq!(
        log.record(Offset(log.log_end_offset().0 - 1))
            .and_then(|r| r.control),
        Some(Control::Commit),
        "EndTxn's marker went to __consumer_offsets"
    );
    assert_eq!(fetch_offset(&mut b, true), Ok(Some(Offset(7))));
    assert_eq!(fetch_offset(&mut b, false), Ok(Some(Offset(7))));
}

#[test]
fn an_abort_marker_drops_pending_offsets() {
    let (mut b, producer) = committed_then_pending(&[]);
    assert_eq!(fetch_offset(&mut b, false), Ok(Some(Offset(5))));
    end_txn(&mut b, producer, false);
    assert_eq!(fetch_offset(&mut b, true), Ok(Some(Offset(5))));
}

#[test]
fn without_require_stable_the_old_offset_is_read_while_a_commit_is_pending() {
    let (mut b, _) = committed_then_pending(&[Bug::NoRequireStable]);
    assert_eq!(fetch_offset(&mut b, true), Ok(Some(Offset(5))));
}

#[test]
fn a_fenced_producer_epoch_cannot_commit_offsets() {
    // The partition's producer state fences the older instance of a transactional id
    // once it has seen the newer epoch (Kafka validates a coordinator's append so).
    let mut b = coordinator(&[]);
    let a = first_member(&mut b, A, Some(0));
    let zombie = init(&mut b);
    let producer = init(&mut b);
    assert!(producer.1 > zombie.1);
    send_offset(&mut b, producer, a, 9);
    assert_eq!(
        commit_offset(&mut b, zombie, a, 5),
        Err(ErrorCode::InvalidProducerEpoch)
    );
}

#[test]
fn a_replacement_fences_at_once_and_answers_wait_for_the_log() {
    // Broker 1 joins the ISR of __consumer_offsets and has not fetched: writes wait.
    let mut b = coordinator(&[]);
    let a = first_member(&mut b, A, Some(0));
    lead(&mut b, OFFSETS, 1, &[0, 1], 2);
    let producer = init(&mut b);
    assert_eq!(add_offsets(&mut b, producer), Ok(()));
    assert!(
        join_new(&mut b, 10, C, Some(0)).is_empty(),
        "the replacement's join waits for its write"
    );
    assert_eq!(
        commit_offset(&mut b, producer, a, 5),
        Err(ErrorCode::FencedInstanceId),
        "the replaced member is fenced before the write commits"
    );
    assert_eq!(heartbeat(&mut b, 20, a), Err(ErrorCode::FencedInstanceId));
    assert_eq!(
        fetch_offset(&mut b, true),
        Ok(None),
        "nothing is pending yet"
    );

    // Broker 1 catches up: the join is answered.
    let answers: Vec<(NodeId, Message)> = caught_up(&mut b, 1, 1)
        .messages
        .into_iter()
        .filter(|(to, _)| matches!(to, NodeId::Client(_)))
        .collect();
    let joined = join_answer(&answers, C).expect("answered").unwrap();
    assert_eq!(joined.generation, Generation(1));
    let a2 = Member {
        node: C,
        instance: Some(0),
        ..a
    }
    .joined(&joined);
    // A transactional commit waits for the log too, and is unstable meanwhile.
    assert!(exchange(&mut b, 30, PRODUCER, commit_request(producer, a2, 5)).is_empty());
    assert_eq!(
        fetch_offset(&mut b, true),
        Err(ErrorCode::UnstableOffsetCommit)
    );
    let answers = caught_up(&mut b, 1, 1).messages;
    assert!(
        answers.iter().any(|(to, m)| *to == PRODUCER
            && matches!(m, Message::TxnOffsetCommitResponse { result: Ok(()), .. })),
        "{answers:?}"
    );
}

#[test]
fn without_consumer_offsets_there_is_no_group_coordinator() {
    let mut b = started(Broker::new(BrokerId(0), &group_config(0, &[])));
    lead(&mut b, DATA, 1, &[0], 1);
    lead(&mut b, PartitionId(1), 1, &[0], 1);
    let answers = join_new(&mut b, 0, A, Some(0));
    assert_eq!(
        join_answer(&answers, A),
        Some(Err(ErrorCode::CoordinatorNotAvailable))
    );
    let producer = init(&mut b);
    assert_eq!(
        add_offsets(&mut b, producer),
        Err(ErrorCode::CoordinatorNotAvailable)
    );
}

// ---- coordinator failover ----

/// Broker 1 with a copy of broker 0's `__consumer_offsets` log, elected its leader in
/// epoch 2 with broker 0 in the ISR, caught up (loaded), then alone in the ISR.
fn failed_over(b0: &Broker, bugs: &[Bug]) -> Broker {
    let mut b1 = started(Broker::new(BrokerId(1), &group_config(1, bugs)));
    for r in b0.replicas[OFFSETS.index()].log.records() {
        b1.replicas[OFFSETS.index()].log.append(*r);
    }
    let answers = join_new(&mut b1, 0, C, Some(0));
    assert_eq!(
        join_answer(&answers, C),
        Some(Err(ErrorCode::NotCoordinator))
    );
    lead(&mut b1, OFFSETS, 2, &[0, 1], 2);
    assert_eq!(
        fetch_offset(&mut b1, false),
        Err(ErrorCode::CoordinatorNotAvailable),
        "loading until the HW reaches the epoch start"
    );
    caught_up(&mut b1, 0, 2);
    lead(&mut b1, OFFSETS, 2, &[1], 3);
    b1
}

#[test]
fn a_new_coordinator_reloads_generation_members_and_offsets() {
    let mut b0 = coordinator(&[]);
    let (a, m_b) = stable_pair(&mut b0, [Some(0), Some(1)]);
    assert_eq!(offset_commit(&mut b0, 100, Some(a), 7), Ok(()));

    let mut b1 = failed_over(&b0, &[]);
    assert_eq!(fetch_offset(&mut b1, true), Ok(Some(Offset(7))));
    // The members of generation 2 go on, each with a fresh session.
    assert_eq!(heartbeat(&mut b1, 1_000, a), Ok(()));
    assert_eq!(offset_commit(&mut b1, 1_000, Some(a), 8), Ok(()));
    assert_eq!(
        sync_answer(&sync(&mut b1, 1_000, m_b, Vec::new()), B),
        Some(Ok(Vec::new())),
        "B's stored assignment"
    );
    assert_eq!(
        sync_answer(&sync(&mut b1, 1_000, a, Vec::new()), A),
        Some(Ok(vec![DATA]))
    );
    assert_eq!(
        offset_commit(
            &mut b1,
            1_000,
            Some(Member {
                generation: Generation(1),
                ..a
            }),
            8
        ),
        Err(ErrorCode::IllegalGeneration)
    );

    // A restart of instance 0 on the new coordinator: a new id of epoch 2, A fenced.
    let joined = join_answer(&join_new(&mut b1, 2_000, C, Some(0)), C)
        .unwrap()
        .unwrap();
    assert_eq!(
        joined.member,
        MemberId(2_000_001),
        "ids of the new leader epoch"
    );
    assert_eq!(joined.generation, Generation(2));
    assert_eq!(
        heartbeat(&mut b1, 2_100, a),
        Err(ErrorCode::FencedInstanceId)
    );

    // B, silent since the failover (the group was loaded at 1000 ms), expires then.
    for t in (3_000..46_000).step_by(3_000) {
        let a2 = Member {
            node: C,
            id: joined.member,
            instance: Some(0),
            generation: Generation(2),
        };
        assert_eq!(heartbeat(&mut b1, t, a2), Ok(()));
    }
    assert!(tick(&mut b1, 45_999).is_empty());
    tick(&mut b1, 46_000);
    assert_eq!(
        heartbeat(&mut b1, 46_100, m_b),
        Err(ErrorCode::UnknownMemberId)
    );
}

#[test]
fn a_new_coordinator_rebuilds_pending_transactional_offsets() {
    // Broker 0 coordinates: offset 7 committed, offset 9 pending.
    let mut b0 = coordinator(&[]);
    let a = first_member(&mut b0, A, Some(0));
    let producer = init(&mut b0);
    send_offset(&mut b0, producer, a, 7);
    let producer = end_txn(&mut b0, producer, true);
    send_offset(&mut b0, producer, a, 9);

    let mut b1 = failed_over(&b0, &[]);
    assert_eq!(fetch_offset(&mut b1, false), Ok(Some(Offset(7))));
    assert_eq!(
        fetch_offset(&mut b1, true),
        Err(ErrorCode::UnstableOffsetCommit),
        "the second commit is still pending"
    );
    assert_eq!(
        commit_offset(
            &mut b1,
            producer,
            Member {
                generation: Generation(0),
                ..a
            },
            8
        ),
        Err(ErrorCode::IllegalGeneration),
        "generation 1 was rebuilt"
    );

    // The transaction coordinator's commit marker decides the rebuilt pending offset.
    let (pid, epoch) = producer;
    let marker = Message::WriteTxnMarkers {
        correlation: 7,
        producer_id: pid,
        producer_epoch: epoch,
        control: Control::Commit,
        partitions: vec![OFFSETS],
    };
    b1.handle_message(
        SimTime::from_ms(3),
        NodeId::Broker(BrokerId(0)),
        marker,
        &mut Outbox::default(),
    );
    assert_eq!(fetch_offset(&mut b1, true), Ok(Some(Offset(9))));
}

#[test]
fn losing_the_coordinator_answers_parked_joins_not_coordinator() {
    let config = Config {
        group_initial_rebalance_delay_ms: 3_000,
        ..group_config(1, &[])
    };
    let mut b = coordinator_with(config);
    assert!(join_new(&mut b, 0, A, None).is_empty());
    let mut out = Outbox::default();
    let s = PartitionState {
        partition: OFFSETS,
        ..state(1, 2, &[1], 2)
    };
    publish(&mut b, s, &mut out);
    let answers = to_clients(&mut b, SimTime::ZERO, out);
    assert_eq!(
        join_answer(&answers, A),
        Some(Err(ErrorCode::NotCoordinator))
    );
}
