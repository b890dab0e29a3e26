//! `G1a` (aborted read): an `ok` read returned a value whose write failed.
//!
//! Source: Adya's G1a ("aborted reads"), as Jepsen's `jepsen.tests.kafka` checks it
//! (`g1a-cases`): for every `ok` `poll` or `txn`, every value it read whose `send`
//! (in a `send` or `txn` operation) completed `fail`. A `fail` completion means the
//! write definitely did not happen (an aborted transaction, a send the broker
//! rejected), so no committed read may return it. Under `isolation.level =
//! read_uncommitted` reading aborted transactional records is the documented behavior,
//! and such a scenario allows this kind.
//!
//! One anomaly per value, naming the failed write and the first `ok` read of it.

use crate::analysis::Analysis;
use crate::Anomaly;

pub const KIND: &str = "G1a";

pub(crate) fn detect(analysis: &Analysis, found: &mut Vec<Anomaly>) {
    for key in &analysis.keys {
        for facts in &key.values {
            // A value that also has a write that happened is not unique per key:
            // `read_history` rejects that, and nothing can be concluded here.
            let (Some(reader), Some(failed), None) = (
                facts.first_ok_read(),
                facts.failed_send(),
                facts.happened_send(),
            ) else {
                continue;
            };
            let Some(send) = analysis.sends.get(failed) else {
                continue;
            };
            let send_op = &analysis.send_ops[send.send_op];
            let offset = facts
                .first_position()
                .and_then(|position| key.order.offset_at(position));
            let place = offset
                .map(|offset| format!("offset {offset}"))
                .unwrap_or_else(|| "an unknown offset".to_owned());
            let what = if send_op.is_txn {
                "a transaction that aborted (completed fail)"
            } else {
                "a send that completed fail"
            };
            let detail = format!(
                "op {reader}, an ok read, returned value {} at {place} of {}; that value was written only by op {}, {what}. A failed write definitely did not happen, so no committed read may see it (an aborted read).",
                facts.value,
                key.name,
                send_op.op(),
            );
            let mut ops = vec![reader, send_op.op()];
            ops.extend(send_op.invoke);
            found.push(
                Anomaly::new(KIND, &key.name, detail, ops)
                    .at(offset.into_iter().collect(), vec![facts.value.clone()]),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::history::{Mop, OpType, OpValue, F};
    use crate::testkit::History;

    #[test]
    fn an_ok_read_of_an_aborted_transaction_value_is_reported() {
        let mut history = History::new();
        history.push(
            OpType::Invoke,
            1,
            F::Txn,
            OpValue::Mops(vec![Mop::send("k-0", 10)]),
        );
        let aborted = history.push(
            OpType::Fail,
            1,
            F::Txn,
            OpValue::Mops(vec![Mop::send_at("k-0", 0, 10)]),
        );
        let reader = history.poll_ok(2, "k-0", &[(0, 10)]);
        let report = history.check();
        assert_eq!(
            report.summary(),
            vec![("G1a", "k-0", vec![aborted - 1, aborted, reader])],
            "{report:?}"
        );
        assert_eq!(report.anomalies[0].offsets, [0]);
    }

    #[test]
    fn a_failed_send_seen_only_by_a_failed_poll_is_not_an_aborted_read() {
        let mut history = History::new();
        history.send(1, OpType::Fail, "k-0", 10, None);
        history.poll(2, OpType::Fail, &[("k-0", &[(0, 10)])]);
        history.send(1, OpType::Ok, "k-0", 11, Some(1));
        history.poll_ok(3, "k-0", &[(1, 11)]);
        assert!(history.check().anomalies.is_empty());
    }

    #[test]
    fn an_info_send_that_was_read_is_not_an_aborted_read() {
        let mut history = History::new();
        history.send(1, OpType::Info, "k-0", 10, None);
        history.poll_ok(2, "k-0", &[(0, 10)]);
        assert!(history.check().anomalies.is_empty());
    }
}
