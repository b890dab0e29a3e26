//! The facts every anomaly is judged from, gathered in one pass over the history.
//!
//! Driving contract: [`Analysis::build`] reads the ops once, in history order, then
//! decides which indefinite sends happened and builds each key's version order. The
//! anomaly modules only read the result. Keys are interned to dense `u32` ids and values
//! to per-key dense ids, so everything after the first pass works on small integers and
//! vectors; hash maps are used only for lookup, and nothing iterates them into output.
//!
//! Semantics follow Jepsen's `jepsen.tests.kafka` checker:
//! - a send *happened* if its operation completed `ok`, or completed `info` (or never
//!   completed) and some `ok` read returned one of that operation's values; `fail`
//!   sends never happened;
//! - the version order of a key comes from the offsets of every poll record (in `ok`,
//!   `info` and `fail` operations alike: the log said so) and of every send that
//!   happened;
//! - only `ok` polls count as reads by a consumer.

mod version_order;

use std::ops::Range;

use crate::fxhash::{FxHashMap, FxHashSet};
use crate::history::{Mop, Op, OpType, OpValue, Value, F};

pub(crate) use version_order::{VersionOrder, Witness};

/// Dense id of a key (an interned partition name).
pub(crate) type KeyId = u32;
/// Dense id of a value within one key.
pub(crate) type ValueId = u32;

/// How the operation carrying a send ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Info,
    Fail,
    /// Invoked but never completed by the end of the history: same as `info`.
    Pending,
}

/// Everything known about one key (partition).
pub(crate) struct KeyFacts {
    pub name: String,
    value_ids: FxHashMap<Value, ValueId>,
    pub values: Vec<ValueFacts>,
    /// Every (offset, value, op) seen, until the version order is built from them.
    observations: Vec<Witness>,
    /// Offset -> the value last interned at it (`ValueId::MAX`: none); first pass only.
    value_at_offset: Vec<ValueId>,
    pub order: VersionOrder,
}

/// Jepsen's read bound of a key: the highest dense position an `ok` read is known to
/// have reached, taken as the *first* position of each value read (conservative when a
/// value sits at two offsets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReadBound {
    pub position: u32,
    pub value: ValueId,
    /// The first `ok` read that returned `value`.
    pub op: u64,
}

impl KeyFacts {
    /// See [`ReadBound`]; `None` when no `ok` read returned a value of this key.
    pub fn read_bound(&self) -> Option<ReadBound> {
        let mut bound: Option<ReadBound> = None;
        for (id, facts) in self.values.iter().enumerate() {
            let (Some(op), Some(position)) = (facts.first_ok_read, facts.first_position) else {
                continue;
            };
            if bound.is_none_or(|best| best.position < position) {
                bound = Some(ReadBound {
                    position,
                    value: id as ValueId,
                    op,
                });
            }
        }
        bound
    }

    /// The printable value of an id.
    pub fn value_of(&self, value: ValueId) -> &Value {
        &self.values[value as usize].value
    }

    /// Records that `op` saw `value` at `offset`. Repeats of a value's first
    /// (offset, value) pair only lower the witness's op: most records are read several
    /// times (by each consumer, by the drain), and sorting each repeat would dominate
    /// the check's time.
    fn observe(&mut self, offset: u64, value: ValueId, op: u64) {
        let Some(facts) = self.values.get_mut(value as usize) else {
            return;
        };
        if let Some(slot) = facts.first_witness {
            if let Some(witness) = self.observations.get_mut(slot) {
                if witness.offset == offset {
                    witness.op = witness.op.min(op);
                    return;
                }
            }
        } else {
            facts.first_witness = Some(self.observations.len());
        }
        self.observations.push(Witness { offset, value, op });
    }
}

/// Everything known about one value of one key.
pub(crate) struct ValueFacts {
    pub value: Value,
    /// The first `ok` read that returned this value.
    pub first_ok_read: Option<u64>,
    /// The first send of this value whose operation happened (index into `sends`).
    pub happened_send: Option<usize>,
    /// Dense positions of the lowest and highest offsets this value was observed at.
    pub first_position: Option<u32>,
    pub last_position: Option<u32>,
    /// Index into the key's observations of this value's first one (first pass only).
    first_witness: Option<usize>,
}

/// The highest acknowledged send of a key at some moment, for real-time order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Acked {
    pub offset: u64,
    pub value: ValueId,
    /// The `ok` completion that acknowledged it.
    pub op: u64,
}

/// One send micro-operation.
pub(crate) struct SendFacts {
    pub key: KeyId,
    pub value: ValueId,
    /// The acknowledged offset, when the client learned it.
    pub offset: Option<u64>,
    /// Index into `send_ops`.
    pub send_op: usize,
    /// The highest send of this key acknowledged before this send was invoked.
    pub acked_before_invoke: Option<Acked>,
}

/// One operation that carried sends.
pub(crate) struct SendOpFacts {
    pub process: u64,
    pub invoke: Option<u64>,
    /// The completion, or `None` if the operation never completed.
    pub completion: Option<u64>,
    pub outcome: Outcome,
    /// Its sends, in order (range into `sends`).
    pub sends: Range<usize>,
    pub happened: bool,
}

impl SendOpFacts {
    /// The history index that best shows this operation: its completion, else its invoke.
    pub fn op(&self) -> u64 {
        self.completion.or(self.invoke).unwrap_or_default()
    }
}

/// One `ok` poll record of a consumer.
#[derive(Clone, Copy)]
pub(crate) struct ReadRecord {
    pub key: KeyId,
    pub offset: u64,
    pub value: ValueId,
}

/// What the consumer sweep replays, in history order.
pub(crate) enum ConsumerEvent {
    /// The process's assignment or position was reset (assign, seek to beginning):
    /// its next read of any key starts a fresh sequence.
    Reset { process: u64 },
    /// An `ok` operation's poll records (range into `read_records`) and the keys its
    /// `rebalance_log` exempts (range into `exempt_keys`).
    Read {
        op: u64,
        process: u64,
        records: Range<usize>,
        exempt: Range<usize>,
    },
}

/// The facts of one history; see the module documentation.
pub(crate) struct Analysis {
    pub keys: Vec<KeyFacts>,
    pub sends: Vec<SendFacts>,
    pub send_ops: Vec<SendOpFacts>,
    pub consumer_events: Vec<ConsumerEvent>,
    pub read_records: Vec<ReadRecord>,
    pub exempt_keys: Vec<KeyId>,
    /// Processes that ever subscribed: group consumers, whose position may legally
    /// jump across a rebalance.
    pub group_consumers: FxHashSet<u64>,
}

/// An invoke waiting for its completion.
struct PendingInvoke {
    /// Position of the invoke in the ops slice.
    position: usize,
    /// Its history index.
    index: u64,
    /// For each key the invoke sends to: the highest acknowledged send at invoke time.
    acked_at_invoke: Vec<(KeyId, Option<Acked>)>,
    /// The invoke asked to seek to the beginning (a writer may mark only the invoke).
    seek_to_beginning: bool,
}

impl Analysis {
    /// Gathers the facts of `ops`. Never panics, whatever the ops: a completion without
    /// an invoke simply has no invoke time.
    pub fn build(ops: &[Op]) -> Analysis {
        let sizes = Sizes::count(ops);
        let mut builder = Builder {
            analysis: Analysis {
                keys: Vec::new(),
                sends: Vec::with_capacity(sizes.sends),
                send_ops: Vec::with_capacity(sizes.send_ops),
                consumer_events: Vec::with_capacity(sizes.consumer_events),
                read_records: Vec::with_capacity(sizes.read_records),
                exempt_keys: Vec::new(),
                group_consumers: FxHashSet::default(),
            },
            key_ids: FxHashMap::default(),
            pending: FxHashMap::default(),
            max_acked: Vec::new(),
        };
        for (position, op) in ops.iter().enumerate() {
            builder.record(op, position);
        }
        builder.finish_pending(ops);
        let mut analysis = builder.analysis;
        analysis.decide_happened();
        for key in &mut analysis.keys {
            key.value_at_offset = Vec::new();
            let observations = std::mem::take(&mut key.observations);
            key.order = VersionOrder::build(observations, &mut key.values);
        }
        analysis
    }

    /// The facts of one value.
    pub fn value(&self, key: KeyId, value: ValueId) -> &ValueFacts {
        &self.keys[key as usize].values[value as usize]
    }

    /// Marks which sends happened (see the module documentation) and adds the offsets
    /// of those sends to their key's observations.
    fn decide_happened(&mut self) {
        for send_op in &mut self.send_ops {
            send_op.happened = match send_op.outcome {
                Outcome::Ok => true,
                Outcome::Fail => false,
                Outcome::Info | Outcome::Pending => {
                    self.sends[send_op.sends.clone()].iter().any(|send| {
                        self.keys[send.key as usize].values[send.value as usize]
                            .first_ok_read
                            .is_some()
                    })
                }
            };
            if !send_op.happened {
                continue;
            }
            let op = send_op.op();
            for send_index in send_op.sends.clone() {
                let send = &self.sends[send_index];
                let key = &mut self.keys[send.key as usize];
                let value = &mut key.values[send.value as usize];
                if value.happened_send.is_none() {
                    value.happened_send = Some(send_index);
                }
                if let Some(offset) = send.offset {
                    key.observe(offset, send.value, op);
                }
            }
        }
    }
}

/// The highest acknowledged send of `key` recorded at an invoke (sorted by key).
fn acked_at(acked_at_invoke: &[(KeyId, Option<Acked>)], key: KeyId) -> Option<Acked> {
    let found = acked_at_invoke.binary_search_by_key(&key, |&(acked_key, _)| acked_key);
    found.ok().and_then(|position| acked_at_invoke[position].1)
}

/// Exact sizes of the big vectors, counted up front: growing them by doubling costs
/// more (copies and fresh pages) than this extra pass over the lengths.
struct Sizes {
    sends: usize,
    send_ops: usize,
    consumer_events: usize,
    read_records: usize,
}

impl Sizes {
    fn count(ops: &[Op]) -> Sizes {
        let mut sizes = Sizes {
            sends: 0,
            send_ops: 0,
            consumer_events: 0,
            read_records: 0,
        };
        for op in ops.iter().filter(|op| op.typ != OpType::Invoke) {
            let mut sends = 0;
            let mut records = 0;
            for mop in op.mops() {
                match mop {
                    Mop::Send { .. } => sends += 1,
                    Mop::Poll { reads: Some(reads) } => {
                        records += reads.iter().map(|(_, read)| read.len()).sum::<usize>();
                    }
                    Mop::Poll { reads: None } => {}
                }
            }
            sizes.sends += sends;
            sizes.send_ops += usize::from(sends > 0);
            if op.typ == OpType::Ok {
                sizes.read_records += records;
                sizes.consumer_events += usize::from(records > 0);
            }
            sizes.consumer_events +=
                usize::from(matches!(op.f, F::Assign | F::Subscribe) || op.seek_to_beginning);
        }
        sizes
    }
}

/// The mutable state of the first pass.
struct Builder {
    analysis: Analysis,
    key_ids: FxHashMap<String, KeyId>,
    pending: FxHashMap<u64, PendingInvoke>,
    /// Per key: the highest offset acknowledged so far (history order).
    max_acked: Vec<Option<Acked>>,
}

impl Builder {
    fn key_id(&mut self, name: &str) -> KeyId {
        if let Some(&id) = self.key_ids.get(name) {
            return id;
        }
        let id = self.analysis.keys.len() as KeyId;
        self.key_ids.insert(name.to_owned(), id);
        self.analysis.keys.push(KeyFacts {
            name: name.to_owned(),
            value_ids: FxHashMap::default(),
            values: Vec::new(),
            observations: Vec::new(),
            value_at_offset: Vec::new(),
            order: VersionOrder::default(),
        });
        self.max_acked.push(None);
        id
    }

    /// [`Self::value_id`] with a fast path for records: most records are read several
    /// times (every consumer, the drain), so a per-key table from offset to the value
    /// last interned there answers most lookups without hashing the value or touching
    /// the hash table's scattered memory. The table only grows in proportion to the
    /// key's values, so a hostile offset cannot make it allocate much.
    fn value_id_at(&mut self, key: KeyId, offset: u64, value: &Value) -> ValueId {
        let facts = &self.analysis.keys[key as usize];
        let slot = usize::try_from(offset).ok();
        if let Some(&id) = slot.and_then(|slot| facts.value_at_offset.get(slot)) {
            if facts
                .values
                .get(id as usize)
                .is_some_and(|known| known.value == *value)
            {
                return id;
            }
        }
        let id = self.value_id(key, value);
        let facts = &mut self.analysis.keys[key as usize];
        if let Some(slot) = slot {
            let table_max = facts.values.len().saturating_mul(4).saturating_add(1024);
            if slot < table_max {
                if slot >= facts.value_at_offset.len() {
                    facts.value_at_offset.resize(slot + 1, ValueId::MAX);
                }
                facts.value_at_offset[slot] = id;
            }
        }
        id
    }

    fn value_id(&mut self, key: KeyId, value: &Value) -> ValueId {
        let facts = &mut self.analysis.keys[key as usize];
        if let Some(&id) = facts.value_ids.get(value) {
            return id;
        }
        let id = facts.values.len() as ValueId;
        facts.value_ids.insert(value.clone(), id);
        facts.values.push(ValueFacts {
            value: value.clone(),
            first_ok_read: None,
            happened_send: None,
            first_position: None,
            last_position: None,
            first_witness: None,
        });
        id
    }

    fn record(&mut self, op: &Op, position: usize) {
        if op.f == F::Subscribe {
            self.analysis.group_consumers.insert(op.process);
        }
        if op.typ == OpType::Invoke {
            self.record_invoke(op, position);
            return;
        }
        let invoke = self.pending.remove(&op.process);
        let seek = op.seek_to_beginning
            || invoke
                .as_ref()
                .is_some_and(|invoke| invoke.seek_to_beginning);
        if seek
            || (matches!(op.f, F::Assign | F::Subscribe)
                && matches!(op.typ, OpType::Ok | OpType::Info))
        {
            self.analysis.consumer_events.push(ConsumerEvent::Reset {
                process: op.process,
            });
        }
        if let OpValue::Mops(mops) = &op.value {
            self.record_sends(op, mops, invoke);
            self.record_polls(op, mops);
        }
    }

    /// Remembers the invoke, with the highest acknowledged offset of every key it sends
    /// to: that is what real-time order compares the send's own offset against.
    fn record_invoke(&mut self, op: &Op, position: usize) {
        let mut acked_at_invoke = Vec::new();
        for mop in op.mops() {
            if let Mop::Send { key, .. } = mop {
                let key = self.key_id(key);
                acked_at_invoke.push((key, self.max_acked[key as usize]));
            }
        }
        // Sorted by key for binary search: an operation may send to many keys.
        acked_at_invoke.sort_unstable_by_key(|&(key, _)| key);
        acked_at_invoke.dedup_by_key(|(key, _)| *key);
        self.pending.insert(
            op.process,
            PendingInvoke {
                position,
                index: op.index,
                acked_at_invoke,
                seek_to_beginning: op.seek_to_beginning,
            },
        );
    }

    fn record_sends(&mut self, op: &Op, mops: &[Mop], invoke: Option<PendingInvoke>) {
        let outcome = match op.typ {
            OpType::Ok => Outcome::Ok,
            OpType::Fail => Outcome::Fail,
            OpType::Info | OpType::Invoke => Outcome::Info,
        };
        let invoke_index = invoke.as_ref().map(|pending| pending.index);
        let start = self.analysis.sends.len();
        let acked_at_invoke = invoke.map(|pending| pending.acked_at_invoke);
        for mop in mops {
            let Mop::Send { key, value, offset } = mop else {
                continue;
            };
            let key = self.key_id(key);
            let value = match offset {
                Some(offset) if outcome != Outcome::Fail => self.value_id_at(key, *offset, value),
                _ => self.value_id(key, value),
            };
            let acked_before_invoke = acked_at_invoke
                .as_deref()
                .and_then(|acked| acked_at(acked, key));
            self.analysis.sends.push(SendFacts {
                key,
                value,
                offset: *offset,
                send_op: self.analysis.send_ops.len(),
                acked_before_invoke,
            });
            if outcome == Outcome::Ok {
                if let Some(offset) = *offset {
                    let best = &mut self.max_acked[key as usize];
                    if best.is_none_or(|best| best.offset < offset) {
                        *best = Some(Acked {
                            offset,
                            value,
                            op: op.index,
                        });
                    }
                }
            }
        }
        let end = self.analysis.sends.len();
        if end > start {
            self.analysis.send_ops.push(SendOpFacts {
                process: op.process,
                invoke: invoke_index,
                completion: Some(op.index),
                outcome,
                sends: start..end,
                happened: false,
            });
        }
    }

    fn record_polls(&mut self, op: &Op, mops: &[Mop]) {
        let is_ok = op.typ == OpType::Ok;
        let records_start = self.analysis.read_records.len();
        for mop in mops {
            let Mop::Poll { reads: Some(reads) } = mop else {
                continue;
            };
            for (key, records) in reads {
                let key = self.key_id(key);
                for (offset, value) in records {
                    let value = self.value_id_at(key, *offset, value);
                    let facts = &mut self.analysis.keys[key as usize];
                    facts.observe(*offset, value, op.index);
                    if is_ok {
                        let value_facts = &mut facts.values[value as usize];
                        value_facts.first_ok_read.get_or_insert(op.index);
                        self.analysis.read_records.push(ReadRecord {
                            key,
                            offset: *offset,
                            value,
                        });
                    }
                }
            }
        }
        let records_end = self.analysis.read_records.len();
        if records_end == records_start {
            return;
        }
        let exempt_start = self.analysis.exempt_keys.len();
        for name in op.rebalance_log.iter().flatten() {
            if let Some(&key) = self.key_ids.get(name.as_str()) {
                self.analysis.exempt_keys.push(key);
            }
        }
        let exempt_end = self.analysis.exempt_keys.len();
        // Sorted for binary search by the sweep.
        self.analysis.exempt_keys[exempt_start..exempt_end].sort_unstable();
        self.analysis.consumer_events.push(ConsumerEvent::Read {
            op: op.index,
            process: op.process,
            records: records_start..records_end,
            exempt: exempt_start..exempt_end,
        });
    }

    /// Operations still in flight at the end may or may not have happened: their sends
    /// are recorded from the invoke, like an `info` completion without offsets.
    fn finish_pending(&mut self, ops: &[Op]) {
        let mut pending: Vec<PendingInvoke> = self.pending.drain().map(|(_, p)| p).collect();
        pending.sort_unstable_by_key(|invoke| invoke.position);
        for invoke in pending {
            let Some(op) = ops.get(invoke.position) else {
                continue;
            };
            let start = self.analysis.sends.len();
            for mop in op.mops() {
                let Mop::Send { key, value, .. } = mop else {
                    continue;
                };
                let key = self.key_id(key);
                let value = self.value_id(key, value);
                let acked_before_invoke = acked_at(&invoke.acked_at_invoke, key);
                self.analysis.sends.push(SendFacts {
                    key,
                    value,
                    offset: None,
                    send_op: self.analysis.send_ops.len(),
                    acked_before_invoke,
                });
            }
            let end = self.analysis.sends.len();
            if end > start {
                self.analysis.send_ops.push(SendOpFacts {
                    process: op.process,
                    invoke: Some(op.index),
                    completion: None,
                    outcome: Outcome::Pending,
                    sends: start..end,
                    happened: false,
                });
            }
        }
    }
}
