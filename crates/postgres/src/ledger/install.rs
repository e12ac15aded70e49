//! `curfew init`: the ledger and the functions through which curfew's role writes it, installed
//! by an administrator, and the audit chain's anchor store (`crate::anchor`). curfew's role gets
//! `USAGE` on the schema, `SELECT` on the three tables and `EXECUTE` on the functions below
//! and `curfew.anchor`, nothing else: it never needs `CREATEROLE` (which on
//! PostgreSQL 14 and 15 lets a role grant itself `pg_execute_server_program`, a shell on the
//! server).
//!
//! The tables and functions belong to [`OWNER_ROLE`], a role nobody logs in as. The functions are
//! `SECURITY DEFINER` with a fixed `search_path`, `EXECUTE` revoked from `PUBLIC`. They switch
//! only `rolcanlogin`, only of ordinary roles (never a superuser, a `CREATEROLE` role, the owner,
//! or a role that may call the functions, such as curfew's own), record the change in the same
//! transaction, and, for the agent's writes, refuse unless the caller's leader lock session
//! (pid and start, as in `crate::leader`) is alive. The owner's attributes:
//!
//! - PostgreSQL 14 and 15: `CREATEROLE` (enough to alter non-superusers) and
//!   `pg_read_all_stats` (the fence reads the leader session's start);
//! - PostgreSQL 16 and later: `CREATEROLE` reaches only roles it holds `ADMIN OPTION` on, so when
//!   a superuser runs `curfew init` the owner is a `NOLOGIN SUPERUSER`. Nobody can log in as it or
//!   become it (it has no members); only the functions' fixed code runs with its rights, and
//!   they refuse everything but switching an ordinary role's login. (On PostgreSQL 14/15 a
//!   `CREATEROLE` role is as powerful as a superuser anyway, through the predefined roles it may
//!   grant itself.) When the provider's admin role runs it instead (managed PostgreSQL, no
//!   superuser), the owner gets `CREATEROLE`, and on 16+ it needs `ADMIN OPTION` on each role
//!   curfew locks: `GRANT <role> TO curfew_owner WITH ADMIN OPTION`.

use tokio_postgres::error::SqlState;

use crate::connect::Connection;
use crate::decode::col;
use crate::error::PgError;
use crate::names::{OWNER_ROLE, quote_identifier};
use crate::sql::ledger::{ACTIVE, AGENT_FUNCTIONS, DDL, LEDGER_VERSION, SCHEMA_COMMENT};

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

/// What `curfew init` did on one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Whether the schema was there before (made by an administrator or an older curfew).
    pub schema_existed: bool,
    /// Whether the owner role was created now.
    pub owner_created: bool,
    /// The owner's attributes, in words (`NOLOGIN SUPERUSER`, `NOLOGIN CREATEROLE`).
    pub owner_attributes: String,
    /// What the administrator still has to do, if anything.
    pub notes: Vec<String>,
}

impl Connection {
    /// Install (or upgrade) the ledger and its functions, as an administrator, for curfew's
    /// agent role `agent_role`: see the module documentation. Idempotent; an older ledger (made
    /// by curfew before version 2, owned by curfew's role) keeps its rows and changes hands.
    pub async fn install_ledger(&mut self, agent_role: &str) -> Result<Installed, PgError> {
        let target = self.target.clone();
        let admin = self.info.role.clone();
        let failed = |what: &'static str| {
            let target = target.clone();
            move |e: tokio_postgres::Error| PgError::query(&target, what, e)
        };
        let refuse = |why: String| PgError::Install {
            target: target.clone(),
            admin: admin.clone(),
            why,
        };
        if !self.info.superuser && !self.info.createrole {
            return Err(refuse("it is neither a superuser nor a role with CREATEROLE (the provider's admin role on managed PostgreSQL); connect as one with --admin-user".to_owned()));
        }
        let version_num = self.info.version_num;
        let superuser = self.info.superuser;
        let tx = self
            .client
            .transaction()
            .await
            .map_err(failed("starting a transaction"))?;
        let agent = tx
            .query_opt(
                "SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = $1",
                &[&agent_role],
            )
            .await
            .map_err(failed("looking up the agent's role"))?;
        let Some(agent) = agent else {
            return Err(refuse(format!(
                "there is no role named \"{agent_role}\" (--agent-role, or the user in the target's URL)"
            )));
        };
        let mut notes = Vec::new();
        let what = "looking up the agent's role";
        if col::<bool>(&agent, 0, &target, what)? {
            notes.push(format!("role \"{agent_role}\" is a superuser: curfew needs only pg_read_all_stats and pg_signal_backend and the grants made now"));
        } else if col::<bool>(&agent, 1, &target, what)? {
            notes.push(format!("role \"{agent_role}\" still has CREATEROLE, which curfew no longer needs and which lets it grant itself pg_execute_server_program on PostgreSQL 14/15: run ALTER ROLE {} NOCREATEROLE;", quote_identifier(agent_role)));
        }
        let foreign = super::vetting::foreign_objects(&tx, agent_role)
            .await
            .map_err(failed("checking the existing curfew schema"))?;
        if !foreign.is_empty() {
            return Err(refuse(format!(
                "schema curfew or role {OWNER_ROLE} holds what curfew did not make and would run or grant with the owner's rights: {}; inspect it, then drop it (or DROP SCHEMA curfew CASCADE, losing the ledger's rows; REVOKE {OWNER_ROLE} FROM <member>) and run curfew init again",
                foreign.join("; ")
            )));
        }
        let owner_q = quote_identifier(OWNER_ROLE);
        let agent_q = quote_identifier(agent_role);
        let owner_created = tx
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&OWNER_ROLE])
            .await
            .map_err(failed("looking up the owner role"))?
            .is_none();
        if owner_created {
            tx.batch_execute(&format!("CREATE ROLE {owner_q} NOLOGIN"))
                .await
                .map_err(failed("creating the owner role"))?;
        }
        let owner_attributes = if superuser && version_num >= 160_000 {
            "NOLOGIN SUPERUSER"
        } else {
            "NOLOGIN NOSUPERUSER CREATEROLE"
        };
        let mut setup = format!(
            "ALTER ROLE {owner_q} {owner_attributes};
             COMMENT ON ROLE {owner_q} IS 'owns the curfew ledger and its functions; nobody logs in as it';
             GRANT pg_read_all_stats TO {owner_q};"
        );
        if !superuser {
            // The admin must be a member to hand its objects over.
            setup.push_str(&format!("GRANT {owner_q} TO CURRENT_USER;"));
            if version_num >= 160_000 {
                notes.push(format!("on PostgreSQL 16 and later, {OWNER_ROLE} can change only the logins of roles it holds ADMIN OPTION on: for each role curfew may lock, run GRANT <role> TO {owner_q} WITH ADMIN OPTION; (or run curfew init as a superuser)"));
            }
        }
        tx.batch_execute(&setup)
            .await
            .map_err(failed("setting up the owner role"))?;
        let schema_existed = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'curfew')",
                &[],
            )
            .await
            .map_err(failed("looking for the curfew schema"))
            .and_then(|r| col(&r, 0, &target, "looking for the curfew schema"))?;
        let schema = if schema_existed {
            format!("ALTER SCHEMA curfew OWNER TO {owner_q};")
        } else {
            format!("CREATE SCHEMA curfew AUTHORIZATION {owner_q};")
        };
        let mut functions = FUNCTIONS.replace("{ACTIVE}", ACTIVE);
        functions.push_str(crate::sql::anchor::ANCHOR_FUNCTIONS);
        let ddl = format!("{DDL}{}", crate::sql::anchor::ANCHOR_DDL);
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
        let anchor = [crate::sql::anchor::ANCHOR_FUNCTION];
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
        for (what, sql) in [
            ("creating the curfew schema", schema.as_str()),
            ("creating the ledger's tables", ddl.as_str()),
            ("creating the ledger's functions", functions.as_str()),
            ("granting the ledger's privileges", grants.as_str()),
        ] {
            tx.batch_execute(sql).await.map_err(|e| {
                if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
                    refuse(format!(
                        "{what}: {}",
                        e.as_db_error().map(|d| d.message()).unwrap_or_default()
                    ))
                } else {
                    PgError::query(&target, what, e)
                }
            })?;
        }
        tx.commit()
            .await
            .map_err(failed("committing the installation"))?;
        debug_assert!(SCHEMA_COMMENT.contains(&format!("(version {LEDGER_VERSION})")));
        Ok(Installed {
            schema_existed,
            owner_created,
            owner_attributes: owner_attributes.to_owned(),
            notes,
        })
    }
}
