//! The two primitives every message uses: a bounds-checked reader over a body and a writer
//! that fills in a message's length word afterwards (and undoes a failed message).

use crate::error::ProtocolError;

/// Reads a message body field by field; each read checks bounds and names what is missing.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    message: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(body: &'a [u8], message: &'static str) -> Self {
        Reader {
            rest: body,
            message,
        }
    }

    fn truncated(&self, field: &'static str) -> ProtocolError {
        ProtocolError::Truncated {
            message: self.message,
            field,
        }
    }

    pub(crate) fn take(
        &mut self,
        n: usize,
        field: &'static str,
    ) -> Result<&'a [u8], ProtocolError> {
        if self.rest.len() < n {
            return Err(self.truncated(field));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ProtocolError> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ProtocolError> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, ProtocolError> {
        self.u32(field).map(|v| v as i32)
    }

    /// A NUL-terminated string, without its NUL.
    pub(crate) fn cstr(&mut self, field: &'static str) -> Result<&'a [u8], ProtocolError> {
        let end = memchr_nul(self.rest).ok_or_else(|| self.truncated(field))?;
        let s = &self.rest[..end];
        self.rest = &self.rest[end + 1..];
        Ok(s)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub(crate) fn finish(self) -> Result<(), ProtocolError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::TrailingBytes {
                message: self.message,
                count: self.rest.len(),
            })
        }
    }
}

pub(crate) fn memchr_nul(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == 0)
}

/// Appends one message: `tag` (none for the untyped initial packets), a length word filled
/// in at the end, and what `body` writes. A body that fails, or a message whose length word
/// would exceed `limit`, leaves `out` as it was.
pub(crate) fn write_message(
    out: &mut Vec<u8>,
    tag: Option<u8>,
    limit: u32,
    message: &'static str,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    let start = out.len();
    if let Some(tag) = tag {
        out.push(tag);
    }
    let length_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let result = body(out).and_then(|()| {
        let length = out.len() - length_at;
        match u32::try_from(length) {
            Ok(length) if length <= limit => Ok(length),
            _ => Err(ProtocolError::Unencodable {
                message,
                reason: "longer than PostgreSQL's limit for it",
            }),
        }
    });
    match result {
        Ok(length) => {
            out[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// Appends `s` and its NUL, refusing a NUL inside (it would end the string early on the
/// other side and shift every field after it).
pub(crate) fn put_cstr(
    out: &mut Vec<u8>,
    s: &[u8],
    message: &'static str,
) -> Result<(), ProtocolError> {
    if memchr_nul(s).is_some() {
        return Err(ProtocolError::Unencodable {
            message,
            reason: "a string contains a NUL byte",
        });
    }
    out.extend_from_slice(s);
    out.push(0);
    Ok(())
}
