//! What the in-memory server records of the calls made to it, and the failures a test scripts
//! for the calls to come.

use curfew_policy::SessionKey;
use jiff::Timestamp;

use crate::coordination::LockHolder;
use crate::ending::{EndRequest, Signal};
use crate::error::ErrorKind;

/// Which call, without its arguments: what a scripted failure waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallName {
    /// [`crate::Connector::connect`].
    Connect,
    /// [`crate::SessionReader::snapshot`].
    Snapshot,
    /// [`crate::SessionEnder::signal_all`].
    SignalAll,
    /// [`crate::SessionEnder::exited`].
    Exited,
    /// [`crate::Coordination::try_lead`].
    TryLead,
    /// [`crate::Coordination::still_leads`].
    StillLeads,
    /// [`crate::Coordination::lock_holders`].
    LockHolders,
    /// [`crate::Coordination::announce`].
    Announce,
    /// [`crate::Coordination::ping`].
    Ping,
    /// [`crate::AnchorStore::anchor`].
    Anchor,
    /// Any [`crate::LoginLedger`] call (its name is in [`Request::Ledger`]).
    Ledger,
}

/// One call as the server received it, with what it needed to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A new connection.
    Connect,
    /// A snapshot of the sessions.
    Snapshot,
    /// End requests, and the answers given (empty when the call failed).
    SignalAll {
        /// The requests, in order.
        requests: Vec<EndRequest>,
        /// The answer to each.
        answers: Vec<Signal>,
    },
    /// Which of these sessions are gone.
    Exited(Vec<SessionKey>),
    /// Take the leader lock.
    TryLead,
    /// Whether the leader lock is still held.
    StillLeads,
    /// Who else holds or awaits the leader lock.
    LockHolders,
    /// The leader's announcement.
    Announce(String),
    /// A round trip.
    Ping,
    /// A head of the audit chain to keep.
    Anchor {
        /// The chain's id.
        chain: String,
        /// The head's seq.
        seq: u64,
    },
    /// A login ledger call, by its method's name.
    Ledger(&'static str),
}

impl Request {
    /// The call's name.
    pub fn name(&self) -> CallName {
        match self {
            Request::Connect => CallName::Connect,
            Request::Snapshot => CallName::Snapshot,
            Request::SignalAll { .. } => CallName::SignalAll,
            Request::Exited(_) => CallName::Exited,
            Request::TryLead => CallName::TryLead,
            Request::StillLeads => CallName::StillLeads,
            Request::LockHolders => CallName::LockHolders,
            Request::Announce(_) => CallName::Announce,
            Request::Ping => CallName::Ping,
            Request::Anchor { .. } => CallName::Anchor,
            Request::Ledger(_) => CallName::Ledger,
        }
    }
}

/// One entry of the server's log of calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The connection it came on (numbered from 1 in the order they were opened; a failed
    /// connect has the number it would have had).
    pub connection: u64,
    /// The server's clock when it arrived.
    pub at: Timestamp,
    /// What was asked.
    pub request: Request,
    /// The error's kind, if the call failed.
    pub failed: Option<ErrorKind>,
}

/// What a scripted failure does to the call it hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The connection is lost: the call fails, and so does every later call on that
    /// connection (a leader lock it held is released). A `connect` that hits it fails.
    ConnectionLost,
    /// The server refuses with this code: an error of kind `Refused`, except for `signal_all`,
    /// where each request of the call is answered `Failed` with the code (a refusal for one
    /// session is its answer).
    Refused {
        /// The database's code for the refusal.
        code: Option<String>,
    },
    /// Just before the call, the leader lock passes to this holder (this agent's lock session
    /// lost it), then the call runs: a fenced call is refused as not leading.
    LeadershipLost(LockHolder),
}

/// A failure waiting for its calls.
#[derive(Debug, Clone)]
pub(crate) struct Scripted {
    /// The calls it hits (`None`: any call).
    pub(crate) on: Option<CallName>,
    /// Matching calls still let through before it hits.
    pub(crate) skip: u32,
    /// Matching calls it still hits.
    pub(crate) times: u32,
    pub(crate) fault: Fault,
}

impl Scripted {
    /// Whether this call is hit (counting it either way).
    pub(crate) fn hits(&mut self, call: CallName) -> bool {
        if self.times == 0 || self.on.is_some_and(|on| on != call) {
            return false;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        self.times -= 1;
        true
    }
}
