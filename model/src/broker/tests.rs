//! Broker unit tests, driving one or two brokers by hand with the messages the
//! controller and peers would send.

use super::replica::{FollowerPhase, Role};
use super::Broker;
use crate::bug::Bug;
use crate::config::Config;
use crate::message::{
    Control, ErrorCode, FetchData, Message, PartitionState, ProduceBatch, ProducerStamp, Record,
    TxnStatus,
};
use crate::outbox::Outbox;
use crate::types::{
    BrokerEpoch, BrokerId, Epoch, NodeId, Offset, PartitionEpoch, PartitionId, PartitionSet,
    ProducerEpoch, ProducerId, SimTime, TxnId,
};

const P: PartitionId = PartitionId(0);

fn config() -> Config {
    Config {
        partitions: 1,
        ..Config::default()
    }
}

fn broker(id: u32) -> Broker {
    started(Broker::new(BrokerId(id), &config()))
}

/// Start the broker and answer its registration, as the controller would.
pub(super) fn started(mut b: Broker) -> Broker {
    b.start(SimTime::ZERO, BrokerEpoch(1), &mut Outbox::default());
    b.handle_message(
        SimTime::ZERO,
        NodeId::Controller,
        Message::BrokerHeartbeatResponse {
            broker_epoch: BrokerEpoch(1),
            controller_epoch: 1,
            fenced: false,
            shutdown_ready: false,
            partitions: Vec::new(),
        },
        &mut Outbox::default(),
    );
    b
}

pub(super) fn state(leader: u32, epoch: u32, isr: &[u32], partition_epoch: u32) -> PartitionState {
    PartitionState {
        partition: P,
        replicas: vec![BrokerId(0), BrokerId(1), BrokerId(2)],
        leader: Some(BrokerId(leader)),
        leader_epoch: Epoch(epoch),
        isr: isr.iter().map(|&b| BrokerId(b)).collect(),
        partition_epoch: PartitionEpoch(partition_epoch),
    }
}

pub(super) fn publish(b: &mut Broker, s: PartitionState, out: &mut Outbox) {
    b.handle_message(
        SimTime::ZERO,
        NodeId::Controller,
        Message::PartitionChange {
            controller_epoch: 1,
            states: vec![s],
        },
        out,
    );
}

fn record(value: u64, epoch: u32) -> Record {
    Record {
        value,
        epoch: Epoch(epoch),
        producer: None,
        control: None,
        txn_state: None,
    }
}

/// Deliver every message in `out` addressed to `to` and return what it sent back.
fn deliver(to: &mut Broker, from: NodeId, out: &mut Outbox) -> Outbox {
    let mut reply = Outbox::default();
    let me = NodeId::Broker(to.id);
    for (dest, msg) in std::mem::take(&mut out.messages) {
        if dest == me {
            to.handle_message(SimTime::from_ms(1), from, msg, &mut reply);
        }
    }
    reply
}

#[test]
fn follower_truncates_to_the_leaders_end_offset_for_its_last_epoch() {
    // KIP-101: the follower's epoch-2 suffix came from a deposed leader; the new leader
    // (epoch 3) never had epoch 2, so it answers with epoch 1's end (KIP-279).
    let mut leader = broker(0);
    let mut follower = broker(1);
    for (v, e) in [(1, 1), (2, 1), (30, 3)] {
        leader.replicas[0].log.append(record(v, e));
    }
    for (v, e) in [(1, 1), (2, 1), (20, 2), (21, 2)] {
        follower.replicas[0].log.append(record(v, e));
    }
    let s = state(0, 3, &[0, 1], 5);
    let mut out = Outbox::default();
    publish(&mut leader, s.clone(), &mut out);
    publish(&mut follower, s, &mut out);
    assert!(out.messages.iter().any(|(_, m)| matches!(
        m,
        Message::OffsetsForLeaderEpoch {
            leader_epoch: Epoch(2),
            current_leader_epoch: Some(Epoch(3)),
            ..
        }
    )));
    let mut answer = deliver(&mut leader, NodeId::Broker(BrokerId(1)), &mut out);
    let mut next = deliver(&mut follower, NodeId::Broker(BrokerId(0)), &mut answer);
    assert_eq!(
        follower.replicas[0].log.log_end_offset(),
        Offset(2),
        "epoch-2 suffix truncated"
    );
    assert!(next.messages.iter().any(|(_, m)| matches!(
        m,
        Message::Fetch {
            fetch_offset: Offset(2),
            ..
        }
    )));
    // It fetches the leader's epoch-3 record and matches the leader's log.
    let mut data = deliver(&mut leader, NodeId::Broker(BrokerId(1)), &mut next);
    deliver(&mut follower, NodeId::Broker(BrokerId(0)), &mut data);
    assert_eq!(
        follower.replicas[0].log.prefix_hash(Offset(3)),
        leader.replicas[0].log.prefix_hash(Offset(3))
    );
}

#[test]
fn hw_truncation_bug_truncates_to_the_local_high_watermark_instead() {
    let mut c = config();
    c.bugs.insert(crate::bug::Bug::HwTruncation);
    let mut follower = started(Broker::new(BrokerId(1), &c));
    for v in 0..5 {
        follower.replicas[0].log.append(record(v, 1));
    }
    follower.replicas[0].high_watermark = Offset(3);
    publish(
        &mut follower,
        state(0, 2, &[0, 1], 3),
        &mut Outbox::default(),
    );
    assert_eq!(follower.replicas[0].log.log_end_offset(), Offset(3));
    assert!(
        matches!(&follower.replicas[0].role, Role::Follower(f) if f.phase == FollowerPhase::Fetching)
    );
}

#[test]
fn high_watermark_waits_for_a_replica_whose_isr_addition_is_pending() {
    // KIP-497: while adding broker 2 is pending, the HW is the minimum over {0, 1, 2}.
    let mut leader = broker(0);
    let mut out = Outbox::default();
    publish(&mut leader, state(0, 1, &[0, 1], 1), &mut out);
    let fetch = |b: u32, offset: u64, correlation: u64| Message::Fetch {
        correlation,
        replica: Some(BrokerId(b)),
        partition: P,
        fetch_offset: Offset(offset),
        current_leader_epoch: Some(Epoch(1)),
        max_records: 100,
        read_committed: false,
    };
    let produce = |values: Vec<u64>| Message::Produce {
        transactional_id: None,
        correlation: 1,
        acks_all: true,
        acks_none: false,
        batches: vec![ProduceBatch {
            partition: P,
            producer: None,
            values,
        }],
    };
    let client = NodeId::Client(crate::types::ClientId(0));
    leader.handle_message(SimTime::ZERO, client, produce(vec![1, 2]), &mut out);
    leader.handle_message(
        SimTime::ZERO,
        NodeId::Broker(BrokerId(1)),
        fetch(1, 2, 1),
        &mut out,
    );
    assert_eq!(leader.replicas[0].high_watermark, Offset(2));
    // Broker 2 has caught up: the leader proposes adding it.
    out.messages.clear();
    leader.handle_message(
        SimTime::ZERO,
        NodeId::Broker(BrokerId(2)),
        fetch(2, 2, 2),
        &mut out,
    );
    assert!(out.messages.iter().any(|(to, m)| *to == NodeId::Controller
        && matches!(m, Message::AlterPartition { new_isr, .. } if new_isr.len() == 3)));
    // New records: broker 1 fetches them, broker 2 does not; the HW must wait.
    leader.handle_message(SimTime::ZERO, client, produce(vec![3, 4]), &mut out);
    leader.handle_message(
        SimTime::ZERO,
        NodeId::Broker(BrokerId(1)),
        fetch(1, 4, 3),
        &mut out,
    );
    assert_eq!(
        leader.replicas[0].high_watermark,
        Offset(2),
        "maximal ISR includes broker 2"
    );
    // A late answer to an older proposal does not end the pending one.
    leader.handle_message(
        SimTime::ZERO,
        NodeId::Controller,
        Message::AlterPartitionResponse {
            partition: P,
            proposed: vec![BrokerId(0)],
            result: Err(crate::message::ErrorCode::InvalidUpdateVersion),
        },
        &mut out,
    );
    assert_eq!(leader.replicas[0].high_watermark, Offset(2));
    leader.handle_message(
        SimTime::ZERO,
        NodeId::Broker(BrokerId(2)),
        fetch(2, 4, 4),
        &mut out,
    );
    assert_eq!(leader.replicas[0].high_watermark, Offset(4));
}

#[test]
fn fetch_with_a_stale_leader_epoch_is_fenced() {
    // KIP-320: a follower still on epoch 1 may not fetch from the epoch-2 leader.
    let mut leader = broker(0);
    let mut out = Outbox::default();
    publish(&mut leader, state(0, 2, &[0, 1], 2), &mut out);
    out.messages.clear();
    leader.handle_message(
        SimTime::ZERO,
        NodeId::Broker(BrokerId(1)),
        Message::Fetch {
            correlation: 9,
            replica: Some(BrokerId(1)),
            partition: P,
            fetch_offset: Offset(0),
            current_leader_epoch: Some(Epoch(1)),
            max_records: 10,
            read_committed: false,
        },
        &mut out,
    );
    assert!(out.messages.iter().any(|(_, m)| matches!(
        m,
        Message::FetchResponse {
            result: Err(crate::message::ErrorCode::FencedLeaderEpoch),
            ..
        }
    )));
}

#[test]
fn acks_all_is_refused_below_min_insync_replicas() {
    let mut leader = broker(0);
    let mut out = Outbox::default();
    publish(&mut leader, state(0, 1, &[0], 1), &mut out);
    out.messages.clear();
    leader.handle_message(
        SimTime::ZERO,
        NodeId::Client(crate::types::ClientId(0)),
        Message::Produce {
            transactional_id: None,
            correlation: 1,
            acks_all: true,
            acks_none: false,
            batches: vec![ProduceBatch {
                partition: P,
                producer: None,
                values: vec![1],
            }],
        },
        &mut out,
    );
    assert_eq!(
        leader.replicas[0].log.log_end_offset(),
        Offset(0),
        "nothing appended"
    );
    assert!(out.messages.iter().any(|(_, m)| matches!(
        m,
        Message::ProduceResponse { results, .. }
            if results[0].result == Err(crate::message::ErrorCode::NotEnoughReplicas)
    )));
}

#[test]
fn an_unregistered_incarnation_takes_no_role_from_metadata() {
    // A restarted broker must not act on what the controller says about its previous
    // life (it may have led partitions whose data it lost) before it registers again.
    let mut b = Broker::new(BrokerId(0), &config());
    b.start(SimTime::ZERO, BrokerEpoch(2), &mut Outbox::default());
    publish(&mut b, state(0, 1, &[0, 1, 2], 1), &mut Outbox::default());
    assert!(matches!(b.replicas[0].role, Role::Offline));
}

/// A consumer fetch of partition `P` from offset 0; returns the records and the LSO.
fn consumer_fetch(leader: &mut Broker, read_committed: bool) -> FetchData {
    let mut out = Outbox::default();
    leader.handle_message(
        SimTime::ZERO,
        NodeId::Client(crate::types::ClientId(0)),
        Message::Fetch {
            correlation: 7,
            replica: None,
            partition: P,
            fetch_offset: Offset(0),
            current_leader_epoch: Some(Epoch(1)),
            max_records: 100,
            read_committed,
        },
        &mut out,
    );
    // Nothing to return parks the fetch until fetch.max.wait.ms.
    leader.handle_timeout(
        SimTime::from_ms(10_000),
        crate::outbox::Timer::FetchWaits,
        &mut out,
    );
    out.messages
        .into_iter()
        .find_map(|(_, m)| match m {
            Message::FetchResponse { result: Ok(d), .. } => Some(d),
            _ => None,
        })
        .expect("answered with data or after the wait")
}

#[test]
fn read_committed_stops_at_the_open_transaction_and_learns_of_aborts() {
    use crate::message::{Control, ProducerStamp};
    use crate::types::{ProducerEpoch, ProducerId};
    // A one-replica ISR (min.insync.replicas=1): the HW follows the LEO at once.
    let mut leader = started(Broker::new(
        BrokerId(0),
        &Config {
            min_insync_replicas: 1,
            ..config()
        },
    ));
    let mut out = Outbox::default();
    publish(&mut leader, state(0, 1, &[0], 1), &mut out);
    let txn = |epoch: u16, seq: u32| ProduceBatch {
        partition: P,
        producer: Some(ProducerStamp {
            producer_id: ProducerId(5),
            producer_epoch: ProducerEpoch(epoch),
            base_sequence: seq,
            transactional: true,
        }),
        values: vec![10 + u64::from(seq), 11 + u64::from(seq)],
    };
    let produce = |batch: ProduceBatch| Message::Produce {
        transactional_id: None,
        correlation: 1,
        acks_all: false,
        acks_none: false,
        batches: vec![batch],
    };
    let client = NodeId::Client(crate::types::ClientId(0));
    leader.handle_message(SimTime::ZERO, client, produce(txn(0, 0)), &mut out);
    assert_eq!(leader.replicas[0].high_watermark, Offset(2));
    let uncommitted = consumer_fetch(&mut leader, false);
    assert_eq!(
        uncommitted.records.len(),
        2,
        "read_uncommitted reads to the HW"
    );
    assert_eq!(uncommitted.last_stable_offset, Some(Offset(0)));
    let committed = consumer_fetch(&mut leader, true);
    assert!(
        committed.records.is_empty(),
        "read_committed stops at the LSO"
    );

    // The coordinator aborts with a bumped epoch (the old instance is fenced).
    out.messages.clear();
    leader.handle_message(
        SimTime::ZERO,
        NodeId::Broker(BrokerId(1)),
        Message::WriteTxnMarkers {
            correlation: 3,
            producer_id: ProducerId(5),
            producer_epoch: ProducerEpoch(1),
            control: Control::Abort,
            partitions: vec![P],
        },
        &mut out,
    );
    assert!(out.messages.iter().any(|(_, m)| matches!(
        m,
        Message::WriteTxnMarkersResponse { results, .. } if results[0].result == Ok(Offset(2))
    )));
    let after = consumer_fetch(&mut leader, true);
    assert_eq!(after.records.len(), 3, "two aborted records and the marker");
    assert_eq!(after.last_stable_offset, Some(Offset(3)));
    assert_eq!(after.aborted.len(), 1);
    assert_eq!(
        (after.aborted[0].first_offset, after.aborted[0].last_offset),
        (Offset(0), Offset(2))
    );

    // The zombie's next batch (old epoch) is refused.
    out.messages.clear();
    leader.handle_message(SimTime::ZERO, client, produce(txn(0, 2)), &mut out);
    assert!(out.messages.iter().any(|(_, m)| matches!(
        m,
        Message::ProduceResponse { results, .. }
            if results[0].result == Err(crate::message::ErrorCode::InvalidProducerEpoch)
    )));
    assert_eq!(leader.replicas[0].log.log_end_offset(), Offset(3));
}

/// One data partition and one `__transaction_state` partition, with
/// `min.insync.replicas=1` so that a broker alone in the ISR commits at once.
fn transaction_config() -> Config {
    Config {
        partitions: 1,
        transaction_state_partitions: 1,
        min_insync_replicas: 1,
        ..config()
    }
}

/// Make `b` the leader of partition 0 (data) and 1 (`__transaction_state`), with an
/// ISR of itself.
fn lead_both(b: &mut Broker, out: &mut Outbox) {
    for p in [0, 1] {
        publish(
            b,
            PartitionState {
                partition: PartitionId(p),
                ..state(0, 1, &[0], 1)
            },
            out,
        );
    }
}

fn transaction_broker() -> Broker {
    transaction_broker_with(&[])
}

fn transaction_broker_with(bugs: &[Bug]) -> Broker {
    let mut c = transaction_config();
    c.bugs.extend(bugs.iter().copied());
    let mut b = started(Broker::new(BrokerId(0), &c));
    lead_both(&mut b, &mut Outbox::default());
    b
}

/// Hand `msg` to `b` from a client, then loop the broker's messages to itself (the
/// coordinator's WriteTxnMarkers to the partition leader, which is itself) until quiet;
/// returns what went to the client.
pub(super) fn txn_request(b: &mut Broker, msg: Message) -> Vec<Message> {
    let client = NodeId::Client(crate::types::ClientId(9));
    let mut out = Outbox::default();
    b.handle_message(SimTime::from_ms(1), client, msg, &mut out);
    let mut to_client = Vec::new();
    while !out.messages.is_empty() {
        let mut next = Outbox::default();
        for (dest, m) in std::mem::take(&mut out.messages) {
            if dest == client {
                to_client.push(m);
            } else if dest == NodeId::Broker(b.id) {
                b.handle_message(SimTime::from_ms(1), NodeId::Broker(b.id), m, &mut next);
            }
        }
        out = next;
    }
    to_client
}

/// The broker of the transaction tests, to itself.
const ME: NodeId = NodeId::Broker(BrokerId(0));

/// The requests of the transactional producer with id 4, as a client sends them.
#[derive(Clone, Copy)]
struct TxnClient {
    id: TxnId,
    pid: ProducerId,
}

const TXN: TxnClient = TxnClient {
    id: TxnId(4),
    pid: ProducerId((1 << 48) | 4),
};

impl TxnClient {
    fn init(self) -> Message {
        Message::InitProducerId {
            correlation: 1,
            transactional_id: self.id,
            transaction_timeout_ms: 60_000,
        }
    }

    fn add(self, epoch: u16, verify_only: bool) -> Message {
        Message::AddPartitionsToTxn {
            correlation: 2,
            transactional_id: self.id,
            producer_id: self.pid,
            producer_epoch: ProducerEpoch(epoch),
            partitions: [P].into_iter().collect::<PartitionSet>(),
            verify_only,
        }
    }

    /// A one-record batch (value `100 + seq`) to `P`; with `verified` the request
    /// carries the transactional id, so the leader may verify it (KIP-890 part 1).
    fn produce(self, epoch: u16, seq: u32, verified: bool) -> Message {
        Message::Produce {
            transactional_id: verified.then_some(self.id),
            correlation: 3,
            acks_all: true,
            acks_none: false,
            batches: vec![ProduceBatch {
                partition: P,
                producer: Some(ProducerStamp {
                    producer_id: self.pid,
                    producer_epoch: ProducerEpoch(epoch),
                    base_sequence: seq,
                    transactional: true,
                }),
                values: vec![100 + u64::from(seq)],
            }],
        }
    }

    fn end(self, epoch: u16, commit: bool) -> Message {
        Message::EndTxn {
            correlation: 4,
            transactional_id: self.id,
            producer_id: self.pid,
            producer_epoch: ProducerEpoch(epoch),
            commit,
            transaction_version_2: true,
        }
    }
}

/// The one response `b` sends the client for `msg` (see [`txn_request`]).
fn answer(b: &mut Broker, msg: Message) -> Message {
    let mut answers = txn_request(b, msg);
    assert_eq!(answers.len(), 1, "one answer: {answers:?}");
    answers.remove(0)
}

fn init_epoch(b: &mut Broker) -> u16 {
    match answer(b, TXN.init()) {
        Message::InitProducerIdResponse {
            result: Ok((pid, epoch)),
            ..
        } if pid == TXN.pid => epoch.0,
        m => panic!("InitProducerId: {m:?}"),
    }
}

fn end_result(b: &mut Broker, epoch: u16, commit: bool) -> Result<ProducerEpoch, ErrorCode> {
    match answer(b, TXN.end(epoch, commit)) {
        Message::EndTxnResponse { result, .. } => result,
        m => panic!("EndTxn: {m:?}"),
    }
}

fn add_result(b: &mut Broker, epoch: u16, verify_only: bool) -> Result<(), ErrorCode> {
    match answer(b, TXN.add(epoch, verify_only)) {
        Message::TxnResponse { result, .. } => result,
        m => panic!("AddPartitionsToTxn: {m:?}"),
    }
}

fn produce_result(
    b: &mut Broker,
    epoch: u16,
    seq: u32,
    verified: bool,
) -> Result<Offset, ErrorCode> {
    match answer(b, TXN.produce(epoch, seq, verified)) {
        Message::ProduceResponse { results, .. } => results[0].result,
        m => panic!("Produce: {m:?}"),
    }
}

/// The LSO of `P` against its HW.
fn lso(b: &Broker) -> (Offset, Offset) {
    let r = &b.replicas[0];
    (r.log.last_stable_offset(r.high_watermark), r.high_watermark)
}

/// A broker (with `bugs`) where producer 4 has a transaction open at `P`, of one
/// record at offset 0; returns it and the producer's epoch.
fn open_transaction(bugs: &[Bug]) -> (Broker, u16) {
    let mut b = transaction_broker_with(bugs);
    let e = init_epoch(&mut b);
    assert_eq!(add_result(&mut b, e, false), Ok(()));
    assert_eq!(produce_result(&mut b, e, 0, true), Ok(Offset(0)));
    (b, e)
}

#[test]
fn a_transaction_commits_through_the_log_and_a_new_instance_fences_the_old() {
    let mut b = transaction_broker();
    let epoch = init_epoch(&mut b);
    assert_eq!(epoch, 0);
    assert_eq!(add_result(&mut b, 0, false), Ok(()));
    assert_eq!(produce_result(&mut b, 0, 0, true), Ok(Offset(0)));
    assert_eq!(lso(&b), (Offset(0), Offset(1)));
    // KIP-890 part 2: the transaction ends under epoch 1, which its marker carries.
    assert_eq!(end_result(&mut b, 0, true), Ok(ProducerEpoch(1)));
    let log = &b.replicas[0].log;
    assert_eq!(log.log_end_offset(), Offset(2), "record and commit marker");
    let marker = log.record(Offset(1)).unwrap();
    assert_eq!(marker.control, Some(Control::Commit));
    assert_eq!(marker.producer.unwrap().0.producer_epoch, ProducerEpoch(1));
    assert_eq!(lso(&b), (Offset(2), Offset(2)));
    assert_eq!(
        b.txn_state(TXN.id).unwrap().status,
        TxnStatus::CompleteCommit
    );
    // A retry of that EndTxn gets the new epoch; one with the other decision does not.
    assert_eq!(end_result(&mut b, 0, true), Ok(ProducerEpoch(1)));
    assert_eq!(
        end_result(&mut b, 0, false),
        Err(ErrorCode::InvalidTxnState)
    );
    // A delayed write of epoch 0 is refused by the partition, whose producer state the
    // marker moved to epoch 1 (unverified), or through its verification.
    assert_eq!(
        produce_result(&mut b, 0, 1, false),
        Err(ErrorCode::InvalidProducerEpoch)
    );
    assert_eq!(
        produce_result(&mut b, 0, 1, true),
        Err(ErrorCode::InvalidProducerEpoch)
    );
    assert_eq!(add_result(&mut b, 0, false), Err(ErrorCode::ProducerFenced));

    // The next transaction runs at epoch 1 from sequence 0 and is left open; a new
    // instance (InitProducerId) aborts it under a bumped epoch, and is told to retry
    // until the abort completed.
    assert_eq!(add_result(&mut b, 1, false), Ok(()));
    assert_eq!(produce_result(&mut b, 1, 0, true), Ok(Offset(2)));
    assert!(matches!(
        answer(&mut b, TXN.init()),
        Message::InitProducerIdResponse {
            result: Err(ErrorCode::ConcurrentTransactions),
            ..
        }
    ));
    assert_eq!(
        b.txn_state(TXN.id).unwrap().status,
        TxnStatus::CompleteAbort
    );
    assert_eq!(
        init_epoch(&mut b),
        3,
        "+1 for the abort, +1 for the instance"
    );
    // The zombie is fenced at the coordinator and at the partition.
    assert_eq!(end_result(&mut b, 1, true), Err(ErrorCode::ProducerFenced));
    assert_eq!(
        produce_result(&mut b, 1, 1, true),
        Err(ErrorCode::InvalidProducerEpoch)
    );
    let log = &b.replicas[0].log;
    assert_eq!(log.record(Offset(3)).unwrap().control, Some(Control::Abort));
    assert_eq!(
        log.txn_index()
            .aborted_overlapping(Offset(0), Offset(4))
            .len(),
        1
    );
}

#[test]
fn a_producer_that_dies_in_the_coordinators_first_transaction_is_timed_out() {
    // No marker was ever sent, yet the coordinator's tick runs (armed by its first
    // log write) and aborts the transaction after transaction.timeout.ms.
    let mut b = transaction_broker();
    // The tick armed when the coordinator loaded finds nothing to do and stops.
    let tick = crate::outbox::Timer::TxnTick;
    b.handle_timeout(SimTime::from_ms(1), tick, &mut Outbox::default());
    let client = NodeId::Client(crate::types::ClientId(9));
    let mut out = Outbox::default();
    b.handle_message(SimTime::from_ms(1), client, TXN.init(), &mut out);
    assert!(
        out.timers.iter().any(|&(_, t)| t == tick),
        "the first write arms the tick again"
    );
    assert_eq!(add_result(&mut b, 0, false), Ok(()));
    assert_eq!(produce_result(&mut b, 0, 0, true), Ok(Offset(0)));
    let at = SimTime::from_ms(60_002);
    let mut out = Outbox::default();
    b.handle_timeout(at, tick, &mut out);
    // The markers go to this broker itself.
    while !out.messages.is_empty() {
        let mut next = Outbox::default();
        for (_, m) in std::mem::take(&mut out.messages)
            .into_iter()
            .filter(|(to, _)| *to == ME)
        {
            b.handle_message(at, ME, m, &mut next);
        }
        out = next;
    }
    assert_eq!(
        b.txn_state(TXN.id).unwrap().status,
        TxnStatus::CompleteAbort
    );
    assert_eq!(
        lso(&b),
        (Offset(2), Offset(2)),
        "the abort marker closed it"
    );
}

#[test]
fn a_retried_end_txn_gets_the_new_epoch_while_the_markers_are_written() {
    let (mut b, e) = open_transaction(&[]);
    let client = NodeId::Client(crate::types::ClientId(9));
    let mut out = Outbox::default();
    b.handle_message(SimTime::from_ms(1), client, TXN.end(e, false), &mut out);
    assert!(out.messages.iter().any(|(_, m)| matches!(
        m,
        Message::EndTxnResponse {
            result: Ok(ProducerEpoch(1)),
            ..
        }
    )));
    // The markers are not delivered yet: the decision is prepared, durable.
    assert_eq!(b.txn_state(TXN.id).unwrap().status, TxnStatus::PrepareAbort);
    assert_eq!(end_result(&mut b, e, false), Ok(ProducerEpoch(e + 1)));
    assert_eq!(end_result(&mut b, e, true), Err(ErrorCode::InvalidTxnState));
    assert_eq!(
        end_result(&mut b, e + 1, true),
        Err(ErrorCode::ConcurrentTransactions)
    );
}

#[test]
fn the_first_batch_of_a_transaction_at_a_partition_is_verified_with_the_coordinator() {
    let mut b = transaction_broker();
    let e = init_epoch(&mut b);
    // KIP-890 part 1: the partition is not in the transaction: refused, not appended.
    assert_eq!(
        produce_result(&mut b, e, 0, true),
        Err(ErrorCode::InvalidTxnState)
    );
    assert_eq!(b.replicas[0].log.log_end_offset(), Offset(0));
    assert_eq!(add_result(&mut b, e, false), Ok(()));
    let verifies = |out: &Outbox| {
        out.messages.iter().any(|(_, m)| {
            matches!(
                m,
                Message::AddPartitionsToTxn {
                    verify_only: true,
                    ..
                }
            )
        })
    };
    let client = NodeId::Client(crate::types::ClientId(9));
    let mut out = Outbox::default();
    b.handle_message(
        SimTime::from_ms(1),
        client,
        TXN.produce(e, 0, true),
        &mut out,
    );
    assert!(verifies(&out), "the first batch is verified");
    assert_eq!(b.replicas[0].log.log_end_offset(), Offset(0), "held");
    let mut yes = deliver(&mut b, ME, &mut out);
    let mut answer = deliver(&mut b, ME, &mut yes);
    assert_eq!(
        b.replicas[0].log.log_end_offset(),
        Offset(1),
        "appended once verified"
    );
    assert!(answer.messages.is_empty() || !verifies(&answer));
    // The transaction is open here at this epoch: the next batch needs no verification.
    answer.messages.clear();
    b.handle_message(
        SimTime::from_ms(1),
        client,
        TXN.produce(e, 1, true),
        &mut answer,
    );
    assert!(!verifies(&answer));
    assert_eq!(b.replicas[0].log.log_end_offset(), Offset(2));
}

#[test]
fn verify_only_adds_nothing_and_answers_whether_the_partition_is_in_the_transaction() {
    let mut b = transaction_broker();
    let e = init_epoch(&mut b);
    let log_end = |b: &Broker| b.replicas[1].log.log_end_offset();
    let before = log_end(&b);
    assert_eq!(add_result(&mut b, e, true), Err(ErrorCode::InvalidTxnState));
    assert_eq!(b.txn_state(TXN.id).unwrap().status, TxnStatus::Empty);
    assert_eq!(log_end(&b), before, "nothing written");
    assert_eq!(add_result(&mut b, e, false), Ok(()));
    let written = log_end(&b);
    assert_eq!(add_result(&mut b, e, true), Ok(()));
    assert_eq!(
        add_result(&mut b, e + 1, true),
        Err(ErrorCode::InvalidTxnState)
    );
    assert_eq!(log_end(&b), written);
    assert_eq!(end_result(&mut b, e, false), Ok(ProducerEpoch(e + 1)));
    assert_eq!(add_result(&mut b, e, true), Err(ErrorCode::ProducerFenced));
    assert_eq!(
        add_result(&mut b, e + 1, true),
        Err(ErrorCode::InvalidTxnState)
    );
}

#[test]
fn a_verification_fails_retriably_when_the_coordinator_does_not_answer() {
    // The coordinator is broker 1: its answer never comes.
    let mut b = transaction_broker();
    let mut out = Outbox::default();
    publish(
        &mut b,
        PartitionState {
            partition: PartitionId(1),
            ..state(1, 2, &[1], 2)
        },
        &mut out,
    );
    let client = NodeId::Client(crate::types::ClientId(9));
    for disconnect in [false, true] {
        let mut out = Outbox::default();
        b.handle_message(SimTime::ZERO, client, TXN.produce(0, 0, true), &mut out);
        assert!(out
            .messages
            .iter()
            .any(|(to, m)| *to == NodeId::Broker(BrokerId(1))
                && matches!(
                    m,
                    Message::AddPartitionsToTxn {
                        verify_only: true,
                        ..
                    }
                )));
        out.messages.clear();
        if disconnect {
            b.handle_message(
                SimTime::from_ms(5),
                NodeId::Broker(BrokerId(1)),
                Message::ConnectionClosed {
                    broker: BrokerId(1),
                },
                &mut out,
            );
        } else {
            let timeout = SimTime::from_ms(b.config.request_timeout_ms);
            b.handle_timeout(timeout, crate::outbox::Timer::ProduceTimeouts, &mut out);
        }
        assert!(
            out.messages.iter().any(|(to, m)| *to == client
                && matches!(m, Message::ProduceResponse { results, .. }
                    if results[0].result == Err(ErrorCode::NetworkException))),
            "disconnect {disconnect}: {:?}",
            out.messages
        );
        assert_eq!(b.replicas[0].log.log_end_offset(), Offset(0));
    }
}

#[test]
fn a_marker_written_while_a_verification_is_in_flight_voids_it() {
    // Kafka's VerificationGuard: the coordinator's yes may predate the end of the
    // transaction whose marker overtook it (a reordering network).
    let mut b = transaction_broker();
    let e = init_epoch(&mut b);
    assert_eq!(add_result(&mut b, e, false), Ok(()));
    let client = NodeId::Client(crate::types::ClientId(9));
    let mut out = Outbox::default();
    b.handle_message(
        SimTime::from_ms(1),
        client,
        TXN.produce(e, 0, true),
        &mut out,
    );
    let mut yes = deliver(&mut b, ME, &mut out);
    assert!(matches!(
        yes.messages[..],
        [(_, Message::TxnResponse { result: Ok(()), .. })]
    ));
    let mut reply = Outbox::default();
    b.handle_message(
        SimTime::from_ms(2),
        ME,
        Message::WriteTxnMarkers {
            correlation: 77,
            producer_id: TXN.pid,
            producer_epoch: ProducerEpoch(e + 1),
            control: Control::Abort,
            partitions: vec![P],
        },
        &mut reply,
    );
    let reply = deliver(&mut b, ME, &mut yes);
    assert!(
        reply.messages.iter().any(|(_, m)| matches!(
            m,
            Message::ProduceResponse { results, .. }
                if results[0].result == Err(ErrorCode::InvalidTxnState)
        )),
        "{:?}",
        reply.messages
    );
    assert_eq!(
        b.replicas[0].log.log_end_offset(),
        Offset(1),
        "the marker only"
    );
}

/// A transaction at `P` whose second write is delayed in the network past the client's
/// abort; then the next transaction adds `P` if `next_adds`. Returns the delayed
/// write's result, and the broker.
fn delayed_write_after_abort(bugs: &[Bug], next_adds: bool) -> (Result<Offset, ErrorCode>, Broker) {
    let (mut b, e) = open_transaction(bugs);
    let next = end_result(&mut b, e, false).expect("aborted").0;
    if next_adds {
        assert_eq!(add_result(&mut b, next, false), Ok(()));
    }
    // The delayed write: epoch e, sequence 1.
    (produce_result(&mut b, e, 1, true), b)
}

#[test]
fn a_write_delayed_past_its_abort_is_refused_but_hangs_the_lso_with_hanging_txn() {
    let (result, b) = delayed_write_after_abort(&[], false);
    assert_eq!(result, Err(ErrorCode::InvalidProducerEpoch));
    assert_eq!(lso(&b), (Offset(2), Offset(2)));
    // Before KIP-890 it is appended after the abort marker and opens a transaction
    // that no coordinator knows of: the LSO stays below the HW for good.
    let (result, mut b) = delayed_write_after_abort(&[Bug::HangingTxn], false);
    assert_eq!(result, Ok(Offset(2)));
    assert_eq!(lso(&b), (Offset(2), Offset(3)));
    b.handle_timeout(
        SimTime::from_ms(3_600_000),
        crate::outbox::Timer::TxnTick,
        &mut Outbox::default(),
    );
    assert_eq!(lso(&b), (Offset(2), Offset(3)), "no time-out ends it");
}

#[test]
fn a_write_delayed_past_its_abort_joins_the_next_transaction_without_the_epoch_bump() {
    let (result, _) = delayed_write_after_abort(&[], true);
    assert_eq!(result, Err(ErrorCode::InvalidProducerEpoch));
    // Without the bump the next transaction has the same epoch; it added the
    // partition, so the verification says yes and the aborted write commits with it.
    let (result, mut b) = delayed_write_after_abort(&[Bug::LateWriteJoinsNextTxn], true);
    assert_eq!(result, Ok(Offset(2)));
    assert_eq!(end_result(&mut b, 0, true), Ok(ProducerEpoch(0)));
    let log = &b.replicas[0].log;
    assert_eq!(
        log.record(Offset(3)).unwrap().control,
        Some(Control::Commit)
    );
    assert!(log
        .txn_index()
        .aborted_overlapping(Offset(2), Offset(3))
        .is_empty());
    // Unless the next transaction did not add it: then verification refuses it.
    let (result, _) = delayed_write_after_abort(&[Bug::LateWriteJoinsNextTxn], false);
    assert_eq!(result, Err(ErrorCode::InvalidTxnState));
}

#[test]
fn without_producer_fencing_a_new_instance_joins_the_open_transaction() {
    for bugs in [&[][..], &[Bug::NoProducerFencing]] {
        let fencing = bugs.is_empty();
        let (mut b, e) = open_transaction(bugs);
        let second = answer(&mut b, TXN.init());
        let zombie_commit = end_result(&mut b, e, true);
        if fencing {
            assert!(matches!(
                second,
                Message::InitProducerIdResponse {
                    result: Err(ErrorCode::ConcurrentTransactions),
                    ..
                }
            ));
            // One epoch behind the abort's: taken for a retry, of the other decision.
            assert_eq!(zombie_commit, Err(ErrorCode::InvalidTxnState));
            assert_eq!(init_epoch(&mut b), e + 2);
            assert_eq!(end_result(&mut b, e, true), Err(ErrorCode::ProducerFenced));
            let log = &b.replicas[0].log;
            assert_eq!(log.record(Offset(1)).unwrap().control, Some(Control::Abort));
        } else {
            assert!(matches!(
                second,
                Message::InitProducerIdResponse {
                    result: Ok((_, ProducerEpoch(0))),
                    ..
                }
            ));
            assert_eq!(zombie_commit, Ok(ProducerEpoch(1)), "the zombie commits");
            let log = &b.replicas[0].log;
            assert_eq!(
                log.record(Offset(1)).unwrap().control,
                Some(Control::Commit)
            );
        }
    }
}

#[test]
fn read_uncommitted_leak_serves_read_committed_up_to_the_high_watermark() {
    for bugs in [&[][..], &[Bug::ReadUncommittedLeak]] {
        let leak = !bugs.is_empty();
        let (mut b, _) = open_transaction(bugs);
        let data = consumer_fetch(&mut b, true);
        assert_eq!(data.last_stable_offset, Some(Offset(0)));
        assert_eq!(data.records.len(), usize::from(leak), "leak {leak}");
    }
}

#[test]
fn a_new_coordinator_finishes_a_prepared_commit_from_the_log() {
    use crate::message::{Control, CoordinatorEntry, TxnLogEntry, TxnStatus};
    use crate::types::{PartitionSet, ProducerEpoch, TxnId};
    // The log of __transaction_state says PrepareCommit; the markers were never sent.
    let mut b = started(Broker::new(BrokerId(0), &transaction_config()));
    let id = TxnId(4);
    let pid = super::producer_id_of(id);
    b.replicas[1].log.append(Record {
        txn_state: Some(CoordinatorEntry::Txn(TxnLogEntry {
            transactional_id: id,
            producer_id: pid,
            producer_epoch: ProducerEpoch(0),
            status: TxnStatus::PrepareCommit,
            partitions: [P].into_iter().collect::<PartitionSet>(),
            started_at: SimTime::ZERO,
            timeout_ms: 60_000,
        })),
        ..record(0, 1)
    });
    let mut out = Outbox::default();
    lead_both(&mut b, &mut out);
    // Becoming leader of partition 1 loaded the state and sent the markers.
    let markers = deliver(&mut b, NodeId::Broker(BrokerId(0)), &mut out);
    deliver(&mut b, NodeId::Broker(BrokerId(0)), &mut { markers });
    assert_eq!(
        b.replicas[0].log.record(Offset(0)).unwrap().control,
        Some(Control::Commit)
    );
    assert_eq!(b.txn_state(id).unwrap().status, TxnStatus::CompleteCommit);
}

#[test]
fn a_client_before_transaction_version_2_keeps_its_epoch_across_transactions() {
    // KIP-890 part 2 needs the client's EndTxn v5: an older client's transactions end
    // under the epoch they ran with, and its next transaction continues with it.
    let (mut b, e) = open_transaction(&[]);
    let old_client = |msg: Message| match msg {
        Message::EndTxn {
            correlation,
            transactional_id,
            producer_id,
            producer_epoch,
            commit,
            ..
        } => Message::EndTxn {
            correlation,
            transactional_id,
            producer_id,
            producer_epoch,
            commit,
            transaction_version_2: false,
        },
        m => m,
    };
    match answer(&mut b, old_client(TXN.end(e, true))) {
        Message::EndTxnResponse { result, .. } => assert_eq!(result, Ok(ProducerEpoch(e))),
        m => panic!("EndTxn: {m:?}"),
    }
    assert_eq!(
        b.txn_state(TXN.id).unwrap().producer_epoch,
        ProducerEpoch(e)
    );
    assert_eq!(
        add_result(&mut b, e, false),
        Ok(()),
        "the same epoch goes on"
    );
}
