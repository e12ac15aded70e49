//! `curfew init`'s SQL (see `crate::ledger::install` for what it installs and why): the ledger's
//! functions, the owner role's setup, the schema, tables and grants, as statement text built
//! from the agent's role name and what the administrator is.

use tokio_postgres::Row;

use crate::error::PgError;
use crate::names::{OWNER_ROLE, quote_identifier};
use crate::sql::anchor::{ANCHOR_DDL, ANCHOR_FUNCTION, ANCHOR_FUNCTIONS};
use crate::sql::decode::col;
use crate::sql::ledger::{ACTIVE, AGENT_FUNCTIONS, DDL, SCHEMA_COMMENT};

/// What looking up the agent's role's errors say curfew was doing.
pub(crate) const WHAT_AGENT: &str = "looking up the agent's role";

/// What looking for the schema's errors say curfew was doing.
pub(crate) const WHAT_SCHEMA: &str = "looking for the curfew schema";

/// The attributes of role `$1` that matter to `curfew init`.
pub(crate) const AGENT_ROLE: &str =
    "SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = $1";

/// Whether role `$1` exists.
pub(crate) const ROLE_EXISTS: &str = "SELECT 1 FROM pg_roles WHERE rolname = $1";

/// Whether schema `curfew` exists.
pub(crate) const SCHEMA_EXISTS: &str =
    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'curfew')";

/// Helpers the functions call; nobody else may.
const INTERNAL_FUNCTIONS: &[&str] = &[
    "curfew.fence(integer,timestamp with time zone)",
    "curfew.check_lockable(oid)",
];

/// The functions. `{ACTIVE}` is replaced by the lock-in-force condition.
const FUNCTIONS: &str = r#"
CREATE OR REPLACE FUNCTION curfew.fence(p_pid integer, p_start timestamptz) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $f$
BEGIN
    -- The same condition as the agent's fenced statements: the caller's leader lock session
    -- is alive (and is a session of the caller's own role).
    IF p_pid IS NULL OR p_start IS NULL OR NOT EXISTS (
        SELECT 1 FROM pg_stat_get_activity(p_pid) a
        WHERE a.backend_start = p_start
          AND a.usesysid = (SELECT r.oid FROM pg_roles r WHERE r.rolname = session_user)) THEN
        RAISE EXCEPTION 'the leader lock session (pid %) is gone: this agent no longer leads', p_pid
            USING ERRCODE = 'CF001';
    END IF;
END $f$;

CREATE OR REPLACE FUNCTION curfew.check_lockable(p_role oid) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
    r record;
    why text;
BEGIN
    SELECT rolname, rolsuper, rolcreaterole INTO r FROM pg_roles WHERE oid = p_role;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no role has oid %', p_role USING ERRCODE = 'CF002';
    END IF;
    why := CASE
        WHEN r.rolsuper THEN 'it is a superuser'
        WHEN r.rolcreaterole THEN 'it has CREATEROLE (an administrator)'
        WHEN EXISTS (SELECT 1 FROM pg_roles g
                     WHERE g.oid <> p_role
                       AND (g.rolsuper OR g.rolcreaterole
                            OR g.rolname IN ('rds_superuser', 'cloudsqlsuperuser', 'azure_pg_admin'))
                       AND pg_has_role(p_role, g.oid, 'MEMBER'))
            THEN 'it is a member of an administrator role, which it can SET ROLE to'
        WHEN p_role = (SELECT oid FROM pg_roles WHERE rolname = current_user)
             OR pg_has_role(p_role, current_user, 'MEMBER')
            THEN 'it owns curfew''s ledger'
        WHEN p_role = (SELECT oid FROM pg_roles WHERE rolname = session_user)
            THEN 'it is the role curfew connects as'
        WHEN has_function_privilege(p_role,
                 'curfew.change_login(oid,boolean,integer,timestamp with time zone)', 'EXECUTE')
            THEN 'it may change logins through curfew''s functions (curfew''s own role)'
    END;
    IF why IS NOT NULL THEN
        RAISE EXCEPTION 'curfew does not change the login of role %: %', quote_ident(r.rolname), why
            USING ERRCODE = 'CF002';
    END IF;
END $f$;

CREATE OR REPLACE FUNCTION curfew.change_login(
    p_role oid, p_disable boolean, p_pid integer, p_start timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
    r record;
    ours boolean;
    wanted boolean;
BEGIN
    -- Serializes login changes: only this table's owner and functions can take this lock
    -- (advisory locks are anyone's to take and hold).
    LOCK TABLE curfew.disabled_login IN SHARE ROW EXCLUSIVE MODE;
    PERFORM curfew.fence(p_pid, p_start);
    SELECT rolname, rolcanlogin INTO r FROM pg_roles WHERE oid = p_role;
    IF NOT FOUND THEN
        DELETE FROM curfew.disabled_login d WHERE d.role_oid = p_role;
        RETURN 'role_gone';
    END IF;
    ours := EXISTS (SELECT 1 FROM curfew.disabled_login d WHERE d.role_oid = p_role);
    wanted := EXISTS (SELECT 1 FROM curfew.lock l WHERE l.role_oid = p_role AND {ACTIVE});
    IF p_disable AND wanted AND r.rolcanlogin THEN
        PERFORM curfew.check_lockable(p_role);
        IF NOT ours THEN
            INSERT INTO curfew.disabled_login (role_oid, role_name) VALUES (p_role, r.rolname);
        END IF;
        BEGIN
            EXECUTE format('ALTER ROLE %I NOLOGIN', r.rolname);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION '%', SQLERRM USING ERRCODE = 'CF003';
        END;
        RETURN CASE WHEN ours THEN 'drift_corrected' ELSE 'disabled' END;
    ELSIF NOT p_disable AND NOT wanted AND ours THEN
        -- A lock that expired since the agent's last round is released here, so the ledger
        -- never shows a lock in force on a role that can log in again.
        UPDATE curfew.lock SET released_at = expires_at, released_by = 'expired'
        WHERE role_oid = p_role AND released_at IS NULL AND expires_at <= clock_timestamp();
        IF NOT r.rolcanlogin THEN
            PERFORM curfew.check_lockable(p_role);
            BEGIN
                EXECUTE format('ALTER ROLE %I LOGIN', r.rolname);
            EXCEPTION WHEN insufficient_privilege THEN
                RAISE EXCEPTION '%', SQLERRM USING ERRCODE = 'CF003';
            END;
        END IF;
        DELETE FROM curfew.disabled_login d WHERE d.role_oid = p_role;
        RETURN 'restored';
    END IF;
    RETURN 'not_needed';
END $f$;

CREATE OR REPLACE FUNCTION curfew.sync_window_locks(
    p_rule text, p_oids oid[], p_names text[], p_reason text, p_pid integer, p_start timestamptz)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
    released bigint;
    added bigint;
BEGIN
    PERFORM curfew.fence(p_pid, p_start);
    UPDATE curfew.lock SET released_at = clock_timestamp(),
           released_by = 'curfew agent: the window opened or the role left the rule''s scope'
    WHERE kind = 'window' AND rule = p_rule AND released_at IS NULL
      AND NOT (role_oid = ANY(p_oids));
    GET DIAGNOSTICS released = ROW_COUNT;
    INSERT INTO curfew.lock (role_oid, role_name, kind, rule, reason, created_by)
    SELECT o, n, 'window', p_rule, p_reason, 'curfew agent (rule ' || p_rule || ')'
    FROM unnest(p_oids, p_names) AS t(o, n)
    ON CONFLICT (role_oid, kind, coalesce(rule, '')) WHERE released_at IS NULL DO NOTHING;
    GET DIAGNOSTICS added = ROW_COUNT;
    RETURN released + added;
END $f$;

CREATE OR REPLACE FUNCTION curfew.release_window_locks_except(
    p_rules text[], p_pid integer, p_start timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
    released bigint;
BEGIN
    PERFORM curfew.fence(p_pid, p_start);
    UPDATE curfew.lock SET released_at = clock_timestamp(),
           released_by = 'curfew agent: the rule is no longer in the policy'
    WHERE kind = 'window' AND released_at IS NULL AND NOT (rule = ANY(p_rules));
    GET DIAGNOSTICS released = ROW_COUNT;
    RETURN released;
END $f$;

CREATE OR REPLACE FUNCTION curfew.expire_locks(p_pid integer, p_start timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
    released bigint;
BEGIN
    PERFORM curfew.fence(p_pid, p_start);
    UPDATE curfew.lock SET released_at = expires_at, released_by = 'expired'
    WHERE released_at IS NULL AND expires_at <= clock_timestamp();
    GET DIAGNOSTICS released = ROW_COUNT;
    RETURN released;
END $f$;

CREATE OR REPLACE FUNCTION curfew.forget_dropped_roles(p_pid integer, p_start timestamptz)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
BEGIN
    PERFORM curfew.fence(p_pid, p_start);
    DELETE FROM curfew.disabled_login d
    WHERE NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.oid = d.role_oid);
    UPDATE curfew.lock l SET released_at = clock_timestamp(),
           released_by = 'curfew agent: the role was dropped'
    WHERE l.released_at IS NULL AND NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.oid = l.role_oid);
END $f$;

CREATE OR REPLACE FUNCTION curfew.mark_announced(p_id bigint, p_pid integer, p_start timestamptz)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
BEGIN
    PERFORM curfew.fence(p_pid, p_start);
    UPDATE curfew.lock SET announced_created = true,
           announced_released = (released_at IS NOT NULL)
    WHERE id = p_id;
END $f$;

-- An operator's incident lock (`curfew lock`): not fenced, as no agent makes it; the agent
-- applies it, fenced.
CREATE OR REPLACE FUNCTION curfew.create_incident_lock(
    p_role oid, p_reason text, p_created_by text, p_expires_at timestamptz) RETURNS curfew.lock
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
    rec curfew.lock;
BEGIN
    PERFORM curfew.check_lockable(p_role);
    INSERT INTO curfew.lock AS l (role_oid, role_name, kind, reason, created_by, expires_at)
    SELECT p_role, rolname, 'incident', p_reason,
        -- Who: what the command says (its OS user), and what the server knows (the session's
        -- role, address and process), which the caller cannot choose.
        CASE WHEN left(ltrim(p_created_by), 1) = '{'
             THEN (p_created_by::jsonb || jsonb_build_object('server', jsonb_build_object(
                 'session_user', session_user::text,
                 'client_addr', host(inet_client_addr()),
                 'pid', pg_backend_pid())))::text
             ELSE p_created_by END,
        p_expires_at
    FROM pg_roles WHERE oid = p_role
    ON CONFLICT (role_oid, kind, coalesce(rule, '')) WHERE released_at IS NULL
    DO UPDATE SET reason = EXCLUDED.reason, expires_at = EXCLUDED.expires_at,
                  created_by = EXCLUDED.created_by
    RETURNING l.* INTO rec;
    RETURN rec;
END $f$;

CREATE OR REPLACE FUNCTION curfew.release_incident_lock(p_role oid, p_released_by text)
RETURNS SETOF curfew.lock
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
    UPDATE curfew.lock SET released_at = clock_timestamp(),
        released_by = CASE WHEN left(ltrim(p_released_by), 1) = '{'
             THEN (p_released_by::jsonb || jsonb_build_object('server', jsonb_build_object(
                 'session_user', session_user::text,
                 'client_addr', host(inet_client_addr()),
                 'pid', pg_backend_pid())))::text
             ELSE p_released_by END
    WHERE role_oid = p_role AND kind = 'incident' AND released_at IS NULL
    RETURNING *;
$f$;
"#;

/// One line per object in schema `curfew` that curfew did not create and would not trust
/// (see `crate::ledger::vetting`); `$1`, the agent's role, may keep its grants.
pub(crate) const FOREIGN: &str = "
WITH t AS (
  SELECT c.oid, c.relname FROM pg_class c
  WHERE c.relnamespace = to_regnamespace('curfew') AND c.relkind IN ('r', 'p')
)
SELECT format('trigger %s on curfew.%s', tg.tgname, t.relname)
  FROM pg_trigger tg JOIN t ON t.oid = tg.tgrelid WHERE NOT tg.tgisinternal
UNION ALL
SELECT format('rule %s on curfew.%s', r.rulename, t.relname)
  FROM pg_rewrite r JOIN t ON t.oid = r.ev_class
UNION ALL
SELECT format('row-level security policy %s on curfew.%s', p.polname, t.relname)
  FROM pg_policy p JOIN t ON t.oid = p.polrelid
UNION ALL
SELECT format('row-level security enabled on curfew.%s', t.relname)
  FROM t JOIN pg_class c ON c.oid = t.oid WHERE c.relrowsecurity
UNION ALL
SELECT format('%s curfew.%s', CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
              WHEN 'f' THEN 'foreign table' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence'
              ELSE 'relation' END, c.relname)
  FROM pg_class c
  WHERE c.relnamespace = to_regnamespace('curfew')
    AND NOT (c.relkind = 'r' AND c.relname IN ('lock', 'disabled_login', 'anchor', 'gateway_mock_key',
                                               'gateway_sessions'))
    AND NOT (c.relkind = 'v' AND c.relname = 'sessions')
    AND NOT (c.relkind = 'S' AND c.relname = 'lock_id_seq')
    AND NOT (c.relkind = 'i' AND c.relname IN ('lock_pkey', 'disabled_login_pkey', 'lock_one_active',
                                               'anchor_pkey', 'gateway_mock_key_pkey',
                                               'gateway_sessions_pkey'))
UNION ALL
SELECT format('%s, which calls %s', pg_describe_object(d.classid, d.objid, d.objsubid),
              d.refobjid::regprocedure)
  FROM pg_depend d
  JOIN pg_proc f ON f.oid = d.refobjid
  WHERE d.refclassid = 'pg_proc'::regclass
    AND f.pronamespace <> 'pg_catalog'::regnamespace
    AND (   (d.classid = 'pg_attrdef'::regclass
             AND d.objid IN (SELECT a.oid FROM pg_attrdef a JOIN t ON t.oid = a.adrelid))
         OR (d.classid = 'pg_constraint'::regclass
             AND d.objid IN (SELECT k.oid FROM pg_constraint k JOIN t ON t.oid = k.conrelid))
         OR (d.classid = 'pg_class'::regclass
             AND d.objid IN (SELECT i.indexrelid FROM pg_index i JOIN t ON t.oid = i.indrelid)))
UNION ALL
SELECT format('privileges of role %s on curfew.%s', g.grantee::regrole, t.relname)
  FROM t JOIN pg_class c ON c.oid = t.oid, aclexplode(c.relacl) g
  WHERE g.grantee <> c.relowner AND g.grantee <> 0
    AND g.grantee NOT IN (SELECT oid FROM pg_roles WHERE rolname IN ($1, 'curfew_owner'))
    -- The gateway auth function's owner reads the mock key (crate::ledger::gateway_auth).
    AND NOT (t.relname = 'gateway_mock_key' AND g.privilege_type = 'SELECT'
             AND g.grantee = (SELECT oid FROM pg_roles WHERE rolname = 'curfew_gateway_auth'))
    -- pg_stat_activity's readers read the gateway session registry (crate::ledger::gateway_registry).
    AND NOT (t.relname = 'gateway_sessions' AND g.privilege_type = 'SELECT'
             AND g.grantee = 'pg_read_all_stats'::regrole)
UNION ALL
SELECT format('member %s of role curfew_owner', m.member::regrole)
  FROM pg_auth_members m
  WHERE m.roleid = (SELECT oid FROM pg_roles WHERE rolname = 'curfew_owner')
    AND m.member <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
ORDER BY 1";

/// [`AGENT_ROLE`]'s row: whether the role is a superuser, and whether it has CREATEROLE.
pub(crate) fn decode_agent_role(row: &Row, target: &str) -> Result<(bool, bool), PgError> {
    Ok((
        col(row, 0, target, WHAT_AGENT)?,
        col(row, 1, target, WHAT_AGENT)?,
    ))
}

/// What the administrator should know about curfew's agent role, given its attributes.
pub(crate) fn agent_role_note(
    agent_role: &str,
    superuser: bool,
    createrole: bool,
) -> Option<String> {
    if superuser {
        Some(format!(
            "role \"{agent_role}\" is a superuser: curfew needs only pg_read_all_stats and pg_signal_backend and the grants made now"
        ))
    } else if createrole {
        Some(format!(
            "role \"{agent_role}\" still has CREATEROLE, which curfew no longer needs and which lets it grant itself pg_execute_server_program on PostgreSQL 14/15: run ALTER ROLE {} NOCREATEROLE;",
            quote_identifier(agent_role)
        ))
    } else {
        None
    }
}

/// Create the owner role, which nobody logs in as.
pub(crate) fn create_owner_sql() -> String {
    format!("CREATE ROLE {} NOLOGIN", quote_identifier(OWNER_ROLE))
}

/// The owner's attributes: a superuser on PostgreSQL 16 and later when a superuser installs
/// (`CREATEROLE` there reaches only roles it holds `ADMIN OPTION` on), else `CREATEROLE`.
pub(crate) fn owner_attributes(superuser: bool, version_num: i32) -> &'static str {
    if superuser && version_num >= 160_000 {
        "NOLOGIN SUPERUSER"
    } else {
        "NOLOGIN NOSUPERUSER CREATEROLE"
    }
}

/// Give the owner its attributes, comment and `pg_read_all_stats` (the fence reads the leader
/// session's start); an administrator who is no superuser becomes a member, to hand its objects
/// over.
pub(crate) fn owner_setup_sql(owner_attributes: &str, superuser: bool) -> String {
    let owner_q = quote_identifier(OWNER_ROLE);
    let mut setup = format!(
        "ALTER ROLE {owner_q} {owner_attributes};
             COMMENT ON ROLE {owner_q} IS 'owns the curfew ledger and its functions; nobody logs in as it';
             GRANT pg_read_all_stats TO {owner_q};"
    );
    if !superuser {
        // The admin must be a member to hand its objects over.
        setup.push_str(&format!("GRANT {owner_q} TO CURRENT_USER;"));
    }
    setup
}

/// Hand an existing schema to the owner, or create it as the owner's.
pub(crate) fn schema_sql(existed: bool) -> String {
    let owner_q = quote_identifier(OWNER_ROLE);
    if existed {
        format!("ALTER SCHEMA curfew OWNER TO {owner_q};")
    } else {
        format!("CREATE SCHEMA curfew AUTHORIZATION {owner_q};")
    }
}

/// The ledger's and the anchor store's tables.
pub(crate) fn tables_sql() -> String {
    format!("{DDL}{ANCHOR_DDL}")
}

/// The ledger's and the anchor store's functions.
pub(crate) fn functions_sql() -> String {
    let mut functions = FUNCTIONS.replace("{ACTIVE}", ACTIVE);
    functions.push_str(ANCHOR_FUNCTIONS);
    functions
}

/// The ownership and privileges: the owner owns everything; `agent_role` may enter the
/// schema, read the tables and execute the agent's functions, nothing else; `PUBLIC` nothing.
pub(crate) fn grants_sql(agent_role: &str) -> String {
    let owner_q = quote_identifier(OWNER_ROLE);
    let agent_q = quote_identifier(agent_role);
    let mut grants = format!(
        "REVOKE ALL ON SCHEMA curfew FROM PUBLIC, {agent_q};
             GRANT USAGE ON SCHEMA curfew TO {agent_q};
             ALTER TABLE curfew.lock OWNER TO {owner_q};
             ALTER TABLE curfew.disabled_login OWNER TO {owner_q};
             ALTER TABLE curfew.anchor OWNER TO {owner_q};
             REVOKE ALL ON ALL TABLES IN SCHEMA curfew FROM PUBLIC, {agent_q};
             REVOKE ALL ON ALL SEQUENCES IN SCHEMA curfew FROM PUBLIC, {agent_q};
             GRANT SELECT ON curfew.lock, curfew.disabled_login, curfew.anchor TO {agent_q};
             COMMENT ON SCHEMA curfew IS '{SCHEMA_COMMENT}';"
    );
    let anchor = [ANCHOR_FUNCTION];
    for function in INTERNAL_FUNCTIONS
        .iter()
        .chain(AGENT_FUNCTIONS)
        .chain(&anchor)
    {
        grants.push_str(&format!(
            "ALTER FUNCTION {function} OWNER TO {owner_q};
                 REVOKE ALL ON FUNCTION {function} FROM PUBLIC, {agent_q};"
        ));
    }
    for function in AGENT_FUNCTIONS.iter().chain(&anchor) {
        grants.push_str(&format!(
            "GRANT EXECUTE ON FUNCTION {function} TO {agent_q};"
        ));
    }
    grants
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_may_execute_its_functions_and_no_helper() {
        let grants = grants_sql("cur\"few");
        for function in AGENT_FUNCTIONS.iter().chain(&[ANCHOR_FUNCTION]) {
            assert!(
                grants.contains(&format!(
                    "GRANT EXECUTE ON FUNCTION {function} TO \"cur\"\"few\";"
                )),
                "{function}"
            );
        }
        for helper in INTERNAL_FUNCTIONS {
            assert!(grants.contains(&format!(
                "ALTER FUNCTION {helper} OWNER TO \"curfew_owner\";"
            )));
            assert!(!grants.contains(&format!("GRANT EXECUTE ON FUNCTION {helper}")));
        }
        assert!(!functions_sql().contains("{ACTIVE}"));
    }

    #[test]
    fn the_owner_is_a_superuser_only_on_16_and_later_with_a_superuser_installing() {
        assert_eq!(owner_attributes(true, 160_000), "NOLOGIN SUPERUSER");
        assert_eq!(
            owner_attributes(true, 150_000),
            "NOLOGIN NOSUPERUSER CREATEROLE"
        );
        assert_eq!(
            owner_attributes(false, 170_000),
            "NOLOGIN NOSUPERUSER CREATEROLE"
        );
        assert!(owner_setup_sql("X", false).ends_with("GRANT \"curfew_owner\" TO CURRENT_USER;"));
        assert!(!owner_setup_sql("X", true).contains("CURRENT_USER"));
    }

    #[test]
    fn notes_on_the_agent_role_name_what_is_too_much() {
        assert!(
            agent_role_note("a", true, true)
                .unwrap()
                .contains("is a superuser")
        );
        assert!(
            agent_role_note("a", false, true)
                .unwrap()
                .contains("ALTER ROLE \"a\" NOCREATEROLE;")
        );
        assert_eq!(agent_role_note("a", false, false), None);
    }
}
