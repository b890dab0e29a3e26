//! The simulator and the checker agree on the history format (`design/history.md`): a
//! history recorded by a correct-broker `broker-failure` run parses with
//! `checker::history::read_history` and checks clean with an empty policy; after one
//! acknowledged send's offset is changed to an offset that holds a different value, the
//! checker reports `inconsistent-offsets` naming that operation.

mod common;

use std::collections::BTreeMap;

use sim::run::RunOptions;

const SEED: u64 = 7;

fn recorded_history() -> Vec<String> {
    let result = common::run(&RunOptions {
        keep_history: true,
        ..common::options("broker-failure", SEED, &[])
    });
    assert!(
        result.ok,
        "{} is not ok: {:?}",
        common::repro("broker-failure", SEED, &[]),
        common::forbidden(&result)
    );
    result.history.expect("history kept")
}

fn check(lines: &[String]) -> checker::Report {
    let text = lines.join("\n") + "\n";
    let ops = checker::history::read_history(text.as_bytes()).expect("the history parses");
    assert_eq!(ops.len(), lines.len(), "one op per line");
    checker::check(&ops, &checker::Policy::default())
}

/// One acknowledged send micro-op: (line number, key, offset, value as JSON text).
type Send = (usize, String, u64, String);

/// Every acknowledged single-record send (`f` = `send`, `type` = `ok`) with its offset.
fn acknowledged_sends(lines: &[String]) -> Vec<Send> {
    let mut sends = Vec::new();
    for (number, line) in lines.iter().enumerate() {
        let op: serde_json::Value = serde_json::from_str(line).expect("a history line is JSON");
        if op["f"] != "send" || op["type"] != "ok" {
            continue;
        }
        for mop in op["value"].as_array().expect("value is a list") {
            let (Some(key), Some(offset), Some(value)) =
                (mop[1].as_str(), mop[2][0].as_u64(), mop[2].get(1))
            else {
                continue;
            };
            sends.push((number, key.to_string(), offset, value.to_string()));
        }
    }
    sends
}

#[test]
fn a_recorded_history_checks_clean() {
    let lines = recorded_history();
    assert!(lines.len() > 100, "a short history: {} lines", lines.len());
    let report = check(&lines);
    assert!(
        report.anomalies.is_empty(),
        "anomalies in a correct run: {:?}",
        report.anomalies
    );
    assert!(report.ok());
}

#[test]
fn a_changed_send_offset_is_an_inconsistent_offset() {
    let mut lines = recorded_history();
    let sends = acknowledged_sends(&lines);
    assert!(
        sends.len() > 100,
        "too few acknowledged sends: {}",
        sends.len()
    );
    // key -> offset -> value, from the acknowledged sends.
    let mut by_key: BTreeMap<&str, BTreeMap<u64, &str>> = BTreeMap::new();
    for (_, key, offset, value) in &sends {
        by_key.entry(key).or_default().insert(*offset, value);
    }
    // A send in the middle of the run, and another offset of its key with another value.
    let (line, key, offset, value) = sends[sends.len() / 2].clone();
    let (&other_offset, other_value) = by_key[key.as_str()]
        .iter()
        .find(|(&other, &other_value)| other != offset && other_value != value)
        .expect("another acknowledged offset on the same key");
    let original = format!("[\"send\",\"{key}\",[{offset},{value}]]");
    let changed = format!("[\"send\",\"{key}\",[{other_offset},{value}]]");
    assert_eq!(
        lines[line].matches(&original).count(),
        1,
        "the micro-op appears once in line {line}: {}",
        lines[line]
    );
    lines[line] = lines[line].replace(&original, &changed);
    let index: u64 = serde_json::from_str::<serde_json::Value>(&lines[line]).unwrap()["index"]
        .as_u64()
        .unwrap();

    let report = check(&lines);
    assert!(!report.ok(), "the tampered history passed");
    let inconsistent: Vec<&checker::Anomaly> = report
        .anomalies
        .iter()
        .filter(|anomaly| anomaly.kind == "inconsistent-offsets")
        .collect();
    assert!(
        !inconsistent.is_empty(),
        "no inconsistent-offsets after moving {key} value {value} from offset {offset} to \
         {other_offset} (which holds {other_value}); got {:?}",
        report.anomalies
    );
    assert!(
        inconsistent
            .iter()
            .any(|anomaly| anomaly.key.as_deref() == Some(key.as_str())
                && anomaly.ops.contains(&index)),
        "inconsistent-offsets does not name op {index} on {key}: {inconsistent:?}"
    );
}

#[test]
fn every_scenario_writes_a_history_the_checker_reads() {
    // The checker reads what the simulator writes, in every scenario (issue 3).
    for (scenario, _) in sim::run::scenario_list() {
        let result = common::run(&sim::run::RunOptions {
            keep_history: true,
            ..common::options(scenario, 3, &[])
        });
        let text = result.history.expect("kept").join("\n");
        let ops = checker::history::read_history(text.as_bytes())
            .unwrap_or_else(|e| panic!("{scenario}: the checker rejects the history: {e}"));
        assert!(!ops.is_empty(), "{scenario}: empty history");
    }
}
