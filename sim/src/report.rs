//! The Markdown run report (`--report PATH`): what a reviewer reads to understand one run.
//!
//! It is a pure function of the [`RunResult`], with no wall time, so the same seed and
//! build give the same bytes; that is what lets `reports/` keep reports as insta
//! snapshots and show a change in broker behaviour as a diff.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::output::{list_or_none, min_median_max};
use crate::run::{GroupSummary, RunAnomaly, RunResult};
use crate::sweep::{KIND_NONDETERMINISM, KIND_PANIC, KIND_UNEXPLAINED};

/// The report of one run.
pub fn markdown(result: &RunResult) -> String {
    let mut out = String::new();
    header(&mut out, result);
    configuration(&mut out, result);
    timeline(&mut out, result);
    protocol(&mut out, result);
    failover(&mut out, result);
    partitions(&mut out, result);
    operations(&mut out, result);
    latency(&mut out, result);
    allowed(&mut out, result);
    anomalies(&mut out, result);
    out
}

/// The report's last section for a consumer group run: the same seed and faults under
/// the eager and the cooperative protocol ([`crate::run::protocol_comparison`]).
pub fn protocol_comparison(runs: &[GroupSummary; 2]) -> String {
    let mut out =
        String::from("\n## Eager vs cooperative rebalancing (same seed, same faults)\n\n");
    out.push_str("| protocol | generations | member rebalances | rebalance time, all members (ms) | longest (ms) | partitions unowned (ms, fault phase) | records processed |\n");
    out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for g in runs {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            g.assignor,
            g.generations,
            g.member_rebalances,
            g.rebalance_ms,
            g.rebalance_ms_max,
            g.unowned_ms,
            g.records
        );
    }
    out.push_str("\nEager (`range`): every member revokes all its partitions before it rejoins, so every partition waits for the whole rebalance. Cooperative (`cooperative-sticky`, KIP-429): members keep their partitions while they rejoin, and only the partitions that move wait, over two rebalances.\n");
    out
}

/// Text for a table cell: no newlines, no unescaped pipes.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn header(out: &mut String, result: &RunResult) {
    let forbidden = result.anomalies.iter().filter(|a| !a.allowed).count();
    let allowed = result.anomalies.len() - forbidden;
    let _ = writeln!(out, "# {} seed {}\n", result.scenario, result.seed);
    let verdict = if result.ok && forbidden == 0 {
        "**OK**"
    } else {
        "**FAILED**"
    };
    let _ = writeln!(
        out,
        "- result: {verdict} ({forbidden} forbidden anomalies, {allowed} allowed)"
    );
    let _ = writeln!(out, "- bugs: {}", list_or_none(&result.bugs));
    let _ = writeln!(out, "- events: {}", result.events);
    let _ = writeln!(out, "- simulated time: {} ms", result.sim_time_ms);
    let _ = writeln!(out, "- trace hash: `{}`\n", result.trace_hash);
}

fn configuration(out: &mut String, result: &RunResult) {
    out.push_str("## Configuration\n\n");
    if result.config.is_empty() {
        out.push_str("No configuration values reported.\n\n");
        return;
    }
    out.push_str("| key | value |\n| --- | --- |\n");
    for (key, value) in &result.config {
        let _ = writeln!(out, "| `{}` | {} |", cell(key), cell(value));
    }
    out.push('\n');
}

fn timeline(out: &mut String, result: &RunResult) {
    out.push_str("## Fault timeline\n\n");
    if result.stats.timeline.is_empty() {
        out.push_str("No faults.\n\n");
        return;
    }
    out.push_str("| time (ms) | event |\n| ---: | --- |\n");
    for (time_ms, what) in &result.stats.timeline {
        let _ = writeln!(out, "| {time_ms} | {} |", cell(what));
    }
    out.push('\n');
}

fn protocol(out: &mut String, result: &RunResult) {
    let stats = &result.stats;
    out.push_str("## Protocol\n\n| measure | count |\n| --- | ---: |\n");
    for (name, count) in [
        ("crashes", stats.crashes),
        ("restarts", stats.restarts),
        ("clean shutdowns", stats.shutdowns),
        ("pauses", stats.pauses),
        ("network partitions", stats.partitions),
        ("leader elections", stats.leader_elections),
        ("unclean leader elections", stats.unclean_elections),
        ("ISR shrinks", stats.isr_shrinks),
        ("ISR expands", stats.isr_expands),
        ("log truncations", stats.truncations),
        ("messages sent", stats.messages_sent),
        ("messages dropped", stats.messages_dropped),
    ] {
        let _ = writeln!(out, "| {name} | {count} |");
    }
    out.push('\n');
}

fn failover(out: &mut String, result: &RunResult) {
    let stats = &result.stats;
    out.push_str("## Failover and availability (simulated time)\n\n");
    match min_median_max(&stats.failover_ms) {
        Some((min, median, max)) => {
            let _ = writeln!(
                out,
                "- failover after a leader loss: {} measured; min {min} ms, median {median} ms, max {max} ms",
                stats.failover_ms.len()
            );
        }
        None => out.push_str("- failover after a leader loss: none measured\n"),
    }
    if stats.unavailable_ms.is_empty() {
        out.push_str("- partitions without a leader: never\n\n");
    } else {
        let (total, longest) = crate::output::total_and_longest(&stats.unavailable_ms);
        let _ = writeln!(
            out,
            "- partitions without a leader: {} windows, {total} ms in total, longest {longest} ms\n",
            stats.unavailable_ms.len()
        );
    }
    if stats.produce_refused > 0 {
        let (total, longest) = crate::output::total_and_longest(&stats.write_unavailable_ms);
        let _ = writeln!(
            out,
            "- writes refused with NOT_ENOUGH_REPLICAS: {} requests; unavailable for writes {} windows, {total} ms in total, longest {longest} ms\n",
            stats.produce_refused,
            stats.write_unavailable_ms.len()
        );
    }
    if stats.batches_deduplicated + stats.batches_out_of_sequence > 0 {
        let _ = writeln!(
            out,
            "- idempotent producer: {} batches already in the log (retries, duplicated requests) answered from the leader's window instead of appended again; {} refused as out of sequence (OUT_OF_ORDER_SEQUENCE_NUMBER)\n",
            stats.batches_deduplicated, stats.batches_out_of_sequence
        );
    }
    if let Some(t) = stats.transactions {
        let held = if t.exactly_once_held {
            "held: no duplicate or lost output, no aborted or uncommitted read"
        } else {
            "BROKEN (see the anomalies)"
        };
        let _ = writeln!(
            out,
            "- exactly-once processing: {}; exactly-once {held}\n",
            t.figures()
        );
    }
    if let Some(g) = stats.group {
        let _ = writeln!(out, "- consumer group: {}\n", g.figures());
    }
}

fn partitions(out: &mut String, result: &RunResult) {
    out.push_str("## Partitions\n\n");
    if !result.stats.partition_log.is_empty() {
        out.push_str("Leader, epoch and ISR changes:\n\n| time (ms) | partition | change |\n| ---: | --- | --- |\n");
        for (time, partition, what) in &result.stats.partition_log {
            let _ = writeln!(out, "| {time} | {} | {} |", cell(partition), cell(what));
        }
        out.push('\n');
    }
    out.push_str("At the end of the run:\n\n| partition | leader | epoch | ISR | HW | LEO | consumer lag |\n| --- | --- | ---: | --- | ---: | ---: | ---: |\n");
    let show = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    for p in &result.partitions_at_end {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell(&p.partition),
            p.leader.as_deref().unwrap_or("none"),
            p.leader_epoch,
            p.isr,
            show(p.high_watermark),
            show(p.log_end_offset),
            show(p.consumer_lag)
        );
    }
    out.push('\n');
}

fn latency(out: &mut String, result: &RunResult) {
    if result.produce_latency.is_empty() {
        return;
    }
    out.push_str("## Produce latency (simulated, invoke to completion)\n\n| outcome | operations | p50 ms | p99 ms | max ms |\n| --- | ---: | ---: | ---: | ---: |\n");
    for l in &result.produce_latency {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            l.outcome, l.count, l.p50_ms, l.p99_ms, l.max_ms
        );
    }
    out.push('\n');
}

fn operations(out: &mut String, result: &RunResult) {
    out.push_str("## Operations\n\n");
    if result.ops.is_empty() {
        out.push_str("No operations completed.\n\n");
        return;
    }
    // Columns: ok, fail, info (history.md's outcomes), then any other outcome, sorted.
    let mut columns: Vec<String> = ["ok", "fail", "info"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let extra: BTreeSet<&String> = result
        .ops
        .values()
        .flat_map(|outcomes| outcomes.keys())
        .filter(|outcome| !columns.contains(outcome))
        .collect();
    columns.extend(extra.into_iter().cloned());
    let _ = writeln!(out, "| f | {} |", columns.join(" | "));
    let _ = writeln!(out, "| --- |{}", " ---: |".repeat(columns.len()));
    for (f, outcomes) in &result.ops {
        let counts: Vec<String> = columns
            .iter()
            .map(|column| outcomes.get(column).copied().unwrap_or(0).to_string())
            .collect();
        let _ = writeln!(out, "| {} | {} |", cell(f), counts.join(" | "));
    }
    out.push('\n');
}

fn allowed(out: &mut String, result: &RunResult) {
    out.push_str("## Allowed by this configuration\n\n");
    if result.allowed.is_empty() {
        out.push_str("Nothing: every anomaly below is a failure.\n\n");
        return;
    }
    out.push_str("| kind | why it is allowed |\n| --- | --- |\n");
    for (kind, reason) in &result.allowed {
        let _ = writeln!(out, "| `{}` | {} |", cell(kind), cell(reason));
    }
    out.push('\n');
}

fn anomalies(out: &mut String, result: &RunResult) {
    out.push_str("## Anomalies\n\n");
    if result.anomalies.is_empty() {
        out.push_str("None.\n");
        return;
    }
    // One line per kind (forbidden first: they are why the run failed), then the first
    // occurrence of each kind in full, and every forbidden one up to three per kind:
    // enough to follow, short enough to review as a diff.
    let mut kinds: BTreeMap<(bool, &str), Vec<&RunAnomaly>> = BTreeMap::new();
    for a in &result.anomalies {
        kinds
            .entry((a.allowed, a.kind.as_str()))
            .or_default()
            .push(a);
    }
    out.push_str("| kind | verdict | occurrences | partitions |\n| --- | --- | ---: | --- |\n");
    for ((allowed, kind), list) in &kinds {
        let mut partitions: Vec<&str> =
            list.iter().filter_map(|a| a.partition.as_deref()).collect();
        partitions.dedup();
        let _ = writeln!(
            out,
            "| `{kind}` | {} | {} | {} |",
            if *allowed { "allowed" } else { "FORBIDDEN" },
            list.len(),
            cell(&partitions.join(", "))
        );
    }
    out.push('\n');
    let mut number = 0;
    for ((allowed, _), list) in &kinds {
        let shown = if *allowed { 1 } else { 3 };
        for anomaly in list.iter().take(shown) {
            number += 1;
            anomaly_section(out, number, anomaly);
        }
    }
}

fn anomaly_section(out: &mut String, number: usize, anomaly: &RunAnomaly) {
    let verdict = if anomaly.allowed {
        "allowed"
    } else {
        "FORBIDDEN"
    };
    let partition = anomaly
        .partition
        .as_deref()
        .map(|p| format!(" on `{p}`"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "### {number}. `{}`{partition} ({verdict})\n",
        anomaly.kind
    );
    let _ = writeln!(out, "{}\n", explanation(&anomaly.kind));
    let _ = writeln!(out, "Detail: {}\n", cell(&anomaly.detail));
    if !anomaly.ops.is_empty() {
        let ops: Vec<String> = anomaly.ops.iter().map(u64::to_string).collect();
        let _ = writeln!(out, "Proved by operations/events: {}\n", ops.join(", "));
    }
}

/// What each anomaly kind means, from `design/invariants.md` (and the sweep's own kinds).
pub fn explanation(kind: &str) -> &'static str {
    match kind {
        "inconsistent-offsets" => "One offset of one partition holds two different values.",
        "duplicate" => "One value sits at two or more offsets of one partition.",
        "lost-write" => "A write known to have happened was never read by an ok read, although some ok read observed a value positioned after it.",
        "unseen" => "Acknowledged writes that no ok read returned by the end of the run, after the final drain polls.",
        "G1a" => "Aborted read: an ok read returned a value written by a failed (aborted) send or transaction.",
        "precommitted-read" => "An operation read its own uncommitted write.",
        "poll-skip" => "A consumer's next ok read of a partition jumped over values after its previous read, with no reassignment between.",
        "nonmonotonic-poll" => "A consumer's next read of a partition started at or before what it had already read, with no reassignment between.",
        "nonmonotonic-send" => "One producer's later send to a partition landed at or before its earlier send: per-key order broken.",
        "int-poll-skip" => "Inside one operation, a read jumped over values of a partition.",
        "int-nonmonotonic-poll" => "Inside one operation, a read went back to or before an earlier position.",
        "int-nonmonotonic-send" => "Inside one operation, a later send landed at or before an earlier one.",
        "realtime-send-order" => "Send A completed before send B was invoked (same partition, both happened) but B's offset is lower: the log is not linearizable.",
        "G0" => "A cycle of write-write dependencies between transactions (Elle's G0); Kafka does not isolate writes.",
        "G1c" => "A cycle of write-write and write-read dependencies between transactions (Elle's G1c).",
        "torn-transaction" => "A committed transaction's writes are partly visible: some values read, others never readable though positioned before the read bound.",
        "eos-duplicate-output" => "Consume-transform-produce: one input record has two committed outputs.",
        "eos-lost-output" => "An input offset below the group's committed offset has no committed output.",
        "offset-regression" => "A group's committed offset for a partition went backwards without an explicit reset.",
        "uncommitted-gap" => "The group committed an offset past a record that was never returned to any member of the group.",
        "zombie-commit" => "A commit from a fenced generation (or fenced producer epoch) was accepted.",
        "split-ownership" => "Two live members of one group owned the same partition at the same time.",
        "redelivered" => "A record was given to the members of one group more than once: at-least-once redelivery after a member crashed or lost its partition between processing and committing.",
        "two-leaders" => "Two brokers acted as leader of one partition in the same leader epoch.",
        "epoch-regression" => "A partition's leader epoch, or a broker's view of it, went backwards.",
        "hw-regression" => "The high watermark a partition exposes to clients decreased.",
        "hw-above-leo" => "A replica's high watermark exceeded its log end offset.",
        "divergent-replicas" => "Two replicas held different records at one offset below the high watermark (log matching broken).",
        "committed-truncated" => "A record once below the high watermark was truncated from a replica that can still become leader (KIP-101's failure).",
        "leader-not-in-isr" => "The ISR did not contain the leader.",
        "isr-below-min-acked" => "An acks=all write was acknowledged while the ISR was smaller than min.insync.replicas.",
        "lso-stuck" => "The last stable offset did not advance for longer than transaction.timeout.ms plus a bound (hanging transaction, KIP-890).",
        "no-convergence" => "After healing, the cluster did not converge within the deadline (leaders, ISR, readable writes or group lag).",
        KIND_PANIC => "The simulator or the broker model panicked during the run.",
        KIND_NONDETERMINISM => "Two runs of the same seed differed: the simulation is not deterministic.",
        KIND_UNEXPLAINED => "The run reported failure without naming an anomaly.",
        _ => "No explanation on file for this kind (see design/invariants.md).",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::RunStats;
    use std::collections::BTreeMap;

    #[test]
    fn report_is_deterministic_and_names_everything() {
        let result = RunResult {
            scenario: "unclean-election".into(),
            seed: 3,
            bugs: vec![],
            ok: true,
            events: 10,
            sim_time_ms: 500,
            ops: BTreeMap::from([(
                "send".into(),
                BTreeMap::from([("ok".into(), 4), ("timeout".into(), 1)]),
            )]),
            anomalies: vec![RunAnomaly {
                kind: "lost-write".into(),
                partition: Some("orders-1".into()),
                detail: "value 5 | gone".into(),
                ops: vec![2, 9],
                allowed: true,
            }],
            trace_hash: "abc".into(),
            stats: RunStats {
                failover_ms: vec![300, 100],
                timeline: vec![(250, "crash broker 1".into())],
                ..RunStats::default()
            },
            allowed: vec![(
                "lost-write".into(),
                "unclean.leader.election.enable=true".into(),
            )],
            config: vec![("acks".into(), "all".into())],
            partitions_at_end: vec![],
            produce_latency: vec![],
            history: None,
            trace: None,
        };
        let report = markdown(&result);
        assert_eq!(report, markdown(&result));
        for needle in [
            "# unclean-election seed 3",
            "| `acks` | all |",
            "| 250 | crash broker 1 |",
            "median 100 ms",
            "| send | 4 | 0 | 0 | 1 |",
            "`lost-write` on `orders-1` (allowed)",
            "value 5 \\| gone",
        ] {
            assert!(report.contains(needle), "missing {needle:?} in\n{report}");
        }
    }
}
