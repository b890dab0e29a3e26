//! Parsing one history line into an [`Op`], with an error that says what is wrong.
//!
//! Structure is checked strictly (a field of the wrong type is an error, never a
//! default) because a checker that silently skips what it cannot read would pass
//! broken histories. Unknown fields are ignored so other tools may add their own, and an
//! optional field that is JSON `null` counts as absent.

use std::borrow::Cow;

use super::json::Json;
use super::{InputError, Mop, Op, OpType, OpValue, Value, F};

/// Parses one line (without its newline). `line_no` (1-based) only labels the error.
/// Well-formed lines take a fast path (`fast`); anything else, and every error, comes
/// from [`parse_reference`].
pub fn parse_line(line: &str, line_no: usize) -> Result<Op, InputError> {
    match super::fast::parse(line) {
        Some(op) => Ok(op),
        None => parse_reference(line, line_no),
    }
}

/// The reference parser: through a JSON tree, strict, naming what is wrong. The fast
/// path must agree with it on every line it accepts.
#[doc(hidden)]
pub fn parse_reference(line: &str, line_no: usize) -> Result<Op, InputError> {
    parse_op(line).map_err(|message| InputError {
        line: line_no,
        message,
    })
}

fn parse_op(line: &str) -> Result<Op, String> {
    let json: Json = serde_json::from_str(line).map_err(|error| describe_json_error(&error))?;
    let members = match json {
        Json::Object(members) => members,
        other => {
            return Err(format!(
                "expected a JSON object, found {}",
                other.type_name()
            ))
        }
    };
    let mut fields = Fields::new(members)?;
    let index = unsigned(fields.required("index")?, "field \"index\"")?;
    let time = unsigned(fields.required("time")?, "field \"time\"")?;
    let typ = named(fields.required("type")?, "type", OpType::from_name)?;
    let process = unsigned(fields.required("process")?, "field \"process\"")?;
    let f = named(fields.required("f")?, "f", F::from_name)?;
    let value = parse_op_value(f, fields.required("value")?)?;
    let mut op = Op::new(index, time, typ, process, f, value);
    op.error = fields.optional_string("error")?;
    op.group = fields.optional_string("group")?;
    op.generation = match fields.optional("generation") {
        None => None,
        Some(json) => Some(signed(json, "field \"generation\"")?),
    };
    op.member = fields.optional_string("member")?;
    op.rebalance_log = match fields.optional("rebalance_log") {
        None => None,
        Some(json) => Some(string_array(json, "field \"rebalance_log\"")?),
    };
    op.offsets = match fields.optional("offsets") {
        None => None,
        Some(json) => Some(offset_map(json, "field \"offsets\"")?),
    };
    op.seek_to_beginning = match fields.optional("seek_to_beginning") {
        None => false,
        Some(Json::Bool(flag)) => flag,
        Some(other) => {
            return Err(format!(
                "field \"seek_to_beginning\" must be a boolean, found {}",
                other.type_name()
            ))
        }
    };
    Ok(op)
}

/// serde_json says "expected value at line 1 column 5"; the line is ours to name, so
/// keep the column and the reason.
fn describe_json_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let reason = match text.rfind(" at line ") {
        Some(cut) => &text[..cut],
        None => text.as_str(),
    };
    format!("invalid JSON at column {}: {reason}", error.column())
}

/// The members of the line's object, taken out one by one.
struct Fields<'a> {
    members: Vec<(Cow<'a, str>, Json<'a>)>,
}

impl<'a> Fields<'a> {
    fn new(members: Vec<(Cow<'a, str>, Json<'a>)>) -> Result<Self, String> {
        if let Some(name) = first_duplicate(&members) {
            return Err(format!("duplicate field \"{name}\""));
        }
        Ok(Fields { members })
    }

    fn take(&mut self, name: &str) -> Option<Json<'a>> {
        let position = self
            .members
            .iter()
            .position(|(member, _)| member.as_ref() == name)?;
        Some(self.members.swap_remove(position).1)
    }

    fn required(&mut self, name: &str) -> Result<Json<'a>, String> {
        self.take(name)
            .ok_or_else(|| format!("expected field \"{name}\""))
    }

    /// A present field whose value is `null` counts as absent.
    fn optional(&mut self, name: &str) -> Option<Json<'a>> {
        match self.take(name) {
            None | Some(Json::Null) => None,
            Some(json) => Some(json),
        }
    }

    fn optional_string(&mut self, name: &str) -> Result<Option<String>, String> {
        match self.optional(name) {
            None => Ok(None),
            Some(json) => Ok(Some(string(json, &format!("field \"{name}\""))?)),
        }
    }
}

/// The first name that occurs twice, if any. Sorting keeps this O(n log n) even for a
/// hostile line with a huge object.
fn first_duplicate<'m>(members: &'m [(Cow<'_, str>, Json<'_>)]) -> Option<&'m str> {
    let mut names: Vec<&str> = members.iter().map(|(name, _)| name.as_ref()).collect();
    names.sort_unstable();
    names
        .windows(2)
        .find(|pair| pair[0] == pair[1])
        .map(|pair| pair[0])
}

fn named<T>(json: Json<'_>, field: &str, from_name: fn(&str) -> Option<T>) -> Result<T, String> {
    let Json::Str(name) = json else {
        return Err(format!(
            "field \"{field}\" must be a string, found {}",
            json.type_name()
        ));
    };
    from_name(name.as_ref())
        .ok_or_else(|| format!("field \"{field}\" has unknown value \"{name}\""))
}

fn unsigned(json: Json<'_>, what: &str) -> Result<u64, String> {
    match json {
        Json::Unsigned(number) => Ok(number),
        Json::Negative(number) => Err(format!("{what} must not be negative, found {number}")),
        other => Err(format!(
            "{what} must be a non-negative integer, found {}",
            other.type_name()
        )),
    }
}

fn signed(json: Json<'_>, what: &str) -> Result<i64, String> {
    match json {
        Json::Negative(number) => Ok(number),
        Json::Unsigned(number) => i64::try_from(number)
            .map_err(|_| format!("{what} is out of range for a 64-bit signed integer: {number}")),
        other => Err(format!(
            "{what} must be an integer, found {}",
            other.type_name()
        )),
    }
}

fn string(json: Json<'_>, what: &str) -> Result<String, String> {
    match json {
        Json::Str(text) => Ok(text.into_owned()),
        other => Err(format!(
            "{what} must be a string, found {}",
            other.type_name()
        )),
    }
}

fn array<'a>(json: Json<'a>, what: &str) -> Result<Vec<Json<'a>>, String> {
    match json {
        Json::Array(items) => Ok(items),
        other => Err(format!(
            "{what} must be an array, found {}",
            other.type_name()
        )),
    }
}

fn object<'a>(json: Json<'a>, what: &str) -> Result<Vec<(Cow<'a, str>, Json<'a>)>, String> {
    match json {
        Json::Object(members) => {
            if let Some(name) = first_duplicate(&members) {
                return Err(format!("{what} has the key \"{name}\" twice"));
            }
            Ok(members)
        }
        other => Err(format!(
            "{what} must be an object, found {}",
            other.type_name()
        )),
    }
}

fn string_array(json: Json<'_>, what: &str) -> Result<Vec<String>, String> {
    array(json, what)?
        .into_iter()
        .map(|item| string(item, &format!("every element of {what}")))
        .collect()
}

/// `{key: offset, ...}` in the order written.
fn offset_map(json: Json<'_>, what: &str) -> Result<Vec<(String, u64)>, String> {
    object(json, what)?
        .into_iter()
        .map(|(key, offset)| {
            let offset = unsigned(offset, &format!("{what}[\"{key}\"]"))?;
            Ok((key.into_owned(), offset))
        })
        .collect()
}

/// A record value: an integer that fits `i64`, or a string.
fn record_value(json: Json<'_>, what: &str) -> Result<Value, String> {
    match json {
        Json::Str(text) => Ok(Value::Str(text.into_owned())),
        Json::Negative(number) => Ok(Value::Int(number)),
        Json::Unsigned(number) => i64::try_from(number).map(Value::Int).map_err(|_| {
            format!("{what} {number} is out of range (values are 64-bit signed integers)")
        }),
        other => Err(format!(
            "{what} must be an integer or a string, found {}",
            other.type_name()
        )),
    }
}

/// The `value` field, whose shape `f` decides. `null` is accepted for every `f`.
fn parse_op_value(f: F, json: Json<'_>) -> Result<OpValue, String> {
    if let Json::Null = json {
        return Ok(OpValue::Null);
    }
    match f {
        F::Send | F::Poll | F::Txn => {
            let items = array(json, "field \"value\"")?;
            let mut mops = Vec::with_capacity(items.len());
            for (position, item) in items.into_iter().enumerate() {
                let mop = parse_mop(item).map_err(|message| {
                    format!("field \"value\", micro-op {position}: {message}")
                })?;
                check_mop_allowed(f, &mop, position)?;
                mops.push(mop);
            }
            Ok(OpValue::Mops(mops))
        }
        F::Assign | F::Subscribe => Ok(OpValue::Keys(string_array(json, "field \"value\"")?)),
        F::Commit => parse_commit(json),
        F::Crash => Err(format!(
            "field \"value\" of a crash must be null, found {}",
            json.type_name()
        )),
    }
}

/// `f: "send"` holds only sends and `f: "poll"` only polls (history.md); `txn` mixes.
fn check_mop_allowed(f: F, mop: &Mop, position: usize) -> Result<(), String> {
    let allowed = !matches!(
        (f, mop),
        (F::Send, Mop::Poll { .. }) | (F::Poll, Mop::Send { .. })
    );
    if allowed {
        Ok(())
    } else {
        let found = match mop {
            Mop::Send { .. } => "send",
            Mop::Poll { .. } => "poll",
        };
        Err(format!(
            "field \"value\", micro-op {position}: a {found} inside an operation with f \"{}\" (use f \"txn\" to mix sends and polls)",
            f.as_str()
        ))
    }
}

fn parse_mop(json: Json<'_>) -> Result<Mop, String> {
    let mut items = array(json, "a micro-op")?.into_iter();
    let name = match items.next() {
        Some(Json::Str(name)) => name,
        Some(other) => {
            return Err(format!(
                "a micro-op must start with \"send\" or \"poll\", found {}",
                other.type_name()
            ))
        }
        None => return Err("a micro-op must not be empty".to_owned()),
    };
    let rest: Vec<Json<'_>> = items.collect();
    match name.as_ref() {
        "send" => parse_send(rest),
        "poll" => parse_poll(rest),
        other => Err(format!(
            "unknown micro-op \"{other}\" (expected \"send\" or \"poll\")"
        )),
    }
}

/// `["send", key, value]` or `["send", key, [offset|null, value]]`.
fn parse_send(rest: Vec<Json<'_>>) -> Result<Mop, String> {
    let [key, payload]: [Json<'_>; 2] = rest.try_into().map_err(|rest: Vec<Json<'_>>| {
        format!(
            "a send must be [\"send\", key, value] or [\"send\", key, [offset, value]], found {} elements",
            rest.len() + 1
        )
    })?;
    let key = string(key, "the key of a send")?;
    let (offset, value) = match payload {
        Json::Array(pair) => {
            let [offset, value]: [Json<'_>; 2] =
                pair.try_into().map_err(|pair: Vec<Json<'_>>| {
                    format!(
                        "the [offset, value] of a send must have 2 elements, found {}",
                        pair.len()
                    )
                })?;
            let offset = match offset {
                Json::Null => None,
                other => Some(unsigned(other, "the offset of a send")?),
            };
            (offset, record_value(value, "the value of a send")?)
        }
        scalar => (None, record_value(scalar, "the value of a send")?),
    };
    Ok(Mop::Send { key, value, offset })
}

/// `["poll"]` or `["poll", {key: [[offset, value], ...], ...}]`.
fn parse_poll(rest: Vec<Json<'_>>) -> Result<Mop, String> {
    let mut rest = rest.into_iter();
    let Some(reads) = rest.next() else {
        return Ok(Mop::Poll { reads: None });
    };
    if rest.next().is_some() {
        return Err("a poll must be [\"poll\"] or [\"poll\", {key: records}]".to_owned());
    }
    let mut parsed = Vec::new();
    for (key, records) in object(reads, "the result of a poll")? {
        let what = format!("the records of \"{key}\"");
        let records = array(records, &what)?
            .into_iter()
            .map(|record| parse_record(record, &what))
            .collect::<Result<Vec<_>, String>>()?;
        parsed.push((key.into_owned(), records));
    }
    Ok(Mop::Poll {
        reads: Some(parsed),
    })
}

fn parse_record(record: Json<'_>, what: &str) -> Result<(u64, Value), String> {
    let pair = array(record, &format!("each of {what}"))?;
    let [offset, value]: [Json<'_>; 2] = pair.try_into().map_err(|pair: Vec<Json<'_>>| {
        format!(
            "each of {what} must be [offset, value], found {} elements",
            pair.len()
        )
    })?;
    let offset = unsigned(offset, &format!("an offset in {what}"))?;
    let value = record_value(value, &format!("a value in {what}"))?;
    Ok((offset, value))
}

/// `{"group": g, "offsets": {key: offset}}`.
fn parse_commit(json: Json<'_>) -> Result<OpValue, String> {
    let mut fields = Fields::new(object(json, "field \"value\" of a commit")?)?;
    let group = string(
        fields
            .take("group")
            .ok_or("field \"value\" of a commit needs \"group\"")?,
        "the group of a commit",
    )?;
    let offsets = offset_map(
        fields
            .take("offsets")
            .ok_or("field \"value\" of a commit needs \"offsets\"")?,
        "the offsets of a commit",
    )?;
    Ok(OpValue::Commit { group, offsets })
}

#[cfg(test)]
mod tests {
    use super::parse_line;
    use crate::history::{Mop, OpType, OpValue, Value, F};

    fn error_of(line: &str) -> String {
        match parse_line(line, 3) {
            Ok(op) => panic!("expected an error for {line}, parsed {op:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn the_documented_example_line_parses() {
        let op = parse_line(
            r#"{"index":7,"time":1250000,"type":"ok","process":3,"f":"send","value":[["send","orders-0",[41,"p3-17"]]]}"#,
            1,
        )
        .expect("the example from history.md is valid");
        assert_eq!(op.index, 7);
        assert_eq!(op.time, 1_250_000);
        assert_eq!(op.typ, OpType::Ok);
        assert_eq!(op.f, F::Send);
        assert_eq!(
            op.value,
            OpValue::Mops(vec![Mop::send_at("orders-0", 41, "p3-17")])
        );
    }

    #[test]
    fn null_offsets_and_invoke_forms_mean_unknown_offset() {
        let op = parse_line(
            r#"{"index":0,"time":0,"type":"info","process":1,"f":"send","value":[["send","k",[null,5]],["send","k",6]]}"#,
            1,
        )
        .expect("valid");
        assert_eq!(
            op.value,
            OpValue::Mops(vec![Mop::send("k", 5), Mop::send("k", 6)])
        );
    }

    #[test]
    fn poll_keys_keep_their_written_order() {
        let op = parse_line(
            r#"{"index":0,"time":0,"type":"ok","process":1,"f":"poll","value":[["poll",{"z":[[1,"a"]],"a":[]}]]}"#,
            1,
        )
        .expect("valid");
        assert_eq!(
            op.value,
            OpValue::Mops(vec![Mop::polled(vec![
                ("z".into(), vec![(1, Value::from("a"))]),
                ("a".into(), vec![]),
            ])])
        );
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        assert_eq!(
            error_of(r#"{"index":0,"time":0,"process":1,"f":"poll","value":null}"#),
            r#"line 3: expected field "type""#
        );
        assert_eq!(
            error_of(r#"{"index":-1,"time":0,"type":"ok","process":1,"f":"poll","value":null}"#),
            r#"line 3: field "index" must not be negative, found -1"#
        );
        assert_eq!(
            error_of(r#"{"index":0,"time":0,"type":"done","process":1,"f":"poll","value":null}"#),
            r#"line 3: field "type" has unknown value "done""#
        );
        assert_eq!(
            error_of(
                r#"{"index":0,"index":1,"time":0,"type":"ok","process":1,"f":"poll","value":null}"#
            ),
            r#"line 3: duplicate field "index""#
        );
        assert!(error_of(r#"{"index":0,"#).starts_with("line 3: invalid JSON at column"));
        assert_eq!(
            error_of("[1]"),
            "line 3: expected a JSON object, found an array"
        );
        assert!(error_of(
            r#"{"index":0,"time":0,"type":"ok","process":1,"f":"send","value":[["poll"]]}"#
        )
        .contains("a poll inside an operation with f \"send\""));
        assert!(error_of(
            r#"{"index":0,"time":0,"type":"ok","process":1,"f":"poll","value":[["poll",{"k":[[1]]}]]}"#
        )
        .contains("must be [offset, value]"));
        assert!(error_of(
            r#"{"index":0,"time":0,"type":"ok","process":1,"f":"send","value":[["send","k",1.5]]}"#
        )
        .contains("must be an integer or a string"));
    }

    #[test]
    fn unknown_fields_are_ignored_and_null_optionals_are_absent() {
        let op = parse_line(
            r#"{"index":0,"time":0,"type":"ok","process":1,"f":"crash","value":null,"error":null,"note":{"x":1}}"#,
            1,
        )
        .expect("valid");
        assert_eq!(op.error, None);
        assert_eq!(op.value, OpValue::Null);
    }
}
