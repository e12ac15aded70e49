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
mod inspect;
mod install;
mod status;
mod vetting;

pub use crate::names::OWNER_ROLE;
pub use curfew_backend::{FaultHook, LedgerStatus, LockRow, LockedRole, LoginChange, RoleInfo};
pub use inspect::{FunctionFacts, LedgerFacts};
pub use install::{AGENT_FUNCTIONS, Installed};
pub use status::LedgerProblem;

use jiff::Timestamp;
use tokio_postgres::error::SqlState;

use crate::connect::Connection;
use crate::decode::col;
use crate::error::PgError;

/// The ledger's version: 2 since its writes go through functions `curfew init` installs.
pub const LEDGER_VERSION: i32 = 2;

/// The schema's comment, which carries the version.
const SCHEMA_COMMENT: &str =
    "curfew login-lock ledger (version 2); written only through its functions (curfew init)";

/// The ledger's tables. Idempotent (an older ledger keeps its rows).
const DDL: &str = "
CREATE TABLE IF NOT EXISTS curfew.lock (
    id bigserial PRIMARY KEY,
    role_oid oid NOT NULL,
    role_name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('window', 'incident')),
    rule text,
    reason text NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz,
    released_at timestamptz,
    released_by text,
    announced_created boolean NOT NULL DEFAULT false,
    announced_released boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX IF NOT EXISTS lock_one_active
    ON curfew.lock (role_oid, kind, coalesce(rule, ''))
    WHERE released_at IS NULL;
CREATE TABLE IF NOT EXISTS curfew.disabled_login (
    role_oid oid PRIMARY KEY,
    role_name text NOT NULL,
    disabled_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
";

/// A lock is in force: not released, not expired.
pub(crate) const ACTIVE: &str =
    "l.released_at IS NULL AND (l.expires_at IS NULL OR l.expires_at > clock_timestamp())";

/// Where a role stands, for `curfew lock` and `curfew unlock` waiting on the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockProgress {
    /// Whether the role can log in.
    pub can_login: bool,
    /// Whether curfew disabled its login.
    pub disabled_by_curfew: bool,
    /// Its client sessions on this server.
    pub sessions: i64,
    /// Whether the agent has recorded the lock row's creation (and release, if released).
    pub announced: bool,
    /// The reasons of the locks still in force on it.
    pub remaining: Vec<String>,
}

fn lock_row(row: &tokio_postgres::Row, target: &str) -> Result<LockRow, PgError> {
    let what = "reading the ledger";
    Ok(LockRow {
        id: col(row, "id", target, what)?,
        role_oid: col(row, "role_oid", target, what)?,
        role_name: col(row, "role_name", target, what)?,
        kind: col(row, "kind", target, what)?,
        rule: col(row, "rule", target, what)?,
        reason: col(row, "reason", target, what)?,
        created_by: col(row, "created_by", target, what)?,
        created_at: col(row, "created_at", target, what)?,
        expires_at: col(row, "expires_at", target, what)?,
        released_at: col(row, "released_at", target, what)?,
        released_by: col(row, "released_by", target, what)?,
    })
}

const LOCK_COLUMNS: &str = "l.id, l.role_oid, l.role_name, l.kind, l.rule, l.reason, l.created_by, \
                            l.created_at, l.expires_at, l.released_at, l.released_by";

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
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM curfew.lock
                                WHERE released_at IS NULL OR NOT announced_created
                                   OR NOT announced_released)
                        OR EXISTS (SELECT 1 FROM curfew.disabled_login)",
                &[],
            )
            .await
            .map_err(|e| self.ledger_error("reading the ledger", e))?;
        col(&row, 0, &self.target, "reading the ledger")
    }

    /// Every role (except PostgreSQL's predefined `pg_*` roles) with its memberships.
    pub async fn roles(&self) -> Result<Vec<RoleInfo>, PgError> {
        let rows = self
            .client
            .query(
                "WITH RECURSIVE m(member, roleid) AS (
                     SELECT member, roleid FROM pg_auth_members
                     UNION
                     SELECT m.member, a.roleid FROM m JOIN pg_auth_members a ON a.member = m.roleid)
                 SELECT r.oid, r.rolname::text, r.rolcanlogin, r.rolsuper,
                        coalesce((SELECT array_agg(DISTINCT g.rolname::text)
                                  FROM m JOIN pg_roles g ON g.oid = m.roleid
                                  WHERE m.member = r.oid), '{}')
                 FROM pg_roles r
                 WHERE r.rolname !~ '^pg_'
                 ORDER BY r.rolname",
                &[],
            )
            .await
            .map_err(|e| PgError::query(&self.target, "reading the roles", e))?;
        let what = "reading the roles";
        rows.iter()
            .map(|r| {
                Ok(RoleInfo {
                    oid: col(r, 0, &self.target, what)?,
                    name: col(r, 1, &self.target, what)?,
                    can_login: col(r, 2, &self.target, what)?,
                    superuser: col(r, 3, &self.target, what)?,
                    member_of: col(r, 4, &self.target, what)?,
                })
            })
            .collect()
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
        let changed: i64 = self
            .client
            .query_one(
                "SELECT curfew.sync_window_locks($1, $2::oid[], $3::text[], $4, $5, $6)",
                &[&rule, &oids, &names, &reason, &pid, &start],
            )
            .await
            .map_err(|e| self.ledger_error("recording window locks", e))
            .and_then(|row| col(&row, 0, &self.target, "recording window locks"))?;
        Ok(u64::try_from(changed).unwrap_or_default())
    }

    /// Release the active window locks of rules no longer in the policy.
    pub async fn release_window_locks_except(&self, rules: &[&str]) -> Result<u64, PgError> {
        let (pid, start) = self.fence_params();
        let released: i64 = self
            .client
            .query_one(
                "SELECT curfew.release_window_locks_except($1::text[], $2, $3)",
                &[&rules, &pid, &start],
            )
            .await
            .map_err(|e| self.ledger_error("releasing the locks of removed rules", e))
            .and_then(|row| {
                col(
                    &row,
                    0,
                    &self.target,
                    "releasing the locks of removed rules",
                )
            })?;
        Ok(u64::try_from(released).unwrap_or_default())
    }

    /// Release incident locks whose expiry has passed.
    pub async fn expire_locks(&self) -> Result<u64, PgError> {
        let (pid, start) = self.fence_params();
        let released: i64 = self
            .client
            .query_one("SELECT curfew.expire_locks($1, $2)", &[&pid, &start])
            .await
            .map_err(|e| self.ledger_error("expiring locks", e))
            .and_then(|row| col(&row, 0, &self.target, "expiring locks"))?;
        Ok(u64::try_from(released).unwrap_or_default())
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
                &format!(
                    "SELECT {LOCK_COLUMNS} FROM curfew.create_incident_lock($1, $2, $3, $4) l"
                ),
                &[&role.oid, &reason, &created_by, &expires_at],
            )
            .await
            .map_err(|e| self.ledger_error("recording the lock", e))?;
        lock_row(&row, &self.target)
    }

    /// Release the incident lock on a role, if one is in force.
    pub async fn release_incident_lock(
        &self,
        role_oid: u32,
        released_by: &str,
    ) -> Result<Option<LockRow>, PgError> {
        let row = self
            .client
            .query_opt(
                &format!("SELECT {LOCK_COLUMNS} FROM curfew.release_incident_lock($1, $2) l"),
                &[&role_oid, &released_by],
            )
            .await
            .map_err(|e| self.ledger_error("releasing the lock", e))?;
        row.as_ref().map(|r| lock_row(r, &self.target)).transpose()
    }

    /// Locks in force (or, with `history`, all rows), newest first.
    pub async fn locks(&self, history: bool) -> Result<Vec<LockRow>, PgError> {
        let filter = if history {
            "true".to_owned()
        } else {
            ACTIVE.to_owned()
        };
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT {LOCK_COLUMNS} FROM curfew.lock l WHERE {filter} ORDER BY l.id DESC"
                ),
                &[],
            )
            .await
            .map_err(|e| self.ledger_error("reading the locks", e))?;
        rows.iter().map(|r| lock_row(r, &self.target)).collect()
    }

    /// Where a role and one of its lock rows stand.
    pub async fn lock_progress(
        &self,
        role_oid: u32,
        lock_id: i64,
    ) -> Result<LockProgress, PgError> {
        let row = self
            .client
            .query_one(
                &format!(
                    "SELECT coalesce((SELECT rolcanlogin FROM pg_roles WHERE oid = $1), false),
                            EXISTS (SELECT 1 FROM curfew.disabled_login WHERE role_oid = $1),
                            (SELECT count(*) FROM pg_stat_activity
                             WHERE usesysid = $1 AND backend_type = 'client backend'),
                            coalesce((SELECT announced_created
                                             AND (released_at IS NULL OR announced_released)
                                      FROM curfew.lock WHERE id = $2), false),
                            coalesce((SELECT array_agg(coalesce(l.rule, 'incident') || ': ' || l.reason)
                                      FROM curfew.lock l WHERE l.role_oid = $1 AND {ACTIVE}), '{{}}')"
                ),
                &[&role_oid, &lock_id],
            )
            .await
            .map_err(|e| self.ledger_error("reading the lock's progress", e))?;
        let what = "reading the lock's progress";
        Ok(LockProgress {
            can_login: col(&row, 0, &self.target, what)?,
            disabled_by_curfew: col(&row, 1, &self.target, what)?,
            sessions: col(&row, 2, &self.target, what)?,
            announced: col(&row, 3, &self.target, what)?,
            remaining: col(&row, 4, &self.target, what)?,
        })
    }

    /// Remove the ledger rows of roles that no longer exist (and release their locks).
    pub async fn forget_dropped_roles(&self) -> Result<(), PgError> {
        let (pid, start) = self.fence_params();
        self.client
            .execute(
                "SELECT curfew.forget_dropped_roles($1, $2)",
                &[&pid, &start],
            )
            .await
            .map(drop)
            .map_err(|e| self.ledger_error("clearing dropped roles", e))
    }

    /// Every role with an active lock or a ledger row: what the agent must reconcile.
    pub async fn locked_roles(&self) -> Result<Vec<LockedRole>, PgError> {
        let roles = self
            .client
            .query(
                &format!(
                    "SELECT r.oid, r.rolname::text, r.rolcanlogin,
                            EXISTS (SELECT 1 FROM curfew.disabled_login d WHERE d.role_oid = r.oid)
                     FROM pg_roles r
                     WHERE r.oid IN (SELECT l.role_oid FROM curfew.lock l WHERE {ACTIVE}
                                     UNION SELECT role_oid FROM curfew.disabled_login)
                     ORDER BY r.rolname"
                ),
                &[],
            )
            .await
            .map_err(|e| self.ledger_error("reading the ledger", e))?;
        let active = self
            .client
            .query(
                &format!("SELECT {LOCK_COLUMNS} FROM curfew.lock l WHERE {ACTIVE} ORDER BY l.id"),
                &[],
            )
            .await
            .map_err(|e| self.ledger_error("reading the ledger", e))?;
        let active = active
            .iter()
            .map(|r| lock_row(r, &self.target))
            .collect::<Result<Vec<LockRow>, PgError>>()?;
        let what = "reading the ledger";
        roles
            .iter()
            .map(|r| {
                let oid: u32 = col(r, 0, &self.target, what)?;
                Ok(LockedRole {
                    oid,
                    name: col(r, 1, &self.target, what)?,
                    can_login: col(r, 2, &self.target, what)?,
                    disabled_by_curfew: col(r, 3, &self.target, what)?,
                    locks: active
                        .iter()
                        .filter(|l| l.role_oid == oid)
                        .cloned()
                        .collect(),
                })
            })
            .collect()
    }

    /// Lock rows created or released that the audit log has not recorded yet.
    pub async fn unannounced(&self) -> Result<Vec<(LockRow, bool)>, PgError> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT {LOCK_COLUMNS}, l.announced_created FROM curfew.lock l
                     WHERE NOT l.announced_created
                        OR (l.released_at IS NOT NULL AND NOT l.announced_released)
                     ORDER BY l.id"
                ),
                &[],
            )
            .await
            .map_err(|e| self.ledger_error("reading the ledger", e))?;
        rows.iter()
            .map(|r| {
                let announced = col(r, "announced_created", &self.target, "reading the ledger")?;
                Ok((lock_row(r, &self.target)?, announced))
            })
            .collect()
    }

    /// Mark a lock row's creation (and, if released, its release) as recorded.
    pub async fn mark_announced(&self, id: i64) -> Result<(), PgError> {
        let (pid, start) = self.fence_params();
        self.client
            .execute(
                "SELECT curfew.mark_announced($1, $2, $3)",
                &[&id, &pid, &start],
            )
            .await
            .map(drop)
            .map_err(|e| self.ledger_error("updating the ledger", e))
    }
}
