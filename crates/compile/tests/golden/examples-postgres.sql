-- curfew compile --dialect postgres
-- Policy: examples/curfew.toml
-- SHA-256: ddb622207d74ef790441fe95cb940836d3d7bd4926d22ae61862023d78a6ec02
--
-- Native PostgreSQL settings for the rules of this policy that PostgreSQL can express itself:
-- defense in depth beside the curfew agent, not a replacement for it.
--
-- WARNING: these are per-role defaults, and any user can override them for their own session (SET
-- idle_session_timeout = 0; SET idle_in_transaction_session_timeout = 0). They give no warning
-- before a session ends and leave no record of why it ended. The curfew agent enforces the whole
-- policy from outside the session, where users cannot switch it off: keep it running.
--
-- Margin: each timeout is set above curfew's limit by the larger of 1 minute and a tenth of the
-- limit (the default; curfew compile --margin sets another), so that the curfew agent ends the
-- session first and records why; PostgreSQL ends it only when the agent has not (for instance while
-- it is stopped). A timeout equal to the limit would race the agent and destroy that evidence.
--
-- Apply on the primary as a superuser: psql -v ON_ERROR_STOP=1 -f FILE (role settings replicate to
-- standbys). The script runs in one transaction and needs PostgreSQL 14 or later. Settings take
-- effect for sessions that start afterwards.
--
-- Role patterns, memberships and database patterns are expanded when the script runs: roles and
-- databases created later are covered only once it runs again (running it again is safe). Settings
-- it made earlier that the policy no longer asks for are not removed: ALTER ROLE name RESET
-- idle_session_timeout removes one. A setting on a group role does not reach its members, so
-- members are given the settings themselves.
--
-- When several rules give a role different limits, the strictest (smallest) wins: the statements
-- for each setting run from the largest value to the smallest.
--
-- Exemptions:
--   [exempt] roles "postgres", "replicator": never given these settings.
--   curfew's own role "curfew_agent" (the targets' users): never given these settings.
--   [exempt] addresses "local": cannot be expressed natively (a role's settings cannot depend on
--     where a session connects from); sessions of the roles below get these settings from every
--     address.
--   [[exempt]] #2 (roles "backup" and applications "pg_dump" or "pg_basebackup"): cannot be
--     expressed natively (a role's settings cannot depend on a session's other keys); these
--     sessions get the settings of their role.
--
-- Rules:
--   "inactivity" (idle 15m · warn 2m · members of humans): idle_session_timeout = '990s' for
--     members of "humans" (directly or through other roles, and the role itself). PostgreSQL ends a
--     session idle outside a transaction for longer than this, a backstop behind the agent (the
--     rule's 15m plus a margin of 1m30s). The rule's warn lead (2m) has no native equivalent;
--     curfew's agent records a session_warned audit record then (the session's user is not told).
--   "abandoned-transaction" (idle in transaction 5m · members of humans):
--     idle_in_transaction_session_timeout = '6min' for members of "humans" (directly or through
--     other roles, and the role itself). PostgreSQL ends a session idle inside a transaction for
--     longer than this, a backstop behind the agent (the rule's 5m plus a margin of 1m).
--   "session-lifetime" (lifetime 12h · warn 10m · members of humans): not expressible natively:
--     PostgreSQL has no setting that limits how long a session stays connected.
--   "working-hours" (allow Mon-Fri 07:00-19:00, Sat 08:00-12:00 (America/New_York) · locks logins
--     · roles analyst_*): not expressible natively: PostgreSQL has no setting that depends on the
--     time of day or the date; the curfew agent ends these sessions and disables the logins of the
--     roles in scope while sessions are not allowed.
--   "one-session-each" (at most 1 per role · roles analyst_*): CONNECTION LIMIT 1 for roles
--     matching "analyst_*". Unlike the rule, PostgreSQL refuses a login beyond the limit instead of
--     ending the newest session, and does not limit superusers.
--   "app-stuck-transaction" (idle in transaction 10m · roles appuser):
--     idle_in_transaction_session_timeout = '11min' for the role "appuser". PostgreSQL ends a
--     session idle inside a transaction for longer than this, a backstop behind the agent (the
--     rule's 10m plus a margin of 1m).
--   "reporting-sessions" (at most 3 per role · roles report_*): CONNECTION LIMIT 3 for roles
--     matching "report_*". Unlike the rule, PostgreSQL refuses a login beyond the limit instead of
--     ending the newest session, and does not limit superusers.
--   "backup-lifetime-staged" (lifetime 6h · roles backupuser · report only): not expressible
--     natively: action = "report" (staged rollout): the rule ends nothing, and a native setting
--     would end sessions, so nothing is emitted for it.
--   "year-end-maintenance" (deny 2026-12-31 22:00 - 2027-01-01 02:00 (UTC) · every session): not
--     expressible natively: PostgreSQL has no setting that depends on the time of day or the date;
--     the curfew agent ends these sessions.
--   "privilege-probing" (3 × 42501 within 10m (NOT ENFORCED) · members of humans · report only):
--     not expressible natively: NOT ENFORCED: a report-only `violations` rule is documentation (the
--     agent cannot see a session's errors, and the curfew gateway counts them only for rules that
--     end sessions), and the database has no setting that counts errors by SQLSTATE; nothing is
--     emitted for it.
--

BEGIN;
-- Quotes in the literals below are doubled; backslashes are plain characters.
SET LOCAL standard_conforming_strings = on;

-- idle_session_timeout exists from PostgreSQL 14 on.
DO $curfew$
BEGIN
  IF current_setting('server_version_num')::int < 140000 THEN
    RAISE EXCEPTION 'curfew: these settings need PostgreSQL 14 or later; this server runs %',
      current_setting('server_version');
  END IF;
END
$curfew$;

-- Helpers for this transaction only (in pg_temp; dropped before COMMIT).
-- curfew_like: a policy name pattern (* any run of characters, ? one) as a LIKE pattern.
CREATE OR REPLACE FUNCTION pg_temp.curfew_like(pattern text) RETURNS text
LANGUAGE sql IMMUTABLE AS $curfew$
  SELECT replace(replace(replace(replace(replace(pattern,
    '\', '\\'), '%', '\%'), '_', '\_'), '*', '%'), '?', '_')
$curfew$;
-- curfew_roles: the roles a rule's roles/member_of cover (memberships direct or through
-- other roles), without the exempt roles, curfew's own roles and the reserved pg_* roles.
CREATE OR REPLACE FUNCTION pg_temp.curfew_roles(roles text[], member_of text[]) RETURNS SETOF name
LANGUAGE sql STABLE AS $curfew$
  WITH RECURSIVE up(member, grp) AS (
      SELECT oid, oid FROM pg_catalog.pg_roles
    UNION
      SELECT up.member, a.roleid FROM up JOIN pg_catalog.pg_auth_members a ON a.member = up.grp
  ), groups(member, name) AS (
    SELECT up.member, g.rolname FROM up JOIN pg_catalog.pg_roles g ON g.oid = up.grp
  )
  SELECT r.rolname FROM pg_catalog.pg_roles r
  WHERE left(r.rolname, 3) <> 'pg_'
    AND (curfew_roles.roles IS NULL OR r.rolname LIKE ANY
         (ARRAY(SELECT pg_temp.curfew_like(p) FROM unnest(curfew_roles.roles) p)))
    AND (curfew_roles.member_of IS NULL OR EXISTS
         (SELECT FROM groups g WHERE g.member = r.oid AND g.name LIKE ANY
          (ARRAY(SELECT pg_temp.curfew_like(p) FROM unnest(curfew_roles.member_of) p))))
    -- [exempt] roles
    AND NOT r.rolname LIKE ANY
        (ARRAY(SELECT pg_temp.curfew_like(p) FROM unnest(ARRAY['postgres', 'replicator']::text[]) p))
    -- [exempt] member_of
    AND NOT EXISTS
        (SELECT FROM groups g WHERE g.member = r.oid AND g.name LIKE ANY
         (ARRAY(SELECT pg_temp.curfew_like(p) FROM unnest(ARRAY[]::text[]) p)))
    -- curfew's own roles (the targets' users)
    AND r.rolname <> ALL (ARRAY['curfew_agent']::text[])
  ORDER BY 1
$curfew$;
-- curfew_databases: the databases (accepting connections) matching the patterns.
CREATE OR REPLACE FUNCTION pg_temp.curfew_databases(databases text[]) RETURNS SETOF name
LANGUAGE sql STABLE AS $curfew$
  SELECT d.datname FROM pg_catalog.pg_database d
  WHERE d.datallowconn AND d.datname LIKE ANY
    (ARRAY(SELECT pg_temp.curfew_like(p) FROM unnest(curfew_databases.databases) p))
  ORDER BY 1
$curfew$;
-- curfew_set: ALTER ROLE ... [IN DATABASE ...] SET for each role (and database) in scope.
CREATE OR REPLACE PROCEDURE pg_temp.curfew_set(rule text, setting text, value text,
    roles text[] DEFAULT NULL, member_of text[] DEFAULT NULL, databases text[] DEFAULT NULL)
LANGUAGE plpgsql AS $curfew$
DECLARE
  role_name name;
  database_name name;
  statement text;
  applied int := 0;
BEGIN
  FOR role_name IN SELECT pg_temp.curfew_roles(roles, member_of) LOOP
    IF databases IS NULL THEN
      statement := format('ALTER ROLE %I SET %I = %L', role_name, setting, value);
      EXECUTE statement;
      RAISE NOTICE 'curfew: rule %: %', rule, statement;
      applied := applied + 1;
    ELSE
      FOR database_name IN SELECT pg_temp.curfew_databases(databases) LOOP
        statement := format('ALTER ROLE %I IN DATABASE %I SET %I = %L',
                            role_name, database_name, setting, value);
        EXECUTE statement;
        RAISE NOTICE 'curfew: rule %: %', rule, statement;
        applied := applied + 1;
      END LOOP;
    END IF;
  END LOOP;
  IF applied = 0 THEN
    RAISE NOTICE 'curfew: rule %: no role (or database) in its scope exists; nothing set', rule;
  END IF;
END
$curfew$;
-- curfew_connection_limit: ALTER ROLE ... CONNECTION LIMIT for each role in scope.
CREATE OR REPLACE PROCEDURE pg_temp.curfew_connection_limit(rule text, sessions int,
    roles text[] DEFAULT NULL, member_of text[] DEFAULT NULL)
LANGUAGE plpgsql AS $curfew$
DECLARE
  role_name name;
  statement text;
  applied int := 0;
BEGIN
  FOR role_name IN SELECT pg_temp.curfew_roles(roles, member_of) LOOP
    statement := format('ALTER ROLE %I CONNECTION LIMIT %s', role_name, sessions);
    EXECUTE statement;
    RAISE NOTICE 'curfew: rule %: %', rule, statement;
    applied := applied + 1;
  END LOOP;
  IF applied = 0 THEN
    RAISE NOTICE 'curfew: rule %: no role in its scope exists; nothing set', rule;
  END IF;
END
$curfew$;

-- idle_session_timeout: largest first, so that where rules overlap the strictest is set last.
-- Rule "inactivity" (idle 15m · warn 2m · members of humans).
CALL pg_temp.curfew_set('inactivity', 'idle_session_timeout', '990s', member_of => ARRAY['humans']);

-- idle_in_transaction_session_timeout: largest first, so that where rules overlap the strictest is set last.
-- Rule "app-stuck-transaction" (idle in transaction 10m · roles appuser).
CALL pg_temp.curfew_set('app-stuck-transaction', 'idle_in_transaction_session_timeout', '11min', roles => ARRAY['appuser']);
-- Rule "abandoned-transaction" (idle in transaction 5m · members of humans).
CALL pg_temp.curfew_set('abandoned-transaction', 'idle_in_transaction_session_timeout', '6min', member_of => ARRAY['humans']);

-- CONNECTION LIMIT: largest first, so that where rules overlap the strictest is set last.
-- Rule "reporting-sessions" (at most 3 per role · roles report_*).
CALL pg_temp.curfew_connection_limit('reporting-sessions', 3, roles => ARRAY['report_*']);
-- Rule "one-session-each" (at most 1 per role · roles analyst_*).
CALL pg_temp.curfew_connection_limit('one-session-each', 1, roles => ARRAY['analyst_*']);

DROP PROCEDURE pg_temp.curfew_connection_limit(text, int, text[], text[]);
DROP PROCEDURE pg_temp.curfew_set(text, text, text, text[], text[], text[]);
DROP FUNCTION pg_temp.curfew_databases(text[]);
DROP FUNCTION pg_temp.curfew_roles(text[], text[]);
DROP FUNCTION pg_temp.curfew_like(text);
COMMIT;
