//! The statements curfew runs on every snapshot and termination, prepared once per connection.

use tokio_postgres::{Client, Statement};

/// One query for everything the engine needs: the server's clock, every client session but
/// curfew's own, and (when the policy uses `member_of`) each session role's memberships, direct
/// and indirect. Ages are computed on this clock, never the agent host's.
///
/// curfew's own sessions are this connection (its pid is passed in) and those of any other
/// curfew process: the same role with application_name 'curfew' (another replica, `curfew plan`,
/// a second target on the same server). Both conditions are needed, so nobody else is exempted
/// by naming an application 'curfew'.
pub(crate) const SNAPSHOT: &str = "
WITH RECURSIVE
  s AS MATERIALIZED (
    SELECT pid, backend_start, xact_start, state, state_change, usesysid,
           usename::text AS usename, datname::text AS datname, client_addr, application_name
    FROM pg_stat_activity
    WHERE backend_type = 'client backend'
      AND usesysid IS NOT NULL
      AND pid <> ALL($1::int4[])
      AND NOT (usesysid = (SELECT oid FROM pg_roles WHERE rolname = current_user)
               AND application_name = 'curfew')
  ),
  m(member, roleid) AS (
    SELECT a.member, a.roleid FROM pg_auth_members a
    WHERE $2::bool AND a.member IN (SELECT usesysid FROM s)
    UNION
    SELECT m.member, a.roleid FROM m JOIN pg_auth_members a ON a.member = m.roleid
  ),
  g AS (
    SELECT m.member, array_agg(DISTINCT r.rolname::text) AS groups
    FROM m JOIN pg_roles r ON r.oid = m.roleid
    GROUP BY m.member
  )
SELECT c.now, s.pid, s.backend_start, s.xact_start, s.state, s.state_change,
       s.usename, s.datname, s.client_addr, s.application_name, g.groups
FROM (SELECT clock_timestamp() AS now) c
LEFT JOIN s ON true
LEFT JOIN g ON g.member = s.usesysid";

/// Guarded termination: in one statement, re-check that the process is still the same session
/// (pid and backend_start: pids are reused) and, for idle rules, still idle since the same
/// moment (a statement in between resets the clock), then signal it. NULL `signalled` means the
/// session no longer matched. The clock is read after the signal: the moment the session ended.
/// (`pg_terminate_backend(pid, timeout)` would confirm the exit too, but it polls in 100 ms
/// steps; the exit is confirmed with `EXITED` instead.)
pub(crate) const TERMINATE: &str = "
SELECT t.signalled, clock_timestamp() FROM (
  SELECT (
    SELECT pg_terminate_backend(a.pid)
    FROM pg_stat_activity a
    WHERE a.pid = $1::int4
      AND a.backend_start = $2::timestamptz
      AND ($3::text[] IS NULL OR (a.state = ANY($3::text[]) AND a.state_change = $4::timestamptz))
  ) AS signalled
) t";

/// Whether a signalled session's process is gone.
pub(crate) const EXITED: &str = "
SELECT NOT EXISTS (
  SELECT 1 FROM pg_stat_activity WHERE pid = $1::int4 AND backend_start = $2::timestamptz
), clock_timestamp()";

/// The prepared statements of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Statements {
    pub(crate) snapshot: Statement,
    pub(crate) terminate: Statement,
    pub(crate) exited: Statement,
}

impl Statements {
    pub(crate) async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            snapshot: client.prepare(SNAPSHOT).await?,
            terminate: client.prepare(TERMINATE).await?,
            exited: client.prepare(EXITED).await?,
        })
    }
}
