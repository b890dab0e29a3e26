//! The history checker of logsim: the independent judge of a run.
//!
//! It reads only the client-visible history (`shared/design/history.md`, Jepsen's
//! `jepsen.tests.kafka` operation model in JSON Lines) and reports the anomalies of
//! Jepsen's Kafka workload (`shared/design/invariants.md`). It depends on neither `model`
//! nor `sim`: a checker that shared the broker's code would share its bugs.
//!
//! Driving contract: build or read a history ([`history::read_history`]), then call
//! [`check`] with the scenario's [`Policy`] (the anomaly kinds its configuration is
//! allowed to show). The [`Report`] lists every anomaly found, allowed ones included, so
//! a scenario can show a trade-off as well as catch a bug; [`Report::ok`] is false only
//! for anomalies the policy does not allow. The check is deterministic: the same
//! history gives the same report, byte for byte.

pub mod anomaly;
pub mod history;

mod analysis;
mod fxhash;
#[cfg(test)]
mod testkit;

use std::collections::BTreeSet;

pub use anomaly::KINDS;
pub use history::{
    parse_line, read_history, write_history, InputError, Mop, Op, OpType, OpValue, PollReads,
    Value, F,
};

/// How many anomalies of one kind on one key a report lists; the last one listed says
/// how many more there were. One broken partition should not bury the others.
pub const MAX_LISTED_PER_KIND_AND_KEY: usize = 5;

/// One violation found in a history, with the operations that prove it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Anomaly {
    /// The anomaly's name from `invariants.md`, e.g. `"lost-write"`.
    pub kind: String,
    /// The key (partition) it concerns, if any.
    pub key: Option<String>,
    /// One paragraph a reviewer can follow against the history file.
    pub detail: String,
    /// History `index` of the invokes and completions involved, ascending.
    pub ops: Vec<u64>,
    /// True when the policy allows this kind: listed, but not a failure.
    pub allowed: bool,
}

impl Anomaly {
    /// An anomaly of `kind` on `key`; `ops` are sorted and deduplicated here.
    pub(crate) fn new(kind: &str, key: &str, detail: String, mut ops: Vec<u64>) -> Self {
        ops.sort_unstable();
        ops.dedup();
        Anomaly {
            kind: kind.to_owned(),
            key: Some(key.to_owned()),
            detail,
            ops,
            allowed: false,
        }
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
    /// `{"ok":bool,"ops":N,"anomalies":[{"kind":..,"key":..,"detail":..,"ops":[..],"allowed":bool}]}`.
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
            let _ = write!(out, "],\"allowed\":{}}}", anomaly.allowed);
        }
        out.push_str("]}");
        out
    }
}

/// Checks a history for every anomaly kind in [`KINDS`]. Near-linear in the size of the
/// history; never panics, whatever the ops (even ones [`read_history`] would reject).
pub fn check(ops: &[Op], policy: &Policy) -> Report {
    let analysis = analysis::Analysis::build(ops);
    let mut anomalies = anomaly::detect_all(&analysis);
    for anomaly in &mut anomalies {
        anomaly.allowed = policy.allows(&anomaly.kind);
    }
    Report {
        ops: ops.len(),
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
    use super::{sort_and_cap, Anomaly, Policy, Report, MAX_LISTED_PER_KIND_AND_KEY};

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
        let mut lost = Anomaly::new("lost-write", "k \"0\"", "gone".into(), vec![2, 1]);
        lost.allowed = true;
        let report = Report {
            ops: 3,
            anomalies: vec![lost],
        };
        assert!(report.ok());
        assert_eq!(
            report.to_json_line(),
            r#"{"ok":true,"ops":3,"anomalies":[{"kind":"lost-write","key":"k \"0\"","detail":"gone","ops":[1,2],"allowed":true}]}"#
        );
        let parsed: serde_json::Value =
            serde_json::from_str(&report.to_json_line()).expect("the report is valid JSON");
        assert_eq!(parsed["anomalies"][0]["ops"][1], 2);
    }

    #[test]
    fn policy_allows_only_what_it_names() {
        let policy = Policy::default().allow("unseen");
        assert!(policy.allows("unseen"));
        assert!(!policy.allows("lost-write"));
    }
}
