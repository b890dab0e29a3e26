//! `nonmonotonic-poll`: a consumer's next read of a partition starts at or before what
//! it already read, with no reassignment in between.
//!
//! Source: Jepsen's `jepsen.tests.kafka` (`poll-skip+nonmonotonic-cases`,
//! `:nonmonotonic`). Without an assign or seek, a consumer's position only moves
//! forward, so re-reading a record (or an earlier one) means the broker or client moved
//! the position back, e.g. a fetch served from a stale replica after a leader change.
//! As for `poll-skip`, only processes that never subscribed are held to it; a group
//! consumer's step back (re-reading from the committed offset after a rebalance) is
//! listed as allowed. Found by the shared `poll_sweep`.

use super::poll_sweep::{jump_offsets, jump_values, PollJump};
use crate::analysis::Analysis;
use crate::Anomaly;

pub const KIND: &str = "nonmonotonic-poll";

pub(crate) fn detect(analysis: &Analysis, jumps: &[PollJump], found: &mut Vec<Anomaly>) {
    for jump in jumps {
        if jump.internal || !jump.is_nonmonotonic() {
            continue;
        }
        let group_consumer = analysis.group_consumers.contains(&jump.process);
        let rule = if group_consumer {
            "Allowed: the process is a group consumer, and after a rebalance it resumes from the group's committed offset, which may be behind what it read."
        } else {
            "The process never subscribed and did not drop the partition or seek in between, so its position may only move forward."
        };
        let key = &analysis.keys[jump.key as usize];
        let detail = format!(
            "process {} read {} up to offset {} (value {}) in op {}; its next read of {}, in op {}, started at offset {} (value {}), at or before what it had already read. {rule}",
            jump.process,
            key.name,
            key.order.offset_at(jump.from.position).unwrap_or_default(),
            key.value_of(jump.from.value),
            jump.from.op,
            key.name,
            jump.to.op,
            key.order.offset_at(jump.to.position).unwrap_or_default(),
            key.value_of(jump.to.value),
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

    #[test]
    fn an_assigned_consumer_reading_a_record_again_is_reported() {
        let mut history = History::new();
        history.send(1, OpType::Ok, "k-0", 10, Some(0));
        history.send(1, OpType::Ok, "k-0", 11, Some(1));
        history.assign(2, &["k-0"]);
        let before = history.poll_ok(2, "k-0", &[(0, 10), (1, 11)]);
        let after = history.poll_ok(2, "k-0", &[(1, 11)]);
        let report = history.check();
        assert_eq!(
            report.summary(),
            vec![("nonmonotonic-poll", "k-0", vec![before, after])],
            "{report:?}"
        );
    }

    #[test]
    fn a_seek_to_beginning_makes_rereading_legal() {
        let mut history = History::new();
        history.send(1, OpType::Ok, "k-0", 10, Some(0));
        history.send(1, OpType::Ok, "k-0", 11, Some(1));
        history.assign(2, &["k-0"]);
        history.poll_ok(2, "k-0", &[(0, 10), (1, 11)]);
        history.poll_ok(2, "k-0", &[(0, 10)]);
        history.last_mut().seek_to_beginning = true;
        assert!(history.check().anomalies.is_empty());
    }

    #[test]
    fn a_seek_marked_only_on_the_invoke_also_resets() {
        let mut history = History::new();
        history.send(1, OpType::Ok, "k-0", 10, Some(0));
        history.assign(2, &["k-0"]);
        history.poll_ok(2, "k-0", &[(0, 10)]);
        let again = history.poll_ok(2, "k-0", &[(0, 10)]);
        assert_eq!(
            history.check().summary().len(),
            1,
            "a re-read without a seek"
        );
        // Mark only the invoke of the second poll (a seek, then the poll).
        history.ops_mut()[(again - 1) as usize].seek_to_beginning = true;
        assert!(history.check().anomalies.is_empty());
    }

    #[test]
    fn a_new_process_after_info_starts_fresh() {
        let mut history = History::new();
        history.send(1, OpType::Ok, "k-0", 10, Some(0));
        history.assign(2, &["k-0"]);
        history.poll_ok(2, "k-0", &[(0, 10)]);
        history.poll(2, OpType::Info, &[]);
        history.assign(3, &["k-0"]);
        history.poll_ok(3, "k-0", &[(0, 10)]);
        assert!(history.check().anomalies.is_empty());
    }
}
