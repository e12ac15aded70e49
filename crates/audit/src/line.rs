//! The byte format of one line: sealing a record with its hash, and taking a line apart.
//!
//! The hash covers the exact bytes of the object without its hash field, so checking a line
//! never depends on re-serializing it (which could differ between versions).

use jiff::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::record::{Entry, Record, SessionInfo, rfc3339};

/// The `prev` of the first record: 64 zeros, the hash of "nothing before".
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Length of a hex SHA-256.
const HEX_LEN: usize = 64;
/// What precedes the hash value at the end of every line.
const HASH_KEY: &[u8] = b",\"hash\":\"";
/// `,"hash":"` + 64 hex + `"}`: every record ends with exactly this many bytes of hash field.
const SUFFIX_LEN: usize = HASH_KEY.len() + HEX_LEN + 2;

/// The serialized shape without the hash; field order here is the on-disk order.
#[derive(Serialize)]
struct Unsealed<'a> {
    seq: u64,
    #[serde(with = "rfc3339")]
    ts: Timestamp,
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a SessionInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    intent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a serde_json::Value>,
    prev: &'a str,
}

/// Lowercase hex of a digest.
fn to_hex(digest: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(digest.len() * 2);
    for &byte in digest {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Serializes `record` as record number `seq` linked to `prev`; returns the full line
/// (ending in `\n`) and its hash.
pub(crate) fn seal(
    seq: u64,
    prev: &str,
    record: &Record,
) -> Result<(Vec<u8>, String), serde_json::Error> {
    let unsealed = Unsealed {
        seq,
        ts: record.ts,
        event: record.event.as_str(),
        target: record.target.as_deref(),
        rule: record.rule.as_deref(),
        reason: record.reason.as_deref(),
        session: record.session.as_ref(),
        result: record.result.as_deref(),
        intent: record.intent,
        detail: record.detail.as_ref(),
        prev,
    };
    let mut line = serde_json::to_vec(&unsealed)?;
    let hash = to_hex(&Sha256::digest(&line));
    // Replace the closing brace by the hash field, then close again.
    line.pop();
    line.reserve(SUFFIX_LEN + 1);
    line.extend_from_slice(HASH_KEY);
    line.extend_from_slice(hash.as_bytes());
    line.extend_from_slice(b"\"}\n");
    Ok((line, hash))
}

/// Splits a line (without `\n`) into the bytes before its hash field and the recorded hash,
/// if it ends with a well-formed hash field.
fn split_hash(line: &[u8]) -> Option<(&[u8], &str)> {
    let start = line.len().checked_sub(SUFFIX_LEN)?;
    let (head, suffix) = line.split_at(start);
    let rest = suffix.strip_prefix(HASH_KEY)?;
    let (hex, close) = rest.split_at(HEX_LEN);
    if close != b"\"}" || !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let hex = std::str::from_utf8(hex).ok()?;
    Some((head, hex))
}

/// The hash a line should carry: SHA-256 of the line's bytes before the hash field, closed.
fn content_hash(head: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(head);
    hasher.update(b"}");
    to_hex(&hasher.finalize())
}

/// Why a line is not a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Nothing on the line.
    Empty,
    /// The line does not end with a hash field: typically a write cut off by a crash.
    NoHash,
    /// The last line of the file has no `\n` and no hash field: a write cut off by a
    /// crash, or one in progress.
    Unterminated,
    /// The line is longer than any record we write.
    TooLong(u64),
    /// The line has a hash field but is not a valid record.
    Invalid(String),
}

impl Fault {
    /// A short reason, without a line number.
    pub(crate) fn reason(&self) -> String {
        match self {
            Fault::Empty => "the line is empty".into(),
            Fault::NoHash | Fault::Unterminated => "the line has no hash field".into(),
            Fault::TooLong(len) => format!("the line is {len} bytes long"),
            Fault::Invalid(why) => why.clone(),
        }
    }

    /// A sentence about line `line`.
    pub(crate) fn describe(&self, line: u64) -> String {
        match self {
            Fault::Empty => format!("line {line} is empty; every line must be a record."),
            Fault::NoHash => format!(
                "line {line} is incomplete: it does not end with a hash field (a write cut off by a crash, or text that is not an audit record)."
            ),
            Fault::Unterminated => format!(
                "line {line} is incomplete: the file ends in the middle of a record (a write cut off by a crash, or one still in progress)."
            ),
            Fault::TooLong(len) => {
                format!("line {line} is {len} bytes long, too long to be an audit record.")
            }
            Fault::Invalid(why) => format!("line {line} is not a valid audit record: {why}."),
        }
    }
}

/// A line that is a record.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) entry: Entry,
    /// Whether the recorded hash matches the line's content.
    pub(crate) intact: bool,
}

/// Parses one line (without its `\n`).
pub(crate) fn parse(line: &[u8]) -> Result<Parsed, Fault> {
    if line.is_empty() {
        return Err(Fault::Empty);
    }
    let (head, recorded) = split_hash(line).ok_or(Fault::NoHash)?;
    let entry: Entry =
        serde_json::from_slice(line).map_err(|e| Fault::Invalid(strip_position(&e)))?;
    // serde rejects duplicate keys, so the parsed hash is the suffix; check anyway so the
    // two views of a line can never disagree silently.
    if entry.hash != recorded {
        return Err(Fault::Invalid("its hash field is ambiguous".into()));
    }
    let intact = content_hash(head) == recorded;
    Ok(Parsed { entry, intact })
}

/// Parses a line as read from the file; `terminated` is false for a last line without `\n`.
pub(crate) fn parse_read(line: &[u8], terminated: bool) -> Result<Parsed, Fault> {
    match parse(line) {
        Err(Fault::NoHash) if !terminated => Err(Fault::Unterminated),
        other => other,
    }
}

/// The seq and hash of a damaged line, where still recognisable, so that verification can
/// relink after it instead of reporting every following record.
pub(crate) fn salvage(line: &[u8]) -> (Option<u64>, Option<String>) {
    let hash = split_hash(line).map(|(_, h)| h.to_owned());
    let seq = line.strip_prefix(b"{\"seq\":").and_then(|rest| {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
    });
    (seq, hash)
}

/// serde_json appends "at line 1 column N"; the column is useful, the line is not.
fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.find(" at line 1 column ") {
        Some(at) => format!("{} (column {})", &text[..at], err.column()),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    fn ts() -> Timestamp {
        "2026-11-23T15:00:00.123456Z".parse().unwrap()
    }

    #[test]
    fn seal_then_parse_round_trips() {
        let record = Record::new(ts(), Event::AgentStarted).with_reason("x\"hash\":\"y");
        let (line, hash) = seal(1, GENESIS, &record).unwrap();
        assert_eq!(line.last(), Some(&b'\n'));
        let parsed = parse(&line[..line.len() - 1]).unwrap();
        assert!(parsed.intact);
        assert_eq!(parsed.entry.hash, hash);
        assert_eq!(parsed.entry.seq, 1);
        assert_eq!(parsed.entry.reason.as_deref(), Some("x\"hash\":\"y"));
    }

    #[test]
    fn faults() {
        assert_eq!(parse(b"").unwrap_err(), Fault::Empty);
        assert_eq!(parse(b"{\"seq\":1,\"ts\"").unwrap_err(), Fault::NoHash);
        let fake = format!("{{\"seq\":1,\"hash\":\"{}\"}}", "a".repeat(64));
        assert!(matches!(parse(fake.as_bytes()), Err(Fault::Invalid(_))));
        assert_eq!(salvage(fake.as_bytes()), (Some(1), Some("a".repeat(64))));
    }
}
