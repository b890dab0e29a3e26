//! Unit tests of the subscribe-mode group consumer, driven through `start`,
//! `handle_message` and `handle_timeout` against a scripted fake cluster ([`Cluster`]):
//! the consumer is the only member of its group, and so its leader.
//!
//! Covered: the eager revocation before a rejoin (`assign []` with the old generation,
//! JoinGroup without owned partitions); the cooperative rejoin in the background
//! (KIP-429: owned partitions and their generation in JoinGroup, consuming while the
//! join is in flight, the new assignment applied at the next poll, the follow-up
//! rebalance after a revocation, heartbeats through a batch once the rebalance
//! completed); the manual `commitSync()` after a batch; the
//! auto-commit of a batch still being processed; the poll time-out (LeaveGroup, the
//! loss recorded after the open batch); a static member fenced (FENCED_INSTANCE_ID) on a
//! heartbeat or on its JoinGroup; the first fetch position from the committed offset or
//! `auto.offset.reset=earliest`.

use super::*;
use crate::history::PollReads;
use crate::message::{FetchData, Record};
use crate::types::Epoch;
use std::collections::VecDeque;

const GROUP: GroupId = GroupId(0);
/// The member id the fake coordinator gives the first member that joins.
const MEMBER: MemberId = MemberId(1);
const PROCESS: u64 = 7;
const P0: PartitionId = PartitionId(0);
const P1: PartitionId = PartitionId(1);
/// How far a test may run in simulated time before it is declared stuck.
const RUN_LIMIT_MS: u64 = 60_000;

/// Two `orders` partitions, two `__consumer_offsets` partitions, the group settings of
/// the catalogue's group scenarios.
fn config(assignor: Assignor, commit: CommitStrategy) -> Config {
    Config {
        partitions: 2,
        offsets_topic_partitions: 2,
        session_timeout_ms: 10_000,
        heartbeat_interval_ms: 3_000,
        max_poll_records: 50,
        auto_offset_reset: OffsetReset::Earliest,
        partition_assignment_strategy: assignor,
        commit,
        ..Config::default()
    }
}

/// The value of the record at `offset` of `p` in the fake log.
fn value(p: PartitionId, offset: u64) -> Value {
    1_000 * u64::from(p.0 + 1) + offset
}

/// The records at `offsets` of `p`, as a poll reads them.
fn reads(p: PartitionId, offsets: std::ops::Range<u64>) -> (PartitionId, Vec<(Offset, Value)>) {
    (p, offsets.map(|o| (Offset(o), value(p, o))).collect())
}

/// A fake cluster: broker 0 leads every partition and coordinates the group; every
/// request succeeds unless scripted otherwise.
struct Cluster {
    /// Partition `p` holds records at offsets `0..log_end[p]`.
    log_end: [u64; 2],
    /// The group's committed offset of every partition.
    committed: Option<Offset>,
    generation: Generation,
    last_member: u64,
    /// The next request of each listed API is answered with the error.
    errors: Vec<(&'static str, ErrorCode)>,
    /// The next SyncGroup answers this instead of the leader's assignment.
    next_sync: Option<Vec<PartitionId>>,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster {
            log_end: [3, 5],
            committed: None,
            generation: Generation(0),
            last_member: 0,
            errors: Vec::new(),
            next_sync: None,
        }
    }

    fn fail_next(&mut self, api: &'static str, error: ErrorCode) {
        self.errors.push((api, error));
    }

    fn answer(&mut self, request: &Message) -> Option<Message> {
        if let Some(i) = self.errors.iter().position(|(a, _)| *a == request.api()) {
            let (_, error) = self.errors.remove(i);
            return Some(error_answer(request, error));
        }
        Some(match request {
            Message::MetadataRequest { correlation } => Message::MetadataResponse {
                correlation: *correlation,
                partitions: (0..4)
                    .map(|p| (PartitionId(p), Some(BrokerId(0)), Epoch(1)))
                    .collect(),
            },
            Message::JoinGroup {
                correlation,
                member,
                instance,
                protocols,
                owned,
                owned_generation,
                ..
            } => {
                self.generation.0 += 1;
                let member = member.unwrap_or_else(|| {
                    self.last_member += 1;
                    MemberId(self.last_member)
                });
                Message::JoinGroupResponse {
                    correlation: *correlation,
                    result: Ok(Joined {
                        generation: self.generation,
                        member,
                        leader: member,
                        protocol: protocols[0].clone(),
                        members: vec![(member, *instance, owned.clone(), *owned_generation)],
                    }),
                }
            }
            Message::SyncGroup {
                correlation,
                member,
                assignments,
                ..
            } => {
                let assigned = self.next_sync.take().unwrap_or_else(|| {
                    assignments
                        .iter()
                        .find(|(m, _)| m == member)
                        .map(|(_, partitions)| partitions.clone())
                        .unwrap_or_default()
                });
                Message::SyncGroupResponse {
                    correlation: *correlation,
                    result: Ok(assigned),
                }
            }
            Message::OffsetFetch {
                correlation,
                partitions,
                ..
            } => Message::OffsetFetchResponse {
                correlation: *correlation,
                result: Ok(partitions.iter().map(|p| (p, self.committed)).collect()),
            },
            Message::Fetch {
                correlation,
                partition,
                fetch_offset,
                max_records,
                ..
            } => {
                let end = self.log_end[partition.index()];
                let records = (fetch_offset.0..end)
                    .take(*max_records as usize)
                    .map(|o| Record {
                        value: value(*partition, o),
                        epoch: Epoch(1),
                        producer: None,
                        control: None,
                        txn_state: None,
                    })
                    .collect();
                Message::FetchResponse {
                    correlation: *correlation,
                    partition: *partition,
                    result: Ok(FetchData {
                        leader_epoch: Epoch(1),
                        base_offset: *fetch_offset,
                        records,
                        high_watermark: Some(Offset(end)),
                        log_end_offset: Offset(end),
                        last_stable_offset: Some(Offset(end)),
                        aborted: Vec::new(),
                    }),
                }
            }
            Message::Heartbeat { correlation, .. } => Message::HeartbeatResponse {
                correlation: *correlation,
                result: Ok(()),
            },
            Message::OffsetCommit { correlation, .. } => Message::OffsetCommitResponse {
                correlation: *correlation,
                result: Ok(()),
            },
            // LeaveGroup's answer is not awaited.
            _ => return None,
        })
    }
}

/// The error answer to a coordinator request.
fn error_answer(request: &Message, error: ErrorCode) -> Message {
    match *request {
        Message::JoinGroup { correlation, .. } => Message::JoinGroupResponse {
            correlation,
            result: Err(error),
        },
        Message::SyncGroup { correlation, .. } => Message::SyncGroupResponse {
            correlation,
            result: Err(error),
        },
        Message::Heartbeat { correlation, .. } => Message::HeartbeatResponse {
            correlation,
            result: Err(error),
        },
        _ => panic!("no scripted error answer to {}", request.api()),
    }
}

/// The consumer in a discrete-event loop with the fake cluster: requests are answered
/// one at a time in the order they were sent, timers fire in time order when no
/// request waits.
struct Harness {
    consumer: GroupConsumer,
    cluster: Cluster,
    now: SimTime,
    /// Armed timers: (when, timer), in the order they were armed.
    timers: Vec<(SimTime, Timer)>,
    /// Requests sent and not yet answered.
    pending: VecDeque<Message>,
    /// Requests of the APIs in `hold` stay here unanswered until released.
    hold: Vec<&'static str>,
    held: Vec<Message>,
    /// Every request the consumer sent, in order.
    sent: Vec<Message>,
    /// Every history event the consumer recorded, in order.
    history: Vec<HistoryEvent>,
}

impl Harness {
    /// A started consumer; `instance` makes it a static member.
    fn new(config: Config, instance: Option<u32>) -> Harness {
        let spec = MemberSpec {
            group: GROUP,
            instance,
            processing_ms_per_record: 20,
            poll_interval_ms: 100,
            process_base: PROCESS,
            process_stride: 100,
        };
        let mut h = Harness {
            consumer: GroupConsumer::new(ClientId(0), &config, spec, 1),
            cluster: Cluster::new(),
            now: SimTime::ZERO,
            timers: Vec::new(),
            pending: VecDeque::new(),
            hold: Vec::new(),
            held: Vec::new(),
            sent: Vec::new(),
            history: Vec::new(),
        };
        let mut out = Outbox::default();
        h.consumer.start(h.now, &mut out);
        h.absorb(out);
        h
    }

    /// A member that holds both partitions (generation 1) and has processed the
    /// records of the log (offsets 0..3 and 0..5), nothing more in flight.
    fn consuming(config: Config, instance: Option<u32>) -> Harness {
        let mut h = Harness::new(config, instance);
        h.run_until(|h| h.count(OpKind::Poll, Outcome::Ok) == 1);
        h.run_until(|h| h.pending.is_empty() && h.consumer.is_idle());
        assert_eq!(h.consumer.owned, [P0, P1]);
        h
    }

    fn absorb(&mut self, out: Outbox) {
        for (_, request) in out.messages {
            self.sent.push(request.clone());
            self.pending.push_back(request);
        }
        for (delay, timer) in out.timers {
            self.timers.push((self.now.plus(delay), timer));
        }
        self.history.extend(out.history);
    }

    fn deliver(&mut self, answer: Message) {
        let mut out = Outbox::default();
        self.consumer
            .handle_message(self.now, NodeId::Broker(BrokerId(0)), answer, &mut out);
        self.absorb(out);
    }

    /// One event: the oldest pending request is answered (or held), else the earliest
    /// timer fires. False when nothing is left to happen.
    fn step(&mut self) -> bool {
        if let Some(request) = self.pending.pop_front() {
            if self.hold.contains(&request.api()) {
                self.held.push(request);
            } else if let Some(answer) = self.cluster.answer(&request) {
                self.deliver(answer);
            }
            return true;
        }
        let Some(next) = self
            .timers
            .iter()
            .enumerate()
            .min_by_key(|(_, (at, _))| *at)
            .map(|(i, _)| i)
        else {
            return false;
        };
        let (at, timer) = self.timers.remove(next);
        self.now = at;
        let mut out = Outbox::default();
        self.consumer.handle_timeout(at, timer, &mut out);
        self.absorb(out);
        true
    }

    /// Run event by event until `done` holds.
    fn run_until(&mut self, done: impl Fn(&Harness) -> bool) {
        let limit = self.now.plus_ms(RUN_LIMIT_MS);
        while !done(self) {
            assert!(self.now < limit, "not reached within {RUN_LIMIT_MS} ms");
            assert!(self.step(), "nothing left to happen");
        }
    }

    /// Run every event due within the next `ms`.
    fn advance(&mut self, ms: u64) {
        let until = self.now.plus_ms(ms);
        while !self.pending.is_empty() || self.timers.iter().any(|(at, _)| *at <= until) {
            self.step();
        }
        self.now = until;
    }

    /// Answer the held requests of `api` (first, as they were sent) and stop holding.
    fn release(&mut self, api: &str) {
        self.hold.retain(|a| *a != api);
        let (released, kept): (Vec<Message>, Vec<Message>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|m| m.api() == api);
        self.held = kept;
        for request in released.into_iter().rev() {
            self.pending.push_front(request);
        }
    }

    /// The requests of `api` sent so far.
    fn sent(&self, api: &str) -> Vec<&Message> {
        self.sent.iter().filter(|m| m.api() == api).collect()
    }

    fn count(&self, kind: OpKind, outcome: Outcome) -> usize {
        self.history
            .iter()
            .filter(|e| (e.kind, e.outcome) == (kind, outcome))
            .count()
    }

    /// The last event of `kind` recorded.
    fn last(&self, kind: OpKind) -> &HistoryEvent {
        self.history
            .iter()
            .rev()
            .find(|e| e.kind == kind)
            .unwrap_or_else(|| panic!("no {kind:?} recorded"))
    }

    /// (kind, outcome) of the events recorded since the first `skip`.
    fn ops_since(&self, skip: usize) -> Vec<(OpKind, Outcome)> {
        self.history[skip..]
            .iter()
            .map(|e| (e.kind, e.outcome))
            .collect()
    }
}

/// The owned partitions and their generation a JoinGroup claims, and its member id.
fn join_claim(join: &Message) -> (Option<MemberId>, Vec<PartitionId>, Option<Generation>) {
    match join {
        Message::JoinGroup {
            member,
            owned,
            owned_generation,
            ..
        } => (*member, owned.clone(), *owned_generation),
        other => panic!("not a JoinGroup: {other:?}"),
    }
}

/// The reads of a completed poll.
fn poll_reads(event: &HistoryEvent) -> Option<PollReads> {
    match &event.mops[..] {
        [MicroOp::Poll { reads }] => reads.clone(),
        other => panic!("not a poll: {other:?}"),
    }
}

/// The generation and member an event was recorded with.
fn metadata(event: &HistoryEvent) -> Option<(Generation, MemberId)> {
    let (group, metadata) = event.group.expect("a group operation");
    assert_eq!(group, GROUP);
    metadata
}

#[test]
fn an_eager_member_revokes_with_its_old_generation_before_it_rejoins() {
    let mut h = Harness::consuming(config(Assignor::Range, CommitStrategy::Manual), None);
    let joins = h.sent("JoinGroup").len();
    h.cluster
        .fail_next("Heartbeat", ErrorCode::RebalanceInProgress);
    h.run_until(|h| h.sent("JoinGroup").len() > joins);

    // By the time the JoinGroup goes out, the member holds nothing, and said so with
    // the generation it held its partitions in.
    let revoke = h.last(OpKind::Assign);
    assert_eq!(revoke.outcome, Outcome::Ok);
    assert!(revoke.assigned.is_empty(), "revoked: {:?}", revoke.assigned);
    assert_eq!(metadata(revoke), Some((Generation(1), MEMBER)));
    assert!(h.consumer.owned.is_empty());
    let join = *h.sent("JoinGroup").last().expect("sent");
    assert_eq!(join_claim(join), (Some(MEMBER), Vec::new(), None));

    // The rebalance hands both partitions back in the new generation.
    h.run_until(|h| h.count(OpKind::Assign, Outcome::Ok) == 3);
    let assign = h.last(OpKind::Assign);
    assert_eq!(assign.assigned, [P0, P1]);
    assert_eq!(metadata(assign), Some((Generation(2), MEMBER)));
}

#[test]
fn a_cooperative_member_consumes_while_it_rejoins_and_rejoins_after_a_revocation() {
    let mut h = Harness::consuming(
        config(Assignor::CooperativeSticky, CommitStrategy::Manual),
        None,
    );
    let assigns = h.count(OpKind::Assign, Outcome::Ok);
    h.cluster
        .fail_next("Heartbeat", ErrorCode::RebalanceInProgress);
    h.hold.push("JoinGroup");
    h.run_until(|h| !h.held.is_empty());
    assert_eq!(
        join_claim(&h.held[0]),
        (Some(MEMBER), vec![P0, P1], Some(Generation(1))),
        "KIP-429/KIP-792: it claims what it owns, with the generation"
    );

    // New records arrive while the JoinGroup waits: the member goes on consuming.
    h.cluster.log_end = [4, 6];
    let polls = h.count(OpKind::Poll, Outcome::Ok);
    h.run_until(|h| h.count(OpKind::Poll, Outcome::Ok) > polls);
    assert_eq!(
        poll_reads(h.last(OpKind::Poll)),
        Some(vec![reads(P0, 3..4), reads(P1, 5..6)])
    );
    assert_eq!(h.held.len(), 1, "the JoinGroup is still unanswered");
    assert_eq!(
        h.count(OpKind::Assign, Outcome::Ok),
        assigns,
        "nothing revoked"
    );

    // The new assignment takes P1 away: applied at the next poll, which rejoins at once
    // so that a follow-up rebalance can hand P1 out.
    h.cluster.next_sync = Some(vec![P0]);
    let joins = h.sent("JoinGroup").len();
    h.release("JoinGroup");
    h.run_until(|h| h.sent("JoinGroup").len() > joins);
    let assign = h.last(OpKind::Assign);
    assert_eq!(assign.assigned, [P0]);
    assert_eq!(metadata(assign), Some((Generation(2), MEMBER)));
    let join = *h.sent("JoinGroup").last().expect("sent");
    assert_eq!(
        join_claim(join),
        (Some(MEMBER), vec![P0], Some(Generation(2)))
    );
}

#[test]
fn a_cooperative_member_heartbeats_through_its_batch_once_its_rebalance_completes() {
    let mut h = Harness::consuming(
        config(Assignor::CooperativeSticky, CommitStrategy::Manual),
        None,
    );
    h.cluster
        .fail_next("Heartbeat", ErrorCode::RebalanceInProgress);
    h.hold.push("JoinGroup");
    h.run_until(|h| !h.held.is_empty());
    // A batch far shorter than max.poll.interval.ms but longer than session.timeout.ms
    // begins, and the JoinGroup stays unanswered past a heartbeat tick.
    h.cluster.log_end = [4, 6];
    h.consumer.slow_next_batch(20_000);
    h.run_until(|h| h.count(OpKind::Poll, Outcome::Invoke) == 2);
    h.advance(4_000);
    h.release("JoinGroup");
    h.run_until(|h| h.sent("SyncGroup").len() == 2);
    let beats = h.sent("Heartbeat").len();

    // Kafka's heartbeat thread runs again from the JoinGroup answer on: the member keeps
    // its session through the rest of its batch.
    h.advance(10_000);
    assert_eq!(
        h.last(OpKind::Poll).outcome,
        Outcome::Invoke,
        "still processing"
    );
    let generations: Vec<Generation> = h.sent("Heartbeat")[beats..]
        .iter()
        .map(|m| match m {
            Message::Heartbeat { generation, .. } => *generation,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        generations,
        [Generation(2); 3],
        "one per heartbeat.interval.ms"
    );
}

#[test]
fn a_manual_commit_follows_the_processed_batch_with_its_next_offsets() {
    let mut h = Harness::new(config(Assignor::Range, CommitStrategy::Manual), None);
    h.run_until(|h| !h.sent("OffsetCommit").is_empty());
    let batch = h.history.iter().position(|e| e.kind == OpKind::Poll);
    let batch = batch.expect("a batch was polled");
    assert_eq!(
        h.ops_since(batch),
        [
            (OpKind::Poll, Outcome::Invoke),
            (OpKind::Poll, Outcome::Ok),
            (OpKind::Commit, Outcome::Invoke),
        ]
    );
    assert_eq!(
        poll_reads(&h.history[batch + 1]),
        Some(vec![reads(P0, 0..3), reads(P1, 0..5)])
    );
    let offsets = vec![(P0, Offset(3)), (P1, Offset(5))];
    let commit = h.last(OpKind::Commit);
    assert_eq!(commit.process, PROCESS);
    assert_eq!(commit.offsets, offsets);
    assert_eq!(metadata(commit), Some((Generation(1), MEMBER)));
    match h.sent("OffsetCommit")[..] {
        [Message::OffsetCommit {
            generation,
            member,
            offsets: sent,
            ..
        }] => {
            assert_eq!((*generation, *member), (Some(Generation(1)), Some(MEMBER)));
            assert_eq!(sent, &offsets);
        }
        ref other => panic!("one OffsetCommit: {other:?}"),
    }

    h.run_until(|h| h.count(OpKind::Commit, Outcome::Ok) == 1);
    let ok = h.last(OpKind::Commit);
    assert_eq!((ok.process, &ok.offsets), (PROCESS, &offsets));
}

#[test]
fn an_auto_commit_during_processing_commits_what_poll_returned() {
    let mut h = Harness::new(config(Assignor::Range, CommitStrategy::Auto), None);
    h.consumer.slow_next_batch(10_000);
    h.run_until(|h| !h.sent("OffsetCommit").is_empty());
    assert_eq!(
        h.last(OpKind::Poll).outcome,
        Outcome::Invoke,
        "the batch is still being processed"
    );
    let offsets = vec![(P0, Offset(3)), (P1, Offset(5))];
    let auto_process = PROCESS + AUTO_COMMIT_PROCESS_OFFSET;
    let commit = h.last(OpKind::Commit);
    assert_eq!(
        (commit.outcome, commit.process, &commit.offsets),
        (Outcome::Invoke, auto_process, &offsets)
    );
    assert_eq!(metadata(commit), Some((Generation(1), MEMBER)));
    assert!(matches!(
        h.sent("OffsetCommit")[..],
        [Message::OffsetCommit { offsets: sent, generation: Some(Generation(1)), .. }]
            if *sent == offsets
    ));

    h.run_until(|h| h.count(OpKind::Commit, Outcome::Ok) == 1);
    assert_eq!(h.last(OpKind::Commit).process, auto_process);
    assert_eq!(h.last(OpKind::Poll).outcome, Outcome::Invoke);
}

#[test]
fn a_poll_time_out_leaves_the_group_and_records_the_loss_after_the_batch() {
    let config = Config {
        max_poll_interval_ms: 5_000,
        ..config(Assignor::Range, CommitStrategy::Manual)
    };
    let mut h = Harness::new(config, None);
    h.consumer.slow_next_batch(8_000);
    h.run_until(|h| h.count(OpKind::Poll, Outcome::Invoke) == 1);
    let batch = h.history.len() - 1;
    h.run_until(|h| !h.sent("LeaveGroup").is_empty());
    assert!(matches!(
        h.sent("LeaveGroup")[..],
        [Message::LeaveGroup {
            member: MEMBER,
            instance: None,
            ..
        }]
    ));
    assert!(
        h.ops_since(batch + 1).is_empty(),
        "nothing recorded while the batch is open"
    );

    h.run_until(|h| h.sent("JoinGroup").len() == 2);
    assert_eq!(
        h.ops_since(batch + 1),
        [
            (OpKind::Poll, Outcome::Ok),
            (OpKind::Assign, Outcome::Invoke),
            (OpKind::Assign, Outcome::Ok),
        ]
    );
    let lost = h.last(OpKind::Assign);
    assert!(lost.assigned.is_empty());
    assert_eq!(metadata(lost), None, "lost, not handed over");
    assert!(
        h.sent("OffsetCommit").is_empty(),
        "a member that left does not commit"
    );
    assert_eq!(join_claim(h.sent("JoinGroup")[1]), (None, Vec::new(), None));
}

#[test]
fn a_static_member_fenced_on_a_heartbeat_exits_at_its_next_poll() {
    let mut h = Harness::consuming(config(Assignor::Range, CommitStrategy::Manual), Some(0));
    h.cluster
        .fail_next("Heartbeat", ErrorCode::FencedInstanceId);
    h.run_until(|h| h.consumer.exited);
    let lost = h.last(OpKind::Assign);
    assert!(lost.assigned.is_empty());
    assert_eq!(metadata(lost), None, "lost, not handed over");

    let (sent, recorded) = (h.sent.len(), h.history.len());
    h.advance(10_000);
    assert_eq!(h.sent.len(), sent, "a zombie sends nothing more");
    assert_eq!(h.history.len(), recorded);
}

#[test]
fn a_static_member_fenced_on_its_join_exits_and_its_open_batch_ends_info() {
    let mut h = Harness::consuming(
        config(Assignor::CooperativeSticky, CommitStrategy::Manual),
        Some(0),
    );
    h.cluster
        .fail_next("Heartbeat", ErrorCode::RebalanceInProgress);
    h.hold.push("JoinGroup");
    h.run_until(|h| !h.held.is_empty());
    h.cluster.log_end = [4, 6];
    h.run_until(|h| h.count(OpKind::Poll, Outcome::Invoke) == 2);

    h.cluster
        .fail_next("JoinGroup", ErrorCode::FencedInstanceId);
    h.release("JoinGroup");
    let recorded = h.history.len();
    h.run_until(|h| h.consumer.exited);
    assert_eq!(h.ops_since(recorded), [(OpKind::Poll, Outcome::Info)]);
    assert_eq!(
        poll_reads(h.last(OpKind::Poll)),
        Some(vec![reads(P0, 3..4), reads(P1, 5..6)])
    );

    let sent = h.sent.len();
    h.advance(10_000);
    assert_eq!(h.sent.len(), sent, "a zombie sends nothing more");
    assert_eq!(h.history.len(), recorded + 1, "nor records anything");
}

/// The offsets of the first Fetch of each partition, when the group's committed offset
/// is `committed`.
fn first_fetch_offsets(committed: Option<Offset>) -> Vec<(PartitionId, Offset)> {
    let mut h = Harness::new(config(Assignor::Range, CommitStrategy::Manual), None);
    h.cluster.committed = committed;
    h.run_until(|h| h.sent("Fetch").len() == 2);
    assert_eq!(
        h.sent("OffsetFetch").len(),
        1,
        "positions come from the group first"
    );
    h.sent("Fetch")
        .into_iter()
        .map(|m| match m {
            Message::Fetch {
                partition,
                fetch_offset,
                ..
            } => (*partition, *fetch_offset),
            _ => unreachable!(),
        })
        .collect()
}

#[test]
fn the_first_fetch_starts_at_the_committed_offset_or_the_earliest() {
    assert_eq!(
        first_fetch_offsets(None),
        [(P0, Offset::ZERO), (P1, Offset::ZERO)],
        "auto.offset.reset=earliest"
    );
    assert_eq!(
        first_fetch_offsets(Some(Offset(7))),
        [(P0, Offset(7)), (P1, Offset(7))]
    );
}

#[test]
fn an_assignment_not_yet_applied_dies_with_the_membership_a_poll_time_out_ends() {
    // A cooperative member's background rebalance completes while it processes a batch
    // that outlasts max.poll.interval.ms: it leaves the group, and the assignment it
    // had not applied yet belongs to the membership it left. (Before the fix the next
    // poll applied it and the member consumed partitions of a generation it was no
    // longer in.)
    let config = Config {
        max_poll_interval_ms: 5_000,
        ..config(Assignor::CooperativeSticky, CommitStrategy::Manual)
    };
    let mut h = Harness::consuming(config, None);
    h.cluster
        .fail_next("Heartbeat", ErrorCode::RebalanceInProgress);
    h.hold.push("JoinGroup");
    h.run_until(|h| !h.held.is_empty());
    h.cluster.log_end = [4, 6];
    h.consumer.slow_next_batch(8_000);
    h.run_until(|h| h.count(OpKind::Poll, Outcome::Invoke) == 2);
    let batch = h.history.len() - 1;
    h.release("JoinGroup");
    h.run_until(|h| h.sent("SyncGroup").len() == 2);
    h.run_until(|h| !h.sent("LeaveGroup").is_empty());

    h.run_until(|h| h.sent("JoinGroup").len() == 3);
    assert_eq!(
        h.ops_since(batch + 1),
        [
            (OpKind::Poll, Outcome::Ok),
            (OpKind::Assign, Outcome::Invoke),
            (OpKind::Assign, Outcome::Ok),
        ],
        "the loss, and no assignment of generation 2 applied"
    );
    assert_eq!(metadata(h.last(OpKind::Assign)), None);
    assert_eq!(join_claim(h.sent("JoinGroup")[2]).0, None, "a new member");
}
