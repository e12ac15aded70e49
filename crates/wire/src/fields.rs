//! The fields of an ErrorResponse or NoticeResponse: (code byte, string) pairs in order.

use crate::codec::{Reader, put_cstr};
use crate::error::ProtocolError;

/// Field codes of ErrorResponse and NoticeResponse ("Error and Notice Message Fields").
pub mod field {
    /// Severity, possibly localized (`S`).
    pub const SEVERITY: u8 = b'S';
    /// Severity, never localized (`V`, PostgreSQL 9.6 and later).
    pub const SEVERITY_NONLOCALIZED: u8 = b'V';
    /// The SQLSTATE code (`C`).
    pub const CODE: u8 = b'C';
    /// The primary message (`M`).
    pub const MESSAGE: u8 = b'M';
    /// Detail (`D`).
    pub const DETAIL: u8 = b'D';
    /// Hint (`H`).
    pub const HINT: u8 = b'H';
}

/// The fields of an ErrorResponse or NoticeResponse, in the order sent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fields<'a> {
    /// (code, NUL-terminated value) pairs then a NUL; checked when parsed.
    raw: &'a [u8],
}

impl<'a> Fields<'a> {
    pub(crate) fn parse_body(body: &'a [u8], message: &'static str) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(body, message);
        while r.u8("field terminator")? != 0 {
            r.cstr("field value")?;
        }
        r.finish()?;
        Ok(Fields { raw: body })
    }

    /// The fields as (code, value), in order.
    pub fn iter(&self) -> FieldIter<'a> {
        FieldIter { rest: self.raw }
    }

    /// The value of the first field with `code`.
    pub fn get(&self, code: u8) -> Option<&'a [u8]> {
        self.iter().find(|(c, _)| *c == code).map(|(_, v)| v)
    }

    /// The severity (ERROR, FATAL, PANIC, WARNING, NOTICE, ...): the non-localized field
    /// when present, otherwise the possibly localized one.
    pub fn severity(&self) -> Option<&'a [u8]> {
        self.get(field::SEVERITY_NONLOCALIZED)
            .or_else(|| self.get(field::SEVERITY))
    }

    /// The SQLSTATE code.
    pub fn code(&self) -> Option<&'a [u8]> {
        self.get(field::CODE)
    }

    /// The primary message.
    pub fn message(&self) -> Option<&'a [u8]> {
        self.get(field::MESSAGE)
    }
}

impl std::fmt::Debug for Fields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|(c, v)| format!("{}={}", c.escape_ascii(), v.escape_ascii())),
            )
            .finish()
    }
}

/// The iterator over [`Fields`].
#[derive(Clone, Debug)]
pub struct FieldIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for FieldIter<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        // Checked when parsed; a malformed rest just ends the iteration.
        let (&code, after) = self.rest.split_first()?;
        if code == 0 {
            return None;
        }
        let end = after.iter().position(|&b| b == 0)?;
        self.rest = &after[end + 1..];
        Some((code, &after[..end]))
    }
}

pub(crate) fn encode_fields(
    fields: &[(u8, &[u8])],
    message: &'static str,
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    for (code, value) in fields {
        if *code == 0 {
            return Err(ProtocolError::Unencodable {
                message,
                reason: "a field code is 0, the list's terminator",
            });
        }
        out.push(*code);
        put_cstr(out, value, message)?;
    }
    out.push(0);
    Ok(())
}
