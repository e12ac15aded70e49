//! Which statement each of the server's errors answered, for `[audit] include_statement`: a
//! `violations` rule's end may then quote the statements whose errors it counted. Off by
//! default, and then nothing here exists (a statement's text may hold data or a password).
//!
//! The server answers in the order the client sent, one ReadyForQuery per sync point (a
//! Query, a FunctionCall, a Sync): the texts sent wait in that order, and an error belongs to
//! the oldest one not yet answered, or, when every sync point is answered, to the extended
//! protocol's batch still being sent (the server answers Parse/Bind/Execute before their
//! Sync). A Bind names a prepared statement: its text is the one the client's Parse gave that
//! name, if the trail saw it (a bounded number are remembered).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// The longest text kept of one statement, in bytes (cut at a character boundary, marked).
pub(crate) const STATEMENT_BYTES: usize = 1024;

/// How many named prepared statements' texts are remembered (more: their text is unknown).
const PREPARED_AT_MOST: usize = 256;

/// How many sync points may wait for their answer before the oldest are forgotten (a
/// pipeline deeper than this loses the texts of its first statements, never the session).
const IN_FLIGHT_AT_MOST: usize = 4096;

/// Said instead of a text the trail did not see.
const UNKNOWN: &str = "(statement not seen by the gateway)";

/// One session's statements in flight (see the module).
#[derive(Debug, Default)]
pub(crate) struct StatementTrail {
    /// The client's frame being read: its type and its first bytes (after the length).
    reading: Option<(u8, Vec<u8>)>,
    /// The length bytes of the frame being read still to skip.
    skip: u8,
    /// Sync points sent and not answered yet: their statements, oldest first.
    in_flight: VecDeque<Arc<str>>,
    /// The extended protocol's batch being sent (before its Sync): its statement.
    batch: Option<Arc<str>>,
    /// The text of the unnamed prepared statement.
    unnamed: Option<Arc<str>>,
    /// Named prepared statements' texts.
    prepared: HashMap<Vec<u8>, Arc<str>>,
}

impl StatementTrail {
    /// A trail for a session that just logged in.
    pub(crate) fn new() -> StatementTrail {
        StatementTrail::default()
    }

    /// The client began a frame of type `tag`.
    pub(crate) fn client_started(&mut self, tag: u8) {
        self.reading = matches!(tag, b'Q' | b'P' | b'B' | b'F' | b'S').then(|| (tag, Vec::new()));
        self.skip = 4;
    }

    /// Bytes of the client's frame in progress (its length first, then its body).
    pub(crate) fn client_body(&mut self, mut bytes: &[u8]) {
        let Some((tag, kept)) = self.reading.as_mut() else {
            return;
        };
        let skipped = usize::from(self.skip).min(bytes.len());
        bytes = &bytes[skipped..];
        self.skip -= skipped as u8;
        // A Parse's or Bind's names come before the text: room for them too.
        let limit = match tag {
            b'Q' => STATEMENT_BYTES + 1,
            b'P' | b'B' => 2 * STATEMENT_BYTES,
            _ => 0,
        };
        let room = limit.saturating_sub(kept.len()).min(bytes.len());
        kept.extend_from_slice(&bytes[..room]);
    }

    /// The client's frame ended.
    pub(crate) fn client_ended(&mut self) {
        let Some((tag, body)) = self.reading.take() else {
            return;
        };
        match tag {
            b'Q' => self.sent(text(&body)),
            b'F' => self.sent(Arc::from("(a function call)")),
            b'S' => {
                let statement = self.batch.take().unwrap_or_else(|| Arc::from(UNKNOWN));
                self.sent(statement);
            }
            b'P' => {
                let mut parts = body.splitn(2, |&b| b == 0);
                let name = parts.next().unwrap_or_default();
                let statement = text(parts.next().unwrap_or_default());
                if name.is_empty() {
                    self.unnamed = Some(statement.clone());
                } else if self.prepared.len() < PREPARED_AT_MOST || self.prepared.contains_key(name)
                {
                    self.prepared.insert(name.to_vec(), statement.clone());
                }
                self.batch = Some(statement);
            }
            b'B' => {
                // The portal's name, then the statement's.
                let mut parts = body.split(|&b| b == 0);
                let _portal = parts.next();
                let name = parts.next().unwrap_or_default();
                let statement = if name.is_empty() {
                    self.unnamed.clone()
                } else {
                    self.prepared.get(name).cloned()
                };
                self.batch = Some(statement.unwrap_or_else(|| Arc::from(UNKNOWN)));
            }
            _ => {}
        }
    }

    fn sent(&mut self, statement: Arc<str>) {
        if self.in_flight.len() == IN_FLIGHT_AT_MOST {
            self.in_flight.pop_front();
        }
        self.in_flight.push_back(statement);
    }

    /// The statement the server's error answers (see the module).
    pub(crate) fn server_error(&self) -> Arc<str> {
        self.in_flight
            .front()
            .or(self.batch.as_ref())
            .cloned()
            .unwrap_or_else(|| Arc::from(UNKNOWN))
    }

    /// The server answered the oldest sync point (ReadyForQuery).
    pub(crate) fn server_ready(&mut self) {
        self.in_flight.pop_front();
    }
}

/// A statement's text from the bytes kept: up to its NUL, cut at [`STATEMENT_BYTES`] on a
/// character boundary and marked when cut; invalid UTF-8 replaced (the audit log is text).
fn text(bytes: &[u8]) -> Arc<str> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let whole = &bytes[..end];
    if whole.len() <= STATEMENT_BYTES {
        return Arc::from(String::from_utf8_lossy(whole).as_ref());
    }
    let lossy = String::from_utf8_lossy(&whole[..STATEMENT_BYTES]);
    let mut cut = lossy.len().min(STATEMENT_BYTES);
    while !lossy.is_char_boundary(cut) {
        cut -= 1;
    }
    Arc::from(format!("{}… (cut at {STATEMENT_BYTES} bytes)", &lossy[..cut]).as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(trail: &mut StatementTrail, tag: u8, body: &[u8]) {
        trail.client_started(tag);
        let len = u32::try_from(body.len() + 4).unwrap_or(0).to_be_bytes();
        // Split anywhere: byte by byte.
        for byte in len.iter().chain(body) {
            trail.client_body(std::slice::from_ref(byte));
        }
        trail.client_ended();
    }

    #[test]
    fn a_simple_query_error_is_its_query_and_the_next_is_the_next() {
        let mut trail = StatementTrail::new();
        frame(&mut trail, b'Q', b"SELECT * FROM pg_authid\0");
        frame(&mut trail, b'Q', b"SELECT 2\0");
        assert_eq!(&*trail.server_error(), "SELECT * FROM pg_authid");
        trail.server_ready();
        assert_eq!(&*trail.server_error(), "SELECT 2");
        trail.server_ready();
        assert_eq!(&*trail.server_error(), UNKNOWN);
    }

    #[test]
    fn extended_errors_name_the_parsed_or_bound_statement() {
        let mut trail = StatementTrail::new();
        // An error before the Sync: the batch being sent.
        frame(&mut trail, b'P', b"\0SELECT secret FROM t\0\0\0");
        frame(&mut trail, b'B', b"\0\0\0\0\0\0\0\0");
        assert_eq!(&*trail.server_error(), "SELECT secret FROM t");
        frame(&mut trail, b'S', b"");
        assert_eq!(&*trail.server_error(), "SELECT secret FROM t");
        trail.server_ready();
        // A named statement bound later, in a batch without a Parse.
        frame(&mut trail, b'P', b"s1\0DELETE FROM t\0\0\0");
        frame(&mut trail, b'S', b"");
        trail.server_ready();
        frame(&mut trail, b'B', b"\0s1\0\0\0\0\0\0\0");
        frame(&mut trail, b'S', b"");
        assert_eq!(&*trail.server_error(), "DELETE FROM t");
        trail.server_ready();
        frame(&mut trail, b'B', b"\0never_parsed\0\0\0\0\0\0\0");
        frame(&mut trail, b'S', b"");
        assert_eq!(&*trail.server_error(), UNKNOWN);
    }

    #[test]
    fn a_long_statement_is_cut_at_a_character_boundary_and_says_so() {
        let mut trail = StatementTrail::new();
        let mut long = "é".repeat(STATEMENT_BYTES).into_bytes();
        long.push(0);
        frame(&mut trail, b'Q', &long);
        let error = trail.server_error();
        assert!(
            error.ends_with(&format!("… (cut at {STATEMENT_BYTES} bytes)")),
            "{error}"
        );
        assert!(error.len() <= STATEMENT_BYTES + 40, "{}", error.len());
        assert!(error.starts_with("éé"));
    }

    #[test]
    fn other_frames_and_a_deep_pipeline_are_bounded() {
        let mut trail = StatementTrail::new();
        frame(&mut trail, b'd', &[7; 100]);
        assert!(trail.in_flight.is_empty() && trail.reading.is_none());
        for n in 0..IN_FLIGHT_AT_MOST + 10 {
            frame(&mut trail, b'Q', format!("SELECT {n}\0").as_bytes());
        }
        assert_eq!(trail.in_flight.len(), IN_FLIGHT_AT_MOST);
        assert_eq!(&*trail.server_error(), "SELECT 10");
    }
}
