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
