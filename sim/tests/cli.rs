//! The `sim` command-line contract (`design/cli.md`), checked against the built binary:
//! help and lists succeed, and every kind of bad input exits 2 with exactly one
//! `sim: <problem>` line on stderr and never a panic.

use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(args)
        .output()
        .expect("the sim binary runs")
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Exit 2, one stderr line starting `sim: `, no panic.
fn assert_bad_input(args: &[&str]) {
    let output = sim(args);
    let stderr = stderr_of(&output);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{args:?} should exit 2; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?} should print exactly one error line: {stderr}"
    );
    assert!(
        lines[0].starts_with("sim: "),
        "{args:?}: the error line should start with 'sim: ': {stderr}"
    );
}

#[test]
fn help_exits_0() {
    let output = sim(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("--seeds"));
}

#[test]
fn list_scenarios_names_broker_failure() {
    let output = sim(&["--list-scenarios"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("broker-failure"));
}

#[test]
fn list_bugs_exits_0() {
    assert_eq!(sim(&["--list-bugs"]).status.code(), Some(0));
}

#[test]
fn unknown_scenario_exits_2() {
    assert_bad_input(&["--seed", "1", "--scenario", "no-such-scenario"]);
    assert_bad_input(&["--seeds", "0..3", "--scenario", "no-such-scenario"]);
}

#[test]
fn backwards_range_exits_2() {
    assert_bad_input(&["--seeds", "5..2", "--scenario", "broker-failure"]);
}

#[test]
fn malformed_ranges_exit_2() {
    assert_bad_input(&["--seeds", "x..3", "--scenario", "broker-failure"]);
    assert_bad_input(&["--seeds", "3", "--scenario", "broker-failure"]);
}

#[test]
fn non_numeric_seed_exits_2() {
    assert_bad_input(&["--seed", "x", "--scenario", "broker-failure"]);
}

#[test]
fn set_without_equals_exits_2() {
    assert_bad_input(&[
        "--seed",
        "1",
        "--scenario",
        "broker-failure",
        "--set",
        "nokey",
    ]);
}

#[test]
fn shard_index_out_of_range_exits_2() {
    assert_bad_input(&[
        "--seeds",
        "0..10",
        "--scenario",
        "broker-failure",
        "--shard",
        "3/2",
    ]);
}

#[test]
fn history_with_a_sweep_exits_2() {
    assert_bad_input(&[
        "--seeds",
        "0..10",
        "--scenario",
        "broker-failure",
        "--history",
        "h.jsonl",
    ]);
}

#[test]
fn seed_and_seeds_together_exit_2() {
    assert_bad_input(&[
        "--seed",
        "1",
        "--seeds",
        "0..10",
        "--scenario",
        "broker-failure",
    ]);
}

#[test]
fn nothing_to_do_exits_2() {
    assert_bad_input(&[]);
}

#[test]
fn one_run_json_is_the_last_stdout_line() {
    let output = sim(&["--seed", "1", "--scenario", "broker-failure", "--json"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or("");
    let json: serde_json::Value = serde_json::from_str(last).expect("the last stdout line is JSON");
    for key in [
        "scenario",
        "seed",
        "bugs",
        "ok",
        "events",
        "sim_time_ms",
        "wall_ms",
        "ops",
        "anomalies",
        "trace_hash",
    ] {
        assert!(json.get(key).is_some(), "missing {key} in {last}");
    }
    let code = output.status.code();
    assert_eq!(code, Some(if json["ok"] == true { 0 } else { 1 }));
}

#[test]
fn sweep_json_does_not_depend_on_jobs() {
    let run = |jobs: &str| {
        let output = sim(&[
            "--seeds",
            "0..12",
            "--scenario",
            "broker-failure",
            "--json",
            "--jobs",
            jobs,
        ]);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let last = stdout.lines().last().unwrap_or("").to_string();
        let mut json: serde_json::Value =
            serde_json::from_str(&last).expect("the last stdout line is JSON");
        for key in [
            "scenario",
            "seeds",
            "runs",
            "ok",
            "failing_seeds",
            "anomaly_counts",
            "events",
            "wall_ms",
        ] {
            assert!(json.get(key).is_some(), "missing {key} in {last}");
        }
        json["wall_ms"] = serde_json::Value::Null;
        (output.status.code(), json)
    };
    let (code_one, one) = run("1");
    let (code_two, two) = run("2");
    assert_eq!(one, two);
    assert_eq!(code_one, code_two);
    assert_eq!(one["runs"], 12);
}

#[test]
fn shards_cover_the_range_once() {
    let mut runs = 0;
    for shard in ["0/3", "1/3", "2/3"] {
        let output = sim(&[
            "--seeds",
            "0..10",
            "--scenario",
            "broker-failure",
            "--json",
            "--shard",
            shard,
        ]);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
            .expect("the last stdout line is JSON");
        runs += json["runs"].as_u64().unwrap_or(0);
    }
    assert_eq!(runs, 10);
}

// The next two test the simulator's own validation of `--set` (a `SetupError` from
// `run::run`), not the CLI's: they fail against a stub `run` that accepts any override.

#[test]
fn impossible_min_insync_replicas_exits_2() {
    assert_bad_input(&[
        "--seed",
        "1",
        "--scenario",
        "broker-failure",
        "--set",
        "min.insync.replicas=4",
    ]);
}

#[test]
fn unknown_config_key_exits_2() {
    assert_bad_input(&[
        "--seed",
        "1",
        "--scenario",
        "broker-failure",
        "--set",
        "no.such.key=1",
    ]);
}

#[test]
fn a_panic_inside_a_run_is_reported_per_seed_and_the_sweep_goes_on() {
    // The test-only switch panics inside the simulation on every third seed.
    let output = sim(&[
        "--seeds",
        "0..8",
        "--scenario",
        "broker-failure",
        "--bug",
        "injected-panic",
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a JSON line")).expect("valid JSON");
    assert_eq!(json["runs"], 8, "every seed ran");
    assert_eq!(json["failing_seeds"], serde_json::json!([0, 3, 6]));
    assert_eq!(json["anomaly_counts"]["panic"], 3);
    assert!(stderr_of(&output).contains("--seed 3 --scenario broker-failure --bug injected-panic"));
}

/// The last stdout line of a `--mutation-score --json` run, parsed, with its exit code.
fn mutation_score(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let output = sim(args);
    let stderr = stderr_of(&output);
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .expect("the last stdout line is JSON");
    (output.status.code(), json, stderr)
}

#[test]
fn mutation_score_json_has_every_listed_switch_and_no_false_alarm() {
    // Three seeds are too few to detect every switch: exit 1 is expected (0 would mean
    // every switch was caught), never 2 or a panic.
    let (code, json, stderr) = mutation_score(&["--mutation-score", "--seeds", "0..3", "--json"]);
    assert!(matches!(code, Some(0) | Some(1)), "exit {code:?}: {stderr}");
    let score = &json["mutation_score"];
    assert_eq!(score["seeds"], serde_json::json!({"start": 0, "end": 3}));
    let listed = sim(&["--list-bugs"]);
    let listed: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect();
    let switches = score["switches"].as_array().expect("a switches array");
    let names: Vec<&str> = switches
        .iter()
        .map(|switch| switch["bug"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, listed, "one entry per --list-bugs switch, in order");
    assert!(!names.contains(&"injected-panic"));
    let mut detected = 0;
    for switch in switches {
        for key in [
            "source",
            "detected",
            "scenario",
            "seeds_to_detection",
            "failing_seeds",
            "runs",
            "anomaly_kinds",
        ] {
            assert!(switch.get(key).is_some(), "missing {key} in {switch}");
        }
        if switch["detected"] == true {
            detected += 1;
            let seeds = switch["seeds_to_detection"].as_u64().expect("a number");
            assert!((1..=3).contains(&seeds), "{switch}");
            assert!(switch["scenario"].is_string());
        } else {
            assert!(switch["seeds_to_detection"].is_null());
            assert!(switch["scenario"].is_null());
            assert_eq!(switch["failing_seeds"], 0);
        }
    }
    assert_eq!(score["detected"], detected);
    assert_eq!(score["total"], switches.len());
    let false_alarms = score["false_alarms"]
        .as_object()
        .expect("a false_alarms object");
    assert!(!false_alarms.is_empty());
    for (scenario, count) in false_alarms {
        assert_eq!(count, 0, "the correct broker failed in {scenario}");
    }
    let all_detected = detected == switches.len();
    assert_eq!(code, Some(if all_detected { 0 } else { 1 }));
    let last = stderr.lines().last().unwrap_or("");
    assert!(
        last.contains("median seeds to first detection") && last.contains("false alarms 0"),
        "{last}"
    );
}

#[test]
fn mutation_score_does_not_depend_on_jobs() {
    let run = |jobs: &str| {
        let (code, mut json, _) = mutation_score(&[
            "--mutation-score",
            "--seeds",
            "2..4",
            "--json",
            "--jobs",
            jobs,
        ]);
        json["mutation_score"]["wall_ms"] = serde_json::Value::Null;
        (code, json)
    };
    assert_eq!(run("1"), run("2"));
}

#[test]
fn mutation_score_refuses_a_scenario_or_a_bug() {
    assert_bad_input(&["--mutation-score", "--scenario", "broker-failure"]);
    assert_bad_input(&["--mutation-score", "--bug", "hw-truncation"]);
    assert_bad_input(&["--mutation-score", "--list-bugs"]);
}

#[test]
fn shrink_writes_a_smaller_replay_file_that_still_fails() {
    let dir = std::env::temp_dir().join(format!("logsim-shrink-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("shrunk.json");
    let file_arg = file.to_str().expect("utf-8 path");
    let output = sim(&[
        "--seed",
        "0",
        "--scenario",
        "broker-failure",
        "--bug",
        "hw-truncation",
        "--shrink",
        "--shrink-to",
        file_arg,
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("faults"));
    let replay = sim(&["--replay", file_arg, "--json"]);
    assert_eq!(replay.status.code(), Some(1), "the shrunk run still fails");
    assert!(stderr_of(&replay).contains(&format!("--replay {file_arg}")));
    let again = sim(&["--replay", file_arg, "--json"]);
    assert_eq!(
        String::from_utf8_lossy(&replay.stdout).replace(|c: char| c.is_ascii_digit(), ""),
        String::from_utf8_lossy(&again.stdout).replace(|c: char| c.is_ascii_digit(), ""),
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn replay_of_a_missing_or_malformed_file_exits_2() {
    assert_bad_input(&["--replay", "/nonexistent/replay.json"]);
    let dir = std::env::temp_dir().join(format!("logsim-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("bad.json");
    std::fs::write(&file, "{\"scenario\": 3}").expect("written");
    assert_bad_input(&["--replay", file.to_str().expect("utf-8")]);
    assert_bad_input(&["--replay", file.to_str().expect("utf-8"), "--seed", "1"]);
    std::fs::remove_dir_all(&dir).ok();
}
