//! The history recorder: turns the clients' [`HistoryEvent`]s into history operations
//! (`history.md`) with index and time, in the order they happened.

use checker::history::{Mop, Op, OpType, OpValue, Value, F};
use model::history::{HistoryEvent, MicroOp, OpKind, Outcome};
use model::types::{Offset, PartitionId, SimTime};
use std::collections::BTreeMap;

pub struct Recorder {
    keys: Vec<String>,
    pub ops: Vec<Op>,
}

fn value(v: u64) -> Value {
    Value::Int(v as i64)
}

impl Recorder {
    pub fn new(keys: Vec<String>) -> Recorder {
        Recorder {
            keys,
            ops: Vec::new(),
        }
    }

    pub fn record(&mut self, now: SimTime, e: &HistoryEvent) {
        let typ = match e.outcome {
            Outcome::Invoke => OpType::Invoke,
            Outcome::Ok => OpType::Ok,
            Outcome::Fail => OpType::Fail,
            Outcome::Info => OpType::Info,
        };
        let (f, value) = match e.kind {
            OpKind::Send | OpKind::Poll | OpKind::Txn => {
                let f = match e.kind {
                    OpKind::Send => F::Send,
                    OpKind::Poll => F::Poll,
                    _ => F::Txn,
                };
                let mops = e
                    .mops
                    .iter()
                    .map(|m| match m {
                        MicroOp::Send {
                            partition,
                            value: v,
                            offset,
                        } => Mop::Send {
                            key: self.keys[partition.index()].clone(),
                            value: value(*v),
                            offset: offset.map(|o| o.0),
                        },
                        MicroOp::Poll { reads } => Mop::Poll {
                            reads: reads.as_ref().map(|rs| {
                                rs.iter()
                                    .map(|(p, records)| {
                                        (
                                            self.keys[p.index()].clone(),
                                            records.iter().map(|(o, v)| (o.0, value(*v))).collect(),
                                        )
                                    })
                                    .collect()
                            }),
                        },
                    })
                    .collect();
                (f, OpValue::Mops(mops))
            }
            OpKind::Assign => (
                F::Assign,
                OpValue::Keys(
                    e.assigned
                        .iter()
                        .map(|p| self.keys[p.index()].clone())
                        .collect(),
                ),
            ),
            OpKind::Subscribe => {
                let mut topics: Vec<String> = Vec::new();
                for p in &e.assigned {
                    let key = &self.keys[p.index()];
                    let topic = key.rsplit_once('-').map_or(key.as_str(), |(t, _)| t);
                    if !topics.iter().any(|t| t == topic) {
                        topics.push(topic.to_string());
                    }
                }
                (F::Subscribe, OpValue::Keys(topics))
            }
            OpKind::Commit => (
                F::Commit,
                OpValue::Commit {
                    group: e.group.map(|(g, _)| g.name()).unwrap_or_default(),
                    offsets: self.key_offsets(&e.offsets),
                },
            ),
            OpKind::Crash => (F::Crash, OpValue::Null),
        };
        let mut op = Op::new(self.ops.len() as u64, now.0, typ, e.process, f, value);
        op.error = e.error.map(str::to_string);
        if !e.offsets.is_empty() && e.kind != OpKind::Commit {
            op.offsets = Some(self.key_offsets(&e.offsets));
        }
        if let Some((group, metadata)) = e.group {
            op.group = Some(group.name());
            if let Some((generation, member)) = metadata {
                op.generation = Some(i64::from(generation.0));
                op.member = Some(format!("member-{}", member.0));
            }
        }
        self.ops.push(op);
    }

    /// Offsets per partition, by key name.
    fn key_offsets(&self, offsets: &[(PartitionId, Offset)]) -> Vec<(String, u64)> {
        offsets
            .iter()
            .map(|(p, o)| (self.keys[p.index()].clone(), o.0))
            .collect()
    }

    /// Completed operations by f and outcome, for the summary.
    pub fn counts(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for op in self.ops.iter().filter(|o| o.typ != OpType::Invoke) {
            let outcome = match op.typ {
                OpType::Ok => "ok",
                OpType::Fail => "fail",
                _ => "info",
            };
            *counts
                .entry(op.f.as_str().to_string())
                .or_default()
                .entry(outcome.to_string())
                .or_default() += 1;
        }
        counts
    }
}
