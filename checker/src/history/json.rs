//! A JSON tree that keeps object members in the order written.
//!
//! `serde_json::Value` stores objects in a `BTreeMap` unless the `preserve_order`
//! feature is on, and turning that feature on would change every crate of the
//! workspace (features unify). The history format keeps poll keys in the order the
//! client wrote them, so the checker parses into this small tree instead. serde_json's
//! recursion limit still applies, so deep nesting is an error, not a stack overflow.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// One parsed JSON value. Integers are split by sign so that offsets (`u64`) and
/// values (`i64`) can both be taken without loss. Strings without escapes borrow from
/// the line: most of a history line is member names and keys, and allocating each
/// one would be most of the reading time.
#[derive(Debug)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    /// A negative integer.
    Negative(i64),
    /// A non-negative integer.
    Unsigned(u64),
    /// A number with a fraction or exponent (never valid in a history).
    Float,
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    /// Members in the order written; duplicates are kept for the caller to reject.
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl Json<'_> {
    /// A short name of the JSON type, for error messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Negative(_) | Json::Unsigned(_) => "an integer",
            Json::Float => "a number with a fraction or exponent",
            Json::Str(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

/// An object member name, borrowed when it has no escapes. (serde's own `Cow<str>`
/// always allocates.)
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(NameVisitor)
    }
}

struct NameVisitor;

impl<'de> Visitor<'de> for NameVisitor {
    type Value = Name<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Name<'de>, E> {
        Ok(Name(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Name<'de>, E> {
        Ok(Name(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Name<'de>, E> {
        Ok(Name(Cow::Owned(value)))
    }
}

struct JsonVisitor;

/// Caps the capacity reserved from a size hint, so a hostile hint cannot allocate.
const RESERVE_MAX: usize = 64;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Json<'de>, E> {
        Ok(match u64::try_from(value) {
            Ok(unsigned) => Json::Unsigned(unsigned),
            Err(_) => Json::Negative(value),
        })
    }

    fn visit_u64<E>(self, value: u64) -> Result<Json<'de>, E> {
        Ok(Json::Unsigned(value))
    }

    fn visit_f64<E>(self, _value: f64) -> Result<Json<'de>, E> {
        Ok(Json::Float)
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(value)))
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json<'de>, D::Error> {
        Json::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(RESERVE_MAX));
        while let Some(item) = seq.next_element::<Json<'de>>()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(RESERVE_MAX));
        while let Some((Name(name), value)) = map.next_entry::<Name<'de>, Json<'de>>()? {
            members.push((name, value));
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::Json;

    #[test]
    fn object_members_keep_their_written_order() {
        let parsed: Json = serde_json::from_str(r#"{"b":1,"a":-2,"c":[null,"x",1.5]}"#)
            .expect("valid JSON parses");
        let Json::Object(members) = parsed else {
            panic!("expected an object");
        };
        let names: Vec<&str> = members.iter().map(|(name, _)| name.as_ref()).collect();
        assert_eq!(names, ["b", "a", "c"]);
        assert!(matches!(members[1].1, Json::Negative(-2)));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(serde_json::from_str::<Json>(&deep).is_err());
    }
}
