//! The login-lock ledger, kept in the database (schema `curfew`) so that every agent replica
//! and every `curfew lock` sees the same state.
//!
//! - `curfew.lock`: one row per reason a role is locked (a window rule, an incident), with who,
//!   when, expiry and release. A role is to be locked while it has an active row.
//! - `curfew.disabled_login`: "curfew turned this role's login off". Written in the same
//!   transaction as `ALTER ROLE ... NOLOGIN`, deleted in the same transaction as `... LOGIN`, so
//!   a crash at any point loses nothing, and a role that was NOLOGIN before curfew touched it
//!   (no row) is never enabled.

mod change;
mod dedicated;
mod gateway_auth;
mod gateway_inspect;
mod gateway_registry;
mod inspect;
mod install;
mod status;
mod vetting;

pub use crate::names::GATEWAY_AUTH_OWNER;
pub use crate::names::GATEWAY_REGISTRY_OWNER;
pub use crate::names::OWNER_ROLE;
pub use crate::sql::gateway_admission::{
    CLAIM_LIFETIME_SECONDS, GATEWAY_CLAIM_QUERY, GATEWAY_RELEASE_QUERY,
};
pub use crate::sql::gateway_auth::{GATEWAY_SECRET_FUNCTION, GATEWAY_SECRET_QUERY};
pub use crate::sql::gateway_registry::{
    GATEWAY_REGISTER_FUNCTION, GATEWAY_REGISTER_QUERY, GATEWAY_SESSIONS_TABLE,
    MAX_GATEWAY_ID_CHARS, NOT_A_GATEWAY_BACKEND,
};
pub use crate::sql::gateway_violations::{
    GATEWAY_VIOLATION_QUERY, MAX_VIOLATION_RULE_CHARS, MAX_VIOLATION_WINDOW_SECONDS,
};
pub use crate::sql::ledger::{AGENT_FUNCTIONS, LEDGER_VERSION, LockProgress};
pub use crate::sql::ledger_catalog::{FunctionFacts, LedgerFacts};
pub use curfew_backend::{FaultHook, LedgerStatus, LockRow, LockedRole, LoginChange, RoleInfo};
pub use gateway_auth::{GatewayAuth, GatewayAuthInstalled};
pub use gateway_inspect::{DedicatedFacts, DefinerFacts, GatewayInstallFacts, InstalledRole};
pub use gateway_registry::GatewayRegistryInstalled;
pub use install::Installed;
pub use status::LedgerProblem;

use jiff::Timestamp;
use tokio_postgres::error::SqlState;

use crate::connect::Connection;
use crate::error::PgError;
use crate::sql::ledger::{
    EXPIRE_LOCKS, FORGET_DROPPED_ROLES, HAS_WORK, MARK_ANNOUNCED, RELEASE_WINDOW_LOCKS_EXCEPT,
    ROLES, SYNC_WINDOW_LOCKS, WHAT_PROGRESS, WHAT_READ, WHAT_ROLES, active_locks_sql, attach_locks,
    changed, create_incident_lock_sql, decode_lock_row, decode_locked_role, decode_progress,
    decode_role, decode_unannounced, lock_progress_sql, locked_roles_sql, locks_sql,
    release_incident_lock_sql, unannounced_sql,
};
use crate::sql::scalar;

impl Connection {
    /// A ledger statement's error, said so that an operator knows what to do: the functions'
    /// own refusals (not leading, a protected role, a login the owner may not change), a
    /// missing installation or grant (run `curfew init`), or a failure.
    pub(crate) fn ledger_error(&self, what: &'static str, e: tokio_postgres::Error) -> PgError {
        let detail = e
            .as_db_error()
            .map(|d| d.message().to_owned())
            .unwrap_or_default();
        match e.code().map(SqlState::code) {
            Some("CF001") => self.not_leading(),
            Some("CF002") => PgError::LoginRefused {
                target: self.target.clone(),
                detail,
            },
            Some("CF003") => PgError::AlterRole {
                target: self.target.clone(),
                version_num: self.info.version_num,
                detail,
            },
            Some(code @ ("42501" | "42883" | "3F000" | "42P01")) => PgError::LedgerPrivilege {
                target: self.target.clone(),
                role: self.info.role.clone(),
                detail,
                code: code.to_owned(),
            },
            _ => PgError::query(&self.target, what, e),
        }
    }

    /// The fence's parameters: the leader lock session's pid and start, or NULLs (which the
    /// functions refuse: only a leader writes the ledger).
    fn fence_params(&self) -> (Option<i32>, Option<Timestamp>) {
        self.fence
            .map_or((None, None), |l| (Some(l.pid), Some(l.backend_start)))
    }

    /// Whether the ledger exists and this role can read it (false when it cannot: the caller
    /// then has nothing to read; [`Connection::ledger_status`] says why).
    pub async fn ledger_exists(&self) -> Result<bool, PgError> {
        Ok(self.ledger_status().await?.readable())
    }

    /// Whether the ledger holds anything for the agent to do: a lock not released, a lock row
    /// not yet recorded in the audit log, or a login curfew disabled. One small read.
    pub async fn ledger_has_work(&self) -> Result<bool, PgError> {
        let row = self
            .client
            .query_one(HAS_WORK, &[])
            .await
            .map_err(|e| self.ledger_error(WHAT_READ, e))?;
        scalar(&row, &self.target, WHAT_READ)
    }

    /// Every role (except PostgreSQL's predefined `pg_*` roles) with its memberships.
    pub async fn roles(&self) -> Result<Vec<RoleInfo>, PgError> {
        let rows = self
            .client
            .query(ROLES, &[])
            .await
            .map_err(|e| PgError::query(&self.target, WHAT_ROLES, e))?;
        rows.iter().map(|r| decode_role(r, &self.target)).collect()
    }

    /// Make the active window locks of `rule` exactly `roles` (oid, name): add the missing,
    /// release the others. Returns how many rows changed.
    pub async fn sync_window_locks(
        &self,
        rule: &str,
        roles: &[(u32, String)],
        reason: &str,
    ) -> Result<u64, PgError> {
        let oids: Vec<u32> = roles.iter().map(|(o, _)| *o).collect();
        let names: Vec<&str> = roles.iter().map(|(_, n)| n.as_str()).collect();
        let (pid, start) = self.fence_params();
        let count: i64 = self
            .client
            .query_one(
                SYNC_WINDOW_LOCKS,
                &[&rule, &oids, &names, &reason, &pid, &start],
            )
            .await
            .map_err(|e| self.ledger_error("recording window locks", e))
            .and_then(|row| scalar(&row, &self.target, "recording window locks"))?;
        Ok(changed(count))
    }

    /// Release the active window locks of rules no longer in the policy.
    pub async fn release_window_locks_except(&self, rules: &[&str]) -> Result<u64, PgError> {
        let (pid, start) = self.fence_params();
        let released: i64 = self
            .client
            .query_one(RELEASE_WINDOW_LOCKS_EXCEPT, &[&rules, &pid, &start])
            .await
            .map_err(|e| self.ledger_error("releasing the locks of removed rules", e))
            .and_then(|row| scalar(&row, &self.target, "releasing the locks of removed rules"))?;
        Ok(changed(released))
    }

    /// Release incident locks whose expiry has passed.
    pub async fn expire_locks(&self) -> Result<u64, PgError> {
        let (pid, start) = self.fence_params();
        let released: i64 = self
            .client
            .query_one(EXPIRE_LOCKS, &[&pid, &start])
            .await
            .map_err(|e| self.ledger_error("expiring locks", e))
            .and_then(|row| scalar(&row, &self.target, "expiring locks"))?;
        Ok(changed(released))
    }

    /// Record an incident lock on a role (or update the reason and expiry of the one in force).
    /// An operator's request (`curfew lock`), not fenced: the leading agent applies it.
    pub async fn create_incident_lock(
        &self,
        role: &RoleInfo,
        reason: &str,
        created_by: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<LockRow, PgError> {
        let row = self
            .client
            .query_one(
                &create_incident_lock_sql(),
                &[&role.oid, &reason, &created_by, &expires_at],
            )
            .await
            .map_err(|e| self.ledger_error("recording the lock", e))?;
        decode_lock_row(&row, &self.target)
    }

    /// Release the incident lock on a role, if one is in force.
    pub async fn release_incident_lock(
        &self,
        role_oid: u32,
        released_by: &str,
    ) -> Result<Option<LockRow>, PgError> {
        let row = self
            .client
            .query_opt(&release_incident_lock_sql(), &[&role_oid, &released_by])
            .await
            .map_err(|e| self.ledger_error("releasing the lock", e))?;
        row.as_ref()
            .map(|r| decode_lock_row(r, &self.target))
            .transpose()
    }

    /// Locks in force (or, with `history`, all rows), newest first.
    pub async fn locks(&self, history: bool) -> Result<Vec<LockRow>, PgError> {
        let rows = self
            .client
            .query(&locks_sql(history), &[])
            .await
            .map_err(|e| self.ledger_error("reading the locks", e))?;
        rows.iter()
            .map(|r| decode_lock_row(r, &self.target))
            .collect()
    }

    /// Where a role and one of its lock rows stand.
    pub async fn lock_progress(
        &self,
        role_oid: u32,
        lock_id: i64,
    ) -> Result<LockProgress, PgError> {
        let row = self
            .client
            .query_one(&lock_progress_sql(), &[&role_oid, &lock_id])
            .await
            .map_err(|e| self.ledger_error(WHAT_PROGRESS, e))?;
        decode_progress(&row, &self.target)
    }

    /// Remove the ledger rows of roles that no longer exist (and release their locks).
    pub async fn forget_dropped_roles(&self) -> Result<(), PgError> {
        let (pid, start) = self.fence_params();
        self.client
            .execute(FORGET_DROPPED_ROLES, &[&pid, &start])
            .await
            .map(drop)
            .map_err(|e| self.ledger_error("clearing dropped roles", e))
    }

    /// Every role with an active lock or a ledger row: what the agent must reconcile.
    pub async fn locked_roles(&self) -> Result<Vec<LockedRole>, PgError> {
        let roles = self
            .client
            .query(&locked_roles_sql(), &[])
            .await
            .map_err(|e| self.ledger_error(WHAT_READ, e))?;
        let active = self
            .client
            .query(&active_locks_sql(), &[])
            .await
            .map_err(|e| self.ledger_error(WHAT_READ, e))?;
        let active = active
            .iter()
            .map(|r| decode_lock_row(r, &self.target))
            .collect::<Result<Vec<LockRow>, PgError>>()?;
        let roles = roles
            .iter()
            .map(|r| decode_locked_role(r, &self.target))
            .collect::<Result<Vec<LockedRole>, PgError>>()?;
        Ok(attach_locks(roles, &active))
    }

    /// Lock rows created or released that the audit log has not recorded yet.
    pub async fn unannounced(&self) -> Result<Vec<(LockRow, bool)>, PgError> {
        let rows = self
            .client
            .query(&unannounced_sql(), &[])
            .await
            .map_err(|e| self.ledger_error(WHAT_READ, e))?;
        rows.iter()
            .map(|r| decode_unannounced(r, &self.target))
            .collect()
    }

    /// Mark a lock row's creation (and, if released, its release) as recorded.
    pub async fn mark_announced(&self, id: i64) -> Result<(), PgError> {
        let (pid, start) = self.fence_params();
        self.client
            .execute(MARK_ANNOUNCED, &[&id, &pid, &start])
            .await
            .map(drop)
            .map_err(|e| self.ledger_error("updating the ledger", e))
    }
}
