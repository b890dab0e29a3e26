//! `realtime-send-order`: send A completed before send B was invoked (same partition,
//! both happened), yet B landed at a lower offset than A.
//!
//! Source: invariants.md, after the real-time order of Jepsen's linearizability
//! checks (Knossos/Elle `:realtime`), applied to the log: appending is linearizable, so
//! sends that do not overlap in real time appear in the log in the order they happened.
//! A is an `ok` send with an acknowledged offset (an `info` send has no completion time
//! to order by); B is any send that happened whose offset is known (acknowledged, or
//! placed by a read).
//!
//! Near-linear: the first pass records, at each invoke, the highest acknowledged offset
//! of every key it sends to; B violates the order iff its offset is below that maximum.
//! Ops listed: A's completion, B's invoke, B's completion.

use crate::analysis::Analysis;
use crate::Anomaly;

pub const KIND: &str = "realtime-send-order";

pub(crate) fn detect(analysis: &Analysis, found: &mut Vec<Anomaly>) {
    for send in &analysis.sends {
        let Some(earlier) = send.acked_before_invoke else {
            continue;
        };
        let send_op = &analysis.send_ops[send.send_op];
        if !send_op.happened {
            continue;
        }
        let key = &analysis.keys[send.key as usize];
        let offset = send.offset.or_else(|| {
            let position = key.values[send.value as usize].first_position()?;
            key.order.offset_at(position)
        });
        let Some(offset) = offset else {
            continue;
        };
        if offset >= earlier.offset {
            continue;
        }
        let invoke = send_op
            .invoke
            .map(|invoke| format!("op {invoke}"))
            .unwrap_or_else(|| "its invoke".to_owned());
        let detail = format!(
            "value {} was acknowledged at offset {} of {} by op {} before the send of value {} was invoked ({invoke}); yet value {} landed at offset {} (op {}), below it. Sends that do not overlap in real time must appear in the log in the order they happened.",
            key.value_of(earlier.value),
            earlier.offset,
            key.name,
            earlier.op,
            key.value_of(send.value),
            key.value_of(send.value),
            offset,
            send_op.op(),
        );
        let mut ops = vec![earlier.op, send_op.op()];
        ops.extend(send_op.invoke);
        let values = vec![
            key.value_of(earlier.value).clone(),
            key.value_of(send.value).clone(),
        ];
        found.push(
            Anomaly::new(KIND, &key.name, detail, ops).at(vec![earlier.offset, offset], values),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::history::OpType;
    use crate::testkit::History;

    #[test]
    fn a_send_invoked_after_an_ack_landing_below_it_is_reported() {
        let mut history = History::new();
        let acked = history.send(1, OpType::Ok, "k-0", 10, Some(1));
        let invoke = history.invoke_send(2, "k-0", 11);
        let completion = history.complete_send(2, OpType::Ok, "k-0", 11, Some(0));
        history.poll_ok(3, "k-0", &[(0, 11), (1, 10)]);
        let report = history.check();
        assert_eq!(
            report.summary(),
            vec![(
                "realtime-send-order",
                "k-0",
                vec![acked, invoke, completion]
            )],
            "{report:?}"
        );
    }

    #[test]
    fn overlapping_sends_may_land_in_either_order() {
        let mut history = History::new();
        history.invoke_send(2, "k-0", 11);
        history.send(1, OpType::Ok, "k-0", 10, Some(1));
        history.complete_send(2, OpType::Ok, "k-0", 11, Some(0));
        history.poll_ok(3, "k-0", &[(0, 11), (1, 10)]);
        assert!(history.check().anomalies.is_empty());
    }

    #[test]
    fn an_info_send_placed_by_a_read_counts_as_b() {
        let mut history = History::new();
        let acked = history.send(1, OpType::Ok, "k-0", 10, Some(1));
        let invoke = history.invoke_send(2, "k-0", 11);
        let info = history.complete_send(2, OpType::Info, "k-0", 11, None);
        history.poll_ok(3, "k-0", &[(0, 11), (1, 10)]);
        let report = history.check();
        assert_eq!(
            report.summary(),
            vec![("realtime-send-order", "k-0", vec![acked, invoke, info])],
            "{report:?}"
        );
    }
}
