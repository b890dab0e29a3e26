//! The write-write / write-read dependency graph shared by `G0` and `G1c`, and the
//! bounded search for concrete cycles in it.
//!
//! Source: Adya's dependency graphs as Elle builds them (Kingsbury & Alvaro, "Elle:
//! Inferring Isolation Anomalies from Experimental Observations", 2020), with the
//! version order of each key taken from offsets, as Jepsen's `jepsen.tests.kafka` does:
//! - nodes: transactions, i.e. `txn` operations that completed `ok` and sent
//!   something, and every send micro-op of an `ok` `send` operation on its own. Kafka
//!   makes a transaction's writes atomic, but not the records of one non-transactional
//!   `send` to several partitions (each partition appends its batch independently), so
//!   such an operation is not one transaction; taking it as one would report its
//!   legal interleavings as `G0` (which is why Jepsen always allows `G0` for Kafka). An
//!   operation that only polls has no outgoing edge, so it can be on no cycle;
//! - `ww` edge T1 → T2: on some key, T1's value sits at the dense position right
//!   before T2's value (T1 ≠ T2; a position whose writer is not a node breaks the
//!   chain, as an unknown version does in Elle);
//! - `wr` edge T1 → T2: T2, an `ok` operation that also sent, read a value T1 wrote.
//!
//! Contraction: a plain send is on exactly one key's chain and reads nothing, so every
//! cycle passes through a transaction. Only transactions are graph nodes; a stretch of
//! plain sends between two writes on one chain becomes one edge: `ww` from the
//! transaction before the stretch to the one after it, and, for a plain send in the
//! stretch that a transaction read, a path `ww ... wr` from the transaction before the
//! stretch to the reader (counted as `wr`: it holds a write-read dependency). A
//! transaction whose own writes sandwich plain sends gets a self-edge: a cycle of its
//! own through those sends. Where a chain position has no known committed writer the
//! chain breaks, as an unknown version does in Elle. This keeps the graph as small as
//! the transactions however many plain sends a run has.
//!
//! Search: Tarjan's strongly connected components, iterative (no recursion, so no
//! stack-depth hazard on long chains), once over all edges and once over `ww` edges
//! only. A component with an internal `wr` edge u → v holds a `G1c` cycle: v reaches u
//! inside the component, and a breadth-first search finds the shortest such path. A
//! non-trivial component of the `ww`-only graph holds a `G0` cycle, found the same way.
//! Everything is linear in nodes plus edges; at most [`CYCLES_LISTED_MAX`] cycles per
//! kind are spelled out (each search stays inside its own component, so the searches
//! together touch each edge at most once), the rest are counted.

use std::collections::VecDeque;

use crate::analysis::{Analysis, ConsumerEvent, KeyId, Outcome, ValueId};

/// Cycles spelled out per kind; more components with cycles are only counted.
pub(crate) const CYCLES_LISTED_MAX: usize = 5;

const NONE: u32 = u32::MAX;
/// `node_of` for a send of a plain (non-transactional) `ok` send operation.
const PLAIN: u32 = u32::MAX - 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dependency {
    Ww,
    Wr,
}

/// One dependency (or a contracted path), with the evidence for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Edge {
    pub from: u32,
    pub to: u32,
    /// `Wr` when the path holds a write-read dependency.
    pub dependency: Dependency,
    pub key: KeyId,
    /// `from`'s value on `key` (for a direct `wr`: the value `to` read).
    pub from_value: ValueId,
    /// `ww`: `to`'s value on `key`; `wr`: the value `to` read.
    pub to_value: ValueId,
    /// Plain sends on the chain between `from_value` and `to_value` (a `wr` path
    /// through plain sends counts the one `to` read).
    pub plain_sends: u32,
}

/// A cycle, as its edges in order (the last edge returns to the first's `from`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cycle {
    pub edges: Vec<Edge>,
}

/// What the search found.
#[derive(Debug, Default)]
pub(crate) struct Cycles {
    /// Node -> index into `send_ops` (a transaction).
    pub nodes: Vec<usize>,
    pub g0: Vec<Cycle>,
    /// Components with a `G0` cycle beyond the listed ones.
    pub g0_more: usize,
    pub g1c: Vec<Cycle>,
    pub g1c_more: usize,
}

/// The graph in compressed adjacency form: the edges of node `n` are
/// `edges[starts[n]..starts[n + 1]]`.
struct Graph {
    starts: Vec<u32>,
    edges: Vec<Edge>,
}

impl Graph {
    fn out(&self, node: u32) -> &[Edge] {
        let start = self.starts[node as usize] as usize;
        let end = self.starts[node as usize + 1] as usize;
        &self.edges[start..end]
    }

    fn node_count(&self) -> usize {
        self.starts.len() - 1
    }
}

/// A transaction's read of a plain send's value: (key, position of the value, value,
/// reader node).
type PlainRead = (KeyId, u32, ValueId, u32);

/// Builds the graph and finds `G0` and `G1c` cycles.
pub(crate) fn find_cycles(analysis: &Analysis) -> Cycles {
    // Node of each send (index into `sends`), `PLAIN` or `NONE`.
    let mut node_of = vec![NONE; analysis.sends.len()];
    let mut nodes = Vec::new();
    for (index, send_op) in analysis.send_ops.iter().enumerate() {
        if send_op.outcome != Outcome::Ok || nodes.len() >= PLAIN as usize {
            continue;
        }
        let node = if send_op.is_txn {
            nodes.push(index);
            (nodes.len() - 1) as u32
        } else {
            PLAIN
        };
        if let Some(slots) = node_of.get_mut(send_op.sends.clone()) {
            slots.fill(node);
        }
    }
    let mut cycles = Cycles::default();
    if nodes.is_empty() {
        return cycles;
    }
    let mut edges = Vec::new();
    let mut plain_reads = read_edges(analysis, &node_of, &mut edges);
    plain_reads.sort_unstable();
    chain_edges(analysis, &node_of, &plain_reads, &mut edges);
    if edges.is_empty() || edges.len() >= NONE as usize {
        cycles.nodes = nodes;
        return cycles;
    }
    let graph = compress(nodes.len(), edges);
    let all = strongly_connected(&graph, |_| true);
    let (g1c, g1c_more) = cycles_through(&graph, &all, Dependency::Wr, |_| true);
    let ww_only = |edge: &Edge| edge.dependency == Dependency::Ww;
    let ww = strongly_connected(&graph, ww_only);
    let (g0, g0_more) = cycles_through(&graph, &ww, Dependency::Ww, ww_only);
    Cycles {
        nodes,
        g0,
        g0_more,
        g1c,
        g1c_more,
    }
}

/// The committed writer of each dense position of `key` (`NONE`, `PLAIN` or a node)
/// and its value; with several values at one position, the lowest node wins.
fn writers(analysis: &Analysis, key: KeyId, node_of: &[u32]) -> Vec<(u32, ValueId)> {
    let facts = &analysis.keys[key as usize];
    let mut writer_at = vec![(NONE, 0); facts.order.offsets.len()];
    for (value, value_facts) in facts.values.iter().enumerate() {
        let (Some(send), Some(position)) =
            (value_facts.happened_send(), value_facts.first_position())
        else {
            continue;
        };
        let node = node_of.get(send).copied().unwrap_or(NONE);
        let slot = &mut writer_at[position as usize];
        if node != NONE && (slot.0 == NONE || node < slot.0) {
            *slot = (node, value as ValueId);
        }
    }
    writer_at
}

/// Walks each key's chain: `ww` edges between successive transactions, through any
/// plain sends between them, and `wr` paths from a transaction through plain sends to
/// the transactions that read one of them.
fn chain_edges(
    analysis: &Analysis,
    node_of: &[u32],
    plain_reads: &[PlainRead],
    edges: &mut Vec<Edge>,
) {
    let mut reads = plain_reads.iter().peekable();
    for key in 0..analysis.keys.len() as KeyId {
        if analysis.keys[key as usize].order.offsets.len() < 2 {
            continue;
        }
        let writer_at = writers(analysis, key, node_of);
        // The last transaction on the chain (node, its value) and the plain sends since.
        let mut last: Option<(u32, ValueId)> = None;
        let mut plain_sends = 0u32;
        for (position, &(writer, value)) in writer_at.iter().enumerate() {
            let position = position as u32;
            match writer {
                NONE => last = None,
                PLAIN => {
                    plain_sends += 1;
                    while let Some(&(_, _, read_value, reader)) =
                        reads.next_if(|read| (read.0, read.1) <= (key, position))
                    {
                        let (Some((from, from_value)), true) = (last, read_value == value) else {
                            continue;
                        };
                        edges.push(Edge {
                            from,
                            to: reader,
                            dependency: Dependency::Wr,
                            key,
                            from_value,
                            to_value: value,
                            plain_sends,
                        });
                    }
                }
                node => {
                    if let Some((from, from_value)) = last {
                        // A transaction's own successive writes are no dependency;
                        // with plain sends between them they are a cycle.
                        if from != node || plain_sends > 0 {
                            edges.push(Edge {
                                from,
                                to: node,
                                dependency: Dependency::Ww,
                                key,
                                from_value,
                                to_value: value,
                                plain_sends,
                            });
                        }
                    }
                    last = Some((node, value));
                    plain_sends = 0;
                }
            }
            if writer == NONE {
                plain_sends = 0;
            }
        }
    }
}

/// Direct `wr` edges between transactions; returns the transactions' reads of plain
/// sends' values, for `chain_edges`.
fn read_edges(analysis: &Analysis, node_of: &[u32], edges: &mut Vec<Edge>) -> Vec<PlainRead> {
    let mut plain_reads = Vec::new();
    for event in &analysis.consumer_events {
        let ConsumerEvent::Read {
            records,
            writer: Some(reader),
            ..
        } = event
        else {
            continue;
        };
        let Some(reader_op) = analysis.send_ops.get(*reader) else {
            continue;
        };
        let reader = node_of.get(reader_op.sends.start).copied().unwrap_or(NONE);
        if !reader_op.is_txn || reader >= PLAIN {
            continue;
        }
        for record in analysis.read_records.get(records.clone()).unwrap_or(&[]) {
            let facts = analysis.value(record.key, record.value);
            let Some(send) = facts.happened_send() else {
                continue;
            };
            match node_of.get(send).copied().unwrap_or(NONE) {
                NONE => {}
                PLAIN => {
                    if let Some(position) = facts.first_position() {
                        plain_reads.push((record.key, position, record.value, reader));
                    }
                }
                writer if writer != reader => edges.push(Edge {
                    from: writer,
                    to: reader,
                    dependency: Dependency::Wr,
                    key: record.key,
                    from_value: record.value,
                    to_value: record.value,
                    plain_sends: 0,
                }),
                _ => {}
            }
        }
    }
    plain_reads
}

/// Counting sort of the edges by source node.
fn compress(node_count: usize, edges: Vec<Edge>) -> Graph {
    let mut starts = vec![0u32; node_count + 1];
    for edge in &edges {
        starts[edge.from as usize + 1] += 1;
    }
    for node in 0..node_count {
        starts[node + 1] += starts[node];
    }
    let mut next = starts.clone();
    let placeholder = edges[0];
    let mut sorted = vec![placeholder; edges.len()];
    for edge in edges {
        let slot = &mut next[edge.from as usize];
        sorted[*slot as usize] = edge;
        *slot += 1;
    }
    Graph {
        starts,
        edges: sorted,
    }
}

/// Component id per node and the size of each component.
struct Components {
    of: Vec<u32>,
    sizes: Vec<u32>,
}

/// Tarjan's algorithm over the edges `keep` accepts, with an explicit stack.
fn strongly_connected(graph: &Graph, keep: impl Fn(&Edge) -> bool) -> Components {
    let count = graph.node_count();
    let mut index = vec![NONE; count];
    let mut low = vec![0u32; count];
    let mut on_stack = vec![false; count];
    let mut stack: Vec<u32> = Vec::new();
    let mut calls: Vec<(u32, u32)> = Vec::new();
    let mut components = Components {
        of: vec![NONE; count],
        sizes: Vec::new(),
    };
    let mut counter = 0u32;
    for root in 0..count as u32 {
        if index[root as usize] != NONE {
            continue;
        }
        visit(
            root,
            &mut counter,
            &mut index,
            &mut low,
            &mut on_stack,
            &mut stack,
        );
        calls.push((root, graph.starts[root as usize]));
        while let Some(&mut (node, ref mut next_edge)) = calls.last_mut() {
            if *next_edge < graph.starts[node as usize + 1] {
                let edge = graph.edges[*next_edge as usize];
                *next_edge += 1;
                if !keep(&edge) {
                    continue;
                }
                let to = edge.to;
                if index[to as usize] == NONE {
                    visit(
                        to,
                        &mut counter,
                        &mut index,
                        &mut low,
                        &mut on_stack,
                        &mut stack,
                    );
                    calls.push((to, graph.starts[to as usize]));
                } else if on_stack[to as usize] {
                    low[node as usize] = low[node as usize].min(index[to as usize]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(parent, _)) = calls.last() {
                low[parent as usize] = low[parent as usize].min(low[node as usize]);
            }
            if low[node as usize] == index[node as usize] {
                let id = components.sizes.len() as u32;
                let mut size = 0u32;
                while let Some(member) = stack.pop() {
                    on_stack[member as usize] = false;
                    components.of[member as usize] = id;
                    size += 1;
                    if member == node {
                        break;
                    }
                }
                components.sizes.push(size);
            }
        }
    }
    components
}

fn visit(
    node: u32,
    counter: &mut u32,
    index: &mut [u32],
    low: &mut [u32],
    on_stack: &mut [bool],
    stack: &mut Vec<u32>,
) {
    index[node as usize] = *counter;
    low[node as usize] = *counter;
    *counter += 1;
    on_stack[node as usize] = true;
    stack.push(node);
}

/// For each component (in order of the first node that has one) with an internal edge
/// of kind `through`, the shortest cycle through that edge using edges `keep`
/// accepts. Returns the listed cycles and how many more components had one.
fn cycles_through(
    graph: &Graph,
    components: &Components,
    through: Dependency,
    keep: impl Fn(&Edge) -> bool + Copy,
) -> (Vec<Cycle>, usize) {
    let mut done = vec![false; components.sizes.len()];
    let mut cycles = Vec::new();
    let mut more = 0;
    let mut came_from = vec![NONE; graph.node_count()];
    for (edge_index, edge) in graph.edges.iter().enumerate() {
        let component = components.of[edge.from as usize];
        if edge.dependency != through
            || !keep(edge)
            || component != components.of[edge.to as usize]
            || done[component as usize]
        {
            continue;
        }
        done[component as usize] = true;
        if cycles.len() >= CYCLES_LISTED_MAX {
            more += 1;
            continue;
        }
        // A self-edge (a transaction's writes around plain sends) is a cycle alone.
        let path = shortest_path(graph, components, &mut came_from, edge.to, edge.from, keep);
        let mut edges = vec![graph.edges[edge_index]];
        edges.extend(path);
        cycles.push(Cycle { edges });
    }
    (cycles, more)
}

/// Breadth-first search from `start` to `goal` inside their component; the edges of
/// the path. `came_from` is scratch space (all `NONE` on entry and on return).
fn shortest_path(
    graph: &Graph,
    components: &Components,
    came_from: &mut [u32],
    start: u32,
    goal: u32,
    keep: impl Fn(&Edge) -> bool,
) -> Vec<Edge> {
    let component = components.of[start as usize];
    let mut queue = VecDeque::from([start]);
    let mut touched = vec![start];
    came_from[start as usize] = start;
    let mut found = start == goal;
    while let Some(node) = queue.pop_front() {
        if found {
            break;
        }
        let first_edge = graph.starts[node as usize];
        for (offset, edge) in graph.out(node).iter().enumerate() {
            let to = edge.to as usize;
            if !keep(edge) || components.of[to] != component || came_from[to] != NONE {
                continue;
            }
            // Remember the edge (its index), not the node, to rebuild the path.
            came_from[to] = first_edge + offset as u32;
            touched.push(edge.to);
            if edge.to == goal {
                found = true;
                break;
            }
            queue.push_back(edge.to);
        }
    }
    let mut path = Vec::new();
    let mut node = goal;
    while found && node != start {
        let edge = graph.edges[came_from[node as usize] as usize];
        path.push(edge);
        node = edge.from;
    }
    path.reverse();
    for node in touched {
        came_from[node as usize] = NONE;
    }
    path
}

#[cfg(test)]
mod tests {
    use super::{compress, strongly_connected, Dependency, Edge};

    fn edge(from: u32, to: u32) -> Edge {
        Edge {
            from,
            to,
            dependency: Dependency::Ww,
            key: 0,
            from_value: 0,
            to_value: 0,
            plain_sends: 0,
        }
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack_and_a_back_edge_closes_it() {
        let count = 200_000u32;
        let mut edges: Vec<Edge> = (0..count - 1).map(|node| edge(node, node + 1)).collect();
        let graph = compress(count as usize, edges.clone());
        let components = strongly_connected(&graph, |_| true);
        assert_eq!(components.sizes.len(), count as usize);
        edges.push(edge(count - 1, 0));
        let graph = compress(count as usize, edges);
        let components = strongly_connected(&graph, |_| true);
        assert_eq!(components.sizes, [count]);
    }
}
