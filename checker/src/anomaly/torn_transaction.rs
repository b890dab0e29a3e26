//! `torn-transaction`: a committed transaction's writes are partly visible: some of
//! its values were read, others were never read although reads went past them.
//!
//! Source: ours (invariants.md), after Kafka's transactional guarantee (KIP-98: the
//! writes of a committed transaction become visible atomically to `read_committed`
//! consumers) and Adya's "fractured reads". Committed: the `txn` completed `ok`, or
//! its outcome is unknown and an `ok` read saw one of its values (Jepsen's rule for
//! `info`). A value is *visible* when some `ok` read returned it; it is *passed over*
//! when no `ok` read returned it, its position is known, and an `ok` read reached that
//! position or beyond on its key (Jepsen's read bound, as for `lost-write`). A
//! transaction with a visible value and a passed-over one is torn. Its passed-over
//! values are usually `lost-write`s too; this kind says that the loss broke a
//! transaction's atomicity.

use super::{op_list, EXAMPLES_MAX};
use crate::analysis::{Analysis, ReadBound};
use crate::Anomaly;

pub const KIND: &str = "torn-transaction";

pub(crate) fn detect(analysis: &Analysis, found: &mut Vec<Anomaly>) {
    if !analysis.send_ops.iter().any(|send_op| send_op.is_txn) {
        return;
    }
    let bounds: Vec<Option<ReadBound>> = analysis.keys.iter().map(|key| key.read_bound()).collect();
    for send_op in &analysis.send_ops {
        if !send_op.is_txn || !send_op.happened {
            continue;
        }
        let sends = analysis.sends.get(send_op.sends.clone()).unwrap_or(&[]);
        let visible = sends.iter().find(|send| {
            analysis
                .value(send.key, send.value)
                .first_ok_read()
                .is_some()
        });
        let Some(visible) = visible else {
            continue;
        };
        let passed: Vec<_> = sends
            .iter()
            .filter(|send| {
                let facts = analysis.value(send.key, send.value);
                let bound = bounds.get(send.key as usize).copied().flatten();
                facts.first_ok_read().is_none()
                    && matches!((facts.last_position(), bound), (Some(position), Some(bound)) if position <= bound.position)
            })
            .collect();
        let Some(first) = passed.first() else {
            continue;
        };
        let visible_key = &analysis.keys[visible.key as usize];
        let visible_facts = analysis.value(visible.key, visible.value);
        let key = &analysis.keys[first.key as usize];
        let mut ops = vec![send_op.op()];
        ops.extend(send_op.invoke);
        ops.extend(visible_facts.first_ok_read());
        let mut offsets = Vec::new();
        let mut values = Vec::new();
        let mut missing = Vec::new();
        for send in passed.iter().take(EXAMPLES_MAX) {
            let facts = analysis.value(send.key, send.value);
            let send_key = &analysis.keys[send.key as usize];
            let offset = facts
                .last_position()
                .and_then(|position| send_key.order.offset_at(position));
            let bound = bounds.get(send.key as usize).copied().flatten();
            if let Some(bound) = bound {
                ops.push(bound.op);
            }
            if send.key == first.key {
                offsets.extend(offset);
                values.push(facts.value.clone());
            }
            missing.push(format!(
                "value {} at offset {} of {} (read past by {})",
                facts.value,
                offset.unwrap_or_default(),
                send_key.name,
                op_list(&bound.map(|bound| vec![bound.op]).unwrap_or_default()),
            ));
        }
        let outcome = if send_op.outcome == crate::analysis::Outcome::Ok {
            "committed ok"
        } else {
            "completed with unknown outcome, and one of its values was read, so it committed"
        };
        let detail = format!(
            "transaction op {} ({outcome}) wrote {} value(s); value {} on {} was read (first by op {}), but {} of its values were never returned by any ok read although reads went past them: {}. A committed transaction's writes become visible together (KIP-98), so a reader that passes one of them must be able to read all of them.",
            send_op.op(),
            sends.len(),
            visible_facts.value,
            visible_key.name,
            visible_facts.first_ok_read().unwrap_or_default(),
            passed.len(),
            missing.join(", "),
        );
        found.push(Anomaly::new(KIND, &key.name, detail, ops).at(offsets, values));
    }
}

#[cfg(test)]
mod tests {
    use crate::history::{Mop, OpType, OpValue, F};
    use crate::testkit::History;

    /// Transaction of process 1 writes 10 to k-0 at offset 0 and 20 to k-1 at offset 0.
    fn two_key_transaction(history: &mut History) -> u64 {
        history.push(
            OpType::Invoke,
            1,
            F::Txn,
            OpValue::Mops(vec![Mop::send("k-0", 10), Mop::send("k-1", 20)]),
        );
        history.push(
            OpType::Ok,
            1,
            F::Txn,
            OpValue::Mops(vec![Mop::send_at("k-0", 0, 10), Mop::send_at("k-1", 0, 20)]),
        )
    }

    #[test]
    fn a_transaction_half_read_with_the_other_half_passed_over_is_torn() {
        let mut history = History::new();
        let txn = two_key_transaction(&mut history);
        history.send(2, OpType::Ok, "k-1", 21, Some(2));
        let reader = history.poll_ok(3, "k-0", &[(0, 10)]);
        let past = history.poll_ok(4, "k-1", &[(2, 21)]);
        let report = history.check();
        let kinds: Vec<_> = report.summary();
        assert_eq!(
            kinds,
            vec![
                ("lost-write", "k-1", vec![txn, past]),
                ("torn-transaction", "k-1", vec![txn - 1, txn, reader, past]),
            ],
            "{report:?}"
        );
        assert_eq!(report.anomalies[1].offsets, [0]);
    }

    #[test]
    fn a_transaction_whose_other_half_nobody_read_past_is_not_torn() {
        let mut history = History::new();
        two_key_transaction(&mut history);
        history.poll_ok(3, "k-0", &[(0, 10)]);
        let report = history.check();
        // Unseen (no drain), but not torn: nothing read k-1 at all.
        assert_eq!(
            report
                .summary()
                .iter()
                .map(|(kind, _, _)| *kind)
                .collect::<Vec<_>>(),
            ["unseen"]
        );
    }
}
