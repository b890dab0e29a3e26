//! Property tests of the checker as a whole, through its public API only.
//!
//! 1. The history format round-trips: `to_json_line` then `parse_line` gives the same op.
//! 2. No input makes the reader panic: arbitrary text, and valid lines mutated.
//! 3. Histories generated from a sequential reference log are valid: `check` reports
//!    nothing. The workload: producers with ok, info and fail sends and transactions
//!    (committed, aborted with their records invisible, unknown either way; markers and
//!    aborted records leave offset gaps), assign-mode consumers reading contiguously, a
//!    consumer group whose two members rebalance (eager, committing and recording the
//!    revocation before rejoining) and commit, a consume-transform-produce application committing its input offsets in
//!    its transactions, and a final drain. One targeted corruption of such a history
//!    (swap two values, drop a record, move or duplicate a value, mark a read write as
//!    failed, lower a commit, hide a group read, process an input twice) makes `check`
//!    report the anomaly it should.

use checker::history::parse_reference;
use checker::{
    check, check_reader, parse_line, read_history, write_history, Mop, Op, OpType, OpValue, Policy,
    Value, F,
};
use std::collections::BTreeSet;

use proptest::collection::vec;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------
// Arbitrary ops, for the format properties.

fn value_strategy() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Int),
        any::<String>().prop_map(Value::Str)
    ]
}

/// Keys unique within one map, in an arbitrary (not sorted) order.
fn unique_keys(max: usize) -> impl Strategy<Value = Vec<String>> {
    proptest::collection::btree_set(any::<String>(), 0..max)
        .prop_flat_map(|keys| Just(keys.into_iter().collect::<Vec<_>>()).prop_shuffle())
}

fn mop_strategy(sends: bool, polls: bool) -> BoxedStrategy<Mop> {
    let send = (
        any::<String>(),
        value_strategy(),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(key, value, offset)| Mop::Send { key, value, offset });
    let poll = proptest::option::of(unique_keys(4).prop_flat_map(|keys| {
        let count = keys.len();
        (
            Just(keys),
            vec(vec((any::<u64>(), value_strategy()), 0..4), count),
        )
            .prop_map(|(keys, records)| keys.into_iter().zip(records).collect::<Vec<_>>())
    }))
    .prop_map(|reads| Mop::Poll { reads });
    match (sends, polls) {
        (true, false) => send.boxed(),
        (false, true) => poll.boxed(),
        _ => prop_oneof![send, poll].boxed(),
    }
}

fn op_value_strategy(f: F) -> BoxedStrategy<OpValue> {
    let offsets = unique_keys(4).prop_flat_map(|keys| {
        let count = keys.len();
        (Just(keys), vec(any::<u64>(), count))
            .prop_map(|(keys, offsets)| keys.into_iter().zip(offsets).collect::<Vec<_>>())
    });
    match f {
        F::Send => vec(mop_strategy(true, false), 0..4)
            .prop_map(OpValue::Mops)
            .boxed(),
        F::Poll => vec(mop_strategy(false, true), 0..3)
            .prop_map(OpValue::Mops)
            .boxed(),
        F::Txn => vec(mop_strategy(true, true), 0..4)
            .prop_map(OpValue::Mops)
            .boxed(),
        F::Assign | F::Subscribe => vec(any::<String>(), 0..4).prop_map(OpValue::Keys).boxed(),
        F::Commit => (any::<String>(), offsets)
            .prop_map(|(group, offsets)| OpValue::Commit { group, offsets })
            .boxed(),
        F::Crash => Just(OpValue::Null).boxed(),
    }
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let f = prop_oneof![
        Just(F::Send),
        Just(F::Poll),
        Just(F::Txn),
        Just(F::Assign),
        Just(F::Subscribe),
        Just(F::Commit),
        Just(F::Crash)
    ];
    let typ = prop_oneof![
        Just(OpType::Invoke),
        Just(OpType::Ok),
        Just(OpType::Fail),
        Just(OpType::Info)
    ];
    let offsets = unique_keys(3).prop_flat_map(|keys| {
        let count = keys.len();
        (Just(keys), vec(any::<u64>(), count))
            .prop_map(|(keys, offsets)| keys.into_iter().zip(offsets).collect::<Vec<_>>())
    });
    let optional = (
        proptest::option::of(any::<String>()),
        proptest::option::of(any::<String>()),
        proptest::option::of(any::<i64>()),
        proptest::option::of(any::<String>()),
        proptest::option::of(vec(any::<String>(), 0..3)),
        proptest::option::of(offsets),
        any::<bool>(),
    );
    (f, typ, any::<u64>(), any::<u64>(), any::<u64>(), optional).prop_flat_map(
        |(f, typ, index, time, process, optional)| {
            op_value_strategy(f).prop_map(move |value| {
                let (error, group, generation, member, rebalance_log, offsets, seek) =
                    optional.clone();
                let mut op = Op::new(index, time, typ, process, f, value);
                op.error = error;
                op.group = group;
                op.generation = generation;
                op.member = member;
                op.rebalance_log = rebalance_log;
                op.offsets = offsets;
                op.seek_to_beginning = seek;
                op
            })
        },
    )
}

/// Replaces, inserts or deletes characters of a line at the given places.
fn mutate(line: &str, edits: &[(usize, u8, char)]) -> String {
    let mut characters: Vec<char> = line.chars().collect();
    for &(place, kind, character) in edits {
        if characters.is_empty() {
            characters.push(character);
            continue;
        }
        let place = place % characters.len();
        match kind % 3 {
            0 => characters[place] = character,
            1 => characters.insert(place, character),
            _ => {
                characters.remove(place);
            }
        }
    }
    characters.into_iter().collect()
}

fn json_character() -> impl Strategy<Value = char> {
    prop_oneof![
        proptest::sample::select(vec![
            '{', '}', '[', ']', '"', ':', ',', '-', '0', '9', 'n', 'e', '.', ' ', '\\', 'u', 'E',
            '+', 't', '\t'
        ]),
        any::<char>()
    ]
}

proptest! {
    #[test]
    fn lines_round_trip(op in op_strategy()) {
        let line = op.to_json_line();
        prop_assert!(!line.contains('\n'));
        let parsed = parse_line(&line, 1).map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(&parsed, &op);
        // Byte-stable: writing the parsed op gives the same bytes.
        prop_assert_eq!(parsed.to_json_line(), line);
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse_line(&text, 1);
        let _ = read_history(text.as_bytes());
    }

    #[test]
    fn mutated_lines_never_panic(
        op in op_strategy(),
        edits in vec((any::<usize>(), any::<u8>(), json_character()), 1..6),
    ) {
        let mutated = mutate(&op.to_json_line(), &edits);
        let _ = parse_line(&mutated, 1);
        let _ = read_history(format!("{mutated}\n{mutated}").as_bytes());
    }

    #[test]
    fn the_fast_path_agrees_with_the_reference_parser(
        op in op_strategy(),
        edits in vec((any::<usize>(), any::<u8>(), json_character()), 0..6),
    ) {
        let line = op.to_json_line();
        prop_assert_eq!(parse_line(&line, 1), parse_reference(&line, 1));
        // Reordered members (serde_json sorts them, map keys too) and whitespace
        // everywhere.
        let tree: serde_json::Value = serde_json::from_str(&line).map_err(|error| TestCaseError::fail(error.to_string()))?;
        let pretty = serde_json::to_string_pretty(&tree).map_err(|error| TestCaseError::fail(error.to_string()))?;
        let reread = parse_line(&pretty, 1);
        prop_assert!(reread.is_ok(), "{:?}", reread);
        prop_assert_eq!(reread, parse_reference(&pretty, 1));
        let mutated = mutate(&line, &edits);
        prop_assert_eq!(parse_line(&mutated, 1), parse_reference(&mutated, 1));
    }

    #[test]
    fn arbitrary_ops_never_panic_the_check(ops in vec(op_strategy(), 0..12)) {
        let _ = check(&ops, &Policy::default());
    }
}

// ---------------------------------------------------------------------------------
// Valid histories from a sequential reference log.

/// The keys plain producers, transactions and consumers use.
const KEYS: [&str; 3] = ["t-0", "t-1", "t-2"];
/// The consume-transform-produce application reads `KEYS[EOS_INPUT]` and writes here.
const OUTPUT: &str = "out-0";
const EOS_INPUT: usize = 0;
/// `logs` index of `OUTPUT`.
const OUTPUT_LOG: usize = KEYS.len();
const GROUP: &str = "g";
const EOS_GROUP: &str = "eos";

/// One step of the generated workload.
#[derive(Clone, Debug)]
enum Action {
    /// `outcome`: 0..=5 ok, 6 info that lands, 7 info that does not, 8..=9 fail.
    Send {
        producer: usize,
        key: usize,
        outcome: u8,
        marker: bool,
    },
    /// A producer transaction over `keys` (one send each); `outcome`: 0..=5 commit,
    /// 6 info that committed, 7 info that aborted, 8..=9 abort.
    Txn {
        producer: usize,
        keys: Vec<usize>,
        outcome: u8,
    },
    Poll {
        consumer: usize,
        records_max: usize,
    },
    Reassign {
        consumer: usize,
        seek_to_beginning: bool,
    },
    /// A rebalance of the group: key `k` goes to member `(owners >> k) & 1`.
    Rebalance {
        owners: u8,
    },
    GroupPoll {
        member: usize,
        records_max: usize,
    },
    GroupCommit {
        member: usize,
    },
    /// One consume-transform-produce transaction; `outcome` as for `Txn`.
    Process {
        records_max: usize,
        outcome: u8,
    },
}

fn action_strategy() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (0..3usize, 0..KEYS.len(), 0..10u8, any::<bool>()).prop_map(
            |(producer, key, outcome, marker)| Action::Send { producer, key, outcome, marker }
        ),
        2 => (0..3usize, proptest::sample::subsequence(vec![0usize, 1, 2], 1..=3), 0..10u8)
            .prop_map(|(producer, keys, outcome)| Action::Txn { producer, keys, outcome }),
        3 => (0..2usize, 1..5usize)
            .prop_map(|(consumer, records_max)| Action::Poll { consumer, records_max }),
        1 => (0..2usize, any::<bool>()).prop_map(|(consumer, seek_to_beginning)| {
            Action::Reassign { consumer, seek_to_beginning }
        }),
        1 => any::<u8>().prop_map(|owners| Action::Rebalance { owners }),
        2 => (0..2usize, 1..4usize)
            .prop_map(|(member, records_max)| Action::GroupPoll { member, records_max }),
        1 => (0..2usize).prop_map(|member| Action::GroupCommit { member }),
        2 => (1..4usize, 0..10u8)
            .prop_map(|(records_max, outcome)| Action::Process { records_max, outcome }),
    ]
}

/// How a transaction (or an info send) ended, from an `outcome` draw.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    Committed,
    InfoCommitted,
    InfoAborted,
    Aborted,
}

fn ending(outcome: u8) -> Ending {
    match outcome {
        0..=5 => Ending::Committed,
        6 => Ending::InfoCommitted,
        7 => Ending::InfoAborted,
        _ => Ending::Aborted,
    }
}

/// Builds a history by running actions one at a time against per-key logs. Every
/// operation is invoked and completed before the next, so there is no concurrency
/// to reason about: the expected result is "no anomaly".
struct Generator {
    ops: Vec<Op>,
    /// Per key (`KEYS`, then `OUTPUT`): the visible records (offset, value) in log
    /// order. Aborted records and markers take offsets but are not here.
    logs: Vec<Vec<(u64, i64)>>,
    /// Per key: the next offset to assign.
    next_offset: Vec<u64>,
    /// Current process id of each producer and consumer.
    producers: Vec<u64>,
    consumers: Vec<u64>,
    /// Per consumer, per key: index into the log of the next record to read.
    positions: Vec<Vec<usize>>,
    /// The group: its members' processes, generation (0: not started), the owner of
    /// each key, and each key's position (index into its log), shared by whoever owns
    /// it: members commit on revoke, so the next owner resumes there.
    members: Vec<u64>,
    generation: i64,
    owners: Vec<usize>,
    group_positions: Vec<usize>,
    /// The consume-transform-produce application: its process, whether that process
    /// has assigned its input yet, and its committed position (index into the input's
    /// log).
    eos_process: u64,
    eos_assigned: bool,
    eos_position: usize,
    next_process: u64,
    next_value: i64,
}

impl Generator {
    fn new() -> Self {
        Generator {
            ops: Vec::new(),
            logs: vec![Vec::new(); KEYS.len() + 1],
            next_offset: vec![0; KEYS.len() + 1],
            producers: vec![0, 1, 2],
            consumers: vec![3, 4],
            positions: vec![vec![0; KEYS.len()]; 2],
            members: vec![5, 6],
            generation: 0,
            owners: vec![0; KEYS.len()],
            group_positions: vec![0; KEYS.len()],
            eos_process: 7,
            eos_assigned: false,
            eos_position: 0,
            next_process: 8,
            next_value: 0,
        }
    }

    fn push(&mut self, typ: OpType, process: u64, f: F, value: OpValue) -> &mut Op {
        let index = self.ops.len() as u64;
        self.ops
            .push(Op::new(index, index * 1_000, typ, process, f, value));
        self.ops.last_mut().expect("just pushed")
    }

    /// An invoke and its `ok` completion with the same value; returns the completion.
    fn push_pair(&mut self, process: u64, f: F, value: OpValue) -> &mut Op {
        self.push(OpType::Invoke, process, f, value.clone());
        self.push(OpType::Ok, process, f, value)
    }

    fn fresh_process(&mut self) -> u64 {
        self.next_process += 1;
        self.next_process
    }

    fn fresh_value(&mut self) -> i64 {
        self.next_value += 1;
        self.next_value
    }

    fn name(key: usize) -> &'static str {
        KEYS.get(key).copied().unwrap_or(OUTPUT)
    }

    fn append(&mut self, key: usize, value: i64, marker: bool) -> u64 {
        if marker {
            // A transaction marker: an offset no client ever sees.
            self.next_offset[key] += 1;
        }
        let offset = self.next_offset[key];
        self.next_offset[key] += 1;
        self.logs[key].push((offset, value));
        offset
    }

    /// Appends a transaction's records: visible if it commits, invisible (an
    /// offset nobody reads) if it aborts; then one marker per key. Returns the offsets.
    fn append_transaction(&mut self, sends: &[(usize, i64)], commits: bool) -> Vec<u64> {
        let mut offsets = Vec::new();
        for &(key, value) in sends {
            if commits {
                offsets.push(self.append(key, value, false));
            } else {
                offsets.push(self.next_offset[key]);
                self.next_offset[key] += 1;
            }
        }
        let mut touched: Vec<usize> = sends.iter().map(|&(key, _)| key).collect();
        touched.sort_unstable();
        touched.dedup();
        for key in touched {
            self.next_offset[key] += 1;
        }
        offsets
    }

    fn run(&mut self, action: &Action) {
        match action {
            &Action::Send {
                producer,
                key,
                outcome,
                marker,
            } => self.send(producer, key, outcome, marker),
            Action::Txn {
                producer,
                keys,
                outcome,
            } => self.transaction(*producer, keys, *outcome),
            &Action::Poll {
                consumer,
                records_max,
            } => {
                let process = self.consumers[consumer];
                let reads = self.read(consumer, records_max);
                self.push(
                    OpType::Invoke,
                    process,
                    F::Poll,
                    OpValue::Mops(vec![Mop::poll()]),
                );
                self.push(
                    OpType::Ok,
                    process,
                    F::Poll,
                    OpValue::Mops(vec![Mop::polled(reads)]),
                );
            }
            &Action::Reassign {
                consumer,
                seek_to_beginning,
            } => {
                let process = self.consumers[consumer];
                let keys: Vec<String> = KEYS.iter().map(|key| key.to_string()).collect();
                self.push_pair(process, F::Assign, OpValue::Keys(keys))
                    .seek_to_beginning = seek_to_beginning;
                if seek_to_beginning {
                    self.positions[consumer] = vec![0; KEYS.len()];
                }
            }
            &Action::Rebalance { owners } => self.rebalance(owners),
            &Action::GroupPoll {
                member,
                records_max,
            } => self.group_poll(member, records_max),
            &Action::GroupCommit { member } => self.group_commit(member),
            &Action::Process {
                records_max,
                outcome,
            } => self.process(records_max, outcome),
        }
    }

    fn send(&mut self, producer: usize, key: usize, outcome: u8, marker: bool) {
        let process = self.producers[producer];
        let value = self.fresh_value();
        let name = KEYS[key];
        self.push(
            OpType::Invoke,
            process,
            F::Send,
            OpValue::Mops(vec![Mop::send(name, value)]),
        );
        let (typ, mop) = match outcome {
            0..=5 => {
                let offset = self.append(key, value, marker);
                (OpType::Ok, Mop::send_at(name, offset, value))
            }
            6 | 7 => {
                if outcome == 6 {
                    self.append(key, value, marker);
                }
                self.producers[producer] = self.fresh_process();
                (OpType::Info, Mop::send(name, value))
            }
            _ => (OpType::Fail, Mop::send(name, value)),
        };
        let op = self.push(typ, process, F::Send, OpValue::Mops(vec![mop]));
        if typ == OpType::Fail {
            op.error = Some("NOT_LEADER_OR_FOLLOWER".to_owned());
        }
    }

    fn transaction(&mut self, producer: usize, keys: &[usize], outcome: u8) {
        let process = self.producers[producer];
        let sends: Vec<(usize, i64)> = keys.iter().map(|&key| (key, self.fresh_value())).collect();
        let invoked = sends
            .iter()
            .map(|&(key, value)| Mop::send(KEYS[key], value))
            .collect();
        self.push(OpType::Invoke, process, F::Txn, OpValue::Mops(invoked));
        let ending = ending(outcome);
        let offsets = self.append_transaction(
            &sends,
            matches!(ending, Ending::Committed | Ending::InfoCommitted),
        );
        let completed: Vec<Mop> = sends
            .iter()
            .zip(&offsets)
            .map(|(&(key, value), &offset)| match ending {
                // An aborted transaction's client may still report where its records
                // went: the checker must ignore offsets of failed writes.
                Ending::Committed | Ending::Aborted => Mop::send_at(KEYS[key], offset, value),
                Ending::InfoCommitted | Ending::InfoAborted => Mop::send(KEYS[key], value),
            })
            .collect();
        let typ = match ending {
            Ending::Committed => OpType::Ok,
            Ending::Aborted => OpType::Fail,
            Ending::InfoCommitted | Ending::InfoAborted => {
                self.producers[producer] = self.fresh_process();
                OpType::Info
            }
        };
        let op = self.push(typ, process, F::Txn, OpValue::Mops(completed));
        if typ == OpType::Fail {
            op.error = Some("TRANSACTION_ABORTED".to_owned());
        }
    }

    /// Reads up to `records_max` records of every key from the consumer's position.
    fn read(&mut self, consumer: usize, records_max: usize) -> Vec<(String, Vec<(u64, Value)>)> {
        let mut reads = Vec::new();
        for (key, name) in KEYS.iter().enumerate() {
            let start = self.positions[consumer][key];
            let end = (start + records_max).min(self.logs[key].len());
            self.positions[consumer][key] = end;
            if end > start {
                reads.push((name.to_string(), self.records(key, start..end)));
            }
        }
        reads
    }

    fn records(&self, key: usize, range: std::ops::Range<usize>) -> Vec<(u64, Value)> {
        self.logs[key][range]
            .iter()
            .map(|&(offset, value)| (offset, Value::Int(value)))
            .collect()
    }

    /// Eager rebalance: every member commits what it owns and records the revocation
    /// (an assignment without partitions, of the old generation) before rejoining
    /// (`onPartitionsRevoked`), then every member learns the new generation's
    /// assignment.
    fn rebalance(&mut self, owners: u8) {
        if self.generation == 0 {
            for member in 0..self.members.len() {
                let process = self.members[member];
                let op = self.push_pair(process, F::Subscribe, OpValue::Keys(vec!["t".into()]));
                op.group = Some(GROUP.into());
            }
        } else {
            for member in 0..self.members.len() {
                self.group_commit(member);
                self.group_assign(member, Vec::new());
            }
        }
        self.generation += 1;
        self.owners = (0..KEYS.len())
            .map(|key| usize::from((owners >> key) & 1 == 1))
            .collect();
        for member in 0..self.members.len() {
            let keys: Vec<String> = (0..KEYS.len())
                .filter(|&key| self.owners[key] == member)
                .map(|key| KEYS[key].to_string())
                .collect();
            self.group_assign(member, keys);
        }
    }

    /// `member`'s assignment of the current generation.
    fn group_assign(&mut self, member: usize, keys: Vec<String>) {
        let process = self.members[member];
        let generation = self.generation;
        let op = self.push_pair(process, F::Assign, OpValue::Keys(keys));
        op.group = Some(GROUP.into());
        op.generation = Some(generation);
        op.member = Some(format!("member-{member}"));
    }

    fn group_poll(&mut self, member: usize, records_max: usize) {
        if self.generation == 0 {
            return;
        }
        let mut reads = Vec::new();
        for key in (0..KEYS.len()).filter(|&key| self.owners[key] == member) {
            let start = self.group_positions[key];
            let end = (start + records_max).min(self.logs[key].len());
            self.group_positions[key] = end;
            if end > start {
                reads.push((KEYS[key].to_string(), self.records(key, start..end)));
            }
        }
        let process = self.members[member];
        self.push(
            OpType::Invoke,
            process,
            F::Poll,
            OpValue::Mops(vec![Mop::poll()]),
        );
        self.push(
            OpType::Ok,
            process,
            F::Poll,
            OpValue::Mops(vec![Mop::polled(reads)]),
        );
    }

    /// Commits, for each key the member owns and the group has read from, the offset
    /// after the last record read.
    fn group_commit(&mut self, member: usize) {
        if self.generation == 0 {
            return;
        }
        let offsets: Vec<(String, u64)> = (0..KEYS.len())
            .filter(|&key| self.owners[key] == member && self.group_positions[key] > 0)
            .map(|key| {
                let (offset, _) = self.logs[key][self.group_positions[key] - 1];
                (KEYS[key].to_string(), offset + 1)
            })
            .collect();
        if offsets.is_empty() {
            return;
        }
        let process = self.members[member];
        let generation = self.generation;
        let value = OpValue::Commit {
            group: GROUP.into(),
            offsets,
        };
        let op = self.push_pair(process, F::Commit, value);
        op.generation = Some(generation);
        op.member = Some(format!("member-{member}"));
    }

    /// One consume-transform-produce transaction: polls input records from the
    /// committed position, sends one output each, commits the input offset.
    fn process(&mut self, records_max: usize, outcome: u8) {
        let start = self.eos_position;
        let end = (start + records_max).min(self.logs[EOS_INPUT].len());
        if end == start {
            return;
        }
        let process = self.eos_process;
        if !self.eos_assigned {
            self.push_pair(
                process,
                F::Assign,
                OpValue::Keys(vec![KEYS[EOS_INPUT].into()]),
            );
            self.eos_assigned = true;
        }
        let input = self.records(EOS_INPUT, start..end);
        let next = input
            .last()
            .map(|&(offset, _)| offset + 1)
            .unwrap_or_default();
        let outputs: Vec<(usize, i64)> = input
            .iter()
            .map(|_| (OUTPUT_LOG, self.fresh_value()))
            .collect();
        let mut invoked = vec![Mop::poll()];
        invoked.extend(outputs.iter().map(|&(_, value)| Mop::send(OUTPUT, value)));
        self.push(OpType::Invoke, process, F::Txn, OpValue::Mops(invoked));
        let ending = ending(outcome);
        let commits = matches!(ending, Ending::Committed | Ending::InfoCommitted);
        let offsets = self.append_transaction(&outputs, commits);
        let mut completed = vec![Mop::polled(vec![(KEYS[EOS_INPUT].to_string(), input)])];
        completed.extend(outputs.iter().zip(&offsets).map(|(&(_, value), &offset)| {
            if ending == Ending::Committed {
                Mop::send_at(OUTPUT, offset, value)
            } else {
                Mop::send(OUTPUT, value)
            }
        }));
        if commits {
            self.eos_position = end;
        }
        let typ = match ending {
            Ending::Committed => OpType::Ok,
            Ending::Aborted => OpType::Fail,
            Ending::InfoCommitted | Ending::InfoAborted => {
                self.eos_process = self.fresh_process();
                self.eos_assigned = false;
                OpType::Info
            }
        };
        let op = self.push(typ, process, F::Txn, OpValue::Mops(completed));
        op.offsets = Some(vec![(KEYS[EOS_INPUT].to_string(), next)]);
        op.group = Some(EOS_GROUP.into());
    }

    /// A fresh consumer assigns every key, seeks to the beginning and reads it all:
    /// the drain that makes every happened write seen. Returns the drain poll's
    /// position in `ops`.
    fn drain(&mut self) -> usize {
        let process = self.fresh_process();
        let keys: Vec<String> = (0..self.logs.len())
            .map(|key| Self::name(key).to_string())
            .collect();
        self.push_pair(process, F::Assign, OpValue::Keys(keys))
            .seek_to_beginning = true;
        let reads: Vec<(String, Vec<(u64, Value)>)> = (0..self.logs.len())
            .map(|key| {
                let records = self.records(key, 0..self.logs[key].len());
                (Self::name(key).to_string(), records)
            })
            .collect();
        self.push(
            OpType::Invoke,
            process,
            F::Poll,
            OpValue::Mops(vec![Mop::poll()]),
        );
        self.push(
            OpType::Ok,
            process,
            F::Poll,
            OpValue::Mops(vec![Mop::polled(reads)]),
        );
        self.ops.len() - 1
    }
}

/// A generated valid history.
#[derive(Clone, Debug)]
struct Generated {
    ops: Vec<Op>,
    /// Position of the drain poll in `ops`.
    drain: usize,
    /// The group members' processes.
    members: Vec<u64>,
}

fn valid_history() -> impl Strategy<Value = Generated> {
    vec(action_strategy(), 0..120).prop_map(|actions| {
        let mut generator = Generator::new();
        for action in &actions {
            generator.run(action);
        }
        let drain = generator.drain();
        Generated {
            ops: generator.ops,
            drain,
            members: generator.members,
        }
    })
}

/// The drain poll's records of the first key with at least `records_min` records.
fn drain_records(
    ops: &mut [Op],
    drain: usize,
    records_min: usize,
) -> Option<(String, &mut Vec<(u64, Value)>)> {
    let OpValue::Mops(mops) = &mut ops[drain].value else {
        return None;
    };
    let Some(Mop::Poll { reads: Some(reads) }) = mops.first_mut() else {
        return None;
    };
    reads
        .iter_mut()
        .find(|(_, records)| records.len() >= records_min)
        .map(|(key, records)| (key.clone(), records))
}

/// (key, offset) of every acknowledged send.
fn acknowledged(ops: &[Op]) -> BTreeSet<(String, u64)> {
    ops.iter()
        .filter(|op| op.typ == OpType::Ok)
        .flat_map(|op| op.mops())
        .filter_map(|mop| match mop {
            Mop::Send {
                key,
                offset: Some(offset),
                ..
            } => Some((key.clone(), *offset)),
            _ => None,
        })
        .collect()
}

/// (key, value) of every record the drain returned.
fn drained(ops: &[Op], drain: usize) -> BTreeSet<(String, Value)> {
    let mut seen = BTreeSet::new();
    for mop in ops[drain].mops() {
        if let Mop::Poll { reads: Some(reads) } = mop {
            for (key, records) in reads {
                for (_, value) in records {
                    seen.insert((key.clone(), value.clone()));
                }
            }
        }
    }
    seen
}

fn kinds_on(report: &checker::Report, key: &str) -> Vec<String> {
    report
        .anomalies
        .iter()
        .filter(|anomaly| anomaly.key.as_deref() == Some(key))
        .map(|anomaly| anomaly.kind.clone())
        .collect()
}

fn check_clean(ops: &[Op]) -> checker::Report {
    check(ops, &Policy::default())
}

proptest! {
    #[test]
    fn generated_histories_are_valid_and_check_clean(generated in valid_history()) {
        let ops = generated.ops;
        let mut text = Vec::new();
        write_history(&mut text, &ops).map_err(|error| TestCaseError::fail(error.to_string()))?;
        let read = read_history(text.as_slice()).map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(&read, &ops);
        let report = check_clean(&ops);
        prop_assert!(report.anomalies.is_empty(), "{:#?}", report.anomalies);
        prop_assert!(report.ok());
    }

    #[test]
    fn checking_while_reading_gives_the_same_report(
        generated in valid_history(),
        pick in any::<usize>(),
        cut in any::<usize>(),
    ) {
        let mut ops = generated.ops;
        // Corrupt one value (so there is something to report), and cut the history
        // after an invoke so some operations are still pending at the end.
        if let Some((_, records)) = drain_records(&mut ops, generated.drain, 1) {
            let place = pick % records.len();
            records[place].0 += 1;
        }
        let invokes: Vec<usize> = ops
            .iter()
            .enumerate()
            .filter(|(_, op)| op.typ == OpType::Invoke)
            .map(|(position, _)| position)
            .collect();
        if !invokes.is_empty() && cut % 2 == 0 {
            ops.truncate(invokes[cut % invokes.len()] + 1);
        }
        let mut text = Vec::new();
        write_history(&mut text, &ops).map_err(|error| TestCaseError::fail(error.to_string()))?;
        let streamed = check_reader(text.as_slice(), &Policy::default())
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        let whole = check_clean(&ops);
        prop_assert_eq!(streamed.ops, whole.ops);
        prop_assert_eq!(streamed.anomalies, whole.anomalies);
    }

    #[test]
    fn swapping_two_acknowledged_values_in_a_read_is_inconsistent_offsets(
        generated in valid_history(),
        pick in any::<(usize, usize)>(),
    ) {
        let mut ops = generated.ops;
        let acked = acknowledged(&ops);
        let Some((key, records)) = drain_records(&mut ops, generated.drain, 2) else {
            return Ok(());
        };
        // A swap is visible only where an acknowledgement says what the offset holds.
        let known: Vec<usize> = (0..records.len())
            .filter(|&place| acked.contains(&(key.clone(), records[place].0)))
            .collect();
        if known.is_empty() {
            return Ok(());
        }
        let first = known[pick.0 % known.len()];
        let second = (first + 1 + pick.1 % (records.len() - 1)) % records.len();
        let value = records[first].1.clone();
        records[first].1 = records[second].1.clone();
        records[second].1 = value;
        let report = check_clean(&ops);
        prop_assert!(kinds_on(&report, &key).contains(&"inconsistent-offsets".to_owned()), "{:#?}", report.anomalies);
        prop_assert!(!report.ok());
    }

    #[test]
    fn dropping_a_middle_record_is_an_internal_poll_skip(
        generated in valid_history(),
        pick in any::<usize>(),
    ) {
        let mut ops = generated.ops;
        let acked = acknowledged(&ops);
        let Some((key, records)) = drain_records(&mut ops, generated.drain, 3) else {
            return Ok(());
        };
        // Only an offset known from elsewhere (an acknowledgement) can be missed: an
        // unacknowledged record read only by the drain leaves no trace once dropped.
        let candidates: Vec<usize> = (1..records.len() - 1)
            .filter(|&place| acked.contains(&(key.clone(), records[place].0)))
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let middle = candidates[pick % candidates.len()];
        let dropped = records.remove(middle);
        let report = check_clean(&ops);
        let kinds = kinds_on(&report, &key);
        prop_assert!(kinds.contains(&"int-poll-skip".to_owned()), "dropped {:?}: {:#?}", dropped, report.anomalies);
        // If no other consumer read the dropped value, it is also lost (the drain read
        // past it), and a transaction it belonged to is torn. Nothing else may appear.
        prop_assert!(
            kinds.iter().all(|kind| ["int-poll-skip", "lost-write", "torn-transaction"].contains(&kind.as_str())),
            "{:#?}", report.anomalies
        );
    }

    #[test]
    fn a_value_at_a_second_offset_is_a_duplicate(
        generated in valid_history(),
        pick in any::<usize>(),
    ) {
        let mut ops = generated.ops;
        let Some((key, records)) = drain_records(&mut ops, generated.drain, 1) else {
            return Ok(());
        };
        let value = records[pick % records.len()].1.clone();
        let after = records.last().map(|(offset, _)| offset + 1).unwrap_or_default();
        records.push((after, value));
        let report = check_clean(&ops);
        prop_assert!(kinds_on(&report, &key).contains(&"duplicate".to_owned()), "{:#?}", report.anomalies);
    }

    #[test]
    fn moving_an_acknowledged_value_to_another_offset_is_inconsistent_offsets(
        generated in valid_history(),
        pick in any::<(usize, usize)>(),
    ) {
        let mut ops = generated.ops;
        // Every acknowledged single send, as (op position, key, offset).
        let sends: Vec<(usize, String, u64)> = ops
            .iter()
            .enumerate()
            .filter(|(_, op)| op.typ == OpType::Ok && op.f == F::Send)
            .filter_map(|(position, op)| match op.mops() {
                [Mop::Send { key, offset: Some(offset), .. }] => Some((position, key.clone(), *offset)),
                _ => None,
            })
            .collect();
        if sends.is_empty() {
            return Ok(());
        }
        let (position, key, offset) = sends[pick.0 % sends.len()].clone();
        let others: Vec<u64> = sends
            .iter()
            .filter(|(_, other_key, other)| *other_key == key && *other != offset)
            .map(|&(_, _, other)| other)
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        let target = others[pick.1 % others.len()];
        if let OpValue::Mops(mops) = &mut ops[position].value {
            if let Some(Mop::Send { offset, .. }) = mops.first_mut() {
                *offset = Some(target);
            }
        }
        let report = check_clean(&ops);
        prop_assert!(kinds_on(&report, &key).contains(&"inconsistent-offsets".to_owned()), "{:#?}", report.anomalies);
    }

    #[test]
    fn marking_a_read_write_as_failed_is_an_aborted_read(
        generated in valid_history(),
        pick in any::<usize>(),
    ) {
        let mut ops = generated.ops;
        let seen = drained(&ops, generated.drain);
        // Every ok send or txn completion with a sent value the drain read.
        let candidates: Vec<(usize, String)> = ops
            .iter()
            .enumerate()
            .filter(|(_, op)| op.typ == OpType::Ok && matches!(op.f, F::Send | F::Txn))
            .filter_map(|(position, op)| {
                op.mops().iter().find_map(|mop| match mop {
                    Mop::Send { key, value, .. } if seen.contains(&(key.clone(), value.clone())) => {
                        Some((position, key.clone()))
                    }
                    _ => None,
                })
            })
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let (position, key) = candidates[pick % candidates.len()].clone();
        ops[position].typ = OpType::Fail;
        let report = check_clean(&ops);
        prop_assert!(kinds_on(&report, &key).contains(&"G1a".to_owned()), "{:#?}", report.anomalies);
        prop_assert!(!report.ok());
    }

    #[test]
    fn lowering_a_later_commit_is_an_offset_regression(
        generated in valid_history(),
        pick in any::<usize>(),
    ) {
        let mut ops = generated.ops;
        // (op position, key) of every ok group commit with an earlier commit of its key.
        let mut committed: BTreeSet<String> = BTreeSet::new();
        let mut candidates: Vec<(usize, String)> = Vec::new();
        for (position, op) in ops.iter().enumerate() {
            if let (OpType::Ok, OpValue::Commit { offsets, .. }) = (op.typ, &op.value) {
                for (key, _) in offsets {
                    if !committed.insert(key.clone()) {
                        candidates.push((position, key.clone()));
                    }
                }
            }
        }
        if candidates.is_empty() {
            return Ok(());
        }
        let (position, key) = candidates[pick % candidates.len()].clone();
        if let OpValue::Commit { offsets, .. } = &mut ops[position].value {
            for (offset_key, offset) in offsets.iter_mut() {
                if *offset_key == key {
                    *offset = 0;
                }
            }
        }
        let report = check_clean(&ops);
        prop_assert!(kinds_on(&report, &key).contains(&"offset-regression".to_owned()), "{:#?}", report.anomalies);
    }

    #[test]
    fn hiding_a_group_read_below_a_commit_is_an_uncommitted_gap(
        generated in valid_history(),
        pick in any::<usize>(),
    ) {
        let mut ops = generated.ops;
        let members = generated.members;
        // Group polls of a key that the group had read before (so the group's start is
        // known to lie below) and that a later commit covers.
        let mut read_before: BTreeSet<String> = BTreeSet::new();
        let mut candidates: Vec<(usize, String)> = Vec::new();
        for (position, op) in ops.iter().enumerate() {
            if op.typ != OpType::Ok || op.f != F::Poll || !members.contains(&op.process) {
                continue;
            }
            for mop in op.mops() {
                let Mop::Poll { reads: Some(reads) } = mop else { continue };
                for (key, records) in reads {
                    let Some(&(last, _)) = records.last() else { continue };
                    let covered = ops[position..].iter().any(|later| matches!(
                        (&later.typ, &later.value),
                        (OpType::Ok, OpValue::Commit { offsets, .. })
                            if offsets.iter().any(|(k, offset)| k == key && *offset > last)
                    ));
                    if covered && read_before.contains(key) {
                        candidates.push((position, key.clone()));
                    }
                    read_before.insert(key.clone());
                }
            }
        }
        if candidates.is_empty() {
            return Ok(());
        }
        let (position, key) = candidates[pick % candidates.len()].clone();
        if let OpValue::Mops(mops) = &mut ops[position].value {
            for mop in mops.iter_mut() {
                if let Mop::Poll { reads: Some(reads) } = mop {
                    reads.retain(|(read_key, _)| *read_key != key);
                }
            }
        }
        let report = check_clean(&ops);
        prop_assert!(kinds_on(&report, &key).contains(&"uncommitted-gap".to_owned()), "{:#?}", report.anomalies);
        prop_assert!(!report.ok());
    }

    #[test]
    fn processing_an_input_twice_is_an_eos_duplicate_output(
        generated in valid_history(),
        pick in any::<usize>(),
    ) {
        let mut ops = generated.ops;
        // Pairs of ok consume-transform-produce transactions, the later one's position
        // and the earlier one's last input record.
        let mut last_input: Option<(u64, Value)> = None;
        let mut candidates: Vec<(usize, (u64, Value))> = Vec::new();
        for (position, op) in ops.iter().enumerate() {
            if op.typ != OpType::Ok || op.f != F::Txn || op.offsets.is_none() {
                continue;
            }
            if let Some(record) = &last_input {
                candidates.push((position, record.clone()));
            }
            last_input = op.mops().iter().find_map(|mop| match mop {
                Mop::Poll { reads: Some(reads) } => reads.first().and_then(|(_, records)| records.last().cloned()),
                _ => None,
            });
        }
        if candidates.is_empty() {
            return Ok(());
        }
        let (position, record) = candidates[pick % candidates.len()].clone();
        if let OpValue::Mops(mops) = &mut ops[position].value {
            if let Some(Mop::Poll { reads: Some(reads) }) = mops.first_mut() {
                if let Some((_, records)) = reads.first_mut() {
                    records.insert(0, record);
                }
            }
        }
        let report = check_clean(&ops);
        prop_assert!(kinds_on(&report, KEYS[EOS_INPUT]).contains(&"eos-duplicate-output".to_owned()), "{:#?}", report.anomalies);
    }
}

/// The generator exercises what the properties rely on: over 200 histories from a
/// fixed seed, most have committed and aborted transactions, group commits, and
/// consume-transform-produce transactions, so the mutations above rarely return early.
#[test]
fn the_generator_covers_transactions_groups_and_exactly_once() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = valid_history();
    let mut counts = [0usize; 6];
    let histories = 200;
    for _ in 0..histories {
        let generated = strategy
            .new_tree(&mut runner)
            .expect("the strategy generates")
            .current();
        let ops = &generated.ops;
        let has = |predicate: &dyn Fn(&Op) -> bool| ops.iter().any(predicate);
        let features = [
            has(&|op| op.f == F::Txn && op.typ == OpType::Ok && op.offsets.is_none()),
            has(&|op| op.f == F::Txn && op.typ == OpType::Fail),
            has(&|op| op.f == F::Txn && op.typ == OpType::Info),
            has(&|op| op.f == F::Commit && op.typ == OpType::Ok),
            has(&|op| op.f == F::Txn && op.typ == OpType::Ok && op.offsets.is_some()),
            has(&|op| op.f == F::Assign && op.generation.unwrap_or(0) >= 2),
        ];
        for (count, present) in counts.iter_mut().zip(features) {
            *count += usize::from(present);
        }
    }
    for (feature, count) in [
        "committed txn",
        "aborted txn",
        "info txn",
        "group commit",
        "exactly-once txn",
        "second generation",
    ]
    .iter()
    .zip(counts)
    {
        assert!(
            count * 2 > histories,
            "{feature}: only {count} of {histories}"
        );
    }
}
