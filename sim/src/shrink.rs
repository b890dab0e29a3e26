//! Shrinking a failing run: record its plan (fault schedule, workload, phases) as data,
//! then delta-debug it — drop faults (ddmin), thin the workload, shorten the phases —
//! keeping each change only while the same anomaly kind still appears. The result is
//! a replay file (`--replay`) small enough to read in the trace.

use crate::run::{self, RunOptions, RunPlan, RunResult, SetupError};
use model::types::SimTime;

/// How big a run is, for the before/after report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub faults: usize,
    /// Completed client operations in the history.
    pub operations: u64,
    pub sim_time_ms: u64,
    pub events: u64,
}

impl Size {
    fn of(plan: &RunPlan, result: &RunResult) -> Size {
        Size {
            faults: plan.faults.len(),
            operations: result.ops.values().flat_map(|by| by.values()).sum(),
            sim_time_ms: result.sim_time_ms,
            events: result.events,
        }
    }
}

pub struct Shrunk {
    /// The anomaly kind kept throughout.
    pub kind: String,
    pub original: Size,
    pub shrunk: Size,
    /// The minimal run: the original options with the shrunk plan.
    pub options: RunOptions,
    /// Runs tried.
    pub runs: usize,
}

/// The first forbidden anomaly kind of a result (anomalies are sorted).
fn forbidden_kind(result: &RunResult) -> Option<String> {
    result
        .anomalies
        .iter()
        .find(|a| !a.allowed)
        .map(|a| a.kind.clone())
}

struct Shrinker {
    base: RunOptions,
    kind: String,
    runs: usize,
    max_runs: usize,
}

impl Shrinker {
    /// Does this plan still fail with the kind we keep? Counts against the budget.
    fn still_fails(&mut self, plan: &RunPlan) -> Result<bool, SetupError> {
        if self.runs >= self.max_runs {
            return Ok(false);
        }
        self.runs += 1;
        let opts = RunOptions {
            plan: Some(plan.clone()),
            ..self.base.clone()
        };
        let result = run::run(&opts)?;
        Ok(result
            .anomalies
            .iter()
            .any(|a| !a.allowed && a.kind == self.kind))
    }

    /// Zeller's ddmin over the fault list: remove chunks while the failure stays.
    fn drop_faults(&mut self, plan: &mut RunPlan) -> Result<(), SetupError> {
        let mut chunks = 2;
        while plan.faults.len() >= 2 && self.runs < self.max_runs {
            let len = plan.faults.len();
            let size = len.div_ceil(chunks);
            let mut reduced = false;
            for start in (0..len).step_by(size) {
                let mut candidate = plan.clone();
                candidate.faults.drain(start..(start + size).min(len));
                if self.still_fails(&candidate)? {
                    *plan = candidate;
                    chunks = (chunks - 1).max(2);
                    reduced = true;
                    break;
                }
            }
            if !reduced {
                if chunks >= len {
                    break;
                }
                chunks = (chunks * 2).min(len);
            }
        }
        if plan.faults.len() == 1 {
            let mut candidate = plan.clone();
            candidate.faults.clear();
            if self.still_fails(&candidate)? {
                *plan = candidate;
            }
        }
        Ok(())
    }

    /// Try one change; keep it if the failure stays.
    fn attempt(
        &mut self,
        plan: &mut RunPlan,
        change: impl FnOnce(&mut RunPlan) -> bool,
    ) -> Result<(), SetupError> {
        let mut candidate = plan.clone();
        if change(&mut candidate) && candidate != *plan && self.still_fails(&candidate)? {
            *plan = candidate;
        }
        Ok(())
    }

    /// Fewer clients, fewer and smaller operations.
    fn thin_workload(&mut self, plan: &mut RunPlan) -> Result<(), SetupError> {
        self.attempt(plan, |p| {
            p.workload.producers = 1;
            true
        })?;
        self.attempt(plan, |p| {
            p.workload.producer_threads = 1;
            true
        })?;
        self.attempt(plan, |p| {
            p.workload.consumers = 1;
            true
        })?;
        self.attempt(plan, |p| {
            p.workload.sends_per_op_max = 1;
            true
        })?;
        for _ in 0..4 {
            self.attempt(plan, |p| {
                p.workload.send_interval_ms *= 2;
                true
            })?;
        }
        Ok(())
    }

    /// End the safety phase soon after the last fault, and stop producers right then.
    fn shorten(&mut self, plan: &mut RunPlan) -> Result<(), SetupError> {
        let last_fault = plan
            .faults
            .iter()
            .map(|f| f.at)
            .max()
            .unwrap_or(SimTime::ZERO);
        let tail = plan.phases.deadline.since(plan.phases.stop_producers_at);
        for slack_ms in [1_000, 5_000, 15_000] {
            let heal = last_fault.plus_ms(slack_ms);
            self.attempt(plan, |p| {
                if heal >= p.phases.heal_at {
                    return false;
                }
                p.phases.heal_at = heal;
                p.phases.stop_producers_at = heal;
                p.phases.deadline = heal.plus(tail);
                true
            })?;
        }
        self.attempt(plan, |p| {
            p.phases.stop_producers_at = p.phases.heal_at;
            p.phases.deadline = p.phases.heal_at.plus(tail);
            true
        })
    }
}

/// Shrink the failing run `opts` within `max_runs` attempts. `Ok(None)` if it does
/// not fail (nothing to shrink).
pub fn shrink(opts: &RunOptions, max_runs: usize) -> Result<Option<Shrunk>, SetupError> {
    let (scenario, config) = run::setup(opts)?;
    let mut plan = match &opts.plan {
        Some(plan) => plan.clone(),
        None => run::draw_plan(&scenario, &config, opts.seed),
    };
    let base = RunOptions {
        keep_history: false,
        keep_trace: false,
        plan: None,
        ..opts.clone()
    };
    let first = run::run(&RunOptions {
        plan: Some(plan.clone()),
        ..base.clone()
    })?;
    let Some(kind) = forbidden_kind(&first) else {
        return Ok(None);
    };
    let original = Size::of(&plan, &first);
    let mut shrinker = Shrinker {
        base,
        kind,
        runs: 1,
        max_runs,
    };
    shrinker.drop_faults(&mut plan)?;
    shrinker.thin_workload(&mut plan)?;
    shrinker.shorten(&mut plan)?;
    shrinker.drop_faults(&mut plan)?;
    let options = RunOptions {
        plan: Some(plan.clone()),
        ..shrinker.base.clone()
    };
    let last = run::run(&options)?;
    Ok(Some(Shrunk {
        kind: shrinker.kind,
        original,
        shrunk: Size::of(&plan, &last),
        options,
        runs: shrinker.runs + 1,
    }))
}

/// A replay file: everything `--replay` needs to run the same thing again.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplayFile {
    pub scenario: String,
    pub seed: u64,
    pub bugs: Vec<String>,
    pub sets: Vec<(String, String)>,
    pub plan: RunPlan,
}

impl ReplayFile {
    pub fn from_options(opts: &RunOptions) -> Option<ReplayFile> {
        Some(ReplayFile {
            scenario: opts.scenario.clone(),
            seed: opts.seed,
            bugs: opts.bugs.clone(),
            sets: opts.sets.clone(),
            plan: opts.plan.clone()?,
        })
    }

    pub fn into_options(self) -> RunOptions {
        RunOptions {
            scenario: self.scenario,
            seed: self.seed,
            bugs: self.bugs,
            sets: self.sets,
            plan: Some(self.plan),
            ..RunOptions::default()
        }
    }
}
