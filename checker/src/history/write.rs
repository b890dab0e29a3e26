//! The byte-stable writer behind [`Op::to_json_line`](super::Op::to_json_line).
//!
//! Written by hand rather than through serde so the output depends on nothing but the
//! `Op`: field order, map order (the `Vec` order) and string escaping are fixed here.
//! Escaping matches serde_json's compact output, so either can read the other's lines.

use std::fmt::Write as _;

use super::{Mop, Op, OpValue, Value};

/// Appends `op` as one JSON object (no newline).
pub(crate) fn push_op(out: &mut String, op: &Op) {
    out.push_str("{\"index\":");
    push_u64(out, op.index);
    out.push_str(",\"time\":");
    push_u64(out, op.time);
    out.push_str(",\"type\":\"");
    out.push_str(op.typ.as_str());
    out.push_str("\",\"process\":");
    push_u64(out, op.process);
    out.push_str(",\"f\":\"");
    out.push_str(op.f.as_str());
    out.push_str("\",\"value\":");
    push_op_value(out, &op.value);
    push_optional_fields(out, op);
    out.push('}');
}

fn push_optional_fields(out: &mut String, op: &Op) {
    if let Some(error) = &op.error {
        out.push_str(",\"error\":");
        push_json_string(out, error);
    }
    if let Some(group) = &op.group {
        out.push_str(",\"group\":");
        push_json_string(out, group);
    }
    if let Some(generation) = op.generation {
        out.push_str(",\"generation\":");
        // Writing an integer into a String cannot fail.
        let _ = write!(out, "{generation}");
    }
    if let Some(member) = &op.member {
        out.push_str(",\"member\":");
        push_json_string(out, member);
    }
    if let Some(keys) = &op.rebalance_log {
        out.push_str(",\"rebalance_log\":");
        push_string_array(out, keys);
    }
    if let Some(offsets) = &op.offsets {
        out.push_str(",\"offsets\":");
        push_offset_map(out, offsets);
    }
    if op.seek_to_beginning {
        out.push_str(",\"seek_to_beginning\":true");
    }
}

fn push_op_value(out: &mut String, value: &OpValue) {
    match value {
        OpValue::Mops(mops) => {
            out.push('[');
            for (position, mop) in mops.iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                push_mop(out, mop);
            }
            out.push(']');
        }
        OpValue::Keys(keys) => push_string_array(out, keys),
        OpValue::Commit { group, offsets } => {
            out.push_str("{\"group\":");
            push_json_string(out, group);
            out.push_str(",\"offsets\":");
            push_offset_map(out, offsets);
            out.push('}');
        }
        OpValue::Null => out.push_str("null"),
    }
}

fn push_mop(out: &mut String, mop: &Mop) {
    match mop {
        Mop::Send { key, value, offset } => {
            out.push_str("[\"send\",");
            push_json_string(out, key);
            out.push(',');
            match offset {
                Some(offset) => {
                    out.push('[');
                    push_u64(out, *offset);
                    out.push(',');
                    push_value(out, value);
                    out.push(']');
                }
                None => push_value(out, value),
            }
            out.push(']');
        }
        Mop::Poll { reads: None } => out.push_str("[\"poll\"]"),
        Mop::Poll { reads: Some(reads) } => {
            out.push_str("[\"poll\",{");
            for (position, (key, records)) in reads.iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                push_json_string(out, key);
                out.push_str(":[");
                for (record_position, (offset, value)) in records.iter().enumerate() {
                    if record_position > 0 {
                        out.push(',');
                    }
                    out.push('[');
                    push_u64(out, *offset);
                    out.push(',');
                    push_value(out, value);
                    out.push(']');
                }
                out.push(']');
            }
            out.push_str("}]");
        }
    }
}

fn push_value(out: &mut String, value: &Value) {
    match value {
        Value::Int(number) => {
            let _ = write!(out, "{number}");
        }
        Value::Str(text) => push_json_string(out, text),
    }
}

fn push_u64(out: &mut String, number: u64) {
    let _ = write!(out, "{number}");
}

fn push_string_array(out: &mut String, items: &[String]) {
    out.push('[');
    for (position, item) in items.iter().enumerate() {
        if position > 0 {
            out.push(',');
        }
        push_json_string(out, item);
    }
    out.push(']');
}

fn push_offset_map(out: &mut String, offsets: &[(String, u64)]) {
    out.push('{');
    for (position, (key, offset)) in offsets.iter().enumerate() {
        if position > 0 {
            out.push(',');
        }
        push_json_string(out, key);
        out.push(':');
        push_u64(out, *offset);
    }
    out.push('}');
}

/// Appends `text` as a JSON string literal, escaped the way serde_json escapes:
/// `"` `\` and control characters; everything else verbatim (UTF-8).
pub(crate) fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            control if (control as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", control as u32);
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::push_json_string;
    use crate::history::{Mop, Op, OpType, OpValue, Value, F};

    #[test]
    fn the_documented_example_line_is_written_byte_for_byte() {
        let op = Op::new(
            7,
            1_250_000,
            OpType::Ok,
            3,
            F::Send,
            OpValue::Mops(vec![Mop::send_at("orders-0", 41, "p3-17")]),
        );
        assert_eq!(
            op.to_json_line(),
            r#"{"index":7,"time":1250000,"type":"ok","process":3,"f":"send","value":[["send","orders-0",[41,"p3-17"]]]}"#
        );
    }

    #[test]
    fn optional_fields_follow_in_fixed_order_only_when_present() {
        let mut op = Op::new(
            0,
            5,
            OpType::Ok,
            1,
            F::Assign,
            OpValue::Keys(vec!["a-0".into(), "a-1".into()]),
        );
        op.error = Some("NOT_LEADER_OR_FOLLOWER".into());
        op.group = Some("g".into());
        op.generation = Some(-1);
        op.member = Some("m1".into());
        op.rebalance_log = Some(vec!["a-1".into()]);
        op.offsets = Some(vec![("a-0".into(), 4)]);
        op.seek_to_beginning = true;
        assert_eq!(
            op.to_json_line(),
            concat!(
                r#"{"index":0,"time":5,"type":"ok","process":1,"f":"assign","value":["a-0","a-1"],"#,
                r#""error":"NOT_LEADER_OR_FOLLOWER","group":"g","generation":-1,"member":"m1","#,
                r#""rebalance_log":["a-1"],"offsets":{"a-0":4},"seek_to_beginning":true}"#
            )
        );
    }

    #[test]
    fn polls_commits_and_nulls_have_their_documented_shapes() {
        let poll = Op::new(
            1,
            2,
            OpType::Ok,
            4,
            F::Poll,
            OpValue::Mops(vec![Mop::polled(vec![
                ("k-1".into(), vec![(3, Value::Int(9)), (4, Value::Int(-10))]),
                ("k-0".into(), vec![]),
            ])]),
        );
        assert_eq!(
            poll.to_json_line(),
            r#"{"index":1,"time":2,"type":"ok","process":4,"f":"poll","value":[["poll",{"k-1":[[3,9],[4,-10]],"k-0":[]}]]}"#
        );
        let commit = Op::new(
            2,
            2,
            OpType::Invoke,
            4,
            F::Commit,
            OpValue::Commit {
                group: "g".into(),
                offsets: vec![("k-1".into(), 5)],
            },
        );
        assert!(commit
            .to_json_line()
            .ends_with(r#""value":{"group":"g","offsets":{"k-1":5}}}"#));
        let crash = Op::new(3, 2, OpType::Invoke, 4, F::Crash, OpValue::Null);
        assert!(crash
            .to_json_line()
            .ends_with(r#""f":"crash","value":null}"#));
    }

    #[test]
    fn strings_are_escaped_like_serde_json() {
        for text in [
            "plain",
            "quote\"back\\slash",
            "\n\r\t\u{8}\u{c}\u{1}\u{1f}",
            "ü€😀",
            "\u{7f}",
        ] {
            let mut ours = String::new();
            push_json_string(&mut ours, text);
            let theirs = serde_json::to_string(text).expect("strings serialize");
            assert_eq!(ours, theirs, "escaping of {text:?}");
        }
    }
}
