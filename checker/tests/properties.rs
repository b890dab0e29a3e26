//! Property tests of the checker as a whole, through its public API only.
//!
//! 1. The history format round-trips: `to_json_line` then `parse_line` gives the same op.
//! 2. No input makes the reader panic: arbitrary text, and valid lines mutated.
//! 3. Histories generated from a sequential reference log (producers with ok, info and
//!    fail sends; assign-mode consumers reading contiguously; a final drain) are valid:
//!    `check` reports nothing. One targeted corruption of such a history makes `check`
//!    report the anomaly it should.

use checker::{
    check, parse_line, read_history, write_history, Mop, Op, OpType, OpValue, Policy, Value, F,
};
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
            '{', '}', '[', ']', '"', ':', ',', '-', '0', '9', 'n', 'e', '.', ' '
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
    fn arbitrary_ops_never_panic_the_check(ops in vec(op_strategy(), 0..12)) {
        let _ = check(&ops, &Policy::default());
    }
}

// ---------------------------------------------------------------------------------
// Valid histories from a sequential reference log.

const KEYS: [&str; 3] = ["t-0", "t-1", "t-2"];

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
    Poll {
        consumer: usize,
        records_max: usize,
    },
    Reassign {
        consumer: usize,
        seek_to_beginning: bool,
    },
}

fn action_strategy() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (0..3usize, 0..KEYS.len(), 0..10u8, any::<bool>()).prop_map(
            |(producer, key, outcome, marker)| Action::Send { producer, key, outcome, marker }
        ),
        3 => (0..2usize, 1..5usize)
            .prop_map(|(consumer, records_max)| Action::Poll { consumer, records_max }),
        1 => (0..2usize, any::<bool>()).prop_map(|(consumer, seek_to_beginning)| {
            Action::Reassign { consumer, seek_to_beginning }
        }),
    ]
}

/// Builds a history by running actions one at a time against per-key logs. Every
/// operation is invoked and completed before the next, so there is no concurrency
/// to reason about: the expected result is "no anomaly".
struct Generator {
    ops: Vec<Op>,
    /// Per key: the records (offset, value) in log order.
    logs: Vec<Vec<(u64, i64)>>,
    /// Per key: the next offset to assign.
    next_offset: Vec<u64>,
    /// Current process id of each producer and consumer.
    producers: Vec<u64>,
    consumers: Vec<u64>,
    /// Per consumer, per key: index into the log of the next record to read.
    positions: Vec<Vec<usize>>,
    next_process: u64,
    next_value: i64,
}

impl Generator {
    fn new() -> Self {
        Generator {
            ops: Vec::new(),
            logs: vec![Vec::new(); KEYS.len()],
            next_offset: vec![0; KEYS.len()],
            producers: vec![0, 1, 2],
            consumers: vec![3, 4],
            positions: vec![vec![0; KEYS.len()]; 2],
            next_process: 5,
            next_value: 0,
        }
    }

    fn push(&mut self, typ: OpType, process: u64, f: F, value: OpValue) -> &mut Op {
        let index = self.ops.len() as u64;
        self.ops
            .push(Op::new(index, index * 1_000, typ, process, f, value));
        self.ops.last_mut().expect("just pushed")
    }

    fn fresh_process(&mut self) -> u64 {
        self.next_process += 1;
        self.next_process
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

    fn run(&mut self, action: &Action) {
        match *action {
            Action::Send {
                producer,
                key,
                outcome,
                marker,
            } => {
                let process = self.producers[producer];
                let value = self.next_value;
                self.next_value += 1;
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
            Action::Poll {
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
            Action::Reassign {
                consumer,
                seek_to_beginning,
            } => {
                let process = self.consumers[consumer];
                let keys: Vec<String> = KEYS.iter().map(|key| key.to_string()).collect();
                self.push(
                    OpType::Invoke,
                    process,
                    F::Assign,
                    OpValue::Keys(keys.clone()),
                );
                let op = self.push(OpType::Ok, process, F::Assign, OpValue::Keys(keys));
                op.seek_to_beginning = seek_to_beginning;
                if seek_to_beginning {
                    self.positions[consumer] = vec![0; KEYS.len()];
                }
            }
        }
    }

    /// Reads up to `records_max` records of every key from the consumer's position.
    fn read(&mut self, consumer: usize, records_max: usize) -> Vec<(String, Vec<(u64, Value)>)> {
        let mut reads = Vec::new();
        for (key, name) in KEYS.iter().enumerate() {
            let start = self.positions[consumer][key];
            let end = (start + records_max).min(self.logs[key].len());
            let records: Vec<(u64, Value)> = self.logs[key][start..end]
                .iter()
                .map(|&(offset, value)| (offset, Value::Int(value)))
                .collect();
            self.positions[consumer][key] = end;
            if !records.is_empty() {
                reads.push((name.to_string(), records));
            }
        }
        reads
    }

    /// A fresh consumer assigns every key, seeks to the beginning and reads it all:
    /// the drain that makes every happened write seen. Returns the drain poll's
    /// position in `ops`.
    fn drain(&mut self) -> usize {
        let process = self.fresh_process();
        let keys: Vec<String> = KEYS.iter().map(|key| key.to_string()).collect();
        self.push(
            OpType::Invoke,
            process,
            F::Assign,
            OpValue::Keys(keys.clone()),
        );
        self.push(OpType::Ok, process, F::Assign, OpValue::Keys(keys))
            .seek_to_beginning = true;
        let reads: Vec<(String, Vec<(u64, Value)>)> = KEYS
            .iter()
            .enumerate()
            .map(|(key, name)| {
                let records = self.logs[key]
                    .iter()
                    .map(|&(offset, value)| (offset, Value::Int(value)))
                    .collect();
                (name.to_string(), records)
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

/// A generated valid history and the position of its drain poll in it.
fn valid_history() -> impl Strategy<Value = (Vec<Op>, usize)> {
    vec(action_strategy(), 0..120).prop_map(|actions| {
        let mut generator = Generator::new();
        for action in &actions {
            generator.run(action);
        }
        let drain = generator.drain();
        (generator.ops, drain)
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
fn acknowledged(ops: &[Op]) -> std::collections::BTreeSet<(String, u64)> {
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

fn kinds_on(report: &checker::Report, key: &str) -> Vec<String> {
    report
        .anomalies
        .iter()
        .filter(|anomaly| anomaly.key.as_deref() == Some(key))
        .map(|anomaly| anomaly.kind.clone())
        .collect()
}

proptest! {
    #[test]
    fn generated_histories_are_valid_and_check_clean((ops, _) in valid_history()) {
        let mut text = Vec::new();
        write_history(&mut text, &ops).map_err(|error| TestCaseError::fail(error.to_string()))?;
        let read = read_history(text.as_slice()).map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(&read, &ops);
        let report = check(&ops, &Policy::default());
        prop_assert!(report.anomalies.is_empty(), "{:#?}", report.anomalies);
        prop_assert!(report.ok());
    }

    #[test]
    fn swapping_two_values_in_a_read_is_inconsistent_offsets(
        (mut ops, drain) in valid_history(),
        pick in any::<(usize, usize)>(),
    ) {
        let Some((key, records)) = drain_records(&mut ops, drain, 2) else {
            return Ok(());
        };
        let first = pick.0 % records.len();
        let second = (first + 1 + pick.1 % (records.len() - 1)) % records.len();
        let value = records[first].1.clone();
        records[first].1 = records[second].1.clone();
        records[second].1 = value;
        let report = check(&ops, &Policy::default());
        prop_assert!(kinds_on(&report, &key).contains(&"inconsistent-offsets".to_owned()), "{:#?}", report.anomalies);
        prop_assert!(!report.ok());
    }

    #[test]
    fn dropping_a_middle_record_is_an_internal_poll_skip(
        (mut ops, drain) in valid_history(),
        pick in any::<usize>(),
    ) {
        let acked = acknowledged(&ops);
        let Some((key, records)) = drain_records(&mut ops, drain, 3) else {
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
        let report = check(&ops, &Policy::default());
        let kinds = kinds_on(&report, &key);
        prop_assert!(kinds.contains(&"int-poll-skip".to_owned()), "dropped {:?}: {:#?}", dropped, report.anomalies);
        // If no other consumer read the dropped value, it is also lost: the drain read
        // past it. Nothing else may appear.
        prop_assert!(
            kinds.iter().all(|kind| kind == "int-poll-skip" || kind == "lost-write"),
            "{:#?}", report.anomalies
        );
    }

    #[test]
    fn a_value_at_a_second_offset_is_a_duplicate(
        (mut ops, drain) in valid_history(),
        pick in any::<usize>(),
    ) {
        let Some((key, records)) = drain_records(&mut ops, drain, 1) else {
            return Ok(());
        };
        let value = records[pick % records.len()].1.clone();
        let after = records.last().map(|(offset, _)| offset + 1).unwrap_or_default();
        records.push((after, value));
        let report = check(&ops, &Policy::default());
        prop_assert!(kinds_on(&report, &key).contains(&"duplicate".to_owned()), "{:#?}", report.anomalies);
    }
}
