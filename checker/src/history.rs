//! The typed history: one [`Op`] per line of a JSON Lines file, exactly as
//! `shared/design/history.md` specifies (Jepsen's `jepsen.tests.kafka` operation model,
//! written as JSON).
//!
//! The simulator builds [`Op`]s directly and writes them with [`Op::to_json_line`] (or
//! [`write_history`]); the checker reads them back with [`read_history`]. Both sides use
//! these types so the file format has exactly one definition. The writer is byte-stable:
//! the same `Op` always produces the same bytes (field order fixed, maps written in the
//! order of their `Vec`), so two runs of one seed can be compared with `cmp`.
//!
//! Reading is strict about structure (an unreadable history must not pass as a valid
//! one) but never panics: every problem becomes an [`InputError`] naming the line.

mod fast;
mod json;
mod parse;
mod write;

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, Read, Write};

use crate::fxhash::FxHashMap;

pub use parse::{parse_line, parse_reference};
pub(crate) use write::push_json_string;

/// A record value. Jepsen's workload writes integers; strings let a simulator tag values
/// with their producer (`"p3-17"`). Values are unique per key among sends.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    Int(i64),
    Str(String),
}

impl fmt::Display for Value {
    /// The JSON form, so a detail string quotes string values the way the history
    /// file does and a reader can search the file for it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(number) => write!(f, "{number}"),
            Value::Str(text) => {
                let mut quoted = String::with_capacity(text.len() + 2);
                write::push_json_string(&mut quoted, text);
                f.write_str(&quoted)
            }
        }
    }
}

impl From<i64> for Value {
    fn from(number: i64) -> Self {
        Value::Int(number)
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Str(text.to_owned())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Str(text)
    }
}

/// Jepsen's operation types: `Info` means "may or may not have happened".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpType {
    Invoke,
    Ok,
    Fail,
    Info,
}

impl OpType {
    /// The name used in the history file.
    pub fn as_str(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }

    /// Parses the history file's name; `None` for anything else.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "invoke" => Some(OpType::Invoke),
            "ok" => Some(OpType::Ok),
            "fail" => Some(OpType::Fail),
            "info" => Some(OpType::Info),
            _ => None,
        }
    }

    /// True for `ok`, `fail` and `info`: the events that end an invocation.
    pub fn is_completion(self) -> bool {
        self != OpType::Invoke
    }
}

/// The operation a client performed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum F {
    Send,
    Poll,
    Txn,
    Assign,
    Subscribe,
    Commit,
    Crash,
}

impl F {
    /// The name used in the history file.
    pub fn as_str(self) -> &'static str {
        match self {
            F::Send => "send",
            F::Poll => "poll",
            F::Txn => "txn",
            F::Assign => "assign",
            F::Subscribe => "subscribe",
            F::Commit => "commit",
            F::Crash => "crash",
        }
    }

    /// Parses the history file's name; `None` for anything else.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "send" => Some(F::Send),
            "poll" => Some(F::Poll),
            "txn" => Some(F::Txn),
            "assign" => Some(F::Assign),
            "subscribe" => Some(F::Subscribe),
            "commit" => Some(F::Commit),
            "crash" => Some(F::Crash),
            _ => None,
        }
    }
}

/// A micro-operation of a `send`, `poll` or `txn`.
#[derive(Clone, Debug, PartialEq)]
pub enum Mop {
    /// `["send", key, value]` on invoke; `["send", key, [offset, value]]` on completion.
    /// `offset: None` is written in the invoke form (a completion that never learned its
    /// offset); `[null, value]` is read back as `None`.
    Send {
        key: String,
        value: Value,
        offset: Option<u64>,
    },
    /// `["poll"]` on invoke; `["poll", {key: [[offset, value], ...]}]` on completion.
    /// Keys stay in the order written; records in the order the poll returned them.
    Poll { reads: Option<PollReads> },
}

/// What one poll returned: per key (in the order written), the `(offset, value)`
/// records in the order returned. An alias, so `Vec` literals can be used directly.
pub type PollReads = Vec<(String, Vec<(u64, Value)>)>;

impl Mop {
    /// A send as invoked (offset not known yet).
    pub fn send(key: impl Into<String>, value: impl Into<Value>) -> Self {
        Mop::Send {
            key: key.into(),
            value: value.into(),
            offset: None,
        }
    }

    /// A send as completed, with the offset the broker acknowledged.
    pub fn send_at(key: impl Into<String>, offset: u64, value: impl Into<Value>) -> Self {
        Mop::Send {
            key: key.into(),
            value: value.into(),
            offset: Some(offset),
        }
    }

    /// A poll as invoked.
    pub fn poll() -> Self {
        Mop::Poll { reads: None }
    }

    /// A poll as completed, with what it returned per key.
    pub fn polled(reads: PollReads) -> Self {
        Mop::Poll { reads: Some(reads) }
    }
}

/// The `value` field; its shape depends on `f`.
#[derive(Clone, Debug, PartialEq)]
pub enum OpValue {
    /// `send`, `poll`, `txn`: micro-operations applied in order.
    Mops(Vec<Mop>),
    /// `assign`: the keys now assigned; `subscribe`: the topics subscribed.
    Keys(Vec<String>),
    /// `commit`: a consumer-group offset commit (next offset to read, per key).
    Commit {
        group: String,
        offsets: Vec<(String, u64)>,
    },
    /// `crash`, or any operation whose value is JSON `null`.
    Null,
}

/// One event of the history: one line of the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    /// Position in the history: 0, 1, 2, ... without gaps.
    pub index: u64,
    /// Simulated time in nanoseconds; never decreases.
    pub time: u64,
    /// Serialized as `type`.
    pub typ: OpType,
    /// One client incarnation; a client continues under a new id after `info`.
    pub process: u64,
    pub f: F,
    pub value: OpValue,
    /// Why the operation failed (Kafka's error name), if it did.
    pub error: Option<String>,
    /// Consumer group, generation and member of an assignment from a rebalance.
    pub group: Option<String>,
    pub generation: Option<i64>,
    pub member: Option<String>,
    /// Keys whose assignment changed during this operation.
    pub rebalance_log: Option<Vec<String>>,
    /// Input offsets committed inside a transaction (`sendOffsetsToTransaction`).
    pub offsets: Option<Vec<(String, u64)>>,
    /// On `assign`: the consumer seeks to the beginning of its partitions.
    pub seek_to_beginning: bool,
}

impl Op {
    /// An event with every optional field absent.
    pub fn new(index: u64, time: u64, typ: OpType, process: u64, f: F, value: OpValue) -> Self {
        Op {
            index,
            time,
            typ,
            process,
            f,
            value,
            error: None,
            group: None,
            generation: None,
            member: None,
            rebalance_log: None,
            offsets: None,
            seek_to_beginning: false,
        }
    }

    /// The micro-operations, or an empty slice when `value` holds something else.
    pub fn mops(&self) -> &[Mop] {
        match &self.value {
            OpValue::Mops(mops) => mops,
            _ => &[],
        }
    }

    /// One JSON line, without the trailing newline. Field order: `index`, `time`,
    /// `type`, `process`, `f`, `value`, then the optional fields that are present in the
    /// order `error`, `group`, `generation`, `member`, `rebalance_log`, `offsets`,
    /// `seek_to_beginning` (written only when true).
    pub fn to_json_line(&self) -> String {
        let mut line = String::with_capacity(128);
        write::push_op(&mut line, self);
        line
    }
}

/// Why a history could not be read: the 1-based line and what is wrong there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for InputError {}

/// The invocation a process is waiting on, for pairing completions.
struct PendingInvoke {
    f: F,
    line: usize,
    index: u64,
}

/// The longest line [`read_history`] accepts, in bytes. A poll of a million records is
/// about 20 MB; a longer line is a broken or hostile file, and reading it whole would
/// let one line take any amount of memory.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// Where a value was first sent: the line of the operation's invoke (its identity:
/// the invoke and the completion of one send name the same value), and the last line
/// that named it (to catch one line naming it twice).
struct SentAt {
    first_line: usize,
    operation_line: usize,
    last_line: usize,
}

/// The cross-line rules of `history.md`, checked one event at a time. Memory is
/// proportional to the processes in flight and the distinct values sent.
#[derive(Default)]
struct Sequence {
    previous_time: Option<u64>,
    pending: HashMap<u64, PendingInvoke>,
    /// Processes that completed with `info`, and the line: a client continues under a
    /// new process id after an `info`, so these never invoke again.
    retired: HashMap<u64, usize>,
    key_ids: FxHashMap<String, usize>,
    /// Per key (by id): every value sent to it, for "values are unique per key among
    /// sends".
    sent: Vec<FxHashMap<Value, SentAt>>,
}

/// Reads a whole history line by line (never the whole file at once), parsing each
/// line and validating the sequence: `index` counts 0, 1, 2, ... without gaps, `time`
/// never decreases, every completion answers a pending invoke of its process with the
/// same `f`, no process invokes while it has an invoke pending, and none invokes after
/// completing with `info`. Blank lines are skipped (they still count for line
/// numbers). Invokes still pending at the end are fine: those operations are in flight,
/// i.e. `info`. Values must be unique per key among sends: a value may appear in one
/// operation's invoke and its completion, and nowhere else. Lines longer than
/// [`MAX_LINE_BYTES`] are rejected before they are read whole.
pub fn read_history<R: BufRead>(reader: R) -> Result<Vec<Op>, InputError> {
    let mut ops = Vec::new();
    read_ops(reader, |op| ops.push(op))?;
    Ok(ops)
}

/// [`read_history`] without keeping the history: each op, once read and validated, is
/// handed to `sink`. Returns how many ops were read.
pub fn read_ops<R: BufRead>(mut reader: R, mut sink: impl FnMut(Op)) -> Result<usize, InputError> {
    let mut buffer = String::new();
    let mut line_no = 0usize;
    let mut count = 0usize;
    let mut sequence = Sequence::default();
    loop {
        buffer.clear();
        line_no += 1;
        let read = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_line(&mut buffer)
            .map_err(|error| InputError {
                line: line_no,
                message: read_error_message(&error),
            })?;
        if read == 0 {
            return Ok(count);
        }
        if read > MAX_LINE_BYTES {
            return Err(InputError {
                line: line_no,
                message: format!("line is longer than {MAX_LINE_BYTES} bytes"),
            });
        }
        let line = buffer.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        let op = parse_line(line, line_no)?;
        sequence
            .admit(&op, line_no, count as u64)
            .map_err(|message| InputError {
                line: line_no,
                message,
            })?;
        sink(op);
        count += 1;
    }
}

fn read_error_message(error: &std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::InvalidData {
        "not valid UTF-8".to_owned()
    } else {
        format!("cannot read: {error}")
    }
}

impl Sequence {
    /// Checks `op`, the event at `line` that should have index `expected_index`, and
    /// records it.
    fn admit(&mut self, op: &Op, line: usize, expected_index: u64) -> Result<(), String> {
        if op.index != expected_index {
            return Err(format!(
                "index {} out of sequence: expected {expected_index} (indices count 0, 1, 2, ... without gaps)",
                op.index
            ));
        }
        if let Some(previous) = self.previous_time {
            if op.time < previous {
                return Err(format!(
                    "time {} is before the previous event's time {previous} (time never decreases)",
                    op.time
                ));
            }
        }
        self.previous_time = Some(op.time);
        let operation_line = if op.typ == OpType::Invoke {
            self.admit_invoke(op, line)?
        } else {
            self.admit_completion(op, line)?
        };
        self.admit_sends(op, line, operation_line)
    }

    /// Values are unique per key among sends: each (key, value) belongs to one
    /// operation (identified by its invoke's line), named at most once per line.
    fn admit_sends(&mut self, op: &Op, line: usize, operation_line: usize) -> Result<(), String> {
        for mop in op.mops() {
            let Mop::Send { key, value, .. } = mop else {
                continue;
            };
            let key_id = match self.key_ids.get(key.as_str()) {
                Some(&id) => id,
                None => {
                    let id = self.sent.len();
                    self.key_ids.insert(key.clone(), id);
                    self.sent.push(FxHashMap::default());
                    id
                }
            };
            let sent_to_key = &mut self.sent[key_id];
            if let Some(sent) = sent_to_key.get_mut(value) {
                if sent.operation_line != operation_line || sent.last_line == line {
                    return Err(format!(
                        "value {value} sent twice to key {key} (first on line {})",
                        sent.first_line
                    ));
                }
                sent.last_line = line;
                continue;
            }
            sent_to_key.insert(
                value.clone(),
                SentAt {
                    first_line: line,
                    operation_line,
                    last_line: line,
                },
            );
        }
        Ok(())
    }

    /// Returns the line of the invoke, which identifies the operation.
    fn admit_invoke(&mut self, op: &Op, line: usize) -> Result<usize, String> {
        if let Some(open) = self.pending.get(&op.process) {
            return Err(format!(
                "invoke on process {} while its invoke at line {} (index {}) is still pending",
                op.process, open.line, open.index
            ));
        }
        if let Some(info_line) = self.retired.get(&op.process) {
            return Err(format!(
                "invoke on process {}, which completed with info at line {info_line} (after an info the client continues under a new process id)",
                op.process
            ));
        }
        self.pending.insert(
            op.process,
            PendingInvoke {
                f: op.f,
                line,
                index: op.index,
            },
        );
        Ok(line)
    }

    /// Returns the line of the invoke this completion answers.
    fn admit_completion(&mut self, op: &Op, line: usize) -> Result<usize, String> {
        let Some(open) = self.pending.remove(&op.process) else {
            return Err(format!(
                "{} completion on process {} without a pending invoke",
                op.typ.as_str(),
                op.process
            ));
        };
        if open.f != op.f {
            return Err(format!(
                "completion has f \"{}\" but the pending invoke of process {} (line {}) has f \"{}\"",
                op.f.as_str(),
                op.process,
                open.line,
                open.f.as_str()
            ));
        }
        if op.typ == OpType::Info {
            self.retired.insert(op.process, line);
        }
        Ok(open.line)
    }
}

/// Writes ops as JSON Lines, one per line, each followed by `\n`.
pub fn write_history<W: Write>(mut writer: W, ops: &[Op]) -> std::io::Result<()> {
    let mut line = String::with_capacity(256);
    for op in ops {
        line.clear();
        write::push_op(&mut line, op);
        line.push('\n');
        writer.write_all(line.as_bytes())?;
    }
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::read_history;

    fn error_of(text: &str) -> String {
        match read_history(text.as_bytes()) {
            Ok(ops) => panic!("expected an error, read {} ops", ops.len()),
            Err(error) => error.to_string(),
        }
    }

    const INVOKE: &str =
        r#"{"index":0,"time":5,"type":"invoke","process":1,"f":"poll","value":[["poll"]]}"#;
    const OK: &str =
        r#"{"index":1,"time":6,"type":"ok","process":1,"f":"poll","value":[["poll",{}]]}"#;

    #[test]
    fn a_valid_history_reads_with_blank_lines_and_crlf() {
        let text = format!("{INVOKE}\r\n\n{OK}\n\n");
        let ops = read_history(text.as_bytes()).expect("valid");
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[1].index, 1);
    }

    #[test]
    fn an_index_gap_names_the_line() {
        let second = OK.replace("\"index\":1", "\"index\":2");
        assert_eq!(
            error_of(&format!("{INVOKE}\n{second}\n")),
            "line 2: index 2 out of sequence: expected 1 (indices count 0, 1, 2, ... without gaps)"
        );
    }

    #[test]
    fn time_going_back_is_rejected() {
        let second = OK.replace("\"time\":6", "\"time\":4");
        assert_eq!(
            error_of(&format!("{INVOKE}\n{second}\n")),
            "line 2: time 4 is before the previous event's time 5 (time never decreases)"
        );
    }

    #[test]
    fn a_completion_needs_a_pending_invoke_of_the_same_f() {
        assert_eq!(
            error_of(&OK.replace("\"index\":1", "\"index\":0")),
            "line 1: ok completion on process 1 without a pending invoke"
        );
        let send_ok = r#"{"index":1,"time":6,"type":"fail","process":1,"f":"send","value":[]}"#;
        assert_eq!(
            error_of(&format!("{INVOKE}\n{send_ok}\n")),
            "line 2: completion has f \"send\" but the pending invoke of process 1 (line 1) has f \"poll\""
        );
    }

    #[test]
    fn a_second_invoke_while_one_is_pending_is_rejected() {
        let again = INVOKE.replace("\"index\":0", "\"index\":1");
        assert_eq!(
            error_of(&format!("{INVOKE}\n{again}\n")),
            "line 2: invoke on process 1 while its invoke at line 1 (index 0) is still pending"
        );
    }

    #[test]
    fn a_process_never_invokes_again_after_info() {
        let info = OK.replace("\"ok\"", "\"info\"");
        let again = INVOKE
            .replace("\"index\":0", "\"index\":2")
            .replace("\"time\":5", "\"time\":7");
        assert_eq!(
            error_of(&format!("{INVOKE}\n{info}\n{again}\n")),
            "line 3: invoke on process 1, which completed with info at line 2 (after an info the client continues under a new process id)"
        );
    }

    const SEND_INVOKE: &str =
        r#"{"index":0,"time":1,"type":"invoke","process":1,"f":"send","value":[["send","k",7]]}"#;
    const SEND_OK: &str =
        r#"{"index":1,"time":2,"type":"ok","process":1,"f":"send","value":[["send","k",[0,7]]]}"#;

    #[test]
    fn a_value_in_an_invoke_and_its_completion_is_one_send() {
        let ops = read_history(format!("{SEND_INVOKE}\n{SEND_OK}\n").as_bytes()).expect("valid");
        assert_eq!(ops.len(), 2);
    }

    #[test]
    fn a_value_sent_twice_to_one_key_is_rejected() {
        let again = SEND_INVOKE
            .replace("\"index\":0", "\"index\":2")
            .replace("\"process\":1", "\"process\":2")
            .replace("\"time\":1", "\"time\":3");
        assert_eq!(
            error_of(&format!("{SEND_INVOKE}\n{SEND_OK}\n{again}\n")),
            "line 3: value 7 sent twice to key k (first on line 1)"
        );
        // The same value to another key is fine.
        let other_key = again.replace("\"k\"", "\"k2\"");
        assert!(
            read_history(format!("{SEND_INVOKE}\n{SEND_OK}\n{other_key}\n").as_bytes()).is_ok()
        );
        // Twice in one operation.
        let twice =
            SEND_INVOKE.replace(r#"[["send","k",7]]"#, r#"[["send","k",7],["send","k",7]]"#);
        assert_eq!(
            error_of(&twice),
            "line 1: value 7 sent twice to key k (first on line 1)"
        );
        let twice_in_completion = SEND_OK.replace(
            r#"[["send","k",[0,7]]]"#,
            r#"[["send","k",[0,7]],["send","k",[1,7]]]"#,
        );
        assert_eq!(
            error_of(&format!("{SEND_INVOKE}\n{twice_in_completion}\n")),
            "line 2: value 7 sent twice to key k (first on line 1)"
        );
    }

    #[test]
    fn an_overlong_line_is_rejected_before_it_is_read_whole() {
        let long = " ".repeat(super::MAX_LINE_BYTES + 10);
        assert_eq!(
            error_of(&format!("{INVOKE}\n{long}\n")),
            format!(
                "line 2: line is longer than {} bytes",
                super::MAX_LINE_BYTES
            )
        );
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_panic() {
        let mut bytes = INVOKE.as_bytes().to_vec();
        bytes.extend_from_slice(b"\n\xff\xfe\n");
        let error = read_history(bytes.as_slice()).expect_err("invalid UTF-8");
        assert_eq!(error.to_string(), "line 2: not valid UTF-8");
    }
}
