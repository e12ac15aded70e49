//! The in-memory server's state: its sessions, clock, connections, leader lock, ledger,
//! anchors, scripted failures and log of calls, behind one lock (every change is made whole
//! under it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use curfew_policy::{Session, SessionKey};
use jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;

use super::ledger::Ledger;
use super::script::{Call, Scripted};
use crate::coordination::LockHolder;
use crate::error::{BackendError, ErrorKind};

/// The state, shared by the server's handles and its connections.
pub(crate) type Shared = Arc<Mutex<State>>;

/// Lock the state. A test that panicked while holding the lock left consistent data: every
/// change is made whole under it.
pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why a call to the in-memory server failed (the source of its [`BackendError`]).
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The connection was lost (scripted), or is closed.
    #[error("target \"{target}\": the connection to the in-memory server was lost")]
    ConnectionLost {
        /// The target's name.
        target: String,
    },
    /// The server refused the call (scripted).
    #[error("target \"{target}\": the in-memory server refused the call{}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Refused {
        /// The target's name.
        target: String,
        /// The code it gave.
        code: Option<String>,
    },
    /// The anchor store keeps heads going forward only.
    #[error("target \"{target}\": the anchor store already holds seq {held} of chain {chain}")]
    AnchorBehind {
        /// The target's name.
        target: String,
        /// The chain.
        chain: String,
        /// The highest seq it holds.
        held: u64,
    },
}

/// Who holds the leader lock.
#[derive(Debug, Clone)]
pub(crate) enum Holder {
    /// One of the server's connections (an agent using this backend).
    Connection(u64),
    /// Anyone else (a replica, a squatter), as the server shows it.
    Other(LockHolder),
}

/// A connection's session on the server.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) key: SessionKey,
    pub(crate) application: String,
    pub(crate) alive: bool,
}

/// A head of the audit chain kept by the anchor store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchored {
    /// The chain's id.
    pub chain: String,
    /// The head's seq.
    pub seq: u64,
    /// The head's hash.
    pub hash: String,
    /// The server's clock when it was stored.
    pub at: Timestamp,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) target: String,
    pub(crate) own_role: String,
    pub(crate) database: String,
    /// The server's clock is `base` at tokio's `origin`, plus `skew`.
    pub(crate) origin: Instant,
    pub(crate) base: Timestamp,
    pub(crate) skew: SignedDuration,
    pub(crate) sessions: Vec<Session>,
    /// Signalled sessions and when their processes exit.
    pub(crate) exiting: Vec<(SessionKey, Instant)>,
    /// How long a signalled process takes to exit (`None`: it never does).
    pub(crate) exit_delay: Option<Duration>,
    /// Sessions the server refuses to signal, with the reason and code.
    pub(crate) refusing: HashMap<SessionKey, (String, Option<String>)>,
    /// Every session signalled, and when.
    pub(crate) signalled: Vec<(SessionKey, Timestamp)>,
    pub(crate) next_pid: i64,
    pub(crate) connections: HashMap<u64, Conn>,
    pub(crate) next_connection: u64,
    pub(crate) leader: Option<Holder>,
    pub(crate) scripted: Vec<Scripted>,
    pub(crate) calls: Vec<Call>,
    pub(crate) anchors: Vec<Anchored>,
    pub(crate) ledger: Ledger,
    /// Sessions a gateway registered, with the client behind each (the registry's rows).
    pub(crate) gateway: std::collections::BTreeMap<SessionKey, crate::GatewayClient>,
}

impl State {
    pub(crate) fn now(&self) -> Timestamp {
        let elapsed = SignedDuration::try_from(Instant::now() - self.origin).unwrap_or_default();
        self.base
            .saturating_add(elapsed)
            .and_then(|t| t.saturating_add(self.skew))
            .unwrap_or(self.base)
    }

    pub(crate) fn lost(&self) -> BackendError {
        BackendError::new(
            ErrorKind::ConnectionLost,
            MemoryError::ConnectionLost {
                target: self.target.clone(),
            },
        )
    }

    pub(crate) fn refused(&self, code: Option<String>) -> BackendError {
        BackendError::new(
            ErrorKind::Refused { code: code.clone() },
            MemoryError::Refused {
                target: self.target.clone(),
                code,
            },
        )
    }

    /// Processes that have exited by now leave the session table.
    pub(crate) fn settle_exits(&mut self) {
        let now = Instant::now();
        let gone: Vec<SessionKey> = self
            .exiting
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(k, _)| *k)
            .collect();
        self.exiting.retain(|(_, at)| *at > now);
        for key in gone {
            self.drop_session(key);
        }
    }

    pub(crate) fn drop_session(&mut self, key: SessionKey) {
        self.sessions.retain(|s| s.key() != key);
        // An advisory lock goes with the session that held it.
        if let Some(Holder::Other(h)) = &self.leader
            && h.pid == key.pid
            && h.backend_start == Some(key.backend_start)
        {
            self.leader = None;
        }
    }

    /// A connection closes (dropped, or lost): its lock goes with it.
    pub(crate) fn close(&mut self, connection: u64) {
        if let Some(conn) = self.connections.get_mut(&connection) {
            conn.alive = false;
        }
        if matches!(self.leader, Some(Holder::Connection(id)) if id == connection) {
            self.leader = None;
        }
    }

    pub(crate) fn new_key(&mut self) -> SessionKey {
        self.next_pid += 1;
        SessionKey {
            pid: self.next_pid,
            backend_start: self.now(),
        }
    }

    /// The session that holds the leader lock.
    pub(crate) fn leader_key(&self) -> Option<SessionKey> {
        match self.leader.as_ref()? {
            Holder::Connection(id) => self.connections.get(id).filter(|c| c.alive).map(|c| c.key),
            Holder::Other(h) => h.backend_start.map(|backend_start| SessionKey {
                pid: h.pid,
                backend_start,
            }),
        }
    }
}
