//! A connection to the in-memory server, implementing every trait of the contract; each call
//! passes the scripted failures, then is answered from the server's state and logged.

use std::sync::Arc;

use curfew_policy::{SessionKey, SessionState};
use jiff::Timestamp;

use super::script::{Call, CallName, Fault, Request};
use super::state::{Anchored, Conn, Holder, MemoryError, Shared, State, lock};
use crate::coordination::LockHolder;
use crate::ending::{
    AuthorizedEnd, EndRequest, IdleState, Outcome, SessionEnding, Signal, Snapshot,
};
use crate::error::BackendError;
use crate::ledger::{
    AuthorizedLoginChange, FaultHook, LedgerStatus, LockRow, LockedRole, LoginChange, RoleInfo,
};
use crate::traits::{
    AnchorStore, Backend, Connector, Coordination, LoginLedger, SessionEnder, SessionReader,
};

/// Opens connections to an in-memory server (`MemoryServer::connector`). Two connectors are
/// equal when they reach the same server.
#[derive(Debug, Clone)]
pub struct MemoryConnector {
    server: Shared,
}

impl MemoryConnector {
    pub(crate) fn new(server: Shared) -> MemoryConnector {
        MemoryConnector { server }
    }
}

impl PartialEq for MemoryConnector {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.server, &other.server)
    }
}

impl Connector for MemoryConnector {
    type Backend = MemoryConnection;

    async fn connect(&self) -> Result<(MemoryConnection, Vec<String>), BackendError> {
        let mut state = lock(&self.server);
        state.next_connection += 1;
        let id = state.next_connection;
        let at = state.now();
        let fault = take_fault(&mut state, CallName::Connect);
        let failed = match fault {
            Some(Fault::ConnectionLost) => Some(state.lost()),
            Some(Fault::Refused { code }) => Some(state.refused(code)),
            Some(Fault::LeadershipLost(to)) => {
                state.leader = Some(Holder::Other(to));
                None
            }
            None => None,
        };
        state.calls.push(Call {
            connection: id,
            at,
            request: Request::Connect,
            failed: failed.as_ref().map(|e| e.kind().clone()),
        });
        if let Some(e) = failed {
            return Err(e);
        }
        let key = state.new_key();
        state.connections.insert(
            id,
            Conn {
                key,
                application: String::new(),
                alive: true,
            },
        );
        let own_role = state.own_role.clone();
        drop(state);
        let connection = MemoryConnection {
            server: self.server.clone(),
            id,
            fence: None,
            own_role,
        };
        Ok((connection, Vec::new()))
    }
}

/// One connection to an in-memory server. Dropping it closes its session (and releases the
/// leader lock if it held it).
#[derive(Debug)]
pub struct MemoryConnection {
    server: Shared,
    id: u64,
    fence: Option<SessionKey>,
    /// The role it is connected as.
    own_role: String,
}

impl Drop for MemoryConnection {
    fn drop(&mut self) {
        let mut state = lock(&self.server);
        state.close(self.id);
        state.connections.remove(&self.id);
    }
}

/// The first scripted failure this call hits, if any.
fn take_fault(state: &mut State, call: CallName) -> Option<Fault> {
    state
        .scripted
        .iter_mut()
        .find_map(|s| s.hits(call).then(|| s.fault.clone()))
}

impl MemoryConnection {
    /// Run one call: the closed connection and the scripted failures first, then `answer`
    /// (given whether the call was refused, and its request to complete), then the log entry.
    fn call<T>(
        &self,
        mut request: Request,
        answer: impl FnOnce(&mut State, Option<Option<String>>, &mut Request) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let mut state = lock(&self.server);
        state.settle_exits();
        let at = state.now();
        let name = request.name();
        let alive = state.connections.get(&self.id).is_some_and(|c| c.alive);
        let result = if alive {
            let refusal = match take_fault(&mut state, name) {
                Some(Fault::ConnectionLost) => {
                    state.close(self.id);
                    Err(state.lost())
                }
                Some(Fault::Refused { code }) if name != CallName::SignalAll => {
                    Err(state.refused(code))
                }
                Some(Fault::Refused { code }) => Ok(Some(code)),
                Some(Fault::LeadershipLost(to)) => {
                    state.leader = Some(Holder::Other(to));
                    Ok(None)
                }
                None => Ok(None),
            };
            refusal.and_then(|refusal| answer(&mut state, refusal, &mut request))
        } else {
            Err(state.lost())
        };
        state.calls.push(Call {
            connection: self.id,
            at,
            request,
            failed: result.as_ref().err().map(|e| e.kind().clone()),
        });
        result
    }

    /// Fenced calls act only while the fence's session holds the leader lock.
    fn fenced(&self, state: &State) -> Result<(), BackendError> {
        match self.fence {
            Some(leader) if state.leader_key() != Some(leader) => {
                Err(BackendError::not_leading(&state.target))
            }
            _ => Ok(()),
        }
    }

    /// A ledger call: fenced if it changes something.
    fn ledger<T>(
        &self,
        name: &'static str,
        changes: bool,
        answer: impl FnOnce(&mut State) -> T,
    ) -> Result<T, BackendError> {
        self.call(Request::Ledger(name), |state, _, _| {
            if changes {
                self.fenced(state)?;
            }
            Ok(answer(state))
        })
    }
}

/// Whether the session still matches the request (not the deadline: that is asked apart).
fn matches(state: &State, request: &EndRequest) -> bool {
    let live = |key: &SessionKey| state.sessions.iter().any(|s| s.key() == *key);
    let Some(session) = state.sessions.iter().find(|s| s.key() == request.session) else {
        return false;
    };
    let idle = match request.idle_since {
        None => true,
        Some((kind, since)) => {
            let in_state = match kind {
                IdleState::Idle => session.state == SessionState::Idle,
                IdleState::InTransaction => session.state.is_idle_in_transaction(),
            };
            in_state && session.state_change == Some(since)
        }
    };
    idle && request.keepers.iter().all(live)
}

/// The answer to one request, signalling the session if it holds.
fn end(state: &mut State, request: &EndRequest, refusal: Option<&Option<String>>) -> Signal {
    let at = state.now();
    if !matches(state, request) {
        return Signal::Settled(Outcome::NoLongerMatched { at });
    }
    if request.not_before.is_some_and(|t| at < t) {
        return Signal::Settled(Outcome::NotYetDue { at });
    }
    if let Some(code) = refusal {
        return Signal::Settled(Outcome::Failed {
            reason: "the in-memory server refused to end the session (scripted)".to_owned(),
            code: code.clone(),
        });
    }
    if let Some((reason, code)) = state.refusing.get(&request.session) {
        return Signal::Settled(Outcome::Failed {
            reason: reason.clone(),
            code: code.clone(),
        });
    }
    state.signalled.push((request.session, at));
    match state.exit_delay {
        Some(delay) if delay.is_zero() => state.drop_session(request.session),
        Some(delay) => state
            .exiting
            .push((request.session, tokio::time::Instant::now() + delay)),
        None => {}
    }
    Signal::Signalled { at }
}

impl SessionReader for MemoryConnection {
    async fn snapshot(&mut self, memberships: bool) -> Result<Snapshot, BackendError> {
        self.call(Request::Snapshot, |state, _, _| {
            let mut sessions = state.sessions.clone();
            if !memberships {
                for s in &mut sessions {
                    s.member_of = Arc::from(Vec::<String>::new());
                }
            }
            let live: std::collections::HashSet<_> = sessions.iter().map(|s| s.key()).collect();
            let mut snapshot = Snapshot::new(state.now(), sessions);
            // As the registry is read: joined on the live sessions.
            snapshot.gateway = state
                .gateway
                .iter()
                .filter(|(key, _)| live.contains(key))
                .map(|(key, client)| (*key, client.clone()))
                .collect();
            Ok(snapshot)
        })
    }
}

impl SessionEnder for MemoryConnection {
    async fn signal_all<A: SessionEnding>(
        &mut self,
        requests: &[AuthorizedEnd<'_, A>],
    ) -> Result<Vec<Signal>, BackendError> {
        let requests: Vec<EndRequest> = requests.iter().map(|r| r.request().clone()).collect();
        let requests = &requests[..];
        let logged = Request::SignalAll {
            requests: requests.to_vec(),
            answers: Vec::new(),
        };
        self.call(logged, |state, refusal, logged| {
            self.fenced(state)?;
            let answers: Vec<Signal> = requests
                .iter()
                .map(|r| end(state, r, refusal.as_ref()))
                .collect();
            if let Request::SignalAll { answers: log, .. } = logged {
                log.clone_from(&answers);
            }
            Ok(answers)
        })
    }

    async fn exited(
        &mut self,
        sessions: &[SessionKey],
    ) -> Result<Vec<Option<Timestamp>>, BackendError> {
        self.call(Request::Exited(sessions.to_vec()), |state, _, _| {
            let now = state.now();
            Ok(sessions
                .iter()
                .map(|k| (!state.sessions.iter().any(|s| s.key() == *k)).then_some(now))
                .collect())
        })
    }
}

impl Coordination for MemoryConnection {
    async fn try_lead(&mut self) -> Result<Option<SessionKey>, BackendError> {
        let id = self.id;
        self.call(Request::TryLead, |state, _, _| {
            let mine = state.connections.get(&id).map(|c| c.key);
            match state.leader {
                None => {
                    state.leader = Some(Holder::Connection(id));
                    Ok(mine)
                }
                Some(Holder::Connection(holder)) if holder == id => Ok(mine),
                Some(_) => Ok(None),
            }
        })
    }

    async fn still_leads(&mut self) -> Result<bool, BackendError> {
        let id = self.id;
        self.call(Request::StillLeads, |state, _, _| {
            Ok(matches!(state.leader, Some(Holder::Connection(h)) if h == id))
        })
    }

    async fn lock_holders(&mut self) -> Result<Vec<LockHolder>, BackendError> {
        let id = self.id;
        self.call(Request::LockHolders, |state, _, _| {
            Ok(match &state.leader {
                None => Vec::new(),
                Some(Holder::Connection(holder)) if *holder == id => Vec::new(),
                Some(Holder::Connection(holder)) => state
                    .connections
                    .get(holder)
                    .map(|c| LockHolder {
                        pid: c.key.pid,
                        client_addr: None,
                        backend_start: Some(c.key.backend_start),
                        database: Some(state.database.clone()),
                        application: Some(c.application.clone()),
                        role: Some(state.own_role.clone()),
                        own_role: true,
                        granted: true,
                    })
                    .into_iter()
                    .collect(),
                Some(Holder::Other(holder)) => vec![holder.clone()],
            })
        })
    }

    fn fence(&mut self, leader: Option<SessionKey>) {
        self.fence = leader;
    }

    async fn announce(&mut self, text: &str) -> Result<(), BackendError> {
        let id = self.id;
        self.call(Request::Announce(text.to_owned()), |state, _, _| {
            if let Some(conn) = state.connections.get_mut(&id) {
                text.clone_into(&mut conn.application);
            }
            Ok(())
        })
    }

    async fn ping(&mut self) -> Result<(), BackendError> {
        self.call(Request::Ping, |_, _, _| Ok(()))
    }
}

impl AnchorStore for MemoryConnection {
    async fn anchor(&mut self, chain: &str, seq: u64, hash: &str) -> Result<(), BackendError> {
        let request = Request::Anchor {
            chain: chain.to_owned(),
            seq,
        };
        self.call(request, |state, _, _| {
            let held = state
                .anchors
                .iter()
                .filter(|a| a.chain == chain)
                .map(|a| a.seq)
                .max();
            if let Some(held) = held.filter(|held| *held >= seq) {
                let error = MemoryError::AnchorBehind {
                    target: state.target.clone(),
                    chain: chain.to_owned(),
                    held,
                };
                return Err(BackendError::new(
                    crate::error::ErrorKind::Refused { code: None },
                    error,
                ));
            }
            let at = state.now();
            state.anchors.push(Anchored {
                chain: chain.to_owned(),
                seq,
                hash: hash.to_owned(),
                at,
            });
            Ok(())
        })
    }
}

impl LoginLedger for MemoryConnection {
    fn own_role(&self) -> &str {
        &self.own_role
    }

    fn login_change_problem(
        &self,
        target: &str,
        status: LedgerStatus,
        needs: bool,
    ) -> Option<String> {
        match status {
            LedgerStatus::Ready => None,
            LedgerStatus::Missing if !needs => None,
            other => Some(format!(
                "target \"{target}\": curfew's role cannot keep login locks (ledger {other:?})"
            )),
        }
    }

    async fn ledger_status(&self) -> Result<LedgerStatus, BackendError> {
        self.ledger("ledger_status", false, |s| s.ledger.status)
    }

    async fn ledger_has_work(&self) -> Result<bool, BackendError> {
        self.ledger("ledger_has_work", false, |s| s.ledger.has_work())
    }

    async fn roles(&self) -> Result<Vec<RoleInfo>, BackendError> {
        self.ledger("roles", false, |s| s.ledger.roles())
    }

    async fn sync_window_locks(
        &self,
        rule: &str,
        roles: &[(u32, String)],
        reason: &str,
    ) -> Result<u64, BackendError> {
        self.ledger("sync_window_locks", true, |s| {
            let now = s.now();
            s.ledger.sync_window_locks(rule, roles, reason, now)
        })
    }

    async fn release_window_locks_except(&self, rules: &[&str]) -> Result<u64, BackendError> {
        self.ledger("release_window_locks_except", true, |s| {
            let now = s.now();
            s.ledger.release(
                now,
                "curfew agent: the rule is no longer in the policy",
                |l| l.kind == "window" && !l.rule.as_deref().is_some_and(|r| rules.contains(&r)),
            )
        })
    }

    async fn expire_locks(&self) -> Result<u64, BackendError> {
        self.ledger("expire_locks", true, |s| {
            let now = s.now();
            s.ledger.expire(now)
        })
    }

    async fn unannounced(&self) -> Result<Vec<(LockRow, bool)>, BackendError> {
        self.ledger("unannounced", false, |s| s.ledger.unannounced())
    }

    async fn mark_announced(&self, id: i64) -> Result<(), BackendError> {
        self.ledger("mark_announced", true, |s| s.ledger.mark_announced(id))
    }

    async fn forget_dropped_roles(&self) -> Result<(), BackendError> {
        self.ledger("forget_dropped_roles", true, |s| {
            let now = s.now();
            s.ledger.forget_dropped_roles(now);
        })
    }

    async fn locked_roles(&self) -> Result<Vec<LockedRole>, BackendError> {
        self.ledger("locked_roles", false, |s| s.ledger.locked_roles())
    }

    async fn disable_login(
        &mut self,
        role: &AuthorizedLoginChange<'_>,
        fault: FaultHook<'_>,
    ) -> Result<LoginChange, BackendError> {
        let role = *role.request();
        let change = self.ledger("disable_login", true, |s| s.ledger.disable_login(role))?;
        // The same points as a database adapter's, after the change is made.
        if change == LoginChange::Disabled {
            fault("lock.after-ledger");
        }
        Ok(change)
    }

    async fn restore_login(
        &mut self,
        role: &AuthorizedLoginChange<'_>,
        fault: FaultHook<'_>,
    ) -> Result<LoginChange, BackendError> {
        let role = *role.request();
        let change = self.ledger("restore_login", true, |s| s.ledger.restore_login(role))?;
        if change == LoginChange::Restored {
            fault("restore.after-alter");
        }
        Ok(change)
    }
}

impl Backend for MemoryConnection {
    fn describe(&self) -> String {
        format!("in-memory server as role \"{}\"", self.own_role)
    }
}
