//! Reading detail fields as forgivingly as curfew's readers always have: a field that is
//! missing, `null` or of another type than expected reads as absent (or empty) instead of
//! failing the whole record, so records written by older versions stay readable.
//!
//! Each function reads the field's JSON value first and then converts it, the way the
//! report read `detail["key"]` before the details were typed.

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serializer};
use serde_json::Value;

/// A value as text: strings as they are; numbers, booleans, arrays and objects printed as
/// JSON; `null` absent.
pub(crate) fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Any value as text (see [`as_text`]).
pub(crate) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(as_text(&Value::deserialize(d)?))
}

/// Only a JSON string; anything else absent.
pub(crate) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

/// A JSON string, or empty.
pub(crate) fn string_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(string(d)?.unwrap_or_default())
}

/// A non-negative integer; anything else absent.
pub(crate) fn unsigned<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Value::deserialize(d)?.as_u64())
}

/// A count; anything else (or one too large for this machine) 0.
pub(crate) fn count<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    Ok(unsigned(d)?
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or_default())
}

/// An integer; anything else absent.
pub(crate) fn signed<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Value::deserialize(d)?.as_i64())
}

/// A JSON string holding an RFC 3339 time; anything else absent.
pub(crate) fn time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    Ok(string(d)?.and_then(|t| t.parse().ok()))
}

/// An array's elements as text, `null`s left out; not an array: empty.
pub(crate) fn texts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items.iter().filter_map(as_text).collect(),
        _ => Vec::new(),
    })
}

/// An array's elements; not an array: empty.
pub(crate) fn array<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items,
        _ => Vec::new(),
    })
}

/// Times are written as `Timestamp`'s `Display` prints them (RFC 3339 in UTC), as the agent
/// always wrote them with `to_string()`.
pub(crate) fn display_time<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(ts)
}

/// An optional time as [`display_time`], `null` when absent.
pub(crate) fn display_time_opt<S: Serializer>(
    ts: &Option<Timestamp>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match ts {
        Some(ts) => s.collect_str(ts),
        None => s.serialize_none(),
    }
}

/// A time written by [`display_time`], read strictly (a field every writer has set).
pub(crate) fn parse_time<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    use serde::de::Error as _;
    String::deserialize(d)?.parse().map_err(D::Error::custom)
}
