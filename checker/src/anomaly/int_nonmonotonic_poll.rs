//! `int-nonmonotonic-poll`: inside one operation, a record of a partition sits at or
//! before the record of that partition returned just before it.
//!
//! Source: Jepsen's `jepsen.tests.kafka` (`int-poll-skip+nonmonotonic-cases`,
//! `:nonmonotonic`). Records of one partition come back in log order, each once; an
//! inversion or repeat inside one operation contradicts the log. Applies to every
//! consumer except for keys in the operation's `rebalance_log`. Found by the shared
//! `poll_sweep`.

use super::poll_sweep::{jump_offsets, jump_values, PollJump};
use crate::analysis::Analysis;
use crate::Anomaly;

pub const KIND: &str = "int-nonmonotonic-poll";

pub(crate) fn detect(analysis: &Analysis, jumps: &[PollJump], found: &mut Vec<Anomaly>) {
    for jump in jumps {
        if !jump.internal || !jump.is_nonmonotonic() {
            continue;
        }
        let key = &analysis.keys[jump.key as usize];
        let detail = format!(
            "op {} (process {}) read offset {} (value {}) and then offset {} (value {}) of {} in one operation: at or before the record it had just read. Records of one partition come back in log order, each once.",
            jump.to.op,
            jump.process,
            key.order.offset_at(jump.from.position).unwrap_or_default(),
            key.value_of(jump.from.value),
            key.order.offset_at(jump.to.position).unwrap_or_default(),
            key.value_of(jump.to.value),
            key.name,
        );
        found.push(
            Anomaly::new(KIND, &key.name, detail, vec![jump.to.op])
                .at(jump_offsets(key, jump), jump_values(key, jump)),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::history::OpType;
    use crate::testkit::History;

    #[test]
    fn a_poll_returning_records_out_of_order_is_reported() {
        let mut history = History::new();
        history.send(1, OpType::Ok, "k-0", 10, Some(0));
        history.send(1, OpType::Ok, "k-0", 11, Some(1));
        let poll = history.poll_ok(2, "k-0", &[(1, 11), (0, 10)]);
        let report = history.check();
        assert_eq!(
            report.summary(),
            vec![("int-nonmonotonic-poll", "k-0", vec![poll])],
            "{report:?}"
        );
    }

    #[test]
    fn records_of_different_keys_are_independent() {
        let mut history = History::new();
        history.send(1, OpType::Ok, "k-0", 10, Some(5));
        history.send(1, OpType::Ok, "k-1", 11, Some(0));
        history.poll(2, OpType::Ok, &[("k-0", &[(5, 10)]), ("k-1", &[(0, 11)])]);
        assert!(history.check().anomalies.is_empty());
    }
}
