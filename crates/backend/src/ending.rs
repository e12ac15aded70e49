//! Reading sessions and ending them: the snapshot the engine judges, the end request that says
//! what must still hold when the session is ended, and the answer for each request.

use curfew_audit::{Action, Authorized, SquatterEnding, Termination};
use curfew_policy::{Cause, Decision, Session, SessionKey};
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// An action whose intent may authorize ending a session: a rule's termination, or the ending
/// of a session squatting curfew's leader lock. A login change's intent cannot.
pub trait SessionEnding: Action {}

impl SessionEnding for Termination {}

impl SessionEnding for SquatterEnding {}

/// An end request bound to the durable intent that announced it: what
/// [`crate::SessionEnder::signal_all`] takes, so that no session is ended without an intent
/// record on disk.
pub type AuthorizedEnd<'t, A> = Authorized<'t, A, EndRequest>;

/// The sessions of a server at one instant of its clock.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The server's clock when it received the request (the sessions are read just after).
    pub now: Timestamp,
    /// Every client session except curfew's own.
    pub sessions: Vec<Session>,
    /// The sessions among them that curfew gateway logged in, with the client behind each,
    /// as the gateway registered them (a marker no client can set). Empty where the database
    /// has no registry.
    pub gateway: BTreeMap<SessionKey, GatewayClient>,
}

impl Snapshot {
    /// A snapshot without gateway sessions.
    pub fn new(now: Timestamp, sessions: Vec<Session>) -> Snapshot {
        Snapshot {
            now,
            sessions,
            gateway: BTreeMap::new(),
        }
    }

    /// The client behind `session` when it came through curfew gateway.
    pub fn gateway_client(&self, session: &SessionKey) -> Option<&GatewayClient> {
        self.gateway.get(session)
    }
}

/// The client behind a session curfew gateway logged in, as the gateway registered it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GatewayClient {
    /// The client's address, as the gateway saw it.
    pub addr: IpAddr,
    /// The client's port.
    pub port: u16,
    /// Which gateway (its id: host and process).
    pub gateway: String,
}

impl fmt::Display for GatewayClient {
    /// `via gateway from ADDR:PORT`, as records and pages say it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "via gateway from {}",
            std::net::SocketAddr::new(self.addr, self.port)
        )
    }
}

/// Which idle state an idle rule's end request requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleState {
    /// Idle, outside a transaction.
    Idle,
    /// Idle inside a transaction (aborted or not).
    InTransaction,
}

/// What must still hold, at the moment of the end, for a session to be ended. The database
/// checks it in the same step as it ends the session, so a session that changed in between
/// (ended, identity reused, ran a statement, not yet due) is left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndRequest {
    /// The session's identity.
    pub session: SessionKey,
    /// For idle rules: the state it must still be in, and since when it was judged to be (a
    /// statement in between resets the clock).
    pub idle_since: Option<(IdleState, Timestamp)>,
    /// Not before this instant on the server's clock (the deadline): an early end is refused.
    pub not_before: Option<Timestamp>,
    /// For a session over a `max_sessions` limit: the older sessions that keep their places.
    /// All must still be there, or this session may now be within the limit and is left alone.
    pub keepers: Vec<SessionKey>,
}

impl EndRequest {
    /// The end request for an engine decision.
    pub fn for_decision(decision: &Decision) -> EndRequest {
        let idle_since = match decision.cause {
            Cause::Idle { since, .. } => Some((IdleState::Idle, since)),
            Cause::IdleInTransaction { since, .. } => Some((IdleState::InTransaction, since)),
            _ => None,
        };
        EndRequest {
            session: decision.session,
            idle_since,
            not_before: Some(decision.deadline),
            keepers: Vec::new(),
        }
    }

    /// A request that only the session's identity guards (no idleness, no deadline).
    pub fn identity_only(session: SessionKey) -> EndRequest {
        EndRequest {
            session,
            idle_since: None,
            not_before: None,
            keepers: Vec::new(),
        }
    }
}

/// How ending a session went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The session was signalled and its process exited.
    Ended {
        /// Server clock right after the signal: when the session ended.
        at: Timestamp,
        /// Server clock when the process was seen gone.
        confirmed_at: Timestamp,
    },
    /// The session had changed (ended, identity reused, ran a statement): nothing was done.
    NoLongerMatched {
        /// Server clock at the check.
        at: Timestamp,
    },
    /// The server's clock had not reached the deadline yet: nothing was done (try again then).
    NotYetDue {
        /// Server clock at the check.
        at: Timestamp,
    },
    /// The server refused or the process did not exit in time.
    Failed {
        /// Why, in words.
        reason: String,
        /// The database's code for the refusal, where it gave one (PostgreSQL: the SQLSTATE).
        code: Option<String>,
    },
}

impl Outcome {
    /// The audit `result` word.
    pub fn result(&self) -> &'static str {
        match self {
            Outcome::Ended { .. } => "ended",
            Outcome::NoLongerMatched { .. } => "no_longer_matched",
            Outcome::NotYetDue { .. } => "not_yet_due",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// The answer to one end request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Its conditions held and it was sent the signal at `at` (its exit is still to be
    /// confirmed).
    Signalled {
        /// Server clock right after the signal.
        at: Timestamp,
    },
    /// Nothing was sent, and this is the outcome: `NoLongerMatched`, `NotYetDue` or `Failed`.
    Settled(Outcome),
}
