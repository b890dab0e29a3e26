//! `G1c` (circular information flow): a cycle of write-write and write-read
//! dependencies between committed operations, with at least one write-read edge.
//!
//! Source: Adya's G1c as Elle finds it, in Jepsen's `jepsen.tests.kafka`. `T1 -wr-> T2`:
//! T2 (an `ok` operation that also wrote: a `txn`) read a value T1 wrote. `T1 -ww-> T2`:
//! on some partition T1's value sits directly before T2's. A cycle through a `wr` edge
//! means information flowed from a transaction back into one that precedes it: T2 saw
//! T1's write, yet T1 (transitively) depends on T2. Under `read_committed` this is
//! forbidden (Jepsen allows it only with `read_uncommitted`). See `dependency_graph`.

use super::cycle_text::push_cycles;
use super::dependency_graph::Cycles;
use crate::analysis::Analysis;
use crate::Anomaly;

pub const KIND: &str = "G1c";

pub(crate) fn detect(analysis: &Analysis, cycles: &Cycles, found: &mut Vec<Anomaly>) {
    push_cycles(
        KIND,
        analysis,
        cycles,
        &cycles.g1c,
        cycles.g1c_more,
        "An operation read another's write, yet through the chain of write orders and reads the writer depends on the reader: information flowed in a circle (Adya's G1c), impossible if committed transactions take effect in one order.",
        found,
    );
}

#[cfg(test)]
mod tests {
    use crate::history::{Mop, OpType, OpValue, Value, F};
    use crate::testkit::History;

    /// A transaction of `process` that reads `read` on k-1 and writes `value` to
    /// k-0 at `offset`.
    fn txn(
        history: &mut History,
        process: u64,
        read: &[(u64, i64)],
        value: i64,
        offset: u64,
    ) -> u64 {
        history.push(
            OpType::Invoke,
            process,
            F::Txn,
            OpValue::Mops(vec![Mop::poll(), Mop::send("k-0", value)]),
        );
        let records = read
            .iter()
            .map(|&(offset, value)| (offset, Value::Int(value)))
            .collect();
        history.push(
            OpType::Ok,
            process,
            F::Txn,
            OpValue::Mops(vec![
                Mop::polled(vec![("k-1".into(), records)]),
                Mop::send_at("k-0", offset, value),
            ]),
        )
    }

    #[test]
    fn a_transaction_reading_a_write_of_one_ordered_after_it_is_a_cycle() {
        let mut history = History::new();
        // T2 writes 21 to k-1 and 11 to k-0 (offset 1); T1 writes 10 to k-0 at
        // offset 0 after reading 21: T1 -ww-> T2 on k-0, T2 -wr-> T1 on k-1.
        history.push(
            OpType::Invoke,
            2,
            F::Txn,
            OpValue::Mops(vec![Mop::send("k-1", 21), Mop::send("k-0", 11)]),
        );
        let t1_invoke = history.push(
            OpType::Invoke,
            1,
            F::Txn,
            OpValue::Mops(vec![Mop::poll(), Mop::send("k-0", 10)]),
        );
        let t2 = history.push(
            OpType::Ok,
            2,
            F::Txn,
            OpValue::Mops(vec![Mop::send_at("k-1", 0, 21), Mop::send_at("k-0", 1, 11)]),
        );
        let t1 = history.push(
            OpType::Ok,
            1,
            F::Txn,
            OpValue::Mops(vec![
                Mop::polled(vec![("k-1".into(), vec![(0, Value::Int(21))])]),
                Mop::send_at("k-0", 0, 10),
            ]),
        );
        history.poll(
            3,
            OpType::Ok,
            &[("k-0", &[(0, 10), (1, 11)]), ("k-1", &[(0, 21)])],
        );
        let report = history.check();
        assert_eq!(
            report.summary(),
            vec![("G1c", "", vec![0, t1_invoke, t2, t1])],
            "{report:?}"
        );
        assert!(report.anomalies[0].detail.contains("-wr->"));
    }

    #[test]
    fn a_cycle_through_a_plain_send_is_found_and_names_it() {
        let mut history = History::new();
        // T1 writes a@0 and (later) b@1; plain send S writes a@1; T2 reads S's value
        // and writes b@0. T1 -ww-> S -wr-> T2 -ww-> T1: information flowed in a circle.
        history.push(
            OpType::Invoke,
            1,
            F::Txn,
            OpValue::Mops(vec![Mop::send("a", 10), Mop::send("b", 11)]),
        );
        let plain = history.send(3, OpType::Ok, "a", 30, Some(1));
        history.push(
            OpType::Invoke,
            2,
            F::Txn,
            OpValue::Mops(vec![Mop::poll(), Mop::send("b", 20)]),
        );
        let t2 = history.push(
            OpType::Ok,
            2,
            F::Txn,
            OpValue::Mops(vec![
                Mop::polled(vec![("a".into(), vec![(1, Value::Int(30))])]),
                Mop::send_at("b", 0, 20),
            ]),
        );
        let t1 = history.push(
            OpType::Ok,
            1,
            F::Txn,
            OpValue::Mops(vec![Mop::send_at("a", 0, 10), Mop::send_at("b", 1, 11)]),
        );
        history.poll(
            4,
            OpType::Ok,
            &[("a", &[(0, 10), (1, 30)]), ("b", &[(0, 20), (1, 11)])],
        );
        let report = history.check();
        let cycles: Vec<_> = report
            .summary()
            .into_iter()
            .filter(|(kind, _, _)| *kind == "G1c")
            .collect();
        assert_eq!(
            cycles,
            vec![("G1c", "", vec![0, plain, t2 - 1, t2, t1])],
            "{report:?}"
        );
        let detail = &report
            .anomalies
            .iter()
            .find(|a| a.kind == "G1c")
            .unwrap()
            .detail;
        assert!(detail.contains("through 1 plain send (op 2)"), "{detail}");
    }

    #[test]
    fn reading_an_earlier_transaction_is_no_cycle() {
        let mut history = History::new();
        history.send(2, OpType::Ok, "k-1", 21, Some(0));
        txn(&mut history, 1, &[(0, 21)], 10, 0);
        txn(&mut history, 4, &[], 11, 1);
        history.poll(3, OpType::Ok, &[("k-0", &[(0, 10), (1, 11)])]);
        assert!(history.check().anomalies.is_empty());
    }
}
