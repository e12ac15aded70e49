//! The session's state as the wire shows it (issue 17): the gateway learns whether a session
//! is idle, idle in a transaction, or running a statement from the frames the relay already
//! walks, without re-encoding or holding anything: the server's ReadyForQuery ('Z') says
//! idle ('I'), in a transaction ('T') or in a failed one ('E'); a client's Query, FunctionCall
//! or Sync (and Parse/Bind/Execute before their Sync) starts work, which is never idle.
//!
//! The server's ErrorResponses are read for their SQLSTATE (field 'C') only, as the bytes pass
//! (a five-byte scratch, no copy of the frame), for `violations` rules: the codes wait in
//! [`WireState::take_errors`] for the enforcer. The gateway's own FATALs are written outside
//! the observed path, so they are never counted.
//!
//! Times come from a [`Clock`] the gateway owns (tokio's clock under a wall-clock origin), so
//! tests that pause tokio's time move the session's times with it.

use std::sync::Arc;

use curfew_policy::SessionState;
use curfew_wire::{Direction, FrameCursor, TransactionStatus};
use jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;

use crate::statements::StatementTrail;

/// The gateway's clock: a wall-clock origin advanced by tokio's monotonic clock (which tests
/// may pause and advance).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: Instant,
    wall: Timestamp,
}

impl Clock {
    /// A clock reading the wall clock now.
    pub(crate) fn start() -> Clock {
        Clock::starting_at(Timestamp::now())
    }

    /// A clock whose `now()` is `wall` at this instant of tokio's clock.
    pub(crate) fn starting_at(wall: Timestamp) -> Clock {
        Clock {
            origin: Instant::now(),
            wall,
        }
    }

    /// The time now.
    pub(crate) fn now(&self) -> Timestamp {
        self.at(Instant::now())
    }

    /// The time at `instant` of tokio's clock.
    pub(crate) fn at(&self, instant: Instant) -> Timestamp {
        let elapsed = SignedDuration::try_from(instant.saturating_duration_since(self.origin))
            .unwrap_or(SignedDuration::MAX);
        self.wall.saturating_add(elapsed).unwrap_or(self.wall)
    }

    /// The instant of tokio's clock at which `now()` reaches `at` (now, if it has already).
    pub(crate) fn instant_of(&self, at: Timestamp) -> Instant {
        let now = Instant::now();
        let ahead = at.duration_since(self.at(now));
        match std::time::Duration::try_from(ahead) {
            Ok(ahead) => now.checked_add(ahead).unwrap_or(now + FAR_FUTURE),
            Err(_) => now,
        }
    }
}

/// Far enough ahead to mean never, small enough for tokio's timer.
const FAR_FUTURE: std::time::Duration = std::time::Duration::from_secs(60 * 60 * 24 * 365);

/// A session's [`WireState`] with the clock that times it: what the relay's pumps feed.
#[derive(Debug)]
pub(crate) struct Watched {
    /// The state.
    pub(crate) wire: WireState,
    /// The gateway's clock.
    pub(crate) clock: Clock,
}

impl Watched {
    /// A session that just logged in, now on `clock`.
    pub(crate) fn new(clock: Clock) -> Watched {
        Watched {
            wire: WireState::new(clock.now()),
            clock,
        }
    }

    /// Observes bytes written by `sender` (the client is the frontend), now.
    pub(crate) fn observe(&mut self, sender: Direction, bytes: &[u8]) {
        let now = self.clock.now();
        self.wire.observe(sender, bytes, now);
    }
}

/// One session's state as the wire shows it (see the module).
#[derive(Debug)]
pub(crate) struct WireState {
    /// Frame walks of each direction (headers only), apart from the pumps' own so that
    /// observing never changes what the relay forwards.
    up: FrameCursor,
    down: FrameCursor,
    /// Sync points (Query, FunctionCall, Sync) sent whose ReadyForQuery has not come back.
    pending: u32,
    /// Parse/Bind/Execute sent since the last Sync: the server works on them at once.
    unsynced: bool,
    /// The last ReadyForQuery's status.
    status: TransactionStatus,
    state: SessionState,
    state_change: Timestamp,
    xact_start: Option<Timestamp>,
    /// Bumped on every state change (a timer armed for an older one is re-armed).
    generation: u64,
    /// The server's ErrorResponse being read, if one is.
    error_scan: Option<ErrorScan>,
    /// SQLSTATEs of the server's ErrorResponses not yet judged (allocated at the first one),
    /// each with the statement it answered when the trail is kept.
    errors: Vec<(Sqlstate, Option<Arc<str>>)>,
    /// The statements in flight, for `[audit] include_statement` (None: not kept).
    statements: Option<Box<StatementTrail>>,
}

/// A SQLSTATE: five ASCII letters or digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sqlstate([u8; 5]);

impl Sqlstate {
    /// The code as text.
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII alphanumerics are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("?????")
    }
}

/// Reading one ErrorResponse's body for its 'C' field: after the four length bytes, fields
/// of a type byte and a NUL-terminated string, until a lone NUL.
#[derive(Debug, Default)]
struct ErrorScan {
    /// Length bytes still to skip.
    skip: u8,
    /// Inside a field's string (`code` says whether it is the 'C' field).
    in_field: bool,
    in_code: bool,
    code: [u8; 5],
    /// Bytes of the code seen (more than five: not a SQLSTATE).
    len: u8,
    found: Option<Sqlstate>,
}

impl ErrorScan {
    fn new() -> ErrorScan {
        ErrorScan {
            skip: 4,
            ..ErrorScan::default()
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if self.skip > 0 {
                self.skip -= 1;
            } else if !self.in_field {
                // A field's type; a NUL here ends the message (nothing follows).
                self.in_field = byte != 0;
                self.in_code = byte == b'C';
                self.len = 0;
            } else if byte == 0 {
                if self.in_code && self.len == 5 && self.found.is_none() {
                    self.found = Some(Sqlstate(self.code));
                }
                self.in_field = false;
                self.in_code = false;
            } else if self.in_code {
                if usize::from(self.len) < self.code.len() && byte.is_ascii_alphanumeric() {
                    self.code[usize::from(self.len)] = byte;
                    self.len += 1;
                } else {
                    // Too long or not a SQLSTATE's character: never counted.
                    self.in_code = false;
                }
            }
        }
    }
}

impl WireState {
    /// A session that just logged in (the server's ReadyForQuery said idle) at `now`.
    pub(crate) fn new(now: Timestamp) -> WireState {
        WireState {
            up: FrameCursor::new(Direction::Frontend),
            down: FrameCursor::new(Direction::Backend),
            pending: 0,
            unsynced: false,
            status: TransactionStatus::Idle,
            state: SessionState::Idle,
            state_change: now,
            xact_start: None,
            generation: 0,
            error_scan: None,
            errors: Vec::new(),
            statements: None,
        }
    }

    /// Keeps the statements in flight from now on, so that each error names its statement
    /// (`[audit] include_statement`).
    pub(crate) fn keep_statements(&mut self) {
        self.statements = Some(Box::new(StatementTrail::new()));
    }

    /// Whether the server sent ErrorResponses not yet taken.
    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The SQLSTATEs of the server's ErrorResponses since the last call, oldest first, each
    /// with its statement when they are kept ([`WireState::keep_statements`]).
    pub(crate) fn take_errors(&mut self) -> std::vec::Drain<'_, (Sqlstate, Option<Arc<str>>)> {
        self.errors.drain(..)
    }

    /// The state now.
    pub(crate) fn state(&self) -> SessionState {
        self.state
    }

    /// When the state last changed.
    pub(crate) fn state_change(&self) -> Timestamp {
        self.state_change
    }

    /// When the open transaction (or the running statement's own) began; None when idle.
    pub(crate) fn xact_start(&self) -> Option<Timestamp> {
        self.xact_start
    }

    /// Changes with every state change.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Observes bytes written by `sender` at `now` (in order, as written).
    pub(crate) fn observe(&mut self, sender: Direction, bytes: &[u8], now: Timestamp) {
        let mut cursor = match sender {
            Direction::Frontend => self.up,
            Direction::Backend => self.down,
        };
        walk(&mut cursor, bytes, |event| match (sender, event) {
            (Direction::Frontend, FrameEvent::Started(tag)) => {
                self.client_sent(tag, now);
                if let Some(trail) = self.statements.as_mut() {
                    trail.client_started(tag);
                }
            }
            (Direction::Frontend, FrameEvent::Body(body)) => {
                if let Some(trail) = self.statements.as_mut() {
                    trail.client_body(body);
                }
            }
            (Direction::Frontend, FrameEvent::Ended(_)) => {
                if let Some(trail) = self.statements.as_mut() {
                    trail.client_ended();
                }
            }
            (Direction::Backend, FrameEvent::Started(tag)) => {
                if tag == b'E' {
                    self.error_scan = Some(ErrorScan::new());
                }
                if let Some(trail) = self.statements.as_mut() {
                    trail.server_frame(tag);
                }
            }
            (Direction::Backend, FrameEvent::Body(body)) => {
                if let Some(scan) = self.error_scan.as_mut() {
                    scan.feed(body);
                }
            }
            (Direction::Backend, FrameEvent::Ended(cursor)) => {
                if let Some(code) = self.error_scan.take().and_then(|scan| scan.found) {
                    let statement = self.statements.as_ref().map(|t| t.server_error());
                    self.errors.push((code, statement));
                }
                if cursor.ends_with_frame(b'Z')
                    && let Some(status) = cursor.transaction_status()
                {
                    if let Some(trail) = self.statements.as_mut() {
                        trail.server_ready();
                    }
                    self.server_ready(status, now);
                }
            }
        });
        match sender {
            Direction::Frontend => self.up = cursor,
            Direction::Backend => self.down = cursor,
        }
    }

    fn client_sent(&mut self, tag: u8, now: Timestamp) {
        match tag {
            b'Q' | b'F' => self.pending = self.pending.saturating_add(1),
            b'S' => {
                self.pending = self.pending.saturating_add(1);
                self.unsynced = false;
            }
            b'P' | b'B' | b'E' => self.unsynced = true,
            _ => return,
        }
        if self.state != SessionState::Active {
            if self.status == TransactionStatus::Idle {
                self.xact_start = Some(now);
            }
            self.set(SessionState::Active, now);
        }
    }

    fn server_ready(&mut self, status: TransactionStatus, now: Timestamp) {
        self.pending = self.pending.saturating_sub(1);
        self.status = status;
        if self.pending > 0 || self.unsynced {
            return;
        }
        let state = match status {
            TransactionStatus::Idle => {
                self.xact_start = None;
                SessionState::Idle
            }
            TransactionStatus::InBlock => SessionState::IdleInTransaction,
            TransactionStatus::Failed => SessionState::IdleInTransactionAborted,
        };
        if state != self.state {
            self.set(state, now);
        }
    }

    fn set(&mut self, state: SessionState, now: Timestamp) {
        self.state = state;
        self.state_change = now;
        self.generation = self.generation.wrapping_add(1);
    }
}

/// What the walk saw.
enum FrameEvent<'a> {
    /// A frame began with this type byte.
    Started(u8),
    /// Bytes of the frame in progress after its type byte (its length, then its body).
    Body(&'a [u8]),
    /// A frame ended (the cursor is just past it).
    Ended(&'a FrameCursor),
}

/// Walks `bytes` frame by frame; a lost stream stops telling anything.
fn walk(cursor: &mut FrameCursor, mut bytes: &[u8], mut event: impl FnMut(FrameEvent<'_>)) {
    while let Some(&first) = bytes.first() {
        if cursor.at_boundary() {
            event(FrameEvent::Started(first));
            // One byte never completes a frame (a header is five).
            if cursor.feed(&bytes[..1]).is_err() {
                return;
            }
            bytes = &bytes[1..];
            continue;
        }
        match cursor.feed_to_boundary(bytes) {
            Ok(Some(end)) => {
                event(FrameEvent::Body(&bytes[..end]));
                event(FrameEvent::Ended(cursor));
                bytes = &bytes[end..];
            }
            Ok(None) => {
                event(FrameEvent::Body(bytes));
                return;
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn ready(status: u8) -> Vec<u8> {
        frame(b'Z', &[status])
    }

    #[test]
    fn a_query_is_active_until_ready_for_query_then_idle() {
        let mut wire = WireState::new(at(0));
        assert_eq!(wire.state(), SessionState::Idle);
        wire.observe(Direction::Frontend, &frame(b'Q', b"select 1\0"), at(5));
        assert_eq!(wire.state(), SessionState::Active);
        assert_eq!(wire.state_change(), at(5));
        assert_eq!(wire.xact_start(), Some(at(5)));
        let mut answer = frame(b'T', &[0, 0]);
        answer.extend(frame(b'C', b"SELECT 1\0"));
        answer.extend(ready(b'I'));
        wire.observe(Direction::Backend, &answer, at(7));
        assert_eq!(wire.state(), SessionState::Idle);
        assert_eq!(wire.state_change(), at(7));
        assert_eq!(wire.xact_start(), None);
    }

    #[test]
    fn a_transaction_block_is_idle_in_transaction_since_its_begin() {
        let mut wire = WireState::new(at(0));
        wire.observe(Direction::Frontend, &frame(b'Q', b"begin\0"), at(1));
        wire.observe(Direction::Backend, &ready(b'T'), at(2));
        assert_eq!(wire.state(), SessionState::IdleInTransaction);
        assert_eq!(wire.xact_start(), Some(at(1)));
        // The next statement keeps the transaction's start.
        wire.observe(Direction::Frontend, &frame(b'Q', b"select x\0"), at(10));
        assert_eq!(wire.state(), SessionState::Active);
        assert_eq!(wire.xact_start(), Some(at(1)));
        wire.observe(Direction::Backend, &ready(b'E'), at(11));
        assert_eq!(wire.state(), SessionState::IdleInTransactionAborted);
        assert_eq!(wire.state_change(), at(11));
    }

    #[test]
    fn pipelined_queries_stay_active_until_the_last_ready_for_query() {
        let mut wire = WireState::new(at(0));
        let mut two = frame(b'Q', b"select 1\0");
        two.extend(frame(b'Q', b"select pg_sleep(60)\0"));
        wire.observe(Direction::Frontend, &two, at(1));
        wire.observe(Direction::Backend, &ready(b'I'), at(2));
        assert_eq!(wire.state(), SessionState::Active);
        wire.observe(Direction::Backend, &ready(b'I'), at(62));
        assert_eq!(wire.state(), SessionState::Idle);
    }

    #[test]
    fn extended_protocol_is_active_from_parse_even_before_sync() {
        let mut wire = WireState::new(at(0));
        wire.observe(
            Direction::Frontend,
            &frame(b'P', b"\0select 1\0\0\0"),
            at(1),
        );
        assert_eq!(wire.state(), SessionState::Active);
        let mut rest = frame(b'B', b"\0\0\0\0\0\0\0\0");
        rest.extend(frame(b'E', b"\0\0\0\0\0"));
        rest.extend(frame(b'S', b""));
        wire.observe(Direction::Frontend, &rest, at(2));
        assert_eq!(wire.state_change(), at(1));
        wire.observe(Direction::Backend, &ready(b'I'), at(3));
        assert_eq!(wire.state(), SessionState::Idle);
    }

    #[test]
    fn frames_split_anywhere_are_seen_once() {
        let mut wire = WireState::new(at(0));
        let query = frame(b'Q', b"select 1\0");
        for byte in &query {
            wire.observe(Direction::Frontend, std::slice::from_ref(byte), at(1));
        }
        assert_eq!(wire.state(), SessionState::Active);
        let mut answer = frame(b'C', b"SELECT 1\0");
        answer.extend(ready(b'T'));
        let (head, tail) = answer.split_at(answer.len() - 1);
        wire.observe(Direction::Backend, head, at(2));
        // The status byte has not arrived: still running.
        assert_eq!(wire.state(), SessionState::Active);
        wire.observe(Direction::Backend, tail, at(3));
        assert_eq!(wire.state(), SessionState::IdleInTransaction);
        assert_eq!(wire.generation(), 2);
    }

    #[test]
    fn other_client_frames_do_not_start_work() {
        let mut wire = WireState::new(at(0));
        // Flush and Terminate: nothing runs.
        let mut bytes = frame(b'H', b"");
        bytes.extend(frame(b'X', b""));
        wire.observe(Direction::Frontend, &bytes, at(1));
        assert_eq!(wire.state(), SessionState::Idle);
        assert_eq!(wire.generation(), 0);
    }

    fn error_response(code: &[u8]) -> Vec<u8> {
        let mut body = b"SERROR\0VERROR\0".to_vec();
        body.push(b'C');
        body.extend_from_slice(code);
        body.extend_from_slice(b"\0Mpermission denied for table t\0\0");
        frame(b'E', &body)
    }

    #[test]
    fn the_servers_error_codes_are_read_even_split_byte_by_byte() {
        let mut wire = WireState::new(at(0));
        assert!(!wire.has_errors());
        let mut bytes = error_response(b"42501");
        bytes.extend(ready(b'I'));
        bytes.extend(error_response(b"42P01"));
        for byte in &bytes {
            wire.observe(Direction::Backend, std::slice::from_ref(byte), at(1));
        }
        let codes: Vec<String> = wire
            .take_errors()
            .map(|(c, _)| c.as_str().to_owned())
            .collect();
        assert_eq!(codes, ["42501", "42P01"]);
        assert!(!wire.has_errors());
    }

    #[test]
    fn a_code_that_is_no_sqlstate_and_the_clients_frames_are_not_counted() {
        let mut wire = WireState::new(at(0));
        // Too long, too short, a character no SQLSTATE has.
        let mut bytes = error_response(b"425010");
        bytes.extend(error_response(b"4250"));
        bytes.extend(error_response(b"42-01"));
        // A notice with a 'C' field is no error.
        bytes.extend(frame(b'N', b"SWARNING\0C01000\0Mx\0\0"));
        wire.observe(Direction::Backend, &bytes, at(1));
        // The client's 'E' is an Execute.
        wire.observe(Direction::Frontend, &error_response(b"42501"), at(1));
        assert!(!wire.has_errors());
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_follows_paused_time() {
        let clock = Clock::starting_at(at(0));
        tokio::time::advance(std::time::Duration::from_secs(90)).await;
        assert_eq!(clock.now(), at(90));
        let instant = clock.instant_of(at(150));
        assert_eq!(instant - Instant::now(), std::time::Duration::from_secs(60));
        assert_eq!(clock.instant_of(at(10)), Instant::now());
    }
}
