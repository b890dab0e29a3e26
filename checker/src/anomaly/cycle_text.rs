//! Spelling out a dependency cycle for `G0` and `G1c`.

use super::dependency_graph::{Cycle, Cycles, Dependency, Edge};
use super::{op_list, EXAMPLES_MAX};
use crate::analysis::Analysis;
use crate::Anomaly;

/// The anomaly for one cycle: every transaction on it (invokes and completions), the
/// keys, and each step with its evidence (a step through plain sends says how many). `more` components with cycles are noted on
/// the last one listed.
pub(crate) fn cycle_anomaly(
    kind: &str,
    analysis: &Analysis,
    cycles: &Cycles,
    cycle: &Cycle,
    rule: &str,
) -> Anomaly {
    let mut steps = Vec::new();
    let mut ops = Vec::new();
    let mut keys: Vec<&str> = Vec::new();
    let mut offsets = Vec::new();
    let mut values = Vec::new();
    let op_of = |node: u32| -> u64 {
        cycles
            .nodes
            .get(node as usize)
            .and_then(|&send_op| analysis.send_ops.get(send_op))
            .map(|send_op| send_op.op())
            .unwrap_or_default()
    };
    for edge in &cycle.edges {
        if let Some(send_op) = cycles
            .nodes
            .get(edge.from as usize)
            .and_then(|&send_op| analysis.send_ops.get(send_op))
        {
            ops.push(send_op.op());
            ops.extend(send_op.invoke);
        }
        let key = &analysis.keys[edge.key as usize];
        if !keys.contains(&key.name.as_str()) {
            keys.push(&key.name);
        }
        let offset_of = |value| {
            analysis
                .value(edge.key, value)
                .first_position()
                .and_then(|position| key.order.offset_at(position))
                .unwrap_or_default()
        };
        let (from, to) = (op_of(edge.from), op_of(edge.to));
        let plain = plain_send_ops(analysis, edge);
        ops.extend(&plain);
        let between = match edge.plain_sends {
            0 => "directly".to_owned(),
            1 => format!("through 1 plain send ({})", op_list(&plain)),
            count => format!("through {count} plain sends ({})", op_list(&plain)),
        };
        offsets.push(offset_of(edge.to_value));
        values.push(key.value_of(edge.to_value).clone());
        let step = match (edge.dependency, edge.plain_sends) {
            (Dependency::Ww, _) => format!(
                "op {from} -ww-> op {to} (on {}, op {from}'s value {} at offset {} is followed {between} by op {to}'s value {} at offset {})",
                key.name,
                key.value_of(edge.from_value),
                offset_of(edge.from_value),
                key.value_of(edge.to_value),
                offset_of(edge.to_value),
            ),
            (Dependency::Wr, 0) => format!(
                "op {from} -wr-> op {to} (op {to} read op {from}'s value {} at offset {} of {})",
                key.value_of(edge.to_value),
                offset_of(edge.to_value),
                key.name,
            ),
            (Dependency::Wr, _) => format!(
                "op {from} -ww...wr-> op {to} (on {}, op {from}'s value {} at offset {} is followed {between} up to value {} at offset {}, which op {to} read)",
                key.name,
                key.value_of(edge.from_value),
                offset_of(edge.from_value),
                key.value_of(edge.to_value),
                offset_of(edge.to_value),
            ),
        };
        steps.push(step);
    }
    let mut distinct = ops.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let detail = format!(
        "a cycle through {} committed transaction(s){} over {}: {}. {rule}",
        cycle.edges.len(),
        if distinct.len() > 2 * cycle.edges.len() {
            " and plain sends"
        } else {
            ""
        },
        keys.join(", "),
        steps.join("; "),
    );
    Anomaly::spanning_keys(kind, detail, ops).at(offsets, values)
}

/// Appends one anomaly per cycle, noting `more` on the last.
pub(crate) fn push_cycles(
    kind: &str,
    analysis: &Analysis,
    cycles: &Cycles,
    listed: &[Cycle],
    more: usize,
    rule: &str,
    found: &mut Vec<Anomaly>,
) {
    let count = listed.len();
    for (position, cycle) in listed.iter().enumerate() {
        let mut anomaly = cycle_anomaly(kind, analysis, cycles, cycle, rule);
        if position + 1 == count && more > 0 {
            anomaly.detail.push_str(&format!(
                " ({more} more strongly connected components hold {kind} cycles; they are not spelled out.)"
            ));
        }
        found.push(anomaly);
    }
}

/// The completions of the plain sends a contracted edge passes (at most
/// [`EXAMPLES_MAX`]): the values on its key's chain after `from_value`, up to
/// `to_value` (included for a `wr` path, whose last plain send is the one read).
fn plain_send_ops(analysis: &Analysis, edge: &Edge) -> Vec<u64> {
    if edge.plain_sends == 0 {
        return Vec::new();
    }
    let key = &analysis.keys[edge.key as usize];
    let (Some(from), Some(to)) = (
        key.values[edge.from_value as usize].first_position(),
        key.values[edge.to_value as usize].first_position(),
    ) else {
        return Vec::new();
    };
    let end = if edge.dependency == Dependency::Wr {
        to + 1
    } else {
        to
    };
    (from + 1..end)
        .filter_map(|position| {
            let value = *key.order.first_value_at.get(position as usize)?;
            let send = key.values[value as usize].happened_send()?;
            let send_op = analysis.sends.get(send)?.send_op;
            Some(analysis.send_ops[send_op].op())
        })
        .take(EXAMPLES_MAX)
        .collect()
}
