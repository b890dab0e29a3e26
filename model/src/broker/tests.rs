//! Broker unit tests, driving one or two brokers by hand with the messages the
//! controller and peers would send.

use super::replica::{FollowerPhase, Role};
use super::Broker;
use crate::config::Config;
use crate::message::{FetchData, Message, PartitionState, ProduceBatch, Record};
use crate::outbox::Outbox;
use crate::types::{
    BrokerEpoch, BrokerId, Epoch, NodeId, Offset, PartitionEpoch, PartitionId, SimTime,
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
    let mut b = started(Broker::new(BrokerId(0), &transaction_config()));
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

#[test]
fn a_transaction_commits_through_the_log_and_a_new_instance_fences_the_old() {
    use crate::message::{Control, ErrorCode, ProducerStamp, TxnStatus};
    use crate::types::{PartitionSet, ProducerEpoch, TxnId};
    let mut b = transaction_broker();
    let id = TxnId(4);
    let init = |c| Message::InitProducerId {
        correlation: c,
        transactional_id: id,
        transaction_timeout_ms: 60_000,
    };
    let Message::InitProducerIdResponse {
        result: Ok((pid, epoch)),
        ..
    } = txn_request(&mut b, init(1)).remove(0)
    else {
        panic!("InitProducerId answered")
    };
    assert_eq!(epoch, ProducerEpoch(0));
    let add = |epoch| Message::AddPartitionsToTxn {
        correlation: 2,
        transactional_id: id,
        producer_id: pid,
        producer_epoch: epoch,
        partitions: [P].into_iter().collect::<PartitionSet>(),
        verify_only: false,
    };
    assert!(matches!(
        txn_request(&mut b, add(epoch))[..],
        [Message::TxnResponse { result: Ok(()), .. }]
    ));
    let produce = |epoch, seq| Message::Produce {
        transactional_id: None,
        correlation: 3,
        acks_all: true,
        acks_none: false,
        batches: vec![ProduceBatch {
            partition: P,
            producer: Some(ProducerStamp {
                producer_id: pid,
                producer_epoch: epoch,
                base_sequence: seq,
                transactional: true,
            }),
            values: vec![100 + u64::from(seq)],
        }],
    };
    txn_request(&mut b, produce(epoch, 0));
    assert_eq!(b.replicas[0].log.last_stable_offset(Offset(1)), Offset(0));
    let end = |epoch, commit| Message::EndTxn {
        correlation: 4,
        transactional_id: id,
        producer_id: pid,
        producer_epoch: epoch,
        commit,
    };
    assert!(matches!(
        txn_request(&mut b, end(epoch, true))[..],
        [Message::EndTxnResponse { result: Ok(_), .. }]
    ));
    let log = &b.replicas[0].log;
    assert_eq!(log.log_end_offset(), Offset(2), "record and commit marker");
    assert_eq!(
        log.record(Offset(1)).unwrap().control,
        Some(Control::Commit)
    );
    assert_eq!(log.last_stable_offset(Offset(2)), Offset(2));
    assert_eq!(b.txn_state(id).unwrap().status, TxnStatus::CompleteCommit);

    // A second transaction is left open; a new instance (InitProducerId) aborts it
    // under a bumped epoch, and is told to retry until the abort completed.
    txn_request(&mut b, add(epoch));
    txn_request(&mut b, produce(epoch, 1));
    assert!(matches!(
        txn_request(&mut b, init(5))[..],
        [Message::InitProducerIdResponse {
            result: Err(ErrorCode::ConcurrentTransactions),
            ..
        }]
    ));
    assert_eq!(b.txn_state(id).unwrap().status, TxnStatus::CompleteAbort);
    let Message::InitProducerIdResponse {
        result: Ok((_, new_epoch)),
        ..
    } = txn_request(&mut b, init(6)).remove(0)
    else {
        panic!("InitProducerId answered")
    };
    assert_eq!(
        new_epoch,
        ProducerEpoch(2),
        "+1 for the abort, +1 for the instance"
    );
    // The zombie is fenced at the coordinator and at the partition.
    assert!(matches!(
        txn_request(&mut b, end(epoch, true))[..],
        [Message::EndTxnResponse {
            result: Err(ErrorCode::ProducerFenced),
            ..
        }]
    ));
    assert!(matches!(
        &txn_request(&mut b, produce(epoch, 2))[..],
        [Message::ProduceResponse { results, .. }]
            if results[0].result == Err(ErrorCode::InvalidProducerEpoch)
    ));
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
