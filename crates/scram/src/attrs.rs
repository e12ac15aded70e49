//! Reading SCRAM's `name=value,` attributes (RFC 5802 §5.1) without allocating.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::Malformed;

/// A cursor over a SCRAM message's attributes.
pub(crate) struct Attributes<'a> {
    message: &'a str,
    position: usize,
}

impl<'a> Attributes<'a> {
    /// Starts at the beginning of `message`, which must be UTF-8.
    pub(crate) fn new(message: &'a [u8]) -> Result<Attributes<'a>, Malformed> {
        let message = std::str::from_utf8(message).map_err(|_| Malformed::NotUtf8)?;
        if message.contains('\0') {
            return Err(Malformed::Nul);
        }
        Ok(Attributes {
            message,
            position: 0,
        })
    }

    /// The unread rest.
    pub(crate) fn rest(&self) -> &'a str {
        &self.message[self.position..]
    }

    /// Where the cursor is, as a byte offset into the message.
    pub(crate) fn position(&self) -> usize {
        self.position
    }

    /// The whole message.
    pub(crate) fn message(&self) -> &'a str {
        self.message
    }

    /// Whether everything was read.
    pub(crate) fn at_end(&self) -> bool {
        self.position == self.message.len()
    }

    /// Consumes `literal` if the rest starts with it.
    pub(crate) fn skip_literal(&mut self, literal: &str) -> bool {
        let found = self.rest().starts_with(literal);
        if found {
            self.position += literal.len();
        }
        found
    }

    /// The name of the next attribute, if one follows.
    pub(crate) fn peek_name(&self) -> Option<u8> {
        let rest = self.rest().as_bytes();
        (rest.len() >= 2 && rest[1] == b'=').then(|| rest[0])
    }

    /// Reads attribute `name` and its separator: the value up to the next `,` or the end.
    pub(crate) fn expect(&mut self, name: u8) -> Result<&'a str, Malformed> {
        match self.peek_name() {
            Some(found) if found == name => {}
            _ => return Err(Malformed::Expected(name as char)),
        }
        self.any().map(|(_, value)| value)
    }

    /// Reads whatever attribute comes next (an extension), as (name, value).
    pub(crate) fn any(&mut self) -> Result<(u8, &'a str), Malformed> {
        let name = self.peek_name().ok_or(Malformed::Attribute)?;
        if !name.is_ascii_alphabetic() {
            return Err(Malformed::Attribute);
        }
        let start = self.position + 2;
        let rest = &self.message[start..];
        let (value, consumed) = match rest.find(',') {
            Some(comma) => (&rest[..comma], comma + 1),
            None => (rest, rest.len()),
        };
        self.position = start + consumed;
        if consumed > value.len() && self.at_end() {
            return Err(Malformed::TrailingComma);
        }
        Ok((name, value))
    }
}

/// Base64 `text` decoded, refused before decoding when it would exceed `max` bytes.
pub(crate) fn decode(text: &str, name: char, max: usize) -> Result<Vec<u8>, Malformed> {
    if text.len() > max.div_ceil(3) * 4 {
        return Err(Malformed::Base64(name));
    }
    STANDARD.decode(text).map_err(|_| Malformed::Base64(name))
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_attributes_in_order() {
        let mut a = Attributes::new(b"r=abc,s=,i=4096").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.expect(b'r'), Ok("abc"));
        assert_eq!(a.peek_name(), Some(b's'));
        assert_eq!(a.expect(b's'), Ok(""));
        assert_eq!(a.expect(b'i'), Ok("4096"));
        assert!(a.at_end());
        assert_eq!(a.expect(b'x'), Err(Malformed::Expected('x')));
    }

    #[test]
    fn refuses_a_wrong_name_a_trailing_comma_and_bad_bytes() {
        let mut a = Attributes::new(b"r=abc").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.expect(b's'), Err(Malformed::Expected('s')));
        let mut a = Attributes::new(b"r=abc,").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.expect(b'r'), Err(Malformed::TrailingComma));
        let mut a = Attributes::new(b"1=x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.any(), Err(Malformed::Attribute));
        assert!(Attributes::new(b"r=\xff").is_err());
        assert!(Attributes::new(b"r=a\0").is_err());
    }
}
