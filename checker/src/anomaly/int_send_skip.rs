//! `int-send-skip` (informational): inside one operation, two successive sends to one
//! partition landed with other values between them.
//!
//! Source: Jepsen's `jepsen.tests.kafka` (`int-send-skip+nonmonotonic-cases`, `:skip`,
//! "internal write contiguity"), where `allowed-error-types` always allows it:
//! "int-send-skip is normal behavior: transaction writes interleave constantly with
//! other transactions". It is listed (in [`crate::INFORMATIONAL`]) so a reviewer sees
//! how much interleaving a run had, and never fails a run. Distances are in dense
//! positions, so a transaction marker between two sends is not a skip. Found by the
//! shared `send_sweep`.

use super::send_sweep::SendStep;
use super::skipped_between;
use crate::analysis::Analysis;
use crate::Anomaly;

pub const KIND: &str = "int-send-skip";

pub(crate) fn detect(analysis: &Analysis, steps: &[SendStep], found: &mut Vec<Anomaly>) {
    for step in steps.iter().filter(|step| step.internal && step.is_skip()) {
        let key = &analysis.keys[step.key as usize];
        let detail = format!(
            "op {} (process {}) sent value {} and then value {} to {}; they landed at offsets {} and {}, with {} between them. Informational: the sends of one operation (a transaction's, or a batch's) may interleave with other producers' records.",
            step.to.op,
            step.process,
            key.value_of(step.from.value),
            key.value_of(step.to.value),
            key.name,
            key.order.offset_at(step.from.position).unwrap_or_default(),
            key.order.offset_at(step.to.position).unwrap_or_default(),
            skipped_between(key, step.from.position, step.to.position),
        );
        found.push(
            Anomaly::new(KIND, &key.name, detail, vec![step.to.op])
                .at(step.offsets(key), step.values(key))
                .allowed_always(),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::history::{Mop, OpType, OpValue, F};
    use crate::testkit::History;

    /// Process 1 sends 10 and 11 to k-0 in one operation, landing at `offsets`;
    /// process 2's value 20 sits at offset 1 (read by everyone).
    fn interleaved(offsets: [u64; 2]) -> (History, u64) {
        let mut history = History::new();
        history.push(
            OpType::Invoke,
            1,
            F::Txn,
            OpValue::Mops(vec![Mop::send("k-0", 10), Mop::send("k-0", 11)]),
        );
        history.send(2, OpType::Ok, "k-0", 20, Some(1));
        let txn = history.push(
            OpType::Ok,
            1,
            F::Txn,
            OpValue::Mops(vec![
                Mop::send_at("k-0", offsets[0], 10),
                Mop::send_at("k-0", offsets[1], 11),
            ]),
        );
        (history, txn)
    }

    #[test]
    fn a_transaction_interleaved_with_another_producer_is_listed_as_allowed() {
        let (mut history, txn) = interleaved([0, 2]);
        history.poll_ok(3, "k-0", &[(0, 10), (1, 20), (2, 11)]);
        let report = history.check();
        // The interleaving is also a write cycle by Elle's definition (10 < 20 < 11:
        // txn -ww-> send -ww-> txn), which the policy decides about.
        assert_eq!(
            report.summary(),
            vec![
                ("G0", "", vec![txn - 3, txn - 1, txn]),
                ("int-send-skip", "k-0", vec![txn])
            ],
            "{report:?}"
        );
        assert!(!report.anomalies[0].allowed);
        assert!(report.anomalies[1].allowed);
        assert_eq!(report.anomalies[1].offsets, [0, 2]);
    }

    #[test]
    fn a_marker_between_two_sends_is_not_a_skip() {
        // Offset 1 is never observed (a marker): 0 and 2 are adjacent positions.
        let mut history = History::new();
        history.push(
            OpType::Invoke,
            1,
            F::Txn,
            OpValue::Mops(vec![Mop::send("k-0", 10), Mop::send("k-0", 11)]),
        );
        history.push(
            OpType::Ok,
            1,
            F::Txn,
            OpValue::Mops(vec![Mop::send_at("k-0", 0, 10), Mop::send_at("k-0", 2, 11)]),
        );
        history.poll_ok(3, "k-0", &[(0, 10), (2, 11)]);
        assert!(history.check().anomalies.is_empty());
    }
}
