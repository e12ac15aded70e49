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
    /// Syncs sent since the last Query or Execute (ignored by the server if that command is
    /// a COPY FROM STDIN still reading: see `client_sent`).
    syncs_in_command: u32,
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
            syncs_in_command: 0,
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
            b'Q' | b'F' => {
                // Inside an extended batch (before its Sync) the server discards a Query or a
                // FunctionCall after an error in the batch and answers only the Sync: counted,
                // it would keep the session "running" for ever, out of every idle rule's
                // reach. Uncounted, its own answer (when nothing failed) ends the wait a
                // moment early, never late.
                if !self.unsynced {
                    self.pending = self.pending.saturating_add(1);
                }
                if tag == b'Q' {
                    self.syncs_in_command = 0;
                }
            }
            b'S' => {
                self.pending = self.pending.saturating_add(1);
                self.unsynced = false;
                self.syncs_in_command = self.syncs_in_command.saturating_add(1);
            }
            b'E' => {
                self.unsynced = true;
                self.syncs_in_command = 0;
            }
            b'P' | b'B' => self.unsynced = true,
            b'c' | b'f' => {
                // The end of a COPY FROM STDIN: the server ignored the Syncs sent during it
                // (libpq sends one after an extended COPY's Execute, then another after
                // CopyDone), so they get no answer.
                self.pending = self.pending.saturating_sub(self.syncs_in_command);
                self.syncs_in_command = 0;
                return;
            }
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
#[path = "activity_tests.rs"]
mod tests;
