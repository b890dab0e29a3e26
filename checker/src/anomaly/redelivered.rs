//! `redelivered`: a record was returned to the members of one consumer group more than
//! once by `ok` reads (at-least-once redelivery).
//!
//! Source: Kafka's consumer contract. A member resumes a partition at the group's
//! committed offset, "the offset of the next message the application will consume"
//! (`KafkaConsumer#commitSync`); a consumer that processed records but crashed or lost
//! the partition before its commit covered them leaves them to whoever resumes, who
//! processes them again. Kafka promises at-least-once delivery here, not exactly-once
//! (that takes the output and the offsets in one transaction, KIP-98 and KIP-447), so
//! the kind is informational: it counts the redeliveries a run's faults caused.
//!
//! A record (key, offset) counts when two member reads of one group returned it (see
//! `member_reads`: `ok` polls and txns of a process whose latest assign or subscribe
//! named the group, or that commits for it). Reads of `fail`/`info` operations do not
//! count (the record was not processed); processes in no group are ignored. One anomaly
//! per group and key: how many records were redelivered, the first offsets, and the
//! ops that read the first one twice plus the redelivery of each listed one.

use std::collections::BTreeMap;

use super::member_reads::{self, Again, Given};
use super::EXAMPLES_MAX;
use crate::analysis::{Analysis, GroupId, KeyId};
use crate::Anomaly;

pub const KIND: &str = "redelivered";

pub(crate) fn detect(analysis: &Analysis, given: &Given, found: &mut Vec<Anomaly>) {
    if given.again.is_empty() {
        return;
    }
    // Per (group, key), by position: the first re-read of each redelivered record.
    let mut redelivered: BTreeMap<(GroupId, KeyId), Vec<Again>> = BTreeMap::new();
    for again in &given.again {
        redelivered
            .entry((again.group, again.key))
            .or_default()
            .push(*again);
    }
    for again in redelivered.values_mut() {
        // Stable: the earliest re-read of each position stays.
        again.sort_by_key(|again| again.position);
        again.dedup_by_key(|again| again.position);
    }
    let first_reads = first_reads(analysis, &redelivered);
    for ((group, key), again) in &redelivered {
        // Always there: a record is read again only after a first read.
        let Some(&first) = first_reads.get(&(*group, *key)) else {
            continue;
        };
        report(analysis, *group, *key, again, first, found);
    }
}

/// Per (group, key), the first member read (op, process) of its lowest redelivered
/// record: a second replay, run only when something was redelivered.
fn first_reads(
    analysis: &Analysis,
    redelivered: &BTreeMap<(GroupId, KeyId), Vec<Again>>,
) -> BTreeMap<(GroupId, KeyId), (u64, u64)> {
    let mut first: BTreeMap<(GroupId, KeyId), (u64, u64)> = BTreeMap::new();
    member_reads::for_each(analysis, |read| {
        for &group in read.groups {
            for record in read.records {
                let Some(again) = redelivered.get(&(group, record.key)) else {
                    continue;
                };
                if analysis.record_position(record) == Some(again[0].position) {
                    first
                        .entry((group, record.key))
                        .or_insert((read.op, read.process));
                }
            }
        }
    });
    first
}

fn report(
    analysis: &Analysis,
    group: GroupId,
    key_id: KeyId,
    again: &[Again],
    (first_op, first_process): (u64, u64),
    found: &mut Vec<Anomaly>,
) {
    let key = &analysis.keys[key_id as usize];
    let listed = &again[..again.len().min(EXAMPLES_MAX)];
    let offsets: Vec<u64> = listed
        .iter()
        .map(|again| key.order.offsets[again.position as usize])
        .collect();
    let mut offsets_text: Vec<String> = offsets.iter().map(u64::to_string).collect();
    if again.len() > listed.len() {
        offsets_text.push(format!("{} more", again.len() - listed.len()));
    }
    let first = again[0];
    let detail = format!(
        "members of group {} were given {} record(s) of {} more than once by ok reads (offsets {}): offset {} (value {}) first by op {first_op} (process {first_process}), again by op {} (process {}). At-least-once redelivery: a member processed these records but crashed or lost the partition before its offset commit covered them, and the member that resumed at the committed offset processed them again.",
        analysis.groups.name(group),
        again.len(),
        key.name,
        offsets_text.join(", "),
        offsets[0],
        key.value_of(first.value),
        first.op,
        first.process,
    );
    let ops = std::iter::once(first_op)
        .chain(listed.iter().map(|again| again.op))
        .collect();
    let values = listed
        .iter()
        .map(|again| key.values[again.value as usize].value.clone())
        .collect();
    found.push(Anomaly::new(KIND, &key.name, detail, ops).at(offsets, values));
}

#[cfg(test)]
mod tests {
    use crate::history::OpType;
    use crate::testkit::History;
    use crate::Anomaly;

    fn group_assign(history: &mut History, process: u64, group: &str, keys: &[&str]) -> u64 {
        let op = history.assign(process, keys);
        let last = history.last_mut();
        last.group = Some(group.into());
        last.generation = Some(1);
        last.member = Some(format!("m{process}"));
        op
    }

    fn log(history: &mut History) {
        for offset in 0..3u64 {
            history.send(9, OpType::Ok, "k-0", 10 + offset as i64, Some(offset));
        }
    }

    fn redelivered(history: &History) -> Vec<Anomaly> {
        let report = history.check();
        report
            .anomalies
            .into_iter()
            .filter(|anomaly| anomaly.kind == super::KIND)
            .collect()
    }

    #[test]
    fn a_record_two_members_read_in_ok_polls_is_redelivered() {
        let mut history = History::new();
        log(&mut history);
        group_assign(&mut history, 1, "g", &["k-0"]);
        let first = history.poll_ok(1, "k-0", &[(0, 10), (1, 11), (2, 12)]);
        history.commit(1, "k-0", 1);
        // Member 1 dies before committing 3; member 2 resumes at 1.
        group_assign(&mut history, 2, "g", &["k-0"]);
        let again = history.poll_ok(2, "k-0", &[(1, 11), (2, 12)]);
        let found = redelivered(&history);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].key.as_deref(), Some("k-0"));
        assert_eq!(found[0].ops, [first, again]);
        assert_eq!(found[0].offsets, [1, 2]);
        assert!(found[0].allowed, "informational");
        assert!(
            found[0].detail.contains("2 record(s)"),
            "{}",
            found[0].detail
        );
    }

    #[test]
    fn a_second_read_in_an_info_poll_is_not_redelivered() {
        let mut history = History::new();
        log(&mut history);
        group_assign(&mut history, 1, "g", &["k-0"]);
        history.poll_ok(1, "k-0", &[(0, 10), (1, 11)]);
        group_assign(&mut history, 2, "g", &["k-0"]);
        history.poll(2, OpType::Info, &[("k-0", &[(1, 11), (2, 12)])]);
        assert_eq!(redelivered(&history), []);
    }

    #[test]
    fn two_groups_reading_a_record_once_each_is_not_redelivered() {
        let mut history = History::new();
        log(&mut history);
        group_assign(&mut history, 1, "g", &["k-0"]);
        history.poll_ok(1, "k-0", &[(0, 10), (1, 11)]);
        group_assign(&mut history, 2, "h", &["k-0"]);
        history.poll_ok(2, "k-0", &[(0, 10), (1, 11)]);
        assert_eq!(redelivered(&history), []);
    }

    #[test]
    fn a_consumer_in_no_group_reading_twice_is_not_redelivered() {
        let mut history = History::new();
        log(&mut history);
        history.assign(1, &["k-0"]);
        history.poll_ok(1, "k-0", &[(0, 10), (1, 11)]);
        history.assign(1, &["k-0"]);
        history.last_mut().seek_to_beginning = true;
        history.poll_ok(1, "k-0", &[(0, 10), (1, 11)]);
        assert_eq!(redelivered(&history), []);
    }
}
