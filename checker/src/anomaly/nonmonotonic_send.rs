//! `nonmonotonic-send`: one producer process's later send to a partition landed at or
//! before its earlier send.
//!
//! Source: Jepsen's `jepsen.tests.kafka` (`nonmonotonic-send-cases`). A producer that
//! waits for each send before the next expects its records in send order; Kafka
//! promises per-partition ordering for one producer (with idempotence, even across
//! retries: KIP-98's sequence numbers). "Later" is history order of completions; both
//! sends are placed by the version order. Found by the shared
//! `send_sweep`.

use super::send_sweep::SendStep;
use crate::analysis::Analysis;
use crate::Anomaly;

pub const KIND: &str = "nonmonotonic-send";

pub(crate) fn detect(analysis: &Analysis, steps: &[SendStep], found: &mut Vec<Anomaly>) {
    for step in steps
        .iter()
        .filter(|step| !step.internal && step.is_nonmonotonic())
    {
        let key = &analysis.keys[step.key as usize];
        let detail = format!(
            "process {} sent value {} to {}, which landed at offset {} (op {}); its later send of value {}, completed by op {}, landed at offset {}, at or before the earlier one. One producer's sends to a partition must land in the order they were sent.",
            step.process,
            key.value_of(step.from.value),
            key.name,
            key.order.offset_at(step.from.position).unwrap_or_default(),
            step.from.op,
            key.value_of(step.to.value),
            step.to.op,
            key.order.offset_at(step.to.position).unwrap_or_default(),
        );
        found.push(
            Anomaly::new(KIND, &key.name, detail, vec![step.from.op, step.to.op])
                .at(step.offsets(key), step.values(key)),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::history::OpType;
    use crate::testkit::History;

    #[test]
    fn a_later_send_landing_lower_is_reported() {
        let mut history = History::new();
        let first = history.send(1, OpType::Ok, "k-0", 10, Some(1));
        let second = history.send(1, OpType::Ok, "k-0", 11, Some(0));
        history.poll_ok(2, "k-0", &[(0, 11), (1, 10)]);
        let report = history.check();
        // Process 1's sends did not overlap in time either: realtime order breaks too.
        assert_eq!(
            report.summary(),
            vec![
                ("nonmonotonic-send", "k-0", vec![first, second]),
                (
                    "realtime-send-order",
                    "k-0",
                    vec![first, second - 1, second]
                ),
            ],
            "{report:?}"
        );
    }

    #[test]
    fn sends_of_different_processes_may_interleave() {
        let mut history = History::new();
        // Both in flight at once: the broker may order them either way.
        history.invoke_send(1, "k-0", 10);
        history.invoke_send(2, "k-0", 11);
        history.complete_send(1, OpType::Ok, "k-0", 10, Some(1));
        history.complete_send(2, OpType::Ok, "k-0", 11, Some(0));
        history.poll_ok(3, "k-0", &[(0, 11), (1, 10)]);
        assert!(history.check().anomalies.is_empty());
    }
}
