//! The login-lock ledger's SQL (see `crate::ledger`): its version, tables and conditions, the
//! statements that read it and call its functions, and the decoding of their rows.

use curfew_backend::{LockRow, LockedRole, LoginChange, RoleInfo};
use tokio_postgres::Row;

use crate::error::PgError;
use crate::sql::decode::col;

/// What reading the ledger's errors say curfew was doing.
pub(crate) const WHAT_READ: &str = "reading the ledger";

/// What reading the roles' errors say curfew was doing.
pub(crate) const WHAT_ROLES: &str = "reading the roles";

/// What reading a lock's progress's errors say curfew was doing.
pub(crate) const WHAT_PROGRESS: &str = "reading the lock's progress";

/// What changing a login's errors say curfew was doing.
pub(crate) const WHAT_CHANGE: &str = "changing a role's login";

/// The ledger's version: 2 since its writes go through functions `curfew init` installs.
pub const LEDGER_VERSION: i32 = 2;

/// The schema's comment, which carries the version.
pub(crate) const SCHEMA_COMMENT: &str =
    "curfew login-lock ledger (version 2); written only through its functions (curfew init)";

/// The ledger's tables. Idempotent (an older ledger keeps its rows).
pub(crate) const DDL: &str = "
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

/// The functions curfew's role may execute, by signature (as `regprocedure` prints them).
pub const AGENT_FUNCTIONS: &[&str] = &[
    "curfew.change_login(oid,boolean,integer,timestamp with time zone)",
    "curfew.sync_window_locks(text,oid[],text[],text,integer,timestamp with time zone)",
    "curfew.release_window_locks_except(text[],integer,timestamp with time zone)",
    "curfew.expire_locks(integer,timestamp with time zone)",
    "curfew.forget_dropped_roles(integer,timestamp with time zone)",
    "curfew.mark_announced(bigint,integer,timestamp with time zone)",
    "curfew.create_incident_lock(oid,text,text,timestamp with time zone)",
    "curfew.release_incident_lock(oid,text)",
];

/// The columns of a lock row, as [`decode_lock_row`] reads them.
const LOCK_COLUMNS: &str = "l.id, l.role_oid, l.role_name, l.kind, l.rule, l.reason, l.created_by, \
                            l.created_at, l.expires_at, l.released_at, l.released_by";

pub use curfew_backend::LockProgress;

/// Whether the ledger holds anything for the agent to do.
pub(crate) const HAS_WORK: &str = "SELECT EXISTS (SELECT 1 FROM curfew.lock
                                WHERE released_at IS NULL OR NOT announced_created
                                   OR NOT announced_released)
                        OR EXISTS (SELECT 1 FROM curfew.disabled_login)";

/// Every role but the predefined `pg_*` ones, with its memberships.
pub(crate) const ROLES: &str = "WITH RECURSIVE m(member, roleid) AS (
                     SELECT member, roleid FROM pg_auth_members
                     UNION
                     SELECT m.member, a.roleid FROM m JOIN pg_auth_members a ON a.member = m.roleid)
                 SELECT r.oid, r.rolname::text, r.rolcanlogin, r.rolsuper,
                        coalesce((SELECT array_agg(DISTINCT g.rolname::text)
                                  FROM m JOIN pg_roles g ON g.oid = m.roleid
                                  WHERE m.member = r.oid), '{}')
                 FROM pg_roles r
                 WHERE r.rolname !~ '^pg_'
                 ORDER BY r.rolname";

/// Make the window locks of rule `$1` exactly the roles `$2` (oids), `$3` (names), with reason
/// `$4`; fenced by `$5`, `$6`. Returns the rows changed.
pub(crate) const SYNC_WINDOW_LOCKS: &str =
    "SELECT curfew.sync_window_locks($1, $2::oid[], $3::text[], $4, $5, $6)";

/// Release the window locks of rules not in `$1`; fenced by `$2`, `$3`.
pub(crate) const RELEASE_WINDOW_LOCKS_EXCEPT: &str =
    "SELECT curfew.release_window_locks_except($1::text[], $2, $3)";

/// Release expired incident locks; fenced by `$1`, `$2`.
pub(crate) const EXPIRE_LOCKS: &str = "SELECT curfew.expire_locks($1, $2)";

/// Forget the ledger rows of dropped roles; fenced by `$1`, `$2`.
pub(crate) const FORGET_DROPPED_ROLES: &str = "SELECT curfew.forget_dropped_roles($1, $2)";

/// Mark lock `$1` as recorded; fenced by `$2`, `$3`.
pub(crate) const MARK_ANNOUNCED: &str = "SELECT curfew.mark_announced($1, $2, $3)";

/// Disable (`$2` true) or restore role `$1`'s login; fenced by `$3`, `$4`. Returns a word.
pub(crate) const CHANGE_LOGIN: &str = "SELECT curfew.change_login($1, $2, $3, $4)";

/// Record an incident lock on role `$1`, reason `$2`, by `$3`, until `$4`.
pub(crate) fn create_incident_lock_sql() -> String {
    format!("SELECT {LOCK_COLUMNS} FROM curfew.create_incident_lock($1, $2, $3, $4) l")
}

/// Release the incident lock on role `$1`, by `$2`.
pub(crate) fn release_incident_lock_sql() -> String {
    format!("SELECT {LOCK_COLUMNS} FROM curfew.release_incident_lock($1, $2) l")
}

/// The locks in force (or, with `history`, all rows), newest first.
pub(crate) fn locks_sql(history: bool) -> String {
    let filter = if history {
        "true".to_owned()
    } else {
        ACTIVE.to_owned()
    };
    format!("SELECT {LOCK_COLUMNS} FROM curfew.lock l WHERE {filter} ORDER BY l.id DESC")
}

/// Where role `$1` and lock `$2` stand.
pub(crate) fn lock_progress_sql() -> String {
    format!(
        "SELECT coalesce((SELECT rolcanlogin FROM pg_roles WHERE oid = $1), false),
                            EXISTS (SELECT 1 FROM curfew.disabled_login WHERE role_oid = $1),
                            (SELECT count(*) FROM pg_stat_activity
                             WHERE usesysid = $1 AND backend_type = 'client backend'),
                            coalesce((SELECT announced_created
                                             AND (released_at IS NULL OR announced_released)
                                      FROM curfew.lock WHERE id = $2), false),
                            coalesce((SELECT array_agg(coalesce(l.rule, 'incident') || ': ' || l.reason)
                                      FROM curfew.lock l WHERE l.role_oid = $1 AND {ACTIVE}), '{{}}')"
    )
}

/// Every role with an active lock or a ledger row.
pub(crate) fn locked_roles_sql() -> String {
    format!(
        "SELECT r.oid, r.rolname::text, r.rolcanlogin,
                            EXISTS (SELECT 1 FROM curfew.disabled_login d WHERE d.role_oid = r.oid)
                     FROM pg_roles r
                     WHERE r.oid IN (SELECT l.role_oid FROM curfew.lock l WHERE {ACTIVE}
                                     UNION SELECT role_oid FROM curfew.disabled_login)
                     ORDER BY r.rolname"
    )
}

/// The locks in force, oldest first.
pub(crate) fn active_locks_sql() -> String {
    format!("SELECT {LOCK_COLUMNS} FROM curfew.lock l WHERE {ACTIVE} ORDER BY l.id")
}

/// Lock rows created or released that the audit log has not recorded yet.
pub(crate) fn unannounced_sql() -> String {
    format!(
        "SELECT {LOCK_COLUMNS}, l.announced_created FROM curfew.lock l
                     WHERE NOT l.announced_created
                        OR (l.released_at IS NOT NULL AND NOT l.announced_released)
                     ORDER BY l.id"
    )
}

/// One lock row (columns by name: [`LOCK_COLUMNS`]).
pub(crate) fn decode_lock_row(row: &Row, target: &str) -> Result<LockRow, PgError> {
    let what = WHAT_READ;
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

/// One row of [`unannounced_sql`]: the lock, and whether its creation was recorded.
pub(crate) fn decode_unannounced(row: &Row, target: &str) -> Result<(LockRow, bool), PgError> {
    let announced = col(row, "announced_created", target, WHAT_READ)?;
    Ok((decode_lock_row(row, target)?, announced))
}

/// One row of [`ROLES`].
pub(crate) fn decode_role(row: &Row, target: &str) -> Result<RoleInfo, PgError> {
    let what = WHAT_ROLES;
    Ok(RoleInfo {
        oid: col(row, 0, target, what)?,
        name: col(row, 1, target, what)?,
        can_login: col(row, 2, target, what)?,
        superuser: col(row, 3, target, what)?,
        member_of: col(row, 4, target, what)?,
    })
}

/// [`lock_progress_sql`]'s row.
pub(crate) fn decode_progress(row: &Row, target: &str) -> Result<LockProgress, PgError> {
    let what = WHAT_PROGRESS;
    Ok(LockProgress {
        can_login: col(row, 0, target, what)?,
        disabled_by_curfew: col(row, 1, target, what)?,
        sessions: col(row, 2, target, what)?,
        announced: col(row, 3, target, what)?,
        remaining: col(row, 4, target, what)?,
    })
}

/// One row of [`locked_roles_sql`], before its locks are attached.
pub(crate) fn decode_locked_role(row: &Row, target: &str) -> Result<LockedRole, PgError> {
    Ok(LockedRole {
        oid: col(row, 0, target, WHAT_READ)?,
        name: col(row, 1, target, WHAT_READ)?,
        can_login: col(row, 2, target, WHAT_READ)?,
        disabled_by_curfew: col(row, 3, target, WHAT_READ)?,
        locks: Vec::new(),
    })
}

/// Each role with the active locks on it (by oid), in the locks' order.
pub(crate) fn attach_locks(mut roles: Vec<LockedRole>, active: &[LockRow]) -> Vec<LockedRole> {
    for role in &mut roles {
        role.locks = active
            .iter()
            .filter(|l| l.role_oid == role.oid)
            .cloned()
            .collect();
    }
    roles
}

/// How many rows a ledger function changed (it never says fewer than none).
pub(crate) fn changed(count: i64) -> u64 {
    u64::try_from(count).unwrap_or_default()
}

/// `curfew.change_login`'s word; a word this curfew does not know means nothing was done.
pub(crate) fn login_change(word: &str) -> LoginChange {
    match word {
        "disabled" => LoginChange::Disabled,
        "drift_corrected" => LoginChange::DriftCorrected,
        "restored" => LoginChange::Restored,
        "role_gone" => LoginChange::RoleGone,
        _ => LoginChange::NotNeeded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(id: i64, role_oid: u32) -> LockRow {
        LockRow {
            id,
            role_oid,
            role_name: format!("r{role_oid}"),
            kind: "incident".to_owned(),
            rule: None,
            reason: "why".to_owned(),
            created_by: "ops".to_owned(),
            created_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            expires_at: None,
            released_at: None,
            released_by: None,
        }
    }

    fn role(oid: u32) -> LockedRole {
        LockedRole {
            oid,
            name: format!("r{oid}"),
            can_login: false,
            disabled_by_curfew: true,
            locks: Vec::new(),
        }
    }

    #[test]
    fn each_role_gets_its_own_active_locks() {
        let roles = attach_locks(
            vec![role(10), role(20)],
            &[lock(1, 10), lock(2, 30), lock(3, 10)],
        );
        let ids: Vec<Vec<i64>> = roles
            .iter()
            .map(|r| r.locks.iter().map(|l| l.id).collect())
            .collect();
        assert_eq!(ids, [vec![1, 3], vec![]]);
    }

    #[test]
    fn the_functions_words_and_counts_are_read_without_surprises() {
        assert_eq!(login_change("disabled"), LoginChange::Disabled);
        assert_eq!(login_change("drift_corrected"), LoginChange::DriftCorrected);
        assert_eq!(login_change("restored"), LoginChange::Restored);
        assert_eq!(login_change("role_gone"), LoginChange::RoleGone);
        assert_eq!(login_change("something new"), LoginChange::NotNeeded);
        assert_eq!((changed(3), changed(-1)), (3, 0));
    }

    #[test]
    fn the_lock_statements_leave_no_placeholder() {
        for sql in [
            create_incident_lock_sql(),
            release_incident_lock_sql(),
            locks_sql(true),
            locks_sql(false),
            lock_progress_sql(),
            locked_roles_sql(),
            active_locks_sql(),
            unannounced_sql(),
        ] {
            assert!(
                !sql.contains("{ACTIVE}") && !sql.contains("{LOCK_COLUMNS}"),
                "{sql}"
            );
        }
        assert!(locks_sql(false).contains(ACTIVE));
        assert!(lock_progress_sql().contains("'{}'"));
    }
}
