-- curfew compile --dialect oracle
-- Policy: examples/curfew.toml
-- SHA-256: ddb622207d74ef790441fe95cb940836d3d7bd4926d22ae61862023d78a6ec02

-- Oracle Database profiles and sqlnet.ora settings for the rules of this policy that Oracle can
-- express itself. curfew's agent watches PostgreSQL only: on Oracle these settings are the
-- enforcement, and the rules they cannot express (listed below) need another control.

-- This script was checked for syntax by curfew's own recognizer only; no Oracle server was
-- available to run it.

-- Run it in SQL*Plus or SQLcl, connected to the pluggable database whose users it limits, as a user
-- with CREATE PROFILE, ALTER PROFILE, ALTER USER and ALTER SYSTEM. The profiles are local ones (in
-- CDB$ROOT, a common profile's name must start with C##).

-- Names: the policy's role names are used as Oracle user and role names exactly as written, in
-- double quotes. "appuser" is not APPUSER, the name Oracle gives a user created as CREATE USER
-- appuser: write the names in the policy as Oracle stores them.

-- Margin: none. No curfew agent ends Oracle sessions, so the profiles are the enforcement and keep
-- the policy's limits (curfew compile --margin sets one, for when something else ends sessions
-- first and should keep the evidence).

-- Minutes: IDLE_TIME and CONNECT_TIME count whole minutes. Every limit is rounded UP to the next
-- whole minute, so Oracle never ends a session before the policy's limit (90s becomes 2 minutes);
-- each rounding is noted below.

-- A user has exactly one profile. So that a user covered by several scopes gets all their limits,
-- there is a profile for each combination of scopes, and when several rules limit the same resource
-- the strictest (smallest) wins. Limits no rule sets are DEFAULT (taken from the DEFAULT profile).
-- Giving a user one of these profiles replaces its current profile, password limits included (they
-- become the DEFAULT profile's).

-- Applying it again: CREATE PROFILE fails with ORA-02379 when the profile exists; the ALTER PROFILE
-- after it sets the same limits either way (so do not run it under WHENEVER SQLERROR EXIT).

-- Exemptions:
--   [exempt] roles "postgres", "replicator": never given these profiles (left out of the queries
--     and statements below).
--   [exempt] addresses "local": cannot be expressed (a profile cannot depend on the client
--     address); the users' sessions are limited from every address.
--   [[exempt]] #2 (roles "backup" and applications "pg_dump" or "pg_basebackup"): cannot be
--     expressed (a profile cannot depend on a session's other keys); these sessions are limited by
--     their user's profile.

-- Rules:
--   "inactivity" (idle 15m · warn 2m · members of humans): IDLE_TIME 15 (exact) for users granted
--     the role "humans" (directly or through other roles). Oracle also counts time idle inside an
--     open transaction, which the rule does not; a sniped session's client learns of it at its next
--     call. The rule's warn lead (2m) has no native equivalent; curfew's agent records a
--     session_warned audit record then (the session's user is not told).
--   "abandoned-transaction" (idle in transaction 5m · members of humans): not expressible natively:
--     Oracle has no limit on time spent idle inside a transaction: IDLE_TIME counts all idle time,
--     in a transaction or not (it is what idle rules map to), and Resource Manager's
--     MAX_IDLE_BLOCKER_TIME only covers idle sessions that block others.
--   "session-lifetime" (lifetime 12h · warn 10m · members of humans): CONNECT_TIME 720 (exact) for
--     users granted the role "humans" (directly or through other roles). Oracle rolls back the
--     current transaction and ends the session at its next call after the limit. The rule's warn
--     lead (10m) has no native equivalent; curfew's agent records a session_warned audit record
--     then (the session's user is not told).
--   "working-hours" (allow Mon-Fri 07:00-19:00, Sat 08:00-12:00 (America/New_York) · locks logins
--     · roles analyst_*): not expressible natively: profiles have no time-of-day or date limits (a
--     logon trigger or a scheduler job could approximate the windows; none is generated).
--   "one-session-each" (at most 1 per role · roles analyst_*): SESSIONS_PER_USER 1 for users whose
--     names match "analyst_*". Unlike the rule, Oracle refuses a session beyond the limit at login
--     (ORA-02391) instead of ending the newest.
--   "app-stuck-transaction" (idle in transaction 10m · roles appuser): not expressible natively:
--     Oracle has no limit on time spent idle inside a transaction: IDLE_TIME counts all idle time,
--     in a transaction or not (it is what idle rules map to), and Resource Manager's
--     MAX_IDLE_BLOCKER_TIME only covers idle sessions that block others.
--   "reporting-sessions" (at most 3 per role · roles report_*): SESSIONS_PER_USER 3 for users whose
--     names match "report_*". Unlike the rule, Oracle refuses a session beyond the limit at login
--     (ORA-02391) instead of ending the newest.
--   "backup-lifetime-staged" (lifetime 6h · roles backupuser · report only): not expressible
--     natively: action = "report" (staged rollout): the rule ends nothing, and a native setting
--     would end sessions, so nothing is emitted for it.
--   "year-end-maintenance" (deny 2026-12-31 22:00 - 2027-01-01 02:00 (UTC) · every session): not
--     expressible natively: profiles have no time-of-day or date limits (a logon trigger or a
--     scheduler job could approximate the windows; none is generated).
--   "privilege-probing" (3 × 42501 within 10m (NOT ENFORCED) · members of humans · report only):
--     not expressible natively: NOT ENFORCED: a report-only `violations` rule is documentation (the
--     agent cannot see a session's errors, and the curfew gateway counts them only for rules that
--     end sessions), and the database has no setting that counts errors by SQLSTATE; nothing is
--     emitted for it.

SET DEFINE OFF

-- Scopes, and the query that lists the users of each:
--   Scope 1: users granted the role "humans" (directly or through other roles).
--     Find them: SELECT username FROM dba_users WHERE oracle_maintained = 'N' AND username IN
--       (SELECT grantee FROM dba_role_privs START WITH (granted_role LIKE 'humans' ESCAPE '\')
--       CONNECT BY NOCYCLE PRIOR grantee = granted_role) AND NOT (username LIKE 'postgres' ESCAPE
--       '\' OR username LIKE 'replicator' ESCAPE '\') ORDER BY username;
--   Scope 2: users whose names match "analyst_*".
--     Find them: SELECT username FROM dba_users WHERE oracle_maintained = 'N' AND (username LIKE
--       'analyst\_%' ESCAPE '\') AND NOT (username LIKE 'postgres' ESCAPE '\' OR username LIKE
--       'replicator' ESCAPE '\') ORDER BY username;
--   Scope 3: users whose names match "report_*".
--     Find them: SELECT username FROM dba_users WHERE oracle_maintained = 'N' AND (username LIKE
--       'report\_%' ESCAPE '\') AND NOT (username LIKE 'postgres' ESCAPE '\' OR username LIKE
--       'replicator' ESCAPE '\') ORDER BY username;

-- Profile "CURFEW_1" for users in scope 1 only.
--   IDLE_TIME 15: rule "inactivity".
--   CONNECT_TIME 720: rule "session-lifetime".
CREATE PROFILE "CURFEW_1" LIMIT
  IDLE_TIME 15
  CONNECT_TIME 720
  SESSIONS_PER_USER DEFAULT;
ALTER PROFILE "CURFEW_1" LIMIT
  IDLE_TIME 15
  CONNECT_TIME 720
  SESSIONS_PER_USER DEFAULT;

-- Profile "CURFEW_2" for users in scope 2 only.
--   SESSIONS_PER_USER 1: rule "one-session-each".
CREATE PROFILE "CURFEW_2" LIMIT
  IDLE_TIME DEFAULT
  CONNECT_TIME DEFAULT
  SESSIONS_PER_USER 1;
ALTER PROFILE "CURFEW_2" LIMIT
  IDLE_TIME DEFAULT
  CONNECT_TIME DEFAULT
  SESSIONS_PER_USER 1;

-- Profile "CURFEW_3" for users in scope 3 only.
--   SESSIONS_PER_USER 3: rule "reporting-sessions".
CREATE PROFILE "CURFEW_3" LIMIT
  IDLE_TIME DEFAULT
  CONNECT_TIME DEFAULT
  SESSIONS_PER_USER 3;
ALTER PROFILE "CURFEW_3" LIMIT
  IDLE_TIME DEFAULT
  CONNECT_TIME DEFAULT
  SESSIONS_PER_USER 3;

-- Profile "CURFEW_1_2" for users in scopes 1 and 2 only.
--   IDLE_TIME 15: rule "inactivity".
--   CONNECT_TIME 720: rule "session-lifetime".
--   SESSIONS_PER_USER 1: rule "one-session-each".
CREATE PROFILE "CURFEW_1_2" LIMIT
  IDLE_TIME 15
  CONNECT_TIME 720
  SESSIONS_PER_USER 1;
ALTER PROFILE "CURFEW_1_2" LIMIT
  IDLE_TIME 15
  CONNECT_TIME 720
  SESSIONS_PER_USER 1;

-- Profile "CURFEW_1_3" for users in scopes 1 and 3 only.
--   IDLE_TIME 15: rule "inactivity".
--   CONNECT_TIME 720: rule "session-lifetime".
--   SESSIONS_PER_USER 3: rule "reporting-sessions".
CREATE PROFILE "CURFEW_1_3" LIMIT
  IDLE_TIME 15
  CONNECT_TIME 720
  SESSIONS_PER_USER 3;
ALTER PROFILE "CURFEW_1_3" LIMIT
  IDLE_TIME 15
  CONNECT_TIME 720
  SESSIONS_PER_USER 3;

-- Profile "CURFEW_2_3" for users in scopes 2 and 3 only.
--   SESSIONS_PER_USER 1: rule "one-session-each".
CREATE PROFILE "CURFEW_2_3" LIMIT
  IDLE_TIME DEFAULT
  CONNECT_TIME DEFAULT
  SESSIONS_PER_USER 1;
ALTER PROFILE "CURFEW_2_3" LIMIT
  IDLE_TIME DEFAULT
  CONNECT_TIME DEFAULT
  SESSIONS_PER_USER 1;

-- Profile "CURFEW_1_2_3" for users in scopes 1 and 2 and 3.
--   IDLE_TIME 15: rule "inactivity".
--   CONNECT_TIME 720: rule "session-lifetime".
--   SESSIONS_PER_USER 1: rule "one-session-each".
CREATE PROFILE "CURFEW_1_2_3" LIMIT
  IDLE_TIME 15
  CONNECT_TIME 720
  SESSIONS_PER_USER 1;
ALTER PROFILE "CURFEW_1_2_3" LIMIT
  IDLE_TIME 15
  CONNECT_TIME 720
  SESSIONS_PER_USER 1;

-- Profile resource limits are enforced only while RESOURCE_LIMIT is TRUE (the default in current
-- releases; set here explicitly). SCOPE = BOTH needs a server parameter file.
ALTER SYSTEM SET RESOURCE_LIMIT = TRUE SCOPE = BOTH;

-- Users: give each user the profile of the scopes it is in. The users the policy names (covered by
-- their name alone) are given theirs here:
--   none.
-- The users of patterns and memberships are listed by the queries under "Scopes" above; give each
-- the profile of the scopes whose queries list it, e.g. for a user listed by all of them: ALTER
-- USER "NAME" PROFILE "CURFEW_1_2_3";

-- ==== sqlnet.ora ================================================================================
-- Not SQL: these lines go in the database server's sqlnet.ora ($TNS_ADMIN, or
-- $ORACLE_HOME/network/admin), without the leading "-- ". New connections use them.
-- SQLNET.EXPIRE_TIME is in minutes: every 10 minutes the server probes each connection and ends the
-- session of a client that has gone (crashed, unplugged) instead of keeping it until the operating
-- system gives up on the connection. No rule sets it: 10 minutes is a common choice; it does not
-- end idle sessions of clients that are still there.
-- SQLNET.INBOUND_CONNECT_TIMEOUT is in seconds, not minutes: a client that has not connected and
-- authenticated within 60 seconds is refused (ORA-03136). No rule sets it: 60 seconds matches
-- PostgreSQL's authentication_timeout default.

-- SQLNET.EXPIRE_TIME = 10
-- SQLNET.INBOUND_CONNECT_TIMEOUT = 60
