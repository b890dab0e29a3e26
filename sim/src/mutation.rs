//! `sim --mutation-score`: does the checking have teeth? Every bug switch of
//! `--list-bugs` (`design/bugs.md`) is switched on, one at a time, and swept over the
//! seed range in every scenario that exercises it ([`scenarios::exercising`]); the
//! correct broker is swept over the same seeds in each of those scenarios. A switch is
//! *detected* when some seed fails with a forbidden anomaly; a failing seed of the
//! correct broker is a *false alarm*.
//!
//! Every figure comes from sweep [`Tally`]s, whose failing seeds are sorted by seed: the
//! seeds to first detection are the position of the lowest failing seed in the range
//! (plus one), never the order in which workers happened to finish, so the score does
//! not depend on `--jobs`. Each (switch, scenario) pair runs the whole range, so the
//! failing-seed counts are exact too.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::cli::{Common, SeedPlan, SeedRange};
use crate::output::{self, SeedsJson};
use crate::run;
use crate::sweep::{self, Progress, ScenarioSweep, SweepError, Tally, KIND_NONDETERMINISM};

/// One bug switch and the scenarios that exercise it, in `--list-bugs` order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchPlan {
    pub bug: &'static str,
    /// The KIP or JIRA it comes from.
    pub source: &'static str,
    pub scenarios: Vec<&'static str>,
}

/// The switches of `--list-bugs` (not the hidden test-only ones), each with the
/// scenarios of [`scenarios::exercising`].
pub fn plan() -> Vec<SwitchPlan> {
    run::bug_list()
        .into_iter()
        .map(|(bug, source, _)| SwitchPlan {
            bug,
            source,
            scenarios: model::bug::Bug::parse(bug)
                .map(|parsed| scenarios::exercising(parsed).to_vec())
                .unwrap_or_default(),
        })
        .collect()
}

/// The scenarios the correct broker runs: every scenario some switch runs, in
/// `--list-scenarios` order (names the catalogue does not know come last, in plan order,
/// so that the sweep refuses them by name).
pub fn baseline_scenarios(plan: &[SwitchPlan]) -> Vec<&'static str> {
    let used: Vec<&'static str> = plan
        .iter()
        .flat_map(|switch| switch.scenarios.iter().copied())
        .collect();
    let mut ordered: Vec<&'static str> = run::scenario_list()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| used.contains(name))
        .collect();
    for name in used {
        if !ordered.contains(&name) {
            ordered.push(name);
        }
    }
    ordered
}

/// One scenario's sweep under one switch (or none), reduced to what the score needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioScore {
    pub scenario: String,
    pub tally: Tally,
}

impl ScenarioScore {
    /// 1 + the position in the range of the lowest failing seed, if any seed failed.
    pub fn seeds_to_detection(&self, range: SeedRange) -> Option<u64> {
        self.tally
            .failing
            .iter()
            .map(|failure| failure.seed)
            .min()
            .map(|seed| seed - range.start + 1)
    }

    pub fn failing_seeds(&self) -> u64 {
        self.tally.failing.len() as u64
    }
}

/// One switch's result over all its scenarios.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchScore {
    pub bug: &'static str,
    pub source: &'static str,
    /// In the order of [`scenarios::exercising`].
    pub scenarios: Vec<ScenarioScore>,
}

impl SwitchScore {
    /// The scenario with the fewest seeds to first detection (the earlier scenario of
    /// the list on a tie), and that number.
    pub fn first_detection(&self, range: SeedRange) -> Option<(&ScenarioScore, u64)> {
        let mut best: Option<(&ScenarioScore, u64)> = None;
        for one in &self.scenarios {
            if let Some(seeds) = one.seeds_to_detection(range) {
                if best.is_none_or(|(_, fewest)| seeds < fewest) {
                    best = Some((one, seeds));
                }
            }
        }
        best
    }

    pub fn detected(&self) -> bool {
        self.scenarios
            .iter()
            .any(|one| !one.tally.failing.is_empty())
    }

    pub fn failing_seeds(&self) -> u64 {
        self.scenarios
            .iter()
            .map(ScenarioScore::failing_seeds)
            .sum()
    }

    pub fn runs(&self) -> u64 {
        self.scenarios.iter().map(|one| one.tally.runs).sum()
    }

    /// Forbidden anomaly kind -> runs showing it, over all scenarios.
    pub fn anomaly_kinds(&self) -> BTreeMap<String, u64> {
        let mut kinds = BTreeMap::new();
        for one in &self.scenarios {
            for (kind, count) in &one.tally.anomaly_counts {
                *kinds.entry(kind.clone()).or_default() += count;
            }
        }
        kinds
    }
}

/// The whole score.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MutationScore {
    pub range: SeedRange,
    pub switches: Vec<SwitchScore>,
    /// The correct broker, one entry per scenario of [`baseline_scenarios`].
    pub baseline: Vec<ScenarioScore>,
}

impl MutationScore {
    pub fn detected(&self) -> usize {
        self.switches.iter().filter(|s| s.detected()).count()
    }

    /// Failing seeds of the correct broker, over all its scenarios.
    pub fn false_alarms(&self) -> u64 {
        self.baseline.iter().map(ScenarioScore::failing_seeds).sum()
    }

    /// The median of the seeds to first detection over the detected switches (the mean
    /// of the two middle values for an even count).
    pub fn median_seeds_to_detection(&self) -> Option<f64> {
        let mut values: Vec<u64> = self
            .switches
            .iter()
            .filter_map(|switch| switch.first_detection(self.range).map(|(_, n)| n))
            .collect();
        values.sort_unstable();
        let middle = values.len() / 2;
        match values.len() {
            0 => None,
            n if n % 2 == 1 => Some(values[middle] as f64),
            _ => Some((values[middle - 1] + values[middle]) as f64 / 2.0),
        }
    }

    /// Every switch detected and no false alarm: exit 0.
    pub fn ok(&self) -> bool {
        self.detected() == self.switches.len() && self.false_alarms() == 0
    }

    /// The lowest seed refused as bad input in the middle of a sweep, if any (exit 2).
    pub fn setup_error(&self) -> Option<String> {
        let switch_errors = self.switches.iter().flat_map(|switch| {
            switch
                .scenarios
                .iter()
                .map(move |one| (Some(switch.bug), one))
        });
        let baseline_errors = self.baseline.iter().map(|one| (None, one));
        switch_errors.chain(baseline_errors).find_map(|(bug, one)| {
            one.tally.setup_error.as_ref().map(|(seed, reason)| {
                let bug = bug.map(|b| format!(" --bug {b}")).unwrap_or_default();
                format!("{}{bug} seed {seed}: {reason}", one.scenario)
            })
        })
    }
}

/// The common options of one switch's sweeps: the caller's, plus `--bug`.
fn with_bug(common: &Common, bug: Option<&str>) -> Common {
    Common {
        bugs: bug.map(|b| vec![b.to_string()]).unwrap_or_default(),
        ..common.clone()
    }
}

fn scores(sweeps: Vec<ScenarioSweep>) -> Vec<ScenarioScore> {
    sweeps
        .into_iter()
        .map(|one| ScenarioScore {
            scenario: one.scenario,
            tally: one.tally,
        })
        .collect()
}

/// How many runs [`score`] makes (for the progress bar).
pub fn total_runs(plan: &[SwitchPlan], range: SeedRange) -> u64 {
    let pairs: usize = plan.iter().map(|switch| switch.scenarios.len()).sum();
    let pairs = pairs + baseline_scenarios(plan).len();
    (range.end - range.start).saturating_mul(pairs as u64)
}

/// Run the correct broker, then every switch of `plan` over its scenarios, each sweep in
/// parallel on `jobs` threads (`None`: one per core). `common.bugs` is ignored.
pub fn score(
    plan: &[SwitchPlan],
    range: SeedRange,
    jobs: Option<usize>,
    common: &Common,
    progress: &Progress,
) -> Result<MutationScore, SweepError> {
    let seeds = SeedPlan { range, shard: None };
    let sweep_of = |scenarios: &[&'static str], bug: Option<&str>| {
        let names: Vec<String> = scenarios.iter().map(|s| s.to_string()).collect();
        sweep::sweep(&names, seeds, jobs, &with_bug(common, bug), progress)
            .map(scores)
            .map_err(|error| match bug {
                Some(bug) => SweepError(format!("--bug {bug}: {}", error.0)),
                None => error,
            })
    };
    // The correct broker first: a `--set` the simulator refuses is then reported as it
    // is, not as a problem of the first switch.
    let baseline = sweep_of(&baseline_scenarios(plan), None)?;
    let mut switches = Vec::with_capacity(plan.len());
    for switch in plan {
        switches.push(SwitchScore {
            bug: switch.bug,
            source: switch.source,
            scenarios: sweep_of(&switch.scenarios, Some(switch.bug))?,
        });
    }
    Ok(MutationScore {
        range,
        switches,
        baseline,
    })
}

/// The `--mutation-score --json` line.
#[derive(Serialize, Debug)]
pub struct MutationScoreJson {
    pub mutation_score: ScoreJson,
}

#[derive(Serialize, Debug)]
pub struct ScoreJson {
    pub seeds: SeedsJson,
    pub switches: Vec<SwitchJson>,
    pub detected: usize,
    pub total: usize,
    /// Scenario -> failing seeds of the correct broker.
    pub false_alarms: BTreeMap<String, u64>,
    /// Over the detected switches; `null` when none was detected.
    pub median_seeds_to_detection: Option<f64>,
    pub wall_ms: u64,
}

#[derive(Serialize, Debug)]
pub struct SwitchJson {
    pub bug: &'static str,
    pub source: &'static str,
    pub detected: bool,
    /// The scenario of the first detection; `null` when not detected.
    pub scenario: Option<String>,
    pub seeds_to_detection: Option<u64>,
    pub failing_seeds: u64,
    pub runs: u64,
    pub anomaly_kinds: BTreeMap<String, u64>,
    /// The same figures per scenario, in the order they were tried.
    pub scenarios: Vec<ScenarioJson>,
}

#[derive(Serialize, Debug)]
pub struct ScenarioJson {
    pub scenario: String,
    pub seeds_to_detection: Option<u64>,
    pub failing_seeds: u64,
    pub runs: u64,
    pub anomaly_kinds: BTreeMap<String, u64>,
}

/// The JSON line (without the newline).
pub fn json(score: &MutationScore, wall_ms: u64) -> String {
    let range = score.range;
    let switches = score
        .switches
        .iter()
        .map(|switch| {
            let first = switch.first_detection(range);
            SwitchJson {
                bug: switch.bug,
                source: switch.source,
                detected: switch.detected(),
                scenario: first.map(|(one, _)| one.scenario.clone()),
                seeds_to_detection: first.map(|(_, seeds)| seeds),
                failing_seeds: switch.failing_seeds(),
                runs: switch.runs(),
                anomaly_kinds: switch.anomaly_kinds(),
                scenarios: switch
                    .scenarios
                    .iter()
                    .map(|one| ScenarioJson {
                        scenario: one.scenario.clone(),
                        seeds_to_detection: one.seeds_to_detection(range),
                        failing_seeds: one.failing_seeds(),
                        runs: one.tally.runs,
                        anomaly_kinds: one.tally.anomaly_counts.clone(),
                    })
                    .collect(),
            }
        })
        .collect();
    let value = MutationScoreJson {
        mutation_score: ScoreJson {
            seeds: SeedsJson {
                start: range.start,
                end: range.end,
            },
            switches,
            detected: score.detected(),
            total: score.switches.len(),
            false_alarms: score
                .baseline
                .iter()
                .map(|one| (one.scenario.clone(), one.failing_seeds()))
                .collect(),
            median_seeds_to_detection: score.median_seeds_to_detection(),
            wall_ms,
        },
    };
    serde_json::to_string(&value).expect("JSON of plain structs and string-keyed maps cannot fail")
}

/// `2`, `2.5`: a median as people write it.
fn number(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn kinds_text(kinds: &BTreeMap<String, u64>) -> String {
    if kinds.is_empty() {
        return "-".to_string();
    }
    kinds
        .iter()
        .map(|(kind, count)| format!("{kind} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows of the human table, header first: switch, source, scenario(s), detected,
/// seeds to first detection, failing seeds / seeds, anomaly kinds (runs).
pub fn table_rows(score: &MutationScore) -> Vec<[String; 7]> {
    let range = score.range;
    let mut rows = vec![[
        "switch".to_string(),
        "source".to_string(),
        "scenario(s)".to_string(),
        "detected".to_string(),
        "seeds to 1st detection".to_string(),
        "failing seeds / seeds".to_string(),
        "anomaly kinds (runs)".to_string(),
    ]];
    for switch in &score.switches {
        let first = switch.first_detection(range);
        let several = switch.scenarios.len() > 1;
        let scenarios = if switch.scenarios.is_empty() {
            "(none)".to_string()
        } else {
            switch
                .scenarios
                .iter()
                .map(|one| {
                    let marked = several
                        && first.is_some_and(|(detecting, _)| detecting.scenario == one.scenario);
                    format!("{}{}", one.scenario, if marked { "*" } else { "" })
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut failing = format!("{}/{}", switch.failing_seeds(), switch.runs());
        if several {
            let parts: Vec<String> = switch
                .scenarios
                .iter()
                .map(|one| one.failing_seeds().to_string())
                .collect();
            let _ = write!(failing, " ({})", parts.join("+"));
        }
        rows.push([
            switch.bug.to_string(),
            switch.source.to_string(),
            scenarios,
            if switch.detected() { "yes" } else { "NO" }.to_string(),
            first.map_or("-".to_string(), |(_, seeds)| seeds.to_string()),
            failing,
            kinds_text(&switch.anomaly_kinds()),
        ]);
    }
    rows
}

/// The human text (stderr): the table, the first detecting seed of each switch with
/// the command that reproduces it, the correct broker's sweeps, and a last line with
/// the score, the median seeds to first detection and the false alarms.
pub fn summary(score: &MutationScore, threads: usize, common: &Common, wall: Duration) -> String {
    let range = score.range;
    let mut out = String::new();
    let runs: u64 = score
        .switches
        .iter()
        .map(SwitchScore::runs)
        .chain(score.baseline.iter().map(|one| one.tally.runs))
        .sum();
    let _ = writeln!(
        out,
        "mutation score over seeds {}..{}: {} bug switches, {runs} runs on {threads} worker threads, {:.2} s wall",
        range.start,
        range.end,
        score.switches.len(),
        wall.as_secs_f64()
    );
    let rows = table_rows(score);
    let mut widths = [0usize; 7];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in &rows {
        let mut line = String::new();
        for (column, (cell, width)) in row.iter().zip(widths).enumerate() {
            if column == 6 {
                line.push_str(cell);
            } else if column == 4 {
                let _ = write!(line, "{cell:>width$}  ");
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if score
        .switches
        .iter()
        .any(|switch| switch.scenarios.len() > 1)
    {
        out.push_str(
            "(* the scenario of the first detection; failing seeds per scenario in parentheses, in the order listed)\n",
        );
    }
    let firsts: Vec<(&SwitchScore, &ScenarioScore)> = score
        .switches
        .iter()
        .filter_map(|switch| switch.first_detection(range).map(|(one, _)| (switch, one)))
        .collect();
    if !firsts.is_empty() {
        out.push_str("first detecting seed of each switch:\n");
        let width = firsts.iter().map(|(s, _)| s.bug.len()).max().unwrap_or(0);
        let kinds_width = firsts
            .iter()
            .filter_map(|(_, one)| one.tally.failing.first())
            .map(|failure| failure.kinds.join(",").len())
            .max()
            .unwrap_or(0);
        for (switch, one) in firsts {
            if let Some(failure) = one.tally.failing.first() {
                let nondeterministic = failure.kinds.iter().any(|k| k == KIND_NONDETERMINISM);
                let repro = output::repro_command(
                    &one.scenario,
                    failure.seed,
                    &with_bug(common, Some(switch.bug)),
                    nondeterministic,
                );
                let _ = writeln!(
                    out,
                    "  {:<width$}  {:<kinds_width$}  {repro}",
                    switch.bug,
                    failure.kinds.join(",")
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "correct broker (no switch), seeds {}..{}:",
        range.start, range.end
    );
    let width = score
        .baseline
        .iter()
        .map(|one| one.scenario.len())
        .max()
        .unwrap_or(0);
    for one in &score.baseline {
        let _ = writeln!(
            out,
            "  {:<width$}  {}/{} failing (false alarms){}",
            one.scenario,
            one.failing_seeds(),
            one.tally.runs,
            if one.tally.anomaly_counts.is_empty() {
                String::new()
            } else {
                format!(": {}", kinds_text(&one.tally.anomaly_counts))
            }
        );
        for failure in one.tally.failing.iter().take(output::FAILING_ROWS_MAX) {
            let nondeterministic = failure.kinds.iter().any(|k| k == KIND_NONDETERMINISM);
            let _ = writeln!(
                out,
                "    {}  {}",
                failure.kinds.join(","),
                output::repro_command(
                    &one.scenario,
                    failure.seed,
                    &with_bug(common, None),
                    nondeterministic
                )
            );
        }
        if one.tally.failing.len() > output::FAILING_ROWS_MAX {
            let _ = writeln!(
                out,
                "    ... {} more",
                one.tally.failing.len() - output::FAILING_ROWS_MAX
            );
        }
    }
    let undetected: Vec<&str> = score
        .switches
        .iter()
        .filter(|switch| !switch.detected())
        .map(|switch| switch.bug)
        .collect();
    let not_detected = if undetected.is_empty() {
        String::new()
    } else {
        format!(" (NOT detected: {})", undetected.join(", "))
    };
    let median = score
        .median_seeds_to_detection()
        .map_or("- (none detected)".to_string(), number);
    let _ = writeln!(
        out,
        "mutation score: {}/{} switches detected{not_detected}; median seeds to first detection {median}; false alarms {}",
        score.detected(),
        score.switches.len(),
        score.false_alarms()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::Failure;

    fn scenario(name: &str, failing: &[u64], runs: u64) -> ScenarioScore {
        let mut tally = Tally {
            runs,
            ..Tally::default()
        };
        // Deliberately out of order: the score must not depend on completion order.
        for &seed in failing.iter().rev() {
            tally.failing.push(Failure {
                seed,
                kinds: vec!["lost-write".to_string()],
                panic: None,
            });
            *tally
                .anomaly_counts
                .entry("lost-write".to_string())
                .or_default() += 1;
        }
        ScenarioScore {
            scenario: name.to_string(),
            tally,
        }
    }

    fn switch(bug: &'static str, scenarios: Vec<ScenarioScore>) -> SwitchScore {
        SwitchScore {
            bug,
            source: "KIP-0",
            scenarios,
        }
    }

    #[test]
    fn first_detection_is_by_seed_position_not_completion_order() {
        let range = SeedRange {
            start: 100,
            end: 140,
        };
        let one = switch(
            "a",
            vec![
                scenario("x", &[130, 109], 40),
                scenario("y", &[104, 139], 40),
                scenario("z", &[104], 40),
            ],
        );
        let (detecting, seeds) = one.first_detection(range).expect("detected");
        assert_eq!((detecting.scenario.as_str(), seeds), ("y", 5));
        assert_eq!(one.failing_seeds(), 5);
        assert_eq!(one.runs(), 120);
        assert_eq!(one.anomaly_kinds().get("lost-write"), Some(&5));
    }

    #[test]
    fn score_counts_detection_median_and_false_alarms() {
        let range = SeedRange { start: 0, end: 10 };
        let mut score = MutationScore {
            range,
            switches: vec![
                switch("a", vec![scenario("x", &[0], 10)]),
                switch("b", vec![scenario("x", &[3, 7], 10)]),
                switch("c", vec![scenario("x", &[], 10)]),
            ],
            baseline: vec![scenario("x", &[], 10)],
        };
        assert_eq!(score.detected(), 2);
        assert_eq!(score.median_seeds_to_detection(), Some(2.5));
        assert_eq!(score.false_alarms(), 0);
        assert!(!score.ok());
        let line = json(&score, 1);
        let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        let switches = &value["mutation_score"]["switches"];
        assert_eq!(switches[1]["seeds_to_detection"], 4);
        assert_eq!(switches[2]["detected"], false);
        assert_eq!(switches[2]["scenario"], serde_json::Value::Null);
        assert_eq!(value["mutation_score"]["false_alarms"]["x"], 0);
        score.switches.pop();
        assert!(score.ok());
        score.baseline = vec![scenario("x", &[5], 10)];
        assert_eq!(score.false_alarms(), 1);
        assert!(!score.ok());
        let common = Common {
            bugs: Vec::new(),
            sets: Vec::new(),
            json: false,
            check_determinism: false,
        };
        let text = summary(&score, 2, &common, Duration::ZERO);
        assert!(text.lines().last().unwrap_or("").contains("false alarms 1"));
    }

    #[test]
    fn every_listed_switch_is_planned_and_no_test_switch() {
        let plan = plan();
        assert_eq!(plan.len(), run::bug_list().len());
        assert!(plan.iter().all(|switch| switch.bug != "injected-panic"));
        let baseline = baseline_scenarios(&plan);
        for switch in &plan {
            for name in &switch.scenarios {
                assert!(baseline.contains(name));
            }
        }
    }
}
