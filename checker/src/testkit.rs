//! A tiny history builder for the anomaly tests: each call appends an invoke and its
//! completion (or just one event) and returns the history index a test asserts on.

use crate::history::{Mop, Op, OpType, OpValue, Value, F};
use crate::{check, Policy, Report};

pub(crate) struct History {
    ops: Vec<Op>,
}

impl History {
    pub fn new() -> Self {
        History { ops: Vec::new() }
    }

    /// Appends one event; time advances by one per event.
    pub fn push(&mut self, typ: OpType, process: u64, f: F, value: OpValue) -> u64 {
        let index = self.ops.len() as u64;
        self.ops
            .push(Op::new(index, index * 10, typ, process, f, value));
        index
    }

    pub fn invoke_send(&mut self, process: u64, key: &str, value: i64) -> u64 {
        self.push(
            OpType::Invoke,
            process,
            F::Send,
            OpValue::Mops(vec![Mop::send(key, value)]),
        )
    }

    pub fn complete_send(
        &mut self,
        process: u64,
        typ: OpType,
        key: &str,
        value: i64,
        offset: Option<u64>,
    ) -> u64 {
        let mop = Mop::Send {
            key: key.to_owned(),
            value: Value::Int(value),
            offset,
        };
        self.push(typ, process, F::Send, OpValue::Mops(vec![mop]))
    }

    /// A whole send (invoke and completion); returns the completion's index.
    pub fn send(
        &mut self,
        process: u64,
        typ: OpType,
        key: &str,
        value: i64,
        offset: Option<u64>,
    ) -> u64 {
        self.invoke_send(process, key, value);
        self.complete_send(process, typ, key, value, offset)
    }

    /// A whole poll with the given outcome; returns the completion's index.
    pub fn poll(&mut self, process: u64, typ: OpType, reads: &[(&str, &[(u64, i64)])]) -> u64 {
        self.push(
            OpType::Invoke,
            process,
            F::Poll,
            OpValue::Mops(vec![Mop::poll()]),
        );
        let reads = reads
            .iter()
            .map(|(key, records)| {
                let records = records
                    .iter()
                    .map(|&(offset, value)| (offset, Value::Int(value)))
                    .collect();
                (key.to_string(), records)
            })
            .collect();
        self.push(
            typ,
            process,
            F::Poll,
            OpValue::Mops(vec![Mop::polled(reads)]),
        )
    }

    /// An `ok` poll of one key; returns the completion's index.
    pub fn poll_ok(&mut self, process: u64, key: &str, records: &[(u64, i64)]) -> u64 {
        self.poll(process, OpType::Ok, &[(key, records)])
    }

    fn keys_op(&mut self, process: u64, f: F, keys: &[&str]) -> u64 {
        let keys: Vec<String> = keys.iter().map(|key| key.to_string()).collect();
        self.push(OpType::Invoke, process, f, OpValue::Keys(keys.clone()));
        self.push(OpType::Ok, process, f, OpValue::Keys(keys))
    }

    pub fn assign(&mut self, process: u64, keys: &[&str]) -> u64 {
        self.keys_op(process, F::Assign, keys)
    }

    pub fn subscribe(&mut self, process: u64, topics: &[&str]) -> u64 {
        self.keys_op(process, F::Subscribe, topics)
    }

    /// An `ok` offset commit of group `g`: `offset` for `key`.
    pub fn commit(&mut self, process: u64, key: &str, offset: u64) -> u64 {
        let value = OpValue::Commit {
            group: "g".into(),
            offsets: vec![(key.into(), offset)],
        };
        self.push(OpType::Invoke, process, F::Commit, value.clone());
        self.push(OpType::Ok, process, F::Commit, value)
    }

    /// The last event, to set optional fields on.
    pub fn last_mut(&mut self) -> &mut Op {
        self.ops.last_mut().expect("the history has an event")
    }

    pub fn ops_mut(&mut self) -> &mut [Op] {
        &mut self.ops
    }

    pub fn check(&self) -> Report {
        check(&self.ops, &Policy::default())
    }
}

impl Report {
    /// (kind, key, ops) of every anomaly, for exact assertions.
    pub(crate) fn summary(&self) -> Vec<(&str, &str, Vec<u64>)> {
        self.anomalies
            .iter()
            .map(|anomaly| {
                (
                    anomaly.kind.as_str(),
                    anomaly.key.as_deref().unwrap_or(""),
                    anomaly.ops.clone(),
                )
            })
            .collect()
    }
}
