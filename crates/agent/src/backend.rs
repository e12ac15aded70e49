//! What the loop needs from a database: a snapshot of its sessions on its own clock, and a
//! guarded termination. PostgreSQL implements it today; other databases can later.

use std::future::Future;

use curfew_postgres::{
    Connection, FaultHook, Guard, LeaderInfo, Leadership, LedgerStatus, LockRow, LockedRole,
    LoginChange, PgError, RoleInfo, Signal, Snapshot, TargetSpec,
};

/// An open connection to one database server.
pub trait Backend: LoginLedger + Send {
    /// The live client sessions (never curfew's own) and the server's clock.
    fn snapshot(
        &mut self,
        memberships: bool,
    ) -> impl Future<Output = Result<Snapshot, PgError>> + Send;

    /// Signal every session whose guard still holds, in one round trip, in the guards' order.
    fn signal_all(
        &mut self,
        guards: &[Guard],
    ) -> impl Future<Output = Result<Vec<Signal>, PgError>> + Send;

    /// For each (pid, backend_start), the server's clock if its process is gone.
    fn exited(
        &mut self,
        sessions: &[(i32, jiff::Timestamp)],
    ) -> impl Future<Output = Result<Vec<Option<jiff::Timestamp>>, PgError>> + Send;

    /// The server's version, for logs.
    fn describe(&self) -> String;

    /// Try to take the target's leader lock on this connection (one that does nothing else).
    fn try_lead(&mut self) -> impl Future<Output = Result<Option<Leadership>, PgError>> + Send;

    /// Whether this connection still holds the leader lock.
    fn still_leads(&mut self) -> impl Future<Output = Result<bool, PgError>> + Send;

    /// Every other session holding the leader lock (curfew's own role first).
    fn lock_holders(&mut self) -> impl Future<Output = Result<Vec<LeaderInfo>, PgError>> + Send;

    /// Act on this connection only while `leadership` holds the lock (checked by the server).
    fn fence(&mut self, leadership: Option<Leadership>);

    /// Show `text` as this session's application name (the leader's mode and policy).
    fn announce(&mut self, text: &str) -> impl Future<Output = Result<(), PgError>> + Send;

    /// One round trip, to know the server still answers.
    fn ping(&mut self) -> impl Future<Output = Result<(), PgError>> + Send;

    /// Store the audit chain's head in the target's anchor store (see `crate::anchor`).
    fn anchor(
        &mut self,
        chain: &str,
        seq: u64,
        hash: &str,
    ) -> impl Future<Output = Result<(), PgError>> + Send;
}

/// Opens connections to one target.
pub trait Connector: Send + Sync + 'static {
    /// The connection type.
    type Backend: Backend;

    /// Connect; the second value holds warnings for the operator.
    fn connect(&self)
    -> impl Future<Output = Result<(Self::Backend, Vec<String>), PgError>> + Send;
}

impl Backend for Connection {
    async fn snapshot(&mut self, memberships: bool) -> Result<Snapshot, PgError> {
        Connection::snapshot(self, &[], memberships).await
    }

    async fn signal_all(&mut self, guards: &[Guard]) -> Result<Vec<Signal>, PgError> {
        Connection::signal_all(self, guards).await
    }

    async fn exited(
        &mut self,
        sessions: &[(i32, jiff::Timestamp)],
    ) -> Result<Vec<Option<jiff::Timestamp>>, PgError> {
        Connection::exited(self, sessions).await
    }

    async fn try_lead(&mut self) -> Result<Option<Leadership>, PgError> {
        Connection::try_lead(self).await
    }

    async fn still_leads(&mut self) -> Result<bool, PgError> {
        Connection::still_leads(self).await
    }

    async fn announce(&mut self, text: &str) -> Result<(), PgError> {
        Connection::announce(self, text).await
    }

    async fn ping(&mut self) -> Result<(), PgError> {
        Connection::ping(self).await
    }

    async fn anchor(&mut self, chain: &str, seq: u64, hash: &str) -> Result<(), PgError> {
        Connection::anchor(self, chain, seq, hash).await.map(drop)
    }

    async fn lock_holders(&mut self) -> Result<Vec<LeaderInfo>, PgError> {
        Connection::lock_holders(self).await
    }

    fn fence(&mut self, leadership: Option<Leadership>) {
        Connection::fence(self, leadership);
    }

    fn describe(&self) -> String {
        format!(
            "PostgreSQL {} as role \"{}\"",
            self.info.version, self.info.role
        )
    }
}

impl Connector for TargetSpec {
    type Backend = Connection;

    async fn connect(&self) -> Result<(Connection, Vec<String>), PgError> {
        let connected = curfew_postgres::connect(self).await?;
        Ok((connected.connection, connected.warnings))
    }
}

/// What login locks need from a server: its roles, the ledger of locks, and login changes that
/// are recorded in the same transaction as they are made.
pub trait LoginLedger: Send {
    /// The role curfew is connected as (never locked).
    fn own_role(&self) -> &str;

    /// Why curfew's role cannot keep login locks on `target` with the ledger in this state, and
    /// what an administrator must run (`curfew init`); `needs`: the policy has lock rules.
    fn login_change_problem(
        &self,
        target: &str,
        status: LedgerStatus,
        needs: bool,
    ) -> Option<String>;

    /// Where the ledger stands (catalog reads only: never a permission error).
    fn ledger_status(&self) -> impl Future<Output = Result<LedgerStatus, PgError>> + Send;

    /// Whether the ledger holds anything to do (locks, unrecorded rows, disabled logins).
    fn ledger_has_work(&self) -> impl Future<Output = Result<bool, PgError>> + Send;

    /// Every role with its memberships.
    fn roles(&self) -> impl Future<Output = Result<Vec<RoleInfo>, PgError>> + Send;

    /// Make `rule`'s active window locks exactly these roles.
    fn sync_window_locks(
        &self,
        rule: &str,
        roles: &[(u32, String)],
        reason: &str,
    ) -> impl Future<Output = Result<u64, PgError>> + Send;

    /// Release window locks of rules not in this list.
    fn release_window_locks_except(
        &self,
        rules: &[&str],
    ) -> impl Future<Output = Result<u64, PgError>> + Send;

    /// Release expired locks.
    fn expire_locks(&self) -> impl Future<Output = Result<u64, PgError>> + Send;

    /// Lock rows not yet recorded in the audit log (and whether their creation was).
    fn unannounced(&self) -> impl Future<Output = Result<Vec<(LockRow, bool)>, PgError>> + Send;

    /// Mark a lock row as recorded.
    fn mark_announced(&self, id: i64) -> impl Future<Output = Result<(), PgError>> + Send;

    /// Remove ledger entries of dropped roles.
    fn forget_dropped_roles(&self) -> impl Future<Output = Result<(), PgError>> + Send;

    /// Roles with active locks or ledger entries.
    fn locked_roles(&self) -> impl Future<Output = Result<Vec<LockedRole>, PgError>> + Send;

    /// Disable a locked role's login (transactionally with its ledger entry).
    fn disable_login(
        &mut self,
        role_oid: u32,
        fault: FaultHook<'_>,
    ) -> impl Future<Output = Result<LoginChange, PgError>> + Send;

    /// Restore a role's login (transactionally with its ledger entry).
    fn restore_login(
        &mut self,
        role_oid: u32,
        fault: FaultHook<'_>,
    ) -> impl Future<Output = Result<LoginChange, PgError>> + Send;
}

impl LoginLedger for Connection {
    fn own_role(&self) -> &str {
        &self.info.role
    }

    fn login_change_problem(
        &self,
        target: &str,
        status: LedgerStatus,
        needs: bool,
    ) -> Option<String> {
        status.problem(target, &self.info.role, needs)
    }

    async fn ledger_status(&self) -> Result<LedgerStatus, PgError> {
        Connection::ledger_status(self).await
    }

    async fn ledger_has_work(&self) -> Result<bool, PgError> {
        Connection::ledger_has_work(self).await
    }

    async fn roles(&self) -> Result<Vec<RoleInfo>, PgError> {
        Connection::roles(self).await
    }

    async fn sync_window_locks(
        &self,
        rule: &str,
        roles: &[(u32, String)],
        reason: &str,
    ) -> Result<u64, PgError> {
        Connection::sync_window_locks(self, rule, roles, reason).await
    }

    async fn release_window_locks_except(&self, rules: &[&str]) -> Result<u64, PgError> {
        Connection::release_window_locks_except(self, rules).await
    }

    async fn expire_locks(&self) -> Result<u64, PgError> {
        Connection::expire_locks(self).await
    }

    async fn unannounced(&self) -> Result<Vec<(LockRow, bool)>, PgError> {
        Connection::unannounced(self).await
    }

    async fn mark_announced(&self, id: i64) -> Result<(), PgError> {
        Connection::mark_announced(self, id).await
    }

    async fn forget_dropped_roles(&self) -> Result<(), PgError> {
        Connection::forget_dropped_roles(self).await
    }

    async fn locked_roles(&self) -> Result<Vec<LockedRole>, PgError> {
        Connection::locked_roles(self).await
    }

    async fn disable_login(
        &mut self,
        role_oid: u32,
        fault: FaultHook<'_>,
    ) -> Result<LoginChange, PgError> {
        Connection::disable_login(self, role_oid, fault).await
    }

    async fn restore_login(
        &mut self,
        role_oid: u32,
        fault: FaultHook<'_>,
    ) -> Result<LoginChange, PgError> {
        Connection::restore_login(self, role_oid, fault).await
    }
}
