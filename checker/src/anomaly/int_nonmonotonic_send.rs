//! `int-nonmonotonic-send`: inside one operation, a later send to a partition landed at
//! or before an earlier send of the same operation.
//!
//! Source: Jepsen's `jepsen.tests.kafka` (`int-send-skip+nonmonotonic-cases`,
//! `:nonmonotonic`, "internal write contiguity"). The sends of one operation (a batch
//! or a transaction) are appended in order. Found by the shared
//! `send_sweep`.

use super::send_sweep::SendStep;
use crate::analysis::Analysis;
use crate::Anomaly;

pub const KIND: &str = "int-nonmonotonic-send";

pub(crate) fn detect(analysis: &Analysis, steps: &[SendStep], found: &mut Vec<Anomaly>) {
    for step in steps
        .iter()
        .filter(|step| step.internal && step.is_nonmonotonic())
    {
        let key = &analysis.keys[step.key as usize];
        let detail = format!(
            "op {} (process {}) sent value {} and then value {} to {}, but the later one landed at offset {}, at or before the earlier one's offset {}. The sends of one operation are appended in order.",
            step.to.op,
            step.process,
            key.value_of(step.from.value),
            key.value_of(step.to.value),
            key.name,
            key.order.offset_at(step.to.position).unwrap_or_default(),
            key.order.offset_at(step.from.position).unwrap_or_default(),
        );
        found.push(
            Anomaly::new(KIND, &key.name, detail, vec![step.to.op])
                .at(step.offsets(key), step.values(key)),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::history::{Mop, OpType, OpValue, F};
    use crate::testkit::History;

    fn two_sends(history: &mut History, offsets: [u64; 2]) -> u64 {
        history.push(
            OpType::Invoke,
            1,
            F::Send,
            OpValue::Mops(vec![Mop::send("k-0", 10), Mop::send("k-0", 11)]),
        );
        history.push(
            OpType::Ok,
            1,
            F::Send,
            OpValue::Mops(vec![
                Mop::send_at("k-0", offsets[0], 10),
                Mop::send_at("k-0", offsets[1], 11),
            ]),
        )
    }

    #[test]
    fn a_batch_landing_in_reverse_is_reported() {
        let mut history = History::new();
        let batch = two_sends(&mut history, [1, 0]);
        history.poll_ok(2, "k-0", &[(0, 11), (1, 10)]);
        let report = history.check();
        assert_eq!(
            report.summary(),
            vec![("int-nonmonotonic-send", "k-0", vec![batch])],
            "{report:?}"
        );
    }

    #[test]
    fn a_batch_landing_in_order_with_a_gap_is_fine() {
        let mut history = History::new();
        two_sends(&mut history, [0, 2]);
        history.poll_ok(2, "k-0", &[(0, 10), (2, 11)]);
        assert!(history.check().anomalies.is_empty());
    }
}
