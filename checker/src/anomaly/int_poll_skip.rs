//! `int-poll-skip`: inside one operation, two successive records of one partition are
//! not adjacent in the log: the operation skipped values.
//!
//! Source: Jepsen's `jepsen.tests.kafka` (`int-poll-skip+nonmonotonic-cases`, `:skip`,
//! "internal read contiguity"). One poll returns a contiguous run of each partition's
//! records, so a gap of observed values inside it is a broker or client bug. Applies to
//! every consumer, subscribed or not, except for keys named in the operation's
//! `rebalance_log` (their assignment changed mid-operation). Found by the shared
//! `poll_sweep`.

use super::poll_sweep::{jump_offsets, jump_values, PollJump};
use super::skipped_between;
use crate::analysis::Analysis;
use crate::Anomaly;

pub const KIND: &str = "int-poll-skip";

pub(crate) fn detect(analysis: &Analysis, jumps: &[PollJump], found: &mut Vec<Anomaly>) {
    for jump in jumps {
        if !jump.internal || !jump.is_skip() {
            continue;
        }
        let key = &analysis.keys[jump.key as usize];
        let detail = format!(
            "op {} (process {}) read offset {} (value {}) and then offset {} (value {}) of {} in one operation, skipping {}. A poll returns a contiguous run of each partition's records, and {} is not in the operation's rebalance_log.",
            jump.to.op,
            jump.process,
            key.order.offset_at(jump.from.position).unwrap_or_default(),
            key.value_of(jump.from.value),
            key.order.offset_at(jump.to.position).unwrap_or_default(),
            key.value_of(jump.to.value),
            key.name,
            skipped_between(key, jump.from.position, jump.to.position),
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

    fn log_of_three(history: &mut History) {
        for offset in 0..3u64 {
            history.send(1, OpType::Ok, "k-0", 10 + offset as i64, Some(offset));
        }
    }

    #[test]
    fn a_poll_missing_a_middle_record_is_reported_even_for_group_consumers() {
        let mut history = History::new();
        log_of_three(&mut history);
        history.poll_ok(3, "k-0", &[(1, 11)]);
        history.subscribe(2, &["k"]);
        let poll = history.poll_ok(2, "k-0", &[(0, 10), (2, 12)]);
        let report = history.check();
        assert_eq!(
            report.summary(),
            vec![("int-poll-skip", "k-0", vec![poll])],
            "{report:?}"
        );
    }

    #[test]
    fn keys_in_the_rebalance_log_are_exempt() {
        let mut history = History::new();
        log_of_three(&mut history);
        history.poll_ok(3, "k-0", &[(1, 11)]);
        history.subscribe(2, &["k"]);
        history.poll_ok(2, "k-0", &[(0, 10), (2, 12)]);
        history.last_mut().rebalance_log = Some(vec!["k-0".into()]);
        assert!(history.check().anomalies.is_empty());
    }
}
