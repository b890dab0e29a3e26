//! The `checker` binary's contract (`shared/design/cli.md`): exit 0 valid, 1 anomalies,
//! 2 unreadable or malformed input or bad usage, with a one-line error; `--json` puts
//! one JSON object on the last line of stdout.

use std::path::PathBuf;
use std::process::{Command, Output};

fn data(name: &str) -> String {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "data", name]
        .iter()
        .collect();
    path.display().to_string()
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_checker"))
        .args(args)
        .output()
        .expect("the checker binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_valid_history_exits_0_with_a_summary() {
    let output = run(&[&data("valid.jsonl")]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "valid: checked 8 ops, 0 anomalies (0 allowed)\n"
    );
}

#[test]
fn anomalies_exit_1_and_json_is_the_last_stdout_line() {
    let output = run(&[&data("lost-write.jsonl"), "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    let last = stdout.lines().last().expect("one line");
    let report: serde_json::Value = serde_json::from_str(last).expect("JSON");
    assert_eq!(report["ok"], false);
    assert_eq!(report["ops"], 6);
    assert_eq!(report["anomalies"][0]["kind"], "lost-write");
    assert_eq!(report["anomalies"][0]["key"], "orders-0");
    assert_eq!(report["anomalies"][0]["ops"], serde_json::json!([1, 5]));
    assert_eq!(report["anomalies"][0]["offsets"], serde_json::json!([41]));
    assert_eq!(report["anomalies"][0]["values"], serde_json::json!([17]));
    assert_eq!(report["anomalies"][0]["allowed"], false);
    // Human lines go to stderr with --json.
    assert!(text(&output.stderr).starts_with("lost-write key=orders-0 ops=[1,5]: "));
}

#[test]
fn allowed_anomalies_are_listed_but_exit_0() {
    let output = run(&[&data("lost-write.jsonl"), "--allow", "lost-write"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = text(&output.stdout);
    assert!(stdout.starts_with("lost-write (allowed) key=orders-0 ops=[1,5]: 1 write(s)"));
    assert!(stdout.ends_with("valid: checked 6 ops, 1 anomalies (1 allowed)\n"));
}

#[test]
fn malformed_input_exits_2_naming_the_line() {
    let output = run(&[&data("malformed.jsonl"), "--json"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        text(&output.stderr),
        "checker: line 3: expected field \"type\"\n"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn a_missing_file_exits_2() {
    let output = run(&["no-such-history.jsonl"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        text(&output.stderr),
        "checker: cannot open no-such-history.jsonl: No such file or directory\n"
    );
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    assert_eq!(run(&[]).status.code(), Some(2));
    assert_eq!(
        run(&[&data("valid.jsonl"), "--bogus"]).status.code(),
        Some(2)
    );
    let help = run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("--allow <KIND>"));
}

#[test]
fn every_kind_of_bad_input_exits_2_with_its_line_and_problem() {
    for (file, error) in [
        ("malformed.jsonl", "line 3: expected field \"type\""),
        (
            "bad-json.jsonl",
            "line 1: invalid JSON at column 91: EOF while parsing an object",
        ),
        (
            "wrong-process.jsonl",
            "line 2: ok completion on process 1 without a pending invoke",
        ),
        (
            "time-backwards.jsonl",
            "line 2: time 1000 is before the previous event's time 5000 (time never decreases)",
        ),
        (
            "value-sent-twice.jsonl",
            "line 3: value 17 sent twice to key orders-0 (first on line 1)",
        ),
    ] {
        let output = run(&[&data(file), "--json"]);
        assert_eq!(output.status.code(), Some(2), "{file}");
        assert_eq!(
            text(&output.stderr),
            format!("checker: {error}\n"),
            "{file}"
        );
        assert!(output.stdout.is_empty(), "{file}");
    }
}

#[test]
fn an_aborted_read_is_reported_with_its_operations() {
    let output = run(&[&data("aborted-read.jsonl"), "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("one line")).expect("JSON");
    let kinds: Vec<&str> = report["anomalies"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|anomaly| anomaly["kind"].as_str().expect("a kind"))
        .collect();
    assert_eq!(kinds, ["G1a"]);
    assert_eq!(report["anomalies"][0]["key"], "orders-0");
    assert_eq!(report["anomalies"][0]["ops"], serde_json::json!([0, 1, 3]));
    assert_eq!(report["anomalies"][0]["values"], serde_json::json!([17]));
    // The scenario may allow it (read_uncommitted).
    let allowed = run(&[&data("aborted-read.jsonl"), "--allow", "G1a"]);
    assert_eq!(allowed.status.code(), Some(0));
}

/// A history the simulator wrote (`sim --seed 3 --scenario network-partition --history`)
/// is read without error and checks clean: the two sides agree on the format.
#[test]
fn a_simulator_history_is_accepted() {
    let output = run(&[&data("sim-network-partition-seed-3.jsonl"), "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("one line")).expect("JSON");
    assert_eq!(report["ops"], 1182);
    assert_eq!(report["anomalies"], serde_json::json!([]));
}
