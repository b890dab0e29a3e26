//! The world: every node, the event queue, network, disk and nemesis, and the loop that
//! drives them. One `World` is one run; nothing in it reads a wall clock or spawns a
//! thread, so the same seed gives the same events in the same order.

use crate::instance::Instance;
use crate::monitors::Monitors;
use crate::network::{Delivery, Network};
use crate::queue::EventQueue;
use crate::recorder::Recorder;
use crate::rng::{SimRng, Stream};
use crate::run::RunStats;
use model::broker::Broker;
use model::client::consumer::Consumer;
use model::client::group_consumer::{GroupConsumer, MemberSpec};
use model::client::producer::{Producer, ProducerWorkload};
use model::client::txn_app::{AppSpec, AppStats, TxnApp};
use model::config::Config;
use model::controller::Controller;
use model::message::Message;
use model::outbox::{DiskCompletion, DiskOp, Note, Outbox, Timer};
use model::types::{BrokerEpoch, BrokerId, ClientId, GroupId, NodeId, PartitionId, SimTime, TxnId};
use scenarios::{Fault, FaultEvent, LinkSet, Phases, Scenario, StallWhen, Target};
use std::collections::BTreeMap;

/// Process ids of application instances: instance k uses `APP_PROCESS_BASE + k`, then
/// `+ APP_PROCESS_STRIDE` after each operation of unknown outcome.
const APP_PROCESS_BASE: u64 = 1 << 20;
const APP_PROCESS_STRIDE: u64 = 1 << 12;

/// Safety valve: a run that needs more events than this has not converged.
pub const MAX_EVENTS: u64 = 20_000_000;
/// How often the drain phase checks for convergence.
const DRAIN_CHECK_MS: u64 = 100;

/// The kinds of trace line (the second column of `--trace`).
#[derive(Clone, Copy)]
enum TraceKind {
    Deliver = 1,
    Timer = 2,
    Disk = 3,
    /// Dropped: the link is cut by a partition.
    Cut = 4,
    /// Dropped: the receiver is down (or a later incarnation).
    Dead = 5,
    Fault = 6,
    /// Lost by the network itself (`drop_per_million`).
    Lost = 7,
}

impl TraceKind {
    fn name(self) -> &'static str {
        match self {
            TraceKind::Deliver => "deliver",
            TraceKind::Timer => "timer",
            TraceKind::Disk => "disk",
            TraceKind::Cut => "cut",
            TraceKind::Dead => "dead",
            TraceKind::Fault => "fault",
            TraceKind::Lost => "lost",
        }
    }
}

enum Event {
    Deliver {
        from: NodeId,
        to: NodeId,
        incarnation: u64,
        /// Boxed so the queue moves small entries.
        msg: Box<Message>,
    },
    Timer {
        node: NodeId,
        incarnation: u64,
        timer: Timer,
    },
    Disk {
        broker: BrokerId,
        incarnation: u64,
        completion: DiskCompletion,
    },
    Fault(usize),
    Resume(BrokerId),
    Heal,
    /// A standby controller takes over after the active one crashed.
    ControllerTakeover,
    /// A new instance of an application slot starts.
    StartApp {
        slot: u32,
        fresh_transactional_id: bool,
    },
    StopProducers,
    /// An application instance's held produce request leaves (`DelayAppProduce`).
    ReleaseHeld(usize),
    DrainCheck,
}

/// Per-node liveness bookkeeping.
#[derive(Clone, Copy, Debug, Default)]
struct NodeLife {
    incarnation: u64,
    down: bool,
    paused_until: Option<SimTime>,
}

pub struct World {
    pub config: Config,
    now: SimTime,
    queue: EventQueue<Event>,
    network: Network,
    disk_rng: SimRng,
    disk_latency_us: BTreeMap<BrokerId, (u64, u64)>,
    disk_last: BTreeMap<BrokerId, SimTime>,
    pub brokers: Vec<Broker>,
    broker_life: Vec<NodeLife>,
    controller_life: NodeLife,
    pub controller: Controller,
    pub producers: Vec<Producer>,
    pub consumers: Vec<Consumer>,
    /// Every application instance ever started (consume-transform-produce or group
    /// consumer), in start order (client ids follow the consumers'), with its liveness.
    pub apps: Vec<Instance>,
    app_life: Vec<NodeLife>,
    /// The current instance of each application slot.
    app_slots: Vec<usize>,
    /// Per instance: the hold of its next Produce request (`DelayAppProduce`): ms, and
    /// whether its next request to the same partition releases it.
    produce_delay_ms: BTreeMap<usize, (u64, bool)>,
    /// Per instance: its held produce request (receiver, request, the partition whose
    /// next request releases it).
    held_produces: BTreeMap<usize, (NodeId, Message, Option<PartitionId>)>,
    /// Per instance: a stall (ms) armed to strike when it sends the request `when` names.
    armed_stalls: BTreeMap<usize, (StallWhen, u64)>,
    app_poll_interval_ms: u64,
    /// Slots below this run the transactional application; the others group consumers.
    txn_slots: u32,
    /// Group consumer slots (after the transactional ones) below this are static members.
    static_members: u32,
    processing_ms_per_record: u64,
    /// Seeds the instances' random streams (instance k: mixed with k).
    app_seed: u64,
    stopping: bool,
    faults: Vec<FaultEvent>,
    phases: Phases,
    pub recorder: Recorder,
    pub monitors: Monitors,
    pub stats: RunStats,
    pub events: u64,
    trace_hash: u64,
    pub trace: Option<Vec<String>>,
    outbox: Outbox,
    keys: Vec<String>,
    /// Per partition: when its leader was lost (for failover time) / went offline.
    leader_lost_at: BTreeMap<PartitionId, SimTime>,
    offline_since: BTreeMap<PartitionId, SimTime>,
    /// Per partition: the first NOT_ENOUGH_REPLICAS refusal since its last ack.
    refused_since: BTreeMap<PartitionId, SimTime>,
    pub finished: Option<Result<(), String>>,
    /// The `injected-panic` test switch: panic at this event (on every third seed).
    injected_panic_at: Option<u64>,
}

/// Which `transactional.id` a new application instance takes, for the timeline.
fn id_text(fresh: bool) -> &'static str {
    if fresh {
        " with a fresh transactional.id"
    } else {
        " with the slot's transactional.id"
    }
}

fn broker_list(brokers: &[BrokerId]) -> String {
    let names: Vec<String> = brokers.iter().map(|b| b.to_string()).collect();
    format!("[{}]", names.join(","))
}

fn mix(h: u64, x: u64) -> u64 {
    (h ^ x).wrapping_mul(0x0100_0000_01B3).rotate_left(31) ^ 0x9E37_79B9_7F4A_7C15
}

fn mix_str(mut h: u64, s: &str) -> u64 {
    for b in s.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
    }
    h
}

fn node_code(n: NodeId) -> u64 {
    match n {
        NodeId::Broker(b) => u64::from(b.0),
        NodeId::Controller => 1 << 20,
        NodeId::Client(c) => (2 << 20) + u64::from(c.0),
    }
}

impl World {
    pub fn new(
        seed: u64,
        config: Config,
        scenario: &Scenario,
        faults: Vec<FaultEvent>,
        keep_trace: bool,
    ) -> World {
        let workload = &scenario.workload;
        let phases = scenario.phases;
        let network = scenario.network;
        let keys: Vec<String> = config.partition_table().iter().map(|s| s.key()).collect();
        let mut disk_rng = SimRng::stream(seed, Stream::Disk);
        let brokers: Vec<Broker> = (0..config.brokers)
            .map(|b| Broker::new(BrokerId(b), &config))
            .collect();
        let disk_latency_us = (0..config.brokers)
            .map(|b| {
                let lo = disk_rng.between(500, 2_000);
                (BrokerId(b), (lo, lo * 4))
            })
            .collect();
        let total_threads =
            u64::from(workload.producers * workload.producer_threads + workload.consumers);
        let mut client_seeds = SimRng::stream(seed, Stream::Client);
        let mut producers = Vec::new();
        for i in 0..workload.producers {
            let w = ProducerWorkload {
                threads: workload.producer_threads,
                send_interval_ms: workload.send_interval_ms,
                sends_per_op_max: workload.sends_per_op_max,
                keyed: workload.keyed,
                customers: workload.customers,
                value_stride: u64::from(workload.producers),
                value_offset: u64::from(i),
                process_base: u64::from(i * workload.producer_threads),
                process_stride: total_threads,
            };
            producers.push(Producer::new(
                ClientId(i),
                &config,
                w,
                client_seeds.next_u64(),
            ));
        }
        let mut consumers = Vec::new();
        for j in 0..workload.consumers {
            let assigned: Vec<PartitionId> = config
                .partition_ids()
                .filter(|&p| !config.is_internal(p) && p.0 % workload.consumers == j)
                .collect();
            let process = u64::from(workload.producers * workload.producer_threads + j);
            consumers.push(Consumer::new(
                ClientId(workload.producers + j),
                &config,
                assigned,
                process,
                workload.poll_interval_ms,
                client_seeds.next_u64(),
            ));
        }
        let app_seed = client_seeds.next_u64();
        let txn_slots = workload.txn_slots(&config);
        let network = Network::new(network, SimRng::stream(seed, Stream::Network));
        let injected_panic_at = (seed.is_multiple_of(3)
            && config.has_bug(model::bug::Bug::InjectedPanic))
        .then_some(1_000);
        World {
            controller: Controller::new(&config),
            broker_life: vec![NodeLife::default(); brokers.len()],
            controller_life: NodeLife::default(),
            brokers,
            recorder: Recorder::new(keys.clone()),
            monitors: Monitors::new(keys.clone(), &config),
            config,
            now: SimTime::ZERO,
            queue: EventQueue::new(),
            network,
            disk_rng,
            disk_latency_us,
            disk_last: BTreeMap::new(),
            producers,
            consumers,
            apps: Vec::new(),
            app_life: Vec::new(),
            app_slots: vec![usize::MAX; (workload.apps + workload.group_consumers) as usize],
            txn_slots,
            static_members: workload.static_members,
            processing_ms_per_record: workload.processing_ms_per_record,
            produce_delay_ms: BTreeMap::new(),
            held_produces: BTreeMap::new(),
            armed_stalls: BTreeMap::new(),
            app_poll_interval_ms: workload.poll_interval_ms,
            app_seed,
            stopping: false,
            faults,
            phases,
            stats: RunStats::default(),
            events: 0,
            trace_hash: 0xcbf2_9ce4_8422_2325,
            trace: keep_trace.then(Vec::new),
            outbox: Outbox::default(),
            keys,
            leader_lost_at: BTreeMap::new(),
            offline_since: BTreeMap::new(),
            refused_since: BTreeMap::new(),
            finished: None,
            injected_panic_at,
        }
    }

    pub fn now(&self) -> SimTime {
        self.now
    }

    pub fn trace_hash(&self) -> u64 {
        self.trace_hash
    }

    /// Schedule the start of every node, the faults and the phases.
    pub fn start(&mut self) {
        self.with_outbox(NodeId::Controller, |w, out| {
            w.controller.start(SimTime::ZERO, out)
        });
        for b in 0..self.brokers.len() {
            self.start_broker(BrokerId(b as u32));
        }
        for i in 0..self.producers.len() {
            let id = self.producers[i].id;
            self.with_outbox(NodeId::Client(id), |w, out| {
                w.producers[i].start(SimTime::ZERO, out)
            });
        }
        for i in 0..self.consumers.len() {
            let id = self.consumers[i].id;
            self.with_outbox(NodeId::Client(id), |w, out| {
                w.consumers[i].start(SimTime::ZERO, out)
            });
        }
        for slot in 0..self.app_slots.len() as u32 {
            self.start_app(slot, false);
        }
        for i in 0..self.faults.len() {
            let at = self.faults[i].at;
            self.queue.push(at, Event::Fault(i));
        }
        self.queue.push(self.phases.heal_at, Event::Heal);
        self.queue
            .push(self.phases.stop_producers_at, Event::StopProducers);
    }

    fn start_broker(&mut self, b: BrokerId) {
        let life = &mut self.broker_life[b.0 as usize];
        life.incarnation += 1;
        life.down = false;
        life.paused_until = None;
        let epoch = BrokerEpoch(life.incarnation);
        let now = self.now;
        self.with_outbox(NodeId::Broker(b), |w, out| {
            w.brokers[b.0 as usize].start(now, epoch, out)
        });
    }

    /// The first client id of the application instances.
    fn app_base(&self) -> u32 {
        (self.producers.len() + self.consumers.len()) as u32
    }

    /// The application instance behind a client id, if it is one.
    fn app_index(&self, c: ClientId) -> Option<usize> {
        c.0.checked_sub(self.app_base())
            .map(|k| k as usize)
            .filter(|&k| k < self.apps.len())
    }

    /// Start a new instance of application `slot`: a transactional instance joins the
    /// group as the slot's static member, so it takes the slot over; a group consumer
    /// joins as the slot's static member or as a new dynamic member.
    fn start_app(&mut self, slot: u32, fresh_transactional_id: bool) {
        let k = self.apps.len();
        let id = ClientId(self.app_base() + k as u32);
        let seed = mix(self.app_seed, k as u64);
        let mut app = if slot < self.txn_slots {
            let spec = AppSpec {
                group: GroupId(0),
                slot,
                slots: self.txn_slots,
                // Kafka Streams' `exactly_once` has one transactional.id per task:
                // always the slot's.
                transactional_id: if fresh_transactional_id && self.config.exactly_once_v2 {
                    TxnId(1_000 + k as u32)
                } else {
                    TxnId(slot)
                },
                poll_interval_ms: self.app_poll_interval_ms,
                process_base: APP_PROCESS_BASE + k as u64,
                process_stride: APP_PROCESS_STRIDE,
                value_base: (k as u64 + 1) << 40,
            };
            Instance::Txn(TxnApp::new(id, &self.config, spec, seed))
        } else {
            let spec = MemberSpec {
                group: GroupId(0),
                instance: (slot - self.txn_slots < self.static_members).then_some(slot),
                processing_ms_per_record: self.processing_ms_per_record,
                poll_interval_ms: self.app_poll_interval_ms,
                process_base: APP_PROCESS_BASE + k as u64,
                process_stride: APP_PROCESS_STRIDE,
            };
            Instance::Member(GroupConsumer::new(id, &self.config, spec, seed))
        };
        if self.stopping {
            app.stop();
        }
        self.apps.push(app);
        self.app_life.push(NodeLife::default());
        self.app_slots[slot as usize] = k;
        let now = self.now;
        self.with_outbox(NodeId::Client(id), |w, out| w.apps[k].start(now, out));
    }

    /// The current instance of application `slot`, unless it crashed.
    fn live_app(&self, slot: u32) -> Option<usize> {
        let &k = self.app_slots.get(slot as usize)?;
        (!self.app_life[k].down).then_some(k)
    }

    /// What the application instances did, summed.
    pub fn app_stats(&self) -> AppStats {
        self.apps
            .iter()
            .filter_map(Instance::txn)
            .fold(AppStats::default(), |sum, app| sum.plus(app.stats))
    }

    fn incarnation(&self, node: NodeId) -> u64 {
        match node {
            NodeId::Broker(b) => self.broker_life[b.0 as usize].incarnation,
            NodeId::Controller => self.controller_life.incarnation,
            NodeId::Client(_) => 0,
        }
    }

    fn is_down(&self, node: NodeId) -> bool {
        match node {
            NodeId::Broker(b) => self.broker_life[b.0 as usize].down,
            NodeId::Controller => self.controller_life.down,
            NodeId::Client(c) => self.app_index(c).is_some_and(|k| self.app_life[k].down),
        }
    }

    /// Run a handler with the shared outbox, then carry out its effects.
    fn with_outbox(&mut self, node: NodeId, f: impl FnOnce(&mut World, &mut Outbox)) {
        let mut out = std::mem::take(&mut self.outbox);
        out.clear();
        f(self, &mut out);
        self.apply(node, &mut out);
        self.outbox = out;
    }

    fn apply(&mut self, node: NodeId, out: &mut Outbox) {
        let incarnation = self.incarnation(node);
        for (to, msg) in out.messages.drain(..) {
            self.stats.messages_sent += 1;
            self.transmit(node, to, msg);
        }
        for (delay, timer) in out.timers.drain(..) {
            self.queue.push(
                self.now.plus(delay),
                Event::Timer {
                    node,
                    incarnation,
                    timer,
                },
            );
        }
        for op in out.disk.drain(..) {
            let NodeId::Broker(b) = node else { continue };
            let DiskOp::Fsync { token } = op;
            let (lo, hi) = self.disk_latency_us[&b];
            let at = self
                .now
                .plus(SimTime::from_us(self.disk_rng.between(lo, hi)));
            let at = at.max(self.disk_last.get(&b).copied().unwrap_or(SimTime::ZERO));
            self.disk_last.insert(b, at);
            self.queue.push(
                at,
                Event::Disk {
                    broker: b,
                    incarnation,
                    completion: DiskCompletion::Fsynced { token },
                },
            );
        }
        for e in out.history.drain(..) {
            self.recorder.record(self.now, &e);
        }
        let from = match node {
            NodeId::Broker(b) => Some(b),
            _ => None,
        };
        let notes: Vec<Note> = out.notes.drain(..).collect();
        for n in notes {
            self.on_note(from, &n);
        }
    }

    fn on_note(&mut self, from: Option<BrokerId>, note: &Note) {
        self.monitors.on_note(self.events, from, note);
        let now = self.now;
        match note {
            Note::LeaderElected {
                partition,
                leader,
                epoch,
                unclean,
                isr,
            } => {
                let what = format!(
                    "leader {} epoch {} ISR {}{}",
                    leader
                        .map(|l| l.to_string())
                        .unwrap_or_else(|| "none".into()),
                    epoch.0,
                    broker_list(isr),
                    if *unclean { " (unclean election)" } else { "" }
                );
                self.stats.partition_log.push((
                    now.as_ms(),
                    self.keys[partition.index()].clone(),
                    what,
                ));
                if epoch.0 > 1 {
                    self.stats.leader_elections += 1;
                }
                if *unclean {
                    self.stats.unclean_elections += 1;
                }
                match leader {
                    Some(_) => {
                        if let Some(t) = self.leader_lost_at.remove(partition) {
                            self.stats.failover_ms.push(now.since(t).as_ms());
                        }
                        if let Some(t) = self.offline_since.remove(partition) {
                            self.stats.unavailable_ms.push(now.since(t).as_ms());
                        }
                    }
                    None => {
                        self.offline_since.entry(*partition).or_insert(now);
                    }
                }
                let key = &self.keys[partition.index()];
                let line = format!(
                    "{key}: leader {} epoch {}{}",
                    leader
                        .map(|l| l.to_string())
                        .unwrap_or_else(|| "none".into()),
                    epoch.0,
                    if *unclean { " (unclean)" } else { "" }
                );
                if epoch.0 > 1 {
                    self.stats.timeline.push((now.as_ms(), line));
                }
            }
            Note::IsrChanged {
                partition,
                isr,
                shrink,
            } => {
                let what = format!(
                    "ISR {} ({})",
                    broker_list(isr),
                    if *shrink { "shrink" } else { "expand" }
                );
                self.stats.partition_log.push((
                    now.as_ms(),
                    self.keys[partition.index()].clone(),
                    what,
                ));
                if *shrink {
                    self.stats.isr_shrinks += 1;
                } else {
                    self.stats.isr_expands += 1;
                }
            }
            Note::Truncated { .. } => self.stats.truncations += 1,
            Note::ProduceRefused { partition } => {
                self.stats.produce_refused += 1;
                self.refused_since.entry(*partition).or_insert(now);
            }
            Note::AckedAll { partition, .. } => {
                if let Some(t) = self.refused_since.remove(partition) {
                    self.stats.write_unavailable_ms.push(now.since(t).as_ms());
                }
            }
            Note::SequenceChecked { duplicate, .. } => {
                if *duplicate {
                    self.stats.batches_deduplicated += 1;
                } else {
                    self.stats.batches_out_of_sequence += 1;
                }
            }
            Note::BrokerFenced { .. } => {}
        }
    }

    /// Pop and handle one event. Returns false when the queue is empty.
    pub fn step(&mut self) -> bool {
        let Some((time, event)) = self.queue.pop() else {
            return false;
        };
        if self.injected_panic_at == Some(self.events) {
            panic!(
                "injected panic (test-only switch injected-panic) at event {}",
                self.events
            );
        }
        debug_assert!(time >= self.now, "time never goes back");
        self.now = time;
        self.events += 1;
        match event {
            Event::Deliver {
                from,
                to,
                incarnation,
                msg,
            } => self.deliver(from, to, incarnation, msg),
            Event::Timer {
                node,
                incarnation,
                timer,
            } => self.fire_timer(node, incarnation, timer),
            Event::Disk {
                broker,
                incarnation,
                completion,
            } => {
                if self.defer_if_paused(NodeId::Broker(broker), || Event::Disk {
                    broker,
                    incarnation,
                    completion,
                }) {
                    return true;
                }
                if incarnation == self.incarnation(NodeId::Broker(broker))
                    && !self.is_down(NodeId::Broker(broker))
                {
                    let node = NodeId::Broker(broker);
                    self.record_event(TraceKind::Disk, node, node, "fsync", || {
                        format!("{completion:?}")
                    });
                    let now = self.now;
                    self.with_outbox(NodeId::Broker(broker), |w, out| {
                        w.brokers[broker.0 as usize].handle_disk(now, completion, out)
                    });
                }
            }
            Event::Fault(i) => self.apply_fault(i),
            Event::ControllerTakeover => {
                self.controller_life.down = false;
                self.controller_life.incarnation += 1;
                let now = self.now;
                self.with_outbox(NodeId::Controller, |w, out| {
                    w.controller.fail_over(now, out)
                });
                let epoch = self.controller.controller_epoch;
                self.record_event(
                    TraceKind::Fault,
                    NodeId::Controller,
                    NodeId::Controller,
                    "takeover",
                    || format!("controller epoch {epoch}"),
                );
                self.stats.timeline.push((
                    now.as_ms(),
                    format!("a standby controller takes over (controller epoch {epoch})"),
                ));
            }
            Event::Resume(b) => {
                let life = &mut self.broker_life[b.0 as usize];
                if life.paused_until.is_some_and(|t| t <= self.now) {
                    life.paused_until = None;
                    let node = NodeId::Broker(b);
                    self.record_event(TraceKind::Fault, node, node, "resume", String::new);
                }
            }
            Event::Heal => self.heal(),
            Event::StartApp {
                slot,
                fresh_transactional_id,
            } => self.start_app(slot, fresh_transactional_id),
            Event::StopProducers => {
                for p in &mut self.producers {
                    p.stop();
                }
                self.stopping = true;
                for app in &mut self.apps {
                    app.stop();
                }
                self.queue
                    .push(self.now.plus_ms(DRAIN_CHECK_MS), Event::DrainCheck);
            }
            Event::ReleaseHeld(k) => self.release_held(k),
            Event::DrainCheck => self.drain_check(),
        }
        true
    }

    /// Every simulated event goes through here: it is folded into the trace hash and,
    /// when a trace is kept, written as one line `time kind from->to what detail`.
    fn record_event(
        &mut self,
        kind: TraceKind,
        from: NodeId,
        to: NodeId,
        what: &str,
        detail: impl FnOnce() -> String,
    ) {
        let mut h = mix(self.trace_hash, self.now.0);
        h = mix(h, kind as u64);
        h = mix(h, node_code(from));
        h = mix(h, node_code(to));
        self.trace_hash = mix_str(h, what);
        if let Some(t) = self.trace.as_mut() {
            t.push(format!(
                "{} {} {from}->{to} {what} {}",
                self.now.0,
                kind.name(),
                detail()
            ));
        }
    }

    /// A paused broker handles nothing until it resumes: push the event to then.
    fn defer_if_paused(&mut self, node: NodeId, event: impl FnOnce() -> Event) -> bool {
        let paused_until = match node {
            NodeId::Broker(b) => self.broker_life[b.0 as usize].paused_until,
            NodeId::Client(c) => self
                .app_index(c)
                .and_then(|k| self.app_life[k].paused_until),
            NodeId::Controller => None,
        };
        match paused_until {
            Some(until) if until > self.now => {
                self.queue.push(until, event());
                true
            }
            _ => false,
        }
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, incarnation: u64, msg: Box<Message>) {
        if self.network.is_blocked(from, to) {
            self.stats.messages_dropped += 1;
            self.record_event(TraceKind::Cut, from, to, msg.api(), String::new);
            return;
        }
        if self.is_down(to) || incarnation != self.incarnation(to) {
            self.stats.messages_dropped += 1;
            self.record_event(TraceKind::Dead, from, to, msg.api(), String::new);
            if let (NodeId::Broker(b), true) = (to, msg.is_request()) {
                // Connection refused: the sender learns at once.
                self.send_disconnect(b, from);
            }
            return;
        }
        if self.defer_if_paused(to, || Event::Deliver {
            from,
            to,
            incarnation,
            msg: msg.clone(),
        }) {
            return;
        }
        self.record_event(TraceKind::Deliver, from, to, msg.api(), || {
            format!("{msg:?}")
        });
        let now = self.now;
        match to {
            NodeId::Broker(b) => {
                self.with_outbox(to, |w, out| {
                    w.brokers[b.0 as usize].handle_message(now, from, *msg, out)
                });
                self.after_broker(b);
            }
            NodeId::Controller => {
                self.with_outbox(to, |w, out| {
                    w.controller.handle_message(now, from, *msg, out)
                });
                self.monitors
                    .after_controller_event(self.events, &self.controller, &self.brokers);
            }
            NodeId::Client(c) => self.client_message(c, from, *msg),
        }
    }

    fn after_broker(&mut self, b: BrokerId) {
        let broker = &self.brokers[b.0 as usize];
        self.monitors.after_broker_event(
            self.events,
            self.now,
            broker,
            &self.brokers,
            &self.controller,
        );
        if broker.ready_to_stop(self.now) {
            self.crash_broker(b, true);
            self.stats
                .timeline
                .push((self.now.as_ms(), format!("{b} shut down cleanly")));
        }
    }

    fn client_message(&mut self, c: ClientId, from: NodeId, msg: Message) {
        let now = self.now;
        let node = NodeId::Client(c);
        let np = self.producers.len() as u32;
        if let Some(k) = self.app_index(c) {
            self.with_outbox(node, |w, out| w.apps[k].handle_message(now, from, msg, out));
        } else if c.0 < np {
            self.with_outbox(node, |w, out| {
                w.producers[c.0 as usize].handle_message(now, from, msg, out)
            });
        } else {
            self.with_outbox(node, |w, out| {
                w.consumers[(c.0 - np) as usize].handle_message(now, from, msg, out)
            });
        }
    }

    fn fire_timer(&mut self, node: NodeId, incarnation: u64, timer: Timer) {
        if self.is_down(node) || incarnation != self.incarnation(node) {
            return;
        }
        if self.defer_if_paused(node, || Event::Timer {
            node,
            incarnation,
            timer,
        }) {
            return;
        }
        self.record_event(TraceKind::Timer, node, node, "timer", || {
            format!("{timer:?}")
        });
        let now = self.now;
        match node {
            NodeId::Broker(b) => {
                self.with_outbox(node, |w, out| {
                    w.brokers[b.0 as usize].handle_timeout(now, timer, out)
                });
                self.after_broker(b);
            }
            NodeId::Controller => {
                self.with_outbox(node, |w, out| w.controller.handle_timeout(now, timer, out));
                self.monitors
                    .after_controller_event(self.events, &self.controller, &self.brokers);
            }
            NodeId::Client(c) => {
                let np = self.producers.len() as u32;
                if let Some(k) = self.app_index(c) {
                    self.with_outbox(node, |w, out| w.apps[k].handle_timeout(now, timer, out));
                } else if c.0 < np {
                    self.with_outbox(node, |w, out| {
                        w.producers[c.0 as usize].handle_timeout(now, timer, out)
                    });
                } else {
                    self.with_outbox(node, |w, out| {
                        w.consumers[(c.0 - np) as usize].handle_timeout(now, timer, out)
                    });
                }
            }
        }
    }

    // ---- the nemesis ----

    fn resolve(&self, t: Target) -> Option<BrokerId> {
        match t {
            Target::Broker(b) => Some(b),
            Target::LeaderOf(p) => self
                .controller
                .partitions
                .get(p.index())
                .and_then(|s| s.leader),
            Target::FollowerOf(p, n) => {
                let s = self.controller.partitions.get(p.index())?;
                let followers: Vec<BrokerId> = s
                    .replicas
                    .iter()
                    .copied()
                    .filter(|&b| Some(b) != s.leader)
                    .collect();
                followers.get(n as usize % followers.len().max(1)).copied()
            }
        }
    }

    fn resolve_set(&self, set: &LinkSet, other: &[NodeId]) -> Vec<NodeId> {
        match set {
            LinkSet::Nodes(n) => n.clone(),
            LinkSet::LeaderOf(p) => self
                .resolve(Target::LeaderOf(*p))
                .map(NodeId::Broker)
                .into_iter()
                .collect(),
            LinkSet::LeaderAndFollowerOf(p) => {
                let mut v: Vec<NodeId> = self
                    .resolve(Target::LeaderOf(*p))
                    .map(NodeId::Broker)
                    .into_iter()
                    .collect();
                if let Some(f) = self.resolve(Target::FollowerOf(*p, 0)) {
                    v.push(NodeId::Broker(f));
                }
                v
            }
            LinkSet::FollowerOf(p, n) => self
                .resolve(Target::FollowerOf(*p, *n))
                .map(NodeId::Broker)
                .into_iter()
                .collect(),
            LinkSet::FollowersOf(p) => match self.controller.partitions.get(p.index()) {
                Some(s) => s
                    .replicas
                    .iter()
                    .copied()
                    .filter(|&b| Some(b) != s.leader)
                    .map(NodeId::Broker)
                    .collect(),
                None => Vec::new(),
            },
            LinkSet::Rest => {
                let mut all: Vec<NodeId> = (0..self.brokers.len() as u32)
                    .map(|b| NodeId::Broker(BrokerId(b)))
                    .collect();
                all.push(NodeId::Controller);
                all.retain(|n| !other.contains(n));
                all
            }
        }
    }

    /// The partitions a broker leads, per the controller (for failover timing).
    fn mark_leader_lost(&mut self, b: BrokerId) {
        for s in &self.controller.partitions {
            if s.leader == Some(b) {
                self.leader_lost_at.entry(s.partition).or_insert(self.now);
            }
        }
    }

    /// Tell `to` that its connection to broker `b` broke (a process that dies closes
    /// its sockets; the peers see the reset after a network delay).
    fn send_disconnect(&mut self, b: BrokerId, to: NodeId) {
        self.transmit(
            NodeId::Broker(b),
            to,
            Message::ConnectionClosed { broker: b },
        );
    }

    /// Put a message on the network: lost, delivered once, or (rarely) twice.
    fn transmit(&mut self, from: NodeId, to: NodeId, msg: Message) {
        let delay = match (from, &msg) {
            (NodeId::Client(c), Message::Produce { batches, .. }) => {
                let Some(k) = self.app_index(c) else {
                    return self.schedule_delivery(from, to, msg, SimTime::ZERO);
                };
                let partition = batches.first().map(|b| b.partition);
                // A held request of this instance to the same partition leaves first.
                if self
                    .held_produces
                    .get(&k)
                    .is_some_and(|h| h.2.is_some() && h.2 == partition)
                {
                    self.release_held(k);
                }
                if let Some((ms, release_with_next)) = self.produce_delay_ms.remove(&k) {
                    let release_by = partition.filter(|_| release_with_next);
                    self.held_produces.insert(k, (to, msg, release_by));
                    self.queue.push(self.now.plus_ms(ms), Event::ReleaseHeld(k));
                    return;
                }
                SimTime::ZERO
            }
            (
                NodeId::Client(c),
                Message::TxnOffsetCommit { .. } | Message::EndTxn { commit: true, .. },
            ) => self.strike_armed_stall(c, &msg),
            _ => SimTime::ZERO,
        };
        self.schedule_delivery(from, to, msg, delay);
    }

    /// Send a held produce request on its way (its hold ended, or the instance sent the
    /// next request to the same partition).
    fn release_held(&mut self, k: usize) {
        if let Some((to, msg, _)) = self.held_produces.remove(&k) {
            let from = NodeId::Client(self.apps[k].id());
            self.schedule_delivery(from, to, msg, SimTime::ZERO);
        }
    }

    /// Hand `msg` to the network, `delay` later than it would otherwise leave.
    fn schedule_delivery(&mut self, from: NodeId, to: NodeId, msg: Message, delay: SimTime) {
        let incarnation = self.incarnation(to);
        let deliver = |msg| Event::Deliver {
            from,
            to,
            incarnation,
            msg: Box::new(msg),
        };
        match self.network.schedule(self.now, from, to) {
            Delivery::Once(at) if delay > SimTime::ZERO => {
                self.queue.push(at.plus(delay), deliver(msg))
            }
            Delivery::Twice(first, second) if delay > SimTime::ZERO => {
                self.queue.push(first.plus(delay), deliver(msg.clone()));
                self.queue.push(second.plus(delay), deliver(msg));
            }
            Delivery::Lost => {
                self.stats.messages_dropped += 1;
                self.record_event(TraceKind::Lost, from, to, msg.api(), String::new);
            }
            Delivery::Once(at) => self.queue.push(at, deliver(msg)),
            Delivery::Twice(first, second) => {
                self.queue.push(first, deliver(msg.clone()));
                self.queue.push(second, deliver(msg));
            }
        }
    }

    /// An instance sends `msg`: if a stall is armed for that request, it strikes now,
    /// just before the send (the request leaves when the stall ends). Returns the delay.
    fn strike_armed_stall(&mut self, c: ClientId, msg: &Message) -> SimTime {
        let Some(k) = self.app_index(c) else {
            return SimTime::ZERO;
        };
        let strikes = matches!(
            (self.armed_stalls.get(&k), msg),
            (
                Some((StallWhen::BeforeOffsetCommit, _)),
                Message::TxnOffsetCommit { .. }
            ) | (Some((StallWhen::BeforeCommit, _)), Message::EndTxn { .. })
        );
        if !strikes {
            return SimTime::ZERO;
        }
        let (_, ms) = self.armed_stalls.remove(&k).expect("armed");
        self.app_life[k].paused_until = Some(self.now.plus_ms(ms));
        self.stats.timeline.push((
            self.now.as_ms(),
            format!(
                "app instance {k} stalls for {ms} ms just before {}",
                msg.api()
            ),
        ));
        SimTime::from_ms(ms)
    }

    fn crash_broker(&mut self, b: BrokerId, clean: bool) {
        let i = b.0 as usize;
        if self.broker_life[i].down {
            return;
        }
        self.mark_leader_lost(b);
        if clean {
            self.brokers[i].shutdown();
            self.stats.shutdowns += 1;
        } else {
            self.brokers[i].crash();
            self.stats.crashes += 1;
        }
        self.broker_life[i].down = true;
        self.broker_life[i].incarnation += 1;
        self.monitors.on_crash(b);
        let peers: Vec<NodeId> = (0..self.brokers.len() as u32)
            .filter(|&x| x != b.0)
            .map(|x| NodeId::Broker(BrokerId(x)))
            .chain(
                (0..self.app_base() + self.apps.len() as u32).map(|c| NodeId::Client(ClientId(c))),
            )
            .collect();
        for peer in peers {
            self.send_disconnect(b, peer);
        }
    }

    fn apply_fault(&mut self, i: usize) {
        let fault = self.faults[i].fault.clone();
        let now_ms = self.now.as_ms();
        let text = match fault {
            Fault::Crash(t) => match self.resolve(t) {
                Some(b) if !self.broker_life[b.0 as usize].down => {
                    self.crash_broker(b, false);
                    format!("crash {b}")
                }
                _ => return,
            },
            Fault::Shutdown(t) => match self.resolve(t) {
                Some(b) if !self.broker_life[b.0 as usize].down => {
                    let now = self.now;
                    self.with_outbox(NodeId::Broker(b), |w, out| {
                        w.brokers[b.0 as usize].begin_controlled_shutdown(now, out)
                    });
                    format!("controlled shutdown of {b} requested")
                }
                _ => return,
            },
            Fault::Restart(b) => {
                if !self.broker_life[b.0 as usize].down {
                    return;
                }
                self.stats.restarts += 1;
                self.start_broker(b);
                format!("restart {b}")
            }
            Fault::RestartAll => {
                let down: Vec<BrokerId> = (0..self.brokers.len() as u32)
                    .map(BrokerId)
                    .filter(|b| self.broker_life[b.0 as usize].down)
                    .collect();
                if down.is_empty() {
                    return;
                }
                for b in &down {
                    self.stats.restarts += 1;
                    self.start_broker(*b);
                }
                format!(
                    "restart {}",
                    down.iter()
                        .map(|b| b.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                )
            }
            Fault::CrashAll => {
                for b in 0..self.brokers.len() as u32 {
                    self.crash_broker(BrokerId(b), false);
                }
                "power outage: every broker crashes".to_string()
            }
            Fault::Pause(t, ms) => {
                let Some(b) = self.resolve(t) else { return };
                let life = &mut self.broker_life[b.0 as usize];
                if life.down {
                    return;
                }
                let until = self.now.plus_ms(ms);
                life.paused_until = Some(until);
                self.queue.push(until, Event::Resume(b));
                self.stats.pauses += 1;
                format!("pause {b} for {ms} ms")
            }
            Fault::Partition { from, to, one_way } => {
                // Resolve the named side first so that `Rest` means everyone else.
                let (a, b) = if from == LinkSet::Rest {
                    let b = self.resolve_set(&to, &[]);
                    (self.resolve_set(&from, &b), b)
                } else {
                    let a = self.resolve_set(&from, &[]);
                    let b = self.resolve_set(&to, &a);
                    (a, b)
                };
                for &x in &a {
                    for &y in &b {
                        self.network.block(x, y);
                        if !one_way {
                            self.network.block(y, x);
                        }
                    }
                }
                self.stats.partitions += 1;
                let names = |v: &[NodeId]| {
                    v.iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                format!(
                    "partition {} {} {}",
                    names(&a),
                    if one_way { "-/->" } else { "<-/->" },
                    names(&b)
                )
            }
            Fault::SlowLinks(t, ms) => {
                let Some(b) = self.resolve(t) else { return };
                self.network.set_slow(NodeId::Broker(b), ms);
                format!("slow links of {b} (+{ms} ms)")
            }
            Fault::SlowDisk(t, ms) => {
                let Some(b) = self.resolve(t) else { return };
                self.disk_latency_us.insert(b, (ms * 1_000, ms * 1_000));
                format!("slow disk on {b} ({ms} ms fsync)")
            }
            Fault::HealNetwork => {
                self.network.heal();
                "heal network".to_string()
            }
            Fault::Degrade {
                drop_per_million,
                duplicate_per_million,
                reorder,
            } => {
                self.network
                    .degrade(drop_per_million, duplicate_per_million, reorder);
                format!(
                    "network degraded: {drop_per_million} ppm lost, {duplicate_per_million} ppm duplicated{}",
                    if reorder { ", reordered" } else { "" }
                )
            }
            Fault::AppCrash {
                slot,
                restart_after_ms,
                fresh_transactional_id,
            } => {
                let Some(k) = self.live_app(slot) else {
                    return;
                };
                let id = self.apps[k].id();
                let now = self.now;
                self.with_outbox(NodeId::Client(id), |w, out| w.apps[k].crash(now, out));
                self.app_life[k].down = true;
                self.queue.push(
                    self.now.plus_ms(restart_after_ms),
                    Event::StartApp {
                        slot,
                        fresh_transactional_id,
                    },
                );
                format!("crash app instance {k} (slot {slot}); a new instance starts in {restart_after_ms} ms{}", id_text(fresh_transactional_id))
            }
            Fault::AppStall {
                slot,
                ms,
                when,
                replace_after_ms,
                fresh_transactional_id,
            } => {
                let Some(k) = self.live_app(slot) else {
                    return;
                };
                self.stats.pauses += 1;
                if when == StallWhen::Now {
                    self.app_life[k].paused_until = Some(self.now.plus_ms(ms));
                } else {
                    self.armed_stalls.insert(k, (when, ms));
                }
                if let Some(after) = replace_after_ms {
                    self.queue.push(
                        self.now.plus_ms(after),
                        Event::StartApp {
                            slot,
                            fresh_transactional_id,
                        },
                    );
                    format!("stall app instance {k} (slot {slot}) for {ms} ms ({when:?}); a replacement starts in {after} ms{}", id_text(fresh_transactional_id))
                } else {
                    format!("stall app instance {k} (slot {slot}) for {ms} ms ({when:?})")
                }
            }
            Fault::DelayAppProduce {
                slot,
                ms,
                release_with_next,
            } => {
                let Some(k) = self.live_app(slot) else {
                    return;
                };
                self.produce_delay_ms.insert(k, (ms, release_with_next));
                format!("the next produce request of app instance {k} (slot {slot}) is held {}{ms} ms in the network", if release_with_next { "up to " } else { "" })
            }
            Fault::AppClose {
                slot,
                restart_after_ms,
            } => {
                let Some(k) = self.live_app(slot) else {
                    return;
                };
                let Instance::Member(m) = &mut self.apps[k] else {
                    return;
                };
                m.close();
                match restart_after_ms {
                    Some(after) => {
                        self.queue.push(
                            self.now.plus_ms(after),
                            Event::StartApp {
                                slot,
                                fresh_transactional_id: false,
                            },
                        );
                        format!("consumer instance {k} (slot {slot}) closes; a new instance joins in {after} ms")
                    }
                    None => format!("consumer instance {k} (slot {slot}) closes"),
                }
            }
            Fault::AppSlowBatch { slot, ms } => {
                let Some(k) = self.live_app(slot) else {
                    return;
                };
                let Instance::Member(m) = &mut self.apps[k] else {
                    return;
                };
                m.slow_next_batch(ms);
                format!("the next batch of consumer instance {k} (slot {slot}) takes {ms} ms longer to process")
            }
            Fault::Announce(text) => text,
            Fault::CrashController(takeover_ms) => {
                if self.controller_life.down {
                    return;
                }
                self.controller_life.down = true;
                self.controller_life.incarnation += 1;
                self.stats.crashes += 1;
                self.queue
                    .push(self.now.plus_ms(takeover_ms), Event::ControllerTakeover);
                format!("crash the active controller (a standby takes over in {takeover_ms} ms)")
            }
        };
        self.record_event(
            TraceKind::Fault,
            NodeId::Controller,
            NodeId::Controller,
            &text,
            String::new,
        );
        self.stats.timeline.push((now_ms, text));
    }

    /// End of the safety phase: heal the network, restart every stopped broker,
    /// resume paused ones, restore disks.
    fn heal(&mut self) {
        self.network.heal();
        for b in 0..self.brokers.len() {
            let life = &mut self.broker_life[b];
            life.paused_until = None;
            if life.down {
                self.stats.restarts += 1;
                self.start_broker(BrokerId(b as u32));
            }
        }
        self.stats.timeline.push((
            self.now.as_ms(),
            "heal: network healed, every broker up".to_string(),
        ));
        self.record_event(
            TraceKind::Fault,
            NodeId::Controller,
            NodeId::Controller,
            "heal",
            String::new,
        );
    }

    /// What still keeps the run from having converged, or `None` when it has: every
    /// partition led, its ISR full, the leader's HW at its LEO, every follower caught up,
    /// producers idle and consumers at the end of their partitions.
    pub fn not_converged(&self) -> Option<String> {
        if !self.controller.topic_created {
            return Some("the topic was never created".into());
        }
        for s in &self.controller.partitions {
            let key = &self.keys[s.partition.index()];
            let Some(l) = s.leader else {
                return Some(format!("{key} has no leader"));
            };
            if s.isr.len() != s.replicas.len() {
                return Some(format!(
                    "{key}: ISR {:?} is not the full replica set",
                    s.isr.iter().map(|b| b.0).collect::<Vec<_>>()
                ));
            }
            let r = &self.brokers[l.0 as usize].replicas[s.partition.index()];
            if !r.is_leader() || r.leader_epoch() != Some(s.leader_epoch) {
                return Some(format!(
                    "{key}: {l} does not yet act as leader of epoch {}",
                    s.leader_epoch.0
                ));
            }
            let leo = r.log.log_end_offset();
            if self.brokers[l.0 as usize].exposed_high_watermark(s.partition) != Some(leo) {
                return Some(format!(
                    "{key}: leader HW {} below LEO {leo}",
                    r.high_watermark
                ));
            }
            for &f in &s.replicas {
                let fr = &self.brokers[f.0 as usize].replicas[s.partition.index()];
                if fr.log.log_end_offset() != leo {
                    return Some(format!(
                        "{key}: replica {f} at {} of {leo}",
                        fr.log.log_end_offset()
                    ));
                }
            }
            for c in &self.consumers {
                if let Some(&pos) = c.positions.get(&s.partition) {
                    if pos < leo {
                        return Some(format!("{key}: consumer {} at {pos} of {leo}", c.id.0));
                    }
                }
            }
        }
        if let Some(k) =
            (0..self.apps.len()).find(|&k| !self.app_life[k].down && !self.apps[k].is_idle())
        {
            return Some(format!(
                "app instance {k} still has a batch or transaction open"
            ));
        }
        if let Some(why) = self.group_not_drained() {
            return Some(why);
        }
        if let Some(p) = self.producers.iter().find(|p| !p.is_idle()) {
            return Some(format!(
                "producer {} still has operations in flight",
                p.id.0
            ));
        }
        None
    }

    /// With group consumers: every input partition held by a live member that has
    /// consumed it to the leader's log end.
    fn group_not_drained(&self) -> Option<String> {
        if self.txn_slots as usize == self.app_slots.len() {
            return None;
        }
        let members: Vec<&GroupConsumer> = (0..self.apps.len())
            .filter(|&k| !self.app_life[k].down)
            .filter_map(|k| self.apps[k].member())
            .filter(|m| !m.exited)
            .collect();
        for s in self
            .controller
            .partitions
            .iter()
            .filter(|s| s.partition.0 < self.config.partitions)
        {
            let key = &self.keys[s.partition.index()];
            let leo = s
                .leader
                .map(|l| {
                    self.brokers[l.0 as usize].replicas[s.partition.index()]
                        .log
                        .log_end_offset()
                })
                .unwrap_or_default();
            let consumed = members
                .iter()
                .flat_map(|m| m.consumed_positions())
                .filter(|&(p, _)| p == s.partition)
                .map(|(_, o)| o)
                .max();
            match consumed {
                None => return Some(format!("{key}: no group member holds it")),
                Some(o) if o < leo => {
                    return Some(format!("{key}: the group consumed up to {o} of {leo}"))
                }
                Some(_) => {}
            }
        }
        None
    }

    fn drain_check(&mut self) {
        if self.now < self.phases.heal_at {
            self.queue
                .push(self.now.plus_ms(DRAIN_CHECK_MS), Event::DrainCheck);
            return;
        }
        match self.not_converged() {
            None => self.finish(Ok(())),
            Some(_) if self.now < self.phases.deadline => {
                self.queue
                    .push(self.now.plus_ms(DRAIN_CHECK_MS), Event::DrainCheck);
            }
            Some(why) => self.finish(Err(why)),
        }
    }

    /// End the run: complete what clients still have open, so the history is whole.
    pub fn finish(&mut self, result: Result<(), String>) {
        for i in 0..self.producers.len() {
            let id = self.producers[i].id;
            self.with_outbox(NodeId::Client(id), |w, out| w.producers[i].abandon(out));
        }
        for i in 0..self.consumers.len() {
            let id = self.consumers[i].id;
            self.with_outbox(NodeId::Client(id), |w, out| w.consumers[i].stop(out));
        }
        for k in 0..self.apps.len() {
            if !self.app_life[k].down {
                let id = self.apps[k].id();
                self.with_outbox(NodeId::Client(id), |w, out| w.apps[k].abandon(out));
            }
        }
        self.finished = Some(result);
    }

    /// Every partition as the run ends: the controller's leader, epoch and ISR, the
    /// leader's HW and LEO, and the consumers' lag (leader LEO minus position).
    pub fn partitions_at_end(&self) -> Vec<crate::run::PartitionEnd> {
        self.controller
            .partitions
            .iter()
            .map(|s| {
                let p = s.partition;
                let leader_replica = s
                    .leader
                    .map(|l| &self.brokers[l.0 as usize].replicas[p.index()]);
                let log_end_offset = leader_replica.map(|r| r.log.log_end_offset().0);
                let consumer_lag = log_end_offset.map(|leo| {
                    self.consumers
                        .iter()
                        .filter_map(|c| c.positions.get(&p))
                        .map(|pos| leo.saturating_sub(pos.0))
                        .max()
                        .unwrap_or(0)
                });
                crate::run::PartitionEnd {
                    partition: self.keys[p.index()].clone(),
                    leader: s.leader.map(|l| l.to_string()),
                    leader_epoch: s.leader_epoch.0,
                    isr: broker_list(&s.isr),
                    high_watermark: leader_replica.map(|r| r.high_watermark.0),
                    log_end_offset,
                    consumer_lag,
                }
            })
            .collect()
    }
}
