//! The history checker of logsim: the independent judge of a run.
//!
//! It reads only the client-visible history (`shared/design/history.md`, Jepsen's
//! `jepsen.tests.kafka` operation model in JSON Lines) and reports the anomalies of
//! `shared/design/invariants.md`: Jepsen's Kafka taxonomy (`inconsistent-offsets`,
//! `duplicate`, `lost-write`, `unseen`, `G1a`, `precommitted-read`, the poll and send
//! order anomalies and their `int-` forms, Elle's `G0` and `G1c` cycles), ours
//! (`realtime-send-order`, `torn-transaction`), and the exactly-once and
//! consumer-group anomalies (`eos-duplicate-output`, `eos-lost-output`,
//! `offset-regression`, `uncommitted-gap`, `redelivered`, `zombie-commit`,
//! `split-ownership`). Each anomaly module states its definition and source. It
//! depends on neither `model` nor `sim`: a checker that shared the broker's code would
//! share its bugs.
//!
//! Driving contract: build or read a history ([`history::read_history`]), then call
//! [`check`] with the scenario's [`Policy`] (the anomaly kinds its configuration is
//! allowed to show). The [`Report`] lists every anomaly found, allowed ones included, so
//! a scenario can show a trade-off as well as catch a bug; [`Report::ok`] is false only
//! for anomalies the policy does not allow. Kinds in [`INFORMATIONAL`] are always
//! allowed. Each [`Anomaly`] names its key, the offsets and values involved, the history
//! indices of the operations that prove it, and a paragraph a reviewer can follow. The
//! check is deterministic: the same history gives the same report, byte for byte; and
//! near-linear: one pass gathers the facts, each detector is a sweep or a sort.

pub mod anomaly;
pub mod history;

mod analysis;
mod fxhash;
#[cfg(test)]
mod testkit;

use std::collections::BTreeSet;

pub use anomaly::{INFORMATIONAL, KINDS};
pub use history::{
    parse_line, read_history, read_ops, write_history, InputError, Mop, Op, OpType, OpValue,
    PollReads, Value, F,
};

/// How many anomalies of one kind on one key a report lists; the last one listed says
/// how many more there were. One broken partition should not bury the others.
pub const MAX_LISTED_PER_KIND_AND_KEY: usize = 5;

/// One violation found in a history, with the operations that prove it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Anomaly {
    /// The anomaly's name from `invariants.md`, e.g. `"lost-write"`.
    pub kind: String,
    /// The key (partition) it concerns; `None` for anomalies that span keys (the
    /// dependency cycles `G0` and `G1c`), whose detail names every key involved.
    pub key: Option<String>,
    /// One paragraph a reviewer can follow against the history file.
    pub detail: String,
    /// History `index` of the invokes and completions involved, ascending.
    pub ops: Vec<u64>,
    /// The offsets of `key` the anomaly is about (e.g. where the lost values sat), in
    /// the order the detail names them; empty when no offset is known.
    pub offsets: Vec<u64>,
    /// The record values the anomaly is about, in the order the detail names them.
    pub values: Vec<Value>,
    /// True when the policy allows this kind (or the kind is informational, or the
    /// detector knows the case is legal, e.g. a poll skip of a subscribed consumer):
    /// listed, but not a failure.
    pub allowed: bool,
}

impl Anomaly {
    /// An anomaly of `kind` on `key`; `ops` are sorted and deduplicated here.
    pub(crate) fn new(kind: &str, key: &str, detail: String, ops: Vec<u64>) -> Self {
        let mut anomaly = Anomaly::spanning_keys(kind, detail, ops);
        anomaly.key = Some(key.to_owned());
        anomaly
    }

    /// An anomaly that concerns no single key (a dependency cycle).
    pub(crate) fn spanning_keys(kind: &str, detail: String, mut ops: Vec<u64>) -> Self {
        ops.sort_unstable();
        ops.dedup();
        Anomaly {
            kind: kind.to_owned(),
            key: None,
            detail,
            ops,
            offsets: Vec::new(),
            values: Vec::new(),
            allowed: false,
        }
    }

    /// This anomaly, naming the offsets and values it is about.
    pub(crate) fn at(mut self, offsets: Vec<u64>, values: Vec<Value>) -> Self {
        self.offsets = offsets;
        self.values = values;
        self
    }

    /// This anomaly, listed as allowed whatever the policy says (the detector knows
    /// the case is legal, e.g. a subscribed consumer's skip across a rebalance).
    pub(crate) fn allowed_always(mut self) -> Self {
        self.allowed = true;
        self
    }
}

/// Which anomaly kinds a scenario's configuration is allowed to show (e.g. `lost-write`
/// under `acks=1` with a leader crash). Empty by default: everything is a failure.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub allowed: BTreeSet<String>,
}

impl Policy {
    /// This policy, also allowing `kind`.
    pub fn allow(mut self, kind: impl Into<String>) -> Self {
        self.allowed.insert(kind.into());
        self
    }

    pub fn allows(&self, kind: &str) -> bool {
        self.allowed.contains(kind)
    }
}

/// The outcome of [`check`].
#[derive(Clone, Debug)]
pub struct Report {
    /// The number of history events (lines) checked.
    pub ops: usize,
    /// Every anomaly found, sorted by kind, key and ops.
    pub anomalies: Vec<Anomaly>,
}

impl Report {
    /// True when no anomaly is forbidden by the policy.
    pub fn ok(&self) -> bool {
        self.anomalies.iter().all(|anomaly| anomaly.allowed)
    }

    /// The report as one JSON line (no newline), the `checker --json` schema:
    /// `{"ok":bool,"ops":N,"anomalies":[{"kind":..,"key":..,"detail":..,"ops":[..],`
    /// `"offsets":[..],"values":[..],"allowed":bool}]}`.
    pub fn to_json_line(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(64 + 256 * self.anomalies.len());
        let _ = write!(
            out,
            "{{\"ok\":{},\"ops\":{},\"anomalies\":[",
            self.ok(),
            self.ops
        );
        for (position, anomaly) in self.anomalies.iter().enumerate() {
            if position > 0 {
                out.push(',');
            }
            out.push_str("{\"kind\":");
            history::push_json_string(&mut out, &anomaly.kind);
            out.push_str(",\"key\":");
            match &anomaly.key {
                Some(key) => history::push_json_string(&mut out, key),
                None => out.push_str("null"),
            }
            out.push_str(",\"detail\":");
            history::push_json_string(&mut out, &anomaly.detail);
            out.push_str(",\"ops\":[");
            for (op_position, op) in anomaly.ops.iter().enumerate() {
                if op_position > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{op}");
            }
            out.push_str("],\"offsets\":[");
            for (position, offset) in anomaly.offsets.iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{offset}");
            }
            out.push_str("],\"values\":[");
            for (position, value) in anomaly.values.iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{value}");
            }
            let _ = write!(out, "],\"allowed\":{}}}", anomaly.allowed);
        }
        out.push_str("]}");
        out
    }
}

/// Checks a history for every anomaly kind in [`KINDS`]. Near-linear in the size of the
/// history; never panics, whatever the ops (even ones [`read_history`] would reject).
/// Kinds in [`INFORMATIONAL`] are always listed as allowed.
pub fn check(ops: &[Op], policy: &Policy) -> Report {
    report(&analysis::Analysis::build(ops), ops.len(), policy)
}

/// Reads a history ([`read_ops`]: the same validation as [`read_history`]) and checks
/// it as it goes, without keeping the ops: memory grows with the facts the check needs
/// (the distinct values, the reads, the operations that write), not with the text.
/// The report is the one [`check`] gives for the same history.
pub fn check_reader<R: std::io::BufRead>(reader: R, policy: &Policy) -> Result<Report, InputError> {
    let mut builder = analysis::Builder::new();
    let mut position = 0usize;
    let count = read_ops(reader, |op| {
        builder.record_owned(op, position);
        position += 1;
    })?;
    Ok(report(&builder.finish(&[]), count, policy))
}

fn report(analysis: &analysis::Analysis, ops: usize, policy: &Policy) -> Report {
    let mut anomalies = anomaly::detect_all(analysis);
    for anomaly in &mut anomalies {
        anomaly.allowed = anomaly.allowed
            || policy.allows(&anomaly.kind)
            || INFORMATIONAL.contains(&anomaly.kind.as_str());
    }
    Report {
        ops,
        anomalies: sort_and_cap(anomalies),
    }
}

/// Sorts by (kind, key, ops) and keeps the first [`MAX_LISTED_PER_KIND_AND_KEY`] of each
/// (kind, key), noting the rest in the last one kept.
fn sort_and_cap(mut anomalies: Vec<Anomaly>) -> Vec<Anomaly> {
    anomalies.sort_by(|a, b| {
        (&a.kind, &a.key, &a.ops, &a.detail).cmp(&(&b.kind, &b.key, &b.ops, &b.detail))
    });
    let mut kept: Vec<Anomaly> = Vec::with_capacity(anomalies.len());
    let mut start = 0;
    while start < anomalies.len() {
        let group = anomalies[start..]
            .iter()
            .take_while(|anomaly| {
                anomaly.kind == anomalies[start].kind && anomaly.key == anomalies[start].key
            })
            .count();
        let listed = group.min(MAX_LISTED_PER_KIND_AND_KEY);
        kept.extend(anomalies[start..start + listed].iter().cloned());
        if group > listed {
            if let Some(last) = kept.last_mut() {
                let key = last.key.clone().unwrap_or_default();
                last.detail.push_str(&format!(
                    " ({} more {} anomalies on {key} are not listed.)",
                    group - listed,
                    last.kind
                ));
            }
        }
        start += group;
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::{sort_and_cap, Anomaly, Policy, Report, Value, MAX_LISTED_PER_KIND_AND_KEY};

    #[test]
    fn reports_are_capped_per_kind_and_key_with_a_count() {
        let anomalies: Vec<Anomaly> = (0..8)
            .rev()
            .map(|op| Anomaly::new("poll-skip", "k-0", format!("skip {op}"), vec![op]))
            .chain([Anomaly::new(
                "duplicate",
                "k-1",
                "dup".into(),
                vec![3, 1, 3],
            )])
            .collect();
        let kept = sort_and_cap(anomalies);
        assert_eq!(kept.len(), MAX_LISTED_PER_KIND_AND_KEY + 1);
        assert_eq!(kept[0].kind, "duplicate");
        assert_eq!(kept[0].ops, [1, 3]);
        assert_eq!(kept[1].ops, [0]);
        assert!(kept[5]
            .detail
            .ends_with("(3 more poll-skip anomalies on k-0 are not listed.)"));
    }

    #[test]
    fn the_json_line_has_the_cli_schema() {
        let mut lost = Anomaly::new("lost-write", "k \"0\"", "gone".into(), vec![2, 1])
            .at(vec![7], vec![Value::Int(3), Value::from("s")]);
        lost.allowed = true;
        let report = Report {
            ops: 3,
            anomalies: vec![lost],
        };
        assert!(report.ok());
        assert_eq!(
            report.to_json_line(),
            r#"{"ok":true,"ops":3,"anomalies":[{"kind":"lost-write","key":"k \"0\"","detail":"gone","ops":[1,2],"offsets":[7],"values":[3,"s"],"allowed":true}]}"#
        );
        let parsed: serde_json::Value =
            serde_json::from_str(&report.to_json_line()).expect("the report is valid JSON");
        assert_eq!(parsed["anomalies"][0]["ops"][1], 2);
    }

    #[test]
    fn a_streamed_check_judges_pending_invokes_like_the_whole_history() {
        use crate::testkit::History;
        use crate::{check, check_reader, write_history, OpType};
        let mut history = History::new();
        history.send(2, OpType::Ok, "k-0", 11, Some(1));
        // Invoked after 11 was acknowledged at offset 1, never completed, yet read
        // at offset 0: it happened, below an earlier acknowledgement.
        let invoke = history.invoke_send(1, "k-0", 10);
        history.poll_ok(3, "k-0", &[(0, 10), (1, 11)]);
        let whole = history.check();
        assert_eq!(
            whole.summary(),
            vec![("realtime-send-order", "k-0", vec![1, invoke])],
            "{whole:?}"
        );
        let mut text = Vec::new();
        write_history(&mut text, history.ops_mut()).expect("written");
        let streamed = check_reader(text.as_slice(), &Policy::default()).expect("valid");
        assert_eq!(streamed.anomalies, whole.anomalies);
        assert_eq!(
            streamed.ops,
            check(history.ops_mut(), &Policy::default()).ops
        );
    }

    #[test]
    fn policy_allows_only_what_it_names() {
        let policy = Policy::default().allow("unseen");
        assert!(policy.allows("unseen"));
        assert!(!policy.allows("lost-write"));
    }
}
