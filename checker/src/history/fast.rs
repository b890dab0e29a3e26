//! The fast path of [`parse_line`](super::parse_line): a direct parser for well-formed
//! lines, with no intermediate JSON tree.
//!
//! Contract: `parse` returns `Some(op)` only for a line the reference parser
//! (`parse::parse_reference`) also accepts, with an equal `Op`; for anything else,
//! malformed or merely unusual (a float, an escape it does not handle, a very deep
//! unknown field), it returns `None` and the reference parser runs and names what is
//! wrong. So the fast path decides speed, never acceptance or error messages. A property
//! test (`tests/properties.rs`) checks the contract on arbitrary and mutated lines.
//!
//! It follows serde_json's grammar where the reference parser goes through serde_json:
//! whitespace between tokens, strings with escapes (a lone surrogate is an error), and
//! integers: non-negative ones up to `u64::MAX`, negative ones down to `i64::MIN`; `-0`,
//! fractions, exponents and anything larger are floats, which no field accepts; an
//! unknown field holding one goes to the reference parser (serde_json rejects some
//! floats, e.g. an exponent out of range).

use std::borrow::Cow;

use super::{Mop, Op, OpType, OpValue, PollReads, Value, F};

/// Unknown fields nested deeper than this go to the reference parser.
const SKIP_DEPTH_MAX: u32 = 64;
/// Maps with more keys than this are checked for duplicates by the reference parser.
const MAP_KEYS_MAX: usize = 64;

/// Parses a well-formed line; `None` means "let the reference parser decide".
pub(crate) fn parse(line: &str) -> Option<Op> {
    let mut parser = Parser {
        text: line,
        bytes: line.as_bytes(),
        at: 0,
    };
    let op = parser.op()?;
    parser.whitespace();
    (parser.at == parser.bytes.len()).then_some(op)
}

/// A JSON integer as serde_json reports it.
enum Integer {
    Unsigned(u64),
    Negative(i64),
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

/// The top-level fields, as bits of a "seen" mask (a duplicate is an error).
const FIELDS: [&str; 13] = [
    "index",
    "time",
    "type",
    "process",
    "f",
    "value",
    "error",
    "group",
    "generation",
    "member",
    "rebalance_log",
    "offsets",
    "seek_to_beginning",
];

impl<'a> Parser<'a> {
    fn whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.whitespace();
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.whitespace();
        let end = self.at.checked_add(word.len())?;
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// `null`, consumed, or nothing consumed.
    fn null(&mut self) -> Option<bool> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            Some(true)
        } else {
            Some(false)
        }
    }

    /// After an element of an array or object: `Some(true)` on a comma, `Some(false)`
    /// on the closing byte.
    fn more(&mut self, close: u8) -> Option<bool> {
        match self.peek()? {
            b',' => {
                self.at += 1;
                Some(true)
            }
            byte if byte == close => {
                self.at += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// Opens an array or object: `Some(true)` if it has elements.
    fn open(&mut self, open: u8, close: u8) -> Option<bool> {
        self.eat(open)?;
        if self.peek()? == close {
            self.at += 1;
            Some(false)
        } else {
            Some(true)
        }
    }

    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.at;
        loop {
            match *self.bytes.get(self.at)? {
                b'"' => {
                    let text = self.text.get(start..self.at)?;
                    self.at += 1;
                    return Some(Cow::Borrowed(text));
                }
                b'\\' => return self.escaped(start).map(Cow::Owned),
                0..=0x1f => return None,
                _ => self.at += 1,
            }
        }
    }

    /// The rest of a string with escapes, from its first byte at `start`.
    fn escaped(&mut self, start: usize) -> Option<String> {
        let mut text = String::from(self.text.get(start..self.at)?);
        loop {
            let run = self.at;
            while let Some(&byte) = self.bytes.get(self.at) {
                if byte == b'"' || byte == b'\\' || byte < 0x20 {
                    break;
                }
                self.at += 1;
            }
            text.push_str(self.text.get(run..self.at)?);
            match *self.bytes.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(text);
                }
                b'\\' => {
                    self.at += 1;
                    let escape = *self.bytes.get(self.at)?;
                    self.at += 1;
                    text.push(match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode()?,
                        _ => return None,
                    });
                }
                _ => return None,
            }
        }
    }

    /// The character of a `\u` escape (its `\u` consumed), pairing surrogates.
    fn unicode(&mut self) -> Option<char> {
        let first = self.hex4()?;
        match first {
            0xd800..=0xdbff => {
                self.literal_raw(b"\\u")?;
                let second = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&second) {
                    return None;
                }
                char::from_u32(0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00))
            }
            0xdc00..=0xdfff => None,
            _ => char::from_u32(first),
        }
    }

    /// `word` exactly here (no whitespace skipped: inside a string).
    fn literal_raw(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at.checked_add(word.len())?;
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.bytes.get(self.at..self.at.checked_add(4)?)?;
        let mut number = 0u32;
        for &digit in digits {
            number = number * 16 + char::from(digit).to_digit(16)?;
        }
        self.at += 4;
        Some(number)
    }

    fn integer(&mut self) -> Option<Integer> {
        self.whitespace();
        let negative = self.bytes.get(self.at) == Some(&b'-');
        if negative {
            self.at += 1;
        }
        let first = *self.bytes.get(self.at)?;
        if !first.is_ascii_digit() {
            return None;
        }
        let mut magnitude: u64 = 0;
        let mut digits = 0usize;
        while let Some(&digit) = self.bytes.get(self.at).filter(|byte| byte.is_ascii_digit()) {
            magnitude = magnitude
                .checked_mul(10)?
                .checked_add(u64::from(digit - b'0'))?;
            digits += 1;
            self.at += 1;
        }
        // "01" is not JSON; "1.0" and "1e3" are floats.
        if (first == b'0' && digits > 1)
            || matches!(self.bytes.get(self.at), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        if !negative {
            return Some(Integer::Unsigned(magnitude));
        }
        match magnitude {
            0 => None,
            magnitude if magnitude <= 1 << 63 => {
                Some(Integer::Negative((magnitude as i64).wrapping_neg()))
            }
            _ => None,
        }
    }

    fn unsigned(&mut self) -> Option<u64> {
        match self.integer()? {
            Integer::Unsigned(number) => Some(number),
            Integer::Negative(_) => None,
        }
    }

    fn record_value(&mut self) -> Option<Value> {
        if self.peek()? == b'"' {
            return Some(Value::Str(self.string()?.into_owned()));
        }
        match self.integer()? {
            Integer::Unsigned(number) => i64::try_from(number).ok().map(Value::Int),
            Integer::Negative(number) => Some(Value::Int(number)),
        }
    }

    /// Skips any JSON value (an unknown field), validating it as serde_json would.
    fn skip(&mut self, depth: u32) -> Option<()> {
        if depth > SKIP_DEPTH_MAX {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => {
                if self.open(b'{', b'}')? {
                    loop {
                        self.string()?;
                        self.eat(b':')?;
                        self.skip(depth + 1)?;
                        if !self.more(b'}')? {
                            break;
                        }
                    }
                }
                Some(())
            }
            b'[' => {
                if self.open(b'[', b']')? {
                    loop {
                        self.skip(depth + 1)?;
                        if !self.more(b']')? {
                            break;
                        }
                    }
                }
                Some(())
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            // Floats go to the reference parser: serde_json rejects some (an exponent
            // out of range), and no history field holds one.
            _ => self.integer().map(drop),
        }
    }

    fn optional_string(&mut self) -> Option<Option<String>> {
        if self.null()? {
            return Some(None);
        }
        Some(Some(self.string()?.into_owned()))
    }

    fn strings(&mut self) -> Option<Vec<String>> {
        let mut items = Vec::new();
        if self.open(b'[', b']')? {
            loop {
                items.push(self.string()?.into_owned());
                if !self.more(b']')? {
                    break;
                }
            }
        }
        Some(items)
    }

    /// `{key: offset, ...}`, keys unique.
    fn offset_map(&mut self) -> Option<Vec<(String, u64)>> {
        let mut offsets: Vec<(String, u64)> = Vec::new();
        if self.open(b'{', b'}')? {
            loop {
                let key = self.string()?;
                self.eat(b':')?;
                let offset = self.unsigned()?;
                if offsets.len() >= MAP_KEYS_MAX || offsets.iter().any(|(known, _)| *known == key) {
                    return None;
                }
                offsets.push((key.into_owned(), offset));
                if !self.more(b'}')? {
                    break;
                }
            }
        }
        Some(offsets)
    }

    fn op(&mut self) -> Option<Op> {
        let mut seen = 0u16;
        let mut unknown: Vec<Cow<'a, str>> = Vec::new();
        let (mut index, mut time, mut typ, mut process, mut f) = (None, None, None, None, None);
        let mut value: Option<OpValue> = None;
        let mut value_at: Option<usize> = None;
        let mut op = Op::new(0, 0, OpType::Invoke, 0, F::Crash, OpValue::Null);
        if !self.open(b'{', b'}')? {
            return None;
        }
        loop {
            let name = self.string()?;
            self.eat(b':')?;
            let Some(field) = FIELDS.iter().position(|known| *known == name) else {
                if unknown.contains(&name) {
                    return None;
                }
                unknown.push(name);
                self.skip(0)?;
                if !self.more(b'}')? {
                    break;
                }
                continue;
            };
            if seen & (1 << field) != 0 {
                return None;
            }
            seen |= 1 << field;
            match field {
                0 => index = Some(self.unsigned()?),
                1 => time = Some(self.unsigned()?),
                2 => typ = Some(OpType::from_name(&self.string()?)?),
                3 => process = Some(self.unsigned()?),
                4 => f = Some(F::from_name(&self.string()?)?),
                5 => match f {
                    Some(f) => value = Some(self.op_value(f)?),
                    None => {
                        self.whitespace();
                        value_at = Some(self.at);
                        self.skip(0)?;
                    }
                },
                6 => op.error = self.optional_string()?,
                7 => op.group = self.optional_string()?,
                8 => {
                    op.generation = match self.null()? {
                        true => None,
                        false => Some(match self.integer()? {
                            Integer::Unsigned(number) => i64::try_from(number).ok()?,
                            Integer::Negative(number) => number,
                        }),
                    }
                }
                9 => op.member = self.optional_string()?,
                10 => {
                    op.rebalance_log = if self.null()? {
                        None
                    } else {
                        Some(self.strings()?)
                    }
                }
                11 => {
                    op.offsets = if self.null()? {
                        None
                    } else {
                        Some(self.offset_map()?)
                    }
                }
                _ => {
                    op.seek_to_beginning = match self.peek()? {
                        b'n' => self.literal(b"null").map(|()| false)?,
                        b't' => self.literal(b"true").map(|()| true)?,
                        _ => self.literal(b"false").map(|()| false)?,
                    }
                }
            }
            if !self.more(b'}')? {
                break;
            }
        }
        let f = f?;
        if value.is_none() {
            let mut value_parser = Parser {
                text: self.text,
                bytes: self.bytes,
                at: value_at?,
            };
            value = Some(value_parser.op_value(f)?);
        }
        op.index = index?;
        op.time = time?;
        op.typ = typ?;
        op.process = process?;
        op.f = f;
        op.value = value?;
        Some(op)
    }

    fn op_value(&mut self, f: F) -> Option<OpValue> {
        if self.null()? {
            return Some(OpValue::Null);
        }
        match f {
            F::Send | F::Poll | F::Txn => {
                let mut mops = Vec::new();
                if self.open(b'[', b']')? {
                    loop {
                        let mop = self.mop()?;
                        match (f, &mop) {
                            (F::Send, Mop::Poll { .. }) | (F::Poll, Mop::Send { .. }) => {
                                return None
                            }
                            _ => mops.push(mop),
                        }
                        if !self.more(b']')? {
                            break;
                        }
                    }
                }
                Some(OpValue::Mops(mops))
            }
            F::Assign | F::Subscribe => Some(OpValue::Keys(self.strings()?)),
            F::Commit => self.commit(),
            F::Crash => None,
        }
    }

    fn mop(&mut self) -> Option<Mop> {
        self.eat(b'[')?;
        let name = self.string()?;
        match &*name {
            "send" => {
                self.eat(b',')?;
                let key = self.string()?.into_owned();
                self.eat(b',')?;
                let (offset, value) = if self.peek()? == b'[' {
                    self.at += 1;
                    let offset = if self.null()? {
                        None
                    } else {
                        Some(self.unsigned()?)
                    };
                    self.eat(b',')?;
                    let value = self.record_value()?;
                    self.eat(b']')?;
                    (offset, value)
                } else {
                    (None, self.record_value()?)
                };
                self.eat(b']')?;
                Some(Mop::Send { key, value, offset })
            }
            "poll" => {
                if self.more(b']')? {
                    let reads = self.poll_reads()?;
                    self.eat(b']')?;
                    Some(Mop::Poll { reads: Some(reads) })
                } else {
                    Some(Mop::Poll { reads: None })
                }
            }
            _ => None,
        }
    }

    /// `{key: [[offset, value], ...], ...}`, keys unique, in the order written.
    fn poll_reads(&mut self) -> Option<PollReads> {
        let mut reads: PollReads = Vec::new();
        if !self.open(b'{', b'}')? {
            return Some(reads);
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            if reads.len() >= MAP_KEYS_MAX || reads.iter().any(|(known, _)| *known == key) {
                return None;
            }
            let mut records = Vec::new();
            if self.open(b'[', b']')? {
                loop {
                    self.eat(b'[')?;
                    let offset = self.unsigned()?;
                    self.eat(b',')?;
                    let value = self.record_value()?;
                    self.eat(b']')?;
                    records.push((offset, value));
                    if !self.more(b']')? {
                        break;
                    }
                }
            }
            reads.push((key.into_owned(), records));
            if !self.more(b'}')? {
                break;
            }
        }
        Some(reads)
    }

    /// `{"group": g, "offsets": {key: offset}}`; other members are ignored.
    fn commit(&mut self) -> Option<OpValue> {
        let (mut group, mut offsets) = (None, None);
        let mut unknown: Vec<Cow<'a, str>> = Vec::new();
        if self.open(b'{', b'}')? {
            loop {
                let name = self.string()?;
                self.eat(b':')?;
                match &*name {
                    "group" if group.is_none() => group = Some(self.string()?.into_owned()),
                    "offsets" if offsets.is_none() => offsets = Some(self.offset_map()?),
                    "group" | "offsets" => return None,
                    _ => {
                        if unknown.contains(&name) {
                            return None;
                        }
                        unknown.push(name);
                        self.skip(0)?;
                    }
                }
                if !self.more(b'}')? {
                    break;
                }
            }
        }
        Some(OpValue::Commit {
            group: group?,
            offsets: offsets?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use crate::history::parse::parse_reference;

    /// The fast path accepts `line` and agrees with the reference parser.
    fn agrees(line: &str) {
        let fast = parse(line).unwrap_or_else(|| panic!("the fast path declined {line}"));
        let reference = parse_reference(line, 1).expect("the reference parser accepts it");
        assert_eq!(fast, reference, "{line}");
    }

    /// The fast path declines `line` (the reference parser decides).
    fn declines(line: &str) {
        assert!(parse(line).is_none(), "the fast path accepted {line}");
    }

    #[test]
    fn well_formed_lines_in_any_field_order_and_spacing_agree() {
        agrees(
            r#"{"index":7,"time":1250000,"type":"ok","process":3,"f":"send","value":[["send","orders-0",[41,"p3-17"]]]}"#,
        );
        agrees(
            r#"{ "value" : [ ["poll", {"k\u00e9\"y":[[1,-9223372036854775808],[2,"\ud83d\ude00"]]} ] ] , "f":"txn","process":1,"type":"info","time":0,"index":0, "note":{"deep":[15,null,true,{"x":[]}]}}"#,
        );
        agrees(
            r#"{"index":0,"time":0,"type":"ok","process":1,"f":"commit","value":{"offsets":{"a":1},"group":"g","extra":1},"generation":-3,"member":null,"seek_to_beginning":true}"#,
        );
        agrees(
            r#"{"index":0,"time":0,"type":"ok","process":1,"f":"assign","value":["a","b"],"group":"g","rebalance_log":["a"],"offsets":{"a":4,"b":0},"error":"E"}"#,
        );
        agrees(r#"{"index":0,"time":0,"type":"info","process":1,"f":"crash","value":null}"#);
    }

    #[test]
    fn anything_unusual_goes_to_the_reference_parser() {
        for line in [
            r#"{"index":0,"index":1,"time":0,"type":"ok","process":1,"f":"poll","value":null}"#,
            r#"{"index":-0,"time":0,"type":"ok","process":1,"f":"poll","value":null}"#,
            r#"{"index":01,"time":0,"type":"ok","process":1,"f":"poll","value":null}"#,
            r#"{"index":1.0,"time":0,"type":"ok","process":1,"f":"poll","value":null}"#,
            r#"{"index":18446744073709551616,"time":0,"type":"ok","process":1,"f":"poll","value":null}"#,
            r#"{"index":0,"time":0,"type":"ok","process":1,"f":"poll","value":[["poll",{"k":[],"k":[]}]]}"#,
            r#"{"index":0,"time":0,"type":"ok","process":1,"f":"send","value":[["poll"]]}"#,
            r#"{"index":0,"time":0,"type":"ok","process":1,"f":"send","value":[["send","k","\ud800"]]}"#,
            r#"{"index":0,"time":0,"type":"ok","process":1,"f":"crash","value":[]}"#,
            r#"{"index":0,"time":0,"type":"ok","process":1,"f":"poll","value":null} x"#,
            r#"{"index":0,"time":0,"type":"ok","process":1,"f":"poll","value":null,"x":1,"x":2}"#,
            r#"{"index":0,"time":0,"type":"ok","process":1,"f":"poll","value":null,"x":1e999}"#,
        ] {
            declines(line);
        }
    }
}
