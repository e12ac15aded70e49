//! The leader lock's identity and the fence condition, as pure data and SQL text: the session
//! that holds the lock, the advisory lock key, and the condition every fenced statement checks
//! (see `crate::leader` for taking the lock, and why actions are fenced).

use jiff::Timestamp;

/// The advisory lock key that elects one agent per server (per database: advisory locks are
/// scoped to the database of the connection). `pg_locks` shows it as classid 1668676813,
/// objid 2871492352, objsubid 1 (see `LEADING`).
pub const LEADER_KEY: i64 = 7_166_912_342_300_000_000;

/// SQL: the `pg_locks` row (alias `l`) of the leader lock, in any database.
pub(crate) const LOCK_ROW: &str = "l.locktype = 'advisory'
      AND l.classid = 1668676813 AND l.objid = 2871492352 AND l.objsubid = 1";

/// SQL: true while the lock session with pid `{pid}` and start `{start}` is alive.
const LEADING: &str =
    "EXISTS (SELECT 1 FROM pg_stat_get_activity({pid}) a WHERE a.backend_start = {start})";

/// The fence condition over the given parameter placeholders (e.g. `$6::int4`).
pub(crate) fn leading_sql(pid: &str, start: &str) -> String {
    LEADING.replace("{pid}", pid).replace("{start}", start)
}

/// The session that holds a target's leader lock: the leader's lock connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leadership {
    /// Its backend pid.
    pub pid: i32,
    /// Its backend start (pids are reused).
    pub backend_start: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_locks_shows_the_key_as_its_two_halves() {
        let (high, low) = (1_668_676_813_i64, 2_871_492_352_i64);
        assert_eq!((high << 32) | low, LEADER_KEY);
        assert!(LOCK_ROW.contains(&format!("l.classid = {high}")));
        assert!(LOCK_ROW.contains(&format!("l.objid = {low}")));
        let sql = leading_sql("$6", "$7");
        assert!(!sql.contains('{'), "{sql}");
    }
}
