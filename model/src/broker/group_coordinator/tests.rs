//! Group coordinator tests. One broker leads the data partition (0),
//! `__transaction_state` (1) and `__consumer_offsets` (2) with `min.insync.replicas=1`,
//! so its own appends commit at once and the transaction coordinator's markers loop
//! back to itself; the failover test hands the offsets partition's log to a second
//! broker that is then elected its leader.

use super::super::tests::{publish, started, state, txn_request};
use super::super::Broker;
use crate::bug::Bug;
use crate::config::Config;
use crate::message::{Control, ErrorCode, Message, PartitionState};
use crate::outbox::Outbox;
use crate::types::{
    BrokerId, Epoch, Generation, GroupId, MemberId, NodeId, Offset, PartitionId, PartitionSet,
    ProducerEpoch, ProducerId, SimTime, TxnId,
};

const DATA: PartitionId = PartitionId(0);
const OFFSETS: PartitionId = PartitionId(2);
const GROUP: GroupId = GroupId(0);
const TXN: TxnId = TxnId(1);

fn group_config(offsets_topic_partitions: u32, bugs: &[Bug]) -> Config {
    Config {
        partitions: 1,
        transaction_state_partitions: 1,
        offsets_topic_partitions,
        min_insync_replicas: 1,
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

/// Broker 0, leader of every partition with an ISR of itself.
fn coordinator(bugs: &[Bug]) -> Broker {
    let config = group_config(1, bugs);
    assert_eq!(config.consumer_offsets_partition(GROUP), OFFSETS);
    let mut b = started(Broker::new(BrokerId(0), &config));
    for p in config.partition_ids() {
        lead(&mut b, p, 1, &[0], 1);
    }
    b
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

/// Send `msg` and return the one answer it gets.
fn answer(b: &mut Broker, msg: Message) -> Message {
    let mut answers = txn_request(b, msg);
    assert_eq!(answers.len(), 1, "one answer: {answers:?}");
    answers.remove(0)
}

fn join_request(instance: u32, member: u64) -> Message {
    Message::JoinGroup {
        correlation: 1,
        group: GROUP,
        instance,
        member: MemberId(member),
    }
}

fn join(b: &mut Broker, instance: u32, member: u64) -> Result<Generation, ErrorCode> {
    match answer(b, join_request(instance, member)) {
        Message::JoinGroupResponse { result, .. } => result,
        other => panic!("JoinGroup answered {other:?}"),
    }
}

/// The producer of `TXN` (a new instance each call: InitProducerId bumps its epoch).
fn init(b: &mut Broker) -> (ProducerId, ProducerEpoch) {
    let request = Message::InitProducerId {
        correlation: 2,
        transactional_id: TXN,
        transaction_timeout_ms: 60_000,
    };
    match answer(b, request) {
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
    match answer(b, request) {
        Message::TxnResponse { result, .. } => result,
        other => panic!("AddOffsetsToTxn answered {other:?}"),
    }
}

/// TxnOffsetCommit of `offset` for partition `DATA`.
fn commit_request(
    (pid, epoch): (ProducerId, ProducerEpoch),
    generation: u32,
    member: u64,
    offset: u64,
) -> Message {
    Message::TxnOffsetCommit {
        correlation: 4,
        transactional_id: TXN,
        producer_id: pid,
        producer_epoch: epoch,
        group: GROUP,
        group_metadata: Some((Generation(generation), MemberId(member))),
        offsets: vec![(DATA, Offset(offset))],
    }
}

fn commit_offset(
    b: &mut Broker,
    producer: (ProducerId, ProducerEpoch),
    generation: u32,
    member: u64,
    offset: u64,
) -> Result<(), ErrorCode> {
    match answer(b, commit_request(producer, generation, member, offset)) {
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
    match answer(b, request) {
        Message::EndTxnResponse {
            result: Ok(next), ..
        } => (pid, next),
        other => panic!("EndTxn answered {other:?}"),
    }
}

/// AddOffsetsToTxn and TxnOffsetCommit of `offset` by member 10 of generation 1.
fn send_offset(b: &mut Broker, producer: (ProducerId, ProducerEpoch), offset: u64) {
    assert_eq!(add_offsets(b, producer), Ok(()));
    assert_eq!(commit_offset(b, producer, 1, 10, offset), Ok(()));
}

/// Member 10 of instance 0 replaced by member 11 (generation 2), and a producer whose
/// transaction has the group's `__consumer_offsets` partition.
fn replaced_member(bugs: &[Bug]) -> (Broker, (ProducerId, ProducerEpoch)) {
    let mut b = coordinator(bugs);
    assert_eq!(join(&mut b, 0, 10), Ok(Generation(1)));
    assert_eq!(join(&mut b, 0, 11), Ok(Generation(2)));
    let producer = init(&mut b);
    assert_eq!(add_offsets(&mut b, producer), Ok(()));
    (b, producer)
}

/// Member 10 in generation 1; a first transaction committed offset 5, a second one
/// (whose producer is returned) leaves offset 9 pending.
fn committed_then_pending(bugs: &[Bug]) -> (Broker, (ProducerId, ProducerEpoch)) {
    let mut b = coordinator(bugs);
    assert_eq!(join(&mut b, 0, 10), Ok(Generation(1)));
    let producer = init(&mut b);
    send_offset(&mut b, producer, 5);
    let producer = end_txn(&mut b, producer, true);
    send_offset(&mut b, producer, 9);
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
    match answer(b, request) {
        Message::OffsetFetchResponse { result, .. } => result.map(|offsets| match offsets[..] {
            [(DATA, offset)] => offset,
            _ => panic!("OffsetFetch answered {offsets:?}"),
        }),
        other => panic!("OffsetFetch answered {other:?}"),
    }
}

#[test]
fn a_static_join_starts_a_new_generation_and_fences_older_members() {
    // KIP-345: a newer member id of the same instance replaces the older one.
    let mut b = coordinator(&[]);
    assert_eq!(join(&mut b, 0, 10), Ok(Generation(1)));
    assert_eq!(join(&mut b, 0, 11), Ok(Generation(2)));
    assert_eq!(join(&mut b, 0, 10), Err(ErrorCode::FencedInstanceId));
    assert_eq!(join(&mut b, 1, 20), Ok(Generation(3)));
    assert_eq!(
        b.replicas[OFFSETS.index()].log.log_end_offset(),
        Offset(3),
        "each accepted join is in __consumer_offsets"
    );
}

#[test]
fn txn_offset_commit_is_fenced_by_member_and_generation() {
    // KIP-447: a zombie (replaced member, or stale generation) may not commit offsets.
    let (mut b, producer) = replaced_member(&[]);
    let refused = [
        (1, 10, ErrorCode::FencedInstanceId),
        (2, 99, ErrorCode::UnknownMemberId),
        (1, 11, ErrorCode::IllegalGeneration),
    ];
    for (generation, member, error) in refused {
        assert_eq!(
            commit_offset(&mut b, producer, generation, member, 5),
            Err(error)
        );
    }
    let log = &b.replicas[OFFSETS.index()].log;
    assert_eq!(
        log.log_end_offset(),
        Offset(2),
        "nothing refused was written"
    );
    assert_eq!(commit_offset(&mut b, producer, 2, 11, 5), Ok(()));
}

#[test]
fn without_the_generation_fence_a_zombie_commit_is_accepted() {
    let (mut b, producer) = replaced_member(&[Bug::NoTxnOffsetGenerationFence]);
    assert_eq!(commit_offset(&mut b, producer, 1, 10, 5), Ok(()));
}

#[test]
fn pending_offsets_become_committed_with_the_commit_marker() {
    let mut b = coordinator(&[]);
    assert_eq!(join(&mut b, 0, 10), Ok(Generation(1)));
    let producer = init(&mut b);
    assert_eq!(add_offsets(&mut b, producer), Ok(()));
    assert_eq!(
        b.txn_state(TXN).unwrap().partitions,
        [OFFSETS].into_iter().collect::<PartitionSet>(),
        "AddOffsetsToTxn put the group's __consumer_offsets partition in the transaction"
    );
    assert_eq!(commit_offset(&mut b, producer, 1, 10, 7), Ok(()));
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
        Offset(1),
        "the transactional commit holds the LSO of __consumer_offsets"
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
    assert_eq!(join(&mut b, 0, 10), Ok(Generation(1)));
    let zombie = init(&mut b);
    let producer = init(&mut b);
    assert!(producer.1 > zombie.1);
    send_offset(&mut b, producer, 9);
    assert_eq!(
        commit_offset(&mut b, zombie, 1, 10, 5),
        Err(ErrorCode::InvalidProducerEpoch)
    );
}

#[test]
fn requests_are_checked_against_the_uncommitted_tail_of_the_log() {
    // Broker 1 is in the ISR of __consumer_offsets and has not fetched: writes wait.
    let mut b = coordinator(&[]);
    lead(&mut b, OFFSETS, 1, &[0, 1], 2);
    assert!(txn_request(&mut b, join_request(0, 10)).is_empty());
    assert_eq!(
        join(&mut b, 0, 9),
        Err(ErrorCode::FencedInstanceId),
        "the uncommitted join of member 10 counts already"
    );
    assert!(txn_request(&mut b, join_request(0, 11)).is_empty());
    let producer = init(&mut b);
    assert_eq!(add_offsets(&mut b, producer), Ok(()));
    assert_eq!(
        commit_offset(&mut b, producer, 1, 10, 5),
        Err(ErrorCode::FencedInstanceId)
    );
    assert!(txn_request(&mut b, commit_request(producer, 2, 11, 5)).is_empty());
    assert_eq!(
        fetch_offset(&mut b, true),
        Err(ErrorCode::UnstableOffsetCommit),
        "an uncommitted transactional commit is unstable"
    );

    // Broker 1 catches up: the three writes commit and are answered in order.
    let answers: Vec<Message> = caught_up(&mut b, 1, 1)
        .messages
        .into_iter()
        .filter(|(to, _)| matches!(to, NodeId::Client(_)))
        .map(|(_, m)| m)
        .collect();
    assert!(
        matches!(
            &answers[..],
            [
                Message::JoinGroupResponse {
                    result: Ok(Generation(1)),
                    ..
                },
                Message::JoinGroupResponse {
                    result: Ok(Generation(2)),
                    ..
                },
                Message::TxnOffsetCommitResponse { result: Ok(()), .. },
            ]
        ),
        "{answers:?}"
    );
}

#[test]
fn without_consumer_offsets_there_is_no_group_coordinator() {
    let mut b = started(Broker::new(BrokerId(0), &group_config(0, &[])));
    lead(&mut b, DATA, 1, &[0], 1);
    lead(&mut b, PartitionId(1), 1, &[0], 1);
    assert_eq!(join(&mut b, 0, 10), Err(ErrorCode::CoordinatorNotAvailable));
    let producer = init(&mut b);
    assert_eq!(
        add_offsets(&mut b, producer),
        Err(ErrorCode::CoordinatorNotAvailable)
    );
}

#[test]
fn a_new_leader_rebuilds_groups_and_offsets_from_its_log() {
    // Broker 0 coordinates: two members, offset 7 committed, offset 9 pending.
    let mut b0 = coordinator(&[]);
    assert_eq!(join(&mut b0, 0, 10), Ok(Generation(1)));
    assert_eq!(join(&mut b0, 1, 20), Ok(Generation(2)));
    let producer = init(&mut b0);
    assert_eq!(add_offsets(&mut b0, producer), Ok(()));
    assert_eq!(commit_offset(&mut b0, producer, 2, 20, 7), Ok(()));
    let producer = end_txn(&mut b0, producer, true);
    assert_eq!(add_offsets(&mut b0, producer), Ok(()));
    assert_eq!(commit_offset(&mut b0, producer, 2, 20, 9), Ok(()));

    // Broker 1 has replicated __consumer_offsets, and does not coordinate yet.
    let mut b1 = started(Broker::new(BrokerId(1), &group_config(1, &[])));
    for r in b0.replicas[OFFSETS.index()].log.records() {
        b1.replicas[OFFSETS.index()].log.append(*r);
    }
    assert_eq!(join(&mut b1, 0, 12), Err(ErrorCode::NotCoordinator));

    // Elected with broker 0 in the ISR: loading until the HW reaches the epoch start.
    lead(&mut b1, OFFSETS, 2, &[0, 1], 2);
    assert_eq!(
        fetch_offset(&mut b1, false),
        Err(ErrorCode::CoordinatorNotAvailable)
    );
    caught_up(&mut b1, 0, 2);
    assert_eq!(fetch_offset(&mut b1, false), Ok(Some(Offset(7))));
    assert_eq!(
        fetch_offset(&mut b1, true),
        Err(ErrorCode::UnstableOffsetCommit),
        "the second commit is still pending"
    );

    // Broker 0 drops out of the ISR, so broker 1 commits alone from here.
    lead(&mut b1, OFFSETS, 2, &[1], 3);
    assert_eq!(
        commit_offset(&mut b1, producer, 1, 20, 8),
        Err(ErrorCode::IllegalGeneration),
        "generation 2 was rebuilt"
    );
    assert_eq!(join(&mut b1, 0, 9), Err(ErrorCode::FencedInstanceId));
    assert_eq!(join(&mut b1, 0, 12), Ok(Generation(3)));

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
