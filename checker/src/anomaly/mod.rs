//! The anomalies of Jepsen's Kafka workload (`jepsen.tests.kafka`) and Elle, plus ours
//! (real-time send order, torn transactions, exactly-once and consumer-group
//! anomalies), one file each.
//!
//! Each file opens with the anomaly's definition and its source, exports its `KIND`
//! (the name in `shared/design/invariants.md`) and a `detect` function that reads the
//! shared `Analysis` and appends one [`Anomaly`] per
//! violation, with a detail paragraph and the ops that prove it. Consumer and producer
//! order share one sweep each (`poll_sweep`, `send_sweep`), which finds the
//! out-of-order steps; the files decide which steps are their anomaly.
//!
//! To add an anomaly: a new file with `KIND` and `detect`, a line in [`KINDS`], a call
//! in `detect_all`, and tests beside it (one history that has it, one near miss).

pub mod duplicate;
pub mod eos_duplicate_output;
pub mod eos_lost_output;
pub mod g0;
pub mod g1a;
pub mod g1c;
pub mod inconsistent_offsets;
pub mod int_nonmonotonic_poll;
pub mod int_nonmonotonic_send;
pub mod int_poll_skip;
pub mod int_send_skip;
pub mod lost_write;
pub mod nonmonotonic_poll;
pub mod nonmonotonic_send;
pub mod offset_regression;
pub mod poll_skip;
pub mod precommitted_read;
pub mod realtime_send_order;
pub mod redelivered;
pub mod split_ownership;
pub mod torn_transaction;
pub mod uncommitted_gap;
pub mod unseen;
pub mod zombie_commit;

pub(crate) mod cycle_text;
pub(crate) mod dependency_graph;
pub(crate) mod eos;
pub(crate) mod member_reads;
pub(crate) mod poll_sweep;
pub(crate) mod send_sweep;

use crate::analysis::{Analysis, KeyFacts, KeyId, ValueId};
use crate::Anomaly;

/// Every anomaly kind this checker reports, sorted (byte order: Adya's upper-case
/// names first).
pub const KINDS: &[&str] = &[
    g0::KIND,
    g1a::KIND,
    g1c::KIND,
    duplicate::KIND,
    eos_duplicate_output::KIND,
    eos_lost_output::KIND,
    inconsistent_offsets::KIND,
    int_nonmonotonic_poll::KIND,
    int_nonmonotonic_send::KIND,
    int_poll_skip::KIND,
    int_send_skip::KIND,
    lost_write::KIND,
    nonmonotonic_poll::KIND,
    nonmonotonic_send::KIND,
    offset_regression::KIND,
    poll_skip::KIND,
    precommitted_read::KIND,
    realtime_send_order::KIND,
    redelivered::KIND,
    split_ownership::KIND,
    torn_transaction::KIND,
    uncommitted_gap::KIND,
    unseen::KIND,
    zombie_commit::KIND,
];

/// Kinds that are informational: always listed as allowed, whatever the policy
/// (Jepsen's `allowed-error-types` always includes `:int-send-skip`; at-least-once
/// redelivery is what Kafka's consumer promises, so `redelivered` only counts it).
pub const INFORMATIONAL: &[&str] = &[int_send_skip::KIND, redelivered::KIND];

/// Runs every detector. The order here does not matter: the caller sorts.
pub(crate) fn detect_all(analysis: &Analysis) -> Vec<Anomaly> {
    let mut found = Vec::new();
    inconsistent_offsets::detect(analysis, &mut found);
    duplicate::detect(analysis, &mut found);
    lost_write::detect(analysis, &mut found);
    unseen::detect(analysis, &mut found);
    g1a::detect(analysis, &mut found);
    precommitted_read::detect(analysis, &mut found);
    let jumps = poll_sweep::sweep(analysis);
    poll_skip::detect(analysis, &jumps, &mut found);
    nonmonotonic_poll::detect(analysis, &jumps, &mut found);
    int_poll_skip::detect(analysis, &jumps, &mut found);
    int_nonmonotonic_poll::detect(analysis, &jumps, &mut found);
    let steps = send_sweep::sweep(analysis);
    nonmonotonic_send::detect(analysis, &steps, &mut found);
    int_nonmonotonic_send::detect(analysis, &steps, &mut found);
    int_send_skip::detect(analysis, &steps, &mut found);
    realtime_send_order::detect(analysis, &mut found);
    let cycles = dependency_graph::find_cycles(analysis);
    g0::detect(analysis, &cycles, &mut found);
    g1c::detect(analysis, &cycles, &mut found);
    torn_transaction::detect(analysis, &mut found);
    eos_duplicate_output::detect(analysis, &mut found);
    eos_lost_output::detect(analysis, &mut found);
    offset_regression::detect(analysis, &mut found);
    let given = member_reads::Given::replay(analysis);
    uncommitted_gap::detect(analysis, &given, &mut found);
    redelivered::detect(analysis, &given, &mut found);
    zombie_commit::detect(analysis, &mut found);
    split_ownership::detect(analysis, &mut found);
    found
}

/// How many example values a per-key summary (lost, unseen) spells out.
pub(crate) const EXAMPLES_MAX: usize = 10;

/// Records missing below a committed offset, as an anomaly needs them: the ops that sent
/// them (after `commit_op`), "value V at offset O, ... and N more", and the offsets and
/// values of the listed ones.
pub(crate) struct Missing {
    pub ops: Vec<u64>,
    pub text: String,
    pub offsets: Vec<u64>,
    pub values: Vec<crate::history::Value>,
}

/// Describe `missing` `(offset, value id)` records of `key`, listing at most
/// [`EXAMPLES_MAX`].
pub(crate) fn describe_missing(
    analysis: &Analysis,
    key: &KeyFacts,
    commit_op: u64,
    missing: &[(u64, usize)],
) -> Missing {
    let mut ops = vec![commit_op];
    let mut examples = Vec::new();
    let listed = &missing[..missing.len().min(EXAMPLES_MAX)];
    for &(offset, value) in listed {
        let facts = &key.values[value];
        if let Some(send) = facts
            .happened_send()
            .and_then(|send| analysis.sends.get(send))
        {
            ops.push(analysis.send_ops[send.send_op].op());
        }
        examples.push(format!("value {} at offset {offset}", facts.value));
    }
    let more = match missing.len() - listed.len() {
        0 => String::new(),
        extra => format!(" and {extra} more"),
    };
    Missing {
        ops,
        text: format!("{}{more}", examples.join(", ")),
        offsets: listed.iter().map(|&(offset, _)| offset).collect(),
        values: listed
            .iter()
            .map(|&(_, value)| key.values[value].value.clone())
            .collect(),
    }
}

/// "offset 41 (value 17)", or "an unknown offset" when nothing placed it.
pub(crate) fn at_position(key: &KeyFacts, position: Option<u32>) -> String {
    match position.and_then(|position| key.order.offset_at(position)) {
        Some(offset) => format!("offset {offset}"),
        None => "an unknown offset".to_owned(),
    }
}

/// Describes the values strictly between two dense positions, e.g.
/// "2 values at offsets 13..14 (e.g. value 10 at offset 13)".
pub(crate) fn skipped_between(key: &KeyFacts, from: u32, to: u32) -> String {
    let first = from.saturating_add(1);
    let count = to.saturating_sub(first);
    let (Some(first_offset), Some(last_offset)) = (
        key.order.offset_at(first),
        key.order.offset_at(to.saturating_sub(1)),
    ) else {
        return "values".to_owned();
    };
    let example = key
        .order
        .first_value_at
        .get(first as usize)
        .map(|&value| key.value_of(value).to_string())
        .unwrap_or_default();
    if count == 1 {
        format!("1 value (value {example} at offset {first_offset})")
    } else {
        format!(
            "{count} values at offsets {first_offset}..{last_offset} (e.g. value {example} at offset {first_offset})"
        )
    }
}

/// Per dense position of `key`: a committed record there (see
/// [`Analysis::is_committed_record`]), the lowest value id if several.
pub(crate) fn committed_records(analysis: &Analysis, key: KeyId) -> Vec<Option<ValueId>> {
    let facts = &analysis.keys[key as usize];
    let mut records = vec![None; facts.order.offsets.len()];
    for (value, value_facts) in facts.values.iter().enumerate() {
        let Some(position) = value_facts.first_position() else {
            continue;
        };
        let slot = &mut records[position as usize];
        if slot.is_none() && analysis.is_committed_record(value_facts) {
            *slot = Some(value as ValueId);
        }
    }
    records
}

/// "op 5", "ops 5 and 7", "ops 5, 7 and 9".
pub(crate) fn op_list(ops: &[u64]) -> String {
    match ops {
        [] => "no op".to_owned(),
        [only] => format!("op {only}"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(u64::to_string).collect();
            format!("ops {} and {last}", init.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{INFORMATIONAL, KINDS};

    #[test]
    fn kinds_are_sorted_unique_and_cover_the_informational_ones() {
        assert!(KINDS.windows(2).all(|pair| pair[0] < pair[1]), "{KINDS:?}");
        assert_eq!(KINDS.len(), 24);
        assert!(INFORMATIONAL.iter().all(|kind| KINDS.contains(kind)));
    }
}
