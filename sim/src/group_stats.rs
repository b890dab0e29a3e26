//! What a consumer group's rebalances cost, measured on the recorded history: how long
//! partitions had no owner. This is the figure that separates the eager protocol (every
//! member revokes everything, so every partition waits for the whole rebalance) from
//! the cooperative one (KIP-429: only partitions that move wait).

use checker::history::{Op, OpType, OpValue, F};
use std::collections::{BTreeMap, BTreeSet};

/// Partition-milliseconds without an owner in `[0, until_ns)`: per key of `keys`, the
/// time during which no process held it. A process holds what its latest `ok` assign
/// naming a group gave it, until its next one or its end (an `info` completion). Also the highest
/// generation seen.
pub fn unowned_ms(ops: &[Op], keys: &[String], until_ns: u64) -> (u64, u64) {
    let index: BTreeMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let mut held: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    let mut holders: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); keys.len()];
    // Per key: since when it has had no owner (all start unowned at 0).
    let mut since: Vec<Option<u64>> = vec![Some(0); keys.len()];
    let mut total_ns = 0;
    let mut generations = 0;
    for op in ops.iter().take_while(|op| op.time < until_ns) {
        let new: Vec<usize> = match (&op.f, &op.value, op.typ) {
            (F::Assign, OpValue::Keys(assigned), OpType::Ok) if op.group.is_some() => {
                if let Some(g) = op.generation {
                    generations = generations.max(g.max(0) as u64);
                }
                assigned
                    .iter()
                    .filter_map(|k| index.get(k.as_str()).copied())
                    .collect()
            }
            // A process ends with an `info` completion (its crash, or its open batch
            // when it crashed): it holds nothing any more.
            (_, _, OpType::Info) => Vec::new(),
            _ => continue,
        };
        let old = held.insert(op.process, new.clone()).unwrap_or_default();
        for &k in old.iter().filter(|k| !new.contains(k)) {
            holders[k].remove(&op.process);
            if holders[k].is_empty() {
                since[k] = Some(op.time);
            }
        }
        for &k in new.iter().filter(|k| !old.contains(k)) {
            holders[k].insert(op.process);
            if let Some(from) = since[k].take() {
                total_ns += op.time - from;
            }
        }
    }
    for from in since.into_iter().flatten() {
        total_ns += until_ns.saturating_sub(from);
    }
    (total_ns / 1_000_000, generations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::history::Op;

    fn assign(index: u64, time_ms: u64, process: u64, keys: &[&str]) -> Op {
        let mut op = Op::new(
            index,
            time_ms * 1_000_000,
            OpType::Ok,
            process,
            F::Assign,
            OpValue::Keys(keys.iter().map(|k| k.to_string()).collect()),
        );
        op.group = Some("g".into());
        op.generation = Some(1);
        op
    }

    #[test]
    fn a_partition_is_unowned_until_assigned_and_between_owners() {
        let keys = vec!["t-0".to_string(), "t-1".to_string()];
        let ops = vec![
            assign(0, 100, 1, &["t-0", "t-1"]),
            // Eager: process 1 revokes all at 1000, process 2 gets t-1 at 1300, and
            // process 1 gets t-0 back at 1500.
            assign(1, 1_000, 1, &[]),
            assign(2, 1_300, 2, &["t-1"]),
            assign(3, 1_500, 1, &["t-0"]),
        ];
        // t-0: 0-100 and 1000-1500; t-1: 0-100 and 1000-1300.
        assert_eq!(
            unowned_ms(&ops, &keys, 2_000_000_000),
            (100 + 500 + 100 + 300, 1)
        );
    }

    #[test]
    fn a_crash_releases_and_the_window_end_counts() {
        let keys = vec!["t-0".to_string()];
        let mut crash = Op::new(1, 500_000_000, OpType::Info, 1, F::Crash, OpValue::Null);
        crash.group = None;
        let ops = vec![assign(0, 100, 1, &["t-0"]), crash];
        assert_eq!(unowned_ms(&ops, &keys, 800_000_000).0, 100 + 300);
    }
}
