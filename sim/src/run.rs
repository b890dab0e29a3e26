//! One simulated run: the interface the CLI, sweeps and tests use.

use model::client::group_consumer::MemberStats;
use std::collections::BTreeMap;

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub scenario: String,
    pub seed: u64,
    /// Bug switch names (`--bug`), validated by [`crate::setup`].
    pub bugs: Vec<String>,
    /// `--set KEY=VALUE` overrides, in order.
    pub sets: Vec<(String, String)>,
    /// Keep the history lines (JSON Lines, `history.md`) in the result.
    pub keep_history: bool,
    /// Keep the trace lines in the result.
    pub keep_trace: bool,
    /// Run this plan instead of drawing one from the scenario (`--replay`, `--shrink`).
    pub plan: Option<RunPlan>,
}

/// What a run does, as data: the fault schedule, the client workload and the phases.
/// A scenario draws one from the seed; a replay file (`--replay`) or the shrinker
/// supplies one directly. Everything else (seeds of the network, disk and client
/// streams) still comes from the seed, so a plan plus its seed replays exactly.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunPlan {
    pub faults: Vec<scenarios::FaultEvent>,
    pub workload: scenarios::Workload,
    pub phases: scenarios::Phases,
}

/// One anomaly, from the history checker or a broker monitor.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunAnomaly {
    pub kind: String,
    /// The partition key (e.g. `orders-0`), if the anomaly is about one.
    pub partition: Option<String>,
    pub detail: String,
    /// History op indices (checker) or event indices (monitors) that prove it.
    pub ops: Vec<u64>,
    /// Allowed by the scenario's configuration (shown, but not a failure).
    pub allowed: bool,
}

/// Protocol counts for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    pub crashes: u64,
    pub restarts: u64,
    pub shutdowns: u64,
    pub pauses: u64,
    pub partitions: u64,
    pub leader_elections: u64,
    pub unclean_elections: u64,
    pub isr_shrinks: u64,
    pub isr_expands: u64,
    pub truncations: u64,
    pub messages_sent: u64,
    pub messages_dropped: u64,
    /// Simulated failover time per election that followed a leader loss, in ms
    /// (from the moment the old leader went down to the new leader's election).
    pub failover_ms: Vec<u64>,
    /// Windows (ms) during which some partition had no leader.
    pub unavailable_ms: Vec<u64>,
    /// Produce requests refused with NOT_ENOUGH_REPLICAS.
    pub produce_refused: u64,
    /// Windows (ms) from a partition's first NOT_ENOUGH_REPLICAS refusal to its next
    /// acknowledged `acks=all` write: unavailability for writes, instead of loss.
    pub write_unavailable_ms: Vec<u64>,
    /// Idempotent batches the leader recognised as already in its log (a retry, or a
    /// request the network delivered twice) and answered with their offsets instead of
    /// appending them again (KIP-98).
    pub batches_deduplicated: u64,
    /// Idempotent batches refused as out of sequence (OUT_OF_ORDER_SEQUENCE_NUMBER): a
    /// predecessor had not arrived, so the producer retries them in order.
    pub batches_out_of_sequence: u64,
    /// Consume-transform-produce runs: what the application instances did.
    pub transactions: Option<TxnSummary>,
    /// Runs with subscribe-mode group consumers: what they did and what rebalancing cost.
    pub group: Option<GroupSummary>,
    /// Human-readable fault timeline: (time ms, what happened).
    pub timeline: Vec<(u64, String)>,
    /// Leader, epoch and ISR changes per partition: (time ms, partition, what).
    pub partition_log: Vec<(u64, String, String)>,
}

/// What the consume-transform-produce instances did in a run (the `exactly-once`
/// report), and whether the checker found exactly-once broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnSummary {
    pub instances: u64,
    pub committed: u64,
    pub aborted: u64,
    pub unknown: u64,
    pub inputs_consumed: u64,
    pub outputs_committed: u64,
    pub zombies_fenced: u64,
    /// No forbidden anomaly of [`EXACTLY_ONCE_KINDS`].
    pub exactly_once_held: bool,
}

impl TxnSummary {
    /// The figures, for the summary line and the report.
    pub fn figures(&self) -> String {
        format!(
            "{} transactions committed, {} aborted, {} of unknown outcome, over {} application instances (restarts and replacements included); {} input records consumed and {} output records committed by committed transactions; zombies fenced {} times (producer epoch or group generation)",
            self.committed,
            self.aborted,
            self.unknown,
            self.instances,
            self.inputs_consumed,
            self.outputs_committed,
            self.zombies_fenced,
        )
    }
}

/// What a run's group consumers did, and what its rebalances cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupSummary {
    /// `partition.assignment.strategy`.
    pub assignor: &'static str,
    pub instances: u64,
    pub generations: u64,
    pub batches: u64,
    pub records: u64,
    pub commits_ok: u64,
    pub commits_failed: u64,
    /// Rebalances as the members lived them: how many, their summed and longest time.
    pub member_rebalances: u64,
    pub rebalance_ms: u64,
    pub rebalance_ms_max: u64,
    pub poll_timeouts: u64,
    /// Partition-milliseconds without an owner before the heal (fault phase).
    pub unowned_ms: u64,
}

impl GroupSummary {
    pub fn figures(&self) -> String {
        format!(
            "{} over {} member instances, {} generations; {} batches ({} records) processed; {} commits ok, {} refused or unknown; {} member rebalances taking {} ms in all (longest {} ms); {} poll time-outs; partitions unowned {} ms in all during the fault phase",
            self.assignor,
            self.instances,
            self.generations,
            self.batches,
            self.records,
            self.commits_ok,
            self.commits_failed,
            self.member_rebalances,
            self.rebalance_ms,
            self.rebalance_ms_max,
            self.poll_timeouts,
            self.unowned_ms,
        )
    }
}

/// The anomalies that break exactly-once processing or transactional isolation.
pub const EXACTLY_ONCE_KINDS: &[&str] = &[
    "eos-duplicate-output",
    "eos-lost-output",
    "G1a",
    "G1c",
    "torn-transaction",
    "precommitted-read",
    "lso-stuck",
];

/// One partition as the run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionEnd {
    pub partition: String,
    pub leader: Option<String>,
    pub leader_epoch: u32,
    pub isr: String,
    pub high_watermark: Option<u64>,
    pub log_end_offset: Option<u64>,
    /// The largest lag of a consumer assigned the partition (leader LEO - position).
    pub consumer_lag: Option<u64>,
}

/// Produce latency (invoke to completion, simulated) of send operations by outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Latency {
    pub outcome: String,
    pub count: u64,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

#[derive(Clone, Debug)]
pub struct RunResult {
    pub scenario: String,
    pub seed: u64,
    pub bugs: Vec<String>,
    /// No forbidden anomaly.
    pub ok: bool,
    pub events: u64,
    pub sim_time_ms: u64,
    /// f -> outcome ("ok"/"fail"/"info") -> count of completed operations.
    pub ops: BTreeMap<String, BTreeMap<String, u64>>,
    pub anomalies: Vec<RunAnomaly>,
    /// Hex of a 64-bit hash over every trace line (computed even when the trace is not kept).
    pub trace_hash: String,
    pub stats: RunStats,
    /// The configuration's allowed anomaly kinds with reasons.
    pub allowed: Vec<(String, String)>,
    /// Key config values for the summary/report: (Kafka key, value).
    pub config: Vec<(String, String)>,
    pub partitions_at_end: Vec<PartitionEnd>,
    pub produce_latency: Vec<Latency>,
    pub history: Option<Vec<String>>,
    pub trace: Option<Vec<String>>,
}

/// A problem with the request itself (exit 2): unknown scenario or bug, bad `--set`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupError(pub String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SetupError {}

/// Build the configuration a run would use: the scenario's, then `--bug`, then `--set`,
/// validated. Every problem here is a usage error (exit 2).
pub fn setup(
    opts: &RunOptions,
) -> Result<(scenarios::Scenario, model::config::Config), SetupError> {
    let scenario = scenarios::by_name(&opts.scenario).ok_or_else(|| {
        let names: Vec<&str> = scenarios::all().iter().map(|s| s.name).collect();
        SetupError(format!(
            "unknown scenario '{}' (known: {})",
            opts.scenario,
            names.join(", ")
        ))
    })?;
    let mut config = scenario.config.clone();
    for name in &opts.bugs {
        let bug = model::bug::Bug::parse(name).ok_or_else(|| {
            let names: Vec<&str> = model::bug::ALL_BUGS.iter().map(|b| b.1).collect();
            SetupError(format!(
                "unknown bug '{}' (known: {})",
                name,
                names.join(", ")
            ))
        })?;
        config.bugs.insert(bug);
    }
    for (key, value) in &opts.sets {
        config.set(key, value).map_err(|e| SetupError(e.0))?;
    }
    config
        .validate()
        .map_err(|e| SetupError(format!("impossible configuration: {e}")))?;
    Ok((scenario, config))
}

/// A plan from a file must still describe a run that can happen.
fn validate_plan(plan: &RunPlan, config: &model::config::Config) -> Result<(), SetupError> {
    let w = &plan.workload;
    let bad = |m: &str| Err(SetupError(format!("invalid run plan: {m}")));
    if w.producers == 0 || w.producer_threads == 0 || w.consumers == 0 {
        return bad("producers, producer_threads and consumers must each be at least 1");
    }
    if w.sends_per_op_max == 0 || w.customers == 0 || w.poll_interval_ms == 0 {
        return bad("sends_per_op_max, customers and poll_interval_ms must be at least 1");
    }
    let transactions = config.output_partitions > 0
        && config.transaction_state_partitions > 0
        && config.offsets_topic_partitions > 0;
    if w.group_consumers > 0 && config.offsets_topic_partitions == 0 {
        return bad("group_consumers need a scenario with __consumer_offsets (consumer-crash-mid-batch, rebalance)");
    }
    if w.txn_slots(config) > 0 && !transactions {
        return bad("apps (consume-transform-produce instances) need a scenario with processed-orders, __transaction_state and __consumer_offsets (exactly-once, exactly-once-alpha, hanging-transaction)");
    }
    let p = &plan.phases;
    if !(p.heal_at <= p.stop_producers_at && p.stop_producers_at < p.deadline) {
        return bad("phases must satisfy heal_at <= stop_producers_at < deadline");
    }
    Ok(())
}

/// The run's plan: the one given (`--replay`, `--shrink`), else the scenario's draw.
fn plan_of(
    opts: &RunOptions,
    scenario: &scenarios::Scenario,
    config: &model::config::Config,
) -> RunPlan {
    match &opts.plan {
        Some(plan) => plan.clone(),
        None => draw_plan(scenario, config, opts.seed),
    }
}

/// The plan a scenario draws for a seed (its fault stream) and configuration.
pub fn draw_plan(
    scenario: &scenarios::Scenario,
    config: &model::config::Config,
    seed: u64,
) -> RunPlan {
    let mut fault_rng = crate::rng::SimRng::stream(seed, crate::rng::Stream::Faults);
    RunPlan {
        faults: scenario.schedule(config, &mut fault_rng),
        workload: scenario.workload.clone(),
        phases: scenario.phases,
    }
}

/// Run one seed of one scenario. Deterministic: the same options give the same result,
/// byte for byte (there is no wall time in it).
pub fn run(opts: &RunOptions) -> Result<RunResult, SetupError> {
    let (scenario, config) = setup(opts)?;
    let plan = plan_of(opts, &scenario, &config);
    validate_plan(&plan, &config)?;
    let allowed = (scenario.allowed)(&config);
    let mut faults = plan.faults;
    faults.sort_by_key(|e| e.at);
    let scenario = scenarios::Scenario {
        workload: plan.workload,
        phases: plan.phases,
        ..scenario
    };
    let mut world = crate::world::World::new(
        opts.seed,
        config.clone(),
        &scenario,
        faults,
        opts.keep_trace,
    );
    world.start();
    while world.finished.is_none() {
        if world.events >= crate::world::MAX_EVENTS {
            world.finish(Err(format!(
                "event cap of {} reached",
                crate::world::MAX_EVENTS
            )));
            break;
        }
        if !world.step() {
            world.finish(Err("the event queue ran dry".to_string()));
        }
    }
    let mut anomalies = Vec::new();
    if let Some(Err(why)) = &world.finished {
        anomalies.push(RunAnomaly {
            kind: "no-convergence".to_string(),
            partition: None,
            detail: format!(
                "the cluster did not converge by {} ms of simulated time: {why}",
                world.now().as_ms()
            ),
            ops: vec![world.events],
            allowed: false,
        });
    }
    let mut policy = checker::Policy::default();
    for a in &allowed {
        policy.allowed.insert(a.kind.to_string());
    }
    let report = checker::check(&world.recorder.ops, &policy);
    for a in report.anomalies {
        anomalies.push(RunAnomaly {
            kind: a.kind,
            partition: a.key,
            detail: a.detail,
            ops: a.ops,
            allowed: a.allowed,
        });
    }
    let monitor_anomalies = std::mem::replace(
        &mut world.monitors,
        crate::monitors::Monitors::new(Vec::new(), &world.config),
    )
    .into_anomalies();
    for mut a in monitor_anomalies {
        a.allowed = policy.allows(&a.kind);
        anomalies.push(a);
    }
    anomalies.sort();
    let ok = anomalies.iter().all(|a| a.allowed);
    let txn_instances = world.apps.iter().filter(|a| a.txn().is_some()).count() as u64;
    if txn_instances > 0 {
        let apps = world.app_stats();
        world.stats.transactions = Some(TxnSummary {
            instances: txn_instances,
            committed: apps.committed,
            aborted: apps.aborted,
            unknown: apps.unknown,
            inputs_consumed: apps.inputs_committed,
            outputs_committed: apps.outputs_committed,
            zombies_fenced: apps.fenced,
            exactly_once_held: !anomalies
                .iter()
                .any(|a| !a.allowed && EXACTLY_ONCE_KINDS.contains(&a.kind.as_str())),
        });
    }
    let members: Vec<_> = world.apps.iter().filter_map(|a| a.member()).collect();
    if !members.is_empty() {
        let m = members
            .iter()
            .fold(MemberStats::default(), |sum, m| sum.plus(m.stats));
        let inputs: Vec<String> = (0..config.partitions)
            .map(|p| format!("{}-{p}", config.topic))
            .collect();
        let (unowned_ms, generations) =
            crate::group_stats::unowned_ms(&world.recorder.ops, &inputs, scenario.phases.heal_at.0);
        world.stats.group = Some(GroupSummary {
            assignor: config.partition_assignment_strategy.name(),
            instances: members.len() as u64,
            generations,
            batches: m.batches,
            records: m.records,
            commits_ok: m.commits_ok,
            commits_failed: m.commits_failed,
            member_rebalances: m.rebalances,
            rebalance_ms: m.rebalance_ms,
            rebalance_ms_max: m.rebalance_ms_max,
            poll_timeouts: m.poll_timeouts,
            unowned_ms,
        });
    }
    let history = opts.keep_history.then(|| {
        world
            .recorder
            .ops
            .iter()
            .map(|o| o.to_json_line())
            .collect()
    });
    Ok(RunResult {
        scenario: opts.scenario.clone(),
        seed: opts.seed,
        bugs: opts.bugs.clone(),
        ok,
        events: world.events,
        sim_time_ms: world.now().as_ms(),
        ops: world.recorder.counts(),
        anomalies,
        trace_hash: format!("{:016x}", world.trace_hash()),
        stats: std::mem::take(&mut world.stats),
        allowed: allowed
            .iter()
            .map(|a| (a.kind.to_string(), a.reason.to_string()))
            .collect(),
        config: config_lines(&config, &scenario.workload),
        partitions_at_end: world.partitions_at_end(),
        produce_latency: produce_latency(&world.recorder.ops),
        history,
        trace: world.trace.take(),
    })
}

/// p50/p99/max of send operations' latency (invoke to completion) per outcome.
fn produce_latency(ops: &[checker::history::Op]) -> Vec<Latency> {
    use checker::history::{OpType, F};
    let mut invoked: BTreeMap<u64, u64> = BTreeMap::new();
    let mut by_outcome: BTreeMap<&'static str, Vec<u64>> = BTreeMap::new();
    for op in ops.iter().filter(|o| o.f == F::Send) {
        match op.typ {
            OpType::Invoke => {
                invoked.insert(op.process, op.time);
            }
            done => {
                if let Some(start) = invoked.remove(&op.process) {
                    let outcome = match done {
                        OpType::Ok => "ok",
                        OpType::Fail => "fail",
                        _ => "info",
                    };
                    by_outcome
                        .entry(outcome)
                        .or_default()
                        .push((op.time - start) / 1_000_000);
                }
            }
        }
    }
    by_outcome
        .into_iter()
        .map(|(outcome, mut v)| {
            v.sort_unstable();
            let at = |q: usize| v[((v.len() - 1) * q) / 100];
            Latency {
                outcome: outcome.to_string(),
                count: v.len() as u64,
                p50_ms: at(50),
                p99_ms: at(99),
                max_ms: v[v.len() - 1],
            }
        })
        .collect()
}

fn config_lines(c: &model::config::Config, w: &scenarios::Workload) -> Vec<(String, String)> {
    let mut v = vec![
        ("brokers".to_string(), c.brokers.to_string()),
        (
            "topic".to_string(),
            format!(
                "{} ({} partitions, replication.factor={})",
                c.topic, c.partitions, c.replication_factor
            ),
        ),
        ("acks".to_string(), c.acks.name().to_string()),
        (
            "min.insync.replicas".to_string(),
            c.min_insync_replicas.to_string(),
        ),
        (
            "unclean.leader.election.enable".to_string(),
            c.unclean_leader_election_enable.to_string(),
        ),
        (
            "enable.idempotence".to_string(),
            c.enable_idempotence.to_string(),
        ),
        (
            "replica.lag.time.max.ms".to_string(),
            c.replica_lag_time_max_ms.to_string(),
        ),
        (
            "broker.session.timeout.ms".to_string(),
            c.broker_session_timeout_ms.to_string(),
        ),
    ];
    if c.read_committed {
        v.push(("isolation.level".to_string(), "read_committed".to_string()));
    }
    if c.output_partitions > 0 {
        v.push((
            "processing.guarantee".to_string(),
            if c.exactly_once_v2 {
                "exactly_once_v2"
            } else {
                "exactly_once"
            }
            .to_string(),
        ));
        v.push((
            "transaction.timeout.ms".to_string(),
            c.transaction_timeout_ms.to_string(),
        ));
    }
    if w.group_consumers > 0 {
        use model::config::{CommitStrategy, OffsetReset};
        let commit = match c.commit {
            CommitStrategy::Auto => "auto (enable.auto.commit=true)",
            CommitStrategy::Manual => {
                "manual (enable.auto.commit=false, commitSync after processing)"
            }
            CommitStrategy::ManualAsync => {
                "async (enable.auto.commit=false, commitAsync after processing)"
            }
            CommitStrategy::Transactional => {
                "transactional (offsets committed in the output transaction)"
            }
        };
        let reset = match c.auto_offset_reset {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        };
        v.extend([
            (
                "group members".to_string(),
                format!(
                    "{} ({} static, group.instance.id)",
                    w.group_consumers, w.static_members
                ),
            ),
            ("commit".to_string(), commit.to_string()),
            (
                "partition.assignment.strategy".to_string(),
                c.partition_assignment_strategy.name().to_string(),
            ),
            (
                "session.timeout.ms".to_string(),
                c.session_timeout_ms.to_string(),
            ),
            (
                "heartbeat.interval.ms".to_string(),
                c.heartbeat_interval_ms.to_string(),
            ),
            (
                "max.poll.interval.ms".to_string(),
                c.max_poll_interval_ms.to_string(),
            ),
            (
                "max.poll.records".to_string(),
                c.max_poll_records.to_string(),
            ),
            ("auto.offset.reset".to_string(), reset.to_string()),
        ]);
        if c.commit == CommitStrategy::Auto {
            v.push((
                "auto.commit.interval.ms".to_string(),
                c.auto_commit_interval_ms.to_string(),
            ));
        }
    }
    if !c.bugs.is_empty() {
        v.push((
            "bugs".to_string(),
            c.bugs
                .iter()
                .map(|b| b.name())
                .collect::<Vec<_>>()
                .join(","),
        ));
    }
    v
}

/// The run's seed and plan again under the eager protocol (`range`) and the
/// cooperative one (`cooperative-sticky`), for the report's comparison: the same faults
/// at the same times, so the difference is the protocol's. `None` when the run has no
/// subscribe-mode group consumers.
pub fn protocol_comparison(opts: &RunOptions) -> Result<Option<[GroupSummary; 2]>, SetupError> {
    let (scenario, config) = setup(opts)?;
    let plan = plan_of(opts, &scenario, &config);
    if plan.workload.group_consumers == 0
        || config.commit == model::config::CommitStrategy::Transactional
    {
        return Ok(None);
    }
    let mut summaries = Vec::new();
    for assignor in ["range", "cooperative-sticky"] {
        let mut sets = opts.sets.clone();
        sets.push(("partition.assignment.strategy".into(), assignor.into()));
        let result = run(&RunOptions {
            sets,
            keep_history: false,
            keep_trace: false,
            plan: Some(plan.clone()),
            ..opts.clone()
        })?;
        summaries.extend(result.stats.group);
    }
    Ok(summaries.try_into().ok())
}

/// `--list-scenarios`: (name, one-line description).
pub fn scenario_list() -> Vec<(&'static str, &'static str)> {
    scenarios::all()
        .iter()
        .map(|s| (s.name, s.description))
        .collect()
}

/// `--list-bugs`: (name, source KIP/JIRA, description).
pub fn bug_list() -> Vec<(&'static str, &'static str, &'static str)> {
    model::bug::ALL_BUGS
        .iter()
        .map(|&(_, name, source, description)| (name, source, description))
        .collect()
}
