//! `G0` (write cycle): a cycle of write-write dependencies between committed
//! operations.
//!
//! Source: Adya's G0 as Elle finds it, in Jepsen's `jepsen.tests.kafka` (which feeds
//! Elle the `ww` and `wr` graphs it derives from offsets). `T1 -ww-> T2`: on some
//! partition, T1's value sits directly before T2's (dense positions). A cycle means the
//! operations' writes interleave on different partitions in contradictory orders
//! (T1 before T2 on one, T2 before T1 on another). Kafka does not isolate a
//! transaction's writes from another's, so Jepsen always allows G0 for Kafka; here the
//! scenario's policy decides (by default it is reported as a failure). See
//! `dependency_graph` for the graph and the bounded search.

use super::cycle_text::push_cycles;
use super::dependency_graph::Cycles;
use crate::analysis::Analysis;
use crate::Anomaly;

pub const KIND: &str = "G0";

pub(crate) fn detect(analysis: &Analysis, cycles: &Cycles, found: &mut Vec<Anomaly>) {
    push_cycles(
        KIND,
        analysis,
        cycles,
        &cycles.g0,
        cycles.g0_more,
        "Each operation's write precedes the next one's on some partition, and the chain returns to where it started: the operations' writes interleave in contradictory orders (a write cycle, Adya's G0).",
        found,
    );
}

#[cfg(test)]
mod tests {
    use crate::history::{Mop, OpType, OpValue, F};
    use crate::testkit::History;

    /// A transaction of `process` writing `values` to k-0 and k-1 at `offsets`.
    fn txn(history: &mut History, process: u64, values: [i64; 2], offsets: [u64; 2]) -> u64 {
        history.push(
            OpType::Invoke,
            process,
            F::Txn,
            OpValue::Mops(vec![
                Mop::send("k-0", values[0]),
                Mop::send("k-1", values[1]),
            ]),
        );
        history.push(
            OpType::Ok,
            process,
            F::Txn,
            OpValue::Mops(vec![
                Mop::send_at("k-0", offsets[0], values[0]),
                Mop::send_at("k-1", offsets[1], values[1]),
            ]),
        )
    }

    #[test]
    fn two_transactions_ordered_differently_on_two_keys_are_a_write_cycle() {
        let mut history = History::new();
        let first = txn(&mut history, 1, [10, 20], [0, 1]);
        let second = txn(&mut history, 2, [11, 21], [1, 0]);
        history.poll(
            3,
            OpType::Ok,
            &[("k-0", &[(0, 10), (1, 11)]), ("k-1", &[(0, 21), (1, 20)])],
        );
        let report = history.check();
        let summary = report.summary();
        assert!(
            summary.contains(&("G0", "", vec![first - 1, first, second - 1, second])),
            "{report:?}"
        );
        // The second transaction was invoked after the first completed, yet its
        // write to k-1 landed below the first's: real-time order breaks too.
        assert!(summary.iter().all(|(kind, _, _)| *kind != "G1c"));
    }

    #[test]
    fn transactions_ordered_the_same_way_on_every_key_are_no_cycle() {
        let mut history = History::new();
        txn(&mut history, 1, [10, 20], [0, 0]);
        txn(&mut history, 2, [11, 21], [1, 1]);
        history.poll(
            3,
            OpType::Ok,
            &[("k-0", &[(0, 10), (1, 11)]), ("k-1", &[(0, 20), (1, 21)])],
        );
        assert!(history.check().anomalies.is_empty());
    }
}
