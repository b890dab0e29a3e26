//! `poll-skip`: a consumer's next `ok` read of a partition jumps over values after its
//! previous read, with no reassignment in between.
//!
//! Source: Jepsen's `jepsen.tests.kafka` (`poll-skip+nonmonotonic-cases`, `:skip`).
//! A consumer's position advances one record at a time, so its next poll of a partition
//! must start at the next record the log holds (the next dense position: transaction
//! markers are not records). Only processes that never subscribed are held to this:
//! a group consumer may legally jump across a rebalance (the previous owner committed
//! further), which is what `history.md` says the checker may assume, so its skips are
//! listed as allowed (Jepsen's `allowed-error-types` adds `:poll-skip` when consumers
//! subscribe). An assign that drops the key, or a seek, in between resets the
//! comparison. Found by the shared `poll_sweep`.

use super::poll_sweep::{jump_offsets, jump_values, PollJump};
use super::skipped_between;
use crate::analysis::Analysis;
use crate::Anomaly;

pub const KIND: &str = "poll-skip";

pub(crate) fn detect(analysis: &Analysis, jumps: &[PollJump], found: &mut Vec<Anomaly>) {
    for jump in jumps {
        if jump.internal || !jump.is_skip() {
            continue;
        }
        let group_consumer = analysis.group_consumers.contains(&jump.process);
        let key = &analysis.keys[jump.key as usize];
        let rule = if group_consumer {
            "Allowed: the process is a group consumer, and a rebalance may move its position forward (another member consumed and committed those records)."
        } else {
            "The process never subscribed and did not drop the partition or seek in between, so its position must advance one record at a time."
        };
        let detail = format!(
            "process {} read {} up to offset {} (value {}) in op {}; its next read of {}, in op {}, started at offset {} (value {}), skipping {}. {rule}",
            jump.process,
            key.name,
            key.order.offset_at(jump.from.position).unwrap_or_default(),
            key.value_of(jump.from.value),
            jump.from.op,
            key.name,
            jump.to.op,
            key.order.offset_at(jump.to.position).unwrap_or_default(),
            key.value_of(jump.to.value),
            skipped_between(key, jump.from.position, jump.to.position),
        );
        let anomaly = Anomaly::new(KIND, &key.name, detail, vec![jump.from.op, jump.to.op])
            .at(jump_offsets(key, jump), jump_values(key, jump));
        found.push(if group_consumer {
            anomaly.allowed_always()
        } else {
            anomaly
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::history::OpType;
    use crate::testkit::History;

    /// Offsets 0..=3 of k-0 each hold a value, all read by some reader.
    fn log_of_four(history: &mut History) {
        for offset in 0..4u64 {
            history.send(1, OpType::Ok, "k-0", 10 + offset as i64, Some(offset));
        }
        history.poll_ok(9, "k-0", &[(0, 10), (1, 11), (2, 12), (3, 13)]);
    }

    #[test]
    fn an_assigned_consumer_jumping_over_a_value_is_reported() {
        let mut history = History::new();
        log_of_four(&mut history);
        history.assign(2, &["k-0"]);
        let before = history.poll_ok(2, "k-0", &[(0, 10), (1, 11)]);
        let after = history.poll_ok(2, "k-0", &[(3, 13)]);
        let report = history.check();
        assert_eq!(
            report.summary(),
            vec![("poll-skip", "k-0", vec![before, after])],
            "{report:?}"
        );
        assert!(report.anomalies[0]
            .detail
            .contains("skipping 1 value (value 12 at offset 2)"));
    }

    #[test]
    fn a_gap_where_no_value_was_ever_observed_is_not_a_skip() {
        let mut history = History::new();
        history.send(1, OpType::Ok, "k-0", 10, Some(0));
        // Offset 1 is a transaction marker: nobody ever sees a value there.
        history.send(1, OpType::Ok, "k-0", 12, Some(2));
        history.assign(2, &["k-0"]);
        history.poll_ok(2, "k-0", &[(0, 10)]);
        history.poll_ok(2, "k-0", &[(2, 12)]);
        assert!(history.check().anomalies.is_empty());
    }

    #[test]
    fn a_subscribed_consumer_may_skip_across_a_rebalance() {
        let mut history = History::new();
        log_of_four(&mut history);
        history.subscribe(2, &["k"]);
        let before = history.poll_ok(2, "k-0", &[(0, 10)]);
        let after = history.poll_ok(2, "k-0", &[(3, 13)]);
        let report = history.check();
        assert_eq!(
            report.summary(),
            vec![("poll-skip", "k-0", vec![before, after])]
        );
        assert!(report.anomalies[0].allowed, "listed, but allowed");
        assert!(report.ok());
        assert_eq!(report.anomalies[0].offsets, [0, 3]);
    }

    #[test]
    fn an_assign_dropping_the_key_resets_the_position() {
        let mut history = History::new();
        log_of_four(&mut history);
        history.assign(2, &["k-0"]);
        history.poll_ok(2, "k-0", &[(0, 10)]);
        history.assign(2, &["k-1"]);
        history.assign(2, &["k-0"]);
        history.poll_ok(2, "k-0", &[(3, 13)]);
        assert!(history.check().anomalies.is_empty());
    }

    #[test]
    fn an_assign_keeping_the_key_keeps_the_position() {
        let mut history = History::new();
        log_of_four(&mut history);
        history.assign(2, &["k-0"]);
        let before = history.poll_ok(2, "k-0", &[(0, 10)]);
        history.assign(2, &["k-0", "k-1"]);
        let after = history.poll_ok(2, "k-0", &[(3, 13)]);
        assert_eq!(
            history.check().summary(),
            vec![("poll-skip", "k-0", vec![before, after])]
        );
    }

    #[test]
    fn reads_of_info_polls_do_not_move_the_position() {
        let mut history = History::new();
        log_of_four(&mut history);
        history.assign(2, &["k-0"]);
        history.poll_ok(2, "k-0", &[(0, 10)]);
        history.poll(2, OpType::Fail, &[("k-0", &[(1, 11)])]);
        history.poll_ok(2, "k-0", &[(1, 11)]);
        assert!(history.check().anomalies.is_empty());
    }
}
