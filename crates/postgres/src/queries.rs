//! The statements curfew runs on every snapshot and termination, prepared once per connection.

use tokio_postgres::{Client, Statement};

/// One query for everything the engine needs: the server's clock, every client session but
/// curfew's own, and (when the policy uses `member_of`) each session role's memberships, direct
/// and indirect. Ages are computed on this clock, never the agent host's.
///
/// curfew's own sessions are this connection (its pid is passed in) and those of any other
/// curfew process: the same role with application_name 'curfew' (another replica, `curfew plan`,
/// a second target on the same server) or a leader's announcement, 'curfew agent: ...' (its
/// lock session). Both conditions are needed, so nobody else is exempted by naming an
/// application 'curfew'.
///
/// The clock is `statement_timestamp()`, the moment the server received the request, so the
/// agent can map it to the moment it sent it; the activity rows are read after (building them
/// takes tens of milliseconds with thousands of sessions).
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
               AND (application_name = 'curfew' OR application_name LIKE 'curfew agent: %'))
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
       s.usename, s.datname, s.client_addr, s.application_name, g.groups, s.usesysid
FROM (SELECT statement_timestamp() AS now) c
LEFT JOIN s ON true
LEFT JOIN g ON g.member = s.usesysid";

/// Guarded termination of a batch, in one statement: for each session, re-check that the process
/// is still the same session (pid and backend_start: pids are reused), for idle rules that it is
/// still idle since the same moment (a statement in between resets the clock), and that the
/// server's clock has reached the deadline; then signal it. The clock is read after each signal:
/// the moment that session ended. Rows come back in the input's order (`n`).
/// Each session is read with `pg_stat_get_activity(pid)` rather than the `pg_stat_activity` view,
/// which builds a row for every backend: with thousands of sessions that made each termination
/// cost tens of milliseconds. (The server reads the activity table once per transaction, so the
/// checks all see one consistent picture.)
/// (`pg_terminate_backend(pid, timeout)` would confirm the exit too, but it polls in 100 ms
/// steps; the exits are confirmed with `EXITED` instead.)
///
/// For a session over a `max_sessions` limit, `$8`–`$10` list (by guard `n`) the older sessions
/// that keep their places: if one has gone, the session may be within the limit now, and it is
/// left alone.
///
/// It is fenced (see `crate::leader`): with a leader's lock session in `$6`/`$7`, nothing is
/// signalled unless that session is still alive (and so still holds the leader lock); the last
/// column says whether it was. `$6` NULL means unfenced.
pub(crate) fn terminate_sql() -> String {
    format!(
        "{TERMINATE_HEAD}{}{TERMINATE_TAIL}",
        crate::fence::leading_sql("$6::int4", "$7::timestamptz")
    )
}

const TERMINATE_HEAD: &str = "
WITH f AS (
  SELECT $6::int4 IS NULL OR ";

const TERMINATE_TAIL: &str = " AS leading
),
g AS (
  SELECT * FROM unnest($1::int4[], $2::timestamptz[], $3::text[], $4::timestamptz[], $5::timestamptz[])
    WITH ORDINALITY AS g(pid, backend_start, kind, since, not_before, n)
)
SELECT g.n, m.matched, m.early,
       CASE WHEN f.leading AND m.matched AND NOT m.early AND NOT m.refused
            THEN pg_terminate_backend(g.pid) END,
       clock_timestamp(), f.leading, m.refused
FROM g
CROSS JOIN f
LEFT JOIN LATERAL (
  SELECT s.pid, s.state, s.state_change, s.usesysid FROM pg_stat_get_activity(g.pid) s
  WHERE s.backend_start = g.backend_start
) a ON true
CROSS JOIN LATERAL (
  SELECT a.pid IS NOT NULL
         AND (g.kind IS NULL OR (a.state_change = g.since AND (
               (g.kind = 'idle' AND a.state = 'idle')
               OR (g.kind = 'in_transaction'
                   AND a.state IN ('idle in transaction', 'idle in transaction (aborted)')))))
         -- Over a session limit only while every older session that keeps its place is there.
         AND NOT EXISTS (
           SELECT 1 FROM unnest($8::int8[], $9::int4[], $10::timestamptz[]) k(n, pid, backend_start)
           WHERE k.n = g.n AND NOT EXISTS (
             SELECT 1 FROM pg_stat_get_activity(k.pid) x WHERE x.backend_start = k.backend_start)
         ) AS matched,
         g.not_before IS NOT NULL AND clock_timestamp() < g.not_before AS early,
         -- Only a superuser may signal a superuser's session: asking anyway would fail the whole
         -- statement, and with it every other session of the batch.
         COALESCE((SELECT r.rolsuper FROM pg_roles r WHERE r.oid = a.usesysid), false)
           AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) AS refused
) m
ORDER BY g.n";

/// For each signalled session, in order: whether its process is gone.
pub(crate) const EXITED: &str = "
SELECT NOT EXISTS (
  SELECT 1 FROM pg_stat_get_activity(g.pid) a WHERE a.backend_start = g.backend_start
), clock_timestamp()
FROM unnest($1::int4[], $2::timestamptz[]) WITH ORDINALITY AS g(pid, backend_start, n)
ORDER BY g.n";

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
            terminate: client.prepare(&terminate_sql()).await?,
            exited: client.prepare(EXITED).await?,
        })
    }
}
