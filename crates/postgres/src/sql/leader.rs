//! The leader lock's statements (see `crate::leader` for why and how they are used): taking
//! the lock, checking that it is still held, and finding its holders; their text and the
//! decoding of their rows.

use jiff::Timestamp;
use tokio_postgres::Row;

use crate::error::PgError;
use crate::fence::{LOCK_ROW, leading_sql};
use crate::sql::decode::col;

/// What taking the lock's errors say curfew was doing.
pub(crate) const WHAT_TAKE: &str = "taking the leader lock";

/// What the heartbeat's errors say curfew was doing.
pub(crate) const WHAT_CHECK: &str = "checking the leader lock";

/// What reading the holders' errors say curfew was doing.
pub(crate) const WHAT_HOLDERS: &str = "finding the leader";

/// Take the lock (`$1`: [`crate::fence::LEADER_KEY`]) if free, and this session's start.
pub(crate) const TRY_LEAD: &str = "SELECT pg_try_advisory_lock($1),
                        (SELECT backend_start FROM pg_stat_get_activity(pg_backend_pid()))";

/// Give back one hold of the lock (`$1`: [`crate::fence::LEADER_KEY`]).
pub(crate) const UNLOCK: &str = "SELECT pg_advisory_unlock($1)";

/// Show `$1` as this session's `application_name`.
pub(crate) const ANNOUNCE: &str = "SELECT set_config('application_name', $1, false)";

/// One round trip.
pub(crate) const PING: &str = "SELECT 1";

/// Whether another session, in any database, holds the lock too.
pub(crate) fn held_elsewhere_sql() -> String {
    format!(
        "SELECT EXISTS (SELECT 1 FROM pg_locks l
                                        WHERE {LOCK_ROW} AND l.granted
                                          AND l.pid IS DISTINCT FROM pg_backend_pid())"
    )
}

/// Whether the lock session `$1` (pid), `$2` (start) is still alive.
pub(crate) fn still_leads_sql() -> String {
    format!("SELECT {}", leading_sql("$1::int4", "$2::timestamptz"))
}

/// Every other session that holds or waits for the lock: holders first, curfew's own role
/// first.
pub(crate) fn lock_holders_sql() -> String {
    format!(
        "SELECT l.pid, host(a.client_addr), a.backend_start, d.datname::text,
                            a.application_name, a.usename::text,
                            COALESCE(a.usesysid = (SELECT oid FROM pg_roles
                                                   WHERE rolname = current_user), false),
                            l.granted
                     FROM pg_locks l
                     LEFT JOIN pg_stat_activity a ON a.pid = l.pid
                     LEFT JOIN pg_database d ON d.oid = l.database
                     WHERE {LOCK_ROW} AND l.pid IS DISTINCT FROM pg_backend_pid()
                     ORDER BY 8 DESC, 7 DESC, a.backend_start NULLS LAST, l.pid"
    )
}

/// [`TRY_LEAD`]'s row: this session's start when it holds the lock now.
pub(crate) fn decode_try_lead(row: &Row, target: &str) -> Result<Option<Timestamp>, PgError> {
    let held: bool = col(row, 0, target, WHAT_TAKE)?;
    let backend_start: Option<Timestamp> = col(row, 1, target, WHAT_TAKE)?;
    Ok(lock_taken(held, backend_start))
}

/// The session's start when the lock was taken and the start is known; a session whose start
/// the server does not show cannot fence anything, so it does not lead.
fn lock_taken(held: bool, backend_start: Option<Timestamp>) -> Option<Timestamp> {
    match (held, backend_start) {
        (true, Some(start)) => Some(start),
        _ => None,
    }
}

/// One row of [`lock_holders_sql`]. A lock row without a session (pid NULL: a prepared
/// transaction's) reads as pid 0.
pub(crate) fn decode_lock_holder(
    row: &Row,
    target: &str,
) -> Result<curfew_backend::LockHolder, PgError> {
    let what = WHAT_HOLDERS;
    Ok(curfew_backend::LockHolder {
        pid: i64::from(col::<Option<i32>>(row, 0, target, what)?.unwrap_or(0)),
        client_addr: col(row, 1, target, what)?,
        backend_start: col(row, 2, target, what)?,
        database: col(row, 3, target, what)?,
        application: col(row, 4, target, what)?,
        role: col(row, 5, target, what)?,
        own_role: col(row, 6, target, what)?,
        granted: col(row, 7, target, what)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_taken_only_with_a_known_session_start() {
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(lock_taken(true, Some(start)), Some(start));
        assert_eq!(lock_taken(true, None), None);
        assert_eq!(lock_taken(false, Some(start)), None);
    }

    #[test]
    fn the_statements_name_the_lock_and_leave_no_placeholder() {
        for sql in [held_elsewhere_sql(), still_leads_sql(), lock_holders_sql()] {
            assert!(!sql.contains('{'), "{sql}");
        }
        assert!(held_elsewhere_sql().contains(LOCK_ROW));
        assert!(lock_holders_sql().contains(LOCK_ROW));
        assert!(still_leads_sql().contains("pg_stat_get_activity($1::int4)"));
    }
}
