//! The test's handle on an in-memory server: sessions, clock, leadership, ledger and scripted
//! failures set from outside, and what the server saw (its calls, ends and anchors).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use curfew_policy::{BackendType, Session, SessionKey, SessionState};
use jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;

use super::connection::MemoryConnector;
use super::ledger::Ledger;
use super::script::{Call, CallName, Fault, Scripted};
use super::state::{Anchored, Holder, Shared, State, lock};
use crate::coordination::LockHolder;
use crate::ledger::{LedgerStatus, LockRow, RoleInfo};

/// An in-memory database server (one target). Cloning gives another handle on the same server.
#[derive(Debug, Clone)]
pub struct MemoryServer {
    state: Shared,
}

impl MemoryServer {
    /// A server for `target`, with no session, curfew's role `curfew_agent`, an installed
    /// ledger, and its clock at `start` now (it runs with tokio's clock from here).
    pub fn new(target: &str, start: Timestamp) -> MemoryServer {
        MemoryServer {
            state: Arc::new(Mutex::new(State {
                target: target.to_owned(),
                own_role: "curfew_agent".to_owned(),
                database: "postgres".to_owned(),
                origin: Instant::now(),
                base: start,
                skew: SignedDuration::ZERO,
                sessions: Vec::new(),
                exiting: Vec::new(),
                exit_delay: Some(Duration::ZERO),
                refusing: HashMap::new(),
                signalled: Vec::new(),
                next_pid: 1000,
                connections: HashMap::new(),
                next_connection: 0,
                leader: None,
                scripted: Vec::new(),
                calls: Vec::new(),
                anchors: Vec::new(),
                ledger: Ledger::default(),
                gateway: std::collections::BTreeMap::new(),
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// A connector to this server.
    pub fn connector(&self) -> MemoryConnector {
        MemoryConnector::new(self.state.clone())
    }

    /// The server's clock now.
    pub fn now(&self) -> Timestamp {
        self.state().now()
    }

    /// Put the server's clock `skew` ahead of tokio's (behind, if negative).
    pub fn set_skew(&self, skew: SignedDuration) {
        self.state().skew = skew;
    }

    /// A client session of `role` on `database` logs in now: idle since now, outside a
    /// transaction. Its role's memberships are those of the ledger's role of that name.
    pub fn login(&self, role: &str, database: &str) -> SessionKey {
        let mut state = self.state();
        let key = state.new_key();
        let member_of: Vec<String> = state
            .ledger
            .roles()
            .into_iter()
            .find(|r| r.name == role)
            .map(|r| r.member_of)
            .unwrap_or_default();
        state.sessions.push(Session {
            pid: key.pid,
            backend_start: key.backend_start,
            xact_start: None,
            state: SessionState::Idle,
            state_change: Some(key.backend_start),
            role: Arc::from(role),
            member_of: Arc::from(member_of),
            database: Arc::from(database),
            client_addr: curfew_policy::ClientAddr::Socket,
            application: Arc::from(""),
            backend_type: BackendType::ClientBackend,
        });
        key
    }

    /// Add a session as given (its identity is its pid and backend start).
    pub fn add(&self, session: Session) -> SessionKey {
        let key = session.key();
        self.state().sessions.push(session);
        key
    }

    /// Change a live session; `false` if it is gone.
    pub fn change(&self, key: SessionKey, change: impl FnOnce(&mut Session)) -> bool {
        let mut state = self.state();
        state.settle_exits();
        match state.sessions.iter_mut().find(|s| s.key() == key) {
            Some(session) => {
                change(session);
                true
            }
            None => false,
        }
    }

    /// The session runs a short statement now and is idle again: idle since now, outside a
    /// transaction. `false` if it is gone.
    pub fn statement(&self, key: SessionKey) -> bool {
        let now = self.now();
        self.change(key, |s| {
            s.state = SessionState::Idle;
            s.state_change = Some(now);
            s.xact_start = None;
        })
    }

    /// A gateway registers a live session as its own (the row its registry function writes),
    /// with the client behind it.
    pub fn register_gateway(&self, key: SessionKey, client: crate::GatewayClient) {
        self.state().gateway.insert(key, client);
    }

    /// The client disconnects.
    pub fn remove(&self, key: SessionKey) {
        self.state().drop_session(key);
    }

    /// A live session.
    pub fn session(&self, key: SessionKey) -> Option<Session> {
        let mut state = self.state();
        state.settle_exits();
        state.sessions.iter().find(|s| s.key() == key).cloned()
    }

    /// Every live session.
    pub fn sessions(&self) -> Vec<Session> {
        let mut state = self.state();
        state.settle_exits();
        state.sessions.clone()
    }

    /// Every session signalled so far, and when (server clock).
    pub fn signalled(&self) -> Vec<(SessionKey, Timestamp)> {
        self.state().signalled.clone()
    }

    /// Refuse to signal this session (as a server refuses to end a superuser's session for a
    /// role that is not one): its end requests are answered `Failed` with this reason and code.
    pub fn refuse_to_end(&self, key: SessionKey, reason: &str, code: Option<&str>) {
        self.state()
            .refusing
            .insert(key, (reason.to_owned(), code.map(str::to_owned)));
    }

    /// How long a signalled process takes to exit; `None`: it never does.
    pub fn set_exit_delay(&self, delay: Option<Duration>) {
        self.state().exit_delay = delay;
    }

    /// A holder of curfew's role, not one of this server's connections (another agent replica),
    /// showing `application`.
    pub fn replica(&self, application: Option<&str>) -> LockHolder {
        let mut state = self.state();
        let key = state.new_key();
        LockHolder {
            pid: key.pid,
            client_addr: Some("10.0.0.7".to_owned()),
            backend_start: Some(key.backend_start),
            database: Some(state.database.clone()),
            application: application.map(str::to_owned),
            role: Some(state.own_role.clone()),
            own_role: true,
            granted: true,
        }
    }

    /// `holder` takes the leader lock now (whoever held it loses it).
    pub fn take_leadership(&self, holder: LockHolder) {
        self.state().leader = Some(Holder::Other(holder));
    }

    /// The leader lock is released (its holder is gone).
    pub fn release_leadership(&self) {
        self.state().leader = None;
    }

    /// The session holding the leader lock, if any.
    pub fn leader(&self) -> Option<SessionKey> {
        self.state().leader_key()
    }

    /// Script a failure: the matching calls to come (`on`; `None`: any), after `skip` of them
    /// are let through, fail `times` times with `fault`. Failures are tried in the order
    /// scripted; a call hits at most one.
    pub fn script(&self, on: Option<CallName>, skip: u32, times: u32, fault: Fault) {
        self.state().scripted.push(Scripted {
            on,
            skip,
            times,
            fault,
        });
    }

    /// The connection is lost on the next `times` calls named `on`.
    pub fn lose_connection(&self, on: Option<CallName>, times: u32) {
        self.script(on, 0, times, Fault::ConnectionLost);
    }

    /// The leader lock passes to `to` just before the `nth` call (from 1) named `on`.
    pub fn lose_leadership_at(&self, on: CallName, nth: u32, to: LockHolder) {
        self.script(
            Some(on),
            nth.saturating_sub(1),
            1,
            Fault::LeadershipLost(to),
        );
    }

    /// Every call received so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// The calls named `name` received so far.
    pub fn calls_of(&self, name: CallName) -> Vec<Call> {
        self.state()
            .calls
            .iter()
            .filter(|c| c.request.name() == name)
            .cloned()
            .collect()
    }

    /// The heads the anchor store holds.
    pub fn anchors(&self) -> Vec<Anchored> {
        self.state().anchors.clone()
    }

    /// Add a login role to the catalog; returns its oid.
    pub fn add_role(&self, name: &str, superuser: bool, member_of: &[&str]) -> u32 {
        self.state().ledger.add_role(name, superuser, member_of)
    }

    /// Drop a role from the catalog.
    pub fn drop_role(&self, oid: u32) {
        self.state().ledger.drop_role(oid);
    }

    /// A role as the catalog shows it.
    pub fn role(&self, oid: u32) -> Option<RoleInfo> {
        self.state().ledger.role(oid).cloned()
    }

    /// Turn a role's login on or off behind curfew's back (an administrator's `ALTER ROLE`).
    pub fn set_can_login(&self, oid: u32, can_login: bool) {
        if let Some(role) = self.state().ledger.role_mut(oid) {
            role.can_login = can_login;
        }
    }

    /// An operator's incident lock on a role (as `curfew lock` makes); `None` if no such role.
    pub fn lock_role(
        &self,
        oid: u32,
        reason: &str,
        created_by: &str,
        expires_at: Option<Timestamp>,
    ) -> Option<i64> {
        let mut state = self.state();
        let now = state.now();
        state
            .ledger
            .lock_role(oid, reason, created_by, now, expires_at)
    }

    /// An operator releases a lock (as `curfew unlock` does).
    pub fn release_lock(&self, id: i64, by: &str) {
        let mut state = self.state();
        let now = state.now();
        state.ledger.release(now, by, |l| l.id == id);
    }

    /// Every lock row, released ones too.
    pub fn locks(&self) -> Vec<LockRow> {
        self.state().ledger.locks()
    }

    /// Where the ledger stands for curfew's role.
    pub fn set_ledger_status(&self, status: LedgerStatus) {
        self.state().ledger.status = status;
    }
}
