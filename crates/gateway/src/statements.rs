//! Which statement each of the server's errors answered, for `[audit] include_statement`: a
//! `violations` rule's end may then quote the statements whose errors it counted. Off by
//! default, and then nothing here exists (a statement's text may hold data or a password).
//!
//! The server answers in the order the client sent, one ReadyForQuery per sync point (a
//! Query, a FunctionCall, a Sync): the sync points sent wait in that order, and an error
//! belongs to the oldest one not yet answered, or, when every sync point is answered, to the
//! extended protocol's batch still being sent (the server answers Parse/Bind/Execute before
//! their Sync). Within a batch, each Execute's end (CommandComplete, EmptyQueryResponse,
//! PortalSuspended) moves the error's owner to the next Execute; a Bind names a prepared
//! statement, whose text is the one the client's Parse gave that name (a bounded number are
//! remembered; Close forgets one). This is attribution by message order as the gateway saw
//! it: exact for a client that follows the protocol, but a client that breaks its order (a
//! Query inside an unfinished batch, a Sync during COPY) can shift it, so the record says so.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// The longest text kept of one statement, in bytes (cut at a character boundary, marked).
pub(crate) const STATEMENT_BYTES: usize = 1024;

/// How many named prepared statements' texts are remembered (more: their text is unknown).
const PREPARED_AT_MOST: usize = 64;

/// How many sync points may wait for their answer before the oldest are forgotten (a deeper
/// pipeline loses the texts of its first statements, never the session).
const IN_FLIGHT_AT_MOST: usize = 64;

/// How many Executes of one batch keep their text.
const EXECUTES_AT_MOST: usize = 16;

/// Said instead of a text the trail does not know.
pub(crate) const UNKNOWN: &str =
    "(statement not known to the gateway: not seen, or no longer remembered)";

/// One sync point's statements, in the order the server runs them.
#[derive(Debug, Default)]
struct SyncPoint {
    /// A Query's text, or a batch's Executes' statements.
    texts: Vec<Arc<str>>,
    /// A batch (extended protocol): its Executes' ends move the owner of an error.
    extended: bool,
    /// The batch's Executes ended so far.
    done: usize,
    /// The text of the batch's last Parse (for an error of a batch without an Execute).
    parsed: Option<Arc<str>>,
}

impl SyncPoint {
    fn owner(&self) -> Arc<str> {
        self.texts
            .get(self.done)
            .or(self.texts.last())
            .or(self.parsed.as_ref())
            .cloned()
            .unwrap_or_else(|| Arc::from(UNKNOWN))
    }
}

/// One session's statements in flight (see the module).
#[derive(Debug, Default)]
pub(crate) struct StatementTrail {
    /// The client's frame being read: its type and its first bytes (after the length).
    reading: Option<(u8, Vec<u8>)>,
    /// The length bytes of the frame being read still to skip.
    skip: usize,
    /// Sync points sent and not answered yet, oldest first.
    in_flight: VecDeque<SyncPoint>,
    /// The extended protocol's batch being sent (before its Sync).
    batch: SyncPoint,
    /// The statement the last Bind named (what the next Execute runs).
    bound: Option<Arc<str>>,
    /// The text of the unnamed prepared statement.
    unnamed: Option<Arc<str>>,
    /// Named prepared statements' texts.
    prepared: HashMap<Vec<u8>, Arc<str>>,
    /// Parse/Bind/Execute sent since the last Sync (a Query or FunctionCall then may be
    /// discarded by the server, unanswered: not a sync point, as the session's state has it).
    open_batch: bool,
    /// Syncs sent since the last Query or Execute (ignored by the server during a COPY FROM
    /// STDIN: dropped again at its CopyDone or CopyFail).
    syncs_in_command: usize,
}

impl StatementTrail {
    /// A trail for a session that just logged in.
    pub(crate) fn new() -> StatementTrail {
        StatementTrail::default()
    }

    /// The client began a frame of type `tag`.
    pub(crate) fn client_started(&mut self, tag: u8) {
        self.reading = matches!(
            tag,
            b'Q' | b'P' | b'B' | b'E' | b'F' | b'S' | b'C' | b'c' | b'f'
        )
        .then(|| (tag, Vec::new()));
        self.skip = 4;
    }

    /// Bytes of the client's frame in progress (its length first, then its body).
    pub(crate) fn client_body(&mut self, mut bytes: &[u8]) {
        let Some((tag, kept)) = self.reading.as_mut() else {
            return;
        };
        let skipped = self.skip.min(bytes.len());
        bytes = &bytes[skipped..];
        self.skip -= skipped;
        // A Parse's or Bind's names come before the text: room for them too.
        let limit = match tag {
            b'Q' => STATEMENT_BYTES + 1,
            b'P' | b'B' | b'C' => 2 * STATEMENT_BYTES,
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
            // Inside an open batch: maybe discarded, no sync point (see `open_batch`).
            b'Q' if self.open_batch => self.syncs_in_command = 0,
            b'F' if self.open_batch => {}
            b'Q' => {
                self.syncs_in_command = 0;
                self.sent(SyncPoint {
                    texts: vec![text(&body)],
                    ..SyncPoint::default()
                });
            }
            b'F' => self.sent(SyncPoint {
                texts: vec![Arc::from("(a function call)")],
                ..SyncPoint::default()
            }),
            b'S' => {
                let mut batch = std::mem::take(&mut self.batch);
                batch.extended = true;
                self.open_batch = false;
                self.syncs_in_command += 1;
                self.sent(batch);
            }
            b'c' | b'f' => {
                for _ in 0..std::mem::take(&mut self.syncs_in_command) {
                    self.in_flight.pop_back();
                }
            }
            b'P' => {
                let (name, rest) = cstr(&body);
                let statement = match rest {
                    Some(rest) => text(rest),
                    None => Arc::from(UNKNOWN),
                };
                match name {
                    Some([]) => self.unnamed = Some(statement.clone()),
                    Some(name)
                        if self.prepared.len() < PREPARED_AT_MOST
                            || self.prepared.contains_key(name) =>
                    {
                        self.prepared.insert(name.to_vec(), statement.clone());
                    }
                    Some(_) | None => {}
                }
                self.batch.extended = true;
                self.open_batch = true;
                self.batch.parsed = Some(statement);
            }
            b'B' => {
                // The portal's name, then the statement's.
                let statement = match cstr(&body) {
                    (Some(_portal), Some(rest)) => match cstr(rest).0 {
                        Some([]) => self.unnamed.clone(),
                        Some(name) => self.prepared.get(name).cloned(),
                        None => None,
                    },
                    _ => None,
                };
                self.batch.extended = true;
                self.open_batch = true;
                self.bound = Some(statement.unwrap_or_else(|| Arc::from(UNKNOWN)));
            }
            b'E' => {
                self.batch.extended = true;
                self.open_batch = true;
                self.syncs_in_command = 0;
                if self.batch.texts.len() < EXECUTES_AT_MOST {
                    let statement = self.bound.clone().unwrap_or_else(|| Arc::from(UNKNOWN));
                    self.batch.texts.push(statement);
                }
            }
            b'C' => {
                // Close of a statement ('S') forgets its text; of a portal ('P'), nothing.
                if let Some((&b'S', rest)) = body.split_first()
                    && let Some(name) = cstr(rest).0
                {
                    self.prepared.remove(name);
                }
            }
            _ => {}
        }
    }

    fn sent(&mut self, point: SyncPoint) {
        if self.in_flight.len() == IN_FLIGHT_AT_MOST {
            self.in_flight.pop_front();
        }
        self.in_flight.push_back(point);
    }

    /// The server's frame of type `tag` ended: an Execute's end moves a batch's error owner.
    pub(crate) fn server_frame(&mut self, tag: u8) {
        if !matches!(tag, b'C' | b'I' | b's') {
            return;
        }
        let point = match self.in_flight.front_mut() {
            Some(point) => point,
            None => &mut self.batch,
        };
        if point.extended {
            point.done += 1;
        }
    }

    /// The statement the server's error answers (see the module).
    pub(crate) fn server_error(&self) -> Arc<str> {
        self.in_flight.front().unwrap_or(&self.batch).owner()
    }

    /// The server answered the oldest sync point (ReadyForQuery).
    pub(crate) fn server_ready(&mut self) {
        self.in_flight.pop_front();
    }
}

/// `bytes` up to its first NUL, and what follows the NUL (None: no NUL in what was kept).
fn cstr(bytes: &[u8]) -> (Option<&[u8]>, Option<&[u8]>) {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => (Some(&bytes[..end]), Some(&bytes[end + 1..])),
        None => (None, None),
    }
}

/// A statement's text from the bytes kept: up to its NUL, cut at [`STATEMENT_BYTES`] on a
/// character boundary and marked when longer or when its NUL was not kept (the frame was
/// longer than what is kept); invalid UTF-8 replaced (the audit log is text).
fn text(bytes: &[u8]) -> Arc<str> {
    let (whole, complete) = match bytes.iter().position(|&b| b == 0) {
        Some(end) => (&bytes[..end], true),
        None => (bytes, false),
    };
    if complete && whole.len() <= STATEMENT_BYTES {
        return Arc::from(String::from_utf8_lossy(whole).as_ref());
    }
    let lossy = String::from_utf8_lossy(&whole[..whole.len().min(STATEMENT_BYTES)]);
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
        frame(&mut trail, b'E', b"\0\0\0\0\0");
        frame(&mut trail, b'S', b"");
        assert_eq!(&*trail.server_error(), "DELETE FROM t");
        trail.server_ready();
        frame(&mut trail, b'B', b"\0never_parsed\0\0\0\0\0\0\0");
        frame(&mut trail, b'E', b"\0\0\0\0\0");
        frame(&mut trail, b'S', b"");
        assert_eq!(&*trail.server_error(), UNKNOWN);
        trail.server_ready();
        // Closed: forgotten.
        frame(&mut trail, b'C', b"Ss1\0");
        frame(&mut trail, b'B', b"\0s1\0\0\0\0\0\0\0");
        frame(&mut trail, b'E', b"\0\0\0\0\0");
        frame(&mut trail, b'S', b"");
        assert_eq!(&*trail.server_error(), UNKNOWN);
    }

    #[test]
    fn in_a_batch_of_several_executes_the_error_is_the_one_running() {
        let mut trail = StatementTrail::new();
        for sql in ["SELECT 1", "SELECT secret FROM t", "SELECT 3"] {
            frame(&mut trail, b'P', format!("\0{sql}\0\0\0").as_bytes());
            frame(&mut trail, b'B', b"\0\0\0\0\0\0\0\0");
            frame(&mut trail, b'E', b"\0\0\0\0\0");
        }
        frame(&mut trail, b'S', b"");
        // ParseComplete, BindComplete, the first Execute's CommandComplete, then the error.
        for tag in [b'1', b'2', b'C', b'1', b'2'] {
            trail.server_frame(tag);
        }
        assert_eq!(&*trail.server_error(), "SELECT secret FROM t");
        trail.server_ready();
        assert_eq!(&*trail.server_error(), UNKNOWN);
    }

    #[test]
    fn a_discarded_query_and_syncs_during_copy_do_not_shift_later_errors() {
        let mut trail = StatementTrail::new();
        // A Query inside a batch: the server may discard it; it is no sync point.
        frame(&mut trail, b'P', b"\0SELECT 1/0\0\0\0");
        frame(&mut trail, b'B', b"\0\0\0\0\0\0\0\0");
        frame(&mut trail, b'E', b"\0\0\0\0\0");
        frame(&mut trail, b'Q', b"SELECT hidden\0");
        frame(&mut trail, b'S', b"");
        assert_eq!(&*trail.server_error(), "SELECT 1/0");
        trail.server_ready();
        // An extended COPY as libpq sends it: Sync after Execute, Sync after CopyDone.
        frame(&mut trail, b'P', b"\0COPY t FROM STDIN\0\0\0");
        frame(&mut trail, b'B', b"\0\0\0\0\0\0\0\0");
        frame(&mut trail, b'E', b"\0\0\0\0\0");
        frame(&mut trail, b'S', b"");
        frame(&mut trail, b'd', b"1\n");
        frame(&mut trail, b'c', b"");
        frame(&mut trail, b'S', b"");
        trail.server_ready();
        frame(&mut trail, b'Q', b"SELECT next\0");
        assert_eq!(&*trail.server_error(), "SELECT next");
    }

    #[test]
    fn a_name_longer_than_what_is_kept_is_not_guessed() {
        let mut trail = StatementTrail::new();
        let mut parse = vec![b'n'; 3 * STATEMENT_BYTES];
        parse.extend_from_slice(b"\0SELECT 1\0\0\0");
        frame(&mut trail, b'P', &parse);
        frame(&mut trail, b'S', b"");
        assert_eq!(&*trail.server_error(), UNKNOWN);
        trail.server_ready();
        // A Bind whose portal name hides the statement's name: unknown, not the unnamed one.
        frame(&mut trail, b'P', b"\0SELECT unnamed\0\0\0");
        let mut bind = vec![b'p'; 3 * STATEMENT_BYTES];
        bind.extend_from_slice(b"\0\0\0\0\0\0\0\0");
        frame(&mut trail, b'B', &bind);
        frame(&mut trail, b'E', b"\0\0\0\0\0");
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
