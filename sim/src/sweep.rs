//! Running seeds: one guarded run (panics caught, optional determinism re-run), and the
//! parallel sweep over a seed range.
//!
//! A sweep's result must not depend on `--jobs` or on thread scheduling, and its memory
//! must stay flat over 100k seeds. So each run is reduced at once to a [`SeedRecord`]
//! (seed, events, anomaly kinds) and folded into a [`Tally`] whose only order-dependent
//! part, the list of failing seeds, is sorted by seed at the end; everything else is a
//! sum or a count, which does not care about order. Passing seeds leave nothing behind
//! but counters.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use rayon::prelude::*;

use crate::cli::{Common, SeedPlan};
use crate::run::{self, RunAnomaly, RunOptions, RunResult, SetupError};

/// Anomaly kind of a run that panicked (cli.md: a panic inside a run is a failure).
pub const KIND_PANIC: &str = "panic";
/// Anomaly kind of a seed whose two runs differed under `--check-determinism`.
pub const KIND_NONDETERMINISM: &str = "nondeterminism";
/// A run that said `ok: false` without naming a forbidden anomaly. Should not happen;
/// counted under its own name so that it cannot pass silently.
pub const KIND_UNEXPLAINED: &str = "unexplained-failure";

/// How one guarded run ended (setup problems are the `Err` beside it).
#[derive(Debug)]
pub enum Outcome {
    Done(Box<RunResult>),
    Panicked {
        /// The panic message with its source location.
        message: String,
        /// Set under `--check-determinism` when the other run did not panic alike.
        nondeterminism: Option<String>,
    },
}

thread_local! {
    /// The last panic seen by the hook on this thread: message and location. The hook
    /// runs on the panicking thread before unwinding, and `catch_unwind` returns on the
    /// same thread, so a thread-local carries the location across without locking.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// While set, the hook records panics without printing them (sweeps: thousands of runs
/// must not bury the summary under backtraces; the message is kept in the record).
static QUIET_PANICS: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

/// Install (once) the panic hook that remembers each panic's message and location for
/// [`run_guarded`]. Outside quiet mode it also runs the previous hook, so a single run
/// still prints Rust's usual panic text (useful when debugging one seed).
pub fn install_panic_capture() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let mut message = payload_text(info.payload());
            if let Some(location) = info.location() {
                message = format!(
                    "{message} (at {}:{}:{})",
                    location.file(),
                    location.line(),
                    location.column()
                );
            }
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(message));
            if !QUIET_PANICS.load(Ordering::Relaxed) {
                previous(info);
            }
        }));
    });
}

/// Silence (or restore) the printing of panics: on during sweeps, off for one run.
pub fn set_quiet_panics(quiet: bool) {
    QUIET_PANICS.store(quiet, Ordering::Relaxed);
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Run once, turning a panic into [`Outcome::Panicked`] instead of unwinding further.
pub fn run_guarded(opts: &RunOptions) -> Result<Outcome, SetupError> {
    LAST_PANIC.with(|last| last.borrow_mut().take());
    match panic::catch_unwind(AssertUnwindSafe(|| run::run(opts))) {
        Ok(Ok(result)) => Ok(Outcome::Done(Box::new(result))),
        Ok(Err(setup)) => Err(setup),
        Err(payload) => {
            let captured = LAST_PANIC.with(|last| last.borrow_mut().take());
            let message = captured.unwrap_or_else(|| payload_text(payload.as_ref()));
            Ok(Outcome::Panicked {
                message,
                nondeterminism: None,
            })
        }
    }
}

/// Run once, or (with `check_determinism`) twice as two rayon tasks, which may land on
/// different worker threads; any difference between the two marks the first result with
/// a [`KIND_NONDETERMINISM`] anomaly. The first run's result is the one reported.
pub fn run_checked(opts: &RunOptions, check_determinism: bool) -> Result<Outcome, SetupError> {
    if !check_determinism {
        return run_guarded(opts);
    }
    let (first, second) = rayon::join(|| run_guarded(opts), || run_guarded(opts));
    Ok(match (first?, second?) {
        (Outcome::Done(mut first), Outcome::Done(second)) => {
            if let Some(difference) = determinism_diff(&first, &second) {
                mark_nondeterministic(&mut first, difference);
            }
            Outcome::Done(first)
        }
        (Outcome::Done(mut first), Outcome::Panicked { message, .. }) => {
            mark_nondeterministic(&mut first, format!("the second run panicked: {message}"));
            Outcome::Done(first)
        }
        (Outcome::Panicked { message, .. }, Outcome::Done(_)) => Outcome::Panicked {
            message,
            nondeterminism: Some("the second run did not panic".to_string()),
        },
        (Outcome::Panicked { message, .. }, Outcome::Panicked { message: other, .. }) => {
            let nondeterminism =
                (message != other).then(|| format!("the second run panicked differently: {other}"));
            Outcome::Panicked {
                message,
                nondeterminism,
            }
        }
    })
}

fn mark_nondeterministic(result: &mut RunResult, detail: String) {
    result.ok = false;
    result.anomalies.push(RunAnomaly {
        kind: KIND_NONDETERMINISM.to_string(),
        partition: None,
        detail,
        ops: Vec::new(),
        allowed: false,
    });
}

/// The first observable differences between two runs of the same options, if any.
pub fn determinism_diff(first: &RunResult, second: &RunResult) -> Option<String> {
    let mut differences = Vec::new();
    if first.trace_hash != second.trace_hash {
        differences.push(format!(
            "trace_hash {} vs {}",
            first.trace_hash, second.trace_hash
        ));
    }
    if first.events != second.events {
        differences.push(format!("events {} vs {}", first.events, second.events));
    }
    if first.sim_time_ms != second.sim_time_ms {
        differences.push(format!(
            "sim_time_ms {} vs {}",
            first.sim_time_ms, second.sim_time_ms
        ));
    }
    if first.ops != second.ops {
        differences.push("operation counts differ".to_string());
    }
    if first.anomalies != second.anomalies {
        differences.push(format!(
            "anomalies differ ({} vs {})",
            first.anomalies.len(),
            second.anomalies.len()
        ));
    }
    if first.history != second.history {
        differences.push("histories differ".to_string());
    }
    if first.trace != second.trace {
        differences.push("traces differ".to_string());
    }
    (!differences.is_empty())
        .then(|| format!("two runs of one seed differ: {}", differences.join("; ")))
}

/// Consumer group runs: what their rebalances cost, summed over a sweep's runs (each
/// run's figures from its `group` summary), so two sweeps over the same seeds compare
/// two protocols.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GroupTally {
    pub runs: u64,
    pub member_rebalances: u64,
    pub rebalance_ms: u64,
    pub unowned_ms: u64,
}

impl GroupTally {
    fn plus(self, o: GroupTally) -> GroupTally {
        GroupTally {
            runs: self.runs + o.runs,
            member_rebalances: self.member_rebalances + o.member_rebalances,
            rebalance_ms: self.rebalance_ms + o.rebalance_ms,
            unowned_ms: self.unowned_ms + o.unowned_ms,
        }
    }
}

/// What a sweep keeps of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedRecord {
    pub seed: u64,
    pub events: u64,
    /// A consumer group run's rebalance figures (`runs` = 1).
    pub group: GroupTally,
    /// Forbidden anomaly kinds (deduplicated, sorted); empty means the seed passed.
    pub forbidden: Vec<String>,
    /// Kinds seen only as allowed by the configuration.
    pub allowed: Vec<String>,
    pub panic: Option<String>,
}

impl SeedRecord {
    pub fn ok(&self) -> bool {
        self.forbidden.is_empty()
    }

    /// Reduce an outcome to its record, dropping the (possibly large) result.
    pub fn from_outcome(seed: u64, outcome: Outcome) -> SeedRecord {
        match outcome {
            Outcome::Done(result) => {
                let mut forbidden = BTreeSet::new();
                let mut allowed = BTreeSet::new();
                for anomaly in &result.anomalies {
                    if anomaly.allowed {
                        allowed.insert(anomaly.kind.clone());
                    } else {
                        forbidden.insert(anomaly.kind.clone());
                    }
                }
                if !result.ok && forbidden.is_empty() {
                    forbidden.insert(KIND_UNEXPLAINED.to_string());
                }
                let group = result
                    .stats
                    .group
                    .map_or_else(GroupTally::default, |g| GroupTally {
                        runs: 1,
                        member_rebalances: g.member_rebalances,
                        rebalance_ms: g.rebalance_ms,
                        unowned_ms: g.unowned_ms,
                    });
                SeedRecord {
                    seed,
                    events: result.events,
                    group,
                    forbidden: forbidden.into_iter().collect(),
                    allowed: allowed.into_iter().collect(),
                    panic: None,
                }
            }
            Outcome::Panicked {
                message,
                nondeterminism,
            } => {
                let mut forbidden = vec![KIND_PANIC.to_string()];
                if nondeterminism.is_some() {
                    forbidden.push(KIND_NONDETERMINISM.to_string());
                }
                forbidden.sort();
                SeedRecord {
                    seed,
                    events: 0,
                    group: GroupTally::default(),
                    forbidden,
                    allowed: Vec::new(),
                    panic: Some(message),
                }
            }
        }
    }
}

/// One failing seed, as the final table and `failing_seeds` need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub seed: u64,
    pub kinds: Vec<String>,
    pub panic: Option<String>,
}

/// The order-independent summary of many runs of one scenario.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub runs: u64,
    pub events: u64,
    /// Kind -> number of runs with that kind as a forbidden anomaly.
    pub anomaly_counts: BTreeMap<String, u64>,
    /// Kind -> number of runs showing it as allowed.
    pub allowed_counts: BTreeMap<String, u64>,
    /// Sorted by seed once [`Tally::finish`] ran.
    pub failing: Vec<Failure>,
    /// The lowest seed whose run was refused as bad input, with the reason.
    pub setup_error: Option<(u64, String)>,
    pub group: GroupTally,
}

impl Tally {
    pub fn with_record(mut self, record: SeedRecord) -> Tally {
        self.runs += 1;
        self.events = self.events.saturating_add(record.events);
        self.group = self.group.plus(record.group);
        for kind in &record.forbidden {
            *self.anomaly_counts.entry(kind.clone()).or_default() += 1;
        }
        for kind in &record.allowed {
            *self.allowed_counts.entry(kind.clone()).or_default() += 1;
        }
        if !record.ok() {
            self.failing.push(Failure {
                seed: record.seed,
                kinds: record.forbidden,
                panic: record.panic,
            });
        }
        self
    }

    fn add_setup_error(mut self, seed: u64, error: SetupError) -> Tally {
        if self
            .setup_error
            .as_ref()
            .is_none_or(|(lowest, _)| seed < *lowest)
        {
            self.setup_error = Some((seed, error.0));
        }
        self
    }

    pub fn merge(mut self, other: Tally) -> Tally {
        self.runs += other.runs;
        self.events = self.events.saturating_add(other.events);
        self.group = self.group.plus(other.group);
        for (kind, count) in other.anomaly_counts {
            *self.anomaly_counts.entry(kind).or_default() += count;
        }
        for (kind, count) in other.allowed_counts {
            *self.allowed_counts.entry(kind).or_default() += count;
        }
        self.failing.extend(other.failing);
        if let Some((seed, reason)) = other.setup_error {
            self = self.add_setup_error(seed, SetupError(reason));
        }
        self
    }

    /// Put the failing seeds in seed order, whatever order the workers finished in.
    pub fn finish(&mut self) {
        self.failing.sort_by_key(|failure| failure.seed);
    }

    pub fn ok(&self) -> bool {
        self.failing.is_empty() && self.setup_error.is_none()
    }
}

/// One scenario's sweep.
#[derive(Clone, Debug)]
pub struct ScenarioSweep {
    pub scenario: String,
    pub tally: Tally,
    /// Wall time spent on this scenario (human output and `wall_ms` only).
    pub wall: Duration,
}

/// Why a sweep could not start (exit 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SweepError(pub String);

/// Live progress shared by the workers; the bar is hidden when stderr is not a terminal.
pub struct Progress {
    pub bar: ProgressBar,
    failures: AtomicU64,
}

impl Progress {
    pub fn new(bar: ProgressBar) -> Progress {
        Progress {
            bar,
            failures: AtomicU64::new(0),
        }
    }

    fn seed_done(&self, record: &SeedRecord) {
        if !record.ok() {
            let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            self.bar.set_message(format!("{failures} failing"));
        }
        self.bar.inc(1);
    }
}

/// The options of one seed's run; sweeps never keep history or trace.
pub fn seed_options(scenario: &str, seed: u64, common: &Common) -> RunOptions {
    RunOptions {
        scenario: scenario.to_string(),
        seed,
        bugs: common.bugs.clone(),
        sets: common.sets.clone(),
        keep_history: false,
        keep_trace: false,
        plan: None,
    }
}

fn run_seed(scenario: &str, seed: u64, common: &Common) -> Result<SeedRecord, SetupError> {
    let outcome = run_checked(
        &seed_options(scenario, seed, common),
        common.check_determinism,
    )?;
    Ok(SeedRecord::from_outcome(seed, outcome))
}

/// Sweep `plan` for every scenario in `scenarios`, one after another, each in parallel on
/// a pool of `jobs` threads (`None`: one per core).
///
/// Each scenario's first seed runs before the parallel part, so that a request the
/// simulator refuses (unknown scenario or bug, bad `--set`) stops the sweep with exit 2
/// before thousands of runs repeat the same refusal.
pub fn sweep(
    scenarios: &[String],
    plan: SeedPlan,
    jobs: Option<usize>,
    common: &Common,
    progress: &Progress,
) -> Result<Vec<ScenarioSweep>, SweepError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.unwrap_or(0))
        .thread_name(|index| format!("sim-worker-{index}"))
        .build()
        .map_err(|error| SweepError(format!("cannot start the worker threads: {error}")))?;
    install_panic_capture();
    set_quiet_panics(true);
    let result = pool.install(|| sweep_in_pool(scenarios, plan, common, progress));
    set_quiet_panics(false);
    result
}

fn sweep_in_pool(
    scenarios: &[String],
    plan: SeedPlan,
    common: &Common,
    progress: &Progress,
) -> Result<Vec<ScenarioSweep>, SweepError> {
    let mut firsts = Vec::with_capacity(scenarios.len());
    for scenario in scenarios {
        let started = Instant::now();
        let tally = if plan.is_empty() {
            check_scenario_name(scenario)?;
            Tally::default()
        } else {
            let record = run_seed(scenario, plan.seed(0), common).map_err(|error| {
                // With `--scenario all`, say which scenario refused.
                if scenarios.len() > 1 {
                    SweepError(format!("{scenario}: {}", error.0))
                } else {
                    SweepError(error.0)
                }
            })?;
            progress.seed_done(&record);
            Tally::default().with_record(record)
        };
        firsts.push((tally, started.elapsed()));
    }
    let mut sweeps = Vec::with_capacity(scenarios.len());
    for (scenario, (first, first_wall)) in scenarios.iter().zip(firsts) {
        let started = Instant::now();
        let rest = (1..plan.len().max(1))
            .into_par_iter()
            .map(|position| {
                let seed = plan.seed(position);
                match run_seed(scenario, seed, common) {
                    Ok(record) => {
                        progress.seed_done(&record);
                        Tally::default().with_record(record)
                    }
                    Err(error) => {
                        progress.bar.inc(1);
                        Tally::default().add_setup_error(seed, error)
                    }
                }
            })
            .reduce(Tally::default, Tally::merge);
        let mut tally = first.merge(rest);
        tally.finish();
        sweeps.push(ScenarioSweep {
            scenario: scenario.clone(),
            tally,
            wall: first_wall + started.elapsed(),
        });
    }
    Ok(sweeps)
}

/// With no seed to run (an empty shard), the name is all there is to check.
fn check_scenario_name(scenario: &str) -> Result<(), SweepError> {
    if run::scenario_list()
        .iter()
        .any(|(name, _)| *name == scenario)
    {
        Ok(())
    } else {
        Err(SweepError(format!(
            "unknown scenario '{scenario}' (see --list-scenarios)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seed: u64, forbidden: &[&str], allowed: &[&str]) -> SeedRecord {
        SeedRecord {
            seed,
            group: GroupTally::default(),
            events: seed * 10,
            forbidden: forbidden.iter().map(|k| k.to_string()).collect(),
            allowed: allowed.iter().map(|k| k.to_string()).collect(),
            panic: None,
        }
    }

    #[test]
    fn tally_does_not_depend_on_order() {
        let records = [
            record(3, &["lost-write"], &[]),
            record(1, &[], &["unseen"]),
            record(2, &["lost-write", "duplicate"], &["unseen"]),
            record(0, &[], &[]),
        ];
        let forward = records
            .iter()
            .cloned()
            .fold(Tally::default(), Tally::with_record);
        let mut backward = records
            .iter()
            .rev()
            .cloned()
            .fold(Tally::default(), Tally::with_record);
        let mut split = Tally::default()
            .with_record(records[2].clone())
            .merge(
                Tally::default()
                    .with_record(records[0].clone())
                    .with_record(records[3].clone()),
            )
            .merge(Tally::default().with_record(records[1].clone()));
        let mut forward = forward;
        forward.finish();
        backward.finish();
        split.finish();
        assert_eq!(forward, backward);
        assert_eq!(forward, split);
        assert_eq!(forward.runs, 4);
        assert_eq!(forward.events, 60);
        assert_eq!(forward.anomaly_counts.get("lost-write"), Some(&2));
        assert_eq!(forward.allowed_counts.get("unseen"), Some(&2));
        assert_eq!(
            forward.failing.iter().map(|f| f.seed).collect::<Vec<_>>(),
            vec![2, 3]
        );
    }

    #[test]
    fn panics_become_failing_records() {
        install_panic_capture();
        set_quiet_panics(true);
        let caught = panic::catch_unwind(|| panic!("boom {}", 7));
        set_quiet_panics(false);
        assert!(caught.is_err());
        let message = LAST_PANIC
            .with(|last| last.borrow_mut().take())
            .unwrap_or_default();
        assert!(message.starts_with("boom 7 (at "), "{message}");
        let record = SeedRecord::from_outcome(
            5,
            Outcome::Panicked {
                message,
                nondeterminism: None,
            },
        );
        assert!(!record.ok());
        assert_eq!(record.forbidden, vec![KIND_PANIC]);
    }
}
