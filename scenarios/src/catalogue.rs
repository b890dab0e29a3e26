//! The scenarios of `scenarios.md` (faults and replication), each with its schedule and
//! the anomalies its configuration allows.

use crate::{
    Allowed, Draw, Fault, FaultEvent, LinkSet, NetworkSpec, Phases, Scenario, StallWhen, Target,
    Workload,
};
use model::client::group::Assignor;
use model::config::{CommitStrategy, Config, OffsetReset};
use model::types::{GroupId, NodeId, PartitionId, SimTime};

fn at(ms: u64, fault: Fault) -> FaultEvent {
    FaultEvent {
        at: SimTime::from_ms(ms),
        fault,
    }
}

fn phases(heal_ms: u64) -> Phases {
    Phases {
        heal_at: SimTime::from_ms(heal_ms),
        stop_producers_at: SimTime::from_ms(heal_ms + 5_000),
        // Long enough for a batch stuck in retries to hit delivery.timeout.ms (120 s).
        deadline: SimTime::from_ms(heal_ms + 5_000 + 150_000),
    }
}

fn random_partition(config: &Config, draw: &mut dyn Draw) -> PartitionId {
    PartitionId(draw.below(u64::from(config.partitions)) as u32)
}

/// What a configuration that can lose committed data is allowed to show.
fn data_loss(reason: &'static str) -> Vec<Allowed> {
    [
        "lost-write",
        "unseen",
        "inconsistent-offsets",
        "duplicate",
        "nonmonotonic-send",
        "realtime-send-order",
        "committed-truncated",
        "hw-regression",
    ]
    .into_iter()
    .map(|kind| Allowed { kind, reason })
    .collect()
}

/// Allowances that follow from the configuration itself, whatever the faults.
fn config_allowances(config: &Config) -> Vec<Allowed> {
    let mut v = Vec::new();
    if config.unclean_leader_election_enable {
        v.extend(data_loss(
            "unclean.leader.election.enable=true: an out-of-sync replica may become leader and committed writes are lost (Jepsen 2013)",
        ));
    } else if config.acks != model::config::Acks::All {
        v.extend(data_loss("acks=0/1: the leader acknowledges before followers have the write; a leader crash loses it"));
    } else if config.min_insync_replicas < 2 {
        v.extend(data_loss(
            "min.insync.replicas=1: the last replica standing can acknowledge alone and lose the write in a crash (KIP-966)",
        ));
    }
    if !config.enable_idempotence {
        let kinds = [
            "duplicate",
            "nonmonotonic-send",
            "int-nonmonotonic-send",
            "realtime-send-order",
        ];
        for kind in kinds {
            if !v.iter().any(|a: &Allowed| a.kind == kind) {
                v.push(Allowed {
                    kind,
                    reason: "enable.idempotence=false: a retry after a lost response appends again, possibly after a later batch",
                });
            }
        }
    }
    v
}

/// KAFKA-7128's lagging high watermark: followers learn the HW one fetch round trip
/// after the leader, so slow leader links leave them a HW that is seconds stale. The
/// leader crashes (losing its unsynced tail) while the two followers cannot reach each
/// other: the new leader's HW cannot advance (its only ISR follower does not fetch),
/// and the old leader restarts with a log that reaches this stale HW but not every
/// committed record. Only the rule "a follower rejoins the ISR at the start of the
/// leader's epoch" keeps it out of the ISR.
fn lagging_high_watermark(config: &Config, draw: &mut dyn Draw) -> Vec<FaultEvent> {
    let p = random_partition(config, draw);
    let slow = draw.between(3_000, 6_000);
    let crash = slow + draw.between(3_000, 8_000);
    let restart = crash + draw.between(300, 2_500);
    let heal = crash + draw.between(8_000, 20_000);
    vec![
        at(
            slow,
            Fault::SlowLinks(Target::LeaderOf(p), draw.between(500, 2_000)),
        ),
        at(
            crash,
            Fault::Partition {
                from: LinkSet::FollowerOf(p, 0),
                to: LinkSet::FollowerOf(p, 1),
                one_way: false,
            },
        ),
        at(crash, Fault::Crash(Target::LeaderOf(p))),
        at(restart, Fault::RestartAll),
        at(heal, Fault::HealNetwork),
    ]
}

fn broker_failure(config: &Config, _: &Phases, draw: &mut dyn Draw) -> Vec<FaultEvent> {
    if draw.chance(1, 3) {
        return lagging_high_watermark(config, draw);
    }
    // One broker down at a time (RF 3, min ISR 2 tolerates one), leaders preferred; the
    // next crash waits for the restarted broker to rejoin the ISR.
    let mut events = Vec::new();
    let mut t = draw.between(3_000, 8_000);
    while t < 35_000 {
        let target = if draw.chance(3, 4) {
            Target::LeaderOf(random_partition(config, draw))
        } else {
            Target::Broker(model::types::BrokerId(
                draw.below(u64::from(config.brokers)) as u32,
            ))
        };
        events.push(at(t, Fault::Crash(target)));
        let down = draw.between(1_000, 14_000);
        events.push(at(t + down, Fault::RestartAll));
        t += down + draw.between(10_000, 16_000);
    }
    events
}

/// KAFKA-6880's zombie replica: the controller's messages to one follower are lost (its
/// own heartbeats still arrive, so it stays unfenced). The leader is cut off from the
/// controller and the other follower but still feeds the zombie its uncommitted tail;
/// another replica takes over (epoch +1); the old leader rejoins, truncating that tail,
/// and is elected again (epoch +2) when the second leader crashes. The zombie never
/// heard of either epoch: only the current leader epoch in its fetches (KIP-320) stops
/// it from appending the new lineage onto its stale tail.
fn zombie_follower(config: &Config, draw: &mut dyn Draw) -> Vec<FaultEvent> {
    let p = random_partition(config, draw);
    let zombie = || LinkSet::FollowerOf(p, 1);
    let deaf = || Fault::Partition {
        from: LinkSet::Nodes(vec![NodeId::Controller]),
        to: zombie(),
        one_way: true,
    };
    let t = draw.between(3_000, 6_000);
    let isolate = t + draw.between(1_000, 3_000);
    let rejoin = isolate + config.broker_session_timeout_ms + draw.between(2_000, 5_000);
    let second_crash = rejoin + draw.between(1_000, 3_000);
    vec![
        at(t, deaf()),
        at(
            isolate,
            Fault::Partition {
                from: LinkSet::LeaderOf(p),
                to: LinkSet::Nodes(vec![NodeId::Controller]),
                one_way: false,
            },
        ),
        at(
            isolate,
            Fault::Partition {
                from: LinkSet::LeaderOf(p),
                to: LinkSet::FollowerOf(p, 0),
                one_way: false,
            },
        ),
        at(rejoin, Fault::HealNetwork),
        at(rejoin, deaf()),
        at(second_crash, Fault::Crash(Target::LeaderOf(p))),
        at(second_crash + draw.between(2_000, 6_000), Fault::RestartAll),
        at(
            second_crash + draw.between(15_000, 25_000),
            Fault::HealNetwork,
        ),
    ]
}

fn network_partition(config: &Config, _: &Phases, draw: &mut dyn Draw) -> Vec<FaultEvent> {
    if draw.chance(1, 4) {
        return zombie_follower(config, draw);
    }
    let mut events = Vec::new();
    let mut t = draw.between(3_000, 6_000);
    while t < 45_000 {
        let p = random_partition(config, draw);
        if draw.chance(1, 5) {
            // A GC-like stall of the leader past the broker session: to everyone else
            // it looks partitioned, and when it wakes it still believes it leads.
            let length = config.broker_session_timeout_ms + draw.between(1_000, 8_000);
            events.push(at(t, Fault::Pause(Target::LeaderOf(p), length)));
            t += length + draw.between(5_000, 10_000);
            continue;
        }
        let (from, to, one_way) = match draw.below(4) {
            // The leader alone against everyone (followers and controller).
            0 => (LinkSet::LeaderOf(p), LinkSet::Rest, false),
            // One way: the leader's messages are lost, it still hears the others.
            1 => (LinkSet::LeaderOf(p), LinkSet::Rest, true),
            // One way: the leader hears nothing, its own messages go through.
            2 => (LinkSet::Rest, LinkSet::LeaderOf(p), true),
            // The leader and one follower on the minority side, away from the controller.
            _ => (LinkSet::LeaderAndFollowerOf(p), LinkSet::Rest, false),
        };
        events.push(at(t, Fault::Partition { from, to, one_way }));
        // Some partitions outlast replica.lag.time.max.ms (plus the ISR check period),
        // so the isolated leader's ISR-shrink path is exercised too.
        let length = if draw.chance(1, 2) {
            draw.between(10_000, 20_000)
        } else {
            config.replica_lag_time_max_ms + draw.between(10_000, 20_000)
        };
        events.push(at(t + length, Fault::HealNetwork));
        t += length + draw.between(5_000, 10_000);
    }
    events
}

fn slow_follower(config: &Config, _: &Phases, draw: &mut dyn Draw) -> Vec<FaultEvent> {
    let p = random_partition(config, draw);
    let start = draw.between(3_000, 6_000);
    let extra = config.replica_lag_time_max_ms + draw.between(2_000, 10_000);
    vec![
        at(
            start,
            Fault::SlowLinks(Target::FollowerOf(p, draw.below(2) as u32), extra),
        ),
        at(
            start + config.replica_lag_time_max_ms + 12_000,
            Fault::HealNetwork,
        ),
    ]
}

fn min_isr_unavailable(config: &Config, _: &Phases, draw: &mut dyn Draw) -> Vec<FaultEvent> {
    let p = random_partition(config, draw);
    let t = draw.between(5_000, 10_000);
    let down = draw.between(12_000, 20_000);
    vec![
        at(t, Fault::Crash(Target::FollowerOf(p, 0))),
        at(
            t + draw.between(0, 500),
            Fault::Crash(Target::FollowerOf(p, 1)),
        ),
        at(t + down, Fault::RestartAll),
    ]
}

fn unclean_election(config: &Config, _: &Phases, draw: &mut dyn Draw) -> Vec<FaultEvent> {
    // Cut the leader off from its followers (not from the controller) until the ISR
    // shrinks to the leader alone; it keeps acknowledging; then it dies, and an
    // out-of-sync follower is elected.
    let p = random_partition(config, draw);
    let t = draw.between(3_000, 6_000);
    let shrink = config.replica_lag_time_max_ms + config.replica_lag_time_max_ms / 2 + 2_000;
    let crash = t + shrink + draw.between(0, 3_000);
    vec![
        at(
            t,
            Fault::Partition {
                from: LinkSet::LeaderOf(p),
                to: LinkSet::FollowersOf(p),
                one_way: false,
            },
        ),
        at(crash, Fault::Crash(Target::LeaderOf(p))),
        at(crash + 500, Fault::HealNetwork),
        at(
            crash + config.broker_session_timeout_ms + draw.between(5_000, 10_000),
            Fault::RestartAll,
        ),
    ]
}

/// The active controller crashes while leadership is changing: a leader has just
/// died (its session is about to expire, or it has just re-registered), so the
/// election falls to whichever controller is active then.
fn controller_failover(config: &Config, _: &Phases, draw: &mut dyn Draw) -> Vec<FaultEvent> {
    let mut events = Vec::new();
    let mut t = draw.between(3_000, 6_000);
    while t < 40_000 {
        events.push(at(
            t,
            Fault::Crash(Target::LeaderOf(random_partition(config, draw))),
        ));
        let controller_crash = t + draw.between(0, config.broker_session_timeout_ms + 3_000);
        let takeover = draw.between(500, 3_000);
        events.push(at(controller_crash, Fault::CrashController(takeover)));
        let down = draw.between(1_000, 14_000);
        events.push(at(t + down, Fault::RestartAll));
        t += down.max(controller_crash - t + takeover) + draw.between(8_000, 14_000);
    }
    events
}

fn rolling_restart(config: &Config, _: &Phases, draw: &mut dyn Draw) -> Vec<FaultEvent> {
    // Each broker in turn: controlled shutdown, a few seconds down, restart, then wait
    // for it to rejoin the ISRs before the next one.
    let mut events = Vec::new();
    let mut t = draw.between(3_000, 6_000);
    for b in 0..config.brokers {
        let broker = model::types::BrokerId(b);
        events.push(at(t, Fault::Shutdown(Target::Broker(broker))));
        let down = draw.between(3_000, 8_000);
        events.push(at(t + down, Fault::Restart(broker)));
        t += down + draw.between(6_000, 10_000);
    }
    events
}

fn random_broker(config: &Config, draw: &mut dyn Draw) -> model::types::BrokerId {
    model::types::BrokerId(draw.below(u64::from(config.brokers)) as u32)
}

/// A broker or, more often, the current leader of a random partition.
fn random_target(config: &Config, draw: &mut dyn Draw) -> Target {
    if draw.chance(2, 3) {
        Target::LeaderOf(random_partition(config, draw))
    } else {
        Target::Broker(random_broker(config, draw))
    }
}

/// Swarm testing (TigerBeetle's VOPR): the seed draws which fault kinds are on and
/// their parameters, then a schedule from them. Every append is flushed at once
/// (`log.flush.interval.messages=1`), so no crash may lose an acknowledged write: any
/// loss or divergence is the protocol's fault, not the fsync policy's.
fn chaos(config: &Config, phases: &Phases, draw: &mut dyn Draw) -> Vec<FaultEvent> {
    let end = phases.heal_at.as_ms().saturating_sub(5_000);
    let window = |draw: &mut dyn Draw| draw.between(2_000, end);
    let mut kinds: Vec<&str> = [
        "crashes",
        "partitions",
        "pauses",
        "slow-links",
        "lossy-network",
        "power-outage",
        "stalled-failover",
    ]
    .into_iter()
    .filter(|k| draw.chance(1, if *k == "power-outage" { 5 } else { 2 }))
    .collect();
    if kinds.is_empty() {
        kinds.push("crashes");
    }
    let mut events = Vec::new();
    let mut drawn = Vec::new();
    for kind in &kinds {
        match *kind {
            "crashes" => {
                let n = draw.between(1, 4);
                let down_max = draw.between(1_000, 20_000);
                drawn.push(format!("{n} crashes (down up to {down_max} ms)"));
                for _ in 0..n {
                    let t = window(draw);
                    events.push(at(t, Fault::Crash(random_target(config, draw))));
                    events.push(at(t + draw.between(500, down_max), Fault::RestartAll));
                }
            }
            "partitions" => {
                let n = draw.between(1, 3);
                let length_max = draw.between(5_000, 45_000);
                drawn.push(format!("{n} partitions (up to {length_max} ms)"));
                for _ in 0..n {
                    let t = window(draw);
                    let p = random_partition(config, draw);
                    let b = random_broker(config, draw);
                    let ctl = || LinkSet::Nodes(vec![NodeId::Controller]);
                    let (from, to, one_way) = match draw.below(6) {
                        0 => (
                            LinkSet::Nodes(vec![NodeId::Broker(b)]),
                            LinkSet::Rest,
                            false,
                        ),
                        1 => (ctl(), LinkSet::Rest, false),
                        2 => (LinkSet::LeaderOf(p), LinkSet::Rest, true),
                        3 => (LinkSet::Rest, LinkSet::LeaderOf(p), true),
                        4 => (LinkSet::LeaderAndFollowerOf(p), LinkSet::Rest, false),
                        // The leader loses only the controller: its followers still
                        // see both sides, a bridge between them.
                        _ => (
                            LinkSet::LeaderOf(p),
                            LinkSet::Nodes(vec![NodeId::Controller]),
                            false,
                        ),
                    };
                    events.push(at(t, Fault::Partition { from, to, one_way }));
                    events.push(at(t + draw.between(1_000, length_max), Fault::HealNetwork));
                }
            }
            "pauses" => {
                let n = draw.between(1, 3);
                let pause_max = draw.between(1_000, 20_000);
                drawn.push(format!("{n} pauses (up to {pause_max} ms)"));
                for _ in 0..n {
                    events.push(at(
                        window(draw),
                        Fault::Pause(random_target(config, draw), draw.between(200, pause_max)),
                    ));
                }
            }
            "slow-links" => {
                let extra = draw.between(50, config.replica_lag_time_max_ms + 10_000);
                drawn.push(format!("slow replication links (+{extra} ms)"));
                let t = window(draw);
                let p = random_partition(config, draw);
                events.push(at(
                    t,
                    Fault::SlowLinks(Target::FollowerOf(p, draw.below(2) as u32), extra),
                ));
                events.push(at(t + draw.between(5_000, 45_000), Fault::HealNetwork));
            }
            "stalled-failover" => {
                // A follower stalls (GC) just as the leader dies and comes straight
                // back: the new leader's HW cannot pass the start of its epoch while
                // the stalled follower is still in the ISR, and the old leader rejoins
                // meanwhile (KIP-101's rule for ISR expansion is tested here).
                let t = window(draw);
                let p = random_partition(config, draw);
                drawn.push("a failover while a follower stalls".to_string());
                events.push(at(
                    t,
                    Fault::Pause(Target::FollowerOf(p, 1), draw.between(3_000, 15_000)),
                ));
                events.push(at(
                    t + draw.between(0, 1_000),
                    Fault::Crash(Target::LeaderOf(p)),
                ));
                events.push(at(t + draw.between(1_500, 4_000), Fault::RestartAll));
            }
            "lossy-network" => {
                let drop_per_million = draw.between(100, 20_000);
                let duplicate_per_million = draw.between(0, 20_000);
                let reorder = draw.chance(1, 2);
                drawn.push(format!(
                    "lossy network ({drop_per_million} ppm lost, {duplicate_per_million} ppm duplicated{})",
                    if reorder { ", reordered" } else { "" }
                ));
                let t = window(draw);
                events.push(at(
                    t,
                    Fault::Degrade {
                        drop_per_million,
                        duplicate_per_million,
                        reorder,
                    },
                ));
                events.push(at(t + draw.between(5_000, 30_000), Fault::HealNetwork));
            }
            _ => {
                drawn.push("a power outage".to_string());
                let t = window(draw);
                events.push(at(t, Fault::CrashAll));
                events.push(at(t + draw.between(1_000, 10_000), Fault::RestartAll));
            }
        }
    }
    events.push(at(
        0,
        Fault::Announce(format!("swarm: {}", drawn.join("; "))),
    ));
    events
}

/// KIP-98's idempotent producer under retries: the network loses and duplicates
/// messages from early on (a lost Produce response makes the producer retry a batch
/// the leader already appended; a duplicated request arrives twice), and episodes drawn
/// from the seed add to it: slowed replication links of a leader (its `acks=all`
/// responses come after the producer's `request.timeout.ms`, so it retries while the
/// batch is still pending), a crash and restart of a leader, or a leader cut off from
/// everyone (batches in flight to it are retried on the new leader). After every
/// `HealNetwork` that ends an episode, the lossy network is put back. With five
/// requests in flight per partition, the retry of the oldest batch races the later
/// ones: only the leader's sequence check keeps it from landing twice or out of order.
fn idempotent_retry(config: &Config, phases: &Phases, draw: &mut dyn Draw) -> Vec<FaultEvent> {
    let drop_per_million = draw.between(5_000, 30_000);
    let duplicate_per_million = draw.between(1_000, 20_000);
    let lossy = move || Fault::Degrade {
        drop_per_million,
        duplicate_per_million,
        reorder: false,
    };
    let mut events = vec![
        at(
            0,
            Fault::Announce(format!(
                "lossy network throughout the faults: {drop_per_million} ppm lost, {duplicate_per_million} ppm duplicated"
            )),
        ),
        at(draw.between(1_000, 3_000), lossy()),
    ];
    let end = phases.heal_at.as_ms().saturating_sub(5_000);
    let mut t = draw.between(4_000, 8_000);
    while t < end {
        let p = random_partition(config, draw);
        let length = match draw.below(3) {
            0 => {
                let extra = draw.between(500, 2_500);
                let length = draw.between(4_000, 12_000);
                events.push(at(t, Fault::SlowLinks(Target::LeaderOf(p), extra)));
                events.push(at(t + length, Fault::HealNetwork));
                events.push(at(t + length, lossy()));
                length
            }
            1 => {
                let down = draw.between(1_000, 8_000);
                events.push(at(t, Fault::Crash(Target::LeaderOf(p))));
                events.push(at(t + down, Fault::RestartAll));
                // Time for the restarted broker to catch up and rejoin the ISRs before
                // the next episode (min.insync.replicas=2 tolerates one broker out).
                down + draw.between(4_000, 8_000)
            }
            _ => {
                // Shorter or longer than the broker session (9 s): the producer's
                // retries go back to the same leader, or to a new one.
                let length = draw.between(2_000, config.broker_session_timeout_ms + 6_000);
                events.push(at(
                    t,
                    Fault::Partition {
                        from: LinkSet::LeaderOf(p),
                        to: LinkSet::Rest,
                        one_way: false,
                    },
                ));
                events.push(at(t + length, Fault::HealNetwork));
                events.push(at(t + length, lossy()));
                length
            }
        };
        t += length + draw.between(2_000, 6_000);
    }
    events
}

/// Transactions add one allowance to the configuration's: Kafka does not isolate
/// writes, so two transactions writing the same partitions interleave, in contradictory
/// orders on different partitions (a write cycle, Adya's G0; `invariants.md`).
fn transaction_allowances(config: &Config) -> Vec<Allowed> {
    let mut v = config_allowances(config);
    v.push(Allowed {
        kind: "G0",
        reason: "Kafka transactions do not isolate writes: concurrent transactions' writes to the same partitions interleave in any order",
    });
    v
}

/// The payments pipeline of the design guide: 3 `orders` partitions written by
/// idempotent producers, 3 `processed-orders` partitions, and the two internal topics
/// (2 partitions each, RF 3, min ISR 2). Consumers of the check read `read_committed`.
/// `transaction.timeout.ms` is 10 s instead of Kafka's 60 s so that a stalled instance
/// outlives its transaction within the 40 s fault phase.
fn exactly_once_config() -> Config {
    Config {
        output_partitions: 3,
        transaction_state_partitions: 2,
        offsets_topic_partitions: 2,
        read_committed: true,
        transaction_timeout_ms: 10_000,
        request_timeout_ms: 5_000,
        ..Config::default()
    }
}

/// Two app instances (slots), each owning input partitions of its slot.
fn exactly_once_workload() -> Workload {
    Workload {
        apps: 2,
        ..Workload::default()
    }
}

/// Episodes, one at a time: a broker crash (any partition's leader, internal topics
/// included, so coordinators move); an app instance crash and restart; a stall longer
/// than `transaction.timeout.ms` (the coordinator aborts and fences it); a shorter stall
/// during which a replacement takes the slot (the stalled one returns as a zombie),
/// striking at once, or just before the instance commits its offsets or its
/// transaction (the windows KIP-447's generation fence and `RequireStable` guard).
/// Replacements reuse the slot's `transactional.id` (fenced by InitProducerId) or take a
/// fresh one (fenced only by the group generation, KIP-447), drawn per episode.
fn exactly_once(config: &Config, phases: &Phases, draw: &mut dyn Draw) -> Vec<FaultEvent> {
    let mut events = Vec::new();
    let end = phases.heal_at.as_ms().saturating_sub(4_000);
    let slots = 2;
    let mut t = draw.between(3_000, 6_000);
    while t < end {
        let slot = draw.below(slots) as u32;
        let fresh_transactional_id = draw.chance(1, 2);
        let length = match draw.below(4) {
            0 => {
                let p = PartitionId(draw.below(u64::from(config.total_partitions())) as u32);
                let down = draw.between(1_000, 6_000);
                events.push(at(t, Fault::Crash(Target::LeaderOf(p))));
                events.push(at(t + down, Fault::RestartAll));
                down + draw.between(4_000, 8_000)
            }
            1 => {
                let restart_after_ms = draw.between(300, 5_000);
                events.push(at(
                    t,
                    Fault::AppCrash {
                        slot,
                        restart_after_ms,
                        fresh_transactional_id,
                    },
                ));
                restart_after_ms + draw.between(2_000, 5_000)
            }
            2 => {
                let ms = config.transaction_timeout_ms + draw.between(1_000, 8_000);
                events.push(at(
                    t,
                    Fault::AppStall {
                        slot,
                        ms,
                        when: StallWhen::Now,
                        replace_after_ms: None,
                        fresh_transactional_id,
                    },
                ));
                ms + draw.between(1_000, 4_000)
            }
            _ => {
                let ms = draw.between(2_000, 9_000);
                let replace_after_ms = draw.between(200, ms / 2);
                let when = match draw.below(3) {
                    0 => StallWhen::Now,
                    1 => StallWhen::BeforeOffsetCommit,
                    _ => StallWhen::BeforeCommit,
                };
                events.push(at(
                    t,
                    Fault::AppStall {
                        slot,
                        ms,
                        when,
                        replace_after_ms: Some(replace_after_ms),
                        fresh_transactional_id,
                    },
                ));
                ms + draw.between(1_000, 4_000)
            }
        };
        t += length;
    }
    events
}

/// As `exactly-once`, with `delivery.timeout.ms` = `request.timeout.ms` = 2 s: a
/// produce request that gets no answer in 2 s expires its batch, and the application
/// aborts the transaction while the request may still be on its way (Kafka allows
/// `delivery.timeout.ms` down to `linger.ms + request.timeout.ms`).
fn hanging_transaction_config() -> Config {
    Config {
        request_timeout_ms: 2_000,
        delivery_timeout_ms: 2_000,
        ..exactly_once_config()
    }
}

/// Every 3-7 s, one app slot's next produce request is held 2.5-12 s: longer than its
/// time-out, so the transaction is aborted first, and it arrives after the abort
/// marker, just ahead of the producer's next write to that partition. In one episode
/// in three the instance crashes just after that abort and its replacement takes a
/// fresh `transactional.id`, and the request is held for its whole time: nothing of the
/// old producer id follows the held write, so if it were appended its transaction
/// would never end.
fn hanging_transaction(config: &Config, phases: &Phases, draw: &mut dyn Draw) -> Vec<FaultEvent> {
    let mut events = Vec::new();
    let end = phases.heal_at.as_ms().saturating_sub(4_000);
    let mut t = draw.between(2_000, 4_000);
    while t < end {
        let slot = draw.below(2) as u32;
        let ms = draw.between(2_500, 12_000);
        let crash = draw.chance(1, 3);
        events.push(at(
            t,
            Fault::DelayAppProduce {
                slot,
                ms,
                release_with_next: !crash,
            },
        ));
        if crash {
            let after_abort = config.request_timeout_ms + draw.between(300, 600);
            events.push(at(
                t + after_abort,
                Fault::AppCrash {
                    slot,
                    restart_after_ms: draw.between(500, 2_000),
                    fresh_transactional_id: true,
                },
            ));
        }
        t += draw.between(3_000, 7_000);
    }
    events
}

/// Every record is its own batch (`linger.ms=0`, Kafka's default before 4.0), so the
/// sends of one operation to a partition are separate batches in flight together and a
/// reordering of batches shows in the history. `request.timeout.ms` is 3 s instead of
/// Kafka's 30 s so that a lost response is retried within the 40 s fault phase (many
/// times per run), and a slowed `acks=all` response outlasts it.
/// `replica.socket.timeout.ms` is 3 s too: the lossy network also loses follower
/// fetches, and with Kafka's 30 s every lost fetch would hold a partition's high
/// watermark (and every `acks=all` write to it) for half the fault phase.
fn idempotent_retry_config() -> Config {
    Config {
        linger_ms: 0,
        request_timeout_ms: 3_000,
        replica_socket_timeout_ms: 3_000,
        ..Config::default()
    }
}

/// Enough concurrency for several batches of one producer to be in flight to a
/// partition at once: six processes per producer, sending often, up to four records
/// per operation.
fn idempotent_retry_workload() -> Workload {
    Workload {
        producer_threads: 6,
        send_interval_ms: 20,
        sends_per_op_max: 4,
        ..Workload::default()
    }
}

fn chaos_config() -> Config {
    Config {
        log_flush_interval_messages: Some(1),
        ..Config::default()
    }
}

fn power_outage(_: &Config, _: &Phases, draw: &mut dyn Draw) -> Vec<FaultEvent> {
    let t = draw.between(10_000, 30_000);
    vec![
        at(t, Fault::CrashAll),
        at(t + draw.between(2_000, 10_000), Fault::RestartAll),
    ]
}

/// Producers give up within the outage (Kafka's 120 s `delivery.timeout.ms` would
/// outlast it), so the history shows the refused sends as failed operations.
fn min_isr_config() -> Config {
    Config {
        request_timeout_ms: 5_000,
        delivery_timeout_ms: 10_000,
        ..Config::default()
    }
}

fn unclean_config() -> Config {
    Config {
        unclean_leader_election_enable: true,
        // With min.insync.replicas=2 an ISR of one acknowledges nothing, so unclean
        // election could only lose unacknowledged writes; the classic loss needs 1.
        min_insync_replicas: 1,
        // Shrink the ISR within the run (the default 30 s would need a longer phase).
        replica_lag_time_max_ms: 10_000,
        ..Config::default()
    }
}

fn power_outage_allowed(config: &Config) -> Vec<Allowed> {
    let mut v = data_loss("every broker crashes at once: unflushed tails are lost on every replica, beyond what replication tolerates");
    for a in config_allowances(config) {
        if !v.iter().any(|x| x.kind == a.kind) {
            v.push(a);
        }
    }
    v
}

/// The design guide's consumer group: `orders` consumed by one group whose members
/// process each batch (20 ms per record, `max.poll.records=50`), with
/// `__consumer_offsets` (and, for `commit=transactional`, the transaction topics and
/// `processed-orders`). Kafka's pre-3.0 `session.timeout.ms=10000` so that a crashed
/// member is noticed within the fault phase, `max.poll.interval.ms=10000`;
/// `auto.offset.reset=earliest`. Every
/// append is flushed (`log.flush.interval.messages=1`, as in `chaos`): the group
/// coordinator's broker crashes again and again, and two replicas losing their
/// unflushed tails in quick succession lose committed records (KIP-966's "last replica
/// standing"), which is `power-outage`'s subject, not this one's.
fn group_config() -> Config {
    Config {
        log_flush_interval_messages: Some(1),
        session_timeout_ms: 10_000,
        heartbeat_interval_ms: 3_000,
        // Also the rebalance time-out: a member that crashes while the group
        // rebalances holds the join phase up this long (Kafka's 300 s would stall the
        // group for the whole fault phase).
        max_poll_interval_ms: 10_000,
        max_poll_records: 50,
        auto_offset_reset: OffsetReset::Earliest,
        ..exactly_once_config()
    }
}

fn group_workload(members: u32, static_members: u32) -> Workload {
    Workload {
        group_consumers: members,
        static_members,
        processing_ms_per_record: 20,
        ..Workload::default()
    }
}

/// What each commit strategy may show when a member crashes mid-batch (trap 4).
fn group_allowances(config: &Config) -> Vec<Allowed> {
    let mut v = match config.commit {
        CommitStrategy::Transactional => return transaction_allowances(config),
        _ => config_allowances(config),
    };
    v.push(Allowed {
        kind: "redelivered",
        reason: "at-least-once: a member that crashed (or lost its partition) after processing records but before committing them leaves them to the next owner, which processes them again",
    });
    if config.commit == CommitStrategy::Auto {
        v.push(Allowed {
            kind: "uncommitted-gap",
            reason: "enable.auto.commit=true commits what poll() returned every auto.commit.interval.ms, processed or not: a member that crashes after such a commit and before processing loses those records (at-most-once)",
        });
    }
    v
}

/// The group's coordinator: the leader of its `__consumer_offsets` partition.
fn group_coordinator(config: &Config) -> Target {
    Target::LeaderOf(config.consumer_offsets_partition(GroupId(0)))
}

/// Every 2-6 s one member crashes (a new instance starts 0.5-4 s later), most often in
/// the middle of processing a batch, since processing is most of its time; now and then
/// the group coordinator's broker crashes instead (the coordinator moves).
fn consumer_crash_mid_batch(
    config: &Config,
    phases: &Phases,
    draw: &mut dyn Draw,
) -> Vec<FaultEvent> {
    let mut events = Vec::new();
    let end = phases.heal_at.as_ms().saturating_sub(4_000);
    let mut t = draw.between(4_000, 6_000);
    while t < end {
        if draw.chance(1, 6) {
            let down = draw.between(1_000, 4_000);
            events.push(at(t, Fault::Crash(group_coordinator(config))));
            events.push(at(t + down, Fault::RestartAll));
        } else {
            events.push(at(
                t,
                Fault::AppCrash {
                    slot: draw.below(3) as u32,
                    restart_after_ms: draw.between(500, 4_000),
                    fresh_transactional_id: false,
                },
            ));
        }
        t += draw.between(2_000, 6_000);
    }
    events
}

/// `rebalance`: four members, the first two static (KIP-345), `cooperative-sticky`
/// unless `partition.assignment.strategy` says otherwise, manual commits;
/// `max.poll.interval.ms=8000` (also the rebalance time-out).
fn rebalance_config() -> Config {
    Config {
        partition_assignment_strategy: Assignor::CooperativeSticky,
        commit: CommitStrategy::Manual,
        max_poll_interval_ms: 8_000,
        ..group_config()
    }
}

/// Episodes, one at a time, every 2-6 s: a member leaves cleanly and a new one joins
/// later; a member crashes and restarts; a batch outlasts `max.poll.interval.ms`; a
/// member stalls (GC) past `session.timeout.ms` and comes back a zombie, for a static
/// slot with a replacement started meanwhile; the group coordinator's broker crashes.
fn rebalance(config: &Config, phases: &Phases, draw: &mut dyn Draw) -> Vec<FaultEvent> {
    let mut events = Vec::new();
    let end = phases.heal_at.as_ms().saturating_sub(4_000);
    let mut t = draw.between(5_000, 7_000);
    while t < end {
        let slot = draw.below(4) as u32;
        let fault = match draw.below(6) {
            0 => Fault::AppClose {
                slot,
                restart_after_ms: Some(draw.between(1_000, 6_000)),
            },
            1 => Fault::AppCrash {
                slot,
                restart_after_ms: draw.between(500, 6_000),
                fresh_transactional_id: false,
            },
            2 => Fault::AppSlowBatch {
                slot,
                ms: config.max_poll_interval_ms + draw.between(500, 4_000),
            },
            3 => Fault::AppStall {
                slot,
                ms: config.session_timeout_ms + draw.between(500, 4_000),
                when: StallWhen::Now,
                replace_after_ms: None,
                fresh_transactional_id: false,
            },
            4 => {
                let ms = draw.between(3_000, 9_000);
                Fault::AppStall {
                    slot: draw.below(2) as u32,
                    ms,
                    when: StallWhen::Now,
                    replace_after_ms: Some(draw.between(200, ms / 2)),
                    fresh_transactional_id: false,
                }
            }
            _ => {
                let down = draw.between(1_000, 4_000);
                events.push(at(t + down, Fault::RestartAll));
                Fault::Crash(group_coordinator(config))
            }
        };
        events.push(at(t, fault));
        t += draw.between(2_000, 6_000);
    }
    events
}

/// Every scenario, in `--list-scenarios` order.
pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "broker-failure",
            description: "random hard crashes and restarts of brokers, leaders included, or a failover with lagging follower high watermarks (KAFKA-7128): failover from the ISR loses no acknowledged write",
            config: Config::default(),
            workload: Workload::default(),
            network: NetworkSpec::default(),
            phases: phases(40_000),
            faults: broker_failure,
            allowed: config_allowances,
        },
        Scenario {
            name: "network-partition",
            description: "the leader isolated from followers and controller, symmetric and one-way, or a zombie follower deaf to the controller (KAFKA-6880): no split brain, no loss",
            config: Config::default(),
            workload: Workload::default(),
            // Besides the partitions, the odd message is lost or delivered twice.
            network: NetworkSpec { drop_per_million: 500, duplicate_per_million: 500, ..NetworkSpec::default() },
            phases: phases(60_000),
            faults: network_partition,
            allowed: config_allowances,
        },
        Scenario {
            name: "slow-follower",
            description: "one follower's replication slowed past replica.lag.time.max.ms, then restored: ISR shrink and re-expansion",
            config: Config::default(),
            workload: Workload::default(),
            network: NetworkSpec::default(),
            phases: phases(55_000),
            faults: slow_follower,
            allowed: config_allowances,
        },
        Scenario {
            name: "min-isr-unavailable",
            description: "two of three replicas down: writes rejected with NOT_ENOUGH_REPLICAS (unavailability instead of loss)",
            config: min_isr_config(),
            workload: Workload::default(),
            network: NetworkSpec::default(),
            phases: phases(40_000),
            faults: min_isr_unavailable,
            allowed: config_allowances,
        },
        Scenario {
            name: "unclean-election",
            description: "ISR shrinks to the leader, the leader dies, unclean.leader.election.enable=true: committed writes lost (allowed, counted)",
            config: unclean_config(),
            workload: Workload::default(),
            network: NetworkSpec::default(),
            phases: phases(45_000),
            faults: unclean_election,
            allowed: config_allowances,
        },
        Scenario {
            name: "controller-failover",
            description: "the active controller crashes during leadership changes and a standby takes over: elections continue, no stale decision is applied",
            config: Config::default(),
            workload: Workload::default(),
            network: NetworkSpec::default(),
            phases: phases(50_000),
            faults: controller_failover,
            allowed: config_allowances,
        },
        Scenario {
            name: "rolling-restart",
            description: "each broker in turn shut down cleanly (controlled shutdown moves leadership first) and restarted: no loss, near-zero unavailability",
            config: Config::default(),
            workload: Workload::default(),
            network: NetworkSpec::default(),
            phases: phases(45_000),
            faults: rolling_restart,
            allowed: config_allowances,
        },
        Scenario {
            name: "chaos",
            description: "swarm: the seed draws the fault mix (crashes, partitions of every shape, pauses, slow links, a lossy network, power outages) and its parameters; every append is flushed, so nothing acknowledged may be lost",
            config: chaos_config(),
            workload: Workload::default(),
            network: NetworkSpec::default(),
            phases: phases(60_000),
            faults: chaos,
            allowed: config_allowances,
        },
        Scenario {
            name: "power-outage",
            description: "every broker crashes at once, losing unsynced tails: loss beyond the fault tolerance, but replicas never diverge",
            config: Config::default(),
            workload: Workload::default(),
            network: NetworkSpec::default(),
            phases: phases(40_000),
            faults: power_outage,
            allowed: power_outage_allowed,
        },
        Scenario {
            name: "idempotent-retry",
            description: "responses lost and delayed, requests duplicated, leaders crashed or cut off; producers retry with 5 requests in flight: no duplicates and order kept (with enable.idempotence=false both are allowed and shown)",
            config: idempotent_retry_config(),
            workload: idempotent_retry_workload(),
            network: NetworkSpec::default(),
            phases: phases(40_000),
            faults: idempotent_retry,
            allowed: config_allowances,
        },
        Scenario {
            name: "exactly-once",
            description: "consume-transform-produce (payments: orders -> processed-orders) with transactions and offsets committed in them; app instances crash, stall past transaction.timeout.ms and come back as zombies beside their replacements; coordinators' brokers crash: every input processed exactly once in committed output",
            config: exactly_once_config(),
            workload: exactly_once_workload(),
            network: NetworkSpec::default(),
            phases: phases(40_000),
            faults: exactly_once,
            allowed: transaction_allowances,
        },
        Scenario {
            name: "exactly-once-alpha",
            description: "exactly-once with Kafka Streams' older processing.guarantee=exactly_once (before KIP-447): one transactional.id per task, offsets committed without group metadata and read without RequireStable; zombies are fenced by the producer epoch alone",
            config: Config {
                exactly_once_v2: false,
                ..exactly_once_config()
            },
            workload: exactly_once_workload(),
            network: NetworkSpec::default(),
            phases: phases(40_000),
            faults: exactly_once,
            allowed: transaction_allowances,
        },
        Scenario {
            name: "hanging-transaction",
            description: "consume-transform-produce whose produce requests are now and then held in the network past their transaction's abort (KIP-890): the last stable offset keeps moving and read_committed consumers never stall",
            config: hanging_transaction_config(),
            workload: exactly_once_workload(),
            network: NetworkSpec::default(),
            phases: phases(40_000),
            faults: hanging_transaction,
            allowed: transaction_allowances,
        },
        Scenario {
            name: "consumer-crash-mid-batch",
            description: "three static group members (group.instance.id) processing batches crash, mostly mid-batch, and restart in their place; --set commit=auto|manual|transactional: auto may lose or duplicate, manual only duplicates, transactional is exactly once (design guide trap 4)",
            config: group_config(),
            workload: group_workload(3, 3),
            network: NetworkSpec::default(),
            phases: phases(40_000),
            faults: consumer_crash_mid_batch,
            allowed: group_allowances,
        },
        Scenario {
            name: "rebalance",
            description: "four group members (two static) leave, join, crash, outlast max.poll.interval.ms and stall into zombies while the coordinator's broker fails; cooperative-sticky by default, eager with --set partition.assignment.strategy=range: no partition owned twice, no zombie commit; rebalance time and unowned partition time measured",
            config: rebalance_config(),
            workload: group_workload(4, 2),
            network: NetworkSpec::default(),
            phases: phases(50_000),
            faults: rebalance,
            allowed: group_allowances,
        },
    ]
}

pub fn by_name(name: &str) -> Option<Scenario> {
    all().into_iter().find(|s| s.name == name)
}
