//! The version order of one key: which value sits at which offset, with dense positions.
//!
//! Jepsen (`jepsen.tests.kafka/version-orders`) builds, per key, a log of the sets of
//! values observed at each offset and then numbers the offsets that hold something:
//! those numbers are *dense positions*. Transaction markers occupy offsets no client
//! ever sees, so raw offset distance would call every transaction a skip; distance in
//! dense positions does not. Sorting the observations once makes this O(n log n).

use super::{ValueFacts, ValueId};

/// One observation: `value` at `offset`, first seen by history op `op`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Witness {
    pub offset: u64,
    pub value: ValueId,
    pub op: u64,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct VersionOrder {
    /// Dense position -> offset, ascending.
    pub offsets: Vec<u64>,
    /// Dense position -> a value observed there (the first interned, for examples).
    pub first_value_at: Vec<ValueId>,
    /// Offsets observed with two or more values: one witness per value, by value id.
    pub conflicts: Vec<Vec<Witness>>,
    /// Values observed at two or more offsets: one witness per offset, ascending.
    pub duplicates: Vec<Vec<Witness>>,
}

impl VersionOrder {
    /// Builds the order from every observation of one key and records each value's
    /// first and last dense position in `values`.
    pub fn build(mut observations: Vec<Witness>, values: &mut [ValueFacts]) -> Self {
        observations.sort_unstable();
        // Sorted by (offset, value, op): keeping the first of each (offset, value)
        // keeps the earliest op that saw it.
        observations.dedup_by(|later, earlier| {
            later.offset == earlier.offset && later.value == earlier.value
        });
        let mut order = VersionOrder::default();
        let mut offsets_per_value = vec![0u32; values.len()];
        let mut start = 0;
        while start < observations.len() {
            let offset = observations[start].offset;
            let end = start
                + observations[start..]
                    .iter()
                    .take_while(|witness| witness.offset == offset)
                    .count();
            let position = order.offsets.len() as u32;
            order.offsets.push(offset);
            order.first_value_at.push(observations[start].value);
            if end - start > 1 {
                order.conflicts.push(observations[start..end].to_vec());
            }
            for witness in &observations[start..end] {
                let index = witness.value as usize;
                if let Some(facts) = values.get_mut(index) {
                    facts.observed_at(position);
                }
                if let Some(count) = offsets_per_value.get_mut(index) {
                    *count = count.saturating_add(1);
                }
            }
            start = end;
        }
        order.duplicates = collect_duplicates(&observations, &offsets_per_value);
        order
    }

    /// The dense position of `offset`, if some value was observed there.
    pub fn position(&self, offset: u64) -> Option<u32> {
        self.offsets
            .binary_search(&offset)
            .ok()
            .map(|position| position as u32)
    }

    /// The offset at a dense position.
    pub fn offset_at(&self, position: u32) -> Option<u64> {
        self.offsets.get(position as usize).copied()
    }
}

/// Groups the witnesses of values seen at more than one offset, in offset order.
fn collect_duplicates(observations: &[Witness], offsets_per_value: &[u32]) -> Vec<Vec<Witness>> {
    if offsets_per_value.iter().all(|&count| count <= 1) {
        return Vec::new();
    }
    let mut slot_of_value = vec![usize::MAX; offsets_per_value.len()];
    let mut duplicates: Vec<Vec<Witness>> = Vec::new();
    for witness in observations {
        let index = witness.value as usize;
        if offsets_per_value.get(index).copied().unwrap_or(0) <= 1 {
            continue;
        }
        let slot = &mut slot_of_value[index];
        if *slot == usize::MAX {
            *slot = duplicates.len();
            duplicates.push(Vec::new());
        }
        duplicates[*slot].push(*witness);
    }
    duplicates
}

#[cfg(test)]
mod tests {
    use super::{VersionOrder, Witness};
    use crate::analysis::ValueFacts;
    use crate::history::Value;

    fn values(count: usize) -> Vec<ValueFacts> {
        (0..count)
            .map(|number| ValueFacts::new(Value::Int(number as i64)))
            .collect()
    }

    fn witness(offset: u64, value: u32, op: u64) -> Witness {
        Witness { offset, value, op }
    }

    #[test]
    fn gaps_in_offsets_do_not_count_as_positions() {
        let mut facts = values(3);
        let order = VersionOrder::build(
            vec![
                witness(10, 2, 5),
                witness(3, 0, 1),
                witness(7, 1, 2),
                witness(3, 0, 9),
            ],
            &mut facts,
        );
        assert_eq!(order.offsets, [3, 7, 10]);
        assert_eq!(order.position(7), Some(1));
        assert_eq!(order.position(8), None);
        assert_eq!(facts[2].first_position(), Some(2));
        assert!(order.conflicts.is_empty());
        assert!(order.duplicates.is_empty());
    }

    #[test]
    fn conflicts_and_duplicates_keep_the_earliest_witness() {
        let mut facts = values(2);
        let order = VersionOrder::build(
            vec![
                witness(4, 0, 8),
                witness(4, 1, 6),
                witness(4, 0, 3),
                witness(9, 1, 7),
            ],
            &mut facts,
        );
        assert_eq!(
            order.conflicts,
            vec![vec![witness(4, 0, 3), witness(4, 1, 6)]]
        );
        assert_eq!(
            order.duplicates,
            vec![vec![witness(4, 1, 6), witness(9, 1, 7)]]
        );
        assert_eq!(facts[1].first_position(), Some(0));
        assert_eq!(facts[1].last_position(), Some(1));
    }
}
