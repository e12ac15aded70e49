//! A live database session as the engine sees it: one row of `pg_stat_activity`, plus the role
//! memberships `member_of` needs.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use jiff::Timestamp;

/// What the server process behind a session is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BackendType {
    /// A client connection (`client backend`): the only kind curfew ever ends.
    ClientBackend,
    /// Anything else: walsender, autovacuum, background worker... (the raw `backend_type`).
    Other(String),
}

impl BackendType {
    /// From `pg_stat_activity.backend_type`.
    pub fn from_pg(text: &str) -> Self {
        if text == "client backend" {
            BackendType::ClientBackend
        } else {
            BackendType::Other(text.to_owned())
        }
    }
}

/// `pg_stat_activity.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Running a statement.
    Active,
    /// Waiting for a command, outside a transaction.
    Idle,
    /// Waiting for a command inside an open transaction.
    IdleInTransaction,
    /// Waiting inside a transaction that has failed.
    IdleInTransactionAborted,
    /// Executing a fast-path function call.
    FastpathFunctionCall,
    /// `track_activities` is off for this session.
    Disabled,
    /// Not visible (no privilege) or not reported.
    Unknown,
}

impl SessionState {
    /// From `pg_stat_activity.state` (NULL maps to `Unknown`).
    pub fn from_pg(text: Option<&str>) -> Self {
        match text {
            Some("active") => SessionState::Active,
            Some("idle") => SessionState::Idle,
            Some("idle in transaction") => SessionState::IdleInTransaction,
            Some("idle in transaction (aborted)") => SessionState::IdleInTransactionAborted,
            Some("fastpath function call") => SessionState::FastpathFunctionCall,
            Some("disabled") => SessionState::Disabled,
            _ => SessionState::Unknown,
        }
    }

    /// The text PostgreSQL uses for this state.
    pub const fn as_pg(self) -> &'static str {
        match self {
            SessionState::Active => "active",
            SessionState::Idle => "idle",
            SessionState::IdleInTransaction => "idle in transaction",
            SessionState::IdleInTransactionAborted => "idle in transaction (aborted)",
            SessionState::FastpathFunctionCall => "fastpath function call",
            SessionState::Disabled => "disabled",
            SessionState::Unknown => "unknown",
        }
    }

    /// Idle inside a transaction, failed or not.
    pub fn is_idle_in_transaction(self) -> bool {
        matches!(
            self,
            SessionState::IdleInTransaction | SessionState::IdleInTransactionAborted
        )
    }
}

/// One live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Server process id.
    pub pid: i64,
    /// When the process started; with `pid`, identifies the session (pids are reused).
    pub backend_start: Timestamp,
    /// When the current transaction started, if one is open.
    pub xact_start: Option<Timestamp>,
    /// What the session is doing.
    pub state: SessionState,
    /// When `state` last changed.
    pub state_change: Option<Timestamp>,
    /// The session's role (`usename`). Names are shared: a snapshot gives every session of a
    /// role the same `Arc`, which saves allocations and lets the engine skip string
    /// comparisons (any `Arc` with the right text works, only more slowly).
    pub role: Arc<str>,
    /// Every role the session's role is a member of, directly or indirectly. Sessions of one role
    /// share one list.
    pub member_of: Arc<[String]>,
    /// The database (`datname`).
    pub database: Arc<str>,
    /// Where the client connects from, as far as the server says.
    pub client_addr: ClientAddr,
    /// `application_name`, as the client set it.
    pub application: Arc<str>,
    /// What kind of process this is.
    pub backend_type: BackendType,
}

/// Where a session's client connects from, as far as the server says. Three states, not an
/// `Option<IpAddr>`: a TCP client whose address the server did not show must not pass for a
/// socket one (that would let it meet `addresses = ["local"]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientAddr {
    /// A Unix-domain socket: no network address.
    Socket,
    /// TCP (or another network transport) from this address.
    Ip(IpAddr),
    /// TCP, but the server showed a host name instead of the address (MariaDB with
    /// `skip_name_resolve` off): the address is not known. The name comes from reverse DNS,
    /// which whoever owns the client's address controls, so it proves nothing. Such a session
    /// meets no exemption by `addresses`, and every rule scoped by `addresses` applies to it.
    Unresolved(Arc<str>),
}

impl ClientAddr {
    /// The address, when the server gave one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            ClientAddr::Ip(a) => Some(*a),
            ClientAddr::Socket | ClientAddr::Unresolved(_) => None,
        }
    }

    /// How an audit record or a listing shows it: the address; None for a socket; for an
    /// unresolved client the name the server gave, marked as such (never an invented address).
    pub fn shown(&self) -> Option<String> {
        match self {
            ClientAddr::Socket => None,
            ClientAddr::Ip(a) => Some(a.to_string()),
            ClientAddr::Unresolved(_) => Some(self.to_string()),
        }
    }
}

impl From<Option<IpAddr>> for ClientAddr {
    /// A server that always shows addresses (PostgreSQL): None is a socket.
    fn from(address: Option<IpAddr>) -> Self {
        address.map_or(ClientAddr::Socket, ClientAddr::Ip)
    }
}

impl From<IpAddr> for ClientAddr {
    fn from(address: IpAddr) -> Self {
        ClientAddr::Ip(address)
    }
}

impl std::fmt::Display for ClientAddr {
    /// `local`, the address, or `name:<host> (unverified)` (the host name escaped: it comes
    /// from DNS).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAddr::Socket => f.write_str("local"),
            ClientAddr::Ip(a) => write!(f, "{a}"),
            ClientAddr::Unresolved(name) => write!(f, "name:{} (unverified)", name.escape_debug()),
        }
    }
}

/// What identifies one session for its whole life: pids are reused, `(pid, backend_start)` is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct SessionKey {
    /// Server process id.
    pub pid: i64,
    /// When the process started.
    pub backend_start: Timestamp,
}

impl Session {
    /// The session's identity.
    pub fn key(&self) -> SessionKey {
        SessionKey {
            pid: self.pid,
            backend_start: self.backend_start,
        }
    }
}

/// Hands out one shared `Arc<str>` per distinct name, so that the sessions of a snapshot share
/// their role, database and application names. Keep one across snapshots: names seen before
/// cost no allocation.
#[derive(Debug, Default, Clone)]
pub struct Names {
    known: HashSet<Arc<str>>,
}

impl Names {
    /// An empty set of names.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shared copy of `name`.
    pub fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.known.get(name) {
            return known.clone();
        }
        let shared: Arc<str> = Arc::from(name);
        self.known.insert(shared.clone());
        shared
    }

    /// How many distinct names are held.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether no name is held.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// Forget names no session uses any more (those only this set still holds).
    pub fn prune(&mut self) {
        self.known.retain(|n| Arc::strong_count(n) > 1);
    }
}
