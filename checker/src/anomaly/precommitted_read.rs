//! `precommitted-read`: a transaction read its own write before it committed.
//!
//! Source: Jepsen's `jepsen.tests.kafka` (`precommitted-read-cases`): "a transaction
//! which observed its own writes ... This is legal in most DBs, but in Kafka's model,
//! sent values are supposed to be invisible to any poll until their transaction
//! commits." Checked for every `ok` `txn`: a poll micro-op that returned a value the
//! same transaction sent in an earlier micro-op. (Polls of `fail`/`info` operations do
//! not count as reads, `history.md`.) With `read_uncommitted` this is expected, and
//! such a scenario allows the kind.

use crate::analysis::Analysis;
use crate::Anomaly;

pub const KIND: &str = "precommitted-read";

pub(crate) fn detect(analysis: &Analysis, found: &mut Vec<Anomaly>) {
    for read in &analysis.precommitted {
        let key = &analysis.keys[read.key as usize];
        let value = key.value_of(read.value);
        let invoke = read
            .invoke
            .map(|invoke| format!("invoked as op {invoke}, "))
            .unwrap_or_default();
        let detail = format!(
            "transaction op {} ({invoke}committed ok) sent value {value} to {} and then, in a later poll of the same transaction, read value {value} back at offset {}. A transaction's sends are invisible to every poll, its own included, until it commits.",
            read.op, key.name, read.offset,
        );
        let mut ops = vec![read.op];
        ops.extend(read.invoke);
        found.push(
            Anomaly::new(KIND, &key.name, detail, ops).at(vec![read.offset], vec![value.clone()]),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::history::{Mop, OpType, OpValue, Value, F};
    use crate::testkit::History;

    fn txn(history: &mut History, typ: OpType, mops: Vec<Mop>) -> u64 {
        let invoke: Vec<Mop> = mops
            .iter()
            .map(|mop| match mop {
                Mop::Send { key, value, .. } => Mop::send(key.clone(), value.clone()),
                Mop::Poll { .. } => Mop::poll(),
            })
            .collect();
        history.push(OpType::Invoke, 1, F::Txn, OpValue::Mops(invoke));
        history.push(typ, 1, F::Txn, OpValue::Mops(mops))
    }

    #[test]
    fn a_transaction_polling_its_own_send_is_reported() {
        let mut history = History::new();
        let op = txn(
            &mut history,
            OpType::Ok,
            vec![
                Mop::send_at("k-0", 0, 10),
                Mop::polled(vec![("k-0".into(), vec![(0, Value::Int(10))])]),
            ],
        );
        let report = history.check();
        assert_eq!(
            report.summary(),
            vec![("precommitted-read", "k-0", vec![op - 1, op])],
            "{report:?}"
        );
    }

    #[test]
    fn a_poll_before_the_send_is_not_a_precommitted_read() {
        let mut history = History::new();
        history.send(2, OpType::Ok, "k-0", 9, Some(0));
        txn(
            &mut history,
            OpType::Ok,
            vec![
                Mop::polled(vec![("k-0".into(), vec![(0, Value::Int(9))])]),
                Mop::send_at("k-0", 1, 10),
            ],
        );
        history.poll_ok(3, "k-0", &[(0, 9), (1, 10)]);
        assert!(history.check().anomalies.is_empty());
    }
}
