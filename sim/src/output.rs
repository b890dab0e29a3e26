//! What `sim` prints: the `--json` objects of `design/cli.md` and the human text on
//! stderr.
//!
//! The JSON objects are serde structs whose fields are declared in cli.md's order (serde
//! writes struct fields in declaration order; maps are `BTreeMap`s, so their keys come
//! out sorted). That keeps the bytes stable without serde_json's `preserve_order`.
//! `wall_ms` is the only wall-clock value in any output; it is measured by the caller.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::cli::{Common, SeedPlan};
use crate::run::{RunAnomaly, RunResult, RunStats};
use crate::sweep::{ScenarioSweep, KIND_NONDETERMINISM, KIND_PANIC};

/// Failing seeds shown in a sweep's table before "... N more".
pub const FAILING_ROWS_MAX: usize = 20;

/// The one-run `--json` object.
#[derive(Serialize, Debug)]
pub struct RunJson<'a> {
    pub scenario: &'a str,
    pub seed: u64,
    pub bugs: &'a [String],
    pub ok: bool,
    pub events: u64,
    pub sim_time_ms: u64,
    pub wall_ms: u64,
    pub ops: &'a BTreeMap<String, BTreeMap<String, u64>>,
    pub anomalies: Vec<AnomalyJson<'a>>,
    pub trace_hash: &'a str,
}

#[derive(Serialize, Debug)]
pub struct AnomalyJson<'a> {
    pub kind: &'a str,
    /// `null` when the anomaly is not about one partition.
    pub partition: Option<&'a str>,
    pub detail: &'a str,
    pub ops: &'a [u64],
    pub allowed: bool,
}

impl<'a> From<&'a RunAnomaly> for AnomalyJson<'a> {
    fn from(anomaly: &'a RunAnomaly) -> Self {
        AnomalyJson {
            kind: &anomaly.kind,
            partition: anomaly.partition.as_deref(),
            detail: &anomaly.detail,
            ops: &anomaly.ops,
            allowed: anomaly.allowed,
        }
    }
}

/// The sweep `--json` object.
#[derive(Serialize, Debug)]
pub struct SweepJson {
    pub scenario: String,
    pub seeds: SeedsJson,
    /// `"K/N"` when `--shard` was given (an addition to cli.md's schema).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub runs: u64,
    pub ok: bool,
    pub failing_seeds: Vec<u64>,
    pub anomaly_counts: BTreeMap<String, u64>,
    pub allowed_counts: BTreeMap<String, u64>,
    pub events: u64,
    pub wall_ms: u64,
    /// Consumer group runs: their rebalance figures summed (an addition to cli.md's
    /// schema).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<crate::sweep::GroupTally>,
}

#[derive(Serialize, Debug, Clone, Copy)]
pub struct SeedsJson {
    pub start: u64,
    pub end: u64,
}

/// Serialize a struct of plain fields and string-keyed maps: cannot fail.
fn to_line<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("JSON of plain structs and string-keyed maps cannot fail")
}

/// The one-run JSON line.
pub fn run_json(result: &RunResult, wall_ms: u64) -> String {
    to_line(&RunJson {
        scenario: &result.scenario,
        seed: result.seed,
        bugs: &result.bugs,
        ok: result.ok,
        events: result.events,
        sim_time_ms: result.sim_time_ms,
        wall_ms,
        ops: &result.ops,
        anomalies: result.anomalies.iter().map(AnomalyJson::from).collect(),
        trace_hash: &result.trace_hash,
    })
}

/// The one-run JSON line for a run that panicked: no result, one `panic` anomaly.
pub fn panic_run_json(
    scenario: &str,
    seed: u64,
    bugs: &[String],
    message: &str,
    wall_ms: u64,
) -> String {
    let ops = BTreeMap::new();
    to_line(&RunJson {
        scenario,
        seed,
        bugs,
        ok: false,
        events: 0,
        sim_time_ms: 0,
        wall_ms,
        ops: &ops,
        anomalies: vec![AnomalyJson {
            kind: KIND_PANIC,
            partition: None,
            detail: message,
            ops: &[],
            allowed: false,
        }],
        trace_hash: "",
    })
}

fn seeds_json(plan: SeedPlan) -> SeedsJson {
    SeedsJson {
        start: plan.range.start,
        end: plan.range.end,
    }
}

fn shard_text(plan: SeedPlan) -> Option<String> {
    plan.shard
        .map(|shard| format!("{}/{}", shard.index, shard.count))
}

/// The JSON line of one scenario's sweep.
pub fn sweep_json(sweep: &ScenarioSweep, plan: SeedPlan) -> String {
    let tally = &sweep.tally;
    to_line(&SweepJson {
        scenario: sweep.scenario.clone(),
        seeds: seeds_json(plan),
        shard: shard_text(plan),
        runs: tally.runs,
        ok: tally.ok(),
        failing_seeds: tally.failing.iter().map(|failure| failure.seed).collect(),
        anomaly_counts: tally.anomaly_counts.clone(),
        allowed_counts: tally.allowed_counts.clone(),
        events: tally.events,
        wall_ms: millis(sweep.wall),
        group: (tally.group.runs > 0).then_some(tally.group),
    })
}

/// The combined line of `--scenario all`: counts summed over scenarios, `failing_seeds`
/// the sorted union (a seed failing in two scenarios appears once; the per-scenario
/// lines before it say which), `wall_ms` the whole sweep.
pub fn combined_sweep_json(sweeps: &[ScenarioSweep], plan: SeedPlan, wall_ms: u64) -> String {
    let mut failing = BTreeSet::new();
    let mut anomaly_counts = BTreeMap::new();
    let mut allowed_counts = BTreeMap::new();
    let (mut runs, mut events, mut ok) = (0u64, 0u64, true);
    for sweep in sweeps {
        let tally = &sweep.tally;
        runs += tally.runs;
        events = events.saturating_add(tally.events);
        ok &= tally.ok();
        failing.extend(tally.failing.iter().map(|failure| failure.seed));
        for (kind, count) in &tally.anomaly_counts {
            *anomaly_counts.entry(kind.clone()).or_default() += count;
        }
        for (kind, count) in &tally.allowed_counts {
            *allowed_counts.entry(kind.clone()).or_default() += count;
        }
    }
    to_line(&SweepJson {
        scenario: crate::cli::ALL_SCENARIOS.to_string(),
        seeds: seeds_json(plan),
        shard: shard_text(plan),
        runs,
        ok,
        failing_seeds: failing.into_iter().collect(),
        anomaly_counts,
        allowed_counts,
        events,
        wall_ms,
        group: None,
    })
}

/// Whole milliseconds, saturating (a sweep does not last 584 million years).
pub fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Quote one shell word if it needs it, so that a printed command can be pasted as is.
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,:/=@%+".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The exact command that reruns one seed with the same bugs and overrides, plus
/// `--check-determinism` when that is what failed (otherwise one run reproduces it).
pub fn repro_command(scenario: &str, seed: u64, common: &Common, nondeterministic: bool) -> String {
    let mut command = format!(
        "cargo run --release -p sim -- --seed {seed} --scenario {}",
        shell_word(scenario)
    );
    for bug in &common.bugs {
        let _ = write!(command, " --bug {}", shell_word(bug));
    }
    for (key, value) in &common.sets {
        let _ = write!(command, " --set {}", shell_word(&format!("{key}={value}")));
    }
    if nondeterministic {
        command.push_str(" --check-determinism");
    }
    command
}

/// (min, median, max) of a sample; the median of an even count is the lower middle
/// value, so that it is always one of the measured values (integer ms, no averaging).
pub fn min_median_max(values: &[u64]) -> Option<(u64, u64, u64)> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let (first, last) = (*sorted.first()?, *sorted.last()?);
    Some((first, sorted[(sorted.len() - 1) / 2], last))
}

/// "none" for an empty list, else the items joined by ", ".
pub fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

fn ops_line(outcomes: &BTreeMap<String, u64>) -> String {
    // ok, fail, info first (history.md's outcome order), then anything else sorted.
    let mut parts = Vec::new();
    for known in ["ok", "fail", "info"] {
        if let Some(count) = outcomes.get(known) {
            parts.push(format!("{known} {count}"));
        }
    }
    for (outcome, count) in outcomes {
        if !["ok", "fail", "info"].contains(&outcome.as_str()) {
            parts.push(format!("{outcome} {count}"));
        }
    }
    parts.join(", ")
}

fn stats_lines(out: &mut String, stats: &RunStats) {
    let _ = writeln!(
        out,
        "faults:       {} crashes, {} restarts, {} clean shutdowns, {} partitions, {} pauses",
        stats.crashes, stats.restarts, stats.shutdowns, stats.partitions, stats.pauses
    );
    let _ = writeln!(
        out,
        "elections:    {} leader elections ({} unclean)",
        stats.leader_elections, stats.unclean_elections
    );
    let _ = writeln!(
        out,
        "isr:          {} shrinks, {} expands; {} truncations",
        stats.isr_shrinks, stats.isr_expands, stats.truncations
    );
    let _ = writeln!(
        out,
        "messages:     {} sent, {} dropped",
        stats.messages_sent, stats.messages_dropped
    );
    match min_median_max(&stats.failover_ms) {
        Some((min, median, max)) => {
            let _ = writeln!(
                out,
                "failover:     min {min} ms, median {median} ms, max {max} ms ({} failovers, simulated)",
                stats.failover_ms.len()
            );
        }
        None => out.push_str("failover:     none measured\n"),
    }
    if stats.unavailable_ms.is_empty() {
        out.push_str("unavailable:  never\n");
    } else {
        let (total, max) = total_and_longest(&stats.unavailable_ms);
        let _ = writeln!(
            out,
            "unavailable:  {total} ms over {} windows (longest {max} ms, simulated)",
            stats.unavailable_ms.len()
        );
    }
    if stats.produce_refused > 0 {
        let (total, max) = total_and_longest(&stats.write_unavailable_ms);
        let _ = writeln!(
            out,
            "min ISR:      {} produce requests refused with NOT_ENOUGH_REPLICAS; writes unavailable {total} ms over {} windows (longest {max} ms, simulated)",
            stats.produce_refused,
            stats.write_unavailable_ms.len()
        );
    }
    if stats.batches_deduplicated + stats.batches_out_of_sequence > 0 {
        let _ = writeln!(
            out,
            "idempotence:  {} batches already in the log answered from the leader's window (not appended again); {} refused as out of sequence",
            stats.batches_deduplicated, stats.batches_out_of_sequence
        );
    }
    if let Some(t) = stats.transactions {
        let held = if t.exactly_once_held {
            "held"
        } else {
            "BROKEN"
        };
        let _ = writeln!(out, "transactions: {}; exactly-once {held}", t.figures());
    }
    if let Some(g) = stats.group {
        let _ = writeln!(out, "group:        {}", g.figures());
    }
}

/// The total and the longest of a list of windows (ms).
pub fn total_and_longest(windows_ms: &[u64]) -> (u64, u64) {
    (
        windows_ms.iter().sum(),
        windows_ms.iter().max().copied().unwrap_or(0),
    )
}

/// One anomaly as a line (plus its detail), for the run summary.
pub fn anomaly_line(anomaly: &RunAnomaly) -> String {
    let verdict = if anomaly.allowed {
        "allowed"
    } else {
        "FORBIDDEN"
    };
    let partition = anomaly.partition.as_deref().unwrap_or("-");
    let ops = if anomaly.ops.is_empty() {
        String::new()
    } else {
        let shown: Vec<String> = anomaly.ops.iter().take(12).map(u64::to_string).collect();
        let more = anomaly.ops.len().saturating_sub(12);
        let tail = if more > 0 {
            format!(", ... {more} more")
        } else {
            String::new()
        };
        format!(" ops [{}{tail}]", shown.join(", "))
    };
    format!(
        "  {verdict:<9} {} {partition}{ops}: {}",
        anomaly.kind,
        one_line(&anomaly.detail)
    )
}

/// Newlines folded into spaces, for table cells and one-line summaries.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The human summary of one run (stderr). Ends with "OK" or "FAILED" and, on failure,
/// the command that reproduces the run.
/// `replay`: the run came from this replay file, which is then what reproduces it.
pub fn run_summary(
    result: &RunResult,
    common: &Common,
    wall_ms: u64,
    replay: Option<&std::path::Path>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "scenario:     {}", result.scenario);
    let _ = writeln!(out, "seed:         {}", result.seed);
    let _ = writeln!(out, "bugs:         {}", list_or_none(&result.bugs));
    if !common.sets.is_empty() {
        let sets: Vec<String> = common
            .sets
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(out, "overrides:    {}", sets.join(" "));
    }
    for (key, value) in &result.config {
        let _ = writeln!(out, "config:       {key}={value}");
    }
    let _ = writeln!(
        out,
        "events:       {} in {} ms simulated ({wall_ms} ms wall); trace hash {}",
        result.events, result.sim_time_ms, result.trace_hash
    );
    if result.ops.is_empty() {
        out.push_str("ops:          none\n");
    }
    for (f, outcomes) in &result.ops {
        let _ = writeln!(out, "ops:          {f}: {}", ops_line(outcomes));
    }
    stats_lines(&mut out, &result.stats);
    let (allowed, forbidden): (Vec<&RunAnomaly>, Vec<&RunAnomaly>) =
        result.anomalies.iter().partition(|anomaly| anomaly.allowed);
    let _ = writeln!(
        out,
        "anomalies:    {} forbidden, {} allowed",
        forbidden.len(),
        allowed.len()
    );
    for anomaly in forbidden.iter().chain(allowed.iter()) {
        let _ = writeln!(out, "{}", anomaly_line(anomaly));
        let reason = result
            .allowed
            .iter()
            .find(|(kind, _)| *kind == anomaly.kind);
        if let (true, Some((_, reason))) = (anomaly.allowed, reason) {
            let _ = writeln!(out, "            allowed because: {}", one_line(reason));
        }
    }
    let ok = result.ok && forbidden.is_empty();
    out.push_str(if ok { "OK\n" } else { "FAILED\n" });
    if !ok {
        let nondeterministic = result
            .anomalies
            .iter()
            .any(|anomaly| anomaly.kind == KIND_NONDETERMINISM);
        let repro = match replay {
            Some(path) => format!("cargo run --release -p sim -- --replay {}", path.display()),
            None => repro_command(&result.scenario, result.seed, common, nondeterministic),
        };
        let _ = writeln!(out, "reproduce:    {repro}");
    }
    out
}

/// The human summary of a run that panicked.
pub fn panic_summary(
    scenario: &str,
    seed: u64,
    common: &Common,
    message: &str,
    nondeterministic: bool,
) -> String {
    format!(
        "scenario:     {scenario}\nseed:         {seed}\nbugs:         {}\n\
         panic:        {}\nFAILED\nreproduce:    {}\n",
        list_or_none(&common.bugs),
        one_line(message),
        repro_command(scenario, seed, common, nondeterministic)
    )
}

/// The final human text of a sweep (stderr): what was swept, the failing seeds (at most
/// [`FAILING_ROWS_MAX`] rows, with their repro commands), then one line per scenario
/// with runs, failures, events, wall time and seeds/s.
pub fn sweep_summary(
    sweeps: &[ScenarioSweep],
    plan: SeedPlan,
    threads: usize,
    common: &Common,
    total_wall: std::time::Duration,
) -> String {
    let mut out = String::new();
    let shard = shard_text(plan)
        .map(|shard| format!(", shard {shard}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "swept seeds {}..{}{shard} on {threads} worker threads",
        plan.range.start, plan.range.end
    );
    let several = sweeps.len() > 1;
    let failing: Vec<(&str, &crate::sweep::Failure)> = sweeps
        .iter()
        .flat_map(|sweep| {
            sweep
                .tally
                .failing
                .iter()
                .map(move |failure| (sweep.scenario.as_str(), failure))
        })
        .collect();
    if !failing.is_empty() {
        let _ = writeln!(out, "failing seeds ({}):", failing.len());
        let scenario_width = failing
            .iter()
            .map(|(s, _)| s.len())
            .max()
            .unwrap_or(0)
            .max(8);
        let seed_width = failing
            .iter()
            .map(|(_, f)| f.seed.to_string().len())
            .max()
            .unwrap_or(0)
            .max(4);
        let kinds_of = |failure: &crate::sweep::Failure| {
            let mut kinds = failure.kinds.join(",");
            if let Some(message) = &failure.panic {
                let mut message = one_line(message);
                if message.chars().count() > 80 {
                    message = message.chars().take(77).collect::<String>() + "...";
                }
                let _ = write!(kinds, " ({message})");
            }
            kinds
        };
        let kinds_width = failing
            .iter()
            .take(FAILING_ROWS_MAX)
            .map(|(_, f)| kinds_of(f).chars().count())
            .max()
            .unwrap_or(0)
            .max(9);
        if several {
            let _ = writeln!(
                out,
                "  {:<scenario_width$}  {:>seed_width$}  {:<kinds_width$}  repro",
                "scenario", "seed", "anomalies"
            );
        } else {
            let _ = writeln!(
                out,
                "  {:>seed_width$}  {:<kinds_width$}  repro",
                "seed", "anomalies"
            );
        }
        for (scenario, failure) in failing.iter().take(FAILING_ROWS_MAX) {
            let nondeterministic = failure.kinds.iter().any(|kind| kind == KIND_NONDETERMINISM);
            let repro = repro_command(scenario, failure.seed, common, nondeterministic);
            let kinds = kinds_of(failure);
            if several {
                let _ = writeln!(out, "  {scenario:<scenario_width$}  {:>seed_width$}  {kinds:<kinds_width$}  {repro}", failure.seed);
            } else {
                let _ = writeln!(
                    out,
                    "  {:>seed_width$}  {kinds:<kinds_width$}  {repro}",
                    failure.seed
                );
            }
        }
        if failing.len() > FAILING_ROWS_MAX {
            let _ = writeln!(out, "  ... {} more", failing.len() - FAILING_ROWS_MAX);
        }
    }
    for sweep in sweeps {
        let tally = &sweep.tally;
        let _ = writeln!(
            out,
            "{}: {} runs, {} failing, {} events, {}",
            sweep.scenario,
            tally.runs,
            tally.failing.len(),
            tally.events,
            rate(tally.runs, sweep.wall)
        );
        if !tally.anomaly_counts.is_empty() {
            let _ = writeln!(
                out,
                "  anomalies (runs): {}",
                counts_text(&tally.anomaly_counts)
            );
        }
        if !tally.allowed_counts.is_empty() {
            let _ = writeln!(
                out,
                "  allowed (runs):   {}",
                counts_text(&tally.allowed_counts)
            );
        }
        let g = tally.group;
        let mean = |total: u64| total.checked_div(g.runs);
        if let (Some(rebalances), Some(rebalance_ms), Some(unowned_ms)) = (
            mean(g.member_rebalances),
            mean(g.rebalance_ms),
            mean(g.unowned_ms),
        ) {
            let _ = writeln!(
                out,
                "  group (mean per run): {rebalances} member rebalances taking {rebalance_ms} ms; partitions unowned {unowned_ms} ms in the fault phase"
            );
        }
    }
    if several {
        let runs: u64 = sweeps.iter().map(|s| s.tally.runs).sum();
        let failures: usize = failing.len();
        let events: u64 = sweeps.iter().map(|s| s.tally.events).sum();
        let _ = writeln!(
            out,
            "all {} scenarios: {runs} runs, {failures} failing, {events} events, {}",
            sweeps.len(),
            rate(runs, total_wall)
        );
    }
    let ok = sweeps.iter().all(|sweep| sweep.tally.ok());
    out.push_str(if ok { "OK\n" } else { "FAILED\n" });
    out
}

fn counts_text(counts: &BTreeMap<String, u64>) -> String {
    counts
        .iter()
        .map(|(kind, count)| format!("{kind} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "1.23 s wall, 456.7 seeds/s": human output only, never JSON.
fn rate(runs: u64, wall: std::time::Duration) -> String {
    let seconds = wall.as_secs_f64();
    if seconds > 0.0 {
        format!("{seconds:.2} s wall, {:.1} seeds/s", runs as f64 / seconds)
    } else {
        format!("{seconds:.2} s wall")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repro_names_every_bug_and_override() {
        let common = Common {
            bugs: vec!["hw-truncation".into(), "ignore-min-isr".into()],
            sets: vec![
                ("acks".into(), "all".into()),
                ("client.id".into(), "a b".into()),
            ],
            json: true,
            check_determinism: false,
        };
        assert_eq!(
            repro_command("broker-failure", 4217, &common, false),
            "cargo run --release -p sim -- --seed 4217 --scenario broker-failure \
             --bug hw-truncation --bug ignore-min-isr --set acks=all --set 'client.id=a b'"
        );
    }

    #[test]
    fn medians_are_measured_values() {
        assert_eq!(min_median_max(&[]), None);
        assert_eq!(min_median_max(&[5]), Some((5, 5, 5)));
        assert_eq!(min_median_max(&[40, 10, 30, 20]), Some((10, 20, 40)));
    }

    #[test]
    fn run_json_keys_follow_cli_md() {
        let result = RunResult {
            scenario: "broker-failure".into(),
            seed: 7,
            bugs: vec![],
            ok: false,
            events: 3,
            sim_time_ms: 60000,
            ops: BTreeMap::from([(
                "send".into(),
                BTreeMap::from([("ok".into(), 2), ("info".into(), 1)]),
            )]),
            anomalies: vec![RunAnomaly {
                kind: "lost-write".into(),
                partition: Some("orders-0".into()),
                detail: "x".into(),
                ops: vec![812, 1033],
                allowed: false,
            }],
            trace_hash: "9f3c".into(),
            stats: RunStats::default(),
            allowed: vec![],
            config: vec![],
            partitions_at_end: vec![],
            produce_latency: vec![],
            history: None,
            trace: None,
        };
        assert_eq!(
            run_json(&result, 41),
            r#"{"scenario":"broker-failure","seed":7,"bugs":[],"ok":false,"events":3,"sim_time_ms":60000,"wall_ms":41,"ops":{"send":{"info":1,"ok":2}},"anomalies":[{"kind":"lost-write","partition":"orders-0","detail":"x","ops":[812,1033],"allowed":false}],"trace_hash":"9f3c"}"#
        );
    }
}
