//! `inconsistent-offsets`: one offset of one partition holds two different values.
//!
//! Source: Jepsen's `jepsen.tests.kafka` (`version-orders`, reported as
//! `:inconsistent-offsets`). Evidence is every poll record (of `ok`, `info` and `fail`
//! operations: the log said so) and every acknowledged offset of a send that happened.
//! An offset names one record of the log; two values there mean replicas diverged
//! (e.g. a truncation that rewrote acknowledged records) or the broker acknowledged an
//! offset it then gave to another record.

use crate::analysis::Analysis;
use crate::Anomaly;

pub const KIND: &str = "inconsistent-offsets";

pub(crate) fn detect(analysis: &Analysis, found: &mut Vec<Anomaly>) {
    for key in &analysis.keys {
        for conflict in &key.order.conflicts {
            let Some(first) = conflict.first() else {
                continue;
            };
            let seen: Vec<String> = conflict
                .iter()
                .map(|witness| {
                    format!(
                        "{} (first seen by op {})",
                        key.value_of(witness.value),
                        witness.op
                    )
                })
                .collect();
            let detail = format!(
                "offset {} of {} holds {} different values: {}. An offset names exactly one record of the partition's log, so the acknowledgements and reads of these ops disagree about what the log contains.",
                first.offset,
                key.name,
                conflict.len(),
                seen.join(", ")
            );
            let ops = conflict.iter().map(|witness| witness.op).collect();
            let values = conflict
                .iter()
                .map(|witness| key.value_of(witness.value).clone())
                .collect();
            found.push(Anomaly::new(KIND, &key.name, detail, ops).at(vec![first.offset], values));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::history::OpType;
    use crate::testkit::History;

    #[test]
    fn an_acknowledged_offset_read_back_with_another_value_is_reported() {
        let mut history = History::new();
        let acked = history.send(1, OpType::Ok, "k-0", 10, Some(4));
        let read = history.poll_ok(2, "k-0", &[(4, 11)]);
        let report = history.check();
        // Value 10 was acknowledged at the offset where 11 was read, so 10 is also lost
        // (Jepsen's bound is "at or after").
        assert_eq!(
            report.summary(),
            vec![
                ("inconsistent-offsets", "k-0", vec![acked, read]),
                ("lost-write", "k-0", vec![acked, read]),
            ],
            "{report:?}"
        );
    }

    #[test]
    fn a_failed_send_claiming_an_offset_does_not_count() {
        let mut history = History::new();
        history.send(1, OpType::Fail, "k-0", 10, Some(4));
        history.poll_ok(2, "k-0", &[(4, 11)]);
        assert!(history.check().anomalies.is_empty());
    }
}
