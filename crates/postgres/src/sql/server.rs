//! What curfew checks about a server and its own role right after connecting (see
//! `crate::connect`): the statement, the decoding of its row into [`ServerInfo`], and which
//! privileges are missing; and the settings of curfew's own sessions.

use tokio_postgres::Row;

use crate::error::PgError;
use crate::sql::decode::col;

/// What the check's errors say curfew was doing.
pub(crate) const WHAT_CHECK: &str = "checking the server and curfew's role";

/// Facts about the server and the role curfew logged in as, read once at connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `server_version_num`, e.g. 150018. Version-specific behaviour keys off this one value.
    pub version_num: i32,
    /// `server_version`, e.g. "15.18 (Debian 15.18-0+deb12u1)".
    pub version: String,
    /// The role curfew is logged in as.
    pub role: String,
    /// Whether that role is a superuser (works, but is more privilege than needed).
    pub superuser: bool,
    /// Whether that role has CREATEROLE (only `curfew verify` needs it, for its canary roles;
    /// login locks go through the functions `curfew init` installs).
    pub createrole: bool,
    /// Whether the server is a standby (in recovery).
    pub in_recovery: bool,
    /// The process id of curfew's own session (never a candidate for termination).
    pub backend_pid: i32,
}

/// The oldest PostgreSQL curfew supports: `pg_terminate_backend(pid, timeout)` and
/// `idle_session_timeout` appeared in 14.
pub const MINIMUM_VERSION_NUM: i32 = 140_000;

/// The server's version and curfew's role, its attributes and grants.
pub(crate) const CHECK_SERVER: &str = "SELECT current_user::text, r.rolsuper,
                    pg_has_role(current_user, 'pg_read_all_stats', 'USAGE'),
                    pg_has_role(current_user, 'pg_signal_backend', 'USAGE'),
                    current_setting('server_version_num')::int4,
                    current_setting('server_version'),
                    pg_is_in_recovery(),
                    pg_backend_pid(),
                    r.rolcreaterole
             FROM pg_roles r WHERE r.rolname = current_user";

/// The server options of curfew's own agent sessions: its statements must not hang (the
/// longest is a termination, 5 s wait), and the server's keepalives on its connections notice
/// a leader whose host died or was cut off in about a minute (not the OS default of two hours),
/// which releases its leader lock for another replica.
pub(crate) const AGENT_SESSION_OPTIONS: &str = "-c statement_timeout=30000 -c lock_timeout=10000 -c tcp_keepalives_idle=30 \
             -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3 -c tcp_user_timeout=60000";

/// curfew's own session must not be ended by the server's idle timeouts either.
pub(crate) const NO_IDLE_TIMEOUTS: &str =
    "SET idle_session_timeout = 0; SET idle_in_transaction_session_timeout = 0";

/// [`CHECK_SERVER`]'s row: what is learned of the server, and whether the role is a member
/// of `pg_read_all_stats` and of `pg_signal_backend`.
pub(crate) fn decode_server(row: &Row, target: &str) -> Result<(ServerInfo, bool, bool), PgError> {
    let get_bool = |idx| col::<bool>(row, idx, target, WHAT_CHECK);
    let info = ServerInfo {
        role: col(row, 0, target, WHAT_CHECK)?,
        superuser: get_bool(1)?,
        version_num: col(row, 4, target, WHAT_CHECK)?,
        version: col(row, 5, target, WHAT_CHECK)?,
        in_recovery: get_bool(6)?,
        backend_pid: col(row, 7, target, WHAT_CHECK)?,
        createrole: get_bool(8)?,
    };
    Ok((info, get_bool(2)?, get_bool(3)?))
}

/// The predefined roles curfew's role lacks: it reads every session's activity and signals
/// them, which a superuser may anyway.
pub(crate) fn missing_privileges(
    superuser: bool,
    read_stats: bool,
    signal: bool,
) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !superuser && !read_stats {
        missing.push("pg_read_all_stats");
    }
    if !superuser && !signal {
        missing.push("pg_signal_backend");
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_superuser_lacks_nothing_and_others_need_both_grants() {
        assert!(missing_privileges(true, false, false).is_empty());
        assert!(missing_privileges(false, true, true).is_empty());
        assert_eq!(
            missing_privileges(false, false, true),
            ["pg_read_all_stats"]
        );
        assert_eq!(
            missing_privileges(false, false, false),
            ["pg_read_all_stats", "pg_signal_backend"]
        );
    }
}
