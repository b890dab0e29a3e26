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
//! - only `ok` polls count as reads by a consumer;
//! - an `ok` or `info` assign or subscribe resets a consumer's per-key tracking for
//!   the keys it drops (a seek to the beginning resets every key).
//!
//! Transactions and consumer groups add their own facts (`groups`): the transactions
//! with their reads and committed input offsets, commits, assignments and crashes.

mod groups;
mod version_order;

use std::ops::Range;

use crate::fxhash::{FxHashMap, FxHashSet};
use crate::history::{Mop, Op, OpType, OpValue, Value, F};

pub(crate) use groups::{
    Commit, GroupEvent, GroupId, Groups, Membership, PrecommittedRead, TxnFacts, GROUP_UNNAMED,
};
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
    /// Value -> id, split by kind: integers (most histories) in a compact table.
    int_ids: FxHashMap<i64, ValueId>,
    text_ids: FxHashMap<String, ValueId>,
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
            let (Some(op), Some(position)) = (facts.first_ok_read(), facts.first_position()) else {
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
        if let Some(slot) = present(facts.first_witness) {
            if let Some(witness) = self.observations.get_mut(slot as usize) {
                if witness.offset == offset {
                    witness.op = witness.op.min(op);
                    return;
                }
            }
        } else {
            facts.first_witness = compact(self.observations.len());
        }
        self.observations.push(Witness { offset, value, op });
    }
}

/// Everything known about one value of one key. There is one per distinct value of
/// the history, so it is kept to 64 bytes: absent indices are `u32::MAX` (`u64::MAX`
/// for an op), read through the `Option`-returning accessors.
pub(crate) struct ValueFacts {
    pub value: Value,
    first_ok_read: u64,
    happened_send: u32,
    failed_send: u32,
    first_position: u32,
    last_position: u32,
    first_witness: u32,
}

const ABSENT: u32 = u32::MAX;

fn present(index: u32) -> Option<u32> {
    (index != ABSENT).then_some(index)
}

/// Stores `index` if it fits (histories have fewer than 2^32 - 1 sends, values and
/// positions per key; beyond that the fact is dropped rather than wrapped).
fn compact(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(ABSENT)
}

impl ValueFacts {
    pub fn new(value: Value) -> Self {
        ValueFacts {
            value,
            first_ok_read: u64::MAX,
            happened_send: ABSENT,
            failed_send: ABSENT,
            first_position: ABSENT,
            last_position: ABSENT,
            first_witness: ABSENT,
        }
    }

    /// The first `ok` read that returned this value.
    pub fn first_ok_read(&self) -> Option<u64> {
        (self.first_ok_read != u64::MAX).then_some(self.first_ok_read)
    }

    /// The first send of this value whose operation happened (index into `sends`).
    pub fn happened_send(&self) -> Option<usize> {
        present(self.happened_send).map(|send| send as usize)
    }

    /// The first send of this value whose operation completed `fail` (index into
    /// `sends`): it definitely did not happen.
    pub fn failed_send(&self) -> Option<usize> {
        present(self.failed_send).map(|send| send as usize)
    }

    /// Dense position of the lowest offset this value was observed at.
    pub fn first_position(&self) -> Option<u32> {
        present(self.first_position)
    }

    /// Dense position of the highest offset this value was observed at.
    pub fn last_position(&self) -> Option<u32> {
        present(self.last_position)
    }

    /// Records an `ok` read (the first one wins).
    fn read_by(&mut self, op: u64) {
        if self.first_ok_read == u64::MAX {
            self.first_ok_read = op;
        }
    }

    fn sent_failed(&mut self, send: usize) {
        if self.failed_send == ABSENT {
            self.failed_send = compact(send);
        }
    }

    fn sent_happened(&mut self, send: usize) {
        if self.happened_send == ABSENT {
            self.happened_send = compact(send);
        }
    }

    /// Records that the value was observed at dense `position` (in ascending order).
    pub(crate) fn observed_at(&mut self, position: u32) {
        if self.first_position == ABSENT {
            self.first_position = position;
        }
        self.last_position = position;
    }
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
    /// The operation is a `txn` (its sends commit or abort together).
    pub is_txn: bool,
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

/// Which keys keep their tracking across a [`ConsumerEvent::Reset`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Keep {
    /// None: a seek to the beginning.
    Nothing,
    /// The keys of the new assignment (range into `reset_keys`, sorted).
    Keys(Range<usize>),
    /// The keys of these topics (range into `reset_topics`): a subscription. A key
    /// belongs to a topic when it is the topic's name or `<topic>-<partition number>`
    /// (the simulator's naming, `history.md`).
    Topics(Range<usize>),
}

/// What the consumer sweep replays, in history order.
pub(crate) enum ConsumerEvent {
    /// The process's assignment or position changed (assign, subscribe, seek to the
    /// beginning): its next read of a key it does not keep starts a fresh sequence.
    Reset { process: u64, keep: Keep },
    /// An `ok` operation's poll records (range into `read_records`) and the keys its
    /// `rebalance_log` exempts (range into `exempt_keys`).
    Read {
        op: u64,
        process: u64,
        records: Range<usize>,
        exempt: Range<usize>,
        /// The same operation's sends (index into `send_ops`), for a `txn` that both
        /// read and wrote.
        writer: Option<usize>,
    },
}

impl Keep {
    /// True when tracking of `key` (named `name`) survives the reset.
    pub fn keeps(&self, analysis: &Analysis, key: KeyId, name: &str) -> bool {
        match self {
            Keep::Nothing => false,
            Keep::Keys(range) => analysis
                .reset_keys
                .get(range.clone())
                .is_some_and(|keys| keys.binary_search(&key).is_ok()),
            Keep::Topics(range) => analysis
                .reset_topics
                .get(range.clone())
                .unwrap_or(&[])
                .iter()
                .any(|topic| key_of_topic(name, topic)),
        }
    }
}

/// `orders-3` belongs to topic `orders`; so does a key named exactly `orders`.
pub(crate) fn key_of_topic(key: &str, topic: &str) -> bool {
    match key.strip_prefix(topic) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix('-')
            .is_some_and(|number| !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())),
        None => false,
    }
}

/// The facts of one history; see the module documentation.
pub(crate) struct Analysis {
    pub keys: Vec<KeyFacts>,
    pub sends: Vec<SendFacts>,
    pub send_ops: Vec<SendOpFacts>,
    pub consumer_events: Vec<ConsumerEvent>,
    pub read_records: Vec<ReadRecord>,
    pub exempt_keys: Vec<KeyId>,
    pub reset_keys: Vec<KeyId>,
    pub reset_topics: Vec<String>,
    /// Processes that ever subscribed, or were assigned partitions by a group
    /// rebalance (an assign naming a group): group consumers, whose position may
    /// legally jump across a rebalance.
    pub group_consumers: FxHashSet<u64>,
    /// Every completed `txn`, in history order.
    pub txns: Vec<TxnFacts>,
    /// Every poll record of a completed `txn`, whatever its outcome.
    pub txn_reads: Vec<ReadRecord>,
    /// `ok` transactions reading their own earlier sends.
    pub precommitted: Vec<PrecommittedRead>,
    pub groups: Groups,
}

/// An invoke waiting for its completion.
struct PendingInvoke {
    /// Position of the invoke in the history.
    position: usize,
    /// The invoke itself, when the builder is fed owned ops (a streamed history) and
    /// it sends something: if it never completes, its sends are recorded from it.
    op: Option<Op>,
    /// Its history index.
    index: u64,
    /// For each key the invoke sends to, the highest acknowledged send at invoke time:
    /// a range of `Builder::acked_at_invokes`, sorted by key.
    acked_at_invoke: Range<usize>,
    /// The invoke asked to seek to the beginning (a writer may mark only the invoke).
    seek_to_beginning: bool,
    /// The invoke's `group` and `generation`, for a completion that leaves them out.
    group: Option<String>,
    generation: Option<i64>,
}

impl Analysis {
    /// Gathers the facts of `ops`. Never panics, whatever the ops: a completion without
    /// an invoke simply has no invoke time.
    pub fn build(ops: &[Op]) -> Analysis {
        let mut builder = Builder::new();
        for (position, op) in ops.iter().enumerate() {
            builder.record(op, position);
        }
        builder.finish(ops)
    }

    /// The facts of one value.
    pub fn value(&self, key: KeyId, value: ValueId) -> &ValueFacts {
        &self.keys[key as usize].values[value as usize]
    }

    /// The dense position of a read record: its value's first position, or (for a
    /// value seen at several offsets) the position of the record's own offset.
    pub fn record_position(&self, record: &ReadRecord) -> Option<u32> {
        let key = self.keys.get(record.key as usize)?;
        let first = key.values.get(record.value as usize)?.first_position()?;
        if key.order.offsets.get(first as usize) == Some(&record.offset) {
            Some(first)
        } else {
            key.order.position(record.offset)
        }
    }

    /// True when the transaction committed: it completed `ok`, or its outcome is
    /// unknown and an `ok` read saw one of its values (Jepsen's rule for `info`).
    pub fn txn_committed(&self, txn: &TxnFacts) -> bool {
        match txn.outcome {
            Outcome::Ok => true,
            Outcome::Fail => false,
            Outcome::Info | Outcome::Pending => txn
                .send_op
                .and_then(|send_op| self.send_ops.get(send_op))
                .is_some_and(|send_op| send_op.happened),
        }
    }

    /// True when a value is a committed record of its key: written by an operation
    /// that happened, or returned by an `ok` read and not written by a failed one.
    pub fn is_committed_record(&self, facts: &ValueFacts) -> bool {
        facts.happened_send().is_some()
            || (facts.first_ok_read().is_some() && facts.failed_send().is_none())
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
                            .first_ok_read()
                            .is_some()
                    })
                }
            };
            if !send_op.happened {
                continue;
            }
            let op = send_op.op();
            // A plain send operation's records succeed or fail independently (Kafka
            // does not make them atomic): an unknown-outcome one counts as happened
            // record by record, only where that very value was read. A txn's records
            // commit together, so one read value proves them all.
            let per_record = send_op.outcome != Outcome::Ok && !send_op.is_txn;
            for send_index in send_op.sends.clone() {
                let send = &self.sends[send_index];
                let key = &mut self.keys[send.key as usize];
                let value = &mut key.values[send.value as usize];
                if per_record && value.first_ok_read().is_none() {
                    continue;
                }
                value.sent_happened(send_index);
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

/// The mutable state of the first pass. Feed it every op in history order
/// ([`Builder::record`], or [`Builder::record_owned`] for a streamed history that is not
/// kept), then [`Builder::finish`].
pub(crate) struct Builder {
    analysis: Analysis,
    key_ids: FxHashMap<String, KeyId>,
    pending: FxHashMap<u64, PendingInvoke>,
    /// Per key: the highest offset acknowledged so far (history order).
    max_acked: Vec<Option<Acked>>,
    /// Every invoke's `acked_at_invoke` entries, back to back (one allocation for all).
    acked_at_invokes: Vec<(KeyId, Option<Acked>)>,
    group_ids: FxHashMap<String, GroupId>,
    /// Per process: the group of its latest assign or subscribe that named one.
    process_group: FxHashMap<u64, GroupId>,
}

impl Builder {
    pub fn new() -> Builder {
        Builder {
            analysis: Analysis {
                keys: Vec::new(),
                // Grown as needed: large vectors grow by remapping pages (no copy),
                // which costs less than a counting pass over every op.
                sends: Vec::new(),
                send_ops: Vec::new(),
                consumer_events: Vec::new(),
                read_records: Vec::new(),
                exempt_keys: Vec::new(),
                reset_keys: Vec::new(),
                reset_topics: Vec::new(),
                group_consumers: FxHashSet::default(),
                txns: Vec::new(),
                txn_reads: Vec::new(),
                precommitted: Vec::new(),
                groups: Groups::default(),
            },
            key_ids: FxHashMap::default(),
            group_ids: FxHashMap::default(),
            process_group: FxHashMap::default(),
            pending: FxHashMap::default(),
            max_acked: Vec::new(),
            acked_at_invokes: Vec::new(),
        }
    }

    /// Records `op`, the event at `position`, and keeps it if it is an invoke that
    /// sends: the builder of a streamed history has nowhere else to find it.
    pub fn record_owned(&mut self, op: Op, position: usize) {
        self.record(&op, position);
        let sends = op.mops().iter().any(|mop| matches!(mop, Mop::Send { .. }));
        if op.typ == OpType::Invoke && sends {
            if let Some(pending) = self.pending.get_mut(&op.process) {
                if pending.position == position {
                    pending.op = Some(op);
                }
            }
        }
    }

    /// Completes the facts: operations still pending (their invokes found in `ops`
    /// when they were not kept), which sends happened, and each key's version order.
    pub fn finish(mut self, ops: &[Op]) -> Analysis {
        self.finish_pending(ops);
        let mut analysis = self.analysis;
        analysis.decide_happened();
        for key in &mut analysis.keys {
            key.value_at_offset = Vec::new();
            let observations = std::mem::take(&mut key.observations);
            key.order = VersionOrder::build(observations, &mut key.values);
        }
        analysis
    }

    fn key_id(&mut self, name: &str) -> KeyId {
        if let Some(&id) = self.key_ids.get(name) {
            return id;
        }
        let id = self.analysis.keys.len() as KeyId;
        self.key_ids.insert(name.to_owned(), id);
        self.analysis.keys.push(KeyFacts {
            name: name.to_owned(),
            int_ids: FxHashMap::default(),
            text_ids: FxHashMap::default(),
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
        let next = facts.values.len() as ValueId;
        let id = match value {
            Value::Int(number) => *facts.int_ids.entry(*number).or_insert(next),
            Value::Str(text) => match facts.text_ids.get(text.as_str()) {
                Some(&id) => id,
                None => {
                    facts.text_ids.insert(text.clone(), next);
                    next
                }
            },
        };
        if id == next {
            facts.values.push(ValueFacts::new(value.clone()));
        }
        id
    }

    fn group_id(&mut self, name: &str) -> GroupId {
        if let Some(&id) = self.group_ids.get(name) {
            return id;
        }
        let id = self.analysis.groups.names.len() as GroupId;
        self.group_ids.insert(name.to_owned(), id);
        self.analysis.groups.names.push(name.to_owned());
        id
    }

    /// Records `op`, the event at `position` of the history.
    pub fn record(&mut self, op: &Op, position: usize) {
        if op.f == F::Subscribe || (op.f == F::Assign && op.group.is_some()) {
            self.analysis.group_consumers.insert(op.process);
        }
        if op.typ == OpType::Invoke {
            if op.f == F::Crash {
                self.analysis.groups.events.push(GroupEvent::Gone {
                    op: op.index,
                    process: op.process,
                });
            }
            self.record_invoke(op, position);
            return;
        }
        let invoke = self.pending.remove(&op.process);
        let invoke_index = invoke.as_ref().map(|invoke| invoke.index);
        let seek = op.seek_to_beginning
            || invoke
                .as_ref()
                .is_some_and(|invoke| invoke.seek_to_beginning);
        let group = op
            .group
            .clone()
            .or_else(|| invoke.as_ref().and_then(|invoke| invoke.group.clone()));
        let generation = op
            .generation
            .or_else(|| invoke.as_ref().and_then(|invoke| invoke.generation));
        self.record_reset(op, seek);
        if let OpValue::Mops(mops) = &op.value {
            let send_op = self.record_sends(op, mops, invoke);
            self.record_polls(op, mops, send_op);
            if op.f == F::Txn {
                self.record_txn(op, mops, invoke_index, send_op, group.as_deref());
            }
        }
        match op.f {
            F::Assign | F::Subscribe if matches!(op.typ, OpType::Ok | OpType::Info) => {
                self.record_membership(op, group.as_deref(), generation, seek);
            }
            F::Commit => self.record_commit(op, invoke_index, generation),
            _ => {}
        }
        if op.typ == OpType::Info || op.f == F::Crash {
            self.analysis.groups.events.push(GroupEvent::Gone {
                op: op.index,
                process: op.process,
            });
        }
    }

    /// An `ok`/`info` assign or subscribe, or a seek, resets the consumer's tracking of
    /// the keys it does not keep (see [`Keep`]).
    fn record_reset(&mut self, op: &Op, seek: bool) {
        let membership =
            matches!(op.f, F::Assign | F::Subscribe) && matches!(op.typ, OpType::Ok | OpType::Info);
        if !seek && !membership {
            return;
        }
        let keep = match (&op.value, op.f) {
            _ if seek => Keep::Nothing,
            (OpValue::Keys(keys), F::Assign) => {
                let start = self.analysis.reset_keys.len();
                for name in keys {
                    let key = self.key_id(name);
                    self.analysis.reset_keys.push(key);
                }
                let end = self.analysis.reset_keys.len();
                self.analysis.reset_keys[start..end].sort_unstable();
                Keep::Keys(start..end)
            }
            (OpValue::Keys(topics), F::Subscribe) => {
                let start = self.analysis.reset_topics.len();
                self.analysis.reset_topics.extend(topics.iter().cloned());
                Keep::Topics(start..self.analysis.reset_topics.len())
            }
            _ => Keep::Nothing,
        };
        self.analysis.consumer_events.push(ConsumerEvent::Reset {
            process: op.process,
            keep,
        });
    }

    fn record_membership(
        &mut self,
        op: &Op,
        group: Option<&str>,
        generation: Option<i64>,
        seek_to_beginning: bool,
    ) {
        let group = group.map(|name| self.group_id(name));
        if let Some(group) = group {
            self.process_group.insert(op.process, group);
        }
        let mut keys = Vec::new();
        if let (F::Assign, OpValue::Keys(names)) = (op.f, &op.value) {
            keys = names.iter().map(|name| self.key_id(name)).collect();
            keys.sort_unstable();
            keys.dedup();
        }
        self.analysis
            .groups
            .events
            .push(GroupEvent::Membership(Membership {
                op: op.index,
                process: op.process,
                outcome: outcome_of(op.typ),
                subscribe: op.f == F::Subscribe,
                group,
                generation,
                member: op.member.clone(),
                keys,
                seek_to_beginning,
            }));
    }

    fn record_commit(&mut self, op: &Op, invoke: Option<u64>, generation: Option<i64>) {
        let OpValue::Commit { group, offsets } = &op.value else {
            return;
        };
        let group = self.group_id(group);
        let offsets = offsets
            .iter()
            .map(|(name, offset)| (self.key_id(name), *offset))
            .collect();
        self.analysis.groups.events.push(GroupEvent::Commit(Commit {
            op: op.index,
            invoke,
            process: op.process,
            outcome: outcome_of(op.typ),
            group,
            offsets,
            generation,
            txn: None,
        }));
    }

    /// A `txn` completion: its reads (whatever the outcome), its committed input
    /// offsets, and its reads of its own earlier sends.
    fn record_txn(
        &mut self,
        op: &Op,
        mops: &[Mop],
        invoke: Option<u64>,
        send_op: Option<usize>,
        group: Option<&str>,
    ) {
        let group = match group {
            Some(name) => self.group_id(name),
            None => match self.process_group.get(&op.process) {
                Some(&group) => group,
                None => self.group_id(GROUP_UNNAMED),
            },
        };
        let reads_start = self.analysis.txn_reads.len();
        for mop in mops {
            let Mop::Poll { reads: Some(reads) } = mop else {
                continue;
            };
            for (name, records) in reads {
                let key = self.key_id(name);
                for (offset, value) in records {
                    let value = self.value_id_at(key, *offset, value);
                    self.analysis.txn_reads.push(ReadRecord {
                        key,
                        offset: *offset,
                        value,
                    });
                }
            }
        }
        let offsets: Vec<(KeyId, u64)> = op
            .offsets
            .iter()
            .flatten()
            .map(|(name, offset)| (self.key_id(name), *offset))
            .collect();
        let txn = self.analysis.txns.len();
        if !offsets.is_empty() {
            self.analysis.groups.events.push(GroupEvent::Commit(Commit {
                op: op.index,
                invoke,
                process: op.process,
                outcome: outcome_of(op.typ),
                group,
                offsets: offsets.clone(),
                generation: op.generation,
                txn: Some(txn),
            }));
        }
        self.analysis.txns.push(TxnFacts {
            process: op.process,
            invoke,
            completion: op.index,
            outcome: outcome_of(op.typ),
            send_op,
            reads: reads_start..self.analysis.txn_reads.len(),
            offsets,
            group,
        });
        if op.typ == OpType::Ok {
            self.record_precommitted(op, mops, invoke);
        }
    }

    /// Polls of an `ok` transaction that returned a value it had sent earlier.
    fn record_precommitted(&mut self, op: &Op, mops: &[Mop], invoke: Option<u64>) {
        let mut sent: FxHashSet<(&str, &Value)> = FxHashSet::default();
        for mop in mops {
            match mop {
                Mop::Send { key, value, .. } => {
                    sent.insert((key.as_str(), value));
                }
                Mop::Poll { reads: Some(reads) } if !sent.is_empty() => {
                    for (name, records) in reads {
                        for (offset, value) in records {
                            if !sent.contains(&(name.as_str(), value)) {
                                continue;
                            }
                            let key = self.key_id(name);
                            let value = self.value_id(key, value);
                            self.analysis.precommitted.push(PrecommittedRead {
                                op: op.index,
                                invoke,
                                key,
                                offset: *offset,
                                value,
                            });
                        }
                    }
                }
                Mop::Poll { .. } => {}
            }
        }
    }

    /// Remembers the invoke, with the highest acknowledged offset of every key it sends
    /// to: that is what real-time order compares the send's own offset against.
    fn record_invoke(&mut self, op: &Op, position: usize) {
        let start = self.acked_at_invokes.len();
        for mop in op.mops() {
            if let Mop::Send { key, .. } = mop {
                let key = self.key_id(key);
                let acked = self.max_acked[key as usize];
                self.acked_at_invokes.push((key, acked));
            }
        }
        // Sorted by key for binary search: an operation may send to many keys.
        let entries = &mut self.acked_at_invokes[start..];
        entries.sort_unstable_by_key(|&(key, _)| key);
        let acked_at_invoke = start..self.acked_at_invokes.len();
        self.pending.insert(
            op.process,
            PendingInvoke {
                position,
                op: None,
                index: op.index,
                acked_at_invoke,
                seek_to_beginning: op.seek_to_beginning,
                group: op.group.clone(),
                generation: op.generation,
            },
        );
    }

    /// Records the sends of a completion; returns the index of its `send_ops` entry,
    /// if it sent anything.
    fn record_sends(
        &mut self,
        op: &Op,
        mops: &[Mop],
        invoke: Option<PendingInvoke>,
    ) -> Option<usize> {
        let outcome = outcome_of(op.typ);
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
                .clone()
                .and_then(|range| self.acked_at_invokes.get(range))
                .and_then(|acked| acked_at(acked, key));
            if outcome == Outcome::Fail {
                let facts = &mut self.analysis.keys[key as usize].values[value as usize];
                facts.sent_failed(self.analysis.sends.len());
            }
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
        if end == start {
            return None;
        }
        self.analysis.send_ops.push(SendOpFacts {
            process: op.process,
            invoke: invoke_index,
            completion: Some(op.index),
            outcome,
            sends: start..end,
            happened: false,
            is_txn: op.f == F::Txn,
        });
        Some(self.analysis.send_ops.len() - 1)
    }

    fn record_polls(&mut self, op: &Op, mops: &[Mop], send_op: Option<usize>) {
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
                        value_facts.read_by(op.index);
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
            writer: send_op,
        });
    }

    /// Operations still in flight at the end may or may not have happened: their sends
    /// are recorded from the invoke, like an `info` completion without offsets.
    fn finish_pending(&mut self, ops: &[Op]) {
        let mut pending: Vec<PendingInvoke> = self.pending.drain().map(|(_, p)| p).collect();
        pending.sort_unstable_by_key(|invoke| invoke.position);
        for invoke in &pending {
            let Some(op) = invoke.op.as_ref().or_else(|| ops.get(invoke.position)) else {
                continue;
            };
            let start = self.analysis.sends.len();
            for mop in op.mops() {
                let Mop::Send { key, value, .. } = mop else {
                    continue;
                };
                let key = self.key_id(key);
                let value = self.value_id(key, value);
                let acked_before_invoke = self
                    .acked_at_invokes
                    .get(invoke.acked_at_invoke.clone())
                    .and_then(|acked| acked_at(acked, key));
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
                    is_txn: op.f == F::Txn,
                });
            }
        }
    }
}

fn outcome_of(typ: OpType) -> Outcome {
    match typ {
        OpType::Ok => Outcome::Ok,
        OpType::Fail => Outcome::Fail,
        OpType::Info => Outcome::Info,
        OpType::Invoke => Outcome::Pending,
    }
}
