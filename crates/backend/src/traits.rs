//! The capabilities the loop needs from a database, one trait each, and [`Backend`]: a
//! connection that has them all.

use std::future::Future;

use curfew_policy::SessionKey;
use jiff::Timestamp;

use crate::coordination::LockHolder;
use crate::ending::{AuthorizedEnd, SessionEnding, Signal, Snapshot};
use crate::error::BackendError;
use crate::ledger::{
    AuthorizedLoginChange, FaultHook, LedgerStatus, LockRow, LockedRole, LoginChange, RoleInfo,
};

/// Reading the live client sessions.
pub trait SessionReader: Send {
    /// The live client sessions (never curfew's own) and the server's clock. `memberships`:
    /// also read each role's memberships (needed only when the policy uses `member_of`).
    fn snapshot(
        &mut self,
        memberships: bool,
    ) -> impl Future<Output = Result<Snapshot, BackendError>> + Send;
}

/// Ending sessions, guarded: each end request is checked by the database in the same step
/// as the end.
pub trait SessionEnder: Send {
    /// Signal every session whose request still holds, in one round trip, answers in the
    /// requests' order. A refusal for one session is its answer (`Settled(Failed)`), not an
    /// error; a lost connection or a failed fence is an error. Each request comes with the
    /// intent record that announced it (only the audit journal makes one).
    fn signal_all<A: SessionEnding>(
        &mut self,
        requests: &[AuthorizedEnd<'_, A>],
    ) -> impl Future<Output = Result<Vec<Signal>, BackendError>> + Send;

    /// For each session, the server's clock if it is gone.
    fn exited(
        &mut self,
        sessions: &[SessionKey],
    ) -> impl Future<Output = Result<Vec<Option<Timestamp>>, BackendError>> + Send;
}

/// One leader per server: a lock held by a session of its own, and a fence on every action.
pub trait Coordination: Send {
    /// Try to take the target's leader lock on this connection (one that does nothing else);
    /// `Some`: the session that holds it now.
    fn try_lead(&mut self)
    -> impl Future<Output = Result<Option<SessionKey>, BackendError>> + Send;

    /// Whether this connection still holds the leader lock.
    fn still_leads(&mut self) -> impl Future<Output = Result<bool, BackendError>> + Send;

    /// Every other session holding or awaiting the leader lock (curfew's own role first).
    fn lock_holders(
        &mut self,
    ) -> impl Future<Output = Result<Vec<LockHolder>, BackendError>> + Send;

    /// Act on this connection only while the session `leader` holds the lock (checked by the
    /// server); `None` removes the fence.
    fn fence(&mut self, leader: Option<SessionKey>);

    /// Show `text` where other agents and `curfew check` read it (the leader's mode and policy).
    fn announce(&mut self, text: &str) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// One round trip, to know the server still answers.
    fn ping(&mut self) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// The audit chain's head, kept on the target (append-only, going forward only).
pub trait AnchorStore: Send {
    /// Store the chain's head.
    fn anchor(
        &mut self,
        chain: &str,
        seq: u64,
        hash: &str,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// What login locks need from a server: its roles, the ledger of locks, and login changes that
/// are recorded in the same transaction as they are made.
pub trait LoginLedger: Send {
    /// The role curfew is connected as (never locked).
    fn own_role(&self) -> &str;

    /// Why curfew's role cannot keep login locks on `target` with the ledger in this state, and
    /// what an administrator must do; `needs`: the policy has lock rules.
    fn login_change_problem(
        &self,
        target: &str,
        status: LedgerStatus,
        needs: bool,
    ) -> Option<String>;

    /// Where the ledger stands (never a permission error).
    fn ledger_status(&self) -> impl Future<Output = Result<LedgerStatus, BackendError>> + Send;

    /// Whether the ledger holds anything to do (locks, unrecorded rows, disabled logins).
    fn ledger_has_work(&self) -> impl Future<Output = Result<bool, BackendError>> + Send;

    /// Every role with its memberships.
    fn roles(&self) -> impl Future<Output = Result<Vec<RoleInfo>, BackendError>> + Send;

    /// Make `rule`'s active window locks exactly these roles (id, name).
    fn sync_window_locks(
        &self,
        rule: &str,
        roles: &[(u32, String)],
        reason: &str,
    ) -> impl Future<Output = Result<u64, BackendError>> + Send;

    /// Release window locks of rules not in this list.
    fn release_window_locks_except(
        &self,
        rules: &[&str],
    ) -> impl Future<Output = Result<u64, BackendError>> + Send;

    /// Release expired locks.
    fn expire_locks(&self) -> impl Future<Output = Result<u64, BackendError>> + Send;

    /// Locks not yet recorded in the audit log (and whether their creation was).
    fn unannounced(
        &self,
    ) -> impl Future<Output = Result<Vec<(LockRow, bool)>, BackendError>> + Send;

    /// Mark a lock as recorded.
    fn mark_announced(&self, id: i64) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Remove ledger entries of dropped roles.
    fn forget_dropped_roles(&self) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Roles with active locks or ledger entries.
    fn locked_roles(&self) -> impl Future<Output = Result<Vec<LockedRole>, BackendError>> + Send;

    /// Disable a locked role's login (transactionally with its ledger entry), as the intent
    /// record that announced it says (the request is the role's oid).
    fn disable_login(
        &mut self,
        role: &AuthorizedLoginChange<'_>,
        fault: FaultHook<'_>,
    ) -> impl Future<Output = Result<LoginChange, BackendError>> + Send;

    /// Restore a role's login (transactionally with its ledger entry), as the intent record
    /// that announced it says (the request is the role's oid).
    fn restore_login(
        &mut self,
        role: &AuthorizedLoginChange<'_>,
        fault: FaultHook<'_>,
    ) -> impl Future<Output = Result<LoginChange, BackendError>> + Send;
}

/// An open connection to one database server, with every capability the loop uses.
pub trait Backend:
    SessionReader + SessionEnder + Coordination + AnchorStore + LoginLedger + Send
{
    /// The server and the role, for logs (e.g. `PostgreSQL 17.2 as role "curfew_agent"`).
    fn describe(&self) -> String;
}

/// Opens connections to one target.
pub trait Connector: Clone + PartialEq + Send + Sync + 'static {
    /// The connection type.
    type Backend: Backend;

    /// Connect; the second value holds warnings for the operator.
    fn connect(
        &self,
    ) -> impl Future<Output = Result<(Self::Backend, Vec<String>), BackendError>> + Send;
}
