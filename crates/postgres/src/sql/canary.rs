//! `curfew verify`'s canaries (see `crate::canary`): the statements that create and drop a
//! canary role, find its session and read its identity, and the decoding of their rows.

use std::net::IpAddr;

use jiff::Timestamp;
use tokio_postgres::Row;

use crate::error::PgError;
use crate::names::quote_identifier;
use crate::sql::decode::col;

/// What reading a canary session's identity's errors say curfew was doing.
pub(crate) const WHAT_SESSION: &str = "reading the canary's session";

/// End every session of role `$1`, waiting up to 5 s for each.
pub(crate) const END_SESSIONS: &str =
    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = $1";

/// Whether the session `$1` (pid), `$2` (backend_start) still exists.
pub(crate) const SESSION_EXISTS: &str =
    "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND backend_start = $2";

/// The server's clock, now.
pub(crate) const CLOCK: &str = "SELECT clock_timestamp()";

/// A canary session's own pid, start and client address.
pub(crate) const OWN_SESSION: &str =
    "SELECT pg_backend_pid(), backend_start, inet_client_addr()::text
                 FROM pg_stat_activity WHERE pid = pg_backend_pid()";

/// Sleep `$1` seconds.
pub(crate) const SLEEP: &str = "SELECT pg_sleep($1)";

/// The statements that create canary `role`, able to log in until `valid_until` with the SCRAM
/// `verifier` (never the password: `log_statement = ddl` logs this text), member of `groups`.
/// Utility statements take no bind parameters: names are quoted as identifiers, values as
/// literals.
pub(crate) fn create_canary_sql(
    role: &str,
    verifier: &str,
    groups: &[String],
    valid_until: Timestamp,
) -> String {
    let mut sql = format!(
        "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD {} VALID UNTIL {};",
        quote_identifier(role),
        quote_literal(verifier),
        quote_literal(&valid_until.to_string()),
    );
    for group in groups {
        sql.push_str(&format!(
            " GRANT {} TO {};",
            quote_identifier(group),
            quote_identifier(role)
        ));
    }
    sql
}

/// The statement that drops canary `role`, if it exists.
pub(crate) fn drop_canary_sql(role: &str) -> String {
    format!("DROP ROLE IF EXISTS {}", quote_identifier(role))
}

/// A canary session's identity, from [`OWN_SESSION`]'s row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OwnSession {
    pub(crate) pid: i32,
    pub(crate) backend_start: Timestamp,
    pub(crate) client_addr: Option<IpAddr>,
}

/// [`OWN_SESSION`]'s row.
pub(crate) fn decode_own_session(row: &Row, target: &str) -> Result<OwnSession, PgError> {
    let addr: Option<String> = col(row, 2, target, WHAT_SESSION)?;
    Ok(OwnSession {
        pid: col(row, 0, target, WHAT_SESSION)?,
        backend_start: col(row, 1, target, WHAT_SESSION)?,
        client_addr: client_addr(addr.as_deref()),
    })
}

/// An `inet` as text (`10.0.0.7/32`) as an address, its mask dropped; `None` over a Unix
/// socket, or for text that is no address.
fn client_addr(text: Option<&str>) -> Option<IpAddr> {
    text.and_then(|a| a.split('/').next().and_then(|a| a.parse().ok()))
}

/// A string literal: single quotes doubled. Only for values PostgreSQL does not accept as bind
/// parameters (utility statements such as CREATE ROLE).
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canary_role_is_created_with_quoted_names_and_literals() {
        let until: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let sql = create_canary_sql(
            "can\"ary",
            "SCRAM-SHA-256$4096:it's",
            &["readers".to_owned()],
            until,
        );
        assert!(
            sql.starts_with("CREATE ROLE \"can\"\"ary\" LOGIN NOSUPERUSER"),
            "{sql}"
        );
        assert!(sql.contains("PASSWORD 'SCRAM-SHA-256$4096:it''s'"), "{sql}");
        assert!(sql.contains("VALID UNTIL '2026-01-01T00:00:00Z';"), "{sql}");
        assert!(
            sql.ends_with(" GRANT \"readers\" TO \"can\"\"ary\";"),
            "{sql}"
        );
        assert_eq!(drop_canary_sql("a\"b"), "DROP ROLE IF EXISTS \"a\"\"b\"");
    }

    #[test]
    fn client_addresses_lose_their_mask() {
        assert_eq!(
            client_addr(Some("10.0.0.7/32")),
            Some("10.0.0.7".parse().unwrap())
        );
        assert_eq!(client_addr(Some("::1/128")), Some("::1".parse().unwrap()));
        assert_eq!(client_addr(Some("not an address")), None);
        assert_eq!(client_addr(None), None);
    }
}
