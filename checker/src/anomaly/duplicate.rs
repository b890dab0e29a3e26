//! `duplicate`: one value sits at two or more offsets of one partition.
//!
//! Source: Jepsen's `jepsen.tests.kafka` (`duplicate-cases`). Values are unique per key
//! among sends (the workload guarantees it), so a value at two offsets was appended
//! twice: typically a producer retry without idempotence (KIP-98's sequence numbers
//! exist to prevent it), or a replica that re-appended records after a truncation.

use crate::analysis::Analysis;
use crate::Anomaly;

pub const KIND: &str = "duplicate";

pub(crate) fn detect(analysis: &Analysis, found: &mut Vec<Anomaly>) {
    for key in &analysis.keys {
        for duplicate in &key.order.duplicates {
            let Some(first) = duplicate.first() else {
                continue;
            };
            let places: Vec<String> = duplicate
                .iter()
                .map(|witness| format!("{} (first seen by op {})", witness.offset, witness.op))
                .collect();
            let detail = format!(
                "value {} sits at {} offsets of {}: {}. Every value is sent once, so it may occupy only one offset; the log appended it more than once (e.g. a producer retry without idempotence).",
                key.value_of(first.value),
                duplicate.len(),
                key.name,
                places.join(", ")
            );
            let ops = duplicate.iter().map(|witness| witness.op).collect();
            let offsets = duplicate.iter().map(|witness| witness.offset).collect();
            found.push(
                Anomaly::new(KIND, &key.name, detail, ops)
                    .at(offsets, vec![key.value_of(first.value).clone()]),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::history::OpType;
    use crate::testkit::History;

    #[test]
    fn a_value_read_at_two_offsets_is_reported() {
        let mut history = History::new();
        let acked = history.send(1, OpType::Ok, "k-0", 10, Some(0));
        let read = history.poll_ok(2, "k-0", &[(0, 10), (1, 10)]);
        let report = history.check();
        assert_eq!(
            report.summary(),
            vec![("duplicate", "k-0", vec![acked, read])],
            "{report:?}"
        );
    }

    #[test]
    fn the_same_value_on_two_keys_is_not_a_duplicate() {
        let mut history = History::new();
        history.send(1, OpType::Ok, "k-0", 10, Some(0));
        history.send(1, OpType::Ok, "k-1", 10, Some(0));
        history.poll(2, OpType::Ok, &[("k-0", &[(0, 10)]), ("k-1", &[(0, 10)])]);
        history.poll_ok(3, "k-0", &[(0, 10)]);
        assert!(history.check().anomalies.is_empty());
    }
}
